//! The controller's wiring: the start-up check, the watches and what each change
//! reconciles, the reconcile wrapped against panics, and the retry policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use canary_api::{AlertProvider, Canary, Lenient, MetricTemplate};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};

use crate::events::Mark;
use crate::wake::{by_reference, concerned};
use crate::{Context, Error, StartError, report, tasks};

/// The longest wait between two start-up attempts.
const MAX_STARTUP_DELAY: Duration = Duration::from_secs(30);

/// Runs the controller until `shutdown` resolves: watches, reconciles, the HTTP endpoints.
///
/// Fails only when the CRDs are not installed or flaggerd may not read them; a transient
/// API error at start-up is retried with backoff.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    ctx.role.lead();
    let server = (!ctx.serving.load(std::sync::atomic::Ordering::Acquire)).then(|| ctx.serve());
    let ready = wait_for_crds(&client, ns.as_deref()).await;
    if let Err(e) = ready {
        if let Some(s) = &server {
            s.abort();
        }
        return Err(e);
    }
    let cfg = || watcher::Config::default().any_semantic();

    // Canaries, decoded one by one; a deleted canary's task is cancelled at once.
    let (canaries, writer) = reflector::store::<Lenient<Canary>>();
    let _ = ctx.canaries.set(canaries.clone());
    let forget = ctx.clone();
    // Managed fields are dropped before the store keeps a canary: flaggerd never reads them
    // and they are most of an object's memory.
    let canary_watch = watcher(api(&client, ns.as_deref()), cfg()).modify(drop_managed_fields);
    let canary_stream = reflector::reflector(writer, canary_watch)
        .default_backoff()
        .inspect_ok(move |event| match event {
            watcher::Event::Delete(c) => {
                let key = tasks::key_of(&ObjectRef::from_obj(c));
                forget.tasks.forget(&key, c.meta().uid.as_deref());
            }
            watcher::Event::Apply(c) | watcher::Event::InitApply(c) => {
                let key = tasks::key_of(&ObjectRef::from_obj(c));
                forget
                    .own_writes
                    .seen(&key, c.meta().resource_version.as_deref());
            }
            _ => {}
        })
        .applied_objects()
        // flaggerd's own status writes wake nobody: the engine asks for its next look.
        .predicate_filter(beyond_status, Default::default());
    let controller = Controller::for_stream(canary_stream, canaries.clone());

    // MetricTemplates (cached: a new analysis needs its templates) and AlertProviders; one
    // that does not decode is reported on its own object.
    let (broken, broken_rx) = futures::channel::mpsc::unbounded();
    let again = broken.clone();
    let (templates, writer) = reflector::store::<Lenient<MetricTemplate>>();
    let _ = ctx.templates.set(templates);
    let report_to = broken.clone();
    let template_watch = watcher(api(&client, ns.as_deref()), cfg()).modify(drop_managed_fields);
    let template_stream = reflector::reflector(writer, template_watch)
        .default_backoff()
        .applied_objects()
        .inspect_ok(report_undecodable("MetricTemplate", report_to));
    let provider_stream = watcher(api::<Lenient<AlertProvider>>(&client, ns.as_deref()), cfg())
        .default_backoff()
        .applied_objects()
        .inspect_ok(report_undecodable("AlertProvider", broken));
    let reporter = tokio::spawn(report::objects(ctx.clone(), broken_rx, again));

    let totals = {
        let (store, stats) = (canaries.clone(), ctx.stats.clone());
        tokio::spawn(async move {
            loop {
                let mut counts = BTreeMap::<String, usize>::new();
                for c in store.state() {
                    let ns = c.meta().namespace.clone().unwrap_or_default();
                    *counts.entry(ns).or_default() += 1;
                }
                stats.set_totals(&counts);
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    };
    let wake_ups = ctx.tasks.wake_ups().ok_or(StartError::AlreadyRunning)?;
    // Routing objects: a kind's watch starts when a router first reads one, and only keeps
    // its cache; Knative Services and Revisions (a Knative target's revisions come and get
    // ready) also wake the canaries concerned.
    let routing_watches: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let (knative_tx, knative_wake_ups) = futures::channel::mpsc::unbounded();
    {
        let (client, ns, handles) = (client.clone(), ns.clone(), routing_watches.clone());
        let store = canaries.clone();
        ctx.caches
            .start_watches_with(Box::new(move |resource, cache| {
                // A cluster-scoped kind (Kuma's TrafficRoute) is watched whole, even for one
                // namespace.
                let api: Api<DynamicObject> = match ns.as_deref() {
                    Some(n) if !canary_router::cluster_scoped(&resource) => {
                        Api::namespaced_with(client.clone(), n, &resource)
                    }
                    _ => Api::all_with(client.clone(), &resource),
                };
                let kind = match (resource.group.as_str(), resource.kind.as_str()) {
                    ("serving.knative.dev", "Service") => Some(crate::knative::SERVICE),
                    ("serving.knative.dev", "Revision") => Some(crate::knative::REVISION),
                    _ => None,
                };
                let (store, tx) = (store.clone(), knative_tx.clone());
                let task = tokio::spawn(feed(api, cache).for_each(move |changes| {
                    for (key, change) in changes {
                        for r in kind
                            .map(|k| concerned(&store, k, &key, change))
                            .unwrap_or_default()
                        {
                            let _ = tx.unbounded_send(r);
                        }
                    }
                    futures::future::ready(())
                }));
                handles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(task.abort_handle());
            }));
    }
    // Targets, primaries, configs, Services and autoscalers: each kind's watch keeps its
    // cache (the objects canaries use) and wakes the canaries a change matters to.
    let objects = futures::stream::select_all([
        cached::<Deployment>(&ctx, &canaries),
        cached::<DaemonSet>(&ctx, &canaries),
        cached::<ConfigMap>(&ctx, &canaries),
        cached::<Secret>(&ctx, &canaries),
        cached::<Service>(&ctx, &canaries),
        cached::<HorizontalPodAutoscaler>(&ctx, &canaries),
    ]);
    // kube-runtime's workers take held-back canaries in hash order, so under saturation
    // some would always wait; the runner starts every due reconcile and the reconciles take
    // turns at `-threadiness` permits, first come (earliest due) first served.
    controller
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        .watches_stream(template_stream, by_reference(canaries.clone(), false))
        .watches_stream(provider_stream, by_reference(canaries.clone(), true))
        .reconcile_on(objects)
        .reconcile_on(wake_ups)
        .reconcile_on(knative_wake_ups)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_safely, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
    if let Some(s) = &server {
        s.abort();
    }
    totals.abort();
    for task in routing_watches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        task.abort();
    }
    reporter.abort();
    Ok(())
}

/// Sends each object of `kind` that does not decode to the reporter.
fn report_undecodable<K>(
    kind: &'static str,
    to: futures::channel::mpsc::UnboundedSender<(&'static str, canary_api::Undecodable)>,
) -> impl Fn(&Lenient<K>) {
    move |object| {
        if let Lenient::Undecodable(u) = object {
            let _ = to.unbounded_send((kind, u.clone()));
        }
    }
}

/// Waits until the three CRDs are served. Lists only metadata, so no stored object can fail
/// the check; a transient error is retried with backoff, a missing CRD or a refusal ends it.
async fn wait_for_crds(client: &kube::Client, ns: Option<&str>) -> Result<(), StartError> {
    let lp = ListParams::default().limit(1);
    for plural in ["canaries", "metrictemplates", "alertproviders"] {
        let mut delay = Duration::from_millis(500);
        loop {
            let listed = match plural {
                "canaries" => api::<Canary>(client, ns)
                    .list_metadata(&lp)
                    .await
                    .map(|_| ()),
                "metrictemplates" => api::<MetricTemplate>(client, ns)
                    .list_metadata(&lp)
                    .await
                    .map(|_| ()),
                _ => api::<AlertProvider>(client, ns)
                    .list_metadata(&lp)
                    .await
                    .map(|_| ()),
            };
            match listed {
                Ok(()) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Err(StartError::MissingCrd { plural });
                }
                Err(kube::Error::Api(s)) if matches!(s.code, 401 | 403) => {
                    return Err(StartError::Forbidden {
                        plural,
                        code: s.code,
                        reason: s.reason,
                        message: s.message,
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        "cannot list {plural}.flagger.app yet: {}; retrying in {:.1}s",
                        crate::error_chain(&e),
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_STARTUP_DELAY);
                }
            }
        }
    }
    Ok(())
}

fn drop_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// What a change of a canary must differ in to wake it: anything but its status (the
/// spec through the generation, deletion, finalizers, labels, annotations, a new object).
fn beyond_status(c: &Lenient<Canary>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = c.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.uid.hash(&mut h);
    m.generation.hash(&mut h);
    m.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut h);
    m.finalizers.hash(&mut h);
    m.labels.hash(&mut h);
    m.annotations.hash(&mut h);
    Some(h.finish())
}

/// The reconcile, with a panic caught: logged, reported on the canary as an event, and
/// retried with backoff, while every other canary goes on.
fn reconcile_safely(
    obj: Arc<Lenient<Canary>>,
    ctx: Arc<Context>,
) -> futures::future::BoxFuture<'static, Result<Action, Error>> {
    async move {
        let key = tasks::key_of(&ObjectRef::from_obj(&*obj));
        ctx.stats.queued(1);
        let turn = ctx.turns.acquire().await;
        ctx.stats.queued(-1);
        let Ok(_turn) = turn else {
            return Ok(Action::await_change());
        };
        // Boxed only now: a reconcile waiting for its turn holds a pointer, not the whole
        // reconcile's state (a thousand canaries due together wait here).
        let reconcile = Box::pin(crate::reconcile(obj.clone(), ctx.clone()));
        let caught = std::panic::AssertUnwindSafe(reconcile)
            .catch_unwind()
            .await;
        match caught {
            Ok(Ok(action)) => {
                ctx.stats.reconciled("ok");
                ctx.backoff.succeeded(&key);
                Ok(action)
            }
            Ok(Err(e)) => {
                ctx.stats.reconciled("error");
                Err(e)
            }
            Err(panic) => {
                ctx.stats.reconciled("panic");
                let message = panic_message(panic.as_ref());
                let text = format!(
                    "flaggerd failed to reconcile this canary and will retry: {message} (a flaggerd bug, please report it)"
                );
                let object = crate::effects::object_reference(obj.meta(), "Canary");
                let mark = Mark::new((ctx.clock)(), "panic");
                if let Err(e) = ctx
                    .events
                    .publish(&object, canary_core::Level::Error, &text, &mark)
                    .await
                {
                    tracing::warn!(canary = %key, "cannot record the panic: {}", crate::error_chain(&e));
                }
                Err(Error::Panic(message))
            }
        }
    }
    .boxed()
}

/// What a caught panic said.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Failed reconciles are retried after the canary's own capped exponential backoff, with one
/// log line naming the canary and what failed.
fn error_policy(obj: Arc<Lenient<Canary>>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = tasks::key_of(&ObjectRef::from_obj(&*obj));
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(
        canary = %crate::display_name(obj.meta()),
        "{}; retrying in {:.1}s",
        crate::error_chain(error),
        delay.as_secs_f64()
    );
    Action::requeue(delay)
}

/// The watch of one cached kind: every event updates the kind's cache, and a change that
/// matters wakes the canaries concerned (see [`concerned`]).
fn cached<K>(
    ctx: &Arc<Context>,
    canaries: &Store<Lenient<Canary>>,
) -> futures::stream::BoxStream<'static, ObjectRef<Lenient<Canary>>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static,
{
    let kind = K::kind(&()).to_string();
    let cache = ctx
        .caches
        .of(&kind)
        .cloned()
        .unwrap_or_else(|| Arc::new(crate::cache::Cache::new("unknown")));
    let (store, kind) = (canaries.clone(), cache.kind().to_string());
    let api = api::<K>(&ctx.client, ctx.settings.namespace.as_deref());
    feed(api, cache)
        .flat_map(move |changes| {
            let refs: Vec<_> = changes
                .into_iter()
                .flat_map(|(key, change)| concerned(&store, &kind, &key, change))
                .collect();
            futures::stream::iter(refs)
        })
        .boxed()
}

/// Watches `api` into `cache` (errors are retried with backoff and logged at debug); yields
/// what each event changed.
fn feed<K>(
    api: Api<K>,
    cache: Arc<crate::cache::Cache>,
) -> impl futures::Stream<Item = Vec<(crate::cache::Key, crate::cache::Change)>> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
    K: Send + Sync + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |event| match event {
            Ok(event) => cache.apply(&event),
            Err(e) => {
                tracing::debug!("watch of {}s: {e}", cache.kind());
                Vec::new()
            }
        })
}

fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}
