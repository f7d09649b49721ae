//! Observe: what the caches say about the app right now (its Deployment, Ingress and pods, the
//! cluster's zones), as plain values for the status step.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::meta::{APP_LABEL, ZONE_LABEL};
use crate::status::Observed;
use crate::status::zones::PodPlacement;

use super::Caches;

/// The cached objects of one app, owned, so the status step can borrow them.
pub struct Snapshot {
    pub deployment: Option<Arc<Deployment>>,
    pub ingress: Option<Arc<Ingress>>,
    pub pods: Vec<PodPlacement>,
    pub cluster_zones: Vec<String>,
}

impl Snapshot {
    /// The view the status step computes from; `error` is the reconcile's failure, if any.
    pub fn observed(&self, error: Option<(&'static str, String)>) -> Observed<'_> {
        Observed {
            deployment: self.deployment.as_deref(),
            ingress: self.ingress.as_deref(),
            pods: self.pods.clone(),
            cluster_zones: self.cluster_zones.clone(),
            error,
        }
    }
}

/// What the caches hold for app `name` in `ns`.
pub fn snapshot(caches: &Caches, ns: &str, name: &str) -> Snapshot {
    Snapshot {
        deployment: caches.deployments.get(&ObjectRef::new(name).within(ns)),
        ingress: ingress(caches, ns, name),
        pods: placements(caches, ns, name),
        cluster_zones: cluster_zones(caches),
    }
}

/// The app's Ingress, from the cache.
pub fn ingress(caches: &Caches, ns: &str, name: &str) -> Option<Arc<Ingress>> {
    caches.ingresses.get(&ObjectRef::new(name).within(ns))
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

/// Every zone the cluster has a node in, from the node cache.
pub fn cluster_zones(caches: &Caches) -> Vec<String> {
    let zones: BTreeSet<String> = caches
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
