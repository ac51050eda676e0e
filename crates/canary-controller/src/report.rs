//! Reports of objects flaggerd cannot act on: a canary that cannot run (a missing target,
//! an unsupported provider, two canaries on one workload) and any Canary, MetricTemplate or
//! AlertProvider that does not decode. Each gets a `Valid=False` condition naming the field
//! and the reason, one event and one log line, and never affects another object.
//!
//! A report is exactly once without a step record: the condition is written first, and the
//! event carries the condition's transition time as its mark, so publishing it again on a
//! later reconcile (or after a restart) counts nothing.

use std::sync::Arc;

use canary_api::{Canary, Undecodable};
use canary_core::Level;
use canary_core::blocked::{self, Problem, Report};
use canary_core::messages::CONDITION_VALID;
use chrono::{DateTime, Utc};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::events::Mark;
use crate::journal::Recorded;
use crate::{Context, Error, MANAGER};

/// How often a canary that cannot run is looked at again when no watch event comes (a
/// missing HorizontalPodAutoscaler is not watched).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Reports a decoded canary that cannot run.
pub async fn blocked(ctx: &Context, canary: &Canary, problem: &Problem) -> Result<Action, Error> {
    let status = canary.status.clone().unwrap_or_default();
    let now = (ctx.clock)();
    let since = match blocked::report(&status, problem, now) {
        Report::Reported(since) => since,
        Report::Write(next) => {
            if crate::journal::record(ctx, canary, &next).await? != Recorded::Written {
                return Ok(Action::requeue(std::time::Duration::from_millis(200)));
            }
            now
        }
    };
    let object = crate::effects::object_reference(&canary.metadata, "Canary");
    let mark = Mark::new(since, CONDITION_VALID);
    ctx.events
        .publish(&object, Level::Error, &problem.message, &mark)
        .await?;
    Ok(Action::requeue(RECHECK))
}

/// Reports a Canary, MetricTemplate or AlertProvider whose stored form does not decode. A
/// Canary that is being deleted with flaggerd's finalizer lets go of it: without its spec
/// flaggerd cannot revert anything, and the object must not be stuck.
pub async fn undecodable(ctx: &Context, kind: &str, u: &Undecodable) -> Result<Action, Error> {
    let meta = &u.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let object = crate::effects::object_reference(meta, kind);
    let api = dynamic(ctx, kind, &ns);
    if meta.deletion_timestamp.is_some() {
        return release(ctx, &api, kind, u).await;
    }
    let reason = if u.error.path.starts_with("status") {
        "InvalidStatus"
    } else {
        "InvalidSpec"
    };
    let message = format!(
        "cannot read {} {ns}/{name}: {}",
        kind.to_lowercase(),
        u.error
    );
    let conditions: Vec<Value> = u
        .status
        .as_ref()
        .and_then(|s| s["conditions"].as_array().cloned())
        .unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == CONDITION_VALID);
    let reported = current.is_some_and(|c| {
        c["status"] == "False" && c["reason"] == reason && c["message"] == message.as_str()
    });
    let since = current
        .filter(|_| reported)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.to_utc());
    // A status flaggerd cannot read at all (nested too deep) is not overwritten, and a
    // condition whose time cannot be read is not written again: the event is then marked
    // with the object's generation, once per spec.
    if since.is_none() && (reported || !u.status_readable) {
        let mark = Mark {
            step: format!("generation {}", meta.generation.unwrap_or_default()),
            place: CONDITION_VALID.into(),
        };
        ctx.events
            .publish(&object, Level::Error, &message, &mark)
            .await?;
        return Ok(Action::await_change());
    }
    let since = match since {
        Some(t) => t,
        None => {
            let now = (ctx.clock)();
            let mut kept: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != CONDITION_VALID && c.is_object())
                .collect();
            kept.push(json!({
                "type": CONDITION_VALID,
                "status": "False",
                "reason": reason,
                "message": message,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }));
            let patch = json!({
                "metadata": {"resourceVersion": meta.resource_version},
                "status": {"conditions": kept},
            });
            let pp = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            match api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {
                    return Ok(Action::requeue(std::time::Duration::from_millis(200)));
                }
                Err(e) => {
                    let what = format!("{} {ns}/{name}", kind.to_lowercase());
                    return Err(Error::kube("write the status of", what, e));
                }
            }
            now
        }
    };
    let mark = Mark::new(since, CONDITION_VALID);
    ctx.events
        .publish(&object, Level::Error, &message, &mark)
        .await?;
    Ok(Action::await_change())
}

/// Removes flaggerd's finalizer from an undecodable canary being deleted.
async fn release(
    ctx: &Context,
    api: &Api<DynamicObject>,
    kind: &str,
    u: &Undecodable,
) -> Result<Action, Error> {
    let meta = &u.metadata;
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    let ours = canary_core::messages::FINALIZER;
    if !finalizers.iter().any(|f| f == ours) {
        return Ok(Action::await_change());
    }
    let name = meta.name.clone().unwrap_or_default();
    let message = format!(
        "cannot revert {} {}: {}; removing its finalizer so the deletion completes",
        kind.to_lowercase(),
        crate::display_name(meta),
        u.error
    );
    let object = crate::effects::object_reference(meta, kind);
    let since = meta
        .deletion_timestamp
        .as_ref()
        .map(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0).unwrap_or_default())
        .unwrap_or_default();
    ctx.events
        .publish(
            &object,
            Level::Error,
            &message,
            &Mark::new(since, "release"),
        )
        .await?;
    let kept: Vec<&String> = finalizers.iter().filter(|f| *f != ours).collect();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
        {"op": "replace", "path": "/metadata/finalizers", "value": kept},
    ]))
    .map_err(|e| Error::Encode(format!("finalizer patch: {e}")))?;
    match api
        .patch(&name, &crate::write_params(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => {
            Ok(Action::requeue(std::time::Duration::from_millis(200)))
        }
        Err(e) => Err(Error::kube(
            "remove the finalizer of",
            format!("{} {}", kind.to_lowercase(), crate::display_name(meta)),
            e,
        )),
    }
}

fn dynamic(ctx: &Context, kind: &str, ns: &str) -> Api<DynamicObject> {
    let plural = match kind {
        "MetricTemplate" => "metrictemplates",
        "AlertProvider" => "alertproviders",
        _ => "canaries",
    };
    let gvk = kube::core::GroupVersionKind::gvk(canary_api::GROUP, canary_api::VERSION, kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(ctx.client.clone(), ns, &ar)
}

/// A MetricTemplate or AlertProvider that does not decode, for [`objects`].
pub type Broken = (&'static str, Undecodable);

/// The reporter of MetricTemplates and AlertProviders that do not decode: the watches send
/// them here, and each is reported on its own object. A report that failed, or met a newer
/// version of the object, is tried again after the object's backoff, on the object as it is
/// then (fixed meanwhile, it is left alone).
pub async fn objects(
    ctx: Arc<Context>,
    mut broken: futures::channel::mpsc::UnboundedReceiver<Broken>,
    again: futures::channel::mpsc::UnboundedSender<Broken>,
) {
    use futures::StreamExt;
    while let Some((kind, u)) = broken.next().await {
        let id = format!(
            "{} {}",
            kind.to_lowercase(),
            crate::display_name(&u.metadata)
        );
        let done = match undecodable(&ctx, kind, &u).await {
            Ok(action) => action == Action::await_change(),
            Err(e) => {
                tracing::warn!("cannot report {id}: {}", crate::error_chain(&e));
                false
            }
        };
        if done {
            ctx.backoff.succeeded(&id);
            continue;
        }
        let delay = ctx.backoff.failed(&id);
        let (ctx, again) = (ctx.clone(), again.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(current) = current(&ctx, kind, &u.metadata).await {
                let _ = again.unbounded_send((kind, current));
            }
        });
    }
}

/// The object as it is now, if it still does not decode.
async fn current(
    ctx: &Context,
    kind: &'static str,
    meta: &kube::api::ObjectMeta,
) -> Option<Undecodable> {
    match kind {
        "MetricTemplate" => still_undecodable::<canary_api::MetricTemplate>(ctx, meta).await,
        _ => still_undecodable::<canary_api::AlertProvider>(ctx, meta).await,
    }
}

async fn still_undecodable<K>(ctx: &Context, meta: &kube::api::ObjectMeta) -> Option<Undecodable>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let api: Api<canary_api::Lenient<K>> = Api::namespaced(ctx.client.clone(), &ns);
    match api.get_opt(&name).await.ok()?? {
        canary_api::Lenient::Undecodable(u) => Some(u),
        canary_api::Lenient::Decoded(_) => None,
    }
}
