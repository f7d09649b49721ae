//! The Deployment: pods spread across zones (and hosts), probes from the health check,
//! fast eviction from dead nodes, restricted security context, surge-only rollouts.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvFromSource, HTTPGetAction, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretEnvSource, SecurityContext, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use std::collections::BTreeMap;

use super::{CONTAINER_NAME, PORT_NAME};
use crate::meta::{
    CONNECTION_CHECKSUM_ANNOTATION, HOSTNAME_LABEL, ZONE_LABEL, common_labels, selector_labels,
};
use crate::validate::{Replicas, ValidatedApp};

/// Taints the node lifecycle controller puts on a node that stopped reporting.
pub const NODE_FAILURE_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// Period of the startup probe; its failure threshold stretches it to `startupSeconds`.
const STARTUP_PERIOD_SECONDS: i32 = 5;

pub fn deployment(app: &ValidatedApp) -> Deployment {
    with_connection(app, None)
}

/// The Deployment; with the connection Secret's checksum when the app has one, so that a change
/// of endpoints rolls the pods (environment variables are read only at container start).
pub fn with_connection(app: &ValidatedApp, connection_checksum: Option<&str>) -> Deployment {
    let name = &app.owner.name;
    let replicas = match app.replicas {
        Replicas::Fixed(n) => Some(n),
        // The HPA owns the count; leaving it out of the applied object keeps the two from fighting.
        Replicas::Autoscaled { .. } => None,
    };
    Deployment {
        metadata: app.owner.child_meta(),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector_labels(name)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    // Never below the desired count during a rollout.
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".into())),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(common_labels(name)),
                    annotations: connection_checksum.map(|sum| {
                        BTreeMap::from([(
                            CONNECTION_CHECKSUM_ANNOTATION.to_string(),
                            sum.to_string(),
                        )])
                    }),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(app)),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn pod_spec(app: &ValidatedApp) -> PodSpec {
    PodSpec {
        containers: vec![container(app)],
        topology_spread_constraints: Some(spread(app)),
        affinity: zone_affinity(app),
        tolerations: Some(
            NODE_FAILURE_TAINTS
                .iter()
                .map(|key| Toleration {
                    key: Some((*key).into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(app.toleration_seconds),
                    ..Toleration::default()
                })
                .collect(),
        ),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}

fn container(app: &ValidatedApp) -> Container {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(app.image.clone()),
        command: non_empty(&app.command),
        args: non_empty(&app.args),
        env: (!app.env.is_empty()).then(|| app.env.clone()),
        env_from: env_from(app),
        resources: app.resources.clone(),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: app.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            failure_threshold: Some(app.health.unhealthy_threshold),
            success_threshold: Some(1),
            ..probe(app, app.health.period_seconds)
        }),
        liveness_probe: Some(Probe {
            // Restarting is a bigger hammer than taking a pod out of traffic: wait twice as long.
            failure_threshold: Some(app.health.unhealthy_threshold * 2),
            ..probe(app, app.health.period_seconds)
        }),
        startup_probe: Some(Probe {
            failure_threshold: Some(div_ceil(app.health.startup_seconds, STARTUP_PERIOD_SECONDS)),
            ..probe(app, STARTUP_PERIOD_SECONDS)
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The connection Secret first, so the user's own `envFrom` and `env` can override its keys.
fn env_from(app: &ValidatedApp) -> Option<Vec<EnvFromSource>> {
    let mut sources = Vec::new();
    if let Some(secret) = &app.names.connection_secret {
        sources.push(EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        });
    }
    sources.extend(app.env_from.iter().cloned());
    (!sources.is_empty()).then_some(sources)
}

fn probe(app: &ValidatedApp, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(app.health.path.clone()),
            port: IntOrString::String(PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(app.health.timeout_seconds.min(period_seconds)),
        ..Probe::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// Zone spread (hard) plus host spread (soft). `nodeTaintsPolicy: Honor` makes the tainted
/// nodes of a dead zone stop counting as a domain, so replacements land in surviving zones.
fn spread(app: &ValidatedApp) -> Vec<TopologySpreadConstraint> {
    let selector = LabelSelector {
        match_labels: Some(selector_labels(&app.owner.name)),
        ..LabelSelector::default()
    };
    let constraint =
        |key: &str, max_skew: i32, when: &str, min_domains: Option<i32>| TopologySpreadConstraint {
            topology_key: key.into(),
            max_skew,
            when_unsatisfiable: when.into(),
            label_selector: Some(selector.clone()),
            // Spread each ReplicaSet on its own, so a rollout does not count the old pods.
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            node_taints_policy: Some("Honor".into()),
            node_affinity_policy: Some("Honor".into()),
            min_domains,
        };
    vec![
        constraint(
            ZONE_LABEL,
            app.zones.max_skew,
            "DoNotSchedule",
            app.zones.min_domains,
        ),
        constraint(HOSTNAME_LABEL, 1, "ScheduleAnyway", None),
    ]
}

fn zone_affinity(app: &ValidatedApp) -> Option<Affinity> {
    if app.zones.names.is_empty() {
        return None;
    }
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: ZONE_LABEL.into(),
                        operator: "In".into(),
                        values: Some(app.zones.names.clone()),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    })
}

fn div_ceil(a: i32, b: i32) -> i32 {
    (a + b - 1) / b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, SMALL, validated};

    fn pod(d: &Deployment) -> PodSpec {
        d.spec
            .clone()
            .expect("spec")
            .template
            .spec
            .expect("pod spec")
    }

    /// The zone spread is hard, honours taints (so a dead zone stops counting) and has no minDomains by default.
    #[test]
    fn zone_spread_is_hard_and_survives_a_zone_outage() {
        let d = deployment(&validated(SMALL));
        let spread = pod(&d).topology_spread_constraints.expect("spread");
        assert_eq!(spread.len(), 2);
        let zone = &spread[0];
        assert_eq!(zone.topology_key, "topology.kubernetes.io/zone");
        assert_eq!(zone.max_skew, 1);
        assert_eq!(zone.when_unsatisfiable, "DoNotSchedule");
        assert_eq!(zone.node_taints_policy.as_deref(), Some("Honor"));
        assert_eq!(zone.min_domains, None);
        assert_eq!(
            zone.match_label_keys,
            Some(vec!["pod-template-hash".to_string()])
        );
        assert_eq!(
            zone.label_selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            Some(selector_labels("web"))
        );
        let host = &spread[1];
        assert_eq!(host.topology_key, "kubernetes.io/hostname");
        assert_eq!(host.when_unsatisfiable, "ScheduleAnyway");
        assert_eq!(host.max_skew, 1);
    }

    /// minDomains is only set when asked for, and pinned zones become a required node affinity.
    #[test]
    fn pinned_zones_and_min_domains_when_asked() {
        let mut app = validated(FULL);
        app.zones.min_domains = Some(3);
        let d = deployment(&app);
        let pod = pod(&d);
        let spread = pod.topology_spread_constraints.expect("spread");
        assert_eq!(spread[0].max_skew, 1);
        assert_eq!(spread[0].min_domains, Some(3));
        let terms = pod
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .expect("required node affinity")
            .node_selector_terms;
        let expr = &terms[0].match_expressions.as_ref().expect("expressions")[0];
        assert_eq!(expr.key, "topology.kubernetes.io/zone");
        assert_eq!(expr.operator, "In");
        assert_eq!(
            expr.values,
            Some(vec![
                "us-east-1a".to_string(),
                "us-east-1b".to_string(),
                "us-east-1c".to_string()
            ])
        );
        assert_eq!(
            deployment(&validated(SMALL))
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|p| p.affinity),
            None
        );
    }

    /// Probes hit the health path on the named port with the configured timing.
    #[test]
    fn probes_follow_the_health_check() {
        let c = pod(&deployment(&validated(FULL))).containers.remove(0);
        let readiness = c.readiness_probe.expect("readiness");
        let get = readiness.http_get.as_ref().expect("httpGet");
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("http".into()));
        assert_eq!(readiness.period_seconds, Some(10));
        assert_eq!(readiness.timeout_seconds, Some(5));
        assert_eq!(readiness.failure_threshold, Some(3));
        assert_eq!(readiness.success_threshold, Some(1));
        let liveness = c.liveness_probe.expect("liveness");
        assert_eq!(
            liveness.http_get.and_then(|g| g.path).as_deref(),
            Some("/healthz")
        );
        assert_eq!(liveness.failure_threshold, Some(6));
        let startup = c.startup_probe.expect("startup");
        assert_eq!(startup.period_seconds, Some(5));
        assert_eq!(startup.failure_threshold, Some(24)); // 120 s / 5 s
    }

    /// Pods leave a dead node after tolerationSeconds (30 by default), not Kubernetes' 300.
    #[test]
    fn tolerations_shorten_eviction_from_failed_nodes() {
        for (fixture, seconds) in [(SMALL, 30), (FULL, 20)] {
            let tolerations = pod(&deployment(&validated(fixture)))
                .tolerations
                .expect("tolerations");
            let keys: Vec<_> = tolerations.iter().filter_map(|t| t.key.clone()).collect();
            assert_eq!(
                keys,
                vec![
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable"
                ]
            );
            for t in &tolerations {
                assert_eq!(t.operator.as_deref(), Some("Exists"));
                assert_eq!(t.effect.as_deref(), Some("NoExecute"));
                assert_eq!(t.toleration_seconds, Some(seconds));
            }
        }
    }

    /// The restricted Pod Security profile is met without the user asking.
    #[test]
    fn security_context_meets_the_restricted_profile() {
        let pod = pod(&deployment(&validated(SMALL)));
        let psc = pod.security_context.expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let sc = pod.containers[0]
            .security_context
            .clone()
            .expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            sc.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
    }

    /// Rollouts only surge, so the app never has fewer pods than asked for.
    #[test]
    fn rollout_never_goes_below_desired() {
        let strategy = deployment(&validated(SMALL))
            .spec
            .and_then(|s| s.strategy)
            .expect("strategy");
        let rolling = strategy.rolling_update.expect("rolling update");
        assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
        assert_eq!(rolling.max_surge, Some(IntOrString::String("25%".into())));
    }

    /// With autoscaling the HPA owns replicas, so halo's Deployment leaves the field out.
    #[test]
    fn replicas_left_to_the_hpa_when_autoscaling() {
        assert_eq!(
            deployment(&validated(SMALL)).spec.and_then(|s| s.replicas),
            Some(3)
        );
        assert_eq!(
            deployment(&validated(FULL)).spec.and_then(|s| s.replicas),
            None
        );
    }

    /// The container carries the user's image, port, env, resources, command and args.
    #[test]
    fn container_passes_the_user_settings_through() {
        let c = pod(&deployment(&validated(FULL))).containers.remove(0);
        assert_eq!(c.name, "app");
        assert_eq!(c.image.as_deref(), Some("registry.example.com/shop:1.4.2"));
        let port = &c.ports.expect("ports")[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 8080)
        );
        let env = c.env.expect("env");
        assert_eq!(env[0].name, "LOG_LEVEL");
        assert_eq!(env[0].value.as_deref(), Some("info"));
        assert_eq!(
            c.env_from.expect("envFrom")[0]
                .config_map_ref
                .as_ref()
                .map(|r| r.name.as_str()),
            Some("shop-config")
        );
        let requests = c.resources.and_then(|r| r.requests).expect("requests");
        assert_eq!(requests.get("cpu").map(|q| q.0.as_str()), Some("250m"));
        assert_eq!(c.command, Some(vec!["/app/shop".to_string()]));
        assert_eq!(c.args, Some(vec!["--listen=:8080".to_string()]));
    }
}
