//! An app's request against its namespace's rights: [`check`], and the [`Refusal`] a tenant
//! can act on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::rights::{
    AdoptionGrant, DnsGrant, IdPattern, IngressGrant, Rights, normalize_name, normalize_zone_id,
};
use crate::Error;
use crate::crd_dns::{Routing, ZoneRef};

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

/// Until `Error` has a variant of its own for tenancy: an invalid spec naming the field.
impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::InvalidSpec {
            message: r.message(),
            field: r.field,
        }
    }
}

// ---------------------------------------------------------------- check

/// Whether `request` fits within `rights`. The first refusal wins, in the order adoption
/// (database, then cache, as listed), DNS, ingress; within each, the broadest missing grant
/// is named first (nothing of the kind, then the zone, then the name, then the policy).
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
            "use the rights of namespace ".to_string() + &rights.namespace,
            "nothing to this namespace".into(),
            "namespaces listing it".into(),
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
