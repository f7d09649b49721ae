//! Fixtures shared by the unit tests, the emulator tests and the end-to-end suite: the sample
//! apps, and a JSON merge patch applier (RFC 7386) for fake API servers and spec variants.

use serde_json::Value;

/// Applies `patch` to `target` as a JSON merge patch: objects merge key by key, `null` removes
/// a key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
pub(crate) use samples::*;

/// The owner of app `namespace/name` with uid `uid-1` (unit tests).
#[cfg(test)]
pub(crate) fn owner(namespace: &str, name: &str) -> crate::meta::Owner {
    crate::meta::Owner {
        name: name.into(),
        namespace: namespace.into(),
        uid: "uid-1".into(),
    }
}

/// The sample apps, parsed and validated (unit tests only).
#[cfg(test)]
mod samples {
    use crate::api::HighlyAvailableApp;
    use crate::validate::{ValidatedApp, owner_of, validate};

    pub const FULL: &str = include_str!("../../config/samples/full.yaml");
    pub const SMALL: &str = include_str!("../../config/samples/small.yaml");
    pub const DNS: &str = include_str!("../../config/samples/dns.yaml");

    pub fn app(yaml: &str) -> HighlyAvailableApp {
        serde_saphyr::from_str(yaml).expect("fixture parses")
    }

    pub fn validated(yaml: &str) -> ValidatedApp {
        let app = app(yaml);
        let owner = owner_of(&app, "default", Some("uid-1")).expect("owner");
        validate(&app, owner).expect("fixture validates")
    }

    /// Validated for an operator in `region` (the default DNS set identifier).
    pub fn validated_in(yaml: &str, region: &str) -> ValidatedApp {
        let app = app(yaml);
        let owner = owner_of(&app, "default", Some("uid-1")).expect("owner");
        crate::validate::validate_in(&app, owner, Some(region)).expect("fixture validates")
    }
}
