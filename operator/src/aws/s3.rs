//! `aws::s3`: the app's static assets bucket: versioned, default encryption, Block Public
//! Access on, noncurrent versions expired, and optionally replicated to a bucket in another
//! region that halo creates with versioning.
//!
//! [`desired`], [`plan`] and [`readiness`] are pure; [`ensure`] and [`cleanup`] call S3. A
//! stable bucket costs one read per setting (tags, versioning, encryption, public access
//! block, lifecycle, replication) and no mutating call.
//!
//! A replica bucket the status recorded that the spec no longer names (a changed or removed
//! `replicateTo`) loses halo's replication rule and then gets the deletion policy; until that
//! is done the status keeps recording it.
//!
//! S3 has no "create with tags" for general purpose buckets, so a crash between CreateBucket
//! and PutBucketTagging leaves an untagged bucket: halo claims a bucket with its name only when
//! it is untagged and empty, which is exactly that case.

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, DeleteMarkerReplication, DeleteMarkerReplicationStatus,
    Destination, ExpirationStatus, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectIdentifier, PublicAccessBlockConfiguration, ReplicationConfiguration, ReplicationRule,
    ReplicationRuleFilter, ReplicationRuleStatus, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};

use super::policy::{cleaned, ownership_of};
use super::service::{Outcome, Service};
use super::{
    Aws, AwsConfig, Change, CleanupReport, OWNERSHIP_TAG_KEYS, Ownership, Readiness, build_error,
    is_code, ownership, ownership_tags, reasons, short_hash,
};
use crate::api::storage::RetainOrDelete;
use crate::api::storage::StaticAssetsStatus;
use crate::meta::Owner;
use crate::observed::AwsView;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// What the resource is called in messages.
pub use crate::names::{MAX_BUCKET, default_bucket};

pub const KIND: &str = "S3 bucket";
/// Id of halo's lifecycle rule; other rules on the bucket are left as they are.
pub const LIFECYCLE_RULE_ID: &str = "halo-expire-noncurrent-versions";
/// Id of halo's replication rule.
pub const REPLICATION_RULE_ID: &str = "halo-replicate-all";
/// Most object versions deleted per reconcile when emptying a bucket (1000 per request).
const MAX_EMPTY_PAGES: usize = 20;

/// The replica bucket in another region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaBucket {
    pub region: String,
    pub bucket: String,
}

/// The bucket halo wants for an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBucket {
    pub owner: Owner,
    pub bucket: String,
    /// The default bucket (and replica) an earlier halo derived, when it differs: a bucket
    /// under it tagged with the app's uid is used (never created).
    pub legacy: Option<LegacyBucket>,
    pub versioning: bool,
    pub kms_key_id: Option<String>,
    pub noncurrent_days: i32,
    pub replica: Option<ReplicaBucket>,
    /// From the operator's configuration; replication needs it.
    pub replication_role_arn: Option<String>,
    pub deletion_policy: RetainOrDelete,
    pub empty_on_delete: bool,
    pub tags: Vec<(String, String)>,
    /// A replica bucket an earlier reconcile recorded that the spec no longer names (after a
    /// `replicateTo` change or removal): halo stops replicating to it and carries out the
    /// deletion policy on it. Set by [`DesiredBucket::with_recorded`].
    pub former_replica: Option<String>,
}

impl DesiredBucket {
    /// Takes note of the replica bucket `status.staticAssets` recorded, when the spec no
    /// longer names it.
    pub fn with_recorded(mut self, recorded: Option<&StaticAssetsStatus>) -> Self {
        self.former_replica = recorded
            .and_then(|r| r.replica_bucket.clone())
            .filter(|old| {
                *old != self.bucket && self.replica.as_ref().is_none_or(|r| &r.bucket != old)
            });
        self
    }
}

/// The names an earlier halo gave the bucket and its replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyBucket {
    pub bucket: String,
    pub replica: Option<ReplicaBucket>,
}

impl DesiredBucket {
    /// The same bucket under its legacy names, when it has them.
    pub fn under_legacy(&self) -> Option<DesiredBucket> {
        let legacy = self.legacy.clone()?;
        Some(DesiredBucket {
            bucket: legacy.bucket,
            replica: legacy.replica,
            legacy: None,
            ..self.clone()
        })
    }
}

/// The default replica bucket name: the source's with `-<region>`, hashed when too long.
pub fn default_replica_bucket(source: &str, region: &str) -> String {
    let plain = format!("{source}-{region}");
    if plain.len() <= MAX_BUCKET {
        return plain;
    }
    let hash = short_hash(source);
    let keep = MAX_BUCKET - region.len() - hash.len() - 2;
    let head: String = source.chars().take(keep).collect();
    format!("{}-{hash}-{region}", head.trim_end_matches(['-', '.']))
}

/// The bucket the app's `spec.staticAssets` asks for; `None` without one.
pub fn desired(app: &ValidatedApp, config: &AwsConfig) -> Option<DesiredBucket> {
    let s = app.static_assets.as_ref()?;
    let bucket = app.names.bucket.clone()?;
    let replica_of = |source: &str| {
        s.replicate_to.as_ref().map(|r| ReplicaBucket {
            region: r.region.0.clone(),
            bucket: r
                .bucket
                .clone()
                .unwrap_or_else(|| default_replica_bucket(source, &r.region.0)),
        })
    };
    let replica = replica_of(&bucket);
    let legacy = app.names.legacy_bucket.as_ref().map(|legacy| LegacyBucket {
        bucket: legacy.clone(),
        replica: replica_of(legacy),
    });
    Some(DesiredBucket {
        owner: app.owner.clone(),
        bucket,
        legacy,
        versioning: s.versioning,
        kms_key_id: s.kms_key_id.clone(),
        noncurrent_days: s.noncurrent_version_expiration_days.max(1),
        replica,
        replication_role_arn: config.s3_replication_role_arn.clone(),
        deletion_policy: s.deletion_policy,
        empty_on_delete: s.empty_on_delete,
        tags: ownership_tags(&app.owner),
        former_replica: None,
    })
}

/// Default encryption: (algorithm, KMS key).
pub type Encryption = (String, Option<String>);

/// The settings of one bucket as S3 reports them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedBucket {
    pub bucket: String,
    pub tags: Vec<(String, String)>,
    /// `Enabled`, `Suspended`, or `None` for never versioned.
    pub versioning: Option<String>,
    pub encryption: Option<Encryption>,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
    pub public_access_block: Option<[bool; 4]>,
    /// Noncurrent days of halo's lifecycle rule, when present and enabled.
    pub lifecycle_days: Option<i32>,
    /// Every other lifecycle rule, kept when halo writes its own.
    pub other_lifecycle_rules: Vec<LifecycleRule>,
    /// (role, destination bucket ARN) of halo's replication rule.
    pub replication: Option<(String, String)>,
}

/// What the bucket needs. Settings only apply to the source bucket unless noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketChange {
    Versioning(bool),
    Encryption(Encryption),
    BlockPublicAccess,
    Lifecycle(i32),
    Replication {
        role: String,
        destination: String,
    },
    /// Removes halo's replication rule (the spec no longer replicates).
    StopReplication,
}

impl BucketChange {
    pub fn describe(&self) -> String {
        match self {
            BucketChange::Versioning(true) => "versioning enabled".into(),
            BucketChange::Versioning(false) => "versioning suspended".into(),
            BucketChange::Encryption((alg, None)) => format!("default encryption {alg}"),
            BucketChange::Encryption((alg, Some(key))) => {
                format!("default encryption {alg} with key {key}")
            }
            BucketChange::BlockPublicAccess => "all public access blocked".into(),
            BucketChange::Lifecycle(days) => {
                format!("noncurrent versions expire after {days} days")
            }
            BucketChange::Replication { destination, .. } => {
                format!("replicating to {destination}")
            }
            BucketChange::StopReplication => "replication stopped".into(),
        }
    }
}

/// What one bucket should look like: the source bucket, or the replica (versioning, SSE-S3,
/// no public access; no lifecycle, no replication of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSettings {
    pub versioning: bool,
    pub encryption: Encryption,
    pub lifecycle_days: Option<i32>,
    pub replication: Option<(String, String)>,
    /// halo's replication rule must go: it replicated to a bucket the spec no longer names.
    pub stop_replication: bool,
}

/// The settings of the source bucket; the replication role is needed only with a replica.
pub fn source_settings(d: &DesiredBucket) -> BucketSettings {
    BucketSettings {
        versioning: d.versioning,
        encryption: match &d.kms_key_id {
            Some(key) => ("aws:kms".into(), Some(key.clone())),
            None => ("AES256".into(), None),
        },
        lifecycle_days: Some(d.noncurrent_days),
        replication: d.replica.as_ref().and_then(|r| {
            d.replication_role_arn
                .clone()
                .map(|role| (role, format!("arn:aws:s3:::{}", r.bucket)))
        }),
        stop_replication: d.replica.is_none() && d.former_replica.is_some(),
    }
}

/// The settings of the replica bucket.
pub fn replica_settings() -> BucketSettings {
    BucketSettings {
        versioning: true,
        encryption: ("AES256".into(), None),
        lifecycle_days: None,
        replication: None,
        stop_replication: false,
    }
}

/// The changes that bring a bucket to its settings.
pub fn plan(want: &BucketSettings, o: &ObservedBucket) -> Vec<BucketChange> {
    let mut changes = Vec::new();
    let versioned = o.versioning.as_deref() == Some("Enabled");
    if want.versioning != versioned && (want.versioning || o.versioning.is_some()) {
        changes.push(BucketChange::Versioning(want.versioning));
    }
    if o.encryption.as_ref() != Some(&want.encryption) {
        changes.push(BucketChange::Encryption(want.encryption.clone()));
    }
    if o.public_access_block != Some([true; 4]) {
        changes.push(BucketChange::BlockPublicAccess);
    }
    if let Some(days) = want.lifecycle_days
        && o.lifecycle_days != Some(days)
    {
        changes.push(BucketChange::Lifecycle(days));
    }
    if let Some((role, destination)) = &want.replication
        && o.replication.as_ref() != Some(&(role.clone(), destination.clone()))
    {
        changes.push(BucketChange::Replication {
            role: role.clone(),
            destination: destination.clone(),
        });
    }
    if want.stop_replication && o.replication.is_some() {
        changes.push(BucketChange::StopReplication);
    }
    changes
}

/// Everything [`ensure`] saw and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketReport {
    pub bucket: String,
    pub region: Option<String>,
    pub replica: Option<ReplicaBucket>,
    pub changes: Vec<Change>,
    /// The deletion policy on the former replica bucket, when one is still being cleaned up:
    /// until it is done, the status keeps recording that bucket.
    pub former_replica: Option<CleanupReport>,
}

/// The `StaticAssetsReady` condition of a bucket [`ensure`] brought to the spec.
pub fn readiness(d: &DesiredBucket, report: &BucketReport) -> Readiness {
    let s = source_settings(d);
    let mut parts = vec![
        if d.versioning {
            "versioned".to_string()
        } else {
            "not versioned".to_string()
        },
        match &s.encryption {
            (_, Some(key)) => format!("encrypted with KMS key {key}"),
            _ => "encrypted with SSE-S3".to_string(),
        },
        "public access blocked".to_string(),
        format!(
            "noncurrent versions expire after {} days",
            d.noncurrent_days
        ),
    ];
    if let Some(r) = &report.replica {
        parts.push(format!("replicated to {} in {}", r.bucket, r.region));
    }
    let region = report
        .region
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    Readiness {
        ready: true,
        reason: reasons::AVAILABLE,
        message: format!("{KIND} {}{region}: {}", report.bucket, parts.join(", ")),
        busy: false,
    }
}

fn tags_of(out: &[Tag]) -> Vec<(String, String)> {
    out.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn sdk_tags(tags: &[(String, String)], api: &str) -> Result<Tagging> {
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(build_error(api))?;
    Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .map_err(build_error(api))
}

/// What an AccessDenied on reading a bucket's tags means: halo's IAM role lacks the
/// permission, or the bucket belongs to another account (S3 answers both the same way).
pub fn tags_access_denied(bucket: &str, aws_message: &str) -> Error {
    Error::Aws {
        api: "s3:GetBucketTagging".into(),
        code: "AccessDenied".into(),
        message: format!(
            "halo may not read the tags of {KIND} {bucket} ({aws_message}): grant s3:GetBucketTagging on arn:aws:s3:::{bucket} to the operator's IAM role (see config/iam/halo-policy.json); if the bucket belongs to another AWS account, choose another bucket name"
        ),
        throttled: false,
    }
}

/// The bucket's tags; `None` when it does not exist.
async fn bucket_tags(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<Vec<(String, String)>>> {
    match aws
        .call(
            "s3:GetBucketTagging",
            s3.get_bucket_tagging().bucket(bucket).send(),
        )
        .await
    {
        Ok(out) => Ok(Some(tags_of(out.tag_set()))),
        Err(e) if is_code(&e, "NoSuchTagSet") => Ok(Some(Vec::new())),
        Err(e) if is_code(&e, "NoSuchBucket") => Ok(None),
        Err(Error::Aws { code, message, .. }) if code == "AccessDenied" => {
            Err(tags_access_denied(bucket, &message))
        }
        Err(e) => Err(e),
    }
}

/// The region a bucket is in; `None` when it does not exist.
async fn bucket_region(aws: &Aws, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<String>> {
    match aws
        .call(
            "s3:GetBucketLocation",
            s3.get_bucket_location().bucket(bucket).send(),
        )
        .await
    {
        // us-east-1 has no location constraint; `EU` is eu-west-1's legacy name.
        Ok(out) => Ok(Some(
            match out.location_constraint().map(|c| c.as_str()) {
                None | Some("") => "us-east-1",
                Some("EU") => "eu-west-1",
                Some(region) => region,
            }
            .to_string(),
        )),
        Err(e) if is_code(&e, "NoSuchBucket") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bucket's versioning status (`Enabled`, `Suspended`; `None`: never versioned).
///
/// moto 5.2.5 answers GetBucketVersioning with a `GetBucketVersioningResponse` root where S3
/// sends `VersioningConfiguration`, which the SDK refuses to parse; for exactly that answer the
/// status is read from the body. S3's own answers never take that path.
pub async fn versioning_status(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<String>> {
    let api = "s3:GetBucketVersioning";
    aws.calls().record(api);
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => Ok(out.status().map(|s| s.as_str().to_string())),
        Err(aws_sdk_s3::error::SdkError::ServiceError(ctx))
            if ctx.err().meta().code().is_none() =>
        {
            let body = ctx
                .raw()
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if !body.contains("<GetBucketVersioningResponse") {
                return Err(Error::Aws {
                    api: api.into(),
                    code: "Unknown".into(),
                    message: format!("unparseable answer: {body}"),
                    throttled: false,
                });
            }
            Ok(body
                .split_once("<Status>")
                .and_then(|(_, rest)| rest.split_once("</Status>"))
                .map(|(status, _)| status.trim().to_string()))
        }
        Err(e) => Err(super::aws_error(api)(e)),
    }
}

/// Whether the bucket holds any object version or delete marker.
async fn is_empty(aws: &Aws, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    let out = aws
        .call(
            "s3:ListObjectVersions",
            s3.list_object_versions().bucket(bucket).max_keys(1).send(),
        )
        .await?;
    Ok(out.versions().is_empty() && out.delete_markers().is_empty())
}

async fn create_bucket(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: Option<&str>,
) -> Result<()> {
    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region that takes no location constraint.
    if let Some(region) = region.filter(|r| *r != "us-east-1") {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match aws.call("s3:CreateBucket", request.send()).await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, "BucketAlreadyOwnedByYou") => Ok(()),
        Err(e) if is_code(&e, "BucketAlreadyExists") => Err(Error::InvalidSpec {
            field: "spec.staticAssets.bucket".into(),
            message: format!(
                "bucket name {bucket} is taken by another AWS account (bucket names are global): choose another name"
            ),
        }),
        Err(e) => Err(e),
    }
}

async fn observe(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tags: Vec<(String, String)>,
    want: &BucketSettings,
    created: bool,
) -> Result<ObservedBucket> {
    // A bucket created in this pass has never been versioned; not asking also spares moto's
    // answer for that case, a `GetBucketVersioningResponse` root the SDK cannot parse.
    let versioning = if created {
        None
    } else {
        versioning_status(aws, s3, bucket).await?
    };
    let encryption = match aws
        .call(
            "s3:GetBucketEncryption",
            s3.get_bucket_encryption().bucket(bucket).send(),
        )
        .await
    {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| {
                (
                    d.sse_algorithm().as_str().to_string(),
                    d.kms_master_key_id().map(str::to_string),
                )
            }),
        Err(e) if is_code(&e, "ServerSideEncryptionConfigurationNotFoundError") => None,
        Err(e) => return Err(e),
    };
    let public_access_block = match aws
        .call(
            "s3:GetPublicAccessBlock",
            s3.get_public_access_block().bucket(bucket).send(),
        )
        .await
    {
        Ok(out) => out.public_access_block_configuration().map(|c| {
            [
                c.block_public_acls().unwrap_or(false),
                c.ignore_public_acls().unwrap_or(false),
                c.block_public_policy().unwrap_or(false),
                c.restrict_public_buckets().unwrap_or(false),
            ]
        }),
        Err(e) if is_code(&e, "NoSuchPublicAccessBlockConfiguration") => None,
        Err(e) => return Err(e),
    };
    let mut lifecycle_days = None;
    let mut other_lifecycle_rules = Vec::new();
    if want.lifecycle_days.is_some() {
        match aws
            .call(
                "s3:GetBucketLifecycleConfiguration",
                s3.get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send(),
            )
            .await
        {
            Ok(out) => {
                for rule in out.rules() {
                    if rule.id() == Some(LIFECYCLE_RULE_ID) {
                        let whole_bucket = rule
                            .filter()
                            .is_none_or(|f| f.prefix().unwrap_or_default().is_empty());
                        if *rule.status() == ExpirationStatus::Enabled && whole_bucket {
                            lifecycle_days = rule
                                .noncurrent_version_expiration()
                                .and_then(|n| n.noncurrent_days());
                        }
                    } else {
                        other_lifecycle_rules.push(rule.clone());
                    }
                }
            }
            Err(e) if is_code(&e, "NoSuchLifecycleConfiguration") => {}
            Err(e) => return Err(e),
        }
    }
    let mut replication = None;
    if want.replication.is_some() || want.stop_replication {
        match aws
            .call(
                "s3:GetBucketReplication",
                s3.get_bucket_replication().bucket(bucket).send(),
            )
            .await
        {
            Ok(out) => {
                replication = out.replication_configuration().and_then(|c| {
                    let [rule] = c.rules() else { return None };
                    let enabled = *rule.status() == ReplicationRuleStatus::Enabled
                        && rule.id() == Some(REPLICATION_RULE_ID);
                    let destination = rule.destination()?.bucket().to_string();
                    enabled.then(|| (c.role().to_string(), destination))
                });
            }
            Err(e) if is_code(&e, "ReplicationConfigurationNotFoundError") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ObservedBucket {
        bucket: bucket.to_string(),
        tags,
        versioning,
        encryption,
        public_access_block,
        lifecycle_days,
        other_lifecycle_rules,
        replication,
    })
}

async fn apply(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    o: &ObservedBucket,
    change: &BucketChange,
) -> Result<()> {
    let bucket = o.bucket.as_str();
    match change {
        BucketChange::Versioning(on) => {
            let status = if *on {
                BucketVersioningStatus::Enabled
            } else {
                BucketVersioningStatus::Suspended
            };
            aws.call(
                "s3:PutBucketVersioning",
                s3.put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder().status(status).build(),
                    )
                    .send(),
            )
            .await?;
        }
        BucketChange::Encryption((alg, key)) => {
            let api = "s3:PutBucketEncryption";
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::from(alg.as_str()))
                .set_kms_master_key_id(key.clone())
                .build()
                .map_err(build_error(api))?;
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(default)
                        .bucket_key_enabled(key.is_some())
                        .build(),
                )
                .build()
                .map_err(build_error(api))?;
            aws.call(
                api,
                s3.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send(),
            )
            .await?;
        }
        BucketChange::BlockPublicAccess => {
            aws.call(
                "s3:PutPublicAccessBlock",
                s3.put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(
                        PublicAccessBlockConfiguration::builder()
                            .block_public_acls(true)
                            .ignore_public_acls(true)
                            .block_public_policy(true)
                            .restrict_public_buckets(true)
                            .build(),
                    )
                    .send(),
            )
            .await?;
        }
        BucketChange::Lifecycle(days) => {
            let api = "s3:PutBucketLifecycleConfiguration";
            let ours = LifecycleRule::builder()
                .id(LIFECYCLE_RULE_ID)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(*days)
                        .build(),
                )
                .build()
                .map_err(build_error(api))?;
            let mut rules = o.other_lifecycle_rules.clone();
            rules.push(ours);
            aws.call(
                api,
                s3.put_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .lifecycle_configuration(
                        BucketLifecycleConfiguration::builder()
                            .set_rules(Some(rules))
                            .build()
                            .map_err(build_error(api))?,
                    )
                    .send(),
            )
            .await?;
        }
        BucketChange::Replication { role, destination } => {
            let api = "s3:PutBucketReplication";
            let rule = ReplicationRule::builder()
                .id(REPLICATION_RULE_ID)
                .priority(1)
                .status(ReplicationRuleStatus::Enabled)
                .filter(ReplicationRuleFilter::builder().prefix("").build())
                .delete_marker_replication(
                    DeleteMarkerReplication::builder()
                        .status(DeleteMarkerReplicationStatus::Enabled)
                        .build(),
                )
                .destination(
                    Destination::builder()
                        .bucket(destination)
                        .build()
                        .map_err(build_error(api))?,
                )
                .build()
                .map_err(build_error(api))?;
            let config = ReplicationConfiguration::builder()
                .role(role)
                .rules(rule)
                .build()
                .map_err(build_error(api))?;
            aws.call(
                api,
                s3.put_bucket_replication()
                    .bucket(bucket)
                    .replication_configuration(config)
                    .send(),
            )
            .await?;
        }
        BucketChange::StopReplication => {
            aws.call(
                "s3:DeleteBucketReplication",
                s3.delete_bucket_replication().bucket(bucket).send(),
            )
            .await?;
        }
    }
    Ok(())
}

/// Creates (or claims, see the module doc) one bucket and brings it to `want`.
async fn ensure_bucket(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    d: &DesiredBucket,
    bucket: &str,
    region: Option<&str>,
    want: &BucketSettings,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let not_ours = || Error::InvalidSpec {
        field: "spec.staticAssets.bucket".into(),
        message: format!(
            "{KIND} {bucket} exists and is not owned by this HighlyAvailableApp: choose another bucket name"
        ),
    };
    let mut created = false;
    let tags = match bucket_tags(aws, s3, bucket).await {
        Ok(Some(tags)) => tags,
        Ok(None) => {
            created = true;
            create_bucket(aws, s3, bucket, region).await?;
            changes.push(Change::new(
                "Created",
                format!(
                    "{KIND} {bucket}: created in {}",
                    region.unwrap_or("the operator's region")
                ),
            ));
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let tags = match ownership(&d.owner, tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ownership::Ours => tags,
        Ownership::Untagged if is_empty(aws, s3, bucket).await? => {
            let mut all = tags;
            all.extend(d.tags.iter().cloned());
            aws.call(
                "s3:PutBucketTagging",
                s3.put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(sdk_tags(&all, "s3:PutBucketTagging")?)
                    .send(),
            )
            .await?;
            all
        }
        _ => return Err(not_ours()),
    };
    let observed = observe(aws, s3, bucket, tags, want, created).await?;
    for change in plan(want, &observed) {
        apply(aws, s3, &observed, &change).await?;
        changes.push(Change::new(
            "Updated",
            format!("{KIND} {bucket}: {}", change.describe()),
        ));
    }
    Ok(())
}

/// Whether `bucket` exists and is tagged with the app's uid (another account's answers 403).
async fn is_ours(aws: &Aws, s3: &aws_sdk_s3::Client, owner: &Owner, bucket: &str) -> Result<bool> {
    match bucket_tags(aws, s3, bucket).await {
        Ok(Some(tags)) => Ok(ownership_of(owner, &tags) == Ownership::Ours),
        Ok(None) => Ok(false),
        Err(e) if is_code(&e, "AccessDenied") => Ok(false),
        Err(e) => Err(e),
    }
}

/// The bucket under its legacy names, when only that one is the app's (tagged with its uid);
/// `None`: the bucket's own name is the one to use (or create).
async fn legacy_in_use(aws: &Aws, d: &DesiredBucket) -> Result<Option<DesiredBucket>> {
    let Some(legacy) = d.under_legacy() else {
        return Ok(None);
    };
    let s3 = aws.s3().await;
    if is_ours(aws, s3, &d.owner, &d.bucket).await? {
        return Ok(None);
    }
    Ok(is_ours(aws, s3, &d.owner, &legacy.bucket)
        .await?
        .then_some(legacy))
}

/// Creates or corrects the bucket, and the replica bucket and replication when asked for.
/// Fails with a clear message when replication is asked for and the operator has no role.
pub async fn ensure(aws: &Aws, d: &DesiredBucket) -> Result<BucketReport> {
    let in_use;
    let d = match legacy_in_use(aws, d).await? {
        Some(legacy) => {
            in_use = legacy;
            &in_use
        }
        None => d,
    };
    let s3 = aws.s3().await;
    let region = aws.region().await;
    let mut changes = Vec::new();
    if let Some(r) = &d.replica {
        // The destination must exist, versioned, before S3 accepts the replication rule.
        let replica_client = aws.s3_client(Some(&r.region)).await;
        ensure_bucket(
            aws,
            &replica_client,
            d,
            &r.bucket,
            Some(&r.region),
            &replica_settings(),
            &mut changes,
        )
        .await?;
    }
    ensure_bucket(
        aws,
        s3,
        d,
        &d.bucket,
        region.as_deref(),
        &source_settings(d),
        &mut changes,
    )
    .await?;
    if d.replica.is_some() && d.replication_role_arn.is_none() {
        return Err(Error::InvalidSpec {
            field: "spec.staticAssets.replicateTo".into(),
            message: "replication needs an IAM role for S3 to assume, and this operator has none: start halo with --s3-replication-role-arn (HALO_S3_REPLICATION_ROLE_ARN, chart value aws.s3ReplicationRoleArn)".into(),
        });
    }
    // Only now that the source replicates elsewhere (or not at all) does the old replica go.
    let former_replica = match &d.former_replica {
        Some(old) => {
            let report = cleanup_former_replica(aws, s3, d, old).await?;
            changes.extend(report.changes.iter().cloned());
            (!report.done).then_some(report)
        }
        None => None,
    };
    Ok(BucketReport {
        bucket: d.bucket.clone(),
        region,
        replica: d.replica.clone(),
        changes,
        former_replica,
    })
}

/// Carries out the deletion policy on a replica bucket the spec no longer names.
async fn cleanup_former_replica(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    d: &DesiredBucket,
    old: &str,
) -> Result<CleanupReport> {
    let Some(region) = bucket_region(aws, s3, old).await? else {
        return Ok(cleaned::gone(KIND, old));
    };
    let client = aws.s3_client(Some(&region)).await;
    let mut report = match cleanup_bucket(aws, &client, d, old).await {
        Err(Error::DeletionBlocked { kind, id, reason }) => {
            return Err(Error::DeletionBlocked {
                kind,
                id,
                reason: format!(
                    "it was the replica bucket before spec.staticAssets.replicateTo changed, and {reason}"
                ),
            });
        }
        other => other?,
    };
    report.message = format!("former replica: {}", report.message);
    Ok(report)
}

/// Deletes every object version and delete marker, a page at a time; `true` once empty.
async fn empty_bucket(aws: &Aws, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    for _ in 0..MAX_EMPTY_PAGES {
        let out = aws
            .call(
                "s3:ListObjectVersions",
                s3.list_object_versions().bucket(bucket).send(),
            )
            .await?;
        let ids = out
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                out.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(key, version)| {
                Some(
                    ObjectIdentifier::builder()
                        .key(key?)
                        .set_version_id(version.map(str::to_string))
                        .build(),
                )
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(build_error("s3:DeleteObjects"))?;
        if ids.is_empty() {
            return Ok(true);
        }
        aws.call(
            "s3:DeleteObjects",
            s3.delete_objects()
                .bucket(bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(ids))
                        .quiet(true)
                        .build()
                        .map_err(build_error("s3:DeleteObjects"))?,
                )
                .send(),
        )
        .await?;
    }
    Ok(false)
}

/// Carries out the deletion policy on one bucket.
async fn cleanup_bucket(
    aws: &Aws,
    s3: &aws_sdk_s3::Client,
    d: &DesiredBucket,
    bucket: &str,
) -> Result<CleanupReport> {
    let Some(tags) = bucket_tags(aws, s3, bucket).await? else {
        return Ok(cleaned::gone(KIND, bucket));
    };
    if ownership_of(&d.owner, &tags) != Ownership::Ours {
        return Ok(cleaned::left_alone(KIND, bucket));
    }
    if d.deletion_policy == RetainOrDelete::Retain {
        let rest: Vec<(String, String)> = tags
            .into_iter()
            .filter(|(k, _)| !OWNERSHIP_TAG_KEYS.contains(&k.as_str()))
            .collect();
        if rest.is_empty() {
            aws.call(
                "s3:DeleteBucketTagging",
                s3.delete_bucket_tagging().bucket(bucket).send(),
            )
            .await?;
        } else {
            aws.call(
                "s3:PutBucketTagging",
                s3.put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(sdk_tags(&rest, "s3:PutBucketTagging")?)
                    .send(),
            )
            .await?;
        }
        return Ok(cleaned::retained(KIND, bucket));
    }
    let mut changes = Vec::new();
    if !is_empty(aws, s3, bucket).await? {
        if !d.empty_on_delete {
            return Err(Error::DeletionBlocked {
                kind: KIND.into(),
                id: bucket.into(),
                reason: "it holds objects; set staticAssets.emptyOnDelete: true to let halo delete every object version, empty it yourself, or use deletionPolicy: Retain".into(),
            });
        }
        let emptied = empty_bucket(aws, s3, bucket).await?;
        changes.push(Change::new(
            reasons::DELETING,
            format!("{KIND} {bucket}: object versions deleted (emptyOnDelete)"),
        ));
        if !emptied {
            return Ok(CleanupReport {
                done: false,
                message: format!("{KIND} {bucket}: emptying"),
                changes,
            });
        }
    }
    aws.call("s3:DeleteBucket", s3.delete_bucket().bucket(bucket).send())
        .await?;
    Ok(cleaned::deleted(
        format!("{KIND} {bucket} deleted"),
        changes,
    ))
}

/// Carries out the deletion policy on the bucket, then on the replica bucket, then on a former
/// replica bucket whose cleanup had not finished.
pub async fn cleanup(aws: &Aws, d: &DesiredBucket) -> Result<CleanupReport> {
    let in_use;
    let d = match legacy_in_use(aws, d).await? {
        Some(legacy) => {
            in_use = legacy;
            &in_use
        }
        None => d,
    };
    let s3 = aws.s3().await;
    let mut report = cleanup_bucket(aws, s3, d, &d.bucket).await?;
    if let (true, Some(r)) = (report.done, &d.replica) {
        let replica_client = aws.s3_client(Some(&r.region)).await;
        let replica = cleanup_bucket(aws, &replica_client, d, &r.bucket).await?;
        report.done = replica.done;
        report.message = format!("{}; {}", report.message, replica.message);
        report.changes.extend(replica.changes);
    }
    if let (true, Some(old)) = (report.done, &d.former_replica) {
        let former = cleanup_former_replica(aws, s3, d, old).await?;
        report.done = former.done;
        report.message = format!("{}; {}", report.message, former.message);
        report.changes.extend(former.changes);
    }
    Ok(report)
}

/// S3 through the SDK backend.
pub struct Bucket<'a>(pub &'a Aws);

impl Service for Bucket<'_> {
    type Desired = DesiredBucket;
    type View = AwsView<StaticAssetsStatus>;

    async fn ensure(&self, d: &DesiredBucket) -> Outcome<Self::View> {
        Outcome::seen(Box::pin(ensure(self.0, d)).await.map(|report| {
            let view = match &report.former_replica {
                // The status keeps recording the former replica until its cleanup is done.
                Some(pending) => AwsView::Unseen {
                    reason: reasons::DELETING,
                    message: pending.message.clone(),
                },
                None => AwsView::Seen {
                    readiness: readiness(d, &report),
                    endpoints: StaticAssetsStatus {
                        bucket: report.bucket.clone(),
                        region: report.region.clone(),
                        replica_bucket: report.replica.as_ref().map(|r| r.bucket.clone()),
                    },
                },
            };
            (view, report.changes)
        }))
    }

    async fn cleanup(&self, d: &DesiredBucket) -> Outcome<Self::View> {
        Outcome::cleaned(Box::pin(cleanup(self.0, d)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::validated;

    const APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  staticAssets:
    replicateTo: {region: us-west-2}
"#;

    fn config() -> AwsConfig {
        AwsConfig {
            s3_replication_role_arn: Some(
                "arn:aws:iam::123456789012:role/halo-s3-replication".into(),
            ),
            ..AwsConfig::default()
        }
    }

    fn converged(d: &DesiredBucket) -> ObservedBucket {
        let s = source_settings(d);
        ObservedBucket {
            bucket: d.bucket.clone(),
            tags: d.tags.clone(),
            versioning: Some("Enabled".into()),
            encryption: Some(s.encryption.clone()),
            public_access_block: Some([true; 4]),
            lifecycle_days: s.lifecycle_days,
            other_lifecycle_rules: vec![],
            replication: s.replication.clone(),
        }
    }

    /// Deterministic names: `<ns>-<app>-assets`, and the replica's with the region appended.
    #[test]
    fn desired_bucket_from_spec() {
        let d = desired(&validated(APP), &config()).expect("bucket");
        assert_eq!(d.bucket, "shop-web-assets");
        assert_eq!(
            d.replica,
            Some(ReplicaBucket {
                region: "us-west-2".into(),
                bucket: "shop-web-assets-us-west-2".into()
            })
        );
        assert_eq!(d.noncurrent_days, 30);
        assert_eq!(d.deletion_policy, RetainOrDelete::Retain);
        assert!(!d.empty_on_delete);
        let long = default_replica_bucket(&"a".repeat(60), "ap-southeast-2");
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-ap-southeast-2"), "{long}");
    }

    /// A fresh bucket needs every setting; a converged one nothing.
    #[test]
    fn plan_from_nothing_and_when_converged() {
        let d = desired(&validated(APP), &config()).expect("bucket");
        let want = source_settings(&d);
        assert_eq!(plan(&want, &converged(&d)), vec![]);
        let fresh = ObservedBucket {
            bucket: d.bucket.clone(),
            ..ObservedBucket::default()
        };
        assert_eq!(
            plan(&want, &fresh)
                .iter()
                .map(BucketChange::describe)
                .collect::<Vec<_>>(),
            vec![
                "versioning enabled",
                "default encryption AES256",
                "all public access blocked",
                "noncurrent versions expire after 30 days",
                "replicating to arn:aws:s3:::shop-web-assets-us-west-2",
            ]
        );
    }

    /// Without a configured role there is no replication to plan (ensure reports the error).
    #[test]
    fn no_role_no_replication_rule() {
        let d = desired(&validated(APP), &AwsConfig::default()).expect("bucket");
        assert_eq!(source_settings(&d).replication, None);
    }

    /// The replica bucket the status recorded becomes the former replica only when the spec
    /// no longer names it (and never when it is the source bucket itself).
    #[test]
    fn recorded_replica_that_left_the_spec_is_former() {
        let d = desired(&validated(APP), &config()).expect("bucket");
        let status = |replica: &str| StaticAssetsStatus {
            bucket: d.bucket.clone(),
            region: None,
            replica_bucket: Some(replica.into()),
        };
        let same = d
            .clone()
            .with_recorded(Some(&status("shop-web-assets-us-west-2")));
        assert_eq!(same.former_replica, None);
        let moved = d
            .clone()
            .with_recorded(Some(&status("shop-web-assets-eu-west-1")));
        assert_eq!(
            moved.former_replica.as_deref(),
            Some("shop-web-assets-eu-west-1")
        );
        assert_eq!(
            d.clone()
                .with_recorded(Some(&status("shop-web-assets")))
                .former_replica,
            None
        );
        assert_eq!(d.clone().with_recorded(None).former_replica, None);
    }

    /// With `replicateTo` removed, halo's rule to the former replica goes; with it changed,
    /// the rule is replaced by one to the new replica.
    #[test]
    fn replication_follows_replicate_to() {
        let d = desired(&validated(APP), &config()).expect("bucket");
        let old_rule = Some((
            "arn:aws:iam::123456789012:role/halo-s3-replication".to_string(),
            "arn:aws:s3:::shop-web-assets-eu-west-1".to_string(),
        ));
        let observed = ObservedBucket {
            replication: old_rule.clone(),
            ..converged(&d)
        };
        assert_eq!(
            plan(&source_settings(&d), &observed)
                .iter()
                .map(BucketChange::describe)
                .collect::<Vec<_>>(),
            vec!["replicating to arn:aws:s3:::shop-web-assets-us-west-2"]
        );
        let removed = DesiredBucket {
            replica: None,
            former_replica: Some("shop-web-assets-eu-west-1".into()),
            ..d.clone()
        };
        assert_eq!(
            plan(&source_settings(&removed), &observed),
            vec![BucketChange::StopReplication]
        );
        let never = DesiredBucket { replica: None, ..d };
        assert_eq!(plan(&source_settings(&never), &observed), vec![]);
    }

    /// A changed expiry or a public access block someone loosened is corrected.
    #[test]
    fn drift_is_corrected() {
        let d = desired(&validated(APP), &config()).expect("bucket");
        let drifted = ObservedBucket {
            public_access_block: Some([true, true, false, true]),
            lifecycle_days: Some(90),
            ..converged(&d)
        };
        assert_eq!(
            plan(&source_settings(&d), &drifted),
            vec![BucketChange::BlockPublicAccess, BucketChange::Lifecycle(30)]
        );
    }
}
