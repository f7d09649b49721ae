//! The whole architecture against the AWS emulator, from create to what the deletion policies
//! leave behind (s11), in named steps.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use halo::api::{HighlyAvailableApp, HighlyAvailableAppStatus};
use halo::aws::Aws;
use halo_e2e::route53::{emulator_with_zone, primary_records, zone_records};
use halo_e2e::suite::{
    CONVERGE, create_app, publish_alb_hostname, setup, wait_condition, wait_deleted,
};
use halo_e2e::{TestNamespace, sample, wait_for};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// s11: The whole architecture (`config/samples/architecture.yaml`: compute over three zones
/// with autoscaling, an Ingress, a Route 53 failover record, Aurora, ElastiCache, two DynamoDB
/// tables, a replicated static assets bucket, CloudWatch alarms) converges against the
/// emulator with every section's condition True, the connection Secret carries every endpoint,
/// and deleting the app leaves exactly what the deletion policies promise.
///
/// Where moto differs from AWS (said again where it matters): CloudWatch goes through the
/// protocol relay e2e/up starts (moto lacks CloudWatch's CBOR protocol); alarms are created in
/// state OK and never evaluated (AWS starts them at INSUFFICIENT_DATA); the replication group
/// has no reader endpoint, so REDIS_READER_HOST is the primary's; a
/// replication group deleted with a final snapshot stays `deleting` for good and no snapshot
/// appears (moto ignores FinalSnapshotIdentifier; AWS removes the group after the snapshot);
/// DynamoDB replicas are never created, so the sample has no `replicaRegions`.
pub async fn s11_full_architecture_converges_and_deletes_by_policy() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some()
            && std::env::var_os("AWS_ENDPOINT_URL_CLOUDWATCH").is_some(),
        "AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_CLOUDWATCH is not set: run the suite through scripts/test, or `set -a; source $HALO_E2E_STATE/env; set +a; eval \"$(e2e/moto env)\"`"
    );
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-full").await?;
    let (aws, r53, zone_id, zone) = emulator_with_zone(&ns.name).await?;
    halo_e2e::suite::grant_dns(&client, &ns.name, &zone_id, &zone).await?;
    let record = format!("checkout.{zone}");
    let app = sample(
        "architecture.yaml",
        &json!({"metadata": {"namespace": ns.name},
                "spec": {"ingress": {"host": record},
                         "dns": {"hostedZoneId": zone_id, "recordName": record}}}),
    )?;
    let full = Full::new(client, &ns.name, app.name_any(), record, zone_id, aws, r53);
    let started = Instant::now();
    create_app(&full.client, &app).await?;
    full.play_the_load_balancer_controller().await?;

    let times = full.wait_for_each_condition(started).await?;
    let ready_in = started.elapsed();
    let status = full.every_condition_true_at_once().await?;
    full.check_connection_secret().await?;
    let alarms = full.check_alarms(&status).await?;
    let hc = full.check_record_sets(&status).await?;
    full.check_replication_and_fill_the_bucket().await?;

    let deleted_in = full.delete_and_wait_for_the_cleanup().await?;
    let snapshot = full.check_aurora_left_one_final_snapshot().await?;
    full.check_replication_group_is_deleting().await?;
    full.check_tables_by_policy().await?;
    full.check_buckets_are_gone().await?;
    full.check_alarms_are_gone().await?;
    full.check_record_sets_and_health_check_are_gone(&hc)
        .await?;

    println!(
        "s11: {}; Ready {ready_in:?} after create; deletion with the AWS cleanup {deleted_in:?}",
        times.join(", ")
    );
    let Full {
        id,
        orders,
        sessions,
        bucket,
        replica_bucket,
        ..
    } = &full;
    println!(
        "s11: left by the policies: Aurora final snapshot {snapshot}, table {orders} (Retain); gone: cluster {id}, table {sessions}, buckets {bucket} and {replica_bucket}, {alarms} alarms, 3 record sets, health check {hc}; replication group {id} `deleting` (moto never finishes)"
    );

    full.tidy(&snapshot).await?;
    ns.cleanup().await?;
    full.r53
        .delete_hosted_zone()
        .id(&full.zone_id)
        .send()
        .await?;
    Ok(())
}

const ALB: &str = "k8s-full-checkout-123.us-east-1.elb.amazonaws.com";
const SLOW: Duration = Duration::from_secs(240);

/// The app of s11 and the names halo gives it in AWS.
struct Full {
    client: Client,
    ns: String,
    name: String,
    /// halo's AWS names: `<namespace>-<app>`.
    id: String,
    record: String,
    zone_id: String,
    aws: Aws,
    r53: aws_sdk_route53::Client,
    bucket: String,
    replica_bucket: String,
    /// The DynamoDB tables: `orders` (Retain, the default) and `sessions` (Delete).
    orders: String,
    sessions: String,
    alarm_prefix: String,
}

impl Full {
    fn new(
        client: Client,
        ns: &str,
        name: String,
        record: String,
        zone_id: String,
        aws: Aws,
        r53: aws_sdk_route53::Client,
    ) -> Self {
        // The names halo derives (hashed: the namespace holds a `-`).
        let owner = halo::meta::Owner {
            name: name.clone(),
            namespace: ns.to_string(),
            uid: String::new(),
        };
        let id = halo::names::resource_id(&owner, halo::names::MAX_GROUP_ID);
        let bucket = halo::names::default_bucket(&owner);
        Full {
            client,
            ns: ns.to_string(),
            alarm_prefix: format!("halo/{ns}/{name}/"),
            replica_bucket: halo::aws::s3::default_replica_bucket(&bucket, "us-west-2"),
            orders: halo::names::table_name(&owner, "orders"),
            sessions: halo::names::table_name(&owner, "sessions"),
            bucket,
            name,
            id,
            record,
            zone_id,
            aws,
            r53,
        }
    }

    /// Plays the AWS Load Balancer Controller once halo made the Ingress.
    async fn play_the_load_balancer_controller(&self) -> anyhow::Result<()> {
        wait_for("the Ingress to get the ALB hostname", CONVERGE, || async {
            publish_alb_hostname(&self.ns, &self.name, ALB)
                .await
                .map(|_| Some(()))
        })
        .await
    }

    /// Waits for each section's condition to turn True, in order; returns when each did.
    async fn wait_for_each_condition(&self, started: Instant) -> anyhow::Result<Vec<String>> {
        let mut times = Vec::new();
        for type_ in [
            "ComputeReady",
            "IngressReady",
            "ZoneResilient",
            "DatabaseReady",
            "CacheReady",
            "DNSReady",
            "DynamoDBReady",
            "StaticAssetsReady",
            "AlarmsOK",
            "Ready",
        ] {
            wait_condition(&self.client, &self.ns, &self.name, type_, "True", SLOW).await?;
            times.push(format!("{type_} {:?}", started.elapsed()));
        }
        Ok(times)
    }

    /// One consistent look at every condition at once (AlarmsOK is reported, not in Ready).
    async fn every_condition_true_at_once(&self) -> anyhow::Result<HighlyAvailableAppStatus> {
        let ready = wait_condition(
            &self.client,
            &self.ns,
            &self.name,
            "Ready",
            "True",
            CONVERGE,
        )
        .await?;
        let conditions: Vec<(String, String, String)> = ready
            .status
            .as_ref()
            .map(|s| {
                s.conditions
                    .iter()
                    .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                    .collect()
            })
            .unwrap_or_default();
        println!("s11: conditions {conditions:#?}");
        for (type_, status, reason) in &conditions {
            assert_eq!(status, "True", "{type_} is {status} ({reason})");
        }
        Ok(ready.status.clone().unwrap_or_default())
    }

    /// The connection Secret: every endpoint the pods need.
    async fn check_connection_secret(&self) -> anyhow::Result<()> {
        let Full {
            id,
            bucket,
            replica_bucket,
            orders,
            sessions,
            ..
        } = self;
        let secret_name = format!("{}-connection", self.name);
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .get(&secret_name)
            .await?;
        let data: BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        println!("s11: {secret_name}: {data:#?}");
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "DATABASE_HOST",
                "DATABASE_NAME",
                "DATABASE_PORT",
                "DATABASE_READER_HOST",
                "DATABASE_SECRET_ARN",
                "DYNAMODB_TABLE_ORDERS",
                "DYNAMODB_TABLE_ORDERS_ARN",
                "DYNAMODB_TABLE_SESSIONS",
                "DYNAMODB_TABLE_SESSIONS_ARN",
                "REDIS_HOST",
                "REDIS_PORT",
                "REDIS_READER_HOST",
                "REDIS_TLS",
                "STATIC_ASSETS_BUCKET",
                "STATIC_ASSETS_REGION",
                "STATIC_ASSETS_REPLICA_BUCKET",
                "STATIC_ASSETS_REPLICA_REGION",
            ]
        );
        let get = |k: &str| data.get(k).map(String::as_str);
        assert_eq!(
            (
                get("DATABASE_NAME"),
                get("DATABASE_PORT"),
                get("DYNAMODB_TABLE_ORDERS"),
                get("DYNAMODB_TABLE_SESSIONS"),
                get("STATIC_ASSETS_BUCKET"),
                get("STATIC_ASSETS_REGION"),
                get("STATIC_ASSETS_REPLICA_BUCKET"),
                get("STATIC_ASSETS_REPLICA_REGION"),
                get("REDIS_TLS"),
            ),
            (
                Some("checkout"),
                Some("5432"),
                Some(orders.as_str()),
                Some(sessions.as_str()),
                Some(bucket.as_str()),
                Some("us-east-1"),
                Some(replica_bucket.as_str()),
                Some("us-west-2"),
                Some("true"),
            )
        );

        assert!(
            get("DATABASE_HOST").is_some_and(|h| h.starts_with(&format!("{id}.cluster-")))
                && get("DATABASE_READER_HOST")
                    .is_some_and(|h| h.starts_with(&format!("{id}.cluster-ro-"))),
            "Aurora endpoints: {data:?}"
        );
        assert!(
            get("DATABASE_SECRET_ARN").is_some_and(|a| a.starts_with("arn:aws:secretsmanager:")),
            "{data:?}"
        );
        // moto differs: no ReaderEndpoint, so halo sends reads to the primary.
        assert!(
            get("REDIS_HOST").is_some_and(|h| h.contains(id.as_str()))
                && get("REDIS_READER_HOST") == get("REDIS_HOST")
                && get("REDIS_PORT") == Some("6379"),
            "ElastiCache endpoints: {data:?}"
        );
        let arn = |t: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{t}");
        assert_eq!(
            (
                get("DYNAMODB_TABLE_ORDERS_ARN"),
                get("DYNAMODB_TABLE_SESSIONS_ARN")
            ),
            (Some(arn(orders).as_str()), Some(arn(sessions).as_str()))
        );
        Ok(())
    }

    /// The alarms halo made for all of it, with their states, in the status and in CloudWatch;
    /// returns how many. moto differs: it creates an alarm in state OK and never evaluates it
    /// (AWS starts at INSUFFICIENT_DATA).
    async fn check_alarms(&self, status: &HighlyAvailableAppStatus) -> anyhow::Result<usize> {
        let prefix = &self.alarm_prefix;
        let alarms: Vec<(String, String)> = status
            .alarms
            .iter()
            .map(|a| {
                (
                    a.name.trim_start_matches(prefix.as_str()).to_string(),
                    a.state.clone(),
                )
            })
            .collect();
        let mut alarms = alarms;
        alarms.sort();
        let want_alarms: Vec<(String, String)> = [
            "alb-target-5xx",
            "alb-unhealthy-hosts",
            "aurora-cpu",
            "aurora-freeable-memory",
            "aurora-replica-lag",
            "cache-cpu-001",
            "cache-cpu-002",
            "cache-evictions-001",
            "cache-evictions-002",
            "cache-replication-lag-001",
            "cache-replication-lag-002",
            "dynamodb-read-throttles-orders",
            "dynamodb-read-throttles-sessions",
            "dynamodb-write-throttles-orders",
            "dynamodb-write-throttles-sessions",
            "route53-health-check",
        ]
        .iter()
        .map(|a| (a.to_string(), "OK".to_string()))
        .collect();
        assert_eq!(alarms, want_alarms);
        let mut names: Vec<String> = want_alarms
            .iter()
            .map(|(a, _)| format!("{prefix}{a}"))
            .collect();
        names.sort();
        assert_eq!(alarm_names(&self.aws, prefix).await?, names);
        Ok(want_alarms.len())
    }

    /// The failover record sets in the zone; returns the id of their health check.
    async fn check_record_sets(&self, status: &HighlyAvailableAppStatus) -> anyhow::Result<String> {
        let hc = status
            .dns
            .as_ref()
            .and_then(|d| d.health_check_id.clone())
            .ok_or_else(|| anyhow::anyhow!("status.dns has no health check"))?;
        assert_eq!(
            zone_records(&self.r53, &self.zone_id).await?,
            primary_records(
                &self.record,
                &format!("{}/{}", self.ns, self.name),
                ALB,
                &hc
            )
        );
        Ok(hc)
    }

    /// Replication to the other region's bucket with the operator's role (a dummy ARN here:
    /// moto checks no IAM role and never copies an object); then something in the bucket, so
    /// the deletion has to empty it (emptyOnDelete).
    async fn check_replication_and_fill_the_bucket(&self) -> anyhow::Result<()> {
        let (bucket, replica_bucket) = (&self.bucket, &self.replica_bucket);
        let s3 = self.aws.s3_client(None).await;
        let replication = s3.get_bucket_replication().bucket(bucket).send().await?;
        let replication = replication
            .replication_configuration()
            .ok_or_else(|| anyhow::anyhow!("{bucket} has no replication configuration"))?;
        let role = std::env::var("HALO_S3_REPLICATION_ROLE_ARN").unwrap_or_default();
        assert_eq!(
            (
                replication.role(),
                replication
                    .rules()
                    .iter()
                    .map(|r| r.destination().map(|d| d.bucket().to_string()))
                    .collect::<Vec<_>>()
            ),
            (
                role.as_str(),
                vec![Some(format!("arn:aws:s3:::{replica_bucket}"))]
            )
        );
        s3.put_object()
            .bucket(bucket)
            .key("index.html")
            .body(b"<html></html>".to_vec().into())
            .send()
            .await?;
        Ok(())
    }

    /// Deletes the app and waits until halo released its finalizer; returns how long it took.
    async fn delete_and_wait_for_the_cleanup(&self) -> anyhow::Result<Duration> {
        let apps: Api<HighlyAvailableApp> = Api::namespaced(self.client.clone(), &self.ns);
        let deleted = Instant::now();
        apps.delete(&self.name, &DeleteParams::default()).await?;
        wait_deleted(
            &apps,
            &self.name,
            "the app to be deleted after its AWS cleanup (finalizer released)",
            SLOW,
        )
        .await?;
        Ok(deleted.elapsed())
    }

    // What the deletion policies promise, as the emulator has it after the deletion.

    /// Aurora, Snapshot (the default): the cluster is gone, its final snapshot stays; returns
    /// the snapshot's id.
    async fn check_aurora_left_one_final_snapshot(&self) -> anyhow::Result<String> {
        let id = &self.id;
        let rds = self.aws.rds().await;
        let cluster = rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await;
        assert!(
            format!("{cluster:?}").contains("DBClusterNotFoundFault"),
            "Aurora cluster {id} must be gone: {cluster:?}"
        );
        let snapshots: Vec<(String, String)> = rds
            .describe_db_cluster_snapshots()
            .db_cluster_identifier(id)
            .send()
            .await?
            .db_cluster_snapshots()
            .iter()
            .map(|s| {
                (
                    s.db_cluster_snapshot_identifier()
                        .unwrap_or_default()
                        .to_string(),
                    s.snapshot_type().unwrap_or_default().to_string(),
                )
            })
            .collect();
        // moto differs: it also keeps the cluster's automated snapshot (`rds:<id>-<date>`); AWS
        // deletes automated backups with the cluster (DeleteDBCluster's default). Only the manual
        // ones are what the policy promises.
        println!("s11: snapshots of {id} in moto after the deletion: {snapshots:?}");
        let snapshots: Vec<(String, String)> = snapshots
            .into_iter()
            .filter(|s| s.1 != "automated")
            .collect();
        assert!(
            snapshots.len() == 1
                && snapshots[0].0.starts_with(&format!("{id}-final-"))
                && snapshots[0].1 == "manual",
            "exactly one final snapshot of {id} must stay: {snapshots:?}"
        );
        Ok(snapshots[0].0.clone())
    }

    /// ElastiCache, Snapshot (the default): deleted with a final snapshot. moto differs: the
    /// group stays `deleting` for good and no snapshot appears (it ignores
    /// FinalSnapshotIdentifier); AWS removes the group once the snapshot is taken.
    async fn check_replication_group_is_deleting(&self) -> anyhow::Result<()> {
        let groups = self
            .aws
            .elasticache()
            .await
            .describe_replication_groups()
            .replication_group_id(&self.id)
            .send()
            .await?;
        let group_states: Vec<Option<&str>> = groups
            .replication_groups()
            .iter()
            .map(|g| g.status())
            .collect();
        assert_eq!(group_states, vec![Some("deleting")]);
        Ok(())
    }

    /// DynamoDB: `orders` (Retain, the default) stays, protected, without halo's tags;
    /// `sessions` (Delete) is gone.
    async fn check_tables_by_policy(&self) -> anyhow::Result<()> {
        let (orders, sessions) = (&self.orders, &self.sessions);
        let ddb = self.aws.dynamodb().await;
        let kept = ddb.describe_table().table_name(orders).send().await?;
        let kept = kept
            .table()
            .ok_or_else(|| anyhow::anyhow!("DescribeTable {orders}: no table"))?;
        assert_eq!(
            (
                kept.table_status().map(|s| s.as_str().to_string()),
                kept.deletion_protection_enabled()
            ),
            (Some("ACTIVE".to_string()), Some(true))
        );
        let tags: Vec<String> = ddb
            .list_tags_of_resource()
            .resource_arn(kept.table_arn().unwrap_or_default())
            .send()
            .await?
            .tags()
            .iter()
            .map(|t| t.key().to_string())
            .filter(|k| k.starts_with("halo.dev/"))
            .collect();
        assert_eq!(
            tags,
            Vec::<String>::new(),
            "a retained table keeps no halo tag"
        );
        let gone = ddb.describe_table().table_name(sessions).send().await;
        assert!(
            format!("{gone:?}").contains("ResourceNotFoundException"),
            "table {sessions} must be gone: {gone:?}"
        );
        Ok(())
    }

    /// S3, Delete with emptyOnDelete: the bucket (emptied first) and its replica are gone.
    async fn check_buckets_are_gone(&self) -> anyhow::Result<()> {
        let buckets: Vec<String> = self
            .aws
            .s3_client(None)
            .await
            .list_buckets()
            .send()
            .await?
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .filter(|b| *b == self.bucket || *b == self.replica_bucket)
            .collect();
        assert_eq!(buckets, Vec::<String>::new());
        Ok(())
    }

    /// CloudWatch: every alarm of the app is gone.
    async fn check_alarms_are_gone(&self) -> anyhow::Result<()> {
        assert_eq!(
            alarm_names(&self.aws, &self.alarm_prefix).await?,
            Vec::<String>::new()
        );
        Ok(())
    }

    /// Route 53: the record sets and the health check `hc` are gone.
    async fn check_record_sets_and_health_check_are_gone(&self, hc: &str) -> anyhow::Result<()> {
        assert_eq!(
            zone_records(&self.r53, &self.zone_id).await?,
            Vec::<String>::new()
        );
        let check = self.r53.get_health_check().health_check_id(hc).send().await;
        assert!(
            check.is_err(),
            "health check {hc} must be deleted: {check:?}"
        );
        Ok(())
    }

    /// Tidies the emulator: what the policies kept (table `orders`, the final `snapshot`) is
    /// the test's to remove.
    async fn tidy(&self, snapshot: &str) -> anyhow::Result<()> {
        let ddb = self.aws.dynamodb().await;
        ddb.update_table()
            .table_name(&self.orders)
            .deletion_protection_enabled(false)
            .send()
            .await?;
        ddb.delete_table().table_name(&self.orders).send().await?;
        self.aws
            .rds()
            .await
            .delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier(snapshot)
            .send()
            .await?;
        Ok(())
    }
}

/// The names of the CloudWatch alarms starting with `prefix` (through the protocol relay).
async fn alarm_names(aws: &halo::aws::Aws, prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = aws
        .cloudwatch()
        .await
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .max_records(100)
        .send()
        .await?;
    let mut names: Vec<String> = out
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}
