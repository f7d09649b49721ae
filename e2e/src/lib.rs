//! Harness for halo's end-to-end tests: reach the cluster that `e2e/up` started, run and
//! kill the operator, poll for conditions, read the API server's audit log.
//!
//! Everything comes from the state folder (`HALO_E2E_STATE`, default `/tmp/halo-e2e`).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use halo::api::HighlyAvailableApp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};

pub mod route53;
pub mod suite;

/// The operator's user agent prefix (see `halo run`).
pub const HALO_USER_AGENT: &str = "halo/";
/// Resync period the suite runs the operator with, so a full period fits in a test.
pub const RESYNC_SECONDS: u64 = 20;
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

pub fn state_dir() -> PathBuf {
    std::env::var_os("HALO_E2E_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/halo-e2e"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A client for the e2e cluster (admin credentials).
pub async fn client() -> anyhow::Result<Client> {
    let path = state_dir().join("kubeconfig");
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading {} — is the cluster up? run e2e/up", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout` saying `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A fresh namespace for one test; deleted when the test calls [`TestNamespace::cleanup`].
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}-{}", std::process::id() % 100_000);
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            client: client.clone(),
        })
    }

    /// Deletes the namespace and waits until it is gone, so its teardown (which makes halo
    /// act on the app being deleted) never overlaps the next test.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::default()).await?;
        let name = self.name.clone();
        wait_for(
            &format!("namespace {name} to be deleted"),
            Duration::from_secs(180),
            || {
                let (api, name) = (api.clone(), name.clone());
                async move { Ok(api.get_opt(&name).await?.is_none().then_some(())) }
            },
        )
        .await
    }
}

/// The small sample, renamed and moved, with `patch` merged into it (JSON merge patch).
pub fn sample_app(
    name: &str,
    namespace: &str,
    patch: serde_json::Value,
) -> anyhow::Result<HighlyAvailableApp> {
    let mut value = sample_value("small.yaml")?;
    merge(
        &mut value,
        &serde_json::json!({"metadata": {"name": name, "namespace": namespace}}),
    );
    merge(&mut value, &patch);
    Ok(serde_json::from_value(value)?)
}

/// `config/samples/<file>` with `patch` merged into it (JSON merge patch).
pub fn sample(file: &str, patch: &serde_json::Value) -> anyhow::Result<HighlyAvailableApp> {
    let mut value = sample_value(file)?;
    merge(&mut value, patch);
    Ok(serde_json::from_value(value)?)
}

fn sample_value(file: &str) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(repo_root().join("config/samples").join(file))?;
    Ok(serde_saphyr::from_str(&text)?)
}

pub use halo::fixtures::merge;

/// Ready pods of an app per zone (pods being deleted do not count).
pub async fn ready_pods_per_zone(
    client: &Client,
    ns: &str,
    app: &str,
) -> anyhow::Result<BTreeMap<String, i32>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let nodes: Api<Node> = Api::all(client.clone());
    let node_zone: BTreeMap<String, String> = nodes
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|n| {
            let zone = n.labels().get("topology.kubernetes.io/zone").cloned()?;
            Some((n.name_any(), zone))
        })
        .collect();
    let mut per_zone = BTreeMap::new();
    for pod in pods
        .list(&ListParams::default().labels(&format!("halo.dev/app={app}")))
        .await?
    {
        if pod.metadata.deletion_timestamp.is_some() || !is_ready(&pod) {
            continue;
        }
        let zone = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| node_zone.get(n))
            .cloned();
        if let Some(zone) = zone {
            *per_zone.entry(zone).or_insert(0) += 1;
        }
    }
    Ok(per_zone)
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `(status, reason, message)` of one condition of the app, if present.
pub fn condition(app: &HighlyAvailableApp, type_: &str) -> Option<(String, String, String)> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Runs the repo's pinned kubectl against the e2e cluster and returns its stdout.
pub async fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    let bin = std::env::var_os("HALO_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env_file_bin().unwrap_or_default());
    let out = tokio::process::Command::new(bin.join("kubectl"))
        .arg(format!(
            "--kubeconfig={}",
            state_dir().join("kubeconfig").display()
        ))
        .args(args)
        .output()
        .await
        .context("running kubectl")?;
    if !out.status.success() {
        bail!(
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn env_file_bin() -> Option<PathBuf> {
    env_file_value("HALO_E2E_BIN").map(PathBuf::from)
}

/// A setting e2e/up wrote into `$HALO_E2E_STATE/env` (`KEY='value'` lines).
pub fn env_file_value(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(state_dir().join("env")).ok()?;
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_matches('\'').to_string())
}

/// A setting from the environment, else from `$HALO_E2E_STATE/env`.
pub fn setting(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| env_file_value(key))
}

/// Operator processes: the suite's own (`halo`, recorded in `pids/halo.pid` like e2e/up's)
/// and extra named instances (`pids/<name>.pid`), all stopped by e2e/down.
pub mod operator {
    use super::*;

    /// Name of the operator instance e2e/up starts and most tests use.
    pub const MAIN: &str = "halo";

    fn pid_file(name: &str) -> PathBuf {
        state_dir().join(format!("pids/{name}.pid"))
    }

    pub fn pid_of(name: &str) -> Option<i32> {
        std::fs::read_to_string(pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn pid() -> Option<i32> {
        pid_of(MAIN)
    }

    pub fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// Sends `signal` to instance `name` and waits until it is gone.
    pub async fn kill_named(name: &str, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = pid_of(name) else {
            return Ok(());
        };
        if alive(pid) {
            let status = tokio::process::Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .await?;
            if !status.success() {
                bail!("kill -{signal} {pid} failed");
            }
        }
        wait_for("the operator to exit", Duration::from_secs(30), || async {
            Ok((!alive(pid)).then_some(()))
        })
        .await
    }

    pub async fn kill(signal: &str) -> anyhow::Result<()> {
        kill_named(MAIN, signal).await
    }

    /// Starts `target/debug/halo run` as instance `name` with the suite's settings plus `env`,
    /// recording its pid where e2e/down finds it. Its log is `logs/<name>.log`.
    pub async fn start_named(name: &str, env: &[(&str, String)]) -> anyhow::Result<i32> {
        let bin = std::env::var_os("HALO_E2E_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
                target
                    .unwrap_or_else(|| repo_root().join("target"))
                    .join("debug/halo")
            });
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir().join(format!("logs/{name}.log")))?;
        let mut command = std::process::Command::new("setsid");
        command
            .arg(&bin)
            .arg("run")
            .env("KUBECONFIG", operator_kubeconfig())
            .env("HALO_RESYNC_SECONDS", RESYNC_SECONDS.to_string())
            .env("HALO_LOG_FORMAT", "text")
            .env("POD_NAME", name)
            .env("HALO_LEASE_NAMESPACE", lease_namespace())
            .env("HALO_AWS_POLL_BUSY_SECONDS", "5")
            .env(
                "HALO_METRICS_ADDR",
                format!("127.0.0.1:{}", metrics_port(0)),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // As e2e/up started it: CloudWatch through the protocol relay (only because moto lacks
        // CloudWatch's CBOR protocol) and a replication role for static assets buckets.
        for key in [
            "AWS_ENDPOINT_URL_CLOUDWATCH",
            "HALO_S3_REPLICATION_ROLE_ARN",
        ] {
            if let Some(v) = setting(key) {
                command.env(key, v);
            }
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = i32::try_from(child.id())?;
        std::fs::write(pid_file(name), format!("{pid}\n"))?;
        std::fs::write(
            state_dir().join(format!("pids/{name}.exe")),
            format!("{}\n", bin.display()),
        )?;
        Ok(pid)
    }

    /// The port of the suite's operator's /metrics (HALO_E2E_METRICS_PORT, as e2e/up used)
    /// plus `offset`, for further instances; never the operator's default 8080, which another
    /// run on the machine may hold.
    pub fn metrics_port(offset: u16) -> u16 {
        std::env::var("HALO_E2E_METRICS_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(18080)
            .saturating_add(offset)
    }

    pub async fn start() -> anyhow::Result<i32> {
        start_named(MAIN, &[]).await
    }

    /// Replaces whatever operator runs with one started by the suite.
    pub async fn restart() -> anyhow::Result<i32> {
        kill("TERM").await?;
        start().await
    }

    /// The kubeconfig the operator runs with: a token of the chart's ServiceAccount when
    /// e2e/up prepared one (e2e/chart-rbac), else the admin's.
    pub fn operator_kubeconfig() -> PathBuf {
        let sa = state_dir().join("halo-sa.kubeconfig");
        if sa.exists() {
            sa
        } else {
            state_dir().join("kubeconfig")
        }
    }

    /// Where the leader Lease lives: the chart grants it only in its own namespace.
    pub fn lease_namespace() -> String {
        if state_dir().join("halo-sa.kubeconfig").exists() {
            std::env::var("HALO_RBAC_NAMESPACE").unwrap_or_else(|_| "halo-e2e".into())
        } else {
            "default".into()
        }
    }

    /// The text of instance `name`'s /metrics endpoint at `addr`.
    pub async fn scrape(addr: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok(out
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default())
    }

    /// The value of one sample line (`name{labels}`) in a metrics text.
    pub fn sample(metrics: &str, series: &str) -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }
}

/// Requests in the API server's audit log (one JSON object a line, stage ResponseComplete).
pub mod audit {
    use super::*;

    #[derive(serde::Deserialize, Debug, Clone)]
    #[serde(rename_all = "camelCase")]
    pub struct Entry {
        pub verb: String,
        #[serde(default)]
        pub user_agent: String,
        #[serde(rename = "requestURI")]
        pub request_uri: String,
        #[serde(default)]
        pub stage: String,
    }

    pub fn path() -> PathBuf {
        state_dir().join("audit.log")
    }

    /// Byte offset of the end of the log now, to read only what comes after.
    pub fn mark() -> u64 {
        std::fs::metadata(path()).map(|m| m.len()).unwrap_or(0)
    }

    /// Entries written since `mark` by clients whose user agent starts with `agent_prefix`.
    pub fn since(mark: u64, agent_prefix: &str) -> anyhow::Result<Vec<Entry>> {
        let bytes = std::fs::read(path())?;
        let start = usize::try_from(mark)?.min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .filter(|e| e.user_agent.starts_with(agent_prefix) && e.stage == "ResponseComplete")
            .collect())
    }

    pub fn is_write(e: &Entry) -> bool {
        matches!(
            e.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}
