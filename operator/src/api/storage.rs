//! `spec.dynamodb` (DynamoDB tables, optionally global), `spec.staticAssets` (an S3 bucket with
//! cross-region replication) and `spec.alarms` (CloudWatch alarms on what halo manages), and
//! their status fields.
//!
//! Every rule the API server can judge is a CEL rule here: unique table names, keys that never
//! change under a live table, a bucket that never changes name, S3's bucket naming rules, the
//! KMS key's form. What needs the operator's region or the app's namespace (a replica in the
//! operator's own region, a replica bucket equal to the default source bucket) is refused in
//! [`crate::validate`].

use kube::KubeSchema;
use kube::core::{Message, Reason, Rule};
use serde::{Deserialize, Serialize};

/// DynamoDB tables of the app. A table removed from the list follows its `deletionPolicy`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.tables.all(t, !oldSelf.tables.exists(o, o.name == t.name) || oldSelf.tables.exists(o, o.name == t.name && o.partitionKey == t.partitionKey && has(o.sortKey) == has(t.sortKey) && (!has(t.sortKey) || o.sortKey == t.sortKey)))")
        .message("dynamodb.tables[].partitionKey and sortKey are immutable: DynamoDB cannot change the key of a table (add a table under a new name instead)")
        .field_path(".tables")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct DynamoDbSpec {
    /// The tables. Names are unique; each becomes `<namespace>-<app>-<name>` in DynamoDB.
    #[serde(default)]
    #[schemars(length(max = 25))]
    // Reason FieldValueInvalid, not FieldValueDuplicate: the API server words a Duplicate
    // error as just "Duplicate value" and drops the rule's message (seen in e2e s3).
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.name == t.name))")
        .message("dynamodb.tables[].name must be unique")
        .reason(Reason::FieldValueInvalid))]
    pub tables: Vec<TableSpec>,
}

/// One DynamoDB table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.billingMode == 'PROVISIONED' ? (has(self.readCapacity) && has(self.writeCapacity)) : (!has(self.readCapacity) && !has(self.writeCapacity))")
        .message("dynamodb.tables[].readCapacity and writeCapacity are required with billingMode PROVISIONED and not allowed with PAY_PER_REQUEST")
        .field_path(".billingMode")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.replicaRegions) || size(self.replicaRegions) == 0 || self.billingMode == 'PAY_PER_REQUEST'")
        .message("dynamodb.tables[].replicaRegions needs billingMode PAY_PER_REQUEST: a provisioned global table needs write auto scaling, which halo does not manage")
        .field_path(".replicaRegions")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// Name of the table within the app (lowercase letters, digits, `-`). The Secret key is
    /// `DYNAMODB_TABLE_<NAME>` with `-` as `_`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"), length(min = 1, max = 64))]
    pub name: String,
    /// The partition (hash) key. Immutable.
    pub partition_key: KeyAttribute,
    /// The sort (range) key. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<KeyAttribute>,
    /// `PAY_PER_REQUEST` (on demand) or `PROVISIONED` (with readCapacity and writeCapacity).
    #[serde(default)]
    pub billing_mode: BillingMode,
    /// Read capacity units, with `PROVISIONED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 40000))]
    pub read_capacity: Option<i64>,
    /// Write capacity units, with `PROVISIONED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 1, "maximum" = 40000))]
    pub write_capacity: Option<i64>,
    /// Continuous backups with point-in-time recovery (the last 35 days).
    #[serde(default = "default_true")]
    pub point_in_time_recovery: bool,
    /// AWS deletion protection. While true, AWS refuses to delete the table and so does halo.
    #[serde(default = "default_true")]
    pub deletion_protection: bool,
    /// Regions with a replica (a global table, version 2019.11.21). Turns on the table's
    /// stream (NEW_AND_OLD_IMAGES), which replication needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.all(r, self.exists_one(s, s == r))")
        .message("dynamodb.tables[].replicaRegions must not repeat a region")
        .reason(Reason::FieldValueInvalid))]
    pub replica_regions: Vec<Region>,
    /// What happens to the table when it leaves the list or the app is deleted: `Retain`
    /// (keep it, remove halo's tags) or `Delete` (needs `deletionProtection: false`).
    #[serde(default)]
    pub deletion_policy: RetainOrDelete,
}

/// A key attribute of a table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KeyAttribute {
    /// Attribute name.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// `S` (string), `N` (number) or `B` (binary).
    #[serde(default, rename = "type")]
    pub type_: AttributeType,
}

/// DynamoDB scalar attribute type.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum AttributeType {
    #[default]
    S,
    N,
    B,
}

impl AttributeType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::S => "S",
            AttributeType::N => "N",
            AttributeType::B => "B",
        }
    }
}

/// DynamoDB billing mode.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    /// On demand.
    #[default]
    PayPerRequest,
    /// Fixed read and write capacity.
    Provisioned,
}

impl BillingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::PayPerRequest => "PAY_PER_REQUEST",
            BillingMode::Provisioned => "PROVISIONED",
        }
    }
}

/// What halo does with a table or bucket when it is no longer wanted.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum RetainOrDelete {
    /// Keep it; remove only halo's tags.
    #[default]
    Retain,
    /// Delete it.
    Delete,
}

/// An AWS region name such as `us-west-2`.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(transparent)]
pub struct Region(
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"), length(max = 32))] pub String,
);

/// An S3 bucket for static assets: versioned, encrypted, never public, old versions expired,
/// optionally replicated to a bucket in another region.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)")
        .message("staticAssets.bucket is immutable: halo does not move objects to another bucket")
        .field_path(".bucket")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.replicateTo) || self.versioning")
        .message("staticAssets.replicateTo needs versioning: S3 replicates only versioned buckets")
        .field_path(".versioning")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.replicateTo) || !has(self.kmsKeyId)")
        .message("staticAssets.replicateTo works with SSE-S3 encryption only: replicating KMS-encrypted objects needs a key in the other region, which halo does not manage yet")
        .field_path(".kmsKeyId")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!self.emptyOnDelete || self.deletionPolicy == 'Delete'")
        .message("staticAssets.emptyOnDelete applies only with deletionPolicy Delete")
        .field_path(".emptyOnDelete")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.bucket) || !has(self.replicateTo) || !has(self.replicateTo.bucket) || self.replicateTo.bucket != self.bucket")
        .message("staticAssets.replicateTo.bucket must differ from staticAssets.bucket: S3 replicates into another bucket, and bucket names are global")
        .field_path(".replicateTo.bucket")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct StaticAssetsSpec {
    /// Bucket name. Default: `<namespace>-<app>-assets` (shortened with a hash when too long).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"),
        length(min = 3, max = 63)
    )]
    #[x_kube(
        validation = bucket_without_adjacent_dots("staticAssets.bucket"),
        validation = bucket_not_an_ip_address("staticAssets.bucket"),
        validation = bucket_without_reserved_affix("staticAssets.bucket")
    )]
    pub bucket: Option<String>,
    /// Keep every version of every object (required for replication).
    #[serde(default = "default_true")]
    pub versioning: bool,
    /// Default encryption with this KMS key: a key id (`1234abcd-12ab-34cd-56ef-1234567890ab`,
    /// or `mrk-...` for a multi-Region key), `alias/<name>`, or a key or alias ARN. SSE-S3
    /// (AES-256) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(KMS_KEY_RULE)
        .message("staticAssets.kmsKeyId must be a KMS key id (a UUID, or mrk- and 32 hex digits for a multi-Region key), alias/<name>, or a key or alias ARN")
        .reason(Reason::FieldValueInvalid))]
    pub kms_key_id: Option<String>,
    /// Days after which a version that is no longer current is deleted.
    #[serde(default = "default_noncurrent_days")]
    #[schemars(extend("minimum" = 1, "maximum" = 3650))]
    pub noncurrent_version_expiration_days: i32,
    /// Replicate every object to a bucket in another region, which halo creates with
    /// versioning. Needs the operator's `--s3-replication-role-arn`. Changing or removing it
    /// stops replication to the old replica bucket, which then follows `deletionPolicy`
    /// (Retain: halo's tags removed; Delete: deleted once empty, or emptied with `emptyOnDelete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicate_to: Option<ReplicateTo>,
    /// What happens to the bucket (and the replica bucket) when the app is deleted: `Retain`
    /// or `Delete`. Delete refuses a bucket that holds objects unless `emptyOnDelete` is true.
    #[serde(default)]
    pub deletion_policy: RetainOrDelete,
    /// With `deletionPolicy: Delete`, delete every object version first. Irreversible.
    #[serde(default)]
    pub empty_on_delete: bool,
}

/// The destination of cross-region replication.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicateTo {
    /// Region of the replica bucket.
    pub region: Region,
    /// Replica bucket name, not the source bucket's. Default: the source bucket's name with
    /// `-<region>` appended (shortened with a hash when too long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"),
        length(min = 3, max = 63)
    )]
    #[x_kube(
        validation = bucket_without_adjacent_dots("staticAssets.replicateTo.bucket"),
        validation = bucket_not_an_ip_address("staticAssets.replicateTo.bucket"),
        validation = bucket_without_reserved_affix("staticAssets.replicateTo.bucket")
    )]
    pub bucket: Option<String>,
}

/// A KMS key id (UUID or multi-Region `mrk-`), an alias, or a key or alias ARN.
const KMS_KEY_RULE: &str = "self.matches('^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:)?(key/)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32})$') || self.matches('^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:)?alias/[A-Za-z0-9/_-]{1,250}$')";

// S3's bucket naming rules beyond the pattern (3-63 characters of a-z, 0-9, `.` and `-`,
// beginning and ending with a letter or digit), for the bucket field named `field`.

fn bucket_without_adjacent_dots(field: &str) -> Rule {
    Rule::new("!self.contains('..')")
        .message(Message::Message(format!(
            "{field} must not contain two adjacent dots (S3 bucket naming rules)"
        )))
        .reason(Reason::FieldValueInvalid)
}

fn bucket_not_an_ip_address(field: &str) -> Rule {
    Rule::new("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')")
        .message(Message::Message(format!(
            "{field} must not be formatted as an IP address (S3 bucket naming rules)"
        )))
        .reason(Reason::FieldValueInvalid)
}

fn bucket_without_reserved_affix(field: &str) -> Rule {
    Rule::new("!(self.startsWith('xn--') || self.startsWith('sthree-') || self.startsWith('amzn-s3-demo-') || self.endsWith('-s3alias') || self.endsWith('--ol-s3') || self.endsWith('.mrap') || self.endsWith('--x-s3') || self.endsWith('--table-s3'))")
        .message(Message::Message(format!(
            "{field} must not start with xn--, sthree- or amzn-s3-demo-, nor end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3: S3 reserves them"
        )))
        .reason(Reason::FieldValueInvalid)
}

/// CloudWatch alarms on what halo manages. Removing the section (or `enabled: false`)
/// deletes them; so does deleting the app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlarmsSpec {
    /// Create the alarms.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// SNS topic notified when an alarm fires and when it recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$"))]
    pub sns_topic_arn: Option<String>,
    /// The ALB's ARN suffix (`app/<name>/<id>`, the `LoadBalancer` dimension of its metrics).
    /// The Ingress shows only the ALB's DNS name, so the ALB alarms wait for this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^app/[A-Za-z0-9-]+/[0-9a-f]+$"), length(max = 128))]
    pub load_balancer_arn_suffix: Option<String>,
    /// The target group's ARN suffix (`targetgroup/<name>/<id>`): the unhealthy-host alarm
    /// needs it, since ALB publishes host counts per target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$"),
        length(max = 128)
    )]
    pub target_group_arn_suffix: Option<String>,
    /// Thresholds; each has a default.
    #[serde(default)]
    pub thresholds: AlarmThresholds,
}

/// Alarm thresholds. Each alarm fires when the metric crosses its threshold in 3 of the last 5
/// minutes (CPU: 5 of 5).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlarmThresholds {
    /// ALB target 5xx responses per minute above which the alarm fires.
    #[serde(default = "default_alb_5xx")]
    #[schemars(extend("minimum" = 0))]
    pub alb_target_5xx_per_minute: f64,
    /// Unhealthy targets at or above which the alarm fires.
    #[serde(default = "default_one")]
    #[schemars(extend("minimum" = 1))]
    pub alb_unhealthy_hosts: f64,
    /// Aurora CPU utilization (percent) above which the alarm fires.
    #[serde(default = "default_cpu", rename = "databaseCPUPercent")]
    #[schemars(extend("minimum" = 1, "maximum" = 100))]
    pub database_cpu_percent: f64,
    /// Aurora freeable memory (MiB) below which the alarm fires.
    #[serde(default = "default_memory", rename = "databaseFreeableMemoryMiB")]
    #[schemars(extend("minimum" = 1))]
    pub database_freeable_memory_mib: f64,
    /// Aurora replica lag (milliseconds) above which the alarm fires.
    #[serde(default = "default_db_lag")]
    #[schemars(extend("minimum" = 1))]
    pub database_replica_lag_milliseconds: f64,
    /// ElastiCache CPU utilization (percent) above which the alarm fires.
    #[serde(default = "default_cpu", rename = "cacheCPUPercent")]
    #[schemars(extend("minimum" = 1, "maximum" = 100))]
    pub cache_cpu_percent: f64,
    /// ElastiCache evictions per minute above which the alarm fires.
    #[serde(default = "default_evictions")]
    #[schemars(extend("minimum" = 0))]
    pub cache_evictions_per_minute: f64,
    /// ElastiCache replication lag (seconds) above which the alarm fires.
    #[serde(default = "default_cache_lag")]
    #[schemars(extend("minimum" = 1))]
    pub cache_replication_lag_seconds: f64,
    /// DynamoDB throttled read or write events per minute above which the alarm fires.
    #[serde(
        default = "default_throttles",
        rename = "dynamodbThrottleEventsPerMinute"
    )]
    #[schemars(extend("minimum" = 0))]
    pub dynamodb_throttle_events_per_minute: f64,
}

impl Default for AlarmThresholds {
    fn default() -> Self {
        AlarmThresholds {
            alb_target_5xx_per_minute: default_alb_5xx(),
            alb_unhealthy_hosts: default_one(),
            database_cpu_percent: default_cpu(),
            database_freeable_memory_mib: default_memory(),
            database_replica_lag_milliseconds: default_db_lag(),
            cache_cpu_percent: default_cpu(),
            cache_evictions_per_minute: default_evictions(),
            cache_replication_lag_seconds: default_cache_lag(),
            dynamodb_throttle_events_per_minute: default_throttles(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_noncurrent_days() -> i32 {
    30
}
fn default_alb_5xx() -> f64 {
    10.0
}
fn default_one() -> f64 {
    1.0
}
fn default_cpu() -> f64 {
    80.0
}
fn default_memory() -> f64 {
    256.0
}
fn default_db_lag() -> f64 {
    1000.0
}
fn default_evictions() -> f64 {
    100.0
}
fn default_cache_lag() -> f64 {
    30.0
}
fn default_throttles() -> f64 {
    10.0
}

/// What halo created for one table: the record that lets a table removed from the spec
/// follow its deletion policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// Name in the spec.
    pub name: String,
    /// DynamoDB table name.
    pub table_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// DynamoDB's status word (CREATING, ACTIVE, UPDATING, DELETING).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The policy the table follows when it leaves the spec.
    #[serde(default)]
    pub deletion_policy: RetainOrDelete,
    /// Gone from the spec; halo is carrying out the deletion policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// The static assets bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaticAssetsStatus {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The replica bucket in the other region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_bucket: Option<String>,
}

/// One CloudWatch alarm and its state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStatus {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
}

#[cfg(test)]
mod tests {
    use crate::api::HighlyAvailableApp;
    use crate::api::data::tests::refusals;

    const CARTS: &str = "  dynamodb: {tables: [{name: carts, partitionKey: {name: id}}]}\n";

    /// DynamoDB cannot re-key a table: a changed or added sort key is refused.
    #[test]
    fn table_keys_are_immutable() {
        let refused = vec![(
            "spec.dynamodb.tables".to_string(),
            "dynamodb.tables[].partitionKey and sortKey are immutable: DynamoDB cannot change the key of a table (add a table under a new name instead)".to_string(),
        )];
        assert_eq!(
            refusals(
                CARTS,
                "  dynamodb: {tables: [{name: carts, partitionKey: {name: id, type: N}}]}\n"
            ),
            refused
        );
        assert_eq!(
            refusals(
                CARTS,
                "  dynamodb: {tables: [{name: carts, partitionKey: {name: id}, sortKey: {name: at}}]}\n"
            ),
            refused
        );
    }

    /// Adding a table, removing one, or changing billing and replicas is allowed.
    #[test]
    fn ordinary_table_changes_are_accepted() {
        let two = "  dynamodb: {tables: [{name: carts, partitionKey: {name: id}, replicaRegions: [us-west-2]}, {name: orders, partitionKey: {name: id}, sortKey: {name: at, type: N}}]}\n";
        assert_eq!(refusals(CARTS, two), vec![]);
        assert_eq!(refusals(two, CARTS), vec![]);
        assert_eq!(refusals(CARTS, ""), vec![]);
    }

    /// The storage sample passes the schema's CEL rules and renders its Secret with the tables.
    #[test]
    fn storage_sample_is_valid() {
        let sample: HighlyAvailableApp =
            serde_saphyr::from_str(include_str!("../../../config/samples/storage.yaml"))
                .expect("sample parses");
        if let Err(e) = sample.validate_cel() {
            panic!("sample refused: {e:?}");
        }
        let app = crate::fixtures::validated(include_str!("../../../config/samples/storage.yaml"));
        let data = crate::render::secret::connection_data(&app, &Default::default());
        assert_eq!(
            data.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "DYNAMODB_TABLE_CARTS".to_string(),
                    "default-catalog-carts".to_string()
                ),
                (
                    "DYNAMODB_TABLE_ORDERS".to_string(),
                    "default-catalog-orders".to_string()
                ),
                (
                    "STATIC_ASSETS_BUCKET".to_string(),
                    "default-catalog-assets".to_string()
                ),
                (
                    "STATIC_ASSETS_REPLICA_REGION".to_string(),
                    "us-west-2".to_string()
                ),
            ]
        );
    }

    /// Valid bucket names and KMS keys pass every CEL rule: dotted names, names that only
    /// contain a reserved word, every form of KMS key id, alias and ARN.
    #[test]
    fn valid_buckets_and_kms_keys_pass_the_cel_rules() {
        for assets in [
            "{bucket: assets.example.com, replicateTo: {region: us-west-2, bucket: assets.example.com.replica}}",
            "{bucket: xn-shop, replicateTo: {region: us-west-2, bucket: shop-s3alias-x}}",
            "{bucket: 192.168.1.1.assets, replicateTo: {region: us-west-2}}",
            "{bucket: shop-mrap, kmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab}",
            "{kmsKeyId: mrk-1234abcd12ab34cd56ef1234567890ab}",
            "{kmsKeyId: alias/aws/s3}",
            "{kmsKeyId: alias/shop_assets-key}",
            "{kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'}",
            "{kmsKeyId: 'arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab'}",
            "{kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:alias/shop'}",
        ] {
            let yaml = format!(
                "{}\n  staticAssets: {assets}\n",
                crate::fixtures::SMALL.trim_end()
            );
            let app: HighlyAvailableApp = serde_saphyr::from_str(&yaml).expect("app parses");
            if let Err(e) = app.validate_cel() {
                panic!("{assets} refused: {e:?}");
            }
        }
    }

    /// The bucket name cannot change under a live app.
    #[test]
    fn bucket_is_immutable() {
        assert_eq!(
            refusals(
                "  staticAssets: {bucket: shop-assets}\n",
                "  staticAssets: {bucket: shop-assets-2}\n"
            ),
            vec![(
                "spec.staticAssets.bucket".to_string(),
                "staticAssets.bucket is immutable: halo does not move objects to another bucket"
                    .to_string()
            )]
        );
    }
}
