//! `spec.dns`: the app's Route 53 record and health check, and their resolution into
//! [`ValidatedDns`] (defaults that only the operator knows, such as its region).
//!
//! Every rule the API server can judge is a CEL rule here; [`DnsSpec::validate`] fills in the
//! set identifier (the operator's region) and the health check path (`spec.healthCheck.path`).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// CEL: no label (the text between two dots) longer than 63 characters.
pub const LABELS_AT_MOST_63: &str = "!self.matches('[^.]{64}')";

/// Longest `recordName`: the ownership record `_halo-owner.<recordName>` must still be a valid
/// DNS name (253 characters).
pub const MAX_RECORD_NAME: usize = 240;

/// A Route 53 record for the app, pointing at its ALB, with an optional Route 53 health check.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("has(self.hostedZoneId) != has(self.zoneName)")
        .message("dns needs exactly one of hostedZoneId and zoneName")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.routing != 'failover' || has(self.role)")
        .message("dns.role (primary or secondary) is required with failover routing")
        .field_path(".role")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.role) || self.routing == 'failover'")
        .message("dns.role applies only to failover routing")
        .field_path(".role")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.routing != 'weighted' || has(self.weight)")
        .message("dns.weight is required with weighted routing")
        .field_path(".weight")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.weight) || self.routing == 'weighted'")
        .message("dns.weight applies only to weighted routing")
        .field_path(".weight")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.setIdentifier) || self.routing != 'simple'")
        .message("dns.setIdentifier applies only to failover, weighted and latency routing: a simple record is the only one of its name")
        .field_path(".setIdentifier")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("!(self.routing == 'failover' || self.routing == 'weighted') || self.healthCheck.enabled || has(self.healthCheck.disabledReason)")
        .message("a failover or weighted record needs a Route 53 health check, or traffic keeps going to a dead endpoint: keep dns.healthCheck.enabled, or explain why not in dns.healthCheck.disabledReason")
        .field_path(".healthCheck.enabled")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!self.healthCheck.enabled || self.ttl <= 60")
        .message("dns.ttl must be at most 60 on a health-checked record, so resolvers stop using an unhealthy endpoint within a minute")
        .field_path(".ttl")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.zoneName) || ('.' + self.recordName + '.').endsWith('.' + self.zoneName + (self.zoneName.endsWith('.') ? '' : '.'))")
        .message("dns.recordName must be dns.zoneName or a name under it: Route 53 refuses a record outside its hosted zone")
        .field_path(".recordName")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    /// Route 53 hosted zone that holds the record, e.g. `Z0123456789ABCDEFGHIJ`. Exactly one of
    /// hostedZoneId and zoneName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(/hostedzone/)?[A-Za-z0-9]{1,32}$"))]
    pub hosted_zone_id: Option<String>,

    /// Name of the hosted zone, e.g. `example.com`; halo looks its id up. Exactly one of
    /// hostedZoneId and zoneName; use hostedZoneId when a public and a private zone share the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$"),
        length(max = 253)
    )]
    #[x_kube(validation = Rule::new(LABELS_AT_MOST_63)
        .message("dns.zoneName must have labels (the parts between dots) of at most 63 characters, the DNS limit")
        .reason(Reason::FieldValueInvalid))]
    pub zone_name: Option<String>,

    /// Name of the record, e.g. `shop.example.com`: the same as `ingress.host`, since the ALB
    /// routes requests by host name; with a wildcard host (`*.example.com`), a name it covers
    /// (`shop.example.com`: one label in place of the `*`). With zoneName, the zone or a name
    /// under it. halo also writes a TXT ownership record at
    /// `_halo-owner.<recordName>`.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 240)
    )]
    #[x_kube(validation = Rule::new(LABELS_AT_MOST_63)
        .message("dns.recordName must have labels (the parts between dots) of at most 63 characters, the DNS limit")
        .reason(Reason::FieldValueInvalid))]
    pub record_name: String,

    /// Seconds resolvers may cache the record; at most 60 with a health check. An alias record
    /// (the usual case) has no TTL of its own: Route 53 uses the ALB's 60 s. The TTL applies to
    /// the CNAME halo writes where an alias is not possible, and to the ownership record.
    #[serde(default = "default_ttl")]
    #[schemars(extend("minimum" = 0, "maximum" = 86400))]
    pub ttl: i64,

    /// `simple` (one record), `failover` (primary/secondary across regions), `weighted` or
    /// `latency` (active-active across regions).
    #[serde(default)]
    pub routing: Routing,

    /// Failover only: `primary` serves while healthy, `secondary` takes over when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<FailoverRole>,

    /// Failover, weighted and latency only: names this region's record among the others of the
    /// same name. Defaults to the operator's region, so each region's halo writes its own record.
    /// Two apps in the same region that share a recordName must set distinct values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"),
        length(max = 128)
    )]
    pub set_identifier: Option<String>,

    /// Weighted only: share of the traffic, relative to the other records of the same name
    /// (0 sends none while others are healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "maximum" = 255))]
    pub weight: Option<i64>,

    /// The Route 53 health check on the ALB. Failover and weighted records need one.
    #[serde(default)]
    pub health_check: DnsHealthCheck,
}

fn default_ttl() -> i64 {
    60
}

/// Route 53 routing policy.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// One record; no set identifier.
    #[default]
    Simple,
    /// Primary and secondary records; the secondary answers while the primary is unhealthy.
    Failover,
    /// Records share the traffic by weight.
    Weighted,
    /// Each client gets the record of the region with the lowest latency to it.
    Latency,
}

/// Role of a failover record.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FailoverRole {
    Primary,
    Secondary,
}

/// A Route 53 health check of the app through its ALB.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.intervalSeconds == 10 || self.intervalSeconds == 30")
        .message("dns.healthCheck.intervalSeconds must be 10 or 30, the intervals Route 53 offers")
        .field_path(".intervalSeconds")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.disabledReason) || !self.enabled")
        .message("dns.healthCheck.disabledReason applies only when enabled is false")
        .field_path(".disabledReason")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct DnsHealthCheck {
    /// Create a Route 53 health check and attach it to the record. Route 53 health checkers
    /// are on the internet: they need an internet-facing ALB.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Why the record has no health check (required to turn it off on a failover or weighted
    /// record), e.g. "the secondary is a static maintenance page".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub disabled_reason: Option<String>,

    /// HTTP path Route 53 requests; defaults to `spec.healthCheck.path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[!-~]*$"), length(max = 255))]
    pub path: Option<String>,

    /// Seconds between two checks of one Route 53 checker: 10 (fast, billed extra) or 30.
    #[serde(default = "default_interval")]
    pub interval_seconds: i32,

    /// Consecutive failed (or passed) checks before Route 53 changes the endpoint's status.
    #[serde(default = "default_failure_threshold")]
    #[schemars(extend("minimum" = 1, "maximum" = 10))]
    pub failure_threshold: i32,
}

fn default_true() -> bool {
    true
}
fn default_interval() -> i32 {
    30
}
fn default_failure_threshold() -> i32 {
    3
}

impl Default for DnsHealthCheck {
    fn default() -> Self {
        DnsHealthCheck {
            enabled: true,
            disabled_reason: None,
            path: None,
            interval_seconds: default_interval(),
            failure_threshold: default_failure_threshold(),
        }
    }
}

/// The Route 53 record set halo wrote for the app. halo cleans it up from here when
/// `spec.dns` moves to another name, zone or set identifier, or is removed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DnsStatus {
    /// Hosted zone holding the record.
    pub hosted_zone_id: String,
    /// Name of the record, without the trailing dot.
    pub record_name: String,
    /// Set identifier of the record (failover, weighted and latency routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// The Route 53 health check attached to the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
}

/// Which hosted zone, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZoneRef {
    /// A hosted zone id without the `/hostedzone/` prefix.
    Id(String),
    /// A zone name, lowercase, with the trailing dot.
    Name(String),
}

/// The routing policy with its parameters resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    Simple,
    Failover(FailoverRole),
    Weighted(i64),
    /// The AWS region whose latency decides.
    Latency(String),
}

/// `spec.dns` with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedDns {
    pub zone: ZoneRef,
    /// Lowercase, with the trailing dot.
    pub record_name: String,
    pub ttl: i64,
    pub policy: Policy,
    /// `Some` exactly when the policy is not simple.
    pub set_identifier: Option<String>,
    pub health_check: Option<ValidatedDnsHealthCheck>,
}

/// The health check with its path resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedDnsHealthCheck {
    pub path: String,
    pub interval_seconds: i32,
    pub failure_threshold: i32,
}

impl DnsSpec {
    /// Resolves the defaults only the operator knows: the set identifier (the operator's
    /// `region`) and the health check path (`app_health_path`, i.e. `spec.healthCheck.path`).
    ///
    /// "setIdentifier is required for non-simple routing" is met by that default; without a
    /// known region a failover, weighted or latency record is refused here, naming the field.
    pub fn validate(&self, app_health_path: &str, region: Option<&str>) -> Result<ValidatedDns> {
        let zone = match (&self.hosted_zone_id, &self.zone_name) {
            (Some(id), None) => ZoneRef::Id(id.trim_start_matches("/hostedzone/").to_string()),
            (None, Some(name)) => ZoneRef::Name(fqdn(name)),
            _ => {
                return Err(invalid(
                    "spec.dns",
                    "dns needs exactly one of hostedZoneId and zoneName",
                ));
            }
        };
        if self.record_name.len() > MAX_RECORD_NAME {
            return Err(invalid(
                "spec.dns.recordName",
                "must be at most 240 characters, so that _halo-owner.<recordName> is a valid name",
            ));
        }
        let region = region.filter(|r| !r.is_empty());
        let policy = match self.routing {
            Routing::Simple => Policy::Simple,
            Routing::Failover => Policy::Failover(self.role.ok_or_else(|| {
                invalid(
                    "spec.dns.role",
                    "dns.role (primary or secondary) is required with failover routing",
                )
            })?),
            Routing::Weighted => Policy::Weighted(self.weight.ok_or_else(|| {
                invalid(
                    "spec.dns.weight",
                    "dns.weight is required with weighted routing",
                )
            })?),
            Routing::Latency => Policy::Latency(
                region
                    .ok_or_else(|| {
                        invalid(
                            "spec.dns.routing",
                            "latency routing needs the operator's region: run halo with AWS_REGION set",
                        )
                    })?
                    .to_string(),
            ),
        };
        let set_identifier = match (&policy, &self.set_identifier) {
            (Policy::Simple, _) => None,
            (_, Some(id)) => Some(id.clone()),
            (_, None) => Some(
                region
                    .ok_or_else(|| {
                        invalid(
                            "spec.dns.setIdentifier",
                            "required with failover, weighted and latency routing; it defaults to the operator's region, which is unknown: set it, or run halo with AWS_REGION set",
                        )
                    })?
                    .to_string(),
            ),
        };
        let health_check = self.health_check.enabled.then(|| ValidatedDnsHealthCheck {
            path: self
                .health_check
                .path
                .clone()
                .unwrap_or_else(|| app_health_path.to_string()),
            interval_seconds: self.health_check.interval_seconds,
            failure_threshold: self.health_check.failure_threshold,
        });
        Ok(ValidatedDns {
            zone,
            record_name: fqdn(&self.record_name),
            ttl: self.ttl,
            policy,
            set_identifier,
            health_check,
        })
    }
}

/// Lowercase, with exactly one trailing dot: the form Route 53 returns names in.
pub fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn invalid(field: &str, message: &str) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DnsSpec {
        serde_saphyr::from_str(yaml).expect("dns spec parses")
    }

    /// A minimal failover record gets the operator's region as set identifier, the app's health
    /// path, a 60 s TTL and a 30 s / 3 failures health check.
    #[test]
    fn failover_defaults_to_the_region_and_the_app_health_path() {
        let v = spec(
            "{hostedZoneId: Z123, recordName: Shop.Example.com, routing: failover, role: primary}",
        )
        .validate("/healthz", Some("us-east-1"))
        .expect("valid");
        assert_eq!(
            v,
            ValidatedDns {
                zone: ZoneRef::Id("Z123".into()),
                record_name: "shop.example.com.".into(),
                ttl: 60,
                policy: Policy::Failover(FailoverRole::Primary),
                set_identifier: Some("us-east-1".into()),
                health_check: Some(ValidatedDnsHealthCheck {
                    path: "/healthz".into(),
                    interval_seconds: 30,
                    failure_threshold: 3,
                }),
            }
        );
    }

    /// A simple record never carries a set identifier, even when the region is known.
    #[test]
    fn simple_record_has_no_set_identifier() {
        let v = spec("{zoneName: example.com, recordName: shop.example.com, healthCheck: {path: /ready, intervalSeconds: 10, failureThreshold: 1}}")
            .validate("/healthz", Some("eu-west-1"))
            .expect("valid");
        assert_eq!(v.zone, ZoneRef::Name("example.com.".into()));
        assert_eq!(v.policy, Policy::Simple);
        assert_eq!(v.set_identifier, None);
        assert_eq!(
            v.health_check,
            Some(ValidatedDnsHealthCheck {
                path: "/ready".into(),
                interval_seconds: 10,
                failure_threshold: 1,
            })
        );
    }

    /// An explicit set identifier wins over the region; weighted and latency carry their values.
    #[test]
    fn weighted_and_latency_policies() {
        let w = spec("{hostedZoneId: /hostedzone/Z9, recordName: a.example.com, routing: weighted, weight: 0, setIdentifier: blue, healthCheck: {enabled: false, disabledReason: static page}}")
            .validate("/", Some("us-east-1"))
            .expect("valid");
        assert_eq!(w.zone, ZoneRef::Id("Z9".into()));
        assert_eq!(w.policy, Policy::Weighted(0));
        assert_eq!(w.set_identifier.as_deref(), Some("blue"));
        assert_eq!(w.health_check, None);

        let l = spec("{hostedZoneId: Z9, recordName: a.example.com, routing: latency}")
            .validate("/", Some("ap-southeast-2"))
            .expect("valid");
        assert_eq!(l.policy, Policy::Latency("ap-southeast-2".into()));
        assert_eq!(l.set_identifier.as_deref(), Some("ap-southeast-2"));
    }

    /// Valid DNS sections pass every CEL rule of the CRD (the bad-input table holds the
    /// refusals): a record at the zone apex or under it (zone names may end in a dot), a
    /// 63-character label, and a concrete name under a wildcard host.
    #[test]
    fn valid_dns_sections_pass_the_cel_rules() {
        let label63 = "a".repeat(63);
        for (host, dns) in [
            ("web.example.com", "{hostedZoneId: Z1, recordName: web.example.com}".to_string()),
            ("web.example.com", "{zoneName: example.com, recordName: web.example.com, routing: failover, role: secondary}".into()),
            ("web.example.com", "{zoneName: web.example.com., recordName: web.example.com}".into()),
            ("web.example.com", "{zoneName: com, recordName: web.example.com}".into()),
            ("web.example.com", "{hostedZoneId: Z1, recordName: web.example.com, routing: weighted, weight: 0, setIdentifier: blue, ttl: 300, healthCheck: {enabled: false, disabledReason: static page}}".into()),
            ("web.example.com", "{hostedZoneId: Z1, recordName: web.example.com, routing: latency, healthCheck: {intervalSeconds: 10, failureThreshold: 1, path: /ready}}".into()),
            ("*.example.com", "{zoneName: example.com., recordName: shop.example.com}".into()),
            ("*.example.com", format!("{{zoneName: {label63}.example.com, recordName: {label63}.example.com}}")),
        ] {
            let yaml = format!(
                "{}\n  ingress: {{host: '{host}'}}\n  dns: {dns}\n",
                crate::fixtures::SMALL.trim_end()
            );
            let app: crate::api::HighlyAvailableApp =
                serde_saphyr::from_str(&yaml).expect("app parses");
            assert!(app.spec.dns.is_some());
            if let Err(e) = app.validate_cel() {
                panic!("{dns} refused: {e:?}");
            }
        }
    }

    /// Without a region, halo cannot default the set identifier: the error names the field.
    #[test]
    fn non_simple_routing_without_region_or_set_identifier_is_refused() {
        let err = spec(
            "{hostedZoneId: Z1, recordName: a.example.com, routing: failover, role: secondary}",
        )
        .validate("/", None)
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid spec: spec.dns.setIdentifier: required with failover, weighted and latency routing; it defaults to the operator's region, which is unknown: set it, or run halo with AWS_REGION set"
        );
        let err = spec(
            "{hostedZoneId: Z1, recordName: a.example.com, routing: latency, setIdentifier: x}",
        )
        .validate("/", Some(""))
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid spec: spec.dns.routing: latency routing needs the operator's region: run halo with AWS_REGION set"
        );
    }
}
