//! An app's request against its namespace's rights: [`check`], and the [`Refusal`] a tenant
//! can act on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::rights::{
    AdoptionGrant, DnsGrant, IdPattern, IngressGrant, Rights, normalize_name, normalize_zone_id,
};
use crate::Error;
use crate::api::dns::{Routing, ZoneRef};

/// What an app asks for beyond its own halo-named resources; filled from the validated app.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TenancyRequest {
    pub namespace: String,
    /// `spec.database.adopt` and `spec.cache.adopt`.
    pub adopt: Vec<AdoptRequest>,
    /// `spec.dns`.
    pub dns: Option<DnsRequest>,
    /// `spec.ingress`.
    pub ingress: Option<IngressRequest>,
}

/// Kinds of AWS resources an app can adopt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoptKind {
    AuroraCluster,
    ElastiCacheReplicationGroup,
}

impl AdoptKind {
    /// The app field that names the identifier.
    pub fn field(self) -> &'static str {
        match self {
            AdoptKind::AuroraCluster => "spec.database.adopt.clusterIdentifier",
            AdoptKind::ElastiCacheReplicationGroup => "spec.cache.adopt.replicationGroupId",
        }
    }

    /// The policy field that lists adoptable identifiers of this kind.
    pub fn policy_field(self) -> &'static str {
        match self {
            AdoptKind::AuroraCluster => "auroraClusters",
            AdoptKind::ElastiCacheReplicationGroup => "elastiCacheReplicationGroups",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            AdoptKind::AuroraCluster => "Aurora cluster",
            AdoptKind::ElastiCacheReplicationGroup => "ElastiCache replication group",
        }
    }

    fn patterns(self, grant: &AdoptionGrant) -> &[IdPattern] {
        match self {
            AdoptKind::AuroraCluster => &grant.aurora_clusters,
            AdoptKind::ElastiCacheReplicationGroup => &grant.elasticache_replication_groups,
        }
    }
}

/// One resource the app asks to adopt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptRequest {
    pub kind: AdoptKind,
    pub identifier: String,
    /// The resource's tags as AWS reports them (a read, before this check); empty when not
    /// read. Only grants with requiredTags look at them.
    pub tags: BTreeMap<String, String>,
}

/// A hosted zone halo has looked up: both its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedZone {
    pub id: String,
    pub name: String,
}

/// The app's Route 53 record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRequest {
    /// The zone as the app names it (`ValidatedDns::zone`); decides the field a refusal names.
    pub zone: ZoneRef,
    /// The zone's id and name once halo has looked it up (a read), so that a policy granting
    /// the zone by the other key admits it too. `None`: only `zone` is compared.
    pub resolved_zone: Option<ResolvedZone>,
    pub record_name: String,
    pub routing: Routing,
    /// Shown in refusals; whose record a set identifier may join is Route 53 ownership's
    /// question, not the policy's.
    pub set_identifier: Option<String>,
}

/// The app's Ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRequest {
    pub host: String,
    pub group_name: Option<String>,
}

// ---------------------------------------------------------------- refusals

/// Which part of the policy refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No rule naming the namespace allows adoption.
    Adoption,
    /// Adoption is allowed, but not of this identifier.
    AdoptionIdentifier,
    /// The identifier is granted, but the resource lacks the required tags.
    AdoptionTags,
    /// No rule naming the namespace grants Route 53 records.
    Dns,
    /// The hosted zone is not granted.
    HostedZone,
    /// The record name is outside the granted suffixes (in the granted zone).
    RecordName,
    /// The routing policy is not granted (for this zone and name).
    RoutingPolicy,
    /// The ALB group is not granted.
    IngressGroup,
    /// The ALB group is granted, but not for this host.
    IngressHost,
    /// The rights were computed for another namespace (a bug in the caller; refused to be safe).
    Namespace,
}

impl Refused {
    /// The policy field that would grant the request: what the platform team edits.
    pub fn policy_field(self) -> &'static str {
        match self {
            Refused::Adoption => "adoption.allowed",
            Refused::AdoptionIdentifier => {
                "adoption.auroraClusters / adoption.elastiCacheReplicationGroups"
            }
            Refused::AdoptionTags => "adoption.requiredTags",
            Refused::Dns => "dns",
            Refused::HostedZone => "dns.hostedZoneIds / dns.zoneNames",
            Refused::RecordName => "dns.recordNameSuffixes",
            Refused::RoutingPolicy => "dns.routingPolicies",
            Refused::IngressGroup => "ingress.groupNames",
            Refused::IngressHost => "ingress.hostSuffixes",
            Refused::Namespace => "namespaces",
        }
    }

    /// A stable condition reason (and metric label) per refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Adoption => "TenancyAdoptionNotAllowed",
            Refused::AdoptionIdentifier => "TenancyAdoptionIdentifierNotAllowed",
            Refused::AdoptionTags => "TenancyAdoptionTagsMissing",
            Refused::Dns => "TenancyDNSNotAllowed",
            Refused::HostedZone => "TenancyHostedZoneNotAllowed",
            Refused::RecordName => "TenancyRecordNameNotAllowed",
            Refused::RoutingPolicy => "TenancyRoutingPolicyNotAllowed",
            Refused::IngressGroup => "TenancyIngressGroupNotAllowed",
            Refused::IngressHost => "TenancyIngressHostNotAllowed",
            Refused::Namespace => "TenancyWrongNamespace",
        }
    }
}

/// Why an app is outside its namespace's rights, and what would put it inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub refused: Refused,
    /// The app field at fault, e.g. `spec.database.adopt.clusterIdentifier`.
    pub field: String,
    pub namespace: String,
    /// What the app asked for, e.g. `adopt Aurora cluster prod-billing`.
    pub request: String,
    /// The rules that name the namespace, as `<policy>/<rule>`; empty: no policy names it.
    pub considered: Vec<String>,
    /// What those rules grant of the refused kind, e.g. `hosted zones Z1, example.com`.
    pub granted: String,
    /// What the platform team would have to grant, in a TenancyPolicy rule naming the namespace.
    pub needed: String,
}

impl Refusal {
    /// The text after `<field>: ` in the condition message.
    pub fn message(&self) -> String {
        let considered = if self.considered.is_empty() {
            format!(
                "no TenancyPolicy names namespace {}, so it may only create its own resources (no adoption, no DNS record, no ALB group)",
                self.namespace
            )
        } else {
            format!(
                "the TenancyPolicy rules naming namespace {} ({}) grant {}",
                self.namespace,
                self.considered.join(", "),
                self.granted
            )
        };
        format!(
            "namespace {} may not {}: {}; the platform team can allow it with a TenancyPolicy rule naming namespace {} with {}",
            self.namespace, self.request, considered, self.namespace, self.needed
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::TenancyRefused {
            reason: r.refused.reason(),
            message: r.message(),
            field: r.field,
        }
    }
}

// ---------------------------------------------------------------- check

/// Whether `request` fits within `rights`. The first refusal wins, in the order adoption
/// (database, then cache, as listed), DNS, ingress; within each, the broadest missing grant
/// is named first (nothing of the kind, then the zone, then the name, then the policy).
#[expect(
    clippy::result_large_err,
    reason = "at most one refusal per reconcile, carrying the whole explanation; a Box would only make matching on it clumsier"
)]
pub fn check(rights: &Rights, request: &TenancyRequest) -> Result<(), Refusal> {
    let refusal =
        |refused: Refused, field: &str, req: String, granted: String, needed: String| Refusal {
            refused,
            field: field.to_string(),
            namespace: request.namespace.clone(),
            request: req,
            considered: rights.rules.iter().map(ToString::to_string).collect(),
            granted,
            needed,
        };
    if rights.namespace != request.namespace {
        return Err(refusal(
            Refused::Namespace,
            "metadata.namespace",
            format!(
                "be checked against the rights of namespace {}",
                rights.namespace
            ),
            format!(
                "nothing to it: halo computed these rights for namespace {} (a bug in halo, refused to be safe)",
                rights.namespace
            ),
            "nothing: report the bug".into(),
        ));
    }
    for adopt in &request.adopt {
        check_adopt(&rights.adoption, adopt).map_err(|(refused, granted, needed)| {
            refusal(
                refused,
                adopt.kind.field(),
                format!("adopt {} {}", adopt.kind.noun(), adopt.identifier),
                granted,
                needed,
            )
        })?;
    }
    if let Some(dns) = &request.dns {
        check_dns(&rights.dns, dns).map_err(|(refused, field, granted, needed)| {
            let set = dns
                .set_identifier
                .as_ref()
                .map(|s| format!(" (set identifier {s})"))
                .unwrap_or_default();
            refusal(
                refused,
                field,
                format!(
                    "write the {} Route 53 record {}{set} in hosted zone {}",
                    routing_name(dns.routing),
                    normalize_name(&dns.record_name),
                    zone_label(dns)
                ),
                granted,
                needed,
            )
        })?;
    }
    if let Some(ingress) = &request.ingress {
        check_ingress(&rights.ingress, ingress).map_err(|(refused, field, granted, needed)| {
            refusal(
                refused,
                field,
                format!(
                    "route host {} on the shared ALB group {}",
                    normalize_name(&ingress.host),
                    ingress.group_name.as_deref().unwrap_or_default()
                ),
                granted,
                needed,
            )
        })?;
    }
    Ok(())
}

/// (refused, what is granted, what is needed).
type Why = (Refused, String, String);

fn check_adopt(grants: &[AdoptionGrant], adopt: &AdoptRequest) -> Result<(), Why> {
    let id = adopt.identifier.trim();
    let want_id = format!(
        "adoption: {{allowed: true, {}: [{id}]}}",
        adopt.kind.policy_field()
    );
    if grants.is_empty() {
        return Err((Refused::Adoption, "no adoption".into(), want_id));
    }
    let by_id: Vec<&AdoptionGrant> = grants
        .iter()
        .filter(|g| adopt.kind.patterns(g).iter().any(|p| p.matches(id)))
        .collect();
    if by_id.is_empty() {
        let patterns: Vec<String> = grants
            .iter()
            .flat_map(|g| adopt.kind.patterns(g))
            .map(ToString::to_string)
            .collect();
        let granted = if patterns.is_empty() {
            format!("adoption of no {}", adopt.kind.noun())
        } else {
            format!("adoption of {} {}", adopt.kind.noun(), patterns.join(", "))
        };
        return Err((Refused::AdoptionIdentifier, granted, want_id));
    }
    let missing = |g: &AdoptionGrant| -> Vec<String> {
        g.required_tags
            .iter()
            .filter(|(k, v)| adopt.tags.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    };
    if by_id.iter().any(|g| missing(g).is_empty()) {
        return Ok(());
    }
    let granted = by_id
        .iter()
        .map(|g| format!("{id} with tags {} ({})", missing(g).join(", "), g.source))
        .collect::<Vec<_>>()
        .join("; ");
    Err((
        Refused::AdoptionTags,
        format!("adoption of {granted}, which the resource lacks"),
        format!("{want_id} and requiredTags the resource has (or tag the resource)"),
    ))
}

/// (refused, app field, what is granted, what is needed).
type FieldWhy = (Refused, &'static str, String, String);

fn check_dns(grants: &[DnsGrant], dns: &DnsRequest) -> Result<(), FieldWhy> {
    let name = normalize_name(&dns.record_name);
    let (zone_field, zone_want) = match &dns.zone {
        ZoneRef::Id(id) => (
            "spec.dns.hostedZoneId",
            format!("hostedZoneIds: [{}]", normalize_zone_id(id)),
        ),
        ZoneRef::Name(n) => (
            "spec.dns.zoneName",
            format!("zoneNames: [{}]", normalize_name(n)),
        ),
    };
    let want = format!(
        "dns: {{{zone_want}, recordNameSuffixes: [{name}], routingPolicies: [{}]}}",
        routing_name(dns.routing)
    );
    if grants.is_empty() {
        return Err((Refused::Dns, "spec.dns", "no Route 53 record".into(), want));
    }
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    match &dns.zone {
        ZoneRef::Id(id) => ids.insert(normalize_zone_id(id)),
        ZoneRef::Name(n) => names.insert(normalize_name(n)),
    };
    if let Some(r) = &dns.resolved_zone {
        ids.insert(normalize_zone_id(&r.id));
        names.insert(normalize_name(&r.name));
    }
    let in_zone: Vec<&DnsGrant> = grants
        .iter()
        .filter(|g| {
            ids.iter().any(|i| g.hosted_zone_ids.contains(i))
                || names.iter().any(|n| g.zone_names.contains(n))
        })
        .collect();
    if in_zone.is_empty() {
        let zones: Vec<String> = grants
            .iter()
            .flat_map(|g| g.hosted_zone_ids.iter().chain(&g.zone_names).cloned())
            .collect();
        return Err((
            Refused::HostedZone,
            zone_field,
            format!("hosted zones {}", zones.join(", ")),
            want,
        ));
    }
    let named: Vec<&DnsGrant> = in_zone
        .iter()
        .copied()
        .filter(|g| g.record_name_suffixes.iter().any(|s| s.matches(&name)))
        .collect();
    if named.is_empty() {
        let suffixes: Vec<String> = in_zone
            .iter()
            .flat_map(|g| g.record_name_suffixes.iter().map(ToString::to_string))
            .collect();
        return Err((
            Refused::RecordName,
            "spec.dns.recordName",
            format!("record names {} in this zone", suffixes.join(", ")),
            want,
        ));
    }
    if named
        .iter()
        .any(|g| g.routing_policies.contains(&dns.routing))
    {
        return Ok(());
    }
    let mut policies: Vec<&str> = Vec::new();
    for r in named.iter().flat_map(|g| &g.routing_policies) {
        if !policies.contains(&routing_name(*r)) {
            policies.push(routing_name(*r));
        }
    }
    Err((
        Refused::RoutingPolicy,
        "spec.dns.routing",
        format!("routing policies {} for this name", policies.join(", ")),
        want,
    ))
}

fn check_ingress(grants: &[IngressGrant], ingress: &IngressRequest) -> Result<(), FieldWhy> {
    // Without a group the app gets its own ALB: it routes only what DNS sends it.
    let Some(group) = &ingress.group_name else {
        return Ok(());
    };
    let host = normalize_name(&ingress.host);
    let want = format!("ingress: {{groupNames: [{group}], hostSuffixes: [{host}]}}");
    let in_group: Vec<&IngressGrant> = grants
        .iter()
        .filter(|g| g.group_names.contains(group))
        .collect();
    if in_group.is_empty() {
        let groups: Vec<&str> = grants
            .iter()
            .flat_map(|g| g.group_names.iter().map(String::as_str))
            .collect();
        let granted = if groups.is_empty() {
            "no ALB group".to_string()
        } else {
            format!("ALB groups {}", groups.join(", "))
        };
        return Err((
            Refused::IngressGroup,
            "spec.ingress.groupName",
            granted,
            want,
        ));
    }
    if in_group
        .iter()
        .any(|g| g.host_suffixes.is_empty() || g.host_suffixes.iter().any(|s| s.matches(&host)))
    {
        return Ok(());
    }
    let suffixes: Vec<String> = in_group
        .iter()
        .flat_map(|g| g.host_suffixes.iter().map(ToString::to_string))
        .collect();
    Err((
        Refused::IngressHost,
        "spec.ingress.host",
        format!("hosts {} on this group", suffixes.join(", ")),
        want,
    ))
}

fn routing_name(r: Routing) -> &'static str {
    match r {
        Routing::Simple => "simple",
        Routing::Failover => "failover",
        Routing::Weighted => "weighted",
        Routing::Latency => "latency",
    }
}

fn zone_label(dns: &DnsRequest) -> String {
    match &dns.zone {
        ZoneRef::Id(id) => normalize_zone_id(id),
        ZoneRef::Name(n) => normalize_name(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::policy::TenancyPolicy;
    use crate::tenancy::rights::rights_for;
    use crate::tenancy::rights::tests::{no_labels, policy};

    fn platform() -> Vec<TenancyPolicy> {
        vec![policy(
            "platform",
            concat!(
                "  - {name: shop, namespaces: [shop], adoption: {allowed: true, auroraClusters: [prod-billing], elastiCacheReplicationGroups: [legacy-*]},",
                " dns: {hostedZoneIds: [Z1], zoneNames: [example.com], recordNameSuffixes: [.shop.example.com], routingPolicies: [simple, failover]},",
                " ingress: {groupNames: [shop-alb], hostSuffixes: [.shop.example.com]}}\n",
                "  - {name: evil-dns, namespaces: [evil], dns: {hostedZoneIds: [Z2], recordNameSuffixes: [.evil.example.com]}}\n",
            ),
        )]
    }

    fn rights(namespace: &str) -> Rights {
        rights_for(&platform(), namespace, &no_labels())
    }

    fn request(namespace: &str) -> TenancyRequest {
        TenancyRequest {
            namespace: namespace.into(),
            ..TenancyRequest::default()
        }
    }

    fn adopt(namespace: &str, kind: AdoptKind, id: &str, tags: &[(&str, &str)]) -> TenancyRequest {
        TenancyRequest {
            adopt: vec![AdoptRequest {
                kind,
                identifier: id.into(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            ..request(namespace)
        }
    }

    fn dns(namespace: &str, zone: ZoneRef, record: &str, routing: Routing) -> TenancyRequest {
        TenancyRequest {
            dns: Some(DnsRequest {
                zone,
                resolved_zone: None,
                record_name: record.into(),
                routing,
                set_identifier: (routing != Routing::Simple).then(|| "us-east-1".to_string()),
            }),
            ..request(namespace)
        }
    }

    fn ingress(namespace: &str, host: &str, group: Option<&str>) -> TenancyRequest {
        TenancyRequest {
            ingress: Some(IngressRequest {
                host: host.into(),
                group_name: group.map(String::from),
            }),
            ..request(namespace)
        }
    }

    fn id(z: &str) -> ZoneRef {
        ZoneRef::Id(z.into())
    }

    /// The attack: namespace `evil` adopting prod-billing with no policy at all is
    /// refused, naming spec.database.adopt and what the platform team would have to grant.
    #[test]
    fn evil_adopting_prod_billing_without_any_policy_is_refused() {
        let r = rights_for(&[], "evil", &no_labels());
        let refusal = check(
            &r,
            &adopt("evil", AdoptKind::AuroraCluster, "prod-billing", &[]),
        )
        .expect_err("refused");
        assert_eq!(
            refusal,
            Refusal {
                refused: Refused::Adoption,
                field: "spec.database.adopt.clusterIdentifier".into(),
                namespace: "evil".into(),
                request: "adopt Aurora cluster prod-billing".into(),
                considered: vec![],
                granted: "no adoption".into(),
                needed: "adoption: {allowed: true, auroraClusters: [prod-billing]}".into(),
            }
        );
        assert_eq!(
            refusal.to_string(),
            "spec.database.adopt.clusterIdentifier: namespace evil may not adopt Aurora cluster prod-billing: no TenancyPolicy names namespace evil, so it may only create its own resources (no adoption, no DNS record, no ALB group); the platform team can allow it with a TenancyPolicy rule naming namespace evil with adoption: {allowed: true, auroraClusters: [prod-billing]}"
        );
        assert_eq!(refusal.refused.reason(), "TenancyAdoptionNotAllowed");
        assert_eq!(
            Error::from(refusal).to_string(),
            "spec.database.adopt.clusterIdentifier: namespace evil may not adopt Aurora cluster prod-billing: no TenancyPolicy names namespace evil, so it may only create its own resources (no adoption, no DNS record, no ALB group); the platform team can allow it with a TenancyPolicy rule naming namespace evil with adoption: {allowed: true, auroraClusters: [prod-billing]}"
        );
    }

    /// A policy that names `evil` for DNS only still grants it no adoption; the refusal lists
    /// the rule it considered.
    #[test]
    fn evil_adopting_prod_billing_with_a_dns_only_rule_is_refused() {
        let refusal = check(
            &rights("evil"),
            &adopt("evil", AdoptKind::AuroraCluster, "prod-billing", &[]),
        )
        .expect_err("refused");
        assert_eq!(refusal.refused, Refused::Adoption);
        assert_eq!(refusal.considered, vec!["platform/evil-dns".to_string()]);
        assert_eq!(
            refusal.message(),
            "namespace evil may not adopt Aurora cluster prod-billing: the TenancyPolicy rules naming namespace evil (platform/evil-dns) grant no adoption; the platform team can allow it with a TenancyPolicy rule naming namespace evil with adoption: {allowed: true, auroraClusters: [prod-billing]}"
        );
    }

    /// With a grant by identifier the adoption is allowed, in any case; another identifier is not.
    #[test]
    fn adoption_granted_by_identifier_is_allowed() {
        let r = rights("shop");
        assert_eq!(
            check(
                &r,
                &adopt("shop", AdoptKind::AuroraCluster, "prod-billing", &[])
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r,
                &adopt("shop", AdoptKind::AuroraCluster, "PROD-BILLING", &[])
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &r,
                &adopt("shop", AdoptKind::AuroraCluster, "prod-billing-2", &[])
            ),
            Err(Refusal {
                refused: Refused::AdoptionIdentifier,
                field: "spec.database.adopt.clusterIdentifier".into(),
                namespace: "shop".into(),
                request: "adopt Aurora cluster prod-billing-2".into(),
                considered: vec!["platform/shop".into()],
                granted: "adoption of Aurora cluster prod-billing".into(),
                needed: "adoption: {allowed: true, auroraClusters: [prod-billing-2]}".into(),
            })
        );
    }

    /// Cache adoption follows its own list and names spec.cache.adopt; a prefix grants by prefix.
    #[test]
    fn cache_adoption_by_prefix() {
        let r = rights("shop");
        let kind = AdoptKind::ElastiCacheReplicationGroup;
        assert_eq!(check(&r, &adopt("shop", kind, "legacy-cache", &[])), Ok(()));
        assert_eq!(
            check(&r, &adopt("shop", kind, "prod-cache", &[])),
            Err(Refusal {
                refused: Refused::AdoptionIdentifier,
                field: "spec.cache.adopt.replicationGroupId".into(),
                namespace: "shop".into(),
                request: "adopt ElastiCache replication group prod-cache".into(),
                considered: vec!["platform/shop".into()],
                granted: "adoption of ElastiCache replication group legacy-*".into(),
                needed: "adoption: {allowed: true, elastiCacheReplicationGroups: [prod-cache]}"
                    .into(),
            })
        );
        // The Aurora grant does not extend to a cache of the same name.
        assert_eq!(
            check(&r, &adopt("shop", kind, "prod-billing", &[])).map_err(|e| e.refused),
            Err(Refused::AdoptionIdentifier)
        );
    }

    /// requiredTags: the resource must carry every tag with its value.
    #[test]
    fn adoption_with_required_tags() {
        let policies = [policy(
            "p",
            "  - {name: tagged, namespaces: [shop], adoption: {allowed: true, auroraClusters: [legacy-shop], requiredTags: {team: shop, env: prod}}}\n",
        )];
        let r = rights_for(&policies, "shop", &no_labels());
        let kind = AdoptKind::AuroraCluster;
        assert_eq!(
            check(
                &r,
                &adopt(
                    "shop",
                    kind,
                    "legacy-shop",
                    &[("team", "shop"), ("env", "prod"), ("x", "y")]
                )
            ),
            Ok(())
        );
        assert_eq!(
            check(&r, &adopt("shop", kind, "legacy-shop", &[("team", "cart"), ("env", "prod")])),
            Err(Refusal {
                refused: Refused::AdoptionTags,
                field: "spec.database.adopt.clusterIdentifier".into(),
                namespace: "shop".into(),
                request: "adopt Aurora cluster legacy-shop".into(),
                considered: vec!["p/tagged".into()],
                granted: "adoption of legacy-shop with tags team=shop (p/tagged), which the resource lacks".into(),
                needed: "adoption: {allowed: true, auroraClusters: [legacy-shop]} and requiredTags the resource has (or tag the resource)".into(),
            })
        );
        assert_eq!(
            check(&r, &adopt("shop", kind, "legacy-shop", &[])).map_err(|e| e.granted),
            Err("adoption of legacy-shop with tags env=prod, team=shop (p/tagged), which the resource lacks".into())
        );
    }

    /// A hosted zone outside the namespace's policy is refused, naming the field the app used.
    #[test]
    fn zone_outside_the_policy_is_refused() {
        let refusal = check(
            &rights("shop"),
            &dns("shop", id("Z9"), "a.shop.example.com", Routing::Simple),
        )
        .expect_err("refused");
        assert_eq!(
            refusal,
            Refusal {
                refused: Refused::HostedZone,
                field: "spec.dns.hostedZoneId".into(),
                namespace: "shop".into(),
                request: "write the simple Route 53 record a.shop.example.com in hosted zone Z9"
                    .into(),
                considered: vec!["platform/shop".into()],
                granted: "hosted zones Z1, example.com".into(),
                needed: "dns: {hostedZoneIds: [Z9], recordNameSuffixes: [a.shop.example.com], routingPolicies: [simple]}".into(),
            }
        );
        assert_eq!(refusal.refused.reason(), "TenancyHostedZoneNotAllowed");
        // Another namespace's zone, by name.
        assert_eq!(
            check(
                &rights("evil"),
                &dns(
                    "evil",
                    ZoneRef::Name("example.com.".into()),
                    "x.evil.example.com",
                    Routing::Simple
                )
            )
            .map_err(|e| (e.refused, e.field, e.granted)),
            Err((
                Refused::HostedZone,
                "spec.dns.zoneName".into(),
                "hosted zones Z2".into()
            ))
        );
    }

    /// Zones compare by id or by name, whichever the policy used, once halo knows both.
    #[test]
    fn zone_granted_by_name_admits_its_id_once_resolved() {
        let r = rights("shop");
        let by_name = dns(
            "shop",
            ZoneRef::Name("Example.COM.".into()),
            "a.shop.example.com",
            Routing::Simple,
        );
        assert_eq!(check(&r, &by_name), Ok(()));
        let by_id = dns(
            "shop",
            id("/hostedzone/z1"),
            "a.shop.example.com",
            Routing::Simple,
        );
        assert_eq!(check(&r, &by_id), Ok(()));
        let mut other_id = dns("shop", id("Z7"), "a.shop.example.com", Routing::Simple);
        assert_eq!(
            check(&r, &other_id).map_err(|e| e.refused),
            Err(Refused::HostedZone)
        );
        if let Some(d) = other_id.dns.as_mut() {
            d.resolved_zone = Some(ResolvedZone {
                id: "Z7".into(),
                name: "example.com.".into(),
            });
        }
        assert_eq!(check(&r, &other_id), Ok(()));
    }

    /// A record name outside the allowed suffixes is refused, including look-alike names.
    #[test]
    fn record_name_outside_the_suffixes_is_refused() {
        let r = rights("shop");
        assert_eq!(
            check(
                &r,
                &dns(
                    "shop",
                    id("Z1"),
                    "Checkout.Shop.Example.com.",
                    Routing::Failover
                )
            ),
            Ok(())
        );
        assert_eq!(
            check(&r, &dns("shop", id("Z1"), "billing.example.com", Routing::Simple)),
            Err(Refusal {
                refused: Refused::RecordName,
                field: "spec.dns.recordName".into(),
                namespace: "shop".into(),
                request: "write the simple Route 53 record billing.example.com in hosted zone Z1"
                    .into(),
                considered: vec!["platform/shop".into()],
                granted: "record names .shop.example.com in this zone".into(),
                needed: "dns: {hostedZoneIds: [Z1], recordNameSuffixes: [billing.example.com], routingPolicies: [simple]}".into(),
            })
        );
        for name in [
            "shop.example.com",
            "evilshop.example.com",
            "a.shop.example.com.evil.org",
        ] {
            assert_eq!(
                check(&r, &dns("shop", id("Z1"), name, Routing::Simple)).map_err(|e| e.refused),
                Err(Refused::RecordName),
                "{name}"
            );
        }
    }

    /// A routing policy the policy does not list is refused; the set identifier is shown.
    #[test]
    fn routing_policy_not_allowed_is_refused() {
        assert_eq!(
            check(&rights("shop"), &dns("shop", id("Z1"), "a.shop.example.com", Routing::Weighted)),
            Err(Refusal {
                refused: Refused::RoutingPolicy,
                field: "spec.dns.routing".into(),
                namespace: "shop".into(),
                request: "write the weighted Route 53 record a.shop.example.com (set identifier us-east-1) in hosted zone Z1".into(),
                considered: vec!["platform/shop".into()],
                granted: "routing policies simple, failover for this name".into(),
                needed: "dns: {hostedZoneIds: [Z1], recordNameSuffixes: [a.shop.example.com], routingPolicies: [weighted]}".into(),
            })
        );
    }

    /// Two rules never combine into a right neither gives: zone, name and policy must all
    /// come from one rule.
    #[test]
    fn dns_grants_are_judged_whole() {
        let policies = [
            policy(
                "a",
                "  - {name: a, namespaces: [both], dns: {hostedZoneIds: [Z1], recordNameSuffixes: [.a.example.com], routingPolicies: [simple]}}\n",
            ),
            policy(
                "b",
                "  - {name: b, namespaces: [both], dns: {hostedZoneIds: [Z2], recordNameSuffixes: [.b.example.com], routingPolicies: [weighted]}}\n",
            ),
        ];
        let r = rights_for(&policies, "both", &no_labels());
        let ask = |zone: &str, name: &str, routing| {
            check(&r, &dns("both", id(zone), name, routing)).map_err(|e| (e.refused, e.granted))
        };
        assert_eq!(ask("Z1", "x.a.example.com", Routing::Simple), Ok(()));
        assert_eq!(ask("Z2", "x.b.example.com", Routing::Weighted), Ok(()));
        assert_eq!(
            ask("Z1", "x.b.example.com", Routing::Simple),
            Err((
                Refused::RecordName,
                "record names .a.example.com in this zone".into()
            ))
        );
        assert_eq!(
            ask("Z1", "x.a.example.com", Routing::Weighted),
            Err((
                Refused::RoutingPolicy,
                "routing policies simple for this name".into()
            ))
        );
        assert_eq!(
            ask("Z3", "x.a.example.com", Routing::Simple),
            Err((Refused::HostedZone, "hosted zones Z1, Z2".into()))
        );
    }

    /// A namespace without any DNS grant gets no record at all.
    #[test]
    fn dns_without_any_grant_is_refused() {
        let refusal = check(
            &rights("cart"),
            &dns("cart", id("Z1"), "cart.example.com", Routing::Simple),
        )
        .expect_err("refused");
        assert_eq!(
            (
                refusal.refused,
                refusal.field.as_str(),
                refusal.granted.as_str()
            ),
            (Refused::Dns, "spec.dns", "no Route 53 record")
        );
    }

    /// An ALB group not granted is refused; a granted one is allowed for the granted hosts only.
    #[test]
    fn alb_group_not_granted_is_refused() {
        assert_eq!(
            check(
                &rights("evil"),
                &ingress("evil", "evil.example.com", Some("shop-alb"))
            ),
            Err(Refusal {
                refused: Refused::IngressGroup,
                field: "spec.ingress.groupName".into(),
                namespace: "evil".into(),
                request: "route host evil.example.com on the shared ALB group shop-alb".into(),
                considered: vec!["platform/evil-dns".into()],
                granted: "no ALB group".into(),
                needed: "ingress: {groupNames: [shop-alb], hostSuffixes: [evil.example.com]}"
                    .into(),
            })
        );
        let r = rights("shop");
        assert_eq!(
            check(&r, &ingress("shop", "a.shop.example.com", Some("shop-alb"))),
            Ok(())
        );
        assert_eq!(
            check(&r, &ingress("shop", "*.shop.example.com", Some("shop-alb"))),
            Ok(())
        );
        assert_eq!(
            check(&r, &ingress("shop", "a.shop.example.com", Some("cart-alb")))
                .map_err(|e| (e.refused, e.granted)),
            Err((Refused::IngressGroup, "ALB groups shop-alb".into()))
        );
        assert_eq!(
            check(
                &r,
                &ingress("shop", "billing.example.com", Some("shop-alb"))
            )
            .map_err(|e| (e.refused, e.field, e.granted)),
            Err((
                Refused::IngressHost,
                "spec.ingress.host".into(),
                "hosts .shop.example.com on this group".into()
            ))
        );
        assert_eq!(
            check(&r, &ingress("shop", "*.example.com", Some("shop-alb"))).map_err(|e| e.refused),
            Err(Refused::IngressHost)
        );
    }

    /// A namespace no policy names may still run an app that adopts nothing, writes no DNS
    /// record and has its own ALB.
    #[test]
    fn unnamed_namespace_with_a_plain_app_is_allowed() {
        let r = rights("web");
        assert_eq!(r, Rights::default_for("web"));
        assert_eq!(check(&r, &request("web")), Ok(()));
        assert_eq!(check(&r, &ingress("web", "web.example.com", None)), Ok(()));
    }

    /// Adoption is judged first, then DNS, then the ALB group.
    #[test]
    fn first_refusal_is_adoption_then_dns_then_ingress() {
        let mut everything = adopt("evil", AdoptKind::AuroraCluster, "prod-billing", &[]);
        everything.dns = dns("evil", id("Z1"), "a.shop.example.com", Routing::Simple).dns;
        everything.ingress = ingress("evil", "a.shop.example.com", Some("shop-alb")).ingress;
        let r = rights("evil");
        assert_eq!(
            check(&r, &everything).map_err(|e| e.refused),
            Err(Refused::Adoption)
        );
        everything.adopt.clear();
        assert_eq!(
            check(&r, &everything).map_err(|e| e.refused),
            Err(Refused::HostedZone)
        );
        everything.dns = None;
        assert_eq!(
            check(&r, &everything).map_err(|e| e.refused),
            Err(Refused::IngressGroup)
        );
    }

    /// Rights computed for another namespace are never applied.
    #[test]
    fn rights_of_another_namespace_are_refused() {
        assert_eq!(
            check(&rights("shop"), &request("evil")).map_err(|e| (e.refused, e.field)),
            Err((Refused::Namespace, "metadata.namespace".into()))
        );
    }
}
