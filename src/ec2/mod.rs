//! The service layer: the only code that talks to EC2. It wraps the SDK client and returns
//! amictl's own types (`crate::model`) and errors (`crate::error::Error`).
//!
//! Endpoint, region, timeout and retry settings are made once, here, where the client is built.

/// Sends a request built by `$request` once (`$once`: the probe of an action not every endpoint
/// offers), or with the usual retries; for `errors::send_probing`.
macro_rules! once_or_retried {
    ($once:expr, $request:expr) => {{
        let request = $request;
        async move {
            if $once {
                request.customize().config_override(one_try()).send().await
            } else {
                request.send().await
            }
        }
    }};
}

/// An SDK client's configuration builder with amictl's retries: a retry quota of the client's
/// own, and a refused connection final (see `retry`). Every service's client is made so.
macro_rules! with_retries {
    ($builder:expr) => {
        $builder
            .retry_partition(retry::partition())
            .retry_classifier(retry::RefusedConnectionIsFinal)
    };
}

mod accounts;
mod assume;
mod budget;
mod copy;
mod create;
mod errors;
mod http;
mod images;
mod instances;
mod metadata;
#[cfg(test)]
pub mod mock;
mod pace;
mod pages;
mod permissions;
mod publish;
mod retry;
mod snapshots;
mod stages;
mod usage;
mod wait;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ec2::Client;

pub use copy::{CopySpec, RegionInfo};
pub use create::{CreatedImage, Creation, ImageSpec};
pub use images::{Deregistered, ImageQuery};
pub use metadata::{ThisInstance, this_instance};
pub use permissions::{Change, Grants, SnapshotSharing, Support};
pub use publish::{IMAGE_DATA_TYPE, ParameterNow, SettleWait, Settled, TemplateVersion};
pub use snapshots::SnapshotDeletion;
pub use usage::{LaunchPaths, ReportAnswer, ReportWait, Reports, TemplatePin};
pub use wait::{Ending, Look, WaitEnd, WaitPolicy};

use crate::error::Error;
use crate::types::{AccountId, EndpointUrl, Region, RoleArn};

/// Requests in flight at once by default, for the whole run, every account and region together
/// (see [`http`]; `--concurrency` sets it where a command takes it). At EC2's usual 30–100 ms a request that is 1,300–4,000 requests a second, which
/// amictl signs and parses on one thread in about half a core of a 2-core CI runner
/// (scripts/bench --org-scale): more in flight would make the machine the limit, not the round
/// trips, and each request in flight is a socket.
pub const IN_FLIGHT: usize = 128;

/// Requests made at once for each one the HTTP client lets fly (see [`budget`]): one in flight
/// and one ready to take its slot the moment it frees.
const MADE_PER_SLOT: usize = 2;
/// A connection attempt that gets no answer gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of one request: a hung endpoint costs this much per attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// One request, all its retries included, unless `--timeout` says otherwise.
const OPERATION_TIMEOUT: Duration = Duration::from_mins(1);

/// Where and as whom to connect, as the user asked (the global options).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub region: Option<Region>,
    pub profile: Option<String>,
    pub endpoint_url: Option<EndpointUrl>,
    /// The region to use when neither `--region`, the environment nor the profile names one
    /// (e.g. the instance metadata service's).
    pub fallback_region: Option<Region>,
    /// `--max-attempts`: attempts per request, retries included.
    pub max_attempts: Option<u32>,
    /// `--timeout`: the budget of one request, retries included.
    pub timeout: Option<Duration>,
    /// `--role-arn`: work in that role's account, with credentials from assuming it.
    pub role: Option<RoleArn>,
    /// The account's name, where the organization gives it (`--org`), for labelling.
    pub account_name: Option<String>,
    /// `--max-rate`: requests a second per action, at most.
    pub max_rate: Option<f64>,
    /// `--concurrency`, where the command takes it: requests in flight at most, for the whole
    /// run (else [`IN_FLIGHT`]).
    pub in_flight: Option<usize>,
}

/// An EC2 client bound to one region, with what error messages need to name. Its SDK clients
/// are made when a request needs them and dropped with [`Ec2::release`]: a run over an
/// organization holds thousands of these, each working only for a while.
#[derive(Debug, Clone)]
pub struct Ec2 {
    /// The SDK clients, each while made.
    made: std::sync::Arc<std::sync::Mutex<Clients>>,
    /// How to make them again (`None`: given ready, by a test, or forgotten by a read-only
    /// run done with the context: [`Ec2::forget`]).
    recipe: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<Recipe>>>>,
    region: Region,
    endpoint: String,
    /// The account of the assumed role (`--role-arn`), for labelling what it finds.
    account_id: Option<AccountId>,
    /// Its name, where the organization gives it.
    account_name: Option<String>,
    /// The paced actions of this account and region, each with its own rate.
    streams: std::sync::Arc<pace::Streams>,
    /// What the endpoint has said of the Recycle Bin: unknown yet, offered (it answered), or
    /// not offered (then not asked again).
    recycle_bin: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

/// The SDK clients of one account and region: EC2, and Auto Scaling groups and launch
/// configurations and SSM parameters, which can name images too. Each is made when first
/// needed (`describe` needs EC2's alone), and all are dropped together.
#[derive(Debug, Default)]
struct Clients {
    ec2: Option<Client>,
    autoscaling: Option<aws_sdk_autoscaling::Client>,
    ssm: Option<aws_sdk_ssm::Client>,
}

/// What makes an account and region's clients: the session's configuration and the region.
#[derive(Debug)]
struct Recipe {
    config: aws_config::SdkConfig,
    region: Region,
    endpoint_url: Option<EndpointUrl>,
}

impl Recipe {
    fn sdk_region(&self) -> aws_config::Region {
        aws_config::Region::new(self.region.as_str().to_owned())
    }

    fn ec2(&self) -> Client {
        let mut ec2 = with_retries!(aws_sdk_ec2::config::Builder::from(&self.config).region(self.sdk_region()));
        if let Some(url) = &self.endpoint_url {
            ec2 = ec2.endpoint_url(url.as_str());
        }
        Client::from_conf(ec2.build())
    }

    fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        let config =
            with_retries!(aws_sdk_autoscaling::config::Builder::from(&self.config).region(self.sdk_region())).build();
        aws_sdk_autoscaling::Client::from_conf(config)
    }

    fn ssm(&self) -> aws_sdk_ssm::Client {
        let config = with_retries!(aws_sdk_ssm::config::Builder::from(&self.config).region(self.sdk_region())).build();
        aws_sdk_ssm::Client::from_conf(config)
    }
}

/// How one account is reached: its SDK configuration and credentials (assumed once, for a
/// role, and shared by every region's client), and the region used when none is named.
#[derive(Debug, Clone)]
pub struct Session {
    config: aws_config::SdkConfig,
    region: Region,
    endpoint_url: Option<EndpointUrl>,
    account_id: Option<AccountId>,
    account_name: Option<String>,
    max_rate: Option<f64>,
    max_attempts: Option<u32>,
    budget: Duration,
    /// The run's requests made at once, across its accounts and regions.
    requests: std::sync::Arc<budget::Budget>,
}

impl Session {
    /// Resolves the region and credentials chain. Sends no request: credentials are looked
    /// up lazily, on the first call, and cached for every client of the session.
    pub async fn start(options: &ConnectOptions) -> Result<Session, Error> {
        let region = resolve_region(options).await?;
        let operation_timeout = options.timeout.unwrap_or(OPERATION_TIMEOUT);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.as_str().to_owned()))
            .identity_cache(aws_config::identity::IdentityCache::lazy().build())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT.min(operation_timeout))
                    .operation_timeout(operation_timeout)
                    .build(),
            );
        // --max-attempts wins; else AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, which aws-config reads;
        // else amictl's default for bulk work.
        let from_environment = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        match options.max_attempts {
            Some(attempts) => {
                loader = loader.retry_config(RetryConfig::standard().with_max_attempts(attempts));
            }
            None if !from_environment => {
                loader = loader.retry_config(RetryConfig::standard().with_max_attempts(retry::DEFAULT_MAX_ATTEMPTS));
            }
            None => {}
        }
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        // One HTTP client for every client of the run, whatever the number of accounts and
        // regions: without it, each SDK client makes its own (a TLS root store and a connection
        // pool each), which an organization's thousands of clients can't afford.
        let in_flight = options.in_flight.unwrap_or(IN_FLIGHT);
        loader = loader.http_client(http::run_client(in_flight));
        // --endpoint-url is EC2's alone (set on its client below), as with the AWS CLI: STS
        // (AssumeRole), Auto Scaling and SSM keep their own endpoints, which aws-config takes
        // from AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL. An EC2 VPC endpoint then leaves
        // the other services where they are.
        let session = Session {
            config: loader.load().await,
            region,
            endpoint_url: options.endpoint_url.clone(),
            account_id: None,
            account_name: None,
            max_rate: options.max_rate,
            max_attempts: options.max_attempts,
            budget: operation_timeout,
            requests: budget::Budget::new(in_flight * MADE_PER_SLOT),
        };
        // The role's credentials come from STS, asked with the caller's own.
        Ok(match &options.role {
            Some(role) => session.assumed(role, options.account_name.clone()),
            None => Session {
                account_name: options.account_name.clone(),
                ..session
            },
        })
    }

    /// The same session through a role in another account (its credentials assumed with this
    /// session's own, once, when a request first needs them): no configuration is loaded
    /// again, which an organization of a thousand accounts would otherwise do a thousand times.
    pub fn assumed(&self, role: &RoleArn, account_name: Option<String>) -> Session {
        // STS asked with this session's credentials, retried as the run's other clients are.
        let sts = with_retries!(aws_sdk_sts::config::Builder::from(&self.config)).build();
        let assumed = assume::Assumed::new(aws_sdk_sts::Client::from_conf(sts), role.clone());
        Session {
            // A cache of its own: the role's credentials, asked for once.
            config: (self.config.clone().into_builder())
                .credentials_provider(SharedCredentialsProvider::new(assumed))
                .identity_cache(aws_config::identity::IdentityCache::lazy().build())
                .build(),
            account_id: Some(role.account_id().clone()),
            account_name,
            ..self.clone()
        }
    }

    /// Asks for the role's credentials now, ahead of the session's first request, so that its
    /// work doesn't wait for AssumeRole (an organization's accounts are warmed a few ahead of
    /// the ones at work); the answer, or the refusal, is kept for that request.
    pub async fn warm(self) {
        if let Some(provider) = self.config.credentials_provider() {
            let _ = aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider).await;
        }
    }

    /// Whether its credentials come from assuming a role.
    pub fn is_assumed(&self) -> bool {
        self.account_id.is_some()
    }

    /// The session's own region.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The clients of one region (`None`: the session's own).
    pub fn client(&self, region: Option<Region>) -> Ec2 {
        let region = region.unwrap_or_else(|| self.region.clone());
        Ec2 {
            made: std::sync::Arc::default(),
            recipe: std::sync::Arc::new(std::sync::Mutex::new(Some(std::sync::Arc::new(Recipe {
                config: self.config.clone(),
                region: region.clone(),
                endpoint_url: self.endpoint_url.clone(),
            })))),
            endpoint: endpoint_for_messages(self.endpoint_url.as_ref(), &region),
            account_id: self.account_id.clone(),
            account_name: self.account_name.clone(),
            region,
            streams: std::sync::Arc::new(pace::Streams::new(
                self.max_rate,
                self.max_attempts,
                self.budget,
                std::sync::Arc::clone(&self.requests),
            )),
            recycle_bin: std::sync::Arc::default(),
        }
    }
}

impl Ec2 {
    /// One of the SDK clients (a handle to it, cheap to clone), made if it isn't.
    fn client<T: Clone>(&self, slot: fn(&mut Clients) -> &mut Option<T>, make: fn(&Recipe) -> T) -> T {
        let mut clients = self.made.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot(&mut clients)
            .get_or_insert_with(|| {
                let recipe = self
                    .recipe
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                make(&recipe.expect("clients, or a recipe for them (not forgotten)"))
            })
            .clone()
    }

    /// Where a request of this account and region takes its slot among the run's
    /// ([`budget`]): `Opens` for one whose answer brings more requests.
    fn gate(&self, turn: budget::Turn) -> budget::Gate {
        self.streams.gate(turn)
    }

    fn ec2(&self) -> Client {
        self.client(|made| &mut made.ec2, Recipe::ec2)
    }

    fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        self.client(|made| &mut made.autoscaling, Recipe::autoscaling)
    }

    fn ssm(&self) -> aws_sdk_ssm::Client {
        self.client(|made| &mut made.ssm, Recipe::ssm)
    }

    /// Drops the SDK clients until a request needs them again: a context done with its work
    /// holds only what it found.
    pub fn release(&self) {
        if self
            .recipe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
        {
            *self.made.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Clients::default();
        }
    }

    /// Releases the clients for good, what makes them (the account's configuration and
    /// credentials) and the rates learned: for a read-only run done with this account and
    /// region, so that an organization's accounts don't stay in memory once read. A request
    /// after this panics.
    pub fn forget(&self) {
        self.release();
        *self.recipe.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.streams.clear();
    }

    /// The endpoint, as messages name it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Where this client works, as a failure names it: `account 111122223333, eu-west-1`, or
    /// the region alone in the caller's own account.
    pub fn place(&self) -> String {
        match &self.account_id {
            Some(account) => format!("account {account}, {}", self.region),
            None => self.region.to_string(),
        }
    }

    /// The account of the assumed role, when amictl works through `--role-arn`.
    pub fn account_id(&self) -> Option<&AccountId> {
        self.account_id.as_ref()
    }

    /// The account's name, where the organization gives it.
    pub fn account_name(&self) -> Option<&str> {
        self.account_name.as_deref()
    }

    /// The regions enabled for the account (DescribeRegions), for `--all-regions`.
    pub async fn enabled_regions(&self) -> Result<Vec<Region>, Error> {
        let output = self
            .ec2()
            .describe_regions()
            .send()
            .await
            .map_err(|err| self.error("DescribeRegions", &err))?;
        let mut regions: Vec<Region> = output
            .regions()
            .iter()
            .filter_map(|r| r.region_name()?.parse().ok())
            .collect();
        regions.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(regions)
    }

    /// Wraps a ready client; tests use this with `aws_smithy_mocks`.
    #[cfg(test)]
    pub fn from_clients(
        client: Client,
        autoscaling: aws_sdk_autoscaling::Client,
        ssm: aws_sdk_ssm::Client,
        region: &str,
    ) -> Ec2 {
        Ec2 {
            made: std::sync::Arc::new(std::sync::Mutex::new(Clients {
                ec2: Some(client),
                autoscaling: Some(autoscaling),
                ssm: Some(ssm),
            })),
            recipe: std::sync::Arc::default(),
            region: region.parse().expect("a test's region"),
            endpoint: "mock".to_owned(),
            account_id: None,
            account_name: None,
            streams: std::sync::Arc::new(pace::Streams::new(
                None,
                None,
                OPERATION_TIMEOUT,
                budget::Budget::new(IN_FLIGHT * MADE_PER_SLOT),
            )),
            recycle_bin: std::sync::Arc::default(),
        }
    }
}

/// One try, no retries: for calls some endpoints don't implement (moto answers them with an
/// HTTP 500, which the SDK would otherwise retry for seconds) and which have another way.
fn one_try() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
}

/// `--region`, else AWS_REGION / AWS_DEFAULT_REGION, else the profile's region. The instance
/// metadata service is deliberately not asked: off EC2 it would cost a timeout on every run.
pub async fn resolve_region(options: &ConnectOptions) -> Result<Region, Error> {
    if let Some(region) = &options.region {
        return Ok(region.clone());
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &options.profile {
        profile = profile.profile_name(name);
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new()).or_else(profile.build());
    let Some(found) = chain.region().await else {
        if let Some(region) = &options.fallback_region {
            return Ok(region.clone());
        }
        return Err(Error::Usage(
            "no AWS region: pass --region (e.g. --region us-east-1), set AWS_REGION, or set region in your AWS profile"
                .to_owned(),
        ));
    };
    found
        .as_ref()
        .parse()
        .map_err(|why| Error::Usage(format!("the configured region is unusable: {why}; pass --region")))
}

/// The endpoints the run will talk to that are plain http on a host other than this machine:
/// requests (and their signatures) would cross the network unencrypted. `--endpoint-url`, then
/// the environment's AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.
pub fn plain_http_endpoints(endpoint_url: Option<&EndpointUrl>) -> Vec<String> {
    let from_environment = std::env::vars().filter(|(name, value)| {
        (name == "AWS_ENDPOINT_URL" || name.starts_with("AWS_ENDPOINT_URL_")) && !value.is_empty()
    });
    let mut endpoints: Vec<String> = endpoint_url
        .map(ToString::to_string)
        .into_iter()
        .chain(from_environment.map(|(_, value)| value))
        .filter(|url| is_plain_http_off_this_machine(url))
        .map(|url| crate::types::without_userinfo(&url))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// The STS endpoint the environment sets, when it is plain http on another machine: its
/// answers are credentials, so amictl refuses it unless told otherwise.
pub fn plain_http_sts_endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .filter(|url| is_plain_http_off_this_machine(url))
        .map(|url| crate::types::without_userinfo(&url))
}

fn is_plain_http_off_this_machine(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => true,
    };
    url.scheme() == "http" && !loopback
}

/// The endpoint as the user would recognise it in an error message.
fn endpoint_for_messages(endpoint_url: Option<&EndpointUrl>, region: &Region) -> String {
    if let Some(url) = endpoint_url {
        return url.to_string();
    }
    ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .map_or_else(
            || format!("https://ec2.{region}.amazonaws.com"),
            |url| crate::types::without_userinfo(&url),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_worth_a_warning_only_off_this_machine() {
        for url in [
            "http://10.0.0.5:4566",
            "http://ec2.example.internal",
            "http://[2001:db8::1]:80",
        ] {
            assert!(is_plain_http_off_this_machine(url), "{url}");
        }
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost:4566",
            "http://[::1]:8080",
            "https://vpce-0123.ec2.us-east-1.vpce.amazonaws.com",
        ] {
            assert!(!is_plain_http_off_this_machine(url), "{url}");
        }
    }
}
