//! After a zone comes back, the scheduler does not move running pods: the app stays squeezed
//! into the surviving zones. halo restores the spread by evicting one pod at a time from the
//! fullest zone (through the Eviction API, so the PodDisruptionBudget is respected); the
//! replacement lands in the emptiest zone because of the hard zone spread.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, EvictParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use tracing::info;

use crate::api::HighlyAvailableApp;
use crate::meta::{APP_LABEL, ZONE_LABEL};
use crate::validate::ValidatedApp;
use crate::{Error, Result};

use super::{Context, events};

/// Evicts one pod from the fullest zone when a schedulable zone is short of pods.
pub async fn rebalance(
    ctx: &Context,
    app: &HighlyAvailableApp,
    validated: &ValidatedApp,
) -> Result<()> {
    let ns = validated.owner.namespace.as_str();
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
    match api.evict(&victim, &EvictParams::default()).await {
        Ok(_) => {
            info!(app = %name, pod = %victim, "evicted a pod to restore the zone spread");
            events::publish(
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

/// Zones where a new pod could be scheduled: a Ready node without NoSchedule/NoExecute taints,
/// restricted to the pinned zones when there are any.
pub fn schedulable_zones<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    pinned: &[String],
) -> BTreeSet<String> {
    nodes
        .into_iter()
        .filter(|n| {
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let tainted = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                });
            let unschedulable = n
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false);
            ready && !tainted && !unschedulable
        })
        .filter_map(|n| n.labels().get(ZONE_LABEL).cloned())
        .filter(|z| pinned.is_empty() || pinned.contains(z))
        .collect()
}

/// One running pod of the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningPod {
    pub name: String,
    pub zone: String,
}

/// The pod to evict so the spread can heal, if any: only when every pod is settled, and the
/// fullest zone holds more than `max_skew` pods above a schedulable zone.
pub fn pick_eviction(
    pods: &[RunningPod],
    schedulable: &BTreeSet<String>,
    max_skew: i32,
) -> Option<String> {
    let mut per_zone: BTreeMap<&str, Vec<&RunningPod>> =
        schedulable.iter().map(|z| (z.as_str(), vec![])).collect();
    for pod in pods {
        per_zone.entry(pod.zone.as_str()).or_default().push(pod);
    }
    let emptiest = schedulable
        .iter()
        .map(|z| per_zone.get(z.as_str()).map_or(0, Vec::len))
        .min()?;
    let (_, fullest) = per_zone
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))?;
    if (fullest.len() - emptiest) as i64 <= i64::from(max_skew) {
        return None;
    }
    // The last pod by name, so the choice is stable across reconciles.
    fullest.iter().map(|p| p.name.clone()).max()
}

/// Running, ready, non-terminating pods with a zone; `None` when any pod is still settling
/// (pending, terminating, unready), since an eviction then would only add churn.
pub fn settled_pods(
    pods: &[&Pod],
    zone_of_node: impl Fn(&str) -> Option<String>,
) -> Option<Vec<RunningPod>> {
    let mut out = Vec::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(&zone_of_node);
        match (ready, zone) {
            (true, Some(zone)) => out.push(RunningPod {
                name: pod.name_any(),
                zone,
            }),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(spec: &[(&str, usize)]) -> Vec<RunningPod> {
        spec.iter()
            .flat_map(|(zone, n)| {
                (0..*n).map(move |i| RunningPod {
                    name: format!("web-{zone}-{i}"),
                    zone: zone.to_string(),
                })
            })
            .collect()
    }

    fn zones(z: &[&str]) -> BTreeSet<String> {
        z.iter().map(|s| s.to_string()).collect()
    }

    /// A recovered empty zone pulls a pod from the fullest zone.
    #[test]
    fn recovered_zone_gets_a_pod_back() {
        let all = zones(&["us-east-1a", "us-east-1b", "us-east-1c"]);
        let got = pick_eviction(&pods(&[("us-east-1b", 3), ("us-east-1c", 3)]), &all, 1);
        assert_eq!(got.as_deref(), Some("web-us-east-1b-2"));
        let got = pick_eviction(
            &pods(&[("us-east-1a", 1), ("us-east-1b", 2), ("us-east-1c", 3)]),
            &all,
            1,
        );
        assert_eq!(got.as_deref(), Some("web-us-east-1c-2"));
    }

    /// A balanced app, or a skew the user allows, is left alone.
    #[test]
    fn balanced_or_allowed_skew_is_left_alone() {
        let all = zones(&["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert_eq!(
            pick_eviction(
                &pods(&[("us-east-1a", 2), ("us-east-1b", 2), ("us-east-1c", 2)]),
                &all,
                1
            ),
            None
        );
        assert_eq!(
            pick_eviction(
                &pods(&[("us-east-1a", 1), ("us-east-1b", 2), ("us-east-1c", 2)]),
                &all,
                1
            ),
            None
        );
        assert_eq!(
            pick_eviction(&pods(&[("us-east-1b", 2), ("us-east-1c", 2)]), &all, 2),
            None
        );
    }

    /// While the zone is still down (not schedulable) nothing is evicted: the pod would come back to the same zones.
    #[test]
    fn dead_zone_is_not_a_target() {
        let alive = zones(&["us-east-1b", "us-east-1c"]);
        assert_eq!(
            pick_eviction(&pods(&[("us-east-1b", 3), ("us-east-1c", 3)]), &alive, 1),
            None
        );
    }
}
