//! What the tests of the flaggerd binary share: kube-sim with the CRDs and namespace `test`,
//! podinfo-like Deployments, a free port.

#![allow(dead_code)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::json;

/// kube-sim with flaggerd's CRDs and the namespace `test`.
pub async fn kube_sim() -> (kube_sim::KubeSim, kube::Client) {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    for crd in canary_api::crd_objects() {
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("ns");
    (sim, client)
}

/// A Deployment `name` in `test` running podinfo 6.0.0, selected by `app: <name>`.
pub async fn deployment(client: &kube::Client, name: &str, replicas: i32) {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0", "ports": [{"containerPort": 9898}]}]}}}
    }))
    .expect("deploy");
    Api::<Deployment>::namespaced(client.clone(), "test")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("deploy");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits up to `limit` for the canary `name` in `test` to reach `want`; false if it does not.
pub async fn reaches(
    client: &kube::Client,
    name: &str,
    want: canary_core::Phase,
    limit: std::time::Duration,
) -> bool {
    let canaries: Api<canary_api::Canary> = Api::namespaced(client.clone(), "test");
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let phase = canaries.get(name).await.ok().and_then(|c| c.status?.phase);
        if phase == Some(want) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// `kubectl -n test set image deployment/<name> podinfod=<image>`.
pub async fn set_image(client: &kube::Client, name: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": image}]}}}});
    Api::<Deployment>::namespaced(client.clone(), "test")
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .expect("set image");
}
