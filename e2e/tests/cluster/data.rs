//! The data sample: Aurora and ElastiCache against the AWS emulator (s5).

use std::time::Duration;

use halo::api::HighlyAvailableApp;
use halo_e2e::suite::{create_app, require_emulator, setup, wait_condition, wait_deleted};
use halo_e2e::{TestNamespace, sample};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

/// s05: The data sample (Aurora + ElastiCache against the AWS emulator) converges to Ready, the
/// pods get the connection Secret through envFrom, and deleting the app completes once AWS
/// confirms the cleanup (the final snapshot is checked by the emulator tests).
pub async fn s05_data_sample_converges_against_the_emulator() -> anyhow::Result<()> {
    require_emulator()?;
    let client = setup().await?;
    let ns = TestNamespace::create(&client, "e2e-data").await?;
    let app = sample("data.yaml", &json!({"metadata": {"namespace": ns.name}}))?;
    let name = app.name_any();
    create_app(&client, &app).await?;
    for type_ in ["DatabaseReady", "CacheReady", "ComputeReady", "Ready"] {
        wait_condition(
            &client,
            &ns.name,
            &name,
            type_,
            "True",
            Duration::from_secs(180),
        )
        .await?;
    }
    let secret_name = format!("{name}-connection");
    let secret = Api::<Secret>::namespaced(client.clone(), &ns.name)
        .get(&secret_name)
        .await?;
    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
    for key in [
        "DATABASE_HOST",
        "DATABASE_READER_HOST",
        "DATABASE_PORT",
        "DATABASE_NAME",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_TLS",
    ] {
        anyhow::ensure!(
            keys.iter().any(|k| k == key),
            "{key} missing from {secret_name}: {keys:?}"
        );
    }
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&name)
        .await?;
    let env_from = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].env_from.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        env_from
            .iter()
            .any(|e| e.secret_ref.as_ref().map(|r| r.name.as_str()) == Some(secret_name.as_str())),
        "the Deployment must load {secret_name} through envFrom: {env_from:?}"
    );
    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns.name);
    apps.delete(&name, &DeleteParams::default()).await?;
    wait_deleted(
        &apps,
        &name,
        "the app to be deleted after its AWS cleanup",
        Duration::from_secs(180),
    )
    .await?;
    ns.cleanup().await
}
