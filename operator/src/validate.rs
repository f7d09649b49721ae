//! `validate`: raw resource -> [`ValidatedApp`], with no client.
//!
//! The API server already enforced the schema and the CEL rules (and filled the defaults);
//! this step resolves what render needs into plain values, so render never reads the raw
//! resource, and refuses what only halo can judge.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements};
use kube::ResourceExt;

use crate::api::data::{CacheSpec, DatabaseSpec};
use crate::api::dns::ValidatedDns;
use crate::api::{HealthCheck, HighlyAvailableApp, IngressSpec};
use crate::meta::Owner;
use crate::names::{self, Names, TableNames};
use crate::{Error, Result};

/// Who owns the replica count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// halo sets `spec.replicas` of the Deployment.
    Fixed(i32),
    /// A HorizontalPodAutoscaler does; halo leaves `spec.replicas` out of what it applies.
    Autoscaled {
        min: i32,
        max: i32,
        target_cpu_utilization_percentage: i32,
    },
}

impl Replicas {
    /// The count the app asks for when nothing else is known (the HPA's floor when autoscaled).
    pub fn baseline(&self) -> i32 {
        match self {
            Replicas::Fixed(n) => *n,
            Replicas::Autoscaled { min, .. } => *min,
        }
    }
}

/// Zone spread, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonePolicy {
    pub min_zones: i32,
    pub max_skew: i32,
    /// Pinned zones, sorted; empty means any zone.
    pub names: Vec<String>,
    pub min_domains: Option<i32>,
    pub min_ready_after_zone_loss: Option<i32>,
    /// Evict pods to restore the spread after a zone recovers.
    pub rebalance: bool,
}

/// Everything render needs, with defaults filled and rules checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedApp {
    pub owner: Owner,
    pub image: String,
    pub port: i32,
    pub replicas: Replicas,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub resources: Option<ResourceRequirements>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub zones: ZonePolicy,
    pub health: HealthCheck,
    pub max_unavailable: i32,
    pub toleration_seconds: i64,
    pub ingress: Option<IngressSpec>,
    /// Aurora settings, with `databaseName` resolved.
    pub database: Option<DatabaseSpec>,
    pub cache: Option<CacheSpec>,
    /// The Route 53 record and health check, with the set identifier and health path resolved.
    pub dns: Option<ValidatedDns>,
    pub dynamodb: Option<crate::api::storage::DynamoDbSpec>,
    pub static_assets: Option<crate::api::storage::StaticAssetsSpec>,
    pub alarms: Option<crate::api::storage::AlarmsSpec>,
    /// Every name derived from the app (Secret, URLs, AWS identifiers), resolved once.
    pub names: Names,
    /// Identities of stores the user lets halo forget (the `halo.dev/accept-store` annotation):
    /// one gone is created anew, one replaced is taken on.
    pub accepted_stores: Vec<String>,
}

/// Identity of the app from its metadata; `uid` may be a placeholder for an offline render.
pub fn owner_of(
    app: &HighlyAvailableApp,
    default_namespace: &str,
    placeholder_uid: Option<&str>,
) -> Result<Owner> {
    let name = app
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("metadata.name"))?;
    let namespace = app
        .namespace()
        .unwrap_or_else(|| default_namespace.to_string());
    let uid = match (app.uid(), placeholder_uid) {
        (Some(uid), _) => uid,
        (None, Some(placeholder)) => placeholder.to_string(),
        (None, None) => return Err(Error::MissingMetadata("metadata.uid")),
    };
    Ok(Owner {
        name,
        namespace,
        uid,
    })
}

/// Resolves the spec into a [`ValidatedApp`], for an operator whose region is unknown (a
/// `spec.dns` that needs the region is refused).
pub fn validate(app: &HighlyAvailableApp, owner: Owner) -> Result<ValidatedApp> {
    validate_in(app, owner, None)
}

/// Resolves the spec into a [`ValidatedApp`] for an operator in `region`, the default of
/// `spec.dns.setIdentifier`; a DynamoDB replica in `region` itself is refused.
pub fn validate_in(
    app: &HighlyAvailableApp,
    owner: Owner,
    region: Option<&str>,
) -> Result<ValidatedApp> {
    let spec = &app.spec;
    let deleting = app.metadata.deletion_timestamp.is_some();
    if owner.name.len() > 63 || !is_dns1035_label(&owner.name) {
        return Err(invalid(
            "metadata.name",
            "must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters): it names the app's Service",
        ));
    }
    let replicas = match &spec.autoscaling {
        Some(a) => Replicas::Autoscaled {
            min: a.min_replicas,
            max: a.max_replicas.max(a.min_replicas),
            target_cpu_utilization_percentage: a.target_cpu_utilization_percentage,
        },
        None => Replicas::Fixed(spec.replicas),
    };
    let mut names: Vec<String> = spec
        .zones
        .names
        .iter()
        .flatten()
        .map(|z| z.0.clone())
        .collect();
    names.sort();
    names.dedup();
    let owner_name = owner.name.clone();
    let dns = spec
        .dns
        .as_ref()
        .map(|d| d.validate(&spec.health_check.path, region))
        .transpose()?;
    let mut app = ValidatedApp {
        owner,
        image: spec.image.clone(),
        port: spec.port,
        replicas,
        env: spec.env.clone(),
        env_from: spec.env_from.clone(),
        resources: spec.resources.clone(),
        command: spec.command.clone(),
        args: spec.args.clone(),
        zones: ZonePolicy {
            min_zones: spec.zones.min_zones.max(1),
            max_skew: spec.zones.max_skew.max(1),
            names,
            min_domains: spec.zones.min_domains,
            min_ready_after_zone_loss: spec.zones.min_ready_after_zone_loss,
            rebalance: spec.zones.rebalance,
        },
        health: spec.health_check.clone(),
        max_unavailable: spec.disruption.max_unavailable.max(1),
        toleration_seconds: spec.failure_reaction.toleration_seconds.max(0),
        ingress: spec.ingress.clone(),
        database: spec.database.clone().map(|mut db| {
            db.database_name
                .get_or_insert_with(|| default_database_name(&owner_name));
            db
        }),
        cache: spec.cache.clone(),
        dns,
        dynamodb: spec.dynamodb.clone(),
        static_assets: spec.static_assets.clone(),
        alarms: spec.alarms.clone(),
        names: Names::default(),
        accepted_stores: accepted_stores(app),
    };
    app.names = resolve_names(&app);
    // A deleting app is cleaned up whatever it asks for: these only matter to what halo creates.
    if !deleting {
        refuse_what_needs_the_operator(&app, region)?;
    }
    Ok(app)
}

/// The identities the `halo.dev/accept-store` annotation lists (comma-separated).
fn accepted_stores(app: &HighlyAvailableApp) -> Vec<String> {
    app.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::meta::ACCEPT_STORE_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses what the API server cannot judge, since it needs the operator's `region` or the
/// app's namespace (the default bucket name). Pure.
fn refuse_what_needs_the_operator(app: &ValidatedApp, region: Option<&str>) -> Result<()> {
    if let Some(region) = region.filter(|r| !r.is_empty()) {
        let tables = app.dynamodb.iter().flat_map(|d| &d.tables);
        for (i, table) in tables.enumerate() {
            if table.replica_regions.iter().any(|r| r.0 == region) {
                return Err(Error::InvalidSpec {
                    field: format!("spec.dynamodb.tables[{i}].replicaRegions"),
                    message: format!(
                        "must not contain {region}, the operator's region: the table itself is there, and replicas go to other regions"
                    ),
                });
            }
        }
    }
    let replica_bucket = app
        .static_assets
        .as_ref()
        .and_then(|s| s.replicate_to.as_ref())
        .and_then(|r| r.bucket.as_ref());
    if let (Some(replica), Some(source)) = (replica_bucket, &app.names.bucket)
        && replica == source
    {
        return Err(Error::InvalidSpec {
            field: "spec.staticAssets.replicateTo.bucket".into(),
            message: format!(
                "must differ from the source bucket {source}: S3 replicates into another bucket, and bucket names are global"
            ),
        });
    }
    Ok(())
}

/// Every derived name of the app. Pure.
pub fn resolve_names(app: &ValidatedApp) -> Names {
    let owner = &app.owner;
    let has_connection = app.database.is_some()
        || app.cache.is_some()
        || app.dynamodb.is_some()
        || app.static_assets.is_some();
    let tls = app
        .ingress
        .as_ref()
        .is_some_and(|i| i.certificate_arn.is_some());
    Names {
        connection_secret: has_connection.then(|| names::connection_secret_name(&owner.name)),
        url: app.ingress.as_ref().map(|i| names::url_of(&i.host, tls)),
        dns_url: app.dns.as_ref().map(|d| names::url_of(&d.record_name, tls)),
        database_id: app.database.as_ref().map(|db| match &db.adopt {
            Some(a) => a.cluster_identifier.to_ascii_lowercase(),
            None => names::resource_id(owner, names::MAX_CLUSTER_ID),
        }),
        legacy_database_id: app
            .database
            .as_ref()
            .filter(|db| db.adopt.is_none())
            .and_then(|_| {
                names::differing(
                    &names::resource_id(owner, names::MAX_CLUSTER_ID),
                    names::legacy::resource_id(owner, names::MAX_CLUSTER_ID),
                )
            }),
        cache_id: app.cache.as_ref().map(|c| match &c.adopt {
            Some(a) => a.replication_group_id.clone(),
            None => names::resource_id(owner, names::MAX_GROUP_ID),
        }),
        legacy_cache_id: app
            .cache
            .as_ref()
            .filter(|c| c.adopt.is_none())
            .and_then(|_| {
                names::differing(
                    &names::resource_id(owner, names::MAX_GROUP_ID),
                    names::legacy::resource_id(owner, names::MAX_GROUP_ID),
                )
            }),
        tables: app
            .dynamodb
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| {
                let table_name = names::table_name(owner, &t.name);
                TableNames {
                    name: t.name.clone(),
                    legacy_table_name: names::differing(
                        &table_name,
                        names::legacy::table_name(owner, &t.name),
                    ),
                    table_name,
                    env_key: names::env_key(&t.name),
                }
            })
            .collect(),
        bucket: app.static_assets.as_ref().map(|s| {
            s.bucket
                .clone()
                .unwrap_or_else(|| names::default_bucket(owner))
        }),
        legacy_bucket: app
            .static_assets
            .as_ref()
            .filter(|s| s.bucket.is_none())
            .and_then(|_| {
                names::differing(
                    &names::default_bucket(owner),
                    names::legacy::default_bucket(owner),
                )
            }),
        alarm_prefix: names::alarm_prefix(owner),
    }
}

/// The app name as a database name: `-` is not allowed there.
pub fn default_database_name(app: &str) -> String {
    app.replace('-', "_")
}

fn invalid(field: &str, message: &str) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
pub fn is_dns1035_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_lowercase()
                && (last.is_ascii_lowercase() || last.is_ascii_digit())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{SMALL, app};

    fn validate_with(section: &str, region: Option<&str>) -> Result<ValidatedApp> {
        let app = app(&format!("{}\n{section}", SMALL.trim_end()));
        let owner = owner_of(&app, "default", Some("uid-1")).expect("owner");
        validate_in(&app, owner, region)
    }

    /// A replica in the operator's own region is where the table already is: refused with the
    /// table's field and the region, which only the operator knows.
    #[test]
    fn replica_in_the_operators_region_is_refused() {
        let tables = "  dynamodb: {tables: [{name: carts, partitionKey: {name: id}}, {name: orders, partitionKey: {name: id}, replicaRegions: [us-west-2, eu-west-1]}]}";
        let err = validate_with(tables, Some("eu-west-1")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid spec: spec.dynamodb.tables[1].replicaRegions: must not contain eu-west-1, the operator's region: the table itself is there, and replicas go to other regions"
        );
        assert!(validate_with(tables, Some("us-east-1")).is_ok());
        assert!(validate_with(tables, None).is_ok());
    }

    /// The default source bucket `<namespace>-<app>-assets` is known only with the namespace:
    /// a replica bucket of that name is refused here (the CEL rule catches an explicit one).
    #[test]
    fn replica_bucket_equal_to_the_default_source_is_refused() {
        let err = validate_with(
            "  staticAssets: {replicateTo: {region: us-west-2, bucket: default-web-assets}}",
            Some("us-east-1"),
        )
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid spec: spec.staticAssets.replicateTo.bucket: must differ from the source bucket default-web-assets: S3 replicates into another bucket, and bucket names are global"
        );
        assert!(
            validate_with(
                "  staticAssets: {replicateTo: {region: us-west-2, bucket: default-web-assets-replica}}",
                Some("us-east-1"),
            )
            .is_ok()
        );
    }

    /// A deleting app is still cleaned up: what only matters to creation does not block it.
    #[test]
    fn deleting_app_is_not_refused_for_its_replicas() {
        let mut app = app(&format!(
            "{}\n  dynamodb: {{tables: [{{name: carts, partitionKey: {{name: id}}, replicaRegions: [us-east-1]}}]}}",
            SMALL.trim_end()
        ));
        app.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        let owner = owner_of(&app, "default", Some("uid-1")).expect("owner");
        assert!(validate_in(&app, owner, Some("us-east-1")).is_ok());
    }
}
