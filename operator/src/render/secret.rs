//! The connection Secret `<name>-connection`: where the app finds its database and cache,
//! loaded into the container with `envFrom`. It holds endpoints and the ARN of the secret with
//! the RDS-managed password, never a password.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use crate::api::data::{CacheEndpoints, DatabaseEndpoints};
use crate::validate::ValidatedApp;

/// What AWS reported about the app's data layer (from the status when AWS could not be asked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    pub database: Option<DatabaseEndpoints>,
    pub cache: Option<CacheEndpoints>,
    /// Records of the tables (their ARNs once DynamoDB reported them).
    pub dynamodb_tables: Vec<crate::api::storage::TableStatus>,
    pub static_assets: Option<crate::api::storage::StaticAssetsStatus>,
}

/// The Secret's data. Keys whose value AWS has not reported yet are left out.
pub fn connection_data(app: &ValidatedApp, conn: &Connection) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            data.insert(key.to_string(), v);
        }
    };
    if let Some(db) = &app.database {
        let ep = conn.database.clone().unwrap_or_default();
        put("DATABASE_HOST", ep.writer);
        put("DATABASE_READER_HOST", ep.reader);
        put("DATABASE_PORT", ep.port.map(|p| p.to_string()));
        put("DATABASE_NAME", db.database_name.clone());
        put("DATABASE_SECRET_ARN", ep.secret_arn);
    }
    if app.cache.is_some() {
        let ep = conn.cache.clone().unwrap_or_default();
        put("REDIS_HOST", ep.primary);
        put("REDIS_READER_HOST", ep.reader);
        put("REDIS_PORT", ep.port.map(|p| p.to_string()));
        // halo creates every replication group with encryption in transit.
        put("REDIS_TLS", Some("true".into()));
    }
    for table in &app.names.tables {
        // The name is deterministic, so the app has it before DynamoDB answers; a table halo
        // found under its legacy name is recorded with that name.
        let key = table.env_key.clone();
        let record = conn.dynamodb_tables.iter().find(|r| {
            r.name == table.name
                && !r.removed
                && (r.table_name == table.table_name
                    || Some(&r.table_name) == table.legacy_table_name.as_ref())
        });
        let name = record.map_or_else(|| table.table_name.clone(), |r| r.table_name.clone());
        put(&format!("{key}_ARN"), record.and_then(|r| r.arn.clone()));
        put(&key, Some(name));
    }
    if let Some(assets) = &app.static_assets {
        let seen = conn.static_assets.clone().unwrap_or_default();
        // The bucket in use: the recorded one when it is the legacy name.
        let bucket = match &app.names.legacy_bucket {
            Some(legacy) if *legacy == seen.bucket => Some(legacy.clone()),
            _ => app.names.bucket.clone(),
        };
        put("STATIC_ASSETS_BUCKET", bucket);
        put("STATIC_ASSETS_REGION", seen.region);
        put("STATIC_ASSETS_REPLICA_BUCKET", seen.replica_bucket);
        put(
            "STATIC_ASSETS_REPLICA_REGION",
            assets.replicate_to.as_ref().map(|r| r.region.0.clone()),
        );
    }
    data
}

/// The Secret, or `None` when the app has no data section (database, cache, tables, bucket): it must not exist.
pub fn connection_secret(app: &ValidatedApp, conn: &Connection) -> Option<Secret> {
    let name = app.names.connection_secret.clone()?;
    let mut metadata = app.owner.child_meta();
    metadata.name = Some(name);
    Some(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(
            connection_data(app, conn)
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}

/// Hash of the data: the Deployment's pod template carries it, so new endpoints roll the pods.
pub fn checksum(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in data {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{SMALL, validated};

    pub(crate) const DATA_APP: &str = r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: shop, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  database: {instances: 2}
  cache: {replicas: 1}
"#;

    fn connection() -> Connection {
        Connection {
            database: Some(DatabaseEndpoints {
                cluster_identifier: Some("shop-shop".into()),
                writer: Some("shop-shop.cluster-abc.us-east-1.rds.amazonaws.com".into()),
                reader: Some("shop-shop.cluster-ro-abc.us-east-1.rds.amazonaws.com".into()),
                port: Some(5432),
                secret_arn: Some(
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1".into(),
                ),
                resource_id: None,
            }),
            cache: Some(CacheEndpoints {
                replication_group_id: Some("shop-shop".into()),
                primary: Some("master.shop-shop.abc.use1.cache.amazonaws.com".into()),
                reader: Some("replica.shop-shop.abc.use1.cache.amazonaws.com".into()),
                port: Some(6379),
                created_at: None,
            }),
            ..Connection::default()
        }
    }

    fn decoded(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
            .collect()
    }

    /// The app finds every endpoint under a fixed variable name, and TLS is on for Redis.
    #[test]
    fn secret_holds_every_endpoint() {
        let app = validated(DATA_APP);
        let secret = connection_secret(&app, &connection()).expect("secret");
        assert_eq!(secret.metadata.name.as_deref(), Some("shop-connection"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("shop"));
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("HighlyAvailableApp", "uid-1")
        );
        let expected: BTreeMap<String, String> = [
            (
                "DATABASE_HOST",
                "shop-shop.cluster-abc.us-east-1.rds.amazonaws.com",
            ),
            ("DATABASE_NAME", "shop"),
            ("DATABASE_PORT", "5432"),
            (
                "DATABASE_READER_HOST",
                "shop-shop.cluster-ro-abc.us-east-1.rds.amazonaws.com",
            ),
            (
                "DATABASE_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1",
            ),
            (
                "REDIS_HOST",
                "master.shop-shop.abc.use1.cache.amazonaws.com",
            ),
            ("REDIS_PORT", "6379"),
            (
                "REDIS_READER_HOST",
                "replica.shop-shop.abc.use1.cache.amazonaws.com",
            ),
            ("REDIS_TLS", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(decoded(&secret), expected);
    }

    /// Before AWS reports endpoints only what the spec knows is there.
    #[test]
    fn unknown_endpoints_are_left_out() {
        let app = validated(DATA_APP);
        let secret = connection_secret(&app, &Connection::default()).expect("secret");
        let keys: Vec<String> = decoded(&secret).into_keys().collect();
        assert_eq!(keys, vec!["DATABASE_NAME", "REDIS_TLS"]);
    }

    /// No database and no cache: no Secret (and a stale one is pruned).
    #[test]
    fn no_data_layer_no_secret() {
        assert_eq!(connection_secret(&validated(SMALL), &connection()), None);
    }

    /// The data-layer sample renders its Secret first and loads it into the pods.
    #[test]
    fn data_sample_loads_its_secret() {
        let app = validated(include_str!("../../../config/samples/data.yaml"));
        let children = crate::render::render(&app);
        let values = children.to_values().expect("serializes");
        let kinds: Vec<&str> = values.iter().filter_map(|v| v["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            vec!["Secret", "Deployment", "Service", "PodDisruptionBudget"]
        );
        assert_eq!(values[0]["metadata"]["name"], "orders-connection");
        let secret = children.secret.expect("secret");
        assert_eq!(
            decoded(&secret).into_iter().collect::<Vec<_>>(),
            vec![
                ("DATABASE_NAME".to_string(), "orders".to_string()),
                ("REDIS_TLS".to_string(), "true".to_string())
            ]
        );
        let pod = children
            .deployment
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod spec");
        let env_from = pod.containers[0].env_from.clone().expect("envFrom");
        assert_eq!(
            env_from[0].secret_ref.as_ref().map(|r| r.name.as_str()),
            Some("orders-connection")
        );
    }

    /// Before AWS answers, the Secret names the collision-free table; a table halo found under its
    /// legacy name (recorded in the status) keeps that name, so the app is not pointed elsewhere.
    #[test]
    fn secret_names_the_table_in_use() {
        let app = validated(
            r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  dynamodb: {tables: [{name: order-items, partitionKey: {name: id}}]}
"#,
        );
        let table = |conn: &Connection| {
            connection_data(&app, conn)
                .get("DYNAMODB_TABLE_ORDER_ITEMS")
                .cloned()
        };
        assert_eq!(
            table(&Connection::default()).as_deref(),
            Some("shop-web-order-items-219ec871")
        );
        let recorded = |name: &str| Connection {
            dynamodb_tables: vec![crate::api::storage::TableStatus {
                name: "order-items".into(),
                table_name: name.into(),
                ..Default::default()
            }],
            ..Connection::default()
        };
        assert_eq!(
            table(&recorded("shop-web-order-items")).as_deref(),
            Some("shop-web-order-items")
        );
        // A record naming neither is not believed.
        assert_eq!(
            table(&recorded("someone-elses")).as_deref(),
            Some("shop-web-order-items-219ec871")
        );
    }

    /// Tables and the bucket reach the app under fixed names, ARNs once DynamoDB reported them
    /// (here under their legacy names, which the status recorded).
    #[test]
    fn secret_holds_tables_and_bucket() {
        let app = validated(
            r#"
apiVersion: halo.dev/v1alpha1
kind: HighlyAvailableApp
metadata: {name: web, namespace: shop}
spec:
  image: registry.example.com/shop:1
  port: 8080
  dynamodb: {tables: [{name: order-items, partitionKey: {name: id}}]}
  staticAssets: {replicateTo: {region: us-west-2}}
"#,
        );
        let conn = Connection {
            dynamodb_tables: vec![crate::api::storage::TableStatus {
                name: "order-items".into(),
                table_name: "shop-web-order-items".into(),
                arn: Some(
                    "arn:aws:dynamodb:us-east-1:123456789012:table/shop-web-order-items".into(),
                ),
                ..Default::default()
            }],
            static_assets: Some(crate::api::storage::StaticAssetsStatus {
                bucket: "shop-web-assets".into(),
                region: Some("us-east-1".into()),
                replica_bucket: Some("shop-web-assets-us-west-2".into()),
            }),
            ..Connection::default()
        };
        let data = connection_data(&app, &conn);
        let expected: BTreeMap<String, String> = [
            ("DYNAMODB_TABLE_ORDER_ITEMS", "shop-web-order-items"),
            (
                "DYNAMODB_TABLE_ORDER_ITEMS_ARN",
                "arn:aws:dynamodb:us-east-1:123456789012:table/shop-web-order-items",
            ),
            ("STATIC_ASSETS_BUCKET", "shop-web-assets"),
            ("STATIC_ASSETS_REGION", "us-east-1"),
            ("STATIC_ASSETS_REPLICA_BUCKET", "shop-web-assets-us-west-2"),
            ("STATIC_ASSETS_REPLICA_REGION", "us-west-2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(data, expected);
    }

    /// A new endpoint changes the checksum, which rolls the pods; the same data does not.
    #[test]
    fn checksum_follows_the_data() {
        let app = validated(DATA_APP);
        let a = connection_data(&app, &connection());
        let mut moved = connection();
        if let Some(db) = moved.database.as_mut() {
            db.writer = Some("elsewhere.example".into());
        }
        let b = connection_data(&app, &moved);
        assert_eq!(checksum(&a), checksum(&a.clone()));
        assert_ne!(checksum(&a), checksum(&b));
        assert_eq!(checksum(&a).len(), 16);
    }
}
