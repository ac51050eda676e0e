//! The proxy on kube-sim: a client with `http_proxy` reaches the podinfo backend of the
//! revision a Service selects, an upstream process by its cluster name, and the requests
//! appear in each mesh's series on `/metrics`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use mesh_sim::{MeshSim, Options};
use serde_json::json;

async fn create<K>(api: Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let object: K = serde_json::from_value(value).expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_client_reaches_the_selected_revision() {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    create(
        Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": "test"}}),
    )
    .await;
    create(
        Api::<Service>::namespaced(client.clone(), "test"),
        json!({"metadata": {"name": "podinfo-canary"},
               "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 9898}, {"name": "grpc", "port": 9999}]}}),
    )
    .await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), "test");
    create(
        deployments.clone(),
        json!({"metadata": {"name": "podinfo"},
               "spec": {"selector": {"matchLabels": {"app": "podinfo"}},
                        "template": {"metadata": {"labels": {"app": "podinfo"}},
                                     "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}}}}),
    )
    .await;

    // An upstream process, as the loadtester is.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let echo = axum::Router::new().route(
        "/",
        axum::routing::post(|body: String| async move { format!("upstream got {body}") }),
    );
    tokio::spawn(async move { axum::serve(listener, echo).await });

    let mut options = Options::default();
    options
        .upstreams
        .insert("flagger-loadtester.test".into(), upstream.to_string());
    let mesh = MeshSim::start(client.clone(), options)
        .await
        .expect("mesh-sim");
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", mesh.addr())).expect("proxy"))
        .build()
        .expect("client");

    // The first revision becomes available after kube-sim's start-up delay; until then the
    // Service has no endpoint.
    let mut version = String::new();
    for _ in 0..50 {
        let r = proxied
            .get("http://podinfo-canary.test:9898/version")
            .send()
            .await
            .expect("send");
        if r.status() == 200 {
            version = r.text().await.expect("body");
            break;
        }
        assert_eq!(r.status(), 503, "no endpoint yet");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(version, r#"{"version":"6.0.0"}"#);

    // A new revision answers once it is available.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}});
    deployments
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .expect("set image");
    let mut seen = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = proxied
            .get("http://podinfo-canary.test:9898/version")
            .send()
            .await
            .expect("send")
            .text()
            .await
            .expect("body");
        if seen.contains("6.0.1") {
            break;
        }
    }
    assert_eq!(seen, r#"{"version":"6.0.1"}"#);

    let r = proxied
        .get("http://podinfo-canary.test:9898/status/500")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 500);
    let token = proxied
        .post("http://podinfo-canary.test:9898/token")
        .body("test")
        .send()
        .await
        .expect("send");
    assert!(token.text().await.expect("body").contains("token"));
    let up = proxied
        .post("http://flagger-loadtester.test/")
        .body("hello")
        .send()
        .await
        .expect("send");
    assert_eq!(up.text().await.expect("body"), "upstream got hello");
    let unknown = proxied
        .get("http://nowhere.test/")
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 502);
    assert!(unknown.text().await.expect("body").contains("nowhere.test"));

    // Without a proxy: the cluster name in Host.
    let direct = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = direct
        .get(format!("http://{}/version", mesh.addr()))
        .header("host", "podinfo-canary.test:9898")
        .send()
        .await
        .expect("send");
    assert_eq!(r.text().await.expect("body"), r#"{"version":"6.0.1"}"#);

    let metrics = direct
        .get(format!("http://{}/metrics", mesh.addr()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    // The destination's sidecar reports per pod (a second revision is a new series), the
    // source's per destination workload.
    let destination = r#"istio_requests_total{reporter="destination",destination_workload_namespace="test",destination_workload="podinfo",destination_service_namespace="test",destination_app="podinfo",source_workload="mesh-sim",source_workload_namespace="mesh-sim",namespace="test",pod="podinfo-"#;
    let line = metrics
        .lines()
        .find(|l| l.starts_with(destination) && l.ends_with(r#"response_code="500"} 1"#));
    assert!(line.is_some(), "{metrics}");
    let source = r#"istio_requests_total{reporter="source",destination_workload_namespace="test",destination_workload="podinfo",destination_service_namespace="test",destination_app="podinfo",source_workload="mesh-sim",source_workload_namespace="mesh-sim",namespace="mesh-sim",pod="mesh-sim",response_code="500"} 1"#;
    assert!(metrics.contains(source), "{metrics}");
    let podinfo = "http_request_duration_seconds_count{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-";
    let line = metrics
        .lines()
        .find(|l| l.starts_with(podinfo))
        .unwrap_or_default();
    assert!(
        line.contains(",namespace=\"test\",pod=\"podinfo-") && line.contains(",app=\"podinfo\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"response_total{namespace="test",deployment="podinfo""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "envoy_cluster_upstream_rq{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_count{kubernetes_namespace=\"test\""),
        "{metrics}"
    );
    // The upstream's requests are not the mesh's workloads: not counted.
    assert!(!metrics.contains("loadtester"), "{metrics}");

    // gRPC through a CONNECT tunnel, as grpc_health_probe reaches a Service with
    // HTTPS_PROXY: the health service answers SERVING, an unknown service NOT_FOUND.
    let (status, message) = grpc_health_check(mesh.addr(), "podinfo-canary.test:9999", "").await;
    assert_eq!(
        (status.as_str(), message),
        ("0", vec![0, 0, 0, 0, 2, 0x08, 0x01])
    );
    let (status, message) = grpc_health_check(mesh.addr(), "podinfo-canary.test:9999", "x").await;
    assert_eq!((status.as_str(), message), ("5", vec![]));
    let (status, _) = grpc_health_check(mesh.addr(), "nowhere.test:9999", "").await;
    assert_eq!(status, "no grpc-status (HTTP 502)");
}

/// One `grpc.health.v1.Health/Check` for `service` over HTTP/2 in a CONNECT tunnel to
/// `target` through the proxy at `proxy`: the `grpc-status` trailer and the response body.
async fn grpc_health_check(
    proxy: std::net::SocketAddr,
    target: &str,
    service: &str,
) -> (String, Vec<u8>) {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut tcp = tokio::net::TcpStream::connect(proxy).await.expect("proxy");
    tcp.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("CONNECT");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await.expect("CONNECT answer");
        head.push(byte[0]);
        assert!(head.len() < 4096, "CONNECT answer too long");
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut message = vec![0u8, 0, 0, 0, 0];
    if !service.is_empty() {
        message[4] = 2 + service.len() as u8;
        message.extend_from_slice(&[0x0a, service.len() as u8]);
        message.extend_from_slice(service.as_bytes());
    }
    let request = hyper::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(axum::body::Bytes::from(message)))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
    let http = response.status();
    let all = response.into_body().collect().await.expect("body");
    let status = all
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| format!("no grpc-status (HTTP {})", http.as_u16()));
    (status, all.to_bytes().to_vec())
}
