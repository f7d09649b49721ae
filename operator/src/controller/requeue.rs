//! Requeue: when to look at an app again. Converged apps wait for the resync; AWS work in
//! progress, a DNS health reading and a zone that may recover are looked at sooner; failures
//! back off exponentially with jitter.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::warn;

use crate::Error;
use crate::api::HighlyAvailableApp;

use super::Context;

/// How soon an app that is not zone resilient is looked at again: a recovering zone is not
/// announced by any watched object.
pub const ZONE_RECHECK: Duration = Duration::from_secs(30);

/// How often the health check status of a DNS record is read again: Route 53 reports health
/// changes to nobody.
pub const DNS_HEALTH_RECHECK: Duration = Duration::from_secs(60);

/// What decides the next look at a converged (or converging) app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The AWS stage ran: its poll interval (busy or stable).
    pub aws_poll: Option<Duration>,
    /// A DNS record with an ALB behind it: its health is read again.
    pub dns_health: bool,
    /// The app is not zone resilient (and the reconcile succeeded).
    pub zone_recheck: bool,
}

/// The next look: the resync, or sooner. Pure.
pub fn next(resync: Duration, due: Due) -> Duration {
    let mut next = resync;
    if let Some(poll) = due.aws_poll {
        next = next.min(poll);
    }
    if due.dns_health {
        next = next.min(DNS_HEALTH_RECHECK);
    }
    if due.zone_recheck {
        next = next.min(ZONE_RECHECK);
    }
    next
}

/// Backoff on failure: 5 s doubling up to 5 min, with jitter so many failing apps spread out.
pub fn error_policy(app: Arc<HighlyAvailableApp>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
    let attempts = ctx.failures_of(&key);
    let delay = backoff(attempts, jitter_seed(&key));
    warn!(app = %key, reason = error.metric_label(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// `5 s * 2^(attempts-1)`, capped at 300 s, plus up to 10% jitter.
pub fn backoff(attempts: u32, seed: u64) -> Duration {
    let base = 5u64
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(6))
        .min(300);
    let jitter_ms = seed % (base * 100 + 1);
    Duration::from_millis(base * 1000 + jitter_ms)
}

fn jitter_seed(key: &str) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or_default();
    key.bytes()
        .fold(nanos, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}
