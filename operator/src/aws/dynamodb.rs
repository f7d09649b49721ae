//! `aws::dynamodb`: the app's DynamoDB tables, optionally global (version 2019.11.21: replicas
//! added and removed with `UpdateTable` `ReplicaUpdates`, which need the table's stream with
//! NEW_AND_OLD_IMAGES).
//!
//! [`desired`], [`plan`] and [`readiness`] are pure; [`ensure`] and [`cleanup_table`] call
//! DynamoDB. DynamoDB accepts one `UpdateTable` at a time per table, so `ensure` sends at most
//! one per table and reconcile, plus point-in-time recovery through its own API.
//!
//! A stable table costs DescribeTable, ListTagsOfResource and DescribeContinuousBackups per
//! reconcile, and no mutating call. Tables removed from the spec are remembered in
//! `status.dynamodbTables` until their deletion policy has been carried out.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as SdkBillingMode, CreateReplicationGroupMemberAction,
    DeleteReplicationGroupMemberAction, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, ProvisionedThroughput,
    ReplicationGroupUpdate, ScalarAttributeType, StreamSpecification, StreamViewType,
    TableDescription, Tag,
};

use super::policy::{cleaned, ownership_of};
use super::service::error_view;
use super::service::{Outcome, Service};
use super::{
    Aws, Change, CleanupReport, OWNERSHIP_TAG_KEYS, Ownership, build_error, is_code,
    ownership_tags, reasons,
};
use crate::api::storage::{BillingMode, KeyAttribute, RetainOrDelete, TableStatus};
use crate::meta::Owner;
use crate::observed::AwsView;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// What the resource is called in messages.
pub use crate::names::{env_key, table_name};

pub const KIND: &str = "DynamoDB table";
/// Tag naming the table's name in the spec.
pub const TAG_TABLE: &str = "halo.dev/table";
/// One table halo wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTable {
    /// Name in the spec.
    pub name: String,
    /// DynamoDB table name.
    pub table_name: String,
    /// The name an earlier halo derived, when it differs: a table under it tagged with the
    /// app's uid is used (never created).
    pub legacy_table_name: Option<String>,
    /// The name `status.dynamodbTables` holds for it (this one or the legacy one): what the
    /// record keeps while DynamoDB cannot be asked.
    pub recorded_table_name: Option<String>,
    pub partition_key: KeyAttribute,
    pub sort_key: Option<KeyAttribute>,
    pub billing_mode: BillingMode,
    pub read_capacity: Option<i64>,
    pub write_capacity: Option<i64>,
    pub point_in_time_recovery: bool,
    pub deletion_protection: bool,
    /// Sorted.
    pub replica_regions: Vec<String>,
    pub deletion_policy: RetainOrDelete,
    pub tags: Vec<(String, String)>,
}

impl DesiredTable {
    /// Whether `table_name` is this table's name, or its legacy one.
    pub fn is_named(&self, table_name: &str) -> bool {
        self.table_name == table_name || self.legacy_table_name.as_deref() == Some(table_name)
    }

    /// The same table under the name it actually has (a legacy one).
    pub fn under(&self, table_name: &str) -> DesiredTable {
        DesiredTable {
            table_name: table_name.to_string(),
            ..self.clone()
        }
    }
}

/// The tables of an app: those in the spec, and those removed from it whose deletion policy is
/// still to be carried out (from the status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTables {
    pub owner: Owner,
    pub tables: Vec<DesiredTable>,
    pub removed: Vec<TableStatus>,
}

/// The tables the app's `spec.dynamodb` asks for, plus the recorded ones it no longer lists;
/// `None` when there are neither.
pub fn desired(app: &ValidatedApp, recorded: &[TableStatus]) -> Option<DesiredTables> {
    let specs = app
        .dynamodb
        .as_ref()
        .map(|d| d.tables.as_slice())
        .unwrap_or_default();
    let tables: Vec<DesiredTable> = specs
        .iter()
        .map(|t| {
            let mut replica_regions: Vec<String> =
                t.replica_regions.iter().map(|r| r.0.clone()).collect();
            replica_regions.sort();
            replica_regions.dedup();
            let mut tags = ownership_tags(&app.owner);
            tags.push((TAG_TABLE.into(), t.name.clone()));
            let provisioned = t.billing_mode == BillingMode::Provisioned;
            let names = app.names.tables.iter().find(|n| n.name == t.name);
            let table_name = names
                .map(|n| n.table_name.clone())
                .unwrap_or_else(|| table_name(&app.owner, &t.name));
            let legacy_table_name = names.and_then(|n| n.legacy_table_name.clone());
            let recorded_table_name = recorded
                .iter()
                .find(|r| {
                    r.name == t.name
                        && !r.removed
                        && (r.table_name == table_name
                            || Some(&r.table_name) == legacy_table_name.as_ref())
                })
                .map(|r| r.table_name.clone());
            DesiredTable {
                name: t.name.clone(),
                table_name,
                legacy_table_name,
                recorded_table_name,
                partition_key: t.partition_key.clone(),
                sort_key: t.sort_key.clone(),
                billing_mode: t.billing_mode,
                read_capacity: t.read_capacity.filter(|_| provisioned),
                write_capacity: t.write_capacity.filter(|_| provisioned),
                point_in_time_recovery: t.point_in_time_recovery,
                deletion_protection: t.deletion_protection,
                replica_regions,
                deletion_policy: t.deletion_policy,
                tags,
            }
        })
        .collect();
    let removed: Vec<TableStatus> = recorded
        .iter()
        .filter(|r| !tables.iter().any(|t| t.is_named(&r.table_name)))
        .map(|r| TableStatus {
            removed: true,
            ..r.clone()
        })
        .collect();
    if app.dynamodb.is_none() && removed.is_empty() {
        return None;
    }
    Some(DesiredTables {
        owner: app.owner.clone(),
        tables,
        removed,
    })
}

/// A table as DynamoDB describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTable {
    pub table_name: String,
    pub arn: String,
    /// CREATING, UPDATING, ACTIVE, DELETING, ...
    pub status: String,
    /// `PAY_PER_REQUEST` or `PROVISIONED` (DynamoDB omits the summary for tables created
    /// provisioned).
    pub billing_mode: String,
    pub read_capacity: Option<i64>,
    pub write_capacity: Option<i64>,
    pub deletion_protection: bool,
    pub stream_view_type: Option<String>,
    /// (region, status) of each replica.
    pub replicas: Vec<(String, String)>,
    /// Point-in-time recovery on; `None` when not read.
    pub point_in_time_recovery: Option<bool>,
    pub tags: Vec<(String, String)>,
}

impl ObservedTable {
    pub fn from_sdk(t: &TableDescription) -> Self {
        let throughput = t.provisioned_throughput();
        let stream = t.stream_specification().filter(|s| s.stream_enabled());
        ObservedTable {
            table_name: t.table_name().unwrap_or_default().to_string(),
            arn: t.table_arn().unwrap_or_default().to_string(),
            status: t
                .table_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into()),
            billing_mode: t
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|b| b.as_str().to_string())
                .unwrap_or_else(|| BillingMode::Provisioned.as_str().into()),
            read_capacity: throughput.and_then(|p| p.read_capacity_units()),
            write_capacity: throughput.and_then(|p| p.write_capacity_units()),
            deletion_protection: t.deletion_protection_enabled().unwrap_or(false),
            stream_view_type: stream
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_string()),
            replicas: t
                .replicas()
                .iter()
                .filter_map(|r| {
                    Some((
                        r.region_name()?.to_string(),
                        r.replica_status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_else(|| "UNKNOWN".into()),
                    ))
                })
                .collect(),
            point_in_time_recovery: None,
            tags: Vec::new(),
        }
    }
}

/// One change that brings a table to the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableChange {
    /// `UpdateContinuousBackups`.
    PointInTimeRecovery(bool),
    /// The rest are `UpdateTable`, one per call.
    DeletionProtection(bool),
    Billing {
        mode: BillingMode,
        read: Option<i64>,
        write: Option<i64>,
    },
    /// The NEW_AND_OLD_IMAGES stream a global table replicates from.
    Stream,
    AddReplica(String),
    RemoveReplica(String),
}

impl TableChange {
    pub fn describe(&self) -> String {
        match self {
            TableChange::PointInTimeRecovery(on) => {
                format!("point-in-time recovery {}", on_off(*on))
            }
            TableChange::DeletionProtection(on) => {
                format!("deletion protection {}", on_off(*on))
            }
            TableChange::Billing { mode, read, write } => match (read, write) {
                (Some(r), Some(w)) => format!("billing mode {} ({r} RCU, {w} WCU)", mode.as_str()),
                _ => format!("billing mode {}", mode.as_str()),
            },
            TableChange::Stream => "stream NEW_AND_OLD_IMAGES enabled".into(),
            TableChange::AddReplica(r) => format!("adding a replica in {r}"),
            TableChange::RemoveReplica(r) => format!("removing the replica in {r}"),
        }
    }

    fn is_update_table(&self) -> bool {
        !matches!(self, TableChange::PointInTimeRecovery(_))
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

/// Every change the table needs, in the order halo makes them: recovery, protection, billing,
/// the stream (replicas need it), new replicas, then replicas no longer wanted.
pub fn plan(d: &DesiredTable, o: &ObservedTable) -> Vec<TableChange> {
    let mut changes = Vec::new();
    if let Some(pitr) = o.point_in_time_recovery
        && pitr != d.point_in_time_recovery
    {
        changes.push(TableChange::PointInTimeRecovery(d.point_in_time_recovery));
    }
    if o.deletion_protection != d.deletion_protection {
        changes.push(TableChange::DeletionProtection(d.deletion_protection));
    }
    let billing_drift = o.billing_mode != d.billing_mode.as_str()
        || (d.billing_mode == BillingMode::Provisioned
            && (o.read_capacity != d.read_capacity || o.write_capacity != d.write_capacity));
    if billing_drift {
        changes.push(TableChange::Billing {
            mode: d.billing_mode,
            read: d.read_capacity,
            write: d.write_capacity,
        });
    }
    if !d.replica_regions.is_empty() && o.stream_view_type.as_deref() != Some("NEW_AND_OLD_IMAGES")
    {
        changes.push(TableChange::Stream);
    }
    for region in &d.replica_regions {
        if !o.replicas.iter().any(|(r, _)| r == region) {
            changes.push(TableChange::AddReplica(region.clone()));
        }
    }
    for (region, status) in &o.replicas {
        if !d.replica_regions.contains(region) && status != "DELETING" {
            changes.push(TableChange::RemoveReplica(region.clone()));
        }
    }
    changes
}

/// What [`ensure`] saw and did for one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOutcome {
    pub name: String,
    pub table_name: String,
    pub observed: Option<ObservedTable>,
    /// Changes still to make once DynamoDB is done with the current one.
    pub pending: Vec<TableChange>,
    /// The failure of this table's step, as a message.
    pub error: Option<String>,
}

/// Everything [`ensure`] saw and did.
#[derive(Debug, Default)]
pub struct TablesReport {
    pub tables: Vec<TableOutcome>,
    /// Cleanup of removed tables: (record, outcome message, done).
    pub removed: Vec<(TableStatus, String, bool)>,
    pub changes: Vec<Change>,
    pub errors: Vec<Error>,
}

impl TablesReport {
    /// The record for `status.dynamodbTables`: every table in the spec, and the removed ones
    /// whose deletion policy is not yet carried out.
    pub fn records(&self, d: &DesiredTables) -> Vec<TableStatus> {
        let mut records: Vec<TableStatus> = d
            .tables
            .iter()
            .map(|t| {
                let outcome = self.tables.iter().find(|o| o.name == t.name);
                let observed = outcome.and_then(|o| o.observed.as_ref());
                TableStatus {
                    name: t.name.clone(),
                    table_name: outcome
                        .map(|o| o.table_name.clone())
                        .unwrap_or_else(|| t.table_name.clone()),
                    arn: observed.map(|o| o.arn.clone()).filter(|a| !a.is_empty()),
                    state: observed.map(|o| o.status.clone()),
                    deletion_policy: t.deletion_policy,
                    removed: false,
                }
            })
            .collect();
        records.extend(
            self.removed
                .iter()
                .filter(|(_, _, done)| !done)
                .map(|(r, _, _)| r.clone()),
        );
        records
    }
}

/// The `DynamoDBReady` condition over all tables.
pub fn readiness(report: &TablesReport) -> super::Readiness {
    let mut waiting = Vec::new();
    let mut busy = false;
    let mut reason = reasons::AVAILABLE;
    for t in &report.tables {
        let Some(o) = &t.observed else {
            waiting.push(format!(
                "{}: {}",
                t.table_name,
                t.error.as_deref().unwrap_or("not seen")
            ));
            reason = reasons::UNAVAILABLE;
            continue;
        };
        if o.status != "ACTIVE" {
            waiting.push(format!("{} is {}", o.table_name, o.status.to_lowercase()));
            busy = true;
            if reason == reasons::AVAILABLE {
                reason = if o.status == "CREATING" {
                    reasons::CREATING
                } else {
                    reasons::MODIFYING
                };
            }
            continue;
        }
        if let Some(next) = t.pending.first() {
            waiting.push(format!(
                "{} is active; next: {}",
                o.table_name,
                next.describe()
            ));
            busy = true;
            if reason == reasons::AVAILABLE {
                reason = reasons::MODIFYING;
            }
            continue;
        }
        if let Some((region, status)) = o.replicas.iter().find(|(_, s)| s != "ACTIVE") {
            waiting.push(format!(
                "{}: replica in {region} is {}",
                o.table_name,
                status.to_lowercase()
            ));
            busy = true;
            if reason == reasons::AVAILABLE {
                reason = reasons::MODIFYING;
            }
        }
    }
    for (record, message, done) in &report.removed {
        if !done {
            waiting.push(format!("{} (removed): {message}", record.table_name));
            busy = true;
            if reason == reasons::AVAILABLE {
                reason = reasons::DELETING;
            }
        }
    }
    if !waiting.is_empty() {
        return super::Readiness {
            ready: false,
            reason,
            message: waiting.join("; "),
            busy,
        };
    }
    let names: Vec<String> = report
        .tables
        .iter()
        .map(|t| {
            let replicas: Vec<&str> = t
                .observed
                .iter()
                .flat_map(|o| o.replicas.iter().map(|(r, _)| r.as_str()))
                .collect();
            if replicas.is_empty() {
                t.table_name.clone()
            } else {
                format!("{} (replicas {})", t.table_name, replicas.join(", "))
            }
        })
        .collect();
    super::Readiness {
        ready: true,
        reason: reasons::AVAILABLE,
        message: if names.is_empty() {
            "no DynamoDB tables".into()
        } else {
            format!("DynamoDB tables active: {}", names.join(", "))
        },
        busy: false,
    }
}

fn sdk_tags(tags: &[(String, String)]) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(build_error("dynamodb:CreateTable"))
        })
        .collect()
}

fn attribute_type(a: &KeyAttribute) -> ScalarAttributeType {
    ScalarAttributeType::from(a.type_.as_str())
}

fn sdk_billing(mode: BillingMode) -> SdkBillingMode {
    SdkBillingMode::from(mode.as_str())
}

async fn describe(aws: &Aws, table_name: &str) -> Result<Option<ObservedTable>> {
    let ddb = aws.dynamodb().await;
    match aws
        .call(
            "dynamodb:DescribeTable",
            ddb.describe_table().table_name(table_name).send(),
        )
        .await
    {
        Ok(out) => Ok(out.table().map(ObservedTable::from_sdk)),
        Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(None),
        Err(e) => Err(e),
    }
}

async fn list_tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>> {
    let ddb = aws.dynamodb().await;
    let out = aws
        .call(
            "dynamodb:ListTagsOfResource",
            ddb.list_tags_of_resource().resource_arn(arn).send(),
        )
        .await?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

async fn point_in_time_recovery(aws: &Aws, table_name: &str) -> Result<bool> {
    let ddb = aws.dynamodb().await;
    let out = aws
        .call(
            "dynamodb:DescribeContinuousBackups",
            ddb.describe_continuous_backups()
                .table_name(table_name)
                .send(),
        )
        .await?;
    Ok(out
        .continuous_backups_description()
        .and_then(|c| c.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled))
}

async fn create(aws: &Aws, d: &DesiredTable) -> Result<ObservedTable> {
    let ddb = aws.dynamodb().await;
    let api = "dynamodb:CreateTable";
    let mut keys = vec![(&d.partition_key, KeyType::Hash)];
    if let Some(sort) = &d.sort_key {
        keys.push((sort, KeyType::Range));
    }
    let table_tags = sdk_tags(&d.tags)?;
    let mut request = ddb
        .create_table()
        .table_name(&d.table_name)
        .billing_mode(sdk_billing(d.billing_mode))
        .deletion_protection_enabled(d.deletion_protection)
        .set_tags(Some(table_tags));
    for (attr, key_type) in keys {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&attr.name)
                    .attribute_type(attribute_type(attr))
                    .build()
                    .map_err(build_error(api))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&attr.name)
                    .key_type(key_type)
                    .build()
                    .map_err(build_error(api))?,
            );
    }
    if let (Some(read), Some(write)) = (d.read_capacity, d.write_capacity) {
        request = request.provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(read)
                .write_capacity_units(write)
                .build()
                .map_err(build_error(api))?,
        );
    }
    if !d.replica_regions.is_empty() {
        request = request.stream_specification(new_and_old_images()?);
    }
    let out = aws.call(api, request.send()).await?;
    let mut table = out
        .table_description()
        .map(ObservedTable::from_sdk)
        .ok_or_else(|| Error::Aws {
            api: api.into(),
            code: "EmptyResponse".into(),
            message: "the response holds no table".into(),
            throttled: false,
        })?;
    table.tags = d.tags.clone();
    Ok(table)
}

fn new_and_old_images() -> Result<StreamSpecification> {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .map_err(build_error("dynamodb:UpdateTable"))
}

async fn apply_change(aws: &Aws, table_name: &str, change: &TableChange) -> Result<()> {
    let ddb = aws.dynamodb().await;
    let api = "dynamodb:UpdateTable";
    let update = ddb.update_table().table_name(table_name);
    let request = match change {
        TableChange::PointInTimeRecovery(on) => {
            let spec = PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(*on)
                .build()
                .map_err(build_error("dynamodb:UpdateContinuousBackups"))?;
            aws.call(
                "dynamodb:UpdateContinuousBackups",
                ddb.update_continuous_backups()
                    .table_name(table_name)
                    .point_in_time_recovery_specification(spec)
                    .send(),
            )
            .await?;
            return Ok(());
        }
        TableChange::DeletionProtection(on) => update.deletion_protection_enabled(*on),
        TableChange::Billing { mode, read, write } => {
            let update = update.billing_mode(sdk_billing(*mode));
            match (read, write) {
                (Some(r), Some(w)) => update.provisioned_throughput(
                    ProvisionedThroughput::builder()
                        .read_capacity_units(*r)
                        .write_capacity_units(*w)
                        .build()
                        .map_err(build_error(api))?,
                ),
                _ => update,
            }
        }
        TableChange::Stream => update.stream_specification(new_and_old_images()?),
        TableChange::AddReplica(region) => update.replica_updates(
            ReplicationGroupUpdate::builder()
                .create(
                    CreateReplicationGroupMemberAction::builder()
                        .region_name(region)
                        .build()
                        .map_err(build_error(api))?,
                )
                .build(),
        ),
        TableChange::RemoveReplica(region) => update.replica_updates(
            ReplicationGroupUpdate::builder()
                .delete(
                    DeleteReplicationGroupMemberAction::builder()
                        .region_name(region)
                        .build()
                        .map_err(build_error(api))?,
                )
                .build(),
        ),
    };
    aws.call(api, request.send()).await?;
    Ok(())
}

/// Creates or corrects one table. Idempotent: the name is deterministic, and a create that
/// raced another (or a crash) finds the table on the next describe.
async fn ensure_table(
    aws: &Aws,
    owner: &Owner,
    d: &DesiredTable,
    changes: &mut Vec<Change>,
) -> Result<TableOutcome> {
    let found = match describe(aws, &d.table_name).await? {
        Some(mut t) => {
            t.tags = list_tags(aws, &t.arn).await?;
            Some(t)
        }
        None => None,
    };
    let found = match found {
        Some(t) if ownership_of(owner, &t.tags) == Ownership::Ours => Some(t),
        other => legacy_table(aws, owner, d).await?.or(other),
    };
    let in_use;
    let d = match &found {
        Some(t) if t.table_name != d.table_name => {
            in_use = d.under(&t.table_name);
            &in_use
        }
        _ => d,
    };
    let mut outcome = TableOutcome {
        name: d.name.clone(),
        table_name: d.table_name.clone(),
        ..TableOutcome::default()
    };
    let mut table = match found {
        Some(t) => t,
        None => {
            let t = match create(aws, d).await {
                Ok(t) => t,
                Err(e) if is_code(&e, "ResourceInUseException") => {
                    // Created concurrently since the describe: look again next time.
                    return Ok(outcome);
                }
                Err(e) => return Err(e),
            };
            changes.push(Change::new(
                "Created",
                format!(
                    "{KIND} {}: created ({}, deletion protection {})",
                    t.table_name,
                    d.billing_mode.as_str(),
                    on_off(d.deletion_protection)
                ),
            ));
            outcome.observed = Some(t);
            outcome.pending = vec![TableChange::PointInTimeRecovery(d.point_in_time_recovery)]
                .into_iter()
                .filter(|_| d.point_in_time_recovery)
                .chain(
                    d.replica_regions
                        .iter()
                        .map(|r| TableChange::AddReplica(r.clone())),
                )
                .collect();
            return Ok(outcome);
        }
    };
    if ownership_of(owner, &table.tags) != Ownership::Ours {
        return Err(Error::InvalidSpec {
            field: "spec.dynamodb.tables".into(),
            message: format!(
                "{KIND} {} exists and is not owned by this HighlyAvailableApp: give the table another name in the spec, or delete or rename the existing table",
                table.table_name
            ),
        });
    }
    if table.status == "ACTIVE" {
        table.point_in_time_recovery = Some(point_in_time_recovery(aws, &d.table_name).await?);
    }
    let mut pending = plan(d, &table);
    if table.status == "ACTIVE" {
        // Recovery has its own API; of the UpdateTable changes only one at a time.
        let mut sent_update = false;
        let mut rest = Vec::new();
        for change in pending {
            if change.is_update_table() && sent_update {
                rest.push(change);
                continue;
            }
            apply_change(aws, &d.table_name, &change).await?;
            changes.push(Change::new(
                "Updated",
                format!("{KIND} {}: {}", d.table_name, change.describe()),
            ));
            if let TableChange::PointInTimeRecovery(on) = change {
                table.point_in_time_recovery = Some(on);
            } else {
                sent_update = true;
                table.status = "UPDATING".into();
            }
        }
        pending = rest;
    }
    outcome.observed = Some(table);
    outcome.pending = pending;
    Ok(outcome)
}

/// The table under its legacy name (tags listed), when it is there, not deleting, and tagged
/// with the app's uid. Anything else under that name is not the app's: never used.
async fn legacy_table(aws: &Aws, owner: &Owner, d: &DesiredTable) -> Result<Option<ObservedTable>> {
    let Some(legacy) = &d.legacy_table_name else {
        return Ok(None);
    };
    let Some(mut t) = describe(aws, legacy).await? else {
        return Ok(None);
    };
    if t.status == "DELETING" {
        return Ok(None);
    }
    t.tags = list_tags(aws, &t.arn).await?;
    Ok((ownership_of(owner, &t.tags) == Ownership::Ours).then_some(t))
}

/// Creates or corrects every table of the spec, and carries out the deletion policy of those
/// removed from it. A failure of one table does not stop the others.
pub async fn ensure(aws: &Aws, d: &DesiredTables) -> TablesReport {
    let mut report = TablesReport::default();
    for t in &d.tables {
        match ensure_table(aws, &d.owner, t, &mut report.changes).await {
            Ok(outcome) => report.tables.push(outcome),
            Err(e) => {
                report.tables.push(TableOutcome {
                    name: t.name.clone(),
                    table_name: t
                        .recorded_table_name
                        .clone()
                        .unwrap_or_else(|| t.table_name.clone()),
                    error: Some(e.to_string()),
                    ..TableOutcome::default()
                });
                report.errors.push(e);
            }
        }
    }
    for record in &d.removed {
        match cleanup_table(aws, &d.owner, &record.table_name, record.deletion_policy).await {
            Ok(c) => {
                report.changes.extend(c.changes);
                report.removed.push((record.clone(), c.message, c.done));
            }
            Err(e) => {
                report.removed.push((record.clone(), e.to_string(), false));
                report.errors.push(e);
            }
        }
    }
    report
}

/// Carries out a table's deletion policy. `done` once DynamoDB confirmed: the table is gone or
/// deleting, or retained without halo's tags. A table not tagged for this app is never touched.
pub async fn cleanup_table(
    aws: &Aws,
    owner: &Owner,
    table_name: &str,
    policy: RetainOrDelete,
) -> Result<CleanupReport> {
    let ddb = aws.dynamodb().await;
    let Some(table) = describe(aws, table_name).await? else {
        return Ok(cleaned::gone(KIND, table_name));
    };
    if table.status == "DELETING" {
        return Ok(cleaned::already_deleting(KIND, table_name));
    }
    let tags = list_tags(aws, &table.arn).await?;
    if ownership_of(owner, &tags) != Ownership::Ours {
        return Ok(cleaned::left_alone(KIND, table_name));
    }
    if policy == RetainOrDelete::Retain {
        let keys: Vec<String> = OWNERSHIP_TAG_KEYS
            .iter()
            .map(|k| k.to_string())
            .chain([TAG_TABLE.to_string()])
            .collect();
        aws.call(
            "dynamodb:UntagResource",
            ddb.untag_resource()
                .resource_arn(&table.arn)
                .set_tag_keys(Some(keys))
                .send(),
        )
        .await?;
        return Ok(cleaned::retained(KIND, table_name));
    }
    if table.deletion_protection {
        return Err(Error::DeletionBlocked {
            kind: KIND.into(),
            id: table_name.into(),
            reason: "deletion protection is on; set deletionProtection: false (before removing the table from the spec, or in AWS) to let halo delete it".into(),
        });
    }
    if table.status != "ACTIVE" {
        return Ok(CleanupReport {
            done: false,
            message: format!(
                "{KIND} {table_name} is {}: waiting to delete it",
                table.status.to_lowercase()
            ),
            changes: vec![],
        });
    }
    if let Some((region, _)) = table.replicas.first() {
        // A global table loses its replicas first, one per UpdateTable.
        let change = TableChange::RemoveReplica(region.clone());
        apply_change(aws, table_name, &change).await?;
        let message = format!(
            "{KIND} {table_name}: {} before deleting it",
            change.describe()
        );
        return Ok(CleanupReport {
            done: false,
            message: message.clone(),
            changes: vec![Change::new(reasons::DELETING, message)],
        });
    }
    aws.call(
        "dynamodb:DeleteTable",
        ddb.delete_table().table_name(table_name).send(),
    )
    .await?;
    Ok(cleaned::deleted(
        format!("{KIND} {table_name} deleting"),
        vec![],
    ))
}

/// Carries out the deletion policy of every table, listed or recorded, when the app goes.
pub async fn cleanup(aws: &Aws, d: &DesiredTables) -> (Vec<CleanupReport>, Vec<Error>) {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    let mut all = Vec::new();
    for t in &d.tables {
        match name_in_use(aws, &d.owner, t).await {
            Ok(name) => all.push((name, t.deletion_policy)),
            Err(e) => errors.push(e),
        }
    }
    all.extend(
        d.removed
            .iter()
            .map(|r| (r.table_name.clone(), r.deletion_policy)),
    );
    for (table_name, policy) in all {
        match cleanup_table(aws, &d.owner, &table_name, policy).await {
            Ok(r) => reports.push(r),
            Err(e) => errors.push(e),
        }
    }
    (reports, errors)
}

/// The name the table has: its legacy one when only that one is the app's, else its own.
async fn name_in_use(aws: &Aws, owner: &Owner, t: &DesiredTable) -> Result<String> {
    if t.legacy_table_name.is_none() {
        return Ok(t.table_name.clone());
    }
    if let Some(table) = describe(aws, &t.table_name).await?
        && (table.status == "DELETING"
            || ownership_of(owner, &list_tags(aws, &table.arn).await?) == Ownership::Ours)
    {
        return Ok(t.table_name.clone());
    }
    Ok(match legacy_table(aws, owner, t).await? {
        Some(legacy) => legacy.table_name,
        None => t.table_name.clone(),
    })
}

/// DynamoDB through the SDK backend: every table of the plan, each with its own outcome.
pub struct Tables<'a>(pub &'a Aws);

impl Service for Tables<'_> {
    type Desired = DesiredTables;
    type View = AwsView<Vec<TableStatus>>;

    async fn ensure(&self, d: &DesiredTables) -> Outcome<Self::View> {
        let report = Box::pin(ensure(self.0, d)).await;
        // One table's failure does not hide the others: their records and readiness stand.
        let throttled_only =
            !report.errors.is_empty() && report.errors.iter().all(Error::is_throttled);
        let view = if throttled_only {
            AwsView::Throttled
        } else {
            AwsView::Seen {
                readiness: readiness(&report),
                endpoints: report.records(d),
            }
        };
        Outcome {
            view: Some(view),
            changes: report.changes,
            errors: report.errors,
            done: true,
        }
    }

    async fn cleanup(&self, d: &DesiredTables) -> Outcome<Self::View> {
        let (reports, errors) = Box::pin(cleanup(self.0, d)).await;
        let mut out = Outcome::default();
        let mut messages = Vec::new();
        for r in reports {
            out.done &= r.done;
            out.changes.extend(r.changes);
            messages.push(r.message);
        }
        out.view = Some(match errors.first() {
            Some(e) => {
                out.done = false;
                error_view(e)
            }
            None => AwsView::Unseen {
                reason: reasons::DELETING,
                message: messages.join("; "),
            },
        });
        out.errors = errors;
        out
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
  dynamodb:
    tables:
    - {name: carts, partitionKey: {name: id}, replicaRegions: [us-west-2, eu-west-1]}
    - name: orders
      partitionKey: {name: customer}
      sortKey: {name: at, type: N}
      billingMode: PROVISIONED
      readCapacity: 5
      writeCapacity: 2
      deletionPolicy: Delete
      deletionProtection: false
"#;

    fn observed(d: &DesiredTable) -> ObservedTable {
        ObservedTable {
            table_name: d.table_name.clone(),
            arn: format!(
                "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
                d.table_name
            ),
            status: "ACTIVE".into(),
            billing_mode: d.billing_mode.as_str().into(),
            read_capacity: d.read_capacity,
            write_capacity: d.write_capacity,
            deletion_protection: d.deletion_protection,
            stream_view_type: (!d.replica_regions.is_empty())
                .then(|| "NEW_AND_OLD_IMAGES".to_string()),
            replicas: d
                .replica_regions
                .iter()
                .map(|r| (r.clone(), "ACTIVE".to_string()))
                .collect(),
            point_in_time_recovery: Some(d.point_in_time_recovery),
            tags: d.tags.clone(),
        }
    }

    /// Names, keys and defaults come from the spec: PITR and deletion protection on, replicas sorted.
    #[test]
    fn desired_tables_from_spec() {
        let d = desired(&validated(APP), &[]).expect("tables");
        let carts = &d.tables[0];
        assert_eq!(carts.table_name, "shop-web-carts");
        assert_eq!(carts.billing_mode, BillingMode::PayPerRequest);
        assert!(carts.point_in_time_recovery && carts.deletion_protection);
        assert_eq!(carts.replica_regions, vec!["eu-west-1", "us-west-2"]);
        assert_eq!(carts.deletion_policy, RetainOrDelete::Retain);
        assert_eq!(
            carts.tags.last(),
            Some(&("halo.dev/table".to_string(), "carts".to_string()))
        );
        let orders = &d.tables[1];
        assert_eq!(
            (orders.read_capacity, orders.write_capacity),
            (Some(5), Some(2))
        );
        assert_eq!(
            orders.sort_key.as_ref().map(|k| k.type_.as_str()),
            Some("N")
        );
        assert!(d.removed.is_empty());
        assert_eq!(env_key("order-items"), "DYNAMODB_TABLE_ORDER_ITEMS");
    }

    /// A table recorded under its legacy name is still the spec's table, never "removed" (whose
    /// Delete policy would delete it), and the record keeps that name when DynamoDB fails.
    #[test]
    fn a_legacy_table_name_is_not_a_removed_table() {
        let yaml = APP.replace("metadata: {name: web", "metadata: {name: shop-web");
        let record = TableStatus {
            name: "orders".into(),
            table_name: "shop-shop-web-orders".into(),
            deletion_policy: RetainOrDelete::Delete,
            ..TableStatus::default()
        };
        let d = desired(&validated(&yaml), std::slice::from_ref(&record)).expect("tables");
        let orders = &d.tables[1];
        assert_eq!(orders.table_name, "shop-shop-web-orders-52c22000");
        assert_eq!(
            orders.legacy_table_name.as_deref(),
            Some("shop-shop-web-orders")
        );
        assert_eq!(
            orders.recorded_table_name.as_deref(),
            Some("shop-shop-web-orders")
        );
        assert!(d.removed.is_empty(), "{:?}", d.removed);
        let failed = TablesReport {
            tables: vec![TableOutcome {
                name: "orders".into(),
                table_name: "shop-shop-web-orders".into(),
                error: Some("throttled".into()),
                ..TableOutcome::default()
            }],
            ..TablesReport::default()
        };
        assert_eq!(failed.records(&d)[1].table_name, "shop-shop-web-orders");
    }

    /// A recorded table that left the spec is kept for its deletion policy; no section and no
    /// record means nothing to do (no AWS call).
    #[test]
    fn removed_tables_are_remembered() {
        let record = TableStatus {
            name: "old".into(),
            table_name: "shop-web-old".into(),
            arn: None,
            state: Some("ACTIVE".into()),
            deletion_policy: RetainOrDelete::Delete,
            removed: false,
        };
        let d = desired(&validated(APP), std::slice::from_ref(&record)).expect("tables");
        assert_eq!(
            d.removed,
            vec![TableStatus {
                removed: true,
                ..record.clone()
            }]
        );
        let bare = validated(crate::fixtures::SMALL);
        assert_eq!(desired(&bare, &[]), None);
        assert_eq!(desired(&bare, &[record]).map(|d| d.removed.len()), Some(1));
    }

    /// A converged table needs nothing; drift is listed in the order halo fixes it.
    #[test]
    fn plan_lists_drift_in_order() {
        let d = desired(&validated(APP), &[]).expect("tables");
        let carts = &d.tables[0];
        assert_eq!(plan(carts, &observed(carts)), vec![]);
        let fresh = ObservedTable {
            point_in_time_recovery: Some(false),
            deletion_protection: false,
            stream_view_type: None,
            replicas: vec![("ap-south-1".into(), "ACTIVE".into())],
            ..observed(carts)
        };
        assert_eq!(
            plan(carts, &fresh),
            vec![
                TableChange::PointInTimeRecovery(true),
                TableChange::DeletionProtection(true),
                TableChange::Stream,
                TableChange::AddReplica("eu-west-1".into()),
                TableChange::AddReplica("us-west-2".into()),
                TableChange::RemoveReplica("ap-south-1".into()),
            ]
        );
        let orders = &d.tables[1];
        let resized = ObservedTable {
            read_capacity: Some(1),
            ..observed(orders)
        };
        assert_eq!(
            plan(orders, &resized)
                .iter()
                .map(TableChange::describe)
                .collect::<Vec<_>>(),
            vec!["billing mode PROVISIONED (5 RCU, 2 WCU)"]
        );
    }

    /// Ready once every table and replica is active; otherwise the message says what waits.
    #[test]
    fn readiness_names_what_waits() {
        let d = desired(&validated(APP), &[]).expect("tables");
        let outcome = |t: &DesiredTable, o: ObservedTable, pending| TableOutcome {
            name: t.name.clone(),
            table_name: t.table_name.clone(),
            observed: Some(o),
            pending,
            error: None,
        };
        let ready = TablesReport {
            tables: vec![
                outcome(&d.tables[0], observed(&d.tables[0]), vec![]),
                outcome(&d.tables[1], observed(&d.tables[1]), vec![]),
            ],
            ..TablesReport::default()
        };
        let r = readiness(&ready);
        assert!(r.ready);
        assert_eq!(
            r.message,
            "DynamoDB tables active: shop-web-carts (replicas eu-west-1, us-west-2), shop-web-orders"
        );
        let waiting = TablesReport {
            tables: vec![outcome(
                &d.tables[0],
                observed(&d.tables[0]),
                vec![TableChange::AddReplica("us-west-2".into())],
            )],
            ..TablesReport::default()
        };
        let r = readiness(&waiting);
        assert_eq!(
            (r.ready, r.reason, r.message.as_str()),
            (
                false,
                "Modifying",
                "shop-web-carts is active; next: adding a replica in us-west-2"
            )
        );
        assert_eq!(
            ready.records(&d)[1],
            TableStatus {
                name: "orders".into(),
                table_name: "shop-web-orders".into(),
                arn: Some("arn:aws:dynamodb:us-east-1:123456789012:table/shop-web-orders".into()),
                state: Some("ACTIVE".into()),
                deletion_policy: RetainOrDelete::Delete,
                removed: false,
            }
        );
    }
}
