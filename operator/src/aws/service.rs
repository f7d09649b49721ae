//! The one shape of every AWS service halo manages.
//!
//! A service takes its part of the [`AwsPlan`](super::plan::AwsPlan) (the desired state,
//! computed once per reconcile) and either makes AWS match it (`ensure`: observe, plan, act,
//! readiness) or carries out its deletion policy (`cleanup`). Both report in the same
//! [`Outcome`]: what status reads (`view`), what changed (Events) and what failed. A service
//! never returns early with a bare error: a failure is part of its outcome, so one failing
//! service never hides what the others did.

use std::future::Future;

use crate::Error;
use crate::observed::{AwsView, Change};

use super::CleanupReport;

/// One AWS service behind halo: Aurora, ElastiCache, Route 53, DynamoDB, S3, CloudWatch.
pub trait Service {
    /// The service's part of the plan.
    type Desired: Sync;
    /// What the status learns from it (readiness and endpoints or records).
    type View;

    /// Creates, adopts or corrects what `desired` asks for, and reports its readiness.
    fn ensure(&self, desired: &Self::Desired) -> impl Future<Output = Outcome<Self::View>> + Send;

    /// Carries out the deletion policy; `done` once AWS confirmed the fate of everything.
    fn cleanup(&self, desired: &Self::Desired) -> impl Future<Output = Outcome<Self::View>> + Send;
}

/// What one service's ensure or cleanup found and did.
#[derive(Debug)]
pub struct Outcome<V> {
    /// `None`: nothing to report (the status keeps what it had).
    pub view: Option<V>,
    /// One Normal Event each.
    pub changes: Vec<Change>,
    /// Failures, throttling included (it backs off but never marks the app failed).
    pub errors: Vec<Error>,
    /// Cleanup: AWS confirmed every resource is gone, deleting or retained. Ensure: true.
    pub done: bool,
}

impl<V> Default for Outcome<V> {
    fn default() -> Self {
        Outcome {
            view: None,
            changes: Vec::new(),
            errors: Vec::new(),
            done: true,
        }
    }
}

impl<V> Outcome<V> {
    /// A failure before anything was seen: the view says why (or that AWS throttled).
    pub fn failed(e: Error, view: impl FnOnce(&Error) -> V) -> Self {
        Outcome {
            view: Some(view(&e)),
            errors: vec![e],
            done: false,
            ..Outcome::default()
        }
    }
}

impl<E> Outcome<AwsView<E>> {
    /// The outcome of an ensure that either saw the resource (`Ok`: its view and changes) or
    /// failed.
    pub fn seen(result: crate::Result<(AwsView<E>, Vec<Change>)>) -> Self {
        match result {
            Ok((view, changes)) => Outcome {
                view: Some(view),
                changes,
                ..Outcome::default()
            },
            Err(e) => Outcome::failed(e, error_view),
        }
    }

    /// The outcome of one resource's cleanup: `Deleting` with its message, or the failure.
    pub fn cleaned(result: crate::Result<CleanupReport>) -> Self {
        match result {
            Ok(report) => Outcome {
                view: Some(AwsView::Unseen {
                    reason: super::reasons::DELETING,
                    message: report.message,
                }),
                changes: report.changes,
                errors: Vec::new(),
                done: report.done,
            },
            Err(e) => Outcome::failed(e, error_view),
        }
    }
}

/// The view of a resource AWS failed to show: its error as reason and message, or throttled.
pub fn error_view<E>(e: &Error) -> AwsView<E> {
    if e.is_throttled() {
        AwsView::Throttled
    } else {
        AwsView::Unseen {
            reason: e.metric_label(),
            message: e.to_string(),
        }
    }
}

/// Runs `ensure` of `service` when the plan has a part for it.
pub async fn ensure<S: Service>(service: &S, desired: Option<&S::Desired>) -> Outcome<S::View> {
    match desired {
        Some(d) => service.ensure(d).await,
        None => Outcome::default(),
    }
}

/// Runs `cleanup` of `service` when the plan has a part for it.
pub async fn cleanup<S: Service>(service: &S, desired: Option<&S::Desired>) -> Outcome<S::View> {
    match desired {
        Some(d) => service.cleanup(d).await,
        None => Outcome::default(),
    }
}
