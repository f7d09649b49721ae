//! The `HighlyAvailableApp` custom resource (group `halo.dev`, version `v1alpha1`).
//!
//! Defaults live in the schema (the API server fills them in, halo never mutates the spec), and
//! every cross-field rule is a CEL rule (`x-kubernetes-validations`) so bad input is refused by
//! the API server with a message that names the field.

pub mod data;
pub mod dns;
pub mod storage;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A highly available application. Every section but `image` and `port` is optional; each adds
/// what it names:
/// - always: a Deployment spread across zones (`replicas`, `zones`, `healthCheck`,
///   `failureReaction`, and the container fields `env`, `envFrom`, `resources`, `command`,
///   `args`), a ClusterIP Service and a PodDisruptionBudget (`disruption`);
/// - `autoscaling`: a HorizontalPodAutoscaler, which then owns the replica count;
/// - `ingress`: an Ingress for the AWS Load Balancer Controller (an ALB);
/// - `dns`: a Route 53 record for the ALB with a Route 53 health check (needs `ingress`);
/// - `database`: an Aurora cluster; `cache`: an ElastiCache replication group;
/// - `dynamodb`: DynamoDB tables; `staticAssets`: an S3 bucket, optionally replicated;
/// - `alarms`: CloudWatch alarms on the ALB, the database, the cache, the health check and the
///   tables.
///
/// The endpoints of the database, the cache, the tables and the bucket reach the pods through
/// the Secret `<name>-connection`. An app with `dns`, `database`, `cache`, `dynamodb`,
/// `staticAssets` or `alarms` carries the finalizer `halo.dev/cleanup`: deleting it waits until
/// AWS confirmed each section's deletion policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "halo.dev",
    version = "v1alpha1",
    kind = "HighlyAvailableApp",
    plural = "highlyavailableapps",
    singular = "highlyavailableapp",
    shortname = "haapp",
    shortname = "haa",
    category = "halo",
    doc = "An application that survives the loss of a node or an Availability Zone: halo renders it into a zone-spread Deployment, a Service, a PodDisruptionBudget, an optional HorizontalPodAutoscaler and an optional ALB Ingress, and creates the AWS parts the spec asks for (Route 53 record, Aurora, ElastiCache, DynamoDB, S3, CloudWatch alarms). `kubectl explain haapp.spec` lists the sections, `haapp.status.conditions` what each condition means.",
    namespaced,
    cel,
    status = "HighlyAvailableAppStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every part of the app is ready"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Ready pods"
    ),
    printcolumn(
        name = "Zones",
        type_ = "string",
        json_path = ".status.zoneSpread",
        description = "Ready pods per zone, in zone name order"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.endpoints.url",
        description = "Where the app is served"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && self.metadata.name.size() <= 63")
        .message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters): it names the app's Service")
        .reason(Reason::FieldValueInvalid)
)]
#[x_kube(
    validation = Rule::new("has(self.autoscaling) || self.replicas >= self.zones.minZones")
        .message("replicas must be at least zones.minZones, so that every zone gets a pod")
        .field_path(".replicas")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.autoscaling) || self.autoscaling.minReplicas >= self.zones.minZones")
        .message("autoscaling.minReplicas must be at least zones.minZones, so that every zone keeps a pod")
        .field_path(".autoscaling.minReplicas")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.disruption.maxUnavailable < (has(self.autoscaling) ? self.autoscaling.minReplicas : self.replicas)")
        .message("disruption.maxUnavailable must be less than the replica count (autoscaling.minReplicas when autoscaling), or a node drain may evict every pod")
        .field_path(".disruption.maxUnavailable")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.zones.minReadyAfterZoneLoss) || self.zones.minReadyAfterZoneLoss <= (has(self.autoscaling) ? self.autoscaling.minReplicas : self.replicas)")
        .message("zones.minReadyAfterZoneLoss cannot exceed the replica count (autoscaling.minReplicas when autoscaling)")
        .field_path(".zones.minReadyAfterZoneLoss")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.autoscaling) || (has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests)")
        .message("autoscaling on CPU utilization needs resources.requests.cpu")
        .field_path(".resources")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.dns) || has(self.ingress)")
        .message("dns needs ingress: the record points at the app's ALB")
        .field_path(".dns")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.dns) || !has(self.ingress) || self.ingress.host.startsWith('*.') || self.dns.recordName == self.ingress.host")
        .message("dns.recordName must equal ingress.host: the ALB routes requests by host name, so any other name gets a 404")
        .field_path(".dns.recordName")
        .reason(Reason::FieldValueInvalid),
    // A wildcard host is served for any one label in place of the `*` (the Ingress meaning);
    // the record must be such a concrete name, not an unrelated one.
    validation = Rule::new("!has(self.dns) || !has(self.ingress) || !self.ingress.host.startsWith('*.') || (self.dns.recordName.contains('.') && self.dns.recordName.substring(self.dns.recordName.indexOf('.')) == self.ingress.host.substring(1))")
        .message("dns.recordName must be a name the wildcard ingress.host covers: one label in place of the '*' (shop.example.com for *.example.com)")
        .field_path(".dns.recordName")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.dns) || !has(self.ingress) || !self.dns.healthCheck.enabled || self.ingress.scheme != 'internal'")
        .message("Route 53 health checkers cannot reach an internal ALB: use an internet-facing one, or set dns.healthCheck.enabled to false with a disabledReason")
        .field_path(".dns.healthCheck.enabled")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(oldSelf.database) || has(self.database)")
        .message("database cannot be removed: delete the app instead, and its deletionPolicy decides what happens to the cluster")
        .field_path(".database")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(oldSelf.cache) || has(self.cache)")
        .message("cache cannot be removed: delete the app instead, and its deletionPolicy decides what happens to the replication group")
        .field_path(".cache")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(oldSelf.staticAssets) || has(self.staticAssets)")
        .message("staticAssets cannot be removed: delete the app instead, and its deletionPolicy decides what happens to the bucket")
        .field_path(".staticAssets")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct HighlyAvailableAppSpec {
    /// Container image of the application, e.g. `registry.example.com/shop:1.4.2`.
    #[schemars(length(min = 1, max = 4096))]
    pub image: String,

    /// Port the application listens on inside the container; the Service, the probes and the
    /// ALB target group all use it.
    #[schemars(extend("minimum" = 1, "maximum" = 65535))]
    pub port: i32,

    /// Number of pods. Ignored when `autoscaling` is set (the HorizontalPodAutoscaler owns
    /// the count then). Must be at least `zones.minZones`.
    #[serde(default = "default_replicas")]
    #[schemars(extend("minimum" = 1, "maximum" = 10000))]
    pub replicas: i32,

    /// Environment variables of the application container (core/v1 EnvVar).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// Sources of environment variables (ConfigMaps, Secrets) for the application container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// CPU and memory requests and limits of the application container. `requests.cpu` is
    /// required with `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Entrypoint override; the image's ENTRYPOINT when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Arguments to the entrypoint; the image's CMD when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Horizontal autoscaling on CPU utilization. When set, halo creates a
    /// HorizontalPodAutoscaler and stops managing the Deployment's replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// How the pods spread over Availability Zones.
    #[serde(default)]
    pub zones: Zones,

    /// The HTTP health endpoint. It feeds the readiness, liveness and startup probes and the
    /// ALB target group health check.
    #[serde(default)]
    pub health_check: HealthCheck,

    /// Voluntary disruption budget (node drains, cluster upgrades).
    #[serde(default)]
    pub disruption: Disruption,

    /// How fast pods leave a node that stopped responding.
    #[serde(default)]
    pub failure_reaction: FailureReaction,

    /// Exposes the app through an Application Load Balancer (AWS Load Balancer Controller).
    /// No Ingress is created when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// A Route 53 record (with a health check) pointing at the ALB; failover, weighted or
    /// latency routing across regions. Needs `ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::api::dns::DnsSpec>,

    /// An Aurora cluster (writer plus readers in other zones); its endpoints reach the app
    /// through the `<name>-connection` Secret. Cannot be removed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::api::data::DatabaseSpec>,

    /// An ElastiCache replication group (Redis OSS or Valkey) with automatic failover; its
    /// endpoints reach the app through the `<name>-connection` Secret. Cannot be removed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::api::data::CacheSpec>,

    /// DynamoDB tables (global tables with `replicaRegions`); their names and ARNs reach the app
    /// through the `<name>-connection` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb: Option<crate::api::storage::DynamoDbSpec>,

    /// An S3 bucket for static assets, optionally replicated to another region; its name and
    /// region reach the app through the `<name>-connection` Secret. Cannot be removed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_assets: Option<crate::api::storage::StaticAssetsSpec>,

    /// CloudWatch alarms on the ALB, the database, the cache, the DNS health check and the
    /// tables; their states show in `status.alarms` and the `AlarmsOK` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<crate::api::storage::AlarmsSpec>,
}

fn default_replicas() -> i32 {
    3
}

/// Horizontal autoscaling settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.maxReplicas >= self.minReplicas")
    .message("autoscaling.maxReplicas must be at least autoscaling.minReplicas")
    .field_path(".maxReplicas")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Fewest pods the autoscaler may scale to. Must be at least `zones.minZones`.
    #[schemars(extend("minimum" = 1, "maximum" = 10000))]
    pub min_replicas: i32,
    /// Most pods the autoscaler may scale to.
    #[schemars(extend("minimum" = 1, "maximum" = 10000))]
    pub max_replicas: i32,
    /// Average CPU utilization (percent of `resources.requests.cpu`) the autoscaler aims for.
    #[serde(
        default = "default_target_cpu",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(extend("minimum" = 1, "maximum" = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_target_cpu() -> i32 {
    70
}

/// Zone spread settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.names) || self.names.size() >= self.minZones")
    .message("zones.names must list at least zones.minZones zones")
    .field_path(".names")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct Zones {
    /// The app must span at least this many zones; `replicas` must be at least this.
    #[serde(default = "default_min_zones")]
    #[schemars(extend("minimum" = 1, "maximum" = 6))]
    pub min_zones: i32,

    /// Largest allowed difference in pod count between two zones
    /// (`whenUnsatisfiable: DoNotSchedule`).
    #[serde(default = "default_max_skew")]
    #[schemars(extend("minimum" = 1, "maximum" = 100))]
    pub max_skew: i32,

    /// Pin the pods to these zones (node affinity on `topology.kubernetes.io/zone`).
    /// Unset: any zone of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 6))]
    #[x_kube(validation = Rule::new("self.all(n, self.exists_one(m, m == n))")
        .message("zones.names must not repeat a zone")
        .reason(Reason::FieldValueInvalid))]
    pub names: Option<Vec<ZoneName>>,

    /// Scheduler `minDomains` for the zone spread. Trade-off: while fewer zones than this are
    /// eligible, the scheduler treats the missing zones as holding zero pods, so during a
    /// zone outage new pods stay Pending instead of moving to the surviving zones. Leave unset
    /// unless an even spread matters more than capacity during an outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 6))]
    pub min_domains: Option<i32>,

    /// Ready pods that must remain after losing any one zone for `ZoneResilient` to be True.
    /// Default: what an even spread keeps, `desired - ceil(desired / minZones)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "maximum" = 10000))]
    pub min_ready_after_zone_loss: Option<i32>,

    /// After a zone recovers, move pods back into it: halo evicts one pod at a time from the
    /// fullest zone (through the Eviction API, so the PodDisruptionBudget holds) and the zone
    /// spread places the replacement in the emptiest zone. Off: the spread heals only on the
    /// next rollout.
    #[serde(default = "default_true")]
    pub rebalance: bool,
}

fn default_true() -> bool {
    true
}

fn default_min_zones() -> i32 {
    3
}
fn default_max_skew() -> i32 {
    1
}

impl Default for Zones {
    fn default() -> Self {
        Zones {
            min_zones: default_min_zones(),
            max_skew: default_max_skew(),
            names: None,
            min_domains: None,
            min_ready_after_zone_loss: None,
            rebalance: true,
        }
    }
}

/// An Availability Zone name such as `us-east-1a`.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(transparent)]
pub struct ZoneName(
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$"), length(max = 32))] pub String,
);

/// The app's HTTP health endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.timeoutSeconds < self.periodSeconds")
    .message("healthCheck.timeoutSeconds must be less than healthCheck.periodSeconds")
    .field_path(".timeoutSeconds")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// HTTP path that answers 2xx/3xx when the app can serve traffic.
    #[serde(default = "default_health_path")]
    #[schemars(regex(pattern = r"^/[!-~]*$"), length(max = 1024))]
    pub path: String,
    /// Seconds between checks (probes and ALB).
    #[serde(default = "default_period")]
    #[schemars(extend("minimum" = 5, "maximum" = 300))]
    pub period_seconds: i32,
    /// Seconds before one check times out; less than periodSeconds.
    #[serde(default = "default_timeout")]
    #[schemars(extend("minimum" = 2, "maximum" = 120))]
    pub timeout_seconds: i32,
    /// Consecutive successes before the ALB sends traffic to a pod.
    #[serde(default = "default_healthy_threshold")]
    #[schemars(extend("minimum" = 2, "maximum" = 10))]
    pub healthy_threshold: i32,
    /// Consecutive failures before a pod is taken out of traffic (readiness, ALB) or
    /// restarted (liveness).
    #[serde(default = "default_unhealthy_threshold")]
    #[schemars(extend("minimum" = 2, "maximum" = 10))]
    pub unhealthy_threshold: i32,
    /// Seconds a starting pod gets before the liveness probe may restart it.
    #[serde(default = "default_startup_seconds")]
    #[schemars(extend("minimum" = 10, "maximum" = 3600))]
    pub startup_seconds: i32,
}

fn default_health_path() -> String {
    "/".into()
}
fn default_period() -> i32 {
    10
}
fn default_timeout() -> i32 {
    5
}
fn default_healthy_threshold() -> i32 {
    2
}
fn default_unhealthy_threshold() -> i32 {
    3
}
fn default_startup_seconds() -> i32 {
    300
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: default_health_path(),
            period_seconds: default_period(),
            timeout_seconds: default_timeout(),
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
            startup_seconds: default_startup_seconds(),
        }
    }
}

/// Voluntary disruption budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// Most pods that a voluntary disruption (drain, eviction) may take down at once.
    #[serde(default = "default_max_unavailable")]
    #[schemars(extend("minimum" = 1, "maximum" = 10000))]
    pub max_unavailable: i32,
}

fn default_max_unavailable() -> i32 {
    1
}

impl Default for Disruption {
    fn default() -> Self {
        Disruption {
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// Reaction to a node that stops responding.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureReaction {
    /// Seconds a pod stays bound to a `not-ready` or `unreachable` node before it is evicted
    /// and replaced elsewhere. Kubernetes' default is 300.
    #[serde(default = "default_toleration_seconds")]
    #[schemars(extend("minimum" = 0, "maximum" = 3600))]
    pub toleration_seconds: i64,
}

fn default_toleration_seconds() -> i64 {
    30
}

impl Default for FailureReaction {
    fn default() -> Self {
        FailureReaction {
            toleration_seconds: default_toleration_seconds(),
        }
    }
}

/// ALB exposure through the AWS Load Balancer Controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!self.sslRedirect || has(self.certificateArn)")
    .message("ingress.sslRedirect needs ingress.certificateArn: without a certificate there is no HTTPS listener to redirect to")
    .field_path(".sslRedirect")
    .reason(Reason::FieldValueInvalid))]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name the ALB routes to this app, e.g. `shop.example.com`, or a wildcard such as
    /// `*.example.com` (any one label in place of the `*`).
    #[schemars(
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        ),
        length(max = 253)
    )]
    #[x_kube(validation = Rule::new(crate::api::dns::LABELS_AT_MOST_63)
        .message("ingress.host must have labels (the parts between dots) of at most 63 characters, the DNS limit")
        .reason(Reason::FieldValueInvalid))]
    pub host: String,
    /// `internet-facing` or `internal`.
    #[serde(default)]
    pub scheme: Scheme,
    /// ACM certificate for the HTTPS listener (port 443). Without it only HTTP (port 80) listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
    ))]
    pub certificate_arn: Option<String>,
    /// Redirect HTTP to HTTPS. Needs `certificateArn`.
    #[serde(default)]
    pub ssl_redirect: bool,
    /// Share one ALB between Ingresses with the same group name (`alb.ingress.kubernetes.io/group.name`).
    /// Route 53 health checks reach the ALB by its own hostname: apps of one group that have a
    /// Route 53 health check need distinct `dns.healthCheck.path`s, or the ALB sends every such
    /// check to the app whose rule comes first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 63))]
    pub group_name: Option<String>,
    /// AWS WAFv2 web ACL to attach to the ALB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:[a-z]+/webacl/.+$"))]
    pub waf_acl_arn: Option<String>,
}

/// ALB scheme.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Reachable from the internet.
    #[default]
    InternetFacing,
    /// Reachable only inside the VPC.
    Internal,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        }
    }
}

/// What halo observed. Written only by halo, through the status subresource: `conditions` (what
/// is ready), `replicas`/`readyReplicas`/`selector` (the scale subresource), `zones` and
/// `zoneSpread` (ready pods per zone), `endpoints` (the app's URL, the ALB, the database and
/// cache endpoints), `connectionSecret`, and what halo wrote in AWS: `dns`, `dynamodbTables`,
/// `staticAssets`, `alarms`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HighlyAvailableAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The app's conditions; a section's condition exists only while the spec has the section.
    /// True means:
    /// - `Ready`: every other condition except `AlarmsOK` is True; a failed reconcile shows
    ///   here with its error kind as reason.
    /// - `ComputeReady`: the Deployment has rolled out and every desired replica is available.
    /// - `IngressReady` (`ingress`): the ALB has a hostname.
    /// - `DNSReady` (`dns`): halo wrote the Route 53 record and, with a health check, more than
    ///   18% of Route 53's checkers see the ALB healthy.
    /// - `ZoneResilient`: ready pods span `zones.minZones` zones and losing any one zone leaves
    ///   at least `zones.minReadyAfterZoneLoss` ready pods.
    /// - `DatabaseReady` (`database`): the Aurora cluster is available with as many available
    ///   instances as `instances` says, in at least two zones with `multiAZ`.
    /// - `CacheReady` (`cache`): the replication group is available with no change pending, its
    ///   nodes in at least two zones with `multiAZ`.
    /// - `DynamoDBReady` (`dynamodb`): every table (and replica) is ACTIVE with the spec's
    ///   settings.
    /// - `StaticAssetsReady` (`staticAssets`): the bucket (and the replica bucket) has every
    ///   setting of the spec.
    /// - `AlarmsOK` (`alarms`): no alarm of the app is in ALARM (or `enabled: false`); reported,
    ///   not part of `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods of the current Deployment (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the app's pods (for the scale subresource and `kubectl get pods -l`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Ready pods per zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    /// Ready pods per zone in zone name order, e.g. `1/1/1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_spread: Option<String>,
    /// Where the app can be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Secret with the database and cache endpoints, loaded into the app's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
    /// The Route 53 record set and health check halo wrote for `spec.dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::api::dns::DnsStatus>,
    /// DynamoDB tables halo created, including removed ones whose deletion policy is pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamodb_tables: Vec<crate::api::storage::TableStatus>,
    /// The static assets bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_assets: Option<crate::api::storage::StaticAssetsStatus>,
    /// CloudWatch alarms halo manages, with their states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<crate::api::storage::AlarmStatus>,
}

/// Ready pods in one zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    /// Zone name (`topology.kubernetes.io/zone` of the pods' nodes).
    pub name: String,
    /// Ready pods in this zone.
    pub ready: i32,
}

/// Addresses of the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Public URL of the app (`https://` when a certificate is set): `spec.dns.recordName`
    /// once halo wrote the record, else `spec.ingress.host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// DNS name of the ALB, once the AWS Load Balancer Controller has provisioned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    /// The Aurora cluster's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::api::data::DatabaseEndpoints>,
    /// The cache's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::api::data::CacheEndpoints>,
}
