//! The AWS stage: everything halo wants of AWS for one app, and the backends that make it so.
//!
//! ```text
//! ValidatedApp ──plan──> AwsPlan ──Backend::ensure / cleanup──> AwsStep (observed, changes, errors)
//!  (pure)         (one desired state per service)   (SDK calls here)      (read by status)
//! ```
//!
//! - [`plan`]: the desired state of every service, computed once per reconcile (pure).
//! - [`service::Service`]: the one shape each service implements (ensure → readiness, cleanup
//!   by deletion policy); [`policy`] holds what they share (ownership tags, adoption, deletion
//!   decisions).
//! - [`backend::Backend`]: what the controller calls; [`Aws`] is the SDK backend.
//! - One module per service: pure `desired`/`plan`/`readiness` functions and the SDK calls.

pub use crate::conditions::reasons;
pub use crate::names::{final_snapshot_id, resource_id, short_hash};
pub use crate::observed::{Change, Readiness};
pub use client::{
    Aws, AwsConfig, CallCounter, CheckerReports, DEFAULT_CLUSTER_ID, aws_error, build_error,
    effective_cluster_id, is_code, is_read_only, is_throttling,
};
pub use policy::{
    CleanupReport, OWNERSHIP_TAG_KEYS, Ownership, TAG_MANAGED_BY, TAG_NAME, TAG_NAMESPACE, TAG_UID,
    is_transitional, ownership, ownership_tags, reason_for_status,
};

pub mod aurora;
pub mod backend;
pub mod client;
pub mod cloudwatch;
pub mod dynamodb;
pub mod elasticache;
pub mod plan;
pub mod policy;
pub mod ratelimit;
pub mod route53;
pub mod s3;
pub mod service;
