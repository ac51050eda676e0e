//! Watches: the replay after a resourceVersion, then changes, bookmarks and 410s.

use super::*;

/// A watch: replays changes after `resourceVersion` (or lists the current objects), then
/// streams changes, bookmarks and, when the version is too old, a 410 `ERROR` event.
pub(super) fn watch(
    state: Arc<Shared>,
    rt: ResourceType,
    ns: String,
    query: BTreeMap<String, String>,
    partial: bool,
) -> Response {
    let labels = match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(l) => l,
        Err(e) => return error(&ApiError::bad_request(e.to_string())),
    };
    let fields = match FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(e) => return error(&ApiError::bad_request(e.to_string())),
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let initial_events = query.get("sendInitialEvents").is_some_and(|b| b == "true");
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let matches = move |o: &Value| labels.matches(&o["metadata"]["labels"]) && fields.matches(o);
    tokio::spawn(async move {
        let in_scope = |c: &Change| {
            c.storage == rt.storage && (ns.is_empty() || !rt.namespaced || c.namespace == ns)
        };
        let setup = {
            let store = state
                .cluster
                .store
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let start = if rv_param.is_empty() || rv_param == "0" || initial_events {
                store.rv()
            } else {
                rv_param.parse().unwrap_or(0)
            };
            let initial: Vec<Value> = if rv_param.is_empty() || rv_param == "0" || initial_events {
                store.list(
                    &rt.storage,
                    (rt.namespaced && !ns.is_empty()).then_some(ns.as_str()),
                )
            } else {
                Vec::new()
            };
            store
                .watch_from(start)
                .map(|(past, live)| (initial, past, live, store.rv()))
        };
        let Some((initial, past, mut live, mut last_rv)) = setup else {
            state.faults.count_gone();
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {rv_param}"), "reason": "Expired", "code": 410});
            let _ = tx.send(line("ERROR", &status)).await;
            return;
        };
        let (drop_after_events, drop_after) = state.faults.watch_limits();
        let mut sent: u64 = 0;
        let present = |o: Value| {
            let full = state.cluster.present(&rt, o);
            if partial { partial_object(&full) } else { full }
        };
        for o in initial.into_iter().filter(|o| matches(o)) {
            if tx.send(line("ADDED", &present(o))).await.is_err() {
                return;
            }
        }
        if initial_events && bookmarks {
            let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(line("BOOKMARK", &b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now()
            + timeout
                .unwrap_or(Duration::from_secs(1800))
                .min(drop_after.unwrap_or(Duration::MAX));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut pending: std::collections::VecDeque<Change> = past.into();
        loop {
            let change = if let Some(c) = pending.pop_front() {
                c
            } else {
                tokio::select! {
                    r = live.recv() => match r {
                        Ok(c) => c,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            state.faults.count_gone();
                            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410});
                            let _ = tx.send(line("ERROR", &status)).await;
                            return;
                        }
                        Err(_) => return,
                    },
                    _ = tick.tick() => {
                        if bookmarks {
                            let b = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                            if tx.send(line("BOOKMARK", &b)).await.is_err() { return; }
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline) => {
                        if drop_after.is_some() { state.faults.count_drop(); }
                        return;
                    }
                    _ = tx.closed() => return,
                }
            };
            last_rv = last_rv.max(change.rv);
            if !in_scope(&change) || !matches(&change.object) {
                continue;
            }
            let kind = match change.kind {
                ChangeType::Added => "ADDED",
                ChangeType::Modified => "MODIFIED",
                ChangeType::Deleted => "DELETED",
            };
            if tx.send(line(kind, &present(change.object))).await.is_err() {
                return;
            }
            sent += 1;
            if drop_after_events.is_some_and(|n| sent >= n) {
                state.faults.count_drop();
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

pub(super) fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}
