//! The plan: everything halo wants of AWS for one app, computed once per reconcile from the
//! [`ValidatedApp`], the operator's configuration, where it runs ([`Site`]) and what the status
//! recorded earlier. Pure: no client, no clock. Every backend carries out the same plan.

use crate::api::HighlyAvailableAppStatus;
use crate::names::Names;
use crate::validate::ValidatedApp;

use super::aurora::{self, DesiredCluster};
use super::cloudwatch::{self, DesiredAlarms};
use super::dynamodb::{self, DesiredTables};
use super::elasticache::{self, DesiredGroup};
use super::route53::{DnsPlan, dns_plan};
use super::s3::{self, DesiredBucket};
use super::{AwsConfig, effective_cluster_id};

/// Where this operator acts: its region and its name in Route 53 ownership records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The operator's region; `None` when neither configured nor found by the SDK.
    pub region: Option<String>,
    /// `--cluster-id`, else the region, else `halo`.
    pub cluster_id: String,
}

impl Site {
    pub fn new(config: &AwsConfig, region: Option<String>) -> Self {
        Site {
            cluster_id: effective_cluster_id(config.cluster_id.as_deref(), region.as_deref()),
            region,
        }
    }
}

/// The desired state of every AWS service for one app; `None` where the app has nothing of
/// that service (neither in the spec nor recorded in the status).
#[derive(Clone, Debug, PartialEq)]
pub struct AwsPlan {
    pub database: Option<DesiredCluster>,
    pub cache: Option<DesiredGroup>,
    pub dns: Option<DnsPlan>,
    pub tables: Option<DesiredTables>,
    pub bucket: Option<DesiredBucket>,
    /// Built from the other plans (the cluster, the group, the tables) and the health check
    /// recorded in the status; the DNS step fills in a health check it creates.
    pub alarms: Option<DesiredAlarms>,
}

impl AwsPlan {
    /// Whether the plan touches AWS at all.
    pub fn is_empty(&self) -> bool {
        self.database.is_none()
            && self.cache.is_none()
            && self.dns.is_none()
            && self.tables.is_none()
            && self.bucket.is_none()
            && self.alarms.is_none()
    }
}

/// The plan of one reconcile. `load_balancer` is the ALB hostname from the Ingress status
/// (DNS records wait for it); `status` holds what earlier reconciles recorded (the DNS record
/// set, tables, alarms and the replica bucket), so what a removed section or a changed
/// `replicateTo` left behind is still cleaned up, and the identity of the cluster and the
/// replication group, so one deleted or replaced outside halo is never recreated or touched.
pub fn plan(
    app: &ValidatedApp,
    config: &AwsConfig,
    site: &Site,
    status: Option<&HighlyAvailableAppStatus>,
    load_balancer: Option<&str>,
) -> AwsPlan {
    let recorded_endpoints = status.and_then(|s| s.endpoints.as_ref());
    let database = aurora::desired(app, config).map(|d| {
        d.with_recorded(
            recorded_endpoints.and_then(|e| e.database.as_ref()),
            &app.accepted_stores,
        )
    });
    let cache = elasticache::desired(app, config).map(|d| {
        d.with_recorded(
            recorded_endpoints.and_then(|e| e.cache.as_ref()),
            &app.accepted_stores,
        )
    });
    let recorded_tables = status
        .map(|s| s.dynamodb_tables.as_slice())
        .unwrap_or_default();
    let tables = dynamodb::desired(app, recorded_tables);
    let recorded_alarms = status.map(|s| s.alarms.as_slice()).unwrap_or_default();
    let recorded_health_check = status
        .and_then(|s| s.dns.as_ref())
        .and_then(|d| d.health_check_id.clone());
    // Alarms watch the resources under the names they have: legacy ones once recorded.
    let legacy = recorded_legacy_names(&app.names, status).map(|names| {
        let watched = ValidatedApp {
            names,
            ..app.clone()
        };
        let database = database.as_ref().map(|d| match &watched.names.database_id {
            Some(id) => d.under(id),
            None => d.clone(),
        });
        let cache = cache.as_ref().map(|d| match &watched.names.cache_id {
            Some(id) => d.under(id),
            None => d.clone(),
        });
        (watched, database, cache)
    });
    let (alarm_app, alarm_database, alarm_cache) = match &legacy {
        Some((app, database, cache)) => (app, database.as_ref(), cache.as_ref()),
        None => (app, database.as_ref(), cache.as_ref()),
    };
    let alarms = cloudwatch::desired(
        alarm_app,
        alarm_database,
        alarm_cache,
        recorded_health_check.as_deref(),
        recorded_alarms,
    );
    AwsPlan {
        dns: dns_plan(app, &site.cluster_id, status, load_balancer),
        bucket: s3::desired(app, config)
            .map(|b| b.with_recorded(status.and_then(|s| s.static_assets.as_ref()))),
        database,
        cache,
        tables,
        alarms,
    }
}

/// The app's names with the legacy ones the status recorded (a resource halo found under its
/// legacy name); `None` when the status recorded none.
fn recorded_legacy_names(
    names: &Names,
    status: Option<&HighlyAvailableAppStatus>,
) -> Option<Names> {
    let status = status?;
    let endpoints = status.endpoints.as_ref();
    let recorded_database = endpoints
        .and_then(|e| e.database.as_ref())
        .and_then(|d| d.cluster_identifier.as_ref());
    let recorded_cache = endpoints
        .and_then(|e| e.cache.as_ref())
        .and_then(|c| c.replication_group_id.as_ref());
    let mut in_use = names.clone();
    let mut changed = false;
    if names.legacy_database_id.is_some() && names.legacy_database_id.as_ref() == recorded_database
    {
        in_use.database_id = names.legacy_database_id.clone();
        changed = true;
    }
    if names.legacy_cache_id.is_some() && names.legacy_cache_id.as_ref() == recorded_cache {
        in_use.cache_id = names.legacy_cache_id.clone();
        changed = true;
    }
    for t in &mut in_use.tables {
        if let Some(legacy) = &t.legacy_table_name
            && status
                .dynamodb_tables
                .iter()
                .any(|r| r.name == t.name && !r.removed && r.table_name == *legacy)
        {
            t.table_name = legacy.clone();
            changed = true;
        }
    }
    changed.then_some(in_use)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoints;
    use crate::api::data::{CacheEndpoints, DatabaseEndpoints};
    use crate::aws::policy::RecordedStore;
    use crate::fixtures::validated;

    const APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata:
  name: web
  namespace: shop
  annotations: {halo.dev/accept-store: "2026-01-02T03:04:05Z, cluster-OTHER"}
spec:
  image: shop:1
  port: 8080
  database: {instances: 2}
  cache: {replicas: 1}
"#;

    fn status(resource_id: &str, created_at: &str) -> HighlyAvailableAppStatus {
        HighlyAvailableAppStatus {
            endpoints: Some(Endpoints {
                database: Some(DatabaseEndpoints {
                    cluster_identifier: Some("shop-web".into()),
                    resource_id: Some(resource_id.into()),
                    ..DatabaseEndpoints::default()
                }),
                cache: Some(CacheEndpoints {
                    replication_group_id: Some("shop-web".into()),
                    created_at: Some(created_at.into()),
                    ..CacheEndpoints::default()
                }),
                ..Endpoints::default()
            }),
            ..HighlyAvailableAppStatus::default()
        }
    }

    /// The identity the status recorded reaches the desired cluster and group, unless the
    /// `halo.dev/accept-store` annotation names it; nothing recorded, nothing to keep.
    #[test]
    fn the_recorded_identity_is_kept_unless_the_annotation_accepts_a_new_store() {
        let app = validated(APP);
        let site = Site::new(&AwsConfig::default(), Some("us-east-1".into()));
        let recorded = status("cluster-ABC", "2026-01-02T03:04:05Z");
        let p = plan(&app, &AwsConfig::default(), &site, Some(&recorded), None);
        assert_eq!(
            p.database.and_then(|d| d.recorded),
            Some(RecordedStore {
                id: "shop-web".into(),
                identity: "cluster-ABC".into()
            })
        );
        assert_eq!(p.cache.and_then(|c| c.recorded), None, "accepted");

        let p = plan(&app, &AwsConfig::default(), &site, None, None);
        assert_eq!(p.database.and_then(|d| d.recorded), None);

        let accepted = status("cluster-OTHER", "2025-01-01T00:00:00Z");
        let p = plan(&app, &AwsConfig::default(), &site, Some(&accepted), None);
        assert_eq!(p.database.and_then(|d| d.recorded), None, "accepted");
        assert_eq!(
            p.cache.and_then(|c| c.recorded),
            Some(RecordedStore {
                id: "shop-web".into(),
                identity: "2025-01-01T00:00:00Z".into()
            })
        );
    }
}
