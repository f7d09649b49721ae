//! The exact requests one reconcile makes, against a mocked API server: none when the app is
//! converged, one apply when a child drifted, one delete when a child is no longer wanted.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::apply::Outcome;
use crate::apply::with_hash;
use crate::fixtures::{FULL, SMALL, app as parse_app, merge};
use crate::meta::{APP_LABEL, ZONE_LABEL};
use crate::render::render;
use crate::status::Observed;
use crate::validate::validate;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

/// Requests seen by the fake API server: (method, path and query).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A fake API server that records every request and echoes the body back.
fn fake_client() -> (Client, Seen) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            record.lock().expect("lock").push((method.clone(), uri));
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let response = if method == "GET" {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&status).unwrap_or_default()))
            } else if method == "DELETE" {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200});
                Response::builder()
                    .status(200)
                    .body(Body::from(serde_json::to_vec(&status).unwrap_or_default()))
            } else {
                Response::builder()
                    .status(200)
                    .body(Body::from(body.to_vec()))
            };
            send.send_response(response.expect("response"));
        }
    });
    (Client::new(service, "default"), seen)
}

struct Writers {
    deployments: Writer<Deployment>,
    services: Writer<Service>,
    pdbs: Writer<PodDisruptionBudget>,
    hpas: Writer<HorizontalPodAutoscaler>,
    ingresses: Writer<Ingress>,
    pods: Writer<Pod>,
    nodes: Writer<Node>,
}

fn caches() -> (Caches, Writers) {
    let (deployments, dw) = reflector::store();
    let (services, sw) = reflector::store();
    let (pdbs, pw) = reflector::store();
    let (hpas, hw) = reflector::store();
    let (ingresses, iw) = reflector::store();
    let (pods, podw) = reflector::store();
    let (nodes, nw) = reflector::store();
    let (secrets, _) = reflector::store();
    (
        Caches {
            deployments,
            services,
            pdbs,
            hpas,
            ingresses,
            pods,
            nodes,
            secrets: secrets.into(),
            // The platform team lets every namespace join the shared ALB group of the full sample.
            tenancy: TenancyCache::of(vec![
                serde_saphyr::from_str(
                    "apiVersion: halo.dev/v1alpha1\nkind: TenancyPolicy\nmetadata: {name: platform}\nspec:\n  rules:\n  - name: alb\n    namespaceSelector: {}\n    ingress: {groupNames: [shared-alb]}\n",
                )
                .expect("policy parses"),
            ]),
        },
        Writers {
            deployments: dw,
            services: sw,
            pdbs: pw,
            hpas: hw,
            ingresses: iw,
            pods: podw,
            nodes: nw,
        },
    )
}

fn put<K: Resource<DynamicType = ()> + Clone>(w: &mut Writer<K>, obj: K) {
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

/// What the API server would hold after halo applied `desired`: our fields, the hash, plus server defaults.
fn as_stored<K: Serialize + DeserializeOwned>(desired: &K, extra: serde_json::Value) -> K {
    let mut v = with_hash(serde_json::to_value(desired).expect("json"));
    merge(&mut v, &extra);
    serde_json::from_value(v).expect("stored object")
}

fn app_with_uid(yaml: &str) -> HighlyAvailableApp {
    let mut app = parse_app(yaml);
    app.metadata.uid = Some("uid-1".into());
    app.metadata.generation = Some(1);
    app
}

/// Fills the caches with a converged cluster for `app`: every child as halo applied it, 3 ready pods over 3 zones.
fn converged(app: &HighlyAvailableApp, w: &mut Writers, deployment_replicas: i32) {
    let owner = owner_of(app, "default", None).expect("owner");
    let validated = validate(app, owner).expect("valid");
    let children = render(&validated);
    let ns = validated.owner.namespace.clone();
    let defaults = serde_json::json!({
        "metadata": {"generation": 1, "resourceVersion": "1"},
        "spec": {"replicas": deployment_replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
        "status": {"observedGeneration": 1, "replicas": deployment_replicas, "updatedReplicas": deployment_replicas,
                   "readyReplicas": deployment_replicas, "availableReplicas": deployment_replicas}
    });
    put(
        &mut w.deployments,
        as_stored(&children.deployment, defaults),
    );
    put(
        &mut w.services,
        as_stored(
            &children.service,
            serde_json::json!({"spec": {"clusterIP": "10.96.0.10", "sessionAffinity": "None"}}),
        ),
    );
    put(&mut w.pdbs, as_stored(&children.pdb, serde_json::json!({})));
    if let Some(hpa) = &children.hpa {
        put(&mut w.hpas, as_stored(hpa, serde_json::json!({})));
    }
    if let Some(ing) = &children.ingress {
        put(&mut w.ingresses, as_stored(ing, serde_json::json!({})));
    }
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    for (i, zone) in zones.iter().enumerate() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i}"), "labels": {ZONE_LABEL: zone}}
        }))
        .expect("node");
        put(&mut w.nodes, node);
    }
    for i in 0..deployment_replicas {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{}-{i}", validated.owner.name), "namespace": ns,
                         "labels": {APP_LABEL: validated.owner.name}},
            "spec": {"nodeName": format!("node-{}", i % 3), "containers": [{"name": "app"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        put(&mut w.pods, pod);
    }
}

/// Gives `app` the status a previous reconcile of these caches would have written.
fn with_current_status(mut app: HighlyAvailableApp, caches: &Caches) -> HighlyAvailableApp {
    let owner = owner_of(&app, "default", None).expect("owner");
    let validated = validate(&app, owner).expect("valid");
    let ns = validated.owner.namespace.clone();
    let name = validated.owner.name.clone();
    let deployment = caches.deployments.get(&ObjectRef::new(&name).within(&ns));
    let ingress = caches.ingresses.get(&ObjectRef::new(&name).within(&ns));
    let observed = Observed {
        deployment: deployment.as_deref(),
        ingress: ingress.as_deref(),
        pods: placements(caches, &ns, &name),
        cluster_zones: cluster_zones(caches),
        error: None,
    };
    let now = Time(Timestamp::from_second(1_000).expect("ts"));
    app.status = Some(crate::status::compute(
        &validated,
        app.metadata.generation,
        &observed,
        None,
        &now,
    ));
    app
}

async fn reconcile_once(
    app: HighlyAvailableApp,
    caches: Caches,
) -> (Vec<(String, String)>, Result<Duration>) {
    let (client, seen) = fake_client();
    let ctx = Context::new(client, caches, Config::default());
    let result = reconcile_app(&app, &ctx).await;
    let requests = seen.lock().expect("lock").clone();
    (requests, result)
}

/// A converged app costs the API server nothing: no apply, no status patch, no event, no read.
#[tokio::test]
async fn noop_reconcile_makes_zero_requests() {
    for (yaml, replicas) in [(SMALL, 3), (FULL, 3)] {
        let (caches, mut w) = caches();
        let app = app_with_uid(yaml);
        converged(&app, &mut w, replicas);
        let app = with_current_status(app, &caches);
        let (requests, result) = reconcile_once(app, caches).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(requests, vec![], "a converged app must cause no requests");
    }
}

/// After the HPA scaled the Deployment to 7, a reconcile leaves it alone.
#[tokio::test]
async fn reconcile_does_not_reset_hpa_scaled_replicas() {
    let (caches, mut w) = caches();
    let app = app_with_uid(FULL);
    converged(&app, &mut w, 7);
    let app = with_current_status(app, &caches);
    let (requests, result) = reconcile_once(app, caches).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, vec![]);
}

/// Someone edited the Deployment's image: exactly one server-side apply puts it back, and the
/// applied body for an autoscaled app carries no replica count.
#[tokio::test]
async fn drift_is_corrected_with_one_apply() {
    let (caches, mut w) = caches();
    let app = app_with_uid(FULL);
    converged(&app, &mut w, 3);
    let app = with_current_status(app, &caches);
    let mut drifted = (*caches
        .deployments
        .get(&ObjectRef::new("shop").within("shop"))
        .expect("cached"))
    .clone();
    if let Some(pod) = drifted.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        pod.containers[0].image = Some("evil:latest".into());
    }
    put(&mut w.deployments, drifted);
    let (requests, result) = reconcile_once(app, caches).await;
    assert!(result.is_ok(), "{result:?}");
    let writes: Vec<_> = requests.iter().filter(|(m, _)| m != "GET").collect();
    assert_eq!(writes.len(), 2, "{requests:?}");
    assert_eq!(writes[0].0, "PATCH");
    assert_eq!(
        writes[0].1,
        "/apis/apps/v1/namespaces/shop/deployments/shop?&force=true&fieldManager=halo"
    );
    // The second write is the "Updated" Event.
    assert_eq!(writes[1].0, "POST");
    assert_eq!(
        writes[1].1,
        "/apis/events.k8s.io/v1/namespaces/shop/events?"
    );
}

/// Removing autoscaling prunes the HPA halo created, and nothing else.
#[tokio::test]
async fn removed_autoscaling_prunes_the_hpa() {
    let (caches, mut w) = caches();
    let app = app_with_uid(FULL);
    converged(&app, &mut w, 3);
    let mut app = app;
    app.spec.autoscaling = None;
    app.spec.replicas = 3;
    // The Deployment now needs replicas back; mark it as already applied so only the HPA changes.
    let owner = owner_of(&app, "default", None).expect("owner");
    let children = render(&validate(&app, owner).expect("valid"));
    put(
        &mut w.deployments,
        as_stored(
            &children.deployment,
            serde_json::json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}}),
        ),
    );
    let app = with_current_status(app, &caches);
    let (requests, result) = reconcile_once(app, caches).await;
    assert!(result.is_ok(), "{result:?}");
    let writes: Vec<_> = requests
        .iter()
        .filter(|(m, _)| m != "GET")
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        writes,
        vec![
            (
                "DELETE",
                "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/shop?"
            ),
            ("POST", "/apis/events.k8s.io/v1/namespaces/shop/events?"),
        ]
    );
}

/// An HPA with the app's name that another controller owns is never pruned.
#[tokio::test]
async fn foreign_objects_are_not_pruned() {
    let (caches, mut w) = caches();
    let app = app_with_uid(SMALL);
    converged(&app, &mut w, 3);
    let foreign: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "someone-else", "controller": true}]},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}
    }))
    .expect("hpa");
    put(&mut w.hpas, foreign);
    let app = with_current_status(app, &caches);
    let (requests, result) = reconcile_once(app, caches).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(requests, vec![]);
}

/// A missing child is created with one server-side apply after checking no foreign object holds its name.
#[tokio::test]
async fn missing_service_is_created() {
    let (caches, mut w) = caches();
    let app = app_with_uid(SMALL);
    converged(&app, &mut w, 3);
    w.services.apply_watcher_event(&watcher::Event::Delete(
        (*caches
            .services
            .get(&ObjectRef::new("web").within("default"))
            .expect("cached"))
        .clone(),
    ));
    let app = with_current_status(app, &caches);
    let (requests, result) = reconcile_once(app, caches).await;
    assert!(result.is_ok(), "{result:?}");
    let got: Vec<_> = requests
        .iter()
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("GET", "/api/v1/namespaces/default/services/web"),
            (
                "PATCH",
                "/api/v1/namespaces/default/services/web?&force=true&fieldManager=halo"
            ),
            ("POST", "/apis/events.k8s.io/v1/namespaces/default/events?"),
        ]
    );
}

/// A new app's children are announced in one Event, not one per child: Events are API writes,
/// and five per app made halo converge many apps far slower than the applies alone.
#[tokio::test]
async fn new_app_gets_one_event_for_all_its_children() {
    let (caches, _w) = caches();
    let app = app_with_uid(FULL);
    let owner = owner_of(&app, "default", None).expect("owner");
    let children = render(&validate(&app, owner).expect("valid"));
    let applies = 3
        + usize::from(children.hpa.is_some())
        + usize::from(children.ingress.is_some())
        + usize::from(children.secret.is_some());
    // The fake server echoes a status patch's body, which is no whole app: the reconcile
    // fails right after sending it, which is past the step under test.
    let (requests, _) = reconcile_once(app, caches).await;
    let writes: Vec<_> = requests
        .iter()
        .filter(|(m, _)| m != "GET")
        .map(|(m, p)| (m.as_str(), p.split('?').next().unwrap_or_default()))
        .collect();
    let status = writes
        .iter()
        .position(|(_, p)| p.ends_with("/status"))
        .expect("a status patch");
    let before_status = &writes[..status];
    let events = |ws: &[(&str, &str)]| ws.iter().filter(|(_, p)| p.ends_with("/events")).count();
    assert_eq!(events(before_status), 1, "{writes:?}");
    assert_eq!(before_status.len(), applies + 1, "{writes:?}");
    assert!(
        applies >= 5,
        "the fixture has at least five children: {applies}"
    );
}

/// Right after a (re)start a reconcile waits until every cache has listed: on a cache still
/// listing it would GET every child and write a status that calls a converged app broken.
/// Every waiting reconcile goes on once they have (a store's own readiness future wakes only
/// its last poller, which left all but one waiting forever).
#[tokio::test]
async fn reconciles_wait_until_the_caches_listed() {
    let (caches, mut w) = caches();
    let app = Arc::new(app_with_uid(SMALL));
    let (client, seen) = fake_client();
    let ctx = Arc::new(Context::new(client, caches, Config::default()));
    let waiting: Vec<_> = (0..4)
        .map(|_| tokio::spawn(reconcile(app.clone(), ctx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        waiting.iter().all(|r| !r.is_finished()),
        "reconciled before the caches listed"
    );
    assert_eq!(seen.lock().expect("lock").clone(), vec![]);
    w.deployments.apply_watcher_event(&watcher::Event::InitDone);
    w.services.apply_watcher_event(&watcher::Event::InitDone);
    w.pdbs.apply_watcher_event(&watcher::Event::InitDone);
    w.hpas.apply_watcher_event(&watcher::Event::InitDone);
    w.ingresses.apply_watcher_event(&watcher::Event::InitDone);
    w.pods.apply_watcher_event(&watcher::Event::InitDone);
    w.nodes.apply_watcher_event(&watcher::Event::InitDone);
    // Listed (and empty): now every reconcile runs (and creates the children).
    for r in waiting {
        let done = tokio::time::timeout(Duration::from_secs(10), r).await;
        assert!(
            done.is_ok(),
            "a reconcile still waits after the caches listed"
        );
    }
    assert!(!seen.lock().expect("lock").is_empty());
}

/// The apply Event names every child that changed; its reason is the shared outcome, or
/// "Applied" for a mix; nothing changed, no Event.
#[test]
fn applied_event_summarises_the_children() {
    assert_eq!(applied_event(&[]), None);
    assert_eq!(
        applied_event(&[
            ("Deployment", "web", Outcome::Created),
            ("Service", "web", Outcome::Created),
        ]),
        Some((
            "Created",
            "Deployment web created; Service web created".to_string()
        ))
    );
    assert_eq!(
        applied_event(&[
            ("Deployment", "web", Outcome::Updated),
            ("HorizontalPodAutoscaler", "web", Outcome::Pruned),
        ]),
        Some((
            "Applied",
            "Deployment web updated; HorizontalPodAutoscaler web deleted, the spec no longer asks for it"
                .to_string()
        ))
    );
    let long = "x".repeat(300);
    let many: Vec<_> = ["Deployment", "Service", "PodDisruptionBudget", "Ingress"]
        .iter()
        .map(|k| (*k, long.as_str(), Outcome::Created))
        .collect();
    let (_, note) = applied_event(&many).expect("an event");
    assert!(
        note.len() <= 1024 && note.ends_with("..."),
        "{}",
        note.len()
    );
}

/// Failures back off exponentially from 5 s to a 5 min cap, with at most 10% jitter.
#[test]
fn backoff_grows_and_caps() {
    assert_eq!(backoff(1, 0), Duration::from_secs(5));
    assert_eq!(backoff(2, 0), Duration::from_secs(10));
    assert_eq!(backoff(4, 0), Duration::from_secs(40));
    assert_eq!(backoff(20, 0), Duration::from_secs(300));
    let jittered = backoff(1, 499);
    assert!(jittered >= Duration::from_secs(5) && jittered <= Duration::from_millis(5500));
}
