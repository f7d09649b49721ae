//! Route 53 records, health checks and ownership against the AWS emulator (moto in server
//! mode: `e2e/moto start`, then `eval "$(e2e/moto env)"`). Each test works in hosted zones and
//! namespaces of its own, so the tests run in parallel and repeatedly.
//!
//! moto differences that shape these tests: GetHealthCheckStatus always answers healthy (the
//! unhealthy path is a unit test with a fake status call, `route53::tests`); CreateHealthCheck
//! ignores the CallerReference: it neither refuses a deleted check's reference as Route 53
//! does for days, nor returns the existing check for a live one (halo finds its own by prefix
//! before creating), so the reference tests emulate Route 53's memory with an interceptor,
//! `RememberReferences`; a DELETE with a SetIdentifier removes every record set of the zone with that set
//! identifier, whatever its name, so records of different owners here use distinct ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType, TagResourceType,
};
use halo::Error;
use halo::api::HighlyAvailableApp;
use halo::api::dns::{DnsSpec, ValidatedDns};
use halo::aws::ratelimit::{CREATE_HEALTH_CHECK, Limits, Rate, RateLimiter, route53_limits};
use halo::aws::route53::{
    CallLog, CleanupOutcome, DnsIdentity, DnsOwner, Route53, Target, cleanup, desired, ensure,
    health_status, readiness,
};
use halo::meta::Owner;
use halo::validate::{ValidatedApp, owner_of, validate};
use tokio::time::Instant;

mod aws_support;
use aws_support::{sdk, unique};

const EAST_ALB: &str = "k8s-shop-shop-0a1b2c3d4e-1111111111.us-east-1.elb.amazonaws.com";
const WEST_ALB: &str = "k8s-shop-shop-5f6a7b8c9d-2222222222.us-west-2.elb.amazonaws.com";

/// A Route 53 client as one halo would have it: its own limiter, a call log with times.
async fn operator(limits: Limits) -> Route53 {
    Route53::from_sdk_config(&sdk().await, Arc::new(RateLimiter::new(limits)))
        .with_call_log(Arc::new(CallLog::with_times()))
}

/// A fresh public hosted zone `<unique>.example.com.`; returns (id, name without dot).
async fn zone(r53: &Route53, prefix: &str) -> (String, String) {
    let name = format!("{}.example.com", unique(&format!("{prefix}-")));
    let out = r53
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

fn app() -> ValidatedApp {
    let app: HighlyAvailableApp =
        serde_saphyr::from_str(include_str!("../../config/samples/full.yaml")).expect("sample");
    let owner = owner_of(&app, "default", Some("uid")).expect("owner");
    validate(&app, owner).expect("valid")
}

/// The app `name` in the namespace named like the test's zone (its first label), so that no
/// two tests share an owner.
fn dns_owner(cluster: &str, zone_name: &str, name: &str) -> DnsOwner {
    DnsOwner::new(
        cluster,
        &Owner {
            name: name.into(),
            namespace: namespace(zone_name),
            uid: unique("uid-"),
        },
    )
}

fn namespace(zone_name: &str) -> String {
    zone_name.split('.').next().unwrap_or_default().to_string()
}

fn dns(yaml: &str, region: &str) -> ValidatedDns {
    serde_saphyr::from_str::<DnsSpec>(yaml)
        .expect("dns spec")
        .validate("/healthz", Some(region))
        .expect("dns validates")
}

/// Every record set of the zone except NS and SOA, one stable line each.
async fn records(r53: &Route53, zone_id: &str) -> Vec<String> {
    let out = r53
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
        .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
        .map(describe)
        .collect();
    lines.sort();
    lines
}

fn describe(r: &ResourceRecordSet) -> String {
    let mut s = format!("{} {}", r.name(), r.r#type().as_str());
    if let Some(id) = r.set_identifier() {
        s += &format!(" set={id}");
    }
    if let Some(f) = r.failover() {
        s += &format!(" failover={}", f.as_str());
    }
    if let Some(w) = r.weight() {
        s += &format!(" weight={w}");
    }
    if let Some(region) = r.region() {
        s += &format!(" region={}", region.as_str());
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
            let values: Vec<&str> = r.resource_records().iter().map(|v| v.value()).collect();
            s += &format!(" ttl={} {}", r.ttl().unwrap_or(0), values.join(","));
        }
    }
    if let Some(hc) = r.health_check_id() {
        s += &format!(" hc={hc}");
    }
    s
}

async fn health_check(r53: &Route53, id: &str) -> Option<HealthCheckConfig> {
    match r53
        .client()
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
    {
        Ok(out) => out
            .health_check()
            .and_then(|h| h.health_check_config())
            .cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_health_check()) =>
        {
            None
        }
        Err(e) => panic!("get health check {id}: {e:?}"),
    }
}

async fn tags(r53: &Route53, id: &str) -> BTreeMap<String, String> {
    let out = r53
        .client()
        .list_tags_for_resource()
        .resource_type(TagResourceType::Healthcheck)
        .resource_id(id)
        .send()
        .await
        .expect("tags");
    out.resource_tag_set()
        .map(|t| {
            t.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Requests per API since `before`.
fn delta(r53: &Route53, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    r53.call_log()
        .counts()
        .into_iter()
        .map(|(api, n)| (api, n - before.get(api).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Simple, failover, weighted and latency records, and the CNAME fallback, read back from
/// Route 53 exactly as written, each with its health check and ownership record.
#[tokio::test]
async fn each_routing_policy_round_trips() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "policies").await;
    let app = app();
    let cases = [
        ("simple", "".to_string(), EAST_ALB),
        (
            "failover",
            ", routing: failover, role: primary".to_string(),
            EAST_ALB,
        ),
        (
            "weighted",
            ", routing: weighted, weight: 42, setIdentifier: blue".to_string(),
            EAST_ALB,
        ),
        ("latency", ", routing: latency".to_string(), WEST_ALB),
        (
            "cname",
            ", routing: failover, role: secondary".to_string(),
            "lb-7.example.net",
        ),
    ];
    let mut hc = BTreeMap::new();
    for (label, extra, alb) in &cases {
        let region = if *alb == WEST_ALB {
            "us-west-2"
        } else {
            "us-east-1"
        };
        let spec = dns(
            &format!("{{hostedZoneId: {zone_id}, recordName: {label}.{zone_name}{extra}}}"),
            region,
        );
        let owner = dns_owner("east", &zone_name, label);
        let d = desired(&app, &spec, owner.clone(), alb);
        let observed = ensure(&r53, &d).await.expect("ensure");
        let expected_target = if *label == "cname" {
            Target::Cname
        } else {
            Target::Alias
        };
        assert_eq!(observed.target, expected_target, "{label}");
        assert_eq!(
            observed.record_changes,
            if *label == "cname" { 2 } else { 3 },
            "{label}"
        );
        assert!(observed.health_check_created, "{label}");
        assert_eq!(observed.url, format!("https://{label}.{zone_name}"));
        let id = observed.health_check_id.clone().expect("health check id");

        let config = health_check(&r53, &id).await.expect("health check exists");
        assert_eq!(config.r#type(), &HealthCheckType::Https, "{label}");
        assert_eq!(config.port(), Some(443));
        assert_eq!(config.fully_qualified_domain_name(), Some(*alb));
        assert_eq!(config.resource_path(), Some("/healthz"));
        assert_eq!(config.request_interval(), Some(30));
        assert_eq!(config.failure_threshold(), Some(3));
        let t = tags(&r53, &id).await;
        assert_eq!(
            t.get("halo.dev/owner").map(String::as_str),
            Some(format!("east/{}/{label}", namespace(&zone_name)).as_str())
        );
        assert_eq!(t.get("halo.dev/uid"), Some(&owner.uid));
        hc.insert(*label, id);
    }

    let z = &zone_name;
    let ns = namespace(&zone_name);
    let txt = |label: &str| format!("\"heritage=halo,owner=east,resource={ns}/{label}\"");
    let east_alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{EAST_ALB}.");
    let west_alias = format!("alias=Z1H1FL5HABSF5:dualstack.{WEST_ALB}.");
    let mut expected = vec![
        format!(
            "_halo-owner.cname.{z}. TXT set=us-east-1 failover=SECONDARY ttl=60 {}",
            txt("cname")
        ),
        format!(
            "_halo-owner.failover.{z}. TXT set=us-east-1 failover=PRIMARY ttl=60 {}",
            txt("failover")
        ),
        format!(
            "_halo-owner.latency.{z}. TXT set=us-west-2 region=us-west-2 ttl=60 {}",
            txt("latency")
        ),
        format!("_halo-owner.simple.{z}. TXT ttl=60 {}", txt("simple")),
        format!(
            "_halo-owner.weighted.{z}. TXT set=blue weight=42 ttl=60 {}",
            txt("weighted")
        ),
        format!(
            "cname.{z}. CNAME set=us-east-1 failover=SECONDARY ttl=60 lb-7.example.net. hc={}",
            hc["cname"]
        ),
    ];
    for kind in ["A", "AAAA"] {
        expected.push(format!(
            "failover.{z}. {kind} set=us-east-1 failover=PRIMARY {east_alias} evaluate=true hc={}",
            hc["failover"]
        ));
        expected.push(format!(
            "latency.{z}. {kind} set=us-west-2 region=us-west-2 {west_alias} evaluate=true hc={}",
            hc["latency"]
        ));
        expected.push(format!(
            "simple.{z}. {kind} {east_alias} evaluate=false hc={}",
            hc["simple"]
        ));
        expected.push(format!(
            "weighted.{z}. {kind} set=blue weight=42 {east_alias} evaluate=true hc={}",
            hc["weighted"]
        ));
    }
    expected.sort();
    assert_eq!(records(&r53, &zone_id).await, expected);
}

/// A second reconcile of an app Route 53 already matches sends no change: three reads only.
/// A new health path updates the health check in place; a new interval (which Route 53 cannot
/// update) replaces it, moves the records to it and deletes the old one.
#[tokio::test]
async fn second_ensure_changes_nothing_and_health_check_changes_are_minimal() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "idempotent").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let base = format!(
        "{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}, routing: failover, role: primary"
    );
    let first = ensure(
        &r53,
        &desired(
            &app,
            &dns(&format!("{base}}}"), "us-east-1"),
            owner.clone(),
            EAST_ALB,
        ),
    )
    .await
    .expect("first ensure");
    let written = records(&r53, &zone_id).await;

    let before = r53.call_log().counts();
    let again = ensure(
        &r53,
        &desired(
            &app,
            &dns(&format!("{base}}}"), "us-east-1"),
            owner.clone(),
            EAST_ALB,
        ),
    )
    .await
    .expect("second ensure");
    assert_eq!(
        delta(&r53, &before),
        BTreeMap::from([("GetHealthCheck", 1), ("ListResourceRecordSets", 2)])
    );
    assert_eq!(again.record_changes, 0);
    assert!(!again.health_check_created && !again.health_check_updated);
    assert_eq!(again.health_check_id, first.health_check_id);
    assert_eq!(records(&r53, &zone_id).await, written);

    let before = r53.call_log().counts();
    let new_path = ensure(
        &r53,
        &desired(
            &app,
            &dns(
                &format!("{base}, healthCheck: {{path: /ready, failureThreshold: 5}}}}"),
                "us-east-1",
            ),
            owner.clone(),
            EAST_ALB,
        ),
    )
    .await
    .expect("path change");
    assert_eq!(
        delta(&r53, &before),
        BTreeMap::from([
            ("GetHealthCheck", 1),
            ("ListResourceRecordSets", 2),
            ("UpdateHealthCheck", 1)
        ])
    );
    assert_eq!(new_path.health_check_id, first.health_check_id);
    assert!(new_path.health_check_updated);
    let old_id = first.health_check_id.clone().expect("id");
    let config = health_check(&r53, &old_id).await.expect("still there");
    assert_eq!(
        (config.resource_path(), config.failure_threshold()),
        (Some("/ready"), Some(5))
    );

    let before = r53.call_log().counts();
    let faster = ensure(
        &r53,
        &desired(
            &app,
            &dns(
                &format!("{base}, healthCheck: {{path: /ready, failureThreshold: 5, intervalSeconds: 10}}}}"),
                "us-east-1",
            ),
            owner.clone(),
            EAST_ALB,
        ),
    )
    .await
    .expect("interval change");
    let new_id = faster.health_check_id.clone().expect("id");
    assert_ne!(new_id, old_id);
    assert!(faster.health_check_created);
    assert_eq!(
        faster.record_changes, 2,
        "A and AAAA now name the new health check"
    );
    assert_eq!(
        delta(&r53, &before),
        BTreeMap::from([
            ("ChangeResourceRecordSets", 1),
            ("ChangeTagsForResource", 1),
            (CREATE_HEALTH_CHECK, 1),
            ("DeleteHealthCheck", 1),
            ("GetHealthCheck", 2),
            ("ListHealthChecks", 1),
            ("ListResourceRecordSets", 2),
        ])
    );
    assert_eq!(
        health_check(&r53, &old_id).await,
        None,
        "old health check deleted"
    );
    assert_eq!(
        health_check(&r53, &new_id)
            .await
            .and_then(|c| c.request_interval()),
        Some(10)
    );
    assert!(
        records(&r53, &zone_id)
            .await
            .iter()
            .filter(|l| l.contains(" A ") || l.contains(" AAAA "))
            .all(|l| l.ends_with(&format!("hc={new_id}")))
    );
}

/// Two operators in two regions write a failover pair into one hosted zone: each its own
/// record sets and health check. Deleting the primary leaves the secondary exactly as it was.
#[tokio::test]
async fn failover_pair_from_two_regions_coexists_and_deletes_independently() {
    let east = operator(route53_limits()).await;
    let west = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&east, "pair").await;
    let ns = namespace(&zone_name);
    let app = app();
    let spec = |role: &str, region: &str| {
        dns(
            &format!(
                "{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}, routing: failover, role: {role}}}"
            ),
            region,
        )
    };
    let east_owner = dns_owner("east", &zone_name, "shop");
    let west_owner = dns_owner("west", &zone_name, "shop");
    let east_dns = spec("primary", "us-east-1");
    let west_dns = spec("secondary", "us-west-2");
    let e = ensure(
        &east,
        &desired(&app, &east_dns, east_owner.clone(), EAST_ALB),
    )
    .await
    .expect("east");
    let w = ensure(
        &west,
        &desired(&app, &west_dns, west_owner.clone(), WEST_ALB),
    )
    .await
    .expect("west");
    let (e_hc, w_hc) = (
        e.health_check_id.clone().expect("east hc"),
        w.health_check_id.clone().expect("west hc"),
    );
    assert_ne!(e_hc, w_hc);
    let z = &zone_name;
    let mut both = vec![
        format!(
            "_halo-owner.shop.{z}. TXT set=us-east-1 failover=PRIMARY ttl=60 \"heritage=halo,owner=east,resource={ns}/shop\""
        ),
        format!(
            "_halo-owner.shop.{z}. TXT set=us-west-2 failover=SECONDARY ttl=60 \"heritage=halo,owner=west,resource={ns}/shop\""
        ),
    ];
    for kind in ["A", "AAAA"] {
        both.push(format!("shop.{z}. {kind} set=us-east-1 failover=PRIMARY alias=Z35SXDOTRQ7X7K:dualstack.{EAST_ALB}. evaluate=true hc={e_hc}"));
        both.push(format!("shop.{z}. {kind} set=us-west-2 failover=SECONDARY alias=Z1H1FL5HABSF5:dualstack.{WEST_ALB}. evaluate=true hc={w_hc}"));
    }
    both.sort();
    assert_eq!(records(&east, &zone_id).await, both);

    // Each one's next reconcile leaves the other's records alone and changes nothing.
    for (r53, d) in [
        (
            &east,
            desired(&app, &east_dns, east_owner.clone(), EAST_ALB),
        ),
        (
            &west,
            desired(&app, &west_dns, west_owner.clone(), WEST_ALB),
        ),
    ] {
        let before = r53.call_log().counts();
        assert_eq!(ensure(r53, &d).await.expect("again").record_changes, 0);
        assert_eq!(delta(r53, &before).get("ChangeResourceRecordSets"), None);
    }

    let gone = cleanup(&east, &DnsIdentity::new(&east_dns, east_owner))
        .await
        .expect("cleanup east");
    assert_eq!(
        gone,
        CleanupOutcome {
            record_sets_deleted: 3,
            health_checks_deleted: 1
        }
    );
    let west_only: Vec<String> = both
        .into_iter()
        .filter(|l| l.contains("us-west-2"))
        .collect();
    assert_eq!(records(&west, &zone_id).await, west_only);
    assert_eq!(health_check(&east, &e_hc).await, None);
    assert!(health_check(&west, &w_hc).await.is_some());
    let before = west.call_log().counts();
    let w2 = ensure(&west, &desired(&app, &west_dns, west_owner, WEST_ALB))
        .await
        .expect("west after east left");
    assert_eq!((w2.record_changes, w2.health_check_id), (0, Some(w_hc)));
    assert_eq!(delta(&west, &before).get("ChangeResourceRecordSets"), None);
}

/// A set identifier held by another halo, or a record nobody claimed, is never overwritten:
/// ensure fails with a message naming the holder, before creating anything.
#[tokio::test]
async fn refuses_a_slot_another_owner_holds() {
    let east = operator(route53_limits()).await;
    let rogue = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&east, "held").await;
    let ns = namespace(&zone_name);
    let app = app();
    let spec = dns(
        &format!(
            "{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}, routing: failover, role: primary}}"
        ),
        "us-east-1",
    );
    ensure(
        &east,
        &desired(&app, &spec, dns_owner("east", &zone_name, "shop"), EAST_ALB),
    )
    .await
    .expect("east");
    let before = records(&east, &zone_id).await;

    let err = ensure(
        &rogue,
        &desired(
            &app,
            &spec,
            dns_owner("rogue", &zone_name, "shop"),
            WEST_ALB,
        ),
    )
    .await
    .expect_err("slot is held");
    assert!(matches!(err, Error::NotOwned { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "Route 53 record set shop.{zone_name}. with set identifier \"us-east-1\" (held by \"heritage=halo,owner=east,resource={ns}/shop\"; give this app another dns.setIdentifier) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        )
    );
    assert_eq!(records(&east, &zone_id).await, before);
    assert_eq!(rogue.call_log().count(CREATE_HEALTH_CHECK), 0);
    assert_eq!(rogue.call_log().count("ChangeResourceRecordSets"), 0);

    // A record written by hand, without an ownership record.
    let manual = format!("manual.{zone_name}.");
    east.client()
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(&manual)
                                .r#type(RrType::A)
                                .ttl(300)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value("192.0.2.10")
                                        .build()
                                        .expect("rr"),
                                )
                                .build()
                                .expect("rrset"),
                        )
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("manual record");
    let manual_spec = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: manual.{zone_name}}}"),
        "us-east-1",
    );
    let err = ensure(
        &east,
        &desired(
            &app,
            &manual_spec,
            dns_owner("east", &zone_name, "manual"),
            EAST_ALB,
        ),
    )
    .await
    .expect_err("unclaimed record");
    assert_eq!(
        err.to_string(),
        format!(
            "Route 53 record set {manual} (no _halo-owner ownership record) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        )
    );
    assert!(
        records(&east, &zone_id)
            .await
            .contains(&format!("{manual} A ttl=300 192.0.2.10"))
    );
}

/// Deletion removes this app's record sets and health checks, nothing else: not the
/// zone's other records, not another app's, not a health check someone else made.
#[tokio::test]
async fn deletion_removes_only_owned_records() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "cleanup").await;
    let app = app();
    let z = &zone_name;
    let www = format!("www.{z}.");
    r53.client()
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(&www)
                                .r#type(RrType::Cname)
                                .ttl(300)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value("shop.example.net")
                                        .build()
                                        .expect("rr"),
                                )
                                .build()
                                .expect("rrset"),
                        )
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("www record");
    let foreign = r53
        .client()
        .create_health_check()
        .caller_reference(unique("someone-else-"))
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Http)
                .fully_qualified_domain_name(EAST_ALB)
                .resource_path("/healthz")
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("foreign health check")
        .health_check()
        .map(|h| h.id().to_string())
        .expect("id");
    // Another app of the same halo in the same zone (its own set identifier: see module doc).
    let other_spec = dns(
        &format!(
            "{{hostedZoneId: {zone_id}, recordName: other.{z}, routing: weighted, weight: 1, setIdentifier: other}}"
        ),
        "us-east-1",
    );
    let other_owner = dns_owner("east", &zone_name, "other");
    let other = ensure(&r53, &desired(&app, &other_spec, other_owner, EAST_ALB))
        .await
        .expect("other app");
    let before = records(&r53, &zone_id).await;

    let spec = dns(
        &format!(
            "{{hostedZoneId: {zone_id}, recordName: shop.{z}, routing: failover, role: primary}}"
        ),
        "us-east-1",
    );
    let owner = dns_owner("east", &zone_name, "shop");
    let mine = ensure(&r53, &desired(&app, &spec, owner.clone(), EAST_ALB))
        .await
        .expect("app");
    assert_eq!(records(&r53, &zone_id).await.len(), before.len() + 3);

    let id = DnsIdentity::new(&spec, owner);
    assert_eq!(
        cleanup(&r53, &id).await.expect("cleanup"),
        CleanupOutcome {
            record_sets_deleted: 3,
            health_checks_deleted: 1
        }
    );
    assert_eq!(records(&r53, &zone_id).await, before);
    assert_eq!(
        health_check(&r53, mine.health_check_id.as_deref().expect("hc")).await,
        None
    );
    assert!(health_check(&r53, &foreign).await.is_some());
    assert!(
        health_check(&r53, other.health_check_id.as_deref().expect("hc"))
            .await
            .is_some()
    );
    // Repeating it (a finalizer retry) finds nothing more to delete.
    assert_eq!(
        cleanup(&r53, &id).await.expect("cleanup again"),
        CleanupOutcome::default()
    );
}

/// Changing the record's slot (here simple to failover, which Route 53 cannot hold side by
/// side under one name) is the old identity's cleanup followed by an ensure of the new one:
/// afterwards only the new slot and its health check exist.
#[tokio::test]
async fn a_new_slot_replaces_the_old_one_through_cleanup() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "reslot").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let simple = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}}}"),
        "us-east-1",
    );
    let failover = dns(
        &format!(
            "{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}, routing: failover, role: primary}}"
        ),
        "us-east-1",
    );
    let old = ensure(&r53, &desired(&app, &simple, owner.clone(), EAST_ALB))
        .await
        .expect("simple");
    assert_eq!(
        cleanup(&r53, &DnsIdentity::new(&simple, owner.clone()))
            .await
            .expect("cleanup of the old slot"),
        CleanupOutcome {
            record_sets_deleted: 3,
            health_checks_deleted: 1
        }
    );
    let new = ensure(&r53, &desired(&app, &failover, owner.clone(), EAST_ALB))
        .await
        .expect("failover");
    assert_eq!(
        health_check(&r53, old.health_check_id.as_deref().expect("hc")).await,
        None
    );
    let hc = new.health_check_id.expect("hc");
    let ns = namespace(&zone_name);
    let z = &zone_name;
    assert_eq!(
        records(&r53, &zone_id).await,
        vec![
            format!(
                "_halo-owner.shop.{z}. TXT set=us-east-1 failover=PRIMARY ttl=60 \"heritage=halo,owner=east,resource={ns}/shop\""
            ),
            format!(
                "shop.{z}. A set=us-east-1 failover=PRIMARY alias=Z35SXDOTRQ7X7K:dualstack.{EAST_ALB}. evaluate=true hc={hc}"
            ),
            format!(
                "shop.{z}. AAAA set=us-east-1 failover=PRIMARY alias=Z35SXDOTRQ7X7K:dualstack.{EAST_ALB}. evaluate=true hc={hc}"
            ),
        ]
    );
}

/// A zone given by name is looked up once; an unknown name is a spec error naming the field.
#[tokio::test]
async fn zone_names_resolve_to_their_id() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "byname").await;
    let app = app();
    let spec = dns(
        &format!("{{zoneName: {zone_name}, recordName: shop.{zone_name}}}"),
        "us-east-1",
    );
    let d = desired(&app, &spec, dns_owner("east", &zone_name, "shop"), EAST_ALB);
    assert_eq!(ensure(&r53, &d).await.expect("ensure").zone_id, zone_id);
    ensure(&r53, &d).await.expect("ensure again");
    assert_eq!(r53.call_log().count("ListHostedZonesByName"), 1);

    let missing = dns(
        "{zoneName: no-such-zone.example.org, recordName: shop.no-such-zone.example.org}",
        "us-east-1",
    );
    let err = ensure(
        &r53,
        &desired(
            &app,
            &missing,
            dns_owner("east", &zone_name, "shop"),
            EAST_ALB,
        ),
    )
    .await
    .expect_err("unknown zone");
    assert_eq!(
        err.to_string(),
        "invalid spec: spec.dns.zoneName: no Route 53 hosted zone is named no-such-zone.example.org."
    );
}

/// The status read: moto reports its one checker healthy, so DNSReady is True. (The
/// unhealthy path is tested with a fake status call in the unit tests: moto cannot fail it.)
#[tokio::test]
async fn health_status_from_the_emulator() {
    let r53 = operator(route53_limits()).await;
    let (zone_id, zone_name) = zone(&r53, "status").await;
    let spec = dns(
        &format!(
            "{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}, routing: failover, role: primary}}"
        ),
        "us-east-1",
    );
    let observed = ensure(
        &r53,
        &desired(
            &app(),
            &spec,
            dns_owner("east", &zone_name, "shop"),
            EAST_ALB,
        ),
    )
    .await
    .expect("ensure");
    let id = observed.health_check_id.clone().expect("hc");
    let health = health_status(&r53, &id).await.expect("status");
    assert_eq!((health.healthy_checkers, health.checkers), (1, 1));
    let r = readiness(&observed, Some(&health));
    assert_eq!((r.ready, r.reason), (true, "HealthCheckHealthy"));
    assert_eq!(r53.call_log().count("GetHealthCheckStatus"), 1);
}

/// 50 apps converging at once through one operator's limiter: every one succeeds, and the
/// requests never exceed the token bucket (burst + rate x elapsed) overall or for
/// CreateHealthCheck. A second round changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_apps_converge_under_the_rate_limit() {
    const APPS: usize = 50;
    let overall = Rate::new(10.0, 10);
    let creates = Rate::new(2.0, 10);
    let mut limits = route53_limits();
    limits.overall = overall;
    limits
        .operations
        .retain(|(op, _)| *op != CREATE_HEALTH_CHECK);
    limits.operations.push((CREATE_HEALTH_CHECK, creates));
    let r53 = Arc::new(operator(limits).await);
    let (zone_id, zone_name) = zone(&r53, "fifty").await;
    let app = Arc::new(app());

    let round = |label: &'static str| {
        let r53 = r53.clone();
        let app = app.clone();
        let zone_id = zone_id.clone();
        let zone_name = zone_name.clone();
        async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..APPS)
                .map(|i| {
                    let r53 = r53.clone();
                    let app = app.clone();
                    let spec = dns(
                        &format!("{{hostedZoneId: {zone_id}, recordName: app-{i:02}.{zone_name}, routing: failover, role: primary}}"),
                        "us-east-1",
                    );
                    let owner = DnsOwner::new(
                        "east",
                        &Owner {
                            name: format!("app-{i:02}"),
                            namespace: namespace(&zone_name),
                            uid: format!("uid-{i:02}-{zone_id}"),
                        },
                    );
                    tokio::spawn(async move {
                        ensure(&r53, &desired(&app, &spec, owner, EAST_ALB)).await
                    })
                })
                .collect();
            let mut changes = 0;
            let mut failures = Vec::new();
            for t in tasks {
                match t.await.expect("task") {
                    Ok(o) => changes += o.record_changes,
                    Err(e) => failures.push(e.to_string()),
                }
            }
            println!(
                "{label}: {APPS} apps in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            (changes, failures)
        }
    };

    let (changes, failures) = round("first round").await;
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(changes, APPS * 3);
    let log = r53.call_log();
    assert_eq!(log.count(CREATE_HEALTH_CHECK), APPS as u64);
    assert_eq!(log.count("ChangeResourceRecordSets"), APPS as u64);
    assert_eq!(records(&r53, &zone_id).await.len(), APPS * 3);

    let before = log.counts();
    let (changes, failures) = round("second round").await;
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(changes, 0);
    assert_eq!(
        delta(&r53, &before),
        BTreeMap::from([
            ("GetHealthCheck", APPS as u64),
            ("ListResourceRecordSets", 2 * APPS as u64)
        ])
    );

    let times = log.times();
    let all: Vec<Instant> = times.iter().map(|(t, _)| *t).collect();
    let created: Vec<Instant> = times
        .iter()
        .filter(|(_, api)| *api == CREATE_HEALTH_CHECK)
        .map(|(t, _)| *t)
        .collect();
    print_per_second(&times);
    assert_within_bucket("all Route 53 requests", &all, overall);
    assert_within_bucket("CreateHealthCheck", &created, creates);
}

/// Requests per second since the first, overall and CreateHealthCheck.
fn print_per_second(times: &[(Instant, &'static str)]) {
    let Some(first) = times.iter().map(|(t, _)| *t).min() else {
        return;
    };
    let mut per_second: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    for (t, api) in times {
        let s = per_second.entry((*t - first).as_secs()).or_default();
        s.0 += 1;
        if *api == CREATE_HEALTH_CHECK {
            s.1 += 1;
        }
    }
    let total = times.len();
    let span = times
        .iter()
        .map(|(t, _)| *t - first)
        .max()
        .unwrap_or_default();
    println!(
        "{total} Route 53 requests in {:.1} s ({:.2}/s); per second (all, CreateHealthCheck):",
        span.as_secs_f64(),
        total as f64 / span.as_secs_f64().max(1.0)
    );
    let line: Vec<String> = per_second
        .iter()
        .map(|(s, (n, c))| format!("{s}s:{n}/{c}"))
        .collect();
    println!("{}", line.join(" "));
}

/// The token-bucket bound: in any window the requests are at most the burst plus what the
/// rate refills in that window (plus 100 ms for the scheduling between grant and send).
fn assert_within_bucket(what: &str, times: &[Instant], rate: Rate) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut worst_window = 0usize;
    for i in 0..sorted.len() {
        let in_second = sorted[i..]
            .iter()
            .take_while(|t| **t - sorted[i] < Duration::from_secs(1))
            .count();
        worst_window = worst_window.max(in_second);
        for j in i..sorted.len() {
            let window = (sorted[j] - sorted[i]).as_secs_f64() + 0.1;
            let allowed = f64::from(rate.burst) + rate.per_second * window;
            assert!(
                (j - i + 1) as f64 <= allowed,
                "{what}: {} requests within {window:.2} s, the bucket allows {allowed:.1}",
                j - i + 1
            );
        }
    }
    println!(
        "{what}: {} requests, at most {worst_window} in any 1 s window (bucket: {}/s, burst {})",
        sorted.len(),
        rate.per_second,
        rate.burst
    );
}

/// Route 53's memory of CallerReferences, which moto lacks (moto 5.2.5 ignores the reference:
/// it neither refuses a used one nor returns the existing check). AWS refuses the reference of
/// a deleted health check for days with HealthCheckAlreadyExists; this interceptor refuses
/// every reference it has already seen created, so a test fails whenever halo would send one
/// twice. A refused request is turned into a read of a missing check (moto creates nothing)
/// and its answer into AWS's 409.
#[derive(Debug, Default)]
struct RememberReferences {
    seen: std::sync::Mutex<Vec<String>>,
    refused: std::sync::Mutex<Vec<String>>,
    refusing: std::sync::atomic::AtomicBool,
}

impl RememberReferences {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
    fn refused(&self) -> Vec<String> {
        self.refused.lock().expect("lock").clone()
    }
    /// As if a health check with `reference` had been created and deleted earlier.
    fn remember(&self, reference: &str) {
        self.seen.lock().expect("lock").push(reference.to_string());
    }
}

#[derive(Debug, Clone)]
struct Remember(Arc<RememberReferences>);

impl aws_sdk_route53::config::Intercept for Remember {
    fn name(&self) -> &'static str {
        "RememberReferences"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_route53::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _: &aws_sdk_route53::config::RuntimeComponents,
        _: &mut aws_sdk_route53::config::ConfigBag,
    ) -> Result<(), aws_sdk_route53::error::BoxError> {
        let request = context.request_mut();
        if request.method() != "POST" || !request.uri().ends_with("/healthcheck") {
            return Ok(());
        }
        let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).to_string();
        let reference = body
            .split("<CallerReference>")
            .nth(1)
            .and_then(|s| s.split("</CallerReference>").next())
            .unwrap_or_default()
            .to_string();
        let mut seen = self.0.seen.lock().expect("lock");
        if seen.contains(&reference) {
            self.0.refused.lock().expect("lock").push(reference);
            self.0
                .refusing
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let uri = format!("{}/halo-refused", request.uri());
            request.set_method("GET")?;
            request.set_uri(uri)?;
            *request.body_mut() = String::new().into();
            request.headers_mut().remove("content-length");
            request.headers_mut().remove("content-type");
        } else {
            seen.push(reference);
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_route53::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_route53::config::RuntimeComponents,
        _: &mut aws_sdk_route53::config::ConfigBag,
    ) -> Result<(), aws_sdk_route53::error::BoxError> {
        if self
            .0
            .refusing
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let response = context.response_mut();
            *response.status_mut() = 409u16.try_into()?;
            *response.body_mut() = "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>HealthCheckAlreadyExists</Code><Message>A health check with this CallerReference already exists or was deleted recently</Message></Error><RequestId>halo-test</RequestId></ErrorResponse>".to_string().into();
        }
        Ok(())
    }
}

/// A Route 53 client of one halo whose CreateHealthCheck requests go through
/// [`RememberReferences`].
async fn remembering_operator() -> (Route53, Arc<RememberReferences>) {
    let memory = Arc::new(RememberReferences::default());
    let config = aws_sdk_route53::config::Builder::from(&sdk().await)
        .retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled())
        .interceptor(Remember(memory.clone()))
        .build();
    let r53 = Route53::new(
        aws_sdk_route53::Client::from_conf(config),
        Arc::new(RateLimiter::new(route53_limits())),
    )
    .with_call_log(Arc::new(CallLog::with_times()));
    (r53, memory)
}

async fn reference_of(r53: &Route53, id: Option<&str>) -> String {
    r53.get_health_check(id.expect("a health check"))
        .await
        .expect("get health check")
        .expect("exists")
        .caller_reference
}

/// Removing `spec.dns` (generation 2 deletes the check; its status records generation 2) and
/// adding it back (generation 3) creates a check under a new reference, which Route 53 accepts.
#[tokio::test]
async fn readded_dns_gets_a_new_caller_reference() {
    let (r53, memory) = remembering_operator().await;
    let (zone_id, zone_name) = zone(&r53, "readd").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let spec = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}}}"),
        "us-east-1",
    );
    let first = ensure(
        &r53,
        &desired(&app, &spec, owner.clone(), EAST_ALB).at_generation(1),
    )
    .await
    .expect("generation 1");
    let first_reference = reference_of(&r53, first.health_check_id.as_deref()).await;
    let removed = cleanup(&r53, &DnsIdentity::new(&spec, owner.clone()))
        .await
        .expect("generation 2 removes dns");
    assert_eq!(removed.health_checks_deleted, 1);

    let again = ensure(
        &r53,
        &desired(&app, &spec, owner.clone(), EAST_ALB).at_generation(2),
    )
    .await
    .expect("generation 3 adds dns back: Route 53 accepts the reference");
    assert!(again.health_check_created);
    let again_reference = reference_of(&r53, again.health_check_id.as_deref()).await;
    assert_ne!(again_reference, first_reference);
    assert_eq!(memory.seen(), vec![first_reference, again_reference]);
    assert_eq!(memory.refused(), Vec::<String>::new());
}

/// recordName A -> B -> A: the check created back at A has a reference other than the first.
#[tokio::test]
async fn record_moved_away_and_back_gets_a_new_caller_reference() {
    let (r53, memory) = remembering_operator().await;
    let (zone_id, zone_name) = zone(&r53, "aba").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let a = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: a.{zone_name}}}"),
        "us-east-1",
    );
    let b = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: b.{zone_name}}}"),
        "us-east-1",
    );
    let at_a = ensure(
        &r53,
        &desired(&app, &a, owner.clone(), EAST_ALB).at_generation(1),
    )
    .await
    .expect("A");
    let first = reference_of(&r53, at_a.health_check_id.as_deref()).await;
    cleanup(&r53, &DnsIdentity::new(&a, owner.clone()))
        .await
        .expect("A cleaned up");
    ensure(
        &r53,
        &desired(&app, &b, owner.clone(), EAST_ALB).at_generation(1),
    )
    .await
    .expect("B");
    cleanup(&r53, &DnsIdentity::new(&b, owner.clone()))
        .await
        .expect("B cleaned up");
    let back = ensure(
        &r53,
        &desired(&app, &a, owner.clone(), EAST_ALB).at_generation(2),
    )
    .await
    .expect("back at A: Route 53 accepts the reference");
    let third = reference_of(&r53, back.health_check_id.as_deref()).await;
    assert_ne!(third, first);
    assert_eq!(memory.seen().len(), 3);
    assert_eq!(memory.refused(), Vec::<String>::new());
}

/// A crash between CreateHealthCheck and the records (simulated: the records the first
/// attempt wrote are deleted again, the status never recorded the check): the retry finds the
/// check by its reference and creates none. Also when the status moved on to a later
/// generation meanwhile: the check is found on the slot's prefix.
#[tokio::test]
async fn a_retry_after_a_crash_creates_no_second_health_check() {
    let (r53, memory) = remembering_operator().await;
    let (zone_id, zone_name) = zone(&r53, "crash").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let spec = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}}}"),
        "us-east-1",
    );
    let d = desired(&app, &spec, owner.clone(), EAST_ALB).at_generation(1);
    let first = ensure(&r53, &d).await.expect("first attempt");
    let id = first.health_check_id.clone().expect("hc");
    let reference = reference_of(&r53, Some(&id)).await;
    assert_eq!(d.caller_reference(None), Some(reference.clone()));

    for generation in [1, 2] {
        let sets = r53
            .client()
            .list_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .send()
            .await
            .expect("list");
        let changes: Vec<Change> = sets
            .resource_record_sets()
            .iter()
            .filter(|r| !matches!(r.r#type(), RrType::Ns | RrType::Soa))
            .map(|r| {
                Change::builder()
                    .action(ChangeAction::Delete)
                    .resource_record_set(r.clone())
                    .build()
                    .expect("change")
            })
            .collect();
        r53.client()
            .change_resource_record_sets()
            .hosted_zone_id(&zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .expect("batch"),
            )
            .send()
            .await
            .expect("crash: records gone");
        let before = r53.call_log().counts();
        let retry = ensure(
            &r53,
            &desired(&app, &spec, owner.clone(), EAST_ALB).at_generation(generation),
        )
        .await
        .expect("retry");
        assert_eq!(retry.health_check_id.as_deref(), Some(id.as_str()));
        assert!(!retry.health_check_created);
        assert_eq!(delta(&r53, &before).get(CREATE_HEALTH_CHECK), None);
        assert_eq!(
            d.clone()
                .at_generation(generation)
                .caller_reference(None)
                .is_some_and(|r| r == reference),
            generation == 1,
            "the same status gives the same reference"
        );
    }
    assert_eq!(memory.seen(), vec![reference]);
}

/// When Route 53 refuses the reference anyway (the reconcile that deleted the check crashed
/// before recording its generation), halo creates once more under a fresh reference instead of
/// failing every reconcile.
#[tokio::test]
async fn a_refused_caller_reference_is_replaced_by_a_fresh_one() {
    let (r53, memory) = remembering_operator().await;
    let (zone_id, zone_name) = zone(&r53, "refused").await;
    let app = app();
    let owner = dns_owner("east", &zone_name, "shop");
    let spec = dns(
        &format!("{{hostedZoneId: {zone_id}, recordName: shop.{zone_name}}}"),
        "us-east-1",
    );
    let d = desired(&app, &spec, owner.clone(), EAST_ALB).at_generation(1);
    let stale = d.caller_reference(None).expect("reference");
    memory.remember(&stale);

    let before = r53.call_log().counts();
    let created = ensure(&r53, &d).await.expect("not wedged");
    assert!(created.health_check_created);
    assert_eq!(delta(&r53, &before).get(CREATE_HEALTH_CHECK), Some(&2));
    assert_eq!(memory.refused(), vec![stale.clone()]);
    let fresh = reference_of(&r53, created.health_check_id.as_deref()).await;
    assert_ne!(fresh, stale);
    assert!(fresh.starts_with(&DnsIdentity::new(&spec, owner.clone()).caller_reference_prefix()));

    // The next reconcile keeps it.
    let again = ensure(&r53, &d).await.expect("converged");
    assert_eq!(again.health_check_id, created.health_check_id);
    assert!(!again.health_check_created);
    assert_eq!(
        cleanup(&r53, &DnsIdentity::new(&spec, owner))
            .await
            .expect("cleanup")
            .health_checks_deleted,
        1
    );
}
