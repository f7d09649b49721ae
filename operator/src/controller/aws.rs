//! The AWS stage of a reconcile: the plan for the app, carried out by the operator's backend.
//! The controller does not know which backend runs (SDK calls, or AWS Controllers for
//! Kubernetes objects); it only hands over the plan and reads the step back.

use std::time::Duration;

use crate::Result;
use crate::api::HighlyAvailableApp;
use crate::api::HighlyAvailableAppStatus;
use crate::aws::AwsConfig;
use crate::aws::backend::AwsStep;
use crate::aws::plan::{AwsPlan, Site, plan};
use crate::observed::AwsObserved;
use crate::render::secret::Connection;
use crate::status::aws::endpoints;
use crate::validate::ValidatedApp;

use super::{Context, finalizer};

/// Whether the app owns AWS resources that need cleaning up (and so the finalizer).
pub fn needs_finalizer(app: &ValidatedApp) -> bool {
    app.database.is_some()
        || app.cache.is_some()
        || app.dns.is_some()
        || app.dynamodb.is_some()
        || app.static_assets.is_some()
        || app.alarms.is_some()
}

/// Whether a reconcile talks to AWS: the spec asks for AWS resources, or the status records a
/// Route 53 record set, tables or alarms that an earlier spec left behind.
pub fn needs_aws(app: &ValidatedApp, status: Option<&HighlyAvailableAppStatus>) -> bool {
    needs_finalizer(app)
        || status.is_some_and(|s| {
            s.dns.is_some() || !s.dynamodb_tables.is_empty() || !s.alarms.is_empty()
        })
}

/// The plan for this reconcile, with the operator's site resolved.
async fn plan_for(
    ctx: &Context,
    app: &ValidatedApp,
    status: Option<&HighlyAvailableAppStatus>,
    load_balancer: Option<&str>,
) -> AwsPlan {
    let config = ctx.backend.config();
    let site = Site::new(config, ctx.backend.region().await);
    plan(app, config, &site, status, load_balancer)
}

/// Creates, adopts or corrects the app's AWS resources; `None` when the app needs no AWS. The
/// finalizer goes on first; failing to add it is the only error (nothing was touched then).
pub async fn ensure(
    ctx: &Context,
    app: &HighlyAvailableApp,
    validated: &ValidatedApp,
    load_balancer: Option<&str>,
) -> Result<Option<AwsStep>> {
    let old = app.status.as_ref();
    if !needs_aws(validated, old) {
        return Ok(None);
    }
    finalizer::add(&ctx.client, app).await?;
    let plan = plan_for(ctx, validated, old, load_balancer).await;
    // Boxed: the SDK's futures are large, and the reconcile future would carry them inline.
    Ok(Some(Box::pin(ctx.backend.ensure(&plan)).await))
}

/// Carries out every deletion policy; `done` once AWS confirmed every resource's fate.
pub async fn cleanup(
    ctx: &Context,
    validated: &ValidatedApp,
    status: Option<&HighlyAvailableAppStatus>,
) -> AwsStep {
    if !needs_aws(validated, status) {
        return AwsStep::default();
    }
    let plan = plan_for(ctx, validated, status, None).await;
    Box::pin(ctx.backend.cleanup(&plan)).await
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
        dynamodb_tables: crate::status::storage::tables(observed, status),
        static_assets: endpoints(
            observed.static_assets.as_ref(),
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
    use crate::api::data::DatabaseEndpoints;
    use crate::observed::{AwsView, Readiness};

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
}
