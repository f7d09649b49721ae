//! The reconcile loop: observe (from watch caches) -> validate -> render -> apply -> status.
//!
//! Children are observed through reflector caches fed by the same watches that trigger
//! reconciles, so a reconcile of a converged app reads nothing from the API server and writes
//! nothing to it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, warn};

use crate::apply::{Outcome, apply_one, prune_one};
use crate::aws::{Aws, AwsConfig};
use crate::crd::{HighlyAvailableApp, HighlyAvailableAppStatus};
use crate::meta::{APP_LABEL, FIELD_MANAGER, Owner, ZONE_LABEL};
use crate::render::secret::connection_secret_name;
use crate::render::{Children, render_observed};
use crate::status::rebalance::{pick_eviction, schedulable_zones, settled_pods};
use crate::status::zones::PodPlacement;
use crate::status::{
    self, CACHE_READY, COMPUTE_READY, DATABASE_READY, DNS_READY, Observed, READY, ZONE_RESILIENT,
};
use crate::validate::{ValidatedApp, owner_of, validate_in};
use crate::{Error, Result};

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

/// Watch caches of everything a reconcile observes.
#[derive(Clone)]
pub struct Caches {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub hpas: Store<HorizontalPodAutoscaler>,
    pub ingresses: Store<Ingress>,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    /// Connection Secrets halo manages.
    pub secrets: SecretCache,
}

impl Caches {
    /// Waits until every cache has listed once; false when a cache's writer is gone (it never
    /// will). Await it through [`Context::wait_synced`] only: a store's readiness future wakes
    /// just the task that polled it last, so a second waiter on the same store can hang.
    async fn wait_synced(&self) -> bool {
        let all = futures::join!(
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pdbs.wait_until_ready(),
            self.hpas.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
        all.0.is_ok()
            && all.1.is_ok()
            && all.2.is_ok()
            && all.3.is_ok()
            && all.4.is_ok()
            && all.5.is_ok()
            && all.6.is_ok()
            && all.7.is_ok()
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub caches: Caches,
    pub config: Config,
    /// AWS clients, built on first use: apps without AWS sections need no credentials.
    pub aws: Arc<Aws>,
    /// Consecutive failures per app, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// [`Caches::wait_synced`], polled once and shared by every waiter.
    synced: Shared<BoxFuture<'static, bool>>,
}

impl Context {
    pub fn new(client: Client, caches: Caches, config: Config) -> Self {
        let aws = Arc::new(Aws::new(config.aws.clone()));
        Self::with_aws(client, caches, config, aws)
    }

    /// With a ready-made AWS side (tests point it at an emulator).
    pub fn with_aws(client: Client, caches: Caches, config: Config, aws: Arc<Aws>) -> Self {
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
            aws,
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
}

/// One reconcile of one app.
pub async fn reconcile(app: Arc<HighlyAvailableApp>, ctx: Arc<Context>) -> Result<Action> {
    ctx.wait_synced().await;
    let deleting = app.metadata.deletion_timestamp.is_some();
    if deleting && !aws_steps::has_finalizer(&app) {
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

/// Validates the app for this operator: the region (the default DNS set identifier) is
/// looked up only for apps with `spec.dns`.
async fn validate_app(
    ctx: &Context,
    app: &HighlyAvailableApp,
    owner: Owner,
) -> Result<ValidatedApp> {
    let region = match &app.spec.dns {
        Some(_) => ctx.aws.region().await,
        None => ctx.aws.config.region.clone(),
    };
    validate_in(app, owner, region.as_deref())
}

/// The ALB hostname the AWS Load Balancer Controller put into the Ingress status.
pub fn alb_hostname(ingress: Option<&Ingress>) -> Option<String> {
    ingress?
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.hostname.clone())
        .filter(|h| !h.is_empty())
}

/// Reconciles one app; returns when to look at it again.
async fn reconcile_app(app: &HighlyAvailableApp, ctx: &Context) -> Result<Duration> {
    let owner = owner_of(app, "default", None)?;
    let ns = owner.namespace.clone();
    let old = app.status.as_ref();
    let name = owner.name.clone();
    let ingress = ctx.caches.ingresses.get(&ObjectRef::new(&name).within(&ns));
    let load_balancer = alb_hostname(ingress.as_deref());
    let checked = validate_app(ctx, app, owner.clone()).await.and_then(|v| {
        let needs_secret = crate::render::secret::has_connection(&v);
        ctx.caches.secrets.check(v, needs_secret)
    });
    let validated = match checked {
        Ok(v) => v,
        Err(e) => {
            // Only halo can judge this part of the spec: say so on Ready, keep the rest.
            let new = status::refused(old, app.metadata.generation, &e, &Time(Timestamp::now()));
            if old != Some(&new) {
                patch_status(ctx, app, &ns, &new).await?;
            }
            publish_failure(ctx, app, &e).await;
            return Err(e);
        }
    };
    let mut aws_step = aws_steps::AwsStep::default();
    let needs_aws = aws_steps::needs_aws(&validated, old);
    // The finalizer goes on before anything exists in AWS, so nothing can be orphaned.
    let prepared = if needs_aws {
        match aws_steps::add_finalizer(&ctx.client, app).await {
            Ok(()) => {
                // Boxed: the SDK's futures are large, and the reconcile future would carry them inline.
                aws_step = Box::pin(aws_steps::ensure_all(
                    &ctx.aws,
                    &validated,
                    load_balancer.as_deref(),
                    old,
                ))
                .await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        Ok(())
    };
    let result = match prepared {
        Ok(()) => {
            let connection = aws_steps::connection(&aws_step.observed, old);
            let children = render_observed(&validated, &connection, load_balancer.as_deref());
            apply_children(ctx, &ns, &owner.uid, &children, app).await
        }
        Err(e) => Err(e),
    };

    let error = result
        .as_ref()
        .err()
        .map(|e| (e.metric_label(), e.to_string()));

    let deployment = ctx
        .caches
        .deployments
        .get(&ObjectRef::new(&name).within(&ns));
    let observed = Observed {
        deployment: deployment.as_deref(),
        ingress: ingress.as_deref(),
        pods: placements(&ctx.caches, &ns, &name),
        cluster_zones: cluster_zones(&ctx.caches),
        error,
    };
    let now = Time(Timestamp::now());
    let new = status::compute_with_aws(
        &validated,
        app.metadata.generation,
        &observed,
        &aws_step.observed,
        old,
        &now,
    );
    publish_aws(ctx, app, &aws_step).await;
    if old != Some(&new) {
        patch_status(ctx, app, &ns, &new).await?;
        publish_transitions(ctx, app, old, &new).await;
    }
    let mut next = ctx.config.resync;
    if needs_aws {
        next = next.min(aws_steps::poll_interval(
            &aws_step.observed,
            &ctx.config.aws,
        ));
    }
    if validated.dns.is_some() && load_balancer.is_some() {
        // Route 53 reports health changes to nobody: read the health check status again soon.
        next = next.min(aws_steps::DNS_HEALTH_RECHECK);
    }
    if result.is_ok() && !condition_true(&new, ZONE_RESILIENT) {
        // A recovering zone is not announced by any watched object: look again soon.
        next = next.min(ZONE_RECHECK);
        if validated.zones.rebalance && condition_true(&new, COMPUTE_READY) {
            rebalance(ctx, app, &ns, &validated).await?;
        }
    }
    match result {
        // An AWS failure backs off like any other (throttling included); its condition and
        // Event are already out.
        Ok(_) => match aws_step.error() {
            Some(e) => Err(e),
            None => Ok(next),
        },
        Err(e) => {
            publish_failure(ctx, app, &e).await;
            Err(e)
        }
    }
}

/// Deletion of an app with the finalizer: carry out the AWS deletion policies, report their
/// progress in the status, and let the app go once AWS confirmed every one.
async fn finalize(app: &HighlyAvailableApp, ctx: &Context) -> Result<Action> {
    let owner = owner_of(app, "default", None)?;
    let ns = owner.namespace.clone();
    // No Secret-namespace check here: deleting needs no Secret, and what an earlier
    // configuration created in AWS must still be cleaned up.
    let validated = match validate_app(ctx, app, owner.clone()).await {
        Ok(v) => v,
        // A DNS section that no longer resolves (the region is gone) must not block the
        // deletion: what halo wrote is in status.dns, and that is cleaned up.
        Err(e) if app.spec.dns.is_some() => {
            let mut without_dns = app.clone();
            without_dns.spec.dns = None;
            match validate_in(&without_dns, owner, ctx.aws.config.region.as_deref()) {
                Ok(v) => v,
                Err(_) => {
                    publish_failure(ctx, app, &e).await;
                    return Err(e);
                }
            }
        }
        Err(e) => {
            publish_failure(ctx, app, &e).await;
            return Err(e);
        }
    };
    let step = if aws_steps::needs_aws(&validated, app.status.as_ref()) {
        Box::pin(aws_steps::cleanup_all(
            &ctx.aws,
            &validated,
            app.status.as_ref(),
        ))
        .await
    } else {
        aws_steps::AwsStep {
            done: true,
            ..aws_steps::AwsStep::default()
        }
    };
    publish_aws(ctx, app, &step).await;
    if step.done {
        aws_steps::remove_finalizer(&ctx.client, app).await?;
        info!(app = %validated.owner.name, namespace = %ns, "cleanup confirmed, finalizer removed");
        return Ok(Action::await_change());
    }
    let name = &validated.owner.name;
    let deployment = ctx
        .caches
        .deployments
        .get(&ObjectRef::new(name).within(&ns));
    let ingress = ctx.caches.ingresses.get(&ObjectRef::new(name).within(&ns));
    let observed = Observed {
        deployment: deployment.as_deref(),
        ingress: ingress.as_deref(),
        pods: placements(&ctx.caches, &ns, name),
        cluster_zones: cluster_zones(&ctx.caches),
        error: None,
    };
    let old = app.status.as_ref();
    let new = status::compute_with_aws(
        &validated,
        app.metadata.generation,
        &observed,
        &step.observed,
        old,
        &Time(Timestamp::now()),
    );
    if old != Some(&new) {
        patch_status(ctx, app, &ns, &new).await?;
        publish_transitions(ctx, app, old, &new).await;
    }
    match step.error() {
        Some(e) => Err(e),
        None => Ok(Action::requeue(ctx.config.aws.poll_busy)),
    }
}

/// Events for what halo changed in AWS, and for AWS failures other than throttling.
async fn publish_aws(ctx: &Context, app: &HighlyAvailableApp, step: &aws_steps::AwsStep) {
    for change in &step.changes {
        info!(app = %app.name_any(), reason = change.reason, "{}", change.message);
        publish(
            ctx,
            app,
            EventType::Normal,
            change.reason,
            "AWS",
            change.message.clone(),
        )
        .await;
    }
    for e in &step.errors {
        if matches!(
            e,
            Error::Aws {
                throttled: true,
                ..
            }
        ) {
            warn!(app = %app.name_any(), error = %e, "AWS throttled a request; backing off");
            continue;
        }
        publish(
            ctx,
            app,
            EventType::Warning,
            e.metric_label(),
            "AWS",
            e.to_string(),
        )
        .await;
    }
}

async fn apply_children(
    ctx: &Context,
    ns: &str,
    uid: &str,
    children: &Children,
    app: &HighlyAvailableApp,
) -> Result<()> {
    let c = &ctx.caches;
    let client = &ctx.client;
    let name = app.name_any();
    let secret_name = connection_secret_name(&name);
    let steps = [
        (
            "Secret",
            sync(
                client,
                ns,
                uid,
                &secret_name,
                children.secret.as_ref(),
                &c.secrets,
            )
            .await?,
        ),
        (
            "Deployment",
            sync(
                client,
                ns,
                uid,
                &name,
                Some(&children.deployment),
                &c.deployments,
            )
            .await?,
        ),
        (
            "Service",
            sync(client, ns, uid, &name, Some(&children.service), &c.services).await?,
        ),
        (
            "PodDisruptionBudget",
            sync(client, ns, uid, &name, Some(&children.pdb), &c.pdbs).await?,
        ),
        (
            "HorizontalPodAutoscaler",
            sync(client, ns, uid, &name, children.hpa.as_ref(), &c.hpas).await?,
        ),
        (
            "Ingress",
            sync(
                client,
                ns,
                uid,
                &name,
                children.ingress.as_ref(),
                &c.ingresses,
            )
            .await?,
        ),
    ];
    let mut changes = Vec::new();
    for (kind, outcome) in steps {
        let name = if kind == "Secret" {
            &secret_name
        } else {
            &name
        };
        if outcome.wrote() {
            info!(app = %name, namespace = ns, kind, ?outcome, "applied child");
            changes.push((kind, name.as_str(), outcome));
        }
    }
    if let Some((reason, note)) = applied_event(&changes) {
        publish(ctx, app, EventType::Normal, reason, "Apply", note).await;
    }
    Ok(())
}

/// Longest `note` the API server accepts on an events.k8s.io Event.
const EVENT_NOTE_MAX: usize = 1024;

/// One Event for everything one reconcile's apply changed (None when it changed nothing):
/// a new app gets one "Created" Event naming its children, not one Event per child. The
/// reason is the outcome when all children share it, else "Applied".
pub fn applied_event(changes: &[(&str, &str, Outcome)]) -> Option<(&'static str, String)> {
    let reason_of = |o: Outcome| match o {
        Outcome::Created => "Created",
        Outcome::Updated => "Updated",
        Outcome::Pruned => "Pruned",
        Outcome::Unchanged | Outcome::Absent => "Applied",
    };
    let (_, _, first) = changes.first()?;
    let reason = if changes.iter().all(|(_, _, o)| o == first) {
        reason_of(*first)
    } else {
        "Applied"
    };
    let mut note = changes
        .iter()
        .map(|(kind, name, outcome)| {
            let verb = match outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Pruned => "deleted, the spec no longer asks for it",
                Outcome::Unchanged | Outcome::Absent => "unchanged",
            };
            format!("{kind} {name} {verb}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    if note.len() > EVENT_NOTE_MAX {
        let mut end = EVENT_NOTE_MAX - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    Some((reason, note))
}

/// Brings one child kind in line: apply when wanted, prune when not.
async fn sync<K>(
    client: &Client,
    ns: &str,
    uid: &str,
    name: &str,
    desired: Option<&K>,
    store: &impl Lookup<K>,
) -> Result<Outcome>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let observed = store.lookup(&ObjectRef::new(name).within(ns));
    match desired {
        Some(desired) => apply_one(&api, desired, observed.as_deref(), uid).await,
        None => prune_one(&api, observed.as_deref(), uid).await,
    }
}

/// Every zone the cluster has a node in, from the node cache.
pub fn cluster_zones(caches: &Caches) -> Vec<String> {
    let zones: std::collections::BTreeSet<String> = caches
        .nodes
        .state()
        .iter()
        .filter_map(|n| n.labels().get(ZONE_LABEL).cloned())
        .collect();
    zones.into_iter().collect()
}

/// Zone and readiness of every pod of the app, from the caches.
pub fn placements(caches: &Caches, ns: &str, app: &str) -> Vec<PodPlacement> {
    caches
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| p.labels().get(APP_LABEL).map(String::as_str) == Some(app))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let zone = node
                .and_then(|n| caches.nodes.get(&ObjectRef::new(&n)))
                .and_then(|n| n.labels().get(ZONE_LABEL).cloned());
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            PodPlacement { zone, ready }
        })
        .collect()
}

async fn patch_status(
    ctx: &Context,
    app: &HighlyAvailableApp,
    ns: &str,
    status: &HighlyAvailableAppStatus,
) -> Result<()> {
    let api: Api<HighlyAvailableApp> = Api::namespaced(ctx.client.clone(), ns);
    let body = json!({
        "apiVersion": "halo.dev/v1alpha1",
        "kind": "HighlyAvailableApp",
        "status": status,
    });
    api.patch_status(
        &app.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("patch status"))?;
    Ok(())
}

/// How soon an app that is not zone resilient is looked at again.
const ZONE_RECHECK: Duration = Duration::from_secs(30);

fn condition_true(status: &HighlyAvailableAppStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Evicts one pod from the fullest zone when a schedulable zone is short of pods.
async fn rebalance(
    ctx: &Context,
    app: &HighlyAvailableApp,
    ns: &str,
    validated: &ValidatedApp,
) -> Result<()> {
    let name = &validated.owner.name;
    let pods = ctx.caches.pods.state();
    let mine: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns) && p.labels().get(APP_LABEL) == Some(name)
        })
        .collect();
    let zone_of = |node: &str| {
        ctx.caches
            .nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
    };
    let Some(running) = settled_pods(&mine, zone_of) else {
        return Ok(());
    };
    let nodes = ctx.caches.nodes.state();
    let schedulable = schedulable_zones(nodes.iter().map(|n| n.as_ref()), &validated.zones.names);
    let Some(victim) = pick_eviction(&running, &schedulable, validated.zones.max_skew) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match api.evict(&victim, &kube::api::EvictParams::default()).await {
        Ok(_) => {
            info!(app = %name, pod = %victim, "evicted a pod to restore the zone spread");
            publish(
                ctx,
                app,
                EventType::Normal,
                "Rebalancing",
                "Evict",
                format!("evicted pod {victim} so its replacement restores the zone spread"),
            )
            .await;
            Ok(())
        }
        // 429: the PodDisruptionBudget forbids it right now; try again on the next pass.
        Err(kube::Error::Api(status)) if status.code == 429 || status.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("evict pod {victim}"))(e)),
    }
}

/// Events for condition flips a person cares about.
async fn publish_transitions(
    ctx: &Context,
    app: &HighlyAvailableApp,
    old: Option<&HighlyAvailableAppStatus>,
    new: &HighlyAvailableAppStatus,
) {
    for type_ in [
        READY,
        ZONE_RESILIENT,
        DATABASE_READY,
        CACHE_READY,
        DNS_READY,
        status::storage::DYNAMODB_READY,
        status::storage::STATIC_ASSETS_READY,
        status::storage::ALARMS_OK,
    ] {
        let find = |s: Option<&HighlyAvailableAppStatus>| {
            s.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        };
        let (before, after) = (find(old), find(Some(new)));
        let Some((status, reason, message)) = after else {
            continue;
        };
        if before.as_ref().map(|b| (&b.0, &b.1)) == Some((&status, &reason)) {
            continue;
        }
        let type_ev = if status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(
            ctx,
            app,
            type_ev,
            &reason,
            type_,
            format!("{type_}={status}: {message}"),
        )
        .await;
    }
}

async fn publish_failure(ctx: &Context, app: &HighlyAvailableApp, e: &Error) {
    publish(
        ctx,
        app,
        EventType::Warning,
        e.metric_label(),
        "Reconcile",
        e.to_string(),
    )
    .await;
}

async fn publish(
    ctx: &Context,
    app: &HighlyAvailableApp,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        warn!(error = %e, "failed to publish event");
    }
}

/// Backoff on failure: 5 s doubling up to 5 min, with jitter so many failing apps spread out.
pub fn error_policy(app: Arc<HighlyAvailableApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
    let attempts = ctx
        .failures
        .lock()
        .map(|f| f.get(&key).copied().unwrap_or(1))
        .unwrap_or(1);
    let delay = backoff(attempts, jitter_seed(&key));
    warn!(app = %key, reason = error.metric_label(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// `5 s * 2^(attempts-1)`, capped at 300 s, plus up to 10% jitter.
pub fn backoff(attempts: u32, seed: u64) -> Duration {
    let base = 5u64
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(6))
        .min(300);
    let jitter_ms = seed % (base * 100 + 1);
    Duration::from_millis(base * 1000 + jitter_ms)
}

fn jitter_seed(key: &str) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    key.bytes()
        .fold(nanos, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// A reflector cache of `K` objects that halo manages, and the stream that feeds it.
fn managed_cache<K>(
    client: &Client,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    secrets::managed_cache_of(Api::all(client.clone()))
}

/// The controller's cache of apps, for the apps-by-Ready gauge at scrape time. Set while this
/// replica leads; a follower has none (it reports no apps rather than a stale count).
pub static APP_STORE: std::sync::RwLock<Option<Store<HighlyAvailableApp>>> =
    std::sync::RwLock::new(None);

/// Background work of one [`run`]: aborted, and the app store unpublished, when `run` ends or
/// is dropped (a lost lease), so a replica that leads again starts from nothing.
struct RunGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
        if let Ok(mut store) = APP_STORE.write() {
            *store = None;
        }
    }
}

/// Counts apps by their Ready condition for `/metrics`.
pub fn count_apps_by_ready() -> Vec<(&'static str, i64)> {
    let mut counts = [("True", 0), ("False", 0), ("Unknown", 0)];
    let apps = APP_STORE
        .read()
        .ok()
        .and_then(|store| store.as_ref().map(Store::state))
        .unwrap_or_default();
    for app in apps {
        let ready = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        let slot = match ready.map(|c| c.status.as_str()) {
            Some("True") => 0,
            Some("False") => 1,
            _ => 2,
        };
        counts[slot].1 += 1;
    }
    counts.to_vec()
}

/// Runs the controller until SIGTERM/SIGINT; `health` turns ready once every cache has synced.
pub async fn run(
    client: Client,
    config: Config,
    health: Arc<crate::http::Health>,
) -> anyhow::Result<()> {
    let (deployments, deploy_stream) = managed_cache::<Deployment>(&client);
    let (services, svc_stream) = managed_cache::<Service>(&client);
    let (pdbs, pdb_stream) = managed_cache::<PodDisruptionBudget>(&client);
    let (hpas, hpa_stream) = managed_cache::<HorizontalPodAutoscaler>(&client);
    let (ingresses, ing_stream) = managed_cache::<Ingress>(&client);
    let (pods, pod_stream) = managed_cache::<Pod>(&client);
    let (secrets, secret_stream) = SecretCache::watch(&client, &config.secret_namespaces);
    let (nodes, node_writer) = reflector::store();
    let node_stream = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        // Zone label, readiness and taints are all halo reads; images and the rest are dropped.
        .modify(|n: &mut Node| {
            n.metadata.managed_fields = None;
            n.metadata.annotations = None;
            if let Some(status) = n.status.as_mut() {
                *status = k8s_openapi::api::core::v1::NodeStatus {
                    conditions: status.conditions.take(),
                    ..Default::default()
                };
            }
        })
        .reflect(node_writer)
        .touched_objects()
        .for_each(|_| futures::future::ready(()));
    let mut guard = RunGuard(vec![tokio::spawn(node_stream)]);

    let caches = Caches {
        deployments,
        services,
        pdbs,
        hpas,
        ingresses,
        pods,
        nodes,
        secrets,
    };
    let ctx = Arc::new(Context::new(client.clone(), caches.clone(), config.clone()));
    let apps: Api<HighlyAvailableApp> = Api::all(client.clone());
    let controller_config =
        kube::runtime::controller::Config::default().concurrency(config.concurrency);
    let pod_to_app = |pod: Pod| {
        let ns = pod.namespace();
        pod.labels()
            .get(APP_LABEL)
            .cloned()
            .zip(ns)
            .map(|(app, ns)| ObjectRef::new(&app).within(&ns))
    };
    info!("starting halo controller");
    let controller = Controller::new(apps, watcher::Config::default().any_semantic());
    if let Ok(mut store) = APP_STORE.write() {
        *store = Some(controller.store());
    }
    let synced = ctx.clone();
    guard.0.push(tokio::spawn(async move {
        // Not the app store's wait_until_ready(): kube-runtime's runner already waits on it
        // before the first reconcile, and that future wakes only the task that polled it last.
        if synced.wait_synced().await {
            info!("caches synced");
            health
                .ready
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }));
    controller
        .with_config(controller_config)
        .owns_stream(deploy_stream)
        .owns_stream(svc_stream)
        .owns_stream(pdb_stream)
        .owns_stream(hpa_stream)
        .owns_stream(ing_stream)
        .owns_stream(secret_stream)
        .watches_stream(pod_stream, pod_to_app)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller event");
            }
        })
        .await;
    drop(guard);
    info!("halo controller stopped");
    Ok(())
}

#[path = "controller_aws.rs"]
pub mod aws_steps;

#[path = "controller_secrets.rs"]
pub mod secrets;
pub use secrets::{Lookup, SecretCache};

#[path = "controller_storage.rs"]
pub mod storage_steps;

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
