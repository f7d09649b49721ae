//! Tenancy: two namespaces, one TenancyPolicy, on the real API server with the chart's RBAC
//! (s12).

use halo_e2e::route53::{emulator_with_zone, zone_records};
use halo_e2e::suite::{
    CONVERGE, apply_tenancy_policy, create_app, delete_tenancy_policy, publish_alb_hostname,
    require_emulator, setup, wait_condition, wait_reason,
};
use halo_e2e::{TestNamespace, condition, sample};
use kube::ResourceExt;
use serde_json::json;

const ALB: &str = "k8s-tenancy-0a1b2c3d4e-1234567890.us-east-1.elb.amazonaws.com";

/// s12: the policy grants namespace A Route 53 records in a zone; B is not named. A's weighted
/// record converges. B asking for a weighted record at A's name (another set identifier) is
/// refused on Ready (TenancyDNSNotAllowed) before any write; granted the zone too, it is still
/// refused, by Route 53 ownership (the name is A's). B adopting an untagged cluster it was not
/// granted is refused (TenancyAdoptionNotAllowed), with no finalizer. The zone holds A's
/// record sets only, throughout.
pub async fn s12_tenants_stay_within_their_policy() -> anyhow::Result<()> {
    require_emulator()?;
    let client = setup().await?;
    let a = TestNamespace::create(&client, "e2e-tenant-a").await?;
    let b = TestNamespace::create(&client, "e2e-tenant-b").await?;
    let (_aws, r53, zone_id, zone) = emulator_with_zone(&a.name).await?;
    let record = format!("shop.{zone}");
    let policy = format!("e2e-tenancy-{}", a.name);
    let grant = |namespaces: Vec<&str>| {
        json!([{"name": "dns", "namespaces": namespaces,
                "dns": {"zoneNames": [zone], "recordNameSuffixes": [zone],
                        "routingPolicies": ["weighted"]}}])
    };
    apply_tenancy_policy(&client, &policy, grant(vec![&a.name])).await?;
    let weighted = |ns: &str, set: &str| {
        sample(
            "dns.yaml",
            &json!({"metadata": {"namespace": ns},
                    "spec": {"ingress": {"host": record},
                             "dns": {"zoneName": zone, "recordName": record, "routing": "weighted",
                                     "role": null, "setIdentifier": set, "weight": 100}}}),
        )
    };

    let shop = weighted(&a.name, "shop")?;
    let name = shop.name_any();
    create_app(&client, &shop).await?;
    // The Ingress exists once DNSReady waits for its ALB.
    wait_reason(&client, &a.name, &name, "DNSReady", "LoadBalancerPending").await?;
    publish_alb_hostname(&a.name, &name, ALB).await?;
    wait_condition(&client, &a.name, &name, "DNSReady", "True", CONVERGE).await?;
    let owned = zone_records(&r53, &zone_id).await?;
    assert_eq!(owned.len(), 3, "A, AAAA and the ownership TXT: {owned:?}");

    // B, not named by the policy.
    let evil = weighted(&b.name, "evil")?;
    create_app(&client, &evil).await?;
    let refused = wait_condition(&client, &b.name, &name, "Ready", "False", CONVERGE).await?;
    let (_, reason, message) = condition(&refused, "Ready").expect("Ready");
    assert_eq!(reason, "TenancyDNSNotAllowed", "{message}");
    assert!(
        message.starts_with(&format!(
            "spec.dns: namespace {} may not write the weighted Route 53 record {record}",
            b.name
        )),
        "{message}"
    );
    assert_eq!(
        refused.metadata.finalizers, None,
        "refused before the finalizer"
    );
    assert_eq!(zone_records(&r53, &zone_id).await?, owned);

    // Granted the zone too: Route 53 ownership still refuses a name another namespace holds.
    apply_tenancy_policy(&client, &policy, grant(vec![&a.name, &b.name])).await?;
    wait_reason(&client, &b.name, &name, "DNSReady", "LoadBalancerPending").await?;
    publish_alb_hostname(&b.name, &name, ALB).await?;
    let held = wait_reason(&client, &b.name, &name, "DNSReady", "ChildNotOwned").await?;
    let (_, reason, message) = condition(&held, "DNSReady").expect("DNSReady");
    assert_eq!(reason, "ChildNotOwned", "{message}");
    assert!(
        message.contains(&format!(
            "(namespace {} holds it with set identifier \"shop\"; a name belongs to one namespace)",
            a.name
        )),
        "{message}"
    );
    assert_eq!(zone_records(&r53, &zone_id).await?, owned);

    // B adopting a cluster the policy does not grant it.
    let adopting = sample(
        "data.yaml",
        &json!({"metadata": {"namespace": b.name, "name": "legacy"},
                "spec": {"cache": null,
                         "database": {"adopt": {"clusterIdentifier": "prod-billing"}}}}),
    )?;
    create_app(&client, &adopting).await?;
    let refused = wait_condition(&client, &b.name, "legacy", "Ready", "False", CONVERGE).await?;
    let (_, reason, message) = condition(&refused, "Ready").expect("Ready");
    assert_eq!(reason, "TenancyAdoptionNotAllowed", "{message}");
    assert_eq!(refused.metadata.finalizers, None);

    eprintln!(
        "s12: A's record converged; B refused by policy (DNS, adoption) and by Route 53 ownership; zone unchanged ({} record sets)",
        owned.len()
    );
    b.cleanup().await?;
    a.cleanup().await?;
    delete_tenancy_policy(&client, &policy).await?;
    Ok(())
}
