//! What the AWS stage of one reconcile observed and did, as plain values: the contract
//! between an AWS backend (which fills it) and `status` (which turns it into conditions,
//! endpoints and records). Nothing here calls AWS or the API server.

use crate::api::data::{CacheEndpoints, DatabaseEndpoints};
use crate::api::dns::DnsStatus;
use crate::api::storage::{AlarmStatus, StaticAssetsStatus, TableStatus};

/// Something halo changed in AWS; becomes a Normal Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub reason: &'static str,
    pub message: String,
}

impl Change {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Change {
            reason,
            message: message.into(),
        }
    }
}

/// How a managed AWS resource looks to the app: its readiness as a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
    /// AWS is working on it (creating, modifying, failing over): poll often.
    pub busy: bool,
}

/// The `DNSReady` condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsReadiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What this reconcile learned about one AWS resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsView<E> {
    /// Described: its readiness and endpoints.
    Seen { readiness: Readiness, endpoints: E },
    /// Not described this time (an AWS error, a blocked or running cleanup): this reason and
    /// message, the endpoints last seen.
    Unseen {
        reason: &'static str,
        message: String,
    },
    /// AWS asked halo to slow down. Nothing is known to be wrong: the previous condition stands.
    Throttled,
}

/// What this reconcile learned about the app's Route 53 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsView {
    /// Route 53 holds the record (and health check) halo wants; readiness from the last
    /// health check status. Also before the ALB has a hostname, with nothing written.
    Seen(DnsReadiness),
    /// Route 53 failed or refused (e.g. the slot belongs to another owner).
    Unseen {
        reason: &'static str,
        message: String,
    },
    /// AWS asked halo to slow down: the previous condition stands.
    Throttled,
}

/// What `status.dns` becomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DnsRecord {
    /// As before (nothing was written or deleted, or it failed).
    #[default]
    Unchanged,
    /// Written now (`Some`) or cleaned up (`None`).
    Set(Option<DnsStatus>),
}

/// The AWS views of one reconcile; `None` where the app has no such section or it was not looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsObserved {
    pub database: Option<AwsView<DatabaseEndpoints>>,
    pub cache: Option<AwsView<CacheEndpoints>>,
    pub dns: Option<DnsView>,
    pub dns_record: DnsRecord,
    pub dynamodb: Option<AwsView<Vec<TableStatus>>>,
    pub static_assets: Option<AwsView<StaticAssetsStatus>>,
    /// Readiness here is `AlarmsOK`.
    pub alarms: Option<AwsView<Vec<AlarmStatus>>>,
}

impl AwsObserved {
    /// Whether any resource is still being worked on by AWS (poll often).
    pub fn busy(&self) -> bool {
        fn busy<E>(v: &Option<AwsView<E>>) -> bool {
            matches!(v, Some(AwsView::Seen { readiness, .. }) if readiness.busy)
        }
        busy(&self.database)
            || busy(&self.cache)
            || busy(&self.dynamodb)
            || busy(&self.static_assets)
    }
}
