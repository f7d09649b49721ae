//! Client-side rate limiting for AWS APIs with account-wide quotas (Route 53), shared by every
//! reconcile of the operator: callers queue for a token instead of failing, and the few
//! throttling errors that still come back (another tool in the same account) are retried with
//! exponential backoff and full jitter.
//!
//! The buckets use the generic cell rate algorithm: each bucket keeps the theoretical arrival
//! time of the next request, so a reservation is one subtraction and waiters are served in the
//! order they reserved. Time is `tokio::time`, so tests run on a paused clock.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

/// A sustained rate and the burst a full bucket allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Rate { per_second, burst }
    }
}

/// Route 53 API names with their own, slower bucket.
pub const CREATE_HEALTH_CHECK: &str = "CreateHealthCheck";
pub const GET_HEALTH_CHECK_STATUS: &str = "GetHealthCheckStatus";

/// Route 53 throttles per AWS account, whatever the region, with one account-wide bucket plus
/// one bucket per API (Route 53 Developer Guide, "Throttling for Amazon Route 53 API requests":
/// account-wide 10 requests/s with a burst of 50; CreateHealthCheck 0.5/s, burst 50;
/// GetHealthCheckStatus 1/s, burst 4. Before that change the documented hard limit was 5
/// requests/s per account, AWS re:Post "route-53-avoid-throttling-errors"). halo takes half of
/// each documented rate, so the two halos of a failover pair in one account stay within it, and
/// the older 5/s overall.
pub fn route53_limits() -> Limits {
    Limits {
        overall: Rate::new(5.0, 5),
        operations: vec![
            (CREATE_HEALTH_CHECK, Rate::new(0.25, 25)),
            (GET_HEALTH_CHECK_STATUS, Rate::new(0.5, 2)),
        ],
        backoff: Backoff::default(),
    }
}

/// What a [`RateLimiter`] enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Every request takes a token from this bucket.
    pub overall: Rate,
    /// Requests of these APIs first take a token from their own bucket.
    pub operations: Vec<(&'static str, Rate)>,
    pub backoff: Backoff,
}

/// Retries of throttled requests: attempt `n` (from 0) sleeps a uniformly random time in
/// `[0, min(cap, base * 2^n)]` ("full jitter"), at most `max_attempts` attempts in all.
#[derive(Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
    /// Maps the ceiling of one delay to the delay; random in production, fixed in tests.
    pub jitter: Arc<dyn Fn(Duration) -> Duration + Send + Sync>,
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("base", &self.base)
            .field("cap", &self.cap)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Default for Backoff {
    fn default() -> Self {
        let rng = SplitMix::seeded();
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(20),
            max_attempts: 8,
            jitter: Arc::new(move |max| rng.below(max)),
        }
    }
}

impl Backoff {
    /// The sleep after failed attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        (self.jitter)(ceiling).min(ceiling)
    }
}

/// A tiny thread-safe pseudo-random source for jitter (no cryptographic use).
struct SplitMix(AtomicU64);

impl SplitMix {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        SplitMix(AtomicU64::new(nanos))
    }

    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, max]`.
    fn below(&self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(self.next() % nanos.saturating_add(1))
    }
}

/// One token bucket, as a generic cell rate algorithm.
#[derive(Debug)]
struct Bucket {
    /// Time one token takes to refill.
    interval: Duration,
    /// How far ahead of the sustained rate a burst may run: `interval * (burst - 1)`.
    tolerance: Duration,
    /// Theoretical arrival time of the next request at the sustained rate.
    tat: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        let per_second = if rate.per_second > 0.0 {
            rate.per_second
        } else {
            f64::MIN_POSITIVE
        };
        let interval = Duration::from_nanos((1e9 / per_second).round().min(u64::MAX as f64) as u64);
        Bucket {
            interval,
            tolerance: interval.saturating_mul(rate.burst.max(1) - 1),
            tat: Mutex::new(None),
        }
    }

    /// Reserves the next token and returns when it may be used (`now` or later).
    fn reserve(&self, now: Instant) -> Instant {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let next = tat.map_or(now, |t| t.max(now));
        *tat = Some(next + self.interval);
        next.checked_sub(self.tolerance).unwrap_or(now).max(now)
    }

    /// When the next token could be used, without taking it.
    fn earliest(&self, now: Instant) -> Instant {
        let tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        tat.map_or(now, |t| {
            t.checked_sub(self.tolerance).unwrap_or(now).max(now)
        })
    }

    /// Takes a token at `at` (no earlier than [`Bucket::earliest`]).
    fn take(&self, at: Instant) {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        *tat = Some(tat.map_or(at, |t| t.max(at)) + self.interval);
    }
}

/// Admission control in front of a [`RateLimiter`] for requests a caller can do without: a
/// bucket of the same rate that admits a request only when its token is near, so that callers
/// skip the request instead of queueing behind many others.
#[derive(Debug)]
pub struct Admission(Bucket);

impl Admission {
    pub fn new(rate: Rate) -> Self {
        Admission(Bucket::new(rate))
    }

    /// Admits a request whose token comes within `max_wait`, and counts it; `false` (and
    /// nothing counted) otherwise.
    pub fn admit_within(&self, max_wait: Duration) -> bool {
        let now = Instant::now();
        let mut tat = self.0.tat.lock().unwrap_or_else(|p| p.into_inner());
        let next = tat.map_or(now, |t| t.max(now));
        let at = next.checked_sub(self.0.tolerance).unwrap_or(now).max(now);
        if at - now > max_wait {
            return false;
        }
        *tat = Some(next + self.0.interval);
        true
    }

    /// Counts a request that is sent whatever the wait.
    pub fn admit(&self) {
        self.0.reserve(Instant::now());
    }
}

/// An API's own bucket. Its callers go one at a time, and each takes its token when the
/// overall bucket lets the request out, so the API's requests keep to its rate when sent, not
/// only when queued.
#[derive(Debug)]
struct OperationBucket {
    bucket: Bucket,
    turn: tokio::sync::Mutex<()>,
}

/// The buckets of one AWS service, shared by every caller (clone the `Arc`).
#[derive(Debug)]
pub struct RateLimiter {
    overall: Bucket,
    operations: HashMap<&'static str, OperationBucket>,
    backoff: Backoff,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        RateLimiter {
            overall: Bucket::new(limits.overall),
            operations: limits
                .operations
                .into_iter()
                .map(|(op, rate)| {
                    let bucket = OperationBucket {
                        bucket: Bucket::new(rate),
                        turn: tokio::sync::Mutex::new(()),
                    };
                    (op, bucket)
                })
                .collect(),
            backoff: limits.backoff,
        }
    }

    /// Waits for a token for one request of `operation`; never fails. A slow API waits for its
    /// own bucket before it queues for an overall token, so it never holds back other calls.
    pub async fn acquire(&self, operation: &str) {
        match self.operations.get(operation) {
            Some(own) => {
                let _turn = own.turn.lock().await;
                wait_until(own.bucket.earliest(Instant::now())).await;
                wait_until(self.overall.reserve(Instant::now())).await;
                own.bucket.take(Instant::now());
            }
            None => wait_until(self.overall.reserve(Instant::now())).await,
        }
    }

    /// Runs `attempt` under the rate limit, retrying while `retryable` says the error means
    /// "slow down", with the configured backoff. Every attempt takes its own token.
    pub async fn call<T, E, F, Fut>(
        &self,
        operation: &str,
        retryable: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut n = 0;
        loop {
            self.acquire(operation).await;
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if n + 1 < self.backoff.max_attempts && retryable(&e) => {
                    sleep(self.backoff.delay(n)).await;
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

async fn wait_until(when: Instant) {
    if when > Instant::now() {
        sleep_until(when).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Offsets from `start` at which `n` concurrent callers of `operation` got their token.
    async fn grants(limiter: Arc<RateLimiter>, operation: &'static str, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire(operation).await;
                    Instant::now() - start
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out.sort();
        out
    }

    fn count_by(grants: &[Duration], secs: f64) -> usize {
        grants
            .iter()
            .filter(|g| **g <= Duration::from_secs_f64(secs))
            .count()
    }

    fn fixed_backoff(max_attempts: u32) -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts,
            jitter: Arc::new(|max| max),
        }
    }

    /// 100 Route 53 calls at once all get through, 5 at once and then 5 per second: the
    /// default overall budget.
    /// Admission keeps to the rate without queueing: of 12 callers at once, the burst and
    /// what refills within the allowed wait get in, the others are told to do without.
    #[tokio::test(start_paused = true)]
    async fn admission_admits_what_the_rate_allows_within_the_wait() {
        let admission = Admission::new(Rate::new(2.0, 2));
        let admitted = (0..12)
            .filter(|_| admission.admit_within(Duration::from_secs(2)))
            .count();
        // Burst 2, then one token each 0.5 s up to 2 s ahead (0.5, 1, 1.5, 2): 6.
        assert_eq!(admitted, 6);
        assert!(!admission.admit_within(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(admission.admit_within(Duration::ZERO));
        admission.admit();
        assert!(!admission.admit_within(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn overall_bucket_queues_at_five_per_second() {
        let limiter = Arc::new(RateLimiter::new(route53_limits()));
        let g = grants(limiter, "ListResourceRecordSets", 100).await;
        assert_eq!(g.len(), 100);
        assert_eq!(count_by(&g, 0.0), 5);
        assert_eq!(count_by(&g, 1.0), 10);
        assert_eq!(count_by(&g, 10.0), 55);
        assert_eq!(g[99], Duration::from_secs(19));
    }

    /// CreateHealthCheck has its own slower bucket: after its burst of 25, one every 4 s, while
    /// other APIs keep the overall rate.
    #[tokio::test(start_paused = true)]
    async fn create_health_check_has_a_slower_bucket() {
        let mut limits = route53_limits();
        limits.overall = Rate::new(1000.0, 1000);
        let limiter = Arc::new(RateLimiter::new(limits));
        let g = grants(limiter.clone(), CREATE_HEALTH_CHECK, 30).await;
        assert_eq!(count_by(&g, 0.0), 25);
        assert_eq!(count_by(&g, 3.9), 25);
        assert_eq!(count_by(&g, 4.0), 26);
        assert_eq!(count_by(&g, 19.9), 29);
        assert_eq!(count_by(&g, 20.0), 30);
        // Reads are not held up by the queued creates.
        let reads = grants(limiter, "GetHealthCheck", 10).await;
        assert_eq!(count_by(&reads, 0.0), 10);
    }

    /// Both buckets apply: the status reads wait for their own bucket (2 at once, then one every
    /// 2 s) and every call still respects the overall bucket.
    #[tokio::test(start_paused = true)]
    async fn status_reads_and_the_overall_bucket_combine() {
        let limiter = Arc::new(RateLimiter::new(route53_limits()));
        let g = grants(limiter, GET_HEALTH_CHECK_STATUS, 6).await;
        assert_eq!(
            g,
            [0, 0, 2, 4, 6, 8]
                .map(Duration::from_secs)
                .into_iter()
                .collect::<Vec<_>>()
        );
    }

    /// Behind a queue of other calls, a slow API's requests still leave at its own rate:
    /// its token is taken when the request is let out, not when it started waiting.
    #[tokio::test(start_paused = true)]
    async fn a_slow_api_keeps_its_rate_when_sent_behind_a_queue() {
        let limiter = Arc::new(RateLimiter::new(Limits {
            overall: Rate::new(5.0, 5),
            operations: vec![("Slow", Rate::new(1.0, 2))],
            backoff: Backoff::default(),
        }));
        let start = Instant::now();
        let spawn = |op: &'static str| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire(op).await;
                Instant::now() - start
            })
        };
        let queue: Vec<_> = (0..10).map(|_| spawn("ListResourceRecordSets")).collect();
        let slow: Vec<_> = (0..4).map(|_| spawn("Slow")).collect();
        let mut sent = Vec::new();
        for t in slow {
            sent.push(t.await.expect("task").as_millis());
        }
        for t in queue {
            assert!(t.await.expect("task") <= Duration::from_secs(1));
        }
        assert_eq!(sent, vec![1200, 1400, 2200, 3200]);
    }

    /// An idle bucket refills to its burst, never beyond.
    #[tokio::test(start_paused = true)]
    async fn idle_bucket_refills_to_its_burst() {
        let limiter = Arc::new(RateLimiter::new(route53_limits()));
        let first = grants(limiter.clone(), "GetHealthCheck", 5).await;
        assert_eq!(count_by(&first, 0.0), 5);
        tokio::time::advance(Duration::from_secs(60)).await;
        let after_idle = grants(limiter, "GetHealthCheck", 7).await;
        assert_eq!(count_by(&after_idle, 0.0), 5);
        assert_eq!(count_by(&after_idle, 0.4), 7);
    }

    /// A throttled call is retried with doubling delays (here at their ceiling) until it
    /// succeeds; each retry takes a token.
    #[tokio::test(start_paused = true)]
    async fn throttled_calls_are_retried_with_exponential_backoff() {
        let mut limits = route53_limits();
        limits.backoff = fixed_backoff(8);
        let limiter = RateLimiter::new(limits);
        let attempts = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<&str, &str> = limiter
            .call(
                "ChangeResourceRecordSets",
                |e| *e == "Throttling",
                || async {
                    match attempts.fetch_add(1, Ordering::SeqCst) {
                        0..=2 => Err("Throttling"),
                        _ => Ok("done"),
                    }
                },
            )
            .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(100 + 200 + 400)
        );
    }

    /// Errors that are not throttling fail at once; throttling fails after the last attempt.
    #[tokio::test(start_paused = true)]
    async fn other_errors_and_exhausted_retries_fail() {
        let mut limits = route53_limits();
        limits.backoff = fixed_backoff(3);
        let limiter = RateLimiter::new(limits);
        let attempts = AtomicU32::new(0);
        let result: Result<(), &str> = limiter
            .call(
                "GetHealthCheck",
                |e| *e == "Throttling",
                || async {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err("NoSuchHealthCheck")
                },
            )
            .await;
        assert_eq!(result, Err("NoSuchHealthCheck"));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);

        let start = Instant::now();
        let result: Result<(), &str> = limiter
            .call(
                "GetHealthCheck",
                |e| *e == "Throttling",
                || async {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    Err("Throttling")
                },
            )
            .await;
        assert_eq!(result, Err("Throttling"));
        assert_eq!(attempts.load(Ordering::SeqCst), 1 + 3);
        assert_eq!(Instant::now() - start, Duration::from_millis(100 + 200));
    }

    /// The delay ceiling doubles up to the cap; the default jitter stays within the ceiling and
    /// spreads the delays.
    #[test]
    fn full_jitter_stays_under_the_doubling_ceiling() {
        let fixed = fixed_backoff(8);
        let ceilings: Vec<u128> = (0..6).map(|n| fixed.delay(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);

        let random = Backoff::default();
        let delays: Vec<Duration> = (0..200).map(|_| random.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150, "{} distinct delays", distinct.len());
    }
}
