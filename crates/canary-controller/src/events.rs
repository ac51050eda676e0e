//! Kubernetes events on the Canary, with Flagger's reason (`Synced`) and texts, also logged.
//!
//! flaggerd writes core/v1 Events itself, one object per canary and message: a repeated
//! message raises the count of its event, as client-go's recorder does for Flagger, so
//! `kubectl describe` shows `(x3 over 2m)`. Every write carries a [`Mark`], the step and the
//! effect it belongs to, kept on the event in an annotation: publishing with a mark the
//! event already holds changes nothing. A step carried out again after a crash therefore
//! counts each of its events once (the controller's exactly-once guarantee).

use std::collections::HashMap;
use std::sync::Mutex;

use canary_core::{Level, messages::EVENT_REASON};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{Error, MANAGER};

/// The annotation holding the marks of the step that last counted an event.
pub const MARKS_ANNOTATION: &str = "flaggerd.app/marks";
/// Event messages are cut to this many bytes (the events API's limit for a note).
const MAX_MESSAGE: usize = 1024;
/// Remembered events beyond this number are pruned when older than an hour (the API
/// server's default event time to live).
const CACHE_SIZE: usize = 4096;

/// Identifies one effect that records an event: the step it belongs to and its place in the
/// step. Publishing twice with the same mark records once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The step: when it was decided.
    pub step: String,
    /// The effect's place within the step (effect and call numbers).
    pub place: String,
}

impl Mark {
    /// The mark of effect `place` of the step decided at `decided_at`.
    pub fn new(decided_at: DateTime<Utc>, place: impl Into<String>) -> Self {
        Mark {
            step: stamp(decided_at),
            place: place.into(),
        }
    }
}

/// A time as marks and idempotency keys print it: RFC 3339 with microseconds, always the
/// same width.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Records events.
pub struct Events {
    client: kube::Client,
    instance: String,
    clock: fn() -> DateTime<Utc>,
    /// Events this process wrote: name to what it last wrote, so a repeat needs no read.
    seen: Mutex<HashMap<(String, String), Seen>>,
}

#[derive(Clone, Debug)]
struct Seen {
    resource_version: String,
    count: i64,
    marks: String,
    written: DateTime<Utc>,
}

/// What [`Events::publish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The event was created or its count raised.
    Recorded,
    /// The event already holds this mark: nothing to do.
    AlreadyRecorded,
    /// The API server refused the event for good; it is logged and dropped.
    Refused,
}

impl Events {
    /// A publisher reporting as `flagger` from `instance`.
    pub fn new(client: kube::Client, instance: &str, clock: fn() -> DateTime<Utc>) -> Self {
        Events {
            client,
            instance: instance.to_string(),
            clock,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event about `object` once per `mark`, and logs it when it is recorded.
    /// A transient API error is returned so the caller retries the effect.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        level: Level,
        message: &str,
        mark: &Mark,
    ) -> Result<Published, Error> {
        let ns = object.namespace.clone().unwrap_or_default();
        let name = event_name(object, level, message);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &ns, &resource());
        let key = (ns.clone(), name.clone());
        let mut current = self.remembered(&key);
        // An event this process has not written is most likely new: create it without a
        // read, and read it only when the create finds it exists.
        let mut must_read = false;
        for _ in 0..4 {
            if current.is_none() && must_read {
                current = match api.get_opt(&name).await {
                    Ok(found) => found.map(|e| seen_from(&to_value(e))),
                    Err(e) => return self.failed("read", &ns, &name, e),
                };
            }
            let now = (self.clock)();
            let marks = match &current {
                Some(s) => match add_mark(&s.marks, mark) {
                    Some(m) => m,
                    None => return Ok(Published::AlreadyRecorded),
                },
                None => add_mark("", mark).unwrap_or_default(),
            };
            let written = match &current {
                None => {
                    let body = self.new_event(object, &name, level, message, &marks, now);
                    let body: DynamicObject = serde_json::from_value(body)
                        .map_err(|e| Error::Encode(format!("event {ns}/{name}: {e}")))?;
                    let pp = PostParams {
                        field_manager: Some(MANAGER.into()),
                        ..Default::default()
                    };
                    api.create(&pp, &body).await
                }
                Some(s) => {
                    let patch = json!({
                        "metadata": {
                            "resourceVersion": s.resource_version,
                            "annotations": {MARKS_ANNOTATION: marks},
                        },
                        "count": s.count.saturating_add(1),
                        "lastTimestamp": stamp_seconds(now),
                    });
                    let pp = PatchParams {
                        field_manager: Some(MANAGER.into()),
                        ..Default::default()
                    };
                    api.patch(&name, &pp, &Patch::Merge(&patch)).await
                }
            };
            match written {
                Ok(e) => {
                    self.remember(key, seen_from(&to_value(e)));
                    log(object, level, message);
                    return Ok(Published::Recorded);
                }
                // Someone else wrote it, or it expired: read it again and decide again.
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {
                    self.forget(&key);
                    current = None;
                    must_read = true;
                }
                Err(e) => return self.failed("write", &ns, &name, e),
            }
        }
        Err(Error::Conflict(format!(
            "event {ns}/{name} kept changing while it was written"
        )))
    }

    fn new_event(
        &self,
        object: &ObjectReference,
        name: &str,
        level: Level,
        message: &str,
        marks: &str,
        now: DateTime<Utc>,
    ) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": object.namespace,
                "annotations": {MARKS_ANNOTATION: marks},
            },
            "involvedObject": object,
            "reason": EVENT_REASON,
            "message": canary_core::validate::truncate(message, MAX_MESSAGE),
            "type": level.event_type(),
            "count": 1,
            "firstTimestamp": stamp_seconds(now),
            "lastTimestamp": stamp_seconds(now),
            "source": {"component": "flagger"},
            "reportingComponent": "flagger",
            "reportingInstance": self.instance,
        })
    }

    fn failed(
        &self,
        verb: &'static str,
        ns: &str,
        name: &str,
        e: kube::Error,
    ) -> Result<Published, Error> {
        if crate::retriable(&e) {
            return Err(Error::kube(verb, format!("event {ns}/{name}"), e));
        }
        tracing::warn!(
            namespace = ns,
            "cannot {verb} event {name}: {}",
            crate::error_chain(&e)
        );
        Ok(Published::Refused)
    }

    fn remembered(&self, key: &(String, String)) -> Option<Seen> {
        self.seen.lock().ok()?.get(key).cloned()
    }

    fn forget(&self, key: &(String, String)) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(key);
        }
    }

    fn remember(&self, key: (String, String), s: Seen) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= CACHE_SIZE {
            let horizon = s.written - chrono::TimeDelta::hours(1);
            seen.retain(|_, v| v.written > horizon);
        }
        seen.insert(key, s);
    }
}

/// One line per recorded event, at the event's level, as Flagger logs them.
fn log(object: &ObjectReference, level: Level, message: &str) {
    let id = format!(
        "{}.{}",
        object.name.as_deref().unwrap_or_default(),
        object.namespace.as_deref().unwrap_or_default()
    );
    match level {
        Level::Info => tracing::info!(canary = %id, "{message}"),
        Level::Warn => tracing::warn!(canary = %id, "{message}"),
        Level::Error => tracing::error!(canary = %id, "{message}"),
    }
}

/// The marks after adding `mark`, or `None` when `marks` already holds it. Marks keep only
/// the latest step: `<step>#<place>,<place>...`.
fn add_mark(marks: &str, mark: &Mark) -> Option<String> {
    let (step, places) = marks.split_once('#').unwrap_or(("", ""));
    if step != mark.step {
        return Some(format!("{}#{}", mark.step, mark.place));
    }
    if places.split(',').any(|p| p == mark.place) {
        return None;
    }
    Some(format!("{marks},{}", mark.place))
}

/// `<object>.<16 hex digits>`: one event per object, severity and message.
fn event_name(object: &ObjectReference, level: Level, message: &str) -> String {
    let seed = json!([object.uid, level.event_type(), message]);
    let hash = canary_core::hash::config_checksum(&seed);
    let base: String = object
        .name
        .as_deref()
        .unwrap_or("object")
        .chars()
        .take(200)
        .collect();
    format!("{base}.{hash}")
}

fn seen_from(e: &Value) -> Seen {
    Seen {
        resource_version: e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        count: e["count"].as_i64().unwrap_or(1),
        marks: e["metadata"]["annotations"][MARKS_ANNOTATION]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        written: e["lastTimestamp"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
            .unwrap_or_default(),
    }
}

fn to_value(e: DynamicObject) -> Value {
    serde_json::to_value(e).unwrap_or_default()
}

fn stamp_seconds(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn resource() -> kube::core::ApiResource {
    kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("", "v1", "Event"),
        "events",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(step: &str, place: &str) -> Mark {
        Mark {
            step: step.into(),
            place: place.into(),
        }
    }

    #[test]
    fn a_mark_counts_once_and_a_new_step_replaces_the_marks() {
        let m = add_mark("", &mark("t1", "0")).expect("first");
        assert_eq!(m, "t1#0");
        assert_eq!(add_mark(&m, &mark("t1", "0")), None);
        let m = add_mark(&m, &mark("t1", "3")).expect("same step, other effect");
        assert_eq!(m, "t1#0,3");
        assert_eq!(add_mark(&m, &mark("t1", "3")), None);
        assert_eq!(add_mark(&m, &mark("t2", "0")).as_deref(), Some("t2#0"));
    }

    #[test]
    fn event_names_are_stable_per_object_and_message_and_fit_the_limit() {
        let object = ObjectReference {
            name: Some("x".repeat(253)),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let a = event_name(&object, Level::Info, "Advance podinfo.test canary weight 5");
        assert_eq!(
            a,
            event_name(&object, Level::Info, "Advance podinfo.test canary weight 5")
        );
        assert_ne!(
            a,
            event_name(
                &object,
                Level::Info,
                "Advance podinfo.test canary weight 10"
            )
        );
        assert!(a.len() <= 253);
    }
}
