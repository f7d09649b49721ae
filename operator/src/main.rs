//! The `halo` command: run the operator, print the CRD, or preview what an app renders to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use halo::api::HighlyAvailableApp;
use halo::http::Health;
use halo::leader::{Ended, LeaseConfig, LeaseTiming, run_as_leader};
use halo::render::render;
use halo::tenancy::TenancyPolicy;
use halo::validate::{owner_of, validate_in};
use tracing::warn;

/// User agent of every request halo makes to the API server.
const USER_AGENT: &str = concat!("halo/", env!("CARGO_PKG_VERSION"));

#[derive(Parser)]
#[command(
    name = "halo",
    version,
    about = "Makes an application survive the loss of a node or an Availability Zone"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster config).
    Run {
        /// Seconds between re-checks of a converged app.
        #[arg(long, env = "HALO_RESYNC_SECONDS", default_value_t = 300)]
        resync_seconds: u64,
        /// Most apps reconciled at once.
        #[arg(long, env = "HALO_CONCURRENCY", default_value_t = 16)]
        concurrency: u16,
        /// Log format.
        #[arg(long, env = "HALO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
        log_format: LogFormat,
        /// Address of /healthz, /readyz and /metrics (0.0.0.0:8080 in a cluster).
        #[arg(long, env = "HALO_METRICS_ADDR", default_value = "127.0.0.1:8080")]
        metrics_addr: std::net::SocketAddr,
        /// Run only while holding the leader Lease, so several replicas can run.
        #[arg(long, env = "HALO_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
        /// Namespace of the leader Lease (default: POD_NAMESPACE, else "default").
        #[arg(long, env = "HALO_LEASE_NAMESPACE")]
        lease_namespace: Option<String>,
        /// Name of the leader Lease.
        #[arg(long, env = "HALO_LEASE_NAME", default_value = "halo-leader")]
        lease_name: String,
        /// Seconds a leader's lease lasts without renewal: how fast a replica takes over from a dead leader.
        #[arg(long, env = "HALO_LEASE_DURATION_SECONDS", default_value_t = 15)]
        lease_duration_seconds: u64,
        /// Seconds before its lease could expire that a leader whose renewals fail stops acting
        /// (covers clock skew between nodes). Default: a third of the lease duration, at least 1.
        #[arg(long, env = "HALO_LEASE_GRACE_SECONDS")]
        lease_grace_seconds: Option<u64>,
        /// Comma-separated namespaces where halo may manage connection Secrets (the chart sets
        /// it with rbac.secrets.clusterWide=false); it then watches Secrets only there and refuses
        /// apps elsewhere that need one. Empty: all namespaces.
        #[arg(long, env = "HALO_SECRET_NAMESPACES", value_delimiter = ',', num_args = 0..)]
        secret_namespaces: Vec<String>,
        // Boxed: the AWS settings dwarf the other commands' arguments.
        #[command(flatten)]
        aws: Box<AwsArgs>,
    },
    /// Print a CustomResourceDefinition as YAML (default: HighlyAvailableApp).
    Crd {
        /// Which CRD, by its plural (crds/halo.dev_<plural>.yaml).
        #[arg(value_enum, default_value_t = CrdKind::Highlyavailableapps)]
        kind: CrdKind,
    },
    /// Print the Kubernetes objects halo would apply for a HighlyAvailableApp manifest, without a cluster.
    Render {
        /// A YAML file with one or more HighlyAvailableApp documents ('-' for standard input).
        file: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
        output: Output,
        /// Namespace for apps whose manifest has none.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// The operator's AWS region: a DynamoDB replica there is refused, as the operator
        /// would. Unset: that check is skipped.
        #[arg(long = "aws-region", env = "HALO_AWS_REGION")]
        region: Option<String>,
    },
}

/// AWS settings. Credentials come only from the SDK's default chain (IRSA, EKS Pod Identity,
/// environment); `AWS_ENDPOINT_URL` points the SDK at an emulator. halo builds no AWS client
/// until an app with a database or a cache needs one.
#[derive(clap::Args)]
struct AwsArgs {
    /// AWS region of the databases and caches, and the default DNS set identifier and cluster
    /// id (default: the SDK's chain, e.g. AWS_REGION).
    #[arg(long = "aws-region", env = "HALO_AWS_REGION")]
    region: Option<String>,
    /// DB subnet group for Aurora clusters whose spec names none.
    #[arg(long, env = "HALO_DB_SUBNET_GROUP")]
    db_subnet_group: Option<String>,
    /// VPC security groups (comma-separated) for Aurora clusters whose spec names none.
    #[arg(long, env = "HALO_DB_SECURITY_GROUPS", value_delimiter = ',')]
    db_security_groups: Vec<String>,
    /// Cache subnet group for ElastiCache replication groups whose spec names none.
    #[arg(long, env = "HALO_CACHE_SUBNET_GROUP")]
    cache_subnet_group: Option<String>,
    /// Security groups (comma-separated) for replication groups whose spec names none.
    #[arg(long, env = "HALO_CACHE_SECURITY_GROUPS", value_delimiter = ',')]
    cache_security_groups: Vec<String>,
    /// Seconds between looks at AWS while it creates or modifies something.
    #[arg(long, env = "HALO_AWS_POLL_BUSY_SECONDS", default_value_t = 15)]
    aws_poll_busy_seconds: u64,
    /// Seconds between looks at AWS once everything is available.
    #[arg(long, env = "HALO_AWS_POLL_STABLE_SECONDS", default_value_t = 300)]
    aws_poll_stable_seconds: u64,
    /// Names this halo installation in the Route 53 ownership records (default: the region).
    /// Installations that write records into one hosted zone need distinct ids; a cluster
    /// that replaces another keeps its id to keep its records.
    #[arg(long, env = "HALO_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// IAM role S3 assumes to replicate static assets buckets (spec.staticAssets.replicateTo).
    #[arg(long, env = "HALO_S3_REPLICATION_ROLE_ARN")]
    s3_replication_role_arn: Option<String>,
}

impl AwsArgs {
    fn config(self) -> halo::aws::AwsConfig {
        let non_empty = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        halo::aws::AwsConfig {
            region: self.region.filter(|r| !r.is_empty()),
            db_subnet_group: self.db_subnet_group.filter(|s| !s.is_empty()),
            db_security_groups: non_empty(self.db_security_groups),
            cache_subnet_group: self.cache_subnet_group.filter(|s| !s.is_empty()),
            cache_security_groups: non_empty(self.cache_security_groups),
            poll_busy: Duration::from_secs(self.aws_poll_busy_seconds.max(1)),
            poll_stable: Duration::from_secs(self.aws_poll_stable_seconds.max(1)),
            cluster_id: self
                .cluster_id
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            s3_replication_role_arn: self.s3_replication_role_arn.filter(|s| !s.is_empty()),
            call_timeout: halo::aws::client::DEFAULT_CALL_TIMEOUT,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CrdKind {
    Highlyavailableapps,
    Tenancypolicies,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => {
            print!("{}", crd_yaml(kind)?);
            Ok(())
        }
        Command::Render {
            file,
            output,
            namespace,
            region,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let region = region.as_deref().filter(|r| !r.is_empty());
            print!("{}", render_manifest(&text, &namespace, region, output)?);
            Ok(())
        }
        Command::Run {
            resync_seconds,
            concurrency,
            log_format,
            metrics_addr,
            leader_elect,
            lease_namespace,
            lease_name,
            lease_duration_seconds,
            lease_grace_seconds,
            secret_namespaces,
            aws,
        } => {
            let lease_timing = leader_elect
                .then(|| LeaseTiming::new(lease_duration_seconds, lease_grace_seconds))
                .transpose()
                .context("invalid leader lease settings")?;
            init_logging(log_format);
            let identity = identity();
            let mut kube_config = kube::Config::infer()
                .await
                .context("loading the kubeconfig or in-cluster config")?;
            // A distinct user agent lets audit logs and apiserver metrics single out halo's requests, per replica.
            let agent = http::HeaderValue::from_str(&format!("{USER_AGENT} ({identity})"))
                .unwrap_or(http::HeaderValue::from_static(USER_AGENT));
            kube_config.headers.push((http::header::USER_AGENT, agent));
            let client = kube::Client::try_from(kube_config)
                .context("connecting to the Kubernetes API server")?;
            let config = halo::controller::Config {
                resync: Duration::from_secs(resync_seconds),
                concurrency,
                aws: aws.config(),
                secret_namespaces: secret_namespaces
                    .into_iter()
                    .map(|ns| ns.trim().to_string())
                    .filter(|ns| !ns.is_empty())
                    .collect(),
            };

            let health = Arc::new(Health::default());
            let listener = halo::http::bind(metrics_addr)
                .await
                .with_context(|| format!("listening on {metrics_addr}"))?;
            tokio::spawn(halo::http::serve(listener, health.clone(), || {
                let metrics = halo::metrics::global();
                metrics.set_apps(&halo::controller::count_apps_by_ready());
                metrics.encode()
            }));

            let Some(timing) = lease_timing else {
                halo::metrics::global().leader.set(1);
                return halo::controller::run(client, config, health).await;
            };
            let lease = LeaseConfig {
                namespace: lease_namespace
                    .or_else(|| std::env::var("POD_NAMESPACE").ok())
                    .unwrap_or_else(|| "default".into()),
                name: lease_name,
                identity,
                timing,
            };
            // A follower is ready: it is healthy and can take over.
            health.ready.store(true, Ordering::Relaxed);
            let on_leading = |leading: bool| {
                halo::metrics::global().leader.set(i64::from(leading));
            };
            // One SIGTERM/SIGINT ends every round of the campaign below.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                terminated().await;
                let _ = stop.send(true);
            });
            loop {
                let mut round = stopped.clone();
                let shutdown = async move {
                    let _ = round.wait_for(|stop| *stop).await;
                };
                let (client, config, lead_health) =
                    (client.clone(), config.clone(), health.clone());
                let ended = run_as_leader(
                    client.clone(),
                    lease.clone(),
                    shutdown,
                    on_leading,
                    move || {
                        // Not ready again until the leader's caches have synced.
                        lead_health.ready.store(false, Ordering::Relaxed);
                        halo::controller::run(client, config, lead_health)
                    },
                )
                .await?;
                match ended {
                    Ended::Finished => break,
                    // The controller, its caches and in-flight requests are gone already; this
                    // replica stays up as a follower (ready, able to take over) and campaigns again,
                    // rather than exiting into a restart back-off.
                    Ended::LostLease => {
                        warn!("lost the leader lease: campaigning again as a follower");
                        health.ready.store(true, Ordering::Relaxed);
                        if *stopped.borrow() {
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Unique per replica: the pod name in a cluster, else host name and pid.
fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// Completes on SIGTERM or SIGINT.
async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn crd_yaml(kind: CrdKind) -> anyhow::Result<String> {
    Ok(match kind {
        CrdKind::Highlyavailableapps => serde_saphyr::to_string(&HighlyAvailableApp::crd())?,
        CrdKind::Tenancypolicies => serde_saphyr::to_string(&TenancyPolicy::crd())?,
    })
}

/// Stands in for the operator's region in `halo render` without `--aws-region`.
const RENDER_REGION: &str = "<operator region>";

/// Renders every HighlyAvailableApp in `text`, refusing specs the API server would refuse, and
/// what the operator in `region` would refuse.
fn render_manifest(
    text: &str,
    namespace: &str,
    region: Option<&str>,
    output: Output,
) -> anyhow::Result<String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).context("parsing YAML")?;
    let mut objects = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("HighlyAvailableApp") {
            continue;
        }
        let app: HighlyAvailableApp =
            serde_json::from_value(doc).context("reading the HighlyAvailableApp")?;
        if let Err(errors) = app.validate_cel() {
            let lines: Vec<String> = errors
                .as_slice()
                .iter()
                .map(|e| format!("  {}: {}", e.field_path, e.message))
                .collect();
            bail!(
                "{} is invalid:\n{}",
                app.metadata.name.as_deref().unwrap_or("<unnamed>"),
                lines.join("\n")
            );
        }
        let owner = owner_of(&app, namespace, Some("<uid assigned by the API server>"))?;
        // The region only defaults the DNS set identifier, which renders into no object.
        let validated = validate_in(&app, owner, Some(region.unwrap_or(RENDER_REGION)))?;
        objects.extend(render(&validated).to_values()?);
    }
    if objects.is_empty() {
        bail!("no HighlyAvailableApp found in the input");
    }
    Ok(match output {
        Output::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            format!("{}\n", serde_json::to_string_pretty(&list)?)
        }
        Output::Yaml => {
            let mut out = String::new();
            for object in &objects {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(object)?);
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preview is a YAML stream with every object the full sample asks for, in apply order.
    #[test]
    fn render_full_sample_prints_all_kinds() {
        let text = include_str!("../../config/samples/full.yaml");
        let out = render_manifest(text, "default", None, Output::Yaml).expect("renders");
        let kinds: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .collect();
        assert_eq!(
            kinds,
            vec![
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "HorizontalPodAutoscaler",
                "Ingress"
            ]
        );
        assert_eq!(out.matches("---\n").count(), 5);
        let json = render_manifest(text, "default", None, Output::Json).expect("renders json");
        let list: serde_json::Value = serde_json::from_str(&json).expect("valid json");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(5));
        assert_eq!(list["items"][0]["metadata"]["namespace"], "shop");
    }

    /// A spec the API server would refuse is refused by the preview too, naming the field.
    #[test]
    fn render_refuses_invalid_specs() {
        let text = include_str!("../../config/samples/small.yaml")
            .replace("port: 8080", "port: 8080\n  replicas: 2");
        let err = render_manifest(&text, "default", None, Output::Yaml)
            .expect_err("must be refused")
            .to_string();
        assert!(
            err.contains("spec.replicas: replicas must be at least zones.minZones"),
            "{err}"
        );
    }

    /// The preview refuses what the API server's CEL rules and the operator refuse: a bucket
    /// name S3 reserves, and, with `--aws-region`, a DynamoDB replica in that region.
    #[test]
    fn render_refuses_bad_input_rows() {
        let small = include_str!("../../config/samples/small.yaml");
        let text = format!(
            "{}\n  staticAssets: {{bucket: xn--shop}}\n",
            small.trim_end()
        );
        let err = render_manifest(&text, "default", None, Output::Yaml)
            .expect_err("must be refused")
            .to_string();
        assert!(
            err.contains("spec.staticAssets.bucket: staticAssets.bucket must not start with xn--"),
            "{err}"
        );
        let text = format!(
            "{}\n  dynamodb: {{tables: [{{name: carts, partitionKey: {{name: id}}, replicaRegions: [us-west-2]}}]}}\n",
            small.trim_end()
        );
        let err = render_manifest(&text, "default", Some("us-west-2"), Output::Yaml)
            .expect_err("must be refused")
            .to_string();
        assert_eq!(
            err,
            "invalid spec: spec.dynamodb.tables[0].replicaRegions: must not contain us-west-2, the operator's region: the table itself is there, and replicas go to other regions"
        );
        assert!(render_manifest(&text, "default", Some("us-east-1"), Output::Yaml).is_ok());
        assert!(render_manifest(&text, "default", None, Output::Yaml).is_ok());
    }

    /// Flags and their env fallbacks become the AWS configuration; lists are comma-separated.
    #[test]
    fn aws_flags_become_the_aws_config() {
        let cli = Cli::try_parse_from([
            "halo",
            "run",
            "--aws-region",
            "eu-west-1",
            "--db-subnet-group",
            "private-db",
            "--db-security-groups",
            "sg-0aaaaaaaaaaaaaaaa,sg-0bbbbbbbbbbbbbbbb",
            "--aws-poll-busy-seconds",
            "5",
            "--s3-replication-role-arn",
            "arn:aws:iam::123456789012:role/halo-s3-replication",
        ])
        .expect("parses");
        let Command::Run { aws, .. } = cli.command else {
            panic!("run command expected");
        };
        let config = aws.config();
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.db_subnet_group.as_deref(), Some("private-db"));
        assert_eq!(
            config.db_security_groups,
            vec!["sg-0aaaaaaaaaaaaaaaa", "sg-0bbbbbbbbbbbbbbbb"]
        );
        assert_eq!(config.cache_security_groups, Vec::<String>::new());
        assert_eq!(config.poll_busy, Duration::from_secs(5));
        assert_eq!(config.poll_stable, Duration::from_secs(300));
        assert_eq!(config.cluster_id, None);
        let cli =
            Cli::try_parse_from(["halo", "run", "--cluster-id", "prod-east"]).expect("parses");
        let Command::Run { aws, .. } = cli.command else {
            panic!("run command expected");
        };
        assert_eq!(aws.config().cluster_id.as_deref(), Some("prod-east"));
        assert_eq!(
            config.s3_replication_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/halo-s3-replication")
        );
    }

    /// No HighlyAvailableApp in the input is an error, not an empty preview.
    #[test]
    fn render_needs_an_app() {
        let err = render_manifest(
            "apiVersion: v1\nkind: ConfigMap\n",
            "default",
            None,
            Output::Yaml,
        )
        .expect_err("error");
        assert_eq!(err.to_string(), "no HighlyAvailableApp found in the input");
    }
}
