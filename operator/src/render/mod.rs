//! `render`: [`ValidatedApp`] -> typed Kubernetes objects, with no client.
//!
//! One file per kind; `None` means "must not exist" (apply prunes it).

pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod pdb;
pub mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
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
}

pub fn render(app: &ValidatedApp) -> Children {
    Children {
        deployment: deployment::deployment(app),
        service: service::service(app),
        pdb: pdb::pdb(app),
        hpa: hpa::hpa(app),
        ingress: ingress::ingress(app),
    }
}

impl Children {
    /// The objects as JSON values, in apply order, skipping those that must not exist.
    pub fn to_values(&self) -> serde_json::Result<Vec<serde_json::Value>> {
        let mut out = vec![
            serde_json::to_value(&self.deployment)?,
            serde_json::to_value(&self.service)?,
            serde_json::to_value(&self.pdb)?,
        ];
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
pub(crate) mod fixtures {
    use crate::crd::HighlyAvailableApp;
    use crate::validate::{ValidatedApp, owner_of, validate};

    pub const FULL: &str = include_str!("../../../config/samples/full.yaml");
    pub const SMALL: &str = include_str!("../../../config/samples/small.yaml");

    pub fn app(yaml: &str) -> HighlyAvailableApp {
        serde_saphyr::from_str(yaml).expect("fixture parses")
    }

    pub fn validated(yaml: &str) -> ValidatedApp {
        let app = app(yaml);
        let owner = owner_of(&app, "default", Some("uid-1")).expect("owner");
        validate(&app, owner).expect("fixture validates")
    }
}
