//! Where the app's ready pods are, and whether losing any one zone still leaves enough.

use std::collections::BTreeMap;

use super::merge::Computed;
use crate::conditions::{ZONE_RESILIENT, reasons};

/// One pod of the app as status needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlacement {
    /// Zone of the pod's node; `None` while the pod is not scheduled or the node has no zone label.
    pub zone: Option<String>,
    pub ready: bool,
}

/// Ready pods per zone, for every zone in `known` (the app's zones: pinned, or every zone the
/// cluster has nodes in) and every zone that has a pod of the app.
pub fn ready_per_zone(pods: &[PodPlacement], known: &[String]) -> BTreeMap<String, i32> {
    let mut zones: BTreeMap<String, i32> = known.iter().map(|z| (z.clone(), 0)).collect();
    for pod in pods {
        if let Some(zone) = &pod.zone {
            *zones.entry(zone.clone()).or_default() += i32::from(pod.ready);
        }
    }
    zones
}

/// `ZoneResilient`: the ready pods span at least `min_zones` zones, and losing any one zone
/// leaves at least `floor` ready pods; `floor` defaults to what an even spread keeps,
/// `desired - ceil(desired / min_zones)`.
pub fn zone_resilience(
    ready: &BTreeMap<String, i32>,
    desired: i32,
    min_zones: i32,
    explicit_floor: Option<i32>,
) -> Computed {
    let min_zones = min_zones.max(1);
    let floor = explicit_floor
        .unwrap_or_else(|| desired - (desired + min_zones - 1) / min_zones)
        .max(0);
    let total: i32 = ready.values().sum();
    let spanned: Vec<&str> = ready
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(z, _)| z.as_str())
        .collect();
    if (spanned.len() as i32) < min_zones {
        let empty: Vec<&str> = ready
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(z, _)| z.as_str())
            .collect();
        let mut message = if spanned.is_empty() {
            format!("no ready pods yet, need ready pods in {min_zones} zones")
        } else {
            format!(
                "ready pods span {} zone{} ({}), need {min_zones}",
                spanned.len(),
                if spanned.len() == 1 { "" } else { "s" },
                spanned.join(", ")
            )
        };
        if !spanned.is_empty() && !empty.is_empty() {
            message.push_str(&format!("; none ready in {}", empty.join(", ")));
        }
        return Computed::new(ZONE_RESILIENT, false, reasons::INSUFFICIENT_ZONES, message);
    }
    // The zone whose loss hurts most: the one with the most ready pods (first by name on a tie).
    let (worst, worst_ready) = ready.iter().fold((String::new(), -1), |(wz, wn), (z, n)| {
        if *n > wn { (z.clone(), *n) } else { (wz, wn) }
    });
    let left = total - worst_ready;
    if left < floor {
        return Computed::new(
            ZONE_RESILIENT,
            false,
            reasons::ZONE_IMBALANCED,
            format!(
                "losing {worst} leaves {left} ready pod{}, need {floor}",
                if left == 1 { "" } else { "s" }
            ),
        );
    }
    Computed::new(
        ZONE_RESILIENT,
        true,
        reasons::ZONE_LOSS_TOLERATED,
        format!("losing any one zone leaves at least {left} ready pods (need {floor})"),
    )
}

/// `1/1/1`: ready pods per zone in zone name order.
pub fn spread_summary(ready: &BTreeMap<String, i32>) -> Option<String> {
    (!ready.is_empty()).then(|| {
        ready
            .values()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(counts: &[i32]) -> BTreeMap<String, i32> {
        ["us-east-1a", "us-east-1b", "us-east-1c"]
            .iter()
            .zip(counts)
            .map(|(z, n)| (z.to_string(), *n))
            .collect()
    }

    /// An even 1/1/1 spread of 3 survives any zone loss with 2 pods (floor 3 - 1 = 2).
    #[test]
    fn one_one_one_is_resilient() {
        let c = zone_resilience(&zones(&[1, 1, 1]), 3, 3, None);
        assert!(c.status);
        assert_eq!(c.reason, "ZoneLossTolerated");
        assert_eq!(
            c.message,
            "losing any one zone leaves at least 2 ready pods (need 2)"
        );
    }

    /// 2/1/0 spans only two zones, and the message names the empty one.
    #[test]
    fn two_one_zero_spans_too_few_zones() {
        let c = zone_resilience(&zones(&[2, 1, 0]), 3, 3, None);
        assert!(!c.status);
        assert_eq!(c.reason, "InsufficientZones");
        assert_eq!(
            c.message,
            "ready pods span 2 zones (us-east-1a, us-east-1b), need 3; none ready in us-east-1c"
        );
        // A cluster that only has two zones: nothing to name.
        let two = zone_resilience(&zones(&[2, 1]), 3, 3, None);
        assert_eq!(
            two.message,
            "ready pods span 2 zones (us-east-1a, us-east-1b), need 3"
        );
    }

    /// 3/3/3 of 9: losing a zone leaves 6, exactly the even-spread floor.
    #[test]
    fn three_three_three_is_resilient() {
        let c = zone_resilience(&zones(&[3, 3, 3]), 9, 3, None);
        assert!(c.status);
        assert_eq!(
            c.message,
            "losing any one zone leaves at least 6 ready pods (need 6)"
        );
    }

    /// 4/3/2 of 9: losing us-east-1a leaves 5 < 6.
    #[test]
    fn four_three_two_is_imbalanced() {
        let c = zone_resilience(&zones(&[4, 3, 2]), 9, 3, None);
        assert!(!c.status);
        assert_eq!(c.reason, "ZoneImbalanced");
        assert_eq!(c.message, "losing us-east-1a leaves 5 ready pods, need 6");
    }

    /// An explicit floor of 5 accepts 4/3/2.
    #[test]
    fn explicit_floor_is_honoured() {
        let c = zone_resilience(&zones(&[4, 3, 2]), 9, 3, Some(5));
        assert!(c.status);
        assert_eq!(
            c.message,
            "losing any one zone leaves at least 5 ready pods (need 5)"
        );
        let strict = zone_resilience(&zones(&[1, 1, 1]), 3, 3, Some(3));
        assert!(!strict.status);
        assert_eq!(
            strict.message,
            "losing us-east-1a leaves 2 ready pods, need 3"
        );
    }

    /// Pending and unready pods do not count: 6 desired, one pending, one unready.
    #[test]
    fn pending_pods_do_not_count() {
        let pods = vec![
            PodPlacement {
                zone: Some("us-east-1a".into()),
                ready: true,
            },
            PodPlacement {
                zone: Some("us-east-1a".into()),
                ready: true,
            },
            PodPlacement {
                zone: Some("us-east-1b".into()),
                ready: true,
            },
            PodPlacement {
                zone: Some("us-east-1b".into()),
                ready: false,
            },
            PodPlacement {
                zone: Some("us-east-1c".into()),
                ready: true,
            },
            PodPlacement {
                zone: None,
                ready: false,
            },
        ];
        let ready = ready_per_zone(&pods, &[]);
        assert_eq!(ready, zones(&[2, 1, 1]));
        let c = zone_resilience(&ready, 6, 3, None);
        assert!(!c.status);
        assert_eq!(c.message, "losing us-east-1a leaves 2 ready pods, need 4");
        assert_eq!(spread_summary(&ready).as_deref(), Some("2/1/1"));
    }

    /// A pinned zone with no pods shows as 0 and counts as not spanned.
    #[test]
    fn pinned_empty_zone_shows_zero() {
        let pods = vec![PodPlacement {
            zone: Some("us-east-1a".into()),
            ready: true,
        }];
        let ready = ready_per_zone(&pods, &["us-east-1a".into(), "us-east-1b".into()]);
        assert_eq!(spread_summary(&ready).as_deref(), Some("1/0"));
        let c = zone_resilience(&ready, 2, 2, None);
        assert_eq!(
            c.message,
            "ready pods span 1 zone (us-east-1a), need 2; none ready in us-east-1b"
        );
    }

    /// No pods at all says so.
    #[test]
    fn no_pods() {
        let c = zone_resilience(&BTreeMap::new(), 3, 3, None);
        assert!(!c.status);
        assert_eq!(c.message, "no ready pods yet, need ready pods in 3 zones");
        assert_eq!(spread_summary(&BTreeMap::new()), None);
    }
}
