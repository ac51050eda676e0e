//! What the controller sees of one canary's world before a step: the target, the primary,
//! the tracked configs, the routes, and the first problem that keeps the canary from
//! running (a missing target, an unsupported provider...), reported in its status.

use std::sync::Arc;

use canary_api::{Canary, Lenient, MetricTemplate};
use canary_core::blocked::{self, Claim, Problem};
use canary_core::{Observation, Revision, Routes};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use crate::world::World;
use crate::{Context, Error, configs, knative, workload};

/// Everything observed of a canary's world; owned, so a task can carry out effects with it.
pub struct Scene {
    /// The target (`Null` when it does not exist).
    pub target: Value,
    /// How the target's pods are selected.
    pub sel: Option<workload::Selector>,
    /// The tracked ConfigMaps and Secrets with their checksums.
    pub tracked: configs::Tracked,
    /// `<target>-primary` (a Knative Service's: the primary revision).
    pub primary: Option<Value>,
    /// A Knative Service's latest revision, the canary.
    pub latest: Option<Value>,
    /// The provider's router (`None` when the provider is not supported).
    pub router: Option<Box<dyn canary_router::TrafficRouter>>,
    /// The weights read back from the routing objects.
    pub routes: Result<Routes, String>,
    /// The first thing that keeps the canary from running.
    pub problem: Option<Problem>,
    /// Reads and writes of the canary's objects.
    pub world: World,
}

impl Scene {
    /// A scene with nothing observed: the spec is invalid, so the engine only reports it
    /// and nothing is read on its behalf.
    pub fn unobserved(ctx: &Context, canary: &Canary) -> Scene {
        let ns = canary.metadata.namespace.clone().unwrap_or_default();
        Scene {
            target: Value::Null,
            sel: None,
            tracked: configs::Tracked::new(),
            primary: None,
            latest: None,
            router: None,
            routes: Ok(Routes::default()),
            problem: None,
            world: World::new(ctx, canary, &ns),
        }
    }

    /// `spec.replicas` of the target and of the primary as they are now (what
    /// [`canary_core::scaling`] decides from).
    pub fn replicas(&self) -> (Option<i64>, Option<i64>) {
        let of = |o: &Value| o["spec"]["replicas"].as_i64();
        (of(&self.target), self.primary.as_ref().and_then(of))
    }

    /// The engine's observation of this scene.
    pub fn observation(&self, canary: &Canary) -> Observation {
        let spec: &canary_core::CanarySpec = &canary.spec;
        let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
        let kind = knative::target_kind(spec);
        let name = &spec.target_ref.name;
        let (primary, latest) = match kind {
            // A Knative Service's primary and canary are its revisions.
            knative::SERVICE => (
                self.primary
                    .as_ref()
                    .map(|r| knative::revision_status(r, ns)),
                self.latest
                    .as_ref()
                    .map(|r| knative::revision_status(r, ns)),
            ),
            // A Service target's primary copy is written by the step that reads it and is
            // always ready (Flagger's service controller does not wait for it either).
            "Service" => (
                Some(workload::status(
                    kind,
                    &Value::Null,
                    format!("{name}-primary.{ns}"),
                )),
                (!self.target.is_null())
                    .then(|| workload::status(kind, &self.target, format!("{name}.{ns}"))),
            ),
            _ => (
                self.primary
                    .as_ref()
                    .map(|p| workload::status(kind, p, format!("{name}-primary.{ns}"))),
                (!self.target.is_null())
                    .then(|| workload::status(kind, &self.target, format!("{name}.{ns}"))),
            ),
        };
        Observation {
            target: Revision {
                spec_hash: workload::revision_hash(kind, &self.target),
                configs: self
                    .tracked
                    .iter()
                    .map(|(k, (sum, _))| (k.clone(), sum.clone()))
                    .collect(),
            },
            primary,
            canary: latest,
            routes: self.routes.clone(),
            deleting: canary.metadata.deletion_timestamp.is_some(),
            has_finalizer: canary
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == canary_core::messages::FINALIZER),
            ..Observation::default()
        }
    }
}

/// Reads the canary's world. Problems are collected, not returned as errors: an API error
/// is an `Err`, a missing object is a [`Problem`].
pub async fn scene(ctx: &Arc<Context>, canary: &Canary) -> Result<Scene, Error> {
    let spec: &canary_core::CanarySpec = &canary.spec;
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let world = World::new(ctx, canary, &ns);
    let deleting = canary.metadata.deletion_timestamp.is_some();
    let world_kind = knative::target_kind(spec);
    let kind = match world_kind {
        knative::SERVICE => "knative service".to_string(),
        k => k.to_lowercase(),
    };
    let target_name = format!("{}.{ns}", spec.target_ref.name);
    let target = world.get(world_kind, &spec.target_ref.name).await?;
    // A Knative Service's primary is the revision its annotation names, its canary the latest.
    let (primary, latest) = match (world_kind, &target) {
        (knative::SERVICE, Some(t)) => (
            revision(&world, canary_router::knative::primary_revision(t)).await?,
            revision(&world, canary_router::knative::latest_revision(t)).await?,
        ),
        (knative::SERVICE, None) => (None, None),
        _ => {
            let name = format!("{}-primary", spec.target_ref.name);
            (world.get(world_kind, &name).await?, None)
        }
    };
    let mut problem = target_taken_by(ctx, canary, primary.as_ref()).map(|holder| {
        Problem::target_conflict(&spec.target_ref.kind, &spec.target_ref.name, &ns, &holder)
    });
    let target = match target {
        Some(t) => t,
        None => {
            if !deleting {
                problem.get_or_insert(Problem::missing(
                    "spec.targetRef",
                    format!("{kind} {target_name} not found"),
                ));
            }
            Value::Null
        }
    };
    // A Service target has no pods of its own to select: its copies are the primary and the
    // canary, and the kubernetes router writes nothing (Flagger's no-op router). A Knative
    // Service's revisions are its primary and canary.
    let sel = if target.is_null() || spec.target_ref.kind == "Service" {
        None
    } else {
        let s = workload::selector(
            &target,
            &spec.target_ref.kind,
            &target_name,
            &ctx.settings.selector_labels,
        );
        match s {
            Ok(s) if s.primary_value().len() > 63 => {
                problem.get_or_insert(Problem::invalid_target(format!(
                        "{kind} {target_name}: its selector label {}={} makes the primary's label value {:?} {} characters long; label values have at most 63",
                        s.label,
                        s.value,
                        s.primary_value(),
                        s.primary_value().len()
                    )));
                None
            }
            Ok(s) => Some(s),
            Err(msg) => {
                problem.get_or_insert(Problem::invalid_target(msg));
                None
            }
        }
    };
    let tracked = match world.tracked_configs(world_kind, &target).await? {
        Ok(t) => t,
        Err(msg) => {
            problem.get_or_insert(Problem::missing("spec.targetRef", msg));
            configs::Tracked::new()
        }
    };
    if let Some(a) = &spec.autoscaler_ref
        && !deleting
        && world.get(&a.kind, &a.name).await?.is_none()
    {
        problem.get_or_insert(Problem::missing(
            "spec.autoscalerRef.name",
            format!("{} {}.{ns} not found", a.kind.to_lowercase(), a.name),
        ));
    }
    // The user's object a provider copies: the Ingress (nginx, skipper) or the ApisixRoute.
    let copied = match spec.provider(&ctx.settings.engine) {
        p if canary_core::validate::INGRESS_CLONERS.contains(&p) => {
            Some(("spec.ingressRef.name", "Ingress", &spec.ingress_ref))
        }
        "apisix" => Some(("spec.routeRef.name", "ApisixRoute", &spec.route_ref)),
        _ => None,
    };
    if let Some((field, kind, Some(r))) = copied
        && !deleting
        && !r.name.is_empty()
        && world.get(kind, &r.name).await?.is_none()
    {
        problem.get_or_insert(Problem::missing(
            field,
            format!("{} {}.{ns} not found", kind.to_lowercase(), r.name),
        ));
    }
    if let Some(p) = missing_template(ctx, canary) {
        problem.get_or_insert(p);
    }
    let provider = spec.provider(&ctx.settings.engine).to_string();
    let pods = sel.as_ref().map(|s| canary_router::appmesh::PodSelector {
        label: s.label.clone(),
        value: s.value.clone(),
    });
    let router = match (ctx.routers)(&provider, pods) {
        Ok(r) => Some(r),
        Err(e) => {
            let path = if spec.provider.as_deref().is_some_and(|p| !p.is_empty()) {
                "spec.provider"
            } else {
                "-mesh-provider"
            };
            problem.get_or_insert(Problem::unsupported_provider(path, e));
            None
        }
    };
    let routes = match &router {
        Some(r) => r
            .get_routes(canary)
            .await
            .map_err(|e| crate::error_chain(&e)),
        None => Ok(Routes::default()),
    };
    Ok(Scene {
        target,
        sel,
        tracked,
        primary,
        latest,
        router,
        routes,
        problem,
        world,
    })
}

/// The Knative Revision `name`, when there is a name.
async fn revision(world: &World, name: Option<&str>) -> Result<Option<Value>, Error> {
    match name {
        Some(n) => world.get(knative::REVISION, n).await,
        None => Ok(None),
    }
}

/// The canary that holds the same workload, if another does, from the controller's cache of
/// canaries ([`blocked::holder`] decides).
fn target_taken_by(ctx: &Context, canary: &Canary, primary: Option<&Value>) -> Option<String> {
    let store = ctx.canaries.get()?;
    let all = store.state();
    let rivals: Vec<Claim<'_>> = all
        .iter()
        .filter_map(|c| c.decoded())
        .filter(|c| {
            c.metadata.namespace == canary.metadata.namespace
                && c.metadata.name != canary.metadata.name
                && c.metadata.deletion_timestamp.is_none()
                && c.spec.target_ref.kind == canary.spec.target_ref.kind
                && c.spec.target_ref.name == canary.spec.target_ref.name
        })
        .map(claim)
        .collect();
    if rivals.is_empty() {
        return None;
    }
    let owner = primary.and_then(|p| {
        p["metadata"]["ownerReferences"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == "Canary")?["uid"]
            .as_str()
    });
    blocked::holder(&claim(canary), &rivals, owner).map(String::from)
}

fn claim(c: &Canary) -> Claim<'_> {
    Claim {
        name: c.metadata.name.as_deref().unwrap_or_default(),
        uid: c.metadata.uid.as_deref(),
        running: c.status.as_ref().and_then(|s| s.phase).is_some(),
        created: c
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
    }
}

/// A MetricTemplate the analysis names that is missing or cannot be read. Only checked
/// outside an analysis: a new analysis does not start without its templates, while one
/// under way fails its checks, as in Flagger.
fn missing_template(ctx: &Context, canary: &Canary) -> Option<Problem> {
    let store: &Store<Lenient<MetricTemplate>> = ctx.templates.get()?;
    let phase = canary.status.as_ref().and_then(|s| s.phase);
    if phase.is_some_and(|p| p.is_active()) || canary.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let analysis = canary.spec.analysis()?;
    let path = if canary.spec.analysis.is_some() {
        "spec.analysis"
    } else {
        "spec.canaryAnalysis"
    };
    analysis.metrics.iter().enumerate().find_map(|(i, m)| {
        let t = m.template_ref.as_ref()?;
        let t_ns = t
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(ns.clone());
        let found = store.get(&ObjectRef::new(&t.name).within(&t_ns));
        let what = match found.as_deref() {
            None => "not found".to_string(),
            Some(Lenient::Undecodable(u)) => format!("cannot be read: {}", u.error),
            Some(Lenient::Decoded(_)) => return None,
        };
        Some(Problem::missing(
            &format!("{path}.metrics[{i}].templateRef"),
            format!("metrictemplate {}.{t_ns} {what}", t.name),
        ))
    })
}
