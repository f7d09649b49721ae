//! `aws::elasticache` against the AWS emulator (moto in server mode): creation with Multi-AZ
//! automatic failover and encryption, drift correction, the deletion policies, adoption and
//! idempotency. Needs `AWS_ENDPOINT_URL` (see `aws_support::endpoint`).
//!
//! Where moto differs from ElastiCache (each test says which): it ignores `NumCacheClusters`
//! (halo sends `ReplicasPerNodeGroup`), it has no IncreaseReplicaCount, DecreaseReplicaCount or
//! TestFailover, it ignores `FinalSnapshotIdentifier` on DeleteReplicationGroup, a deleted
//! group stays `deleting` forever, and it reports no ReaderEndpoint.

mod aws_support;

use std::collections::BTreeMap;

use aws_support::{app, aws, manifest, unique};
use halo::aws::elasticache::{self, CacheReport, DesiredGroup, Step};
use halo::aws::{Aws, AwsConfig, TAG_UID, is_read_only};

fn desired(namespace: &str, name: &str, cache: &str) -> DesiredGroup {
    let v = app(&manifest(namespace, name, &format!("  cache:\n{cache}")));
    elasticache::desired(&v, &AwsConfig::default()).expect("cache section")
}

async fn converge(aws: &Aws, d: &DesiredGroup) -> CacheReport {
    let mut last = None;
    for _ in 0..6 {
        let report = elasticache::ensure(aws, d).await.expect("ensure");
        if elasticache::readiness(d, &report).ready {
            return report;
        }
        last = Some(report);
    }
    panic!("replication group did not converge: {last:#?}");
}

async fn group(aws: &Aws, id: &str) -> Option<aws_sdk_elasticache::types::ReplicationGroup> {
    let ec = aws.elasticache().await;
    match ec
        .describe_replication_groups()
        .replication_group_id(id)
        .send()
        .await
    {
        Ok(out) => out.replication_groups().first().cloned(),
        Err(e) if format!("{e:?}").contains("ReplicationGroupNotFoundFault") => None,
        Err(e) => panic!("describe {id}: {e:?}"),
    }
}

async fn tags(aws: &Aws, arn: &str) -> BTreeMap<String, String> {
    let out = aws
        .elasticache()
        .await
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .expect("tags");
    out.tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

const TWO_REPLICAS: &str = "    engine: redis\n    nodeType: cache.r6g.large\n    replicas: 2\n";

/// A primary and two replicas in three zones, Multi-AZ with automatic failover, encrypted in
/// transit and at rest; a stable group then costs one describe and one tag read.
#[tokio::test]
async fn creates_a_multi_az_group_with_failover() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    let report = converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    assert_eq!(report.group.id, id);
    let g = group(&aws, &id).await.expect("group exists");
    assert_eq!(g.automatic_failover().map(|s| s.as_str()), Some("enabled"));
    assert_eq!(g.multi_az().map(|s| s.as_str()), Some("enabled"));
    assert_eq!(g.transit_encryption_enabled(), Some(true));
    assert_eq!(g.at_rest_encryption_enabled(), Some(true));
    // moto ignores NumCacheClusters; halo sends ReplicasPerNodeGroup, which it honours.
    let zones: Vec<(String, String)> = report
        .group
        .members
        .iter()
        .map(|m| (m.id.clone(), m.zone.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        zones,
        vec![
            (format!("{id}-001"), "us-east-1a".to_string()),
            (format!("{id}-002"), "us-east-1b".to_string()),
            (format!("{id}-003"), "us-east-1c".to_string()),
        ]
    );
    let r = elasticache::readiness(&d, &report);
    assert_eq!(
        r.message,
        format!(
            "ElastiCache replication group {id} is available: primary {id}-001 (us-east-1a), replicas {id}-002 (us-east-1b), {id}-003 (us-east-1c); automatic failover enabled"
        )
    );
    let endpoints = elasticache::endpoints(&report);
    assert!(
        endpoints
            .primary
            .as_deref()
            .is_some_and(|h| h.starts_with("master."))
    );
    // moto returns no ReaderEndpoint (ElastiCache does); halo then sends reads to the primary.
    assert_eq!(endpoints.reader, endpoints.primary);
    assert_eq!(endpoints.port, Some(6379));
    assert_eq!(
        tags(&aws, g.arn().unwrap_or_default()).await.get(TAG_UID),
        Some(&d.owner.uid)
    );

    let before = aws.calls().snapshot();
    let again = elasticache::ensure(&aws, &d).await.expect("ensure");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("elasticache:DescribeReplicationGroups".to_string(), 1),
            ("elasticache:ListTagsForResource".to_string(), 1),
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
}

/// Failover and Multi-AZ switched off behind halo's back, or another node type, come back.
#[tokio::test]
async fn corrects_drift() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    aws.elasticache()
        .await
        .modify_replication_group()
        .replication_group_id(&id)
        .automatic_failover_enabled(false)
        .multi_az_enabled(false)
        .cache_node_type("cache.t4g.micro")
        .apply_immediately(true)
        .send()
        .await
        .expect("drift");
    let report = elasticache::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>(),
        vec![format!(
            "ElastiCache replication group {id}: Multi-AZ and automatic failover enabled, node type cache.r6g.large"
        )
        .as_str()]
    );
    let g = group(&aws, &id).await.expect("group");
    assert_eq!(g.automatic_failover().map(|s| s.as_str()), Some("enabled"));
    assert_eq!(g.multi_az().map(|s| s.as_str()), Some("enabled"));
    assert_eq!(g.cache_node_type(), Some("cache.r6g.large"));
}

/// Scaling replicas sends IncreaseReplicaCount. moto has no such API, so here the request
/// fails; the error names the API and AWS's error code, as the condition and Event will.
#[tokio::test]
async fn scaling_replicas_calls_increase_replica_count() {
    let aws = aws().await;
    let ns = unique("t");
    let mut d = desired(&ns, "shop", TWO_REPLICAS);
    converge(&aws, &d).await;
    d.replicas = Some(3);
    let report_step = elasticache::next_step(&d, &converge_report_group(&aws, &d.id).await);
    assert_eq!(report_step, Some(Step::IncreaseReplicas(3)));
    let err = elasticache::ensure(&aws, &d)
        .await
        .expect_err("moto lacks the API");
    match &err {
        halo::Error::Aws { api, .. } => assert_eq!(api, "elasticache:IncreaseReplicaCount"),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("AWS elasticache:IncreaseReplicaCount failed: "),
        "{err}"
    );
}

async fn converge_report_group(aws: &Aws, id: &str) -> elasticache::ObservedGroup {
    let g = group(aws, id).await.expect("group");
    elasticache::ObservedGroup::from_sdk(&g)
}

/// Retain: the group stays, only halo's tags go.
#[tokio::test]
async fn retain_policy_keeps_the_group_without_tags() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        &format!("{TWO_REPLICAS}    deletionPolicy: Retain\n"),
    );
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let report = elasticache::cleanup(&aws, &d).await.expect("cleanup");
    assert_eq!(
        (report.done, report.message.as_str()),
        (
            true,
            format!("ElastiCache replication group {id} retained; halo's tags removed").as_str()
        )
    );
    let g = group(&aws, &id).await.expect("group still exists");
    assert_eq!(g.status(), Some("available"));
    let left = tags(&aws, g.arn().unwrap_or_default()).await;
    assert!(
        left.keys().all(|k| !k.starts_with("halo.dev/")),
        "halo's tags remain: {left:?}"
    );
}

/// Snapshot: the group is deleted with a final snapshot named after it. moto ignores
/// FinalSnapshotIdentifier (no snapshot appears) and never finishes deleting, so this checks
/// the request halo made and that AWS reports the group deleting.
#[tokio::test]
async fn snapshot_policy_deletes_with_a_final_snapshot() {
    let aws = aws().await;
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    converge(&aws, &d).await;
    let id = format!("{ns}-shop");
    let report = elasticache::cleanup(&aws, &d).await.expect("cleanup");
    assert_eq!(
        (report.done, report.message),
        (
            true,
            format!(
                "ElastiCache replication group {id} deleting after final snapshot {}",
                d.final_snapshot_id
            )
        )
    );
    assert!(d.final_snapshot_id.starts_with(&format!("{id}-final-")));
    assert_eq!(
        group(&aws, &id)
            .await
            .and_then(|g| g.status().map(str::to_string))
            .as_deref(),
        Some("deleting")
    );
    // Asking again (a retry) confirms without a second delete.
    let before = aws.calls().snapshot();
    let again = elasticache::cleanup(&aws, &d).await.expect("cleanup again");
    assert_eq!(
        (again.done, again.message),
        (
            true,
            format!("ElastiCache replication group {id} is deleting")
        )
    );
    assert_eq!(
        aws.calls().since(&before),
        BTreeMap::from([("elasticache:DescribeReplicationGroups".to_string(), 1)])
    );
}

/// An existing group is adopted (tagged, reported) and, with the default policy, retained.
#[tokio::test]
async fn adopts_an_existing_group() {
    let aws = aws().await;
    let legacy = unique("legacy");
    aws.elasticache()
        .await
        .create_replication_group()
        .replication_group_id(&legacy)
        .replication_group_description("made by hand")
        .engine("redis")
        .cache_node_type("cache.r6g.large")
        .num_node_groups(1)
        .replicas_per_node_group(1)
        .automatic_failover_enabled(true)
        .multi_az_enabled(true)
        .transit_encryption_enabled(true)
        .at_rest_encryption_enabled(true)
        .send()
        .await
        .expect("create legacy group");
    let ns = unique("t");
    let d = desired(
        &ns,
        "shop",
        &format!("    replicas: 1\n    adopt: {{replicationGroupId: {legacy}}}\n"),
    );
    let first = elasticache::ensure(&aws, &d).await.expect("adopt");
    assert_eq!(
        first.changes[0].message,
        format!("ElastiCache replication group {legacy}: adopted and tagged")
    );
    let report = converge(&aws, &d).await;
    assert_eq!(report.group.id, legacy);
    let arn = group(&aws, &legacy)
        .await
        .and_then(|g| g.arn().map(str::to_string))
        .expect("arn");
    assert_eq!(tags(&aws, &arn).await.get(TAG_UID), Some(&d.owner.uid));
    let cleanup = elasticache::cleanup(&aws, &d).await.expect("cleanup");
    assert_eq!(
        cleanup.message,
        format!("ElastiCache replication group {legacy} retained; halo's tags removed")
    );
    assert_eq!(
        group(&aws, &legacy)
            .await
            .and_then(|g| g.status().map(str::to_string))
            .as_deref(),
        Some("available")
    );
}

/// Adopting with the spec silent on the shape rewrites nothing: the group keeps its one
/// replica (not scaled to the old default of 2) and its node type (not resized to
/// cache.r6g.large); the only call that changes anything is the tagging.
#[tokio::test]
async fn adoption_with_defaults_keeps_the_group_as_it_is() {
    let config = AwsConfig {
        cache_security_groups: vec!["sg-0aaaaaaaaaaaaaaaa".into()],
        ..AwsConfig::default()
    };
    let aws = Aws::with_sdk_config(config.clone(), aws_support::sdk().await);
    let legacy = unique("legacy");
    aws.elasticache()
        .await
        .create_replication_group()
        .replication_group_id(&legacy)
        .replication_group_description("made by hand")
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_node_groups(1)
        .replicas_per_node_group(1)
        .automatic_failover_enabled(true)
        .multi_az_enabled(true)
        .send()
        .await
        .expect("create legacy group");
    let ns = unique("t");
    let v = app(&manifest(
        &ns,
        "shop",
        &format!("  cache:\n    adopt: {{replicationGroupId: {legacy}}}\n"),
    ));
    let d = elasticache::desired(&v, &config).expect("cache section");
    let before = aws.calls().snapshot();
    let report = converge(&aws, &d).await;
    let mutating: Vec<String> = aws
        .calls()
        .since(&before)
        .into_keys()
        .filter(|api| !is_read_only(api))
        .collect();
    assert_eq!(mutating, vec!["elasticache:AddTagsToResource".to_string()]);
    assert_eq!(report.group.replicas(), 1);
    let g = group(&aws, &legacy).await.expect("group");
    assert_eq!(g.cache_node_type(), Some("cache.t4g.micro"));
    elasticache::cleanup(&aws, &d).await.expect("cleanup");
}

/// A restarted operator (fresh clients) finds the group it created before the crash.
#[tokio::test]
async fn ensure_after_a_crash_creates_no_second_group() {
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    let first = elasticache::ensure(&aws().await, &d)
        .await
        .expect("first ensure");
    assert_eq!(first.changes[0].reason, "Created");
    let restarted = aws().await;
    let second = elasticache::ensure(&restarted, &d)
        .await
        .expect("after restart");
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(
        restarted
            .calls()
            .snapshot()
            .get("elasticache:CreateReplicationGroup"),
        None
    );
    let ec = restarted.elasticache().await;
    let all = ec
        .describe_replication_groups()
        .send()
        .await
        .expect("describe all");
    let mine: Vec<&str> = all
        .replication_groups()
        .iter()
        .filter(|g| g.description() == Some(d.description.as_str()))
        .filter_map(|g| g.replication_group_id())
        .collect();
    assert_eq!(mine, vec![d.id.as_str()]);
}

/// Issue 13 (1): a group the status recorded that is gone (deleted outside halo) is not created
/// again empty: `Missing`, no CreateReplicationGroup; accepted, halo creates a new one. moto
/// keeps a deleted group `deleting` forever, so the recorded group here is one that is gone
/// from the start (a status from another account or an earlier life of the group).
#[tokio::test]
async fn a_group_deleted_outside_halo_is_not_recreated() {
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    let recorded = halo::api::data::CacheEndpoints {
        replication_group_id: Some(d.id.clone()),
        created_at: Some("2026-01-02T03:04:05Z".into()),
        ..Default::default()
    };
    let next = d.clone().with_recorded(Some(&recorded), &[]);
    let aws = aws().await;
    let err = elasticache::ensure(&aws, &next).await.expect_err("missing");
    assert_eq!(err.metric_label(), "Missing");
    assert_eq!(
        err.to_string(),
        format!(
            "ElastiCache replication group {} (2026-01-02T03:04:05Z) that this app recorded is gone: deleted outside halo, or being restored. halo does not create an empty one in its place. Restore it under the identifier {}; or, to have halo create a new, empty replication group, run: kubectl annotate highlyavailableapp -n {ns} shop halo.dev/accept-store=2026-01-02T03:04:05Z",
            d.id, d.id
        )
    );
    let calls = aws.calls().snapshot();
    assert!(calls.keys().all(|api| is_read_only(api)), "{calls:?}");
    assert!(group(&aws, &d.id).await.is_none());

    let accepted = d
        .clone()
        .with_recorded(Some(&recorded), &["2026-01-02T03:04:05Z".to_string()]);
    let report = elasticache::ensure(&aws, &accepted).await.expect("create");
    assert_eq!(report.changes[0].reason, "Created");
    let created_at = elasticache::endpoints(&report)
        .created_at
        .expect("recorded");
    assert_ne!(created_at, "2026-01-02T03:04:05Z");
    elasticache::cleanup(&aws, &accepted)
        .await
        .expect("cleanup");
}

/// Issue 13 (1): a group under the recorded id created at another time than the recorded one
/// (replaced outside halo) is neither modified nor deleted: `Replaced`.
#[tokio::test]
async fn a_group_replaced_outside_halo_is_not_touched() {
    let ns = unique("t");
    let d = desired(&ns, "shop", TWO_REPLICAS);
    let created = converge(&aws().await, &d).await;
    let now = elasticache::endpoints(&created)
        .created_at
        .expect("recorded");
    let recorded = halo::api::data::CacheEndpoints {
        created_at: Some("2026-01-02T03:04:05Z".into()),
        ..elasticache::endpoints(&created)
    };
    let next = d.clone().with_recorded(Some(&recorded), &[]);
    let aws = aws().await;
    let err = elasticache::ensure(&aws, &next)
        .await
        .expect_err("replaced");
    assert_eq!(err.metric_label(), "Replaced");
    assert_eq!(
        err.to_string(),
        format!(
            "ElastiCache replication group {} is not the one this app recorded (created {now}, recorded 2026-01-02T03:04:05Z): it was replaced outside halo, e.g. restored from a snapshot. halo leaves it untouched; to take it on as the app's own, run: kubectl annotate highlyavailableapp -n {ns} shop halo.dev/accept-store=2026-01-02T03:04:05Z",
            d.id
        )
    );
    let report = elasticache::cleanup(&aws, &next).await.expect("cleanup");
    assert_eq!(
        report.message,
        format!(
            "ElastiCache replication group {} is not the one this app recorded (replaced outside halo): left alone",
            d.id
        )
    );
    let calls = aws.calls().snapshot();
    assert!(calls.keys().all(|api| is_read_only(api)), "{calls:?}");
    assert_eq!(
        group(&aws, &d.id)
            .await
            .and_then(|g| g.status().map(str::to_string)),
        Some("available".to_string())
    );
    elasticache::cleanup(&aws, &d).await.expect("cleanup");
}
