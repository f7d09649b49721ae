//! `bench`: how fast halo converges N apps, what a converged app costs the API server, what a
//! restart costs and how much memory and CPU halo needs. Run through `e2e/bench`, which
//! starts the local control plane and builds the operator; this binary does the measuring.
//!
//! For every N, in this order and on the cluster of `HALO_E2E_STATE`:
//!
//! ```text
//! floor      halo not running: create N apps, then time a plain kube-rs client that
//!            server-side-applies what halo::render renders for them (16 apps at once);
//!            delete them again
//! idle       start halo (a private copy of the binary, default resync), no apps: RSS, CPU
//! converge   create N apps; per app, creation -> status current + 5 children seen (watch)
//! ready      until every app has ComputeReady=True, then until halo is quiet for 3 s: RSS
//! restart    TERM + start with the short resync (--resync): time until every app was
//!            reconciled again (halo_reconciles_total), requests made
//! steady     one full (short) resync period: halo's requests in the audit log, CPU, RSS
//! ```
//!
//! With `--aws URL` (moto, started by `e2e/bench --aws`), only phase 1 runs, for apps with
//! the data sections (Aurora: 2 instances; Redis: 1 replica): halo talks to moto, converged
//! means also DatabaseReady and CacheReady, and moto's request recording tells the AWS calls
//! by service and action, per app and per second (from each request's X-Amz-Date). Deleting
//! the apps afterwards runs halo's AWS cleanup (deletionPolicy Delete).
//!
//! The short resync only starts with the restart: while converging, a resync of a few seconds
//! would re-reconcile every converged app that often and crowd out the new ones.
//!
//! It fails only when something breaks (the cluster, a request); a slow or missing number is
//! printed as it is.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use halo::api::HighlyAvailableApp;
use halo::render::render;
use halo::validate::{owner_of, validate};
use halo_e2e::{audit, sample_app, state_dir};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// halo's default `--concurrency`; the floor client uses the same.
const CONCURRENCY: usize = 16;
/// User agents, so the audit log tells the bench's own requests from the floor's and halo's.
const BENCH_AGENT: &str = "halo-bench/0.1";
const FLOOR_AGENT: &str = "halo-bench-floor/0.1";
/// Field manager of the floor's server-side applies.
const FLOOR_MANAGER: &str = "halo-bench-floor";
/// Pods per app: the fewest the API accepts with a PodDisruptionBudget (maxUnavailable >= 1
/// must stay below autoscaling.minReplicas).
const PODS_PER_APP: usize = 2;
/// The children every bench app has, in the order of [`Times::children`].
const KINDS: [&str; 5] = [
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Ingress",
];
/// How long halo must make no request (and use no CPU) to count as idle.
const QUIET: Duration = Duration::from_secs(3);

struct Args {
    sizes: Vec<usize>,
    resync: u64,
    halo_bin: PathBuf,
    /// Leave the last N's apps in place (e2e/bench tears the whole cluster down anyway).
    keep_last: bool,
    json_out: Option<PathBuf>,
    /// moto's URL: phase 1 with the data sections against it.
    aws: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut sizes = Vec::new();
    let mut resync = 30;
    let mut halo_bin = None;
    let mut keep_last = false;
    let mut json_out = None;
    let mut aws = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--resync" => resync = it.next().context("--resync needs seconds")?.parse()?,
            "--halo" => halo_bin = Some(PathBuf::from(it.next().context("--halo needs a path")?)),
            "--keep-last" => keep_last = true,
            "--json" => json_out = Some(PathBuf::from(it.next().context("--json needs a path")?)),
            "--aws" => aws = Some(it.next().context("--aws needs moto's URL")?),
            "-h" | "--help" => {
                println!(
                    "usage: bench [--resync S] [--halo PATH] [--keep-last] [--json FILE] [--aws MOTO_URL] N..."
                );
                std::process::exit(0);
            }
            n => sizes.push(
                n.parse()
                    .with_context(|| format!("not a number of apps: {n}"))?,
            ),
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let halo_bin =
        halo_bin.context("--halo PATH (a private copy of the halo binary) is required")?;
    Ok(Args {
        sizes,
        resync,
        halo_bin,
        keep_last,
        json_out,
        aws,
    })
}

// ------------------------------------------------------------------------------- clients

async fn client_with_agent(agent: &'static str) -> anyhow::Result<Client> {
    let path = state_dir().join("kubeconfig");
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading {} — is the cluster up?", path.display()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(agent),
    ));
    Ok(Client::try_from(config)?)
}

// ------------------------------------------------------------------------------- /proc

/// CPU seconds (user + system) and memory of one process, from /proc.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct ProcSample {
    cpu_s: f64,
    rss_mb: f64,
    hwm_mb: f64,
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn sample(pid: u32, ticks: f64) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("halo (pid {pid}) is gone"))?;
    // Fields after the command name, which may contain spaces: state is the 3rd field overall,
    // utime the 14th and stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(ProcSample {
        cpu_s: (tick(11) + tick(12)) / ticks,
        rss_mb: kb("VmRSS:") / 1024.0,
        hwm_mb: kb("VmHWM:") / 1024.0,
    })
}

// ------------------------------------------------------------------------------- audit log

/// Requests one client made, from the API server's audit log.
#[derive(Clone, Debug, Default, Serialize)]
struct Requests {
    /// Writes, the leader Lease's left out.
    writes: usize,
    /// Reads, the leader Lease's left out.
    reads: usize,
    /// Requests for the leader Lease (renewals), counted apart: they do not depend on the apps.
    lease: usize,
    /// Seconds the API server took for the requests other than watches (received -> response).
    latency_s: f64,
    timed: usize,
    /// `verb resource[/subresource]` -> count.
    by_kind: BTreeMap<String, usize>,
}

impl Requests {
    fn summary(&self) -> String {
        let mut v: Vec<_> = self.by_kind.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut out = v
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.timed > 0 {
            out.push_str(&format!(
                "; mean API server latency {:.0} ms",
                1000.0 * self.latency_s / self.timed as f64
            ));
        }
        out
    }
}

/// Requests of one client in the audit log from a byte offset on, read incrementally.
struct AuditTail {
    agent: &'static str,
    pos: u64,
    seen: Requests,
}

impl AuditTail {
    fn new(mark: u64, agent: &'static str) -> Self {
        AuditTail {
            agent,
            pos: mark,
            seen: Requests::default(),
        }
    }

    /// Reads the complete lines written since the last call; returns all requests so far.
    fn update(&mut self) -> anyhow::Result<&Requests> {
        let mut file = std::fs::File::open(audit::path())?;
        file.seek(SeekFrom::Start(self.pos))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.pos += complete as u64;
        let needle = format!("\"userAgent\":\"{}", self.agent);
        for line in String::from_utf8_lossy(&bytes[..complete]).lines() {
            // Most lines are the control plane's: skip them before parsing.
            if !line.contains(&needle) {
                continue;
            }
            let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if e["stage"] != "ResponseComplete" {
                continue;
            }
            let verb = e["verb"].as_str().unwrap_or_default();
            let mut resource = e["objectRef"]["resource"]
                .as_str()
                .unwrap_or("-")
                .to_string();
            if let Some(sub) = e["objectRef"]["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let write = matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            );
            let out = &mut self.seen;
            if resource == "leases" {
                out.lease += 1;
            } else if write {
                out.writes += 1;
            } else {
                out.reads += 1;
            }
            *out.by_kind.entry(format!("{verb} {resource}")).or_default() += 1;
            let at = |key: &str| e[key].as_str().and_then(seconds_of_day);
            if let (false, Some(start), Some(end)) = (
                verb == "watch",
                at("requestReceivedTimestamp"),
                at("stageTimestamp"),
            ) {
                out.latency_s += (end - start).rem_euclid(86_400.0);
                out.timed += 1;
            }
        }
        Ok(&self.seen)
    }
}

/// `2026-01-02T03:04:05.678901Z` -> seconds since midnight (enough for durations).
fn seconds_of_day(ts: &str) -> Option<f64> {
    let time = ts.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Requests since byte offset `mark` whose user agent starts with `agent`.
fn requests_since(mark: u64, agent: &'static str) -> anyhow::Result<Requests> {
    Ok(AuditTail::new(mark, agent).update()?.clone())
}

// ------------------------------------------------------------------------------- halo process

struct Halo {
    child: tokio::process::Child,
    pid: u32,
    metrics_addr: Option<String>,
}

/// Whether this halo binary serves /metrics (`halo run --metrics-addr`).
fn has_metrics_flag(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .args(["run", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--metrics-addr"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts halo, records its pid where e2e/down finds it, logs to `logs/<log>.log`.
/// `resync`: seconds, or None for halo's default.
async fn start_halo(
    args: &Args,
    log: &str,
    metrics: bool,
    resync: Option<u64>,
) -> anyhow::Result<Halo> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir().join(format!("logs/{log}.log")))?;
    let mut cmd = tokio::process::Command::new(&args.halo_bin);
    cmd.arg("run")
        .env("KUBECONFIG", state_dir().join("kubeconfig"))
        .env_remove("HALO_RESYNC_SECONDS")
        .env("HALO_CONCURRENCY", CONCURRENCY.to_string())
        .env("HALO_LOG_FORMAT", "text")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0);
    if let Some(resync) = resync {
        cmd.env("HALO_RESYNC_SECONDS", resync.to_string());
    }
    if let Some(url) = &args.aws {
        // What e2e/up gives halo: the SDK talks to moto only, with dummy credentials.
        cmd.env("AWS_ENDPOINT_URL", url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("HALO_AWS_POLL_BUSY_SECONDS", "5");
    }
    let metrics_addr = if metrics {
        let addr = format!("127.0.0.1:{}", free_port()?);
        cmd.args(["--metrics-addr", &addr]);
        Some(addr)
    } else {
        None
    };
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", args.halo_bin.display()))?;
    let pid = child.id().context("halo exited at once")?;
    std::fs::write(state_dir().join("pids/halo.pid"), format!("{pid}\n"))?;
    std::fs::write(
        state_dir().join("pids/halo.exe"),
        format!("{}\n", std::fs::canonicalize(&args.halo_bin)?.display()),
    )?;
    Ok(Halo {
        child,
        pid,
        metrics_addr,
    })
}

impl Halo {
    /// SIGTERM, then waits for the exit (KILL after 30 s).
    async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => {
                eprintln!("halo (pid {}) ignored TERM for 30 s: KILL", self.pid);
                self.child.kill().await?;
            }
        }
        let _ = std::fs::remove_file(state_dir().join("pids/halo.pid"));
        let _ = std::fs::remove_file(state_dir().join("pids/halo.exe"));
        Ok(())
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "halo exited ({status}); see its log in {}/logs",
                state_dir().display()
            );
        }
        Ok(())
    }

    /// `halo_reconciles_total`, all results, from /metrics (None without /metrics).
    async fn reconciles(&self) -> Option<f64> {
        let addr = self.metrics_addr.as_ref()?;
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: halo\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        if !body.starts_with("HTTP/1.1 200") && !body.starts_with("HTTP/1.0 200") {
            return None;
        }
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with("halo_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        // No series yet: nothing was reconciled.
        Some(values.iter().sum())
    }
}

/// Waits until halo made no request and used (almost) no CPU for [`QUIET`]; returns when its
/// last activity was, from `since`. None after `timeout`.
async fn wait_quiet(
    halo: &mut Halo,
    since: Instant,
    mark: u64,
    ticks: f64,
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    let mut tail = AuditTail::new(mark, audit_agent());
    let count = |r: &Requests| r.writes + r.reads;
    let mut last_active = Instant::now();
    let mut last_cpu = sample(halo.pid, ticks)?.cpu_s;
    let mut last_requests = count(tail.update()?);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        halo.check_alive()?;
        let cpu = sample(halo.pid, ticks)?.cpu_s;
        let requests = count(tail.update()?);
        // Timers, the lease and the runtime cost a few ms a second even when nothing happens.
        if cpu - last_cpu > 0.02 || requests != last_requests {
            last_active = Instant::now();
        }
        (last_cpu, last_requests) = (cpu, requests);
        if last_active.elapsed() >= QUIET {
            return Ok(Some(last_active.saturating_duration_since(since)));
        }
        if since.elapsed() > timeout {
            return Ok(None);
        }
    }
}

fn audit_agent() -> &'static str {
    halo_e2e::HALO_USER_AGENT
}

// ------------------------------------------------------------------------------- apps

fn app_name(i: usize) -> String {
    format!("app-{i:05}")
}

/// The small sample with an HPA (2 pods: the fewest a PDB allows), an Ingress and a CPU request,
/// in one zone so the scheduler never waits on a spread.
fn bench_app(i: usize, ns: &str) -> anyhow::Result<HighlyAvailableApp> {
    let name = app_name(i);
    sample_app(
        &name,
        ns,
        json!({"spec": {
            "zones": {"minZones": 1},
            "autoscaling": {"minReplicas": PODS_PER_APP, "maxReplicas": PODS_PER_APP + 2},
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "ingress": {"host": format!("{name}.bench.example.com")},
        }}),
    )
}

/// [`bench_app`] with the data sections of config/samples/data.yaml, deleted without a
/// snapshot so the cleanup after the run is quick.
fn bench_data_app(i: usize, ns: &str) -> anyhow::Result<HighlyAvailableApp> {
    let mut value = serde_json::to_value(bench_app(i, ns)?)?;
    halo_e2e::merge(
        &mut value,
        &json!({"spec": {
            "database": {
                "engine": "aurora-postgresql",
                "engineVersion": "16.4",
                "instanceClass": "db.r6g.large",
                "instances": 2,
                "databaseName": "bench",
                "deletionPolicy": "Delete",
                "deletionProtection": false,
            },
            "cache": {
                "engine": "redis",
                "nodeType": "cache.r6g.large",
                "replicas": 1,
                "deletionPolicy": "Delete",
            },
        }}),
    );
    Ok(serde_json::from_value(value)?)
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    api.create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Deletes a namespace and waits until it is gone (the garbage collector and kwok take their
/// time with thousands of pods).
async fn delete_namespace(client: &Client, name: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(0.0),
        Err(e) => return Err(e.into()),
    }
    while api.get_opt(name).await?.is_some() {
        if start.elapsed() > Duration::from_secs(1800) {
            bail!("namespace {name} still exists after 30 min");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Creates apps 0..n in `ns`, 16 at a time; returns each app (with its uid) and when its
/// create call returned.
async fn create_apps(
    client: &Client,
    ns: &str,
    n: usize,
) -> anyhow::Result<Vec<(HighlyAvailableApp, Instant)>> {
    create_apps_with(client, ns, n, bench_app).await
}

async fn create_apps_with(
    client: &Client,
    ns: &str,
    n: usize,
    make: fn(usize, &str) -> anyhow::Result<HighlyAvailableApp>,
) -> anyhow::Result<Vec<(HighlyAvailableApp, Instant)>> {
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), ns);
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let app = make(i, ns)?;
                let created = api
                    .create(&PostParams::default(), &app)
                    .await
                    .with_context(|| format!("creating {ns}/{}", app_name(i)))?;
                anyhow::Ok((created, Instant::now()))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// More pod room on the simulated nodes when N apps need more than their 110 pods each.
async fn make_room(client: &Client, pods: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = api.list(&ListParams::default().labels("type=kwok")).await?;
    if nodes.items.is_empty() {
        return Ok(());
    }
    let capacity: usize = nodes
        .items
        .iter()
        .filter_map(|n| n.status.as_ref()?.allocatable.as_ref()?.get("pods"))
        .filter_map(|q| q.0.parse::<usize>().ok())
        .sum();
    // Room for the apps plus the pods that are still going away from the last run.
    let want = pods * 2;
    if capacity >= want {
        return Ok(());
    }
    let per_node = want.div_ceil(nodes.items.len()).max(110).to_string();
    eprintln!(
        "raising pod capacity of the {} kwok nodes from {capacity} in all to {per_node} each",
        nodes.items.len()
    );
    for node in &nodes.items {
        let patch = json!({"status": {
            "capacity": {"pods": per_node},
            "allocatable": {"pods": per_node},
        }});
        api.patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------- floor

/// One server-side apply, as halo makes it, without anything around it.
async fn floor_apply<K>(client: &Client, ns: &str, obj: &K) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &obj.name_any(),
        &PatchParams::apply(FLOOR_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .with_context(|| format!("floor: apply {} {ns}/{}", K::kind(&()), obj.name_any()))?;
    Ok(())
}

/// validate + render + server-side apply of every rendered object, 16 apps at a time.
async fn floor(client: &Client, apps: &[(HighlyAvailableApp, Instant)]) -> anyhow::Result<f64> {
    let start = Instant::now();
    stream::iter(apps)
        .map(|(app, _)| async move {
            let ns = app.namespace().unwrap_or_default();
            let owner = owner_of(app, &ns, None)?;
            let children = render(&validate(app, owner)?);
            if let Some(secret) = &children.secret {
                floor_apply(client, &ns, secret).await?;
            }
            floor_apply(client, &ns, &children.deployment).await?;
            floor_apply(client, &ns, &children.service).await?;
            floor_apply(client, &ns, &children.pdb).await?;
            if let Some(hpa) = &children.hpa {
                floor_apply(client, &ns, hpa).await?;
            }
            if let Some(ingress) = &children.ingress {
                floor_apply(client, &ns, ingress).await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    Ok(start.elapsed().as_secs_f64())
}

// ------------------------------------------------------------------------------- watching

/// When the bench saw each step of one app (local clock, at the watch event).
#[derive(Clone, Debug, Default)]
struct Times {
    created: Option<Instant>,
    status_current: Option<Instant>,
    children: [Option<Instant>; 5],
    compute_ready: Option<Instant>,
    /// DatabaseReady and CacheReady both True (apps with data sections).
    data_ready: Option<Instant>,
}

impl Times {
    /// Status describes the current generation and all five children exist.
    fn converged(&self) -> Option<Instant> {
        let mut latest = self.status_current?;
        for c in &self.children {
            latest = latest.max((*c)?);
        }
        Some(latest)
    }

    /// [`Times::converged`] and the data sections ready.
    fn converged_with_data(&self) -> Option<Instant> {
        Some(self.converged()?.max(self.data_ready?))
    }
}

type Tracker = Arc<Mutex<HashMap<String, Times>>>;

fn note(tracker: &Tracker, name: &str, f: impl FnOnce(&mut Times)) {
    let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
    f(t.entry(name.to_string()).or_default());
}

/// Watches the apps and their children in `ns`; returns once every watch has listed.
async fn watch(client: &Client, ns: &str, tracker: &Tracker) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(8);
    let apps: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), ns);
    {
        let tracker = tracker.clone();
        let ready = ready_tx.clone();
        let mut events = watcher(apps, watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(Event::Apply(app) | Event::InitApply(app)) => {
                        let now = Instant::now();
                        let current = app.status.as_ref().and_then(|s| s.observed_generation)
                            == app.metadata.generation
                            && app.metadata.generation.is_some();
                        let ready = current
                            && halo_e2e::condition(&app, "ComputeReady")
                                .is_some_and(|c| c.0 == "True");
                        let data_ready = current
                            && ["DatabaseReady", "CacheReady"].iter().all(|c| {
                                halo_e2e::condition(&app, c).is_some_and(|c| c.0 == "True")
                            });
                        note(&tracker, &app.name_any(), |t| {
                            if data_ready && t.data_ready.is_none() {
                                t.data_ready = Some(now);
                            }
                            if current && t.status_current.is_none() {
                                t.status_current = Some(now);
                            }
                            if ready && t.compute_ready.is_none() {
                                t.compute_ready = Some(now);
                            }
                        });
                    }
                    Ok(Event::InitDone) => {
                        let _ = ready.send(()).await;
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("watch of apps: {e}"),
                }
            }
        });
    }
    spawn_child_watch::<Deployment>(client, ns, 0, tracker, ready_tx.clone());
    spawn_child_watch::<Service>(client, ns, 1, tracker, ready_tx.clone());
    spawn_child_watch::<PodDisruptionBudget>(client, ns, 2, tracker, ready_tx.clone());
    spawn_child_watch::<HorizontalPodAutoscaler>(client, ns, 3, tracker, ready_tx.clone());
    spawn_child_watch::<Ingress>(client, ns, 4, tracker, ready_tx);
    for _ in 0..6 {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .context("the bench's watches did not list within 60 s")?;
    }
    Ok(())
}

fn spawn_child_watch<K>(
    client: &Client,
    ns: &str,
    index: usize,
    tracker: &Tracker,
    ready: tokio::sync::mpsc::Sender<()>,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    // Metadata only: the bench needs names, not objects.
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), ns);
    let tracker = tracker.clone();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(Event::Apply(obj) | Event::InitApply(obj)) => {
                    let now = Instant::now();
                    note(&tracker, &obj.name_any(), |t| {
                        t.children[index].get_or_insert(now);
                    });
                }
                Ok(Event::InitDone) => {
                    let _ = ready.send(()).await;
                }
                Ok(_) => {}
                Err(e) => eprintln!("watch of {}: {e}", KINDS[index]),
            }
        }
    });
}

/// Waits until `done` holds for all `n` apps or `timeout` passes; returns how many it held for.
async fn wait_all(
    tracker: &Tracker,
    n: usize,
    timeout: Duration,
    halo: &mut Halo,
    done: impl Fn(&Times) -> bool,
) -> anyhow::Result<usize> {
    let start = Instant::now();
    loop {
        let count = tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|t| done(t))
            .count();
        if count >= n || start.elapsed() > timeout {
            return Ok(count);
        }
        halo.check_alive()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

// ------------------------------------------------------------------------------- one N

#[derive(Debug, Default, Serialize)]
struct Row {
    n: usize,
    floor_s: f64,
    floor_requests: Requests,
    create_s: f64,
    /// All N created -> all N converged.
    converge_s: Option<f64>,
    /// First create sent -> all N converged.
    span_s: Option<f64>,
    converged: usize,
    p50_s: Option<f64>,
    p99_s: Option<f64>,
    /// All N created -> every app ComputeReady.
    ready_s: Option<f64>,
    ready: usize,
    converge_requests: Requests,
    /// halo_reconciles_total while converging and settling (with /metrics).
    converge_reconciles: Option<f64>,
    settle_requests: Requests,
    settle_reconciles: Option<f64>,
    steady_requests: Requests,
    steady_reconciles: Option<f64>,
    restart_s: Option<f64>,
    restart_method: &'static str,
    restart_requests: Requests,
    idle: ProcSample,
    startup_cpu_s: f64,
    converge_cpu_s: f64,
    settle_cpu_s: f64,
    steady_cpu_s: f64,
    restart_cpu_s: f64,
    converged_mem: ProcSample,
    restart_mem: ProcSample,
    steady_mem: ProcSample,
}

async fn run_one(
    args: &Args,
    client: &Client,
    floor_client: &Client,
    n: usize,
    last: bool,
    ticks: f64,
    metrics: bool,
) -> anyhow::Result<Row> {
    let mut row = Row {
        n,
        ..Row::default()
    };
    // About 1 app/s on the 2-core machine of BENCHMARKS.md: generous, it only bounds a hang.
    let converge_timeout = Duration::from_secs(300 + 3 * n as u64);
    let ready_timeout = Duration::from_secs(300 + 2 * n as u64);

    // ---- floor: halo is not running, so nothing but the floor client touches these objects.
    let ns = format!("bench-floor-{n}");
    eprintln!("[{n}] floor: creating {n} apps in {ns}");
    create_namespace(client, &ns).await?;
    let apps = create_apps(client, &ns, n).await?;
    let mark = audit::mark();
    row.floor_s = floor(floor_client, &apps).await?;
    row.floor_requests = requests_since(mark, FLOOR_AGENT)?;
    eprintln!(
        "[{n}] floor: {:.1} s ({}); deleting {ns}",
        row.floor_s,
        row.floor_requests.summary()
    );
    let gone = delete_namespace(client, &ns).await?;
    eprintln!("[{n}] floor: {ns} gone after {gone:.0} s");

    // ---- idle
    let start = Instant::now();
    let mark = audit::mark();
    let mut halo = start_halo(args, &format!("halo-bench-{n}"), metrics, None).await?;
    eprintln!("[{n}] started halo (pid {})", halo.pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_quiet(&mut halo, start, mark, ticks, Duration::from_secs(120)).await?;
    row.idle = sample(halo.pid, ticks)?;
    row.startup_cpu_s = row.idle.cpu_s;
    eprintln!(
        "[{n}] idle: RSS {:.1} MB, {:.2} CPU s to start",
        row.idle.rss_mb, row.startup_cpu_s
    );

    // ---- converge
    let ns = format!("bench-halo-{n}");
    create_namespace(client, &ns).await?;
    let tracker: Tracker = Arc::default();
    watch(client, &ns, &tracker).await?;
    let cpu0 = sample(halo.pid, ticks)?.cpu_s;
    let reconciles0 = halo.reconciles().await;
    let mark = audit::mark();
    let first = Instant::now();
    eprintln!("[{n}] converge: creating {n} apps in {ns}");
    let created = create_apps(client, &ns, n).await?;
    let all_created = Instant::now();
    row.create_s = (all_created - first).as_secs_f64();
    for (app, at) in &created {
        note(&tracker, &app.name_any(), |t| t.created = Some(*at));
    }
    row.converged = wait_all(&tracker, n, converge_timeout, &mut halo, |t| {
        t.converged().is_some()
    })
    .await?;
    let times: Vec<Times> = tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    let last_converged = times.iter().filter_map(Times::converged).max();
    if row.converged >= n
        && let Some(last) = last_converged
    {
        row.converge_s = Some(last.saturating_duration_since(all_created).as_secs_f64());
        row.span_s = Some((last - first).as_secs_f64());
    }
    let mut latencies: Vec<f64> = times
        .iter()
        .filter_map(|t| {
            Some(
                t.converged()?
                    .saturating_duration_since(t.created?)
                    .as_secs_f64(),
            )
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    row.p50_s = percentile(&latencies, 50.0);
    row.p99_s = percentile(&latencies, 99.0);
    row.converge_requests = requests_since(mark, audit_agent())?;
    row.converge_cpu_s = sample(halo.pid, ticks)?.cpu_s - cpu0;
    let reconciles1 = halo.reconciles().await;
    row.converge_reconciles = delta(reconciles0, reconciles1);
    eprintln!(
        "[{n}] converge: {}/{n} in {:?} s (create {:.1} s); halo: {}",
        row.converged,
        row.converge_s.map(|s| (s * 10.0).round() / 10.0),
        row.create_s,
        row.converge_requests.summary()
    );

    // ---- ready: pods exist and are ready; then halo settles (status follows the pods)
    let cpu1 = sample(halo.pid, ticks)?.cpu_s;
    let mark = audit::mark();
    row.ready = wait_all(&tracker, n, ready_timeout, &mut halo, |t| {
        t.compute_ready.is_some()
    })
    .await?;
    if row.ready >= n {
        let last_ready = tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|t| t.compute_ready)
            .max();
        row.ready_s = last_ready.map(|l| l.saturating_duration_since(all_created).as_secs_f64());
    }
    eprintln!(
        "[{n}] ready: {}/{n} ComputeReady, {:?} s after all created; waiting for halo to settle",
        row.ready,
        row.ready_s.map(|s| s.round())
    );
    let settle_start = Instant::now();
    wait_quiet(
        &mut halo,
        settle_start,
        mark,
        ticks,
        Duration::from_secs(300),
    )
    .await?;
    row.settle_requests = requests_since(mark, audit_agent())?;
    row.settle_cpu_s = sample(halo.pid, ticks)?.cpu_s - cpu1;
    row.settle_reconciles = delta(reconciles1, halo.reconciles().await);
    eprintln!("[{n}] settled: halo: {}", row.settle_requests.summary());

    let s = sample(halo.pid, ticks)?;
    row.converged_mem = s;
    eprintln!(
        "[{n}] converged: RSS {:.1} MB, peak {:.1} MB",
        s.rss_mb, s.hwm_mb
    );

    // ---- restart
    halo.stop().await?;
    let mark = audit::mark();
    let start = Instant::now();
    let mut halo = start_halo(
        args,
        &format!("halo-bench-{n}-restart"),
        metrics,
        Some(args.resync),
    )
    .await?;
    eprintln!("[{n}] restarted halo (pid {})", halo.pid);
    let mut verified = None;
    if halo.metrics_addr.is_some() {
        while start.elapsed() < Duration::from_secs(300) {
            halo.check_alive()?;
            if halo.reconciles().await.is_some_and(|r| r >= n as f64) {
                verified = Some(start.elapsed());
                row.restart_method = "halo_reconciles_total >= N on /metrics";
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if verified.is_none() {
        row.restart_method = "until halo is quiet (no request, no CPU) for 3 s";
        verified = wait_quiet(&mut halo, start, mark, ticks, Duration::from_secs(300)).await?;
    } else {
        // Writes that follow the last reconcile (e.g. a status patch) still count.
        wait_quiet(&mut halo, start, mark, ticks, Duration::from_secs(120)).await?;
    }
    row.restart_s = verified.map(|d| d.as_secs_f64());
    row.restart_requests = requests_since(mark, audit_agent())?;
    let s = sample(halo.pid, ticks)?;
    row.restart_cpu_s = s.cpu_s;
    row.restart_mem = s;
    eprintln!(
        "[{n}] restart: {:?} s ({}); {} writes, {} reads ({}); RSS {:.1} MB, peak {:.1} MB",
        row.restart_s.map(|s| (s * 10.0).round() / 10.0),
        row.restart_method,
        row.restart_requests.writes,
        row.restart_requests.reads,
        row.restart_requests.summary(),
        s.rss_mb,
        s.hwm_mb
    );
    // ---- steady: one full resync period
    let cpu2 = sample(halo.pid, ticks)?.cpu_s;
    let reconciles0 = halo.reconciles().await;
    let mark = audit::mark();
    eprintln!(
        "[{n}] steady: watching one resync period ({} s + 5 s)",
        args.resync
    );
    tokio::time::sleep(Duration::from_secs(args.resync + 5)).await;
    halo.check_alive()?;
    row.steady_requests = requests_since(mark, audit_agent())?;
    let s = sample(halo.pid, ticks)?;
    row.steady_cpu_s = s.cpu_s - cpu2;
    row.steady_mem = s;
    row.steady_reconciles = delta(reconciles0, halo.reconciles().await);
    eprintln!(
        "[{n}] steady: {} writes, {} reads ({}); RSS {:.1} MB, peak {:.1} MB",
        row.steady_requests.writes,
        row.steady_requests.reads,
        row.steady_requests.summary(),
        s.rss_mb,
        s.hwm_mb
    );

    halo.stop().await?;

    if last && args.keep_last {
        eprintln!("[{n}] leaving {ns} in place");
    } else {
        let gone = delete_namespace(client, &ns).await?;
        eprintln!("[{n}] {ns} gone after {gone:.0} s");
    }
    Ok(row)
}

// ------------------------------------------------------------------------------- report

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

fn print_tables(rows: &[Row], args: &Args, metrics: bool) {
    let mut out = String::new();
    let p = &mut out;
    let line = |p: &mut String, s: String| {
        p.push_str(&s);
        p.push('\n');
    };
    line(
        p,
        format!(
            "\nhalo benchmark: binary {}, resync {} s, concurrency {CONCURRENCY}; each app: \
             Deployment, Service, PDB, HPA (minReplicas {PODS_PER_APP}), Ingress; minZones 1",
            args.halo_bin.display(),
            args.resync
        ),
    );
    line(p, "\n1-2. converge (seconds; latency = create returned -> status current and 5 children seen)".into());
    line(
        p,
        format!(
            "{:>6} {:>8} {:>10} {:>7} {:>6} {:>6} {:>8} {:>6} {:>9} {:>8} {:>10} {:>10}",
            "N",
            "create",
            "converge",
            "apps/s",
            "p50",
            "p99",
            "floor",
            "ratio",
            "ratio*",
            "ready",
            "wr/app",
            "rd/app"
        ),
    );
    for r in rows {
        let apps_s = r.converge_s.map(|s| r.n as f64 / s.max(1e-9));
        let ratio = r.converge_s.map(|s| s / r.floor_s.max(1e-9));
        let span_ratio = r.span_s.map(|s| s / r.floor_s.max(1e-9));
        let ready = match r.ready_s {
            Some(s) => format!("{s:.0}"),
            None => format!("{}/{}", r.ready, r.n),
        };
        let converge = match r.converge_s {
            Some(s) => format!("{s:.1}"),
            None => format!("{}/{}", r.converged, r.n),
        };
        line(
            p,
            format!(
                "{:>6} {:>8.1} {:>10} {:>7} {:>6} {:>6} {:>8.1} {:>6} {:>9} {:>8} {:>10.1} {:>10.1}",
                r.n,
                r.create_s,
                converge,
                opt(apps_s, 1),
                opt(r.p50_s, 2),
                opt(r.p99_s, 2),
                r.floor_s,
                opt(ratio, 2),
                opt(span_ratio, 2),
                ready,
                r.converge_requests.writes as f64 / r.n as f64,
                r.converge_requests.reads as f64 / r.n as f64,
            ),
        );
    }
    line(
        p,
        "ratio = converge / floor; ratio* = (create + converge) / floor (halo already works while \
         the apps are being created); ready = all created -> every app ComputeReady; wr/app, \
         rd/app = halo's requests per app while converging"
            .into(),
    );
    line(
        p,
        "\n3-6. cost (requests from the audit log; MB = VmRSS/VmHWM; CPU = utime+stime seconds)"
            .into(),
    );
    line(
        p,
        format!(
            "{:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "N",
            "steady wr",
            "lease",
            "steady rd",
            "restart s",
            "restart wr",
            "restart rd",
            "RSS idle",
            "RSS N",
            "peak",
            "peak rst",
            "RSS rst"
        ),
    );
    for r in rows {
        line(
            p,
            format!(
                "{:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
                r.n,
                r.steady_requests.writes,
                r.steady_requests.lease,
                r.steady_requests.reads,
                opt(r.restart_s, 1),
                r.restart_requests.writes,
                r.restart_requests.reads,
                r.idle.rss_mb,
                r.converged_mem.rss_mb,
                r.converged_mem.hwm_mb,
                r.restart_mem.hwm_mb,
                r.restart_mem.rss_mb,
            ),
        );
    }
    line(
        p,
        format!(
            "steady = one resync period ({} s + 5 s); wr, rd = requests other than for the \
             leader Lease (lease: its renewals); restart s: {}",
            args.resync,
            rows.first().map_or("", |r| r.restart_method)
        ),
    );
    line(
        p,
        "\n6. halo per phase: CPU seconds / reconciles (halo_reconciles_total)".into(),
    );
    line(
        p,
        format!(
            "{:>6} {:>8} {:>14} {:>14} {:>14} {:>8}",
            "N", "startup", "converge", "settle", "steady", "restart"
        ),
    );
    let cell = |cpu: f64, rec: Option<f64>| format!("{cpu:.2} / {}", opt(rec, 0));
    for r in rows {
        line(
            p,
            format!(
                "{:>6} {:>8.2} {:>14} {:>14} {:>14} {:>8.2}",
                r.n,
                r.startup_cpu_s,
                cell(r.converge_cpu_s, r.converge_reconciles),
                cell(r.settle_cpu_s, r.settle_reconciles),
                cell(r.steady_cpu_s, r.steady_reconciles),
                r.restart_cpu_s,
            ),
        );
    }
    if !metrics {
        line(
            p,
            "reconciles need halo's /metrics (--metrics-addr), which this binary does not have"
                .into(),
        );
    }
    line(p, "\nrequests by verb and resource:".into());
    for r in rows {
        line(
            p,
            format!("  N={} floor:    {}", r.n, r.floor_requests.summary()),
        );
        line(
            p,
            format!("  N={} converge: {}", r.n, r.converge_requests.summary()),
        );
        line(
            p,
            format!("  N={} settle:   {}", r.n, r.settle_requests.summary()),
        );
        line(
            p,
            format!("  N={} steady:   {}", r.n, r.steady_requests.summary()),
        );
        line(
            p,
            format!("  N={} restart:  {}", r.n, r.restart_requests.summary()),
        );
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

// ------------------------------------------------------------------------------- --aws

/// One request to moto's own API (HTTP/1.0: moto closes the connection after answering);
/// returns the body.
async fn moto_api(url: &str, method: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to moto at {addr}"))?;
    stream
        .write_all(
            format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("moto answered {method} {path} with no HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        bail!("moto answered {method} {path} with {status}");
    }
    Ok(body.to_string())
}

/// Standard base64 (moto stores request bodies that way); None on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// AWS calls halo made, from moto's request recording.
#[derive(Clone, Debug, Default, Serialize)]
struct AwsCalls {
    total: usize,
    /// Signing service (from the Authorization header's credential scope) -> calls.
    by_service: BTreeMap<String, usize>,
    /// `service Action` -> calls.
    by_action: BTreeMap<String, usize>,
    /// service -> X-Amz-Date second -> calls.
    per_second: BTreeMap<String, BTreeMap<String, usize>>,
}

impl AwsCalls {
    fn peak_per_second(&self, service: &str) -> usize {
        self.per_second
            .get(service)
            .and_then(|s| s.values().max().copied())
            .unwrap_or(0)
    }
}

/// Parses moto's recording: one JSON object per request with its headers and body.
fn parse_recording(text: &str) -> AwsCalls {
    let mut calls = AwsCalls::default();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let header = |name: &str| {
            entry["headers"].as_object().and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
            })
        };
        // `Credential=KEY/DATE/REGION/SERVICE/aws4_request`
        let service = header("Authorization")
            .and_then(|a| a.split_once("Credential=").map(|(_, c)| c))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unsigned")
            .to_string();
        let body = match entry["body"].as_str() {
            Some(b) if entry["body_encoded"] == true => {
                base64_decode(b).map(|v| String::from_utf8_lossy(&v).into_owned())
            }
            Some(b) => Some(b.to_string()),
            None => None,
        }
        .unwrap_or_default();
        let url = entry["url"].as_str().unwrap_or_default();
        let form_action = |text: &str| {
            text.split(['&', '?'])
                .find_map(|kv| kv.strip_prefix("Action="))
                .map(str::to_string)
        };
        // JSON protocol (X-Amz-Target), query protocol (Action=), else the REST path.
        let action = header("X-Amz-Target")
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
            .or_else(|| form_action(&body))
            .or_else(|| form_action(url))
            .unwrap_or_else(|| {
                let method = entry["method"].as_str().unwrap_or("?");
                let path = url.split('?').next().unwrap_or(url);
                let path = path
                    .split_once("://")
                    .map_or(path, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
                format!("{method} {path}")
            });
        let second = header("X-Amz-Date").unwrap_or("-").to_string();
        calls.total += 1;
        *calls.by_service.entry(service.clone()).or_default() += 1;
        *calls
            .by_action
            .entry(format!("{service} {action}"))
            .or_default() += 1;
        *calls
            .per_second
            .entry(service)
            .or_default()
            .entry(second)
            .or_default() += 1;
    }
    calls
}

#[derive(Debug, Default, Serialize)]
struct AwsRow {
    n: usize,
    create_s: f64,
    /// All N created -> all N converged with DatabaseReady and CacheReady.
    converge_s: Option<f64>,
    converged: usize,
    p50_s: Option<f64>,
    p99_s: Option<f64>,
    calls: AwsCalls,
    converge_requests: Requests,
    converge_cpu_s: f64,
    mem: ProcSample,
    cleanup_s: f64,
}

/// Phase 1 with the data sections, halo against moto; the apps are deleted again afterwards
/// with halo still running, so its finalizer cleans up in moto.
async fn run_aws(
    args: &Args,
    client: &Client,
    url: &str,
    n: usize,
    ticks: f64,
    metrics: bool,
) -> anyhow::Result<AwsRow> {
    let mut row = AwsRow {
        n,
        ..AwsRow::default()
    };
    let timeout = Duration::from_secs(300 + 3 * n as u64);
    let ns = format!("bench-aws-{n}");
    let mut halo = start_halo(args, &format!("halo-bench-aws-{n}"), metrics, None).await?;
    eprintln!("[aws {n}] started halo (pid {}) against {url}", halo.pid);
    create_namespace(client, &ns).await?;
    let tracker: Tracker = Arc::default();
    watch(client, &ns, &tracker).await?;
    moto_api(url, "POST", "/moto-api/recorder/reset-recording").await?;
    moto_api(url, "POST", "/moto-api/recorder/start-recording").await?;
    let cpu0 = sample(halo.pid, ticks)?.cpu_s;
    let mark = audit::mark();
    eprintln!("[aws {n}] converge: creating {n} apps with database and cache in {ns}");
    let first = Instant::now();
    let created = create_apps_with(client, &ns, n, bench_data_app).await?;
    let all_created = Instant::now();
    row.create_s = (all_created - first).as_secs_f64();
    for (app, at) in &created {
        note(&tracker, &app.name_any(), |t| t.created = Some(*at));
    }
    row.converged = wait_all(&tracker, n, timeout, &mut halo, |t| {
        t.converged_with_data().is_some()
    })
    .await?;
    let recording = moto_api(url, "GET", "/moto-api/recorder/download-recording").await?;
    moto_api(url, "POST", "/moto-api/recorder/stop-recording").await?;
    row.calls = parse_recording(&recording);
    row.converge_requests = requests_since(mark, audit_agent())?;
    let s = sample(halo.pid, ticks)?;
    row.converge_cpu_s = s.cpu_s - cpu0;
    row.mem = s;
    let times: Vec<Times> = tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    if row.converged >= n
        && let Some(last) = times.iter().filter_map(Times::converged_with_data).max()
    {
        row.converge_s = Some(last.saturating_duration_since(all_created).as_secs_f64());
    }
    let mut latencies: Vec<f64> = times
        .iter()
        .filter_map(|t| {
            Some(
                t.converged_with_data()?
                    .saturating_duration_since(t.created?)
                    .as_secs_f64(),
            )
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    row.p50_s = percentile(&latencies, 50.0);
    row.p99_s = percentile(&latencies, 99.0);
    eprintln!(
        "[aws {n}] converge: {}/{n} in {:?} s; {} AWS calls ({:?}); halo's Kubernetes requests: {}",
        row.converged,
        row.converge_s.map(|s| (s * 10.0).round() / 10.0),
        row.calls.total,
        row.calls.by_service,
        row.converge_requests.summary()
    );
    eprintln!("[aws {n}] deleting {ns} (halo's finalizer deletes the AWS resources)");
    row.cleanup_s = delete_namespace(client, &ns).await?;
    eprintln!("[aws {n}] {ns} gone after {:.0} s", row.cleanup_s);
    halo.stop().await?;
    Ok(row)
}

fn print_aws_tables(rows: &[AwsRow], url: &str) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "\nhalo benchmark --aws: phase 1 with the data sections (Aurora PostgreSQL, 2 instances; \
         Redis, 1 replica) against moto at {url}; concurrency {CONCURRENCY}, \
         HALO_AWS_POLL_BUSY_SECONDS=5"
    ));
    line(format!(
        "{:>6} {:>8} {:>10} {:>7} {:>7} {:>7} {:>9} {:>10} {:>9} {:>8}",
        "N",
        "create",
        "converge",
        "apps/s",
        "p50",
        "p99",
        "AWS calls",
        "calls/app",
        "calls/s",
        "cpu s"
    ));
    for r in rows {
        let converge = match r.converge_s {
            Some(s) => format!("{s:.1}"),
            None => format!("{}/{}", r.converged, r.n),
        };
        line(format!(
            "{:>6} {:>8.1} {:>10} {:>7} {:>7} {:>7} {:>9} {:>10.1} {:>9} {:>8.2}",
            r.n,
            r.create_s,
            converge,
            opt(r.converge_s.map(|s| r.n as f64 / s.max(1e-9)), 1),
            opt(r.p50_s, 1),
            opt(r.p99_s, 1),
            r.calls.total,
            r.calls.total as f64 / r.n as f64,
            opt(
                r.converge_s
                    .map(|s| r.calls.total as f64 / (s + r.create_s).max(1e-9)),
                1
            ),
            r.converge_cpu_s,
        ));
    }
    line(
        "converge = all created -> every app has its 5 children, a current status, DatabaseReady \
         and CacheReady; calls/s = calls / (create + converge)"
            .into(),
    );
    line(format!(
        "\n{:>6} {:>16} {:>7} {:>9} {:>8} {:>8}",
        "N", "service", "calls", "calls/app", "mean/s", "peak/s"
    ));
    for r in rows {
        let window = r.converge_s.map(|s| s + r.create_s);
        for (service, calls) in &r.calls.by_service {
            line(format!(
                "{:>6} {:>16} {:>7} {:>9.1} {:>8} {:>8}",
                r.n,
                service,
                calls,
                *calls as f64 / r.n as f64,
                opt(window.map(|w| *calls as f64 / w.max(1e-9)), 1),
                r.calls.peak_per_second(service),
            ));
        }
    }
    line(
        "peak/s = most calls within one second (X-Amz-Date); halo rate-limits on the client \
         side only the APIs with account-wide quotas (Route 53), which these apps do not use"
            .into(),
    );
    line("\nAWS calls by action:".into());
    for r in rows {
        let mut v: Vec<_> = r.calls.by_action.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        line(format!(
            "  N={}: {}",
            r.n,
            v.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        line(format!(
            "  N={} Kubernetes requests: {}",
            r.n,
            r.converge_requests.summary()
        ));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let client = client_with_agent(BENCH_AGENT).await?;
    let floor_client = client_with_agent(FLOOR_AGENT).await?;
    let ticks = clock_ticks();
    let metrics = has_metrics_flag(&args.halo_bin);
    if !metrics {
        eprintln!(
            "{} has no --metrics-addr: restart time is measured as the time until halo is quiet",
            args.halo_bin.display()
        );
    }
    let max_n = args.sizes.iter().copied().max().unwrap_or(0);
    make_room(&client, max_n * PODS_PER_APP).await?;
    if let Some(url) = &args.aws {
        let mut rows = Vec::new();
        for &n in &args.sizes {
            rows.push(run_aws(&args, &client, url, n, ticks, metrics).await?);
        }
        print_aws_tables(&rows, url);
        if let Some(path) = &args.json_out {
            std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for (i, &n) in args.sizes.iter().enumerate() {
        let last = i + 1 == args.sizes.len();
        rows.push(run_one(&args, &client, &floor_client, n, last, ticks, metrics).await?);
    }
    print_tables(&rows, &args, metrics);
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moto's recording names the service in the signature's credential scope and the action
    /// in a base64 form body (query protocol) or in X-Amz-Target (JSON protocol).
    #[test]
    fn recording_is_counted_by_service_and_action() {
        let text = [
            json!({"headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=x",
                               "X-Amz-Date": "20261129T192500Z"},
                   "method": "POST", "url": "http://127.0.0.1:15530/",
                   "body": "QWN0aW9uPURlc2NyaWJlREJDbHVzdGVycyZWZXJzaW9uPTIwMTQtMTAtMzE=", "body_encoded": true}),
            json!({"headers": {"authorization": "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/secretsmanager/aws4_request, Signature=x",
                               "x-amz-date": "20261129T192500Z", "X-Amz-Target": "secretsmanager.CreateSecret"},
                   "method": "POST", "url": "http://127.0.0.1:15530/", "body": "{}", "body_encoded": false}),
            json!({"headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/rds/aws4_request",
                               "X-Amz-Date": "20261129T192501Z"},
                   "method": "POST", "url": "http://127.0.0.1:15530/?Action=DescribeDBClusters", "body": "", "body_encoded": false}),
        ]
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n");
        let calls = parse_recording(&text);
        assert_eq!(calls.total, 3);
        assert_eq!(calls.by_service.get("rds"), Some(&2));
        assert_eq!(calls.by_action.get("rds DescribeDBClusters"), Some(&2));
        assert_eq!(calls.by_action.get("secretsmanager CreateSecret"), Some(&1));
        assert_eq!(calls.peak_per_second("rds"), 1);
    }
}
