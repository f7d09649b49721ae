//! Shared by the tests that run against the AWS emulator (moto in server mode, started with
//! `e2e/moto start`; `eval "$(e2e/moto env)"` exports its endpoint). No test resets the
//! emulator: every test works on names of its own, so they run in parallel and repeatedly.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::config::Credentials;
use halo::aws::{Aws, AwsConfig};
use halo::crd::HighlyAvailableApp;
use halo::validate::{ValidatedApp, owner_of, validate};

/// The emulator's endpoint; a missing one is a failure that says how to start it, never a skip.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: these tests need the AWS emulator. Run `e2e/moto install` \
             once, then `e2e/moto start` and `eval \"$(e2e/moto env)\"` (AWS_ENDPOINT_URL=http://127.0.0.1:15000)"
        ),
    }
}

/// SDK configuration for the emulator, with dummy credentials.
pub async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "halo-tests",
        ))
        .load()
        .await
}

/// A fresh AWS side, as a restarted operator would have.
pub async fn aws() -> Aws {
    Aws::with_sdk_config(AwsConfig::default(), sdk().await)
}

/// A name no other test (and no earlier run) uses: letters and digits, starting with a letter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 20) ^ (u64::from(n) << 48);
    format!("{prefix}{:x}", mixed % 0xff_ffff_ffff)
}

/// A validated app from a YAML manifest, with a uid of its own.
pub fn app(yaml: &str) -> ValidatedApp {
    let mut app: HighlyAvailableApp = serde_saphyr::from_str(yaml).expect("manifest parses");
    if let Err(e) = app.validate_cel() {
        panic!("test manifest is invalid: {e:?}");
    }
    app.metadata.uid = Some(unique("uid-"));
    let owner = owner_of(&app, "default", None).expect("owner");
    validate(&app, owner).expect("validates")
}

/// A manifest with `namespace`/`name` and the given extra spec lines (indented by two).
pub fn manifest(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  image: registry.example.com/app:1\n  port: 8080\n  zones: {{names: [us-east-1a, us-east-1b, us-east-1c]}}\n{spec}"
    )
}
