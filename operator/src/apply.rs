//! `apply`: server-side apply of what render wants, prune of what it no longer wants, and
//! nothing at all when the cluster already holds it.
//!
//! "Already holds it" means both: the object carries the hash of the desired object halo last
//! applied (so a field halo stopped setting is noticed), and every field halo sets has the
//! same value in the observed object (so someone else's edit is noticed and undone).

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::meta::{DESIRED_HASH_ANNOTATION, FIELD_MANAGER};
use crate::{Error, Result};

/// What one apply step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Created,
    Updated,
    Pruned,
    Absent,
}

impl Outcome {
    pub fn wrote(self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated | Outcome::Pruned)
    }
}

/// Hash of the desired object as halo would send it (before the hash annotation is added).
pub fn desired_hash(desired: &Value) -> String {
    let digest = Sha256::digest(desired.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Stamps the hash annotation on a desired object's JSON.
pub fn with_hash(mut desired: Value) -> Value {
    let hash = desired_hash(&desired);
    if let Some(meta) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(DESIRED_HASH_ANNOTATION.into(), Value::String(hash));
        }
    }
    desired
}

/// Whether applying `desired` (with its hash stamped) would change `observed`.
pub fn needs_apply(desired: &Value, observed: &Value) -> bool {
    !is_subset(desired, observed)
}

/// Every value set in `desired` is present and equal in `observed`. Lists must match element
/// by element; `null` and empty lists/maps in `desired` match an absent field; Kubernetes
/// quantities compare by value (`0.5` == `500m`), since the API server canonicalises them.
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Null, _) => true,
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, dv)| match o.get(k) {
            Some(ov) => is_subset(dv, ov),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(dv, ov)| is_subset(dv, ov))
        }
        (Value::Number(d), Value::Number(o)) => d.as_f64() == o.as_f64(),
        (Value::String(d), Value::String(o)) => d == o || quantity_eq(d, o),
        (d, Value::Null) => is_empty(d),
        (d, o) => d == o,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Parses a Kubernetes quantity (`250m`, `1Gi`, `0.5`, `1e3`) into a number.
pub fn parse_quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let q = q.trim();
    if q.is_empty()
        || !q.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '+' || c == '-')
    {
        return None;
    }
    for (suffix, factor) in SUFFIXES {
        if let Some(num) = q.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    if let Some(num) = q.strip_suffix('E') {
        return num.parse::<f64>().ok().map(|n| n * 1e18);
    }
    q.parse::<f64>().ok()
}

fn quantity_eq(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// Whether `obj` names `uid` as its controlling owner.
pub fn controlled_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

/// Applies `desired` unless `observed` already matches it; refuses to take over an object
/// that another controller owns.
pub async fn apply_one<K>(
    api: &Api<K>,
    desired: &K,
    observed: Option<&K>,
    owner_uid: &str,
) -> Result<Outcome>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.name_any();
    let value = with_hash(serde_json::to_value(desired)?);
    // The caches only hold objects labelled as ours; before creating, make sure no foreign
    // object of that name exists, or server-side apply would silently take it over.
    let fetched;
    let observed = match observed {
        Some(o) => Some(o),
        None => {
            fetched = api
                .get_opt(&name)
                .await
                .map_err(Error::kube(format!("get {} {name}", K::kind(&()))))?;
            fetched.as_ref()
        }
    };
    if let Some(observed) = observed {
        if !controlled_by(observed, owner_uid) {
            return Err(Error::NotOwned {
                kind: K::kind(&()).into_owned(),
                name,
            });
        }
        if !needs_apply(&value, &serde_json::to_value(observed)?) {
            return Ok(Outcome::Unchanged);
        }
    }
    let mut value = value;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "apiVersion".into(),
            Value::String(K::api_version(&()).into_owned()),
        );
        obj.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&value))
        .await
        .map_err(Error::kube(format!("apply {} {name}", K::kind(&()))))?;
    Ok(if observed.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}

/// Deletes `observed` if this app controls it (render no longer wants it).
pub async fn prune_one<K>(api: &Api<K>, observed: Option<&K>, owner_uid: &str) -> Result<Outcome>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let Some(observed) = observed.filter(|o| controlled_by(*o, owner_uid)) else {
        return Ok(Outcome::Absent);
    };
    let name = observed.name_any();
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => Ok(Outcome::Pruned),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Outcome::Absent),
        Err(e) => Err(Error::kube(format!("prune {} {name}", K::kind(&())))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Defaults the API server adds do not count as a difference.
    #[test]
    fn server_defaults_are_not_drift() {
        let desired = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]}}}});
        let observed = json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10, "template": {"spec": {"dnsPolicy": "ClusterFirst", "containers": [{"name": "app", "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}});
        assert!(is_subset(&desired, &observed));
    }

    /// Someone else's edit of a field halo sets is drift, and halo applies again.
    #[test]
    fn edits_of_our_fields_are_drift() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(needs_apply(
            &desired,
            &json!({"spec": {"replicas": 5, "ports": [{"port": 80}]}})
        ));
        assert!(needs_apply(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(needs_apply(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
    }

    /// Quantities the API server rewrites compare by value.
    #[test]
    fn quantities_compare_by_value() {
        assert!(is_subset(&json!({"cpu": "0.5"}), &json!({"cpu": "500m"})));
        assert!(is_subset(
            &json!({"memory": "1024Mi"}),
            &json!({"memory": "1Gi"})
        ));
        assert!(!is_subset(
            &json!({"memory": "1000Mi"}),
            &json!({"memory": "1Gi"})
        ));
        assert!(!is_subset(&json!({"image": "a"}), &json!({"image": "b"})));
        assert_eq!(parse_quantity("250m"), Some(0.25));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("ALL"), None);
    }

    /// A field halo stopped setting changes the hash, so the object is applied again (SSA removes the field).
    #[test]
    fn removed_fields_change_the_hash() {
        let with = with_hash(json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}}));
        let without = with_hash(json!({"metadata": {"name": "web"}, "spec": {}}));
        // The cluster still holds replicas: 3 and the old hash.
        assert!(!needs_apply(&with, &with));
        assert!(needs_apply(&without, &with));
        assert_eq!(
            desired_hash(&json!({"a": 1})),
            desired_hash(&json!({"a": 1}))
        );
        assert_eq!(desired_hash(&json!({"a": 1})).len(), 16);
    }

    /// Empty lists and nulls in the desired object match fields the server omits.
    #[test]
    fn empty_desired_values_match_absent_fields() {
        assert!(is_subset(
            &json!({"env": [], "x": null, "m": {}}),
            &json!({})
        ));
        assert!(!is_subset(&json!({"env": [{"name": "A"}]}), &json!({})));
    }
}
