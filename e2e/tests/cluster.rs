//! halo end to end, against the real kube-apiserver, controller manager, scheduler and
//! simulated nodes that `e2e/up` started. Run by `scripts/test` with `--test-threads=1`:
//! the zone-failure and crash tests disturb the whole cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use halo::api::HighlyAvailableApp;
use halo_e2e::{
    RESYNC_SECONDS, TestNamespace, ZONES, audit, client, condition, kubectl, operator,
    ready_pods_per_zone, sample_app, wait_for,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(120);
/// The operator's default leader Lease (HALO_LEASE_NAME).
const LEASE_NAME: &str = "halo-leader";

/// Makes sure the operator under test is one the suite started (known resync period, fresh log).
async fn setup() -> anyhow::Result<Client> {
    let marker = halo_e2e::state_dir().join("pids/halo.suite");
    let ours = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let running = operator::pid().filter(|p| operator::alive(*p));
    if ours.is_none() || ours != running {
        let pid = operator::restart().await?;
        std::fs::write(&marker, format!("{pid}\n"))?;
    }
    client().await
}

async fn create_app(
    client: &Client,
    app: &HighlyAvailableApp,
) -> anyhow::Result<HighlyAvailableApp> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns);
    Ok(api.create(&PostParams::default(), app).await?)
}

/// Waits until the app's status describes its current generation and `type_` has `status`.
async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<HighlyAvailableApp> {
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("{ns}/{name} {type_}={status}"), timeout, || {
        let api = api.clone();
        async move {
            let app = api.get(name).await?;
            let current =
                app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation;
            Ok((current && condition(&app, type_).is_some_and(|c| c.0 == status)).then_some(app))
        }
    })
    .await
}

async fn wait_spread(
    client: &Client,
    ns: &str,
    name: &str,
    want: &[i32],
) -> anyhow::Result<BTreeMap<String, i32>> {
    let want: BTreeMap<String, i32> = ZONES
        .iter()
        .zip(want)
        .filter(|(_, n)| **n > 0)
        .map(|(z, n)| (z.to_string(), *n))
        .collect();
    wait_for(
        &format!("{ns}/{name} ready pods per zone {want:?}"),
        CONVERGE,
        || {
            let want = want.clone();
            async move {
                let got = ready_pods_per_zone(client, ns, name).await?;
                Ok((got == want).then_some(got))
            }
        },
    )
    .await
}

fn owned_by(obj: &impl Resource, app: &HighlyAvailableApp) -> bool {
    obj.meta().owner_references.iter().flatten().any(|r| {
        Some(&r.uid) == app.metadata.uid.as_ref()
            && r.controller == Some(true)
            && r.kind == "HighlyAvailableApp"
    })
}

fn has_common_labels(obj: &impl Resource, name: &str) -> bool {
    let labels = obj.meta().labels.clone().unwrap_or_default();
    labels
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("halo")
        && labels.get("app.kubernetes.io/instance").map(String::as_str) == Some(name)
        && labels.get("halo.dev/app").map(String::as_str) == Some(name)
}

/// 1. The small sample (plus an ingress) converges: children with owner references and labels,
/// pods spread 1/1/1 by the real scheduler, status and printer columns right.
#[tokio::test]
async fn s1_small_sample_converges() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-converge").await?;
    let app = sample_app(
        "web",
        &ns.name,
        json!({"spec": {"ingress": {"host": "web.example.com"}}}),
    )?;
    let created = create_app(&client, &app).await?;
    let done = wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;
    assert_eq!(
        wait_spread(&client, &ns.name, "web", &[1, 1, 1])
            .await?
            .len(),
        3
    );

    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await?;
    let service = Api::<Service>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await?;
    let pdb = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await?;
    let ingress = Api::<Ingress>::namespaced(client.clone(), &ns.name)
        .get("web")
        .await?;
    assert!(owned_by(&deployment, &created) && has_common_labels(&deployment, "web"));
    assert!(owned_by(&service, &created) && has_common_labels(&service, "web"));
    assert!(owned_by(&pdb, &created) && has_common_labels(&pdb, "web"));
    assert!(owned_by(&ingress, &created) && has_common_labels(&ingress, "web"));
    assert_eq!(
        ingress.spec.and_then(|s| s.ingress_class_name).as_deref(),
        Some("alb")
    );
    // The real disruption controller computes the budget from halo's PDB.
    let pdb_ok = wait_for("the PDB to allow 1 disruption", CONVERGE, || {
        let api = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name);
        async move {
            Ok(api
                .get("web")
                .await?
                .status
                .filter(|s| s.disruptions_allowed == 1)
                .map(|_| ()))
        }
    })
    .await;
    assert!(pdb_ok.is_ok(), "{pdb_ok:?}");

    let status = done.status.clone().expect("status");
    assert_eq!(
        condition(&done, "ComputeReady").map(|c| c.2),
        Some("3/3 replicas available".into())
    );
    // No ALB controller runs locally: the Ingress never gets a hostname, so IngressReady stays False.
    assert_eq!(
        condition(&done, "IngressReady").map(|c| c.1),
        Some("LoadBalancerPending".into())
    );
    let ready = wait_condition(&client, &ns.name, "web", "ZoneResilient", "True", CONVERGE).await?;
    let zones = ready.status.clone().expect("status").zones;
    assert_eq!(
        zones
            .iter()
            .map(|z| (z.name.as_str(), z.ready))
            .collect::<Vec<_>>(),
        vec![("us-east-1a", 1), ("us-east-1b", 1), ("us-east-1c", 1)]
    );
    assert_eq!(status.selector.as_deref(), Some("halo.dev/app=web"));

    let table = kubectl(&["get", "haapp", "-n", &ns.name]).await?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "READY", "REPLICAS", "ZONES", "URL", "AGE"]
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..5],
        &["web", "False", "3", "1/1/1", "http://web.example.com"]
    );
    println!("kubectl get haapp:\n{table}");
    ns.cleanup().await
}

/// 2. Scale 3 -> 6 gives 2/2/2; an image change rolls out without dropping below 6 available;
/// adding autoscaling creates the HPA and removing it prunes the HPA.
#[tokio::test]
async fn s2_scale_rollout_and_prune() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-scale").await?;
    create_app(&client, &sample_app("web", &ns.name, json!({}))?).await?;
    wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;

    kubectl(&["scale", "haapp", "web", "-n", &ns.name, "--replicas=6"]).await?;
    wait_spread(&client, &ns.name, "web", &[2, 2, 2]).await?;
    wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;

    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let watch = {
        let deployments = deployments.clone();
        tokio::spawn(async move {
            let mut min_available = i32::MAX;
            let start = Instant::now();
            while start.elapsed() < CONVERGE {
                if let Ok(d) = deployments.get("web").await {
                    let s = d.status.unwrap_or_default();
                    min_available = min_available.min(s.available_replicas.unwrap_or(0));
                    let image = d
                        .spec
                        .and_then(|s| s.template.spec)
                        .map(|p| p.containers[0].image.clone());
                    if image == Some(Some("registry.example.com/web:1.1.0".into()))
                        && s.updated_replicas == Some(6)
                        && s.available_replicas == Some(6)
                        && s.replicas == Some(6)
                    {
                        return (min_available, true);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (min_available, false)
        })
    };
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "registry.example.com/web:1.1.0"}})),
    )
    .await?;
    let (min_available, finished) = watch.await?;
    assert!(finished, "rollout did not finish");
    assert_eq!(
        min_available, 6,
        "availability dropped below the desired count during the rollout"
    );
    println!("rollout to 1.1.0: lowest available replicas seen = {min_available} of 6");

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns.name);
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resources": {"requests": {"cpu": "100m"}}, "autoscaling": {"minReplicas": 3, "maxReplicas": 9}, "ingress": {"host": "web.example.com"}}})),
    )
    .await?;
    wait_for("the HPA to exist", CONVERGE, || {
        let hpas = hpas.clone();
        async move { Ok(hpas.get_opt("web").await?.map(|_| ())) }
    })
    .await?;
    apps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"autoscaling": null, "ingress": null}})),
    )
    .await?;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the HPA and the Ingress to be pruned", CONVERGE, || {
        let (hpas, ingresses) = (hpas.clone(), ingresses.clone());
        async move {
            let gone =
                hpas.get_opt("web").await?.is_none() && ingresses.get_opt("web").await?.is_none();
            Ok(gone.then_some(()))
        }
    })
    .await?;
    ns.cleanup().await
}

/// 3. Every bad spec of the table is refused by the API server with its field and message,
/// and nothing is created.
#[tokio::test]
async fn s3_bad_specs_are_refused_by_the_api_server() -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        patch: serde_json::Value,
        field: String,
        message: String,
    }
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-bad").await?;
    let text =
        std::fs::read_to_string(halo_e2e::repo_root().join("operator/tests/data/bad-specs.yaml"))?;
    let cases: Vec<Case> = serde_saphyr::from_str(&text)?;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<HighlyAvailableApp>(&()),
    );
    let mut failures = Vec::new();
    for case in &cases {
        let mut manifest = serde_json::to_value(sample_app("bad", &ns.name, json!({}))?)?;
        halo_e2e::merge(&mut manifest, &case.patch);
        let object: kube::api::DynamicObject = serde_json::from_value(manifest)?;
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let msg = status.message;
                let field_ok = case.field.is_empty() || msg.contains(&format!("{}: ", case.field));
                if status.code != 422 || !field_ok || !msg.contains(&case.message) {
                    failures.push(format!(
                        "{}: got {} {msg:?}, want field {:?} and {:?}",
                        case.name, status.code, case.field, case.message
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let left = Api::<HighlyAvailableApp>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await?;
    assert_eq!(left.items.len(), 0);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await?;
    assert_eq!(deployments.items.len(), 0);
    println!(
        "{} bad specs refused by the API server with their messages",
        cases.len()
    );
    ns.cleanup().await
}

/// 4. Deleting the app removes every child through the real garbage collector.
#[tokio::test]
async fn s4_delete_removes_all_children() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-delete").await?;
    let app = sample_app(
        "web",
        &ns.name,
        json!({"spec": {"ingress": {"host": "web.example.com"}, "resources": {"requests": {"cpu": "100m"}}, "autoscaling": {"minReplicas": 3, "maxReplicas": 6}}}),
    )?;
    create_app(&client, &app).await?;
    wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;
    Api::<HighlyAvailableApp>::namespaced(client.clone(), &ns.name)
        .delete("web", &DeleteParams::foreground())
        .await?;
    let selector =
        ListParams::default().labels("app.kubernetes.io/managed-by=halo,halo.dev/app=web");
    let c = client.clone();
    let n = ns.name.clone();
    wait_for("every child to be garbage collected", CONVERGE, || {
        let (c, n, selector) = (c.clone(), n.clone(), selector.clone());
        async move {
            let counts = [
                Api::<Deployment>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<Service>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<PodDisruptionBudget>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<HorizontalPodAutoscaler>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<Ingress>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<ReplicaSet>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<Pod>::namespaced(c.clone(), &n)
                    .list(&selector)
                    .await?
                    .items
                    .len(),
                Api::<HighlyAvailableApp>::namespaced(c.clone(), &n)
                    .list(&ListParams::default())
                    .await?
                    .items
                    .len(),
            ];
            Ok((counts.iter().all(|n| *n == 0)).then_some(()))
        }
    })
    .await?;
    ns.cleanup().await
}

/// 6. Steady state: after convergence, a full resync period passes with zero writes by halo.
#[tokio::test]
async fn s6_steady_state_makes_zero_writes() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-steady").await?;
    let before = audit::mark();
    create_app(
        &client,
        &sample_app(
            "web",
            &ns.name,
            json!({"spec": {"ingress": {"host": "web.example.com"}}}),
        )?,
    )
    .await?;
    wait_condition(&client, &ns.name, "web", "ZoneResilient", "True", CONVERGE).await?;
    // Let the last status write and its watch events settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The counting itself works: converging the app took writes.
    let converging = audit::since(before, halo_e2e::HALO_USER_AGENT)?
        .iter()
        .filter(|e| audit::is_write(e))
        .count();
    assert!(
        converging >= 4,
        "expected halo's writes while converging in the audit log, found {converging}"
    );
    let mark = audit::mark();
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    // Only this app's namespace (and cluster-scoped requests): the audit log may flush earlier
    // tests' entries late, and their namespaces' teardown is not this app's steady state.
    let own = format!("/namespaces/{}/", ns.name);
    let entries: Vec<_> = audit::since(mark, halo_e2e::HALO_USER_AGENT)?
        .into_iter()
        .filter(|e| e.request_uri.contains(&own) || !e.request_uri.contains("/namespaces/"))
        .collect();
    // Renewing the leader Lease is the price of running two replicas; it is counted apart.
    let (lease, other): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|e| e.request_uri.contains("/leases/"));
    let writes: Vec<_> = other.iter().filter(|e| audit::is_write(e)).collect();
    println!(
        "converging took {converging} writes; steady state over {} s (resync {RESYNC_SECONDS} s): halo made {} writes, {} other requests, and {} leader-lease requests",
        RESYNC_SECONDS + 5,
        writes.len(),
        other.len() - writes.len(),
        lease.len()
    );
    assert!(
        writes.is_empty(),
        "halo wrote during steady state: {writes:?}"
    );
    ns.cleanup().await
}

/// 7. kill -9 in the middle of a reconcile: after a restart the app converges with exactly one
/// of each child and nothing orphaned.
#[tokio::test]
async fn s7_operator_survives_kill_9() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-crash").await?;
    let app = sample_app(
        "web",
        &ns.name,
        json!({"spec": {"ingress": {"host": "web.example.com"}, "resources": {"requests": {"cpu": "100m"}}, "autoscaling": {"minReplicas": 3, "maxReplicas": 6}}}),
    )?;
    let created = create_app(&client, &app).await?;
    // Kill as soon as the first child appears: the reconcile is mid-way through its applies.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the first child", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { Ok(deployments.get_opt("web").await?.map(|_| ())) }
    })
    .await?;
    operator::kill("KILL").await?;
    let pid = operator::start().await?;
    std::fs::write(
        halo_e2e::state_dir().join("pids/halo.suite"),
        format!("{pid}\n"),
    )?;
    wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;
    let all = ListParams::default();
    let deployments = deployments.list(&all).await?.items;
    let services = Api::<Service>::namespaced(client.clone(), &ns.name)
        .list(&all)
        .await?
        .items;
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .list(&all)
        .await?
        .items;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns.name)
        .list(&all)
        .await?
        .items;
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &ns.name)
        .list(&all)
        .await?
        .items;
    assert_eq!(
        [
            deployments.len(),
            services.len(),
            pdbs.len(),
            hpas.len(),
            ingresses.len()
        ],
        [1, 1, 1, 1, 1],
        "exactly one of each child"
    );
    assert!(deployments.iter().all(|o| owned_by(o, &created)));
    assert!(services.iter().all(|o| owned_by(o, &created)));
    assert!(pdbs.iter().all(|o| owned_by(o, &created)));
    assert!(hpas.iter().all(|o| owned_by(o, &created)));
    assert!(ingresses.iter().all(|o| owned_by(o, &created)));
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), &ns.name)
        .list(&all)
        .await?
        .items;
    assert_eq!(
        rs.len(),
        1,
        "one ReplicaSet: no spurious rollout after the restart"
    );
    ns.cleanup().await
}

/// 5. Zone failure: one zone goes dark; its pods move to the surviving zones, `ZoneResilient`
/// turns False naming the zone, and True again once the zone is back.
#[tokio::test]
async fn s9_zone_failure_and_recovery() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-zone").await?;
    let app = sample_app(
        "web",
        &ns.name,
        json!({"spec": {"replicas": 6, "failureReaction": {"tolerationSeconds": 5}}}),
    )?;
    create_app(&client, &app).await?;
    let dead = ZONES[0];
    let nodes: Api<Node> = Api::all(client.clone());
    // A previous run that died mid-outage may have left the zone dark.
    set_zone_alive(&nodes, dead, true).await?;
    wait_spread(&client, &ns.name, "web", &[2, 2, 2]).await?;
    wait_condition(&client, &ns.name, "web", "ZoneResilient", "True", CONVERGE).await?;
    // The outage runs in its own future so the zone is revived even when an assertion fails.
    let outage = async {
        let dark = Instant::now();
        set_zone_alive(&nodes, dead, false).await?;
        let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
        let expected =
            format!("ready pods span 2 zones (us-east-1b, us-east-1c), need 3; none ready in {dead}");
        let seen = wait_for(
            "ZoneResilient=False naming the dead zone",
            Duration::from_secs(180),
            || {
                let (apps, expected) = (apps.clone(), expected.clone());
                async move {
                    let app = apps.get("web").await?;
                    Ok(condition(&app, "ZoneResilient").filter(|c| c.0 == "False" && c.2 == expected))
                }
            },
        )
        .await?;
        println!(
            "ZoneResilient=False after {:.1} s: {}: {}",
            dark.elapsed().as_secs_f64(),
            seen.1,
            seen.2
        );
        anyhow::ensure!(seen.1 == "InsufficientZones", "unexpected reason {}", seen.1);

        let c = client.clone();
        let n = ns.name.clone();
        let moved = wait_for(
            "6 ready pods in the surviving zones",
            Duration::from_secs(240),
            || {
                let (c, n) = (c.clone(), n.clone());
                async move {
                    let per_zone = ready_pods_per_zone(&c, &n, "web").await?;
                    let total: i32 = per_zone.values().sum();
                    Ok((total == 6 && !per_zone.contains_key(dead)).then_some(per_zone))
                }
            },
        )
        .await?;
        let seconds = dark.elapsed().as_secs_f64();
        println!(
            "zone {dead} dark -> last replacement pod Ready elsewhere: {seconds:.1} s; spread now {moved:?}"
        );
        anyhow::Ok(())
    }
    .await;
    set_zone_alive(&nodes, dead, true).await?;
    outage?;
    let back = Instant::now();
    let healed = wait_condition(
        &client,
        &ns.name,
        "web",
        "ZoneResilient",
        "True",
        Duration::from_secs(240),
    )
    .await?;
    println!(
        "zone {dead} back -> ZoneResilient=True after {:.1} s: {}",
        back.elapsed().as_secs_f64(),
        condition(&healed, "ZoneResilient")
            .map(|c| c.2)
            .unwrap_or_default()
    );
    ns.cleanup().await
}

/// Kills or revives a zone: without the `kwok.x-k8s.io/node` label kwok no longer selects its
/// nodes and stops renewing their leases, so the node lifecycle controller marks them unreachable.
async fn set_zone_alive(nodes: &Api<Node>, zone: &str, alive: bool) -> anyhow::Result<()> {
    let value = if alive {
        json!("fake")
    } else {
        serde_json::Value::Null
    };
    let list = nodes
        .list(&ListParams::default().labels(&format!("topology.kubernetes.io/zone={zone}")))
        .await?;
    for node in list {
        let patch = Patch::Merge(json!({"metadata": {"labels": {"kwok.x-k8s.io/node": value}}}));
        nodes
            .patch(&node.name_any(), &PatchParams::default(), &patch)
            .await?;
    }
    Ok(())
}

/// 8. Two operators run at once: only the lease holder writes; `kill -9` of the leader hands
/// over to the other within the lease duration, which then reconciles; /metrics shows it.
#[tokio::test]
async fn s8_leader_election_hands_over() -> anyhow::Result<()> {
    let client = setup().await?;
    operator::kill("TERM").await?;
    let (addr_a, addr_b) = (
        format!("127.0.0.1:{}", operator::metrics_port(1)),
        format!("127.0.0.1:{}", operator::metrics_port(2)),
    );
    let instances = [("halo-a", addr_a.as_str()), ("halo-b", addr_b.as_str())];
    for (name, addr) in instances {
        operator::start_named(
            name,
            &[
                ("HALO_METRICS_ADDR", addr.to_string()),
                ("HALO_LEASE_DURATION_SECONDS", "10".into()),
            ],
        )
        .await?;
    }
    let outcome = async {
        let leader = wait_for("one of two operators to lead", Duration::from_secs(60), || async {
            let mut leading = vec![];
            for (name, addr) in instances {
                if let Ok(m) = operator::scrape(addr).await
                    && operator::sample(&m, "halo_leader") == Some(1.0)
                {
                    leading.push((name, addr));
                }
            }
            Ok((leading.len() == 1).then(|| leading[0]))
        })
        .await?;
        let follower = instances.into_iter().find(|i| i.0 != leader.0).unwrap_or(instances[1]);
        println!("leader: {}, follower: {}", leader.0, follower.0);

        let ns = TestNamespace::create(&client, "e2e-leader").await?;
        let mark = audit::mark();
        create_app(&client, &sample_app("web", &ns.name, json!({}))?).await?;
        wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;
        let writes: Vec<_> = audit::since(mark, halo_e2e::HALO_USER_AGENT)?.into_iter().filter(audit::is_write).collect();
        let by = |name: &str| writes.iter().filter(|e| e.user_agent.contains(&format!("({name})"))).count();
        println!("writes while both ran: leader {} , follower {}", by(leader.0), by(follower.0));
        anyhow::ensure!(by(leader.0) > 0, "the leader made no writes");
        anyhow::ensure!(by(follower.0) == 0, "the follower wrote {} times", by(follower.0));
        let metrics = operator::scrape(leader.1).await?;
        anyhow::ensure!(operator::sample(&metrics, r#"halo_reconciles_total{result="ok"}"#).unwrap_or(0.0) >= 1.0, "no reconcile counted:\n{metrics}");
        anyhow::ensure!(operator::sample(&metrics, r#"halo_apps{ready="False"}"#).is_some() || operator::sample(&metrics, r#"halo_apps{ready="True"}"#).is_some(), "no apps gauge:\n{metrics}");

        operator::kill_named(leader.0, "KILL").await?;
        let killed = Instant::now();
        wait_for("the follower to take the lease", Duration::from_secs(60), || async {
            Ok(operator::scrape(follower.1).await.ok().and_then(|m| operator::sample(&m, "halo_leader")).filter(|v| *v == 1.0))
        })
        .await?;
        let takeover = killed.elapsed().as_secs_f64();
        let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
        apps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 6}}))).await?;
        wait_spread(&client, &ns.name, "web", &[2, 2, 2]).await?;
        println!("leader killed -> follower leads after {takeover:.1} s (lease 10 s); reconciliation resumed: 6 pods 2/2/2 after {:.1} s", killed.elapsed().as_secs_f64());

        // A leader whose lease is taken stops writing at once, stays up as a follower, and
        // leads again once the lease is free. Another holder takes it here for 10 s.
        let leases: Api<Lease> = Api::namespaced(client.clone(), &operator::lease_namespace());
        let now = serde_json::to_value(MicroTime(k8s_openapi::jiff::Timestamp::now()))?;
        leases
            .patch(
                LEASE_NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holderIdentity": "e2e-intruder", "leaseDurationSeconds": 10, "acquireTime": now, "renewTime": now}})),
            )
            .await?;
        let stolen = Instant::now();
        wait_for("the robbed leader to step down", Duration::from_secs(30), || async {
            Ok(operator::scrape(follower.1).await.ok().and_then(|m| operator::sample(&m, "halo_leader")).filter(|v| *v == 0.0))
        })
        .await?;
        let stepped_down = stolen.elapsed().as_secs_f64();
        // While robbed, a spec change must not reach the Deployment. The Deployment is read
        // before the metric each round, so a 3 seen while the metric still says follower can
        // only be a write made without the lease.
        apps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        let written_while_robbed = wait_for("the robbed replica to lead again", Duration::from_secs(60), || {
            let deployments = deployments.clone();
            async move {
                let replicas = deployments.get("web").await?.spec.and_then(|s| s.replicas);
                let leading = operator::scrape(follower.1).await.ok().and_then(|m| operator::sample(&m, "halo_leader"));
                Ok(match (replicas, leading) {
                    (Some(6), Some(1.0)) | (Some(3), Some(1.0)) => Some(false),
                    (Some(6), _) => None,
                    _ => Some(true),
                })
            }
        })
        .await?;
        let regained = stolen.elapsed().as_secs_f64();
        anyhow::ensure!(!written_while_robbed, "the Deployment changed while another process held the lease");
        let pid = operator::pid_of(follower.0).context("no pid of the follower")?;
        anyhow::ensure!(operator::alive(pid), "{} exited after losing its lease", follower.0);
        wait_spread(&client, &ns.name, "web", &[1, 1, 1]).await?;
        println!("lease taken -> stepped down after {stepped_down:.1} s, no write while robbed, led again after {regained:.1} s in the same process, 3 pods 1/1/1");
        ns.cleanup().await
    }
    .await;
    for (name, _) in instances {
        operator::kill_named(name, "TERM").await?;
    }
    let pid = operator::start().await?;
    std::fs::write(
        halo_e2e::state_dir().join("pids/halo.suite"),
        format!("{pid}\n"),
    )?;
    outcome
}

/// A fresh public hosted zone `<ns>-<millis>.example.com` in the emulator: (id, name).
async fn hosted_zone(r53: &aws_sdk_route53::Client, ns: &str) -> anyhow::Result<(String, String)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let zone = format!("{ns}-{stamp}.example.com");
    let created = r53
        .create_hosted_zone()
        .name(format!("{zone}."))
        .caller_reference(format!("{zone}-e2e"))
        .send()
        .await?;
    let zone_id = created
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .ok_or_else(|| anyhow::anyhow!("CreateHostedZone named no zone"))?;
    Ok((zone_id, zone))
}

/// 5b. The data sample (Aurora + ElastiCache against the AWS emulator) converges to Ready, the
/// pods get the connection Secret through envFrom, and deleting the app completes once AWS
/// confirms the cleanup (the final snapshot is checked by the emulator tests).
#[tokio::test]
async fn s5_data_sample_converges_against_the_emulator() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the suite through scripts/test, or `eval \"$(e2e/moto env)\"` after `e2e/moto start`"
    );
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-data").await?;
    let text = std::fs::read_to_string(halo_e2e::repo_root().join("config/samples/data.yaml"))?;
    let mut value: serde_json::Value = serde_saphyr::from_str(&text)?;
    halo_e2e::merge(&mut value, &json!({"metadata": {"namespace": ns.name}}));
    let app: HighlyAvailableApp = serde_json::from_value(value)?;
    let name = app.name_any();
    create_app(&client, &app).await?;
    for type_ in ["DatabaseReady", "CacheReady", "ComputeReady", "Ready"] {
        wait_condition(
            &client,
            &ns.name,
            &name,
            type_,
            "True",
            Duration::from_secs(180),
        )
        .await?;
    }
    let secret_name = format!("{name}-connection");
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns.name)
        .get(&secret_name)
        .await?;
    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
    for key in [
        "DATABASE_HOST",
        "DATABASE_READER_HOST",
        "DATABASE_PORT",
        "DATABASE_NAME",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_TLS",
    ] {
        anyhow::ensure!(
            keys.iter().any(|k| k == key),
            "{key} missing from {secret_name}: {keys:?}"
        );
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&name)
        .await?;
    let env_from = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].env_from.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        env_from
            .iter()
            .any(|e| e.secret_ref.as_ref().map(|r| r.name.as_str()) == Some(secret_name.as_str())),
        "the Deployment must load {secret_name} through envFrom: {env_from:?}"
    );
    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    apps.delete(&name, &DeleteParams::default()).await?;
    wait_for(
        "the app to be deleted after its AWS cleanup",
        Duration::from_secs(180),
        || {
            let (apps, name) = (apps.clone(), name.clone());
            async move { Ok(apps.get_opt(&name).await?.is_none().then_some(())) }
        },
    )
    .await?;
    ns.cleanup().await
}

/// The record sets of a hosted zone in the emulator, except NS and SOA, as
/// `name type set-identifier failover target health-check`, sorted.
async fn zone_records(r53: &aws_sdk_route53::Client, zone_id: &str) -> anyhow::Result<Vec<String>> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .max_items(300)
        .send()
        .await?;
    let mut lines: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA"))
        .map(|r| {
            let target = match r.alias_target() {
                Some(a) => format!("alias={}:{}", a.hosted_zone_id(), a.dns_name()),
                None => r
                    .resource_records()
                    .iter()
                    .map(|v| v.value())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            format!(
                "{} {} set={} failover={} {target} hc={}",
                r.name(),
                r.r#type().as_str(),
                r.set_identifier().unwrap_or("-"),
                r.failover().map(|f| f.as_str()).unwrap_or("-"),
                r.health_check_id().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// 10. spec.dns against the AWS emulator: with the Ingress but no ALB yet, DNSReady=False
/// LoadBalancerPending and nothing in the zone; once the "AWS Load Balancer Controller" (this
/// test, patching the Ingress status) publishes the ALB hostname, halo writes the primary
/// failover alias records, the ownership record and a health check, routes the checkers'
/// `Host: <ALB>` to the app, and DNSReady and Ready turn True with the record's URL in
/// `kubectl get haapp`; deleting the app removes the record sets and the health check.
#[tokio::test]
async fn s10_dns_record_follows_the_alb_and_goes_with_the_app() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the suite through scripts/test, or `eval \"$(e2e/moto env)\"` after `e2e/moto start`"
    );
    const ALB: &str = "k8s-x-y-123.us-east-1.elb.amazonaws.com";
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-dns").await?;
    let aws = halo::aws::Aws::new(halo::aws::AwsConfig::default());
    let r53 = aws.route53().await.client().clone();
    let (zone_id, zone) = hosted_zone(&r53, &ns.name).await?;
    let record = format!("shop.{zone}");

    let text = std::fs::read_to_string(halo_e2e::repo_root().join("config/samples/dns.yaml"))?;
    let mut value: serde_json::Value = serde_saphyr::from_str(&text)?;
    halo_e2e::merge(
        &mut value,
        &json!({"metadata": {"namespace": ns.name},
                "spec": {"ingress": {"host": record}, "dns": {"zoneName": zone, "recordName": record}}}),
    );
    let app: HighlyAvailableApp = serde_json::from_value(value)?;
    let name = app.name_any();
    let started = Instant::now();
    create_app(&client, &app).await?;

    let pending = wait_condition(&client, &ns.name, &name, "DNSReady", "False", CONVERGE).await?;
    assert_eq!(
        condition(&pending, "DNSReady").map(|c| (c.1, c.2)),
        Some((
            "LoadBalancerPending".to_string(),
            format!("waiting for the ALB's hostname before writing {record}")
        ))
    );
    assert_eq!(zone_records(&r53, &zone_id).await?, Vec::<String>::new());

    // Play the AWS Load Balancer Controller.
    let patched = Instant::now();
    kubectl(&[
        "-n",
        &ns.name,
        "patch",
        "ingress",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({"status": {"loadBalancer": {"ingress": [{"hostname": ALB}]}}}).to_string(),
    ])
    .await?;
    let dns_ready = wait_condition(&client, &ns.name, &name, "DNSReady", "True", CONVERGE).await?;
    let dns_in = patched.elapsed();
    let ready = wait_condition(&client, &ns.name, &name, "Ready", "True", CONVERGE).await?;
    let ready_in = started.elapsed();

    // Converged: over a resync period halo writes nothing to Kubernetes and only reads Route
    // 53 (moto's request log: GETs only; every Route 53 change is a POST or DELETE).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let moto_log = halo_e2e::state_dir().join("logs/moto.log");
    let moto_mark = std::fs::metadata(&moto_log).map(|m| m.len()).unwrap_or(0);
    let mark = audit::mark();
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    let own = format!("/namespaces/{}/", ns.name);
    let writes: Vec<_> = audit::since(mark, halo_e2e::HALO_USER_AGENT)?
        .into_iter()
        .filter(|e| e.request_uri.contains(&own) && audit::is_write(e))
        .collect();
    assert!(
        writes.is_empty(),
        "halo wrote during steady state: {writes:?}"
    );
    let route53: Vec<String> = {
        let bytes = std::fs::read(&moto_log)?;
        let start = usize::try_from(moto_mark)?.min(bytes.len());
        String::from_utf8_lossy(&bytes[start..])
            .lines()
            .filter(|l| l.contains(" /2013-04-01/"))
            .map(str::to_string)
            .collect()
    };
    let changes: Vec<&String> = route53.iter().filter(|l| !l.contains("\"GET ")).collect();
    assert!(
        changes.is_empty(),
        "halo changed Route 53 during steady state: {changes:?}"
    );
    assert!(
        !route53.is_empty(),
        "halo must keep reading the health check status of a converged record"
    );
    println!(
        "s10: steady state over {} s: 0 Kubernetes writes in the app's namespace, {} Route 53 reads, 0 Route 53 changes",
        RESYNC_SECONDS + 5,
        route53.len()
    );
    let status = ready.status.clone().unwrap_or_default();
    let dns = status
        .dns
        .clone()
        .ok_or_else(|| anyhow::anyhow!("status.dns missing"))?;
    let hc = dns
        .health_check_id
        .clone()
        .ok_or_else(|| anyhow::anyhow!("status.dns has no health check"))?;
    assert_eq!(
        (
            dns.hosted_zone_id.as_str(),
            dns.record_name.as_str(),
            dns.set_identifier.as_deref()
        ),
        (zone_id.as_str(), record.as_str(), Some("us-east-1"))
    );
    assert_eq!(
        condition(&dns_ready, "DNSReady").map(|c| (c.1, c.2)),
        Some((
            "HealthCheckHealthy".to_string(),
            format!(
                "{record} (alias A/AAAA to the ALB, set us-east-1); health check {hc}: 1/1 checkers healthy"
            )
        ))
    );
    let alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{ALB}.");
    assert_eq!(
        zone_records(&r53, &zone_id).await?,
        vec![
            format!(
                "_halo-owner.{record}. TXT set=us-east-1 failover=PRIMARY \"heritage=halo,owner=us-east-1,resource={}/shop\" hc=-",
                ns.name
            ),
            format!("{record}. A set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
            format!("{record}. AAAA set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
        ]
    );
    let check = r53.get_health_check().health_check_id(&hc).send().await?;
    let config = check
        .health_check()
        .and_then(|h| h.health_check_config())
        .ok_or_else(|| anyhow::anyhow!("health check {hc} has no config"))?;
    assert_eq!(
        (
            config.r#type().as_str(),
            config.fully_qualified_domain_name(),
            config.port(),
            config.resource_path(),
            config.request_interval(),
            config.failure_threshold()
        ),
        (
            "HTTP",
            Some(ALB),
            Some(80),
            Some("/healthz"),
            Some(10),
            Some(3)
        )
    );
    // The checkers send `Host: <ALB>`: the Ingress routes exactly the health path for it.
    let ingress = Api::<Ingress>::namespaced(client.clone(), &ns.name)
        .get(&name)
        .await?;
    let rules: Vec<(Option<String>, Option<String>, String)> = ingress
        .spec
        .and_then(|s| s.rules)
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let path = r.http.and_then(|h| h.paths.into_iter().next());
            (
                r.host,
                path.as_ref().and_then(|p| p.path.clone()),
                path.map(|p| p.path_type).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![
            (Some(record.clone()), Some("/".into()), "Prefix".into()),
            (Some(ALB.into()), Some("/healthz".into()), "Exact".into()),
        ]
    );
    // `kubectl get haapp` shows the record's URL.
    let url = kubectl(&[
        "-n",
        &ns.name,
        "get",
        "haapp",
        &name,
        "-o",
        "custom-columns=URL:.status.endpoints.url",
        "--no-headers",
    ])
    .await?;
    assert_eq!(url.trim(), format!("http://{record}"));
    let table = kubectl(&["-n", &ns.name, "get", "haapp", &name]).await?;
    assert!(
        table.lines().next().is_some_and(|h| h.contains("URL"))
            && table.contains(&format!("http://{record}")),
        "{table}"
    );

    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    let deleted = Instant::now();
    apps.delete(&name, &DeleteParams::default()).await?;
    wait_for(
        "the app to be deleted after its Route 53 cleanup",
        CONVERGE,
        || {
            let (apps, name) = (apps.clone(), name.clone());
            async move { Ok(apps.get_opt(&name).await?.is_none().then_some(())) }
        },
    )
    .await?;
    let deleted_in = deleted.elapsed();
    assert_eq!(zone_records(&r53, &zone_id).await?, Vec::<String>::new());
    let gone = r53.get_health_check().health_check_id(&hc).send().await;
    assert!(gone.is_err(), "health check {hc} must be deleted: {gone:?}");
    println!(
        "s10: DNSReady=True {dns_in:?} after the ALB hostname appeared; Ready {ready_in:?} after create; deletion with Route 53 cleanup {deleted_in:?}"
    );
    r53.delete_hosted_zone().id(&zone_id).send().await?;
    ns.cleanup().await
}

/// 11. The whole architecture (`config/samples/architecture.yaml`: compute over three zones
/// with autoscaling, an Ingress, a Route 53 failover record, Aurora, ElastiCache, two DynamoDB
/// tables, a replicated static assets bucket, CloudWatch alarms) converges against the
/// emulator with every section's condition True, the connection Secret carries every endpoint,
/// and deleting the app leaves exactly what the deletion policies promise.
///
/// Where moto differs from AWS (said again where it matters): CloudWatch goes through the
/// protocol relay e2e/up starts (moto lacks CloudWatch's CBOR protocol); alarms are created in
/// state OK and never evaluated (AWS starts them at INSUFFICIENT_DATA); the replication group
/// has no reader endpoint, so REDIS_READER_HOST is the primary's; a
/// replication group deleted with a final snapshot stays `deleting` for good and no snapshot
/// appears (moto ignores FinalSnapshotIdentifier; AWS removes the group after the snapshot);
/// DynamoDB replicas are never created, so the sample has no `replicaRegions`.
#[tokio::test]
async fn s11_full_architecture_converges_and_deletes_by_policy() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some()
            && std::env::var_os("AWS_ENDPOINT_URL_CLOUDWATCH").is_some(),
        "AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_CLOUDWATCH is not set: run the suite through scripts/test, or `set -a; source $HALO_E2E_STATE/env; set +a; eval \"$(e2e/moto env)\"`"
    );
    const ALB: &str = "k8s-full-checkout-123.us-east-1.elb.amazonaws.com";
    const SLOW: Duration = Duration::from_secs(240);
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-full").await?;
    let aws = halo::aws::Aws::new(halo::aws::AwsConfig::default());
    let r53 = aws.route53().await.client().clone();
    let (zone_id, zone) = hosted_zone(&r53, &ns.name).await?;
    let record = format!("checkout.{zone}");

    let text =
        std::fs::read_to_string(halo_e2e::repo_root().join("config/samples/architecture.yaml"))?;
    let mut value: serde_json::Value = serde_saphyr::from_str(&text)?;
    halo_e2e::merge(
        &mut value,
        &json!({"metadata": {"namespace": ns.name},
                "spec": {"ingress": {"host": record},
                         "dns": {"hostedZoneId": zone_id, "recordName": record}}}),
    );
    let app: HighlyAvailableApp = serde_json::from_value(value)?;
    let name = app.name_any();
    let id = format!("{}-{name}", ns.name); // halo's AWS names: <namespace>-<app>
    let started = Instant::now();
    create_app(&client, &app).await?;

    // Play the AWS Load Balancer Controller once halo made the Ingress.
    wait_for("the Ingress to get the ALB hostname", CONVERGE, || {
        let ns = ns.name.clone();
        let name = name.clone();
        async move {
            kubectl(&[
                "-n",
                &ns,
                "patch",
                "ingress",
                &name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &json!({"status": {"loadBalancer": {"ingress": [{"hostname": ALB}]}}}).to_string(),
            ])
            .await
            .map(|_| Some(()))
        }
    })
    .await?;

    let mut times = Vec::new();
    for type_ in [
        "ComputeReady",
        "IngressReady",
        "ZoneResilient",
        "DatabaseReady",
        "CacheReady",
        "DNSReady",
        "DynamoDBReady",
        "StaticAssetsReady",
        "AlarmsOK",
        "Ready",
    ] {
        wait_condition(&client, &ns.name, &name, type_, "True", SLOW).await?;
        times.push(format!("{type_} {:?}", started.elapsed()));
    }
    let ready_in = started.elapsed();
    // One consistent look at every condition at once (AlarmsOK is reported, not in Ready).
    let ready = wait_condition(&client, &ns.name, &name, "Ready", "True", CONVERGE).await?;
    let conditions: Vec<(String, String, String)> = ready
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                .collect()
        })
        .unwrap_or_default();
    println!("s11: conditions {conditions:#?}");
    for (type_, status, reason) in &conditions {
        assert_eq!(status, "True", "{type_} is {status} ({reason})");
    }
    let status = ready.status.clone().unwrap_or_default();

    // The connection Secret: every endpoint the pods need.
    let secret_name = format!("{name}-connection");
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns.name)
        .get(&secret_name)
        .await?;
    let data: BTreeMap<String, String> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    println!("s11: {secret_name}: {data:#?}");
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "DATABASE_HOST",
            "DATABASE_NAME",
            "DATABASE_PORT",
            "DATABASE_READER_HOST",
            "DATABASE_SECRET_ARN",
            "DYNAMODB_TABLE_ORDERS",
            "DYNAMODB_TABLE_ORDERS_ARN",
            "DYNAMODB_TABLE_SESSIONS",
            "DYNAMODB_TABLE_SESSIONS_ARN",
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_READER_HOST",
            "REDIS_TLS",
            "STATIC_ASSETS_BUCKET",
            "STATIC_ASSETS_REGION",
            "STATIC_ASSETS_REPLICA_BUCKET",
            "STATIC_ASSETS_REPLICA_REGION",
        ]
    );
    let bucket = format!("{id}-assets");
    let replica_bucket = halo::aws::s3::default_replica_bucket(&bucket, "us-west-2");
    let (orders, sessions) = (format!("{id}-orders"), format!("{id}-sessions"));
    let get = |k: &str| data.get(k).map(String::as_str);
    assert_eq!(
        (
            get("DATABASE_NAME"),
            get("DATABASE_PORT"),
            get("DYNAMODB_TABLE_ORDERS"),
            get("DYNAMODB_TABLE_SESSIONS"),
            get("STATIC_ASSETS_BUCKET"),
            get("STATIC_ASSETS_REGION"),
            get("STATIC_ASSETS_REPLICA_BUCKET"),
            get("STATIC_ASSETS_REPLICA_REGION"),
            get("REDIS_TLS"),
        ),
        (
            Some("checkout"),
            Some("5432"),
            Some(orders.as_str()),
            Some(sessions.as_str()),
            Some(bucket.as_str()),
            Some("us-east-1"),
            Some(replica_bucket.as_str()),
            Some("us-west-2"),
            Some("true"),
        )
    );

    assert!(
        get("DATABASE_HOST").is_some_and(|h| h.starts_with(&format!("{id}.cluster-")))
            && get("DATABASE_READER_HOST")
                .is_some_and(|h| h.starts_with(&format!("{id}.cluster-ro-"))),
        "Aurora endpoints: {data:?}"
    );
    assert!(
        get("DATABASE_SECRET_ARN").is_some_and(|a| a.starts_with("arn:aws:secretsmanager:")),
        "{data:?}"
    );
    // moto differs: no ReaderEndpoint, so halo sends reads to the primary.
    assert!(
        get("REDIS_HOST").is_some_and(|h| h.contains(&id))
            && get("REDIS_READER_HOST") == get("REDIS_HOST")
            && get("REDIS_PORT") == Some("6379"),
        "ElastiCache endpoints: {data:?}"
    );
    let arn = |t: &str| format!("arn:aws:dynamodb:us-east-1:123456789012:table/{t}");
    assert_eq!(
        (
            get("DYNAMODB_TABLE_ORDERS_ARN"),
            get("DYNAMODB_TABLE_SESSIONS_ARN")
        ),
        (Some(arn(&orders).as_str()), Some(arn(&sessions).as_str()))
    );

    // The alarms halo made for all of it, with their states. moto differs: it creates an alarm
    // in state OK and never evaluates it (AWS starts at INSUFFICIENT_DATA).
    let prefix = format!("halo/{}/{name}/", ns.name);
    let alarms: Vec<(String, String)> = status
        .alarms
        .iter()
        .map(|a| {
            (
                a.name.trim_start_matches(&prefix).to_string(),
                a.state.clone(),
            )
        })
        .collect();
    let mut alarms = alarms;
    alarms.sort();
    let want_alarms: Vec<(String, String)> = [
        "alb-target-5xx",
        "alb-unhealthy-hosts",
        "aurora-cpu",
        "aurora-freeable-memory",
        "aurora-replica-lag",
        "cache-cpu-001",
        "cache-cpu-002",
        "cache-evictions-001",
        "cache-evictions-002",
        "cache-replication-lag-001",
        "cache-replication-lag-002",
        "dynamodb-read-throttles-orders",
        "dynamodb-read-throttles-sessions",
        "dynamodb-write-throttles-orders",
        "dynamodb-write-throttles-sessions",
        "route53-health-check",
    ]
    .iter()
    .map(|a| (a.to_string(), "OK".to_string()))
    .collect();
    assert_eq!(alarms, want_alarms);
    let mut names: Vec<String> = want_alarms
        .iter()
        .map(|(a, _)| format!("{prefix}{a}"))
        .collect();
    names.sort();
    assert_eq!(alarm_names(&aws, &prefix).await?, names);
    let hc = status
        .dns
        .as_ref()
        .and_then(|d| d.health_check_id.clone())
        .ok_or_else(|| anyhow::anyhow!("status.dns has no health check"))?;
    let alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{ALB}.");
    assert_eq!(
        zone_records(&r53, &zone_id).await?,
        vec![
            format!(
                "_halo-owner.{record}. TXT set=us-east-1 failover=PRIMARY \"heritage=halo,owner=us-east-1,resource={}/{name}\" hc=-",
                ns.name
            ),
            format!("{record}. A set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
            format!("{record}. AAAA set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
        ]
    );

    // Something in the bucket, so the deletion has to empty it (emptyOnDelete).
    let s3 = aws.s3_client(None).await;
    // Replication to the other region's bucket with the operator's role (a dummy ARN here:
    // moto checks no IAM role and never copies an object).
    let replication = s3.get_bucket_replication().bucket(&bucket).send().await?;
    let replication = replication
        .replication_configuration()
        .ok_or_else(|| anyhow::anyhow!("{bucket} has no replication configuration"))?;
    let role = std::env::var("HALO_S3_REPLICATION_ROLE_ARN").unwrap_or_default();
    assert_eq!(
        (
            replication.role(),
            replication
                .rules()
                .iter()
                .map(|r| r.destination().map(|d| d.bucket().to_string()))
                .collect::<Vec<_>>()
        ),
        (
            role.as_str(),
            vec![Some(format!("arn:aws:s3:::{replica_bucket}"))]
        )
    );
    s3.put_object()
        .bucket(&bucket)
        .key("index.html")
        .body(b"<html></html>".to_vec().into())
        .send()
        .await?;

    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    let deleted = Instant::now();
    apps.delete(&name, &DeleteParams::default()).await?;
    wait_for(
        "the app to be deleted after its AWS cleanup (finalizer released)",
        SLOW,
        || {
            let (apps, name) = (apps.clone(), name.clone());
            async move { Ok(apps.get_opt(&name).await?.is_none().then_some(())) }
        },
    )
    .await?;
    let deleted_in = deleted.elapsed();

    // What the deletion policies promise, as the emulator has it now.
    // Aurora, Snapshot (the default): the cluster is gone, its final snapshot stays.
    let rds = aws.rds().await;
    let cluster = rds
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await;
    assert!(
        format!("{cluster:?}").contains("DBClusterNotFoundFault"),
        "Aurora cluster {id} must be gone: {cluster:?}"
    );
    let snapshots: Vec<(String, String)> = rds
        .describe_db_cluster_snapshots()
        .db_cluster_identifier(&id)
        .send()
        .await?
        .db_cluster_snapshots()
        .iter()
        .map(|s| {
            (
                s.db_cluster_snapshot_identifier()
                    .unwrap_or_default()
                    .to_string(),
                s.snapshot_type().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // moto differs: it also keeps the cluster's automated snapshot (`rds:<id>-<date>`); AWS
    // deletes automated backups with the cluster (DeleteDBCluster's default). Only the manual
    // ones are what the policy promises.
    println!("s11: snapshots of {id} in moto after the deletion: {snapshots:?}");
    let snapshots: Vec<(String, String)> = snapshots
        .into_iter()
        .filter(|s| s.1 != "automated")
        .collect();
    assert!(
        snapshots.len() == 1
            && snapshots[0].0.starts_with(&format!("{id}-final-"))
            && snapshots[0].1 == "manual",
        "exactly one final snapshot of {id} must stay: {snapshots:?}"
    );
    // ElastiCache, Snapshot (the default): deleted with a final snapshot. moto differs: the
    // group stays `deleting` for good and no snapshot appears (it ignores
    // FinalSnapshotIdentifier); AWS removes the group once the snapshot is taken.
    let groups = aws
        .elasticache()
        .await
        .describe_replication_groups()
        .replication_group_id(&id)
        .send()
        .await?;
    let group_states: Vec<Option<&str>> = groups
        .replication_groups()
        .iter()
        .map(|g| g.status())
        .collect();
    assert_eq!(group_states, vec![Some("deleting")]);
    // DynamoDB: `orders` (Retain, the default) stays, protected, without halo's tags;
    // `sessions` (Delete) is gone.
    let ddb = aws.dynamodb().await;
    let kept = ddb.describe_table().table_name(&orders).send().await?;
    let kept = kept
        .table()
        .ok_or_else(|| anyhow::anyhow!("DescribeTable {orders}: no table"))?;
    assert_eq!(
        (
            kept.table_status().map(|s| s.as_str().to_string()),
            kept.deletion_protection_enabled()
        ),
        (Some("ACTIVE".to_string()), Some(true))
    );
    let tags: Vec<String> = ddb
        .list_tags_of_resource()
        .resource_arn(kept.table_arn().unwrap_or_default())
        .send()
        .await?
        .tags()
        .iter()
        .map(|t| t.key().to_string())
        .filter(|k| k.starts_with("halo.dev/"))
        .collect();
    assert_eq!(
        tags,
        Vec::<String>::new(),
        "a retained table keeps no halo tag"
    );
    let gone = ddb.describe_table().table_name(&sessions).send().await;
    assert!(
        format!("{gone:?}").contains("ResourceNotFoundException"),
        "table {sessions} must be gone: {gone:?}"
    );
    // S3, Delete with emptyOnDelete: the bucket (emptied first) and its replica are gone.
    let buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await?
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .filter(|b| *b == bucket || *b == replica_bucket)
        .collect();
    assert_eq!(buckets, Vec::<String>::new());
    // CloudWatch: every alarm of the app is gone.
    assert_eq!(alarm_names(&aws, &prefix).await?, Vec::<String>::new());
    // Route 53: the record sets and the health check are gone.
    assert_eq!(zone_records(&r53, &zone_id).await?, Vec::<String>::new());
    let check = r53.get_health_check().health_check_id(&hc).send().await;
    assert!(
        check.is_err(),
        "health check {hc} must be deleted: {check:?}"
    );

    println!(
        "s11: {}; Ready {ready_in:?} after create; deletion with the AWS cleanup {deleted_in:?}",
        times.join(", ")
    );
    println!(
        "s11: left by the policies: Aurora final snapshot {}, table {orders} (Retain); gone: cluster {id}, table {sessions}, buckets {bucket} and {replica_bucket}, {} alarms, 3 record sets, health check {hc}; replication group {id} `deleting` (moto never finishes)",
        snapshots[0].0,
        want_alarms.len()
    );

    // Tidy the emulator: what the policies kept is the test's to remove.
    ddb.update_table()
        .table_name(&orders)
        .deletion_protection_enabled(false)
        .send()
        .await?;
    ddb.delete_table().table_name(&orders).send().await?;
    rds.delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier(&snapshots[0].0)
        .send()
        .await?;
    ns.cleanup().await?;
    r53.delete_hosted_zone().id(&zone_id).send().await?;
    Ok(())
}

/// The names of the CloudWatch alarms starting with `prefix` (through the protocol relay).
async fn alarm_names(aws: &halo::aws::Aws, prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = aws
        .cloudwatch()
        .await
        .describe_alarms()
        .alarm_name_prefix(prefix)
        .max_records(100)
        .send()
        .await?;
    let mut names: Vec<String> = out
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}
