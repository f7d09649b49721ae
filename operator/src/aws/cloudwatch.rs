//! `aws::cloudwatch`: CloudWatch alarms on what halo manages for an app, named
//! `halo/<namespace>/<app>/<what>` and tagged with the app's uid.
//!
//! | alarm | namespace / metric | dimensions | fires when |
//! |---|---|---|---|
//! | `alb-target-5xx` | AWS/ApplicationELB HTTPCode_Target_5XX_Count (Sum) | LoadBalancer | > n per minute |
//! | `alb-unhealthy-hosts` | AWS/ApplicationELB UnHealthyHostCount (Maximum) | LoadBalancer, TargetGroup | >= n |
//! | `aurora-cpu` | AWS/RDS CPUUtilization (Average) | DBClusterIdentifier | > n % |
//! | `aurora-freeable-memory` | AWS/RDS FreeableMemory (Minimum) | DBClusterIdentifier | < n MiB |
//! | `aurora-replica-lag` | AWS/RDS AuroraReplicaLagMaximum (Maximum) | DBClusterIdentifier | > n ms |
//! | `cache-cpu-<node>` | AWS/ElastiCache CPUUtilization (Average) | CacheClusterId | > n % |
//! | `cache-evictions-<node>` | AWS/ElastiCache Evictions (Sum) | CacheClusterId | > n per minute |
//! | `cache-replication-lag-<node>` | AWS/ElastiCache ReplicationLag (Maximum) | CacheClusterId | > n s |
//! | `route53-health-check` | AWS/Route53 HealthCheckStatus (Minimum), in us-east-1 | HealthCheckId | < 1 |
//! | `dynamodb-read-throttles-<table>`, `dynamodb-write-throttles-<table>` | AWS/DynamoDB Read/WriteThrottleEvents (Sum) | TableName | > n per minute |
//!
//! Why these metrics: ALB publishes UnHealthyHostCount per target group, never per load
//! balancer alone; Aurora's cluster-level replica lag is AuroraReplicaLagMaximum
//! (AuroraReplicaLag is per instance); DynamoDB's ThrottledRequests needs an Operation
//! dimension, while Read/WriteThrottleEvents count every throttled request of a table;
//! ElastiCache host metrics are per node (`<group>-001`, `-002`, ...); Route 53 publishes
//! health check metrics only in us-east-1.
//!
//! [`desired`], [`compare`] and [`condition`] are pure; [`ensure`] and [`cleanup`] call
//! CloudWatch. A stable set costs one DescribeAlarms per region and page, and no mutating call.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};

use super::aurora::DesiredCluster;
use super::elasticache::DesiredGroup;
use super::service::{Outcome, Service};
use super::{Aws, Change, Ownership, ownership, ownership_tags, reasons};
use crate::api::storage::{AlarmStatus, AlarmThresholds, AlarmsSpec};
use crate::meta::Owner;
use crate::observed::{AwsView, Readiness};
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// Region of the Route 53 health check metrics.
pub use crate::names::alarm_prefix as prefix;

pub const ROUTE53_METRICS_REGION: &str = "us-east-1";
/// Most pages of DescribeAlarms read per region (100 alarms each).
const MAX_PAGES: usize = 10;

/// One alarm halo wants.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAlarm {
    pub name: String,
    /// `None`: the operator's region.
    pub region: Option<&'static str>,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimensions: Vec<(String, String)>,
    pub statistic: &'static str,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub threshold: f64,
    pub comparison: &'static str,
    pub treat_missing_data: &'static str,
    pub description: String,
    /// SNS topics notified on ALARM and on OK.
    pub actions: Vec<String>,
}

/// The alarms of an app, and those it cannot have yet (with the reason).
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredAlarms {
    pub owner: Owner,
    pub prefix: String,
    pub alarms: Vec<DesiredAlarm>,
    pub skipped: Vec<String>,
    /// Regions to look in: the operator's (`None`) and any other an alarm lives or lived in.
    pub regions: Vec<Option<&'static str>>,
    pub tags: Vec<(String, String)>,
    /// The section is present and enabled (`AlarmsOK` says "disabled" otherwise).
    pub enabled: bool,
    /// The Route 53 health check alarm's slot.
    pub route53: Route53Alarm,
}

/// Whether the app wants a Route 53 health check alarm, and where its actions go.
#[derive(Clone, Debug, PartialEq)]
pub struct Route53Alarm {
    /// The app has an ingress (and so, with DNS, a health check to watch).
    pub wanted: bool,
    /// The status records one (its region must be looked at, to delete it).
    pub recorded: bool,
    /// The SNS topics in the alarm's region.
    pub actions: Vec<String>,
}

fn arn_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3)
}

struct Builder<'a> {
    prefix: &'a str,
    actions: &'a [String],
    alarms: Vec<DesiredAlarm>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)] // one row of the table in the module doc
    fn add(
        &mut self,
        what: &str,
        namespace: &'static str,
        metric: &'static str,
        dimensions: &[(&str, &str)],
        statistic: &'static str,
        datapoints: (i32, i32),
        threshold: f64,
        comparison: &'static str,
        description: String,
    ) {
        self.alarms.push(DesiredAlarm {
            name: format!("{}{what}", self.prefix),
            region: None,
            namespace,
            metric,
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            statistic,
            period: 60,
            evaluation_periods: datapoints.1,
            datapoints_to_alarm: datapoints.0,
            threshold,
            comparison,
            treat_missing_data: "notBreaching",
            description,
            actions: self.actions.to_vec(),
        });
    }
}

const GT: &str = "GreaterThanThreshold";
const GE: &str = "GreaterThanOrEqualToThreshold";
const LT: &str = "LessThanThreshold";

/// The alarms the app's `spec.alarms` asks for; with the section removed or disabled, an
/// empty set that still names the recorded alarms' regions (so they are deleted). `None` when
/// there is nothing to do.
pub fn desired(
    app: &ValidatedApp,
    database: Option<&DesiredCluster>,
    cache: Option<&DesiredGroup>,
    health_check_id: Option<&str>,
    recorded: &[AlarmStatus],
) -> Option<DesiredAlarms> {
    let prefix = app.names.alarm_prefix.clone();
    let recorded_route53 = recorded
        .iter()
        .any(|a| a.name.ends_with("/route53-health-check"));
    let spec = app.alarms.as_ref().filter(|a| a.enabled);
    let Some(spec) = spec else {
        if recorded.is_empty() {
            return None;
        }
        let mut d = DesiredAlarms {
            owner: app.owner.clone(),
            prefix,
            alarms: vec![],
            skipped: vec![],
            regions: vec![None],
            tags: ownership_tags(&app.owner),
            enabled: false,
            route53: Route53Alarm {
                wanted: false,
                recorded: recorded_route53,
                actions: vec![],
            },
        };
        d.set_health_check(None);
        return Some(d);
    };
    let actions: Vec<String> = spec.sns_topic_arn.iter().cloned().collect();
    let mut b = Builder {
        prefix: &prefix,
        actions: &actions,
        alarms: Vec::new(),
    };
    let mut skipped = Vec::new();
    let t = &spec.thresholds;
    add_alb(app, spec, &mut b, &mut skipped);
    if let Some(db) = database {
        add_aurora(db, t, &mut b);
    }
    if let Some(cache) = cache {
        add_cache(cache, t, &mut b);
    }
    if app.dynamodb.is_some() {
        add_tables(app, t, &mut b);
    }
    // Alarm actions must be in the alarm's region.
    let route53_actions: Vec<String> = actions
        .iter()
        .filter(|a| arn_region(a) == Some(ROUTE53_METRICS_REGION))
        .cloned()
        .collect();
    let alarms = b.alarms;
    let mut d = DesiredAlarms {
        owner: app.owner.clone(),
        prefix,
        alarms,
        skipped,
        regions: vec![None],
        tags: ownership_tags(&app.owner),
        enabled: true,
        route53: Route53Alarm {
            wanted: app.ingress.is_some(),
            recorded: recorded_route53,
            actions: route53_actions,
        },
    };
    d.set_health_check(health_check_id);
    Some(d)
}

/// The Aurora cluster's alarms: CPU, freeable memory, and replica lag when it has readers.
fn add_aurora(db: &DesiredCluster, t: &AlarmThresholds, b: &mut Builder<'_>) {
    let id = db.id.as_str();
    let dims = [("DBClusterIdentifier", id)];
    b.add(
        "aurora-cpu",
        "AWS/RDS",
        "CPUUtilization",
        &dims,
        "Average",
        (5, 5),
        t.database_cpu_percent,
        GT,
        format!("Aurora cluster {id}: CPU above {}%", t.database_cpu_percent),
    );
    b.add(
        "aurora-freeable-memory",
        "AWS/RDS",
        "FreeableMemory",
        &dims,
        "Minimum",
        (3, 5),
        t.database_freeable_memory_mib * 1024.0 * 1024.0,
        LT,
        format!(
            "Aurora cluster {id}: freeable memory below {} MiB",
            t.database_freeable_memory_mib
        ),
    );
    // An adopted cluster whose spec names no count may have readers: watch their lag.
    if db.instances.is_none_or(|n| n >= 2) {
        b.add(
            "aurora-replica-lag",
            "AWS/RDS",
            "AuroraReplicaLagMaximum",
            &dims,
            "Maximum",
            (3, 5),
            t.database_replica_lag_milliseconds,
            GT,
            format!(
                "Aurora cluster {id}: replica lag above {} ms",
                t.database_replica_lag_milliseconds
            ),
        );
    }
}

/// Per-node alarms of the replication group: CPU, evictions, and replication lag with replicas.
fn add_cache(cache: &DesiredGroup, t: &AlarmThresholds, b: &mut Builder<'_>) {
    // An adopted group whose spec names no count: the primary's node only.
    let replicas = cache.replicas.unwrap_or(0);
    for i in 1..=replicas + 1 {
        let node = format!("{}-{i:03}", cache.id);
        let dims = [("CacheClusterId", node.as_str())];
        b.add(
            &format!("cache-cpu-{i:03}"),
            "AWS/ElastiCache",
            "CPUUtilization",
            &dims,
            "Average",
            (5, 5),
            t.cache_cpu_percent,
            GT,
            format!(
                "ElastiCache node {node}: CPU above {}%",
                t.cache_cpu_percent
            ),
        );
        b.add(
            &format!("cache-evictions-{i:03}"),
            "AWS/ElastiCache",
            "Evictions",
            &dims,
            "Sum",
            (3, 5),
            t.cache_evictions_per_minute,
            GT,
            format!(
                "ElastiCache node {node}: more than {} evictions per minute",
                t.cache_evictions_per_minute
            ),
        );
        if replicas >= 1 {
            b.add(
                &format!("cache-replication-lag-{i:03}"),
                "AWS/ElastiCache",
                "ReplicationLag",
                &dims,
                "Maximum",
                (3, 5),
                t.cache_replication_lag_seconds,
                GT,
                format!(
                    "ElastiCache node {node}: replication lag above {} s",
                    t.cache_replication_lag_seconds
                ),
            );
        }
    }
}

/// Read and write throttling of every table.
fn add_tables(app: &ValidatedApp, t: &AlarmThresholds, b: &mut Builder<'_>) {
    for table in &app.names.tables {
        let name = table.table_name.clone();
        let dims = [("TableName", name.as_str())];
        for (what, metric) in [
            ("read", "ReadThrottleEvents"),
            ("write", "WriteThrottleEvents"),
        ] {
            b.add(
                &format!("dynamodb-{what}-throttles-{}", table.name),
                "AWS/DynamoDB",
                metric,
                &dims,
                "Sum",
                (3, 5),
                t.dynamodb_throttle_events_per_minute,
                GT,
                format!(
                    "DynamoDB table {name}: more than {} throttled {what}s per minute",
                    t.dynamodb_throttle_events_per_minute
                ),
            );
        }
    }
}

/// Name suffix of the Route 53 health check alarm.
const ROUTE53_ALARM: &str = "route53-health-check";

impl DesiredAlarms {
    /// Sets the Route 53 health check alarm to watch `health_check_id` (known once the DNS
    /// step wrote the check), or records why it cannot exist yet. Pure.
    pub fn set_health_check(&mut self, health_check_id: Option<&str>) {
        let name = format!("{}{ROUTE53_ALARM}", self.prefix);
        self.alarms.retain(|a| a.name != name);
        self.skipped
            .retain(|s| !s.starts_with(&format!("{ROUTE53_ALARM}:")));
        self.regions.retain(Option::is_none);
        match health_check_id {
            Some(id) if self.route53.wanted => {
                self.alarms.push(DesiredAlarm {
                    name,
                    region: Some(ROUTE53_METRICS_REGION),
                    namespace: "AWS/Route53",
                    metric: "HealthCheckStatus",
                    dimensions: vec![("HealthCheckId".into(), id.to_string())],
                    statistic: "Minimum",
                    period: 60,
                    evaluation_periods: 3,
                    datapoints_to_alarm: 3,
                    threshold: 1.0,
                    comparison: LT,
                    treat_missing_data: "breaching",
                    description: format!("Route 53 health check {id} reports the app unhealthy"),
                    actions: self.route53.actions.clone(),
                });
                self.regions.push(Some(ROUTE53_METRICS_REGION));
            }
            _ if self.route53.recorded => self.regions.push(Some(ROUTE53_METRICS_REGION)),
            _ => {}
        }
        if self.route53.wanted && health_check_id.is_none() {
            self.skipped.push(format!(
                "{ROUTE53_ALARM}: the Route 53 health check id is not known yet"
            ));
        }
    }
}

fn add_alb(app: &ValidatedApp, spec: &AlarmsSpec, b: &mut Builder<'_>, skipped: &mut Vec<String>) {
    if app.ingress.is_none() {
        return;
    }
    let t = &spec.thresholds;
    let Some(lb) = spec.load_balancer_arn_suffix.as_deref() else {
        skipped.push(
            "alb-target-5xx, alb-unhealthy-hosts: waiting for alarms.loadBalancerArnSuffix (the Ingress shows only the ALB's DNS name)".to_string(),
        );
        return;
    };
    b.add(
        "alb-target-5xx",
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        &[("LoadBalancer", lb)],
        "Sum",
        (3, 5),
        t.alb_target_5xx_per_minute,
        GT,
        format!(
            "ALB {lb}: more than {} target 5xx responses per minute",
            t.alb_target_5xx_per_minute
        ),
    );
    match spec.target_group_arn_suffix.as_deref() {
        Some(tg) => b.add(
            "alb-unhealthy-hosts",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            &[("LoadBalancer", lb), ("TargetGroup", tg)],
            "Maximum",
            (3, 5),
            t.alb_unhealthy_hosts,
            GE,
            format!(
                "ALB {lb}: {} or more unhealthy targets in {tg}",
                t.alb_unhealthy_hosts
            ),
        ),
        None => skipped.push(
            "alb-unhealthy-hosts: waiting for alarms.targetGroupArnSuffix (ALB counts hosts per target group)".to_string(),
        ),
    }
}

/// An alarm as CloudWatch describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedAlarm {
    pub name: String,
    pub arn: String,
    pub state: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
    pub statistic: String,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    pub description: String,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
}

impl ObservedAlarm {
    pub fn from_sdk(a: &MetricAlarm) -> Self {
        let mut dimensions: Vec<(String, String)> = a
            .dimensions()
            .iter()
            .map(|d| {
                (
                    d.name().unwrap_or_default().to_string(),
                    d.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        dimensions.sort();
        ObservedAlarm {
            name: a.alarm_name().unwrap_or_default().to_string(),
            arn: a.alarm_arn().unwrap_or_default().to_string(),
            state: a
                .state_value()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "INSUFFICIENT_DATA".into()),
            namespace: a.namespace().unwrap_or_default().to_string(),
            metric: a.metric_name().unwrap_or_default().to_string(),
            dimensions,
            statistic: a
                .statistic()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            period: a.period().unwrap_or_default(),
            evaluation_periods: a.evaluation_periods().unwrap_or_default(),
            datapoints_to_alarm: a
                .datapoints_to_alarm()
                .or(a.evaluation_periods())
                .unwrap_or_default(),
            threshold: a.threshold().unwrap_or_default(),
            comparison: a
                .comparison_operator()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
            description: a.alarm_description().unwrap_or_default().to_string(),
            alarm_actions: a.alarm_actions().to_vec(),
            ok_actions: a.ok_actions().to_vec(),
        }
    }
}

/// Whether an existing alarm already is what halo wants (no PutMetricAlarm needed).
pub fn compare(d: &DesiredAlarm, o: &ObservedAlarm) -> bool {
    let mut dims = d.dimensions.clone();
    dims.sort();
    o.namespace == d.namespace
        && o.metric == d.metric
        && o.dimensions == dims
        && o.statistic == d.statistic
        && o.period == d.period
        && o.evaluation_periods == d.evaluation_periods
        && o.datapoints_to_alarm == d.datapoints_to_alarm
        && o.threshold == d.threshold
        && o.comparison == d.comparison
        && o.treat_missing_data == d.treat_missing_data
        && o.description == d.description
        && o.alarm_actions == d.actions
        && o.ok_actions == d.actions
}

/// Everything [`ensure`] saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlarmsReport {
    /// Every alarm halo manages for the app, by name, with its state.
    pub states: Vec<AlarmStatus>,
    pub skipped: Vec<String>,
    pub changes: Vec<Change>,
    /// The section is present and enabled.
    pub enabled: bool,
}

/// `AlarmsOK`: True while no alarm fires. Reported, never part of `Ready`.
pub fn condition(report: &AlarmsReport) -> (bool, &'static str, String) {
    if !report.enabled {
        return (true, reasons::ALARMS_DISABLED, "alarms are disabled".into());
    }
    let firing: Vec<&str> = report
        .states
        .iter()
        .filter(|a| a.state == "ALARM")
        .map(|a| a.name.as_str())
        .collect();
    let skipped = if report.skipped.is_empty() {
        String::new()
    } else {
        format!("; not created yet: {}", report.skipped.join("; "))
    };
    if !firing.is_empty() {
        return (
            false,
            reasons::ALARM_FIRING,
            format!("in ALARM: {}{skipped}", firing.join(", ")),
        );
    }
    let insufficient = report
        .states
        .iter()
        .filter(|a| a.state == "INSUFFICIENT_DATA")
        .count();
    (
        true,
        reasons::NO_ALARM_FIRING,
        format!(
            "{} alarms, none in ALARM ({insufficient} with insufficient data){skipped}",
            report.states.len()
        ),
    )
}

async fn client(aws: &Aws, region: Option<&str>) -> aws_sdk_cloudwatch::Client {
    match region {
        None => aws.cloudwatch().await.clone(),
        Some(r) => aws.cloudwatch_in(r).await,
    }
}

/// Every alarm whose name starts with `prefix`, by name.
async fn describe(
    aws: &Aws,
    cw: &aws_sdk_cloudwatch::Client,
    prefix: &str,
) -> Result<BTreeMap<String, ObservedAlarm>> {
    let mut found = BTreeMap::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = aws
            .call(
                "cloudwatch:DescribeAlarms",
                cw.describe_alarms()
                    .alarm_name_prefix(prefix)
                    .max_records(100)
                    .set_next_token(token.clone())
                    .send(),
            )
            .await?;
        for a in out.metric_alarms() {
            let o = ObservedAlarm::from_sdk(a);
            found.insert(o.name.clone(), o);
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(found)
}

async fn owned(
    aws: &Aws,
    cw: &aws_sdk_cloudwatch::Client,
    owner: &Owner,
    arn: &str,
) -> Result<bool> {
    let out = aws
        .call(
            "cloudwatch:ListTagsForResource",
            cw.list_tags_for_resource().resource_arn(arn).send(),
        )
        .await?;
    let tags: Vec<(&str, &str)> = out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    Ok(ownership(owner, tags) == Ownership::Ours)
}

async fn put(
    aws: &Aws,
    cw: &aws_sdk_cloudwatch::Client,
    d: &DesiredAlarm,
    tags: &[(String, String)],
) -> Result<()> {
    // Tags apply when the alarm is created; on an update CloudWatch keeps the existing ones.
    let alarm_tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    aws.call(
        "cloudwatch:PutMetricAlarm",
        cw.put_metric_alarm()
            .alarm_name(&d.name)
            .alarm_description(&d.description)
            .namespace(d.namespace)
            .metric_name(d.metric)
            .set_dimensions(Some(
                d.dimensions
                    .iter()
                    .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                    .collect(),
            ))
            .statistic(Statistic::from(d.statistic))
            .period(d.period)
            .evaluation_periods(d.evaluation_periods)
            .datapoints_to_alarm(d.datapoints_to_alarm)
            .threshold(d.threshold)
            .comparison_operator(ComparisonOperator::from(d.comparison))
            .treat_missing_data(d.treat_missing_data)
            .actions_enabled(true)
            .set_alarm_actions(Some(d.actions.clone()))
            .set_ok_actions(Some(d.actions.clone()))
            .set_tags(Some(alarm_tags))
            .send(),
    )
    .await?;
    Ok(())
}

async fn delete(aws: &Aws, cw: &aws_sdk_cloudwatch::Client, names: Vec<String>) -> Result<()> {
    for chunk in names.chunks(100) {
        aws.call(
            "cloudwatch:DeleteAlarms",
            cw.delete_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .send(),
        )
        .await?;
    }
    Ok(())
}

/// Puts the alarms that differ, deletes the app's alarms no longer wanted, and reads back the
/// states. Alarms with the app's prefix but another owner's tags are never touched.
pub async fn ensure(aws: &Aws, d: &DesiredAlarms) -> Result<AlarmsReport> {
    let enabled = d.enabled;
    let mut report = AlarmsReport {
        skipped: d.skipped.clone(),
        enabled,
        ..AlarmsReport::default()
    };
    // An alarm "in us-east-1" is in the operator's region when that is us-east-1.
    let home = aws.region().await;
    let local = |r: Option<&'static str>| r.filter(|r| Some(*r) != home.as_deref());
    let mut regions: Vec<Option<&'static str>> = d.regions.iter().map(|r| local(*r)).collect();
    regions.dedup();
    for region in &regions {
        let cw = client(aws, *region).await;
        let observed = describe(aws, &cw, &d.prefix).await?;
        let wanted: Vec<&DesiredAlarm> = d
            .alarms
            .iter()
            .filter(|a| local(a.region) == *region)
            .collect();
        for alarm in &wanted {
            let state = match observed.get(&alarm.name) {
                Some(o) if compare(alarm, o) => o.state.clone(),
                Some(o) => {
                    if !owned(aws, &cw, &d.owner, &o.arn).await? {
                        return Err(not_owned(&alarm.name));
                    }
                    put(aws, &cw, alarm, &d.tags).await?;
                    report.changes.push(Change::new(
                        "Updated",
                        format!("CloudWatch alarm {}: updated", alarm.name),
                    ));
                    o.state.clone()
                }
                None => {
                    put(aws, &cw, alarm, &d.tags).await?;
                    report.changes.push(Change::new(
                        "Created",
                        format!("CloudWatch alarm {}: created", alarm.name),
                    ));
                    "INSUFFICIENT_DATA".into()
                }
            };
            report.states.push(AlarmStatus {
                name: alarm.name.clone(),
                state,
            });
        }
        let mut stale = Vec::new();
        for (name, o) in &observed {
            if wanted.iter().any(|a| &a.name == name) {
                continue;
            }
            if owned(aws, &cw, &d.owner, &o.arn).await? {
                stale.push(name.clone());
            }
        }
        if !stale.is_empty() {
            report.changes.push(Change::new(
                "Deleted",
                format!("CloudWatch alarms deleted: {}", stale.join(", ")),
            ));
            delete(aws, &cw, stale).await?;
        }
    }
    report.states.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(report)
}

fn not_owned(name: &str) -> Error {
    Error::InvalidSpec {
        field: "spec.alarms".into(),
        message: format!(
            "CloudWatch alarm {name} exists and is not tagged for this app: delete or rename it"
        ),
    }
}

/// Deletes every alarm of the app (they hold no data, so whatever the deletion policies say).
pub async fn cleanup(aws: &Aws, d: &DesiredAlarms) -> Result<super::CleanupReport> {
    let empty = DesiredAlarms {
        alarms: vec![],
        enabled: false,
        ..d.clone()
    };
    let report = ensure(aws, &empty).await?;
    Ok(super::CleanupReport {
        done: true,
        message: "CloudWatch alarms deleted".into(),
        changes: report.changes,
    })
}

/// CloudWatch alarms through the SDK backend. Their readiness is `AlarmsOK`.
pub struct Alarms<'a>(pub &'a Aws);

impl Service for Alarms<'_> {
    type Desired = DesiredAlarms;
    type View = AwsView<Vec<AlarmStatus>>;

    async fn ensure(&self, d: &DesiredAlarms) -> Outcome<Self::View> {
        Outcome::seen(Box::pin(ensure(self.0, d)).await.map(|report| {
            let (ready, reason, message) = condition(&report);
            let view = AwsView::Seen {
                readiness: Readiness {
                    ready,
                    reason,
                    message,
                    busy: false,
                },
                endpoints: report.states,
            };
            (view, report.changes)
        }))
    }

    async fn cleanup(&self, d: &DesiredAlarms) -> Outcome<Self::View> {
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
  ingress: {host: shop.example.com}
  database: {instances: 2}
  cache: {replicas: 1}
  dynamodb: {tables: [{name: carts, partitionKey: {name: id}}]}
  alarms:
    snsTopicArn: arn:aws:sns:eu-west-1:123456789012:ops
    loadBalancerArnSuffix: app/k8s-shop-web/0123456789abcdef
    thresholds: {databaseCPUPercent: 70}
"#;

    /// The alarms of `app`, with the database and cache plans the AWS plan would pass.
    fn plan(
        app: &ValidatedApp,
        health_check_id: Option<&str>,
        recorded: &[AlarmStatus],
    ) -> Option<DesiredAlarms> {
        let config = crate::aws::AwsConfig::default();
        let database = crate::aws::aurora::desired(app, &config);
        let cache = crate::aws::elasticache::desired(app, &config);
        desired(
            app,
            database.as_ref(),
            cache.as_ref(),
            health_check_id,
            recorded,
        )
    }

    /// A health check written after the plan replaces the alarm's check, once, and the
    /// "not known yet" note goes.
    #[test]
    fn a_new_health_check_replaces_the_alarms_check() {
        let mut d = plan(&validated(APP), None, &[]).expect("alarms");
        let before = d.alarms.len();
        d.set_health_check(Some("hc-1"));
        d.set_health_check(Some("hc-2"));
        assert_eq!(d.alarms.len(), before + 1);
        let r53 = d.alarms.last().expect("alarm");
        assert_eq!(
            r53.dimensions,
            vec![("HealthCheckId".to_string(), "hc-2".to_string())]
        );
        assert_eq!(
            d.skipped,
            vec![
                "alb-unhealthy-hosts: waiting for alarms.targetGroupArnSuffix (ALB counts hosts per target group)"
            ]
        );
        assert_eq!(d.regions, vec![None, Some("us-east-1")]);
    }

    fn names(d: &DesiredAlarms) -> Vec<String> {
        d.alarms
            .iter()
            .map(|a| a.name.trim_start_matches(&d.prefix).to_string())
            .collect()
    }

    /// Every managed part gets its alarms; what halo cannot know yet is skipped with a reason.
    #[test]
    fn alarms_for_every_managed_part() {
        let d = plan(&validated(APP), None, &[]).expect("alarms");
        assert_eq!(d.prefix, "halo/shop/web/");
        assert_eq!(
            names(&d),
            vec![
                "alb-target-5xx",
                "aurora-cpu",
                "aurora-freeable-memory",
                "aurora-replica-lag",
                "cache-cpu-001",
                "cache-evictions-001",
                "cache-replication-lag-001",
                "cache-cpu-002",
                "cache-evictions-002",
                "cache-replication-lag-002",
                "dynamodb-read-throttles-carts",
                "dynamodb-write-throttles-carts",
            ]
        );
        assert_eq!(
            d.skipped,
            vec![
                "alb-unhealthy-hosts: waiting for alarms.targetGroupArnSuffix (ALB counts hosts per target group)",
                "route53-health-check: the Route 53 health check id is not known yet",
            ]
        );
        let cpu = &d.alarms[1];
        assert_eq!(
            (cpu.metric, cpu.threshold, cpu.comparison, cpu.statistic),
            ("CPUUtilization", 70.0, "GreaterThanThreshold", "Average")
        );
        assert_eq!(
            cpu.dimensions,
            vec![("DBClusterIdentifier".to_string(), "shop-web".to_string())]
        );
        assert_eq!(d.alarms[2].threshold, 256.0 * 1024.0 * 1024.0);
        assert_eq!(cpu.actions, vec!["arn:aws:sns:eu-west-1:123456789012:ops"]);
        assert_eq!(d.regions, vec![None]);
    }

    /// The Route 53 alarm lives in us-east-1 and gets only a topic of that region.
    #[test]
    fn route53_alarm_in_us_east_1() {
        let d = plan(&validated(APP), Some("abcdef01-2345"), &[]).expect("alarms");
        let r53 = d.alarms.last().expect("alarm");
        assert_eq!(r53.name, "halo/shop/web/route53-health-check");
        assert_eq!(r53.region, Some("us-east-1"));
        assert_eq!(
            (r53.threshold, r53.comparison, r53.treat_missing_data),
            (1.0, "LessThanThreshold", "breaching")
        );
        assert!(r53.actions.is_empty());
        assert_eq!(d.regions, vec![None, Some("us-east-1")]);
    }

    /// Without the section, recorded alarms still lead to a (deleting) pass; nothing recorded,
    /// nothing to do.
    #[test]
    fn removed_section_deletes() {
        let bare = validated(crate::fixtures::SMALL);
        assert_eq!(plan(&bare, None, &[]), None);
        let recorded = [AlarmStatus {
            name: "halo/default/web/route53-health-check".into(),
            state: "OK".into(),
        }];
        let d = plan(&bare, None, &recorded).expect("cleanup pass");
        assert!(d.alarms.is_empty());
        assert_eq!(d.regions, vec![None, Some("us-east-1")]);
    }

    /// The same settings compare equal; a changed threshold does not.
    #[test]
    fn compare_detects_threshold_changes() {
        let d = plan(&validated(APP), None, &[]).expect("alarms");
        let a = &d.alarms[1];
        let o = ObservedAlarm {
            name: a.name.clone(),
            namespace: a.namespace.into(),
            metric: a.metric.into(),
            dimensions: a.dimensions.clone(),
            statistic: a.statistic.into(),
            period: a.period,
            evaluation_periods: a.evaluation_periods,
            datapoints_to_alarm: a.datapoints_to_alarm,
            threshold: a.threshold,
            comparison: a.comparison.into(),
            treat_missing_data: a.treat_missing_data.into(),
            description: a.description.clone(),
            alarm_actions: a.actions.clone(),
            ok_actions: a.actions.clone(),
            ..ObservedAlarm::default()
        };
        assert!(compare(a, &o));
        assert!(!compare(
            a,
            &ObservedAlarm {
                threshold: 90.0,
                ..o
            }
        ));
    }

    /// AlarmsOK names the firing alarms and the ones not created yet.
    #[test]
    fn condition_names_firing_alarms() {
        let report = AlarmsReport {
            states: vec![
                AlarmStatus {
                    name: "halo/shop/web/aurora-cpu".into(),
                    state: "ALARM".into(),
                },
                AlarmStatus {
                    name: "halo/shop/web/cache-cpu-001".into(),
                    state: "OK".into(),
                },
            ],
            skipped: vec!["x: y".into()],
            changes: vec![],
            enabled: true,
        };
        assert_eq!(
            condition(&report),
            (
                false,
                "AlarmFiring",
                "in ALARM: halo/shop/web/aurora-cpu; not created yet: x: y".to_string()
            )
        );
    }
}
