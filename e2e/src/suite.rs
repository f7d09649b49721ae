//! What the scenarios of `tests/cluster` share: the operator they run against, creating an
//! app and waiting for its conditions, spread and deletion, and the checks of its children.

use std::collections::BTreeMap;
use std::time::Duration;

use halo::api::HighlyAvailableApp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{
    ZONES, client, condition, kubectl, operator, ready_pods_per_zone, sample_app, state_dir,
    wait_for,
};

/// How long a scenario waits for the app to converge.
pub const CONVERGE: Duration = Duration::from_secs(120);

fn marker() -> std::path::PathBuf {
    state_dir().join("pids/halo.suite")
}

/// Makes sure the operator under test is one the suite started (known resync period, fresh log).
pub async fn setup() -> anyhow::Result<Client> {
    let ours = std::fs::read_to_string(marker())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let running = operator::pid().filter(|p| operator::alive(*p));
    if ours.is_none() || ours != running {
        let pid = operator::restart().await?;
        record_suite_operator(pid)?;
    }
    client().await
}

/// Records `pid` as the operator the suite started, so [`setup`] keeps it.
pub fn record_suite_operator(pid: i32) -> anyhow::Result<()> {
    std::fs::write(marker(), format!("{pid}\n"))?;
    Ok(())
}

/// Fails unless the AWS emulator's endpoint is set.
pub fn require_emulator() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the suite through scripts/test, or `eval \"$(e2e/moto env)\"` after `e2e/moto start`"
    );
    Ok(())
}

/// The small sample as `web` in `ns`, with every child halo makes (an Ingress and an HPA too).
pub fn web_with_every_child(ns: &str) -> anyhow::Result<HighlyAvailableApp> {
    sample_app(
        "web",
        ns,
        json!({"spec": {"ingress": {"host": "web.example.com"}, "resources": {"requests": {"cpu": "100m"}}, "autoscaling": {"minReplicas": 3, "maxReplicas": 6}}}),
    )
}

pub async fn create_app(
    client: &Client,
    app: &HighlyAvailableApp,
) -> anyhow::Result<HighlyAvailableApp> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns);
    Ok(api.create(&PostParams::default(), app).await?)
}

/// Waits until the app's status describes its current generation and `type_` has `status`.
pub async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<HighlyAvailableApp> {
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("{ns}/{name} {type_}={status}"), timeout, || {
        let api = api.clone();
        async move {
            let app = api.get(name).await?;
            let current =
                app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation;
            Ok((current && condition(&app, type_).is_some_and(|c| c.0 == status)).then_some(app))
        }
    })
    .await
}

/// Waits until the app's ready pods per zone (in [`ZONES`] order, 0 for none) are `want`.
pub async fn wait_spread(
    client: &Client,
    ns: &str,
    name: &str,
    want: &[i32],
) -> anyhow::Result<BTreeMap<String, i32>> {
    let want: BTreeMap<String, i32> = ZONES
        .iter()
        .zip(want)
        .filter(|(_, n)| **n > 0)
        .map(|(z, n)| (z.to_string(), *n))
        .collect();
    wait_for(
        &format!("{ns}/{name} ready pods per zone {want:?}"),
        CONVERGE,
        || {
            let want = want.clone();
            async move {
                let got = ready_pods_per_zone(client, ns, name).await?;
                Ok((got == want).then_some(got))
            }
        },
    )
    .await
}

/// Waits until the app `name` is gone (its finalizer released); `what` names the wait.
pub async fn wait_deleted(
    apps: &Api<HighlyAvailableApp>,
    name: &str,
    what: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for(what, timeout, || {
        let (apps, name) = (apps.clone(), name.to_string());
        async move { Ok(apps.get_opt(&name).await?.is_none().then_some(())) }
    })
    .await
}

/// The object of kind `K` named `name` in namespace `ns`.
pub async fn get<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<K>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns).get(name).await?)
}

/// The objects of kind `K` in namespace `ns` that `params` selects.
pub async fn list<K>(client: &Client, ns: &str, params: &ListParams) -> anyhow::Result<Vec<K>>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(params)
        .await?
        .items)
}

pub fn owned_by(obj: &impl Resource, app: &HighlyAvailableApp) -> bool {
    obj.meta().owner_references.iter().flatten().any(|r| {
        Some(&r.uid) == app.metadata.uid.as_ref()
            && r.controller == Some(true)
            && r.kind == "HighlyAvailableApp"
    })
}

pub fn has_common_labels(obj: &impl Resource, name: &str) -> bool {
    let labels = obj.meta().labels.clone().unwrap_or_default();
    labels
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("halo")
        && labels.get("app.kubernetes.io/instance").map(String::as_str) == Some(name)
        && labels.get("halo.dev/app").map(String::as_str) == Some(name)
}

/// Plays the AWS Load Balancer Controller: publishes `hostname` as the ALB of Ingress `name`.
pub async fn publish_alb_hostname(ns: &str, name: &str, hostname: &str) -> anyhow::Result<String> {
    kubectl(&[
        "-n",
        ns,
        "patch",
        "ingress",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &json!({"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}).to_string(),
    ])
    .await
}

/// Plays the platform team: applies the TenancyPolicy `name` with these rules (JSON), as the
/// cluster admin (tenants cannot write cluster-scoped objects).
pub async fn apply_tenancy_policy(
    client: &Client,
    name: &str,
    rules: serde_json::Value,
) -> anyhow::Result<()> {
    let api: Api<halo::tenancy::TenancyPolicy> = Api::all(client.clone());
    let body = json!({
        "apiVersion": "halo.dev/v1alpha1",
        "kind": "TenancyPolicy",
        "metadata": {"name": name},
        "spec": {"rules": rules},
    });
    api.patch(
        name,
        &kube::api::PatchParams::apply("halo-e2e").force(),
        &kube::api::Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Grants namespace `ns` Route 53 records in the zone (by id and by name) under its name.
pub async fn grant_dns(client: &Client, ns: &str, zone_id: &str, zone: &str) -> anyhow::Result<()> {
    apply_tenancy_policy(
        client,
        &format!("e2e-{ns}"),
        json!([{"name": "dns", "namespaces": [ns],
                "dns": {"hostedZoneIds": [zone_id], "zoneNames": [zone], "recordNameSuffixes": [zone]}}]),
    )
    .await
}

/// Deletes the TenancyPolicy `name` (absent already is fine).
pub async fn delete_tenancy_policy(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<halo::tenancy::TenancyPolicy> = Api::all(client.clone());
    match api.delete(name, &kube::api::DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Waits until condition `type_` of the app has `reason` (for the current generation).
pub async fn wait_reason(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> anyhow::Result<HighlyAvailableApp> {
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("{ns}/{name} {type_} reason {reason}"),
        CONVERGE,
        || {
            let api = api.clone();
            async move {
                let app = api.get(name).await?;
                let current = app.status.as_ref().and_then(|s| s.observed_generation)
                    == app.metadata.generation;
                Ok(
                    (current && condition(&app, type_).is_some_and(|c| c.1 == reason))
                        .then_some(app),
                )
            }
        },
    )
    .await
}
