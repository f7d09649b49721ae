//! `spec.database` (Aurora) and `spec.cache` (ElastiCache), and their status fields.
//!
//! Every rule the API server can judge is a CEL rule here, including the transition rules that
//! keep the engine and an adopted identifier from changing under a running cluster.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// An Aurora cluster for the app: a writer and readers in distinct Availability Zones.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!self.multiAZ || !has(self.instances) || self.instances >= 2")
        .message("database.multiAZ needs instances >= 2: a writer plus a reader in another zone to fail over to (set multiAZ: false for a single-instance cluster)")
        .field_path(".instances")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.engine == oldSelf.engine")
        .message("database.engine is immutable: AWS cannot convert a cluster to another engine")
        .field_path(".engine")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.adopt) == has(oldSelf.adopt) && (!has(self.adopt) || self.adopt.clusterIdentifier == oldSelf.adopt.clusterIdentifier)")
        .message("database.adopt is immutable: halo cannot switch the app to another cluster")
        .field_path(".adopt")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Aurora engine: `aurora-postgresql` or `aurora-mysql`. Immutable.
    #[serde(default)]
    pub engine: DatabaseEngine,

    /// Engine version, e.g. `16.4`; AWS's default for the engine when unset. Raising it upgrades
    /// the cluster in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9][0-9A-Za-z._-]*$"), length(max = 64))]
    pub engine_version: Option<String>,

    /// DB instance class of every instance, e.g. `db.r6g.large`. Default `db.r6g.large` for a
    /// cluster halo creates; with `adopt` and unset, every instance keeps its class (set it to
    /// resize them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^db\.[a-z0-9.]+$"), length(max = 64))]
    pub instance_class: Option<String>,

    /// Number of DB instances, each in its own Availability Zone where the subnet group has
    /// enough zones. The first is the writer, the others are readers that Aurora promotes on
    /// failover. Default 2 for a cluster halo creates; with `adopt` and unset, halo neither adds
    /// nor removes instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 16))]
    pub instances: Option<i32>,

    /// The cluster must survive the loss of an Availability Zone: needs `instances` >= 2.
    #[serde(default = "default_true", rename = "multiAZ")]
    pub multi_az: bool,

    /// Name of the database Aurora creates in the cluster. Default: the app name with `-`
    /// replaced by `_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$"), length(max = 63))]
    pub database_name: Option<String>,

    /// What happens to the cluster when the app is deleted: `Snapshot` (final snapshot, then
    /// delete), `Retain` (keep it, remove halo's tags) or `Delete` (no snapshot). Snapshot and
    /// Delete need `deletionProtection: false`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// AWS deletion protection on the cluster. While true, AWS refuses to delete it and so does
    /// halo: turning it off is a spec change, never something halo does by itself.
    #[serde(default = "default_true")]
    pub deletion_protection: bool,

    /// DB subnet group (its subnets decide the Availability Zones). Default: the operator's
    /// `--db-subnet-group`. Used when the cluster is created, so an adopted cluster keeps its
    /// own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"), length(max = 255))]
    pub subnet_group: Option<String>,

    /// VPC security groups of the cluster. Default: the operator's `--db-security-groups` for a
    /// cluster halo creates; with `adopt` and unset, the cluster keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    pub security_group_ids: Option<Vec<SecurityGroupId>>,

    /// Take over an existing cluster instead of creating one. halo tags it, manages its
    /// instances and settings, and deletes it only with `deletionPolicy: Delete`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<AdoptDatabase>,
}

/// An existing Aurora cluster to take over.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdoptDatabase {
    /// DB cluster identifier, e.g. `legacy-shop`.
    #[schemars(
        regex(pattern = r"^[a-zA-Z]([a-zA-Z0-9]|-[a-zA-Z0-9])*$"),
        length(min = 1, max = 63)
    )]
    pub cluster_identifier: String,
}

/// Aurora engine.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseEngine {
    #[default]
    AuroraPostgresql,
    AuroraMysql,
}

impl DatabaseEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseEngine::AuroraPostgresql => "aurora-postgresql",
            DatabaseEngine::AuroraMysql => "aurora-mysql",
        }
    }
}

/// What halo does with an AWS resource when the app is deleted.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum DeletionPolicy {
    /// Take a final snapshot, then delete.
    #[default]
    Snapshot,
    /// Keep the resource; remove only halo's tags.
    Retain,
    /// Delete without a snapshot.
    Delete,
}

/// A VPC security group id such as `sg-0123456789abcdef0`.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecurityGroupId(#[schemars(regex(pattern = r"^sg-[0-9a-f]{8,17}$"))] pub String);

/// An ElastiCache (Redis OSS or Valkey) replication group: a primary and replicas in distinct
/// Availability Zones with automatic failover, encrypted in transit and at rest.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!self.multiAZ || !has(self.replicas) || self.replicas >= 1")
        .message("cache.multiAZ needs replicas >= 1: a replica in another zone to fail over to (set multiAZ: false for a single node)")
        .field_path(".replicas")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.engine == oldSelf.engine")
        .message("cache.engine is immutable: halo does not convert a replication group to another engine")
        .field_path(".engine")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("has(self.adopt) == has(oldSelf.adopt) && (!has(self.adopt) || self.adopt.replicationGroupId == oldSelf.adopt.replicationGroupId)")
        .message("cache.adopt is immutable: halo cannot switch the app to another replication group")
        .field_path(".adopt")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// `redis` or `valkey`. Immutable.
    #[serde(default)]
    pub engine: CacheEngine,

    /// Engine version, e.g. `7.1`; AWS's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9][0-9A-Za-z._-]*$"), length(max = 32))]
    pub engine_version: Option<String>,

    /// Node type of every node, e.g. `cache.r6g.large`. Default `cache.r6g.large` for a group
    /// halo creates; with `adopt` and unset, the group keeps its node type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^cache\.[a-z0-9.]+$"), length(max = 64))]
    pub node_type: Option<String>,

    /// Replicas of the primary (one shard), each in its own Availability Zone where the subnet
    /// group has enough zones. With at least one, Multi-AZ and automatic failover are on.
    /// Default 2 for a group halo creates; with `adopt` and unset, halo neither adds nor removes
    /// replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "maximum" = 5))]
    pub replicas: Option<i32>,

    /// The cache must survive the loss of an Availability Zone: needs `replicas` >= 1.
    #[serde(default = "default_true", rename = "multiAZ")]
    pub multi_az: bool,

    /// What happens to the replication group when the app is deleted: `Snapshot` (final
    /// snapshot, then delete), `Retain` (keep it, remove halo's tags) or `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Cache subnet group. Default: the operator's `--cache-subnet-group`. Used at creation, so
    /// an adopted group keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"), length(max = 255))]
    pub subnet_group: Option<String>,

    /// VPC security groups. Default: the operator's `--cache-security-groups`. Used at creation,
    /// so an adopted group keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 5))]
    pub security_group_ids: Option<Vec<SecurityGroupId>>,

    /// Take over an existing replication group instead of creating one. halo tags it, manages
    /// its replicas and settings, and deletes it only with `deletionPolicy: Delete`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<AdoptCache>,
}

/// An existing replication group to take over.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdoptCache {
    /// Replication group id, e.g. `legacy-shop`.
    #[schemars(
        regex(pattern = r"^[a-z]([a-z0-9]|-[a-z0-9])*$"),
        length(min = 1, max = 40)
    )]
    pub replication_group_id: String,
}

/// ElastiCache engine.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum CacheEngine {
    #[default]
    Redis,
    Valkey,
}

impl CacheEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheEngine::Redis => "redis",
            CacheEngine::Valkey => "valkey",
        }
    }
}

/// Instance class of a cluster halo creates when the spec names none.
pub const DEFAULT_INSTANCE_CLASS: &str = "db.r6g.large";
/// Instances of a cluster halo creates when the spec names no count.
pub const DEFAULT_INSTANCES: i32 = 2;
/// Node type of a group halo creates when the spec names none.
pub const DEFAULT_NODE_TYPE: &str = "cache.r6g.large";
/// Replicas of a group halo creates when the spec names no count.
pub const DEFAULT_REPLICAS: i32 = 2;

// The shape defaults live here, not in the schema: the API server would fill them in, and an
// adopted cluster would then be resized to them. Unset on an adopted resource means "as it is".
impl DatabaseSpec {
    /// The instance class halo enforces; `None`: each instance keeps its own (adopted, unset).
    pub fn instance_class(&self) -> Option<String> {
        match (&self.instance_class, &self.adopt) {
            (Some(class), _) => Some(class.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_INSTANCE_CLASS.into()),
        }
    }

    /// The instance count halo enforces; `None`: the count is left as it is (adopted, unset).
    pub fn instances(&self) -> Option<i32> {
        match (self.instances, &self.adopt) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_INSTANCES),
        }
    }
}

impl CacheSpec {
    /// The node type halo enforces; `None`: the group keeps its own (adopted, unset).
    pub fn node_type(&self) -> Option<String> {
        match (&self.node_type, &self.adopt) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_NODE_TYPE.into()),
        }
    }

    /// The replica count halo enforces; `None`: the count is left as it is (adopted, unset).
    pub fn replicas(&self) -> Option<i32> {
        match (self.replicas, &self.adopt) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_REPLICAS),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Where the app reaches its Aurora cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseEndpoints {
    /// DB cluster identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_identifier: Option<String>,
    /// Cluster (writer) endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Reader endpoint (load-balanced over the readers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Secrets Manager secret holding the RDS-managed master password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    /// The cluster's `DbClusterResourceId`: its identity, which a cluster deleted and created
    /// (or restored from a snapshot) under the same identifier does not share. Once recorded,
    /// halo does not recreate a cluster that is gone (`DatabaseReady` reason `Missing`) nor touch
    /// one with another identity (`Replaced`) unless the app's `halo.dev/accept-store`
    /// annotation names this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// Where the app reaches its cache.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CacheEndpoints {
    /// Replication group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_group_id: Option<String>,
    /// Primary endpoint (follows failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Reader endpoint (spread over the replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// When the replication group was created (RFC 3339): its identity, which a group deleted
    /// and created (or restored) under the same id does not share. Once recorded, halo does not
    /// recreate a group that is gone (`CacheReady` reason `Missing`) nor touch one created at
    /// another time (`Replaced`) unless the app's `halo.dev/accept-store` annotation names this
    /// value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::api::HighlyAvailableApp;

    /// A minimal app with `data` (YAML lines under `spec:`) added; shared with api::storage's tests.
    pub(crate) fn app(data: &str) -> HighlyAvailableApp {
        let yaml = format!(
            "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: shop, namespace: shop}}\nspec:\n  image: shop:1\n  port: 8080\n{data}"
        );
        serde_saphyr::from_str(&yaml).expect("manifest parses")
    }

    /// (field, message) of every transition rule an update from `old` to `new` breaks.
    pub(crate) fn refusals(old: &str, new: &str) -> Vec<(String, String)> {
        match app(new).validate_cel_update(&app(old)) {
            Ok(()) => vec![],
            Err(errors) => errors
                .as_slice()
                .iter()
                .map(|e| (e.field_path.clone(), e.message.clone()))
                .collect(),
        }
    }

    const DB: &str = "  database: {engine: aurora-postgresql, instances: 2}\n";
    const ADOPTED: &str =
        "  database: {engine: aurora-postgresql, adopt: {clusterIdentifier: legacy-shop}}\n";
    const CACHE: &str = "  cache: {engine: redis, replicas: 1}\n";

    /// The engine of a running cluster cannot change: AWS cannot convert it.
    #[test]
    fn engines_are_immutable() {
        assert_eq!(
            refusals(DB, "  database: {engine: aurora-mysql, instances: 2}\n"),
            vec![(
                "spec.database.engine".to_string(),
                "database.engine is immutable: AWS cannot convert a cluster to another engine"
                    .to_string()
            )]
        );
        assert_eq!(
            refusals(CACHE, "  cache: {engine: valkey, replicas: 1}\n"),
            vec![(
                "spec.cache.engine".to_string(),
                "cache.engine is immutable: halo does not convert a replication group to another engine"
                    .to_string()
            )]
        );
    }

    /// The adopted identifier cannot change, appear or disappear under a running app.
    #[test]
    fn adoption_is_immutable() {
        let refused = vec![(
            "spec.database.adopt".to_string(),
            "database.adopt is immutable: halo cannot switch the app to another cluster"
                .to_string(),
        )];
        let other =
            "  database: {engine: aurora-postgresql, adopt: {clusterIdentifier: other-shop}}\n";
        assert_eq!(refusals(ADOPTED, other), refused);
        assert_eq!(refusals(DB, ADOPTED), refused);
        assert_eq!(refusals(ADOPTED, DB), refused);
        let adopted_cache = "  cache: {adopt: {replicationGroupId: legacy-cache}}\n";
        assert_eq!(
            refusals(CACHE, adopted_cache),
            vec![(
                "spec.cache.adopt".to_string(),
                "cache.adopt is immutable: halo cannot switch the app to another replication group"
                    .to_string()
            )]
        );
    }

    /// Removing a section would leave its data's fate undecided; deleting the app decides it.
    #[test]
    fn sections_cannot_be_removed() {
        assert_eq!(
            refusals(&format!("{DB}{CACHE}"), ""),
            vec![
                (
                    "spec.database".to_string(),
                    "database cannot be removed: delete the app instead, and its deletionPolicy decides what happens to the cluster".to_string()
                ),
                (
                    "spec.cache".to_string(),
                    "cache cannot be removed: delete the app instead, and its deletionPolicy decides what happens to the replication group".to_string()
                ),
            ]
        );
    }

    /// An adoption that leaves the shape out passes the multiAZ rules (it keeps what AWS has),
    /// and only a spec without `adopt` gets the defaults filled in.
    #[test]
    fn shape_defaults_apply_only_to_created_resources() {
        let adopted = app(&format!(
            "{ADOPTED}  cache: {{adopt: {{replicationGroupId: legacy-cache}}}}\n"
        ));
        assert!(adopted.validate_cel().is_ok());
        let db = adopted.spec.database.as_ref().expect("database");
        let cache = adopted.spec.cache.as_ref().expect("cache");
        assert_eq!((db.instances(), db.instance_class()), (None, None));
        assert_eq!((cache.replicas(), cache.node_type()), (None, None));
        let created = app("  database: {}\n  cache: {}\n");
        assert!(created.validate_cel().is_ok());
        let db = created.spec.database.as_ref().expect("database");
        let cache = created.spec.cache.as_ref().expect("cache");
        assert_eq!(
            (db.instances(), db.instance_class().as_deref()),
            (Some(2), Some("db.r6g.large"))
        );
        assert_eq!(
            (cache.replicas(), cache.node_type().as_deref()),
            (Some(2), Some("cache.r6g.large"))
        );
    }

    /// Adding a data layer to a running app, scaling it and changing its policy are allowed.
    #[test]
    fn ordinary_changes_are_accepted() {
        assert_eq!(refusals("", &format!("{DB}{CACHE}")), vec![]);
        assert_eq!(
            refusals(
                DB,
                "  database: {engine: aurora-postgresql, instances: 3, deletionPolicy: Retain}\n"
            ),
            vec![]
        );
        assert_eq!(refusals(ADOPTED, ADOPTED), vec![]);
    }
}
