//! The policy every AWS service shares, decided in one place: which resources are halo's
//! (ownership tags), what adoption may take over, how AWS's status words read as condition
//! reasons, and what a deletion policy does.

use crate::api::data::DeletionPolicy;
use crate::meta::{MANAGED_BY, Owner};
use crate::{Error, Result};

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

/// Who owns a resource, from its tags as key/value pairs.
pub fn ownership_of(owner: &Owner, tags: &[(String, String)]) -> Ownership {
    ownership(owner, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Whether the app may act on the resource it found under its identifier: its own, or an
/// untagged one the spec adopts. Anything else belongs to someone else.
pub fn claim(
    kind: &str,
    field: &'static str,
    id: &str,
    owner: &Owner,
    tags: &[(String, String)],
    adopted: bool,
) -> Result<()> {
    match ownership_of(owner, tags) {
        Ownership::Ours => Ok(()),
        Ownership::Untagged if adopted => Ok(()),
        _ => Err(Error::AwsNotOwned {
            kind: kind.into(),
            id: id.into(),
            field,
        }),
    }
}

/// halo's tags a resource lacks, and the Event adding them makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRepair {
    pub missing: Vec<(String, String)>,
    pub change: Change,
}

/// The tags of `want` missing from `have`: "Adopted" when the resource carries none of
/// halo's ownership yet, else "Updated" (halo's tags restored). `None` when none is missing.
pub fn tag_repair(
    kind: &str,
    id: &str,
    owner: &Owner,
    want: &[(String, String)],
    have: &[(String, String)],
) -> Option<TagRepair> {
    let missing: Vec<(String, String)> =
        want.iter().filter(|t| !have.contains(t)).cloned().collect();
    if missing.is_empty() {
        return None;
    }
    let change = if ownership_of(owner, have) == Ownership::Untagged {
        Change::new("Adopted", format!("{kind} {id}: adopted and tagged"))
    } else {
        Change::new("Updated", format!("{kind} {id}: restored halo's tags"))
    };
    Some(TagRepair { missing, change })
}

/// The resource `spec.<field>` adopts does not exist.
pub fn adopt_target_missing(field: &str, message: String) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message,
    }
}

/// The deletion policy cleanup carries out: an adopted resource is deleted only when the
/// spec says `Delete`, and kept otherwise.
pub fn cleanup_policy(adopted: bool, policy: DeletionPolicy) -> DeletionPolicy {
    if adopted && policy != DeletionPolicy::Delete {
        DeletionPolicy::Retain
    } else {
        policy
    }
}

/// The reports of a cleanup, worded the same for every service.
pub mod cleaned {
    use super::{Change, CleanupReport, reasons};

    fn done(message: String, changes: Vec<Change>) -> CleanupReport {
        CleanupReport {
            done: true,
            message,
            changes,
        }
    }

    /// Nothing of that name exists (any more).
    pub fn gone(kind: &str, id: &str) -> CleanupReport {
        done(format!("{kind} {id} is gone"), vec![])
    }

    /// AWS is deleting it already, which it cannot undo.
    pub fn already_deleting(kind: &str, id: &str) -> CleanupReport {
        done(format!("{kind} {id} is deleting"), vec![])
    }

    /// Not tagged for this app: never touched.
    pub fn left_alone(kind: &str, id: &str) -> CleanupReport {
        done(
            format!("{kind} {id} is not tagged for this app: left alone"),
            vec![],
        )
    }

    /// Not the store the status recorded (replaced outside halo): never touched.
    pub fn replaced(kind: &str, id: &str) -> CleanupReport {
        done(
            format!(
                "{kind} {id} is not the one this app recorded (replaced outside halo): left alone"
            ),
            vec![],
        )
    }

    /// Kept, with halo's tags removed.
    pub fn retained(kind: &str, id: &str) -> CleanupReport {
        let message = format!("{kind} {id} retained; halo's tags removed");
        done(
            message.clone(),
            vec![Change::new(reasons::RETAINED, message)],
        )
    }

    /// The delete was sent, after a final snapshot when one is named; `changes` are what
    /// happened before it.
    pub fn deleting(
        kind: &str,
        id: &str,
        final_snapshot: Option<&str>,
        changes: Vec<Change>,
    ) -> CleanupReport {
        let message = match final_snapshot {
            Some(snapshot) => format!("{kind} {id} deleting after final snapshot {snapshot}"),
            None => format!("{kind} {id} deleting, without a final snapshot"),
        };
        deleted(message, changes)
    }

    /// The delete went through: `message` says how; `changes` are what happened before it.
    pub fn deleted(message: String, mut changes: Vec<Change>) -> CleanupReport {
        changes.push(Change::new(reasons::DELETING, message.clone()));
        done(message, changes)
    }
}

/// The identity of a store (Aurora cluster, replication group) the status recorded: halo made
/// or took it on and has seen it since. `None` in the desired state when nothing is recorded
/// yet, or when the user accepted a new store in its place ([`crate::meta::ACCEPT_STORE_ANNOTATION`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedStore {
    /// The identifier it had (its name in messages).
    pub id: String,
    /// What tells it apart from a store created again under the same identifier: the RDS
    /// `DbClusterResourceId`, the replication group's creation time.
    pub identity: String,
}

impl RecordedStore {
    /// The recorded identity, unless the user accepted a new store in its place.
    pub fn unless_accepted(id: &str, identity: &str, accepted: &[String]) -> Option<Self> {
        (!identity.is_empty() && !accepted.iter().any(|a| a == identity)).then(|| RecordedStore {
            id: id.to_string(),
            identity: identity.to_string(),
        })
    }
}

/// What halo may do with the store it found (`found`: its identity, empty when AWS did not
/// report one) given the one the status recorded. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreCheck {
    /// Nothing found and nothing recorded: create it.
    Create,
    /// Found, and it is the recorded one (or nothing was recorded): use and correct it.
    Use,
    /// The recorded store is gone: never create an empty one in its place.
    Missing,
    /// Another store has the identifier: never touch it.
    Replaced,
}

pub fn check_store(recorded: Option<&RecordedStore>, found: Option<&str>) -> StoreCheck {
    match (recorded, found) {
        (None, None) => StoreCheck::Create,
        (Some(_), None) => StoreCheck::Missing,
        (Some(r), Some(now)) if !now.is_empty() && now != r.identity => StoreCheck::Replaced,
        (_, Some(_)) => StoreCheck::Use,
    }
}

/// The error of a store that is gone: the condition says why halo does not recreate it and
/// what the user can do.
pub fn store_missing(kind: &str, field: &str, r: &RecordedStore, app: &Owner) -> Error {
    Error::StoreIdentity {
        replaced: false,
        message: format!(
            "{kind} {} ({}) that this app recorded is gone: deleted outside halo, or being restored. halo does not create an empty one in its place. Restore it under the identifier {}; or, to have halo create a new, empty {field}, run: kubectl annotate highlyavailableapp -n {} {} {}={}",
            r.id,
            r.identity,
            r.id,
            app.namespace,
            app.name,
            crate::meta::ACCEPT_STORE_ANNOTATION,
            r.identity
        ),
    }
}

/// The error of a store replaced under the recorded identifier (`now`: the new one's identity).
pub fn store_replaced(kind: &str, id: &str, now: &str, r: &RecordedStore, app: &Owner) -> Error {
    Error::StoreIdentity {
        replaced: true,
        message: format!(
            "{kind} {id} is not the one this app recorded ({now}, recorded {}): it was replaced outside halo, e.g. restored from a snapshot. halo leaves it untouched; to take it on as the app's own, run: kubectl annotate highlyavailableapp -n {} {} {}={}",
            r.identity,
            app.namespace,
            app.name,
            crate::meta::ACCEPT_STORE_ANNOTATION,
            r.identity
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::owner;

    /// Recorded and gone: never create; recorded and another identity: never touch; the
    /// annotation naming the recorded identity lets halo create or take on the new one.
    #[test]
    fn a_recorded_store_is_never_recreated_or_touched_unless_accepted() {
        let recorded = RecordedStore::unless_accepted("shop-web", "cluster-OLD", &[]);
        let r = recorded.as_ref();
        assert_eq!(check_store(r, None), StoreCheck::Missing);
        assert_eq!(check_store(r, Some("cluster-NEW")), StoreCheck::Replaced);
        assert_eq!(check_store(r, Some("cluster-OLD")), StoreCheck::Use);
        // An identity AWS does not report cannot be judged: as before.
        assert_eq!(check_store(r, Some("")), StoreCheck::Use);
        assert_eq!(check_store(None, None), StoreCheck::Create);
        assert_eq!(check_store(None, Some("cluster-NEW")), StoreCheck::Use);

        let accepted = vec!["other".to_string(), "cluster-OLD".to_string()];
        let r = RecordedStore::unless_accepted("shop-web", "cluster-OLD", &accepted);
        assert_eq!(r, None);
        assert_eq!(check_store(r.as_ref(), None), StoreCheck::Create);
        assert_eq!(
            check_store(r.as_ref(), Some("cluster-NEW")),
            StoreCheck::Use
        );
        // Nothing recorded (a status from before halo recorded identities): as before.
        assert_eq!(RecordedStore::unless_accepted("shop-web", "", &[]), None);

        let app = owner("shop", "web");
        let r = RecordedStore::unless_accepted("shop-web", "cluster-OLD", &[]).expect("recorded");
        let e = store_missing("Aurora cluster", "cluster", &r, &app);
        assert_eq!(e.metric_label(), reasons::MISSING);
        assert!(
            e.to_string().contains(
                "kubectl annotate highlyavailableapp -n shop web halo.dev/accept-store=cluster-OLD"
            ),
            "{e}"
        );
        let e = store_replaced("Aurora cluster", "shop-web", "cluster-NEW", &r, &app);
        assert_eq!(e.metric_label(), reasons::REPLACED);
        assert!(
            e.to_string().contains("halo.dev/accept-store=cluster-OLD"),
            "{e}"
        );
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

    /// Ours, or untagged when adopting: the app may act. Another app's, or untagged without
    /// adoption: refused, naming the section.
    #[test]
    fn claim_needs_our_uid_or_adoption() {
        let o = owner("shop", "web");
        let ours = ownership_tags(&o);
        let theirs = ownership_tags(&Owner {
            uid: "uid-2".into(),
            ..owner("shop", "web")
        });
        let untagged = vec![("team".to_string(), "billing".to_string())];
        assert!(claim("Aurora cluster", "database", "c1", &o, &ours, false).is_ok());
        assert!(claim("Aurora cluster", "database", "c1", &o, &untagged, true).is_ok());
        for (tags, adopted) in [(&theirs, true), (&theirs, false), (&untagged, false)] {
            let err =
                claim("Aurora cluster", "database", "c1", &o, tags, adopted).expect_err("refused");
            assert_eq!(
                err.to_string(),
                "Aurora cluster c1 exists and is not owned by this HighlyAvailableApp; adopt it with spec.database.adopt, or delete or rename it"
            );
        }
    }

    /// Missing tags are added with one Event: "Adopted" the first time, "Updated" after.
    #[test]
    fn tag_repair_says_adopted_or_restored() {
        let o = owner("shop", "web");
        let want = ownership_tags(&o);
        assert_eq!(tag_repair("Aurora cluster", "c1", &o, &want, &want), None);
        let adopted = tag_repair("Aurora cluster", "c1", &o, &want, &[]).expect("repair");
        assert_eq!(adopted.missing, want);
        assert_eq!(
            adopted.change,
            Change::new("Adopted", "Aurora cluster c1: adopted and tagged")
        );
        let restored = tag_repair("Aurora cluster", "c1", &o, &want, &want[2..]).expect("repair");
        assert_eq!(restored.missing, want[..2].to_vec());
        assert_eq!(
            restored.change,
            Change::new("Updated", "Aurora cluster c1: restored halo's tags")
        );
    }

    /// An adopted resource is deleted only on an explicit Delete.
    #[test]
    fn adopted_resources_are_kept_unless_delete() {
        use DeletionPolicy::*;
        assert_eq!(cleanup_policy(true, Snapshot), Retain);
        assert_eq!(cleanup_policy(true, Retain), Retain);
        assert_eq!(cleanup_policy(true, Delete), Delete);
        assert_eq!(cleanup_policy(false, Snapshot), Snapshot);
    }
}
