//! `aws::elasticache`: the app's cache, one ElastiCache replication group (cluster mode
//! disabled: one shard, a primary plus replicas in other zones).
//!
//! [`desired`], [`next_step`] and [`readiness`] are pure; [`ensure`] and [`cleanup`] call
//! ElastiCache. ElastiCache accepts one modification at a time, so `ensure` makes at most one
//! change per call and waits for the group to be `available` again before the next.
//!
//! A stable group costs DescribeReplicationGroups plus ListTagsForResource (its tags are not in
//! the describe output) per reconcile, and no mutating call.

use std::collections::BTreeSet;

use aws_sdk_elasticache::types::{ReplicationGroup, Tag};

use super::policy::{self, RecordedStore, StoreCheck, check_store, cleaned, ownership_of};
use super::service::{Outcome, Service};
use super::{
    Aws, AwsConfig, Change, CleanupReport, OWNERSHIP_TAG_KEYS, Ownership, Readiness,
    final_snapshot_id, is_code, is_transitional, ownership_tags, reason_for_status, reasons,
};
use crate::api::data::DeletionPolicy;
use crate::meta::Owner;
use crate::observed::AwsView;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// What the resource is called in messages.
pub const KIND: &str = "ElastiCache replication group";
pub use crate::names::MAX_GROUP_ID;
/// Most pages a search by description reads (100 groups each).
const MAX_SEARCH_PAGES: usize = 20;

/// The replication group halo wants for an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredGroup {
    pub owner: Owner,
    pub id: String,
    /// The id an earlier halo derived, when it differs: a group under it tagged with the app's
    /// uid is used (never created).
    pub legacy_id: Option<String>,
    pub adopted: bool,
    pub engine: &'static str,
    pub engine_version: Option<String>,
    /// `None`: the group keeps its node type (an adopted group whose spec names none).
    pub node_type: Option<String>,
    /// `None`: halo neither adds nor removes replicas (an adopted group whose spec names no
    /// count).
    pub replicas: Option<usize>,
    pub multi_az: bool,
    /// Zones for the primary and the replicas, in order; empty: ElastiCache picks.
    pub zones: Vec<String>,
    pub subnet_group: Option<String>,
    pub security_groups: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub description: String,
    pub deletion_policy: DeletionPolicy,
    pub final_snapshot_id: String,
    /// The group the status recorded (its creation time): one gone is not created again, one
    /// created at another time is not touched. `None` before the first record, or once the
    /// user accepted a new one.
    pub recorded: Option<RecordedStore>,
}

impl DesiredGroup {
    /// The same group with the identity the status recorded (`status.endpoints.cache`), unless
    /// `accepted` (the `halo.dev/accept-store` annotation) names it.
    pub fn with_recorded(
        self,
        recorded: Option<&crate::api::data::CacheEndpoints>,
        accepted: &[String],
    ) -> DesiredGroup {
        let recorded = recorded.and_then(|r| {
            let id = r.replication_group_id.as_deref().unwrap_or(&self.id);
            RecordedStore::unless_accepted(id, r.created_at.as_deref()?, accepted)
        });
        DesiredGroup { recorded, ..self }
    }

    /// The same group under the id it actually has (a legacy one, or one found by tag): the
    /// final snapshot is named after it.
    pub fn under(&self, id: &str) -> DesiredGroup {
        DesiredGroup {
            id: id.to_string(),
            final_snapshot_id: final_snapshot_id(id, &self.owner),
            ..self.clone()
        }
    }

    /// The replicas halo wants, given the group's current count (kept when the spec has none).
    pub fn replicas_for(&self, observed: usize) -> usize {
        self.replicas.unwrap_or(observed)
    }

    /// Multi-AZ with automatic failover whenever there is a replica to fail over to.
    pub fn failover(&self, observed_replicas: usize) -> bool {
        self.replicas_for(observed_replicas) >= 1
    }

    /// Node type of a group halo creates.
    fn create_node_type(&self) -> &str {
        self.node_type
            .as_deref()
            .unwrap_or(crate::api::data::DEFAULT_NODE_TYPE)
    }

    /// Replicas of a group halo creates.
    fn create_replicas(&self) -> usize {
        self.replicas
            .unwrap_or(crate::api::data::DEFAULT_REPLICAS as usize)
    }
}

/// The description halo gives groups it creates; a crash-recovery search matches on it.
pub fn description(owner: &Owner) -> String {
    format!(
        "halo: cache of HighlyAvailableApp {}/{}",
        owner.namespace, owner.name
    )
}

/// The replication group the app's `spec.cache` asks for; `None` without one.
pub fn desired(app: &ValidatedApp, config: &AwsConfig) -> Option<DesiredGroup> {
    let cache = app.cache.as_ref()?;
    let id = app.names.cache_id.clone()?;
    let adopted = cache.adopt.is_some();
    // The operator's defaults are for groups halo creates; an adopted one keeps its own.
    let mut security_groups: Vec<String> = match &cache.security_group_ids {
        Some(ids) => ids.iter().map(|s| s.0.clone()).collect(),
        None if adopted => Vec::new(),
        None => config.cache_security_groups.clone(),
    };
    security_groups.sort();
    security_groups.dedup();
    Some(DesiredGroup {
        final_snapshot_id: final_snapshot_id(&id, &app.owner),
        owner: app.owner.clone(),
        id,
        legacy_id: app.names.legacy_cache_id.clone(),
        adopted,
        engine: cache.engine.as_str(),
        engine_version: cache.engine_version.clone(),
        node_type: cache.node_type(),
        replicas: cache
            .replicas()
            .map(|n| usize::try_from(n.max(0)).unwrap_or(0)),
        multi_az: cache.multi_az,
        zones: app.zones.names.clone(),
        subnet_group: cache.subnet_group.clone().or_else(|| {
            (!adopted)
                .then(|| config.cache_subnet_group.clone())
                .flatten()
        }),
        security_groups,
        tags: ownership_tags(&app.owner),
        description: description(&app.owner),
        deletion_policy: cache.deletion_policy,
        recorded: None,
    })
}

/// Zones for `n` nodes: the pinned zones in turn, so consecutive nodes never share one.
pub fn node_zones(zones: &[String], n: usize) -> Vec<String> {
    if zones.is_empty() {
        return Vec::new();
    }
    (0..n).map(|i| zones[i % zones.len()].clone()).collect()
}

/// One node of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub zone: Option<String>,
    /// `primary` or `replica`.
    pub role: Option<String>,
}

/// The replication group as ElastiCache describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedGroup {
    pub id: String,
    pub arn: String,
    /// When it was created (RFC 3339): a group created again under the same id has another
    /// (empty when ElastiCache did not say).
    pub created_at: String,
    pub status: String,
    pub description: String,
    pub primary_endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    pub port: Option<i32>,
    pub members: Vec<Member>,
    /// `enabled`, `disabled`, `enabling`, `disabling`.
    pub automatic_failover: String,
    /// `enabled` or `disabled`.
    pub multi_az: String,
    pub node_type: Option<String>,
    pub transit_encryption: bool,
    pub at_rest_encryption: bool,
    pub tags: Vec<(String, String)>,
}

impl ObservedGroup {
    pub fn from_sdk(g: &ReplicationGroup) -> Self {
        let group = g.node_groups().first();
        let members = group
            .map(|ng| {
                ng.node_group_members()
                    .iter()
                    .map(|m| Member {
                        id: m.cache_cluster_id().unwrap_or_default().to_string(),
                        zone: m.preferred_availability_zone().map(str::to_string),
                        role: m.current_role().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let primary = group.and_then(|ng| ng.primary_endpoint());
        ObservedGroup {
            id: g.replication_group_id().unwrap_or_default().to_string(),
            arn: g.arn().unwrap_or_default().to_string(),
            created_at: g
                .replication_group_create_time()
                .and_then(|t| {
                    t.fmt(aws_sdk_elasticache::primitives::DateTimeFormat::DateTime)
                        .ok()
                })
                .unwrap_or_default(),
            status: g.status().unwrap_or("unknown").to_string(),
            description: g.description().unwrap_or_default().to_string(),
            primary_endpoint: primary.and_then(|e| e.address()).map(str::to_string),
            reader_endpoint: group
                .and_then(|ng| ng.reader_endpoint())
                .and_then(|e| e.address())
                .map(str::to_string),
            port: primary.and_then(|e| e.port()),
            members,
            automatic_failover: g
                .automatic_failover()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "disabled".into()),
            multi_az: g
                .multi_az()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "disabled".into()),
            node_type: g.cache_node_type().map(str::to_string),
            transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
            at_rest_encryption: g.at_rest_encryption_enabled().unwrap_or(false),
            tags: Vec::new(),
        }
    }

    pub fn replicas(&self) -> usize {
        self.members.len().saturating_sub(1)
    }

    fn failover_on(&self) -> bool {
        self.automatic_failover == "enabled"
    }
}

/// The one change ElastiCache should make next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    IncreaseReplicas(usize),
    DecreaseReplicas(usize),
    /// `ModifyReplicationGroup`: failover + Multi-AZ and/or the node type.
    Modify {
        failover: Option<bool>,
        node_type: Option<String>,
    },
}

impl Step {
    fn describe(&self, id: &str) -> String {
        match self {
            Step::IncreaseReplicas(n) | Step::DecreaseReplicas(n) => {
                format!("{KIND} {id}: scaling to {n} replicas")
            }
            Step::Modify {
                failover,
                node_type,
            } => {
                let mut parts = Vec::new();
                if let Some(f) = failover {
                    let word = if *f { "enabled" } else { "disabled" };
                    parts.push(format!("Multi-AZ and automatic failover {word}"));
                }
                if let Some(t) = node_type {
                    parts.push(format!("node type {t}"));
                }
                format!("{KIND} {id}: {}", parts.join(", "))
            }
        }
    }
}

/// The next change that brings the group to the spec, one at a time: replicas first (turning
/// failover off before the last replica goes, since ElastiCache needs a replica for it), then
/// failover and Multi-AZ, then the node type. An unset count or node type (an adopted group)
/// is left as it is.
pub fn next_step(d: &DesiredGroup, g: &ObservedGroup) -> Option<Step> {
    let have = g.replicas();
    let want = d.replicas_for(have);
    if want < have {
        if want == 0 && g.failover_on() {
            return Some(Step::Modify {
                failover: Some(false),
                node_type: None,
            });
        }
        return Some(Step::DecreaseReplicas(want));
    }
    if want > have {
        return Some(Step::IncreaseReplicas(want));
    }
    let want_failover = d.failover(have);
    let failover_drift =
        g.failover_on() != want_failover || (g.multi_az == "enabled") != want_failover;
    let node_type = d
        .node_type
        .as_ref()
        .filter(|t| g.node_type.as_deref() != Some(t.as_str()))
        .cloned();
    if failover_drift || node_type.is_some() {
        return Some(Step::Modify {
            failover: failover_drift.then_some(want_failover),
            node_type,
        });
    }
    None
}

/// Everything [`ensure`] saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheReport {
    pub group: ObservedGroup,
    pub changes: Vec<Change>,
    /// A change still to make once the group is available.
    pub pending: Option<Step>,
}

/// The `CacheReady` condition: AWS's own status word in the message.
pub fn readiness(d: &DesiredGroup, report: &CacheReport) -> Readiness {
    let g = &report.group;
    let id = &g.id;
    if g.status != "available" {
        return Readiness {
            ready: false,
            reason: reason_for_status(&g.status),
            message: format!("{KIND} {id} is {}", g.status),
            busy: is_transitional(&g.status) || g.status == "unknown",
        };
    }
    if let Some(change) = report.changes.first() {
        return Readiness {
            ready: false,
            reason: reasons::MODIFYING,
            message: format!(
                "{KIND} {id} is available; {}",
                strip_kind(&change.message, id)
            ),
            busy: true,
        };
    }
    if let Some(step) = &report.pending {
        return Readiness {
            ready: false,
            reason: reasons::MODIFYING,
            message: format!(
                "{KIND} {id} is available; next: {}",
                strip_kind(&step.describe(id), id)
            ),
            busy: true,
        };
    }
    let zones: BTreeSet<&str> = g.members.iter().filter_map(|m| m.zone.as_deref()).collect();
    if d.multi_az && d.replicas_for(g.replicas()) >= 1 && zones.len() < 2 {
        return Readiness {
            ready: false,
            reason: reasons::SINGLE_ZONE,
            message: format!(
                "{KIND} {id} is available, but all {} nodes are in {}: the cache subnet group needs subnets in at least two zones",
                g.members.len(),
                zones.iter().next().copied().unwrap_or("one zone")
            ),
            busy: false,
        };
    }
    let node = |m: &Member| match &m.zone {
        Some(z) => format!("{} ({z})", m.id),
        None => m.id.clone(),
    };
    let primary = g
        .members
        .iter()
        .find(|m| m.role.as_deref() == Some("primary"))
        .or_else(|| g.members.first());
    let mut message = format!(
        "{KIND} {id} is available: primary {}",
        primary.map(node).unwrap_or_else(|| "unknown".into())
    );
    let replicas: Vec<String> = g
        .members
        .iter()
        .filter(|m| Some(*m) != primary)
        .map(node)
        .collect();
    if !replicas.is_empty() {
        message.push_str(&format!(", replicas {}", replicas.join(", ")));
    }
    message.push_str(&format!("; automatic failover {}", g.automatic_failover));
    if !g.transit_encryption || !g.at_rest_encryption {
        message.push_str("; not encrypted in transit and at rest");
    }
    Readiness {
        ready: true,
        reason: reasons::AVAILABLE,
        message,
        busy: false,
    }
}

fn strip_kind(message: &str, id: &str) -> String {
    message
        .strip_prefix(&format!("{KIND} {id}: "))
        .unwrap_or(message)
        .to_string()
}

/// The endpoints the app connects to. Without a reader endpoint reads go to the primary,
/// which is always correct.
pub fn endpoints(report: &CacheReport) -> crate::api::data::CacheEndpoints {
    let g = &report.group;
    crate::api::data::CacheEndpoints {
        replication_group_id: Some(g.id.clone()),
        primary: g.primary_endpoint.clone(),
        reader: g
            .reader_endpoint
            .clone()
            .or_else(|| g.primary_endpoint.clone()),
        port: g.port,
        created_at: (!g.created_at.is_empty()).then(|| g.created_at.clone()),
    }
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn describe_group(aws: &Aws, id: &str) -> Result<Option<ObservedGroup>> {
    let ec = aws.elasticache().await;
    match aws
        .call(
            "elasticache:DescribeReplicationGroups",
            ec.describe_replication_groups()
                .replication_group_id(id)
                .send(),
        )
        .await
    {
        Ok(out) => Ok(out
            .replication_groups()
            .first()
            .map(ObservedGroup::from_sdk)),
        Err(e) if is_code(&e, "ReplicationGroupNotFoundFault") => Ok(None),
        Err(e) => Err(e),
    }
}

async fn list_tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>> {
    let ec = aws.elasticache().await;
    let out = aws
        .call(
            "elasticache:ListTagsForResource",
            ec.list_tags_for_resource().resource_name(arn).send(),
        )
        .await?;
    Ok(out
        .tag_list()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

/// The app's group under the legacy id (tags listed), when it is there, not deleting, and
/// tagged with the app's uid. Anything else under that id is not the app's: never used.
async fn legacy_group(aws: &Aws, d: &DesiredGroup) -> Result<Option<ObservedGroup>> {
    let Some(legacy) = &d.legacy_id else {
        return Ok(None);
    };
    let Some(mut g) = describe_group(aws, legacy).await? else {
        return Ok(None);
    };
    if g.status == "deleting" {
        return Ok(None);
    }
    g.tags = list_tags(aws, &g.arn).await?;
    Ok((ownership_of(&d.owner, &g.tags) == Ownership::Ours).then_some(g))
}

/// A group halo created for this app under any id (matched by description, confirmed by the
/// uid tag): what a crash between a create and the status write leaves behind.
async fn find_by_owner(aws: &Aws, d: &DesiredGroup) -> Result<Option<ObservedGroup>> {
    let ec = aws.elasticache().await;
    let mut marker: Option<String> = None;
    for _ in 0..MAX_SEARCH_PAGES {
        let out = aws
            .call(
                "elasticache:DescribeReplicationGroups",
                ec.describe_replication_groups()
                    .max_records(100)
                    .set_marker(marker.clone())
                    .send(),
            )
            .await?;
        for g in out.replication_groups() {
            if g.description() != Some(d.description.as_str()) {
                continue;
            }
            let mut group = ObservedGroup::from_sdk(g);
            group.tags = list_tags(aws, &group.arn).await?;
            if ownership_of(&d.owner, &group.tags) == Ownership::Ours {
                return Ok(Some(group));
            }
        }
        marker = out.marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(None)
}

async fn create_group(aws: &Aws, d: &DesiredGroup) -> Result<ObservedGroup> {
    let ec = aws.elasticache().await;
    let zones = node_zones(&d.zones, d.create_replicas() + 1);
    let out = aws
        .call(
            "elasticache:CreateReplicationGroup",
            ec.create_replication_group()
                .replication_group_id(&d.id)
                .replication_group_description(&d.description)
                .engine(d.engine)
                .set_engine_version(d.engine_version.clone())
                .cache_node_type(d.create_node_type())
                // One shard with `replicas` replicas. (ReplicasPerNodeGroup rather than
                // NumCacheClusters: both describe this shape, and it is the one that names the
                // replica count the spec has.)
                .num_node_groups(1)
                .replicas_per_node_group(i32::try_from(d.create_replicas()).unwrap_or(0))
                .set_preferred_cache_cluster_azs((!zones.is_empty()).then_some(zones))
                .automatic_failover_enabled(d.create_replicas() >= 1)
                .multi_az_enabled(d.create_replicas() >= 1)
                .transit_encryption_enabled(true)
                .at_rest_encryption_enabled(true)
                .set_cache_subnet_group_name(d.subnet_group.clone())
                .set_security_group_ids(
                    (!d.security_groups.is_empty()).then(|| d.security_groups.clone()),
                )
                .set_tags(Some(sdk_tags(&d.tags)))
                .send(),
        )
        .await?;
    let mut group = out
        .replication_group()
        .map(ObservedGroup::from_sdk)
        .ok_or_else(|| Error::Aws {
            api: "elasticache:CreateReplicationGroup".into(),
            code: "EmptyResponse".into(),
            message: "the response holds no replication group".into(),
            throttled: false,
        })?;
    group.tags = d.tags.clone();
    Ok(group)
}

/// Creates, adopts or corrects the app's replication group. Idempotent: the id is deterministic
/// and a group tagged with the app's uid is found before any create.
pub async fn ensure(aws: &Aws, d: &DesiredGroup) -> Result<CacheReport> {
    let ec = aws.elasticache().await;
    let mut changes = Vec::new();
    let found = match describe_group(aws, &d.id).await? {
        Some(mut g) => {
            g.tags = list_tags(aws, &g.arn).await?;
            Some(g)
        }
        None => None,
    };
    let found = match found {
        Some(g) if ownership_of(&d.owner, &g.tags) == Ownership::Ours => Some(g),
        other => legacy_group(aws, d).await?.or(other),
    };
    let found = match found {
        Some(g) => Some(g),
        None if d.adopted => None,
        None => find_by_owner(aws, d).await?,
    };
    let check = check_store(
        d.recorded.as_ref(),
        found.as_ref().map(|g| g.created_at.as_str()),
    );
    let mut group = match (found, check, d.recorded.as_ref()) {
        (_, StoreCheck::Missing, Some(r)) => {
            return Err(policy::store_missing(
                KIND,
                "replication group",
                r,
                &d.owner,
            ));
        }
        (Some(g), StoreCheck::Replaced, Some(r)) => {
            return Err(policy::store_replaced(
                KIND,
                &g.id,
                &format!("created {}", g.created_at),
                r,
                &d.owner,
            ));
        }
        (Some(g), _, _) => g,
        (None, _, _) if d.adopted => {
            return Err(policy::adopt_target_missing(
                "spec.cache.adopt.replicationGroupId",
                format!(
                    "no replication group {} exists in this account and region",
                    d.id
                ),
            ));
        }
        (None, _, _) => {
            let g = create_group(aws, d).await?;
            changes.push(Change::new(
                "Created",
                format!(
                    "{KIND} {}: created ({} {}, {} replicas, encrypted in transit and at rest)",
                    g.id,
                    d.engine,
                    d.create_node_type(),
                    d.create_replicas()
                ),
            ));
            g
        }
    };
    policy::claim(KIND, "cache", &group.id, &d.owner, &group.tags, d.adopted)?;
    let in_use;
    let d = if group.id == d.id {
        d
    } else {
        in_use = d.under(&group.id);
        &in_use
    };
    if let Some(repair) = policy::tag_repair(KIND, &group.id, &d.owner, &d.tags, &group.tags) {
        aws.call(
            "elasticache:AddTagsToResource",
            ec.add_tags_to_resource()
                .resource_name(&group.arn)
                .set_tags(Some(sdk_tags(&repair.missing)))
                .send(),
        )
        .await?;
        changes.push(repair.change);
        group.tags.extend(repair.missing);
    }
    let step = next_step(d, &group);
    let (Some(step), "available") = (step.clone(), group.status.as_str()) else {
        return Ok(CacheReport {
            group,
            changes,
            pending: step,
        });
    };
    if !changes.is_empty() {
        // One thing at a time: the change waits for the next reconcile.
        return Ok(CacheReport {
            group,
            changes,
            pending: Some(step),
        });
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(0);
    match &step {
        Step::IncreaseReplicas(n) => {
            aws.call(
                "elasticache:IncreaseReplicaCount",
                ec.increase_replica_count()
                    .replication_group_id(&group.id)
                    .new_replica_count(count(*n))
                    .apply_immediately(true)
                    .send(),
            )
            .await?;
        }
        Step::DecreaseReplicas(n) => {
            aws.call(
                "elasticache:DecreaseReplicaCount",
                ec.decrease_replica_count()
                    .replication_group_id(&group.id)
                    .new_replica_count(count(*n))
                    .apply_immediately(true)
                    .send(),
            )
            .await?;
        }
        Step::Modify {
            failover,
            node_type,
        } => {
            aws.call(
                "elasticache:ModifyReplicationGroup",
                ec.modify_replication_group()
                    .replication_group_id(&group.id)
                    .set_automatic_failover_enabled(*failover)
                    .set_multi_az_enabled(*failover)
                    .set_cache_node_type(node_type.clone())
                    .apply_immediately(true)
                    .send(),
            )
            .await?;
        }
    }
    let reason = match step {
        Step::Modify { .. } => "Updated",
        _ => "Scaled",
    };
    changes.push(Change::new(reason, step.describe(&group.id)));
    Ok(CacheReport {
        group,
        changes,
        pending: None,
    })
}

/// Carries out the deletion policy. `done` once AWS confirmed: the group is gone or deleting
/// (which ElastiCache cannot undo; the final snapshot is part of it), or retained without
/// halo's tags. A group that is not tagged for this app is never touched.
pub async fn cleanup(aws: &Aws, d: &DesiredGroup) -> Result<CleanupReport> {
    let ec = aws.elasticache().await;
    let group = match describe_group(aws, &d.id).await? {
        Some(g) if g.status == "deleting" => return Ok(cleaned::already_deleting(KIND, &d.id)),
        Some(mut g) => {
            g.tags = list_tags(aws, &g.arn).await?;
            if ownership_of(&d.owner, &g.tags) == Ownership::Ours {
                g
            } else if let Some(legacy) = legacy_group(aws, d).await? {
                legacy
            } else {
                return Ok(cleaned::left_alone(KIND, &d.id));
            }
        }
        None => match legacy_group(aws, d).await? {
            Some(legacy) => legacy,
            None => return Ok(cleaned::gone(KIND, &d.id)),
        },
    };
    let d = &d.under(&group.id);
    let id = &d.id;
    if check_store(d.recorded.as_ref(), Some(&group.created_at)) == StoreCheck::Replaced {
        return Ok(cleaned::replaced(KIND, id));
    }
    let policy = policy::cleanup_policy(d.adopted, d.deletion_policy);
    if policy == DeletionPolicy::Retain {
        aws.call(
            "elasticache:RemoveTagsFromResource",
            ec.remove_tags_from_resource()
                .resource_name(&group.arn)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| k.to_string()).collect(),
                ))
                .send(),
        )
        .await?;
        return Ok(cleaned::retained(KIND, id));
    }
    if group.status != "available" && group.status != "create-failed" {
        return Ok(CleanupReport {
            done: false,
            message: format!("{KIND} {id} is {}: waiting to delete it", group.status),
            changes: vec![],
        });
    }
    let snapshot = (policy == DeletionPolicy::Snapshot).then_some(d.final_snapshot_id.as_str());
    let request = ec
        .delete_replication_group()
        .replication_group_id(id)
        .set_final_snapshot_identifier(snapshot.map(str::to_string));
    aws.call("elasticache:DeleteReplicationGroup", request.send())
        .await?;
    Ok(cleaned::deleting(KIND, id, snapshot, vec![]))
}

/// ElastiCache through the SDK backend.
pub struct ElastiCache<'a>(pub &'a Aws);

impl Service for ElastiCache<'_> {
    type Desired = DesiredGroup;
    type View = AwsView<crate::api::data::CacheEndpoints>;

    async fn ensure(&self, d: &DesiredGroup) -> Outcome<Self::View> {
        Outcome::seen(Box::pin(ensure(self.0, d)).await.map(|report| {
            let view = AwsView::Seen {
                readiness: readiness(d, &report),
                endpoints: endpoints(&report),
            };
            (view, report.changes)
        }))
    }

    async fn cleanup(&self, d: &DesiredGroup) -> Outcome<Self::View> {
        Outcome::cleaned(Box::pin(cleanup(self.0, d)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::validated;

    const CACHE_APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: shop-web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  zones: {names: [us-east-1a, us-east-1b, us-east-1c]}
  cache:
    engine: valkey
    nodeType: cache.r7g.large
    replicas: 2
    multiAZ: true
"#;

    fn desired_for(yaml: &str) -> DesiredGroup {
        desired(&validated(yaml), &AwsConfig::default()).expect("cache section")
    }

    fn group(replicas: usize, failover: &str) -> ObservedGroup {
        let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
        ObservedGroup {
            id: "shop-shop-web".into(),
            status: "available".into(),
            members: (0..=replicas)
                .map(|i| Member {
                    id: format!("shop-shop-web-00{}", i + 1),
                    zone: Some(zones[i % 3].into()),
                    role: Some(if i == 0 { "primary" } else { "replica" }.into()),
                })
                .collect(),
            automatic_failover: failover.into(),
            multi_az: failover.into(),
            node_type: Some("cache.r7g.large".into()),
            transit_encryption: true,
            at_rest_encryption: true,
            ..ObservedGroup::default()
        }
    }

    /// The desired group: deterministic id, failover on, nodes spread over the pinned zones.
    #[test]
    fn desired_group_from_spec() {
        let d = desired_for(CACHE_APP);
        assert_eq!(d.id, "shop-shop-web-750bd165");
        assert_eq!(d.legacy_id.as_deref(), Some("shop-shop-web"));
        assert_eq!(d.engine, "valkey");
        assert_eq!(d.replicas, Some(2));
        assert!(d.failover(0));
        assert_eq!(
            d.description,
            "halo: cache of HighlyAvailableApp shop/shop-web"
        );
        assert_eq!(
            node_zones(&d.zones, 3),
            vec!["us-east-1a", "us-east-1b", "us-east-1c"]
        );
        assert_eq!(
            node_zones(&d.zones[..2], 3),
            vec!["us-east-1a", "us-east-1b", "us-east-1a"]
        );
    }

    /// A converged group needs nothing.
    #[test]
    fn converged_group_has_no_step() {
        let d = desired_for(CACHE_APP);
        assert_eq!(next_step(&d, &group(2, "enabled")), None);
    }

    /// Replica changes come first; the last replica goes only after failover is off.
    #[test]
    fn replica_steps() {
        let mut d = desired_for(CACHE_APP);
        assert_eq!(
            next_step(&d, &group(1, "enabled")),
            Some(Step::IncreaseReplicas(2))
        );
        d.replicas = Some(1);
        assert_eq!(
            next_step(&d, &group(2, "enabled")),
            Some(Step::DecreaseReplicas(1))
        );
        d.replicas = Some(0);
        assert_eq!(
            next_step(&d, &group(1, "enabled")),
            Some(Step::Modify {
                failover: Some(false),
                node_type: None
            })
        );
        assert_eq!(
            next_step(&d, &group(1, "disabled")),
            Some(Step::DecreaseReplicas(0))
        );
    }

    /// Adopting with the spec silent on the shape changes nothing: no replica added or removed,
    /// no node type change, and the operator's security and subnet groups are not applied.
    #[test]
    fn adoption_keeps_the_observed_shape() {
        let config = AwsConfig {
            cache_subnet_group: Some("private-cache".into()),
            cache_security_groups: vec!["sg-0aaaaaaaaaaaaaaaa".into()],
            ..AwsConfig::default()
        };
        let adopted = CACHE_APP
            .replace("    nodeType: cache.r7g.large\n    replicas: 2\n", "")
            .replace(
                "    multiAZ: true\n",
                "    adopt: {replicationGroupId: legacy-cache}\n",
            );
        let d = desired(&validated(&adopted), &config).expect("cache");
        assert!(d.adopted);
        assert_eq!(
            (&d.replicas, &d.node_type, &d.subnet_group),
            (&None, &None, &None)
        );
        assert!(d.security_groups.is_empty());
        for replicas in [1, 3] {
            let mut g = group(replicas, "enabled");
            g.node_type = Some("cache.t4g.micro".into());
            assert_eq!(next_step(&d, &g), None);
        }
        let report = CacheReport {
            group: group(1, "enabled"),
            ..CacheReport::default()
        };
        assert!(readiness(&d, &report).ready);

        // A group halo creates still gets the defaults.
        let created = CACHE_APP.replace("    nodeType: cache.r7g.large\n    replicas: 2\n", "");
        let d = desired(&validated(&created), &config).expect("cache");
        assert_eq!(d.replicas, Some(2));
        assert_eq!(d.node_type.as_deref(), Some("cache.r6g.large"));
        assert_eq!(d.security_groups, vec!["sg-0aaaaaaaaaaaaaaaa"]);
    }

    /// Failover switched off behind halo's back, or another node type, is corrected.
    #[test]
    fn settings_drift() {
        let d = desired_for(CACHE_APP);
        assert_eq!(
            next_step(&d, &group(2, "disabled")),
            Some(Step::Modify {
                failover: Some(true),
                node_type: None
            })
        );
        let mut g = group(2, "enabled");
        g.node_type = Some("cache.t4g.micro".into());
        let step = next_step(&d, &g).expect("step");
        assert_eq!(
            step.describe("shop-shop-web"),
            "ElastiCache replication group shop-shop-web: node type cache.r7g.large"
        );
    }

    /// Ready names the primary, the replicas with their zones, and failover.
    #[test]
    fn readiness_when_available() {
        let d = desired_for(CACHE_APP);
        let report = CacheReport {
            group: group(2, "enabled"),
            ..CacheReport::default()
        };
        let r = readiness(&d, &report);
        assert!(r.ready);
        assert_eq!(
            r.message,
            "ElastiCache replication group shop-shop-web is available: primary shop-shop-web-001 (us-east-1a), replicas shop-shop-web-002 (us-east-1b), shop-shop-web-003 (us-east-1c); automatic failover enabled"
        );
        let creating = CacheReport {
            group: ObservedGroup {
                status: "creating".into(),
                ..group(2, "enabled")
            },
            ..CacheReport::default()
        };
        let r = readiness(&d, &creating);
        assert_eq!(
            (r.ready, r.reason, r.message.as_str(), r.busy),
            (
                false,
                "Creating",
                "ElastiCache replication group shop-shop-web is creating",
                true
            )
        );
    }

    /// Reads go to the reader endpoint, or to the primary when AWS reports none.
    #[test]
    fn reader_falls_back_to_the_primary() {
        let mut report = CacheReport {
            group: ObservedGroup {
                primary_endpoint: Some("master.example".into()),
                reader_endpoint: Some("replica.example".into()),
                port: Some(6379),
                ..group(2, "enabled")
            },
            ..CacheReport::default()
        };
        assert_eq!(
            endpoints(&report).reader.as_deref(),
            Some("replica.example")
        );
        report.group.reader_endpoint = None;
        let e = endpoints(&report);
        assert_eq!(
            (e.primary.as_deref(), e.reader.as_deref(), e.port),
            (Some("master.example"), Some("master.example"), Some(6379))
        );
    }

    /// A pending change keeps the cache not ready and says what comes next.
    #[test]
    fn readiness_while_scaling() {
        let d = desired_for(CACHE_APP);
        let report = CacheReport {
            group: group(1, "enabled"),
            pending: Some(Step::IncreaseReplicas(2)),
            ..CacheReport::default()
        };
        let r = readiness(&d, &report);
        assert_eq!((r.ready, r.reason), (false, "Modifying"));
        assert_eq!(
            r.message,
            "ElastiCache replication group shop-shop-web is available; next: scaling to 2 replicas"
        );
    }
}
