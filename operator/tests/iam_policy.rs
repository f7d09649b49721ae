//! `config/iam/halo-policy.json` grants exactly the AWS actions halo's code calls: none
//! missing (an AccessDenied in production) and none unneeded (least privilege).
//!
//! The actions are derived from the code, not from a list kept by hand:
//!
//! ```text
//! operator/src/aws/**/*.rs ──> `.create_db_cluster(` ──> aws-sdk-rds's operation/create_db_cluster.rs
//!   (tests and comments                                    says .operation_name("CreateDBCluster")
//!    stripped)                                             ──> rds:CreateDBCluster
//! ```
//!
//! Operation names come from the SDK crates themselves (the versions in Cargo.lock, in the
//! cargo registry), so AWS's casing (`DB`, `HealthCheck`) is exact. A small table maps the
//! few operations whose IAM action has another name (mostly S3), and another adds the actions
//! AWS checks on halo's behalf (dependent actions), each with the code that triggers it.
//!
//! Least privilege is checked too: every mutating action is granted only on halo's own
//! resources, through a condition on halo's ownership tag or an ARN that halo names; reads
//! (Describe/List/Get) may use `*`. Why each statement is scoped the way it is:
//! config/iam/README.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Operations whose IAM action is not `<prefix>:<OperationName>`.
const IRREGULAR: &[(&str, &str)] = &[
    ("s3:HeadBucket", "s3:ListBucket"),
    ("s3:ListObjects", "s3:ListBucket"),
    ("s3:ListObjectsV2", "s3:ListBucket"),
    ("s3:ListObjectVersions", "s3:ListBucketVersions"),
    ("s3:ListBuckets", "s3:ListAllMyBuckets"),
    ("s3:HeadObject", "s3:GetObject"),
    ("s3:DeleteObjects", "s3:DeleteObject"),
    ("s3:GetBucketReplication", "s3:GetReplicationConfiguration"),
    ("s3:PutBucketReplication", "s3:PutReplicationConfiguration"),
    (
        "s3:DeleteBucketReplication",
        "s3:PutReplicationConfiguration",
    ),
    ("s3:GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("s3:PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("s3:DeleteBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("s3:GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
    ("s3:PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    (
        "s3:DeletePublicAccessBlock",
        "s3:PutBucketPublicAccessBlock",
    ),
    ("s3:DeleteBucketTagging", "s3:PutBucketTagging"),
    (
        "s3:GetBucketLifecycleConfiguration",
        "s3:GetLifecycleConfiguration",
    ),
    (
        "s3:PutBucketLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
    ),
    ("s3:DeleteBucketLifecycle", "s3:PutLifecycleConfiguration"),
    ("s3:GetBucketCors", "s3:GetBucketCORS"),
    ("s3:PutBucketCors", "s3:PutBucketCORS"),
    ("s3:DeleteBucketCors", "s3:PutBucketCORS"),
    (
        "s3:GetBucketNotificationConfiguration",
        "s3:GetBucketNotification",
    ),
    (
        "s3:PutBucketNotificationConfiguration",
        "s3:PutBucketNotification",
    ),
    (
        "s3:DeleteBucketOwnershipControls",
        "s3:PutBucketOwnershipControls",
    ),
    ("s3:DeleteBucketPolicy", "s3:DeleteBucketPolicy"),
];

/// IAM service prefixes that differ from the SDK crate's name (`aws-sdk-<name>`).
const PREFIX: &[(&str, &str)] = &[("sfn", "states"), ("cloudwatchlogs", "logs")];

/// Actions AWS authorizes on top of the called one when the code does this (the Service
/// Authorization Reference's "dependent actions").
const DEPENDENT: &[(&str, &[&str], &str)] = &[
    (
        ".manage_master_user_password(true)",
        &["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
        "RDS creates the master user secret in Secrets Manager with the caller's permissions",
    ),
    (
        // `.final_db_snapshot_identifier(` or `.set_final_db_snapshot_identifier(`.
        "final_db_snapshot_identifier(",
        &["rds:CreateDBClusterSnapshot"],
        "DeleteDBCluster's final snapshot is authorized as a snapshot the caller creates",
    ),
    (
        // `.final_snapshot_identifier(` or `.set_final_snapshot_identifier(`.
        "final_snapshot_identifier(",
        &["elasticache:CreateSnapshot"],
        "DeleteReplicationGroup's final snapshot is authorized as a snapshot the caller creates",
    ),
    (
        ".set_tags(Some(table_tags))",
        &["dynamodb:TagResource"],
        "CreateTable with tags is authorized as TagResource too",
    ),
    (
        ".replica_updates(",
        &[
            "dynamodb:CreateTableReplica",
            "dynamodb:DeleteTableReplica",
            "iam:CreateServiceLinkedRole",
        ],
        "UpdateTable ReplicaUpdates (global tables 2019.11.21) creates and deletes replicas, and the replication service-linked role on first use",
    ),
    (
        ".set_tags(Some(alarm_tags))",
        &["cloudwatch:TagResource"],
        "PutMetricAlarm with tags is authorized as TagResource too",
    ),
    (
        ".set_version_id(",
        &["s3:DeleteObjectVersion"],
        "DeleteObjects of specific versions (emptyOnDelete) needs DeleteObjectVersion",
    ),
    (
        ".role(role)",
        &["iam:PassRole"],
        "PutBucketReplication passes the configured replication role to S3",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Rust source with comments and string contents blanked and `#[cfg(test)]` items removed,
/// so only code that runs in the operator is scanned. Line breaks are kept (evidence lines).
fn production_code(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal such as '\'' or '\n'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    strip_test_items(&out)
}

/// Removes each `#[cfg(test)]` item: through its matching `}` (or `;` for `mod x;`).
fn strip_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        // Keep the line count, so evidence line numbers stay true.
        out.extend(item[..end].chars().filter(|c| *c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// `(line, name)` of every method call `.name(` in the code.
fn method_calls(code: &str) -> Vec<(usize, String)> {
    let mut calls = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'.' {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len()
                    && (bytes[j].is_ascii_lowercase()
                        || bytes[j].is_ascii_digit()
                        || bytes[j] == b'_')
                {
                    j += 1;
                }
                let mut k = j;
                while k < bytes.len() && bytes[k] == b' ' {
                    k += 1;
                }
                if j > start
                    && k < bytes.len()
                    && bytes[k] == b'('
                    && bytes[start].is_ascii_lowercase()
                {
                    calls.push((n + 1, line[start..j].to_string()));
                }
                i = j.max(i + 1);
            } else {
                i += 1;
            }
        }
    }
    calls
}

/// An AWS SDK crate halo depends on.
struct Service {
    /// `rds` (the crate is `aws-sdk-rds`, the module `aws_sdk_rds`).
    name: String,
    /// IAM service prefix.
    prefix: String,
    /// `create_db_cluster` -> `CreateDBCluster`.
    operations: BTreeMap<String, String>,
}

fn sdk_services() -> Vec<Service> {
    let manifest =
        std::fs::read_to_string(repo().join("operator/Cargo.toml")).expect("operator/Cargo.toml");
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let crates: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.trim().split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| k.starts_with("aws-sdk-"))
        .collect();
    assert!(
        !crates.is_empty(),
        "operator/Cargo.toml names no aws-sdk-* crate"
    );
    crates
        .into_iter()
        .map(|krate| {
            let name = krate.trim_start_matches("aws-sdk-").replace('-', "_");
            let prefix = PREFIX
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(|| name.clone(), |(_, p)| p.to_string());
            let dir = crate_source(&krate, &lock);
            Service {
                operations: operations(&dir.join("src/operation")),
                name,
                prefix,
            }
        })
        .collect()
}

/// The registry source of `krate` at the version Cargo.lock pins.
fn crate_source(krate: &str, lock: &str) -> PathBuf {
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.lines().any(|l| l.trim() == format!("name = \"{krate}\"")))
        .filter_map(|p| {
            p.lines()
                .find_map(|l| l.trim().strip_prefix("version = \"")?.strip_suffix('"'))
        })
        .collect();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    let indexes =
        std::fs::read_dir(&registry).unwrap_or_else(|e| panic!("{}: {e}", registry.display()));
    let indexes: Vec<PathBuf> = indexes.flatten().map(|e| e.path()).collect();
    for version in &versions {
        for index in &indexes {
            let dir = index.join(format!("{krate}-{version}"));
            if dir.join("src/operation").is_dir() {
                return dir;
            }
        }
    }
    panic!(
        "no source of {krate} {versions:?} under {}: run `cargo fetch`",
        registry.display()
    );
}

/// `snake_name -> OperationName` from the SDK's generated `src/operation/<snake_name>.rs`
/// (the name the SDK signs and sends, e.g. `CreateDBCluster`).
fn operations(dir: &Path) -> BTreeMap<String, String> {
    let mut ops = BTreeMap::new();
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        let (Some(stem), Some("rs")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("operation source");
        let name = text
            .split(".operation_name(\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{}: no .operation_name(\"..\")", path.display()));
        ops.insert(stem.to_string(), name.to_string());
    }
    assert!(!ops.is_empty(), "{}: no operations", dir.display());
    ops
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every IAM action the operator's AWS code needs, with where it comes from.
fn actions_from_code() -> BTreeMap<String, Vec<String>> {
    let services = sdk_services();
    let irregular: BTreeMap<&str, &str> = IRREGULAR.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&repo().join("operator/src/aws"), &mut files);
    files.sort();
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(repo())
            .unwrap_or(&file)
            .display()
            .to_string();
        let code = production_code(&std::fs::read_to_string(&file).expect("source"));
        // The services this file names: `aws_sdk_rds::...` or an accessor such as `aws.rds()`.
        let named: BTreeSet<&str> = services
            .iter()
            .filter(|s| {
                code.contains(&format!("aws_sdk_{}", s.name))
                    || code.contains(&format!(".{}()", s.name))
            })
            .map(|s| s.name.as_str())
            .collect();
        for (line, method) in method_calls(&code) {
            let candidates: Vec<&Service> = services
                .iter()
                .filter(|s| s.operations.contains_key(&method))
                .collect();
            let chosen: Vec<&&Service> = match candidates.len() {
                0 => continue,
                1 => candidates.iter().collect(),
                _ => candidates
                    .iter()
                    .filter(|s| named.contains(s.name.as_str()))
                    .collect(),
            };
            let [service] = chosen.as_slice() else {
                panic!(
                    "{rel}:{line}: .{method}() is an operation of {:?}; the file names {named:?}: name the service's crate (aws_sdk_<name>) in the file so the call can be attributed",
                    candidates.iter().map(|s| &s.name).collect::<Vec<_>>()
                );
            };
            let action = format!("{}:{}", service.prefix, service.operations[&method]);
            let action = irregular
                .get(action.as_str())
                .map_or(action.clone(), |a| a.to_string());
            actions
                .entry(action)
                .or_default()
                .push(format!("{rel}:{line} .{method}()"));
        }
        for (trigger, needed, why) in DEPENDENT {
            if let Some(n) = code.lines().position(|l| l.contains(trigger)) {
                for action in *needed {
                    actions
                        .entry(action.to_string())
                        .or_default()
                        .push(format!("{rel}:{} {trigger}: {why}", n + 1));
                }
            }
        }
    }
    actions
}

fn policy() -> serde_json::Value {
    let path = repo().join("config/iam/halo-policy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let policy: serde_json::Value = serde_json::from_str(&text).expect("the policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17", "policy Version");
    policy
}

/// A string or a list of strings (IAM accepts both for Action and Resource).
fn strings(value: &serde_json::Value, what: &str) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect(),
        other => panic!("{what} must be a string or a list: {other}"),
    }
}

/// Every action the policy grants; wildcards are refused. An action may appear in several
/// statements (e.g. a delete allowed on tagged clusters and on halo-named final snapshots),
/// never twice in one.
fn actions_in_policy() -> BTreeSet<String> {
    let policy = policy();
    let mut actions = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("Statement is a list") {
        assert_eq!(
            statement["Effect"], "Allow",
            "only Allow statements: {statement}"
        );
        let mut here = BTreeSet::new();
        for action in strings(&statement["Action"], "Action") {
            assert!(
                !action.contains('*'),
                "wildcard action {action}: name each action"
            );
            assert!(
                here.insert(action.clone()),
                "{action} is listed twice in {}",
                statement["Sid"]
            );
            actions.insert(action);
        }
    }
    actions
}

/// Mutating actions that AWS cannot scope to halo's resources, the one wide resource each may
/// have, and why that is still least privilege.
const UNSCOPABLE: &[(&str, &str, &str)] = &[
    (
        "route53:CreateHealthCheck",
        "*",
        "no resource-level permission and no condition key: AWS accepts only Resource \"*\"",
    ),
    (
        "route53:UpdateHealthCheck",
        HEALTH_CHECKS,
        "Route 53 has no tag condition keys and health check ids are AWS-generated",
    ),
    (
        "route53:DeleteHealthCheck",
        HEALTH_CHECKS,
        "Route 53 has no tag condition keys and health check ids are AWS-generated",
    ),
    (
        "route53:ChangeTagsForResource",
        HEALTH_CHECKS,
        "Route 53 has no tag condition keys and health check ids are AWS-generated",
    ),
    (
        "dynamodb:CreateTableReplica",
        TABLES,
        "permission-only action, checked only inside UpdateTable ReplicaUpdates, allowed on halo-tagged tables only",
    ),
    (
        "dynamodb:DeleteTableReplica",
        TABLES,
        "permission-only action, checked only inside UpdateTable ReplicaUpdates, allowed on halo-tagged tables only",
    ),
];
const HEALTH_CHECKS: &str = "arn:aws:route53:::healthcheck/*";
const TABLES: &str = "arn:*:dynamodb:*:*:table/*";

/// Reads: IAM access levels Read and List, which halo's calls name Describe/List/Get.
fn is_read(action: &str) -> bool {
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    ["Describe", "List", "Get"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// A resource that names no particular resource: `*`, or an ARN whose resource part is only a
/// wildcard after its type (`cluster:*`, `table/*`, an S3 `*`).
fn names_nothing(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let part = resource.splitn(6, ':').nth(5).unwrap_or(resource);
    let name = part
        .split_once([':', '/'])
        .filter(|(kind, _)| !kind.contains('*'))
        .map_or(part, |(_, name)| name);
    name.chars().all(|c| c == '*')
}

/// The statement's condition on halo's ownership tag: `StringEquals` on
/// `aws:ResourceTag/<managed-by>` or `aws:RequestTag/<managed-by>` with halo's value, and for
/// a RequestTag condition also `ForAllValues:StringEquals` `aws:TagKeys` within halo's keys.
fn tag_condition(statement: &serde_json::Value) -> Result<Option<&'static str>, String> {
    let equals = &statement["Condition"]["StringEquals"];
    let managed_by = halo::aws::TAG_MANAGED_BY;
    let value = |key: &str| equals.get(key).map(|v| strings(v, key));
    let keys: BTreeSet<&str> = halo::aws::OWNERSHIP_TAG_KEYS
        .into_iter()
        .chain([halo::aws::dynamodb::TAG_TABLE])
        .collect();
    let halo = vec![halo::meta::MANAGED_BY.to_string()];
    if let Some(v) = value(&format!("aws:RequestTag/{managed_by}")) {
        if v != halo {
            return Err(format!(
                "aws:RequestTag/{managed_by} must be {halo:?}, is {v:?}"
            ));
        }
        let tag_keys = statement["Condition"]["ForAllValues:StringEquals"]
            .get("aws:TagKeys")
            .map(|v| strings(v, "aws:TagKeys"))
            .ok_or("an aws:RequestTag condition needs ForAllValues:StringEquals aws:TagKeys")?;
        if let Some(k) = tag_keys.iter().find(|k| !keys.contains(k.as_str())) {
            return Err(format!(
                "aws:TagKeys allows {k}, which is not a tag halo sets"
            ));
        }
        return Ok(Some("aws:RequestTag"));
    }
    if let Some(v) = value(&format!("aws:ResourceTag/{managed_by}")) {
        if v != halo {
            return Err(format!(
                "aws:ResourceTag/{managed_by} must be {halo:?}, is {v:?}"
            ));
        }
        return Ok(Some("aws:ResourceTag"));
    }
    Ok(None)
}

/// Why each statement of `policy` breaks least privilege; empty when none does.
fn least_privilege_violations(policy: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for statement in policy["Statement"].as_array().expect("Statement is a list") {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        let actions = strings(&statement["Action"], "Action");
        let resources = strings(&statement["Resource"], "Resource");
        let tag = match tag_condition(statement) {
            Ok(tag) => tag,
            Err(e) => {
                out.push(format!("{sid}: {e}"));
                continue;
            }
        };
        if tag.is_some() {
            continue;
        }
        for wide in resources.iter().filter(|r| names_nothing(r)) {
            for action in actions.iter().filter(|a| !is_read(a)) {
                let allowed = UNSCOPABLE.iter().any(|(a, r, _)| a == action && r == wide);
                if !allowed {
                    out.push(format!(
                        "{sid}: mutating {action} on {wide} without a condition on halo's tag {}",
                        halo::aws::TAG_MANAGED_BY
                    ));
                }
            }
        }
    }
    out
}

/// Every mutating action is scoped to halo's resources; reads may use `*`.
#[test]
fn mutating_actions_are_scoped_to_halo_resources() {
    let violations = least_privilege_violations(&policy());
    assert!(
        violations.is_empty(),
        "config/iam/halo-policy.json grants more than halo's own resources:\n  {}",
        violations.join("\n  ")
    );
}

/// `iam:PassRole` names one role (the installer's replication role) and one service.
#[test]
fn pass_role_is_limited_to_the_replication_role_for_s3() {
    let policy = policy();
    let statements: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .filter(|s| strings(&s["Action"], "Action").contains(&"iam:PassRole".to_string()))
        .collect();
    assert_eq!(statements.len(), 1, "one statement grants iam:PassRole");
    let s = statements[0];
    for r in strings(&s["Resource"], "Resource") {
        assert!(
            r.starts_with("arn:aws:iam::") && r.contains(":role/") && !r.contains('*'),
            "iam:PassRole on {r}: name the replication role's ARN"
        );
    }
    assert_eq!(
        s["Condition"]["StringEquals"]["iam:PassedToService"], "s3.amazonaws.com",
        "iam:PassRole only to S3"
    );
}

/// The check refuses what the policy used to grant (mutating actions on `*` with no
/// condition, or with a tag condition on another tag) and accepts tag- or name-scoped grants.
#[test]
fn least_privilege_check_refuses_unscoped_grants() {
    let check = |statement: serde_json::Value| {
        least_privilege_violations(&serde_json::json!({"Statement": [statement]}))
    };
    let open = check(
        serde_json::json!({"Sid": "Open", "Action": ["rds:DeleteDBCluster", "rds:DescribeDBClusters"], "Resource": "*"}),
    );
    assert_eq!(
        open,
        [
            "Open: mutating rds:DeleteDBCluster on * without a condition on halo's tag halo.dev/managed-by"
        ]
    );
    let any_table = check(
        serde_json::json!({"Sid": "AnyTable", "Action": "dynamodb:DeleteTable", "Resource": TABLES}),
    );
    assert_eq!(any_table.len(), 1, "{any_table:?}");
    let replicas_on_star = check(
        serde_json::json!({"Sid": "Star", "Action": "dynamodb:CreateTableReplica", "Resource": "*"}),
    );
    assert_eq!(replicas_on_star.len(), 1, "{replicas_on_star:?}");
    let other_tag = check(
        serde_json::json!({"Sid": "OtherTag", "Action": "dynamodb:DeleteTable", "Resource": "arn:*:dynamodb:*:*:table/*",
        "Condition": {"StringEquals": {"aws:ResourceTag/team": "a"}}}),
    );
    assert_eq!(other_tag.len(), 1, "{other_tag:?}");
    let request_any_keys = check(
        serde_json::json!({"Sid": "AnyKeys", "Action": "dynamodb:CreateTable", "Resource": "arn:*:dynamodb:*:*:table/*",
        "Condition": {"StringEquals": {"aws:RequestTag/halo.dev/managed-by": "halo"}}}),
    );
    assert_eq!(
        request_any_keys,
        ["AnyKeys: an aws:RequestTag condition needs ForAllValues:StringEquals aws:TagKeys"]
    );
    assert!(check(serde_json::json!({"Sid": "Tagged", "Action": "dynamodb:DeleteTable", "Resource": "arn:*:dynamodb:*:*:table/*",
        "Condition": {"StringEquals": {"aws:ResourceTag/halo.dev/managed-by": "halo"}}})).is_empty());
    assert!(check(serde_json::json!({"Sid": "Named", "Action": "cloudwatch:DeleteAlarms", "Resource": "arn:*:cloudwatch:*:*:alarm:halo/*"})).is_empty());
    assert!(check(serde_json::json!({"Sid": "Reads", "Action": ["rds:DescribeDBClusters", "route53:ListHealthChecks"], "Resource": "*"})).is_empty());
    assert!(names_nothing("arn:aws:s3:::*") && names_nothing("arn:*:rds:*:*:cluster:*"));
    assert!(
        !names_nothing("arn:aws:s3:::*-assets/*")
            && !names_nothing("arn:*:rds:*:*:cluster-snapshot:*-final-*")
    );
}

/// The policy grants exactly what the code calls: a missing action would be an AccessDenied
/// in production, an extra one a privilege nobody uses.
#[test]
fn policy_grants_exactly_the_actions_the_code_calls() {
    let used = actions_from_code();
    let granted = actions_in_policy();
    let missing: Vec<String> = used
        .iter()
        .filter(|(a, _)| !granted.contains(*a))
        .map(|(a, why)| format!("  {a}  (used at {})", why.join("; ")))
        .collect();
    let unneeded: Vec<&String> = granted.iter().filter(|a| !used.contains_key(*a)).collect();
    assert!(
        missing.is_empty() && unneeded.is_empty(),
        "config/iam/halo-policy.json is out of step with operator/src/aws/:\nmissing (add them):\n{}\nnot called by the code (remove them):\n{}",
        missing.join("\n"),
        unneeded
            .iter()
            .map(|a| format!("  {a}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The derivation finds SDK calls in production code only, names them with AWS's casing,
/// and attributes an operation that two services share to the one the file uses.
#[test]
fn derivation_reads_production_calls_only() {
    let src = r#"
use aws_sdk_rds::Client;
// rds.delete_db_cluster() in a comment is not a call
fn f(rds: &Client) { let s = "x.create_db_snapshot()"; rds.create_db_cluster().send(); rds.add_tags_to_resource(); }
#[cfg(test)]
mod tests { fn t(c: &Client) { c.delete_db_instance(); } }
fn g(rds: &Client) { rds.describe_db_clusters(); }
"#;
    let code = production_code(src);
    let calls: Vec<String> = method_calls(&code).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        calls,
        [
            "create_db_cluster",
            "send",
            "add_tags_to_resource",
            "describe_db_clusters"
        ]
    );
    assert_eq!(
        code.lines().count(),
        src.lines().count(),
        "line numbers are kept"
    );
    let services = sdk_services();
    let rds = services
        .iter()
        .find(|s| s.name == "rds")
        .expect("aws-sdk-rds is a dependency");
    assert_eq!(rds.operations["create_db_cluster"], "CreateDBCluster");
    assert_eq!(rds.operations["describe_db_clusters"], "DescribeDBClusters");
    let shared = services
        .iter()
        .filter(|s| s.operations.contains_key("add_tags_to_resource"))
        .count();
    assert!(
        shared >= 2,
        "add_tags_to_resource exists in RDS and ElastiCache"
    );
}
