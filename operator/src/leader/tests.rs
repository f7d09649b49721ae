//! The leader's deadline against a scripted lease source on tokio's paused clock, the lease
//! timing figures, the chart's refusal of unsafe settings, and the renewal spy against a fake
//! API server. No cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

use super::managed::RenewalSpy;
use super::*;

/// A lease source that replays what a test sends.
struct Scripted(mpsc::UnboundedReceiver<LeaseEvent>);

impl LeaseSource for Scripted {
    async fn next(&mut self) -> Option<LeaseEvent> {
        self.0.recv().await
    }
}

/// The default 15 s lease: grace 5 s, so a leader acts 10 s after a renewal.
fn timing() -> LeaseTiming {
    LeaseTiming::new(15, None).expect("valid timing")
}

/// Sends `events` at the given offsets from `t0`, then keeps the source open (a lease manager
/// that stays silent, as one whose renewals fail does).
fn script(t0: Instant, events: Vec<(u64, Event)>) -> Scripted {
    let (send, receive) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for (at, event) in events {
            sleep_until(t0 + Duration::from_secs(at)).await;
            let event = match event {
                Event::Holder(h) => LeaseEvent::Holder(h),
                Event::Renewed => LeaseEvent::Renewed(Instant::now()),
                Event::Stop => return,
            };
            if send.send(event).is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    Scripted(receive)
}

#[derive(Clone, Copy)]
enum Event {
    Holder(bool),
    Renewed,
    /// The source ends (the lease manager's task is gone).
    Stop,
}

/// How a run went, in seconds since `t0`.
#[derive(Debug, PartialEq)]
struct Run {
    ended: Ended,
    /// Every `on_leading` call.
    leading: Vec<(bool, u64)>,
    /// When the work was dropped or finished.
    stopped: Option<u64>,
}

/// Runs the leader against `events`; the work itself would run until `work_ends` seconds.
async fn run(events: Vec<(u64, Event)>, work_ends: Option<u64>) -> Run {
    let t0 = Instant::now();
    let secs = move || {
        let elapsed = Instant::now() - t0;
        assert_eq!(elapsed.subsec_nanos(), 0, "on the whole second");
        elapsed.as_secs()
    };
    let mut source = script(t0, events);
    let leading = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(None));
    let record = leading.clone();
    let on_leading = move |l: bool| record.lock().expect("lock").push((l, secs()));
    let done = stopped.clone();
    let lead = move || async move {
        /// Records when the work stops, dropped or finished.
        struct Stopped<F: Fn()>(F);
        impl<F: Fn()> Drop for Stopped<F> {
            fn drop(&mut self) {
                (self.0)();
            }
        }
        let _guard = Stopped(move || *done.lock().expect("lock") = Some(secs()));
        match work_ends {
            Some(at) => sleep_until(t0 + Duration::from_secs(at)).await,
            None => std::future::pending().await,
        }
        Ok(())
    };
    let shutdown = std::future::pending();
    let ended = lead_while_renewed(&mut source, timing().act_for(), shutdown, on_leading, lead)
        .await
        .expect("no error");
    let leading = leading.lock().expect("lock").clone();
    let stopped = *stopped.lock().expect("lock");
    Run {
        ended,
        leading,
        stopped,
    }
}

/// Renewals every 5 s until 10 s, then none (the API server unreachable): the leader stops at
/// exactly 10 + 15 − 5 = 20 s, the last instant before a follower could see the lease expire
/// (25 s) minus the grace, however long the lease manager stays silent.
#[tokio::test(start_paused = true)]
async fn renewals_stop_so_the_leader_stops_at_duration_minus_grace() {
    let events = vec![
        (0, Event::Renewed),
        (0, Event::Holder(true)),
        (5, Event::Renewed),
        (10, Event::Renewed),
    ];
    let run = run(events, None).await;
    assert_eq!(
        run,
        Run {
            ended: Ended::LostLease,
            leading: vec![(true, 0), (false, 20)],
            stopped: Some(20),
        }
    );
}

/// Renewals every 5 s: the leader keeps leading until its work ends (120 s).
#[tokio::test(start_paused = true)]
async fn renewals_continue_so_the_leader_keeps_leading() {
    let mut events = vec![(0, Event::Renewed), (0, Event::Holder(true))];
    events.extend((5..=150).step_by(5).map(|at| (at, Event::Renewed)));
    let run = run(events, Some(120)).await;
    assert_eq!(
        run,
        Run {
            ended: Ended::Finished,
            leading: vec![(true, 0), (false, 120)],
            stopped: Some(120),
        }
    );
}

/// Renewals 9 s apart stay inside the 10 s window: no stop in between; after the last one
/// (at 36 s) the leader stops at 46 s.
#[tokio::test(start_paused = true)]
async fn renewals_just_inside_the_window_keep_leading() {
    let mut events = vec![(0, Event::Renewed), (0, Event::Holder(true))];
    events.extend((9..=36).step_by(9).map(|at| (at, Event::Renewed)));
    let run = run(events, None).await;
    assert_eq!(run.leading, vec![(true, 0), (false, 46)]);
    assert_eq!(run.stopped, Some(46));
}

/// The lease manager says another replica holds the lease (3 s): the leader stops at once,
/// although its last renewal would allow 7 s more.
#[tokio::test(start_paused = true)]
async fn manager_says_not_holder_so_the_leader_stops_at_once() {
    let events = vec![
        (0, Event::Renewed),
        (0, Event::Holder(true)),
        (3, Event::Holder(false)),
    ];
    let run = run(events, None).await;
    assert_eq!(
        run,
        Run {
            ended: Ended::LostLease,
            leading: vec![(true, 0), (false, 3)],
            stopped: Some(3),
        }
    );
}

/// The lease manager's task ends (4 s): the leader stops at once.
#[tokio::test(start_paused = true)]
async fn source_ends_so_the_leader_stops_at_once() {
    let events = vec![
        (0, Event::Renewed),
        (0, Event::Holder(true)),
        (4, Event::Stop),
    ];
    let run = run(events, None).await;
    assert_eq!(run.ended, Ended::LostLease);
    assert_eq!(run.leading, vec![(true, 0), (false, 4)]);
}

/// Holding a lease whose last renewal is too old (a container restarted under the same pod
/// name finds its old lease) is not leading: the leader starts at the next renewal (15 s),
/// and stops 10 s after the last one.
#[tokio::test(start_paused = true)]
async fn a_stale_renewal_does_not_start_leading() {
    let events = vec![
        (0, Event::Renewed),
        (12, Event::Holder(true)),
        (15, Event::Renewed),
    ];
    let run = run(events, None).await;
    assert_eq!(run.leading, vec![(true, 15), (false, 25)]);
}

/// A lease held without any renewal seen yet waits for one.
#[tokio::test(start_paused = true)]
async fn holder_without_renewal_waits_for_one() {
    let events = vec![(0, Event::Holder(true)), (4, Event::Renewed)];
    let run = run(events, None).await;
    assert_eq!(run.leading, vec![(true, 4), (false, 14)]);
}

/// Shutdown before acquiring ends the wait without leading.
#[tokio::test(start_paused = true)]
async fn shutdown_while_waiting_finishes() {
    let mut source = script(Instant::now(), vec![(0, Event::Holder(false))]);
    let ended = lead_while_renewed(
        &mut source,
        timing().act_for(),
        sleep(Duration::from_secs(1)),
        |_| panic!("never leads"),
        || async { Ok(()) },
    )
    .await
    .expect("no error");
    assert_eq!(ended, Ended::Finished);
}

/// (duration, grace, act for, renew every, manager grace) for the settings users pick.
#[test]
fn timing_figures() {
    let figures = |d, g| {
        let t = LeaseTiming::new(d, g).expect("valid");
        (
            t.duration().as_secs(),
            t.grace().as_secs(),
            t.act_for().as_secs(),
            t.renew_every(),
            t.manager_grace(),
        )
    };
    assert_eq!(figures(15, None), (15, 5, 10, 5, 10));
    assert_eq!(figures(3, None), (3, 1, 2, 1, 2));
    assert_eq!(figures(4, None), (4, 1, 3, 1, 3));
    assert_eq!(figures(10, None), (10, 3, 7, 3, 7));
    assert_eq!(figures(300, None), (300, 100, 200, 100, 200));
    assert_eq!(figures(15, Some(2)), (15, 2, 13, 6, 9));
    assert_eq!(figures(5, Some(3)), (5, 3, 2, 1, 4));
}

/// Settings that leave a leader no time to act are refused, with the fix in the message.
#[test]
fn unsafe_timing_is_refused() {
    let err = LeaseTiming::new(2, None).expect_err("2 s is too short");
    assert_eq!(
        err,
        TimingError::TooShort {
            duration: 2,
            grace: 1,
            act: 1,
            min_duration: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "a lease of 2 s with a grace of 1 s leaves a leader 1 s to act after a renewal; it needs at \
         least 2 s: raise --lease-duration-seconds to at least 3 or lower --lease-grace-seconds"
    );
    assert!(matches!(
        LeaseTiming::new(15, Some(15)),
        Err(TimingError::TooShort { act: 0, .. })
    ));
    assert!(matches!(
        LeaseTiming::new(15, Some(20)),
        Err(TimingError::TooShort { act: -5, .. })
    ));
    assert!(matches!(
        LeaseTiming::new(15, Some(14)),
        Err(TimingError::TooShort { act: 1, .. })
    ));
    assert_eq!(LeaseTiming::new(15, Some(0)), Err(TimingError::NoGrace));
    assert_eq!(
        LeaseTiming::new(0, None),
        Err(TimingError::TooShort {
            duration: 0,
            grace: 1,
            act: -1,
            min_duration: 3
        })
    );
}

/// The chart's schema refuses what `halo run` refuses: a duration under 3 s (with the default
/// grace) and a grace under 1 s. An explicit grace too close to the duration is refused by the
/// Deployment template (a schema cannot compare two values).
#[test]
fn chart_schema_refuses_unsafe_lease_settings() {
    let schema: Value =
        serde_json::from_str(include_str!("../../../charts/halo/values.schema.json"))
            .expect("schema json");
    let values: Value = serde_saphyr::from_str(include_str!("../../../charts/halo/values.yaml"))
        .expect("values yaml");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let with = |lease: Value| {
        let mut values = values.clone();
        if let (Some(le), Some(set)) = (
            values
                .get_mut("leaderElection")
                .and_then(Value::as_object_mut),
            lease.as_object(),
        ) {
            le.extend(set.clone());
        }
        validator.is_valid(&values)
    };
    assert!(with(json!({})), "the defaults are valid");
    assert!(with(json!({"leaseDurationSeconds": 3})));
    assert!(!with(json!({"leaseDurationSeconds": 2})));
    assert!(with(json!({"leaseGraceSeconds": 1})));
    assert!(with(json!({"leaseGraceSeconds": null})));
    assert!(!with(json!({"leaseGraceSeconds": 0})));
    let minimum = schema
        .pointer("/properties/leaderElection/properties/leaseDurationSeconds/minimum")
        .and_then(Value::as_u64)
        .expect("a minimum");
    assert!(LeaseTiming::new(minimum, None).is_ok());
    assert!(LeaseTiming::new(minimum - 1, None).is_err());
}

/// The identity, Lease and namespace the spy tests use.
fn lease_config() -> LeaseConfig {
    LeaseConfig {
        namespace: "halo-system".into(),
        name: "halo-leader".into(),
        identity: "halo-0".into(),
        timing: timing(),
    }
}

/// A fake API server answering every request, 2 s later, with a Lease held by `holder`.
fn fake_api(holder: &'static str, status: u16) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((_request, send)) = handle.next_request().await {
            sleep(Duration::from_secs(2)).await;
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "halo-leader", "namespace": "halo-system"},
                "spec": {"holderIdentity": holder, "renewTime": "2025-01-01T00:00:00.000000Z", "leaseDurationSeconds": 15},
            });
            let body = serde_json::to_vec(&lease).unwrap_or_default();
            if let Ok(response) = Response::builder().status(status).body(Body::from(body)) {
                send.send_response(response);
            }
        }
    });
    Client::new(service, "default")
}

/// What the spy reports for one request through it, in seconds since it was sent.
async fn spied(holder: &'static str, status: u16, patch: bool) -> Option<u64> {
    let (spy, mut renewed) = RenewalSpy::new(fake_api(holder, status), &lease_config());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(Client::new(spy, "default"), "halo-system");
    let t0 = Instant::now();
    let _ = if patch {
        let p = kube::api::Patch::Strategic(
            json!({"spec": {"renewTime": "2025-01-01T00:00:00.000000Z"}}),
        );
        leases
            .patch("halo-leader", &kube::api::PatchParams::default(), &p)
            .await
    } else {
        leases.get("halo-leader").await
    };
    assert_eq!(
        Instant::now() - t0,
        Duration::from_secs(2),
        "answered 2 s later"
    );
    let at = *renewed.borrow_and_update();
    at.map(|at| (at - t0).as_secs())
}

/// An accepted PATCH of our Lease that leaves us holder is a renewal, dated when it was sent
/// (0 s), not when the answer came (2 s): the deadline never runs late by the request's time.
#[tokio::test(start_paused = true)]
async fn spy_reports_accepted_renewals_at_their_send_time() {
    assert_eq!(spied("halo-0", 200, true).await, Some(0));
}

/// A GET, a refused PATCH and a PATCH answered with another holder are not renewals.
#[tokio::test(start_paused = true)]
async fn spy_ignores_what_is_not_our_renewal() {
    assert_eq!(spied("halo-0", 200, false).await, None);
    assert_eq!(spied("halo-0", 409, true).await, None);
    assert_eq!(spied("halo-1", 200, true).await, None);
}
