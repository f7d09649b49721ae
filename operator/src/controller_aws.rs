//! The AWS steps of a reconcile: ensure the app's Aurora cluster, ElastiCache replication
//! group and Route 53 record, or carry out their deletion under the `halo.dev/cleanup`
//! finalizer; their results as status views, connection endpoints and Events.
//!
//! The finalizer is added only to apps with a database, a cache or a DNS record, before
//! anything is created in AWS, so apps without AWS sections keep their zero-request reconciles.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::aws::route53::{
    self, DnsIdentity, DnsOwner, OWNER_RECORD_PREFIX, waiting_for_load_balancer,
};
use crate::aws::{Aws, AwsConfig, Change, aurora, effective_cluster_id, elasticache};
use crate::crd::{HighlyAvailableApp, HighlyAvailableAppStatus};
use crate::crd_dns::{DnsStatus, ZoneRef, fqdn};
use crate::meta::FIELD_MANAGER;
use crate::render::secret::Connection;
use crate::status::aws::endpoints;
use crate::status::{AwsObserved, AwsView, DnsRecord, DnsView};
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// Guards the AWS resources: the app leaves Kubernetes only after AWS confirmed their fate.
pub const FINALIZER: &str = "halo.dev/cleanup";

/// Whether the app owns AWS resources that need cleaning up.
pub fn needs_finalizer(app: &ValidatedApp) -> bool {
    app.database.is_some()
        || app.cache.is_some()
        || app.dns.is_some()
        || super::storage_steps::needs_finalizer(app)
}

/// Whether a reconcile talks to AWS: the spec asks for AWS resources, or Route 53 still holds
/// a record set that halo wrote for an earlier spec (`status.dns`), or the status records
/// tables or alarms a removed section left behind.
pub fn needs_aws(app: &ValidatedApp, status: Option<&HighlyAvailableAppStatus>) -> bool {
    needs_finalizer(app)
        || status.and_then(|s| s.dns.as_ref()).is_some()
        || super::storage_steps::has_records(status)
}

/// How often the health check status of a DNS record is read again.
pub const DNS_HEALTH_RECHECK: Duration = Duration::from_secs(60);

/// Longest a reconcile waits for a GetHealthCheckStatus token when DNSReady already holds a
/// health reading: Route 53 allows about one status read per second per account, so with many
/// apps some readings are skipped (the last one stands) instead of holding reconciles up.
pub const HEALTH_READ_MAX_WAIT: Duration = Duration::from_secs(2);

/// Whether this round's health status read may be skipped: `DNSReady` holds a reading of the
/// same health check, which can stand a little longer. Pure.
pub fn health_reading_stands(
    health_check_id: &str,
    status: Option<&HighlyAvailableAppStatus>,
) -> bool {
    use crate::aws::route53::reasons::{HEALTH_CHECK_HEALTHY, HEALTH_CHECK_UNHEALTHY};
    let Some(status) = status else {
        return false;
    };
    let same_check = status
        .dns
        .as_ref()
        .and_then(|d| d.health_check_id.as_deref())
        == Some(health_check_id);
    let has_reading = status.conditions.iter().any(|c| {
        c.type_ == crate::status::DNS_READY
            && (c.reason == HEALTH_CHECK_HEALTHY || c.reason == HEALTH_CHECK_UNHEALTHY)
    });
    same_check && has_reading
}

pub fn has_finalizer(app: &HighlyAvailableApp) -> bool {
    app.finalizers().iter().any(|f| f == FINALIZER)
}

/// Sets `metadata.finalizers` to `finalizers`, failing on a concurrent change (resourceVersion).
async fn set_finalizers(
    client: &kube::Client,
    app: &HighlyAvailableApp,
    finalizers: Vec<String>,
) -> Result<()> {
    let ns = app.namespace().unwrap_or_default();
    let api: Api<HighlyAvailableApp> = Api::namespaced(client.clone(), &ns);
    let mut metadata = json!({ "finalizers": finalizers });
    if let Some(rv) = app.resource_version() {
        metadata["resourceVersion"] = json!(rv);
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(
        &app.name_any(),
        &params,
        &Patch::Merge(&json!({ "metadata": metadata })),
    )
    .await
    .map_err(Error::kube("update finalizers"))?;
    Ok(())
}

/// Adds the finalizer unless present (no request then).
pub async fn add_finalizer(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    if has_finalizer(app) {
        return Ok(());
    }
    let mut finalizers = app.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    set_finalizers(client, app, finalizers).await
}

pub async fn remove_finalizer(client: &kube::Client, app: &HighlyAvailableApp) -> Result<()> {
    let finalizers: Vec<String> = app
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(client, app, finalizers).await
}

/// What the AWS step of one reconcile found and did.
#[derive(Debug, Default)]
pub struct AwsStep {
    pub observed: AwsObserved,
    /// One Normal Event each.
    pub changes: Vec<Change>,
    /// Failures, in order (throttling included: it backs off but never marks the app failed).
    pub errors: Vec<Error>,
    /// Cleanup only: every resource is gone, deleting or retained.
    pub done: bool,
}

impl AwsStep {
    /// The first failure that is not throttling, else the first throttling.
    pub fn error(self) -> Option<Error> {
        let (throttled, failed): (Vec<Error>, Vec<Error>) =
            self.errors.into_iter().partition(|e| {
                matches!(
                    e,
                    Error::Aws {
                        throttled: true,
                        ..
                    }
                )
            });
        failed.into_iter().chain(throttled).next()
    }
}

pub(crate) fn error_view<E>(e: &Error) -> AwsView<E> {
    match e {
        Error::Aws {
            throttled: true, ..
        } => AwsView::Throttled,
        _ => AwsView::Unseen {
            reason: e.metric_label(),
            message: e.to_string(),
        },
    }
}

/// Creates, adopts or corrects the app's AWS resources (database, cache and DNS
/// concurrently). `load_balancer` is the ALB hostname from the Ingress status; `status` the
/// app's current status (the DNS record set written earlier).
pub async fn ensure_all(
    aws: &Aws,
    app: &ValidatedApp,
    load_balancer: Option<&str>,
    status: Option<&HighlyAvailableAppStatus>,
) -> AwsStep {
    let db = aurora::desired(app, &aws.config);
    let cache = elasticache::desired(app, &aws.config);
    let (db_result, cache_result, dns) = futures::join!(
        async {
            match &db {
                Some(d) => Some(Box::pin(aurora::ensure(aws, d)).await),
                None => None,
            }
        },
        async {
            match &cache {
                Some(d) => Some(Box::pin(elasticache::ensure(aws, d)).await),
                None => None,
            }
        },
        Box::pin(ensure_dns(aws, app, load_balancer, status))
    );
    let mut step = AwsStep::default();
    step.absorb_dns(dns);
    if let (Some(d), Some(result)) = (&db, db_result) {
        step.observed.database = Some(match result {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                AwsView::Seen {
                    readiness: aurora::readiness(d, &report),
                    endpoints: aurora::endpoints(&report),
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
    if let (Some(d), Some(result)) = (&cache, cache_result) {
        step.observed.cache = Some(match result {
            Ok(report) => {
                step.changes.extend(report.changes.iter().cloned());
                AwsView::Seen {
                    readiness: elasticache::readiness(d, &report),
                    endpoints: elasticache::endpoints(&report),
                }
            }
            Err(e) => {
                let view = error_view(&e);
                step.errors.push(e);
                view
            }
        });
    }
    // The Route 53 health check alarm needs the check's id: written now, or recorded earlier.
    let health_check_id = match &step.observed.dns_record {
        DnsRecord::Set(written) => written.as_ref().and_then(|d| d.health_check_id.clone()),
        DnsRecord::Unchanged => status
            .and_then(|s| s.dns.as_ref())
            .and_then(|d| d.health_check_id.clone()),
    };
    let inputs = crate::aws::cloudwatch::AlarmInputs { health_check_id };
    Box::pin(super::storage_steps::ensure(
        aws, app, status, &inputs, &mut step,
    ))
    .await;
    step
}

/// Carries out the deletion policies; `done` once AWS confirmed every resource's fate.
pub async fn cleanup_all(
    aws: &Aws,
    app: &ValidatedApp,
    status: Option<&HighlyAvailableAppStatus>,
) -> AwsStep {
    let db = aurora::desired(app, &aws.config);
    let cache = elasticache::desired(app, &aws.config);
    let recorded = status.and_then(|s| s.dns.as_ref());
    let (db_result, cache_result, dns) = futures::join!(
        async {
            match &db {
                Some(d) => Some(Box::pin(aurora::cleanup(aws, d)).await),
                None => None,
            }
        },
        async {
            match &cache {
                Some(d) => Some(Box::pin(elasticache::cleanup(aws, d)).await),
                None => None,
            }
        },
        Box::pin(cleanup_dns(aws, app, recorded))
    );
    let mut step = AwsStep {
        done: true,
        ..AwsStep::default()
    };
    step.done &= dns.done;
    step.absorb_dns(dns);
    if let Some(result) = db_result {
        step.observed.database = Some(absorb(result, &mut step));
    }
    if let Some(result) = cache_result {
        step.observed.cache = Some(absorb(result, &mut step));
    }
    Box::pin(super::storage_steps::cleanup(aws, app, status, &mut step)).await;
    step
}

pub(crate) fn absorb<E>(
    result: Result<crate::aws::CleanupReport>,
    step: &mut AwsStep,
) -> AwsView<E> {
    match result {
        Ok(report) => {
            step.done &= report.done;
            step.changes.extend(report.changes);
            AwsView::Unseen {
                reason: crate::aws::reasons::DELETING,
                message: report.message,
            }
        }
        Err(e) => {
            step.done = false;
            let view = error_view(&e);
            step.errors.push(e);
            view
        }
    }
}

/// What the DNS part of a reconcile found and did.
#[derive(Debug, Default)]
pub struct DnsStep {
    pub view: Option<DnsView>,
    pub record: DnsRecord,
    pub changes: Vec<Change>,
    pub errors: Vec<Error>,
    /// Cleanup only: nothing of this app's is left in Route 53.
    pub done: bool,
}

impl AwsStep {
    fn absorb_dns(&mut self, dns: DnsStep) {
        self.observed.dns = dns.view;
        self.observed.dns_record = dns.record;
        self.changes.extend(dns.changes);
        self.errors.extend(dns.errors);
    }
}

fn dns_error_view(e: &Error) -> DnsView {
    match e {
        Error::Aws {
            throttled: true, ..
        } => DnsView::Throttled,
        _ => DnsView::Unseen {
            reason: e.metric_label(),
            message: e.to_string(),
        },
    }
}

/// Condition reason while the record is being deleted.
const DNS_DELETING: &str = crate::aws::reasons::DELETING;

/// This installation's name in the ownership records: `--cluster-id`, else the region.
pub async fn cluster_id(aws: &Aws) -> String {
    let region = match &aws.config.cluster_id {
        Some(_) => None,
        None => aws.region().await,
    };
    effective_cluster_id(aws.config.cluster_id.as_deref(), region.as_deref())
}

/// The identity of a record set halo wrote earlier, from `status.dns`.
pub fn recorded_identity(recorded: &DnsStatus, owner: DnsOwner) -> DnsIdentity {
    let record_name = fqdn(&recorded.record_name);
    DnsIdentity {
        zone: ZoneRef::Id(recorded.hosted_zone_id.clone()),
        owner_record_name: format!("{OWNER_RECORD_PREFIX}.{record_name}"),
        record_name,
        set_identifier: recorded.set_identifier.clone(),
        owner,
    }
}

/// Whether the record set halo wrote earlier is not the one the spec wants now (another zone,
/// name or set identifier, or no DNS at all), so it must be deleted. `wanted` carries the
/// wanted zone's id. Pure.
pub fn recorded_slot_moved(recorded: &DnsStatus, wanted: Option<(&str, &DnsIdentity)>) -> bool {
    match wanted {
        None => true,
        Some((zone_id, id)) => {
            recorded.hosted_zone_id != zone_id
                || fqdn(&recorded.record_name) != id.record_name
                || recorded.set_identifier != id.set_identifier
        }
    }
}

/// The `status.dns` for what `ensure` wrote.
pub fn dns_status(observed: &route53::ObservedDns) -> DnsStatus {
    DnsStatus {
        hosted_zone_id: observed.zone_id.clone(),
        record_name: observed.record_name.clone(),
        set_identifier: observed.set_identifier.clone(),
        health_check_id: observed.health_check_id.clone(),
    }
}

/// Events for what `ensure` changed in Route 53. Pure.
pub fn dns_changes(d: &route53::DesiredDns, observed: &route53::ObservedDns) -> Vec<Change> {
    let slot = match &observed.set_identifier {
        Some(s) => format!("{} (set {s})", observed.record_name),
        None => observed.record_name.clone(),
    };
    let mut out = Vec::new();
    if let (Some(id), Some(hc)) = (&observed.health_check_id, &d.health_check) {
        let target = format!(
            "{}://{}:{}{}",
            if hc.https { "https" } else { "http" },
            hc.fqdn,
            hc.port(),
            hc.path
        );
        if observed.health_check_created {
            out.push(Change::new(
                "HealthCheckCreated",
                format!("Route 53 health check {id} created on {target}"),
            ));
        } else if observed.health_check_updated {
            out.push(Change::new(
                "HealthCheckUpdated",
                format!("Route 53 health check {id} updated to {target}"),
            ));
        }
    }
    if observed.record_changes > 0 {
        let target = match observed.target {
            route53::Target::Alias => "an alias to the ALB",
            route53::Target::Cname => "a CNAME to the ALB",
        };
        out.push(Change::new(
            "DNSRecordUpdated",
            format!(
                "Route 53 record {slot} in zone {} is {target} ({} record sets written)",
                observed.zone_id, observed.record_changes
            ),
        ));
    }
    out
}

/// Deletes the record set halo wrote earlier (`status.dns`) when the spec no longer wants it,
/// then writes the one it wants once the ALB has a hostname.
pub async fn ensure_dns(
    aws: &Aws,
    app: &ValidatedApp,
    load_balancer: Option<&str>,
    status: Option<&HighlyAvailableAppStatus>,
) -> DnsStep {
    let recorded = status.and_then(|s| s.dns.as_ref());
    let mut step = DnsStep::default();
    if app.dns.is_none() && recorded.is_none() {
        return step;
    }
    let owner = DnsOwner::new(&cluster_id(aws).await, &app.owner);
    let wanted = app
        .dns
        .as_ref()
        .map(|d| (d, DnsIdentity::new(d, owner.clone())));
    if let Some(old) = recorded {
        let r53 = aws.route53().await;
        let moved = match &wanted {
            None => Ok(true),
            Some((_, id)) => r53
                .zone_id(&id.zone)
                .await
                .map(|zone| recorded_slot_moved(old, Some((&zone, id)))),
        };
        let cleaned = match moved {
            Ok(false) => Ok(None),
            Ok(true) => {
                let id = recorded_identity(old, owner.clone());
                route53::cleanup(r53, &id).await.map(Some)
            }
            Err(e) => Err(e),
        };
        match cleaned {
            Ok(None) => {}
            Ok(Some(outcome)) => {
                step.record = DnsRecord::Set(None);
                step.changes.push(Change::new(
                    "DNSRecordDeleted",
                    format!(
                        "Route 53 record {} deleted, the spec no longer asks for it ({} record sets, {} health checks)",
                        old.record_name,
                        outcome.record_sets_deleted,
                        outcome.health_checks_deleted
                    ),
                ));
            }
            Err(e) => {
                // Keep status.dns, so the old record set is not forgotten; retry first.
                if wanted.is_some() {
                    step.view = Some(dns_error_view(&e));
                }
                step.errors.push(e);
                return step;
            }
        }
    }
    let Some((dns, _)) = wanted else {
        return step;
    };
    let Some(alb) = load_balancer else {
        step.view = Some(DnsView::Seen(waiting_for_load_balancer(&dns.record_name)));
        return step;
    };
    let r53 = aws.route53().await;
    let desired = route53::desired(app, dns, owner, alb);
    let observed = match Box::pin(route53::ensure(r53, &desired)).await {
        Ok(o) => o,
        Err(e) => {
            step.view = Some(dns_error_view(&e));
            step.errors.push(e);
            return step;
        }
    };
    step.changes.extend(dns_changes(&desired, &observed));
    step.record = DnsRecord::Set(Some(dns_status(&observed)));
    let health = match &observed.health_check_id {
        Some(id)
            if !aws.admit_health_read(!health_reading_stands(id, status), HEALTH_READ_MAX_WAIT) =>
        {
            step.view = Some(DnsView::Throttled);
            return step;
        }
        Some(id) => match aws.health_status(id).await {
            Ok(h) => Some(h),
            Err(e) => {
                step.view = Some(dns_error_view(&e));
                step.errors.push(e);
                return step;
            }
        },
        None => None,
    };
    step.view = Some(DnsView::Seen(route53::readiness(
        &observed,
        health.as_ref(),
    )));
    step
}

/// Deletes every record set and health check this app holds in Route 53: the one the spec
/// names and the one `status.dns` recorded, when they differ. `done` once both are gone.
pub async fn cleanup_dns(aws: &Aws, app: &ValidatedApp, recorded: Option<&DnsStatus>) -> DnsStep {
    let mut step = DnsStep {
        done: true,
        ..DnsStep::default()
    };
    if app.dns.is_none() && recorded.is_none() {
        return step;
    }
    let owner = DnsOwner::new(&cluster_id(aws).await, &app.owner);
    let mut identities: Vec<DnsIdentity> = Vec::new();
    if let Some(dns) = &app.dns {
        identities.push(DnsIdentity::new(dns, owner.clone()));
    }
    if let Some(old) = recorded {
        let id = recorded_identity(old, owner.clone());
        let same = identities.iter().any(|w| {
            w.zone == id.zone
                && w.record_name == id.record_name
                && w.set_identifier == id.set_identifier
        });
        if !same {
            identities.push(id);
        }
    }
    let r53 = aws.route53().await;
    let mut deleted = (0, 0);
    for id in &identities {
        match route53::cleanup(r53, id).await {
            Ok(outcome) => {
                deleted.0 += outcome.record_sets_deleted;
                deleted.1 += outcome.health_checks_deleted;
            }
            Err(e) => {
                step.done = false;
                step.view = Some(dns_error_view(&e));
                step.errors.push(e);
            }
        }
    }
    if step.done {
        step.record = DnsRecord::Set(None);
        let names: Vec<&str> = identities
            .iter()
            .map(|i| i.record_name.trim_end_matches('.'))
            .collect();
        let message = format!(
            "Route 53 record {} deleted ({} record sets, {} health checks)",
            names.join(", "),
            deleted.0,
            deleted.1
        );
        if deleted != (0, 0) {
            step.changes
                .push(Change::new("DNSRecordDeleted", message.clone()));
        }
        step.view = Some(DnsView::Unseen {
            reason: DNS_DELETING,
            message,
        });
    }
    step
}

/// The endpoints for the connection Secret: what AWS reported now, else what the status holds.
pub fn connection(observed: &AwsObserved, old: Option<&HighlyAvailableAppStatus>) -> Connection {
    let status = old;
    let old = old.and_then(|s| s.endpoints.as_ref());
    Connection {
        database: endpoints(
            observed.database.as_ref(),
            old.and_then(|e| e.database.as_ref()),
        ),
        cache: endpoints(observed.cache.as_ref(), old.and_then(|e| e.cache.as_ref())),
        dynamodb_tables: crate::status::storage::tables(&observed.storage, status),
        static_assets: endpoints(
            observed.storage.static_assets.as_ref(),
            status.and_then(|s| s.static_assets.as_ref()),
        ),
    }
}

/// How soon AWS is looked at again: often while it works on something, rarely once stable.
pub fn poll_interval(observed: &AwsObserved, config: &AwsConfig) -> Duration {
    if observed.busy() {
        config.poll_busy
    } else {
        config.poll_stable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Readiness;
    use crate::crd_data::DatabaseEndpoints;

    fn seen(busy: bool) -> AwsView<DatabaseEndpoints> {
        AwsView::Seen {
            readiness: Readiness {
                ready: !busy,
                reason: "Available",
                message: String::new(),
                busy,
            },
            endpoints: DatabaseEndpoints::default(),
        }
    }

    /// Busy resources are polled every 15 s by default, stable ones every 5 min.
    #[test]
    fn polling_follows_aws_activity() {
        let config = AwsConfig::default();
        let busy = AwsObserved {
            database: Some(seen(true)),
            ..AwsObserved::default()
        };
        let stable = AwsObserved {
            database: Some(seen(false)),
            ..AwsObserved::default()
        };
        assert_eq!(poll_interval(&busy, &config), Duration::from_secs(15));
        assert_eq!(poll_interval(&stable, &config), Duration::from_secs(300));
    }

    /// A real failure is reported before throttling, so the Event names what is wrong.
    #[test]
    fn failures_win_over_throttling() {
        let aws = |code: &str, throttled| Error::Aws {
            api: "rds:DescribeDBClusters".into(),
            code: code.into(),
            message: String::new(),
            throttled,
        };
        let step = AwsStep {
            errors: vec![aws("Throttling", true), aws("AccessDenied", false)],
            ..AwsStep::default()
        };
        assert!(crate::aws::is_code(
            &step.error().expect("error"),
            "AccessDenied"
        ));
    }

    fn owner() -> DnsOwner {
        DnsOwner::new(
            "east",
            &crate::meta::Owner {
                name: "shop".into(),
                namespace: "default".into(),
                uid: "uid-1".into(),
            },
        )
    }

    fn recorded() -> DnsStatus {
        DnsStatus {
            hosted_zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            health_check_id: Some("hc-1".into()),
        }
    }

    /// The record set written earlier is deleted only when the spec moved it: another zone,
    /// name or set identifier, or no DNS at all.
    #[test]
    fn recorded_record_is_cleaned_up_only_when_the_slot_moved() {
        let app = crate::render::fixtures::validated_in(crate::render::fixtures::DNS, "us-east-1");
        let dns = app.dns.clone().expect("dns");
        let id = DnsIdentity::new(&dns, owner());
        assert!(!recorded_slot_moved(&recorded(), Some(("Z1", &id))));
        assert!(recorded_slot_moved(&recorded(), Some(("Z2", &id))));
        assert!(recorded_slot_moved(&recorded(), None));
        let mut other_set = recorded();
        other_set.set_identifier = Some("blue".into());
        assert!(recorded_slot_moved(&other_set, Some(("Z1", &id))));
        let mut other_name = recorded();
        other_name.record_name = "www.example.com".into();
        assert!(recorded_slot_moved(&other_name, Some(("Z1", &id))));
    }

    /// Cleanup of a recorded slot targets exactly its names and the owner's TXT record.
    #[test]
    fn recorded_identity_names_the_ownership_record() {
        let id = recorded_identity(&recorded(), owner());
        assert_eq!(
            id,
            DnsIdentity {
                zone: ZoneRef::Id("Z1".into()),
                record_name: "shop.example.com.".into(),
                owner_record_name: "_halo-owner.shop.example.com.".into(),
                set_identifier: Some("us-east-1".into()),
                owner: owner(),
            }
        );
        let app = crate::render::fixtures::validated_in(crate::render::fixtures::DNS, "us-east-1");
        let wanted = DnsIdentity::new(app.dns.as_ref().expect("dns"), owner());
        // Same slot, same prefix: the health checks found by cleanup are the same ones.
        assert_eq!(
            id.caller_reference_prefix(),
            wanted.caller_reference_prefix()
        );
    }

    /// A converged record makes no Event; a written one says where it points, a new health
    /// check what it probes.
    #[test]
    fn dns_events_name_what_changed() {
        let app = crate::render::fixtures::validated_in(crate::render::fixtures::DNS, "us-east-1");
        let alb = "k8s-default-shop-0a1b2c3d4e-1.us-east-1.elb.amazonaws.com";
        let d = route53::desired(&app, app.dns.as_ref().expect("dns"), owner(), alb);
        let mut observed = route53::ObservedDns {
            zone_id: "Z1".into(),
            record_name: "shop.example.com".into(),
            set_identifier: Some("us-east-1".into()),
            target: route53::Target::Alias,
            health_check_id: Some("hc-1".into()),
            record_changes: 0,
            health_check_created: false,
            health_check_updated: false,
            url: "http://shop.example.com".into(),
        };
        assert_eq!(dns_changes(&d, &observed), vec![]);
        observed.record_changes = 3;
        observed.health_check_created = true;
        assert_eq!(
            dns_changes(&d, &observed),
            vec![
                Change::new(
                    "HealthCheckCreated",
                    format!("Route 53 health check hc-1 created on http://{alb}:80/healthz")
                ),
                Change::new(
                    "DNSRecordUpdated",
                    "Route 53 record shop.example.com (set us-east-1) in zone Z1 is an alias to the ALB (3 record sets written)"
                ),
            ]
        );
        assert_eq!(
            dns_status(&observed),
            DnsStatus {
                hosted_zone_id: "Z1".into(),
                record_name: "shop.example.com".into(),
                set_identifier: Some("us-east-1".into()),
                health_check_id: Some("hc-1".into()),
            }
        );
    }

    /// A reading in DNSReady of the same health check may stand another round; a first
    /// reading, or one of another health check, never does.
    #[test]
    fn a_health_reading_stands_only_for_the_same_check() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let condition = |reason: &str| Condition {
            type_: "DNSReady".into(),
            status: "True".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::from_second(1).expect("ts")),
        };
        let status = |reason: &str| HighlyAvailableAppStatus {
            conditions: vec![condition(reason)],
            dns: Some(recorded()),
            ..HighlyAvailableAppStatus::default()
        };
        assert!(health_reading_stands(
            "hc-1",
            Some(&status("HealthCheckHealthy"))
        ));
        assert!(health_reading_stands(
            "hc-1",
            Some(&status("HealthCheckUnhealthy"))
        ));
        assert!(!health_reading_stands(
            "hc-2",
            Some(&status("HealthCheckHealthy"))
        ));
        assert!(!health_reading_stands(
            "hc-1",
            Some(&status("HealthCheckPending"))
        ));
        assert!(!health_reading_stands("hc-1", None));
    }
}
