//! `status`: observations -> the app's status, pure. One status patch per reconcile, and
//! none at all when the result equals what is already stored.

pub mod aws;
pub mod merge;
pub mod storage;
pub mod zones;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Endpoints, HighlyAvailableAppStatus, ZoneStatus};
pub use crate::conditions::{
    ALARMS_OK, CACHE_READY, COMPUTE_READY, DATABASE_READY, DNS_READY, DYNAMODB_READY,
    INGRESS_READY, READY, STATIC_ASSETS_READY, ZONE_RESILIENT, reasons,
};
use crate::meta::selector_string;
use crate::observed::{AwsObserved, DnsRecord};
use crate::validate::ValidatedApp;
use merge::{Computed, merge};
use zones::{PodPlacement, ready_per_zone, spread_summary, zone_resilience};

/// What observe found, as plain values.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    pub deployment: Option<&'a Deployment>,
    pub ingress: Option<&'a Ingress>,
    pub pods: Vec<PodPlacement>,
    /// Zones the cluster has nodes in; with pinned zones, those count instead.
    pub cluster_zones: Vec<String>,
    /// The reconcile failed; its reason (metric label) and message go on `Ready`.
    pub error: Option<(&'static str, String)>,
}

pub fn compute(
    app: &ValidatedApp,
    generation: Option<i64>,
    observed: &Observed<'_>,
    old: Option<&HighlyAvailableAppStatus>,
    now: &Time,
) -> HighlyAvailableAppStatus {
    compute_with_aws(app, generation, observed, &AwsObserved::default(), old, now)
}

/// [`compute`] with what this reconcile learned from AWS.
pub fn compute_with_aws(
    app: &ValidatedApp,
    generation: Option<i64>,
    observed: &Observed<'_>,
    aws_observed: &AwsObserved,
    old: Option<&HighlyAvailableAppStatus>,
    now: &Time,
) -> HighlyAvailableAppStatus {
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let old_endpoints = old.and_then(|s| s.endpoints.as_ref());
    let deploy_status = observed.deployment.and_then(|d| d.status.as_ref());
    let desired = observed
        .deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or_else(|| app.replicas.baseline());

    let mut computed = vec![compute_ready(observed.deployment, desired)];
    let load_balancer = observed
        .ingress
        .and_then(|i| i.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|list| {
            list.iter()
                .find_map(|i| i.hostname.clone().or_else(|| i.ip.clone()))
        });
    if app.ingress.is_some() {
        computed.push(match &load_balancer {
            Some(host) => Computed::new(
                INGRESS_READY,
                true,
                reasons::LOAD_BALANCER_PROVISIONED,
                format!("ALB {host}"),
            ),
            None => Computed::new(
                INGRESS_READY,
                false,
                reasons::LOAD_BALANCER_PENDING,
                "waiting for the AWS Load Balancer Controller to provision the ALB",
            ),
        });
    }
    if app.dns.is_some() {
        computed.push(aws::dns_condition(
            aws_observed.dns.as_ref(),
            old_conditions,
        ));
    }
    let dns_status = match &aws_observed.dns_record {
        DnsRecord::Unchanged => old.and_then(|s| s.dns.clone()),
        DnsRecord::Set(record) => record.clone(),
    };
    let known = if app.zones.names.is_empty() {
        &observed.cluster_zones
    } else {
        &app.zones.names
    };
    let ready = ready_per_zone(&observed.pods, known);
    computed.push(zone_resilience(
        &ready,
        desired,
        app.zones.min_zones,
        app.zones.min_ready_after_zone_loss,
    ));
    if app.database.is_some() {
        computed.push(aws::condition(
            DATABASE_READY,
            aws_observed.database.as_ref(),
            old_conditions,
        ));
    }
    if app.cache.is_some() {
        computed.push(aws::condition(
            CACHE_READY,
            aws_observed.cache.as_ref(),
            old_conditions,
        ));
    }
    computed.extend(storage::conditions(app, aws_observed, old_conditions));
    computed.insert(0, overall(&computed, observed.error.as_ref()));
    computed.extend(storage::alarms_condition(app, aws_observed, old_conditions));

    let endpoints = Endpoints {
        url: match (&app.dns, &dns_status) {
            (Some(_), Some(_)) => app.names.dns_url.clone(),
            _ => app.names.url.clone(),
        },
        load_balancer,
        database: app.database.as_ref().and_then(|_| {
            aws::endpoints(
                aws_observed.database.as_ref(),
                old_endpoints.and_then(|e| e.database.as_ref()),
            )
        }),
        cache: app.cache.as_ref().and_then(|_| {
            aws::endpoints(
                aws_observed.cache.as_ref(),
                old_endpoints.and_then(|e| e.cache.as_ref()),
            )
        }),
    };
    HighlyAvailableAppStatus {
        observed_generation: generation,
        conditions: merge(old_conditions, computed, generation, now),
        replicas: deploy_status.and_then(|s| s.replicas).or(Some(0)),
        ready_replicas: deploy_status.and_then(|s| s.ready_replicas).or(Some(0)),
        selector: Some(selector_string(&app.owner.name)),
        zones: ready
            .iter()
            .map(|(name, ready)| ZoneStatus {
                name: name.clone(),
                ready: *ready,
            })
            .collect(),
        zone_spread: spread_summary(&ready),
        endpoints: (endpoints != Endpoints::default()).then_some(endpoints),
        connection_secret: app.names.connection_secret.clone(),
        dns: dns_status,
        dynamodb_tables: storage::tables(aws_observed, old),
        static_assets: storage::static_assets(app, aws_observed, old),
        alarms: storage::alarms(aws_observed, old),
    }
}

/// The status of an app whose spec halo refused (what only halo can judge, e.g. a DNS set
/// identifier without a known region): `Ready=False` with the error, everything else as it
/// was. Pure.
pub fn refused(
    old: Option<&HighlyAvailableAppStatus>,
    generation: Option<i64>,
    error: &crate::Error,
    now: &Time,
) -> HighlyAvailableAppStatus {
    let mut status = old.cloned().unwrap_or_default();
    let ready = Computed::new(READY, false, error.metric_label(), error.to_string());
    let merged = merge(&status.conditions, vec![ready], generation, now);
    status.conditions.retain(|c| c.type_ != READY);
    status.conditions.splice(0..0, merged);
    status.observed_generation = generation;
    status
}

fn compute_ready(deployment: Option<&Deployment>, desired: i32) -> Computed {
    let Some(d) = deployment else {
        return Computed::new(
            COMPUTE_READY,
            false,
            reasons::DEPLOYMENT_MISSING,
            "the Deployment does not exist yet",
        );
    };
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let current =
        d.metadata.generation.is_some() && status.observed_generation >= d.metadata.generation;
    if !current || updated < desired {
        return Computed::new(
            COMPUTE_READY,
            false,
            reasons::ROLLING_OUT,
            format!("{updated}/{desired} replicas updated, {available} available"),
        );
    }
    if available < desired {
        return Computed::new(
            COMPUTE_READY,
            false,
            reasons::REPLICAS_UNAVAILABLE,
            format!("{available}/{desired} replicas available"),
        );
    }
    Computed::new(
        COMPUTE_READY,
        true,
        reasons::AVAILABLE,
        format!("{available}/{desired} replicas available"),
    )
}

fn overall(parts: &[Computed], error: Option<&(&'static str, String)>) -> Computed {
    if let Some((reason, message)) = error {
        return Computed::new(READY, false, *reason, message.clone());
    }
    let failing: Vec<&str> = parts
        .iter()
        .filter(|c| !c.status)
        .map(|c| c.type_)
        .collect();
    if failing.is_empty() {
        Computed::new(READY, true, reasons::READY, "all conditions are True")
    } else {
        let first = parts
            .iter()
            .find(|c| !c.status)
            .map(|c| c.reason.clone())
            .unwrap_or_default();
        Computed::new(
            READY,
            false,
            first,
            format!("not ready: {}", failing.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, SMALL, validated};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::networking::v1::{
        IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::from_second(1_000).expect("ts"))
    }

    fn deployment(replicas: i32, available: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                ready_replicas: Some(available),
                available_replicas: Some(available),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn spread(zones: &[&str]) -> Vec<PodPlacement> {
        zones
            .iter()
            .map(|z| PodPlacement {
                zone: Some(z.to_string()),
                ready: true,
            })
            .collect()
    }

    fn condition<'a>(
        s: &'a HighlyAvailableAppStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition present")
    }

    /// A converged small app is Ready, spread 1/1/1, and reports its selector for `kubectl scale`.
    #[test]
    fn converged_small_app_is_ready() {
        let app = validated(SMALL);
        let d = deployment(3, 3);
        let observed = Observed {
            deployment: Some(&d),
            pods: spread(&["us-east-1a", "us-east-1b", "us-east-1c"]),
            ..Observed::default()
        };
        let s = compute(&app, Some(4), &observed, None, &now());
        assert_eq!(s.observed_generation, Some(4));
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec!["Ready", "ComputeReady", "ZoneResilient"]);
        assert_eq!(condition(&s, "Ready").status, "True");
        assert_eq!(
            condition(&s, "ComputeReady").message,
            "3/3 replicas available"
        );
        assert_eq!(s.zone_spread.as_deref(), Some("1/1/1"));
        assert_eq!(s.selector.as_deref(), Some("halo.dev/app=web"));
        assert_eq!((s.replicas, s.ready_replicas), (Some(3), Some(3)));
        assert_eq!(s.endpoints, None);
        // Same observations again: identical status, so nothing is written.
        let again = compute(
            &app,
            Some(4),
            &observed,
            Some(&s),
            &Time(Timestamp::from_second(9_999).expect("ts")),
        );
        assert_eq!(again, s);
    }

    /// The Ingress is not ready until the ALB has a hostname; then the URL and ALB show up.
    #[test]
    fn ingress_readiness_follows_the_load_balancer() {
        let app = validated(FULL);
        let d = deployment(3, 3);
        let pods = spread(&["us-east-1a", "us-east-1b", "us-east-1c"]);
        let pending = Ingress::default();
        let s = compute(
            &app,
            Some(1),
            &Observed {
                deployment: Some(&d),
                ingress: Some(&pending),
                pods: pods.clone(),
                ..Observed::default()
            },
            None,
            &now(),
        );
        assert_eq!(condition(&s, "IngressReady").reason, "LoadBalancerPending");
        assert_eq!(condition(&s, "Ready").status, "False");
        assert_eq!(condition(&s, "Ready").message, "not ready: IngressReady");

        let provisioned = Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        hostname: Some("k8s-shared-123.us-east-1.elb.amazonaws.com".into()),
                        ..IngressLoadBalancerIngress::default()
                    }]),
                }),
            }),
            ..Ingress::default()
        };
        let s = compute(
            &app,
            Some(1),
            &Observed {
                deployment: Some(&d),
                ingress: Some(&provisioned),
                pods,
                ..Observed::default()
            },
            Some(&s),
            &now(),
        );
        assert_eq!(condition(&s, "IngressReady").status, "True");
        assert_eq!(condition(&s, "Ready").status, "True");
        let endpoints = s.endpoints.expect("endpoints");
        assert_eq!(endpoints.url.as_deref(), Some("https://shop.example.com"));
        assert_eq!(
            endpoints.load_balancer.as_deref(),
            Some("k8s-shared-123.us-east-1.elb.amazonaws.com")
        );
    }

    /// A rollout in progress or missing pods keep ComputeReady false with the numbers.
    #[test]
    fn compute_not_ready_while_unavailable() {
        let app = validated(SMALL);
        let d = deployment(3, 2);
        let s = compute(
            &app,
            Some(1),
            &Observed {
                deployment: Some(&d),
                pods: spread(&["us-east-1a", "us-east-1b"]),
                ..Observed::default()
            },
            None,
            &now(),
        );
        let c = condition(&s, "ComputeReady");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ReplicasUnavailable")
        );
        assert_eq!(c.message, "2/3 replicas available");
        assert_eq!(
            condition(&s, "Ready").message,
            "not ready: ComputeReady, ZoneResilient"
        );

        let missing = compute(&app, Some(1), &Observed::default(), None, &now());
        assert_eq!(
            condition(&missing, "ComputeReady").reason,
            "DeploymentMissing"
        );
    }

    /// A failed reconcile shows on Ready with the error's reason and message.
    #[test]
    fn errors_surface_on_ready() {
        let app = validated(SMALL);
        let observed = Observed {
            error: Some((
                "ChildNotOwned",
                "Service web exists and is not owned".into(),
            )),
            ..Observed::default()
        };
        let s = compute(&app, Some(1), &observed, None, &now());
        let ready = condition(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ChildNotOwned")
        );
        assert_eq!(ready.message, "Service web exists and is not owned");
    }

    /// Every zone the cluster has nodes in shows up, so a zone with no ready pods reads 0.
    #[test]
    fn empty_cluster_zones_show_as_zero() {
        let app = validated(SMALL);
        let d = deployment(3, 2);
        let observed = Observed {
            deployment: Some(&d),
            pods: spread(&["us-east-1b", "us-east-1c"]),
            cluster_zones: vec![
                "us-east-1a".into(),
                "us-east-1b".into(),
                "us-east-1c".into(),
            ],
            ..Observed::default()
        };
        let s = compute(&app, Some(1), &observed, None, &now());
        assert_eq!(s.zone_spread.as_deref(), Some("0/1/1"));
        assert_eq!(
            condition(&s, "ZoneResilient").message,
            "ready pods span 2 zones (us-east-1b, us-east-1c), need 3; none ready in us-east-1a"
        );
    }

    /// DNSReady joins Ready: unhealthy Route 53 checkers keep the app not Ready with their
    /// numbers; once healthy, the URL is the record's and status.dns names what halo wrote.
    #[test]
    fn dns_readiness_is_part_of_ready() {
        use crate::api::dns::DnsStatus;
        use crate::conditions::reasons as dns;
        use crate::observed::{DnsReadiness, DnsView};
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        let d = deployment(3, 3);
        let lb = Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        hostname: Some("k8s-default-shop-1.us-east-1.elb.amazonaws.com".into()),
                        ..IngressLoadBalancerIngress::default()
                    }]),
                }),
            }),
            ..Ingress::default()
        };
        let observed = Observed {
            deployment: Some(&d),
            ingress: Some(&lb),
            pods: spread(&["us-east-1a", "us-east-1b", "us-east-1c"]),
            ..Observed::default()
        };
        let record = DnsStatus {
            hosted_zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            health_check_id: Some("hc-1".into()),
        };
        let view = |ready, reason, message: &str| AwsObserved {
            dns: Some(DnsView::Seen(DnsReadiness {
                ready,
                reason,
                message: message.into(),
            })),
            dns_record: DnsRecord::Set(Some(record.clone())),
            ..AwsObserved::default()
        };
        let unhealthy = view(
            false,
            dns::HEALTH_CHECK_UNHEALTHY,
            "shop.example.com; health check hc-1: 1/8 checkers healthy",
        );
        let s = compute_with_aws(&app, Some(1), &observed, &unhealthy, None, &now());
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            vec![
                "Ready",
                "ComputeReady",
                "IngressReady",
                "DNSReady",
                "ZoneResilient"
            ]
        );
        assert_eq!(
            (
                condition(&s, "Ready").status.as_str(),
                condition(&s, "Ready").reason.as_str(),
                condition(&s, "Ready").message.as_str()
            ),
            ("False", "HealthCheckUnhealthy", "not ready: DNSReady")
        );
        assert_eq!(s.dns.as_ref(), Some(&record));
        let healthy = view(
            true,
            dns::HEALTH_CHECK_HEALTHY,
            "shop.example.com; health check hc-1: 8/8 checkers healthy",
        );
        let s = compute_with_aws(&app, Some(1), &observed, &healthy, Some(&s), &now());
        assert_eq!(condition(&s, "Ready").status, "True");
        assert_eq!(
            condition(&s, "DNSReady").message,
            "shop.example.com; health check hc-1: 8/8 checkers healthy"
        );
        assert_eq!(
            s.endpoints.as_ref().and_then(|e| e.url.as_deref()),
            Some("http://shop.example.com")
        );
        // Nothing learned from Route 53 this time (throttled): condition and record stand.
        let throttled = AwsObserved {
            dns: Some(DnsView::Throttled),
            ..AwsObserved::default()
        };
        let again = compute_with_aws(&app, Some(1), &observed, &throttled, Some(&s), &now());
        assert_eq!(again, s);
        // The record was cleaned up: status.dns goes.
        let cleaned = AwsObserved {
            dns_record: DnsRecord::Set(None),
            ..healthy
        };
        let s = compute_with_aws(&app, Some(1), &observed, &cleaned, Some(&s), &now());
        assert_eq!(s.dns, None);
    }

    /// A spec halo refuses puts the error on Ready and keeps the other conditions as they were.
    #[test]
    fn refused_spec_is_reported_on_ready() {
        let app = validated(SMALL);
        let d = deployment(3, 3);
        let observed = Observed {
            deployment: Some(&d),
            pods: spread(&["us-east-1a", "us-east-1b", "us-east-1c"]),
            ..Observed::default()
        };
        let before = compute(&app, Some(1), &observed, None, &now());
        let error = crate::Error::InvalidSpec {
            field: "spec.dns.setIdentifier".into(),
            message: "required".into(),
        };
        let later = Time(Timestamp::from_second(2_000).expect("ts"));
        let s = refused(Some(&before), Some(2), &error, &later);
        let ready = condition(&s, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str(),
                ready.observed_generation,
                &ready.last_transition_time
            ),
            (
                "False",
                "InvalidSpec",
                "invalid spec: spec.dns.setIdentifier: required",
                Some(2),
                &later
            )
        );
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.conditions[1..], before.conditions[1..]);
        assert_eq!(s.conditions.len(), before.conditions.len());
        assert_eq!(refused(Some(&s), Some(2), &error, &later), s);
    }
}
