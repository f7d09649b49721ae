//! Leader election on a `coordination.k8s.io` Lease: several replicas run, one reconciles.
//!
//! Two things end leading, whichever comes first:
//! - the lease manager (crate `kube-lease-manager`) says another replica holds the lease;
//! - no renewal of ours has succeeded for `duration − grace`, measured here on the monotonic
//!   clock from the instant the last successful renewal was *sent*. The lease manager never
//!   says "false" while it cannot reach the API server, yet another replica takes over
//!   `duration` after our last renewTime; stopping `grace` earlier keeps two leaders from
//!   acting at once (grace covers clock skew between nodes).
//!
//! Leading ends by dropping the controller future (its tasks are aborted, in-flight requests
//! included); the caller then campaigns again as a follower.
//!
//! The deadline logic ([`lead_while_renewed`]) sees the lease only through [`LeaseSource`], so
//! it is tested with a scripted source and tokio's paused clock; [`managed`] is the real source.

pub mod managed;

use std::future::Future;
use std::time::Duration;

use kube::Client;
use tokio::time::Instant;
use tracing::{info, warn};

/// The least time a leader may act after a renewal: renewals are scheduled in whole seconds,
/// and one must fall strictly before the deadline with time left for the request itself.
pub const MIN_ACT_SECONDS: u64 = 2;

/// Lease timing, checked: `duration − grace ≥ MIN_ACT_SECONDS` and `grace ≥ 1 s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    duration: u64,
    grace: u64,
}

/// Lease settings a leader could not keep safely.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    #[error("the lease grace must be at least 1 second (it covers clock skew between nodes)")]
    NoGrace,
    #[error(
        "a lease of {duration} s with a grace of {grace} s leaves a leader {act} s to act after a renewal; \
         it needs at least {MIN_ACT_SECONDS} s: raise --lease-duration-seconds to at least {min_duration} \
         or lower --lease-grace-seconds"
    )]
    TooShort {
        duration: u64,
        grace: u64,
        act: i64,
        min_duration: u64,
    },
}

impl LeaseTiming {
    /// The default grace: a third of the lease, at least 1 s (15 s → 5 s, as client-go's
    /// 15 s lease with its 10 s renew deadline).
    pub fn default_grace(duration_seconds: u64) -> u64 {
        (duration_seconds / 3).max(1)
    }

    /// `grace_seconds` defaults to [`Self::default_grace`].
    pub fn new(duration_seconds: u64, grace_seconds: Option<u64>) -> Result<Self, TimingError> {
        let grace = grace_seconds.unwrap_or_else(|| Self::default_grace(duration_seconds));
        if grace == 0 {
            return Err(TimingError::NoGrace);
        }
        if duration_seconds < grace.saturating_add(MIN_ACT_SECONDS) {
            return Err(TimingError::TooShort {
                duration: duration_seconds,
                grace,
                act: i64::try_from(duration_seconds).unwrap_or(i64::MAX)
                    - i64::try_from(grace).unwrap_or(i64::MAX),
                min_duration: grace.saturating_add(MIN_ACT_SECONDS),
            });
        }
        Ok(Self {
            duration: duration_seconds,
            grace,
        })
    }

    /// How long a lease lasts without renewal: the takeover time when a leader dies.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    /// How much earlier than the lease's expiry a leader stops acting.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace)
    }

    /// How long a leader acts after its last successful renewal: `duration − grace`.
    pub fn act_for(&self) -> Duration {
        Duration::from_secs(self.duration - self.grace)
    }

    /// Seconds between renewals: half of [`Self::act_for`] (at least 1 s), so a failed renewal
    /// has the other half for retries before the leader stops.
    pub fn renew_every(&self) -> u64 {
        ((self.duration - self.grace) / 2).max(1)
    }

    /// The lease manager's own "grace": it renews that long before the lease expires.
    pub fn manager_grace(&self) -> u64 {
        self.duration - self.renew_every()
    }
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process (the pod name in a cluster).
    pub identity: String,
    pub timing: LeaseTiming,
}

/// How leading ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The work finished (shutdown requested); the lease was released.
    Finished,
    /// Another replica took the lease, or ours could not be renewed in time.
    LostLease,
}

/// What the lease side reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The lease manager says whether this replica holds the lease.
    Holder(bool),
    /// The API server accepted a write that leaves this replica the holder; the instant is
    /// when that write was sent (its renewTime was stamped just before).
    Renewed(Instant),
}

/// Where leadership news comes from: the lease manager in a cluster, a script in tests.
pub trait LeaseSource {
    /// The next event; `None` once the lease side has stopped.
    fn next(&mut self) -> impl Future<Output = Option<LeaseEvent>>;
}

/// Waits for the lease, then runs `lead` while holding it. `lead` is dropped the moment the
/// lease is lost or not renewed in time, and the lease is then released if still ours.
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
    let mut source = managed::ManagedLease::start(client, &config).await?;
    info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity,
        duration = ?config.timing.duration(), grace = ?config.timing.grace(), "waiting for the leader lease");
    let ended = lead_while_renewed(
        &mut source,
        config.timing.act_for(),
        shutdown,
        on_leading,
        lead,
    )
    .await;
    // Release only after the work is gone: `lead_while_renewed` has dropped it.
    source.release(config.timing.duration()).await;
    ended
}

/// The leadership logic, independent of Kubernetes: leads once the source says we hold the
/// lease and a renewal is less than `act_for` old; stops when the source says we do not, when
/// it stops, or `act_for` after the last renewal, whichever comes first.
pub async fn lead_while_renewed<S, F, Fut>(
    source: &mut S,
    act_for: Duration,
    shutdown: impl Future<Output = ()>,
    on_leading: impl Fn(bool),
    lead: F,
) -> anyhow::Result<Ended>
where
    S: LeaseSource,
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut holder = false;
    let mut renewed: Option<Instant> = None;
    let apply = |event: LeaseEvent, holder: &mut bool, renewed: &mut Option<Instant>| match event {
        LeaseEvent::Holder(h) => *holder = h,
        LeaseEvent::Renewed(at) => *renewed = Some(renewed.map_or(at, |last| last.max(at))),
    };
    tokio::pin!(shutdown);
    // A lease held without a fresh renewal (a restarted container with the same pod name)
    // waits for the manager's next renewal.
    while !(holder && renewed.is_some_and(|at| Instant::now() < at + act_for)) {
        tokio::select! {
            event = source.next() => match event {
                Some(event) => apply(event, &mut holder, &mut renewed),
                None => anyhow::bail!("the lease manager stopped"),
            },
            () = &mut shutdown => {
                info!("shutting down before acquiring the lease");
                return Ok(Ended::Finished);
            }
        }
    }
    info!("acquired the leader lease");
    on_leading(true);
    let mut work = Box::pin(lead());
    let ended = loop {
        let Some(last) = renewed else {
            break Ended::LostLease;
        };
        tokio::select! {
            result = &mut work => break match result {
                Ok(()) => Ended::Finished,
                Err(e) => {
                    on_leading(false);
                    return Err(e);
                }
            },
            () = tokio::time::sleep_until(last + act_for) => {
                warn!(act_for = ?act_for, "no lease renewal succeeded in time: stopping before another replica can take over");
                break Ended::LostLease;
            }
            event = source.next() => match event {
                Some(LeaseEvent::Holder(false)) | None => {
                    warn!("lost the leader lease: stopping at once");
                    break Ended::LostLease;
                }
                Some(event) => apply(event, &mut holder, &mut renewed),
            },
        }
    };
    drop(work);
    on_leading(false);
    Ok(ended)
}

#[cfg(test)]
mod tests;
