//! The HorizontalPodAutoscaler (autoscaling/v2), only when `spec.autoscaling` is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use crate::validate::{Replicas, ValidatedApp};

pub fn hpa(app: &ValidatedApp) -> Option<HorizontalPodAutoscaler> {
    let Replicas::Autoscaled {
        min,
        max,
        target_cpu_utilization_percentage,
    } = app.replicas
    else {
        return None;
    };
    Some(HorizontalPodAutoscaler {
        metadata: app.owner.child_meta(),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: app.owner.name.clone(),
            },
            min_replicas: Some(min),
            max_replicas: max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, SMALL, validated};

    /// The autoscaler scales the app's own Deployment within the declared bounds on CPU.
    #[test]
    fn autoscaler_targets_the_deployment_on_cpu() {
        let spec = hpa(&validated(FULL)).expect("hpa").spec.expect("spec");
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "shop");
        assert_eq!(spec.min_replicas, Some(3));
        assert_eq!(spec.max_replicas, 30);
        let metrics = spec.metrics.expect("metrics");
        let cpu = metrics[0].resource.as_ref().expect("resource metric");
        assert_eq!(cpu.name, "cpu");
        assert_eq!(cpu.target.type_, "Utilization");
        assert_eq!(cpu.target.average_utilization, Some(70));
    }

    /// Without autoscaling there must be no HPA (apply prunes an existing one).
    #[test]
    fn no_autoscaling_means_no_hpa() {
        assert_eq!(hpa(&validated(SMALL)), None);
    }
}
