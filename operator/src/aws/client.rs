//! The SDK side of the AWS layer: operator-wide configuration, the lazily built SDK clients
//! (default credential chain; `AWS_ENDPOINT_URL` points them at an emulator), request
//! counting and the mapping of SDK errors to [`Error::Aws`].

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::OnceCell;

use super::{ratelimit, route53};
use crate::Error;

/// Operator-wide AWS settings (flags with env fallbacks in `main`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsConfig {
    /// Region override; `None` uses the SDK's default chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// DB subnet group for Aurora clusters whose spec names none.
    pub db_subnet_group: Option<String>,
    /// VPC security groups for Aurora clusters whose spec names none.
    pub db_security_groups: Vec<String>,
    /// Cache subnet group for replication groups whose spec names none.
    pub cache_subnet_group: Option<String>,
    /// Security groups for replication groups whose spec names none.
    pub cache_security_groups: Vec<String>,
    /// Poll interval while AWS is creating or modifying something.
    pub poll_busy: Duration,
    /// Poll interval once everything is available.
    pub poll_stable: Duration,
    /// Names this halo installation in the Route 53 records it owns (the TXT ownership record
    /// and the health check tags); `None` uses the region. Two installations that write
    /// records into one hosted zone need distinct ids.
    pub cluster_id: Option<String>,
    /// IAM role S3 assumes to replicate static assets to another region.
    pub s3_replication_role_arn: Option<String>,
    /// Longest one AWS request may take, retries included: a hung call fails (and the
    /// reconcile backs off) instead of holding a concurrency slot forever.
    pub call_timeout: Duration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            db_subnet_group: None,
            db_security_groups: Vec::new(),
            cache_subnet_group: None,
            cache_security_groups: Vec::new(),
            poll_busy: Duration::from_secs(15),
            poll_stable: Duration::from_secs(300),
            cluster_id: None,
            s3_replication_role_arn: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// Default of [`AwsConfig::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK's timeouts for a request that may take `total`: connecting, each attempt, the whole.
pub fn timeout_config(total: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(total.min(Duration::from_secs(5)))
        .operation_attempt_timeout(total / 2)
        .operation_timeout(total)
        .build()
}

/// The cluster id used when neither `--cluster-id` nor a region is known.
pub const DEFAULT_CLUSTER_ID: &str = "halo";

/// The cluster id halo writes into its ownership records: the configured one, else the
/// region, else [`DEFAULT_CLUSTER_ID`]. Pure.
pub fn effective_cluster_id(configured: Option<&str>, region: Option<&str>) -> String {
    configured
        .filter(|c| !c.is_empty())
        .or(region.filter(|r| !r.is_empty()))
        .unwrap_or(DEFAULT_CLUSTER_ID)
        .to_string()
}

/// The AWS side of the operator: configuration plus SDK clients built on first use, so an
/// operator whose apps have no AWS sections never needs credentials.
#[derive(Debug)]
pub struct Aws {
    pub config: AwsConfig,
    sdk: OnceCell<aws_config::SdkConfig>,
    rds: OnceCell<aws_sdk_rds::Client>,
    elasticache: OnceCell<aws_sdk_elasticache::Client>,
    route53: OnceCell<route53::Route53>,
    /// Every Route 53 request of the operator takes a token here.
    route53_limiter: Arc<ratelimit::RateLimiter>,
    route53_log: Arc<route53::CallLog>,
    /// Decides which health status reads are sent when many apps want one at once.
    health_admission: ratelimit::Admission,
    /// Replaces GetHealthCheckStatus (tests: moto always answers healthy).
    health_reports: Option<Arc<dyn CheckerReports>>,
    dynamodb: OnceCell<aws_sdk_dynamodb::Client>,
    s3: OnceCell<aws_sdk_s3::Client>,
    cloudwatch: OnceCell<aws_sdk_cloudwatch::Client>,
    calls: CallCounter,
}

impl Default for Aws {
    fn default() -> Self {
        Aws {
            config: AwsConfig::default(),
            sdk: OnceCell::new(),
            rds: OnceCell::new(),
            elasticache: OnceCell::new(),
            route53: OnceCell::new(),
            route53_limiter: Arc::new(ratelimit::RateLimiter::new(ratelimit::route53_limits())),
            route53_log: Arc::default(),
            health_admission: health_admission(&ratelimit::route53_limits()),
            health_reports: None,
            dynamodb: OnceCell::new(),
            s3: OnceCell::new(),
            cloudwatch: OnceCell::new(),
            calls: CallCounter::default(),
        }
    }
}

/// Admission at the rate of the limiter's GetHealthCheckStatus bucket (else its overall one).
fn health_admission(limits: &ratelimit::Limits) -> ratelimit::Admission {
    let rate = limits
        .operations
        .iter()
        .find(|(op, _)| *op == ratelimit::GET_HEALTH_CHECK_STATUS)
        .map_or(limits.overall, |(_, rate)| *rate);
    ratelimit::Admission::new(rate)
}

/// A source of Route 53 health checkers' reports other than GetHealthCheckStatus; object-safe,
/// so the operator can hold one.
pub trait CheckerReports: Debug + Send + Sync {
    fn reports<'a>(
        &'a self,
        health_check_id: &'a str,
    ) -> futures::future::BoxFuture<'a, crate::Result<Vec<String>>>;
}

impl Aws {
    pub fn new(config: AwsConfig) -> Self {
        Aws {
            config,
            ..Aws::default()
        }
    }

    /// With a ready-made SDK configuration (tests point it at an emulator).
    pub fn with_sdk_config(config: AwsConfig, sdk: aws_config::SdkConfig) -> Self {
        let sdk = sdk
            .into_builder()
            .timeout_config(timeout_config(config.call_timeout))
            .build();
        Aws {
            config,
            sdk: OnceCell::new_with(Some(sdk)),
            ..Aws::default()
        }
    }

    /// With the Route 53 limiter `limits` (tests use faster or slower buckets).
    pub fn with_route53_limits(mut self, limits: ratelimit::Limits) -> Self {
        self.health_admission = health_admission(&limits);
        self.route53_limiter = Arc::new(ratelimit::RateLimiter::new(limits));
        self
    }

    /// Health checker reports from `source` instead of Route 53's GetHealthCheckStatus.
    pub fn with_checker_reports(mut self, source: Arc<dyn CheckerReports>) -> Self {
        self.health_reports = Some(source);
        self
    }

    /// Requests sent to Route 53 so far, per API (`ChangeResourceRecordSets`).
    pub fn route53_calls(&self) -> &route53::CallLog {
        &self.route53_log
    }

    /// The Route 53 client: SDK retries off, every request through the operator's one limiter.
    pub async fn route53(&self) -> &route53::Route53 {
        self.route53
            .get_or_init(|| async {
                route53::Route53::from_sdk_config(
                    self.sdk_config().await,
                    self.route53_limiter.clone(),
                )
                .with_call_log(self.route53_log.clone())
            })
            .await
    }

    /// The region: the configured one, else what the SDK's default chain found.
    pub async fn region(&self) -> Option<String> {
        match &self.config.region {
            Some(r) => Some(r.clone()),
            None => self.sdk_config().await.region().map(|r| r.to_string()),
        }
    }

    /// Whether to send a GetHealthCheckStatus now: always when `required`, else only when its
    /// token comes within `max_wait` (the caller then keeps its last reading).
    pub fn admit_health_read(&self, required: bool, max_wait: Duration) -> bool {
        if required {
            self.health_admission.admit();
            true
        } else {
            self.health_admission.admit_within(max_wait)
        }
    }

    /// The reports of the Route 53 checkers of `health_check_id` (GetHealthCheckStatus, unless
    /// replaced), as a health summary.
    pub async fn health_status(
        &self,
        health_check_id: &str,
    ) -> crate::Result<route53::HealthCheckHealth> {
        match &self.health_reports {
            Some(source) => Ok(route53::HealthCheckHealth::from_reports(
                &source.reports(health_check_id).await?,
            )),
            None => route53::health_status(self.route53().await, health_check_id).await,
        }
    }

    /// Requests sent to RDS and ElastiCache so far, per API (`rds:DescribeDBClusters`).
    pub fn calls(&self) -> &CallCounter {
        &self.calls
    }

    /// Sends one request of `api` (`rds:CreateDBCluster`), counting it and mapping its error.
    pub async fn call<T, E, R>(
        &self,
        api: &str,
        request: impl std::future::Future<Output = std::result::Result<T, SdkError<E, R>>>,
    ) -> crate::Result<T>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        self.calls.record(api);
        request.await.map_err(aws_error(api))
    }

    /// The shared SDK configuration: default credential chain, region from the configuration
    /// or the default chain, endpoint from `AWS_ENDPOINT_URL` when set.
    pub async fn sdk_config(&self) -> &aws_config::SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(timeout_config(self.config.call_timeout));
                if let Some(region) = &self.config.region {
                    loader = loader.region(aws_config::Region::new(region.clone()));
                }
                loader.load().await
            })
            .await
    }

    pub async fn rds(&self) -> &aws_sdk_rds::Client {
        self.rds
            .get_or_init(|| async { aws_sdk_rds::Client::new(self.sdk_config().await) })
            .await
    }

    pub async fn elasticache(&self) -> &aws_sdk_elasticache::Client {
        self.elasticache
            .get_or_init(|| async { aws_sdk_elasticache::Client::new(self.sdk_config().await) })
            .await
    }

    pub async fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| async { aws_sdk_dynamodb::Client::new(self.sdk_config().await) })
            .await
    }

    /// The S3 client of the operator's region.
    pub async fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| async { self.s3_client(None).await })
            .await
    }

    /// An S3 client for `region` (the operator's region when `None`); path-style addressing
    /// when an endpoint override points the SDK at an emulator.
    pub async fn s3_client(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        let sdk = self.sdk_config().await;
        let mut builder = aws_sdk_s3::config::Builder::from(sdk);
        if let Some(region) = region {
            builder = builder.region(aws_config::Region::new(region.to_string()));
        }
        if sdk.endpoint_url().is_some() {
            builder = builder.force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(builder.build())
    }

    /// The CloudWatch client of the operator's region.
    pub async fn cloudwatch(&self) -> &aws_sdk_cloudwatch::Client {
        self.cloudwatch
            .get_or_init(|| async { aws_sdk_cloudwatch::Client::new(self.sdk_config().await) })
            .await
    }

    /// A CloudWatch client for another region (Route 53 metrics exist only in us-east-1).
    pub async fn cloudwatch_in(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        let sdk = self.sdk_config().await;
        let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
            .region(aws_config::Region::new(region.to_string()))
            .build();
        aws_sdk_cloudwatch::Client::from_conf(config)
    }
}

/// Maps an SDK builder's validation failure (a required field left out) to [`Error::Aws`].
pub fn build_error(api: &str) -> impl FnOnce(aws_sdk_rds::error::BuildError) -> Error + use<> {
    let api = api.to_string();
    move |e| Error::Aws {
        api,
        code: "ConstructionFailure".into(),
        message: e.to_string(),
        throttled: false,
    }
}

/// Counts of AWS requests per API, e.g. `rds:CreateDBCluster`.
#[derive(Debug, Default)]
pub struct CallCounter(Mutex<BTreeMap<String, u64>>);

impl CallCounter {
    pub fn record(&self, api: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(api.to_string())
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests since `before` (a [`CallCounter::snapshot`]), per API.
    pub fn since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .filter_map(|(api, n)| {
                let delta = n - before.get(&api).copied().unwrap_or(0);
                (delta > 0).then_some((api, delta))
            })
            .collect()
    }
}

/// Whether an API name (`rds:DescribeDBClusters`) only reads.
pub fn is_read_only(api: &str) -> bool {
    let op = api.split(':').nth(1).unwrap_or(api);
    op.starts_with("Describe") || op.starts_with("List") || op.starts_with("Get")
}

/// Error codes AWS uses for request throttling.
const THROTTLING_CODES: [&str; 10] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "PriorRequestNotComplete",
];

/// Whether an AWS error code means "slow down" rather than "this failed".
pub fn is_throttling(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// Maps an SDK error of `api` (e.g. `"rds:CreateDBCluster"`) to [`Error::Aws`] with the AWS
/// error code, or the kind of transport failure when AWS never answered.
pub fn aws_error<E, R>(api: &str) -> impl FnOnce(SdkError<E, R>) -> Error + use<E, R>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug,
{
    let api = api.to_string();
    move |err| {
        let (code, message) = match &err {
            SdkError::ServiceError(_) => (
                err.code().unwrap_or("Unknown").to_string(),
                err.message().map(str::to_string),
            ),
            SdkError::TimeoutError(_) => ("Timeout".to_string(), None),
            SdkError::DispatchFailure(_) => ("DispatchFailure".to_string(), None),
            SdkError::ResponseError(_) => ("ResponseError".to_string(), None),
            SdkError::ConstructionFailure(_) => ("ConstructionFailure".to_string(), None),
            _ => ("Unknown".to_string(), None),
        };
        let message = message.unwrap_or_else(|| {
            aws_sdk_rds::error::DisplayErrorContext(&err)
                .to_string()
                .replace('\n', " ")
        });
        Error::Aws {
            throttled: is_throttling(&code),
            api,
            code,
            message,
        }
    }
}

/// Whether `err` is the given AWS error code (e.g. a "not found" on describe).
pub fn is_code(err: &Error, wanted: &str) -> bool {
    matches!(err, Error::Aws { code, .. } if code == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ownership records name the installation: the configured id, else the region.
    #[test]
    fn cluster_id_defaults_to_the_region() {
        assert_eq!(
            effective_cluster_id(Some("prod-east"), Some("us-east-1")),
            "prod-east"
        );
        assert_eq!(
            effective_cluster_id(Some(""), Some("us-east-1")),
            "us-east-1"
        );
        assert_eq!(effective_cluster_id(None, Some("eu-west-1")), "eu-west-1");
        assert_eq!(effective_cluster_id(None, None), "halo");
    }

    /// 5xx and unanswered requests are worth a prompt retry; a refusal is not.
    #[test]
    fn transient_failures() {
        let aws = |code: &str| Error::Aws {
            api: "route53:ChangeResourceRecordSets".into(),
            code: code.into(),
            message: String::new(),
            throttled: false,
        };
        for code in ["InternalError", "ServiceUnavailable", "DispatchFailure"] {
            assert!(aws(code).is_transient(), "{code}");
        }
        for code in [
            "InvalidChangeBatch",
            "AccessDenied",
            "NoSuchHostedZone",
            "Timeout",
        ] {
            assert!(!aws(code).is_transient(), "{code}");
        }
    }

    /// Throttling codes are recognised so they never mark the app failed.
    #[test]
    fn throttling_codes() {
        assert!(is_throttling("Throttling"));
        assert!(is_throttling("ThrottlingException"));
        assert!(!is_throttling("DBClusterNotFoundFault"));
    }
}
