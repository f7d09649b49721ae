//! `aws::s3` against the AWS emulator (moto in server mode): the static assets bucket's
//! versioning, encryption, public access block, lifecycle and replication configuration read
//! back exactly, the replica bucket in the other region, the missing-role error, the deletion
//! policies, and a second pass that makes no mutating call. Needs `AWS_ENDPOINT_URL`.
//!
//! Where moto differs from S3: it answers GetBucketVersioning with a `GetBucketVersioningResponse`
//! root the SDK cannot parse (S3 sends `VersioningConfiguration`), so versioning is read back
//! through `s3::versioning_status`, which reads the status from that body; it stores the replication configuration but never replicates
//! objects (so nothing here waits for a replica object), and it does not check that the
//! replication role exists or may be assumed, and it reports DeleteMarkerReplication as
//! Disabled whatever was sent (the test asserts the request instead).

mod aws_support;

use std::collections::BTreeMap;

use aws_support::{Recorder, app, manifest, sdk, sdk_at, unique};
use halo::api::storage::StaticAssetsStatus;
use halo::aws::s3::{self, DesiredBucket};
use halo::aws::{Aws, AwsConfig, TAG_UID, is_read_only};

/// (id, status, noncurrent days, prefix) of a lifecycle rule.
type LifecycleRow<'a> = (Option<&'a str>, &'a str, Option<i32>, Option<&'a str>);
/// (id, priority, status, destination bucket) of a replication rule.
type ReplicationRow<'a> = (Option<&'a str>, Option<i32>, &'a str, Option<&'a str>);

const ROLE: &str = "arn:aws:iam::123456789012:role/halo-s3-replication";

fn config(role: bool) -> AwsConfig {
    AwsConfig {
        s3_replication_role_arn: role.then(|| ROLE.to_string()),
        ..AwsConfig::default()
    }
}

async fn aws_with(config: AwsConfig) -> Aws {
    Aws::with_sdk_config(config, sdk().await)
}

fn desired(ns: &str, assets: &str, config: &AwsConfig) -> DesiredBucket {
    let v = app(&manifest(
        ns,
        "shop",
        &format!("  staticAssets: {assets}\n"),
    ));
    s3::desired(&v, config).expect("staticAssets section")
}

async fn bucket_exists(client: &aws_sdk_s3::Client, bucket: &str) -> bool {
    client.head_bucket().bucket(bucket).send().await.is_ok()
}

/// Every setting of the bucket as S3 reports it, exactly; the replica bucket in us-west-2,
/// versioned; halo's tags; then a second pass costs only reads.
#[tokio::test]
async fn bucket_settings_read_back_exactly() {
    let recorder = Recorder::start();
    let aws = Aws::with_sdk_config(config(true), sdk_at(&recorder.url).await);
    let ns = unique("t");
    let d = desired(
        &ns,
        "{replicateTo: {region: us-west-2}, noncurrentVersionExpirationDays: 14}",
        &aws.config,
    );
    let bucket = format!("{ns}-shop-assets");
    let replica = format!("{bucket}-us-west-2");
    assert_eq!(
        (
            d.bucket.as_str(),
            d.replica.as_ref().map(|r| r.bucket.as_str())
        ),
        (bucket.as_str(), Some(replica.as_str()))
    );
    let report = s3::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        vec![
            format!("S3 bucket {replica}: created in us-west-2"),
            format!("S3 bucket {replica}: versioning enabled"),
            format!("S3 bucket {replica}: default encryption AES256"),
            format!("S3 bucket {replica}: all public access blocked"),
            format!("S3 bucket {bucket}: created in us-east-1"),
            format!("S3 bucket {bucket}: versioning enabled"),
            format!("S3 bucket {bucket}: default encryption AES256"),
            format!("S3 bucket {bucket}: all public access blocked"),
            format!("S3 bucket {bucket}: noncurrent versions expire after 14 days"),
            format!("S3 bucket {bucket}: replicating to arn:aws:s3:::{replica}"),
        ]
    );
    assert_eq!(
        s3::readiness(&d, &report).message,
        format!(
            "S3 bucket {bucket} (us-east-1): versioned, encrypted with SSE-S3, public access blocked, noncurrent versions expire after 14 days, replicated to {replica} in us-west-2"
        )
    );

    let client = aws.s3().await;
    assert_eq!(
        s3::versioning_status(&aws, client, &bucket)
            .await
            .expect("versioning")
            .as_deref(),
        Some("Enabled")
    );
    let enc = client
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("encryption");
    let rules = enc
        .server_side_encryption_configuration()
        .expect("config")
        .rules();
    assert_eq!(rules.len(), 1);
    let default = rules[0]
        .apply_server_side_encryption_by_default()
        .expect("default");
    assert_eq!(
        (
            default.sse_algorithm().as_str(),
            default.kms_master_key_id()
        ),
        ("AES256", None)
    );
    let pab = client
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("pab");
    let pab = pab.public_access_block_configuration().expect("pab config");
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let lifecycle = client
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle");
    let rules: Vec<LifecycleRow> = lifecycle
        .rules()
        .iter()
        .map(|r| {
            (
                r.id(),
                r.status().as_str(),
                r.noncurrent_version_expiration()
                    .and_then(|n| n.noncurrent_days()),
                r.filter().and_then(|f| f.prefix()),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![(
            Some("halo-expire-noncurrent-versions"),
            "Enabled",
            Some(14),
            Some("")
        )]
    );
    let replication = client
        .get_bucket_replication()
        .bucket(&bucket)
        .send()
        .await
        .expect("replication");
    let rc = replication
        .replication_configuration()
        .expect("replication config");
    assert_eq!(rc.role(), ROLE);
    let rules: Vec<ReplicationRow> = rc
        .rules()
        .iter()
        .map(|r| {
            (
                r.id(),
                r.priority(),
                r.status().as_str(),
                r.destination().map(|d| d.bucket()),
            )
        })
        .collect();
    let destination = format!("arn:aws:s3:::{replica}");
    assert_eq!(
        rules,
        vec![(
            Some("halo-replicate-all"),
            Some(1),
            "Enabled",
            Some(destination.as_str())
        )]
    );
    // moto reports DeleteMarkerReplication Disabled whatever was sent: assert the request.
    let sent = recorder.sent();
    assert!(
        sent.contains(
            "<DeleteMarkerReplication><Status>Enabled</Status></DeleteMarkerReplication>"
        ),
        "PutBucketReplication without delete marker replication: {sent}"
    );
    let tags: BTreeMap<String, String> = client
        .get_bucket_tagging()
        .bucket(&bucket)
        .send()
        .await
        .expect("tags")
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    assert_eq!(tags.get(TAG_UID), Some(&d.owner.uid));

    let west = aws.s3_client(Some("us-west-2")).await;
    let location = west
        .get_bucket_location()
        .bucket(&replica)
        .send()
        .await
        .expect("location");
    assert_eq!(
        location.location_constraint().map(|l| l.as_str()),
        Some("us-west-2")
    );
    assert_eq!(
        s3::versioning_status(&aws, &west, &replica)
            .await
            .expect("versioning")
            .as_deref(),
        Some("Enabled")
    );

    let before = aws.calls().snapshot();
    let again = s3::ensure(&aws, &d).await.expect("ensure again");
    // Source: tags, versioning, encryption, public access block, lifecycle, replication;
    // replica: tags, versioning, encryption, public access block.
    assert_eq!(again.changes, vec![]);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("s3:GetBucketEncryption".to_string(), 2),
            ("s3:GetBucketLifecycleConfiguration".to_string(), 1),
            ("s3:GetBucketReplication".to_string(), 1),
            ("s3:GetBucketTagging".to_string(), 2),
            ("s3:GetBucketVersioning".to_string(), 2),
            ("s3:GetPublicAccessBlock".to_string(), 2),
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
}

/// A KMS key becomes the default encryption; drift (a lifecycle someone changed) is corrected
/// while a rule of someone else's stays.
#[tokio::test]
async fn kms_encryption_and_lifecycle_drift() {
    let aws = aws_with(config(false)).await;
    let ns = unique("t");
    let d = desired(&ns, "{kmsKeyId: alias/shop-assets}", &aws.config);
    s3::ensure(&aws, &d).await.expect("ensure");
    let client = aws.s3().await;
    let bucket = d.bucket.clone();
    let enc = client
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("encryption");
    let default = enc
        .server_side_encryption_configuration()
        .expect("config")
        .rules()[0]
        .apply_server_side_encryption_by_default()
        .cloned()
        .expect("default");
    assert_eq!(
        (
            default.sse_algorithm().as_str(),
            default.kms_master_key_id()
        ),
        ("aws:kms", Some("alias/shop-assets"))
    );
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration,
    };
    let theirs = LifecycleRule::builder()
        .id("team-tmp")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .expect("rule");
    let changed = LifecycleRule::builder()
        .id("halo-expire-noncurrent-versions")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(365)
                .build(),
        )
        .build()
        .expect("rule");
    client
        .put_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(theirs)
                .rules(changed)
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("drift");
    let report = s3::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        vec![format!(
            "S3 bucket {bucket}: noncurrent versions expire after 30 days"
        )]
    );
    let lifecycle = client
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle");
    let ids: Vec<(Option<&str>, Option<i32>)> = lifecycle
        .rules()
        .iter()
        .map(|r| {
            (
                r.id(),
                r.noncurrent_version_expiration()
                    .and_then(|n| n.noncurrent_days()),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (Some("team-tmp"), None),
            (Some("halo-expire-noncurrent-versions"), Some(30))
        ]
    );
}

/// replicateTo without a configured role: the bucket and its replica are set up, and the
/// error names the flag to set.
#[tokio::test]
async fn replication_without_a_role_is_a_clear_error() {
    let aws = aws_with(config(false)).await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "{replicateTo: {region: eu-west-1, bucket: REPLICA}}"
            .replace("REPLICA", &format!("{ns}-dr"))
            .as_str(),
        &aws.config,
    );
    let err = s3::ensure(&aws, &d).await.expect_err("no role");
    assert_eq!(
        err.to_string(),
        "invalid spec: spec.staticAssets.replicateTo: replication needs an IAM role for S3 to assume, and this operator has none: start halo with --s3-replication-role-arn (HALO_S3_REPLICATION_ROLE_ARN, chart value aws.s3ReplicationRoleArn)"
    );
    assert!(bucket_exists(aws.s3().await, &d.bucket).await);
    assert!(
        aws.s3()
            .await
            .get_bucket_replication()
            .bucket(&d.bucket)
            .send()
            .await
            .is_err()
    );
}

async fn put_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"asset"))
        .send()
        .await
        .expect("put object");
}

/// Retain (the default) keeps the bucket and its objects and removes only halo's tags.
#[tokio::test]
async fn retain_keeps_the_bucket() {
    let aws = aws_with(config(false)).await;
    let ns = unique("t");
    let d = desired(&ns, "{}", &aws.config);
    s3::ensure(&aws, &d).await.expect("ensure");
    let client = aws.s3().await;
    put_object(client, &d.bucket, "index.html").await;
    let report = s3::cleanup(&aws, &d).await.expect("cleanup");
    assert!(report.done);
    assert_eq!(
        report.message,
        format!("S3 bucket {} retained; halo's tags removed", d.bucket)
    );
    assert!(bucket_exists(client, &d.bucket).await);
    let tags = client.get_bucket_tagging().bucket(&d.bucket).send().await;
    assert!(
        tags.map(|t| t.tag_set().is_empty()).unwrap_or(true),
        "tags left"
    );
}

/// Delete refuses a bucket with objects unless emptyOnDelete is set; with it, every version
/// goes and then the bucket (and an empty bucket goes without it).
#[tokio::test]
async fn delete_needs_empty_on_delete_for_a_non_empty_bucket() {
    let aws = aws_with(config(false)).await;
    let ns = unique("t");
    let d = desired(&ns, "{deletionPolicy: Delete}", &aws.config);
    s3::ensure(&aws, &d).await.expect("ensure");
    let client = aws.s3().await;
    put_object(client, &d.bucket, "a.css").await;
    put_object(client, &d.bucket, "a.css").await;
    let err = s3::cleanup(&aws, &d).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot delete S3 bucket {}: it holds objects; set staticAssets.emptyOnDelete: true to let halo delete every object version, empty it yourself, or use deletionPolicy: Retain",
            d.bucket
        )
    );
    assert!(bucket_exists(client, &d.bucket).await);

    let emptying = DesiredBucket {
        empty_on_delete: true,
        ..d.clone()
    };
    let report = s3::cleanup(&aws, &emptying).await.expect("cleanup");
    assert!(report.done, "{report:?}");
    assert_eq!(report.message, format!("S3 bucket {} deleted", d.bucket));
    assert!(!bucket_exists(client, &d.bucket).await);

    let ns = unique("t");
    let empty = desired(&ns, "{deletionPolicy: Delete}", &aws.config);
    s3::ensure(&aws, &empty).await.expect("ensure");
    assert!(s3::cleanup(&aws, &empty).await.expect("cleanup").done);
    assert!(!bucket_exists(client, &empty.bucket).await);
}

/// The replication rule of a bucket: its destination, or `None` without a configuration.
async fn replication_destination(client: &aws_sdk_s3::Client, bucket: &str) -> Option<String> {
    let out = client
        .get_bucket_replication()
        .bucket(bucket)
        .send()
        .await
        .ok()?;
    let rules = out.replication_configuration()?.rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    rules[0].destination().map(|d| d.bucket().to_string())
}

/// `d` as the app `first` asks for it after a spec change (the same app: the same uid).
fn same_app(first: &DesiredBucket, d: DesiredBucket) -> DesiredBucket {
    DesiredBucket {
        owner: first.owner.clone(),
        tags: first.tags.clone(),
        ..d
    }
}

/// What the status recorded after a reconcile that replicated to `replica`.
fn recorded(d: &DesiredBucket, replica: &str) -> StaticAssetsStatus {
    StaticAssetsStatus {
        bucket: d.bucket.clone(),
        region: Some("us-east-1".into()),
        replica_bucket: Some(replica.to_string()),
    }
}

/// A `replicateTo` change (Retain, the default) points the rule at the new replica and keeps
/// the old one without halo's tags; removing `replicateTo` then removes halo's rule and
/// retains the second replica the same way. Neither is leaked as an owned bucket.
#[tokio::test]
async fn replicate_to_change_retains_the_former_replica() {
    let aws = aws_with(config(true)).await;
    let ns = unique("t");
    let first = desired(&ns, "{replicateTo: {region: us-west-2}}", &aws.config);
    s3::ensure(&aws, &first).await.expect("ensure");
    let old = first.replica.clone().expect("replica").bucket;

    let moved = same_app(
        &first,
        desired(&ns, "{replicateTo: {region: eu-west-1}}", &aws.config),
    )
    .with_recorded(Some(&recorded(&first, &old)));
    assert_eq!(moved.former_replica.as_deref(), Some(old.as_str()));
    let new = moved.replica.clone().expect("replica").bucket;
    let report = s3::ensure(&aws, &moved).await.expect("ensure");
    let messages: Vec<String> = report.changes.iter().map(|c| c.message.clone()).collect();
    assert_eq!(
        messages.last().map(String::as_str),
        Some(format!("S3 bucket {old} retained; halo's tags removed").as_str()),
        "{messages:?}"
    );
    assert_eq!(report.former_replica, None);
    let client = aws.s3().await;
    assert_eq!(
        replication_destination(client, &moved.bucket).await,
        Some(format!("arn:aws:s3:::{new}"))
    );
    let old_client = aws.s3_client(Some("us-west-2")).await;
    assert!(bucket_exists(&old_client, &old).await, "retained");
    let tags = old_client.get_bucket_tagging().bucket(&old).send().await;
    assert!(tags.map(|t| t.tag_set().is_empty()).unwrap_or(true));

    let stopped = same_app(&first, desired(&ns, "{}", &aws.config))
        .with_recorded(Some(&recorded(&first, &new)));
    let report = s3::ensure(&aws, &stopped).await.expect("ensure");
    let messages: Vec<String> = report.changes.iter().map(|c| c.message.clone()).collect();
    assert_eq!(
        messages,
        vec![
            format!("S3 bucket {}: replication stopped", stopped.bucket),
            format!("S3 bucket {new} retained; halo's tags removed"),
        ]
    );
    assert_eq!(replication_destination(client, &stopped.bucket).await, None);
    let calls = aws.calls().snapshot();
    let again = s3::ensure(&aws, &same_app(&first, desired(&ns, "{}", &aws.config)))
        .await
        .expect("ensure");
    assert!(again.changes.is_empty());
    assert!(
        aws.calls()
            .since(&calls)
            .keys()
            .all(|api| is_read_only(api))
    );
}

/// With `deletionPolicy: Delete` the former replica is deleted when empty; one holding
/// objects blocks the change with the deletion policy's message, and the status keeps
/// recording it (ensure fails) until emptyOnDelete lets halo empty it.
#[tokio::test]
async fn replicate_to_change_deletes_the_former_replica() {
    let aws = aws_with(config(true)).await;
    let ns = unique("t");
    let spec = "{deletionPolicy: Delete, replicateTo: {region: us-west-2}}";
    let first = desired(&ns, spec, &aws.config);
    s3::ensure(&aws, &first).await.expect("ensure");
    let old = first.replica.clone().expect("replica").bucket;
    let old_client = aws.s3_client(Some("us-west-2")).await;
    put_object(&old_client, &old, "a.css").await;

    let moved = same_app(
        &first,
        desired(
            &ns,
            "{deletionPolicy: Delete, replicateTo: {region: eu-west-1}}",
            &aws.config,
        ),
    )
    .with_recorded(Some(&recorded(&first, &old)));
    let err = s3::ensure(&aws, &moved).await.expect_err("blocked");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot delete S3 bucket {old}: it was the replica bucket before spec.staticAssets.replicateTo changed, and it holds objects; set staticAssets.emptyOnDelete: true to let halo delete every object version, empty it yourself, or use deletionPolicy: Retain"
        )
    );
    assert!(bucket_exists(&old_client, &old).await);

    let emptying = DesiredBucket {
        empty_on_delete: true,
        ..moved.clone()
    };
    let report = s3::ensure(&aws, &emptying).await.expect("ensure");
    assert_eq!(report.former_replica, None);
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        vec![
            format!("S3 bucket {old}: object versions deleted (emptyOnDelete)"),
            format!("S3 bucket {old} deleted"),
        ]
    );
    assert!(!bucket_exists(&old_client, &old).await);
    // Recorded again before the status write: the bucket is gone, nothing to do.
    assert!(
        s3::ensure(&aws, &emptying)
            .await
            .expect("ensure")
            .changes
            .is_empty()
    );
}

/// An AccessDenied on reading a bucket's tags is an IAM problem (or another account's bucket),
/// reported as such with the permission to grant, never as "taken by another account".
/// moto does not enforce IAM, so a stub endpoint answers every request with S3's 403.
#[tokio::test]
async fn access_denied_names_the_missing_permission() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let aws = Aws::with_sdk_config(config(false), sdk_at(&url).await);
    let d = desired(&unique("t"), "{}", &aws.config);
    let err = s3::ensure(&aws, &d).await.expect_err("denied");
    assert_eq!(
        err.to_string(),
        format!(
            "AWS s3:GetBucketTagging failed: AccessDenied: halo may not read the tags of S3 bucket {b} (Access Denied): grant s3:GetBucketTagging on arn:aws:s3:::{b} to the operator's IAM role (see config/iam/halo-policy.json); if the bucket belongs to another AWS account, choose another bucket name",
            b = d.bucket
        )
    );
    assert_eq!(err.metric_label(), "AWSAPIError");
}
