//! `spec.dns`: the Route 53 failover record follows the ALB and goes with the app (s10).

use std::time::{Duration, Instant};

use halo::api::HighlyAvailableApp;
use halo_e2e::route53::{emulator_with_zone, primary_records, zone_records};
use halo_e2e::suite::{
    CONVERGE, create_app, get, grant_dns, publish_alb_hostname, require_emulator, setup,
    wait_condition, wait_deleted,
};
use halo_e2e::{
    HALO_USER_AGENT, RESYNC_SECONDS, TestNamespace, audit, condition, kubectl, sample, state_dir,
};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// s10: spec.dns against the AWS emulator: with the Ingress but no ALB yet, DNSReady=False
/// LoadBalancerPending and nothing in the zone; once the "AWS Load Balancer Controller" (this
/// test, patching the Ingress status) publishes the ALB hostname, halo writes the primary
/// failover alias records, the ownership record and a health check, routes the checkers'
/// `Host: <ALB>` to the app, and DNSReady and Ready turn True with the record's URL in
/// `kubectl get haapp`; deleting the app removes the record sets and the health check.
pub async fn s10_dns_record_follows_the_alb_and_goes_with_the_app() -> anyhow::Result<()> {
    require_emulator()?;
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-dns").await?;
    let (_aws, r53, zone_id, zone) = emulator_with_zone(&ns.name).await?;
    grant_dns(&client, &ns.name, &zone_id, &zone).await?;
    let record = format!("shop.{zone}");

    let app = sample(
        "dns.yaml",
        &json!({"metadata": {"namespace": ns.name},
                "spec": {"ingress": {"host": record}, "dns": {"zoneName": zone, "recordName": record}}}),
    )?;
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
    publish_alb_hostname(&ns.name, &name, ALB).await?;
    let dns_ready = wait_condition(&client, &ns.name, &name, "DNSReady", "True", CONVERGE).await?;
    let dns_in = patched.elapsed();
    let ready = wait_condition(&client, &ns.name, &name, "Ready", "True", CONVERGE).await?;
    let ready_in = started.elapsed();

    steady_state_reads_route53_only(&ns.name).await?;
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
    assert_eq!(
        zone_records(&r53, &zone_id).await?,
        primary_records(&record, &format!("{}/shop", ns.name), ALB, &hc)
    );
    check_health_check(&r53, &hc).await?;
    check_ingress_routes(&client, &ns.name, &name, &record).await?;
    check_url_column(&ns.name, &name, &record).await?;

    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    let deleted = Instant::now();
    apps.delete(&name, &DeleteParams::default()).await?;
    wait_deleted(
        &apps,
        &name,
        "the app to be deleted after its Route 53 cleanup",
        CONVERGE,
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

const ALB: &str = "k8s-x-y-123.us-east-1.elb.amazonaws.com";

/// Converged: over a resync period halo writes nothing to Kubernetes in namespace `ns` and
/// only reads Route 53 (moto's request log: GETs only; every Route 53 change is a POST or
/// DELETE).
async fn steady_state_reads_route53_only(ns: &str) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let moto_log = state_dir().join("logs/moto.log");
    let moto_mark = std::fs::metadata(&moto_log).map(|m| m.len()).unwrap_or(0);
    let mark = audit::mark();
    tokio::time::sleep(Duration::from_secs(RESYNC_SECONDS + 5)).await;
    let own = format!("/namespaces/{ns}/");
    let writes: Vec<_> = audit::since(mark, HALO_USER_AGENT)?
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
    Ok(())
}

/// The health check `hc`: HTTP to the ALB's /healthz every 10 s, 3 failures to fail.
async fn check_health_check(r53: &aws_sdk_route53::Client, hc: &str) -> anyhow::Result<()> {
    let check = r53.get_health_check().health_check_id(hc).send().await?;
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
    Ok(())
}

/// The checkers send `Host: <ALB>`: the Ingress routes exactly the health path for it.
async fn check_ingress_routes(
    client: &Client,
    ns: &str,
    name: &str,
    record: &str,
) -> anyhow::Result<()> {
    let ingress: Ingress = get(client, ns, name).await?;
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
            (Some(record.to_string()), Some("/".into()), "Prefix".into()),
            (Some(ALB.into()), Some("/healthz".into()), "Exact".into()),
        ]
    );
    Ok(())
}

/// `kubectl get haapp` shows the record's URL.
async fn check_url_column(ns: &str, name: &str, record: &str) -> anyhow::Result<()> {
    let url = kubectl(&[
        "-n",
        ns,
        "get",
        "haapp",
        name,
        "-o",
        "custom-columns=URL:.status.endpoints.url",
        "--no-headers",
    ])
    .await?;
    assert_eq!(url.trim(), format!("http://{record}"));
    let table = kubectl(&["-n", ns, "get", "haapp", name]).await?;
    assert!(
        table.lines().next().is_some_and(|h| h.contains("URL"))
            && table.contains(&format!("http://{record}")),
        "{table}"
    );
    Ok(())
}
