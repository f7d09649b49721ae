//! Apply: the rendered children, each server-side applied when wanted and pruned when not,
//! against the watch caches, so an unchanged child costs no request.

use std::fmt::Debug;

use kube::api::Api;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use crate::Result;
use crate::api::HighlyAvailableApp;
use crate::apply::{Outcome, apply_one, prune_one};
use crate::render::Children;
use crate::validate::ValidatedApp;

use super::secrets::Lookup;
use super::{Context, events};

/// Applies every child of `children`, then one Event for what changed.
pub async fn apply(
    ctx: &Context,
    app: &HighlyAvailableApp,
    validated: &ValidatedApp,
    children: &Children,
) -> Result<()> {
    let c = &ctx.caches;
    let client = &ctx.client;
    let ns = validated.owner.namespace.as_str();
    let uid = validated.owner.uid.as_str();
    let name = app.name_any();
    // The Secret's name when the app has none: pruning looks for a Secret of that name.
    let secret_name = validated
        .names
        .connection_secret
        .clone()
        .unwrap_or_else(|| crate::names::connection_secret_name(&name));
    let steps = [
        (
            "Secret",
            secret_name.as_str(),
            sync(
                client,
                ns,
                uid,
                &secret_name,
                children.secret.as_ref(),
                &c.secrets,
            )
            .await?,
        ),
        (
            "Deployment",
            name.as_str(),
            sync(
                client,
                ns,
                uid,
                &name,
                Some(&children.deployment),
                &c.deployments,
            )
            .await?,
        ),
        (
            "Service",
            name.as_str(),
            sync(client, ns, uid, &name, Some(&children.service), &c.services).await?,
        ),
        (
            "PodDisruptionBudget",
            name.as_str(),
            sync(client, ns, uid, &name, Some(&children.pdb), &c.pdbs).await?,
        ),
        (
            "HorizontalPodAutoscaler",
            name.as_str(),
            sync(client, ns, uid, &name, children.hpa.as_ref(), &c.hpas).await?,
        ),
        (
            "Ingress",
            name.as_str(),
            sync(
                client,
                ns,
                uid,
                &name,
                children.ingress.as_ref(),
                &c.ingresses,
            )
            .await?,
        ),
    ];
    let changes: Vec<(&str, &str, Outcome)> = steps
        .into_iter()
        .filter(|(_, _, outcome)| outcome.wrote())
        .inspect(|(kind, name, outcome)| {
            info!(app = %name, namespace = ns, kind, ?outcome, "applied child");
        })
        .collect();
    if let Some((reason, note)) = events::applied_event(&changes) {
        events::publish(ctx, app, EventType::Normal, reason, "Apply", note).await;
    }
    Ok(())
}

/// Brings one child kind in line: apply when wanted, prune when not.
async fn sync<K>(
    client: &Client,
    ns: &str,
    uid: &str,
    name: &str,
    desired: Option<&K>,
    store: &impl Lookup<K>,
) -> Result<Outcome>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let observed = store.lookup(&ObjectRef::new(name).within(ns));
    match desired {
        Some(desired) => apply_one(&api, desired, observed.as_deref(), uid).await,
        None => prune_one(&api, observed.as_deref(), uid).await,
    }
}
