//! The DynamoDB, S3 and CloudWatch steps of a reconcile: ensure the app's tables, bucket and
//! alarms (and carry out the deletion policy of tables removed from the spec, delete alarms no
//! longer wanted), or carry out every deletion policy under the finalizer; their results as
//! status views and Events.
//!
//! Tables and alarms leave a record in the status (`dynamodbTables`, `alarms`), so that what
//! halo created is cleaned up even after its section left the spec.

use crate::aws::cloudwatch::{self, AlarmInputs};
use crate::aws::{Aws, Readiness, dynamodb, s3};
use crate::crd::HighlyAvailableAppStatus;
use crate::crd_storage::StaticAssetsStatus;
use crate::status::AwsView;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

use super::aws_steps::{AwsStep, absorb, error_view};

/// Whether the app has a section whose AWS resources need cleaning up.
pub fn needs_finalizer(app: &ValidatedApp) -> bool {
    app.dynamodb.is_some() || app.static_assets.is_some() || app.alarms.is_some()
}

/// Whether the status records tables or alarms that a removed section left behind.
pub fn has_records(old: Option<&HighlyAvailableAppStatus>) -> bool {
    old.is_some_and(|s| !s.dynamodb_tables.is_empty() || !s.alarms.is_empty())
}

fn throttled_only(errors: &[Error]) -> bool {
    !errors.is_empty()
        && errors.iter().all(|e| {
            matches!(
                e,
                Error::Aws {
                    throttled: true,
                    ..
                }
            )
        })
}

/// Ensures the tables, the bucket and the alarms; adds their views, changes and errors to `step`.
pub async fn ensure(
    aws: &Aws,
    app: &ValidatedApp,
    old: Option<&HighlyAvailableAppStatus>,
    inputs: &AlarmInputs,
    step: &mut AwsStep,
) {
    let recorded_tables = old
        .map(|s| s.dynamodb_tables.as_slice())
        .unwrap_or_default();
    if let Some(d) = dynamodb::desired(app, recorded_tables) {
        let report = dynamodb::ensure(aws, &d).await;
        step.changes.extend(report.changes.iter().cloned());
        step.observed.storage.dynamodb = Some(if throttled_only(&report.errors) {
            AwsView::Throttled
        } else {
            AwsView::Seen {
                readiness: dynamodb::readiness(&report),
                endpoints: report.records(&d),
            }
        });
        step.errors.extend(report.errors);
    }
    if let Some(d) = s3::desired(app, &aws.config) {
        step.observed.storage.static_assets = Some(match s3::ensure(aws, &d).await {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                AwsView::Seen {
                    readiness: s3::readiness(&d, &report),
                    endpoints: StaticAssetsStatus {
                        bucket: report.bucket.clone(),
                        region: report.region.clone(),
                        replica_bucket: report.replica.as_ref().map(|r| r.bucket.clone()),
                    },
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
    let recorded_alarms = old.map(|s| s.alarms.as_slice()).unwrap_or_default();
    if let Some(d) = cloudwatch::desired(app, &aws.config, inputs, recorded_alarms) {
        let enabled = app.alarms.as_ref().is_some_and(|a| a.enabled);
        step.observed.storage.alarms = Some(match cloudwatch::ensure(aws, &d, enabled).await {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                let (ok, reason, message) = cloudwatch::condition(&report);
                AwsView::Seen {
                    readiness: Readiness {
                        ready: ok,
                        reason,
                        message,
                        busy: false,
                    },
                    endpoints: report.states,
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
}

/// Carries out the deletion policies of the tables (listed and recorded) and the bucket, and
/// deletes the alarms; `step.done` stays true only once AWS confirmed every one.
pub async fn cleanup(
    aws: &Aws,
    app: &ValidatedApp,
    old: Option<&HighlyAvailableAppStatus>,
    step: &mut AwsStep,
) {
    let recorded_tables = old
        .map(|s| s.dynamodb_tables.as_slice())
        .unwrap_or_default();
    if let Some(d) = dynamodb::desired(app, recorded_tables) {
        let (reports, errors) = dynamodb::cleanup(aws, &d).await;
        let mut messages = Vec::new();
        for r in reports {
            step.done &= r.done;
            step.changes.extend(r.changes);
            messages.push(r.message);
        }
        let view = match errors.first() {
            Some(e) => {
                step.done = false;
                error_view(e)
            }
            None => AwsView::Unseen {
                reason: crate::aws::reasons::DELETING,
                message: messages.join("; "),
            },
        };
        step.errors.extend(errors);
        step.observed.storage.dynamodb = Some(view);
    }
    if let Some(d) = s3::desired(app, &aws.config) {
        step.observed.storage.static_assets = Some(absorb(s3::cleanup(aws, &d).await, step));
    }
    let recorded_alarms = old.map(|s| s.alarms.as_slice()).unwrap_or_default();
    if let Some(d) = cloudwatch::desired(app, &aws.config, &AlarmInputs::default(), recorded_alarms)
    {
        let result: Result<_> = cloudwatch::cleanup(aws, &d).await;
        step.observed.storage.alarms = Some(absorb(result, step));
    }
}
