//! The controller runtime: the watches that feed the caches and trigger reconciles, the app
//! store behind the apps-by-Ready gauge, and the background tasks of one term as leader.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::HighlyAvailableApp;
use crate::conditions::READY;
use crate::meta::APP_LABEL;

use super::caches::{TenancyCache, managed_cache};
use super::requeue::error_policy;
use super::secrets::SecretCache;
use super::{Caches, Config, Context, reconcile};
use crate::tenancy::TenancyPolicy;

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

/// The streams that feed the caches; the owned kinds' and the pods' also trigger reconciles.
struct Streams {
    deployments: BoxStream<'static, Result<Deployment, watcher::Error>>,
    services: BoxStream<'static, Result<Service, watcher::Error>>,
    pdbs: BoxStream<'static, Result<PodDisruptionBudget, watcher::Error>>,
    hpas: BoxStream<'static, Result<HorizontalPodAutoscaler, watcher::Error>>,
    ingresses: BoxStream<'static, Result<Ingress, watcher::Error>>,
    secrets: BoxStream<'static, Result<Secret, watcher::Error>>,
    pods: BoxStream<'static, Result<Pod, watcher::Error>>,
    policies: BoxStream<'static, Result<TenancyPolicy, watcher::Error>>,
    namespaces: BoxStream<'static, Result<Namespace, watcher::Error>>,
    /// Nodes only feed their cache (zones and readiness); driven by a task of its own.
    nodes: futures::future::BoxFuture<'static, ()>,
}

/// The watch caches of everything a reconcile reads, and the streams that feed them.
fn watch(client: &Client, config: &Config) -> (Caches, Streams) {
    let (deployments, deploy_stream) = managed_cache::<Deployment>(client);
    let (services, svc_stream) = managed_cache::<Service>(client);
    let (pdbs, pdb_stream) = managed_cache::<PodDisruptionBudget>(client);
    let (hpas, hpa_stream) = managed_cache::<HorizontalPodAutoscaler>(client);
    let (ingresses, ing_stream) = managed_cache::<Ingress>(client);
    let (pods, pod_stream) = managed_cache::<Pod>(client);
    let (secrets, secret_stream) = SecretCache::watch(client, &config.secret_namespaces);
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
        .for_each(|_| futures::future::ready(()))
        .boxed();
    let (policies, policy_writer) = reflector::store();
    let policy_stream = watcher(
        Api::<TenancyPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(policy_writer)
    .touched_objects();
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_stream = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    // Policies select namespaces by label: the rest is dropped.
    .modify(|n: &mut Namespace| {
        n.metadata.managed_fields = None;
        n.metadata.annotations = None;
        n.spec = None;
        n.status = None;
    })
    .reflect(namespace_writer)
    .touched_objects();

    let caches = Caches {
        deployments,
        services,
        pdbs,
        hpas,
        ingresses,
        pods,
        nodes,
        secrets,
        tenancy: TenancyCache {
            policies,
            namespaces,
        },
    };
    let streams = Streams {
        deployments: deploy_stream.boxed(),
        services: svc_stream.boxed(),
        pdbs: pdb_stream.boxed(),
        hpas: hpa_stream.boxed(),
        ingresses: ing_stream.boxed(),
        secrets: secret_stream,
        pods: pod_stream.boxed(),
        policies: policy_stream.boxed(),
        namespaces: namespace_stream.boxed(),
        nodes: node_stream,
    };
    (caches, streams)
}

/// Runs the controller until SIGTERM/SIGINT; `health` turns ready once every cache has synced.
pub async fn run(
    client: Client,
    config: Config,
    health: Arc<crate::http::Health>,
) -> anyhow::Result<()> {
    let (caches, streams) = watch(&client, &config);
    let mut guard = RunGuard(vec![tokio::spawn(streams.nodes)]);
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
    // A changed policy can grant or withdraw rights of any app; a namespace's labels those of
    // its apps: look at them again.
    let every_app = {
        let store = controller.store();
        move |_: TenancyPolicy| {
            store
                .state()
                .iter()
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let apps_in = {
        let store = controller.store();
        move |ns: Namespace| {
            let name = ns.name_any();
            store
                .state()
                .iter()
                .filter(|a| a.namespace().as_deref() == Some(name.as_str()))
                .map(|a| ObjectRef::from_obj(a.as_ref()))
                .collect::<Vec<_>>()
        }
    };
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
        .owns_stream(streams.deployments)
        .owns_stream(streams.services)
        .owns_stream(streams.pdbs)
        .owns_stream(streams.hpas)
        .owns_stream(streams.ingresses)
        .owns_stream(streams.secrets)
        .watches_stream(streams.pods, pod_to_app)
        .watches_stream(streams.policies, every_app)
        .watches_stream(streams.namespaces, apps_in)
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
