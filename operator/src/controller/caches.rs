//! The watch caches a reconcile reads instead of the API server, fed by the same watches that
//! trigger reconciles: a reconcile of a converged app reads nothing from the API server.

use std::fmt::Debug;

use futures::Stream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::secrets::{self, SecretCache};
use crate::tenancy::TenancyPolicy;

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
    /// What each namespace may touch outside itself.
    pub tenancy: TenancyCache,
}

/// The TenancyPolicies and the namespaces' labels (what the policies select namespaces by).
#[derive(Clone)]
pub struct TenancyCache {
    pub policies: Store<TenancyPolicy>,
    /// Namespaces with their labels only.
    pub namespaces: Store<Namespace>,
}

impl TenancyCache {
    /// A fixed set of policies and no namespace labels (tests, `halo render`).
    pub fn of(policies: Vec<TenancyPolicy>) -> Self {
        let (store, mut writer) = kube::runtime::reflector::store();
        for p in policies {
            writer.apply_watcher_event(&watcher::Event::Apply(p));
        }
        let (namespaces, _) = kube::runtime::reflector::store();
        TenancyCache {
            policies: store,
            namespaces,
        }
    }
}

impl Caches {
    /// Waits until every cache has listed once; false when a cache's writer is gone (it never
    /// will). Await it through [`super::Context::wait_synced`] only: a store's readiness future
    /// wakes just the task that polled it last, so a second waiter on the same store can hang.
    pub(super) async fn wait_synced(&self) -> bool {
        let all = futures::join!(
            self.deployments.wait_until_ready(),
            self.services.wait_until_ready(),
            self.pdbs.wait_until_ready(),
            self.hpas.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.tenancy.policies.wait_until_ready(),
            self.tenancy.namespaces.wait_until_ready(),
        );
        all.0.is_ok()
            && all.1.is_ok()
            && all.2.is_ok()
            && all.3.is_ok()
            && all.4.is_ok()
            && all.5.is_ok()
            && all.6.is_ok()
            && all.7.is_ok()
            && all.8.is_ok()
            && all.9.is_ok()
    }
}

/// A reflector cache of `K` objects that halo manages, and the stream that feeds it.
pub fn managed_cache<K>(
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
