//! Leader election on a `coordination.k8s.io` Lease: several replicas run, one reconciles.
//! A leader that learns it lost its lease stops at once (its controller future is dropped,
//! in-flight requests included); the caller then campaigns again as a follower.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{info, warn};

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process (the pod name in a cluster).
    pub identity: String,
    /// How long a lease is valid without renewal: the takeover time when a leader dies.
    pub duration: Duration,
    /// Extra wait before taking over an expired lease (clock skew).
    pub grace: Duration,
}

/// How leading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The work finished (shutdown requested); the lease was released.
    Finished,
    /// Another replica took the lease.
    LostLease,
}

/// Waits for the lease, then runs `lead` while holding it. `lead` is dropped the moment the
/// lease is lost.
/// Waiting for the lease ends early, with [`Ended::Finished`], when `shutdown` completes.
pub async fn run_as_leader<F, Fut>(
    client: Client,
    config: LeaseConfig,
    shutdown: impl Future<Output = ()>,
    on_leading: impl Fn(bool),
    lead: F,
) -> anyhow::Result<Ended>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration.as_secs().max(2))
        .with_grace(config.grace.as_secs().max(1))
        .with_field_manager(crate::meta::FIELD_MANAGER)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "waiting for the leader lease");
    tokio::pin!(shutdown);
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the lease manager stopped");
                }
            }
            () = &mut shutdown => {
                info!("shutting down before acquiring the lease");
                drop(leading);
                let _ = task.await;
                return Ok(Ended::Finished);
            }
        }
    }
    info!(identity = %config.identity, "acquired the leader lease");
    on_leading(true);
    let work = lead();
    tokio::pin!(work);
    let ended = loop {
        tokio::select! {
            result = &mut work => {
                result?;
                break Ended::Finished;
            }
            changed = leading.changed() => {
                if changed.is_err() || !*leading.borrow_and_update() {
                    warn!(identity = %config.identity, "lost the leader lease: stopping at once");
                    break Ended::LostLease;
                }
            }
        }
    };
    on_leading(false);
    // Closing the channel makes the manager release the lease (if still ours) and stop.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!(error = %e, "releasing the lease failed"),
        Err(e) => warn!(error = %e, "lease task failed"),
    }
    Ok(ended)
}
