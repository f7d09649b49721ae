//! Whole reconciles of an app with a database and a cache, or with a Route 53 record: a mocked
//! Kubernetes API server (records every request) and the AWS emulator (moto,
//! `AWS_ENDPOINT_URL`). Pins down the finalizer, the connection Secret and the Deployment's use
//! of it, the DNS record and health check, the status, the calls a stable app costs, and
//! deletion under the finalizer.
//!
//! moto answers GetHealthCheckStatus with healthy checkers, always: the unhealthy path runs
//! with a small fake of that one read (`FakeCheckers`), everything else against moto.

mod aws_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_support::{aws, unique};
use halo::api::HighlyAvailableApp;
use halo::aws::{Aws, AwsConfig, is_read_only};
use halo::controller::{Caches, Config, Context, Lookup, TenancyCache, reconcile};
use halo::fixtures::merge;
use halo::tenancy::TenancyPolicy;
use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
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
    ingresses: Writer<Ingress>,
    /// The ALB hostname the (simulated) AWS Load Balancer Controller put into Ingress statuses.
    load_balancer: Option<String>,
}

/// Caches with three ready nodes, one per zone, and three ready pods of `app` on them.
fn cluster(ns: &str, app: &str) -> Cluster {
    let (deployments, mut dw) = reflector::store();
    let (services, mut svw) = reflector::store();
    let (pdbs, mut pdw) = reflector::store();
    let (hpas, _) = reflector::store();
    let (ingresses, mut iw) = reflector::store();
    let (pods, mut pw) = reflector::store::<Pod>();
    let (nodes, mut nw) = reflector::store::<Node>();
    let (secrets, mut sw) = reflector::store();
    // The caches have had their first list: reconciles wait for that.
    dw.apply_watcher_event(&watcher::Event::InitDone);
    svw.apply_watcher_event(&watcher::Event::InitDone);
    pdw.apply_watcher_event(&watcher::Event::InitDone);
    iw.apply_watcher_event(&watcher::Event::InitDone);
    pw.apply_watcher_event(&watcher::Event::InitDone);
    nw.apply_watcher_event(&watcher::Event::InitDone);
    sw.apply_watcher_event(&watcher::Event::InitDone);
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
            secrets: secrets.into(),
            tenancy: TenancyCache::of(vec![]),
        },
        deployments: dw,
        services: svw,
        pdbs: pdw,
        secrets: sw,
        ingresses: iw,
        load_balancer: None,
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
            if r.path.contains("/ingresses/") {
                let mut ingress: Ingress = serde_json::from_value(r.body.clone()).expect("ingress");
                ingress.status = self.ingress_status();
                self.ingresses
                    .apply_watcher_event(&watcher::Event::Apply(ingress));
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

impl Cluster {
    fn ingress_status(&self) -> Option<k8s_openapi::api::networking::v1::IngressStatus> {
        let hostname = self.load_balancer.as_ref()?;
        Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"hostname": hostname}]}}))
                .expect("ingress status"),
        )
    }

    /// Plays the AWS Load Balancer Controller: the ALB exists, its hostname is in the status
    /// of the app's Ingress (already applied by halo).
    fn provision_alb(&mut self, ns: &str, name: &str, hostname: &str) {
        self.load_balancer = Some(hostname.to_string());
        let mut ingress = (*self
            .caches
            .ingresses
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
            .expect("the Ingress was applied"))
        .clone();
        ingress.status = self.ingress_status();
        self.ingresses
            .apply_watcher_event(&watcher::Event::Apply(ingress));
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

/// An operator on `cluster`'s caches whose platform team granted the app's namespace what the
/// app asks for (its hosted zone, any record name and routing policy): the tests of Route 53
/// behaviour run inside their rights. The tenancy tests build their own.
async fn context(api: &FakeApi, cluster: &Cluster, aws: Arc<Aws>) -> Arc<Context> {
    let app = api.app();
    let mut caches = cluster.caches.clone();
    if let Some(zone) = app.spec.dns.as_ref().and_then(|d| d.hosted_zone_id.clone()) {
        let ns = app.metadata.namespace.clone().expect("namespace");
        caches.tenancy = TenancyCache::of(vec![policy(&format!(
            "- name: dns\n  namespaces: [{ns}]\n  dns: {{hostedZoneIds: [{zone}], recordNameSuffixes: [example.com]}}\n"
        ))]);
    }
    context_with(api, caches, aws)
}

fn context_with(api: &FakeApi, caches: Caches, aws: Arc<Aws>) -> Arc<Context> {
    Arc::new(Context::with_aws(
        api.client.clone(),
        caches,
        Config::default(),
        aws,
    ))
}

/// A TenancyPolicy named `platform` with these rules (YAML list items).
fn policy(rules: &str) -> TenancyPolicy {
    let yaml = format!(
        "apiVersion: halo.dev/v1alpha1\nkind: TenancyPolicy\nmetadata: {{name: platform}}\nspec:\n  rules:\n{}",
        rules
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    serde_saphyr::from_str(&yaml).expect("policy parses")
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
        .lookup(&kube::runtime::reflector::ObjectRef::new("shop-connection").within(&ns))
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

// ---- spec.dns: the Route 53 record and health check of the app's ALB ----

const ALB: &str = "k8s-shop-shop-0a1b2c3d4e-1111111111.us-east-1.elb.amazonaws.com";
const WEST_ALB: &str = "k8s-shop-shop-5f6a7b8c9d-2222222222.us-west-2.elb.amazonaws.com";

/// A fresh public hosted zone `<unique>.example.com`; returns (id, name). Created with the
/// plain SDK client, so it is not counted among halo's Route 53 requests.
async fn hosted_zone(aws: &Aws) -> (String, String) {
    let name = format!("{}.example.com", unique("z"));
    let out = aws
        .route53()
        .await
        .client()
        .create_hosted_zone()
        .name(format!("{name}."))
        .caller_reference(unique("zone-"))
        .send()
        .await
        .expect("create hosted zone");
    let id = out
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .expect("zone id");
    (id, name)
}

/// An app `shop` with an internet-facing Ingress for `record` and the `role` (primary or
/// secondary) failover record of `record` in the zone `zone_id`, health-checked every 10 s on
/// /healthz.
fn dns_app(ns: &str, zone_id: &str, record: &str, role: &str) -> HighlyAvailableApp {
    let yaml = format!(
        "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: shop, namespace: {ns}, uid: {uid}, generation: 1, resourceVersion: \"7\"}}\nspec:\n  image: registry.example.com/shop:1\n  port: 8080\n  zones: {{names: [us-east-1a, us-east-1b, us-east-1c]}}\n  healthCheck: {{path: /healthz}}\n  ingress: {{host: {record}, scheme: internet-facing}}\n  dns: {{hostedZoneId: {zone_id}, recordName: {record}, routing: failover, role: {role}, healthCheck: {{intervalSeconds: 10}}}}\n",
        uid = unique("uid-")
    );
    let app: HighlyAvailableApp = serde_saphyr::from_str(&yaml).expect("app parses");
    if let Err(e) = app.validate_cel() {
        panic!("test app is invalid: {e:?}");
    }
    app
}

/// Every record set of the zone except NS and SOA, one stable line each.
async fn zone_records(aws: &Aws, zone_id: &str) -> Vec<String> {
    let out = aws
        .route53()
        .await
        .client()
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .max_items(300)
        .send()
        .await
        .expect("list records");
    let mut lines: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA"))
        .map(|r| {
            let mut s = format!("{} {}", r.name(), r.r#type().as_str());
            if let Some(id) = r.set_identifier() {
                s += &format!(" set={id}");
            }
            if let Some(f) = r.failover() {
                s += &format!(" failover={}", f.as_str());
            }
            match r.alias_target() {
                Some(a) => {
                    s += &format!(
                        " alias={}:{} evaluate={}",
                        a.hosted_zone_id(),
                        a.dns_name(),
                        a.evaluate_target_health()
                    )
                }
                None => {
                    let values: Vec<&str> =
                        r.resource_records().iter().map(|v| v.value()).collect();
                    s += &format!(" ttl={} {}", r.ttl().unwrap_or(0), values.join(","));
                }
            }
            if let Some(hc) = r.health_check_id() {
                s += &format!(" hc={hc}");
            }
            s
        })
        .collect();
    lines.sort();
    lines
}

/// Route 53 requests since `before` (a snapshot of the call log), per API.
fn route53_since(aws: &Aws, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    aws.route53_calls()
        .counts()
        .into_iter()
        .filter_map(|(api, n)| {
            let delta = n - before.get(api).copied().unwrap_or(0);
            (delta > 0).then_some((api, delta))
        })
        .collect()
}

/// (reason, note) of the Events among `requests`.
fn events(requests: &[Seen]) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .map(|r| {
            (
                r.body["reason"].as_str().unwrap_or_default().to_string(),
                r.body["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The health checks of the emulator whose id is `id` (0 or 1), as (type, fqdn, port, path,
/// interval, threshold).
async fn health_check(aws: &Aws, id: &str) -> Option<(String, String, i32, String, i32, i32)> {
    let out = aws
        .route53()
        .await
        .client()
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
        .ok()?;
    let c = out.health_check()?.health_check_config()?.clone();
    Some((
        c.r#type().as_str().to_string(),
        c.fully_qualified_domain_name()
            .unwrap_or_default()
            .to_string(),
        c.port().unwrap_or_default(),
        c.resource_path().unwrap_or_default().to_string(),
        c.request_interval().unwrap_or_default(),
        c.failure_threshold().unwrap_or_default(),
    ))
}

/// Until the ALB has a hostname halo writes nothing to Route 53 (not even a read) and reports
/// DNSReady=False LoadBalancerPending; once the AWS Load Balancer Controller publishes it, the
/// alias records, the ownership record and the health check appear, DNSReady and Ready turn
/// True, and a further reconcile costs no Kubernetes request and four Route 53 reads.
#[tokio::test]
async fn dns_record_waits_for_the_alb_then_converges_healthy() {
    let ns = unique("t");
    let aws = Arc::new(aws().await);
    let (zone_id, zone) = hosted_zone(&aws).await;
    let record = format!("shop.{zone}");
    let app = dns_app(&ns, &zone_id, &record, "primary");
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "shop");
    let ctx = context(&api, &cluster, aws.clone()).await;

    // No ALB yet.
    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("first reconcile");
    let first = api.take();
    assert_eq!(
        first[0].body,
        json!({"metadata": {"finalizers": ["halo.dev/cleanup"], "resourceVersion": "7"}}),
        "the finalizer goes on before anything is written to Route 53"
    );
    cluster.absorb(&first);
    let (quiet, action) = converge(&api, &mut cluster, &ctx).await;
    assert!(quiet.is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert_eq!(aws.route53_calls().counts(), BTreeMap::new());
    let waiting = api.app();
    assert_eq!(
        condition(&waiting, "DNSReady"),
        (
            "False",
            "LoadBalancerPending",
            format!("waiting for the ALB's hostname before writing {record}").as_str()
        )
    );
    assert_eq!(waiting.status.as_ref().and_then(|s| s.dns.clone()), None);
    assert_eq!(zone_records(&aws, &zone_id).await, Vec::<String>::new());

    // The AWS Load Balancer Controller provisioned the ALB.
    cluster.provision_alb(&ns, "shop", ALB);
    let started = std::time::Instant::now();
    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("reconcile with the ALB");
    let written = api.take();
    cluster.absorb(&written);
    let converged_in = started.elapsed();
    let app = api.app();
    let status = app.status.clone().expect("status");
    let dns = status.dns.clone().expect("status.dns");
    let hc = dns.health_check_id.clone().expect("health check id");
    assert_eq!(
        dns,
        halo::api::dns::DnsStatus {
            hosted_zone_id: zone_id.clone(),
            record_name: record.clone(),
            set_identifier: Some("us-east-1".into()),
            health_check_id: Some(hc.clone()),
        }
    );
    // The Ingress now also routes the Route 53 checkers (Host: the ALB hostname) to the app.
    let ingress_patch = written
        .iter()
        .find(|r| r.method == "PATCH" && r.path.contains("/ingresses/"))
        .expect("Ingress applied");
    assert_eq!(
        ingress_patch.body["spec"]["rules"][1],
        json!({"host": ALB, "http": {"paths": [{"path": "/healthz", "pathType": "Exact",
            "backend": {"service": {"name": "shop", "port": {"name": "http"}}}}]}})
    );
    let ev = |reason: &str, note: String| (reason.to_string(), note);
    assert_eq!(
        events(&written),
        vec![
            ev("Updated", "Ingress shop updated".into()),
            ev(
                "HealthCheckCreated",
                format!("Route 53 health check {hc} created on http://{ALB}:80/healthz")
            ),
            ev(
                "DNSRecordUpdated",
                format!(
                    "Route 53 record {record} (set us-east-1) in zone {zone_id} is an alias to the ALB (3 record sets written)"
                )
            ),
            ev("Ready", "Ready=True: all conditions are True".into()),
            ev(
                "HealthCheckHealthy",
                format!(
                    "DNSReady=True: {record} (alias A/AAAA to the ALB, set us-east-1); health check {hc}: 1/1 checkers healthy"
                )
            ),
        ]
    );
    let (quiet, action) = converge(&api, &mut cluster, &ctx).await;
    assert!(quiet.is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let app = api.app();
    assert_eq!(
        condition(&app, "Ready"),
        ("True", "Ready", "all conditions are True")
    );
    let (status_word, reason, message) = condition(&app, "DNSReady");
    assert_eq!((status_word, reason), ("True", "HealthCheckHealthy"));
    assert_eq!(
        message,
        format!(
            "{record} (alias A/AAAA to the ALB, set us-east-1); health check {hc}: 1/1 checkers healthy"
        )
    );
    let endpoints = app
        .status
        .clone()
        .and_then(|s| s.endpoints)
        .expect("endpoints");
    assert_eq!(endpoints.url, Some(format!("http://{record}")));
    assert_eq!(endpoints.load_balancer.as_deref(), Some(ALB));

    let alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{ALB}. evaluate=true hc={hc}");
    assert_eq!(
        zone_records(&aws, &zone_id).await,
        vec![
            format!(
                "_halo-owner.{record}. TXT set=us-east-1 failover=PRIMARY ttl=60 \"heritage=halo,owner=us-east-1,resource={ns}/shop\""
            ),
            format!("{record}. A set=us-east-1 failover=PRIMARY {alias}"),
            format!("{record}. AAAA set=us-east-1 failover=PRIMARY {alias}"),
        ]
    );
    assert_eq!(
        health_check(&aws, &hc).await,
        Some((
            "HTTP".to_string(),
            ALB.to_string(),
            80,
            "/healthz".to_string(),
            10,
            3
        ))
    );

    // Converged: no Kubernetes request, no Route 53 change, four reads.
    let before = aws.route53_calls().counts();
    let started = std::time::Instant::now();
    let action = reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("stable reconcile");
    let stable_in = started.elapsed();
    assert_eq!(paths(&api.take()), vec![]);
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let calls = route53_since(&aws, &before);
    assert_eq!(
        calls,
        BTreeMap::from([
            ("GetHealthCheck", 1),
            ("GetHealthCheckStatus", 1),
            ("ListResourceRecordSets", 2),
        ])
    );
    assert!(
        calls
            .keys()
            .all(|api| is_read_only(&format!("route53:{api}")))
    );
    println!(
        "dns: first write in {converged_in:?} ({} Route 53 requests in all: {:?}); stable reconcile in {stable_in:?}",
        aws.route53_calls().total(),
        aws.route53_calls().counts()
    );
}

/// An operator of its own (region, cluster id, checker reports) reconciling `app` to
/// convergence, with the ALB `alb` provisioned after the first pass.
struct Operator {
    api: FakeApi,
    cluster: Cluster,
    ctx: Arc<Context>,
    aws: Arc<Aws>,
}

async fn operator(app: &HighlyAvailableApp, aws: Aws, alb: &str) -> Operator {
    let ns = app.metadata.namespace.clone().expect("namespace");
    let aws = Arc::new(aws);
    let api = fake_api(app);
    let mut cluster = cluster(&ns, "shop");
    let ctx = context(&api, &cluster, aws.clone()).await;
    converge(&api, &mut cluster, &ctx).await;
    cluster.provision_alb(&ns, "shop", alb);
    converge(&api, &mut cluster, &ctx).await;
    Operator {
        api,
        cluster,
        ctx,
        aws,
    }
}

fn dns_status(app: &HighlyAvailableApp) -> halo::api::dns::DnsStatus {
    app.status
        .as_ref()
        .and_then(|s| s.dns.clone())
        .expect("status.dns")
}

/// Two halos, two regions, one hosted zone: east holds the primary record, west the
/// secondary. Deleting east's app removes east's record sets and health check, and the finalizer
/// goes in that same reconcile; west's record sets and health check are untouched.
#[tokio::test]
async fn deletion_removes_only_this_apps_records() {
    let ns = unique("t");
    let sdk = aws_support::sdk().await;
    let east_aws = Aws::with_sdk_config(AwsConfig::default(), sdk.clone());
    let (zone_id, zone) = hosted_zone(&east_aws).await;
    let record = format!("shop.{zone}");
    let west_aws = Aws::with_sdk_config(
        AwsConfig {
            region: Some("us-west-2".into()),
            cluster_id: Some("west".into()),
            ..AwsConfig::default()
        },
        sdk,
    );
    let east = operator(&dns_app(&ns, &zone_id, &record, "primary"), east_aws, ALB).await;
    let west = operator(
        &dns_app(&ns, &zone_id, &record, "secondary"),
        west_aws,
        WEST_ALB,
    )
    .await;
    let east_hc = dns_status(&east.api.app())
        .health_check_id
        .expect("east health check");
    let west_hc = dns_status(&west.api.app())
        .health_check_id
        .expect("west health check");
    assert_ne!(east_hc, west_hc);
    assert_eq!(condition(&west.api.app(), "DNSReady").0, "True");
    let west_alias =
        format!("alias=Z1H1FL5HABSF5:dualstack.{WEST_ALB}. evaluate=true hc={west_hc}");
    let west_records = vec![
        format!(
            "_halo-owner.{record}. TXT set=us-west-2 failover=SECONDARY ttl=60 \"heritage=halo,owner=west,resource={ns}/shop\""
        ),
        format!("{record}. A set=us-west-2 failover=SECONDARY {west_alias}"),
        format!("{record}. AAAA set=us-west-2 failover=SECONDARY {west_alias}"),
    ];
    let east_alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{ALB}. evaluate=true hc={east_hc}");
    let mut both = west_records.clone();
    both.extend([
        format!("_halo-owner.{record}. TXT set=us-east-1 failover=PRIMARY ttl=60 \"heritage=halo,owner=us-east-1,resource={ns}/shop\""),
        format!("{record}. A set=us-east-1 failover=PRIMARY {east_alias}"),
        format!("{record}. AAAA set=us-east-1 failover=PRIMARY {east_alias}"),
    ]);
    both.sort();
    assert_eq!(zone_records(&east.aws, &zone_id).await, both);

    let mut deleting = east.api.app();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let before = east.aws.route53_calls().counts();
    let action = reconcile(Arc::new(deleting), east.ctx.clone())
        .await
        .expect("finalize");
    assert_eq!(action, Action::await_change());
    let requests = east.api.take();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.body.clone())
            .collect::<Vec<_>>(),
        vec![json!({"metadata": {"finalizers": [], "resourceVersion": "7"}})],
        "the finalizer goes once Route 53 confirmed the deletion, in the same reconcile"
    );
    assert_eq!(
        events(&requests),
        vec![(
            "DNSRecordDeleted".to_string(),
            format!("Route 53 record {record} deleted (3 record sets, 1 health checks)")
        )]
    );
    assert_eq!(
        route53_since(&east.aws, &before),
        BTreeMap::from([
            ("ChangeResourceRecordSets", 1),
            ("DeleteHealthCheck", 1),
            ("ListHealthChecks", 1),
            ("ListResourceRecordSets", 2),
        ])
    );
    assert_eq!(zone_records(&east.aws, &zone_id).await, west_records);
    assert_eq!(health_check(&east.aws, &east_hc).await, None);
    assert_eq!(
        health_check(&east.aws, &west_hc).await,
        Some((
            "HTTP".to_string(),
            WEST_ALB.to_string(),
            80,
            "/healthz".to_string(),
            10,
            3
        ))
    );
    // West carries on: its next reconcile changes nothing.
    let before = west.aws.route53_calls().counts();
    reconcile(Arc::new(west.api.app()), west.ctx.clone())
        .await
        .expect("west reconcile");
    assert_eq!(paths(&west.api.take()), vec![]);
    assert!(
        route53_since(&west.aws, &before)
            .keys()
            .all(|api| is_read_only(&format!("route53:{api}")))
    );
}

/// Removing spec.dns from a live app deletes the record sets and health check it wrote (from
/// status.dns) and drops DNSReady; after that the app costs no Route 53 request.
#[tokio::test]
async fn removing_dns_deletes_what_it_wrote() {
    let ns = unique("t");
    let aws = aws().await;
    let (zone_id, zone) = hosted_zone(&aws).await;
    let record = format!("shop.{zone}");
    let mut op = operator(&dns_app(&ns, &zone_id, &record, "primary"), aws, ALB).await;
    let hc = dns_status(&op.api.app())
        .health_check_id
        .expect("health check");
    assert_eq!(zone_records(&op.aws, &zone_id).await.len(), 3);

    op.api
        .app
        .lock()
        .expect("lock")
        .get_mut("spec")
        .and_then(|s| s.as_object_mut())
        .map(|s| s.remove("dns"))
        .expect("spec.dns was set");
    reconcile(Arc::new(op.api.app()), op.ctx.clone())
        .await
        .expect("reconcile without dns");
    let requests = op.api.take();
    op.cluster.absorb(&requests);
    let deleted: Vec<(String, String)> = events(&requests)
        .into_iter()
        .filter(|(reason, _)| reason == "DNSRecordDeleted")
        .collect();
    assert_eq!(
        deleted,
        vec![(
            "DNSRecordDeleted".to_string(),
            format!(
                "Route 53 record {record} deleted, the spec no longer asks for it (3 record sets, 1 health checks)"
            )
        )]
    );
    assert_eq!(zone_records(&op.aws, &zone_id).await, Vec::<String>::new());
    assert_eq!(health_check(&op.aws, &hc).await, None);
    let app = op.api.app();
    let status = app.status.clone().expect("status");
    assert_eq!(status.dns, None);
    assert!(status.conditions.iter().all(|c| c.type_ != "DNSReady"));
    assert_eq!(
        status.endpoints.and_then(|e| e.url),
        Some(format!("http://{record}"))
    );

    let (_, action) = converge(&op.api, &mut op.cluster, &op.ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let before = op.aws.route53_calls().counts();
    reconcile(Arc::new(op.api.app()), op.ctx.clone())
        .await
        .expect("stable reconcile");
    assert_eq!(paths(&op.api.take()), vec![]);
    assert_eq!(route53_since(&op.aws, &before), BTreeMap::new());
}

/// Route 53 checker reports from a fake: moto's GetHealthCheckStatus always answers healthy.
#[derive(Debug, Default)]
struct FakeCheckers {
    reports: Mutex<Vec<String>>,
}

impl FakeCheckers {
    fn set(&self, healthy: usize, failing: usize) {
        let mut r = vec!["Success: HTTP Status Code 200, OK".to_string(); healthy];
        r.extend(vec![
            "Failure: HTTP Status Code 503, Service Unavailable"
                .to_string();
            failing
        ]);
        *self.reports.lock().expect("lock") = r;
    }
}

impl halo::aws::CheckerReports for FakeCheckers {
    fn reports<'a>(
        &'a self,
        _health_check_id: &'a str,
    ) -> futures::future::BoxFuture<'a, halo::Result<Vec<String>>> {
        let reports = self.reports.lock().expect("lock").clone();
        Box::pin(async move { Ok(reports) })
    }
}

/// Unhealthy Route 53 checkers (1 of 8 healthy, under Route 53's 18%) keep DNSReady and Ready
/// False with the numbers and a Warning Event; their recovery turns both True with a Normal
/// Event. The status is re-read every 60 s. (The health status is a fake, see above; the
/// record and health check are moto's.)
#[tokio::test]
async fn unhealthy_checkers_keep_the_app_not_ready_and_recovery_is_announced() {
    let ns = unique("t");
    let checkers = Arc::new(FakeCheckers::default());
    checkers.set(1, 7);
    let aws = aws().await.with_checker_reports(checkers.clone());
    let (zone_id, zone) = hosted_zone(&aws).await;
    let record = format!("shop.{zone}");
    let app = dns_app(&ns, &zone_id, &record, "primary");
    let aws = Arc::new(aws);
    let api = fake_api(&app);
    let mut cluster = cluster(&ns, "shop");
    let ctx = context(&api, &cluster, aws.clone()).await;
    converge(&api, &mut cluster, &ctx).await;
    cluster.provision_alb(&ns, "shop", ALB);
    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("reconcile with the ALB");
    let requests = api.take();
    cluster.absorb(&requests);
    let app = api.app();
    let hc = dns_status(&app).health_check_id.expect("health check");
    let unhealthy = format!(
        "{record} (alias A/AAAA to the ALB, set us-east-1); health check {hc}: 1/8 checkers healthy, Route 53 needs more than 18%"
    );
    assert_eq!(
        condition(&app, "DNSReady"),
        ("False", "HealthCheckUnhealthy", unhealthy.as_str())
    );
    assert_eq!(
        condition(&app, "Ready"),
        ("False", "HealthCheckUnhealthy", "not ready: DNSReady")
    );
    assert!(
        events(&requests).contains(&(
            "HealthCheckUnhealthy".to_string(),
            format!("DNSReady=False: {unhealthy}")
        )),
        "{:?}",
        events(&requests)
    );
    let (_, action) = converge(&api, &mut cluster, &ctx).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));

    checkers.set(8, 0);
    let action = reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect("reconcile after recovery");
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let requests = api.take();
    let healthy = format!(
        "{record} (alias A/AAAA to the ALB, set us-east-1); health check {hc}: 8/8 checkers healthy"
    );
    assert_eq!(
        events(&requests),
        vec![
            (
                "Ready".to_string(),
                "Ready=True: all conditions are True".to_string()
            ),
            (
                "HealthCheckHealthy".to_string(),
                format!("DNSReady=True: {healthy}")
            ),
        ]
    );
    let app = api.app();
    assert_eq!(
        condition(&app, "DNSReady"),
        ("True", "HealthCheckHealthy", healthy.as_str())
    );
    assert_eq!(condition(&app, "Ready").0, "True");
    // Only the status changed: no Route 53 write for a change of health.
    assert_eq!(
        paths(&requests)
            .into_iter()
            .filter(|(m, _)| m != "POST")
            .collect::<Vec<_>>(),
        vec![(
            "PATCH".to_string(),
            format!("/apis/halo.dev/v1alpha1/namespaces/{ns}/highlyavailableapps/shop/status")
        )]
    );
}

/// A failover record without a set identifier, on an operator whose region is unknown: halo
/// cannot default the set identifier. The reconcile fails with Ready=False InvalidSpec naming
/// the field and a Warning Event, before any finalizer, child or Route 53 request.
#[tokio::test]
async fn dns_without_a_known_region_is_refused_on_ready() {
    let ns = unique("t");
    let app = dns_app(&ns, "Z0000000000000000000", "shop.example.com", "primary");
    let api = fake_api(&app);
    let cluster = cluster(&ns, "shop");
    // No region anywhere: not configured, none in the SDK configuration.
    let aws = Arc::new(Aws::with_sdk_config(
        AwsConfig::default(),
        aws_config::SdkConfig::builder().build(),
    ));
    let ctx = context(&api, &cluster, aws.clone()).await;
    let err = reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect_err("refused");
    let message = "invalid spec: spec.dns.setIdentifier: required with failover, weighted and latency routing; it defaults to the operator's region, which is unknown: set it, or run halo with AWS_REGION set";
    assert_eq!(err.to_string(), message);
    let requests = api.take();
    assert_eq!(
        paths(&requests)
            .into_iter()
            .filter(|(_, p)| !p.ends_with("/events") && !p.contains("/events/"))
            .collect::<Vec<_>>(),
        vec![(
            "PATCH".to_string(),
            format!("/apis/halo.dev/v1alpha1/namespaces/{ns}/highlyavailableapps/shop/status")
        )]
    );
    assert_eq!(
        events(&requests),
        vec![("InvalidSpec".to_string(), message.to_string())]
    );
    let app = api.app();
    assert_eq!(condition(&app, "Ready"), ("False", "InvalidSpec", message));
    assert_eq!(app.metadata.finalizers, None);
    assert_eq!(aws.route53_calls().total(), 0);
    // Nothing changed: the next attempt writes no status again.
    reconcile(Arc::new(api.app()), ctx.clone())
        .await
        .expect_err("still refused");
    let again = api.take();
    assert_eq!(
        paths(&again)
            .into_iter()
            .filter(|(_, p)| !p.ends_with("/events") && !p.contains("/events/"))
            .collect::<Vec<_>>(),
        vec![]
    );
}

/// Many DNS apps on one operator: GetHealthCheckStatus has a slow bucket of its own (here 2/s,
/// burst 2, to keep the test short; Route 53's own is about 1/s per account). A round of
/// reconciles of 12 converged apps at once does not queue 12 status reads behind each other:
/// reads that would wait more than 2 s are skipped and the last reading stands. No reconcile
/// fails, nothing is written, every app stays DNSReady=True.
#[tokio::test]
async fn many_dns_apps_skip_status_reads_instead_of_queueing() {
    use halo::aws::ratelimit::{Backoff, GET_HEALTH_CHECK_STATUS, Limits, Rate};
    const APPS: usize = 12;
    let limits = Limits {
        overall: Rate::new(50.0, 50),
        operations: vec![(GET_HEALTH_CHECK_STATUS, Rate::new(2.0, 2))],
        backoff: Backoff::default(),
    };
    let aws = Arc::new(aws().await.with_route53_limits(limits));
    let (zone_id, zone) = hosted_zone(&aws).await;
    let mut apps = Vec::new();
    for i in 0..APPS {
        let ns = unique("t");
        let record = format!("shop{i}.{zone}");
        // Distinct set identifiers: moto deletes by set identifier across names.
        let yaml = serde_json::to_value(dns_app(&ns, &zone_id, &record, "primary")).expect("json");
        let mut value = yaml;
        value["spec"]["dns"]["setIdentifier"] = json!(format!("east-{i}"));
        let app: HighlyAvailableApp = serde_json::from_value(value).expect("app");
        let api = fake_api(&app);
        let cluster = cluster(&ns, "shop");
        let ctx = context(&api, &cluster, aws.clone()).await;
        apps.push((ns, api, cluster, ctx));
    }
    let converged =
        futures::future::join_all(apps.iter_mut().map(|(ns, api, cluster, ctx)| async move {
            converge(api, cluster, ctx).await;
            cluster.provision_alb(ns, "shop", ALB);
            converge(api, cluster, ctx).await
        }))
        .await;
    assert!(converged.iter().all(|(quiet, _)| quiet.is_empty()));
    for (_, api, _, _) in &apps {
        assert_eq!(condition(&api.app(), "DNSReady").0, "True");
    }

    // Let the status bucket refill its burst, then reconcile every app at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = aws.route53_calls().counts();
    let started = std::time::Instant::now();
    let actions = futures::future::join_all(
        apps.iter()
            .map(|(_, api, _, ctx)| reconcile(Arc::new(api.app()), ctx.clone())),
    )
    .await;
    let round = started.elapsed();
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, Ok(a) if *a == Action::requeue(Duration::from_secs(60)))),
        "{actions:?}"
    );
    for (_, api, _, _) in &apps {
        assert_eq!(paths(&api.take()), vec![]);
        assert_eq!(condition(&api.app(), "DNSReady").0, "True");
    }
    let calls = route53_since(&aws, &before);
    let reads = calls.get("GetHealthCheckStatus").copied().unwrap_or(0);
    println!(
        "dns: {APPS} apps reconciled at once in {round:?}: {reads} status reads, {} skipped; {calls:?}",
        APPS as u64 - reads
    );
    // Burst 2 plus what 2/s refills within the 2 s a read may wait (0.5, 1, 1.5, 2 s): 6 of
    // 12, or 7 when the round itself took long enough for one more token.
    assert!((6..=7).contains(&reads), "{reads} status reads");
    assert!(
        calls
            .keys()
            .all(|api| is_read_only(&format!("route53:{api}")))
    );
    assert!(
        round < Duration::from_secs(4),
        "queueing every read would take 5 s: {round:?}"
    );
}

/// Moving the record to another set identifier: halo writes the new slot, then deletes the
/// record sets and health check of the old one (named by status.dns), in one reconcile.
#[tokio::test]
async fn moving_the_record_deletes_the_old_slot() {
    let ns = unique("t");
    let aws = aws().await;
    let (zone_id, zone) = hosted_zone(&aws).await;
    let record = format!("shop.{zone}");
    let mut op = operator(&dns_app(&ns, &zone_id, &record, "primary"), aws, ALB).await;
    let old_hc = dns_status(&op.api.app())
        .health_check_id
        .expect("health check");

    op.api.app.lock().expect("lock")["spec"]["dns"]["setIdentifier"] = json!("blue");
    reconcile(Arc::new(op.api.app()), op.ctx.clone())
        .await
        .expect("reconcile with the new set identifier");
    let requests = op.api.take();
    op.cluster.absorb(&requests);
    let app = op.api.app();
    let new = dns_status(&app);
    let new_hc = new.health_check_id.clone().expect("new health check");
    assert_ne!(new_hc, old_hc);
    assert_eq!(new.set_identifier.as_deref(), Some("blue"));
    let alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{ALB}. evaluate=true hc={new_hc}");
    assert_eq!(
        zone_records(&op.aws, &zone_id).await,
        vec![
            format!(
                "_halo-owner.{record}. TXT set=blue failover=PRIMARY ttl=60 \"heritage=halo,owner=us-east-1,resource={ns}/shop\""
            ),
            format!("{record}. A set=blue failover=PRIMARY {alias}"),
            format!("{record}. AAAA set=blue failover=PRIMARY {alias}"),
        ]
    );
    assert_eq!(health_check(&op.aws, &old_hc).await, None);
    // A repeated reason (DNSRecordUpdated, HealthCheckCreated) becomes a PATCH of the
    // Event series of the first; the deletion is new.
    assert!(
        events(&requests).contains(&(
            "DNSRecordDeleted".to_string(),
            format!("Route 53 record {record} deleted, the spec no longer asks for it (3 record sets, 1 health checks)")
        )),
        "{:?}",
        events(&requests)
    );
    assert_eq!(condition(&app, "DNSReady").0, "True");
    let (quiet, _) = converge(&op.api, &mut op.cluster, &op.ctx).await;
    assert!(quiet.is_empty());
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
        .lookup(&kube::runtime::reflector::ObjectRef::new("shop-connection").within(&ns))
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

/// Requests other than Events the fake API server saw.
fn writes_besides_events(requests: &[Seen]) -> Vec<(String, String)> {
    paths(requests)
        .into_iter()
        .filter(|(_, p)| !p.ends_with("/events") && !p.contains("/events/"))
        .collect()
}

/// Reconciles `app` once against `tenancy`; the refusal, the requests and the AWS calls.
async fn refused(
    app: &HighlyAvailableApp,
    tenancy: TenancyCache,
) -> (
    halo::Error,
    Vec<Seen>,
    HighlyAvailableApp,
    BTreeMap<String, u64>,
    u64,
) {
    let ns = app.metadata.namespace.clone().expect("namespace");
    let api = fake_api(app);
    let mut cluster = cluster(&ns, "shop");
    cluster.caches.tenancy = tenancy;
    let aws = Arc::new(aws().await);
    let ctx = context_with(&api, cluster.caches.clone(), aws.clone());
    let err = reconcile(Arc::new(api.app()), ctx)
        .await
        .expect_err("refused");
    let calls = aws.calls().snapshot();
    let route53 = aws.route53_calls().total();
    (err, api.take(), api.app(), calls, route53)
}

/// A namespace no TenancyPolicy names may not write Route 53 records; one whose rule grants
/// another zone may not write into this one. Refused on Ready with the rule's reason, before
/// any AWS call and before the finalizer: nothing exists to clean up.
#[tokio::test]
async fn dns_outside_the_namespace_policy_is_refused_before_any_aws_call() {
    let ns = unique("evil");
    let app = dns_app(&ns, "Z0000000000000000000", "shop.example.com", "primary");
    let (err, requests, after, calls, route53) = refused(&app, TenancyCache::of(vec![])).await;
    assert_eq!(err.metric_label(), "TenancyDNSNotAllowed");
    assert_eq!(
        err.to_string(),
        format!(
            "spec.dns: namespace {ns} may not write the failover Route 53 record shop.example.com (set identifier us-east-1) in hosted zone Z0000000000000000000: no TenancyPolicy names namespace {ns}, so it may only create its own resources (no adoption, no DNS record, no ALB group); the platform team can allow it with a TenancyPolicy rule naming namespace {ns} with dns: {{hostedZoneIds: [Z0000000000000000000], recordNameSuffixes: [shop.example.com], routingPolicies: [failover]}}"
        )
    );
    assert_eq!(
        writes_besides_events(&requests),
        vec![(
            "PATCH".to_string(),
            format!("/apis/halo.dev/v1alpha1/namespaces/{ns}/highlyavailableapps/shop/status")
        )]
    );
    let (status, reason, _) = condition(&after, "Ready");
    assert_eq!((status, reason), ("False", "TenancyDNSNotAllowed"));
    assert_eq!(after.metadata.finalizers, None);
    assert_eq!((calls, route53), (BTreeMap::new(), 0));

    // A rule for the namespace grants another zone only.
    let other_zone = TenancyCache::of(vec![policy(&format!(
        "- name: dns\n  namespaces: [{ns}]\n  dns: {{hostedZoneIds: [Z1111111111111111111], recordNameSuffixes: [example.com]}}\n"
    ))]);
    let (err, _, after, calls, route53) = refused(&app, other_zone).await;
    assert_eq!(err.metric_label(), "TenancyHostedZoneNotAllowed");
    assert_eq!(condition(&after, "Ready").1, "TenancyHostedZoneNotAllowed");
    assert_eq!((calls, route53), (BTreeMap::new(), 0));
}

/// Adoption needs a grant by identifier: namespace B adopting A's retained (untagged) cluster,
/// an untagged cluster nobody granted, or A's cache is refused before any AWS call. With the
/// grant, the cluster is adopted (tagged with B's uid); A's cache, still tagged for A, is
/// refused by ownership even with a grant, and nothing is written to it.
#[tokio::test]
async fn adoption_needs_a_grant_by_identifier() {
    let aws_a = aws().await;
    let legacy = unique("retained");
    let rds = aws_a.rds().await;
    rds.create_db_cluster()
        .db_cluster_identifier(&legacy)
        .engine("aurora-postgresql")
        .master_username("legacyadmin")
        .manage_master_user_password(true)
        .send()
        .await
        .expect("create retained cluster");
    let b = unique("b");
    let adopting = |database: &str| {
        let mut app = data_app(&b, "shop", database);
        app.spec.cache = None;
        app
    };
    let app = adopting(&format!("{{adopt: {{clusterIdentifier: {legacy}}}}}"));

    // No policy, and a policy granting another identifier: refused, no AWS call at all.
    for tenancy in [
        TenancyCache::of(vec![]),
        TenancyCache::of(vec![policy(&format!(
            "- name: adopt\n  namespaces: [{b}]\n  adoption: {{allowed: true, auroraClusters: [legacy-billing]}}\n"
        ))]),
    ] {
        let (err, _, after, calls, _) = refused(&app, tenancy).await;
        assert!(
            err.metric_label().starts_with("TenancyAdoption"),
            "{}",
            err.metric_label()
        );
        assert_eq!(
            condition(&after, "Ready").1,
            err.metric_label(),
            "the refusal is on Ready"
        );
        assert!(err.to_string().starts_with(&format!(
            "spec.database.adopt.clusterIdentifier: namespace {b} may not adopt Aurora cluster {legacy}"
        )));
        assert_eq!(calls, BTreeMap::new());
    }

    // Granted by identifier: adopted and tagged for B.
    let granted = TenancyCache::of(vec![policy(&format!(
        "- name: adopt\n  namespaces: [{b}]\n  adoption: {{allowed: true, auroraClusters: [{legacy}]}}\n"
    ))]);
    let api = fake_api(&app);
    let mut cluster_b = cluster(&b, "shop");
    cluster_b.caches.tenancy = granted;
    let aws_b = Arc::new(aws().await);
    let ctx = context_with(&api, cluster_b.caches.clone(), aws_b.clone());
    let _ = reconcile(Arc::new(api.app()), ctx.clone()).await;
    let _ = reconcile(Arc::new(api.app()), ctx).await;
    let events = events(&api.take());
    assert!(
        events.contains(&(
            "Adopted".to_string(),
            format!("Aurora cluster {legacy}: adopted and tagged")
        )),
        "{events:?}"
    );
    let tags = rds
        .describe_db_clusters()
        .db_cluster_identifier(&legacy)
        .send()
        .await
        .expect("describe")
        .db_clusters()[0]
        .tag_list()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_string(),
                t.value().unwrap_or("").to_string(),
            )
        })
        .collect::<Vec<_>>();
    let uid = api.app().metadata.uid.expect("uid");
    assert!(
        tags.contains(&("halo.dev/uid".to_string(), uid)),
        "{tags:?}"
    );
    assert!(tags.contains(&("halo.dev/namespace".to_string(), b.clone())));

    // A's cache, tagged for A: refused without a grant (no call), and by ownership with one.
    let a = unique("a");
    let app_a = data_app(&a, "shop", "{instances: 1, deletionProtection: false}");
    let api_a = fake_api(&app_a);
    let mut cluster_a = cluster(&a, "shop");
    let ctx_a = context(&api_a, &cluster_a, Arc::new(aws().await)).await;
    converge(&api_a, &mut cluster_a, &ctx_a).await;
    let owner_a = halo::validate::owner_of(&app_a, "default", None).expect("owner");
    let group_id = halo::validate::validate(&app_a, owner_a)
        .expect("valid")
        .names
        .cache_id
        .expect("A's cache id");
    let mut steal = data_app(&b, "web", "{instances: 1}");
    steal.spec.database = None;
    steal.spec.cache = Some(
        serde_saphyr::from_str(&format!("{{adopt: {{replicationGroupId: {group_id}}}}}"))
            .expect("cache spec"),
    );
    let (err, _, _, calls, _) = refused(&steal, TenancyCache::of(vec![])).await;
    assert_eq!(err.metric_label(), "TenancyAdoptionNotAllowed");
    assert_eq!(calls, BTreeMap::new());
    let granted = TenancyCache::of(vec![policy(&format!(
        "- name: adopt\n  namespaces: [{b}]\n  adoption: {{allowed: true, elastiCacheReplicationGroups: [{group_id}]}}\n"
    ))]);
    let (err, _, after, calls, _) = refused(&steal, granted).await;
    assert_eq!(err.metric_label(), "AWSResourceNotOwned");
    assert_eq!(condition(&after, "CacheReady").1, "AWSResourceNotOwned");
    assert!(
        calls.keys().all(|api| is_read_only(api)),
        "only reads on A's cache: {calls:?}"
    );
}
