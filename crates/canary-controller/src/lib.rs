//! canary-controller: flaggerd's controller, the shell around canary-core.
//!
//! It watches Canaries and the workloads and configs they target, and for each canary
//! gathers what canary-core needs, calls `advance`, carries out the actions (the primary
//! workload, the Services, routes, scaling, webhooks, events, alerts) and writes the status.
//! It must keep no analysis state of its own: everything needed to continue lives in the
//! Canary's status and the cluster, so a restarted or newly elected replica resumes.

mod configs;
mod events;
pub mod leader;
pub mod logging;
mod reconcile;
mod server;
pub mod services;
pub mod settings;
pub mod stats;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::{Controller, reflector::ObjectRef, watcher};
use kube::{Api, Client};

pub use events::Events;
pub use reconcile::{MANAGER, reconcile};
pub use settings::Settings;
pub use stats::Stats;

/// The version flaggerd reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of a reconcile; the canary is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API error")]
    Kube(#[source] kube::Error),
    /// An object could not be encoded.
    #[error("cannot encode an object: {0}")]
    Encode(String),
    /// A router failed.
    #[error("router: {0}")]
    Route(String),
    /// An object the canary needs is missing.
    #[error("{0}")]
    Missing(String),
}

/// Picks the router of a provider.
pub type RouterFactory = Box<
    dyn Fn(
            &str,
            Option<canary_router::appmesh::PodSelector>,
        ) -> canary_router::Result<Box<dyn canary_router::TrafficRouter>>
        + Send
        + Sync,
>;

/// Everything a reconcile uses, built in one place.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Settings from the flags.
    pub settings: Settings,
    /// Metric values.
    pub metrics: Arc<dyn canary_metrics::MetricsProvider>,
    /// Webhook calls.
    pub webhooks: Arc<dyn canary_webhooks::WebhookClient>,
    /// Alerts.
    pub notifier: Arc<dyn canary_notifier::Notifier>,
    /// Routers by provider.
    pub routers: RouterFactory,
    /// Event recorder.
    pub events: Events,
    /// Prometheus metrics.
    pub stats: Arc<Stats>,
    /// The clock: the one place the controller reads the time.
    pub clock: fn() -> chrono::DateTime<chrono::Utc>,
}

/// The wall clock.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Context {
    /// The real implementations for `settings`.
    pub fn new(client: Client, settings: Settings) -> Result<Context, String> {
        let stats = Arc::new(Stats::new(VERSION, &settings.engine.default_provider));
        let metrics = Arc::new(canary_metrics::PrometheusProvider::new(
            &settings.metrics_server,
            settings.engine.clone(),
            Some(client.clone()),
        )?);
        let notifier = Arc::new(canary_notifier::AlertProviders::new(
            client.clone(),
            &settings.cluster_name,
        ));
        let router_client = client.clone();
        let routers: RouterFactory = Box::new(move |provider, selector| {
            canary_router::for_provider(provider, router_client.clone(), selector)
        });
        Ok(Context {
            events: Events::new(client.clone(), &settings.instance),
            client,
            metrics,
            webhooks: Arc::new(canary_webhooks::HttpWebhooks::new()?),
            notifier,
            routers,
            stats,
            clock: wall_clock,
            settings,
        })
    }
}

/// Runs the controller until `shutdown` resolves: watches, reconciles, the HTTP endpoints.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), String> {
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    let canaries: Api<Canary> = api(&client, ns.as_deref());
    // Flagger's start-up check: the three CRDs must be served.
    let hint = "are the CRDs installed? kubectl apply -k deploy/crds";
    let lp = kube::api::ListParams::default().limit(1);
    canaries
        .list(&lp)
        .await
        .map_err(|e| format!("cannot list canaries ({hint}): {e}"))?;
    api::<canary_api::MetricTemplate>(&client, ns.as_deref())
        .list(&lp)
        .await
        .map_err(|e| format!("cannot list metrictemplates ({hint}): {e}"))?;
    api::<canary_api::AlertProvider>(&client, ns.as_deref())
        .list(&lp)
        .await
        .map_err(|e| format!("cannot list alertproviders ({hint}): {e}"))?;
    let controller = Controller::new(canaries, watcher::Config::default().any_semantic());
    let store = controller.store();
    // A change to a target or to a tracked config reconciles the canaries that use it.
    let targets = move |kind: &'static str| {
        let store = store.clone();
        move |obj_ns: Option<String>, name: Option<String>| -> Vec<ObjectRef<Canary>> {
            let key_config = format!(
                "{}/{}",
                kind.to_lowercase(),
                name.clone().unwrap_or_default()
            );
            store
                .state()
                .into_iter()
                .filter(|c| c.metadata.namespace == obj_ns)
                .filter(|c| match kind {
                    "Deployment" | "DaemonSet" => {
                        c.spec.target_ref.kind == kind
                            && Some(&c.spec.target_ref.name) == name.as_ref()
                    }
                    _ => c
                        .status
                        .as_ref()
                        .and_then(|s| s.tracked_configs.as_ref())
                        .is_some_and(|t| t.contains_key(&key_config)),
                })
                .map(|c| ObjectRef::from_obj(&*c))
                .collect()
        }
    };
    let (on_deploy, on_ds, on_cm, on_secret) = (
        targets("Deployment"),
        targets("DaemonSet"),
        targets("ConfigMap"),
        targets("Secret"),
    );
    // A MetricTemplate or AlertProvider change reconciles the canaries that reference it.
    let referencing = |store: kube::runtime::reflector::Store<Canary>, by_alert: bool| {
        move |obj_ns: Option<String>, name: Option<String>| -> Vec<ObjectRef<Canary>> {
            store
                .state()
                .into_iter()
                .filter(|c| {
                    let Some(a) = c.spec.analysis() else {
                        return false;
                    };
                    let own_ns = c.metadata.namespace.clone();
                    let same = |ref_ns: &Option<String>, ref_name: &str| {
                        Some(ref_name.to_string()) == name
                            && ref_ns.clone().filter(|n| !n.is_empty()).or(own_ns.clone()) == obj_ns
                    };
                    if by_alert {
                        a.alerts
                            .iter()
                            .any(|al| same(&al.provider_ref.namespace, &al.provider_ref.name))
                    } else {
                        a.metrics
                            .iter()
                            .filter_map(|m| m.template_ref.as_ref())
                            .any(|t| same(&t.namespace, &t.name))
                    }
                })
                .map(|c| ObjectRef::from_obj(&*c))
                .collect()
        }
    };
    let (on_template, on_provider) = (
        referencing(controller.store(), false),
        referencing(controller.store(), true),
    );
    // flagger_canary_total{namespace}, refreshed like Flagger's control loop.
    let totals = {
        let (store, stats) = (controller.store(), ctx.stats.clone());
        tokio::spawn(async move {
            loop {
                let mut counts = std::collections::BTreeMap::<String, usize>::new();
                for c in store.state() {
                    *counts
                        .entry(c.metadata.namespace.clone().unwrap_or_default())
                        .or_default() += 1;
                }
                stats.set_totals(&counts);
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    };
    let server = tokio::spawn(server::serve(ctx.settings.port, ctx.stats.clone()));
    let concurrency = ctx.settings.threadiness.max(1);
    // Targets and configs are watched by metadata only: a change of resourceVersion is all a
    // trigger needs, and Secrets' data never sits in flaggerd's memory.
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches(
            metadata::<Deployment>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_deploy(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .watches(
            metadata::<DaemonSet>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_ds(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .watches(
            metadata::<ConfigMap>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_cm(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .watches(
            metadata::<Secret>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_secret(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .watches(
            api::<canary_api::MetricTemplate>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_template(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .watches(
            api::<canary_api::AlertProvider>(&client, ns.as_deref()),
            watcher::Config::default(),
            move |o| on_provider(o.metadata.namespace.clone(), o.metadata.name.clone()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
    server.abort();
    totals.abort();
    Ok(())
}

/// The metadata-only API of `K`: its watch carries no data.
fn metadata<K>(client: &Client, ns: Option<&str>) -> Api<kube::core::PartialObjectMeta<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    api(client, ns)
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

fn error_policy(
    canary: Arc<Canary>,
    error: &Error,
    _: Arc<Context>,
) -> kube::runtime::controller::Action {
    let id = format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    );
    let detail = match error {
        Error::Kube(e) => format!("{error}: {e}"),
        other => other.to_string(),
    };
    tracing::warn!(canary = %id, "{detail}");
    kube::runtime::controller::Action::requeue(Duration::from_secs(2))
}
