//! `aws::aurora` against the AWS emulator (moto in server mode): creation across zones,
//! scaling, drift correction, the three deletion policies, adoption and idempotency.
//! Needs `AWS_ENDPOINT_URL` (see `aws_support::endpoint`).

mod aws_support;

use std::collections::BTreeMap;

use aws_sdk_rds::types::Tag;
use aws_support::{app, aws, manifest, unique};
use halo::Error;
use halo::aws::aurora::{self, DatabaseReport, DesiredCluster};
use halo::aws::{Aws, AwsConfig, TAG_UID, is_read_only};

fn desired(namespace: &str, name: &str, database: &str) -> DesiredCluster {
    let v = app(&manifest(
        namespace,
        name,
        &format!("  database:\n{database}"),
    ));
    aurora::desired(&v, &AwsConfig::default()).expect("database section")
}

/// Calls `ensure` until the cluster is ready (as the controller's fast polling would).
async fn converge(aws: &Aws, d: &DesiredCluster) -> DatabaseReport {
    let mut last = None;
    for _ in 0..6 {
        let report = aurora::ensure(aws, d).await.expect("ensure");
        if aurora::readiness(d, &report).ready {
            return report;
        }
        last = Some(report);
    }
    panic!("cluster did not converge: {last:#?}");
}

async fn cluster(aws: &Aws, id: &str) -> Option<aws_sdk_rds::types::DbCluster> {
    let rds = aws.rds().await;
    match rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(out) => out.db_clusters().first().cloned(),
        Err(e) if format!("{e:?}").contains("DBClusterNotFoundFault") => None,
        Err(e) => panic!("describe {id}: {e:?}"),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// Instance id -> zone, from the emulator.
async fn instance_zones(aws: &Aws, cluster_id: &str) -> BTreeMap<String, String> {
    let rds = aws.rds().await;
    let out = rds
        .describe_db_instances()
        .filters(
            aws_sdk_rds::types::Filter::builder()
                .name("db-cluster-id")
                .values(cluster_id)
                .build(),
        )
        .send()
        .await
        .expect("describe instances");
    out.db_instances()
        .iter()
        .map(|i| {
            (
                i.db_instance_identifier().unwrap_or_default().to_string(),
                i.availability_zone().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const THREE: &str =
    "    instances: 3\n    engineVersion: \"16.4\"\n    deletionProtection: false\n";

/// Three instances land in three zones, the first is the writer, the endpoints and the
/// managed-password secret are reported; then a stable reconcile only describes.
#[tokio::test]
async fn creates_three_instances_in_three_zones() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, "shop", THREE);
    let report = converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    assert_eq!(report.cluster.id, id);
    assert_eq!(
        instance_zones(&aws, &id).await,
        BTreeMap::from([
            (format!("{id}-1"), "us-east-1a".to_string()),
            (format!("{id}-2"), "us-east-1b".to_string()),
            (format!("{id}-3"), "us-east-1c".to_string()),
        ])
    );
    assert_eq!(
        report.cluster.writer.as_deref(),
        Some(format!("{id}-1").as_str())
    );
    let r = aurora::readiness(&d, &report);
    assert_eq!(
        r.message,
        format!(
            "Aurora cluster {id} is available: writer {id}-1 (us-east-1a), readers {id}-2 (us-east-1b), {id}-3 (us-east-1c)"
        )
    );
    let endpoints = aurora::endpoints(&report);
    assert!(
        endpoints
            .writer
            .as_deref()
            .is_some_and(|w| w.starts_with(&id))
    );
    assert!(endpoints.reader.is_some());
    assert_eq!(endpoints.port, Some(5432));
    // ManageMasterUserPassword: RDS keeps the password in Secrets Manager; halo only knows where.
    assert!(
        endpoints
            .secret_arn
            .as_deref()
            .is_some_and(|a| a.starts_with("arn:aws:secretsmanager:")),
        "{endpoints:?}"
    );
    let c = cluster(&aws, &id).await.expect("cluster exists");
    assert_eq!(c.database_name(), Some("shop"));
    assert_eq!(c.storage_encrypted(), Some(true));
    let tags = tag_map(c.tag_list());
    assert_eq!(tags.get("halo.dev/namespace"), Some(&ns));
    assert_eq!(
        tags.get("halo.dev/managed-by").map(String::as_str),
        Some("halo")
    );

    // A stable cluster: one reconcile is two Describe calls and nothing else.
    let before = aws.calls().snapshot();
    let again = aurora::ensure(&aws, &d).await.expect("ensure");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("rds:DescribeDBClusters".to_string(), 1),
            ("rds:DescribeDBInstances".to_string(), 1)
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
    cleanup_now(&aws, &d).await;
}

/// 3 -> 2 removes the highest reader and keeps the writer; the spread stays over two zones.
#[tokio::test]
async fn scales_three_to_two() {
    let aws = aws().await;
    let ns = unique("t");
    let mut d = desired(&ns, "shop", THREE);
    converge(&aws, &d).await;
    d.instances = Some(2);
    let report = aurora::ensure(&aws, &d).await.expect("scale down");
    let id = format!("{ns}-shop");
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>(),
        vec![format!("Aurora cluster {id}: instance {id}-3 deleted").as_str()]
    );
    let report = converge(&aws, &d).await;
    assert_eq!(
        instance_zones(&aws, &id).await,
        BTreeMap::from([
            (format!("{id}-1"), "us-east-1a".to_string()),
            (format!("{id}-2"), "us-east-1b".to_string()),
        ])
    );
    assert_eq!(
        report.cluster.writer.as_deref(),
        Some(format!("{id}-1").as_str())
    );
    cleanup_now(&aws, &d).await;
}

/// Settings changed behind halo's back (deletion protection, an instance's class, a removed
/// tag) are put back by the next reconcile.
#[tokio::test]
async fn corrects_drift() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 2\n    instanceClass: db.r6g.large\n    deletionProtection: true\n",
    );
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let rds = aws.rds().await;
    rds.modify_db_cluster()
        .db_cluster_identifier(&id)
        .deletion_protection(false)
        .apply_immediately(true)
        .send()
        .await
        .expect("drift protection");
    rds.modify_db_instance()
        .db_instance_identifier(format!("{id}-2"))
        .db_instance_class("db.t3.medium")
        .apply_immediately(true)
        .send()
        .await
        .expect("drift class");
    let arn = cluster(&aws, &id)
        .await
        .and_then(|c| c.db_cluster_arn().map(str::to_string))
        .expect("arn");
    rds.remove_tags_from_resource()
        .resource_name(&arn)
        .tag_keys("halo.dev/managed-by")
        .send()
        .await
        .expect("drop a tag");

    let report = aurora::ensure(&aws, &d).await.expect("ensure");
    let messages: Vec<&str> = report.changes.iter().map(|c| c.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            format!("Aurora cluster {id}: restored halo's tags").as_str(),
            format!("Aurora cluster {id}: instance {id}-2 resized to db.r6g.large").as_str(),
            format!("Aurora cluster {id}: set deletionProtection=true").as_str(),
        ]
    );
    let c = cluster(&aws, &id).await.expect("cluster");
    assert_eq!(c.deletion_protection(), Some(true));
    assert_eq!(
        tag_map(c.tag_list())
            .get("halo.dev/managed-by")
            .map(String::as_str),
        Some("halo")
    );
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(format!("{id}-2"))
        .send()
        .await
        .expect("instance");
    assert_eq!(
        out.db_instances()[0].db_instance_class(),
        Some("db.r6g.large")
    );
    let settled = converge(&aws, &d).await;
    assert!(aurora::readiness(&d, &settled).ready);
}

/// Runs cleanup until AWS confirms, as the finalizer does.
async fn cleanup_until_done(aws: &Aws, d: &DesiredCluster) -> Vec<String> {
    let mut messages = Vec::new();
    for _ in 0..5 {
        let report = aurora::cleanup(aws, d).await.expect("cleanup");
        messages.push(report.message.clone());
        if report.done {
            return messages;
        }
    }
    panic!("cleanup never finished: {messages:?}");
}

async fn cleanup_now(aws: &Aws, d: &DesiredCluster) {
    let mut d = d.clone();
    d.deletion_protection = false;
    d.deletion_policy = halo::api::data::DeletionPolicy::Delete;
    cleanup_until_done(aws, &d).await;
}

async fn snapshot_exists(aws: &Aws, snapshot: &str) -> bool {
    let rds = aws.rds().await;
    match rds
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(snapshot)
        .send()
        .await
    {
        Ok(out) => !out.db_cluster_snapshots().is_empty(),
        Err(e) if format!("{e:?}").contains("DBClusterSnapshotNotFoundFault") => false,
        Err(e) => panic!("describe snapshot {snapshot}: {e:?}"),
    }
}

/// Snapshot (the default policy): instances go, then the cluster, and the final snapshot exists.
#[tokio::test]
async fn snapshot_policy_leaves_a_final_snapshot() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 2\n    deletionProtection: false\n",
    );
    assert_eq!(d.deletion_policy, halo::api::data::DeletionPolicy::Snapshot);
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let messages = cleanup_until_done(&aws, &d).await;
    assert_eq!(
        messages,
        vec![
            format!("Aurora cluster {id}: waiting for 2 instances to be deleted"),
            format!(
                "Aurora cluster {id} deleting after final snapshot {}",
                d.final_snapshot_id
            ),
        ]
    );
    assert!(cluster(&aws, &id).await.is_none(), "cluster must be gone");
    assert!(d.final_snapshot_id.starts_with(&format!("{id}-final-")));
    assert!(snapshot_exists(&aws, &d.final_snapshot_id).await);
    // Cleanup again (a retry after a lost response) confirms without touching anything.
    let again = aurora::cleanup(&aws, &d).await.expect("cleanup again");
    assert_eq!(
        (again.done, again.message),
        (true, format!("Aurora cluster {id} is gone"))
    );
}

/// Retain: the cluster and its instances stay, only halo's tags go.
#[tokio::test]
async fn retain_policy_keeps_the_cluster_without_tags() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 2\n    deletionPolicy: Retain\n    deletionProtection: true\n",
    );
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let messages = cleanup_until_done(&aws, &d).await;
    assert_eq!(
        messages,
        vec![format!("Aurora cluster {id} retained; halo's tags removed")]
    );
    let c = cluster(&aws, &id).await.expect("cluster still exists");
    let tags = tag_map(c.tag_list());
    assert!(
        tags.keys().all(|k| !k.starts_with("halo.dev/")),
        "halo's tags remain: {tags:?}"
    );
    assert_eq!(instance_zones(&aws, &id).await.len(), 2);
    // No longer ours: a second cleanup leaves it alone.
    let again = aurora::cleanup(&aws, &d).await.expect("cleanup again");
    assert_eq!(
        again.message,
        format!("Aurora cluster {id} is not tagged for this app: left alone")
    );
}

/// Delete is refused while deletion protection is on, and nothing is deleted; once the spec
/// turns protection off, halo deletes without a snapshot.
#[tokio::test]
async fn delete_policy_is_refused_while_protected() {
    let aws = aws().await;
    let ns = unique("t");
    let mut d = desired(
        &ns,
        "shop",
        "    instances: 2\n    deletionPolicy: Delete\n    deletionProtection: true\n",
    );
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let err = aurora::cleanup(&aws, &d)
        .await
        .expect_err("must be refused");
    assert!(matches!(err, Error::DeletionBlocked { .. }), "{err:?}");
    assert_eq!(err.metric_label(), "DeletionBlocked");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot delete Aurora cluster {id}: deletion protection is on; set spec.database.deletionProtection to false to let halo delete it, or set deletionPolicy: Retain to keep it"
        )
    );
    assert!(cluster(&aws, &id).await.is_some());
    assert_eq!(
        instance_zones(&aws, &id).await.len(),
        2,
        "no instance deleted"
    );

    d.deletion_protection = false;
    let messages = cleanup_until_done(&aws, &d).await;
    assert_eq!(
        messages.last().map(String::as_str),
        Some(format!("Aurora cluster {id} deleting, without a final snapshot").as_str())
    );
    assert!(cluster(&aws, &id).await.is_none());
    assert!(!snapshot_exists(&aws, &d.final_snapshot_id).await);
}

/// An existing cluster is adopted: tagged, scaled to the spec, reported; with the default
/// Snapshot policy it is retained, never deleted.
#[tokio::test]
async fn adopts_an_existing_cluster() {
    let aws = aws().await;
    let legacy = unique("legacy");
    let rds = aws.rds().await;
    rds.create_db_cluster()
        .db_cluster_identifier(&legacy)
        .engine("aurora-postgresql")
        .master_username("legacyadmin")
        .manage_master_user_password(true)
        .send()
        .await
        .expect("create legacy cluster");
    rds.create_db_instance()
        .db_instance_identifier(format!("{legacy}-writer"))
        .db_cluster_identifier(&legacy)
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.large")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("create legacy writer");

    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        &format!("    instances: 2\n    adopt: {{clusterIdentifier: {legacy}}}\n"),
    );
    assert!(d.adopted);
    let first = aurora::ensure(&aws, &d).await.expect("adopt");
    assert_eq!(
        first.changes[0].message,
        format!("Aurora cluster {legacy}: adopted and tagged")
    );
    let report = converge(&aws, &d).await;
    assert_eq!(report.cluster.writer, Some(format!("{legacy}-writer")));
    let zones = instance_zones(&aws, &legacy).await;
    assert_eq!(
        zones,
        BTreeMap::from([
            (format!("{legacy}-1"), "us-east-1b".to_string()),
            (format!("{legacy}-writer"), "us-east-1a".to_string()),
        ])
    );
    let tags = tag_map(cluster(&aws, &legacy).await.expect("cluster").tag_list());
    assert_eq!(tags.get(TAG_UID), Some(&d.owner.uid));

    let messages = cleanup_until_done(&aws, &d).await;
    assert_eq!(
        messages,
        vec![format!(
            "Aurora cluster {legacy} retained; halo's tags removed"
        )]
    );
    assert!(
        cluster(&aws, &legacy).await.is_some(),
        "adopted cluster kept"
    );
}

/// Adopting with the spec silent on the shape rewrites nothing: the three db.t3.medium
/// instances stay (no reader deleted for the old default of 2, none resized to db.r6g.large)
/// and the operator's default security groups are not put on the cluster.
#[tokio::test]
async fn adoption_with_defaults_keeps_the_cluster_as_it_is() {
    let config = AwsConfig {
        db_security_groups: vec!["sg-0aaaaaaaaaaaaaaaa".into()],
        ..AwsConfig::default()
    };
    let aws = Aws::with_sdk_config(config.clone(), aws_support::sdk().await);
    let legacy = unique("legacy");
    let rds = aws.rds().await;
    rds.create_db_cluster()
        .db_cluster_identifier(&legacy)
        .engine("aurora-postgresql")
        .master_username("legacyadmin")
        .manage_master_user_password(true)
        .deletion_protection(true)
        .vpc_security_group_ids("sg-0bbbbbbbbbbbbbbbb")
        .send()
        .await
        .expect("create legacy cluster");
    for (n, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
    {
        rds.create_db_instance()
            .db_instance_identifier(format!("{legacy}-{}", n + 1))
            .db_cluster_identifier(&legacy)
            .engine("aurora-postgresql")
            .db_instance_class("db.t3.medium")
            .availability_zone(*zone)
            .send()
            .await
            .expect("create legacy instance");
    }
    let ns = unique("t");
    let v = app(&manifest(
        &ns,
        "shop",
        &format!("  database:\n    adopt: {{clusterIdentifier: {legacy}}}\n"),
    ));
    let d = aurora::desired(&v, &config).expect("database section");
    let before = aws.calls().snapshot();
    let report = converge(&aws, &d).await;
    let mutating: Vec<String> = aws
        .calls()
        .since(&before)
        .into_keys()
        .filter(|api| !is_read_only(api))
        .collect();
    assert_eq!(mutating, vec!["rds:AddTagsToResource".to_string()]);
    assert_eq!(report.instances.len(), 3);
    let rds = aws.rds().await;
    let out = rds
        .describe_db_instances()
        .filters(
            aws_sdk_rds::types::Filter::builder()
                .name("db-cluster-id")
                .values(&legacy)
                .build(),
        )
        .send()
        .await
        .expect("instances");
    let classes: Vec<&str> = out
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_class())
        .collect();
    assert_eq!(classes, vec!["db.t3.medium"; 3]);
    let c = cluster(&aws, &legacy).await.expect("cluster");
    let groups: Vec<&str> = c
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups, vec!["sg-0bbbbbbbbbbbbbbbb"]);
    assert_eq!(
        cleanup_until_done(&aws, &d).await,
        vec![format!(
            "Aurora cluster {legacy} retained; halo's tags removed"
        )]
    );
}

/// A cluster with halo's identifier that is not this app's is never taken over silently.
#[tokio::test]
async fn refuses_a_foreign_cluster_with_its_name() {
    let aws = aws().await;
    let ns = unique("t");
    let id = format!("{ns}-shop");
    aws.rds()
        .await
        .create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("someoneelse")
        .manage_master_user_password(true)
        .send()
        .await
        .expect("create foreign cluster");
    let d = desired(&ns, "shop", "    instances: 2\n");
    let err = aurora::ensure(&aws, &d).await.expect_err("not ours");
    assert_eq!(
        err.to_string(),
        format!(
            "Aurora cluster {id} exists and is not owned by this HighlyAvailableApp; adopt it with spec.database.adopt, or delete or rename it"
        )
    );
    // Cleanup never touches it either.
    let report = aurora::cleanup(&aws, &d).await.expect("cleanup");
    assert!(report.done);
    assert!(cluster(&aws, &id).await.is_some());
}

/// Clusters in the emulator tagged with `uid`.
async fn clusters_of(aws: &Aws, uid: &str) -> Vec<String> {
    let rds = aws.rds().await;
    let mut ids = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = rds
            .describe_db_clusters()
            .set_marker(marker.clone())
            .send()
            .await
            .expect("describe all");
        ids.extend(out.db_clusters().iter().filter_map(|c| {
            tag_map(c.tag_list())
                .get(TAG_UID)
                .filter(|u| *u == uid)
                .and(c.db_cluster_identifier().map(str::to_string))
        }));
        marker = out.marker().map(str::to_string);
        if marker.is_none() {
            return ids;
        }
    }
}

/// A crash between the create and the status write: a restarted operator (fresh clients, no
/// memory) finds the cluster and creates no second one.
#[tokio::test]
async fn ensure_after_a_crash_creates_no_second_cluster() {
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 2\n    deletionProtection: false\n",
    );
    let first = aurora::ensure(&aws().await, &d)
        .await
        .expect("first ensure");
    assert_eq!(first.changes[0].reason, "Created");
    // The process dies here, before any status write.
    let restarted = aws().await;
    let second = aurora::ensure(&restarted, &d)
        .await
        .expect("ensure after restart");
    assert!(
        second.changes.iter().all(|c| c.reason != "Created"),
        "{:?}",
        second.changes
    );
    assert_eq!(
        restarted.calls().snapshot().get("rds:CreateDBCluster"),
        None
    );
    converge(&restarted, &d).await;
    assert_eq!(
        clusters_of(&restarted, &d.owner.uid).await,
        vec![format!("{ns}-shop")]
    );
    cleanup_now(&restarted, &d).await;
}

/// The adopted identifier must name an existing cluster; otherwise the spec is wrong.
#[tokio::test]
async fn adopting_a_missing_cluster_is_a_spec_error() {
    let aws = aws().await;
    let missing = unique("missing");
    let d = desired(
        &unique("t"),
        "shop",
        &format!("    adopt: {{clusterIdentifier: {missing}}}\n"),
    );
    let err = aurora::ensure(&aws, &d).await.expect_err("missing");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid spec: spec.database.adopt.clusterIdentifier: no DB cluster {missing} exists in this account and region"
        )
    );
}

/// A request AWS never answers fails with `Timeout` after the configured call timeout (the
/// reconcile backs off) instead of holding the reconcile forever. The "AWS" here is a loopback
/// socket that accepts connections and never answers.
#[tokio::test]
async fn a_request_aws_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let silent = std::thread::spawn(move || {
        // Hold every connection open, answering nothing.
        let held: Vec<_> = listener.incoming().take(8).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let config = AwsConfig {
        call_timeout: std::time::Duration::from_secs(2),
        ..AwsConfig::default()
    };
    let aws = Aws::with_sdk_config(config, aws_support::sdk_at(&url).await);
    let rds = aws.rds().await;
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        aws.call(
            "rds:DescribeDBClusters",
            rds.describe_db_clusters().db_cluster_identifier("x").send(),
        ),
    )
    .await
    .expect("the call timed out by itself, well before the guard");
    let err = result.expect_err("no answer");
    assert!(halo::aws::is_code(&err, "Timeout"), "{err}");
    assert!(!err.is_throttled());
    drop(silent);
}

/// A cluster under `id` with one instance, tagged with `uid`, as an earlier halo left it.
async fn legacy_cluster(aws: &Aws, id: &str, uid: &str) {
    let rds = aws.rds().await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    rds.create_db_cluster()
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .master_username("haloadmin")
        .manage_master_user_password(true)
        .tags(tag(TAG_UID, uid))
        .tags(tag("halo.dev/managed-by", "halo"))
        .send()
        .await
        .expect("create legacy cluster");
    rds.create_db_instance()
        .db_instance_identifier(format!("{id}-1"))
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .db_instance_class("db.r6g.large")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("create legacy instance");
}

/// An app whose cluster an earlier halo created under the legacy identifier (`<ns>-shop-web`,
/// now `<ns>-shop-web-<hash>`) keeps it: found by its uid tag, no create of any kind, reported
/// under the identifier it has, and deleted by cleanup.
#[tokio::test]
async fn keeps_its_cluster_under_the_legacy_identifier() {
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop-web",
        "    instances: 1\n    multiAZ: false\n    deletionProtection: false\n    deletionPolicy: Delete\n",
    );
    let legacy = format!("{ns}-shop-web");
    assert_eq!(d.legacy_id.as_deref(), Some(legacy.as_str()));
    assert_ne!(d.id, legacy);
    legacy_cluster(&aws().await, &legacy, &d.owner.uid).await;

    let aws = aws().await;
    let report = converge(&aws, &d).await;
    assert_eq!(report.cluster.id, legacy);
    assert_eq!(
        aurora::endpoints(&report).cluster_identifier.as_deref(),
        Some(legacy.as_str())
    );
    let creates: Vec<String> = aws
        .calls()
        .snapshot()
        .into_keys()
        .filter(|api| api.contains(":Create"))
        .collect();
    assert_eq!(creates, Vec::<String>::new());
    assert!(
        cluster(&aws, &d.id).await.is_none(),
        "no cluster under the new id"
    );

    let messages = cleanup_until_done(&aws, &d).await;
    assert!(messages.iter().all(|m| m.contains(&legacy)), "{messages:?}");
    let gone = cluster(&aws, &legacy)
        .await
        .is_none_or(|c| c.status() == Some("deleting"));
    assert!(gone, "legacy cluster deleted");
}

/// A cluster under the legacy identifier that another app owns (another uid: e.g. `<ns>-shop/web`
/// squatting on `<ns>/shop-web`'s old name) is never used: halo creates the app's own cluster
/// under the new identifier, and cleanup leaves the other one alone.
#[tokio::test]
async fn ignores_a_legacy_named_cluster_of_another_app() {
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop-web",
        "    instances: 1\n    multiAZ: false\n    deletionProtection: false\n    deletionPolicy: Delete\n",
    );
    let legacy = format!("{ns}-shop-web");
    legacy_cluster(&aws().await, &legacy, "uid-of-another-app").await;

    let aws = aws().await;
    let first = aurora::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(first.cluster.id, d.id);
    assert_eq!(first.changes[0].reason, "Created");
    assert_eq!(aws.calls().snapshot().get("rds:CreateDBCluster"), Some(&1));
    let other = tag_map(cluster(&aws, &legacy).await.expect("other").tag_list());
    assert_eq!(
        other.get(TAG_UID).map(String::as_str),
        Some("uid-of-another-app")
    );

    cleanup_now(&aws, &d).await;
    assert!(
        cluster(&aws, &legacy).await.is_some(),
        "the other app's cluster stays"
    );
}

/// Deletes a cluster as a person would, outside halo: its instances, then the cluster itself.
async fn delete_outside_halo(aws: &Aws, id: &str) {
    let rds = aws.rds().await;
    for instance in instance_zones(aws, id).await.keys() {
        rds.delete_db_instance()
            .db_instance_identifier(instance)
            .send()
            .await
            .expect("delete instance");
    }
    rds.delete_db_cluster()
        .db_cluster_identifier(id)
        .skip_final_snapshot(true)
        .send()
        .await
        .expect("delete cluster");
    assert!(cluster(aws, id).await.is_none(), "{id} still there");
    // The emulator names its automated snapshot after the cluster and the minute: a cluster
    // created again under the identifier within that minute would collide with it.
    let snapshots = rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(id)
        .send()
        .await
        .expect("describe snapshots");
    for s in snapshots.db_cluster_snapshots() {
        if let Some(snapshot) = s.db_cluster_snapshot_identifier() {
            rds.delete_db_cluster_snapshot()
                .db_cluster_snapshot_identifier(snapshot)
                .send()
                .await
                .expect("delete automated snapshot");
        }
    }
}

/// Issue 13 (1): a cluster the status recorded and that was deleted outside halo (the first
/// half of an RDS restore) is not recreated empty: `Missing`, no CreateDBCluster. The
/// annotation naming the recorded identity lets halo create a new one.
#[tokio::test]
async fn a_cluster_deleted_outside_halo_is_not_recreated() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 1\n    multiAZ: false\n    deletionProtection: false\n",
    );
    let recorded = aurora::endpoints(&converge(&aws, &d).await);
    let identity = recorded.resource_id.clone().expect("resource id recorded");
    assert!(identity.starts_with("cluster-"), "{identity}");
    let id = format!("{ns}-shop");
    delete_outside_halo(&aws, &id).await;

    let next = d.clone().with_recorded(Some(&recorded), &[]);
    let fresh = aws_support::aws().await;
    let err = aurora::ensure(&fresh, &next).await.expect_err("missing");
    assert_eq!(err.metric_label(), "Missing");
    assert_eq!(
        err.to_string(),
        format!(
            "Aurora cluster {id} ({identity}) that this app recorded is gone: deleted outside halo, or being restored. halo does not create an empty one in its place. Restore it under the identifier {id}; or, to have halo create a new, empty cluster, run: kubectl annotate highlyavailableapp -n {ns} shop halo.dev/accept-store={identity}"
        )
    );
    let calls = fresh.calls().snapshot();
    assert_eq!(calls.get("rds:CreateDBCluster"), None, "{calls:?}");
    assert!(calls.keys().all(|api| is_read_only(api)), "{calls:?}");
    assert!(cluster(&aws, &id).await.is_none());

    // The user accepts an empty cluster: halo creates one, once.
    let accepted = d
        .clone()
        .with_recorded(Some(&recorded), std::slice::from_ref(&identity));
    let report = aurora::ensure(&aws, &accepted).await.expect("recreate");
    assert_eq!(report.changes[0].reason, "Created");
    let new_identity = aurora::endpoints(&report).resource_id.expect("new id");
    assert_ne!(new_identity, identity);
    cleanup_now(&aws, &accepted).await;
}

/// Issue 13 (1): a cluster under the recorded identifier that is not the recorded one (restored
/// from a snapshot with halo's tags) is neither modified nor deleted: `Replaced`. Accepted, it
/// becomes the app's cluster.
#[tokio::test]
async fn a_cluster_replaced_outside_halo_is_not_touched() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        "    instances: 1\n    multiAZ: false\n    deletionProtection: false\n",
    );
    let recorded = aurora::endpoints(&converge(&aws, &d).await);
    let identity = recorded.resource_id.clone().expect("resource id recorded");
    let id = format!("{ns}-shop");
    delete_outside_halo(&aws, &id).await;
    // The "restore": another cluster under the same identifier, with the app's tags and a
    // setting the spec disagrees with.
    let rds = aws.rds().await;
    rds.create_db_cluster()
        .db_cluster_identifier(&id)
        .engine("aurora-postgresql")
        .master_username("restored")
        .master_user_password("restored-password")
        .deletion_protection(true)
        .set_tags(Some(
            d.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .send()
        .await
        .expect("restore");

    let next = d.clone().with_recorded(Some(&recorded), &[]);
    let fresh = aws_support::aws().await;
    let err = aurora::ensure(&fresh, &next).await.expect_err("replaced");
    assert_eq!(err.metric_label(), "Replaced");
    assert!(
        err.to_string().starts_with(&format!(
            "Aurora cluster {id} is not the one this app recorded (cluster-"
        )),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with(&format!("halo.dev/accept-store={identity}")),
        "{err}"
    );
    let calls = fresh.calls().snapshot();
    assert!(calls.keys().all(|api| is_read_only(api)), "{calls:?}");
    // Deleting the app leaves it too.
    let mut deleting = next.clone();
    deleting.deletion_protection = false;
    deleting.deletion_policy = halo::api::data::DeletionPolicy::Delete;
    let report = aurora::cleanup(&fresh, &deleting).await.expect("cleanup");
    assert_eq!(
        report.message,
        format!(
            "Aurora cluster {id} is not the one this app recorded (replaced outside halo): left alone"
        )
    );
    let calls = fresh.calls().snapshot();
    assert!(calls.keys().all(|api| is_read_only(api)), "{calls:?}");
    assert_eq!(
        cluster(&aws, &id)
            .await
            .and_then(|c| c.deletion_protection()),
        Some(true)
    );

    // Accepted: halo takes it on and corrects it to the spec.
    let accepted = d.clone().with_recorded(Some(&recorded), &[identity]);
    aurora::ensure(&aws, &accepted).await.expect("take on");
    assert_eq!(
        cluster(&aws, &id)
            .await
            .and_then(|c| c.deletion_protection()),
        Some(false)
    );
    cleanup_now(&aws, &accepted).await;
}
