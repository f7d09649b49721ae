//! The policy every AWS service shares, decided in one place: which resources are halo's
//! (ownership tags), what adoption may take over, how AWS's status words read as condition
//! reasons, and what a deletion policy does.

use crate::meta::{MANAGED_BY, Owner};

use super::{Change, reasons};

/// Tag naming the owning app's namespace.
pub const TAG_NAMESPACE: &str = "halo.dev/namespace";
/// Tag naming the owning app.
pub const TAG_NAME: &str = "halo.dev/name";
/// Tag holding the owning app's uid: the proof that a resource is ours.
pub const TAG_UID: &str = "halo.dev/uid";
/// Tag marking a resource as managed by halo.
pub const TAG_MANAGED_BY: &str = "halo.dev/managed-by";

/// Every tag key halo sets; `Retain` removes exactly these.
pub const OWNERSHIP_TAG_KEYS: [&str; 4] = [TAG_NAMESPACE, TAG_NAME, TAG_UID, TAG_MANAGED_BY];

/// The condition reason for an AWS status string (RDS and ElastiCache use the same words).
pub fn reason_for_status(status: &str) -> &'static str {
    match status {
        "available" => reasons::AVAILABLE,
        "creating" | "backing-up" => reasons::CREATING,
        "failing-over" => reasons::FAILING_OVER,
        "deleting" => reasons::DELETING,
        "modifying"
        | "upgrading"
        | "renaming"
        | "resetting-master-credentials"
        | "maintenance"
        | "migrating"
        | "snapshotting"
        | "configuring-enhanced-monitoring"
        | "rebooting"
        | "storage-optimization"
        | "promoting"
        | "starting" => reasons::MODIFYING,
        _ => reasons::UNAVAILABLE,
    }
}

/// Whether AWS is working on a resource in this status and will change it soon by itself.
pub fn is_transitional(status: &str) -> bool {
    matches!(
        reason_for_status(status),
        reasons::CREATING | reasons::MODIFYING | reasons::FAILING_OVER | reasons::DELETING
    )
}

/// What cleanup achieved on one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupReport {
    /// AWS confirmed: the resource is gone, deleting (which AWS cannot undo), or retained
    /// without halo's tags. The finalizer may go once every resource is done.
    pub done: bool,
    pub message: String,
    pub changes: Vec<Change>,
}

/// The tags halo puts on every AWS resource it creates or adopts, in a stable order.
pub fn ownership_tags(owner: &Owner) -> Vec<(String, String)> {
    vec![
        (TAG_NAMESPACE.into(), owner.namespace.clone()),
        (TAG_NAME.into(), owner.name.clone()),
        (TAG_UID.into(), owner.uid.clone()),
        (TAG_MANAGED_BY.into(), MANAGED_BY.into()),
    ]
}

/// Who a resource belongs to, judged by its tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged with this app's uid.
    Ours,
    /// No halo tags: nobody's, or someone else's; halo only touches it when adopting.
    Untagged,
    /// Tagged by halo for a different app (another uid).
    Foreign,
}

/// Judges ownership from a resource's tags.
pub fn ownership<'a>(
    owner: &Owner,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Ownership {
    let mut uid = None;
    let mut managed = false;
    for (k, v) in tags {
        if k == TAG_UID {
            uid = Some(v);
        }
        if k == TAG_MANAGED_BY && v == MANAGED_BY {
            managed = true;
        }
    }
    match uid {
        Some(u) if u == owner.uid => Ownership::Ours,
        Some(_) => Ownership::Foreign,
        None if managed => Ownership::Foreign,
        None => Ownership::Untagged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(namespace: &str, name: &str) -> Owner {
        Owner {
            name: name.into(),
            namespace: namespace.into(),
            uid: "uid-1".into(),
        }
    }

    /// Only a resource carrying this app's uid is ours.
    #[test]
    fn ownership_follows_the_uid_tag() {
        let o = owner("shop", "web");
        let tags = ownership_tags(&o);
        let as_refs = |t: &[(String, String)]| {
            t.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        let ours = as_refs(&tags);
        assert_eq!(
            ownership(&o, ours.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            Ownership::Ours
        );
        let other = owner("shop", "web2");
        let other = Owner {
            uid: "uid-2".into(),
            ..other
        };
        assert_eq!(
            ownership(&other, ours.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            Ownership::Foreign
        );
        assert_eq!(ownership(&o, [("team", "payments")]), Ownership::Untagged);
        assert_eq!(
            tags[..2],
            [
                ("halo.dev/namespace".to_string(), "shop".to_string()),
                ("halo.dev/name".to_string(), "web".to_string())
            ]
        );
    }
}
