//! An app's life in Kubernetes: it converges (s1), changes (s2), is refused when bad (s3), is
//! deleted with its children (s4), and rests without writes once converged (s6).

use std::time::{Duration, Instant};

use halo::api::HighlyAvailableApp;
use halo_e2e::suite::{
    CONVERGE, create_app, get, has_common_labels, list, owned_by, setup, wait_condition,
    wait_spread, web_with_every_child,
};
use halo_e2e::{RESYNC_SECONDS, TestNamespace, audit, condition, kubectl, sample_app, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// s01: The small sample (plus an ingress) converges: children with owner references and labels,
/// pods spread 1/1/1 by the real scheduler, status and printer columns right.
pub async fn s01_small_sample_converges() -> anyhow::Result<()> {
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

    let deployment: Deployment = get(&client, &ns.name, "web").await?;
    let service: Service = get(&client, &ns.name, "web").await?;
    let pdb: PodDisruptionBudget = get(&client, &ns.name, "web").await?;
    let ingress: Ingress = get(&client, &ns.name, "web").await?;
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

/// s02: Scale 3 -> 6 gives 2/2/2; an image change rolls out without dropping below 6 available;
/// adding autoscaling creates the HPA and removing it prunes the HPA.
pub async fn s02_scale_rollout_and_prune() -> anyhow::Result<()> {
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

/// s03: Every bad spec of the table is refused by the API server with its field and message,
/// and nothing is created.
pub async fn s03_bad_specs_are_refused_by_the_api_server() -> anyhow::Result<()> {
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
    let all = ListParams::default();
    let left: Vec<HighlyAvailableApp> = list(&client, &ns.name, &all).await?;
    assert_eq!(left.len(), 0);
    let deployments: Vec<Deployment> = list(&client, &ns.name, &all).await?;
    assert_eq!(deployments.len(), 0);
    println!(
        "{} bad specs refused by the API server with their messages",
        cases.len()
    );
    ns.cleanup().await
}

/// s04: Deleting the app removes every child through the real garbage collector.
pub async fn s04_delete_removes_all_children() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-delete").await?;
    let app = web_with_every_child(&ns.name)?;
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
                list::<Deployment>(&c, &n, &selector).await?.len(),
                list::<Service>(&c, &n, &selector).await?.len(),
                list::<PodDisruptionBudget>(&c, &n, &selector).await?.len(),
                list::<HorizontalPodAutoscaler>(&c, &n, &selector)
                    .await?
                    .len(),
                list::<Ingress>(&c, &n, &selector).await?.len(),
                list::<ReplicaSet>(&c, &n, &selector).await?.len(),
                list::<Pod>(&c, &n, &selector).await?.len(),
                list::<HighlyAvailableApp>(&c, &n, &ListParams::default())
                    .await?
                    .len(),
            ];
            Ok((counts.iter().all(|n| *n == 0)).then_some(()))
        }
    })
    .await?;
    ns.cleanup().await
}

/// s06: Steady state: after convergence, a full resync period passes with zero writes by halo.
pub async fn s06_steady_state_makes_zero_writes() -> anyhow::Result<()> {
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
