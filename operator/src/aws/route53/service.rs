//! Route 53 as an AWS service of the plan: the record set the spec wants (written once the ALB
//! has a hostname), the one an earlier reconcile wrote (`status.dns`, deleted when the spec
//! moved it), and the health check reading behind `DNSReady`.

use std::time::Duration;

use crate::api::HighlyAvailableAppStatus;
use crate::api::dns::{DnsStatus, ZoneRef, fqdn};
use crate::aws::service::{Outcome, Service};
use crate::aws::{Aws, Change, reasons};
use crate::observed::{DnsRecord, DnsView};
use crate::validate::ValidatedApp;
use crate::{Error, conditions};

use super::{
    DesiredDns, DnsIdentity, DnsOwner, OWNER_RECORD_PREFIX, ObservedDns, Target, cleanup, desired,
    ensure, readiness, waiting_for_load_balancer,
};

/// Longest a reconcile waits for a GetHealthCheckStatus token when DNSReady already holds a
/// health reading: Route 53 allows about one status read per second per account, so with many
/// apps some readings are skipped (the last one stands) instead of holding reconciles up.
pub const HEALTH_READ_MAX_WAIT: Duration = Duration::from_secs(2);

/// The DNS part of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsPlan {
    pub owner: DnsOwner,
    /// The record set the spec wants, if any.
    pub wanted: Option<WantedDns>,
    /// The record set an earlier reconcile wrote (`status.dns`).
    pub recorded: Option<DnsStatus>,
    /// The health check whose reading `DNSReady` holds: that reading may stand another round.
    pub reading_of: Option<String>,
}

/// The record set the spec wants.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedDns {
    pub identity: DnsIdentity,
    pub record_name: String,
    /// What to write; `None` until the ALB has a hostname.
    pub desired: Option<DesiredDns>,
}

/// The DNS plan of an app: `None` when neither the spec nor the status has a record. Pure.
pub fn dns_plan(
    app: &ValidatedApp,
    cluster_id: &str,
    status: Option<&HighlyAvailableAppStatus>,
    load_balancer: Option<&str>,
) -> Option<DnsPlan> {
    let recorded = status.and_then(|s| s.dns.clone());
    if app.dns.is_none() && recorded.is_none() {
        return None;
    }
    let owner = DnsOwner::new(cluster_id, &app.owner);
    // The generation the status last recorded: it has grown past every reconcile that deleted
    // a health check of this app, so a new check never gets a deleted one's CallerReference.
    let generation = status
        .and_then(|s| s.observed_generation)
        .unwrap_or_default();
    let wanted = app.dns.as_ref().map(|dns| WantedDns {
        identity: DnsIdentity::new(dns, owner.clone()),
        record_name: dns.record_name.clone(),
        desired: load_balancer
            .map(|alb| desired(app, dns, owner.clone(), alb).at_generation(generation)),
    });
    Some(DnsPlan {
        reading_of: reading_of(status),
        owner,
        wanted,
        recorded,
    })
}

/// The health check whose reading `DNSReady` holds. Pure.
pub fn reading_of(status: Option<&HighlyAvailableAppStatus>) -> Option<String> {
    let status = status?;
    let has_reading = status.conditions.iter().any(|c| {
        c.type_ == conditions::DNS_READY
            && (c.reason == reasons::HEALTH_CHECK_HEALTHY
                || c.reason == reasons::HEALTH_CHECK_UNHEALTHY)
    });
    if !has_reading {
        return None;
    }
    status.dns.as_ref()?.health_check_id.clone()
}

/// What the DNS step learned: the `DNSReady` view and what `status.dns` becomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsResult {
    pub view: Option<DnsView>,
    pub record: DnsRecord,
}

/// The identity of a record set halo wrote earlier, from `status.dns`.
pub fn recorded_identity(recorded: &DnsStatus, owner: DnsOwner) -> DnsIdentity {
    let record_name = fqdn(&recorded.record_name);
    DnsIdentity {
        zone: ZoneRef::Id(recorded.hosted_zone_id.clone()),
        owner_record_name: format!("{OWNER_RECORD_PREFIX}.{record_name}"),
        record_name,
        set_identifier: recorded.set_identifier.clone(),
        owner,
    }
}

/// Whether the record set halo wrote earlier is not the one the spec wants now (another zone,
/// name or set identifier, or no DNS at all), so it must be deleted. `wanted` carries the
/// wanted zone's id. Pure.
pub fn recorded_slot_moved(recorded: &DnsStatus, wanted: Option<(&str, &DnsIdentity)>) -> bool {
    match wanted {
        None => true,
        Some((zone_id, id)) => {
            recorded.hosted_zone_id != zone_id
                || fqdn(&recorded.record_name) != id.record_name
                || recorded.set_identifier != id.set_identifier
        }
    }
}

/// The `status.dns` for what `ensure` wrote.
pub fn dns_status(observed: &ObservedDns) -> DnsStatus {
    DnsStatus {
        hosted_zone_id: observed.zone_id.clone(),
        record_name: observed.record_name.clone(),
        set_identifier: observed.set_identifier.clone(),
        health_check_id: observed.health_check_id.clone(),
    }
}

/// Events for what `ensure` changed in Route 53. Pure.
pub fn dns_changes(d: &DesiredDns, observed: &ObservedDns) -> Vec<Change> {
    let slot = match &observed.set_identifier {
        Some(s) => format!("{} (set {s})", observed.record_name),
        None => observed.record_name.clone(),
    };
    let mut out = Vec::new();
    if let (Some(id), Some(hc)) = (&observed.health_check_id, &d.health_check) {
        let target = format!(
            "{}://{}:{}{}",
            if hc.https { "https" } else { "http" },
            hc.fqdn,
            hc.port(),
            hc.path
        );
        if observed.health_check_created {
            out.push(Change::new(
                "HealthCheckCreated",
                format!("Route 53 health check {id} created on {target}"),
            ));
        } else if observed.health_check_updated {
            out.push(Change::new(
                "HealthCheckUpdated",
                format!("Route 53 health check {id} updated to {target}"),
            ));
        }
    }
    if observed.record_changes > 0 {
        let target = match observed.target {
            Target::Alias => "an alias to the ALB",
            Target::Cname => "a CNAME to the ALB",
        };
        out.push(Change::new(
            "DNSRecordUpdated",
            format!(
                "Route 53 record {slot} in zone {} is {target} ({} record sets written)",
                observed.zone_id, observed.record_changes
            ),
        ));
    }
    out
}

fn dns_error_view(e: &Error) -> DnsView {
    if e.is_throttled() {
        DnsView::Throttled
    } else {
        DnsView::Unseen {
            reason: e.metric_label(),
            message: e.to_string(),
        }
    }
}

/// Route 53 through the SDK backend.
pub struct Dns<'a>(pub &'a Aws);

impl Service for Dns<'_> {
    type Desired = DnsPlan;
    type View = DnsResult;

    /// Deletes the record set halo wrote earlier when the spec no longer wants it, then writes
    /// the one it wants once the ALB has a hostname, then reads its health.
    async fn ensure(&self, plan: &DnsPlan) -> Outcome<DnsResult> {
        let aws = self.0;
        let mut out = Outcome::<DnsResult>::default();
        let mut result = DnsResult::default();
        if let Some(old) = &plan.recorded {
            let r53 = aws.route53().await;
            let moved = match &plan.wanted {
                None => Ok(true),
                Some(w) => r53
                    .zone_id(&w.identity.zone)
                    .await
                    .map(|zone| recorded_slot_moved(old, Some((&zone, &w.identity)))),
            };
            let cleaned = match moved {
                Ok(false) => Ok(None),
                Ok(true) => cleanup(r53, &recorded_identity(old, plan.owner.clone()))
                    .await
                    .map(Some),
                Err(e) => Err(e),
            };
            match cleaned {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    result.record = DnsRecord::Set(None);
                    out.changes.push(Change::new(
                        "DNSRecordDeleted",
                        format!(
                            "Route 53 record {} deleted, the spec no longer asks for it ({} record sets, {} health checks)",
                            old.record_name,
                            outcome.record_sets_deleted,
                            outcome.health_checks_deleted
                        ),
                    ));
                }
                Err(e) => {
                    // Keep status.dns, so the old record set is not forgotten; retry first.
                    if plan.wanted.is_some() {
                        result.view = Some(dns_error_view(&e));
                    }
                    out.errors.push(e);
                    out.view = Some(result);
                    return out;
                }
            }
        }
        let Some(wanted) = &plan.wanted else {
            out.view = Some(result);
            return out;
        };
        let Some(desired) = &wanted.desired else {
            result.view = Some(DnsView::Seen(waiting_for_load_balancer(
                &wanted.record_name,
            )));
            out.view = Some(result);
            return out;
        };
        let observed = match Box::pin(ensure(aws.route53().await, desired)).await {
            Ok(o) => o,
            Err(e) => {
                result.view = Some(dns_error_view(&e));
                out.errors.push(e);
                out.view = Some(result);
                return out;
            }
        };
        out.changes.extend(dns_changes(desired, &observed));
        result.record = DnsRecord::Set(Some(dns_status(&observed)));
        let health = match &observed.health_check_id {
            Some(id) => {
                let stands = plan.reading_of.as_deref() == Some(id.as_str());
                if !aws.admit_health_read(!stands, HEALTH_READ_MAX_WAIT) {
                    result.view = Some(DnsView::Throttled);
                    out.view = Some(result);
                    return out;
                }
                match aws.health_status(id).await {
                    Ok(h) => Some(h),
                    Err(e) => {
                        result.view = Some(dns_error_view(&e));
                        out.errors.push(e);
                        out.view = Some(result);
                        return out;
                    }
                }
            }
            None => None,
        };
        result.view = Some(DnsView::Seen(readiness(&observed, health.as_ref())));
        out.view = Some(result);
        out
    }

    /// Deletes every record set and health check this app holds in Route 53: the one the spec
    /// names and the one `status.dns` recorded, when they differ. `done` once both are gone.
    async fn cleanup(&self, plan: &DnsPlan) -> Outcome<DnsResult> {
        let mut out = Outcome::<DnsResult>::default();
        let mut result = DnsResult::default();
        let mut identities: Vec<DnsIdentity> = Vec::new();
        if let Some(w) = &plan.wanted {
            identities.push(w.identity.clone());
        }
        if let Some(old) = &plan.recorded {
            let id = recorded_identity(old, plan.owner.clone());
            let same = identities.iter().any(|w| {
                w.zone == id.zone
                    && w.record_name == id.record_name
                    && w.set_identifier == id.set_identifier
            });
            if !same {
                identities.push(id);
            }
        }
        let r53 = self.0.route53().await;
        let mut deleted = (0, 0);
        for id in &identities {
            match cleanup(r53, id).await {
                Ok(outcome) => {
                    deleted.0 += outcome.record_sets_deleted;
                    deleted.1 += outcome.health_checks_deleted;
                }
                Err(e) => {
                    out.done = false;
                    result.view = Some(dns_error_view(&e));
                    out.errors.push(e);
                }
            }
        }
        if out.done {
            result.record = DnsRecord::Set(None);
            let names: Vec<&str> = identities
                .iter()
                .map(|i| i.record_name.trim_end_matches('.'))
                .collect();
            let message = format!(
                "Route 53 record {} deleted ({} record sets, {} health checks)",
                names.join(", "),
                deleted.0,
                deleted.1
            );
            if deleted != (0, 0) {
                out.changes
                    .push(Change::new("DNSRecordDeleted", message.clone()));
            }
            result.view = Some(DnsView::Unseen {
                reason: reasons::DELETING,
                message,
            });
        }
        out.view = Some(result);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::route53;

    fn owner() -> DnsOwner {
        DnsOwner::new(
            "east",
            &crate::meta::Owner {
                name: "shop".into(),
                namespace: "default".into(),
                uid: "uid-1".into(),
            },
        )
    }

    fn recorded() -> DnsStatus {
        DnsStatus {
            hosted_zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            health_check_id: Some("hc-1".into()),
        }
    }

    /// The record set written earlier is deleted only when the spec moved it: another zone,
    /// name or set identifier, or no DNS at all.
    #[test]
    fn recorded_record_is_cleaned_up_only_when_the_slot_moved() {
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        let dns = app.dns.clone().expect("dns");
        let id = DnsIdentity::new(&dns, owner());
        assert!(!recorded_slot_moved(&recorded(), Some(("Z1", &id))));
        assert!(recorded_slot_moved(&recorded(), Some(("Z2", &id))));
        assert!(recorded_slot_moved(&recorded(), None));
        let mut other_set = recorded();
        other_set.set_identifier = Some("blue".into());
        assert!(recorded_slot_moved(&other_set, Some(("Z1", &id))));
        let mut other_name = recorded();
        other_name.record_name = "www.example.com".into();
        assert!(recorded_slot_moved(&other_name, Some(("Z1", &id))));
    }

    /// Cleanup of a recorded slot targets exactly its names and the owner's TXT record.
    #[test]
    fn recorded_identity_names_the_ownership_record() {
        let id = recorded_identity(&recorded(), owner());
        assert_eq!(
            id,
            DnsIdentity {
                zone: ZoneRef::Id("Z1".into()),
                record_name: "shop.example.com.".into(),
                owner_record_name: "_halo-owner.shop.example.com.".into(),
                set_identifier: Some("us-east-1".into()),
                owner: owner(),
            }
        );
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        let wanted = DnsIdentity::new(app.dns.as_ref().expect("dns"), owner());
        // Same slot, same prefix: the health checks found by cleanup are the same ones.
        assert_eq!(
            id.caller_reference_prefix(),
            wanted.caller_reference_prefix()
        );
    }

    /// The CallerReference a new health check would get, as the DNS plan carries it.
    fn reference(
        app: &ValidatedApp,
        status: Option<&HighlyAvailableAppStatus>,
        previous: Option<&str>,
    ) -> String {
        let alb = "k8s-default-shop-0a1b2c3d4e-1.us-east-1.elb.amazonaws.com";
        dns_plan(app, "east", status, Some(alb))
            .and_then(|p| p.wanted)
            .and_then(|w| w.desired)
            .and_then(|d| d.caller_reference(previous))
            .expect("a health check is wanted")
    }

    fn at(generation: i64, dns: Option<DnsStatus>) -> HighlyAvailableAppStatus {
        HighlyAvailableAppStatus {
            observed_generation: Some(generation),
            dns,
            ..HighlyAvailableAppStatus::default()
        }
    }

    /// Route 53 refuses a deleted health check's CallerReference for days. Every way the spec
    /// deletes a check and asks for one again in the same slot gives a new reference, while a
    /// retry under the same status (a crash before the status write) gives the same one.
    #[test]
    fn a_deleted_health_checks_reference_never_comes_back() {
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        // Generation 1 creates the check; the status of its reconcile is not written yet.
        let first = reference(&app, Some(&at(1, None)), None);
        assert_eq!(
            first,
            reference(&app, Some(&at(1, None)), None),
            "a retry sends the same reference"
        );
        assert!(first.len() <= 64);
        assert!(
            first.starts_with(
                &DnsIdentity::new(
                    app.dns.as_ref().expect("dns"),
                    DnsOwner::new("east", &app.owner)
                )
                .caller_reference_prefix()
            )
        );

        // Generation 2 removes spec.dns (or the health check): its reconcile deletes the check
        // and records generation 2. Generation 3 adds it back.
        let readded = reference(&app, Some(&at(2, None)), None);
        assert_ne!(readded, first);

        // A -> B -> A: generation 2 moves the record to B, generation 3 back to A.
        let mut moved = app.clone();
        if let Some(d) = moved.dns.as_mut() {
            d.record_name = "other.example.com.".into();
        }
        let at_b = reference(&moved, Some(&at(1, Some(recorded()))), None);
        assert_ne!(at_b, first);
        let back_at_a = reference(&app, Some(&at(2, None)), None);
        assert_ne!(back_at_a, first);

        // The check vanished outside halo while the records still name it.
        assert_ne!(
            reference(&app, Some(&at(1, Some(recorded()))), Some("hc-1")),
            first
        );
        // No status yet: generation 0.
        assert_ne!(reference(&app, None, None), first);
    }

    /// A converged record makes no Event; a written one says where it points, a new health
    /// check what it probes.
    #[test]
    fn dns_events_name_what_changed() {
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        let alb = "k8s-default-shop-0a1b2c3d4e-1.us-east-1.elb.amazonaws.com";
        let d = route53::desired(&app, app.dns.as_ref().expect("dns"), owner(), alb);
        let mut observed = route53::ObservedDns {
            zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            target: route53::Target::Alias,
            health_check_id: Some("hc-1".into()),
            record_changes: 0,
            health_check_created: false,
            health_check_updated: false,
            url: "http://shop.example.com".into(),
        };
        assert_eq!(dns_changes(&d, &observed), vec![]);
        observed.record_changes = 3;
        observed.health_check_created = true;
        assert_eq!(
            dns_changes(&d, &observed),
            vec![
                Change::new(
                    "HealthCheckCreated",
                    format!("Route 53 health check hc-1 created on http://{alb}:80/healthz")
                ),
                Change::new(
                    "DNSRecordUpdated",
                    "Route 53 record shop.example.com (set us-east-1) in zone Z1 is an alias to the ALB (3 record sets written)"
                ),
            ]
        );
        assert_eq!(dns_status(&observed), recorded());
    }

    /// A reading in DNSReady of the same health check may stand another round; a first
    /// reading, or one of another health check, never does.
    #[test]
    fn a_health_reading_stands_only_for_the_same_check() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let condition = |reason: &str| Condition {
            type_: "DNSReady".into(),
            status: "True".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(1).expect("ts")),
        };
        let status = |reason: &str| HighlyAvailableAppStatus {
            conditions: vec![condition(reason)],
            dns: Some(recorded()),
            ..HighlyAvailableAppStatus::default()
        };
        let stands = |id: &str, status: Option<&HighlyAvailableAppStatus>| {
            reading_of(status).as_deref() == Some(id)
        };
        assert!(stands("hc-1", Some(&status("HealthCheckHealthy"))));
        assert!(stands("hc-1", Some(&status("HealthCheckUnhealthy"))));
        assert!(!stands("hc-2", Some(&status("HealthCheckHealthy"))));
        assert!(!stands("hc-1", Some(&status("HealthCheckPending"))));
        assert!(!stands("hc-1", None));
    }
}
