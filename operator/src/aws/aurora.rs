//! `aws::aurora`: the app's Aurora cluster.
//!
//! [`desired`] is pure (the [`ValidatedApp`] and the operator configuration in, the cluster
//! halo wants out); [`plan_instances`], [`cluster_changes`] and [`readiness`] are pure too. Only
//! [`ensure`] and [`cleanup`] call RDS:
//!
//! ```text
//! ensure:  DescribeDBClusters ─┬─ found, ours ──────────────┐
//!                              ├─ found, untagged + adopt ─> AddTagsToResource
//!                              └─ not found ─> search by tags ─> CreateDBCluster
//!          DescribeDBInstances ─> (cluster available) Create/Delete/ModifyDBInstance,
//!                                 ModifyDBCluster (drift), AddTagsToResource (tag drift)
//! cleanup: Retain ─> RemoveTagsFromResource
//!          Snapshot | Delete ─> DeleteDBInstance (each) ─> DeleteDBCluster
//! ```
//!
//! A stable cluster costs two Describe calls per reconcile and no mutating call.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_rds::types::{DbCluster, DbInstance, Filter, Tag};

use super::policy::{self, RecordedStore, StoreCheck, check_store, cleaned, ownership_of};
use super::service::{Outcome, Service};
use super::{
    Aws, AwsConfig, Change, CleanupReport, OWNERSHIP_TAG_KEYS, Ownership, Readiness, TAG_UID,
    final_snapshot_id, is_code, is_transitional, ownership_tags, reason_for_status, reasons,
    short_hash,
};
use crate::api::data::DeletionPolicy;
use crate::meta::Owner;
use crate::observed::AwsView;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// What the resource is called in messages.
pub const KIND: &str = "Aurora cluster";
/// RDS identifiers are at most 63 characters.
const MAX_ID: usize = 63;
pub use crate::names::MAX_CLUSTER_ID;
/// Master user of clusters halo creates; RDS keeps its password in Secrets Manager.
pub const MASTER_USERNAME: &str = "haloadmin";
/// Failover priority of every instance halo creates (0 is the highest, 15 the lowest).
const PROMOTION_TIER: i32 = 1;
/// Most pages a tag search reads (100 clusters each).
const MAX_SEARCH_PAGES: usize = 20;

/// The Aurora cluster halo wants for an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCluster {
    pub owner: Owner,
    /// DB cluster identifier: deterministic from namespace and name, or the adopted one.
    pub id: String,
    /// The identifier an earlier halo derived, when it differs: a cluster under it tagged with
    /// the app's uid is used (never created).
    pub legacy_id: Option<String>,
    pub adopted: bool,
    pub engine: &'static str,
    pub engine_version: Option<String>,
    /// `None`: every instance keeps its class (an adopted cluster whose spec names none).
    pub instance_class: Option<String>,
    /// `None`: halo neither adds nor removes instances (an adopted cluster whose spec names no
    /// count).
    pub instances: Option<usize>,
    pub multi_az: bool,
    /// Zones to place instances in, in order of preference; empty: the cluster's own zones.
    pub zones: Vec<String>,
    pub database_name: String,
    pub deletion_protection: bool,
    pub deletion_policy: DeletionPolicy,
    pub subnet_group: Option<String>,
    /// Empty: leave the cluster's security groups alone (the VPC default at creation).
    pub security_groups: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub final_snapshot_id: String,
    /// The cluster the status recorded (its `DbClusterResourceId`): one gone is not created
    /// again, one with another identity is not touched. `None` before the first record, or once
    /// the user accepted a new one.
    pub recorded: Option<RecordedStore>,
}

/// The cluster the app's `spec.database` asks for; `None` without one.
pub fn desired(app: &ValidatedApp, config: &AwsConfig) -> Option<DesiredCluster> {
    let db = app.database.as_ref()?;
    let id = app.names.database_id.clone()?;
    let adopted = db.adopt.is_some();
    // The operator's defaults are for clusters halo creates; an adopted one keeps its own.
    let mut security_groups: Vec<String> = match &db.security_group_ids {
        Some(ids) => ids.iter().map(|s| s.0.clone()).collect(),
        None if adopted => Vec::new(),
        None => config.db_security_groups.clone(),
    };
    security_groups.sort();
    security_groups.dedup();
    Some(DesiredCluster {
        final_snapshot_id: final_snapshot_id(&id, &app.owner),
        owner: app.owner.clone(),
        id,
        legacy_id: app.names.legacy_database_id.clone(),
        adopted,
        engine: db.engine.as_str(),
        engine_version: db.engine_version.clone(),
        instance_class: db.instance_class(),
        instances: db
            .instances()
            .map(|n| usize::try_from(n.max(1)).unwrap_or(1)),
        multi_az: db.multi_az,
        zones: app.zones.names.clone(),
        database_name: db
            .database_name
            .clone()
            .unwrap_or_else(|| crate::validate::default_database_name(&app.owner.name)),
        deletion_protection: db.deletion_protection,
        deletion_policy: db.deletion_policy,
        subnet_group: db
            .subnet_group
            .clone()
            .or_else(|| (!adopted).then(|| config.db_subnet_group.clone()).flatten()),
        security_groups,
        tags: ownership_tags(&app.owner),
        recorded: None,
    })
}

impl DesiredCluster {
    /// The same cluster with the identity the status recorded (`status.endpoints.database`),
    /// unless `accepted` (the `halo.dev/accept-store` annotation) names it.
    pub fn with_recorded(
        self,
        recorded: Option<&crate::api::data::DatabaseEndpoints>,
        accepted: &[String],
    ) -> DesiredCluster {
        let recorded = recorded.and_then(|r| {
            let id = r.cluster_identifier.as_deref().unwrap_or(&self.id);
            RecordedStore::unless_accepted(id, r.resource_id.as_deref()?, accepted)
        });
        DesiredCluster { recorded, ..self }
    }

    /// The same cluster under the identifier it actually has (a legacy one, or one found by tag):
    /// new instances and the final snapshot are named after it.
    pub fn under(&self, id: &str) -> DesiredCluster {
        DesiredCluster {
            id: id.to_string(),
            final_snapshot_id: final_snapshot_id(id, &self.owner),
            ..self.clone()
        }
    }
}

/// Identifier of the `n`th instance (from 1) of a cluster: `<cluster>-<n>`, shortened with a
/// hash when an adopted cluster's long identifier leaves no room.
pub fn instance_id(cluster_id: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    if cluster_id.len() + suffix.len() <= MAX_ID {
        return format!("{cluster_id}{suffix}");
    }
    let hash = short_hash(cluster_id);
    let keep = MAX_ID - suffix.len() - hash.len() - 1;
    let head = cluster_id[..keep].trim_end_matches('-');
    format!("{head}-{hash}{suffix}")
}

/// The cluster as RDS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedCluster {
    pub id: String,
    pub arn: String,
    /// `DbClusterResourceId`: unique to this cluster, never reused by one created again under
    /// the same identifier (empty when RDS did not say).
    pub resource_id: String,
    pub engine: String,
    pub status: String,
    pub writer_endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    pub port: Option<i32>,
    /// The Secrets Manager secret of the RDS-managed master password.
    pub secret_arn: Option<String>,
    pub deletion_protection: bool,
    pub engine_version: Option<String>,
    pub security_groups: Vec<String>,
    /// Zones the cluster's storage spans (from its subnet group).
    pub zones: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The instance that currently writes.
    pub writer: Option<String>,
    /// Identifiers of the cluster's instances.
    pub members: Vec<String>,
}

impl ObservedCluster {
    pub fn from_sdk(c: &DbCluster) -> Self {
        let mut security_groups: Vec<String> = c
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect();
        security_groups.sort();
        ObservedCluster {
            id: c.db_cluster_identifier().unwrap_or_default().to_string(),
            arn: c.db_cluster_arn().unwrap_or_default().to_string(),
            resource_id: c.db_cluster_resource_id().unwrap_or_default().to_string(),
            engine: c.engine().unwrap_or_default().to_string(),
            status: c.status().unwrap_or("unknown").to_string(),
            writer_endpoint: c.endpoint().map(str::to_string),
            reader_endpoint: c.reader_endpoint().map(str::to_string),
            port: c.port(),
            secret_arn: c
                .master_user_secret()
                .and_then(|s| s.secret_arn())
                .map(str::to_string),
            deletion_protection: c.deletion_protection().unwrap_or(false),
            engine_version: c.engine_version().map(str::to_string),
            security_groups,
            zones: c.availability_zones().to_vec(),
            tags: tags_of(c.tag_list()),
            writer: c
                .db_cluster_members()
                .iter()
                .find(|m| m.is_cluster_writer() == Some(true))
                .and_then(|m| m.db_instance_identifier().map(str::to_string)),
            members: c
                .db_cluster_members()
                .iter()
                .filter_map(|m| m.db_instance_identifier().map(str::to_string))
                .collect(),
        }
    }
}

/// One DB instance of the cluster as RDS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedInstance {
    pub id: String,
    pub arn: String,
    pub zone: Option<String>,
    pub class: String,
    pub status: String,
    pub tags: Vec<(String, String)>,
}

impl ObservedInstance {
    pub fn from_sdk(i: &DbInstance) -> Self {
        ObservedInstance {
            id: i.db_instance_identifier().unwrap_or_default().to_string(),
            arn: i.db_instance_arn().unwrap_or_default().to_string(),
            zone: i.availability_zone().map(str::to_string),
            class: i.db_instance_class().unwrap_or_default().to_string(),
            status: i.db_instance_status().unwrap_or("unknown").to_string(),
            tags: tags_of(i.tag_list()),
        }
    }

    fn live(&self) -> bool {
        self.status != "deleting"
    }
}

fn tags_of(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A new instance to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInstance {
    pub id: String,
    /// `None`: RDS picks (no zone known).
    pub zone: Option<String>,
}

/// Instance changes that bring the cluster to the desired count and class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstancePlan {
    pub create: Vec<NewInstance>,
    pub delete: Vec<String>,
    pub resize: Vec<String>,
}

impl InstancePlan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty() && self.resize.is_empty()
    }
}

/// Adds or removes instances to reach `desired.instances`, and resizes those of another class;
/// an unset count or class (an adopted cluster) leaves that alone. New instances go to the least
/// used zone (the app's pinned zones, else the cluster's); the writer is never removed; a reader
/// sharing its zone with another instance goes first, then the highest identifier, so the
/// remaining instances stay spread.
pub fn plan_instances(
    desired: &DesiredCluster,
    instances: &[ObservedInstance],
    writer: Option<&str>,
    cluster_zones: &[String],
) -> InstancePlan {
    let live: Vec<&ObservedInstance> = instances.iter().filter(|i| i.live()).collect();
    let target = desired.instances.unwrap_or(live.len());
    let mut plan = InstancePlan::default();
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for i in &live {
        if let Some(z) = &i.zone {
            *per_zone.entry(z.clone()).or_default() += 1;
        }
    }
    if live.len() > target {
        let mut readers: Vec<&ObservedInstance> = live
            .iter()
            .copied()
            .filter(|i| Some(i.id.as_str()) != writer)
            .collect();
        readers.sort_by(|a, b| {
            let crowd = |i: &ObservedInstance| {
                i.zone
                    .as_ref()
                    .and_then(|z| per_zone.get(z))
                    .copied()
                    .unwrap_or(0)
            };
            crowd(b)
                .cmp(&crowd(a))
                .then_with(|| natural_key(&b.id).cmp(&natural_key(&a.id)))
        });
        for r in readers.into_iter().take(live.len() - target) {
            if let Some(n) = r.zone.as_ref().and_then(|z| per_zone.get_mut(z)) {
                *n = n.saturating_sub(1);
            }
            plan.delete.push(r.id.clone());
        }
    }
    let candidates: Vec<String> = if desired.zones.is_empty() {
        let mut z = cluster_zones.to_vec();
        z.sort();
        z
    } else {
        desired.zones.clone()
    };
    let taken: BTreeSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
    let mut n = 0;
    for _ in live.len()..target {
        let id = loop {
            n += 1;
            let id = instance_id(&desired.id, n);
            if !taken.contains(id.as_str()) {
                break id;
            }
        };
        let zone = candidates
            .iter()
            .min_by_key(|z| per_zone.get(*z).copied().unwrap_or(0))
            .cloned();
        if let Some(z) = &zone {
            *per_zone.entry(z.clone()).or_default() += 1;
        }
        plan.create.push(NewInstance { id, zone });
    }
    if let Some(class) = &desired.instance_class {
        plan.resize = live
            .iter()
            .filter(|i| !plan.delete.contains(&i.id) && &i.class != class)
            .map(|i| i.id.clone())
            .collect();
    }
    plan
}

/// The class of an instance halo adds: the spec's, else the writer's (an adopted cluster whose
/// spec names none), else any live instance's, else the default.
pub fn new_instance_class(
    desired: &DesiredCluster,
    instances: &[ObservedInstance],
    writer: Option<&str>,
) -> String {
    let live = || instances.iter().filter(|i| i.live() && !i.class.is_empty());
    desired
        .instance_class
        .clone()
        .or_else(|| {
            live()
                .find(|i| Some(i.id.as_str()) == writer)
                .map(|i| i.class.clone())
        })
        .or_else(|| live().next().map(|i| i.class.clone()))
        .unwrap_or_else(|| crate::api::data::DEFAULT_INSTANCE_CLASS.to_string())
}

/// `shop-web-10` sorts after `shop-web-9`.
fn natural_key(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((head, n)) => match n.parse() {
            Ok(n) => (head.to_string(), n),
            Err(_) => (id.to_string(), 0),
        },
        None => (id.to_string(), 0),
    }
}

/// Modifiable cluster settings that drifted from the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterChanges {
    pub deletion_protection: Option<bool>,
    pub engine_version: Option<String>,
    pub allow_major_version_upgrade: bool,
    pub security_groups: Option<Vec<String>>,
}

impl ClusterChanges {
    pub fn is_empty(&self) -> bool {
        self.deletion_protection.is_none()
            && self.engine_version.is_none()
            && self.security_groups.is_none()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.deletion_protection {
            parts.push(format!("deletionProtection={p}"));
        }
        if let Some(v) = &self.engine_version {
            parts.push(format!("engineVersion={v}"));
        }
        if let Some(g) = &self.security_groups {
            parts.push(format!("securityGroups={}", g.join(",")));
        }
        parts.join(", ")
    }
}

/// Orders engine versions part by part, numbers as numbers (`16.10` is newer than `16.9`,
/// `8.0.mysql_aurora.3.10.0` than `8.0.mysql_aurora.3.05.2`); a missing part is older. `None`
/// when a part is a number in one and text in the other.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        let ordering = match (left.next(), right.next()) {
            (None, None) => return Some(Ordering::Equal),
            (None, Some(_)) => return Some(Ordering::Less),
            (Some(_), None) => return Some(Ordering::Greater),
            (Some(x), Some(y)) => match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Err(_), Err(_)) => x.cmp(y),
                _ => return None,
            },
        };
        if ordering != Ordering::Equal {
            return Some(ordering);
        }
    }
}

/// What `ModifyDBCluster` must set so the cluster matches the spec again. The engine version
/// only ever goes up: a cluster running a newer version than the spec's (AWS's automatic minor
/// upgrade, or an upgrade made by hand) is accepted, since RDS refuses a downgrade.
pub fn cluster_changes(desired: &DesiredCluster, observed: &ObservedCluster) -> ClusterChanges {
    let mut changes = ClusterChanges::default();
    if observed.deletion_protection != desired.deletion_protection {
        changes.deletion_protection = Some(desired.deletion_protection);
    }
    if let Some(want) = &desired.engine_version
        && observed.engine_version.as_deref().is_none_or(|have| {
            // Versions that do not compare are left to RDS to judge.
            compare_versions(want, have).is_none_or(|o| o == std::cmp::Ordering::Greater)
        })
    {
        let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
        changes.allow_major_version_upgrade = observed
            .engine_version
            .as_deref()
            .is_some_and(|have| major(have) != major(want));
        changes.engine_version = Some(want.clone());
    }
    if !desired.security_groups.is_empty() && observed.security_groups != desired.security_groups {
        changes.security_groups = Some(desired.security_groups.clone());
    }
    changes
}

/// Everything [`ensure`] saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseReport {
    pub cluster: ObservedCluster,
    pub instances: Vec<ObservedInstance>,
    /// What halo changed in this call (one Event each).
    pub changes: Vec<Change>,
    /// Instance or setting changes still to make (they wait for the cluster to be available).
    pub pending: InstancePlan,
}

/// The `DatabaseReady` condition for a report: AWS's own status word in the message.
pub fn readiness(desired: &DesiredCluster, report: &DatabaseReport) -> Readiness {
    let c = &report.cluster;
    let id = &c.id;
    if c.status != "available" {
        return Readiness {
            ready: false,
            reason: reason_for_status(&c.status),
            message: format!("{KIND} {id} is {}", c.status),
            busy: is_transitional(&c.status) || c.status == "unknown",
        };
    }
    let live: Vec<&ObservedInstance> = report.instances.iter().filter(|i| i.live()).collect();
    let available = live.iter().filter(|i| i.status == "available").count();
    let busy_instance = report
        .instances
        .iter()
        .find(|i| i.status != "available")
        .map(|i| format!("instance {} is {}", i.id, i.status));
    let target = desired.instances.unwrap_or(live.len());
    if !report.changes.is_empty() || !report.pending.is_empty() || live.len() != target {
        let mut message = format!(
            "{KIND} {id} is available; scaling to {target} instances of {}: {available} available",
            desired
                .instance_class
                .as_deref()
                .unwrap_or("their current class")
        );
        if let Some(b) = busy_instance {
            message.push_str(&format!(", {b}"));
        }
        return Readiness {
            ready: false,
            reason: reasons::SCALING,
            message,
            busy: true,
        };
    }
    if let Some(i) = live.iter().find(|i| i.status != "available") {
        return Readiness {
            ready: false,
            reason: reason_for_status(&i.status),
            message: format!(
                "{KIND} {id} is available; instance {} is {}",
                i.id, i.status
            ),
            busy: true,
        };
    }
    let zones: BTreeSet<&str> = live.iter().filter_map(|i| i.zone.as_deref()).collect();
    if desired.multi_az && zones.len() < 2 {
        return Readiness {
            ready: false,
            reason: reasons::SINGLE_ZONE,
            message: format!(
                "{KIND} {id} is available, but all {} instances are in {}: the DB subnet group needs subnets in at least two zones",
                live.len(),
                zones.iter().next().copied().unwrap_or("one zone")
            ),
            busy: false,
        };
    }
    let describe = |i: &ObservedInstance| match &i.zone {
        Some(z) => format!("{} ({z})", i.id),
        None => i.id.clone(),
    };
    let mut ordered = live.clone();
    ordered.sort_by_key(|i| natural_key(&i.id));
    let writer = ordered
        .iter()
        .find(|i| Some(i.id.as_str()) == c.writer.as_deref())
        .map(|i| describe(i))
        .unwrap_or_else(|| "unknown".into());
    let readers: Vec<String> = ordered
        .iter()
        .filter(|i| Some(i.id.as_str()) != c.writer.as_deref())
        .map(|i| describe(i))
        .collect();
    let mut message = format!("{KIND} {id} is available: writer {writer}");
    if !readers.is_empty() {
        message.push_str(&format!(", readers {}", readers.join(", ")));
    }
    Readiness {
        ready: true,
        reason: reasons::AVAILABLE,
        message,
        busy: false,
    }
}

/// The endpoints the app connects to.
pub fn endpoints(report: &DatabaseReport) -> crate::api::data::DatabaseEndpoints {
    let c = &report.cluster;
    crate::api::data::DatabaseEndpoints {
        cluster_identifier: Some(c.id.clone()),
        writer: c.writer_endpoint.clone(),
        reader: c.reader_endpoint.clone(),
        port: c.port,
        secret_arn: c.secret_arn.clone(),
        resource_id: (!c.resource_id.is_empty()).then(|| c.resource_id.clone()),
    }
}

async fn describe_cluster(aws: &Aws, id: &str) -> Result<Option<ObservedCluster>> {
    let rds = aws.rds().await;
    match aws
        .call(
            "rds:DescribeDBClusters",
            rds.describe_db_clusters().db_cluster_identifier(id).send(),
        )
        .await
    {
        Ok(out) => Ok(out.db_clusters().first().map(ObservedCluster::from_sdk)),
        Err(e) if is_code(&e, "DBClusterNotFoundFault") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The app's cluster: under its identifier when it is ours, else under the legacy identifier
/// when that one carries the app's uid, else whatever its identifier holds (nothing, or a
/// cluster [`policy::claim`] judges).
async fn describe_own(aws: &Aws, d: &DesiredCluster) -> Result<Option<ObservedCluster>> {
    let found = describe_cluster(aws, &d.id).await?;
    if found
        .as_ref()
        .is_some_and(|c| ownership_of(&d.owner, &c.tags) == Ownership::Ours)
    {
        return Ok(found);
    }
    if let Some(legacy) = &d.legacy_id
        && let Some(c) = describe_cluster(aws, legacy).await?
        && ownership_of(&d.owner, &c.tags) == Ownership::Ours
    {
        return Ok(Some(c));
    }
    Ok(found)
}

/// A cluster tagged with this app's uid under any identifier: what a crash between a create
/// and the next status write leaves behind, found before creating another.
async fn find_by_owner(aws: &Aws, owner: &Owner) -> Result<Option<ObservedCluster>> {
    let rds = aws.rds().await;
    let mut marker: Option<String> = None;
    for _ in 0..MAX_SEARCH_PAGES {
        let out = aws
            .call(
                "rds:DescribeDBClusters",
                rds.describe_db_clusters()
                    .max_records(100)
                    .set_marker(marker.clone())
                    .send(),
            )
            .await?;
        if let Some(c) = out.db_clusters().iter().find(|c| {
            c.tag_list()
                .iter()
                .any(|t| t.key() == Some(TAG_UID) && t.value() == Some(owner.uid.as_str()))
        }) {
            return Ok(Some(ObservedCluster::from_sdk(c)));
        }
        marker = out.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(None)
}

async fn describe_instances(aws: &Aws, cluster_id: &str) -> Result<Vec<ObservedInstance>> {
    let rds = aws.rds().await;
    let mut marker: Option<String> = None;
    let mut out_instances = Vec::new();
    loop {
        let out = aws
            .call(
                "rds:DescribeDBInstances",
                rds.describe_db_instances()
                    .filters(
                        Filter::builder()
                            .name("db-cluster-id")
                            .values(cluster_id)
                            .build(),
                    )
                    .set_marker(marker.clone())
                    .send(),
            )
            .await?;
        out_instances.extend(out.db_instances().iter().map(ObservedInstance::from_sdk));
        marker = out.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    out_instances.sort_by_key(|i| natural_key(&i.id));
    Ok(out_instances)
}

async fn create_cluster(aws: &Aws, d: &DesiredCluster) -> Result<ObservedCluster> {
    let rds = aws.rds().await;
    let out = aws
        .call(
            "rds:CreateDBCluster",
            rds.create_db_cluster()
                .db_cluster_identifier(&d.id)
                .engine(d.engine)
                .set_engine_version(d.engine_version.clone())
                .database_name(&d.database_name)
                .master_username(MASTER_USERNAME)
                // RDS generates the password and keeps it in Secrets Manager: it never passes
                // through halo or the Kubernetes cluster.
                .manage_master_user_password(true)
                .deletion_protection(d.deletion_protection)
                .storage_encrypted(true)
                .copy_tags_to_snapshot(true)
                .set_db_subnet_group_name(d.subnet_group.clone())
                .set_vpc_security_group_ids(
                    (!d.security_groups.is_empty()).then(|| d.security_groups.clone()),
                )
                .set_tags(Some(sdk_tags(&d.tags)))
                .send(),
        )
        .await?;
    out.db_cluster()
        .map(ObservedCluster::from_sdk)
        .ok_or_else(|| Error::Aws {
            api: "rds:CreateDBCluster".into(),
            code: "EmptyResponse".into(),
            message: "the response holds no DB cluster".into(),
            throttled: false,
        })
}

/// Creates, adopts or corrects the app's cluster and its instances. Idempotent: the identifier
/// is deterministic and a cluster tagged with the app's uid is found before any create, so a
/// crash between a create and the status write never leads to a second cluster. A cluster the
/// status recorded is never created again once gone, and one that replaced it is never touched
/// ([`check_store`]).
pub async fn ensure(aws: &Aws, d: &DesiredCluster) -> Result<DatabaseReport> {
    let rds = aws.rds().await;
    let mut changes = Vec::new();
    let found = match describe_own(aws, d).await? {
        Some(c) => Some(c),
        None if d.adopted => None,
        None => find_by_owner(aws, &d.owner).await?,
    };
    let check = check_store(
        d.recorded.as_ref(),
        found.as_ref().map(|c| c.resource_id.as_str()),
    );
    let mut cluster = match (found, check, d.recorded.as_ref()) {
        (_, StoreCheck::Missing, Some(r)) => {
            return Err(policy::store_missing(KIND, "cluster", r, &d.owner));
        }
        (Some(c), StoreCheck::Replaced, Some(r)) => {
            return Err(policy::store_replaced(
                KIND,
                &c.id,
                &c.resource_id,
                r,
                &d.owner,
            ));
        }
        (Some(c), _, _) => c,
        (None, _, _) if d.adopted => {
            return Err(policy::adopt_target_missing(
                "spec.database.adopt.clusterIdentifier",
                format!("no DB cluster {} exists in this account and region", d.id),
            ));
        }
        (None, _, _) => {
            let c = create_cluster(aws, d).await?;
            changes.push(Change::new(
                "Created",
                format!(
                    "{KIND} {}: created ({}, deletion protection {})",
                    c.id,
                    d.engine,
                    if d.deletion_protection { "on" } else { "off" }
                ),
            ));
            c
        }
    };
    policy::claim(
        KIND,
        "database",
        &cluster.id,
        &d.owner,
        &cluster.tags,
        d.adopted,
    )?;
    let in_use;
    let d = if cluster.id == d.id {
        d
    } else {
        in_use = d.under(&cluster.id);
        &in_use
    };
    if let Some(repair) = policy::tag_repair(KIND, &cluster.id, &d.owner, &d.tags, &cluster.tags) {
        aws.call(
            "rds:AddTagsToResource",
            rds.add_tags_to_resource()
                .resource_name(&cluster.arn)
                .set_tags(Some(sdk_tags(&repair.missing)))
                .send(),
        )
        .await?;
        changes.push(repair.change);
        cluster.tags.extend(repair.missing);
    }

    let instances = describe_instances(aws, &cluster.id).await?;
    let plan = plan_instances(d, &instances, cluster.writer.as_deref(), &cluster.zones);
    let drift = cluster_changes(d, &cluster);
    if cluster.status != "available" {
        // RDS refuses instance and setting changes while the cluster is busy: next time.
        return Ok(DatabaseReport {
            cluster,
            instances,
            changes,
            pending: plan,
        });
    }
    act_on_instances(aws, d, &cluster, &instances, &plan, &mut changes).await?;
    if !drift.is_empty() {
        aws.call(
            "rds:ModifyDBCluster",
            rds.modify_db_cluster()
                .db_cluster_identifier(&cluster.id)
                .apply_immediately(true)
                .set_deletion_protection(drift.deletion_protection)
                .set_engine_version(drift.engine_version.clone())
                .set_allow_major_version_upgrade(drift.allow_major_version_upgrade.then_some(true))
                .set_vpc_security_group_ids(drift.security_groups.clone())
                .send(),
        )
        .await?;
        changes.push(Change::new(
            "Updated",
            format!("{KIND} {}: set {}", cluster.id, drift.describe()),
        ));
    }
    Ok(DatabaseReport {
        cluster,
        instances,
        changes,
        pending: InstancePlan::default(),
    })
}

/// Creates, deletes and resizes instances as `plan` says (the cluster is available).
async fn act_on_instances(
    aws: &Aws,
    d: &DesiredCluster,
    cluster: &ObservedCluster,
    instances: &[ObservedInstance],
    plan: &InstancePlan,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let rds = aws.rds().await;
    let class = new_instance_class(d, instances, cluster.writer.as_deref());
    let engine = if cluster.engine.is_empty() {
        d.engine.to_string()
    } else {
        cluster.engine.clone()
    };
    for new in &plan.create {
        aws.call(
            "rds:CreateDBInstance",
            rds.create_db_instance()
                .db_instance_identifier(&new.id)
                .db_cluster_identifier(&cluster.id)
                .engine(&engine)
                .db_instance_class(&class)
                .set_availability_zone(new.zone.clone())
                .promotion_tier(PROMOTION_TIER)
                .set_tags(Some(sdk_tags(&d.tags)))
                .send(),
        )
        .await?;
        changes.push(Change::new(
            "Scaled",
            format!(
                "{KIND} {}: instance {} created{}",
                cluster.id,
                new.id,
                new.zone
                    .as_ref()
                    .map(|z| format!(" in {z}"))
                    .unwrap_or_default()
            ),
        ));
    }
    for id in &plan.delete {
        aws.call(
            "rds:DeleteDBInstance",
            rds.delete_db_instance().db_instance_identifier(id).send(),
        )
        .await?;
        changes.push(Change::new(
            "Scaled",
            format!("{KIND} {}: instance {id} deleted", cluster.id),
        ));
    }
    for id in &plan.resize {
        aws.call(
            "rds:ModifyDBInstance",
            rds.modify_db_instance()
                .db_instance_identifier(id)
                .db_instance_class(&class)
                .apply_immediately(true)
                .send(),
        )
        .await?;
        changes.push(Change::new(
            "Updated",
            format!("{KIND} {}: instance {id} resized to {class}", cluster.id),
        ));
    }
    Ok(())
}

/// Carries out the deletion policy. `done` once AWS confirmed: the cluster is gone or deleting
/// (which RDS cannot undo; the final snapshot is part of it), or retained without halo's tags.
/// A cluster that is not tagged for this app is never touched.
pub async fn cleanup(aws: &Aws, d: &DesiredCluster) -> Result<CleanupReport> {
    let rds = aws.rds().await;
    let Some(cluster) = describe_own(aws, d).await? else {
        return Ok(cleaned::gone(KIND, &d.id));
    };
    let d = &d.under(&cluster.id);
    let id = &d.id;
    if cluster.status == "deleting" {
        return Ok(cleaned::already_deleting(KIND, id));
    }
    if ownership_of(&d.owner, &cluster.tags) != Ownership::Ours {
        return Ok(cleaned::left_alone(KIND, id));
    }
    if check_store(d.recorded.as_ref(), Some(&cluster.resource_id)) == StoreCheck::Replaced {
        return Ok(cleaned::replaced(KIND, id));
    }
    let policy = policy::cleanup_policy(d.adopted, d.deletion_policy);
    let instances = describe_instances(aws, id).await?;
    if policy == DeletionPolicy::Retain {
        let keys: Vec<String> = OWNERSHIP_TAG_KEYS.iter().map(|k| k.to_string()).collect();
        let mut arns = vec![cluster.arn.clone()];
        arns.extend(
            instances
                .iter()
                .filter(|i| ownership_of(&d.owner, &i.tags) == Ownership::Ours)
                .map(|i| i.arn.clone()),
        );
        for arn in arns {
            aws.call(
                "rds:RemoveTagsFromResource",
                rds.remove_tags_from_resource()
                    .resource_name(arn)
                    .set_tag_keys(Some(keys.clone()))
                    .send(),
            )
            .await?;
        }
        return Ok(cleaned::retained(KIND, id));
    }
    let mut changes = Vec::new();
    if cluster.deletion_protection {
        if d.deletion_protection {
            return Err(Error::DeletionBlocked {
                kind: KIND.into(),
                id: id.clone(),
                reason: format!(
                    "deletion protection is on; set spec.database.deletionProtection to false to let halo delete it{}, or set deletionPolicy: Retain to keep it",
                    if policy == DeletionPolicy::Snapshot {
                        " after a final snapshot"
                    } else {
                        ""
                    }
                ),
            });
        }
        // The spec turned protection off; the app is being deleted, so ensure no longer runs.
        aws.call(
            "rds:ModifyDBCluster",
            rds.modify_db_cluster()
                .db_cluster_identifier(id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send(),
        )
        .await?;
        changes.push(Change::new(
            "Updated",
            format!("{KIND} {id}: deletion protection turned off, as the spec says"),
        ));
    }
    let live: Vec<&ObservedInstance> = instances.iter().filter(|i| i.live()).collect();
    for i in &live {
        aws.call(
            "rds:DeleteDBInstance",
            rds.delete_db_instance()
                .db_instance_identifier(&i.id)
                .send(),
        )
        .await?;
        changes.push(Change::new(
            reasons::DELETING,
            format!("{KIND} {id}: instance {} deleting", i.id),
        ));
    }
    if !instances.is_empty() {
        // RDS deletes a cluster only once it has no instances.
        return Ok(CleanupReport {
            done: false,
            message: format!(
                "{KIND} {id}: waiting for {} instances to be deleted",
                instances.len()
            ),
            changes,
        });
    }
    let snapshot = (policy == DeletionPolicy::Snapshot).then_some(d.final_snapshot_id.as_str());
    let request = rds
        .delete_db_cluster()
        .db_cluster_identifier(id)
        .skip_final_snapshot(snapshot.is_none())
        .set_final_db_snapshot_identifier(snapshot.map(str::to_string));
    aws.call("rds:DeleteDBCluster", request.send()).await?;
    Ok(cleaned::deleting(KIND, id, snapshot, changes))
}

/// Aurora through the SDK backend.
pub struct Aurora<'a>(pub &'a Aws);

impl Service for Aurora<'_> {
    type Desired = DesiredCluster;
    type View = AwsView<crate::api::data::DatabaseEndpoints>;

    async fn ensure(&self, d: &DesiredCluster) -> Outcome<Self::View> {
        Outcome::seen(Box::pin(ensure(self.0, d)).await.map(|report| {
            let view = AwsView::Seen {
                readiness: readiness(d, &report),
                endpoints: endpoints(&report),
            };
            (view, report.changes)
        }))
    }

    async fn cleanup(&self, d: &DesiredCluster) -> Outcome<Self::View> {
        Outcome::cleaned(Box::pin(cleanup(self.0, d)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::validated;

    const DB_APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: shop-web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  zones: {names: [us-east-1a, us-east-1b, us-east-1c]}
  database:
    engine: aurora-postgresql
    engineVersion: "16.4"
    instanceClass: db.r6g.large
    instances: 3
    multiAZ: true
    deletionPolicy: Snapshot
    deletionProtection: true
"#;

    fn desired_for(yaml: &str) -> DesiredCluster {
        desired(&validated(yaml), &AwsConfig::default()).expect("database section")
    }

    fn instance(id: &str, zone: &str, status: &str) -> ObservedInstance {
        ObservedInstance {
            id: id.into(),
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
            zone: Some(zone.into()),
            class: "db.r6g.large".into(),
            status: status.into(),
            tags: vec![],
        }
    }

    /// The desired cluster carries everything the create call needs, from the spec alone.
    #[test]
    fn desired_cluster_from_spec() {
        let d = desired_for(DB_APP);
        assert_eq!(d.id, "shop-shop-web-750bd165");
        assert_eq!(d.legacy_id.as_deref(), Some("shop-shop-web"));
        assert!(!d.adopted);
        assert_eq!(d.engine, "aurora-postgresql");
        assert_eq!(d.instances, Some(3));
        assert_eq!(d.database_name, "shop_web");
        assert_eq!(d.final_snapshot_id, "shop-shop-web-750bd165-final-uid1");
        assert_eq!(
            d.under("shop-shop-web").final_snapshot_id,
            "shop-shop-web-final-uid1"
        );
        assert_eq!(d.zones, vec!["us-east-1a", "us-east-1b", "us-east-1c"]);
        assert_eq!(d.tags[2], ("halo.dev/uid".into(), "uid-1".into()));
        assert!(desired(&validated(crate::fixtures::SMALL), &AwsConfig::default()).is_none());
    }

    /// Operator defaults fill subnet group and security groups the spec leaves out.
    #[test]
    fn operator_defaults_apply() {
        let config = AwsConfig {
            db_subnet_group: Some("private-db".into()),
            db_security_groups: vec!["sg-0bbbbbbbbbbbbbbbb".into(), "sg-0aaaaaaaaaaaaaaaa".into()],
            ..AwsConfig::default()
        };
        let d = desired(&validated(DB_APP), &config).expect("db");
        assert_eq!(d.subnet_group.as_deref(), Some("private-db"));
        assert_eq!(
            d.security_groups,
            vec!["sg-0aaaaaaaaaaaaaaaa", "sg-0bbbbbbbbbbbbbbbb"]
        );
    }

    /// Three new instances land in three different zones; the first (the writer) in the first.
    #[test]
    fn new_instances_spread_over_zones() {
        let d = desired_for(DB_APP);
        let plan = plan_instances(&d, &[], None, &[]);
        assert_eq!(
            plan.create,
            vec![
                NewInstance {
                    id: "shop-shop-web-750bd165-1".into(),
                    zone: Some("us-east-1a".into())
                },
                NewInstance {
                    id: "shop-shop-web-750bd165-2".into(),
                    zone: Some("us-east-1b".into())
                },
                NewInstance {
                    id: "shop-shop-web-750bd165-3".into(),
                    zone: Some("us-east-1c".into())
                },
            ]
        );
        assert!(plan.delete.is_empty() && plan.resize.is_empty());
    }

    /// Scaling 3 -> 2 removes a reader, never the writer, even when the writer has the highest id.
    #[test]
    fn scale_down_keeps_the_writer() {
        let mut d = desired_for(DB_APP);
        d.instances = Some(2);
        let observed = vec![
            instance("shop-shop-web-1", "us-east-1a", "available"),
            instance("shop-shop-web-2", "us-east-1b", "available"),
            instance("shop-shop-web-3", "us-east-1c", "available"),
        ];
        let plan = plan_instances(&d, &observed, Some("shop-shop-web-3"), &[]);
        assert_eq!(plan.delete, vec!["shop-shop-web-2"]);
        assert!(plan.create.is_empty());
        let plan = plan_instances(&d, &observed, Some("shop-shop-web-1"), &[]);
        assert_eq!(plan.delete, vec!["shop-shop-web-3"]);
    }

    /// A reader sharing a zone goes before one alone in its zone, so the spread survives.
    #[test]
    fn scale_down_prefers_crowded_zones() {
        let mut d = desired_for(DB_APP);
        d.instances = Some(2);
        let observed = vec![
            instance("shop-shop-web-1", "us-east-1a", "available"),
            instance("shop-shop-web-2", "us-east-1a", "available"),
            instance("shop-shop-web-3", "us-east-1b", "available"),
        ];
        let plan = plan_instances(&d, &observed, Some("shop-shop-web-1"), &[]);
        assert_eq!(plan.delete, vec!["shop-shop-web-2"]);
    }

    /// Without pinned zones, new instances fill the cluster's zones, least used first, and reuse
    /// no identifier still held by a deleting instance. (A cluster found under its legacy
    /// identifier: new instances are named after it.)
    #[test]
    fn scale_up_fills_the_emptiest_cluster_zone() {
        let mut d = desired_for(DB_APP).under("shop-shop-web");
        d.zones.clear();
        let observed = vec![
            instance("shop-shop-web-1", "us-east-1a", "available"),
            instance("shop-shop-web-2", "us-east-1b", "deleting"),
            instance("shop-shop-web-3", "us-east-1b", "available"),
        ];
        let zones = vec![
            "us-east-1c".into(),
            "us-east-1b".into(),
            "us-east-1a".into(),
        ];
        let plan = plan_instances(&d, &observed, Some("shop-shop-web-1"), &zones);
        assert_eq!(
            plan.create,
            vec![NewInstance {
                id: "shop-shop-web-4".into(),
                zone: Some("us-east-1c".into())
            }]
        );
    }

    /// An instance of another class is resized in place.
    #[test]
    fn class_drift_is_resized() {
        let d = desired_for(DB_APP);
        let mut observed = vec![
            instance("shop-shop-web-1", "us-east-1a", "available"),
            instance("shop-shop-web-2", "us-east-1b", "available"),
            instance("shop-shop-web-3", "us-east-1c", "available"),
        ];
        observed[1].class = "db.t3.medium".into();
        let plan = plan_instances(&d, &observed, Some("shop-shop-web-1"), &[]);
        assert_eq!(plan.resize, vec!["shop-shop-web-2"]);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
    }

    /// Deletion protection turned off behind halo's back, or an old engine, is put back.
    #[test]
    fn cluster_drift_is_detected() {
        let d = desired_for(DB_APP);
        let observed = ObservedCluster {
            deletion_protection: true,
            engine_version: Some("16.4".into()),
            ..ObservedCluster::default()
        };
        assert!(cluster_changes(&d, &observed).is_empty());
        let drifted = ObservedCluster {
            deletion_protection: false,
            engine_version: Some("15.7".into()),
            ..observed
        };
        let changes = cluster_changes(&d, &drifted);
        assert_eq!(changes.deletion_protection, Some(true));
        assert_eq!(changes.engine_version.as_deref(), Some("16.4"));
        assert!(changes.allow_major_version_upgrade);
        assert_eq!(
            changes.describe(),
            "deletionProtection=true, engineVersion=16.4"
        );
    }

    /// AWS's automatic minor upgrade (16.4 -> 16.10) must not make halo ask for a downgrade,
    /// which RDS refuses on every reconcile; a newer spec still upgrades. moto never upgrades a
    /// cluster by itself, so this is pinned on the planning function.
    #[test]
    fn a_newer_running_version_is_never_downgraded() {
        let d = desired_for(DB_APP);
        let running = |v: &str| ObservedCluster {
            deletion_protection: true,
            engine_version: Some(v.into()),
            ..ObservedCluster::default()
        };
        assert_eq!(
            cluster_changes(&d, &running("16.10")),
            ClusterChanges::default()
        );
        assert_eq!(
            cluster_changes(&d, &running("17.2")),
            ClusterChanges::default()
        );
        assert_eq!(
            cluster_changes(&d, &running("16.4.1")),
            ClusterChanges::default()
        );
        let minor = cluster_changes(&d, &running("16.3"));
        assert_eq!(minor.engine_version.as_deref(), Some("16.4"));
        assert!(!minor.allow_major_version_upgrade);
        let mut newer = d.clone();
        newer.engine_version = Some("16.10".into());
        assert_eq!(
            cluster_changes(&newer, &running("16.9"))
                .engine_version
                .as_deref(),
            Some("16.10")
        );
    }

    /// Versions compare part by part as numbers, Aurora MySQL's text part included.
    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::{Equal, Greater, Less};
        assert_eq!(compare_versions("16.10", "16.9"), Some(Greater));
        assert_eq!(compare_versions("16.4", "16.4"), Some(Equal));
        assert_eq!(compare_versions("16.4", "16.4.1"), Some(Less));
        assert_eq!(
            compare_versions("8.0.mysql_aurora.3.10.0", "8.0.mysql_aurora.3.05.2"),
            Some(Greater)
        );
        assert_eq!(compare_versions("16.beta", "16.4"), None);
    }

    const ADOPTED_APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: shop-web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  database:
    adopt: {clusterIdentifier: legacy-shop}
"#;

    /// Adopting with the spec silent on the shape changes nothing: no reader deleted, no
    /// instance resized, the cluster's security groups and subnet group kept (the operator's
    /// defaults are for clusters halo creates).
    #[test]
    fn adoption_keeps_the_observed_shape() {
        let config = AwsConfig {
            db_subnet_group: Some("private-db".into()),
            db_security_groups: vec!["sg-0aaaaaaaaaaaaaaaa".into()],
            ..AwsConfig::default()
        };
        let d = desired(&validated(ADOPTED_APP), &config).expect("db");
        assert!(d.adopted);
        assert_eq!(
            (&d.instances, &d.instance_class, &d.subnet_group),
            (&None, &None, &None)
        );
        assert!(d.security_groups.is_empty());
        let mut observed = vec![
            instance("legacy-shop-a", "us-east-1a", "available"),
            instance("legacy-shop-b", "us-east-1b", "available"),
            instance("legacy-shop-c", "us-east-1c", "available"),
        ];
        for i in &mut observed {
            i.class = "db.t3.medium".into();
        }
        assert!(plan_instances(&d, &observed, Some("legacy-shop-a"), &[]).is_empty());
        assert_eq!(
            new_instance_class(&d, &observed, Some("legacy-shop-a")),
            "db.t3.medium"
        );
        let cluster = ObservedCluster {
            deletion_protection: true,
            security_groups: vec!["sg-0bbbbbbbbbbbbbbbb".into()],
            ..ObservedCluster::default()
        };
        assert!(cluster_changes(&d, &cluster).is_empty());
        let report = DatabaseReport {
            cluster: available_cluster(),
            instances: observed,
            ..DatabaseReport::default()
        };
        assert!(readiness(&d, &report).ready);

        // What the spec does say is enforced on an adopted cluster too.
        let explicit = ADOPTED_APP.replace(
            "    adopt:",
            "    instances: 2\n    instanceClass: db.r6g.large\n    adopt:",
        );
        let d = desired(&validated(&explicit), &config).expect("db");
        assert_eq!(d.instances, Some(2));
        let plan = plan_instances(&d, &report.instances, Some("legacy-shop-a"), &[]);
        assert_eq!(plan.delete, vec!["legacy-shop-c"]);
        assert_eq!(plan.resize, vec!["legacy-shop-a", "legacy-shop-b"]);
    }

    /// A cluster halo creates gets the defaults the schema no longer fills in.
    #[test]
    fn created_clusters_get_the_defaults() {
        let d = desired_for(
            &DB_APP
                .replace("    instanceClass: db.r6g.large\n", "")
                .replace("    instances: 3\n", ""),
        );
        assert_eq!(d.instances, Some(2));
        assert_eq!(d.instance_class.as_deref(), Some("db.r6g.large"));
    }

    /// Long adopted identifiers still give valid, distinct instance identifiers.
    #[test]
    fn instance_ids_fit_rds_limits() {
        assert_eq!(instance_id("shop-web", 2), "shop-web-2");
        let long = "a".repeat(63);
        let id = instance_id(&long, 12);
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("-12"));
        assert_ne!(instance_id(&long, 1), instance_id(&long, 2));
    }

    fn available_cluster() -> ObservedCluster {
        ObservedCluster {
            id: "shop-shop-web".into(),
            status: "available".into(),
            writer: Some("shop-shop-web-1".into()),
            ..ObservedCluster::default()
        }
    }

    /// The condition message names AWS's status while the cluster is not available.
    #[test]
    fn readiness_reports_aws_status() {
        let d = desired_for(DB_APP);
        for (status, reason) in [
            ("creating", "Creating"),
            ("modifying", "Modifying"),
            ("failing-over", "FailingOver"),
        ] {
            let report = DatabaseReport {
                cluster: ObservedCluster {
                    status: status.into(),
                    ..available_cluster()
                },
                ..DatabaseReport::default()
            };
            let r = readiness(&d, &report);
            assert_eq!(
                (r.ready, r.reason, r.message.as_str(), r.busy),
                (
                    false,
                    reason,
                    format!("Aurora cluster shop-shop-web is {status}").as_str(),
                    true
                )
            );
        }
    }

    /// Ready names the writer and readers with their zones.
    #[test]
    fn readiness_when_available() {
        let d = desired_for(DB_APP);
        let report = DatabaseReport {
            cluster: available_cluster(),
            instances: vec![
                instance("shop-shop-web-1", "us-east-1a", "available"),
                instance("shop-shop-web-2", "us-east-1b", "available"),
                instance("shop-shop-web-3", "us-east-1c", "available"),
            ],
            ..DatabaseReport::default()
        };
        let r = readiness(&d, &report);
        assert!(r.ready);
        assert!(!r.busy);
        assert_eq!(
            r.message,
            "Aurora cluster shop-shop-web is available: writer shop-shop-web-1 (us-east-1a), readers shop-shop-web-2 (us-east-1b), shop-shop-web-3 (us-east-1c)"
        );
    }

    /// A Multi-AZ claim with every instance in one zone is not ready.
    #[test]
    fn single_zone_is_not_multi_az() {
        let mut d = desired_for(DB_APP);
        d.instances = Some(2);
        let report = DatabaseReport {
            cluster: available_cluster(),
            instances: vec![
                instance("shop-shop-web-1", "us-east-1a", "available"),
                instance("shop-shop-web-2", "us-east-1a", "available"),
            ],
            ..DatabaseReport::default()
        };
        let r = readiness(&d, &report);
        assert_eq!((r.ready, r.reason), (false, "SingleZone"));
        assert_eq!(
            r.message,
            "Aurora cluster shop-shop-web is available, but all 2 instances are in us-east-1a: the DB subnet group needs subnets in at least two zones"
        );
    }

    /// While instances are missing the condition says how far scaling got.
    #[test]
    fn readiness_while_scaling() {
        let d = desired_for(DB_APP);
        let report = DatabaseReport {
            cluster: available_cluster(),
            instances: vec![
                instance("shop-shop-web-1", "us-east-1a", "available"),
                instance("shop-shop-web-2", "us-east-1b", "creating"),
            ],
            ..DatabaseReport::default()
        };
        let r = readiness(&d, &report);
        assert_eq!((r.ready, r.reason, r.busy), (false, "Scaling", true));
        assert_eq!(
            r.message,
            "Aurora cluster shop-shop-web is available; scaling to 3 instances of db.r6g.large: 1 available, instance shop-shop-web-2 is creating"
        );
    }
}
