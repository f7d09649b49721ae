//! Status: the pure computation ([`crate::status`]) written with one server-side apply patch,
//! only when it differs from what the app already shows, plus an Event per condition flip.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::{HighlyAvailableApp, HighlyAvailableAppStatus};
use crate::meta::FIELD_MANAGER;
use crate::validate::ValidatedApp;
use crate::{Error, Result, status};

use super::{Context, events};

/// Writes `new` when it differs from `old`, then the Events of its condition flips.
pub async fn write(
    ctx: &Context,
    app: &HighlyAvailableApp,
    old: Option<&HighlyAvailableAppStatus>,
    new: &HighlyAvailableAppStatus,
) -> Result<()> {
    if old == Some(new) {
        return Ok(());
    }
    patch(ctx, app, new).await?;
    events::transitions(ctx, app, old, new).await;
    Ok(())
}

/// A spec only halo can judge was refused: say so on `Ready` (keeping the rest of the status),
/// make an Event, and fail the reconcile so it backs off.
pub async fn refuse(ctx: &Context, app: &HighlyAvailableApp, e: Error) -> Error {
    let old = app.status.as_ref();
    let new = status::refused(old, app.metadata.generation, &e, &Time(Timestamp::now()));
    if old != Some(&new)
        && let Err(patch_error) = patch(ctx, app, &new).await
    {
        return patch_error;
    }
    events::failure(ctx, app, &e).await;
    e
}

/// The status of a validated app from what this reconcile observed and did in AWS.
pub fn compute(
    validated: &ValidatedApp,
    app: &HighlyAvailableApp,
    observed: &status::Observed<'_>,
    aws: &crate::observed::AwsObserved,
) -> HighlyAvailableAppStatus {
    status::compute_with_aws(
        validated,
        app.metadata.generation,
        observed,
        aws,
        app.status.as_ref(),
        &Time(Timestamp::now()),
    )
}

async fn patch(
    ctx: &Context,
    app: &HighlyAvailableApp,
    status: &HighlyAvailableAppStatus,
) -> Result<()> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({
        "apiVersion": "halo.dev/v1alpha1",
        "kind": "HighlyAvailableApp",
        "status": status,
    });
    api.patch_status(
        &app.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("patch status"))?;
    Ok(())
}

/// Whether condition `type_` is True.
pub fn condition_true(status: &HighlyAvailableAppStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
