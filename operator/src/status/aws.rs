//! The AWS-backed parts of the status, pure: `DatabaseReady` and `CacheReady` with AWS's own
//! status word in the message, and the endpoints they report. A failed or throttled look at
//! AWS keeps the endpoints last seen, so the connection Secret never loses them to an outage.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::merge::Computed;
use crate::conditions::DNS_READY;
use crate::conditions::reasons::{PENDING, THROTTLED};
use crate::observed::{AwsView, DnsView};

/// The `DNSReady` condition for a view.
pub fn dns_condition(view: Option<&DnsView>, old: &[Condition]) -> Computed {
    match view {
        Some(DnsView::Seen(r)) => Computed::new(DNS_READY, r.ready, r.reason, r.message.clone()),
        Some(DnsView::Unseen { reason, message }) => {
            Computed::new(DNS_READY, false, *reason, message.clone())
        }
        Some(DnsView::Throttled) => condition::<()>(DNS_READY, Some(&AwsView::Throttled), old),
        None => Computed::new(
            DNS_READY,
            false,
            PENDING,
            "waiting for the first look at Route 53",
        ),
    }
}

/// The condition of type `type_` for a view.
pub fn condition<E>(type_: &'static str, view: Option<&AwsView<E>>, old: &[Condition]) -> Computed {
    match view {
        Some(AwsView::Seen { readiness, .. }) => Computed::new(
            type_,
            readiness.ready,
            readiness.reason,
            readiness.message.clone(),
        ),
        Some(AwsView::Unseen { reason, message }) => {
            Computed::new(type_, false, *reason, message.clone())
        }
        Some(AwsView::Throttled) => match old.iter().find(|c| c.type_ == type_) {
            Some(c) => Computed::new(
                type_,
                c.status == "True",
                c.reason.clone(),
                c.message.clone(),
            ),
            None => Computed::new(
                type_,
                false,
                THROTTLED,
                "AWS is throttling halo's requests; retrying with backoff",
            ),
        },
        None => Computed::new(type_, false, PENDING, "waiting for the first look at AWS"),
    }
}

/// Endpoints from a view, or those last seen when the view has none.
pub fn endpoints<E: Clone>(view: Option<&AwsView<E>>, old: Option<&E>) -> Option<E> {
    match view {
        Some(AwsView::Seen { endpoints, .. }) => Some(endpoints.clone()),
        _ => old.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::data::DatabaseEndpoints;
    use crate::conditions::DATABASE_READY;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn old_ready() -> Vec<Condition> {
        vec![Condition {
            type_: DATABASE_READY.into(),
            status: "True".into(),
            reason: "Available".into(),
            message: "Aurora cluster shop-web is available".into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(1).expect("ts")),
        }]
    }

    /// Throttling keeps the previous condition: the app is not marked failed.
    #[test]
    fn throttling_keeps_the_previous_condition() {
        let c =
            condition::<DatabaseEndpoints>(DATABASE_READY, Some(&AwsView::Throttled), &old_ready());
        assert_eq!(
            c,
            Computed::new(
                DATABASE_READY,
                true,
                "Available",
                "Aurora cluster shop-web is available"
            )
        );
        let first = condition::<DatabaseEndpoints>(DATABASE_READY, Some(&AwsView::Throttled), &[]);
        assert_eq!(
            (first.status, first.reason.as_str()),
            (false, "AWSThrottled")
        );
    }

    /// An AWS error is the condition's reason and message; the endpoints last seen stay.
    #[test]
    fn errors_keep_the_last_endpoints() {
        let view: AwsView<DatabaseEndpoints> = AwsView::Unseen {
            reason: "AWSAPIError",
            message: "AWS rds:DescribeDBClusters failed: AccessDenied: not allowed".into(),
        };
        let c = condition(DATABASE_READY, Some(&view), &old_ready());
        assert_eq!(
            (c.status, c.reason.as_str(), c.message.as_str()),
            (
                false,
                "AWSAPIError",
                "AWS rds:DescribeDBClusters failed: AccessDenied: not allowed"
            )
        );
        let old = DatabaseEndpoints {
            writer: Some("w.example".into()),
            ..DatabaseEndpoints::default()
        };
        assert_eq!(endpoints(Some(&view), Some(&old)), Some(old.clone()));
        assert_eq!(endpoints::<DatabaseEndpoints>(None, None), None);
    }
}
