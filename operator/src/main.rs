//! The `halo` command: run the operator, print the CRD, or preview what an app renders to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kube::CustomResourceExt;

use halo::crd::HighlyAvailableApp;
use halo::render::render;
use halo::validate::{owner_of, validate};

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
    },
    /// Print the HighlyAvailableApp CustomResourceDefinition as YAML.
    Crd,
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
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
        Command::Crd => {
            print!("{}", crd_yaml()?);
            Ok(())
        }
        Command::Render {
            file,
            output,
            namespace,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            print!("{}", render_manifest(&text, &namespace, output)?);
            Ok(())
        }
        Command::Run {
            resync_seconds,
            concurrency,
            log_format,
        } => {
            init_logging(log_format);
            let mut kube_config = kube::Config::infer()
                .await
                .context("loading the kubeconfig or in-cluster config")?;
            // A distinct user agent lets audit logs and apiserver metrics single out halo's requests.
            kube_config.headers.push((
                http::header::USER_AGENT,
                http::HeaderValue::from_static(USER_AGENT),
            ));
            let client = kube::Client::try_from(kube_config)
                .context("connecting to the Kubernetes API server")?;
            let config = halo::controller::Config {
                resync: Duration::from_secs(resync_seconds),
                concurrency,
            };
            halo::controller::run(client, config).await
        }
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

fn crd_yaml() -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(&HighlyAvailableApp::crd())?)
}

/// Renders every HighlyAvailableApp in `text`, refusing specs the API server would refuse.
fn render_manifest(text: &str, namespace: &str, output: Output) -> anyhow::Result<String> {
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
        let validated = validate(&app, owner)?;
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
        let out = render_manifest(text, "default", Output::Yaml).expect("renders");
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
        let json = render_manifest(text, "default", Output::Json).expect("renders json");
        let list: serde_json::Value = serde_json::from_str(&json).expect("valid json");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(5));
        assert_eq!(list["items"][0]["metadata"]["namespace"], "shop");
    }

    /// A spec the API server would refuse is refused by the preview too, naming the field.
    #[test]
    fn render_refuses_invalid_specs() {
        let text = include_str!("../../config/samples/small.yaml")
            .replace("port: 8080", "port: 8080\n  replicas: 2");
        let err = render_manifest(&text, "default", Output::Yaml)
            .expect_err("must be refused")
            .to_string();
        assert!(
            err.contains("spec.replicas: replicas must be at least zones.minZones"),
            "{err}"
        );
    }

    /// No HighlyAvailableApp in the input is an error, not an empty preview.
    #[test]
    fn render_needs_an_app() {
        let err = render_manifest("apiVersion: v1\nkind: ConfigMap\n", "default", Output::Yaml)
            .expect_err("error");
        assert_eq!(err.to_string(), "no HighlyAvailableApp found in the input");
    }
}
