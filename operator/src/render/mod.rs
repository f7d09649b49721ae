//! `render`: [`ValidatedApp`] -> typed Kubernetes objects, with no client.
//!
//! One file per kind; `None` means "must not exist" (apply prunes it).

pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod pdb;
pub mod secret;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::validate::ValidatedApp;

/// Name of the container that runs the app, and of its port.
pub const CONTAINER_NAME: &str = "app";
pub const PORT_NAME: &str = "http";

/// Everything halo wants in the cluster for one app.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub ingress: Option<Ingress>,
    /// `<name>-connection`, only with a database or a cache.
    pub secret: Option<Secret>,
}

/// What the app renders to before AWS has reported any endpoint (the `halo render` preview).
pub fn render(app: &ValidatedApp) -> Children {
    render_with(app, &secret::Connection::default())
}

/// Everything halo wants in the cluster, with the endpoints AWS reported.
pub fn render_with(app: &ValidatedApp, connection: &secret::Connection) -> Children {
    render_observed(app, connection, None)
}

/// [`render_with`], once the ALB has the hostname `load_balancer` (the Ingress then also
/// routes the Route 53 health checks, which use that name).
pub fn render_observed(
    app: &ValidatedApp,
    connection: &secret::Connection,
    load_balancer: Option<&str>,
) -> Children {
    let secret = secret::connection_secret(app, connection);
    let checksum = secret
        .is_some()
        .then(|| secret::checksum(&secret::connection_data(app, connection)));
    Children {
        deployment: deployment::with_connection(app, checksum.as_deref()),
        service: service::service(app),
        pdb: pdb::pdb(app),
        hpa: hpa::hpa(app),
        ingress: ingress::ingress_for(app, load_balancer),
        secret,
    }
}

impl Children {
    /// The objects as JSON values, in apply order, skipping those that must not exist.
    pub fn to_values(&self) -> serde_json::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        // The Secret first: the pods read it when they start.
        if let Some(secret) = &self.secret {
            out.push(serde_json::to_value(secret)?);
        }
        out.extend([
            serde_json::to_value(&self.deployment)?,
            serde_json::to_value(&self.service)?,
            serde_json::to_value(&self.pdb)?,
        ]);
        if let Some(hpa) = &self.hpa {
            out.push(serde_json::to_value(hpa)?);
        }
        if let Some(ingress) = &self.ingress {
            out.push(serde_json::to_value(ingress)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use crate::api::{Autoscaling, HighlyAvailableApp, IngressSpec, Scheme, ZoneName};
    use crate::validate::{owner_of, validate};

    /// Render never panics on any spec the schema admits: a sweep over the schema's bounds.
    #[test]
    fn render_survives_the_schema_bounds() {
        let base = crate::fixtures::app(crate::fixtures::SMALL);
        let mut rendered = 0;
        for replicas in [1, 2, 3, 10_000] {
            for min_zones in [1, 3, 6] {
                for (period, timeout, startup) in [(5, 2, 10), (300, 120, 3600)] {
                    for autoscaling in [None, Some((1, 1, 1)), Some((10_000, 10_000, 100))] {
                        for pinned in [
                            None,
                            Some(vec!["us-east-1a"]),
                            Some(vec!["us-east-1c", "us-east-1a", "us-east-1b"]),
                        ] {
                            for ingress in [false, true] {
                                let mut app: HighlyAvailableApp = base.clone();
                                let s = &mut app.spec;
                                s.replicas = replicas;
                                s.port = if ingress { 65535 } else { 1 };
                                s.zones.min_zones = min_zones;
                                s.zones.max_skew = 100;
                                s.zones.min_domains = Some(6);
                                s.zones.min_ready_after_zone_loss = Some(10_000);
                                s.zones.names = pinned
                                    .clone()
                                    .map(|v| v.into_iter().map(|z| ZoneName(z.into())).collect());
                                s.health_check.period_seconds = period;
                                s.health_check.timeout_seconds = timeout;
                                s.health_check.startup_seconds = startup;
                                s.health_check.unhealthy_threshold = 10;
                                s.failure_reaction.toleration_seconds = 3600;
                                s.disruption.max_unavailable = 10_000;
                                s.autoscaling = autoscaling.map(|(min, max, cpu)| Autoscaling {
                                    min_replicas: min,
                                    max_replicas: max,
                                    target_cpu_utilization_percentage: cpu,
                                });
                                s.ingress = ingress.then(|| IngressSpec {
                                    host: "*.a.example".into(),
                                    scheme: Scheme::Internal,
                                    certificate_arn: None,
                                    ssl_redirect: false,
                                    group_name: Some("g".into()),
                                    waf_acl_arn: None,
                                });
                                let owner = owner_of(&app, "default", Some("uid")).expect("owner");
                                let children = render(&validate(&app, owner).expect("valid"));
                                assert_eq!(children.hpa.is_some(), autoscaling.is_some());
                                assert_eq!(children.ingress.is_some(), ingress);
                                children.to_values().expect("serializes");
                                rendered += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(rendered, 4 * 3 * 2 * 3 * 3 * 2);
    }
}
