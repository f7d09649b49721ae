//! Shared by the tests that run against the AWS emulator (moto in server mode, started with
//! `e2e/moto start`; `eval "$(e2e/moto env)"` exports its endpoint). No test resets the
//! emulator: every test works on names of its own, so they run in parallel and repeatedly.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod cbor_bridge;

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_rds::config::Credentials;
use halo::api::HighlyAvailableApp;
use halo::aws::{Aws, AwsConfig};
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
    sdk_at(&endpoint()).await
}

/// SDK configuration for an endpoint in front of the emulator (see [`Recorder`]).
pub async fn sdk_at(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
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

/// A fresh AWS side whose CloudWatch requests go through [`cbor_bridge`] (moto 5.2.5 does not
/// speak the protocol aws-sdk-cloudwatch uses); every other request passes through unchanged.
pub async fn aws_bridged(config: AwsConfig) -> Aws {
    let url = cbor_bridge::start(&endpoint());
    Aws::with_sdk_config(config, sdk_at(&url).await)
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

/// A TCP relay in front of the emulator that keeps a copy of every byte the SDK sends, so a
/// test can assert the exact request body of a call whose effect the emulator does not show.
pub struct Recorder {
    pub url: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let upstream = endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("recorder address")
        );
        let sent: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
        let tee = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (Ok(mut client_read), Ok(mut server_write)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let tee = tee.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = client_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        tee.lock().expect("lock").extend_from_slice(&buf[..n]);
                        if server_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                });
            }
        });
        Recorder { url, sent }
    }

    /// Everything sent so far, as text.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().expect("lock")).into_owned()
    }
}
