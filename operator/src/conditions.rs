//! Every condition type and reason halo writes into `status.conditions`, in one place.
//!
//! `Ready` is the AND of the others except `AlarmsOK` (reported, never part of `Ready`); a
//! failed reconcile puts its error kind ([`crate::Error::metric_label`]) on `Ready` as reason.
//! `config/argocd/health_test.py` reads the `reasons` block below and fails when a reason is
//! not classified by the Argo CD health check.

/// The app serves and every other condition (but `AlarmsOK`) is True.
pub const READY: &str = "Ready";
/// The Deployment has rolled out and every desired replica is available.
pub const COMPUTE_READY: &str = "ComputeReady";
/// The ALB has a hostname (only with `spec.ingress`).
pub const INGRESS_READY: &str = "IngressReady";
/// Losing any one zone leaves at least the floor of ready pods.
pub const ZONE_RESILIENT: &str = "ZoneResilient";
/// The Aurora cluster and its instances are available (only with `spec.database`).
pub const DATABASE_READY: &str = "DatabaseReady";
/// The ElastiCache replication group is available (only with `spec.cache`).
pub const CACHE_READY: &str = "CacheReady";
/// The Route 53 record is written and its health check sees the ALB (only with `spec.dns`).
pub const DNS_READY: &str = "DNSReady";
/// Every table (and replica) is ACTIVE with the spec's settings (only with `spec.dynamodb`).
pub const DYNAMODB_READY: &str = "DynamoDBReady";
/// The bucket (and the replica bucket) has every setting of the spec (only with `spec.staticAssets`).
pub const STATIC_ASSETS_READY: &str = "StaticAssetsReady";
/// No alarm of the app is in ALARM (only with `spec.alarms`; not part of `Ready`).
pub const ALARMS_OK: &str = "AlarmsOK";

/// Every condition type, in the order the status lists them after `Ready`.
pub const ALL: [&str; 10] = [
    READY,
    COMPUTE_READY,
    INGRESS_READY,
    DNS_READY,
    ZONE_RESILIENT,
    DATABASE_READY,
    CACHE_READY,
    DYNAMODB_READY,
    STATIC_ASSETS_READY,
    ALARMS_OK,
];

/// The reasons of every condition.
pub mod reasons {
    // Ready
    pub const READY: &str = "Ready";
    pub const NOT_READY: &str = "NotReady";
    // ComputeReady
    pub const DEPLOYMENT_MISSING: &str = "DeploymentMissing";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const REPLICAS_UNAVAILABLE: &str = "ReplicasUnavailable";
    // ComputeReady and every AWS-backed condition
    pub const AVAILABLE: &str = "Available";
    // IngressReady and DNSReady
    pub const LOAD_BALANCER_PENDING: &str = "LoadBalancerPending";
    pub const LOAD_BALANCER_PROVISIONED: &str = "LoadBalancerProvisioned";
    // ZoneResilient
    pub const INSUFFICIENT_ZONES: &str = "InsufficientZones";
    pub const ZONE_IMBALANCED: &str = "ZoneImbalanced";
    pub const ZONE_LOSS_TOLERATED: &str = "ZoneLossTolerated";
    // AWS-backed conditions: AWS's own status words
    pub const CREATING: &str = "Creating";
    pub const MODIFYING: &str = "Modifying";
    pub const SCALING: &str = "Scaling";
    pub const FAILING_OVER: &str = "FailingOver";
    pub const DELETING: &str = "Deleting";
    pub const UNAVAILABLE: &str = "Unavailable";
    pub const SINGLE_ZONE: &str = "SingleZone";
    pub const RETAINED: &str = "Retained";
    // Aurora and ElastiCache: the store the status recorded is gone, or another one took its
    // identifier; halo neither recreates nor touches it until the user says so.
    pub const MISSING: &str = "Missing";
    pub const REPLACED: &str = "Replaced";
    // AWS-backed conditions before or between looks
    pub const PENDING: &str = "Pending";
    pub const THROTTLED: &str = "AWSThrottled";
    // DNSReady
    pub const RECORDS_SYNCED: &str = "RecordsSynced";
    pub const HEALTH_CHECK_PENDING: &str = "HealthCheckPending";
    pub const HEALTH_CHECK_HEALTHY: &str = "HealthCheckHealthy";
    pub const HEALTH_CHECK_UNHEALTHY: &str = "HealthCheckUnhealthy";
    // AlarmsOK
    pub const ALARMS_DISABLED: &str = "Disabled";
    pub const ALARM_FIRING: &str = "AlarmFiring";
    pub const NO_ALARM_FIRING: &str = "NoAlarmFiring";
}
