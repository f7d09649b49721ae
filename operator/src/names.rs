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

/// A deterministic AWS identifier for the app: `<namespace>-<name>`, lowercased, limited to
/// letters, digits and single hyphens, starting with a letter, at most `max_len` characters.
/// When the plain form does not fit (or had to be rewritten), a 6-hex-digit hash of the full
/// `namespace/name` replaces the tail, so distinct apps keep distinct identifiers.
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

/// First 6 hex digits of the SHA-256 of `s`.
pub fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(3)
        .map(|b| format!("{b:02x}"))
        .collect()
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
    /// The ElastiCache replication group: halo's id, or the adopted one.
    pub cache_id: Option<String>,
    /// The tables of `spec.dynamodb`, in spec order.
    pub tables: Vec<TableNames>,
    /// The static assets bucket.
    pub bucket: Option<String>,
    /// Every CloudWatch alarm of the app starts with it.
    pub alarm_prefix: String,
}

/// The names of one DynamoDB table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableNames {
    /// The name in the spec.
    pub name: String,
    /// The table in AWS: `<namespace>-<app>-<name>`.
    pub table_name: String,
    /// The connection Secret's key for it.
    pub env_key: String,
}

/// The URL of a host: `https://` when the ALB has a certificate.
pub fn url_of(host: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", host.trim_end_matches('.'))
}

/// Longest table-name prefix halo derives (DynamoDB allows 255 characters in all).
const MAX_TABLE_PREFIX: usize = 180;

/// Longest S3 bucket name.
pub const MAX_BUCKET: usize = 63;

/// The DynamoDB name of the app's table `name`: `<namespace>-<app>-<name>`.
pub fn table_name(owner: &Owner, name: &str) -> String {
    format!("{}-{name}", resource_id(owner, MAX_TABLE_PREFIX))
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

/// The default bucket name: `<namespace>-<app>-assets`.
pub fn default_bucket(owner: &Owner) -> String {
    format!(
        "{}-assets",
        resource_id(owner, MAX_BUCKET - "-assets".len())
    )
}

/// `halo/<namespace>/<app>/`: every alarm of the app starts with it.
pub fn alarm_prefix(owner: &Owner) -> String {
    format!("halo/{}/{}/", owner.namespace, owner.name)
}

pub fn connection_secret_name(app: &str) -> String {
    format!("{app}-connection")
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

    /// Short names are readable as-is: an operator can find `shop-web` in the console.
    #[test]
    fn plain_names_are_namespace_dash_name() {
        assert_eq!(resource_id(&owner("shop", "web"), 40), "shop-web");
    }

    /// Long names are cut to the AWS limit and keep distinct identities through the hash.
    #[test]
    fn long_names_are_truncated_with_a_hash() {
        let ns = "a-very-long-namespace-name-for-the-payments-team";
        let a = resource_id(&owner(ns, "checkout-api"), 40);
        let b = resource_id(&owner(ns, "checkout-web"), 40);
        assert_eq!(a.len(), 40);
        assert!(a.starts_with("a-very-long-namespace-name-for-th-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, resource_id(&owner(ns, "checkout-api"), 40));
        assert!(!a.contains("--"));
    }

    /// Namespaces may start with a digit or hold `--`; AWS identifiers may not.
    #[test]
    fn names_are_rewritten_to_aws_rules() {
        let id = resource_id(&owner("1team--x", "web"), 63);
        assert!(id.starts_with("h1team-x-web-"), "{id}");
        assert_eq!(id.len(), "h1team-x-web-".len() + 6);
        assert!(!id.contains("--"));
    }
}
