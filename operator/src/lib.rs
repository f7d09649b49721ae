//! halo turns one `HighlyAvailableApp` into an application that survives the loss of a
//! node or an Availability Zone.
//!
//! One reconcile is a pipeline of named stages ([`controller`]); only `aws`, `apply` and the
//! status write talk to anything outside the process:
//!
//! ```text
//! validate ──> aws ──> render ──> apply ──> observe ──> status ──> requeue
//! (+ tenancy,  (plan,   (pure)    (server-  (watch      (pure,     (when to look
//!  Secret ns)  backend)           side)     caches)     one patch)  again; rebalance)
//! ```
//!
//! ```text
//! HighlyAvailableApp ─┬─> Deployment (zone + hostname spread, probes, tolerations)
//!                     ├─> Service (ClusterIP, ALB target-type ip)
//!                     ├─> PodDisruptionBudget
//!                     ├─> HorizontalPodAutoscaler   (only with spec.autoscaling)
//!                     ├─> Ingress (AWS Load Balancer Controller) (only with spec.ingress)
//!                     ├─> Secret <name>-connection  (with a data section)
//!                     └─> AWS, through one Backend (aws::backend) and one Service per AWS
//!                         service: Aurora, ElastiCache, Route 53 (record + health check on
//!                         the ALB), DynamoDB, S3, CloudWatch alarms
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod apply;
pub mod aws;
pub mod conditions;
pub mod controller;
#[doc(hidden)]
pub mod fixtures;
pub mod http;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod observed;
pub mod render;
pub mod status;
pub mod tenancy;
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

    /// An AWS API call failed; `code` is AWS's error code (or the transport failure kind).
    #[error("AWS {api} failed: {code}: {message}")]
    Aws {
        api: String,
        code: String,
        message: String,
        /// AWS asked us to slow down: retry later, never a failure of the app.
        throttled: bool,
    },

    /// An AWS resource with halo's deterministic identifier belongs to someone else.
    #[error(
        "{kind} {id} exists and is not owned by this HighlyAvailableApp; adopt it with spec.{field}.adopt, or delete or rename it"
    )]
    AwsNotOwned {
        kind: String,
        id: String,
        field: &'static str,
    },

    /// The app asks for something its namespace's TenancyPolicy rights do not grant; refused
    /// before any AWS call.
    #[error("{field}: {message}")]
    TenancyRefused {
        /// The condition reason of the rule that refused, e.g. `TenancyDNSNotAllowed`.
        reason: &'static str,
        field: String,
        message: String,
    },

    /// The store the status recorded is gone (`replaced: false`) or another one has its
    /// identifier (`replaced: true`): halo neither creates one in its place nor touches the new
    /// one until the user accepts it ([`meta::ACCEPT_STORE_ANNOTATION`]).
    #[error("{message}")]
    StoreIdentity { replaced: bool, message: String },

    /// Cleanup cannot proceed until the user changes the spec.
    #[error("cannot delete {kind} {id}: {reason}")]
    DeletionBlocked {
        kind: String,
        id: String,
        reason: String,
    },
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
            Error::Aws {
                throttled: true, ..
            } => "AWSThrottled",
            Error::Aws { .. } => "AWSAPIError",
            Error::AwsNotOwned { .. } => "AWSResourceNotOwned",
            Error::DeletionBlocked { .. } => "DeletionBlocked",
            Error::StoreIdentity {
                replaced: false, ..
            } => "Missing",
            Error::StoreIdentity { replaced: true, .. } => "Replaced",
            Error::TenancyRefused { reason, .. } => reason,
        }
    }

    /// AWS asked halo to slow down: back off, but never mark the app failed for it.
    pub fn is_throttled(&self) -> bool {
        matches!(
            self,
            Error::Aws {
                throttled: true,
                ..
            }
        )
    }

    /// AWS failed in a way a prompt retry of the same request may fix: a 5xx of the service,
    /// or the request never reached it. Not a timeout: that one already waited its budget.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Aws { code, .. } if matches!(
                code.as_str(),
                "InternalError"
                    | "InternalFailure"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "DispatchFailure"
                    | "ResponseError"
            )
        )
    }

    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
