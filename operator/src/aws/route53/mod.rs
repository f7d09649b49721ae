//! Route 53: the app's record pointing at its ALB, a Route 53 health check on the ALB, and an
//! ownership record, so that two halos (two regions, one record name) never touch each
//! other's record sets.
//!
//! ```text
//! <recordName>              A, AAAA  alias -> dualstack.<ALB>   (or CNAME -> <ALB> where no alias is possible)
//!                           routing policy + SetIdentifier + HealthCheckId
//! _halo-owner.<recordName>  TXT "heritage=halo,owner=<cluster>,resource=<ns>/<name>", same SetIdentifier
//! health check              HTTP(S) on <ALB>:80/443<path>, CallerReference halo-<owner hash>-<config hash>
//! ```
//!
//! Pure: [`desired`], [`check_ownership`], [`plan`], [`compare_health_check`], [`readiness`].
//! Client: [`ensure`], [`cleanup`], [`health_status`] through [`Route53`], whose every request
//! takes a token from the operator's one [`RateLimiter`].
//!
//! Route 53's health checkers send `Host: <ALB hostname>`, so the ALB must answer the health
//! path for that host too (an Ingress rule for the ALB hostname or without a host).

mod service;
pub use crate::conditions::reasons;
pub use crate::observed::DnsReadiness;
pub use service::{
    Dns, DnsPlan, DnsResult, HEALTH_READ_MAX_WAIT, WantedDns, dns_changes, dns_plan, dns_status,
    reading_of, recorded_identity, recorded_slot_moved,
};

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType,
    ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, ResourceRecordSetRegion, RrType,
    Tag, TagResourceType,
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::ratelimit::{CREATE_HEALTH_CHECK, GET_HEALTH_CHECK_STATUS, RateLimiter};
use super::{aws_error, is_code, ownership_tags};
use crate::api::dns::{FailoverRole, Policy, ValidatedDns, ZoneRef, fqdn};
use crate::meta::Owner;
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// First label of the ownership record's name.
pub const OWNER_RECORD_PREFIX: &str = "_halo-owner";
/// Health check tag naming the owner: `<cluster-id>/<namespace>/<name>`.
pub const TAG_OWNER: &str = "halo.dev/owner";

/// Route 53 hosted zone of Application (and Classic) Load Balancers per region, as published in
/// the AWS General Reference, "Elastic Load Balancing endpoints and quotas". An ALB in a region
/// missing here gets a CNAME instead of an alias.
const ALB_HOSTED_ZONES: [(&str, &str); 35] = [
    ("af-south-1", "Z268VQBMOI5EKX"),
    ("ap-east-1", "Z3DQVH9N71FHZ0"),
    ("ap-northeast-1", "Z14GRHDCWA56QT"),
    ("ap-northeast-2", "ZWKZPGTI48KDX"),
    ("ap-northeast-3", "Z5LXEXXYW11ES"),
    ("ap-south-1", "ZP97RAFLXTNZK"),
    ("ap-south-2", "Z0173938T07WNTVAEPZN"),
    ("ap-southeast-1", "Z1LMS91P8CMLE5"),
    ("ap-southeast-2", "Z1GM3OXH4ZPM65"),
    ("ap-southeast-3", "Z08888821HLRG5A9ZRTER"),
    ("ap-southeast-4", "Z09517862IB2WZLPXG76F"),
    ("ap-southeast-5", "Z06010284QMVVW7WO5J"),
    ("ap-southeast-7", "Z0390008CMBRTHFGWBCB"),
    ("ca-central-1", "ZQSVJUPU6J1EY"),
    ("ca-west-1", "Z06473681N0SF6OS049SD"),
    ("cn-north-1", "Z1GDH35T77C1KE"),
    ("cn-northwest-1", "ZM7IZAIOVVDZF"),
    ("eu-central-1", "Z215JYRZR1TBD5"),
    ("eu-central-2", "Z06391101F2ZOEP8P5EB3"),
    ("eu-north-1", "Z23TAZ6LKFMNIO"),
    ("eu-south-1", "Z3ULH7SSC9OV64"),
    ("eu-south-2", "Z0956581394HF5D5LXGAP"),
    ("eu-west-1", "Z32O12XQLNTSW2"),
    ("eu-west-2", "ZHURV8PSTC4K8"),
    ("eu-west-3", "Z3Q77PNBQS71R4"),
    ("il-central-1", "Z09170902867EHPV2DABU"),
    ("me-central-1", "Z08230872XQRWHG2XF6I"),
    ("me-south-1", "ZS929ML54UICD"),
    ("sa-east-1", "Z2P70J7HTTTPLU"),
    ("us-east-1", "Z35SXDOTRQ7X7K"),
    ("us-east-2", "Z3AADJGX6KTTL2"),
    ("us-gov-east-1", "Z166TLBEWOO7G0"),
    ("us-gov-west-1", "Z33AYJ8TM3BH4J"),
    ("us-west-1", "Z368ELLRRE2KJ0"),
    ("us-west-2", "Z1H1FL5HABSF5"),
];

/// The region of an ELB hostname such as `k8s-shop-1234.us-east-1.elb.amazonaws.com`.
pub fn alb_region(hostname: &str) -> Option<String> {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let rest = host
        .strip_suffix(".elb.amazonaws.com")
        .or_else(|| host.strip_suffix(".elb.amazonaws.com.cn"))?;
    rest.rsplit('.').next().map(str::to_string)
}

/// The alias hosted zone of an ALB, from its hostname; `None` where an alias is not possible.
pub fn alb_hosted_zone_id(hostname: &str) -> Option<&'static str> {
    let region = alb_region(hostname)?;
    ALB_HOSTED_ZONES
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(_, zone)| *zone)
}

/// Who writes a record set: one app of one halo installation. The cluster id must be unique
/// per installation (like ExternalDNS's owner id): the two halos of a failover pair have
/// different ones, and a cluster restored from a backup keeps its predecessor's to keep its
/// records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsOwner {
    pub cluster_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl DnsOwner {
    /// `cluster_id` names this halo installation (e.g. its cluster or region); characters
    /// outside `[A-Za-z0-9._-]` become `-` so the ownership record stays parseable.
    pub fn new(cluster_id: &str, owner: &Owner) -> Self {
        let cluster_id = cluster_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        DnsOwner {
            cluster_id,
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
        }
    }

    /// `<cluster-id>/<namespace>/<name>`: the `halo.dev/owner` tag.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.cluster_id, self.namespace, self.name)
    }

    /// The ownership record's value, quoted as Route 53 stores TXT values.
    pub fn txt_value(&self) -> String {
        format!(
            "\"heritage=halo,owner={},resource={}/{}\"",
            self.cluster_id, self.namespace, self.name
        )
    }

    fn meta_owner(&self) -> Owner {
        Owner {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            uid: self.uid.clone(),
        }
    }
}

fn hex(s: &str, len: usize) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(len)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect()
}

/// The record sets one owner holds, without what needs the ALB: enough to delete them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsIdentity {
    pub zone: ZoneRef,
    /// Lowercase, trailing dot.
    pub record_name: String,
    /// `_halo-owner.<record_name>`.
    pub owner_record_name: String,
    pub set_identifier: Option<String>,
    pub owner: DnsOwner,
}

impl DnsIdentity {
    pub fn new(dns: &ValidatedDns, owner: DnsOwner) -> Self {
        DnsIdentity {
            zone: dns.zone.clone(),
            record_name: dns.record_name.clone(),
            owner_record_name: format!("{OWNER_RECORD_PREFIX}.{}", dns.record_name),
            set_identifier: dns.set_identifier.clone(),
            owner,
        }
    }

    /// Every health check of this slot has a CallerReference starting with this: a hash of
    /// the owner key, the record name and the set identifier. Another slot (another region's
    /// halo, even one misconfigured with the same cluster id) never matches it.
    pub fn caller_reference_prefix(&self) -> String {
        let slot = format!(
            "{}\n{}\n{}",
            self.owner.key(),
            self.record_name,
            self.set_identifier.as_deref().unwrap_or("")
        );
        format!("halo-{}-", hex(&slot, 12))
    }
}

/// Record type, as far as halo cares.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Txt,
    Other(String),
}

impl RecordKind {
    fn to_sdk(&self) -> RrType {
        match self {
            RecordKind::A => RrType::A,
            RecordKind::Aaaa => RrType::Aaaa,
            RecordKind::Cname => RrType::Cname,
            RecordKind::Txt => RrType::Txt,
            RecordKind::Other(t) => RrType::from(t.as_str()),
        }
    }

    fn from_sdk(t: &RrType) -> Self {
        match t {
            RrType::A => RecordKind::A,
            RrType::Aaaa => RecordKind::Aaaa,
            RrType::Cname => RecordKind::Cname,
            RrType::Txt => RecordKind::Txt,
            other => RecordKind::Other(other.as_str().to_string()),
        }
    }

    /// The types of the app record itself (not the ownership record).
    fn is_app_record(&self) -> bool {
        matches!(self, RecordKind::A | RecordKind::Aaaa | RecordKind::Cname)
    }
}

/// What a record answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    Alias {
        hosted_zone_id: String,
        /// Lowercase, trailing dot.
        dns_name: String,
        evaluate_target_health: bool,
    },
    Values {
        ttl: i64,
        values: Vec<String>,
    },
}

/// One Route 53 resource record set, normalised so that what halo wants compares equal to what
/// Route 53 returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSet {
    /// Lowercase, trailing dot.
    pub name: String,
    pub kind: RecordKind,
    pub set_identifier: Option<String>,
    /// `None`: a routing policy halo never writes (geolocation, multivalue, ...).
    pub policy: Option<Policy>,
    pub health_check_id: Option<String>,
    pub data: RecordData,
}

impl RecordSet {
    pub fn from_sdk(r: &ResourceRecordSet) -> Self {
        let exotic = r.geo_location().is_some()
            || r.multi_value_answer().is_some()
            || r.cidr_routing_config().is_some()
            || r.geo_proximity_location().is_some();
        let policy = if exotic {
            None
        } else if let Some(f) = r.failover() {
            match f {
                ResourceRecordSetFailover::Primary => Some(Policy::Failover(FailoverRole::Primary)),
                ResourceRecordSetFailover::Secondary => {
                    Some(Policy::Failover(FailoverRole::Secondary))
                }
                _ => None,
            }
        } else if let Some(w) = r.weight() {
            Some(Policy::Weighted(w))
        } else if let Some(region) = r.region() {
            Some(Policy::Latency(region.as_str().to_string()))
        } else {
            Some(Policy::Simple)
        };
        let data = match r.alias_target() {
            Some(a) => RecordData::Alias {
                hosted_zone_id: a.hosted_zone_id().to_string(),
                dns_name: fqdn(a.dns_name()),
                evaluate_target_health: a.evaluate_target_health(),
            },
            None => RecordData::Values {
                ttl: r.ttl().unwrap_or(0),
                values: r
                    .resource_records()
                    .iter()
                    .map(|v| v.value().to_string())
                    .collect(),
            },
        };
        RecordSet {
            name: fqdn(r.name()),
            kind: RecordKind::from_sdk(r.r#type()),
            set_identifier: r.set_identifier().map(str::to_string),
            policy,
            health_check_id: r.health_check_id().map(str::to_string),
            data,
        }
    }

    pub fn to_sdk(&self) -> Result<ResourceRecordSet> {
        let mut b = ResourceRecordSet::builder()
            .name(&self.name)
            .r#type(self.kind.to_sdk())
            .set_set_identifier(self.set_identifier.clone())
            .set_health_check_id(self.health_check_id.clone());
        b = match &self.policy {
            Some(Policy::Failover(FailoverRole::Primary)) => {
                b.failover(ResourceRecordSetFailover::Primary)
            }
            Some(Policy::Failover(FailoverRole::Secondary)) => {
                b.failover(ResourceRecordSetFailover::Secondary)
            }
            Some(Policy::Weighted(w)) => b.weight(*w),
            Some(Policy::Latency(region)) => {
                b.region(ResourceRecordSetRegion::from(region.as_str()))
            }
            Some(Policy::Simple) | None => b,
        };
        b = match &self.data {
            RecordData::Alias {
                hosted_zone_id,
                dns_name,
                evaluate_target_health,
            } => b.alias_target(
                AliasTarget::builder()
                    .hosted_zone_id(hosted_zone_id)
                    .dns_name(dns_name)
                    .evaluate_target_health(*evaluate_target_health)
                    .build()
                    .map_err(build_error)?,
            ),
            RecordData::Values { ttl, values } => {
                let mut b = b.ttl(*ttl);
                for v in values {
                    b = b.resource_records(
                        ResourceRecord::builder()
                            .value(v)
                            .build()
                            .map_err(build_error)?,
                    );
                }
                b
            }
        };
        b.build().map_err(build_error)
    }

    fn same_slot(&self, other: &RecordSet) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.set_identifier == other.set_identifier
    }
}

fn build_error(e: aws_sdk_route53::error::BuildError) -> Error {
    Error::Aws {
        api: "route53:ChangeResourceRecordSets".into(),
        code: "InvalidRequest".into(),
        message: e.to_string(),
        throttled: false,
    }
}

/// Route 53's answer to a CallerReference it has seen before, also one of a deleted health
/// check (it keeps those for days).
pub const HEALTH_CHECK_ALREADY_EXISTS: &str = "HealthCheckAlreadyExists";

/// A Route 53 health check on the app's ALB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// HTTPS on 443 when the Ingress has a certificate, else HTTP on 80.
    pub https: bool,
    /// The ALB hostname, lowercase, no trailing dot.
    pub fqdn: String,
    pub path: String,
    pub interval_seconds: i32,
    pub failure_threshold: i32,
}

impl HealthCheckSpec {
    pub fn port(&self) -> i32 {
        if self.https { 443 } else { 80 }
    }

    /// The CallerReference of a health check halo creates: the slot's prefix and a hash of
    /// the app's uid, the settings, `previous` and `generation`. Route 53 remembers the
    /// reference of a deleted health check for days and refuses it (HealthCheckAlreadyExists),
    /// so a reference must never come back once its health check was deleted, yet a retried
    /// create must send the same one.
    ///
    /// - A recreated app has a new uid.
    /// - `previous` is the health check the records named that is being replaced (type or
    ///   interval changed) or that vanished outside halo: settings returning to an earlier
    ///   value, or an unchanged spec whose check was deleted by hand, still give a new one.
    /// - `generation` is the app's `status.observedGeneration` when the plan was made
    ///   ([`DesiredDns::generation`]). Every reason halo deletes a health check of a slot
    ///   (`spec.dns` removed, the health check turned off, the record moved away) is a spec
    ///   change, and the reconcile that deletes the check records its generation or a later
    ///   one; the generation only grows, so when the spec asks for a check in that slot again
    ///   (re-added, turned back on, moved back A→B→A) the reference differs from every deleted
    ///   one. Retries of one creation run under the same status, hence the same reference.
    ///
    /// 18 + 16 = 34 characters, within Route 53's 64.
    pub fn caller_reference(
        &self,
        id: &DnsIdentity,
        previous: Option<&str>,
        generation: i64,
    ) -> String {
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            id.owner.uid,
            self.https,
            self.fqdn,
            self.port(),
            self.path,
            self.interval_seconds,
            self.failure_threshold,
            previous.unwrap_or(""),
            generation
        );
        format!("{}{}", id.caller_reference_prefix(), hex(&canonical, 16))
    }

    /// A new reference after Route 53 refused `rejected` as already used: the rare case where
    /// the generation did not advance past a deletion (the reconcile that deleted the check
    /// crashed before its status write). `salt` is the time of the attempt, so it never
    /// repeats; a crash after this create is still caught, by [`reusable`] on the slot's
    /// prefix. Same prefix and length as [`Self::caller_reference`].
    pub fn fresh_reference(&self, id: &DnsIdentity, rejected: &str, salt: u128) -> String {
        format!(
            "{}{}",
            id.caller_reference_prefix(),
            hex(&format!("{rejected}\n{salt}"), 16)
        )
    }

    fn to_sdk(&self) -> Result<HealthCheckConfig> {
        HealthCheckConfig::builder()
            .r#type(if self.https {
                HealthCheckType::Https
            } else {
                HealthCheckType::Http
            })
            .fully_qualified_domain_name(&self.fqdn)
            .port(self.port())
            .resource_path(&self.path)
            .request_interval(self.interval_seconds)
            .failure_threshold(self.failure_threshold)
            .enable_sni(self.https)
            .build()
            .map_err(build_error)
    }
}

/// A health check as Route 53 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedHealthCheck {
    pub id: String,
    pub caller_reference: String,
    /// `None` for types halo never creates.
    pub https: Option<bool>,
    pub fqdn: Option<String>,
    pub port: Option<i32>,
    pub path: Option<String>,
    pub interval_seconds: Option<i32>,
    pub failure_threshold: Option<i32>,
    pub enable_sni: bool,
}

impl ObservedHealthCheck {
    fn from_sdk(hc: &aws_sdk_route53::types::HealthCheck) -> Self {
        let c = hc.health_check_config();
        ObservedHealthCheck {
            id: hc.id().to_string(),
            caller_reference: hc.caller_reference().to_string(),
            https: c.and_then(|c| match c.r#type() {
                HealthCheckType::Https => Some(true),
                HealthCheckType::Http => Some(false),
                _ => None,
            }),
            fqdn: c
                .and_then(|c| c.fully_qualified_domain_name())
                .map(|f| f.trim_end_matches('.').to_ascii_lowercase()),
            port: c.and_then(|c| c.port()),
            path: c.and_then(|c| c.resource_path()).map(str::to_string),
            interval_seconds: c.and_then(|c| c.request_interval()),
            failure_threshold: c.and_then(|c| c.failure_threshold()),
            enable_sni: c.and_then(|c| c.enable_sni()).unwrap_or(false),
        }
    }
}

/// What to do with an existing health check of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheckAction {
    Keep,
    /// Path, host, port or threshold changed: UpdateHealthCheck keeps the id.
    Update,
    /// Type or interval changed, which Route 53 cannot update: create a new one, switch the
    /// record to it, delete the old one.
    Replace,
}

pub fn compare_health_check(
    want: &HealthCheckSpec,
    have: &ObservedHealthCheck,
) -> HealthCheckAction {
    if have.https != Some(want.https) || have.interval_seconds != Some(want.interval_seconds) {
        return HealthCheckAction::Replace;
    }
    let same = have.fqdn.as_deref() == Some(want.fqdn.as_str())
        && have.port == Some(want.port())
        && have.path.as_deref() == Some(want.path.as_str())
        && have.failure_threshold == Some(want.failure_threshold)
        && have.enable_sni == want.https;
    if same {
        HealthCheckAction::Keep
    } else {
        HealthCheckAction::Update
    }
}

/// Everything halo wants in Route 53 for one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredDns {
    pub identity: DnsIdentity,
    /// A + AAAA aliases or one CNAME, without the health check id (known only to `ensure`).
    pub records: Vec<RecordSet>,
    /// The TXT ownership record.
    pub ownership: RecordSet,
    pub health_check: Option<HealthCheckSpec>,
    /// `https://<recordName>` (http without a certificate).
    pub url: String,
    /// The app's `status.observedGeneration` when the plan was made (0 before the first status
    /// write): part of a new health check's CallerReference, see
    /// [`HealthCheckSpec::caller_reference`].
    pub generation: i64,
}

impl DesiredDns {
    /// The same, planned under `generation`.
    pub fn at_generation(self, generation: i64) -> Self {
        DesiredDns { generation, ..self }
    }

    /// The CallerReference a health check created now would get (`previous`: the health check
    /// the records name, if any). `None` without a health check.
    pub fn caller_reference(&self, previous: Option<&str>) -> Option<String> {
        self.health_check
            .as_ref()
            .map(|h| h.caller_reference(&self.identity, previous, self.generation))
    }
}

/// What should exist once the ALB has `alb_hostname`. Pure.
pub fn desired(
    app: &ValidatedApp,
    dns: &ValidatedDns,
    owner: DnsOwner,
    alb_hostname: &str,
) -> DesiredDns {
    let alb = alb_hostname.trim_end_matches('.').to_ascii_lowercase();
    let https = app
        .ingress
        .as_ref()
        .is_some_and(|i| i.certificate_arn.is_some());
    let identity = DnsIdentity::new(dns, owner);
    let record = |kind: RecordKind, data: RecordData| RecordSet {
        name: identity.record_name.clone(),
        kind,
        set_identifier: dns.set_identifier.clone(),
        policy: Some(dns.policy.clone()),
        health_check_id: None,
        data,
    };
    let records = match alb_hosted_zone_id(&alb) {
        Some(zone) => {
            let alias = RecordData::Alias {
                hosted_zone_id: zone.to_string(),
                dns_name: format!("dualstack.{alb}."),
                evaluate_target_health: dns.policy != Policy::Simple,
            };
            vec![
                record(RecordKind::A, alias.clone()),
                record(RecordKind::Aaaa, alias),
            ]
        }
        None => vec![record(
            RecordKind::Cname,
            RecordData::Values {
                ttl: dns.ttl,
                values: vec![format!("{alb}.")],
            },
        )],
    };
    let ownership = RecordSet {
        name: identity.owner_record_name.clone(),
        kind: RecordKind::Txt,
        set_identifier: dns.set_identifier.clone(),
        policy: Some(dns.policy.clone()),
        health_check_id: None,
        data: RecordData::Values {
            ttl: dns.ttl,
            values: vec![identity.owner.txt_value()],
        },
    };
    let health_check = dns.health_check.as_ref().map(|h| HealthCheckSpec {
        https,
        fqdn: alb.clone(),
        path: h.path.clone(),
        interval_seconds: h.interval_seconds,
        failure_threshold: h.failure_threshold,
    });
    let url = format!(
        "{}://{}",
        if https { "https" } else { "http" },
        identity.record_name.trim_end_matches('.')
    );
    DesiredDns {
        identity,
        records,
        ownership,
        health_check,
        url,
        generation: 0,
    }
}

/// Whether the owner's slot (its set identifier at the record name) is free, already ours, or
/// held by someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Nothing with our set identifier exists yet.
    Free,
    /// Our ownership record is there.
    Ours,
}

/// Refuses to write where the set identifier is held by another owner (another halo, or a
/// record nobody claimed). Pure.
pub fn check_ownership(
    id: &DnsIdentity,
    at_name: &[RecordSet],
    at_owner_name: &[RecordSet],
) -> Result<Slot> {
    let slot_label = match &id.set_identifier {
        Some(s) => format!("{} with set identifier {s:?}", id.record_name),
        None => id.record_name.clone(),
    };
    let txt = at_owner_name
        .iter()
        .find(|r| r.kind == RecordKind::Txt && r.set_identifier == id.set_identifier);
    let occupied = at_name
        .iter()
        .any(|r| r.kind.is_app_record() && r.set_identifier == id.set_identifier);
    match txt {
        Some(t) if t.data == ownership_data(t, id) => Ok(Slot::Ours),
        Some(t) => Err(Error::NotOwned {
            kind: "Route 53 record set".into(),
            name: format!(
                "{slot_label} (held by {}; give this app another dns.setIdentifier)",
                match &t.data {
                    RecordData::Values { values, .. } => values.join(" "),
                    RecordData::Alias { dns_name, .. } => dns_name.clone(),
                }
            ),
        }),
        None if occupied => Err(Error::NotOwned {
            kind: "Route 53 record set".into(),
            name: format!("{slot_label} (no {OWNER_RECORD_PREFIX} ownership record)"),
        }),
        None => match foreign_namespace(id, at_owner_name) {
            // Another namespace's app holds the name under another set identifier: joining it
            // (a weighted record beside theirs) would take part of their traffic.
            Some((holder, set)) => Err(Error::NotOwned {
                kind: "Route 53 record name".into(),
                name: format!(
                    "{} (namespace {holder} holds it with set identifier {set:?}; a name belongs to one namespace)",
                    id.record_name
                ),
            }),
            None => Ok(Slot::Free),
        },
    }
}

/// The namespace of another app's ownership record at the name (any other set identifier),
/// when it is not ours: `(namespace, set identifier)`. Pure.
fn foreign_namespace(id: &DnsIdentity, at_owner_name: &[RecordSet]) -> Option<(String, String)> {
    at_owner_name
        .iter()
        .filter(|r| r.kind == RecordKind::Txt && r.set_identifier != id.set_identifier)
        .find_map(|t| {
            let RecordData::Values { values, .. } = &t.data else {
                return None;
            };
            let namespace = values.iter().find_map(|v| txt_namespace(v))?;
            (namespace != id.owner.namespace)
                .then(|| (namespace, t.set_identifier.clone().unwrap_or_default()))
        })
}

/// The namespace in an ownership TXT value (`"heritage=halo,owner=..,resource=<ns>/<name>"`).
fn txt_namespace(value: &str) -> Option<String> {
    let value = value.trim_matches('"');
    if !value.starts_with("heritage=halo,") {
        return None;
    }
    let resource = value
        .split(',')
        .find_map(|kv| kv.strip_prefix("resource="))?;
    resource.split_once('/').map(|(ns, _)| ns.to_string())
}

/// Our TXT's data, keeping the observed TTL (the value is what proves ownership).
fn ownership_data(observed: &RecordSet, id: &DnsIdentity) -> RecordData {
    let ttl = match &observed.data {
        RecordData::Values { ttl, .. } => *ttl,
        RecordData::Alias { .. } => 0,
    };
    RecordData::Values {
        ttl,
        values: vec![id.owner.txt_value()],
    }
}

/// The record sets at our names that belong to our slot: the app records and the TXT with our
/// set identifier.
fn ours<'a>(
    id: &DnsIdentity,
    at_name: &'a [(RecordSet, ResourceRecordSet)],
    at_owner_name: &'a [(RecordSet, ResourceRecordSet)],
) -> Vec<&'a (RecordSet, ResourceRecordSet)> {
    at_name
        .iter()
        .filter(|(r, _)| r.kind.is_app_record())
        .chain(
            at_owner_name
                .iter()
                .filter(|(r, _)| r.kind == RecordKind::Txt),
        )
        .filter(|(r, _)| r.set_identifier == id.set_identifier)
        .collect()
}

/// Changes that bring `observed` (our slot's record sets) to `want`. Pure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into `observed` of record sets to delete (a type we no longer write).
    pub delete: Vec<usize>,
    pub upsert: Vec<RecordSet>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.upsert.is_empty()
    }

    pub fn len(&self) -> usize {
        self.delete.len() + self.upsert.len()
    }
}

pub fn plan(want: &[RecordSet], observed: &[RecordSet]) -> Plan {
    Plan {
        delete: observed
            .iter()
            .enumerate()
            .filter(|(_, o)| !want.iter().any(|w| w.same_slot(o)))
            .map(|(i, _)| i)
            .collect(),
        upsert: want
            .iter()
            .filter(|w| !observed.contains(w))
            .cloned()
            .collect(),
    }
}

/// How the record reaches the ALB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A and AAAA alias records (the ALB's region is in the table).
    Alias,
    /// A CNAME (no alias hosted zone known for the ALB's region).
    Cname,
}

/// What [`ensure`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedDns {
    pub zone_id: String,
    /// Lowercase, no trailing dot.
    pub record_name: String,
    pub set_identifier: Option<String>,
    pub target: Target,
    pub health_check_id: Option<String>,
    /// Changes sent in the one ChangeResourceRecordSets batch; 0 when Route 53 already matched.
    pub record_changes: usize,
    pub health_check_created: bool,
    pub health_check_updated: bool,
    pub url: String,
}

/// What [`cleanup`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupOutcome {
    pub record_sets_deleted: usize,
    pub health_checks_deleted: usize,
}

/// The latest GetHealthCheckStatus: how many Route 53 checkers see the endpoint healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheckHealth {
    pub healthy_checkers: u32,
    pub checkers: u32,
}

impl HealthCheckHealth {
    /// From the checkers' status reports (`"Success: HTTP Status Code 200, OK"`, `"Failure: ..."`).
    pub fn from_reports<S: AsRef<str>>(reports: &[S]) -> Self {
        HealthCheckHealth {
            healthy_checkers: reports
                .iter()
                .filter(|r| r.as_ref().starts_with("Success"))
                .count() as u32,
            checkers: reports.len() as u32,
        }
    }

    /// Route 53 considers an endpoint healthy when more than 18% of its checkers do (Route 53
    /// Developer Guide, "How Amazon Route 53 determines whether a health check is healthy").
    pub fn is_healthy(&self) -> bool {
        self.checkers > 0 && u64::from(self.healthy_checkers) * 100 > u64::from(self.checkers) * 18
    }
}

/// `DNSReady` before the ALB has a hostname.
pub fn waiting_for_load_balancer(record_name: &str) -> DnsReadiness {
    DnsReadiness {
        ready: false,
        reason: reasons::LOAD_BALANCER_PENDING,
        message: format!(
            "waiting for the ALB's hostname before writing {}",
            record_name.trim_end_matches('.')
        ),
    }
}

/// `DNSReady` from what `ensure` did and the last health check status read. Pure.
pub fn readiness(observed: &ObservedDns, health: Option<&HealthCheckHealth>) -> DnsReadiness {
    let target = match observed.target {
        Target::Alias => "alias A/AAAA to the ALB",
        Target::Cname => "CNAME to the ALB",
    };
    let record = match &observed.set_identifier {
        Some(s) => format!("{} ({target}, set {s})", observed.record_name),
        None => format!("{} ({target})", observed.record_name),
    };
    let Some(id) = &observed.health_check_id else {
        return DnsReadiness {
            ready: true,
            reason: reasons::RECORDS_SYNCED,
            message: record,
        };
    };
    match health {
        Some(h) if h.checkers > 0 && h.is_healthy() => DnsReadiness {
            ready: true,
            reason: reasons::HEALTH_CHECK_HEALTHY,
            message: format!(
                "{record}; health check {id}: {}/{} checkers healthy",
                h.healthy_checkers, h.checkers
            ),
        },
        Some(h) if h.checkers > 0 => DnsReadiness {
            ready: false,
            reason: reasons::HEALTH_CHECK_UNHEALTHY,
            message: format!(
                "{record}; health check {id}: {}/{} checkers healthy, Route 53 needs more than 18%",
                h.healthy_checkers, h.checkers
            ),
        },
        _ => DnsReadiness {
            ready: false,
            reason: reasons::HEALTH_CHECK_PENDING,
            message: format!("{record}; waiting for the first results of health check {id}"),
        },
    }
}

/// Counts of the Route 53 requests sent (every attempt, retries included), per API; with
/// [`CallLog::with_times`] also when each was sent.
#[derive(Debug, Default)]
pub struct CallLog {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    times: Option<Mutex<Vec<(Instant, &'static str)>>>,
}

impl CallLog {
    pub fn with_times() -> Self {
        CallLog {
            counts: Mutex::default(),
            times: Some(Mutex::default()),
        }
    }

    fn record(&self, api: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(api)
            .or_default() += 1;
        if let Some(times) = &self.times {
            times
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((Instant::now(), api));
        }
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn count(&self, api: &str) -> u64 {
        self.counts().get(api).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// When each request was sent (empty unless built [`CallLog::with_times`]).
    pub fn times(&self) -> Vec<(Instant, &'static str)> {
        self.times
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }
}

/// The Route 53 client of the operator: every request takes a token from the shared limiter
/// and is counted.
#[derive(Debug)]
pub struct Route53 {
    client: aws_sdk_route53::Client,
    limiter: Arc<RateLimiter>,
    log: Arc<CallLog>,
    /// Zone name -> id, looked up once.
    zone_ids: Mutex<HashMap<String, String>>,
}

impl Route53 {
    /// A client from the shared SDK configuration, with the SDK's own retries off: the limiter
    /// retries, so that every attempt takes a token.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, limiter: Arc<RateLimiter>) -> Self {
        let config = aws_sdk_route53::config::Builder::from(sdk)
            .retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled())
            .build();
        Self::new(aws_sdk_route53::Client::from_conf(config), limiter)
    }

    pub fn new(client: aws_sdk_route53::Client, limiter: Arc<RateLimiter>) -> Self {
        Route53 {
            client,
            limiter,
            log: Arc::default(),
            zone_ids: Mutex::default(),
        }
    }

    /// Counts into `log` (e.g. one built [`CallLog::with_times`]).
    pub fn with_call_log(mut self, log: Arc<CallLog>) -> Self {
        self.log = log;
        self
    }

    pub fn call_log(&self) -> &CallLog {
        &self.log
    }

    pub fn client(&self) -> &aws_sdk_route53::Client {
        &self.client
    }

    /// Sends one request of `api` through the limiter, retrying throttling and transient
    /// failures (5xx, no answer) with backoff: the SDK's own retries are off so that every
    /// attempt takes a token. Route 53's writes are safe to repeat: UPSERT, and
    /// CreateHealthCheck with the same CallerReference returns the same check.
    async fn send<T, E, R, F, Fut>(&self, api: &'static str, mut request: F) -> Result<T>
    where
        F: FnMut(&aws_sdk_route53::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, aws_sdk_route53::error::SdkError<E, R>>>,
        E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let name = format!("route53:{api}");
        self.limiter
            .call(
                api,
                |e: &Error| e.is_throttled() || e.is_transient(),
                || {
                    self.log.record(api);
                    let response = request(&self.client);
                    let name = name.clone();
                    async move { response.await.map_err(aws_error(&name)) }
                },
            )
            .await
    }

    /// The hosted zone id, looking a zone name up once.
    pub async fn zone_id(&self, zone: &ZoneRef) -> Result<String> {
        let name = match zone {
            ZoneRef::Id(id) => return Ok(id.clone()),
            ZoneRef::Name(name) => name,
        };
        if let Some(id) = self
            .zone_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(id.clone());
        }
        let out = self
            .send("ListHostedZonesByName", |c| {
                c.list_hosted_zones_by_name()
                    .dns_name(name)
                    .max_items(10)
                    .send()
            })
            .await?;
        let ids: Vec<String> = out
            .hosted_zones()
            .iter()
            .filter(|z| fqdn(z.name()) == *name)
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
            .collect();
        let zone_error = |message: String| Error::InvalidSpec {
            field: "spec.dns.zoneName".into(),
            message,
        };
        match ids.as_slice() {
            [id] => {
                self.zone_ids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), id.clone());
                Ok(id.clone())
            }
            [] => Err(zone_error(format!(
                "no Route 53 hosted zone is named {name}"
            ))),
            _ => Err(zone_error(format!(
                "{} hosted zones are named {name} ({}): set dns.hostedZoneId",
                ids.len(),
                ids.join(", ")
            ))),
        }
    }

    /// Every record set named `name` (any type, any set identifier).
    pub async fn record_sets_at(
        &self,
        zone_id: &str,
        name: &str,
    ) -> Result<Vec<(RecordSet, ResourceRecordSet)>> {
        let mut out = Vec::new();
        let mut start: (Option<RrType>, Option<String>) = (None, None);
        loop {
            let page = self
                .send("ListResourceRecordSets", |c| {
                    c.list_resource_record_sets()
                        .hosted_zone_id(zone_id)
                        .start_record_name(name)
                        .set_start_record_type(start.0.clone())
                        .set_start_record_identifier(start.1.clone())
                        .max_items(100)
                        .send()
                })
                .await?;
            let mut past_name = false;
            for raw in page.resource_record_sets() {
                let parsed = RecordSet::from_sdk(raw);
                if parsed.name != name {
                    past_name = true;
                    break;
                }
                out.push((parsed, raw.clone()));
            }
            let next_name = page.next_record_name().map(fqdn);
            if past_name || !page.is_truncated() || next_name.as_deref() != Some(name) {
                return Ok(out);
            }
            start = (
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_string),
            );
        }
    }

    /// `None` when it does not exist.
    pub async fn get_health_check(&self, id: &str) -> Result<Option<ObservedHealthCheck>> {
        match self
            .send("GetHealthCheck", |c| {
                c.get_health_check().health_check_id(id).send()
            })
            .await
        {
            Ok(out) => Ok(out.health_check().map(ObservedHealthCheck::from_sdk)),
            Err(e) if is_code(&e, "NoSuchHealthCheck") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every health check whose CallerReference starts with `prefix`.
    pub async fn health_checks_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<ObservedHealthCheck>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .send("ListHealthChecks", |c| {
                    c.list_health_checks()
                        .set_marker(marker.clone())
                        .max_items(1000)
                        .send()
                })
                .await?;
            out.extend(
                page.health_checks()
                    .iter()
                    .filter(|h| h.caller_reference().starts_with(prefix))
                    .map(ObservedHealthCheck::from_sdk),
            );
            match page.next_marker() {
                Some(next) if page.is_truncated() => marker = Some(next.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn create_health_check(&self, reference: &str, spec: &HealthCheckSpec) -> Result<String> {
        let config = spec.to_sdk()?;
        let out = self
            .send(CREATE_HEALTH_CHECK, |c| {
                c.create_health_check()
                    .caller_reference(reference)
                    .health_check_config(config.clone())
                    .send()
            })
            .await?;
        out.health_check()
            .map(|h| h.id().to_string())
            .ok_or_else(|| Error::Aws {
                api: "route53:CreateHealthCheck".into(),
                code: "EmptyResponse".into(),
                message: "the response names no health check".into(),
                throttled: false,
            })
    }

    async fn tag_health_check(&self, id: &str, tags: &[(String, String)]) -> Result<()> {
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.send("ChangeTagsForResource", |c| {
            c.change_tags_for_resource()
                .resource_type(TagResourceType::Healthcheck)
                .resource_id(id)
                .set_add_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        Ok(())
    }

    async fn update_health_check(&self, id: &str, spec: &HealthCheckSpec) -> Result<()> {
        self.send("UpdateHealthCheck", |c| {
            c.update_health_check()
                .health_check_id(id)
                .fully_qualified_domain_name(&spec.fqdn)
                .port(spec.port())
                .resource_path(&spec.path)
                .failure_threshold(spec.failure_threshold)
                .enable_sni(spec.https)
                .send()
        })
        .await?;
        Ok(())
    }

    async fn delete_health_check(&self, id: &str) -> Result<()> {
        match self
            .send("DeleteHealthCheck", |c| {
                c.delete_health_check().health_check_id(id).send()
            })
            .await
        {
            Err(e) if is_code(&e, "NoSuchHealthCheck") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn change(&self, zone_id: &str, changes: Vec<Change>) -> Result<()> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .comment("halo")
            .build()
            .map_err(build_error)?;
        self.send("ChangeResourceRecordSets", |c| {
            c.change_resource_record_sets()
                .hosted_zone_id(zone_id)
                .change_batch(batch.clone())
                .send()
        })
        .await?;
        Ok(())
    }
}

/// The one status call, behind a trait so the unhealthy path can be tested with a fake (moto
/// always answers healthy).
pub trait HealthCheckStatusSource {
    /// The status report of every Route 53 checker, e.g. `"Failure: Connection timed out"`.
    fn checker_reports(
        &self,
        health_check_id: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}

impl HealthCheckStatusSource for Route53 {
    async fn checker_reports(&self, health_check_id: &str) -> Result<Vec<String>> {
        let out = self
            .send(GET_HEALTH_CHECK_STATUS, |c| {
                c.get_health_check_status()
                    .health_check_id(health_check_id)
                    .send()
            })
            .await?;
        Ok(out
            .health_check_observations()
            .iter()
            .filter_map(|o| o.status_report().and_then(|r| r.status()))
            .map(str::to_string)
            .collect())
    }
}

/// Reads how many Route 53 checkers see the endpoint healthy. Route 53 allows one
/// GetHealthCheckStatus per second per account; the limiter's own bucket for it queues callers.
pub async fn health_status(
    source: &impl HealthCheckStatusSource,
    health_check_id: &str,
) -> Result<HealthCheckHealth> {
    let reports = source.checker_reports(health_check_id).await?;
    Ok(HealthCheckHealth::from_reports(&reports))
}

/// Makes Route 53 match `d`: one health check (created, updated or replaced as needed), then
/// the records and the ownership record in one UPSERT batch, only when they differ from what
/// Route 53 returns. A converged app costs three reads: two ListResourceRecordSets and one
/// GetHealthCheck.
pub async fn ensure(r53: &Route53, d: &DesiredDns) -> Result<ObservedDns> {
    let id = &d.identity;
    let zone_id = r53.zone_id(&id.zone).await?;
    let at_name = r53.record_sets_at(&zone_id, &id.record_name).await?;
    let at_owner_name = r53.record_sets_at(&zone_id, &id.owner_record_name).await?;
    check_ownership(id, &parsed(&at_name), &parsed(&at_owner_name))?;
    let ours = ours(id, &at_name, &at_owner_name);
    let current = ours.iter().find_map(|(r, _)| r.health_check_id.clone());
    let prefix = id.caller_reference_prefix();

    let mut stale: Vec<String> = Vec::new();
    let mut created = false;
    let mut updated = false;
    let health_check_id = match &d.health_check {
        None => {
            stale.extend(current);
            None
        }
        Some(spec) => {
            let existing = match &current {
                Some(hc) => r53.get_health_check(hc).await?,
                None => None,
            };
            match existing.filter(|h| h.caller_reference.starts_with(&prefix)) {
                Some(h) => match compare_health_check(spec, &h) {
                    HealthCheckAction::Keep => Some(h.id),
                    HealthCheckAction::Update => {
                        r53.update_health_check(&h.id, spec).await?;
                        updated = true;
                        Some(h.id)
                    }
                    HealthCheckAction::Replace => {
                        let (new, leftovers) =
                            find_or_create(r53, d, spec, Some(&h.id), &mut created).await?;
                        stale.extend(leftovers);
                        Some(new)
                    }
                },
                None => {
                    let (new, leftovers) =
                        find_or_create(r53, d, spec, current.as_deref(), &mut created).await?;
                    stale.extend(leftovers);
                    Some(new)
                }
            }
        }
    };

    let mut want: Vec<RecordSet> = d
        .records
        .iter()
        .cloned()
        .map(|mut r| {
            r.health_check_id = health_check_id.clone();
            r
        })
        .collect();
    want.push(d.ownership.clone());
    let observed: Vec<RecordSet> = ours.iter().map(|(r, _)| r.clone()).collect();
    let plan = plan(&want, &observed);
    if !plan.is_empty() {
        let mut changes = Vec::with_capacity(plan.len());
        for &i in &plan.delete {
            changes.push(change(ChangeAction::Delete, ours[i].1.clone())?);
        }
        for r in &plan.upsert {
            changes.push(change(ChangeAction::Upsert, r.to_sdk()?)?);
        }
        r53.change(&zone_id, changes).await?;
    }
    // Only after the records stopped pointing at them; never one that is not ours.
    for hc in stale {
        if Some(&hc) == health_check_id.as_ref() {
            continue;
        }
        if let Some(h) = r53.get_health_check(&hc).await?
            && h.caller_reference.starts_with(&prefix)
        {
            r53.delete_health_check(&hc).await?;
        }
    }
    Ok(ObservedDns {
        zone_id,
        record_name: id.record_name.trim_end_matches('.').to_string(),
        set_identifier: id.set_identifier.clone(),
        target: if d.records.iter().any(|r| r.kind == RecordKind::Cname) {
            Target::Cname
        } else {
            Target::Alias
        },
        health_check_id,
        record_changes: plan.len(),
        health_check_created: created,
        health_check_updated: updated,
        url: d.url.clone(),
    })
}

/// The health check of the slot that can serve `spec`: the one with `reference` (a retry of
/// this very creation), else any other of the slot's that needs no replacement (one created
/// under an earlier reference by an attempt that crashed before the records named it, or one
/// left over). Reusing it instead of creating keeps a crash between CreateHealthCheck and the
/// records (or the status write) from ever leaving a second health check. Pure.
pub fn reusable<'a>(
    ours: &'a [ObservedHealthCheck],
    spec: &HealthCheckSpec,
    reference: &str,
) -> Option<&'a ObservedHealthCheck> {
    ours.iter()
        .find(|h| h.caller_reference == reference)
        .or_else(|| {
            ours.iter()
                .find(|h| compare_health_check(spec, h) != HealthCheckAction::Replace)
        })
}

/// The health check with the deterministic CallerReference: found among ours (a retry after a
/// partial failure, see [`reusable`]) or created and tagged. When Route 53 refuses the
/// reference as used by a deleted health check, creates once more under a fresh one instead
/// of failing every reconcile. Also returns our other health checks, which the records are
/// about to stop using.
async fn find_or_create(
    r53: &Route53,
    d: &DesiredDns,
    spec: &HealthCheckSpec,
    previous: Option<&str>,
    created: &mut bool,
) -> Result<(String, Vec<String>)> {
    let owner = &d.identity.owner;
    let reference = spec.caller_reference(&d.identity, previous, d.generation);
    let ours = r53
        .health_checks_with_prefix(&d.identity.caller_reference_prefix())
        .await?;
    let id = match reusable(&ours, spec, &reference) {
        Some(h) => {
            if compare_health_check(spec, h) == HealthCheckAction::Update {
                r53.update_health_check(&h.id, spec).await?;
            }
            h.id.clone()
        }
        None => {
            let id = match r53.create_health_check(&reference, spec).await {
                Err(e) if is_code(&e, HEALTH_CHECK_ALREADY_EXISTS) => {
                    let salt = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|t| t.as_nanos())
                        .unwrap_or_default();
                    let fresh = spec.fresh_reference(&d.identity, &reference, salt);
                    tracing::warn!(
                        rejected = %reference,
                        reference = %fresh,
                        "Route 53 refused a used CallerReference; creating under a fresh one"
                    );
                    r53.create_health_check(&fresh, spec).await?
                }
                other => other?,
            };
            *created = true;
            id
        }
    };
    let mut tags = vec![
        (
            "Name".to_string(),
            match &d.identity.set_identifier {
                Some(s) => format!("{} {s}", d.identity.record_name.trim_end_matches('.')),
                None => d.identity.record_name.trim_end_matches('.').to_string(),
            },
        ),
        (TAG_OWNER.to_string(), owner.key()),
    ];
    tags.extend(ownership_tags(&owner.meta_owner()));
    r53.tag_health_check(&id, &tags).await?;
    let others = ours
        .into_iter()
        .map(|h| h.id)
        .filter(|h| *h != id)
        .collect();
    Ok((id, others))
}

fn parsed(sets: &[(RecordSet, ResourceRecordSet)]) -> Vec<RecordSet> {
    sets.iter().map(|(r, _)| r.clone()).collect()
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(build_error)
}

/// Deletes what this owner holds for `id`: its record sets (only where its ownership record
/// proves them ours) and every health check with its CallerReference prefix. Safe to repeat.
pub async fn cleanup(r53: &Route53, id: &DnsIdentity) -> Result<CleanupOutcome> {
    let mut outcome = CleanupOutcome::default();
    let zone_id = match r53.zone_id(&id.zone).await {
        Ok(z) => Some(z),
        // The zone is gone: so are the records.
        Err(Error::InvalidSpec { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(zone_id) = zone_id {
        let at_name = r53.record_sets_at(&zone_id, &id.record_name).await?;
        let at_owner_name = r53.record_sets_at(&zone_id, &id.owner_record_name).await?;
        let slot = check_ownership(id, &parsed(&at_name), &parsed(&at_owner_name));
        if slot.as_ref().is_ok_and(|s| *s == Slot::Ours) {
            let ours = ours(id, &at_name, &at_owner_name);
            let changes = ours
                .iter()
                .map(|(_, raw)| change(ChangeAction::Delete, raw.clone()))
                .collect::<Result<Vec<_>>>()?;
            if !changes.is_empty() {
                outcome.record_sets_deleted = changes.len();
                r53.change(&zone_id, changes).await?;
            }
        }
    }
    for h in r53
        .health_checks_with_prefix(&id.caller_reference_prefix())
        .await?
    {
        r53.delete_health_check(&h.id).await?;
        outcome.health_checks_deleted += 1;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dns::{DnsSpec, ValidatedDnsHealthCheck};
    use crate::fixtures::{FULL, validated};

    const ALB: &str = "k8s-shop-shop-0a1b2c3d4e-1234567890.us-east-1.elb.amazonaws.com";

    fn owner(cluster: &str) -> DnsOwner {
        DnsOwner::new(
            cluster,
            &Owner {
                name: "shop".into(),
                namespace: "shop".into(),
                uid: "uid-1".into(),
            },
        )
    }

    fn dns(yaml: &str, region: &str) -> ValidatedDns {
        serde_saphyr::from_str::<DnsSpec>(yaml)
            .expect("dns parses")
            .validate("/healthz", Some(region))
            .expect("dns validates")
    }

    fn failover_primary() -> DesiredDns {
        desired(
            &validated(FULL),
            &dns(
                "{hostedZoneId: Z1, recordName: shop.example.com, routing: failover, role: primary}",
                "us-east-1",
            ),
            owner("east"),
            ALB,
        )
    }

    /// The alias hosted zone comes from the ALB's own region, for public, internal and China
    /// ALBs; anything else gets no alias.
    #[test]
    fn alb_hosted_zone_by_region() {
        assert_eq!(alb_hosted_zone_id(ALB), Some("Z35SXDOTRQ7X7K"));
        assert_eq!(
            alb_hosted_zone_id("internal-k8s-shop-123.eu-west-1.elb.amazonaws.com."),
            Some("Z32O12XQLNTSW2")
        );
        assert_eq!(
            alb_hosted_zone_id("k8s-shop-123.cn-north-1.elb.amazonaws.com.cn"),
            Some("Z1GDH35T77C1KE")
        );
        assert_eq!(
            alb_region("K8S-Shop-123.US-WEST-2.elb.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            alb_hosted_zone_id("k8s-shop-123.xx-nowhere-9.elb.amazonaws.com"),
            None
        );
        assert_eq!(alb_hosted_zone_id("lb.example.net"), None);
    }

    /// A failover primary is an A and an AAAA alias to the dualstack ALB name with the
    /// routing policy and set identifier, plus the TXT ownership record in the same slot;
    /// HTTPS health check because the Ingress has a certificate.
    #[test]
    fn failover_primary_aliases_the_alb() {
        let d = failover_primary();
        let alias = RecordData::Alias {
            hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
            dns_name: format!("dualstack.{ALB}."),
            evaluate_target_health: true,
        };
        let record = |kind| RecordSet {
            name: "shop.example.com.".into(),
            kind,
            set_identifier: Some("us-east-1".into()),
            policy: Some(Policy::Failover(FailoverRole::Primary)),
            health_check_id: None,
            data: alias.clone(),
        };
        assert_eq!(
            d.records,
            vec![record(RecordKind::A), record(RecordKind::Aaaa)]
        );
        assert_eq!(
            d.ownership,
            RecordSet {
                name: "_halo-owner.shop.example.com.".into(),
                kind: RecordKind::Txt,
                set_identifier: Some("us-east-1".into()),
                policy: Some(Policy::Failover(FailoverRole::Primary)),
                health_check_id: None,
                data: RecordData::Values {
                    ttl: 60,
                    values: vec!["\"heritage=halo,owner=east,resource=shop/shop\"".into()],
                },
            }
        );
        assert_eq!(
            d.health_check,
            Some(HealthCheckSpec {
                https: true,
                fqdn: ALB.into(),
                path: "/healthz".into(),
                interval_seconds: 30,
                failure_threshold: 3,
            })
        );
        assert_eq!(
            d.health_check.as_ref().map(HealthCheckSpec::port),
            Some(443)
        );
        assert_eq!(d.url, "https://shop.example.com");
        assert_eq!(d.identity.zone, ZoneRef::Id("Z1".into()));
    }

    /// Where no alias is possible the record is one CNAME with the spec's TTL; without a
    /// certificate the health check is HTTP on port 80 and the URL is http.
    #[test]
    fn unknown_region_falls_back_to_a_cname() {
        let mut app = validated(FULL);
        if let Some(i) = app.ingress.as_mut() {
            i.certificate_arn = None;
        }
        let d = desired(
            &app,
            &dns(
                "{zoneName: example.com, recordName: shop.example.com, ttl: 30, routing: weighted, weight: 7, setIdentifier: blue, healthCheck: {path: /up, intervalSeconds: 10, failureThreshold: 2}}",
                "us-east-1",
            ),
            owner("east"),
            "LB-1.Example.NET.",
        );
        assert_eq!(
            d.records,
            vec![RecordSet {
                name: "shop.example.com.".into(),
                kind: RecordKind::Cname,
                set_identifier: Some("blue".into()),
                policy: Some(Policy::Weighted(7)),
                health_check_id: None,
                data: RecordData::Values {
                    ttl: 30,
                    values: vec!["lb-1.example.net.".into()],
                },
            }]
        );
        let hc = d.health_check.expect("health check");
        assert_eq!(
            (hc.https, hc.port(), hc.fqdn.as_str()),
            (false, 80, "lb-1.example.net")
        );
        assert_eq!(
            (hc.path.as_str(), hc.interval_seconds, hc.failure_threshold),
            ("/up", 10, 2)
        );
        assert_eq!(d.url, "http://shop.example.com");
    }

    /// A simple record has no set identifier and does not ask Route 53 to evaluate the ALB's
    /// target health; latency records carry the region.
    #[test]
    fn simple_and_latency_records() {
        let simple = desired(
            &validated(FULL),
            &dns(
                "{hostedZoneId: Z1, recordName: shop.example.com}",
                "us-east-1",
            ),
            owner("east"),
            ALB,
        );
        assert_eq!(simple.records[0].set_identifier, None);
        assert_eq!(simple.records[0].policy, Some(Policy::Simple));
        assert!(matches!(
            simple.records[0].data,
            RecordData::Alias {
                evaluate_target_health: false,
                ..
            }
        ));
        let latency = desired(
            &validated(FULL),
            &dns(
                "{hostedZoneId: Z1, recordName: shop.example.com, routing: latency}",
                "eu-west-1",
            ),
            owner("west"),
            "k8s-shop-1.eu-west-1.elb.amazonaws.com",
        );
        assert_eq!(
            latency.records[1].policy,
            Some(Policy::Latency("eu-west-1".into()))
        );
        assert_eq!(
            latency.records[1].set_identifier.as_deref(),
            Some("eu-west-1")
        );
    }

    /// What halo writes reads back as the same value, for every policy: the basis of "no
    /// change when Route 53 already matches".
    #[test]
    fn record_sets_round_trip_through_the_sdk_types() {
        let d = failover_primary();
        let mut all = d.records.clone();
        all.push(d.ownership.clone());
        for policy in [
            Policy::Simple,
            Policy::Failover(FailoverRole::Secondary),
            Policy::Weighted(255),
            Policy::Latency("ap-south-1".into()),
        ] {
            for r in &all {
                let mut r = r.clone();
                r.policy = Some(policy.clone());
                r.health_check_id = Some("hc-1".into());
                let sdk = r.to_sdk().expect("builds");
                assert_eq!(RecordSet::from_sdk(&sdk), r);
            }
        }
    }

    /// In sync: no change. A new health check id: UPSERT of both records, not the TXT. From
    /// alias to CNAME: DELETE of A and AAAA, UPSERT of the CNAME.
    #[test]
    fn plan_changes_only_what_differs() {
        let d = failover_primary();
        let mut want = d.records.clone();
        want.push(d.ownership.clone());
        assert!(plan(&want, &want).is_empty());

        let mut with_hc = want.clone();
        with_hc[0].health_check_id = Some("hc-2".into());
        with_hc[1].health_check_id = Some("hc-2".into());
        let p = plan(&with_hc, &want);
        assert_eq!(p.delete, Vec::<usize>::new());
        assert_eq!(p.upsert, with_hc[..2].to_vec());

        let cname = RecordSet {
            kind: RecordKind::Cname,
            data: RecordData::Values {
                ttl: 60,
                values: vec!["lb.example.net.".into()],
            },
            ..want[0].clone()
        };
        let p = plan(&[cname.clone(), d.ownership.clone()], &want);
        assert_eq!(p.delete, vec![0, 1]);
        assert_eq!(p.upsert, vec![cname]);
        assert_eq!(p.len(), 3);
    }

    /// Our slot is free, ours, or held: by another halo's ownership record, or by a record
    /// without one. Other set identifiers at the same name do not matter.
    #[test]
    fn ownership_of_the_slot() {
        let east = failover_primary();
        let west = desired(
            &validated(FULL),
            &dns(
                "{hostedZoneId: Z1, recordName: shop.example.com, routing: failover, role: secondary}",
                "us-west-2",
            ),
            owner("west"),
            "k8s-shop-1.us-west-2.elb.amazonaws.com",
        );
        let id = &east.identity;
        assert_eq!(check_ownership(id, &[], &[]).expect("free"), Slot::Free);
        assert_eq!(
            check_ownership(id, &west.records, std::slice::from_ref(&west.ownership))
                .expect("free"),
            Slot::Free
        );
        assert_eq!(
            check_ownership(id, &east.records, std::slice::from_ref(&east.ownership))
                .expect("ours"),
            Slot::Ours
        );

        // Another halo claims the same set identifier.
        let mut thief = west.ownership.clone();
        thief.set_identifier = Some("us-east-1".into());
        let err = check_ownership(id, &[], &[thief]).expect_err("held");
        assert_eq!(
            err.to_string(),
            "Route 53 record set shop.example.com. with set identifier \"us-east-1\" (held by \"heritage=halo,owner=west,resource=shop/shop\"; give this app another dns.setIdentifier) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        );
        assert_eq!(err.metric_label(), "ChildNotOwned");

        // Another namespace's weighted record at the name, under another set identifier.
        let mut evil = west.clone();
        evil.identity.owner.namespace = "evil".into();
        evil.identity.set_identifier = Some("evil".into());
        let err = check_ownership(
            &evil.identity,
            &east.records,
            std::slice::from_ref(&east.ownership),
        )
        .expect_err("another namespace's name");
        assert_eq!(
            err.to_string(),
            "Route 53 record name shop.example.com. (namespace shop holds it with set identifier \"us-east-1\"; a name belongs to one namespace) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        );
        // The same namespace's app in another region joins (the failover pair); a name that
        // another namespace holds under any set identifier is refused.
        assert_eq!(
            check_ownership(id, &west.records, std::slice::from_ref(&west.ownership))
                .expect("same namespace"),
            Slot::Free
        );
        let mut evil_txt = west.ownership.clone();
        evil_txt.set_identifier = Some("evil".into());
        evil_txt.data = RecordData::Values {
            ttl: 60,
            values: vec!["\"heritage=halo,owner=west,resource=evil/shop\"".into()],
        };
        assert_eq!(
            check_ownership(id, &west.records, &[evil_txt, west.ownership.clone()])
                .expect_err("evil holds it")
                .to_string(),
            "Route 53 record name shop.example.com. (namespace evil holds it with set identifier \"evil\"; a name belongs to one namespace) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        );

        // A record someone wrote by hand in our slot.
        let err = check_ownership(id, &east.records, &[]).expect_err("unclaimed");
        assert_eq!(
            err.to_string(),
            "Route 53 record set shop.example.com. with set identifier \"us-east-1\" (no _halo-owner ownership record) exists and is not owned by this HighlyAvailableApp; rename or delete it"
        );
    }

    /// CallerReferences are deterministic, fit Route 53's 64 characters and start with the
    /// slot's prefix; they change with the settings, the previous health check, the generation
    /// and the app's uid. The prefix is per slot: another region's halo never matches it, even with the same
    /// cluster id, while a restored app (new uid, same owner) keeps recognising its own.
    #[test]
    fn caller_reference_is_deterministic_and_owned() {
        let d = failover_primary();
        let spec = d.health_check.clone().expect("health check");
        let id = &d.identity;
        let r = spec.caller_reference(id, None, 1);
        assert_eq!(r, spec.caller_reference(id, None, 1));
        assert_eq!(r.len(), "halo-".len() + 12 + 1 + 16);
        assert!(r.len() <= 64);
        assert!(r.starts_with(&id.caller_reference_prefix()));
        assert_ne!(r, spec.caller_reference(id, Some("hc-1"), 1));
        assert_ne!(r, spec.caller_reference(id, None, 2));
        let mut other = spec.clone();
        other.path = "/other".into();
        assert_ne!(r, other.caller_reference(id, None, 1));
        let fresh = spec.fresh_reference(id, &r, 1_700_000_000_000_000_000);
        assert_ne!(fresh, r);
        assert_ne!(
            fresh,
            spec.fresh_reference(id, &r, 1_700_000_000_000_000_001)
        );
        assert_eq!(fresh.len(), r.len());
        assert!(fresh.starts_with(&id.caller_reference_prefix()));

        let restored = DnsIdentity {
            owner: DnsOwner {
                uid: "uid-2".into(),
                ..id.owner.clone()
            },
            ..id.clone()
        };
        assert_eq!(
            id.caller_reference_prefix(),
            restored.caller_reference_prefix()
        );
        assert_ne!(r, spec.caller_reference(&restored, None, 1));
        let other_region = DnsIdentity {
            set_identifier: Some("us-west-2".into()),
            ..id.clone()
        };
        assert_ne!(
            id.caller_reference_prefix(),
            other_region.caller_reference_prefix()
        );

        assert_eq!(id.owner.key(), "east/shop/shop");
        assert_eq!(
            DnsOwner::new("eu west/1", &id.owner.meta_owner()).cluster_id,
            "eu-west-1"
        );
    }

    /// Path, host and threshold changes update the health check in place; type and interval
    /// (which Route 53 cannot change) replace it.
    /// After a crash between CreateHealthCheck and the records, the retry reuses what the first
    /// attempt created: by its reference, else (the generation moved on meanwhile) any check of
    /// the slot that needs no replacement. One of another type or interval is never reused.
    #[test]
    fn a_retry_reuses_the_health_check_of_a_crashed_attempt() {
        let d = failover_primary();
        let spec = d.health_check.clone().expect("health check");
        let observed = |id: &str, reference: &str, interval: i32| ObservedHealthCheck {
            id: id.into(),
            caller_reference: reference.into(),
            https: Some(spec.https),
            fqdn: Some(spec.fqdn.clone()),
            port: Some(spec.port()),
            path: Some(spec.path.clone()),
            interval_seconds: Some(interval),
            failure_threshold: Some(spec.failure_threshold),
            enable_sni: spec.https,
        };
        let r1 = d.caller_reference(None).expect("reference");
        let r2 = d
            .clone()
            .at_generation(2)
            .caller_reference(None)
            .expect("reference");
        let crashed = observed("hc-1", &r1, spec.interval_seconds);
        let slow = observed("hc-0", "halo-other", 10);
        let ours = [slow.clone(), crashed.clone()];
        assert_eq!(reusable(&ours, &spec, &r1), Some(&crashed));
        assert_eq!(reusable(&ours, &spec, &r2), Some(&crashed));
        assert_eq!(reusable(&[slow], &spec, &r2), None);
        assert_eq!(reusable(&[], &spec, &r1), None);
    }

    #[test]
    fn health_check_changes() {
        let spec = failover_primary().health_check.expect("health check");
        let have = ObservedHealthCheck {
            id: "hc-1".into(),
            caller_reference: "halo-x".into(),
            https: Some(true),
            fqdn: Some(ALB.into()),
            port: Some(443),
            path: Some("/healthz".into()),
            interval_seconds: Some(30),
            failure_threshold: Some(3),
            enable_sni: true,
        };
        assert_eq!(compare_health_check(&spec, &have), HealthCheckAction::Keep);
        let path = ObservedHealthCheck {
            path: Some("/old".into()),
            ..have.clone()
        };
        assert_eq!(
            compare_health_check(&spec, &path),
            HealthCheckAction::Update
        );
        let threshold = ObservedHealthCheck {
            failure_threshold: Some(5),
            ..have.clone()
        };
        assert_eq!(
            compare_health_check(&spec, &threshold),
            HealthCheckAction::Update
        );
        let interval = ObservedHealthCheck {
            interval_seconds: Some(10),
            ..have.clone()
        };
        assert_eq!(
            compare_health_check(&spec, &interval),
            HealthCheckAction::Replace
        );
        let http = ObservedHealthCheck {
            https: Some(false),
            ..have
        };
        assert_eq!(
            compare_health_check(&spec, &http),
            HealthCheckAction::Replace
        );
    }

    /// A fake of GetHealthCheckStatus (moto always answers "healthy"): fail/succeed reports
    /// become healthy/total, judged with Route 53's 18% rule.
    struct FakeStatus(Vec<&'static str>);

    impl HealthCheckStatusSource for FakeStatus {
        async fn checker_reports(&self, health_check_id: &str) -> Result<Vec<String>> {
            assert_eq!(health_check_id, "hc-1");
            Ok(self.0.iter().map(|s| s.to_string()).collect())
        }
    }

    fn observed(health_check_id: Option<&str>) -> ObservedDns {
        ObservedDns {
            zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            target: Target::Alias,
            health_check_id: health_check_id.map(str::to_string),
            record_changes: 0,
            health_check_created: false,
            health_check_updated: false,
            url: "https://shop.example.com".into(),
        }
    }

    /// An endpoint most checkers fail makes DNSReady False with the counts; Route 53's 18%
    /// threshold decides, exactly as Route 53 routes.
    #[tokio::test]
    async fn unhealthy_endpoint_is_not_dns_ready() {
        let failing: Vec<&str> = std::iter::repeat_n("Failure: Connection timed out.", 14)
            .chain(std::iter::repeat_n("Success: HTTP Status Code 200, OK", 2))
            .collect();
        let h = health_status(&FakeStatus(failing), "hc-1")
            .await
            .expect("status");
        assert_eq!(
            h,
            HealthCheckHealth {
                healthy_checkers: 2,
                checkers: 16
            }
        );
        assert!(!h.is_healthy());
        assert_eq!(
            readiness(&observed(Some("hc-1")), Some(&h)),
            DnsReadiness {
                ready: false,
                reason: "HealthCheckUnhealthy",
                message: "shop.example.com (alias A/AAAA to the ALB, set us-east-1); health check hc-1: 2/16 checkers healthy, Route 53 needs more than 18%".into(),
            }
        );

        let recovering: Vec<&str> = std::iter::repeat_n("Failure: HTTP Status Code 503", 13)
            .chain(std::iter::repeat_n("Success: HTTP Status Code 200, OK", 3))
            .collect();
        let h = health_status(&FakeStatus(recovering), "hc-1")
            .await
            .expect("status");
        assert!(h.is_healthy(), "3/16 is 18.75%");
        let r = readiness(&observed(Some("hc-1")), Some(&h));
        assert_eq!((r.ready, r.reason), (true, "HealthCheckHealthy"));
        assert_eq!(
            r.message,
            "shop.example.com (alias A/AAAA to the ALB, set us-east-1); health check hc-1: 3/16 checkers healthy"
        );
    }

    /// Before any checker reported, and for a record without a health check.
    #[test]
    fn pending_and_unchecked_readiness() {
        let pending = readiness(
            &observed(Some("hc-1")),
            Some(&HealthCheckHealth::from_reports::<&str>(&[])),
        );
        assert_eq!(
            (pending.ready, pending.reason),
            (false, "HealthCheckPending")
        );
        assert_eq!(
            readiness(&observed(Some("hc-1")), None).reason,
            "HealthCheckPending"
        );
        let unchecked = readiness(&observed(None), None);
        assert_eq!(
            unchecked,
            DnsReadiness {
                ready: true,
                reason: "RecordsSynced",
                message: "shop.example.com (alias A/AAAA to the ALB, set us-east-1)".into(),
            }
        );
        assert_eq!(
            waiting_for_load_balancer("shop.example.com."),
            DnsReadiness {
                ready: false,
                reason: "LoadBalancerPending",
                message: "waiting for the ALB's hostname before writing shop.example.com".into(),
            }
        );
    }

    /// The health check settings follow spec.dns.healthCheck.
    #[test]
    fn validated_health_check_reaches_the_spec() {
        let d = desired(
            &validated(FULL),
            &ValidatedDns {
                zone: ZoneRef::Id("Z1".into()),
                record_name: "shop.example.com.".into(),
                ttl: 60,
                policy: Policy::Simple,
                set_identifier: None,
                health_check: Some(ValidatedDnsHealthCheck {
                    path: "/deep".into(),
                    interval_seconds: 10,
                    failure_threshold: 10,
                }),
            },
            owner("east"),
            ALB,
        );
        let hc = d.health_check.expect("health check");
        assert_eq!(
            (hc.path.as_str(), hc.interval_seconds, hc.failure_threshold),
            ("/deep", 10, 10)
        );
    }
}
