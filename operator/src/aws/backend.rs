//! The backend interface the controller calls, and the SDK backend ([`Aws`]).
//!
//! A backend carries out an [`AwsPlan`]: `ensure` makes AWS match it, `cleanup` carries out
//! every deletion policy. It reports one [`AwsStep`]. The controller never learns how: the SDK
//! backend calls AWS itself through one [`Service`] per AWS service; a backend that writes
//! AWS Controllers for Kubernetes objects instead implements the same trait.

use futures::future::{BoxFuture, FutureExt};

use crate::Error;
use crate::observed::{AwsObserved, DnsRecord};

use super::aurora::Aurora;
use super::cloudwatch::Alarms;
use super::dynamodb::Tables;
use super::elasticache::ElastiCache;
use super::plan::AwsPlan;
use super::route53::{Dns, DnsResult};
use super::s3::Bucket;
use super::service::{self, Outcome};
use super::{Aws, AwsConfig, Change};

/// Something that carries out AWS plans.
pub trait Backend: Send + Sync {
    /// Operator-wide settings (default networking, poll intervals, cluster id).
    fn config(&self) -> &AwsConfig;

    /// The operator's region: configured, else found by the backend (`None`: unknown).
    fn region(&self) -> BoxFuture<'_, Option<String>>;

    /// Creates, adopts or corrects everything the plan wants.
    fn ensure<'a>(&'a self, plan: &'a AwsPlan) -> BoxFuture<'a, AwsStep>;

    /// Carries out the deletion policy of everything the plan names; `done` once AWS confirmed.
    fn cleanup<'a>(&'a self, plan: &'a AwsPlan) -> BoxFuture<'a, AwsStep>;
}

/// What the AWS stage of one reconcile found and did.
#[derive(Debug)]
pub struct AwsStep {
    pub observed: AwsObserved,
    /// One Normal Event each.
    pub changes: Vec<Change>,
    /// Failures, in order (throttling included: it backs off but never marks the app failed).
    pub errors: Vec<Error>,
    /// Cleanup: every resource is gone, deleting or retained. Ensure: true.
    pub done: bool,
}

impl Default for AwsStep {
    fn default() -> Self {
        AwsStep {
            observed: AwsObserved::default(),
            changes: Vec::new(),
            errors: Vec::new(),
            done: true,
        }
    }
}

impl AwsStep {
    /// Takes one service's changes, errors and progress; returns its view.
    pub fn absorb<V>(&mut self, outcome: Outcome<V>) -> Option<V> {
        self.done &= outcome.done;
        self.changes.extend(outcome.changes);
        self.errors.extend(outcome.errors);
        outcome.view
    }

    fn absorb_dns(&mut self, outcome: Outcome<DnsResult>) {
        let dns = self.absorb(outcome).unwrap_or_default();
        self.observed.dns = dns.view;
        self.observed.dns_record = dns.record;
    }

    /// The first failure that is not throttling, else the first throttling.
    pub fn error(self) -> Option<Error> {
        let (throttled, failed): (Vec<Error>, Vec<Error>) =
            self.errors.into_iter().partition(Error::is_throttled);
        failed.into_iter().chain(throttled).next()
    }
}

impl Backend for Aws {
    fn config(&self) -> &AwsConfig {
        &self.config
    }

    fn region(&self) -> BoxFuture<'_, Option<String>> {
        Aws::region(self).boxed()
    }

    fn ensure<'a>(&'a self, plan: &'a AwsPlan) -> BoxFuture<'a, AwsStep> {
        async move {
            // Database, cache and DNS concurrently: each may wait on AWS for a while.
            let (aurora, elasticache, route53) = (Aurora(self), ElastiCache(self), Dns(self));
            let (database, cache, dns) = futures::join!(
                Box::pin(service::ensure(&aurora, plan.database.as_ref())),
                Box::pin(service::ensure(&elasticache, plan.cache.as_ref())),
                Box::pin(service::ensure(&route53, plan.dns.as_ref())),
            );
            let mut step = AwsStep::default();
            step.absorb_dns(dns);
            step.observed.database = step.absorb(database);
            step.observed.cache = step.absorb(cache);
            let tables = Box::pin(service::ensure(&Tables(self), plan.tables.as_ref())).await;
            step.observed.dynamodb = step.absorb(tables);
            let bucket = Box::pin(service::ensure(&Bucket(self), plan.bucket.as_ref())).await;
            step.observed.static_assets = step.absorb(bucket);
            // The Route 53 health check alarm watches the check the DNS step just wrote.
            let mut alarms = plan.alarms.clone();
            if let (Some(a), DnsRecord::Set(written)) = (&mut alarms, &step.observed.dns_record) {
                a.set_health_check(written.as_ref().and_then(|d| d.health_check_id.as_deref()));
            }
            let alarms = Box::pin(service::ensure(&Alarms(self), alarms.as_ref())).await;
            step.observed.alarms = step.absorb(alarms);
            step
        }
        .boxed()
    }

    fn cleanup<'a>(&'a self, plan: &'a AwsPlan) -> BoxFuture<'a, AwsStep> {
        async move {
            let (aurora, elasticache, route53) = (Aurora(self), ElastiCache(self), Dns(self));
            let (database, cache, dns) = futures::join!(
                Box::pin(service::cleanup(&aurora, plan.database.as_ref())),
                Box::pin(service::cleanup(&elasticache, plan.cache.as_ref())),
                Box::pin(service::cleanup(&route53, plan.dns.as_ref())),
            );
            let mut step = AwsStep::default();
            step.absorb_dns(dns);
            step.observed.database = step.absorb(database);
            step.observed.cache = step.absorb(cache);
            let tables = Box::pin(service::cleanup(&Tables(self), plan.tables.as_ref())).await;
            step.observed.dynamodb = step.absorb(tables);
            let bucket = Box::pin(service::cleanup(&Bucket(self), plan.bucket.as_ref())).await;
            step.observed.static_assets = step.absorb(bucket);
            let alarms = Box::pin(service::cleanup(&Alarms(self), plan.alarms.as_ref())).await;
            step.observed.alarms = step.absorb(alarms);
            step
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
