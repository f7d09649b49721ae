//! The real [`LeaseSource`]: `kube-lease-manager` campaigns and renews; its watch channel
//! says only when holding changes, so successful renewals are observed on the wire. The
//! manager gets a client whose requests pass through [`RenewalSpy`], which reports every
//! accepted PATCH of our Lease whose answer names us as holder, with the instant it was sent.
//! No extra request and no extra RBAC verb.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::client::Body;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

use super::{LeaseConfig, LeaseEvent, LeaseSource};

/// A running lease manager and what it reports.
pub struct ManagedLease {
    leading: watch::Receiver<bool>,
    renewed: watch::Receiver<Option<Instant>>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl ManagedLease {
    /// Starts campaigning for the lease.
    pub async fn start(client: Client, config: &LeaseConfig) -> anyhow::Result<Self> {
        let (spy, renewed) = RenewalSpy::new(client, config);
        let namespace = spy.client.default_namespace().to_string();
        let manager = LeaseManagerBuilder::new(Client::new(spy, namespace), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.timing.duration().as_secs())
            .with_grace(config.timing.manager_grace())
            .with_field_manager(crate::meta::FIELD_MANAGER)
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Self {
            leading,
            renewed,
            task,
        })
    }

    /// Stops the manager, which releases the lease if still ours. Waits at most `limit`: with
    /// the API server unreachable the lease simply expires.
    pub async fn release(self, limit: Duration) {
        let Self {
            leading,
            renewed,
            task,
        } = self;
        // Closing the channel makes the manager release the lease (if still ours) and stop.
        drop((leading, renewed));
        let abort = task.abort_handle();
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed"),
            Ok(Err(e)) => warn!(error = %e, "lease task failed"),
            Err(_) => {
                abort.abort();
                warn!(limit = ?limit, "releasing the lease took too long; it will expire instead");
            }
        }
    }
}

impl LeaseSource for ManagedLease {
    async fn next(&mut self) -> Option<LeaseEvent> {
        tokio::select! {
            biased;
            changed = self.leading.changed() => match changed {
                Ok(()) => Some(LeaseEvent::Holder(*self.leading.borrow_and_update())),
                Err(_) => None,
            },
            changed = self.renewed.changed() => match changed {
                // The spy only ever sends `Some`.
                Ok(()) => (*self.renewed.borrow_and_update()).map(LeaseEvent::Renewed),
                Err(_) => None,
            },
        }
    }
}

/// A client layer that reports our successful Lease writes.
#[derive(Clone)]
pub struct RenewalSpy {
    client: Client,
    /// The Lease's URL path.
    path: String,
    identity: String,
    renewed: std::sync::Arc<watch::Sender<Option<Instant>>>,
}

impl RenewalSpy {
    /// Wraps `client`; the receiver gets the send instant of each accepted renewal.
    pub fn new(client: Client, config: &LeaseConfig) -> (Self, watch::Receiver<Option<Instant>>) {
        let (sender, receiver) = watch::channel(None);
        let spy = Self {
            client,
            path: format!(
                "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
                config.namespace, config.name
            ),
            identity: config.identity.clone(),
            renewed: std::sync::Arc::new(sender),
        };
        (spy, receiver)
    }
}

/// Whether an answer to a Lease write names `identity` as holder with a renewTime.
fn holds(body: &[u8], identity: &str) -> bool {
    serde_json::from_slice::<Lease>(body)
        .ok()
        .and_then(|lease| lease.spec)
        .is_some_and(|spec| {
            spec.holder_identity.as_deref() == Some(identity) && spec.renew_time.is_some()
        })
}

impl tower_service::Service<Request<Body>> for RenewalSpy {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // Taken before the request leaves: the renewTime in it was stamped just before this.
        let sent = Instant::now();
        let watched = request.method() == Method::PATCH && request.uri().path() == self.path;
        let (client, identity, renewed) = (
            self.client.clone(),
            self.identity.clone(),
            self.renewed.clone(),
        );
        Box::pin(async move {
            let response = client.send(request).await?;
            if !watched || !response.status().is_success() {
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = body.collect_bytes().await?;
            if holds(&body, &identity) {
                renewed.send_modify(|last| *last = Some(last.map_or(sent, |l| l.max(sent))));
            }
            Ok(Response::from_parts(parts, Body::from(body.to_vec())))
        })
    }
}
