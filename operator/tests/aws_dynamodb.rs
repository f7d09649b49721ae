//! `aws::dynamodb` against the AWS emulator (moto in server mode): tables with their keys,
//! billing, point-in-time recovery and deletion protection, global-table replicas, the deletion
//! policies of tables removed from the spec, and a second pass that makes no mutating call.
//! Needs `AWS_ENDPOINT_URL` (see `aws_support::endpoint`).
//!
//! Where moto differs from DynamoDB (each test says which): it accepts `UpdateTable` with
//! `ReplicaUpdates` but never creates the replica, so the replica test asserts the request halo
//! sends (through a recording relay) rather than a replica; tables are ACTIVE at once and a
//! deleted table is gone at once.

mod aws_support;

use std::collections::BTreeMap;

use aws_support::{Recorder, app, aws, manifest, unique};
use halo::api::storage::{RetainOrDelete, TableStatus};
use halo::aws::dynamodb::{self, DesiredTables, TableChange, TablesReport};
use halo::aws::{Aws, AwsConfig, TAG_UID, is_read_only};

fn desired(ns: &str, tables: &str, recorded: &[TableStatus]) -> DesiredTables {
    let v = app(&manifest(
        ns,
        "shop",
        &format!("  dynamodb:\n    tables:\n{tables}"),
    ));
    dynamodb::desired(&v, recorded).expect("dynamodb section")
}

/// `d` as a later version of the spec of the app `like` (same uid).
fn same_app(mut d: DesiredTables, like: &DesiredTables) -> DesiredTables {
    d.owner = like.owner.clone();
    for t in &mut d.tables {
        for (k, v) in &mut t.tags {
            if k == TAG_UID {
                *v = like.owner.uid.clone();
            }
        }
    }
    d
}

async fn converge(aws: &Aws, d: &DesiredTables) -> TablesReport {
    let mut last = None;
    for _ in 0..5 {
        let report = dynamodb::ensure(aws, d).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        if dynamodb::readiness(&report).ready {
            return report;
        }
        last = Some(report);
    }
    panic!("tables did not converge: {last:#?}");
}

async fn tags(aws: &Aws, arn: &str) -> BTreeMap<String, String> {
    let out = aws
        .dynamodb()
        .await
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("tags");
    out.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

async fn exists(aws: &Aws, table: &str) -> bool {
    match aws
        .dynamodb()
        .await
        .describe_table()
        .table_name(table)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if format!("{e:?}").contains("ResourceNotFoundException") => false,
        Err(e) => panic!("describe {table}: {e:?}"),
    }
}

const TWO_TABLES: &str = "    - {name: carts, partitionKey: {name: id}}\n    - {name: orders, partitionKey: {name: customer}, sortKey: {name: at, type: N}, billingMode: PROVISIONED, readCapacity: 5, writeCapacity: 2}\n";

/// Keys, billing, recovery and protection as the spec says; the records for the status; then a
/// pass over stable tables costs three reads per table and nothing else.
#[tokio::test]
async fn creates_tables_with_recovery_and_protection() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, TWO_TABLES, &[]);
    let report = converge(&aws, &d).await;
    let ddb = aws.dynamodb().await;

    let carts = format!("{ns}-shop-carts");
    let t = ddb
        .describe_table()
        .table_name(&carts)
        .send()
        .await
        .expect("carts");
    let t = t.table().expect("table");
    let keys: Vec<(String, String)> = t
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    assert_eq!(keys, vec![("id".to_string(), "HASH".to_string())]);
    assert_eq!(
        t.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        Some("PAY_PER_REQUEST")
    );
    assert_eq!(t.deletion_protection_enabled(), Some(true));

    let orders = format!("{ns}-shop-orders");
    let out = ddb
        .describe_table()
        .table_name(&orders)
        .send()
        .await
        .expect("orders");
    let o = out.table().expect("table");
    let mut keys: Vec<(String, String)> = o
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ("at".to_string(), "RANGE".to_string()),
            ("customer".to_string(), "HASH".to_string())
        ]
    );
    let mut attrs: Vec<(String, String)> = o
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_string(),
                a.attribute_type().as_str().to_string(),
            )
        })
        .collect();
    attrs.sort();
    assert_eq!(
        attrs,
        vec![
            ("at".to_string(), "N".to_string()),
            ("customer".to_string(), "S".to_string())
        ]
    );
    let throughput = o.provisioned_throughput().expect("throughput");
    assert_eq!(
        (
            throughput.read_capacity_units(),
            throughput.write_capacity_units()
        ),
        (Some(5), Some(2))
    );
    for table in [&carts, &orders] {
        let backups = ddb
            .describe_continuous_backups()
            .table_name(table)
            .send()
            .await
            .expect("backups");
        assert_eq!(
            backups
                .continuous_backups_description()
                .and_then(|c| c.point_in_time_recovery_description())
                .and_then(|p| p.point_in_time_recovery_status())
                .map(|s| s.as_str()),
            Some("ENABLED"),
            "{table}"
        );
    }
    let arn = t.table_arn().expect("arn").to_string();
    let tagged = tags(&aws, &arn).await;
    assert_eq!(tagged.get(TAG_UID), Some(&d.owner.uid));
    assert_eq!(
        tagged.get("halo.dev/table").map(String::as_str),
        Some("carts")
    );

    assert_eq!(
        report.records(&d)[0],
        TableStatus {
            name: "carts".into(),
            table_name: carts.clone(),
            arn: Some(arn),
            state: Some("ACTIVE".into()),
            deletion_policy: RetainOrDelete::Retain,
            removed: false,
        }
    );
    assert_eq!(
        dynamodb::readiness(&report).message,
        format!("DynamoDB tables active: {carts}, {orders}")
    );

    let before = aws.calls().snapshot();
    let again = dynamodb::ensure(&aws, &d).await;
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("dynamodb:DescribeContinuousBackups".to_string(), 2),
            ("dynamodb:DescribeTable".to_string(), 2),
            ("dynamodb:ListTagsOfResource".to_string(), 2),
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
}

/// A global table: the stream goes on at creation, and the replica is requested with
/// `UpdateTable` `ReplicaUpdates` (version 2019.11.21). moto accepts the request but never
/// creates the replica, so this asserts the exact request halo sends, read from a recording
/// relay between the SDK and moto, and that halo keeps reporting the replica as pending.
#[tokio::test]
async fn replicas_are_requested_with_replica_updates() {
    let recorder = Recorder::start();
    let aws = Aws::with_sdk_config(
        AwsConfig::default(),
        aws_support::sdk_at(&recorder.url).await,
    );
    let ns = unique("t");
    let d = desired(
        &ns,
        "    - {name: carts, partitionKey: {name: id}, replicaRegions: [us-west-2]}\n",
        &[],
    );
    let table = format!("{ns}-shop-carts");
    let first = dynamodb::ensure(&aws, &d).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let created = recorder.sent();
    assert!(
        created.contains(
            r#""StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_AND_OLD_IMAGES"}"#
        ),
        "CreateTable without the stream: {created}"
    );

    let second = dynamodb::ensure(&aws, &d).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let sent = recorder.sent();
    let update = format!(
        r#"{{"TableName":"{table}","ReplicaUpdates":[{{"Create":{{"RegionName":"us-west-2"}}}}]}}"#
    );
    assert!(sent.contains(&update), "no {update} in: {sent}");
    assert!(
        sent.contains("X-Amz-Target: DynamoDB_20120810.UpdateTable")
            || sent.contains("x-amz-target: DynamoDB_20120810.UpdateTable")
    );
    assert!(
        second
            .changes
            .iter()
            .any(|c| c.message == format!("DynamoDB table {table}: adding a replica in us-west-2")),
        "{:?}",
        second.changes
    );
    // moto: no replica appears, so the next pass asks again and the table stays not ready.
    let third = dynamodb::ensure(&aws, &d).await;
    let observed = third.tables[0].observed.clone().expect("observed");
    assert_eq!(observed.replicas, vec![]);
    assert_eq!(
        observed.stream_view_type.as_deref(),
        Some("NEW_AND_OLD_IMAGES")
    );
    assert!(!dynamodb::readiness(&third).ready);
}

/// A table removed from the spec follows its policy: Retain keeps it without halo's tags,
/// Delete deletes it; both leave the records once done.
#[tokio::test]
async fn removed_tables_follow_their_deletion_policy() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "    - {name: kept, partitionKey: {name: id}}\n    - {name: dropped, partitionKey: {name: id}, deletionPolicy: Delete, deletionProtection: false}\n    - {name: stays, partitionKey: {name: id}}\n",
        &[],
    );
    let report = converge(&aws, &d).await;
    let records = report.records(&d);
    let kept = format!("{ns}-shop-kept");
    let dropped = format!("{ns}-shop-dropped");

    let after = same_app(
        desired(
            &ns,
            "    - {name: stays, partitionKey: {name: id}}\n",
            &records,
        ),
        &d,
    );
    assert_eq!(
        after
            .removed
            .iter()
            .map(|r| (r.table_name.clone(), r.deletion_policy))
            .collect::<Vec<_>>(),
        vec![
            (kept.clone(), RetainOrDelete::Retain),
            (dropped.clone(), RetainOrDelete::Delete)
        ]
    );
    let report = dynamodb::ensure(&aws, &after).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report
            .removed
            .iter()
            .map(|(r, m, done)| (r.name.clone(), m.clone(), *done))
            .collect::<Vec<_>>(),
        vec![
            (
                "kept".to_string(),
                format!("DynamoDB table {kept} retained; halo's tags removed"),
                true
            ),
            (
                "dropped".to_string(),
                format!("DynamoDB table {dropped} deleting"),
                true
            ),
        ]
    );
    assert_eq!(
        report
            .records(&after)
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        vec!["stays"]
    );
    assert!(exists(&aws, &kept).await);
    let arn = {
        let out = aws
            .dynamodb()
            .await
            .describe_table()
            .table_name(&kept)
            .send()
            .await
            .expect("kept");
        out.table()
            .and_then(|t| t.table_arn())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(tags(&aws, &arn).await, BTreeMap::new());
    // moto deletes at once; DynamoDB would show DELETING first, which cleanup also accepts.
    assert!(!exists(&aws, &dropped).await);
}

/// Delete with deletion protection on is refused, and the table stays: turning protection off
/// is a spec change, never something halo does by itself.
#[tokio::test]
async fn delete_is_refused_while_protected() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "    - {name: guarded, partitionKey: {name: id}, deletionPolicy: Delete}\n",
        &[],
    );
    converge(&aws, &d).await;
    let (reports, errors) = dynamodb::cleanup(&aws, &d).await;
    assert!(reports.is_empty());
    let table = format!("{ns}-shop-guarded");
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![format!(
            "cannot delete DynamoDB table {table}: deletion protection is on; set deletionProtection: false (before removing the table from the spec, or in AWS) to let halo delete it"
        )]
    );
    assert!(exists(&aws, &table).await);

    // Protection off in the spec: halo turns it off in AWS, then deletes.
    let off = same_app(
        desired(
            &ns,
            "    - {name: guarded, partitionKey: {name: id}, deletionPolicy: Delete, deletionProtection: false}\n",
            &[],
        ),
        &d,
    );
    let report = dynamodb::ensure(&aws, &off).await;
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.message == format!("DynamoDB table {table}: deletion protection disabled")),
        "{:?}",
        report.changes
    );
    let (reports, errors) = dynamodb::cleanup(&aws, &off).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(reports.iter().all(|r| r.done));
    assert!(!exists(&aws, &table).await);
}

/// Drift is corrected one UpdateTable at a time: recovery switched off and protection switched
/// off behind halo's back come back on.
#[tokio::test]
async fn drift_is_corrected() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, "    - {name: carts, partitionKey: {name: id}}\n", &[]);
    converge(&aws, &d).await;
    let table = format!("{ns}-shop-carts");
    let ddb = aws.dynamodb().await;
    ddb.update_table()
        .table_name(&table)
        .deletion_protection_enabled(false)
        .send()
        .await
        .expect("drift protection");
    ddb.update_continuous_backups()
        .table_name(&table)
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()
                .expect("spec"),
        )
        .send()
        .await
        .expect("drift pitr");
    let report = dynamodb::ensure(&aws, &d).await;
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        vec![
            format!(
                "DynamoDB table {table}: {}",
                TableChange::PointInTimeRecovery(true).describe()
            ),
            format!(
                "DynamoDB table {table}: {}",
                TableChange::DeletionProtection(true).describe()
            ),
        ]
    );
    converge(&aws, &d).await;
}

/// A table under `name` tagged with `uid`, as an earlier halo left it.
async fn legacy_table(aws: &Aws, name: &str, uid: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Tag,
    };
    aws.dynamodb()
        .await
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .tags(Tag::builder().key(TAG_UID).value(uid).build().expect("tag"))
        .tags(
            Tag::builder()
                .key("halo.dev/managed-by")
                .value("halo")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("create legacy table");
}

const LEGACY_TABLE: &str = "    - {name: order-items, partitionKey: {name: id}, pointInTimeRecovery: false, deletionProtection: false, deletionPolicy: Delete}\n";

/// A table an earlier halo created under the legacy name (`<ns>-shop-order-items`, now hashed)
/// is used, not recreated: no CreateTable, the record (and so the Secret) names it, and cleanup
/// deletes it.
#[tokio::test]
async fn keeps_its_table_under_the_legacy_name() {
    let ns = unique("t");
    let d = desired(&ns, LEGACY_TABLE, &[]);
    let legacy = format!("{ns}-shop-order-items");
    assert_eq!(
        d.tables[0].legacy_table_name.as_deref(),
        Some(legacy.as_str())
    );
    assert_ne!(d.tables[0].table_name, legacy);
    legacy_table(&aws().await, &legacy, &d.owner.uid).await;

    let aws = aws().await;
    let report = converge(&aws, &d).await;
    let creates: Vec<String> = aws
        .calls()
        .snapshot()
        .into_keys()
        .filter(|api| api.contains(":Create"))
        .collect();
    assert_eq!(creates, Vec::<String>::new());
    assert_eq!(report.records(&d)[0].table_name, legacy);
    assert!(!exists(&aws, &d.tables[0].table_name).await);

    let (reports, errors) = dynamodb::cleanup(&aws, &d).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        reports
            .iter()
            .map(|r| r.message.clone())
            .collect::<Vec<_>>(),
        vec![format!("DynamoDB table {legacy} deleting")]
    );
    assert!(!exists(&aws, &legacy).await);
}

/// A table under the legacy name with another app's uid is never used: the app gets its own
/// table under the new name, and cleanup leaves the other one alone.
#[tokio::test]
async fn ignores_a_legacy_named_table_of_another_app() {
    let ns = unique("t");
    let d = desired(&ns, LEGACY_TABLE, &[]);
    let legacy = format!("{ns}-shop-order-items");
    legacy_table(&aws().await, &legacy, "uid-of-another-app").await;

    let aws = aws().await;
    let report = converge(&aws, &d).await;
    assert_eq!(aws.calls().snapshot().get("dynamodb:CreateTable"), Some(&1));
    assert_eq!(report.records(&d)[0].table_name, d.tables[0].table_name);
    assert!(exists(&aws, &d.tables[0].table_name).await);

    let (_, errors) = dynamodb::cleanup(&aws, &d).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(exists(&aws, &legacy).await, "the other app's table stays");
}
