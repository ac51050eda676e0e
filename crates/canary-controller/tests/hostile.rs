//! The hostile corpus (tests/fixtures/hostile.yaml): canaries an API server stores but
//! flaggerd cannot run. Each must get a specific error with its field path in its status
//! and in an event, none may panic, and a good canary in the same cluster is promoted while
//! they are there, by a controller that was running and by one started among them.

#[path = "support/cluster.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_sim::FaultConfig;
use serde_json::{Value, json};
use support::*;

const EXPECT: &str = "test.flaggerd.app/expect";

fn corpus() -> Vec<Value> {
    include_str!("fixtures/hostile.yaml")
        .split("\n---\n")
        .skip(1)
        .map(|doc| serde_json::from_str(doc.trim()).expect("corpus entry is JSON"))
        .collect()
}

fn canaries_dynamic(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    Api::namespaced_with(
        client.clone(),
        "test",
        &ApiResource::from_gvk_with_plural(&gvk, "canaries"),
    )
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc["metadata"]["annotations"][key].as_str()
}

/// Creates the entry's target (when it asks for one), then the canary as raw JSON, then its
/// status (when it asks for one).
async fn apply(client: &kube::Client, mut doc: Value) {
    let name = doc["metadata"]["name"].as_str().expect("name").to_string();
    if annotation(&doc, "test.flaggerd.app/target") == Some("create") {
        let target = doc["spec"]["targetRef"]["name"].as_str().expect("target");
        let label = annotation(&doc, "test.flaggerd.app/target-label").unwrap_or("app");
        let deploy: Deployment = serde_json::from_value(json!({
            "metadata": {"name": target, "labels": {label: target}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {label: target}},
                "template": {"metadata": {"labels": {label: target}},
                    "spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}}}
        }))
        .expect("deployment");
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), "test");
        let pp = PostParams::default();
        persist(|| deploys.create(&pp, &deploy)).await;
    }
    if let Some(size) = annotation(&doc, "test.flaggerd.app/huge") {
        let size: usize = size.parse().expect("size");
        doc["metadata"]["annotations"]["test.flaggerd.app/blob"] = json!("x".repeat(size));
    }
    if let Some(n) = annotation(&doc, "test.flaggerd.app/webhooks") {
        let n: usize = n.parse().expect("count");
        doc["spec"]["analysis"]["webhooks"] = json!(vec![json!({"url": "http://x/"}); n]);
    }
    let status = annotation(&doc, "test.flaggerd.app/status").map(|s| s.to_string());
    let api = canaries_dynamic(client);
    let obj: DynamicObject = serde_json::from_value(doc).expect("object");
    let pp = PostParams::default();
    persist(|| api.create(&pp, &obj)).await;
    if let Some(status) = status {
        let status: Value = serde_json::from_str(&status).expect("status json");
        let patch = json!({"status": status});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        persist(|| api.patch_status(&name, &params, &patch)).await;
    }
}

/// The message of the entry's `Valid=False` condition, once it has one.
async fn valid_message(api: &Api<DynamicObject>, name: &str) -> Option<String> {
    let obj = api.get(name).await.ok()?;
    let conditions = obj.data["status"]["conditions"].as_array()?.clone();
    conditions
        .iter()
        .find(|c| c["type"] == "Valid" && c["status"] == "False")
        .and_then(|c| c["message"].as_str().map(String::from))
}

async fn events_by_object(client: &kube::Client) -> BTreeMap<String, Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), "test");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
    {
        let name = e.involved_object.name.clone().unwrap_or_default();
        out.entry(name).or_default().extend(e.message);
    }
    out
}

/// Checks every entry: its condition and an event name the problem. Returns the failures.
async fn check(client: &kube::Client, docs: &[Value]) -> Vec<String> {
    let api = canaries_dynamic(client);
    let mut failures = Vec::new();
    let events = events_by_object(client).await;
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().expect("name");
        let expect = annotation(doc, EXPECT).expect("expectation");
        let message = valid_message(&api, name).await;
        match &message {
            Some(m) if m.contains(expect) => {}
            other => failures.push(format!("{name}: condition {other:?} lacks {expect:?}")),
        }
        let evented = events
            .get(name)
            .is_some_and(|list| list.iter().any(|m| m.contains(expect)));
        if !evented {
            failures.push(format!(
                "{name}: no event with {expect:?}; events {:?}",
                events.get(name)
            ));
        }
    }
    failures
}

async fn release(client: &kube::Client, image: &str, canaries: &Api<Canary>) {
    set_image(client, image).await;
    wait_for_phase(canaries, Phase::Progressing, Duration::from_secs(15)).await;
    wait_for_phase(canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    assert_eq!(primary_image(client).await.as_deref(), Some(image));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_canary_is_reported_and_the_good_one_is_promoted() {
    let docs = corpus();
    assert!(docs.len() >= 40, "the corpus holds {} canaries", docs.len());
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(2)))
        .await
        .expect("good canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;

    for doc in &docs {
        apply(&c.client, doc.clone()).await;
    }
    release(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.1", &canaries).await;
    let mut failures = Vec::new();
    for _ in 0..100 {
        failures = check(&c.client, &docs).await;
        if failures.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
    assert!(failures.is_empty(), "{failures:#?}");
    let panics: Vec<String> = events_by_object(&c.client)
        .await
        .into_values()
        .flatten()
        .filter(|m| m.contains("flaggerd bug"))
        .collect();
    assert!(panics.is_empty(), "{panics:#?}");

    // A controller that starts among them starts, and promotes the good canary.
    let running = start(context(c.client.clone(), healthy()));
    release(&c.client, "ghcr.io/stefanprodan/podinfo:6.0.2", &canaries).await;
    running.stop().await;
    assert!(check(&c.client, &docs).await.is_empty());
}
