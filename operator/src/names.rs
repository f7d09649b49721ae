//! Deterministic names halo derives from an app: AWS identifiers and snapshot names. Pure;
//! resolved once per reconcile into [`crate::validate::Names`], so neither render nor status
//! computes a name of its own.

use sha2::{Digest, Sha256};

use crate::meta::Owner;

/// The final snapshot name of a resource: stable across retries of the same deletion, distinct
/// for a later app of the same name (the uid differs).
pub fn final_snapshot_id(resource_id: &str, owner: &Owner) -> String {
    let uid: String = owner
        .uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{resource_id}-final-{uid}")
}

/// A deterministic AWS identifier for the app, at most `max_len` characters of letters, digits
/// and single hyphens, starting with a letter. Injective in (namespace, name):
///
/// - `<namespace>-<name>` when neither holds a `-` (nor anything AWS refuses) and it fits, e.g.
///   `shop/web` -> `shop-web`: readable in the console, and one `-` splits it back.
/// - otherwise `<namespace>-<name>-<hash>`, both parts shortened to fit, the hash
///   ([`short_hash`]) over `namespace/name`, e.g. `a-b/c` -> `a-b-c-<hash>`,
///   `a/b-c` -> `a-b-c-<other hash>`. It has at least two `-`, so it never equals a plain one.
pub fn resource_id(owner: &Owner, max_len: usize) -> String {
    derive(&[&owner.namespace, &owner.name], max_len, &[])
}

/// Length of the hash in derived names: 8 hex digits (32 bits), so that even a tenant who
/// picks names to match another namespace's needs ~2^32 tries (and still gets only a name halo
/// refuses to use: it is tagged with another uid).
pub const HASH_LEN: usize = 8;

/// The name of `parts` (namespace, app, then e.g. a table): the parts joined with `-` when each
/// is plain (`[a-z0-9]+`, the first starting with a letter, no `reserved` prefix) and the join
/// fits `max_len`; else the parts cleaned to `[a-z0-9-]`, each shortened (the longest first) and
/// joined with `-`, then `-` and [`HASH_LEN`] hex digits of the parts joined with `/` (which no
/// Kubernetes name holds). A plain name of n parts has exactly n-1 `-`, a hashed one at least n
/// (every part keeps a character), so the two forms never meet; hashed ones differ by hash.
fn derive(parts: &[&str], max_len: usize, reserved: &[&str]) -> String {
    let is_plain = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    let plain = parts.join("-");
    if parts.iter().all(|p| is_plain(p))
        && plain.starts_with(|c: char| c.is_ascii_lowercase())
        && !reserved.iter().any(|r| plain.starts_with(r))
        && plain.len() <= max_len
    {
        return plain;
    }
    let hash = long_hash(&parts.join("/"));
    let mut cleaned: Vec<String> = parts.iter().map(|p| clean_part(p)).collect();
    let whole = cleaned.join("-");
    // `h` (which no reserved prefix starts with) in front of a digit or a reserved prefix.
    let prefix = if whole.starts_with(|c: char| c.is_ascii_lowercase())
        && !reserved.iter().any(|r| whole.starts_with(r))
    {
        ""
    } else {
        "h"
    };
    // Room for the parts: the limit less the hash, its `-`, the joining `-`s and the prefix.
    let room = max_len.saturating_sub(hash.len() + parts.len() + prefix.len());
    let mut lens: Vec<usize> = cleaned.iter().map(String::len).collect();
    while lens.iter().sum::<usize>() > room {
        let longest = lens.iter().copied().max().unwrap_or(0);
        if longest <= 1 {
            break;
        }
        if let Some(l) = lens.iter_mut().find(|l| **l == longest) {
            *l -= 1;
        }
    }
    for (part, len) in cleaned.iter_mut().zip(lens) {
        part.truncate(len);
        while part.ends_with('-') {
            part.pop();
        }
    }
    format!("{prefix}{}-{hash}", cleaned.join("-"))
}

/// A part of a hashed name: lowercase letters and digits, other characters as single `-`s,
/// never starting or ending with `-`, never empty.
fn clean_part(part: &str) -> String {
    let mut clean = String::with_capacity(part.len());
    for c in part.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    while clean.ends_with('-') {
        clean.pop();
    }
    if clean.is_empty() {
        clean.push('x');
    }
    clean
}

/// First [`HASH_LEN`] hex digits of the SHA-256 of `s`.
fn long_hash(s: &str) -> String {
    hex_prefix(s, HASH_LEN / 2)
}

/// First 6 hex digits of the SHA-256 of `s` (instance ids of adopted clusters, replica buckets).
pub fn short_hash(s: &str) -> String {
    hex_prefix(s, 3)
}

fn hex_prefix(s: &str, bytes: usize) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The names halo derived before they were collision-free (namespace and name joined with `-`,
/// hashed only when rewritten or too long). Frozen: existing resources carry them, and halo
/// still finds (never creates) a resource under them when it is tagged with the app's uid.
pub mod legacy {
    use super::{MAX_BUCKET, MAX_TABLE_PREFIX, Owner, short_hash};

    /// The identifier halo derived up to this version.
    pub fn resource_id(owner: &Owner, max_len: usize) -> String {
        let raw = format!("{}-{}", owner.namespace, owner.name);
        let mut clean = String::with_capacity(raw.len() + 1);
        for c in raw.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if c == '-' && (clean.is_empty() || clean.ends_with('-')) {
                continue;
            }
            clean.push(c);
        }
        if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
            clean.insert(0, 'h');
        }
        while clean.ends_with('-') {
            clean.pop();
        }
        if clean == raw && clean.len() <= max_len {
            return clean;
        }
        let hash = short_hash(&format!("{}/{}", owner.namespace, owner.name));
        let keep = max_len.saturating_sub(hash.len() + 1);
        let mut head: String = clean.chars().take(keep).collect();
        while head.ends_with('-') {
            head.pop();
        }
        format!("{head}-{hash}")
    }

    /// The table name halo derived up to this version.
    pub fn table_name(owner: &Owner, name: &str) -> String {
        format!("{}-{name}", resource_id(owner, MAX_TABLE_PREFIX))
    }

    /// The default bucket halo derived up to this version.
    pub fn default_bucket(owner: &Owner) -> String {
        format!(
            "{}-assets",
            resource_id(owner, MAX_BUCKET - "-assets".len())
        )
    }
}

/// `Some(legacy)` when it differs from `current`: the only case worth a second lookup.
pub fn differing(current: &str, legacy: String) -> Option<String> {
    (legacy != current).then_some(legacy)
}

/// Longest Aurora cluster identifier halo derives (RDS allows 63; instances append `-<n>`).
pub const MAX_CLUSTER_ID: usize = 60;
/// Longest ElastiCache replication group id (AWS allows 40).
pub const MAX_GROUP_ID: usize = 40;

/// Every name halo derives for one app, resolved once by validate: render, status and the
/// AWS plan read them here instead of deriving their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// The connection Secret, when the app has a database, cache, tables or bucket.
    pub connection_secret: Option<String>,
    /// Where users reach the app through the ALB (`http(s)://<ingress.host>`).
    pub url: Option<String>,
    /// Where users reach the app through Route 53 (`http(s)://<dns.recordName>`).
    pub dns_url: Option<String>,
    /// The Aurora cluster: halo's identifier, or the adopted one.
    pub database_id: Option<String>,
    /// The identifier an earlier halo derived, when it differs: found, never created.
    pub legacy_database_id: Option<String>,
    /// The ElastiCache replication group: halo's id, or the adopted one.
    pub cache_id: Option<String>,
    /// The id an earlier halo derived, when it differs: found, never created.
    pub legacy_cache_id: Option<String>,
    /// The tables of `spec.dynamodb`, in spec order.
    pub tables: Vec<TableNames>,
    /// The static assets bucket.
    pub bucket: Option<String>,
    /// The default bucket an earlier halo derived, when it differs: found, never created.
    pub legacy_bucket: Option<String>,
    /// Every CloudWatch alarm of the app starts with it.
    pub alarm_prefix: String,
}

/// The names of one DynamoDB table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableNames {
    /// The name in the spec.
    pub name: String,
    /// The table in AWS: see [`table_name`].
    pub table_name: String,
    /// The name an earlier halo derived, when it differs: found, never created.
    pub legacy_table_name: Option<String>,
    /// The connection Secret's key for it.
    pub env_key: String,
}

/// The URL of a host: `https://` when the ALB has a certificate.
pub fn url_of(host: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", host.trim_end_matches('.'))
}

/// Longest table-name prefix the legacy names had.
const MAX_TABLE_PREFIX: usize = 180;

/// Longest DynamoDB table name.
pub const MAX_TABLE: usize = 255;

/// Longest S3 bucket name.
pub const MAX_BUCKET: usize = 63;

/// The DynamoDB name of the app's table `name`: `<namespace>-<app>-<name>` when none of the
/// three holds a `-`, e.g. `shop-web-carts`; else hashed over `namespace/app/name`, e.g.
/// `shop-web-order-items-<hash>` (see [`resource_id`]).
pub fn table_name(owner: &Owner, name: &str) -> String {
    derive(&[&owner.namespace, &owner.name, name], MAX_TABLE, &[])
}

/// The Secret key of a table: `DYNAMODB_TABLE_<NAME>`, `-` as `_`.
pub fn env_key(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("DYNAMODB_TABLE_{upper}")
}

/// Bucket name prefixes S3 refuses.
const RESERVED_BUCKET_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];

/// The default bucket name: `<namespace>-<app>-assets`, e.g. `shop-web-assets`, hashed like
/// [`resource_id`] when ambiguous or too long, e.g. `a-b-c-<hash>-assets`.
pub fn default_bucket(owner: &Owner) -> String {
    format!(
        "{}-assets",
        derive(
            &[&owner.namespace, &owner.name],
            MAX_BUCKET - "-assets".len(),
            &RESERVED_BUCKET_PREFIXES
        )
    )
}

/// `halo/<namespace>/<app>/`: every alarm of the app starts with it. No Kubernetes name holds a
/// `/`, so no app's prefix is a prefix of another's.
pub fn alarm_prefix(owner: &Owner) -> String {
    format!("halo/{}/{}/", owner.namespace, owner.name)
}

pub fn connection_secret_name(app: &str) -> String {
    format!("{app}-connection")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::owner;

    /// Short names are readable as-is: an operator can find `shop-web` in the console, and an
    /// app whose name never was ambiguous keeps the resources it has.
    #[test]
    fn plain_names_are_namespace_dash_name() {
        let o = owner("shop", "web");
        assert_eq!(resource_id(&o, MAX_GROUP_ID), "shop-web");
        assert_eq!(resource_id(&o, MAX_CLUSTER_ID), "shop-web");
        assert_eq!(table_name(&o, "carts"), "shop-web-carts");
        assert_eq!(default_bucket(&o), "shop-web-assets");
        assert_eq!(legacy::resource_id(&o, MAX_GROUP_ID), "shop-web");
        assert_eq!(legacy::table_name(&o, "carts"), "shop-web-carts");
        assert_eq!(legacy::default_bucket(&o), "shop-web-assets");
    }

    /// `a-b/c` and `a/b-c` are different apps in different namespaces: one must never get the
    /// other's cluster, cache, table or bucket name (the legacy names were both `a-b-c`).
    #[test]
    fn a_dash_in_namespace_or_name_adds_a_hash() {
        let (ab_c, a_bc) = (owner("a-b", "c"), owner("a", "b-c"));
        assert_eq!(resource_id(&ab_c, MAX_GROUP_ID), "a-b-c-4e84717d");
        assert_eq!(resource_id(&a_bc, MAX_GROUP_ID), "a-b-c-b88f83c8");
        assert_eq!(default_bucket(&ab_c), "a-b-c-4e84717d-assets");
        assert_eq!(default_bucket(&a_bc), "a-b-c-b88f83c8-assets");
        assert_ne!(table_name(&ab_c, "t"), table_name(&a_bc, "t"));
        assert_eq!(legacy::resource_id(&ab_c, MAX_GROUP_ID), "a-b-c");
        assert_eq!(legacy::resource_id(&a_bc, MAX_GROUP_ID), "a-b-c");
        // Common names stay readable, with the hash at the end.
        assert_eq!(
            resource_id(&owner("shop", "shop-web"), MAX_CLUSTER_ID),
            "shop-shop-web-750bd165"
        );
        assert_eq!(
            resource_id(&owner("shop-prod", "web"), MAX_GROUP_ID),
            "shop-prod-web-c0b460c6"
        );
    }

    /// A table's own `-` is ambiguous too: app `a/b` table `c-t` against app `a/b-c` table `t`.
    #[test]
    fn tables_hash_over_namespace_app_and_table() {
        assert_eq!(
            table_name(&owner("shop", "web"), "order-items"),
            "shop-web-order-items-219ec871"
        );
        assert_ne!(
            table_name(&owner("a", "b"), "c-t"),
            table_name(&owner("a", "b-c"), "t")
        );
        assert_eq!(legacy::table_name(&owner("a", "b"), "c-t"), "a-b-c-t");
        assert_eq!(legacy::table_name(&owner("a", "b-c"), "t"), "a-b-c-t");
        let longest = table_name(&owner(&"n".repeat(63), &"a".repeat(63)), &"t".repeat(64));
        assert_eq!(longest.len(), 63 + 63 + 64 + 2, "plain: no hash needed");
        assert!(longest.len() <= MAX_TABLE);
    }

    /// A plain name has one `-` per joint; a hashed one more, so whatever a tenant names its
    /// app, it never derives another app's plain name (e.g. namespace `a`, app = someone's hash).
    #[test]
    fn hashed_names_never_equal_plain_ones() {
        let ns = "n".repeat(63);
        let hashed = resource_id(&owner(&ns, "web"), MAX_GROUP_ID);
        assert_eq!(hashed.matches('-').count(), 2, "{hashed}");
        let (head, hash) = hashed.rsplit_once('-').expect("hash");
        let (ns_head, name) = head.split_once('-').expect("parts");
        assert_eq!(name, "web");
        let squat = resource_id(&owner(ns_head, hash), MAX_GROUP_ID);
        assert_ne!(squat, hashed);
    }

    /// Long names are cut to the AWS limit, keep both the namespace and the app name visible,
    /// and keep distinct identities through the hash.
    #[test]
    fn long_names_are_truncated_with_a_hash() {
        let ns = "a-very-long-namespace-name-for-the-payments-team";
        let a = resource_id(&owner(ns, "checkout-api"), MAX_GROUP_ID);
        let b = resource_id(&owner(ns, "checkout-web"), MAX_GROUP_ID);
        assert_eq!(a, "a-very-long-namesp-checkout-api-f6067f4a");
        assert_eq!(b, "a-very-long-namesp-checkout-web-00cfd8d1");
        assert_eq!(a.len(), MAX_GROUP_ID);
        let (n63, a63) = ("n".repeat(63), "a".repeat(63));
        let longest = owner(&n63, &a63);
        assert_eq!(resource_id(&longest, MAX_CLUSTER_ID).len(), MAX_CLUSTER_ID);
        assert_eq!(resource_id(&longest, MAX_GROUP_ID).len(), MAX_GROUP_ID);
        assert_eq!(default_bucket(&longest).len(), MAX_BUCKET);
        assert_eq!(
            resource_id(&longest, MAX_GROUP_ID),
            format!(
                "{}-{}-{}",
                &n63[..15],
                &a63[..15],
                long_hash(&format!("{n63}/{a63}"))
            )
        );
    }

    /// Namespaces may start with a digit or hold `--`; AWS identifiers may not.
    #[test]
    fn names_are_rewritten_to_aws_rules() {
        let id = resource_id(&owner("1team--x", "web"), MAX_CLUSTER_ID);
        assert_eq!(id, "h1team-x-web-33116204");
        for o in [
            owner("1team--x", "web"),
            owner("xn--a", "b"),
            owner("a", "b-"),
        ] {
            for id in [
                resource_id(&o, MAX_GROUP_ID),
                default_bucket(&o),
                table_name(&o, "t"),
            ] {
                assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
                assert!(!id.contains("--") && !id.ends_with('-'), "{id}");
            }
        }
    }

    /// S3 refuses buckets starting with `sthree-`, `xn--` or `amzn-s3-demo-`.
    #[test]
    fn default_buckets_avoid_reserved_prefixes() {
        assert_eq!(
            default_bucket(&owner("sthree", "web")),
            "hsthree-web-eaf210b8-assets"
        );
        // `--` collapses, so `xn--` cannot survive cleaning.
        assert!(default_bucket(&owner("xn--a", "b")).starts_with("xn-a-b-"));
        assert!(default_bucket(&owner("amzn-s3-demo-x", "b")).starts_with("hamzn-s3-demo-x-b-"));
        assert_eq!(
            resource_id(&owner("sthree", "web"), MAX_GROUP_ID),
            "sthree-web"
        );
    }

    /// `halo/<ns>/<name>/` can only be a prefix of the same app's alarms: `/` is in no name.
    #[test]
    fn alarm_prefixes_are_unambiguous() {
        assert_eq!(alarm_prefix(&owner("a-b", "c")), "halo/a-b/c/");
        assert_eq!(alarm_prefix(&owner("a", "b-c")), "halo/a/b-c/");
        assert!(!alarm_prefix(&owner("a", "b-c")).starts_with(&alarm_prefix(&owner("a", "b"))));
    }
}
