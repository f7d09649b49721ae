//! The `TenancyPolicy` custom resource (group `halo.dev`, version `v1alpha1`, cluster-scoped)
//! and which namespaces a rule names.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::api::dns::Routing;
/// What the platform team lets application namespaces do beyond creating their own resources.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "halo.dev",
    version = "v1alpha1",
    kind = "TenancyPolicy",
    plural = "tenancypolicies",
    singular = "tenancypolicy",
    shortname = "htp",
    doc = "What application namespaces may touch outside their own halo-named resources: adopting existing Aurora clusters and ElastiCache replication groups, writing Route 53 records, joining shared ALB groups. Cluster-scoped, so only the platform team writes it. A namespace that no rule names may only create its own resources: no adoption, no DNS record, no ALB group. When several rules (of one or several policies) name a namespace, its rights are the union of their grants; nothing denies.",
    cel,
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TenancyPolicySpec {
    /// The rules. Each names namespaces and grants them rights; a namespace gets the union of
    /// the grants of every rule, in every policy, that names it. Rule names are unique.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub rules: Vec<TenancyRule>,
}

/// Namespaces, and what they may do.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("size(self.namespaces) > 0 || has(self.namespaceSelector)")
        .message("a rule needs namespaces or namespaceSelector: without either it names no namespace")
        .field_path(".namespaces")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.adoption) || has(self.dns) || has(self.ingress)")
        .message("a rule needs at least one of adoption, dns and ingress: without a grant it changes nothing")
        .reason(Reason::FieldValueRequired)
)]
#[serde(rename_all = "camelCase")]
pub struct TenancyRule {
    /// Name of the rule, unique in the policy, e.g. `shop`. Refusals name the rules they
    /// considered as `<policy>/<rule>`.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub name: String,

    /// Namespaces this rule applies to, by name, e.g. `[shop, shop-staging]`. The rule also
    /// applies to the namespaces namespaceSelector selects.
    #[serde(default)]
    #[schemars(
        length(max = 256),
        inner(
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
            length(min = 1, max = 63)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub namespaces: Vec<String>,

    /// Namespaces this rule applies to, by their labels: a Kubernetes label selector
    /// (matchLabels and matchExpressions, all of which must hold). `{}` selects every
    /// namespace. Namespace labels are usually writable by the platform team only; do not
    /// select on labels the application teams can set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,

    /// Adoption of existing AWS resources (`spec.database.adopt`, `spec.cache.adopt`). Without
    /// it the rule grants none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<AdoptionRule>,

    /// Route 53 records (`spec.dns`). Without it the rule grants none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsRule>,

    /// Shared ALBs (`spec.ingress.groupName`). Without it the rule grants none; an app without
    /// a group name gets its own ALB and needs no grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressRule>,
}

/// A Kubernetes label selector (the shape of metav1.LabelSelector) over namespace labels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels the namespace must have, with these values, e.g. `{halo.dev/tenant: shop}`. A key
    /// that is no valid label key selects nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxProperties" = 32,
        "additionalProperties" = {
            "type": "string",
            "maxLength": 63,
            "pattern": "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
        }
    ))]
    pub match_labels: Option<BTreeMap<String, String>>,

    /// Label requirements the namespace must meet, e.g.
    /// `{key: team, operator: In, values: [shop, cart]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub match_expressions: Option<Vec<NamespaceSelectorRequirement>>,
}

/// One label requirement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("(self.operator == 'In' || self.operator == 'NotIn') == (has(self.values) && size(self.values) > 0)")
        .message("values must be non-empty with operator In or NotIn, and empty with Exists or DoesNotExist")
        .field_path(".values")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelectorRequirement {
    /// Label key, e.g. `team` or `example.com/team`.
    #[schemars(
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        ),
        length(min = 1, max = 317)
    )]
    pub key: String,

    /// `In` (the label has one of values), `NotIn` (the label is absent or has none of
    /// values), `Exists` (the label is present), `DoesNotExist` (it is absent).
    pub operator: SelectorOperator,

    /// Label values for In and NotIn; empty for Exists and DoesNotExist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        inner(
            regex(pattern = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"),
            length(max = 63)
        )
    )]
    pub values: Option<Vec<String>>,
}

/// Operator of a label requirement, as in Kubernetes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Which existing resources the namespaces may adopt.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("!self.allowed || size(self.auroraClusters) + size(self.elastiCacheReplicationGroups) > 0")
        .message("adoption.allowed needs at least one identifier in auroraClusters or elastiCacheReplicationGroups: adoption is granted by identifier")
        .field_path(".auroraClusters")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.allowed || (size(self.auroraClusters) + size(self.elastiCacheReplicationGroups) == 0 && size(self.requiredTags) == 0)")
        .message("adoption.auroraClusters, elastiCacheReplicationGroups and requiredTags apply only when adoption.allowed is true")
        .field_path(".allowed")
        .reason(Reason::FieldValueInvalid)
)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionRule {
    /// Whether the namespaces may adopt at all. `false` grants nothing (it does not take away
    /// what another rule grants: rights are a union).
    pub allowed: bool,

    /// Aurora DB cluster identifiers the namespaces may adopt (`spec.database.adopt.clusterIdentifier`):
    /// exact, e.g. `legacy-shop`, or a prefix ending in `*`, e.g. `legacy-*`. Compared
    /// case-insensitively, as RDS does. A bare `*` is refused: adoption is granted by name.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-]*\*?$"),
            length(min = 1, max = 64)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub aurora_clusters: Vec<String>,

    /// ElastiCache replication group ids the namespaces may adopt (`spec.cache.adopt.replicationGroupId`):
    /// exact, e.g. `legacy-cache`, or a prefix ending in `*`, e.g. `legacy-*`.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^[a-z][a-z0-9-]*\*?$"), length(min = 1, max = 41))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub elasti_cache_replication_groups: Vec<String>,

    /// Tags the adopted resource must already carry, with these exact values, e.g.
    /// `{team: shop}`; all of them. Empty: no tag is required.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = 16,
        "additionalProperties" = {"type": "string", "maxLength": 256}
    ))]
    pub required_tags: BTreeMap<String, String>,
}

/// Which Route 53 records the namespaces may write.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("size(self.hostedZoneIds) + size(self.zoneNames) > 0")
        .message("dns needs at least one hosted zone in hostedZoneIds or zoneNames")
        .field_path(".hostedZoneIds")
        .reason(Reason::FieldValueRequired)
)]
#[serde(rename_all = "camelCase")]
pub struct DnsRule {
    /// Hosted zones the namespaces may write records in, by id, e.g. `Z0123456789ABCDEFGHIJ`
    /// (`spec.dns.hostedZoneId`, or the id halo finds for `spec.dns.zoneName`).
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            regex(pattern = r"^(/hostedzone/)?[A-Za-z0-9]{1,32}$"),
            length(max = 44)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub hosted_zone_ids: Vec<String>,

    /// Hosted zones the namespaces may write records in, by name, e.g. `example.com`
    /// (`spec.dns.zoneName`, or the name of the zone `spec.dns.hostedZoneId` names). A name
    /// grants every zone of that name, public and private: grant by id to pick one.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            regex(
                pattern = r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\.?$"
            ),
            length(min = 1, max = 254)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub zone_names: Vec<String>,

    /// Record names the namespaces may use (`spec.dns.recordName`). `.shop.example.com` (leading
    /// dot): any name under shop.example.com, not shop.example.com itself. `shop.example.com`:
    /// that name and any name under it. Whole labels only (`.example.com` does not match
    /// `evilexample.com`); case and a trailing dot do not matter.
    #[schemars(
        length(min = 1, max = 64),
        inner(
            regex(
                pattern = r"^\.?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\.?$"
            ),
            length(min = 1, max = 254)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub record_name_suffixes: Vec<String>,

    /// Routing policies the records may use (`spec.dns.routing`): simple, failover, weighted,
    /// latency. Default: all four.
    #[serde(default = "all_routing_policies")]
    #[schemars(length(min = 1, max = 4))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub routing_policies: Vec<Routing>,
}

fn all_routing_policies() -> Vec<Routing> {
    vec![
        Routing::Simple,
        Routing::Failover,
        Routing::Weighted,
        Routing::Latency,
    ]
}

/// Which shared ALBs the namespaces may join.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// ALB group names the namespaces may join (`spec.ingress.groupName`), e.g. `shared-alb`.
    /// Every Ingress of a group shares one ALB, and the ALB routes by host name.
    #[schemars(
        length(min = 1, max = 64),
        inner(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"), length(max = 63))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub group_names: Vec<String>,

    /// Host names the namespaces may route on these ALBs (`spec.ingress.host`), matched as
    /// dns.recordNameSuffixes are; a wildcard host `*.a.example.com` needs a suffix that covers
    /// every name under a.example.com. Empty: any host. Set it when several teams share a
    /// group, or one team can take another's host name on the shared ALB.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            regex(
                pattern = r"^\.?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*\.?$"
            ),
            length(min = 1, max = 254)
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub host_suffixes: Vec<String>,
}

impl TenancyRule {
    /// Whether the rule applies to the namespace: listed by name, or selected by its labels.
    pub fn names(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.matches(labels))
    }
}

impl NamespaceSelector {
    /// Kubernetes label selector semantics: every matchLabels entry and every requirement
    /// holds; an empty selector selects everything. A malformed requirement (In or NotIn
    /// without values, Exists or DoesNotExist with values; the schema refuses both) selects
    /// nothing, as Kubernetes refuses to build such a selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_hold = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_hold
            && self
                .match_expressions
                .iter()
                .flatten()
                .all(|r| r.matches(labels))
    }
}

impl NamespaceSelectorRequirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let values = self.values.as_deref().unwrap_or_default();
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| values.contains(v)),
            SelectorOperator::NotIn if values.is_empty() => false,
            SelectorOperator::NotIn => value.is_none_or(|v| !values.contains(v)),
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                false
            }
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::Value;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(yaml: &str) -> NamespaceSelector {
        serde_saphyr::from_str(yaml).expect("selector parses")
    }

    /// (field, what) of every refusal the API server would make: structural schema errors
    /// (JSON pointer and the keyword that failed) first, then CEL rules (field and message).
    fn refusals(yaml: &str) -> Vec<(String, String)> {
        use jsonschema::error::ValidationErrorKind as K;
        let manifest: Value = serde_saphyr::from_str(yaml).expect("policy parses");
        let crd = TenancyPolicy::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema");
        let schema = serde_json::to_value(schema).expect("schema json");
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let schema_errors: Vec<(String, String)> = validator
            .iter_errors(&manifest)
            .map(|e| {
                let what = match &e.kind {
                    K::Pattern { .. } => "pattern",
                    K::Enum { .. } => "enum",
                    K::MinItems { .. } => "minItems",
                    K::MaxItems { .. } => "maxItems",
                    K::Required { .. } => "required",
                    _ => "other",
                };
                (e.instance_path.to_string(), what.to_string())
            })
            .collect();
        if !schema_errors.is_empty() {
            return schema_errors;
        }
        let policy: TenancyPolicy =
            serde_json::from_value(manifest).expect("schema-valid policy deserializes");
        match policy.validate_cel() {
            Ok(()) => vec![],
            Err(errors) => errors
                .as_slice()
                .iter()
                .map(|e| (e.field_path.clone(), e.message.clone()))
                .collect(),
        }
    }

    /// A policy with one rule, `rule` being the YAML flow mapping's inside (after `name: r`).
    fn one_rule(rule: &str) -> String {
        format!(
            "apiVersion: halo.dev/v1alpha1\nkind: TenancyPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n  - {{name: r, {rule}}}\n"
        )
    }

    /// The sample policy passes the schema and every CEL rule, and reads as written.
    #[test]
    fn the_sample_policy_is_accepted() {
        let text = include_str!("../../../config/samples/tenancy.yaml");
        assert_eq!(refusals(text), Vec::<(String, String)>::new());
        let policy: TenancyPolicy = serde_saphyr::from_str(text).expect("sample parses");
        let names: Vec<&str> = policy.spec.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["shop", "internal-dns"]);
        assert_eq!(
            policy.spec.rules[1]
                .dns
                .as_ref()
                .map(|d| d.routing_policies.clone()),
            Some(vec![Routing::Simple])
        );
    }

    /// An omitted routingPolicies means all four, and the API server fills them in.
    #[test]
    fn routing_policies_default_to_all_four() {
        let policy: TenancyPolicy = serde_saphyr::from_str(&one_rule(
            "namespaces: [shop], dns: {zoneNames: [example.com], recordNameSuffixes: [.example.com]}",
        ))
        .expect("parses");
        assert_eq!(
            policy.spec.rules[0]
                .dns
                .as_ref()
                .map(|d| d.routing_policies.clone()),
            Some(vec![
                Routing::Simple,
                Routing::Failover,
                Routing::Weighted,
                Routing::Latency
            ])
        );
    }

    /// Bad policies are refused by the API server, with the field named.
    #[test]
    fn bad_policies_are_refused_naming_the_field() {
        let dns = "dns: {zoneNames: [example.com], recordNameSuffixes: [.example.com]}";
        let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
            (
                one_rule(dns),
                vec![(
                    "spec.rules[0].namespaces",
                    "a rule needs namespaces or namespaceSelector: without either it names no namespace",
                )],
            ),
            (
                one_rule("namespaces: [shop]"),
                vec![(
                    "spec.rules[0]",
                    "a rule needs at least one of adoption, dns and ingress: without a grant it changes nothing",
                )],
            ),
            (
                one_rule("namespaces: [shop], adoption: {allowed: true}"),
                vec![(
                    "spec.rules[0].adoption.auroraClusters",
                    "adoption.allowed needs at least one identifier in auroraClusters or elastiCacheReplicationGroups: adoption is granted by identifier",
                )],
            ),
            (
                one_rule(
                    "namespaces: [shop], adoption: {allowed: false, auroraClusters: [legacy-shop]}",
                ),
                vec![(
                    "spec.rules[0].adoption.allowed",
                    "adoption.auroraClusters, elastiCacheReplicationGroups and requiredTags apply only when adoption.allowed is true",
                )],
            ),
            (
                one_rule("namespaces: [shop], dns: {recordNameSuffixes: [.example.com]}"),
                vec![(
                    "spec.rules[0].dns.hostedZoneIds",
                    "dns needs at least one hosted zone in hostedZoneIds or zoneNames",
                )],
            ),
            (
                one_rule(&format!(
                    "namespaceSelector: {{matchExpressions: [{{key: team, operator: In}}]}}, {dns}"
                )),
                vec![(
                    "spec.rules[0].namespaceSelector.matchExpressions[0].values",
                    "values must be non-empty with operator In or NotIn, and empty with Exists or DoesNotExist",
                )],
            ),
            (
                one_rule(&format!(
                    "namespaceSelector: {{matchExpressions: [{{key: team, operator: Exists, values: [a]}}]}}, {dns}"
                )),
                vec![(
                    "spec.rules[0].namespaceSelector.matchExpressions[0].values",
                    "values must be non-empty with operator In or NotIn, and empty with Exists or DoesNotExist",
                )],
            ),
            (
                one_rule(&format!(
                    "namespaceSelector: {{matchLabels: {{team: 'not a value'}}}}, {dns}"
                )),
                vec![(
                    "/spec/rules/0/namespaceSelector/matchLabels/team",
                    "pattern",
                )],
            ),
            // A bare `*` would grant every cluster in the account.
            (
                one_rule("namespaces: [shop], adoption: {allowed: true, auroraClusters: ['*']}"),
                vec![("/spec/rules/0/adoption/auroraClusters/0", "pattern")],
            ),
            (
                one_rule(
                    "namespaces: [shop], dns: {zoneNames: [example.com], recordNameSuffixes: ['*.example.com']}",
                ),
                vec![("/spec/rules/0/dns/recordNameSuffixes/0", "pattern")],
            ),
            (
                one_rule(
                    "namespaces: [shop], dns: {zoneNames: [example.com], recordNameSuffixes: [.example.com], routingPolicies: [geolocation]}",
                ),
                vec![("/spec/rules/0/dns/routingPolicies/0", "enum")],
            ),
            (
                one_rule(
                    "namespaces: [shop], dns: {zoneNames: [example.com], recordNameSuffixes: []}",
                ),
                vec![("/spec/rules/0/dns/recordNameSuffixes", "minItems")],
            ),
            (
                one_rule(&format!(
                    "namespaceSelector: {{matchExpressions: [{{key: team, operator: Equals, values: [a]}}]}}, {dns}"
                )),
                vec![(
                    "/spec/rules/0/namespaceSelector/matchExpressions/0/operator",
                    "enum",
                )],
            ),
            (
                one_rule("namespaces: [Shop], ingress: {groupNames: [shared]}"),
                vec![("/spec/rules/0/namespaces/0", "pattern")],
            ),
            (
                one_rule("namespaces: [shop], ingress: {groupNames: [Shared_ALB]}"),
                vec![("/spec/rules/0/ingress/groupNames/0", "pattern")],
            ),
        ];
        let mut failures = Vec::new();
        for (yaml, want) in &cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect();
            let got = refusals(yaml);
            if got != want {
                failures.push(format!("{yaml}\n  want {want:?}\n  got  {got:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    /// Each operator means what it means in Kubernetes; NotIn also selects namespaces without
    /// the label.
    #[test]
    fn selector_operators_follow_kubernetes() {
        let team_shop = labels(&[("team", "shop")]);
        let team_cart = labels(&[("team", "cart")]);
        let none = labels(&[]);
        let cases = [
            (
                "{matchExpressions: [{key: team, operator: In, values: [shop, web]}]}",
                [true, false, false],
            ),
            (
                "{matchExpressions: [{key: team, operator: NotIn, values: [shop]}]}",
                [false, true, true],
            ),
            (
                "{matchExpressions: [{key: team, operator: Exists}]}",
                [true, true, false],
            ),
            (
                "{matchExpressions: [{key: team, operator: DoesNotExist}]}",
                [false, false, true],
            ),
            ("{matchLabels: {team: shop}}", [true, false, false]),
            ("{}", [true, true, true]),
            (
                "{matchLabels: {}, matchExpressions: []}",
                [true, true, true],
            ),
        ];
        for (yaml, want) in cases {
            let s = selector(yaml);
            let got = [
                s.matches(&team_shop),
                s.matches(&team_cart),
                s.matches(&none),
            ];
            assert_eq!(got, want, "{yaml}");
        }
    }

    /// matchLabels and every expression must all hold.
    #[test]
    fn selector_terms_are_anded() {
        let s = selector(
            "{matchLabels: {tenant: 'true'}, matchExpressions: [{key: env, operator: NotIn, values: [sandbox]}, {key: team, operator: Exists}]}",
        );
        assert!(s.matches(&labels(&[
            ("tenant", "true"),
            ("team", "shop"),
            ("env", "prod")
        ])));
        assert!(s.matches(&labels(&[("tenant", "true"), ("team", "shop")])));
        assert!(!s.matches(&labels(&[
            ("tenant", "true"),
            ("team", "shop"),
            ("env", "sandbox")
        ])));
        assert!(!s.matches(&labels(&[("tenant", "true")])));
        assert!(!s.matches(&labels(&[("tenant", "false"), ("team", "shop")])));
    }

    /// Malformed requirements (which the schema refuses) select nothing rather than everything.
    #[test]
    fn malformed_requirements_select_nothing() {
        let any = labels(&[("team", "shop")]);
        for yaml in [
            "{matchExpressions: [{key: team, operator: In}]}",
            "{matchExpressions: [{key: team, operator: NotIn, values: []}]}",
            "{matchExpressions: [{key: team, operator: Exists, values: [shop]}]}",
            "{matchExpressions: [{key: other, operator: DoesNotExist, values: [x]}]}",
        ] {
            assert!(!selector(yaml).matches(&any), "{yaml}");
        }
    }

    /// A rule names a namespace by name or by selector (either suffices); with neither it names none.
    #[test]
    fn a_rule_names_namespaces_by_name_or_selector() {
        let rule = |yaml: &str| -> TenancyRule {
            serde_saphyr::from_str(&format!(
                "{{name: r, {yaml}, ingress: {{groupNames: [g]}}}}"
            ))
            .expect("rule parses")
        };
        let shop_labels = labels(&[("team", "shop")]);
        let both = rule("namespaces: [shop], namespaceSelector: {matchLabels: {team: cart}}");
        assert!(both.names("shop", &shop_labels));
        assert!(both.names("cart", &labels(&[("team", "cart")])));
        assert!(!both.names("web", &shop_labels));
        let neither = rule("namespaces: []");
        assert!(!neither.names("shop", &shop_labels));
        assert!(!neither.names("", &labels(&[])));
        let everything = rule("namespaceSelector: {}");
        assert!(everything.names("anything", &labels(&[])));
    }
}
