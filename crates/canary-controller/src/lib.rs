//! canary-controller: flaggerd's controller, the shell around canary-core.
//!
//! It watches Canaries and the workloads and configs they target, and for each canary
//! gathers what canary-core needs, calls `advance`, records the decided step in the
//! Canary's status, carries out its effects (the primary workload, the Services, routes,
//! scaling, webhooks, events, alerts) and records their progress. It must keep no analysis
//! state of its own: everything needed to continue lives in the Canary's status and the
//! cluster, so a restarted or newly elected replica resumes. It must never let one canary's
//! slow webhook, bad spec or panic delay or stop another.

mod backoff;
pub mod cache;
pub mod cli;
pub mod client;
mod configs;
pub mod crashpoints;
mod effects;
mod events;
mod gather;
mod journal;
pub mod knative;
pub mod leader;
pub mod logging;
mod observe;
mod reconcile;
mod report;
mod run;
pub mod server;
pub mod services;
pub mod settings;
pub mod stats;
mod tasks;
mod wake;
pub mod workload;
mod world;

use std::sync::Arc;

use canary_api::{Canary, Lenient, MetricTemplate};
use kube::runtime::reflector::Store;

pub use events::{Events, MARKS_ANNOTATION};
pub use reconcile::reconcile;
pub use run::run;
pub use settings::Settings;
pub use stats::Stats;

/// The version flaggerd reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The field manager of everything flaggerd writes (one definition, in canary-router).
pub use canary_router::MANAGER;

/// Parameters of a patch by flaggerd (field manager [`MANAGER`]).
pub(crate) fn write_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Parameters of a create or replace by flaggerd (field manager [`MANAGER`]).
pub(crate) fn create_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

/// Why the controller cannot start: a client it needs cannot be built, or the API server
/// does not serve flaggerd's CRDs to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The Prometheus client of the builtin metrics.
    #[error("cannot build the metrics client")]
    Metrics(#[source] canary_metrics::Error),
    /// The webhook client.
    #[error("cannot build the webhook client")]
    Webhooks(#[source] canary_webhooks::Error),
    /// A CRD is not installed.
    #[error(
        "the CRD {plural}.flagger.app is not installed (the API server answers 404 for {plural}); install it with: kubectl apply -k deploy/crds"
    )]
    MissingCrd {
        /// `canaries`, `metrictemplates` or `alertproviders`.
        plural: &'static str,
    },
    /// flaggerd may not list a CRD's objects.
    #[error(
        "flaggerd may not list {plural}.flagger.app ({code} {reason}: {message}); check its RBAC (deploy/flaggerd/rbac.yaml)"
    )]
    Forbidden {
        /// The CRD's plural.
        plural: &'static str,
        /// 401 or 403.
        code: u16,
        /// The API server's reason.
        reason: String,
        /// The API server's message.
        message: String,
    },
    /// [`run`] was called twice with one [`Context`].
    #[error("the controller can run only once per context")]
    AlreadyRunning,
}

/// Errors of a reconcile or of a step's effects; the canary is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request to the API server failed.
    #[error("cannot {verb} {object}")]
    Kube {
        /// What was attempted: `get`, `patch`, `create`...
        verb: &'static str,
        /// The object, e.g. `deployment test/podinfo-primary`.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object kept changing while flaggerd wrote it.
    #[error("{0}")]
    Conflict(String),
    /// An object could not be encoded.
    #[error("cannot encode {0}")]
    Encode(String),
    /// A router failed.
    #[error("cannot route traffic for canary {canary}")]
    Route {
        /// `<namespace>/<name>` of the canary.
        canary: String,
        /// The router's error.
        #[source]
        source: canary_router::Error,
    },
    /// An object the canary needs is missing.
    #[error("{0}")]
    Missing(String),
    /// A reconcile or a task panicked: a flaggerd bug, caught so the others go on.
    #[error("internal error (a flaggerd bug, please report it): {0}")]
    Panic(String),
}

impl Error {
    /// A failed API request about `object`.
    pub fn kube(verb: &'static str, object: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            verb,
            object: object.into(),
            source,
        }
    }

    /// True when trying again may succeed without anyone changing anything: a conflict, a
    /// throttled or failed API request (a router's too), a broken connection.
    pub fn transient(&self) -> bool {
        match self {
            Error::Kube { source, .. } => retriable(source),
            Error::Route { source, .. } => source.kube_error().is_some_and(retriable),
            Error::Conflict(_) => true,
            _ => false,
        }
    }
}

pub use canary_core::error_chain;

/// Errors worth another try: conflicts, throttling, server errors, broken connections.
pub(crate) fn retriable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
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
    pub client: kube::Client,
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
    /// Whether this replica reconciles (`/readyz`).
    pub role: Arc<server::Role>,
    /// The HTTP endpoints already run (started before the leader election).
    pub(crate) serving: std::sync::atomic::AtomicBool,
    /// The clock: the one place the controller reads the time.
    pub clock: fn() -> chrono::DateTime<chrono::Utc>,
    /// Each canary's background work (webhooks, metric queries, a step's effects).
    pub(crate) tasks: tasks::Tasks,
    /// Each canary's failures in a row, for its retry delay.
    pub(crate) backoff: backoff::Backoff,
    /// The canaries' versions flaggerd wrote and its watch has not shown yet.
    pub(crate) own_writes: journal::OwnWrites,
    /// Reconciles take turns at `-threadiness` permits, first come first served.
    pub(crate) turns: tokio::sync::Semaphore,
    /// The watch caches of targets, primaries, configs, Services and autoscalers.
    pub caches: Arc<cache::Caches>,
    /// The watch cache of canaries, once the controller runs.
    pub(crate) canaries: std::sync::OnceLock<Store<Lenient<Canary>>>,
    /// The watch cache of MetricTemplates, once the controller runs.
    pub(crate) templates: std::sync::OnceLock<Store<Lenient<MetricTemplate>>>,
}

/// The wall clock.
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

impl Context {
    /// The real implementations for `settings`.
    pub fn new(client: kube::Client, settings: Settings) -> Result<Context, StartError> {
        let stats = Arc::new(Stats::new(VERSION, &settings.engine.default_provider));
        let metrics = Arc::new(
            canary_metrics::Metrics::new(
                &settings.metrics_server,
                settings.engine.clone(),
                Some(client.clone()),
            )
            .map_err(StartError::Metrics)?,
        );
        let notifier = Arc::new(
            canary_notifier::AlertProviders::new(client.clone(), &settings.cluster_name)
                .with_global(settings.global_notifier.clone()),
        );
        let router_client = client.clone();
        let caches: Arc<cache::Caches> = Arc::default();
        let router_cache = caches.clone();
        let options = settings.router_options();
        let routers: RouterFactory = Box::new(move |provider, selector| {
            let cache: Arc<dyn canary_router::cached::ObjectCache> = router_cache.clone();
            canary_router::for_provider_cached(
                provider,
                router_client.clone(),
                selector,
                Some(cache),
                &options,
            )
        });
        Ok(Context {
            events: Events::new(client.clone(), &settings.instance, wall_clock),
            client,
            metrics,
            webhooks: Arc::new(canary_webhooks::HttpWebhooks::new().map_err(StartError::Webhooks)?),
            notifier,
            routers,
            stats,
            role: Arc::default(),
            serving: std::sync::atomic::AtomicBool::new(false),
            clock: wall_clock,
            tasks: tasks::Tasks::default(),
            backoff: backoff::Backoff::default(),
            caches,
            own_writes: journal::OwnWrites::default(),
            turns: tokio::sync::Semaphore::new(usize::from(settings.threadiness.max(1))),
            canaries: std::sync::OnceLock::new(),
            templates: std::sync::OnceLock::new(),
            settings,
        })
    }
}

impl Context {
    /// Writes the routing objects of every mesh with `mesh_client`, a client of another
    /// cluster (Flagger's `-kubeconfig-service-mesh`): read without the watch caches and
    /// written without owner references, which cannot point across clusters.
    pub fn route_in(mut self, mesh_client: kube::Client) -> Context {
        let options = self.settings.router_options();
        let local = self.client.clone();
        self.routers = Box::new(move |provider, selector| {
            let (mesh, local) = (mesh_client.clone(), local.clone());
            canary_router::for_provider_remote(provider, mesh, local, selector, &options)
        });
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `-port` until the returned task is
    /// aborted; [`run`] then does not start them again.
    pub fn serve(&self) -> tokio::task::JoinHandle<()> {
        self.serving
            .store(true, std::sync::atomic::Ordering::Release);
        tokio::spawn(server::serve(
            self.settings.port,
            self.stats.clone(),
            self.role.clone(),
        ))
    }

    /// How many canaries have background work running (webhooks, metric queries, a step's
    /// effects); tests wait for 0 before they look at the effects.
    pub fn tasks_running(&self) -> usize {
        self.tasks.count_running()
    }
}

/// `<name>.<namespace>`, as Flagger's logs and events name a canary.
pub(crate) fn display_name(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}.{}",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default()
    )
}
