//! The storage and operations parts of the status, pure: `DynamoDBReady` and
//! `StaticAssetsReady` (part of `Ready` when their section is present), `AlarmsOK` (reported,
//! never part of `Ready`), and the records they keep: the tables halo created, the bucket, the
//! alarms with their states. A failed or throttled look at AWS keeps the records last seen, so
//! a table removed from the spec is never forgotten before its deletion policy ran.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::aws::{AwsView, condition, endpoints};
use super::conditions::Computed;
use crate::crd::HighlyAvailableAppStatus;
use crate::crd_storage::{AlarmStatus, StaticAssetsStatus, TableStatus};
use crate::validate::ValidatedApp;

pub const DYNAMODB_READY: &str = "DynamoDBReady";
pub const STATIC_ASSETS_READY: &str = "StaticAssetsReady";
pub const ALARMS_OK: &str = "AlarmsOK";

/// What this reconcile learned about the tables, the bucket and the alarms; `None` where
/// nothing was looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageObserved {
    pub dynamodb: Option<AwsView<Vec<TableStatus>>>,
    pub static_assets: Option<AwsView<StaticAssetsStatus>>,
    /// Readiness here is `AlarmsOK`.
    pub alarms: Option<AwsView<Vec<AlarmStatus>>>,
}

impl StorageObserved {
    /// Whether AWS is still working on something (poll often).
    pub fn busy(&self) -> bool {
        fn busy<E>(v: &Option<AwsView<E>>) -> bool {
            matches!(v, Some(AwsView::Seen { readiness, .. }) if readiness.busy)
        }
        busy(&self.dynamodb) || busy(&self.static_assets)
    }
}

/// `DynamoDBReady` and `StaticAssetsReady`, for the sections the app has (they go into `Ready`).
pub fn conditions(
    app: &ValidatedApp,
    observed: &StorageObserved,
    old: &[Condition],
) -> Vec<Computed> {
    let mut out = Vec::new();
    if app.dynamodb.is_some() {
        out.push(condition(DYNAMODB_READY, observed.dynamodb.as_ref(), old));
    }
    if app.static_assets.is_some() {
        out.push(condition(
            STATIC_ASSETS_READY,
            observed.static_assets.as_ref(),
            old,
        ));
    }
    out
}

/// `AlarmsOK` when the app has an alarms section (never part of `Ready`).
pub fn alarms_condition(
    app: &ValidatedApp,
    observed: &StorageObserved,
    old: &[Condition],
) -> Option<Computed> {
    app.alarms
        .as_ref()
        .map(|_| condition(ALARMS_OK, observed.alarms.as_ref(), old))
}

/// `status.dynamodbTables`: this reconcile's records, else those last seen.
pub fn tables(
    observed: &StorageObserved,
    old: Option<&HighlyAvailableAppStatus>,
) -> Vec<TableStatus> {
    endpoints(observed.dynamodb.as_ref(), old.map(|s| &s.dynamodb_tables)).unwrap_or_default()
}

/// `status.staticAssets`, while the app has the section.
pub fn static_assets(
    app: &ValidatedApp,
    observed: &StorageObserved,
    old: Option<&HighlyAvailableAppStatus>,
) -> Option<StaticAssetsStatus> {
    app.static_assets.as_ref()?;
    endpoints(
        observed.static_assets.as_ref(),
        old.and_then(|s| s.static_assets.as_ref()),
    )
}

/// `status.alarms`: this reconcile's states, else those last seen.
pub fn alarms(
    observed: &StorageObserved,
    old: Option<&HighlyAvailableAppStatus>,
) -> Vec<AlarmStatus> {
    endpoints(observed.alarms.as_ref(), old.map(|s| &s.alarms)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Readiness;

    /// An AWS failure keeps the table records, so a removed table's policy still runs later.
    #[test]
    fn records_survive_a_failed_look() {
        let old = HighlyAvailableAppStatus {
            dynamodb_tables: vec![TableStatus {
                name: "carts".into(),
                table_name: "shop-web-carts".into(),
                ..TableStatus::default()
            }],
            ..HighlyAvailableAppStatus::default()
        };
        let failed = StorageObserved {
            dynamodb: Some(AwsView::Unseen {
                reason: "AWSAPIError",
                message: "boom".into(),
            }),
            ..StorageObserved::default()
        };
        assert_eq!(tables(&failed, Some(&old)), old.dynamodb_tables);
        let seen = StorageObserved {
            dynamodb: Some(AwsView::Seen {
                readiness: Readiness {
                    ready: true,
                    reason: "Available",
                    message: String::new(),
                    busy: false,
                },
                endpoints: vec![],
            }),
            ..StorageObserved::default()
        };
        assert_eq!(tables(&seen, Some(&old)), vec![]);
    }
}
