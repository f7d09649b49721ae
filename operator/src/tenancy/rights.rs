//! What the rules naming a namespace grant it: [`rights_for`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::ResourceExt;

use super::policy::TenancyPolicy;
use crate::api::dns::Routing;

/// One rule of one policy, as refusals name it: `<policy>/<rule>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleRef {
    pub policy: String,
    pub rule: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.policy, self.rule)
    }
}

/// An identifier pattern: exact, or a prefix (written `legacy-*`). Lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdPattern {
    Exact(String),
    Prefix(String),
}

impl IdPattern {
    pub fn parse(pattern: &str) -> IdPattern {
        let lower = pattern.trim().to_ascii_lowercase();
        match lower.strip_suffix('*') {
            Some(prefix) => IdPattern::Prefix(prefix.to_string()),
            None => IdPattern::Exact(lower),
        }
    }

    pub fn matches(&self, id: &str) -> bool {
        let id = id.to_ascii_lowercase();
        match self {
            IdPattern::Exact(e) => id == *e,
            // An empty prefix (a bare `*`, which the schema refuses) grants nothing.
            IdPattern::Prefix(p) => !p.is_empty() && id.starts_with(p.as_str()),
        }
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdPattern::Exact(e) => f.write_str(e),
            IdPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A DNS name suffix: `.a.example.com` (strictly under a.example.com) or `a.example.com`
/// (that name or under it). Stored lowercase, without leading or trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSuffix {
    pub domain: String,
    /// Leading dot: the domain itself is not included.
    pub strict: bool,
}

impl NameSuffix {
    pub fn parse(suffix: &str) -> NameSuffix {
        let s = normalize_name(suffix);
        match s.strip_prefix('.') {
            Some(domain) => NameSuffix {
                domain: domain.to_string(),
                strict: true,
            },
            None => NameSuffix {
                domain: s,
                strict: false,
            },
        }
    }

    /// Whether `name` (any case, trailing dot or not) is covered. A wildcard `*.b` is covered
    /// when every name under b is, i.e. when b is the domain or under it.
    pub fn matches(&self, name: &str) -> bool {
        if self.domain.is_empty() {
            return false;
        }
        let name = normalize_name(name);
        match name.strip_prefix("*.") {
            Some(base) => at_or_under(base, &self.domain),
            None if self.strict => name != self.domain && at_or_under(&name, &self.domain),
            None => at_or_under(&name, &self.domain),
        }
    }
}

impl fmt::Display for NameSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.strict {
            write!(f, ".{}", self.domain)
        } else {
            f.write_str(&self.domain)
        }
    }
}

/// Lowercase, trimmed, without trailing dots.
pub(super) fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `name` is `domain` or ends in `.domain` (whole labels).
fn at_or_under(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
}

/// A hosted zone id without the `/hostedzone/` prefix, uppercase.
pub(super) fn normalize_zone_id(id: &str) -> String {
    id.trim()
        .trim_start_matches("/hostedzone/")
        .to_ascii_uppercase()
}

/// Adoption granted by one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptionGrant {
    pub source: RuleRef,
    pub aurora_clusters: Vec<IdPattern>,
    pub elasticache_replication_groups: Vec<IdPattern>,
    pub required_tags: BTreeMap<String, String>,
}

/// Route 53 records granted by one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsGrant {
    pub source: RuleRef,
    /// Uppercase, without `/hostedzone/`.
    pub hosted_zone_ids: BTreeSet<String>,
    /// Lowercase, without the trailing dot.
    pub zone_names: BTreeSet<String>,
    pub record_name_suffixes: Vec<NameSuffix>,
    pub routing_policies: Vec<Routing>,
}

/// Shared ALB groups granted by one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressGrant {
    pub source: RuleRef,
    pub group_names: BTreeSet<String>,
    /// Empty: any host.
    pub host_suffixes: Vec<NameSuffix>,
}

/// What one namespace may do: the grants of every rule that names it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Rights {
    pub namespace: String,
    /// Every rule that names the namespace, in policy then rule order (for refusals).
    pub rules: Vec<RuleRef>,
    pub adoption: Vec<AdoptionGrant>,
    pub dns: Vec<DnsGrant>,
    pub ingress: Vec<IngressGrant>,
}

impl Rights {
    /// The default rights: create-only, no adoption, no DNS, no ALB group.
    pub fn default_for(namespace: &str) -> Rights {
        Rights {
            namespace: namespace.to_string(),
            ..Rights::default()
        }
    }
}

/// The rights of `namespace` (whose labels are `namespace_labels`) under `policies`: the union
/// of the grants of every rule that names it. Policies are read in name order, so refusals
/// list them the same way every time.
pub fn rights_for(
    policies: &[TenancyPolicy],
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> Rights {
    let mut rights = Rights::default_for(namespace);
    let mut sorted: Vec<&TenancyPolicy> = policies.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for policy in sorted {
        let policy_name = policy.name_any();
        for rule in &policy.spec.rules {
            if !rule.names(namespace, namespace_labels) {
                continue;
            }
            let source = RuleRef {
                policy: policy_name.clone(),
                rule: rule.name.clone(),
            };
            rights.rules.push(source.clone());
            if let Some(a) = rule.adoption.as_ref().filter(|a| a.allowed) {
                rights.adoption.push(AdoptionGrant {
                    source: source.clone(),
                    aurora_clusters: a
                        .aurora_clusters
                        .iter()
                        .map(|p| IdPattern::parse(p))
                        .collect(),
                    elasticache_replication_groups: a
                        .elasti_cache_replication_groups
                        .iter()
                        .map(|p| IdPattern::parse(p))
                        .collect(),
                    required_tags: a.required_tags.clone(),
                });
            }
            if let Some(d) = &rule.dns {
                rights.dns.push(DnsGrant {
                    source: source.clone(),
                    hosted_zone_ids: d
                        .hosted_zone_ids
                        .iter()
                        .map(|z| normalize_zone_id(z))
                        .collect(),
                    zone_names: d.zone_names.iter().map(|z| normalize_name(z)).collect(),
                    record_name_suffixes: d
                        .record_name_suffixes
                        .iter()
                        .map(|s| NameSuffix::parse(s))
                        .collect(),
                    routing_policies: d.routing_policies.clone(),
                });
            }
            if let Some(i) = &rule.ingress {
                rights.ingress.push(IngressGrant {
                    source,
                    group_names: i.group_names.iter().cloned().collect(),
                    host_suffixes: i
                        .host_suffixes
                        .iter()
                        .map(|s| NameSuffix::parse(s))
                        .collect(),
                });
            }
        }
    }
    rights
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A policy named `name` with `rules` (YAML list items under `rules:`).
    pub(in crate::tenancy) fn policy(name: &str, rules: &str) -> TenancyPolicy {
        serde_saphyr::from_str(&format!(
            "apiVersion: halo.dev/v1alpha1\nkind: TenancyPolicy\nmetadata: {{name: {name}}}\nspec:\n  rules:\n{rules}"
        ))
        .expect("policy parses")
    }

    pub(in crate::tenancy) fn no_labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn rule(policy: &str, rule: &str) -> RuleRef {
        RuleRef {
            policy: policy.into(),
            rule: rule.into(),
        }
    }

    /// A suffix with a leading dot covers names under the domain, never a name that merely
    /// ends in the same letters; case and trailing dots do not matter.
    #[test]
    fn dotted_suffix_matches_whole_labels_under_the_domain() {
        let s = NameSuffix::parse(".Example.COM.");
        assert_eq!(
            s,
            NameSuffix {
                domain: "example.com".into(),
                strict: true
            }
        );
        assert_eq!(s.to_string(), ".example.com");
        for (name, want) in [
            ("shop.example.com", true),
            ("Shop.Example.Com.", true),
            ("a.b.example.com", true),
            ("example.com", false),
            ("example.com.", false),
            ("evilexample.com", false),
            ("shop.evilexample.com", false),
            ("example.com.evil.org", false),
            (".example.com", false),
            ("", false),
            ("*.example.com", true),
            ("*.shop.example.com", true),
            ("*.evilexample.com", false),
        ] {
            assert_eq!(s.matches(name), want, "{name}");
        }
    }

    /// A suffix without a leading dot also covers the domain itself.
    #[test]
    fn bare_suffix_matches_the_domain_and_below() {
        let s = NameSuffix::parse("shop.example.com");
        for (name, want) in [
            ("shop.example.com", true),
            ("SHOP.example.com.", true),
            ("api.shop.example.com", true),
            ("evilshop.example.com", false),
            ("example.com", false),
            ("*.shop.example.com", true),
            ("*.example.com", false),
        ] {
            assert_eq!(s.matches(name), want, "{name}");
        }
    }

    /// Identifiers: exact or by prefix, case-insensitive; a bare `*` grants nothing.
    #[test]
    fn id_patterns() {
        let prefix = IdPattern::parse("Legacy-*");
        assert_eq!(prefix, IdPattern::Prefix("legacy-".into()));
        assert_eq!(prefix.to_string(), "legacy-*");
        assert!(prefix.matches("legacy-shop"));
        assert!(prefix.matches("LEGACY-SHOP"));
        assert!(!prefix.matches("legacy"));
        assert!(!prefix.matches("prod-legacy-shop"));
        let exact = IdPattern::parse("prod-billing");
        assert!(exact.matches("prod-billing"));
        assert!(exact.matches("Prod-Billing"));
        assert!(!exact.matches("prod-billing-2"));
        assert!(!exact.matches("prod-bill"));
        assert!(!IdPattern::parse("*").matches("prod-billing"));
    }

    /// A namespace no rule names gets the default rights: nothing beyond creating.
    #[test]
    fn unnamed_namespace_gets_the_default_rights() {
        let policies = [policy(
            "platform",
            "  - {name: shop, namespaces: [shop], adoption: {allowed: true, auroraClusters: [legacy-shop]}}\n",
        )];
        let rights = rights_for(&policies, "evil", &no_labels());
        assert_eq!(rights, Rights::default_for("evil"));
        assert_eq!(
            rights,
            Rights {
                namespace: "evil".into(),
                rules: vec![],
                adoption: vec![],
                dns: vec![],
                ingress: vec![],
            }
        );
        assert_eq!(
            rights_for(&[], "shop", &no_labels()),
            Rights::default_for("shop")
        );
    }

    /// Every rule naming the namespace contributes its grants, policies in name order,
    /// normalized (zone ids without /hostedzone/, names lowercase without the trailing dot).
    #[test]
    fn rights_are_the_union_of_the_rules_naming_the_namespace() {
        let policies = [
            policy(
                "zeta",
                "  - {name: groups, namespaceSelector: {matchLabels: {team: shop}}, ingress: {groupNames: [shared-alb]}}\n",
            ),
            policy(
                "alpha",
                concat!(
                    "  - {name: shop, namespaces: [shop], adoption: {allowed: true, auroraClusters: [legacy-*], requiredTags: {team: shop}},",
                    " dns: {hostedZoneIds: [/hostedzone/z123], zoneNames: [Example.COM.], recordNameSuffixes: [.Shop.Example.com], routingPolicies: [simple]}}\n",
                    "  - {name: off, namespaces: [shop], adoption: {allowed: false}}\n",
                    "  - {name: other, namespaces: [cart], ingress: {groupNames: [cart-alb]}}\n",
                ),
            ),
        ];
        let rights = rights_for(
            &policies,
            "shop",
            &BTreeMap::from([("team".into(), "shop".into())]),
        );
        assert_eq!(
            rights,
            Rights {
                namespace: "shop".into(),
                rules: vec![
                    rule("alpha", "shop"),
                    rule("alpha", "off"),
                    rule("zeta", "groups")
                ],
                adoption: vec![AdoptionGrant {
                    source: rule("alpha", "shop"),
                    aurora_clusters: vec![IdPattern::Prefix("legacy-".into())],
                    elasticache_replication_groups: vec![],
                    required_tags: BTreeMap::from([("team".into(), "shop".into())]),
                }],
                dns: vec![DnsGrant {
                    source: rule("alpha", "shop"),
                    hosted_zone_ids: BTreeSet::from(["Z123".to_string()]),
                    zone_names: BTreeSet::from(["example.com".to_string()]),
                    record_name_suffixes: vec![NameSuffix {
                        domain: "shop.example.com".into(),
                        strict: true
                    }],
                    routing_policies: vec![Routing::Simple],
                }],
                ingress: vec![IngressGrant {
                    source: rule("zeta", "groups"),
                    group_names: BTreeSet::from(["shared-alb".to_string()]),
                    host_suffixes: vec![],
                }],
            }
        );
    }
}
