//! Whole reconciles of an app with a database and a cache: a mocked Kubernetes API server
//! (records every request) and the AWS emulator (moto, `AWS_ENDPOINT_URL`). Pins down the
//! finalizer, the connection Secret and the Deployment's use of it, the status, the calls a
//! stable app costs, and deletion under the finalizer.

mod aws_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_support::{aws, unique};
use halo::aws::{Aws, AwsConfig, is_read_only};
use halo::controller::{Caches, Config, Context, reconcile};
use halo::crd::HighlyAvailableApp;
use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};

/// One request the fake API server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body: Value,
}

/// A fake API server: keeps the app object (finalizer and status patches apply to it), echoes
/// child applies, answers GETs with 404.
struct FakeApi {
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    app: Arc<Mutex<Value>>,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn fake_api(app: &HighlyAvailableApp) -> FakeApi {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let state = Arc::new(Mutex::new(serde_json::to_value(app).expect("app json")));
    let (record, app_state) = (seen.clone(), state.clone());
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            record.lock().expect("lock").push(Seen {
                method: method.clone(),
                path: path.clone(),
                body: body.clone(),
            });
            let (status, reply) = if method == "GET" {
                (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                )
            } else if path.contains("/highlyavailableapps/") {
                let mut app = app_state.lock().expect("lock");
                if path.ends_with("/status") {
                    app["status"] = body["status"].clone();
                } else {
                    merge(&mut app, &body);
                }
                (200, app.clone())
            } else if method == "DELETE" {
                (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
            } else {
                (200, body)
            };
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()))
                .expect("response");
            send.send_response(response);
        }
    });
    FakeApi {
        client: Client::new(service, "default"),
        seen,
        app: state,
    }
}

impl FakeApi {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }

    fn app(&self) -> HighlyAvailableApp {
        serde_json::from_value(self.app.lock().expect("lock").clone()).expect("app")
    }
}

struct Cluster {
    caches: Caches,
    deployments: Writer<Deployment>,
    services: Writer<Service>,
    pdbs: Writer<PodDisruptionBudget>,
    secrets: Writer<Secret>,
}

/// Caches with three ready nodes, one per zone, and three ready pods of `app` on them.
fn cluster(ns: &str, app: &str) -> Cluster {
    let (deployments, dw) = reflector::store();
    let (services, svw) = reflector::store();
    let (pdbs, pdw) = reflector::store();
    let (hpas, _) = reflector::store();
    let (ingresses, _) = reflector::store();
    let (pods, mut pw) = reflector::store::<Pod>();
    let (nodes, mut nw) = reflector::store::<Node>();
    let (secrets, sw) = reflector::store();
    for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
    {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"), "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("node");
        nw.apply_watcher_event(&watcher::Event::Apply(node));
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-{i}"), "namespace": ns, "labels": {"halo.dev/app": app}},
            "spec": {"nodeName": format!("node-{i}"), "containers": [{"name": "app"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        pw.apply_watcher_event(&watcher::Event::Apply(pod));
    }
    Cluster {
        caches: Caches {
            deployments,
            services,
            pdbs,
            hpas,
            ingresses,
            pods,
            nodes,
            secrets,
        },
        deployments: dw,
        services: svw,
        pdbs: pdw,
        secrets: sw,
    }
}

impl Cluster {
    /// Puts what halo applied into the caches, as the watches would (the Deployment rolled out).
    fn absorb(&mut self, requests: &[Seen]) {
        for r in requests.iter().filter(|r| r.method == "PATCH") {
            if r.path.contains("/services/") {
                let s: Service = serde_json::from_value(r.body.clone()).expect("service");
                self.services.apply_watcher_event(&watcher::Event::Apply(s));
            }
            if r.path.contains("/poddisruptionbudgets/") {
                let p: PodDisruptionBudget = serde_json::from_value(r.body.clone()).expect("pdb");
                self.pdbs.apply_watcher_event(&watcher::Event::Apply(p));
            }
            if r.path.contains("/secrets/") {
                let s: Secret = serde_json::from_value(r.body.clone()).expect("secret");
                self.secrets.apply_watcher_event(&watcher::Event::Apply(s));
            }
            if r.path.contains("/deployments/") {
                let mut v = r.body.clone();
                merge(
                    &mut v,
                    &json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                        "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}}),
                );
                let d: Deployment = serde_json::from_value(v).expect("deployment");
                self.deployments
                    .apply_watcher_event(&watcher::Event::Apply(d));
            }
        }
    }
}

fn data_app(ns: &str, name: &str, database: &str) -> HighlyAvailableApp {
    let yaml = format!(
        "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: {name}, namespace: {ns}, uid: {uid}, generation: 1, resourceVersion: \"7\"}}\nspec:\n  image: registry.example.com/shop:1\n  port: 8080\n  zones: {{names: [us-east-1a, us-east-1b, us-east-1c]}}\n  database: {database}\n  cache: {{replicas: 1, nodeType: cache.r6g.large}}\n",
        uid = unique("uid-")
    );
    serde_saphyr::from_str(&yaml).expect("app parses")
}

fn paths(requests: &[Seen]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

async fn context(api: &FakeApi, cluster: &Cluster, aws: Arc<Aws>) -> Arc<Context> {
    Arc::new(Context::with_aws(
        api.client.clone(),
        cluster.caches.clone(),
        Config::default(),
        aws,
    ))
}

/// Reconciles until the app stops changing; returns the last reconcile's requests and action.
async fn converge(api: &FakeApi, cluster: &mut Cluster, ctx: &Arc<Context>) -> (Vec<Seen>, Action) {
    let mut history = Vec::new();
    for _ in 0..8 {
        let action = reconcile(Arc::new(api.app()), ctx.clone())
            .await
            .expect("reconcile");
        let requests = api.take();
        cluster.absorb(&requests);
        if requests.is_empty() {
            return (requests, action);
        }
        history.push(paths(&requests));
    }
    panic!("no quiet reconcile: {history:#?}");
}

fn condition<'a>(app: &'a HighlyAvailableApp, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = app
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("{type_} missing"));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

/// The first reconcile puts the finalizer on before anything exists in AWS; the app converges
/// to Ready with the endpoints in its status, the connection Secret and the Deployment's
/// envFrom; then a reconcile costs no Kubernetes request and only AWS reads.
#[tokio::test]
async fn app_with_database_and_cache_converges() {
    let ns = unique("t");
    let app = data_app(&ns, "shop", "{instances: 2, deletionProtection: false}");
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "shop");
    let aws = Arc::new(aws().await);
    let ctx = context(&api, &cluster, aws.clone()).await;

    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("first reconcile");
    let first = api.take();
    assert_eq!(
        (first[0].method.as_str(), first[0].path.as_str()),
        (
            "PATCH",
            format!("/apis/halo.dev/v1alpha1/namespaces/{ns}/highlyavailableapps/shop").as_str()
        )
    );
    assert_eq!(
        first[0].body,
        json!({"metadata": {"finalizers": ["halo.dev/cleanup"], "resourceVersion": "7"}})
    );
    cluster.absorb(&first);

    let (quiet, action) = converge(&api, &mut cluster, &ctx).await;
    assert!(quiet.is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let app = api.app();
    let id = format!("{ns}-shop");
    assert_eq!(
        condition(&app, "Ready"),
        ("True", "Ready", "all conditions are True")
    );
    assert_eq!(
        condition(&app, "DatabaseReady"),
        (
            "True",
            "Available",
            format!("Aurora cluster {id} is available: writer {id}-1 (us-east-1a), readers {id}-2 (us-east-1b)").as_str()
        )
    );
    assert_eq!(condition(&app, "CacheReady").0, "True");
    let status = app.status.clone().expect("status");
    assert_eq!(status.connection_secret.as_deref(), Some("shop-connection"));
    let endpoints = status.endpoints.expect("endpoints");
    let db = endpoints.database.expect("database endpoints");
    let cache = endpoints.cache.expect("cache endpoints");
    assert_eq!(db.cluster_identifier.as_deref(), Some(id.as_str()));

    // The Secret holds exactly what the status reports, under the documented names.
    let secret = cluster
        .caches
        .secrets
        .get(&kube::runtime::reflector::ObjectRef::new("shop-connection").within(&ns))
        .expect("secret applied");
    let data: BTreeMap<String, String> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
        .collect();
    let expected: BTreeMap<String, String> = [
        ("DATABASE_HOST", db.writer.clone().expect("writer")),
        ("DATABASE_READER_HOST", db.reader.clone().expect("reader")),
        ("DATABASE_PORT", "5432".to_string()),
        ("DATABASE_NAME", "shop".to_string()),
        (
            "DATABASE_SECRET_ARN",
            db.secret_arn.clone().expect("secret arn"),
        ),
        ("REDIS_HOST", cache.primary.clone().expect("primary")),
        ("REDIS_READER_HOST", cache.reader.clone().expect("reader")),
        ("REDIS_PORT", "6379".to_string()),
        ("REDIS_TLS", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(data, expected);
    assert_eq!(
        secret
            .meta()
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.clone()),
        app.meta().uid.clone()
    );

    let deployment = cluster
        .caches
        .deployments
        .get(&kube::runtime::reflector::ObjectRef::new("shop").within(&ns))
        .expect("deployment");
    let template = &deployment.spec.as_ref().expect("spec").template;
    let env_from = template.spec.as_ref().expect("pod").containers[0]
        .env_from
        .clone()
        .expect("envFrom");
    assert_eq!(
        env_from[0].secret_ref.as_ref().map(|r| r.name.as_str()),
        Some("shop-connection")
    );
    let checksum = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("halo.dev/connection-checksum"))
        .expect("checksum annotation");
    assert_eq!(checksum, &halo::render::secret::checksum(&data));

    // A stable app: one more reconcile costs no Kubernetes request and four AWS reads.
    let before = aws.calls().snapshot();
    let action = reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("stable reconcile");
    assert_eq!(paths(&api.take()), vec![]);
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("elasticache:DescribeReplicationGroups".to_string(), 1),
            ("elasticache:ListTagsForResource".to_string(), 1),
            ("rds:DescribeDBClusters".to_string(), 1),
            ("rds:DescribeDBInstances".to_string(), 1),
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));
}

/// Deleting an app with the default Snapshot policy: halo deletes the instances, then the
/// cluster with a final snapshot, the cache with its own, and removes the finalizer only then.
#[tokio::test]
async fn deletion_takes_a_final_snapshot_then_releases_the_app() {
    let ns = unique("t");
    let app = data_app(&ns, "shop", "{instances: 2, deletionProtection: false}");
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "shop");
    let aws = Arc::new(aws().await);
    let ctx = context(&api, &cluster, aws.clone()).await;
    converge(&api, &mut cluster, &ctx).await;

    let mut deleting = api.app();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let mut released = None;
    let mut rounds = 0;
    while released.is_none() && rounds < 5 {
        rounds += 1;
        reconcile(Arc::new(deleting.clone()), ctx.clone())
            .await
            .expect("finalize");
        let requests = api.take();
        released = requests
            .iter()
            .find(|r| r.method == "PATCH" && r.body["metadata"]["finalizers"].is_array())
            .map(|r| r.body.clone());
        if let Some(status) = api.app().status {
            deleting.status = Some(status);
        }
    }
    assert_eq!(
        released,
        Some(json!({"metadata": {"finalizers": [], "resourceVersion": "7"}})),
        "finalizer never removed"
    );
    assert_eq!(rounds, 2, "instances first, then the cluster");
    let id = format!("{ns}-shop");
    let snapshot = format!(
        "{id}-final-{}",
        app.metadata
            .uid
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
    );
    let rds = aws.rds().await;
    let snapshots = rds
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier(&snapshot)
        .send()
        .await
        .expect("final snapshot exists");
    assert_eq!(snapshots.db_cluster_snapshots().len(), 1);
    assert!(
        rds.describe_db_clusters()
            .db_cluster_identifier(&id)
            .send()
            .await
            .is_err(),
        "cluster must be gone"
    );
    // An app that is gone from Kubernetes' point of view is not reconciled again.
    deleting.metadata.finalizers = Some(vec![]);
    let action = reconcile(Arc::new(deleting), ctx.clone())
        .await
        .expect("after release");
    assert_eq!(action, Action::await_change());
    assert_eq!(paths(&api.take()), vec![]);
}

/// An app without AWS sections never builds an AWS client, so the operator needs no
/// credentials: no AWS call, no finalizer.
#[tokio::test]
async fn apps_without_aws_sections_never_call_aws() {
    let ns = unique("t");
    let yaml = format!(
        "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: web, namespace: {ns}, uid: u1, generation: 1}}\nspec:\n  image: registry.example.com/web:1\n  port: 8080\n"
    );
    let app: HighlyAvailableApp = serde_saphyr::from_str(&yaml).expect("app");
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "web");
    // No endpoint, no credentials: any AWS call would fail.
    let aws = Arc::new(Aws::new(AwsConfig::default()));
    let ctx = context(&api, &cluster, aws.clone()).await;
    converge(&api, &mut cluster, &ctx).await;
    assert_eq!(aws.calls().snapshot(), BTreeMap::new());
    assert_eq!(api.app().metadata.finalizers, None);
}

fn storage_app(ns: &str, name: &str) -> HighlyAvailableApp {
    let yaml = format!(
        "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: {name}, namespace: {ns}, uid: {uid}, generation: 1, resourceVersion: \"7\"}}\nspec:\n  image: registry.example.com/shop:1\n  port: 8080\n  zones: {{names: [us-east-1a, us-east-1b, us-east-1c]}}\n  dynamodb:\n    tables:\n    - {{name: carts, partitionKey: {{name: id}}}}\n    - {{name: sessions, partitionKey: {{name: id}}, deletionPolicy: Delete, deletionProtection: false}}\n  staticAssets: {{}}\n  alarms: {{snsTopicArn: \"arn:aws:sns:us-east-1:123456789012:ops\"}}\n",
        uid = unique("uid-")
    );
    serde_saphyr::from_str(&yaml).expect("app parses")
}

/// Tables, a bucket and alarms: the finalizer goes on first; the app converges with
/// DynamoDBReady, StaticAssetsReady and AlarmsOK True, the records and alarm states in its
/// status, and the names in the connection Secret; a stable reconcile makes only AWS reads;
/// deletion keeps the Retain table and the bucket, deletes the Delete table and the alarms.
#[tokio::test]
async fn app_with_tables_bucket_and_alarms_converges_and_deletes() {
    let ns = unique("t");
    let app = storage_app(&ns, "shop");
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "shop");
    // CloudWatch goes through the CBOR bridge (moto does not speak aws-sdk-cloudwatch's protocol).
    let aws = Arc::new(aws_support::aws_bridged(AwsConfig::default()).await);
    let ctx = context(&api, &cluster, aws.clone()).await;

    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("first reconcile");
    let first = api.take();
    assert_eq!(
        first[0].body,
        json!({"metadata": {"finalizers": ["halo.dev/cleanup"], "resourceVersion": "7"}})
    );
    cluster.absorb(&first);
    let (quiet, action) = converge(&api, &mut cluster, &ctx).await;
    assert!(quiet.is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));

    let app = api.app();
    let prefix = format!("{ns}-shop");
    assert_eq!(
        condition(&app, "Ready"),
        ("True", "Ready", "all conditions are True")
    );
    assert_eq!(
        condition(&app, "DynamoDBReady"),
        (
            "True",
            "Available",
            format!("DynamoDB tables active: {prefix}-carts, {prefix}-sessions").as_str()
        )
    );
    assert_eq!(
        condition(&app, "StaticAssetsReady"),
        (
            "True",
            "Available",
            format!("S3 bucket {prefix}-assets (us-east-1): versioned, encrypted with SSE-S3, public access blocked, noncurrent versions expire after 30 days").as_str()
        )
    );
    // moto starts alarms in OK.
    assert_eq!(
        condition(&app, "AlarmsOK"),
        (
            "True",
            "NoAlarmFiring",
            "4 alarms, none in ALARM (0 with insufficient data)"
        )
    );
    let status = app.status.clone().expect("status");
    assert_eq!(
        status
            .dynamodb_tables
            .iter()
            .map(|t| (t.name.as_str(), t.state.as_deref(), t.arn.is_some()))
            .collect::<Vec<_>>(),
        vec![
            ("carts", Some("ACTIVE"), true),
            ("sessions", Some("ACTIVE"), true)
        ]
    );
    assert_eq!(
        status
            .alarms
            .iter()
            .map(|a| (a.name.clone(), a.state.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                format!("halo/{ns}/shop/dynamodb-read-throttles-carts"),
                "OK".to_string()
            ),
            (
                format!("halo/{ns}/shop/dynamodb-read-throttles-sessions"),
                "OK".to_string()
            ),
            (
                format!("halo/{ns}/shop/dynamodb-write-throttles-carts"),
                "OK".to_string()
            ),
            (
                format!("halo/{ns}/shop/dynamodb-write-throttles-sessions"),
                "OK".to_string()
            ),
        ]
    );
    assert_eq!(
        status.static_assets.as_ref().map(|s| s.bucket.clone()),
        Some(format!("{prefix}-assets"))
    );

    let secret = cluster
        .caches
        .secrets
        .get(&kube::runtime::reflector::ObjectRef::new("shop-connection").within(&ns))
        .expect("secret applied");
    let data: BTreeMap<String, String> = secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
        .collect();
    let arn = |name: &str| {
        status
            .dynamodb_tables
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.arn.clone())
            .expect("arn")
    };
    let expected: BTreeMap<String, String> = [
        ("DYNAMODB_TABLE_CARTS", format!("{prefix}-carts")),
        ("DYNAMODB_TABLE_CARTS_ARN", arn("carts")),
        ("DYNAMODB_TABLE_SESSIONS", format!("{prefix}-sessions")),
        ("DYNAMODB_TABLE_SESSIONS_ARN", arn("sessions")),
        ("STATIC_ASSETS_BUCKET", format!("{prefix}-assets")),
        ("STATIC_ASSETS_REGION", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(data, expected);

    // Stable: no Kubernetes request, and AWS reads only.
    let before = aws.calls().snapshot();
    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("stable reconcile");
    assert_eq!(paths(&api.take()), vec![]);
    let calls = aws.calls().since(&before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("cloudwatch:DescribeAlarms".to_string(), 1),
            ("dynamodb:DescribeContinuousBackups".to_string(), 2),
            ("dynamodb:DescribeTable".to_string(), 2),
            ("dynamodb:ListTagsOfResource".to_string(), 2),
            ("s3:GetBucketEncryption".to_string(), 1),
            ("s3:GetBucketLifecycleConfiguration".to_string(), 1),
            ("s3:GetBucketTagging".to_string(), 1),
            ("s3:GetBucketVersioning".to_string(), 1),
            ("s3:GetPublicAccessBlock".to_string(), 1),
        ])
    );
    assert!(calls.keys().all(|api| is_read_only(api)));

    // Deletion: Retain keeps carts and the bucket (without halo's tags), Delete drops sessions,
    // the alarms go; then the finalizer.
    let mut deleting = api.app();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    reconcile(Arc::new(deleting), ctx.clone())
        .await
        .expect("finalize");
    let released = api
        .take()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.body["metadata"]["finalizers"].is_array())
        .map(|r| r.body);
    assert_eq!(
        released,
        Some(json!({"metadata": {"finalizers": [], "resourceVersion": "7"}}))
    );
    let ddb = aws.dynamodb().await;
    assert!(
        ddb.describe_table()
            .table_name(format!("{prefix}-carts"))
            .send()
            .await
            .is_ok()
    );
    assert!(
        ddb.describe_table()
            .table_name(format!("{prefix}-sessions"))
            .send()
            .await
            .is_err()
    );
    assert!(
        aws.s3()
            .await
            .head_bucket()
            .bucket(format!("{prefix}-assets"))
            .send()
            .await
            .is_ok()
    );
    let left = aws
        .cloudwatch()
        .await
        .describe_alarms()
        .alarm_name_prefix(format!("halo/{ns}/shop/"))
        .send()
        .await
        .expect("describe");
    assert_eq!(left.metric_alarms().len(), 0);
}
