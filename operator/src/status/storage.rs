//! The storage and operations parts of the status, pure: `DynamoDBReady` and
//! `StaticAssetsReady` (part of `Ready` when their section is present), `AlarmsOK` (reported,
//! never part of `Ready`), and the records they keep: the tables halo created, the bucket, the
//! alarms with their states. A failed or throttled look at AWS keeps the records last seen, so
//! a table removed from the spec is never forgotten before its deletion policy ran.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::aws::{condition, endpoints};
use super::merge::Computed;
use crate::api::HighlyAvailableAppStatus;
use crate::api::storage::{AlarmStatus, StaticAssetsStatus, TableStatus};
use crate::conditions::{ALARMS_OK, DYNAMODB_READY, STATIC_ASSETS_READY};
use crate::observed::AwsObserved;
use crate::validate::ValidatedApp;

/// `DynamoDBReady` and `StaticAssetsReady`, for the sections the app has (they go into `Ready`).
pub fn conditions(app: &ValidatedApp, observed: &AwsObserved, old: &[Condition]) -> Vec<Computed> {
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
    observed: &AwsObserved,
    old: &[Condition],
) -> Option<Computed> {
    app.alarms
        .as_ref()
        .map(|_| condition(ALARMS_OK, observed.alarms.as_ref(), old))
}

/// `status.dynamodbTables`: this reconcile's records, else those last seen.
pub fn tables(observed: &AwsObserved, old: Option<&HighlyAvailableAppStatus>) -> Vec<TableStatus> {
    endpoints(observed.dynamodb.as_ref(), old.map(|s| &s.dynamodb_tables)).unwrap_or_default()
}

/// `status.staticAssets`, while the app has the section.
pub fn static_assets(
    app: &ValidatedApp,
    observed: &AwsObserved,
    old: Option<&HighlyAvailableAppStatus>,
) -> Option<StaticAssetsStatus> {
    app.static_assets.as_ref()?;
    endpoints(
        observed.static_assets.as_ref(),
        old.and_then(|s| s.static_assets.as_ref()),
    )
}

/// `status.alarms`: this reconcile's states, else those last seen.
pub fn alarms(observed: &AwsObserved, old: Option<&HighlyAvailableAppStatus>) -> Vec<AlarmStatus> {
    endpoints(observed.alarms.as_ref(), old.map(|s| &s.alarms)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{AwsView, Readiness};

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
        let failed = AwsObserved {
            dynamodb: Some(AwsView::Unseen {
                reason: "AWSAPIError",
                message: "boom".into(),
            }),
            ..AwsObserved::default()
        };
        assert_eq!(tables(&failed, Some(&old)), old.dynamodb_tables);
        let seen = AwsObserved {
            dynamodb: Some(AwsView::Seen {
                readiness: Readiness {
                    ready: true,
                    reason: "Available",
                    message: String::new(),
                    busy: false,
                },
                endpoints: vec![],
            }),
            ..AwsObserved::default()
        };
        assert_eq!(tables(&seen, Some(&old)), vec![]);
    }
}
