//! `aws::cloudwatch` against the AWS emulator (moto in server mode): every alarm's metric,
//! namespace, dimensions, statistic, threshold and comparison read back; states read back after
//! moto's SetAlarmState; a second pass that makes no mutating call; a changed threshold; the
//! section removed; deletion with the app. Needs `AWS_ENDPOINT_URL`.
//!
//! Where moto differs from CloudWatch: moto 5.2.5 does not answer the Smithy RPC v2 CBOR
//! protocol aws-sdk-cloudwatch speaks, so every request goes through `aws_support::cbor_bridge`,
//! which translates it to CloudWatch's JSON protocol and back (halo's calls are the real SDK
//! calls); alarms never evaluate metrics, and a new alarm starts in OK, where CloudWatch starts
//! it in INSUFFICIENT_DATA (states change only through SetAlarmState); the emulator runs in
//! us-east-1, so the Route 53 alarm shares the operator's region here.

mod aws_support;

use std::collections::BTreeMap;

use aws_support::{app, manifest, unique};
use halo::api::storage::AlarmStatus;
use halo::aws::cloudwatch::{self, DesiredAlarms, ObservedAlarm};
use halo::aws::{Aws, AwsConfig, TAG_UID, is_read_only};
use halo::aws::{aurora, elasticache};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops";

fn spec(ns: &str, thresholds: &str) -> String {
    manifest(
        ns,
        "shop",
        &format!(
            "  ingress: {{host: shop.example.com}}\n  database: {{instances: 2}}\n  cache: {{replicas: 1}}\n  dynamodb: {{tables: [{{name: carts, partitionKey: {{name: id}}}}]}}\n  alarms:\n    snsTopicArn: {TOPIC}\n    loadBalancerArnSuffix: app/k8s-shop/50dc6c495c0c9188\n    targetGroupArnSuffix: targetgroup/k8s-shop/73e2d6bc24d8a067\n    thresholds: {thresholds}\n"
        ),
    )
}

fn desired(yaml: &str, recorded: &[AlarmStatus]) -> DesiredAlarms {
    alarms_of(
        &app(yaml),
        Some("abcdef01-2345-6789-abcd-ef0123456789"),
        recorded,
    )
    .expect("alarms")
}

/// The alarms the AWS plan computes: from the database and cache plans and a health check id.
fn alarms_of(
    app: &halo::validate::ValidatedApp,
    health_check_id: Option<&str>,
    recorded: &[AlarmStatus],
) -> Option<DesiredAlarms> {
    let config = AwsConfig::default();
    let database = aurora::desired(app, &config);
    let cache = elasticache::desired(app, &config);
    cloudwatch::desired(
        app,
        database.as_ref(),
        cache.as_ref(),
        health_check_id,
        recorded,
    )
}

/// `d` for the same app as `like` (same uid: the tags that prove ownership).
fn same_app(mut d: DesiredAlarms, like: &DesiredAlarms) -> DesiredAlarms {
    d.owner = like.owner.clone();
    d.tags = like.tags.clone();
    d
}

async fn read_back(aws: &Aws, prefix: &str) -> BTreeMap<String, ObservedAlarm> {
    let out = aws
        .cloudwatch()
        .await
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .send()
        .await
        .expect("describe");
    out.metric_alarms()
        .iter()
        .map(|a| {
            let o = ObservedAlarm::from_sdk(a);
            (o.name.trim_start_matches(prefix).to_string(), o)
        })
        .collect()
}

/// (namespace, metric, dimensions, statistic, threshold, comparison) of one alarm.
type Row = (String, String, Vec<(String, String)>, String, f64, String);

fn row(o: &ObservedAlarm) -> Row {
    (
        o.namespace.clone(),
        o.metric.clone(),
        o.dimensions.clone(),
        o.statistic.clone(),
        o.threshold,
        o.comparison.clone(),
    )
}

fn expected(
    ns: &str,
    namespace: &str,
    metric: &str,
    dims: &[(&str, &str)],
    stat: &str,
    threshold: f64,
    cmp: &str,
) -> Row {
    let _ = ns;
    let mut dims: Vec<(String, String)> = dims
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    dims.sort();
    (
        namespace.into(),
        metric.into(),
        dims,
        stat.into(),
        threshold,
        cmp.into(),
    )
}

/// Every alarm halo manages, read back exactly; the SNS topic on ALARM and OK; halo's tags; and
/// a second pass that only describes.
#[tokio::test]
async fn every_alarm_reads_back_exactly() {
    let aws = aws_support::aws_bridged(AwsConfig::default()).await;
    let ns = unique("t");
    let d = desired(
        &spec(
            &ns,
            "{cacheCPUPercent: 65, dynamodbThrottleEventsPerMinute: 3}",
        ),
        &[],
    );
    let report = cloudwatch::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(report.changes.len(), 14);
    let alarms = read_back(&aws, &d.prefix).await;
    let id = format!("{ns}-shop");
    let lb = "app/k8s-shop/50dc6c495c0c9188";
    let tg = "targetgroup/k8s-shop/73e2d6bc24d8a067";
    let table = format!("{ns}-shop-carts");
    let (gt, ge, lt) = (
        "GreaterThanThreshold",
        "GreaterThanOrEqualToThreshold",
        "LessThanThreshold",
    );
    let want: BTreeMap<String, Row> = [
        (
            "alb-target-5xx",
            expected(
                &ns,
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count",
                &[("LoadBalancer", lb)],
                "Sum",
                10.0,
                gt,
            ),
        ),
        (
            "alb-unhealthy-hosts",
            expected(
                &ns,
                "AWS/ApplicationELB",
                "UnHealthyHostCount",
                &[("LoadBalancer", lb), ("TargetGroup", tg)],
                "Maximum",
                1.0,
                ge,
            ),
        ),
        (
            "aurora-cpu",
            expected(
                &ns,
                "AWS/RDS",
                "CPUUtilization",
                &[("DBClusterIdentifier", &id)],
                "Average",
                80.0,
                gt,
            ),
        ),
        (
            "aurora-freeable-memory",
            expected(
                &ns,
                "AWS/RDS",
                "FreeableMemory",
                &[("DBClusterIdentifier", &id)],
                "Minimum",
                268_435_456.0,
                lt,
            ),
        ),
        (
            "aurora-replica-lag",
            expected(
                &ns,
                "AWS/RDS",
                "AuroraReplicaLagMaximum",
                &[("DBClusterIdentifier", &id)],
                "Maximum",
                1000.0,
                gt,
            ),
        ),
        (
            "cache-cpu-001",
            expected(
                &ns,
                "AWS/ElastiCache",
                "CPUUtilization",
                &[("CacheClusterId", &format!("{id}-001"))],
                "Average",
                65.0,
                gt,
            ),
        ),
        (
            "cache-cpu-002",
            expected(
                &ns,
                "AWS/ElastiCache",
                "CPUUtilization",
                &[("CacheClusterId", &format!("{id}-002"))],
                "Average",
                65.0,
                gt,
            ),
        ),
        (
            "cache-evictions-001",
            expected(
                &ns,
                "AWS/ElastiCache",
                "Evictions",
                &[("CacheClusterId", &format!("{id}-001"))],
                "Sum",
                100.0,
                gt,
            ),
        ),
        (
            "cache-evictions-002",
            expected(
                &ns,
                "AWS/ElastiCache",
                "Evictions",
                &[("CacheClusterId", &format!("{id}-002"))],
                "Sum",
                100.0,
                gt,
            ),
        ),
        (
            "cache-replication-lag-001",
            expected(
                &ns,
                "AWS/ElastiCache",
                "ReplicationLag",
                &[("CacheClusterId", &format!("{id}-001"))],
                "Maximum",
                30.0,
                gt,
            ),
        ),
        (
            "cache-replication-lag-002",
            expected(
                &ns,
                "AWS/ElastiCache",
                "ReplicationLag",
                &[("CacheClusterId", &format!("{id}-002"))],
                "Maximum",
                30.0,
                gt,
            ),
        ),
        (
            "dynamodb-read-throttles-carts",
            expected(
                &ns,
                "AWS/DynamoDB",
                "ReadThrottleEvents",
                &[("TableName", &table)],
                "Sum",
                3.0,
                gt,
            ),
        ),
        (
            "dynamodb-write-throttles-carts",
            expected(
                &ns,
                "AWS/DynamoDB",
                "WriteThrottleEvents",
                &[("TableName", &table)],
                "Sum",
                3.0,
                gt,
            ),
        ),
        (
            "route53-health-check",
            expected(
                &ns,
                "AWS/Route53",
                "HealthCheckStatus",
                &[("HealthCheckId", "abcdef01-2345-6789-abcd-ef0123456789")],
                "Minimum",
                1.0,
                lt,
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let got: BTreeMap<String, Row> = alarms.iter().map(|(k, o)| (k.clone(), row(o))).collect();
    assert_eq!(got, want);
    for (name, o) in &alarms {
        assert_eq!(
            (o.period, o.evaluation_periods),
            (60, if name == "route53-health-check" { 3 } else { 5 }),
            "{name}"
        );
        assert_eq!(o.alarm_actions, vec![TOPIC.to_string()], "{name}");
        assert_eq!(o.ok_actions, vec![TOPIC.to_string()], "{name}");
        // moto: OK at creation (CloudWatch: INSUFFICIENT_DATA, which halo assumes for a new one).
        assert_eq!(o.state, "OK", "{name}");
    }
    let arn = &alarms["aurora-cpu"].arn;
    let tags = aws
        .cloudwatch()
        .await
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("tags");
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == Some(TAG_UID) && t.value() == Some(d.owner.uid.as_str()))
    );
    assert_eq!(report.states.len(), 14);
    assert_eq!(
        cloudwatch::condition(&report),
        (
            true,
            "NoAlarmFiring",
            "14 alarms, none in ALARM (14 with insufficient data)".to_string()
        )
    );

    let before = aws.calls().snapshot();
    let again = cloudwatch::ensure(&aws, &d).await.expect("again");
    assert_eq!(again.changes, vec![]);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([("cloudwatch:DescribeAlarms".to_string(), 1)])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
}

/// States come back from CloudWatch (driven here by SetAlarmState): a firing alarm turns
/// AlarmsOK False and names it.
#[tokio::test]
async fn alarm_states_are_read_back() {
    let aws = aws_support::aws_bridged(AwsConfig::default()).await;
    let ns = unique("t");
    let d = desired(&spec(&ns, "{}"), &[]);
    cloudwatch::ensure(&aws, &d).await.expect("ensure");
    let cw = aws.cloudwatch().await;
    let cpu = format!("{}aurora-cpu", d.prefix);
    let lag = format!("{}cache-replication-lag-002", d.prefix);
    for (name, state) in [(&cpu, "ALARM"), (&lag, "OK")] {
        cw.set_alarm_state()
            .alarm_name(name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
            .state_reason("test")
            .send()
            .await
            .expect("set state");
    }
    let report = cloudwatch::ensure(&aws, &d).await.expect("ensure");
    assert_eq!(report.changes, vec![]);
    let states: BTreeMap<&str, &str> = report
        .states
        .iter()
        .map(|a| (a.name.as_str(), a.state.as_str()))
        .collect();
    assert_eq!(states[cpu.as_str()], "ALARM");
    assert_eq!(states[lag.as_str()], "OK");
    assert_eq!(
        cloudwatch::condition(&report),
        (false, "AlarmFiring", format!("in ALARM: {cpu}"))
    );
}

/// A changed threshold is one PutMetricAlarm; removing the section deletes every alarm; an
/// alarm with the app's prefix but no halo tags is left alone.
#[tokio::test]
async fn changes_and_removal() {
    let aws = aws_support::aws_bridged(AwsConfig::default()).await;
    let ns = unique("t");
    let d = desired(&spec(&ns, "{}"), &[]);
    let first = cloudwatch::ensure(&aws, &d).await.expect("ensure");
    let changed = same_app(desired(&spec(&ns, "{databaseCPUPercent: 90}"), &[]), &d);
    let before = aws.calls().snapshot();
    let report = cloudwatch::ensure(&aws, &changed).await.expect("ensure");
    assert_eq!(
        report
            .changes
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        vec![format!("CloudWatch alarm {}aurora-cpu: updated", d.prefix)]
    );
    let calls = aws.calls().since(&before);
    assert_eq!(calls.get("cloudwatch:PutMetricAlarm"), Some(&1));
    assert_eq!(
        read_back(&aws, &d.prefix).await["aurora-cpu"].threshold,
        90.0
    );

    // Someone else's alarm under the prefix.
    let foreign = format!("{}manual", d.prefix);
    aws.cloudwatch()
        .await
        .put_metric_alarm()
        .alarm_name(&foreign)
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("foreign alarm");

    // Section removed: the recorded alarms say where to look; all of halo's go.
    let bare = manifest(&ns, "shop", "");
    let mut removed = alarms_of(&app(&bare), None, &first.states).expect("cleanup pass");
    removed.owner = d.owner.clone();
    removed.tags = d.tags.clone();
    let report = cloudwatch::ensure(&aws, &removed).await.expect("ensure");
    assert_eq!(report.states, vec![]);
    assert_eq!(report.changes.len(), 1);
    let left: Vec<String> = read_back(&aws, &d.prefix).await.into_keys().collect();
    assert_eq!(left, vec!["manual".to_string()]);
}

/// Deleting the app deletes its alarms, whatever the data's deletion policies say.
#[tokio::test]
async fn alarms_go_with_the_app() {
    let aws = aws_support::aws_bridged(AwsConfig::default()).await;
    let ns = unique("t");
    let d = desired(&spec(&ns, "{}"), &[]);
    cloudwatch::ensure(&aws, &d).await.expect("ensure");
    let report = cloudwatch::cleanup(&aws, &d).await.expect("cleanup");
    assert!(report.done);
    assert_eq!(read_back(&aws, &d.prefix).await.len(), 0);
}
