//! Which canaries a change of another object wakes: its target or primary, a tracked
//! config, a Service it targets, a Knative Service or Revision, a MetricTemplate or
//! AlertProvider it names.

use canary_api::{Canary, Lenient};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// The canaries a change of `kind` `key` matters to. A target's or primary's status-only
/// change (a rollout's progress) matters only to a canary that may wait on it (not one at
/// rest); a tracked config's change to the canaries tracking it; a Service's spec change to
/// the canaries that target it. Other Services and autoscalers are only cached.
pub(crate) fn concerned(
    store: &Store<Lenient<Canary>>,
    kind: &str,
    (ns, name): &(String, String),
    change: crate::cache::Change,
) -> Vec<ObjectRef<Lenient<Canary>>> {
    use crate::cache::Change;
    if change == Change::None || kind == "HorizontalPodAutoscaler" {
        return Vec::new();
    }
    let config_key = format!("{}/{name}", kind.to_lowercase());
    store
        .state()
        .into_iter()
        .filter(|c| c.meta().namespace.as_deref() == Some(ns.as_str()))
        .filter(|c| {
            let Some(c) = c.decoded() else { return false };
            let status = c.status.as_ref();
            match kind {
                crate::knative::SERVICE => {
                    let target = &c.spec.target_ref;
                    target.is_knative_service() && target.name == *name
                }
                // Knative names a Service's revisions `<service>-…` (`-00001` unless the
                // template names them, which Knative requires to start so too).
                crate::knative::REVISION => {
                    let target = &c.spec.target_ref;
                    target.is_knative_service()
                        && name
                            .strip_prefix(target.name.as_str())
                            .is_some_and(|rest| rest.starts_with('-'))
                }
                "Service" => {
                    let target = &c.spec.target_ref;
                    change == Change::Spec && target.is_core_service() && target.name == *name
                }
                "Deployment" | "DaemonSet" => {
                    let target = &c.spec.target_ref;
                    let at_rest = status.and_then(|s| s.phase).is_some_and(|p| {
                        matches!(
                            p,
                            canary_core::Phase::Initialized
                                | canary_core::Phase::Succeeded
                                | canary_core::Phase::Failed
                        )
                    });
                    target.kind == kind
                        && (target.name == *name || format!("{}-primary", target.name) == *name)
                        && (change == Change::Spec || !at_rest)
                }
                _ => status
                    .and_then(|s| s.tracked_configs.as_ref())
                    .is_some_and(|t| t.contains_key(&config_key)),
            }
        })
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

/// Maps a change of a MetricTemplate (or, `by_alert`, an AlertProvider) to the canaries that
/// reference it.
pub(crate) fn by_reference<K: Resource>(
    store: Store<Lenient<Canary>>,
    by_alert: bool,
) -> impl Fn(K) -> Vec<ObjectRef<Lenient<Canary>>> + Send + Sync + 'static {
    move |obj: K| {
        let meta = obj.meta();
        let (obj_ns, name) = (meta.namespace.clone(), meta.name.clone());
        store
            .state()
            .into_iter()
            .filter(|c| {
                let Some(a) = c.decoded().and_then(|c| c.spec.analysis()) else {
                    return false;
                };
                let own_ns = c.meta().namespace.clone();
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
}
