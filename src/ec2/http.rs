//! The run's one HTTPS client: every SDK client of every account and region sends through it,
//! so that the run has one connection pool, one TLS setup, and one budget of requests in
//! flight.
//!
//! The budget is what keeps an organization's pipe full without overfilling it: EC2's rate
//! limits are per account and region, so many accounts × regions are worked at once, and each
//! has phases that ask more or less at once (a page of images, then the scans of what launches
//! them, then a read per image). Many contexts are worked at once and their requests share
//! the budget, first come first served: while one context waits on an answer, another's
//! requests take the slots.

use std::sync::Arc;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use tokio::sync::Semaphore;

/// The HTTPS client the SDK would make by default (hyper 1, rustls with aws-lc, the proxy of
/// HTTPS_PROXY / NO_PROXY), made once for the run, with at most `in_flight` requests at once.
pub fn run_client(in_flight: usize) -> SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    let hyper = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    let budget = Arc::new(Semaphore::new(in_flight.max(1)));
    SharedHttpClient::new(RunClient { hyper, budget })
}

/// The hyper client, and the run's budget of requests in flight.
#[derive(Debug)]
struct RunClient {
    hyper: SharedHttpClient,
    budget: Arc<Semaphore>,
}

impl HttpClient for RunClient {
    /// The hyper client's connector for these settings (it keeps one per settings), within
    /// the budget.
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Budgeted {
            connector: self.hyper.http_connector(settings, components),
            budget: Arc::clone(&self.budget),
        })
    }

    // `validate_base_client_config` is left at its default, which checks nothing: the hyper
    // client's makes a connector (parsing the whole root certificate store) each time an SDK
    // client is built, to fail early on a broken store. An organization builds thousands of
    // clients; that check took more CPU than their requests. A broken store fails the first
    // request instead, the same way.

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.hyper.connector_metadata()
    }
}

/// A connector whose requests take a slot of the run's budget while they are in flight.
#[derive(Debug)]
struct Budgeted {
    connector: SharedHttpConnector,
    budget: Arc<Semaphore>,
}

impl HttpConnector for Budgeted {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let connector = self.connector.clone();
        let budget = Arc::clone(&self.budget);
        HttpConnectorFuture::new(async move {
            // The semaphore is never closed: a slot always comes.
            let _slot = budget.acquire_owned().await;
            connector.call(request).await
        })
    }
}
