//! Validate, as a stage: the pure [`crate::validate`] for this operator (its region is the
//! default DNS set identifier), then what only the cluster can judge: whether the namespace's
//! TenancyPolicy rights cover what the app asks for beyond its own resources (adoption, a
//! Route 53 record, a shared ALB group), and whether halo may manage the connection Secret in
//! the app's namespace. Both refuse before any AWS call.

use std::collections::BTreeMap;

use kube::runtime::reflector::ObjectRef;

use crate::api::HighlyAvailableApp;
use crate::api::dns::{Policy, Routing};
use crate::meta::Owner;
use crate::tenancy::{
    AdoptKind, AdoptRequest, DnsRequest, IngressRequest, TenancyRequest, check, rights_for,
};
use crate::validate::{ValidatedApp, validate_in};
use crate::{Error, Result};

use super::Context;
use super::caches::TenancyCache;

/// Validates the app for this operator: the region (the default DNS set identifier) is looked
/// up only for apps with `spec.dns`.
async fn validate_here(
    ctx: &Context,
    app: &HighlyAvailableApp,
    owner: Owner,
) -> Result<ValidatedApp> {
    let region = match &app.spec.dns {
        Some(_) => ctx.backend.region().await,
        None => ctx.backend.config().region.clone(),
    };
    validate_in(app, owner, region.as_deref())
}

/// The app as this operator may reconcile it.
pub async fn validate(
    ctx: &Context,
    app: &HighlyAvailableApp,
    owner: Owner,
) -> Result<ValidatedApp> {
    let validated = validate_here(ctx, app, owner).await?;
    within_rights(&ctx.caches.tenancy, &validated)?;
    let needs_secret = validated.names.connection_secret.is_some();
    ctx.caches.secrets.check(validated, needs_secret)
}

/// The app as far as its deletion needs: no Secret-namespace check (deleting needs no Secret,
/// and what an earlier configuration created in AWS must still be cleaned up), and a DNS
/// section that no longer resolves (the region is gone) does not block it: what halo wrote is
/// in `status.dns`, and that is cleaned up.
pub async fn validate_for_cleanup(
    ctx: &Context,
    app: &HighlyAvailableApp,
    owner: Owner,
) -> Result<ValidatedApp> {
    match validate_here(ctx, app, owner.clone()).await {
        Ok(v) => Ok(v),
        Err(e) if app.spec.dns.is_some() => {
            let mut without_dns = app.clone();
            without_dns.spec.dns = None;
            validate_in(&without_dns, owner, ctx.backend.config().region.as_deref())
                .map_err(|_: Error| e)
        }
        Err(e) => Err(e),
    }
}

/// What the app asks for beyond its own halo-named resources. Pure.
pub fn tenancy_request(app: &ValidatedApp) -> TenancyRequest {
    let mut adopt = Vec::new();
    if let Some(a) = app.database.as_ref().and_then(|d| d.adopt.as_ref()) {
        adopt.push(AdoptRequest {
            kind: AdoptKind::AuroraCluster,
            identifier: a.cluster_identifier.clone(),
            tags: BTreeMap::new(),
        });
    }
    if let Some(a) = app.cache.as_ref().and_then(|c| c.adopt.as_ref()) {
        adopt.push(AdoptRequest {
            kind: AdoptKind::ElastiCacheReplicationGroup,
            identifier: a.replication_group_id.clone(),
            tags: BTreeMap::new(),
        });
    }
    TenancyRequest {
        namespace: app.owner.namespace.clone(),
        adopt,
        dns: app.dns.as_ref().map(|d| DnsRequest {
            zone: d.zone.clone(),
            resolved_zone: None,
            record_name: d.record_name.clone(),
            routing: match d.policy {
                Policy::Simple => Routing::Simple,
                Policy::Failover(_) => Routing::Failover,
                Policy::Weighted(_) => Routing::Weighted,
                Policy::Latency(_) => Routing::Latency,
            },
            set_identifier: d.set_identifier.clone(),
        }),
        ingress: app.ingress.as_ref().map(|i| IngressRequest {
            host: i.host.clone(),
            group_name: i.group_name.clone(),
        }),
    }
}

/// Refuses an app that asks for more than its namespace's rights grant.
pub fn within_rights(tenancy: &TenancyCache, app: &ValidatedApp) -> Result<()> {
    let request = tenancy_request(app);
    if request.adopt.is_empty()
        && request.dns.is_none()
        && request
            .ingress
            .as_ref()
            .is_none_or(|i| i.group_name.is_none())
    {
        // Nothing beyond its own resources: every namespace may.
        return Ok(());
    }
    let labels = tenancy
        .namespaces
        .get(&ObjectRef::new(&request.namespace))
        .and_then(|ns| ns.metadata.labels.clone())
        .unwrap_or_default();
    let policies: Vec<_> = tenancy
        .policies
        .state()
        .iter()
        .map(|p| p.as_ref().clone())
        .collect();
    let rights = rights_for(&policies, &request.namespace, &labels);
    check(&rights, &request).map_err(Error::from)
}
