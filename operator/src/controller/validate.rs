//! Validate, as a stage: the pure [`crate::validate`] for this operator (its region is the
//! default DNS set identifier), then what only the cluster can judge (whether halo may manage
//! the connection Secret in the app's namespace).

use crate::api::HighlyAvailableApp;
use crate::meta::Owner;
use crate::validate::{ValidatedApp, validate_in};
use crate::{Error, Result};

use super::Context;

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
