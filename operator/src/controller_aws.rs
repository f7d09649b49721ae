//! The AWS steps of a reconcile: ensure the app's Aurora cluster and ElastiCache replication
//! group, or carry out their deletion policies under the `halo.dev/cleanup` finalizer; their
//! results as status views, connection endpoints and Events.
//!
//! The finalizer is added only to apps with a database or a cache, before anything is created
//! in AWS, so apps without AWS sections keep their zero-request reconciles.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::aws::{Aws, AwsConfig, Change, aurora, elasticache};
use crate::crd::{HighlyAvailableApp, HighlyAvailableAppStatus};
use crate::meta::FIELD_MANAGER;
use crate::render::secret::Connection;
use crate::status::aws::endpoints;
use crate::status::{AwsObserved, AwsView};
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// Guards the AWS resources: the app leaves Kubernetes only after AWS confirmed their fate.
pub const FINALIZER: &str = "halo.dev/cleanup";

/// Whether the app owns AWS resources that need cleaning up.
pub fn needs_finalizer(app: &ValidatedApp) -> bool {
    app.database.is_some() || app.cache.is_some() || super::storage_steps::needs_finalizer(app)
}

pub fn has_finalizer(app: &HighlyAvailableApp) -> bool {
    app.finalizers().iter().any(|f| f == FINALIZER)
}

/// Sets `metadata.finalizers` to `finalizers`, failing on a concurrent change (resourceVersion).
async fn set_finalizers(
    client: &kube::Client,
    app: &HighlyAvailableApp,
    finalizers: Vec<String>,
) -> Result<()> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns);
    let mut metadata = json!({ "finalizers": finalizers });
    if let Some(rv) = app.resource_version() {
        metadata["resourceVersion"] = json!(rv);
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(
        &app.name_any(),
        &params,
        &Patch::Merge(&json!({ "metadata": metadata })),
    )
    .await
    .map_err(Error::kube("update finalizers"))?;
    Ok(())
}

/// Adds the finalizer unless present (no request then).
pub async fn add_finalizer(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    if has_finalizer(app) {
        return Ok(());
    }
    let mut finalizers = app.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    set_finalizers(client, app, finalizers).await
}

pub async fn remove_finalizer(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    let finalizers: Vec<String> = app
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(client, app, finalizers).await
}

/// What the AWS step of one reconcile found and did.
#[derive(Debug, Default)]
pub struct AwsStep {
    pub observed: AwsObserved,
    /// One Normal Event each.
    pub changes: Vec<Change>,
    /// Failures, in order (throttling included: it backs off but never marks the app failed).
    pub errors: Vec<Error>,
    /// Cleanup only: every resource is gone, deleting or retained.
    pub done: bool,
}

impl AwsStep {
    /// The first failure that is not throttling, else the first throttling.
    pub fn error(self) -> Option<Error> {
        let (throttled, failed): (Vec<Error>, Vec<Error>) =
            self.errors.into_iter().partition(|e| {
                matches!(
                    e,
                    Error::Aws {
                        throttled: true,
                        ..
                    }
                )
            });
        failed.into_iter().chain(throttled).next()
    }
}

pub(crate) fn error_view<E>(e: &Error) -> AwsView<E> {
    match e {
        Error::Aws {
            throttled: true, ..
        } => AwsView::Throttled,
        _ => AwsView::Unseen {
            reason: e.metric_label(),
            message: e.to_string(),
        },
    }
}

/// Creates, adopts or corrects the app's AWS resources (database and cache concurrently, then
/// tables, bucket and alarms); `old` holds the records of what earlier reconciles created.
pub async fn ensure_all(
    aws: &Aws,
    app: &ValidatedApp,
    old: Option<&HighlyAvailableAppStatus>,
) -> AwsStep {
    let db = aurora::desired(app, &aws.config);
    let cache = elasticache::desired(app, &aws.config);
    let (db_result, cache_result) = futures::join!(
        async {
            match &db {
                Some(d) => Some(Box::pin(aurora::ensure(aws, d)).await),
                None => None,
            }
        },
        async {
            match &cache {
                Some(d) => Some(Box::pin(elasticache::ensure(aws, d)).await),
                None => None,
            }
        }
    );
    let mut step = AwsStep::default();
    if let (Some(d), Some(result)) = (&db, db_result) {
        step.observed.database = Some(match result {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                AwsView::Seen {
                    readiness: aurora::readiness(d, &report),
                    endpoints: aurora::endpoints(&report),
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
    if let (Some(d), Some(result)) = (&cache, cache_result) {
        step.observed.cache = Some(match result {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                AwsView::Seen {
                    readiness: elasticache::readiness(d, &report),
                    endpoints: elasticache::endpoints(&report),
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
    let inputs = crate::aws::cloudwatch::AlarmInputs::default();
    Box::pin(super::storage_steps::ensure(
        aws, app, old, &inputs, &mut step,
    ))
    .await;
    step
}

/// Carries out the deletion policies; `done` once AWS confirmed every resource's fate.
pub async fn cleanup_all(
    aws: &Aws,
    app: &ValidatedApp,
    old: Option<&HighlyAvailableAppStatus>,
) -> AwsStep {
    let db = aurora::desired(app, &aws.config);
    let cache = elasticache::desired(app, &aws.config);
    let (db_result, cache_result) = futures::join!(
        async {
            match &db {
                Some(d) => Some(Box::pin(aurora::cleanup(aws, d)).await),
                None => None,
            }
        },
        async {
            match &cache {
                Some(d) => Some(Box::pin(elasticache::cleanup(aws, d)).await),
                None => None,
            }
        }
    );
    let mut step = AwsStep {
        done: true,
        ..AwsStep::default()
    };
    if let Some(result) = db_result {
        step.observed.database = Some(absorb(result, &mut step));
    }
    if let Some(result) = cache_result {
        step.observed.cache = Some(absorb(result, &mut step));
    }
    Box::pin(super::storage_steps::cleanup(aws, app, old, &mut step)).await;
    step
}

pub(crate) fn absorb<E>(
    result: Result<crate::aws::CleanupReport>,
    step: &mut AwsStep,
) -> AwsView<E> {
    match result {
        Ok(report) => {
            step.done &= report.done;
            step.changes.extend(report.changes);
            AwsView::Unseen {
                reason: crate::aws::reasons::DELETING,
                message: report.message,
            }
        }
        Err(e) => {
            step.done = false;
            let view = error_view(&e);
            step.errors.push(e);
            view
        }
    }
}

/// The endpoints for the connection Secret: what AWS reported now, else what the status holds.
pub fn connection(observed: &AwsObserved, old: Option<&HighlyAvailableAppStatus>) -> Connection {
    let status = old;
    let old = old.and_then(|s| s.endpoints.as_ref());
    Connection {
        database: endpoints(
            observed.database.as_ref(),
            old.and_then(|e| e.database.as_ref()),
        ),
        cache: endpoints(observed.cache.as_ref(), old.and_then(|e| e.cache.as_ref())),
        dynamodb_tables: crate::status::storage::tables(&observed.storage, status),
        static_assets: endpoints(
            observed.storage.static_assets.as_ref(),
            status.and_then(|s| s.static_assets.as_ref()),
        ),
    }
}

/// How soon AWS is looked at again: often while it works on something, rarely once stable.
pub fn poll_interval(observed: &AwsObserved, config: &AwsConfig) -> Duration {
    if observed.busy() {
        config.poll_busy
    } else {
        config.poll_stable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Readiness;
    use crate::crd_data::DatabaseEndpoints;

    fn seen(busy: bool) -> AwsView<DatabaseEndpoints> {
        AwsView::Seen {
            readiness: Readiness {
                ready: !busy,
                reason: "Available",
                message: String::new(),
                busy,
            },
            endpoints: DatabaseEndpoints::default(),
        }
    }

    /// Busy resources are polled every 15 s by default, stable ones every 5 min.
    #[test]
    fn polling_follows_aws_activity() {
        let config = AwsConfig::default();
        let busy = AwsObserved {
            database: Some(seen(true)),
            ..AwsObserved::default()
        };
        let stable = AwsObserved {
            database: Some(seen(false)),
            ..AwsObserved::default()
        };
        assert_eq!(poll_interval(&busy, &config), Duration::from_secs(15));
        assert_eq!(poll_interval(&stable, &config), Duration::from_secs(300));
    }

    /// A real failure is reported before throttling, so the Event names what is wrong.
    #[test]
    fn failures_win_over_throttling() {
        let aws = |code: &str, throttled| Error::Aws {
            api: "rds:DescribeDBClusters".into(),
            code: code.into(),
            message: String::new(),
            throttled,
        };
        let step = AwsStep {
            errors: vec![aws("Throttling", true), aws("AccessDenied", false)],
            ..AwsStep::default()
        };
        assert!(crate::aws::is_code(
            &step.error().expect("error"),
            "AccessDenied"
        ));
    }
}
