//! Gathering a step's checks off the reconcile workers: the webhooks and metric queries
//! the engine asks for run in the canary's task, on the observation the reconcile made; the
//! reconcile that follows decides with their results. A slow webhook therefore holds only
//! its own canary.
//!
//! Every webhook call of a step carries the same `Idempotency-Key` on every attempt and
//! after a restart: `<canary uid>:<last status change>:<type>:<index>`. The engine changes
//! the status at every step that ran checks (a property test holds it to that), so the next
//! step's calls get new keys.

use std::sync::Arc;

use canary_api::{Canary, Lenient};
use canary_core::{Action, CanaryRef, CanaryStatus, HookResult, MetricResult, Observation};
use kube::runtime::reflector::ObjectRef;

use crate::crashpoints::{self, Class};
use crate::events::stamp;
use crate::{Context, tasks};

/// Requests per step are bounded: each kind is asked at most once.
const MAX_REQUESTS: usize = 8;

/// The task work name of gathering for the step that follows `status`, for this spec
/// generation: an edit of the spec or a new status starts another.
pub fn work(canary: &Canary, status: &CanaryStatus) -> String {
    format!(
        "gather {}/{}",
        canary.metadata.generation.unwrap_or_default(),
        step_key(status)
    )
}

fn step_key(status: &CanaryStatus) -> String {
    status
        .last_transition_time
        .map_or_else(|| "new".to_string(), stamp)
}

/// Starts gathering what the engine asks for, from `obs` (which may already hold results).
pub fn start(ctx: &Arc<Context>, canary: Arc<Canary>, status: CanaryStatus, obs: Observation) {
    let object: ObjectRef<Lenient<Canary>> =
        ObjectRef::new(canary.metadata.name.as_deref().unwrap_or_default())
            .within(canary.metadata.namespace.as_deref().unwrap_or_default());
    let key = tasks::key_of(&object);
    let uid = canary.metadata.uid.clone().unwrap_or_default();
    let work = work(&canary, &status);
    let job = {
        let (ctx, work) = (ctx.clone(), work.clone());
        async move {
            let mut obs = obs;
            let ns = canary.metadata.namespace.clone().unwrap_or_default();
            let name = canary.metadata.name.clone().unwrap_or_default();
            let canary_ref = CanaryRef {
                name: &name,
                namespace: &ns,
                spec: &canary.spec,
                settings: &ctx.settings.engine,
            };
            for _ in 0..MAX_REQUESTS {
                let step = canary_core::advance(&canary_ref, &status, &obs, (ctx.clock)());
                match step.request() {
                    Some(Action::RunWebhooks { kind, phase, until }) => {
                        let results = hooks(&ctx, &canary, &status, *kind, *phase, *until).await;
                        obs.webhooks.insert(*kind, results);
                        let point = format!("sent {key} {}/{}", step_key(&status), kind.as_str());
                        crashpoints::reached(Class::Window, &point).await;
                    }
                    Some(Action::QueryMetrics) => obs.metrics = Some(metrics(&ctx, &canary).await),
                    Some(Action::CheckMetricProviders) => {
                        obs.providers_online = Some(
                            ctx.metrics
                                .check_online(&canary)
                                .await
                                .map_err(|e| canary_core::error_chain(&e)),
                        )
                    }
                    _ => break,
                }
                ctx.tasks.set_gathered(&key, &work, obs.clone());
            }
            Ok(())
        }
    };
    tasks::spawn(ctx, &object, &uid, work, true, job);
}

/// Calls the webhooks of `kind` in spec order until `until` says stop.
async fn hooks(
    ctx: &Context,
    canary: &Canary,
    status: &CanaryStatus,
    kind: canary_core::HookType,
    phase: canary_core::Phase,
    until: canary_core::RunUntil,
) -> Vec<HookResult> {
    let mut out = Vec::new();
    let hooks: Vec<_> = canary
        .spec
        .analysis()
        .map(|a| a.hooks(kind).cloned().collect())
        .unwrap_or_default();
    let uid = canary.metadata.uid.as_deref().unwrap_or_default();
    for (i, hook) in hooks.into_iter().enumerate() {
        let key = format!("{uid}:{}:{}:{i}", step_key(status), kind.as_str());
        let payload = canary_webhooks::Payload::new(canary, phase, &hook).with_key(key);
        let outcome = ctx
            .webhooks
            .call(&hook, &payload)
            .await
            .map_err(|e| crate::error_chain(&e));
        let stop = match until {
            canary_core::RunUntil::FirstFailure => outcome.is_err(),
            canary_core::RunUntil::FirstSuccess => outcome.is_ok(),
        };
        out.push(HookResult {
            name: hook.name.clone(),
            outcome,
        });
        if stop {
            break;
        }
    }
    out
}

/// For a Knative Service target, the canary as its checks see it: Flagger models `route` as
/// the Service's latest revision for every query (builtin, inline and template; the builtin
/// ones read `envoy_cluster_name="<ns>/<revision>"`), here by a `routeRef` naming it. `Ok(None)`
/// for other targets; an error when the Knative Service cannot be read, which fails every
/// check of the step (Flagger's "Error fetching Knative service").
async fn knative_view(ctx: &Context, canary: &Canary) -> Result<Option<Canary>, String> {
    if !canary.spec.target_ref.is_knative_service() {
        return Ok(None);
    }
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = &canary.spec.target_ref.name;
    let world = crate::world::World::new(ctx, canary, ns);
    let service = match world.get(crate::knative::SERVICE, name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("knative service {name}.{ns} not found")),
        Err(e) => {
            return Err(format!(
                "cannot read knative service {name}.{ns}: {}",
                crate::error_chain(&e)
            ));
        }
    };
    let latest = canary_router::knative::latest_revision(&service).unwrap_or_default();
    let mut seen = canary.clone();
    seen.spec.route_ref = Some(canary_core::spec::TargetRef {
        api_version: Some(canary_core::spec::KNATIVE_SERVING.into()),
        kind: "Revision".into(),
        name: latest.into(),
        ..Default::default()
    });
    Ok(Some(seen))
}

/// Every metric of the analysis, in spec order.
async fn metrics(ctx: &Context, canary: &Canary) -> Vec<MetricResult> {
    let spec: &canary_core::CanarySpec = &canary.spec;
    let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
    let mut results = Vec::new();
    let view = knative_view(ctx, canary).await;
    for m in spec
        .analysis()
        .map(|a| a.metrics.clone())
        .unwrap_or_default()
    {
        let outcome = match &view {
            Ok(Some(seen)) => ctx.metrics.query(seen, &m).await,
            Ok(None) => ctx.metrics.query(canary, &m).await,
            Err(e) => canary_core::MetricOutcome::Error(e.clone()),
        };
        if let canary_core::MetricOutcome::Value(v) = outcome {
            ctx.stats.set_metric(&spec.target_ref.name, ns, &m.name, v);
        }
        results.push(MetricResult {
            name: m.name.clone(),
            outcome,
        });
    }
    results
}
