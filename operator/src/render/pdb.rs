//! The PodDisruptionBudget: no voluntary eviction takes more than `maxUnavailable` pods at once.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::meta::selector_labels;
use crate::validate::ValidatedApp;

pub fn pdb(app: &ValidatedApp) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: app.owner.child_meta(),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(app.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&app.owner.name)),
                ..LabelSelector::default()
            }),
            // A crash-looping pod must not block a node drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, SMALL, validated};

    /// A drain may take at most the configured number of pods, and only this app's pods count.
    #[test]
    fn budget_follows_spec_and_defaults_to_one() {
        let full = pdb(&validated(FULL)).spec.expect("spec");
        assert_eq!(full.max_unavailable, Some(IntOrString::Int(2)));
        assert_eq!(full.min_available, None);
        assert_eq!(
            full.selector.and_then(|s| s.match_labels),
            Some(selector_labels("shop"))
        );
        assert_eq!(
            full.unhealthy_pod_eviction_policy.as_deref(),
            Some("AlwaysAllow")
        );

        let small = pdb(&validated(SMALL)).spec.expect("spec");
        assert_eq!(small.max_unavailable, Some(IntOrString::Int(1)));
    }
}
