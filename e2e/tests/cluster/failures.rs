//! Failures halo must ride out: its own process killed mid-reconcile (s7), its leader killed
//! or robbed of the lease (s8), and a whole zone going dark (s9).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use halo::api::HighlyAvailableApp;
use halo_e2e::suite::{
    CONVERGE, create_app, list, owned_by, record_suite_operator, setup, wait_condition,
    wait_spread, web_with_every_child,
};
use halo_e2e::{
    TestNamespace, ZONES, audit, condition, operator, ready_pods_per_zone, sample_app, wait_for,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// The operator's default leader Lease (HALO_LEASE_NAME).
const LEASE_NAME: &str = "halo-leader";

/// s07: kill -9 in the middle of a reconcile: after a restart the app converges with exactly one
/// of each child and nothing orphaned.
pub async fn s07_operator_survives_kill_9() -> anyhow::Result<()> {
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-crash").await?;
    let app = web_with_every_child(&ns.name)?;
    let created = create_app(&client, &app).await?;
    // Kill as soon as the first child appears: the reconcile is mid-way through its applies.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the first child", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move { Ok(deployments.get_opt("web").await?.map(|_| ())) }
    })
    .await?;
    operator::kill("KILL").await?;
    record_suite_operator(operator::start().await?)?;
    wait_condition(&client, &ns.name, "web", "ComputeReady", "True", CONVERGE).await?;
    let all = ListParams::default();
    let deployments = deployments.list(&all).await?.items;
    let services: Vec<Service> = list(&client, &ns.name, &all).await?;
    let pdbs: Vec<PodDisruptionBudget> = list(&client, &ns.name, &all).await?;
    let hpas: Vec<HorizontalPodAutoscaler> = list(&client, &ns.name, &all).await?;
    let ingresses: Vec<Ingress> = list(&client, &ns.name, &all).await?;
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
    let rs: Vec<ReplicaSet> = list(&client, &ns.name, &all).await?;
    assert_eq!(
        rs.len(),
        1,
        "one ReplicaSet: no spurious rollout after the restart"
    );
    ns.cleanup().await
}

/// s08: Two operators run at once: only the lease holder writes; `kill -9` of the leader hands
/// over to the other within the lease duration, which then reconciles; /metrics shows it.
pub async fn s08_leader_election_hands_over() -> anyhow::Result<()> {
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
    record_suite_operator(operator::start().await?)?;
    outcome
}

/// s09: Zone failure: one zone goes dark; its pods move to the surviving zones, `ZoneResilient`
/// turns False naming the zone, and True again once the zone is back.
pub async fn s09_zone_failure_and_recovery() -> anyhow::Result<()> {
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
