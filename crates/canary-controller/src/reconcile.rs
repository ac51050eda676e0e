//! One reconcile of one canary: observe the cluster, let canary-core decide (answering its
//! requests for webhook and metric results), carry out its actions in order, then write the
//! status. All state lives in the Canary's status and the cluster's objects, so any replica
//! can take over at any point.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use canary_core::{
    Action as Do, CanaryRef, HookResult, MetricResult, Observation, Revision, Scale,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::{Context, Error, configs, services, workload};

/// The field manager of everything flaggerd writes.
pub const MANAGER: &str = "flaggerd";

/// Requests per step are bounded: each kind is asked at most once.
const MAX_REQUESTS: usize = 8;

/// Reconciles one canary.
pub async fn reconcile(cached: Arc<Canary>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = tokio::time::Instant::now();
    let ns = cached.metadata.namespace.clone().unwrap_or_default();
    let name = cached.metadata.name.clone().unwrap_or_default();
    // The watch cache can lag our own last status write; a step decided on a stale status
    // would replay the previous one. Read the canary itself, as Flagger does every tick.
    let canaries: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(canary) = retry(|| canaries.get_opt(&name)).await? else {
        return Ok(Action::await_change());
    };
    let canary = Arc::new(canary);
    let spec: &canary_core::CanarySpec = &canary.spec;
    let interval = spec.analysis().map_or(Duration::from_secs(60), |a| {
        a.interval(ctx.settings.engine.min_interval)
    });
    let provider = spec.provider(&ctx.settings.engine).to_string();
    if let Some(owner) = target_taken_by(&ctx, &canary, &ns).await? {
        let msg = format!(
            "{} {}.{ns} is already the target of canary {owner}.{ns}; only one canary may target a workload",
            spec.target_ref.kind.to_lowercase(),
            spec.target_ref.name
        );
        report_conflict(&ctx, &canary, &msg).await?;
        return Ok(Action::requeue(interval));
    }
    let w = World::new(&ctx, &canary, &ns);
    let deleting = canary.metadata.deletion_timestamp.is_some();
    let target = match w.target().await? {
        Some(t) => t,
        None if deleting => Value::Null,
        None => {
            let msg = format!(
                "{} {}.{ns} not found",
                spec.target_ref.kind.to_lowercase(),
                spec.target_ref.name
            );
            ctx.events
                .publish(&canary, canary_core::Level::Warn, &msg)
                .await;
            return Ok(Action::requeue(interval));
        }
    };
    let sel = if target.is_null() {
        None
    } else {
        let display = format!("{}.{ns}", spec.target_ref.name);
        match workload::selector(
            &target,
            &spec.target_ref.kind,
            &display,
            &ctx.settings.selector_labels,
        ) {
            Ok(s) => Some(s),
            Err(msg) => {
                ctx.events
                    .publish(&canary, canary_core::Level::Warn, &msg)
                    .await;
                return Ok(Action::requeue(interval));
            }
        }
    };
    let router = match (ctx.routers)(
        &provider,
        sel.as_ref().map(|s| canary_router::appmesh::PodSelector {
            label: s.label.clone(),
            value: s.value.clone(),
        }),
    ) {
        Ok(r) => r,
        Err(e) => {
            ctx.events
                .publish(&canary, canary_core::Level::Warn, &e.to_string())
                .await;
            return Ok(Action::requeue(interval));
        }
    };
    let tracked = match w.tracked_configs(&target).await {
        Ok(t) => t,
        Err(msg) => {
            ctx.events
                .publish(&canary, canary_core::Level::Warn, &msg)
                .await;
            return Ok(Action::requeue(interval));
        }
    };
    let primary = w
        .workload(&format!("{}-primary", spec.target_ref.name))
        .await?;
    let routes = router.get_routes(&canary).await.map_err(|e| e.to_string());
    let kind = spec.target_ref.kind.as_str();
    let mut obs = Observation {
        target: Revision {
            spec_hash: workload::revision_hash(&target),
            configs: tracked
                .iter()
                .map(|(k, (sum, _))| (k.clone(), sum.clone()))
                .collect(),
        },
        primary: primary
            .as_ref()
            .map(|p| workload::status(kind, p, format!("{}-primary.{ns}", spec.target_ref.name))),
        canary: (!target.is_null())
            .then(|| workload::status(kind, &target, format!("{}.{ns}", spec.target_ref.name))),
        routes,
        deleting,
        has_finalizer: canary
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == canary_core::messages::FINALIZER),
        ..Observation::default()
    };
    let status = canary.status.clone().unwrap_or_default();
    let canary_ref = CanaryRef {
        name: &name,
        namespace: &ns,
        spec,
        settings: &ctx.settings.engine,
    };
    let now = (ctx.clock)();
    let mut step = canary_core::advance(&canary_ref, &status, &obs, now);
    for _ in 0..MAX_REQUESTS {
        match step.request() {
            Some(Do::RunWebhooks { kind, phase, until }) => {
                let results = run_hooks(&ctx, &canary, *kind, *phase, *until).await;
                obs.webhooks.insert(*kind, results);
            }
            Some(Do::QueryMetrics) => {
                let mut results = Vec::new();
                for m in spec
                    .analysis()
                    .map(|a| a.metrics.clone())
                    .unwrap_or_default()
                {
                    let outcome = ctx.metrics.query(&canary, &m).await;
                    if let canary_core::MetricOutcome::Value(v) = outcome {
                        ctx.stats.set_metric(&spec.target_ref.name, &ns, &m.name, v);
                    }
                    results.push(MetricResult {
                        name: m.name.clone(),
                        outcome,
                    });
                }
                obs.metrics = Some(results);
            }
            Some(Do::CheckMetricProviders) => {
                obs.providers_online = Some(ctx.metrics.check_online(&canary).await)
            }
            _ => break,
        }
        step = canary_core::advance(&canary_ref, &status, &obs, now);
    }
    let ctx2 = Act {
        ctx: &ctx,
        canary: &canary,
        ns: &ns,
        target: &target,
        sel: sel.as_ref(),
        tracked: &tracked,
        primary: primary.as_ref(),
        router: router.as_ref(),
        w: &w,
    };
    for action in &step.actions {
        ctx2.run(action).await?;
    }
    if step.status != status && !write_status(&ctx, &canary, &step.status).await? {
        return Ok(Action::await_change());
    }
    if let Some(phase) = step.status.phase {
        ctx.stats.set_status(&spec.target_ref.name, &ns, phase);
    }
    ctx.stats
        .observe_duration(&spec.target_ref.name, &ns, started.elapsed().as_secs_f64());
    Ok(step
        .requeue()
        .map_or_else(Action::await_change, Action::requeue))
}

/// The older canary (by creation, then name) that targets the same workload, if any.
async fn target_taken_by(
    ctx: &Context,
    canary: &Canary,
    ns: &str,
) -> Result<Option<String>, Error> {
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), ns);
    let params = kube::api::ListParams::default();
    let all = retry(|| api.list(&params)).await?;
    let key = |c: &Canary| {
        (
            c.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            c.metadata.name.clone(),
        )
    };
    let me = key(canary);
    Ok(all
        .items
        .iter()
        .filter(|c| c.metadata.name != canary.metadata.name)
        .filter(|c| {
            c.spec.target_ref.kind == canary.spec.target_ref.kind
                && c.spec.target_ref.name == canary.spec.target_ref.name
        })
        .filter(|c| key(c) < me)
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .next())
}

/// Reports a canary that cannot run in its `Valid` condition and an event (once per message).
async fn report_conflict(ctx: &Context, canary: &Canary, message: &str) -> Result<(), Error> {
    let mut status = canary.status.clone().unwrap_or_default();
    let current = status
        .condition(canary_core::messages::CONDITION_VALID)
        .map(|c| c.message.clone());
    if current.as_deref() == Some(message) {
        return Ok(());
    }
    ctx.events
        .publish(canary, canary_core::Level::Error, message)
        .await;
    let now = (ctx.clock)();
    status
        .conditions
        .retain(|c| c.r#type != canary_core::messages::CONDITION_VALID);
    status.conditions.push(canary_core::status::Condition {
        r#type: canary_core::messages::CONDITION_VALID.into(),
        status: "False".into(),
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: "TargetConflict".into(),
        message: message.into(),
    });
    write_status(ctx, canary, &status).await.map(|_| ())
}

/// Writes the status the step decided, re-reading the canary on a conflict: the actions are
/// done, so their status must land (Flagger's RetryOnConflict). `false` when the canary is
/// gone.
async fn write_status(
    ctx: &Context,
    canary: &Canary,
    status: &canary_core::CanaryStatus,
) -> Result<bool, Error> {
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), &ns);
    let params = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    let mut latest = canary.clone();
    let mut last = None;
    for attempt in 0..WRITE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
            match api.get_opt(&name).await {
                Ok(Some(c)) => latest = c,
                Ok(None) => return Ok(false),
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            }
        }
        latest.status = Some(status.clone());
        match api.replace_status(&name, &params, &latest).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(e) if retriable(&e) => last = Some(e),
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    Err(Error::Kube(last.unwrap_or_else(|| {
        kube::Error::LinesCodecMaxLineLengthExceeded
    })))
}

/// Status writes are retried this many times.
const WRITE_ATTEMPTS: usize = 6;

/// Errors worth another try: conflicts, throttling, server errors, broken connections.
pub(crate) fn retriable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

async fn run_hooks(
    ctx: &Context,
    canary: &Canary,
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
    for hook in hooks {
        let payload = canary_webhooks::Payload::new(canary, phase, &hook);
        let outcome = ctx.webhooks.call(&hook, &payload).await;
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

/// Reads of the cluster around one canary.
pub(crate) struct World {
    client: kube::Client,
    ns: String,
    kind: String,
    target_name: String,
    config_tracking: bool,
}

impl World {
    fn new(ctx: &Context, canary: &Canary, ns: &str) -> Self {
        World {
            client: ctx.client.clone(),
            ns: ns.into(),
            kind: canary.spec.target_ref.kind.clone(),
            target_name: canary.spec.target_ref.name.clone(),
            config_tracking: ctx.settings.config_tracking,
        }
    }

    fn api(&self, kind: &str) -> Api<DynamicObject> {
        let (group, version, plural) = match kind {
            "DaemonSet" => ("apps", "v1", "daemonsets"),
            "ConfigMap" => ("", "v1", "configmaps"),
            "Secret" => ("", "v1", "secrets"),
            "Service" => ("", "v1", "services"),
            "HorizontalPodAutoscaler" => ("autoscaling", "v2", "horizontalpodautoscalers"),
            _ => ("apps", "v1", "deployments"),
        };
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::namespaced_with(self.client.clone(), &self.ns, &ar)
    }

    async fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, Error> {
        let api = self.api(kind);
        let obj = retry(|| api.get_opt(name)).await?;
        obj.map(|o| serde_json::to_value(o).map_err(|e| Error::Encode(e.to_string())))
            .transpose()
    }

    async fn target(&self) -> Result<Option<Value>, Error> {
        self.get(&self.kind, &self.target_name).await
    }

    async fn workload(&self, name: &str) -> Result<Option<Value>, Error> {
        self.get(&self.kind, name).await
    }

    async fn tracked_configs(&self, target: &Value) -> Result<configs::Tracked, String> {
        let mut out = configs::Tracked::new();
        if !self.config_tracking || target.is_null() {
            return Ok(out);
        }
        for r in configs::referenced(&target["spec"]["template"]["spec"]) {
            let kind = if r.kind == "configmap" {
                "ConfigMap"
            } else {
                "Secret"
            };
            let obj = self.get(kind, &r.name).await.map_err(|e| e.to_string())?;
            match obj {
                None if r.optional => {}
                None => return Err(format!("{} {}.{} not found", r.kind, r.name, self.ns)),
                Some(o) if configs::trackable(r.kind, &o) => {
                    out.insert(format!("{}/{}", r.kind, r.name), (configs::checksum(&o), o));
                }
                Some(_) => {}
            }
        }
        Ok(out)
    }

    async fn apply(&self, kind: &str, obj: &Value) -> Result<(), Error> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let params = PatchParams::apply(MANAGER).force();
        let (api, patch) = (self.api(kind), Patch::Apply(obj));
        retry(|| api.patch(name, &params, &patch)).await?;
        Ok(())
    }

    async fn merge(&self, kind: &str, name: &str, patch: &Value) -> Result<(), Error> {
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        let (api, patch) = (self.api(kind), Patch::Merge(patch));
        retry(|| api.patch(name, &params, &patch)).await?;
        Ok(())
    }
}

/// Retries a request on transient errors (a few times, shortly): a reconcile that fails
/// half-way would redo its step.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if retriable(&e) && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(Error::Kube(e)),
        }
    }
}

/// Carries out the engine's actions.
struct Act<'a> {
    ctx: &'a Context,
    canary: &'a Canary,
    ns: &'a str,
    target: &'a Value,
    sel: Option<&'a workload::Selector>,
    tracked: &'a configs::Tracked,
    primary: Option<&'a Value>,
    router: &'a dyn canary_router::TrafficRouter,
    w: &'a World,
}

impl Act<'_> {
    async fn run(&self, action: &Do) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let kind = spec.target_ref.kind.as_str();
        let target_name = spec.target_ref.name.as_str();
        match action {
            Do::Initialize => self.initialize().await?,
            Do::ReconcileRoutes => {
                if let Some(sel) = self.sel {
                    self.apex(sel).await?;
                }
                self.router
                    .reconcile(self.canary)
                    .await
                    .map_err(|e| Error::Route(e.to_string()))?;
            }
            Do::SetRoutes {
                primary,
                canary,
                mirrored,
            } => {
                let routes = canary_core::Routes {
                    primary: *primary,
                    canary: *canary,
                    mirrored: *mirrored,
                };
                self.router
                    .set_routes(self.canary, routes)
                    .await
                    .map_err(|e| Error::Route(e.to_string()))?;
                self.ctx
                    .stats
                    .set_weight(target_name, self.ns, *primary, *canary);
            }
            Do::ScaleCanary(scale) => {
                let replicas = match scale {
                    Scale::Zero => 0,
                    Scale::FromZero => workload::scale_up_replicas(
                        self.target,
                        self.primary,
                        self.hpa_min().await?,
                    ),
                };
                self.w
                    .merge(kind, target_name, &workload::scale_patch(kind, replicas))
                    .await?;
            }
            Do::Promote => self.promote().await?,
            Do::SyncPrimaryAutoscaler => self.primary_autoscaler(true).await?,
            Do::RunPostRolloutHooks { phase } => {
                let results = run_hooks(
                    self.ctx,
                    self.canary,
                    canary_core::HookType::PostRollout,
                    *phase,
                    canary_core::RunUntil::FirstFailure,
                )
                .await;
                for r in results {
                    let (warning, text) =
                        canary_core::messages::post_rollout_result(&r.name, &r.outcome);
                    let level = if warning {
                        canary_core::Level::Warn
                    } else {
                        canary_core::Level::Info
                    };
                    self.ctx.events.publish(self.canary, level, &text).await;
                }
            }
            Do::Revert => self.revert().await?,
            Do::AddFinalizer | Do::RemoveFinalizer => {
                self.finalizer(matches!(action, Do::AddFinalizer)).await?
            }
            Do::Emit(e) => {
                self.ctx
                    .events
                    .publish(self.canary, e.level, &e.message)
                    .await;
                self.forward_event(e).await;
            }
            Do::Alert(a) => {
                if let Err(e) = self.ctx.notifier.send(self.canary, a).await {
                    tracing::warn!(canary = %format!("{}.{}", self.canary.metadata.name.as_deref().unwrap_or_default(), self.ns), "alert not sent: {e}");
                }
            }
            Do::Record(outcome) => {
                self.ctx
                    .stats
                    .count(target_name, self.ns, spec.strategy().as_str(), *outcome)
            }
            Do::Requeue(_)
            | Do::RunWebhooks { .. }
            | Do::QueryMetrics
            | Do::CheckMetricProviders => {}
        }
        Ok(())
    }

    /// The primary workload, its autoscaler, the config copies and the `-primary` and
    /// `-canary` Services. An existing primary's template is never changed here.
    async fn initialize(&self) -> Result<(), Error> {
        let Some(sel) = self.sel else { return Ok(()) };
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        if self.primary.is_none() {
            let primary = self.desired_primary(sel).await?;
            self.w.apply(&spec.target_ref.kind, &primary).await?;
        }
        self.primary_autoscaler(false).await?;
        let ports = if spec.service.port_discovery {
            services::discovered_ports(self.target, spec.service.port)
        } else {
            Vec::new()
        };
        for role in [services::Role::Canary, services::Role::Primary] {
            self.w
                .apply("Service", &services::build(self.canary, sel, role, &ports))
                .await?;
        }
        Ok(())
    }

    /// The apex Service: created and owned when absent; when it is the user's, only its
    /// selector is switched to the primary.
    async fn apex(&self, sel: &workload::Selector) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let name = spec.service_name();
        let existing = self.w.get("Service", name).await?;
        let owned = existing.as_ref().is_none_or(|s| self.owned_by_canary(s));
        if owned {
            let ports = if spec.service.port_discovery {
                services::discovered_ports(self.target, spec.service.port)
            } else {
                Vec::new()
            };
            self.w
                .apply(
                    "Service",
                    &services::build(self.canary, sel, services::Role::Apex, &ports),
                )
                .await
        } else {
            self.w
                .merge(
                    "Service",
                    name,
                    &json!({"spec": {"selector": {&sel.label: sel.primary_value()}}}),
                )
                .await
        }
    }

    fn owned_by_canary(&self, obj: &Value) -> bool {
        let uid = self.canary.metadata.uid.as_deref().unwrap_or_default();
        obj["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
    }

    /// Copies the target's template (and configs) to the primary.
    async fn promote(&self) -> Result<(), Error> {
        let Some(sel) = self.sel else { return Ok(()) };
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let mut primary = self.desired_primary(sel).await?;
        if spec.autoscaler_ref.is_some()
            && let Some(current) = self.primary
        {
            // With an autoscaler the primary keeps the replicas the autoscaler gave it.
            primary["spec"]["replicas"] = current["spec"]["replicas"].clone();
        }
        self.w.apply(&spec.target_ref.kind, &primary).await
    }

    /// Writes the `-primary` copies of the tracked configs and returns the primary workload
    /// built from the target (with a new `flagger-id`).
    async fn desired_primary(&self, sel: &workload::Selector) -> Result<Value, Error> {
        let prefixes = &self.ctx.settings.include_label_prefix;
        for (_, (_, obj)) in self.tracked.iter() {
            let kind = obj["kind"].as_str().unwrap_or("ConfigMap");
            self.w
                .apply(kind, &configs::primary_copy(obj, self.canary, prefixes))
                .await?;
        }
        let names: BTreeSet<String> = self.tracked.keys().cloned().collect();
        Ok(workload::primary(
            self.target,
            self.canary,
            sel,
            &names,
            &self.flagger_id(),
            prefixes,
        ))
    }

    /// Creates the `-primary` autoscaler, or (with `update`) pushes the target's settings to it.
    async fn primary_autoscaler(&self, update: bool) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let Some(a) = &spec.autoscaler_ref else {
            return Ok(());
        };
        let primary_name = format!("{}-primary", a.name);
        if !update
            && self
                .w
                .get("HorizontalPodAutoscaler", &primary_name)
                .await?
                .is_some()
        {
            return Ok(());
        }
        let Some(hpa) = self.w.get("HorizontalPodAutoscaler", &a.name).await? else {
            return Err(Error::Missing(format!(
                "horizontalpodautoscaler {}.{} not found",
                a.name, self.ns
            )));
        };
        let mut hpa_spec = hpa["spec"].clone();
        hpa_spec["scaleTargetRef"]["name"] = json!(format!("{}-primary", spec.target_ref.name));
        if let Some(r) = &a.primary_scaler_replicas {
            if let Some(min) = r.min_replicas {
                hpa_spec["minReplicas"] = json!(min);
            }
            if let Some(max) = r.max_replicas {
                hpa_spec["maxReplicas"] = json!(max);
            }
        }
        let obj = json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": primary_name,
                "namespace": self.ns,
                "labels": workload::filter_metadata(&hpa["metadata"]["labels"], &self.ctx.settings.include_label_prefix),
                "ownerReferences": [workload::owner_reference(self.canary)],
            },
            "spec": hpa_spec,
        });
        self.w.apply("HorizontalPodAutoscaler", &obj).await
    }

    async fn hpa_min(&self) -> Result<Option<i64>, Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let Some(a) = &spec.autoscaler_ref else {
            return Ok(None);
        };
        Ok(self
            .w
            .get("HorizontalPodAutoscaler", &a.name)
            .await?
            .map(|h| h["spec"]["minReplicas"].as_i64().unwrap_or(1)))
    }

    /// `revertOnDeletion`: the target gets the primary's replicas back, a user's apex
    /// Service its target selector, and the router reverts its objects.
    async fn revert(&self) -> Result<(), Error> {
        let spec: &canary_core::CanarySpec = &self.canary.spec;
        let kind = spec.target_ref.kind.as_str();
        if !self.target.is_null() {
            let replicas = self
                .primary
                .and_then(|p| p["spec"]["replicas"].as_i64())
                .filter(|r| *r > 0)
                .unwrap_or_else(|| workload::scale_up_replicas(self.target, None, None));
            self.w
                .merge(
                    kind,
                    &spec.target_ref.name,
                    &workload::scale_patch(kind, replicas),
                )
                .await?;
        }
        if let (Some(sel), Some(apex)) =
            (self.sel, self.w.get("Service", spec.service_name()).await?)
            && !self.owned_by_canary(&apex)
        {
            self.w
                .merge(
                    "Service",
                    spec.service_name(),
                    &json!({"spec": {"selector": {&sel.label: sel.value}}}),
                )
                .await?;
        }
        self.router
            .finalize(self.canary)
            .await
            .map_err(|e| Error::Route(e.to_string()))
    }

    async fn finalizer(&self, add: bool) -> Result<(), Error> {
        let mut finalizers: Vec<String> =
            self.canary.metadata.finalizers.clone().unwrap_or_default();
        let f = canary_core::messages::FINALIZER.to_string();
        finalizers.retain(|x| *x != f);
        if add {
            finalizers.push(f);
        }
        let api: Api<Canary> = Api::namespaced(self.ctx.client.clone(), self.ns);
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": self.canary.metadata.resource_version}});
        let name = self.canary.metadata.name.as_deref().unwrap_or_default();
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Sends an event to the canary's `event` webhooks, or to `-event-webhook`.
    async fn forward_event(&self, e: &canary_core::Event) {
        let hooks: Vec<_> = self
            .canary
            .spec
            .analysis()
            .map(|a| a.hooks(canary_core::HookType::Event).cloned().collect())
            .unwrap_or_default();
        let hooks = if hooks.is_empty() {
            self.ctx
                .settings
                .event_webhook
                .iter()
                .map(|url| canary_core::spec::Webhook {
                    name: "event-webhook".into(),
                    url: url.clone(),
                    ..Default::default()
                })
                .collect()
        } else {
            hooks
        };
        let phase = self
            .canary
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(canary_core::Phase::Initializing);
        for hook in hooks {
            let mut payload = canary_webhooks::Payload::new(self.canary, phase, &hook);
            payload
                .metadata
                .insert("eventMessage".into(), e.message.clone());
            payload
                .metadata
                .insert("eventType".into(), e.level.event_type().into());
            payload.metadata.insert(
                "timestamp".into(),
                (self.ctx.clock)().timestamp_millis().to_string(),
            );
            if let Err(err) = self.ctx.webhooks.call(&hook, &payload).await {
                tracing::debug!("event webhook {} failed: {err}", hook.name);
            }
        }
    }

    fn flagger_id(&self) -> String {
        let seed = json!({"revision": canary_core::hash::spec_hash(&self.target["spec"]["template"]), "at": (self.ctx.clock)().timestamp_nanos_opt()});
        canary_core::hash::config_checksum(&seed)
    }
}
