//! The `halo.dev/cleanup` finalizer: an app with AWS resources leaves Kubernetes only after AWS
//! confirmed their fate. It goes on before anything is created in AWS, so nothing is orphaned.

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::api::HighlyAvailableApp;
use crate::meta::FIELD_MANAGER;
use crate::{Error, Result};

/// Guards the AWS resources: the app leaves Kubernetes only after AWS confirmed their fate.
pub const FINALIZER: &str = "halo.dev/cleanup";

pub fn has_finalizer(app: &HighlyAvailableApp) -> bool {
    app.finalizers().iter().any(|f| f == FINALIZER)
}

/// Sets `metadata.finalizers` to `finalizers`, failing on a concurrent change (resourceVersion).
async fn set_finalizers(
    client: &kube::Client,
    app: &HighlyAvailableApp,
    finalizers: Vec<String>,
) -> Result<()> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns);
    let mut metadata = json!({ "finalizers": finalizers });
    if let Some(rv) = app.resource_version() {
        metadata["resourceVersion"] = json!(rv);
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(
        &app.name_any(),
        &params,
        &Patch::Merge(&json!({ "metadata": metadata })),
    )
    .await
    .map_err(Error::kube("update finalizers"))?;
    Ok(())
}

/// Adds the finalizer unless present (no request then).
pub async fn add(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    if has_finalizer(app) {
        return Ok(());
    }
    let mut finalizers = app.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    set_finalizers(client, app, finalizers).await
}

pub async fn remove(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    let finalizers: Vec<String> = app
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(client, app, finalizers).await
}
