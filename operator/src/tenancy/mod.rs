//! Tenancy: what a namespace may touch outside itself (issue 12).
//!
//! A `TenancyPolicy` is cluster-scoped, so only the platform team writes it: application
//! teams have no RBAC on cluster-scoped objects and cannot grant themselves rights. Its rules
//! grant namespaces the right to adopt existing AWS resources, to write Route 53 records, and to
//! join shared ALBs. Evaluation is pure and runs inside validation, before any AWS call:
//!
//! ```text
//! TenancyPolicies + namespace + its labels ──rights_for──> Rights
//! Rights + TenancyRequest (from the validated app) ──check──> Ok(()) | Refusal
//! ```
//!
//! Semantics, in one place:
//! - A namespace no rule names has the default rights: create-only (halo-named resources),
//!   no adoption, no Route 53 record, no shared ALB group.
//! - A rule names a namespace when `namespaces` lists it or `namespaceSelector` selects its
//!   labels (either suffices). An empty selector (`{}`) selects every namespace, as in
//!   Kubernetes; a rule with neither field names no namespace (the schema refuses one).
//! - Rights are the union of the grants of every rule that names the namespace, over every
//!   policy; nothing denies. Each grant is judged whole: a request must fit one rule's `dns`
//!   (zone, name and routing policy together), one rule's `adoption`, one rule's `ingress`, so
//!   two rules never combine into a right neither gives.
//! - DNS names compare case-insensitively and without the trailing dot, on label boundaries:
//!   `.example.com` never matches `evilexample.com`.
//!
//! Files: `policy` (the CRD and namespace selection), `rights` (what the rules naming a
//! namespace grant), `check` (an app's request against those rights, and the refusal a tenant
//! can act on).

mod check;
mod policy;
mod rights;

pub use check::{
    AdoptKind, AdoptRequest, DnsRequest, IngressRequest, Refusal, Refused, ResolvedZone,
    TenancyRequest, check,
};
pub use policy::{
    AdoptionRule, DnsRule, IngressRule, NamespaceSelector, NamespaceSelectorRequirement,
    SelectorOperator, TenancyPolicy, TenancyPolicySpec, TenancyRule,
};
pub use rights::{
    AdoptionGrant, DnsGrant, IdPattern, IngressGrant, NameSuffix, Rights, RuleRef, rights_for,
};
