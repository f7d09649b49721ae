//! One place for the names halo stamps on everything it manages: labels, field manager,
//! annotations, owner references.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Field manager for every server-side apply halo makes.
pub const FIELD_MANAGER: &str = "halo";
/// `app.kubernetes.io/managed-by` value.
pub const MANAGED_BY: &str = "halo";
/// Label whose value is the owning app's name; the pod selector and the prune selector use it.
pub const APP_LABEL: &str = "halo.dev/app";
/// Hash of the desired object halo last applied; a change means halo must apply again.
pub const DESIRED_HASH_ANNOTATION: &str = "halo.dev/desired-hash";
/// Pod template annotation: hash of the connection Secret's data, so new endpoints roll the pods.
pub const CONNECTION_CHECKSUM_ANNOTATION: &str = "halo.dev/connection-checksum";
/// App annotation: comma-separated identities of stores (as the `Missing`/`Replaced` condition
/// messages quote them) that halo may forget: it creates a new, empty store in place of one that
/// is gone, or takes on the one that replaced it. Inert once the new store's identity is recorded.
pub const ACCEPT_STORE_ANNOTATION: &str = "halo.dev/accept-store";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Node label that names a node's Availability Zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Node label that names the node.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Labels that select the app's pods. Never changes for an app: a Deployment selector is immutable.
pub fn selector_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_string(), app.to_string())])
}

/// The label selector string, as it appears in `status.selector`.
pub fn selector_string(app: &str) -> String {
    format!("{APP_LABEL}={app}")
}

/// Labels every object halo creates carries.
pub fn common_labels(app: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(app);
    labels.insert(LABEL_NAME.into(), app.into());
    labels.insert(LABEL_INSTANCE.into(), app.into());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    labels
}

/// Label selector for listing the children of one app (prune).
pub fn children_selector(app: &str) -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{APP_LABEL}={app}")
}

/// Identity of the owning app, as render needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "halo.dev/v1alpha1".into(),
            kind: "HighlyAvailableApp".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Metadata of a child object: same name and namespace as the app, the common labels, the
    /// controller owner reference.
    pub fn child_meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            labels: Some(common_labels(&self.name)),
            owner_references: Some(vec![self.owner_reference()]),
            ..ObjectMeta::default()
        }
    }
}
