//! The reconcile loop. One reconcile of an app is a pipeline of named stages, each in its own
//! module; only `aws`, `apply` and the status write talk to anything outside the process:
//!
//! ```text
//! validate ──> aws ──> render ──> apply ──> observe ──> status ──> requeue
//! (+ Secret    (plan,   (pure)    (server-  (watch      (pure,     (when to look
//!  namespace)  backend)           side)     caches)     one patch)  again; rebalance)
//! ```
//!
//! A deleted app with the finalizer runs `validate ──> aws cleanup ──> observe ──> status`
//! until AWS confirmed every deletion policy, then the finalizer goes.
//!
//! Children are observed through reflector caches fed by the same watches that trigger
//! reconciles, so a reconcile of a converged app reads nothing from the API server and writes
//! nothing to it.

mod apply;
pub mod aws;
mod caches;
pub mod events;
pub mod finalizer;
pub mod observe;
pub mod rebalance;
pub mod requeue;
mod run;
pub mod secrets;
mod status;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};
use tracing::info;

use crate::api::HighlyAvailableApp;
use crate::aws::backend::Backend;
use crate::aws::{Aws, AwsConfig};
use crate::conditions::{COMPUTE_READY, ZONE_RESILIENT};
use crate::meta::FIELD_MANAGER;
use crate::render::render_observed;
use crate::validate::owner_of;
use crate::{Error, Result};

pub use caches::{Caches, TenancyCache};
pub use events::applied_event;
pub use observe::{alb_hostname, cluster_zones, placements};
pub use requeue::{backoff, error_policy};
pub use run::{APP_STORE, count_apps_by_ready, run};
pub use secrets::{Lookup, SecretCache};

/// Operator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a converged app is re-checked even when nothing changes.
    pub resync: Duration,
    /// Most reconciles running at once.
    pub concurrency: u16,
    /// Region, default networking and poll intervals of the AWS resources.
    pub aws: AwsConfig,
    /// The only namespaces where halo may manage connection Secrets; empty: all.
    pub secret_namespaces: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resync: Duration::from_secs(300),
            concurrency: 16,
            aws: AwsConfig::default(),
            secret_namespaces: Vec::new(),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub caches: Caches,
    pub config: Config,
    /// Carries out the AWS plans. The SDK backend builds its clients on first use: apps
    /// without AWS sections need no credentials.
    pub backend: Arc<dyn Backend>,
    /// Consecutive failures per app, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// [`Caches::wait_synced`], polled once and shared by every waiter.
    synced: Shared<BoxFuture<'static, bool>>,
}

impl Context {
    pub fn new(client: Client, caches: Caches, config: Config) -> Self {
        let aws = Arc::new(Aws::new(config.aws.clone()));
        Self::with_backend(client, caches, config, aws)
    }

    /// With a ready-made SDK backend (tests point it at an emulator).
    pub fn with_aws(client: Client, caches: Caches, config: Config, aws: Arc<Aws>) -> Self {
        Self::with_backend(client, caches, config, aws)
    }

    /// With any AWS backend.
    pub fn with_backend(
        client: Client,
        caches: Caches,
        config: Config,
        backend: Arc<dyn Backend>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let synced = {
            let caches = caches.clone();
            async move { caches.wait_synced().await }.boxed().shared()
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            synced,
            client,
            caches,
            config,
            backend,
            failures: Mutex::default(),
        }
    }

    /// Waits until every cache has listed once. A reconcile on a cache still listing (right
    /// after a restart) would see children and pods as missing: it would GET every child and
    /// write a status (and Events) that says so, then flip it back a moment later. False
    /// when a cache can no longer list (its writer is gone, as in tests).
    pub async fn wait_synced(&self) -> bool {
        self.synced.clone().await
    }

    /// Consecutive failed reconciles of the app `key` (`namespace/name`), at least 1.
    fn failures_of(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .map(|f| f.get(key).copied().unwrap_or(1))
            .unwrap_or(1)
    }
}

/// One reconcile of one app.
pub async fn reconcile(app: Arc<HighlyAvailableApp>, ctx: Arc<Context>) -> Result<Action> {
    ctx.wait_synced().await;
    let deleting = app.metadata.deletion_timestamp.is_some();
    if deleting && !finalizer::has_finalizer(&app) {
        // Children carry owner references; the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
    let started = std::time::Instant::now();
    let outcome = if deleting {
        finalize(&app, &ctx).await
    } else {
        reconcile_app(&app, &ctx).await.map(Action::requeue)
    };
    crate::metrics::global().reconciled(
        outcome.as_ref().err().map(Error::metric_label),
        started.elapsed().as_secs_f64(),
    );
    let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(action) => {
            failures.remove(&key);
            Ok(action)
        }
        Err(e) => {
            *failures.entry(key).or_default() += 1;
            Err(e)
        }
    }
}

/// Reconciles one app, stage by stage; returns when to look at it again.
async fn reconcile_app(app: &HighlyAvailableApp, ctx: &Context) -> Result<Duration> {
    let owner = owner_of(app, "default", None)?;
    let validated = match validate::validate(ctx, app, owner).await {
        Ok(v) => v,
        // Only halo can judge this part of the spec: say so on Ready, keep the rest.
        Err(e) => return Err(status::refuse(ctx, app, e).await),
    };
    let (ns, name) = (&validated.owner.namespace, &validated.owner.name);
    let ingress = observe::ingress(&ctx.caches, ns, name);
    let load_balancer = alb_hostname(ingress.as_deref());

    let aws = aws::ensure(ctx, app, &validated, load_balancer.as_deref()).await;
    let (step, applied) = match aws {
        Ok(step) => {
            let aws_used = step.is_some();
            let step = step.unwrap_or_default();
            let connection = aws::connection(&step.observed, app.status.as_ref());
            let children = render_observed(&validated, &connection, load_balancer.as_deref());
            let applied = apply::apply(ctx, app, &validated, &children).await;
            ((step, aws_used), applied)
        }
        Err(e) => ((Default::default(), true), Err(e)),
    };
    let (step, aws_used) = step;

    let snapshot = observe::snapshot(&ctx.caches, ns, name);
    let error = applied
        .as_ref()
        .err()
        .map(|e| (e.metric_label(), e.to_string()));
    let new = status::compute(&validated, app, &snapshot.observed(error), &step.observed);
    events::aws(ctx, app, &step).await;
    status::write(ctx, app, app.status.as_ref(), &new).await?;

    let zone_recheck = applied.is_ok() && !status::condition_true(&new, ZONE_RESILIENT);
    let next = requeue::next(
        ctx.config.resync,
        requeue::Due {
            aws_poll: aws_used.then(|| aws::poll_interval(&step.observed, &ctx.config.aws)),
            dns_health: validated.dns.is_some() && load_balancer.is_some(),
            zone_recheck,
        },
    );
    if zone_recheck && validated.zones.rebalance && status::condition_true(&new, COMPUTE_READY) {
        rebalance::rebalance(ctx, app, &validated).await?;
    }
    match applied {
        // An AWS failure backs off like any other (throttling included); its condition and
        // Event are already out.
        Ok(()) => match step.error() {
            Some(e) => Err(e),
            None => Ok(next),
        },
        Err(e) => {
            events::failure(ctx, app, &e).await;
            Err(e)
        }
    }
}

/// Deletion of an app with the finalizer: carry out the AWS deletion policies, report their
/// progress in the status, and let the app go once AWS confirmed every one.
async fn finalize(app: &HighlyAvailableApp, ctx: &Context) -> Result<Action> {
    let owner = owner_of(app, "default", None)?;
    let validated = match validate::validate_for_cleanup(ctx, app, owner).await {
        Ok(v) => v,
        Err(e) => {
            events::failure(ctx, app, &e).await;
            return Err(e);
        }
    };
    let step = aws::cleanup(ctx, &validated, app.status.as_ref()).await;
    events::aws(ctx, app, &step).await;
    if step.done {
        finalizer::remove(&ctx.client, app).await?;
        info!(app = %validated.owner.name, namespace = %validated.owner.namespace, "cleanup confirmed, finalizer removed");
        return Ok(Action::await_change());
    }
    let snapshot = observe::snapshot(
        &ctx.caches,
        &validated.owner.namespace,
        &validated.owner.name,
    );
    let new = status::compute(&validated, app, &snapshot.observed(None), &step.observed);
    status::write(ctx, app, app.status.as_ref(), &new).await?;
    match step.error() {
        Some(e) => Err(e),
        None => Ok(Action::requeue(ctx.config.aws.poll_busy)),
    }
}

#[cfg(test)]
mod tests;
