//! halo turns one `HighlyAvailableApp` into an application that survives the loss of a
//! node or an Availability Zone.
//!
//! One reconcile is a pipeline; only the ends touch the API server:
//!
//! ```text
//! observe ──> validate ──> render ──> apply ──> status
//! (caches)   (no client)  (no client) (client)  (pure compute, one patch)
//! ```
//!
//! ```text
//! HighlyAvailableApp ─┬─> Deployment (zone + hostname spread, probes, tolerations)
//!                     ├─> Service (ClusterIP, ALB target-type ip)
//!                     ├─> PodDisruptionBudget
//!                     ├─> HorizontalPodAutoscaler   (only with spec.autoscaling)
//!                     └─> Ingress (AWS Load Balancer Controller) (only with spec.ingress)
//! ```
#![forbid(unsafe_code)]

pub mod apply;
pub mod controller;
pub mod crd;
pub mod meta;
pub mod render;
pub mod status;
pub mod validate;

/// Every failure halo knows about. Each becomes a condition reason, an Event and a metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec passed the CRD schema but cannot be rendered.
    #[error("invalid spec: {field}: {message}")]
    InvalidSpec { field: String, message: String },

    /// The API server refused or failed a request.
    #[error("kubernetes API error during {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// A child object exists with our name but is not controlled by this app.
    #[error(
        "{kind} {name} exists and is not owned by this HighlyAvailableApp; rename or delete it"
    )]
    NotOwned { kind: String, name: String },

    /// The object lacks metadata the API server always sets (name, namespace, uid).
    #[error("object is missing {0}")]
    MissingMetadata(&'static str),

    #[error("serialization failed: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl Error {
    /// A short, stable name for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::Kube { .. } => "KubernetesAPIError",
            Error::NotOwned { .. } => "ChildNotOwned",
            Error::MissingMetadata(_) => "MissingMetadata",
            Error::Serialization(_) => "SerializationError",
        }
    }

    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
