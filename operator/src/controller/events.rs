//! Events: one per condition flip a person cares about, one per AWS change or failure (not for
//! throttling), one per apply that changed children, one per failed reconcile.

use kube::Resource;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use crate::Error;
use crate::api::{HighlyAvailableApp, HighlyAvailableAppStatus};
use crate::apply::Outcome;
use crate::aws::backend::AwsStep;
use crate::conditions;

use super::Context;

/// Conditions whose flips make an Event (ComputeReady and IngressReady speak through Ready).
const EVENTED: [&str; 8] = [
    conditions::READY,
    conditions::ZONE_RESILIENT,
    conditions::DATABASE_READY,
    conditions::CACHE_READY,
    conditions::DNS_READY,
    conditions::DYNAMODB_READY,
    conditions::STATIC_ASSETS_READY,
    conditions::ALARMS_OK,
];

/// Longest `note` the API server accepts on an events.k8s.io Event.
const EVENT_NOTE_MAX: usize = 1024;

pub async fn publish(
    ctx: &Context,
    app: &HighlyAvailableApp,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        warn!(error = %e, "failed to publish event");
    }
}

pub async fn failure(ctx: &Context, app: &HighlyAvailableApp, e: &Error) {
    publish(
        ctx,
        app,
        EventType::Warning,
        e.metric_label(),
        "Reconcile",
        e.to_string(),
    )
    .await;
}

/// Events for what halo changed in AWS, and for AWS failures other than throttling.
pub async fn aws(ctx: &Context, app: &HighlyAvailableApp, step: &AwsStep) {
    for change in &step.changes {
        info!(app = %app.name_any(), reason = change.reason, "{}", change.message);
        publish(
            ctx,
            app,
            EventType::Normal,
            change.reason,
            "AWS",
            change.message.clone(),
        )
        .await;
    }
    for e in &step.errors {
        if e.is_throttled() {
            warn!(app = %app.name_any(), error = %e, "AWS throttled a request; backing off");
            continue;
        }
        publish(
            ctx,
            app,
            EventType::Warning,
            e.metric_label(),
            "AWS",
            e.to_string(),
        )
        .await;
    }
}

/// Events for condition flips a person cares about.
pub async fn transitions(
    ctx: &Context,
    app: &HighlyAvailableApp,
    old: Option<&HighlyAvailableAppStatus>,
    new: &HighlyAvailableAppStatus,
) {
    for type_ in EVENTED {
        let find = |s: Option<&HighlyAvailableAppStatus>| {
            s.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        };
        let (before, after) = (find(old), find(Some(new)));
        let Some((status, reason, message)) = after else {
            continue;
        };
        if before.as_ref().map(|b| (&b.0, &b.1)) == Some((&status, &reason)) {
            continue;
        }
        let type_ev = if status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(
            ctx,
            app,
            type_ev,
            &reason,
            type_,
            format!("{type_}={status}: {message}"),
        )
        .await;
    }
}

/// One Event for everything one reconcile's apply changed (None when it changed nothing):
/// a new app gets one "Created" Event naming its children, not one Event per child. The
/// reason is the outcome when all children share it, else "Applied".
pub fn applied_event(changes: &[(&str, &str, Outcome)]) -> Option<(&'static str, String)> {
    let reason_of = |o: Outcome| match o {
        Outcome::Created => "Created",
        Outcome::Updated => "Updated",
        Outcome::Pruned => "Pruned",
        Outcome::Unchanged | Outcome::Absent => "Applied",
    };
    let (_, _, first) = changes.first()?;
    let reason = if changes.iter().all(|(_, _, o)| o == first) {
        reason_of(*first)
    } else {
        "Applied"
    };
    let mut note = changes
        .iter()
        .map(|(kind, name, outcome)| {
            let verb = match outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Pruned => "deleted, the spec no longer asks for it",
                Outcome::Unchanged | Outcome::Absent => "unchanged",
            };
            format!("{kind} {name} {verb}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    if note.len() > EVENT_NOTE_MAX {
        let mut end = EVENT_NOTE_MAX - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    Some((reason, note))
}
