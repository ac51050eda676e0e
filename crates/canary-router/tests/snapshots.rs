//! Snapshots of each provider's routing objects for the seeds' canaries, in
//! `tests/snapshots/` (mesh-sim's tests route by them). A snapshot that differs fails with a
//! diff; `UPDATE_EXPECT=1 cargo test -p canary-router --test snapshots` rewrites them for
//! review.

use canary_api::Canary;
use canary_core::Routes;
use canary_core::spec::{HttpMatch, StringMatch};
use canary_router::{Kind, istio};
use serde_json::{Value, json};

fn seed(file: &str) -> Canary {
    let path = format!(
        "{}/../canary-core/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut c = Canary::from_yaml(&std::fs::read_to_string(path).expect("fixture")).expect("seed");
    c.metadata.namespace.get_or_insert_with(|| "test".into());
    c.metadata.uid = Some("uid-podinfo".into());
    c
}

fn weights() -> Vec<(&'static str, Routes)> {
    vec![
        (
            "weight 0",
            Routes {
                primary: 100,
                canary: 0,
                mirrored: false,
            },
        ),
        (
            "weight 5",
            Routes {
                primary: 95,
                canary: 5,
                mirrored: false,
            },
        ),
        (
            "weight 50",
            Routes {
                primary: 50,
                canary: 50,
                mirrored: false,
            },
        ),
        (
            "promoted",
            Routes {
                primary: 100,
                canary: 0,
                mirrored: false,
            },
        ),
    ]
}

fn snapshot(name: &str, value: Value) {
    let text = serde_yaml_ng::to_string(&value).expect("yaml");
    expect_test::expect_file![format!("snapshots/{name}.yaml")].assert_eq(&text);
}

fn steps(kind: Kind, canary: &Canary) -> Value {
    let mut out = serde_json::Map::new();
    for (label, routes) in weights() {
        let obj = kind.build(canary, routes).expect("build");
        assert_eq!(
            kind.routes_of(&obj, canary).expect("read back"),
            routes,
            "{label} round-trips"
        );
        out.insert(label.into(), obj);
    }
    Value::Object(out)
}

fn header_match() -> Vec<HttpMatch> {
    let mut m = HttpMatch::default();
    m.headers.insert(
        "x-canary".into(),
        StringMatch {
            exact: Some("insider".into()),
            ..Default::default()
        },
    );
    vec![m]
}

fn cookie_match() -> Vec<HttpMatch> {
    let mut m = HttpMatch::default();
    m.headers.insert(
        "cookie".into(),
        StringMatch {
            regex: Some("^(.*?;)?(canary=insider)(;.*)?$".into()),
            ..Default::default()
        },
    );
    vec![m]
}

#[test]
fn istio_seed_004() {
    let canary = seed("004-istio.yaml");
    let mut all = steps(Kind::Istio, &canary);
    all["destinationRules"] = json!(istio::destination_rules(&canary));
    snapshot("istio-004", all);
}

#[test]
fn istio_ab_testing_with_header_and_cookie() {
    for (name, m) in [
        ("istio-ab-header", header_match()),
        ("istio-ab-cookie", cookie_match()),
    ] {
        let mut canary = seed("004-istio.yaml");
        let a = canary.spec.analysis.as_mut().expect("analysis");
        a.r#match = m;
        a.iterations = Some(10);
        let obj = Kind::Istio
            .build(
                &canary,
                Routes {
                    primary: 0,
                    canary: 100,
                    mirrored: false,
                },
            )
            .expect("build");
        assert_eq!(
            obj["spec"]["http"].as_array().map(Vec::len),
            Some(2),
            "A/B route, then the default route"
        );
        snapshot(name, obj);
    }
}

#[test]
fn istio_mirroring() {
    let mut canary = seed("004-istio.yaml");
    let a = canary.spec.analysis.as_mut().expect("analysis");
    a.mirror = true;
    a.mirror_weight = Some(50);
    let routes = Routes {
        primary: 100,
        canary: 0,
        mirrored: true,
    };
    let obj = Kind::Istio.build(&canary, routes).expect("build");
    assert_eq!(Kind::Istio.routes_of(&obj, &canary).expect("read"), routes);
    snapshot("istio-mirror", obj);
}

#[test]
fn linkerd_smi_seed_001() {
    snapshot(
        "smi-v1alpha1-001",
        steps(Kind::Smi("v1alpha1"), &seed("001-linkerd.yaml")),
    );
}

#[test]
fn gateway_api_for_linkerd_and_ab() {
    let mut canary = seed("001-linkerd.yaml");
    canary.spec.provider = Some("gatewayapi:v1".into());
    canary.spec.service.gateway_refs = vec![
        serde_json::from_value(
            json!({"group": "core", "kind": "Service", "name": "podinfo", "port": 9898}),
        )
        .expect("ref"),
    ];
    snapshot("gatewayapi-v1-001", steps(Kind::GatewayApi("v1"), &canary));
    let a = canary.spec.analysis.as_mut().expect("analysis");
    a.r#match = header_match();
    a.iterations = Some(10);
    snapshot(
        "gatewayapi-v1-ab-header",
        Kind::GatewayApi("v1")
            .build(
                &canary,
                Routes {
                    primary: 0,
                    canary: 100,
                    mirrored: false,
                },
            )
            .expect("build"),
    );
}

#[test]
fn gateway_api_needs_gateway_refs() {
    let err = Kind::GatewayApi("v1")
        .build(&seed("001-linkerd.yaml"), Routes::default())
        .expect_err("no refs");
    assert_eq!(
        err.to_string(),
        "spec.service.gatewayRefs: required by the Gateway API provider"
    );
}

#[test]
fn app_mesh_seed_002() {
    use canary_router::appmesh;
    let canary = seed("002-appmesh-v1beta2.yaml");
    let sel = appmesh::PodSelector {
        label: "app".into(),
        value: "podinfo".into(),
    };
    let mut all = steps(Kind::AppMesh, &canary);
    all["virtualNodes"] = json!(appmesh::virtual_nodes(&canary, &sel));
    all["virtualServices"] = json!(appmesh::virtual_services(&canary));
    all["canaryRouter"] = appmesh::virtual_routers(&canary, Routes::default())[1].clone();
    snapshot("appmesh-v1beta2-002", all);
    let mut ab = seed("002-appmesh-ab-header.yaml");
    ab.metadata.uid = Some("uid-podinfo".into());
    snapshot(
        "appmesh-v1beta2-ab-header",
        Kind::AppMesh
            .build(
                &ab,
                Routes {
                    primary: 0,
                    canary: 100,
                    mirrored: false,
                },
            )
            .expect("build"),
    );
}

#[test]
fn istio_session_affinity() {
    let mut canary = seed("004-istio.yaml");
    canary
        .spec
        .analysis
        .as_mut()
        .expect("analysis")
        .session_affinity = Some(
        serde_json::from_value(
            json!({"cookieName": "flagger-cookie", "maxAge": 21600, "path": "/", "secure": true}),
        )
        .expect("affinity"),
    );
    let mut status = canary_core::CanaryStatus {
        last_applied_spec: "rev-2".into(),
        ..Default::default()
    };
    canary.status = Some(status.clone());
    let routes = Routes {
        primary: 90,
        canary: 10,
        mirrored: false,
    };
    let during = Kind::Istio.build(&canary, routes).expect("build");
    assert_eq!(
        Kind::Istio.routes_of(&during, &canary).expect("read"),
        routes,
        "the sticky route is not the weighted one"
    );
    let cookie = canary_core::hash::session_cookie("flagger-cookie", "rev-2");
    assert_eq!(
        during["spec"]["http"][0]["match"][0]["headers"]["Cookie"]["regex"],
        format!(".*{cookie}.*")
    );
    assert_eq!(
        during["spec"]["http"][1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"],
        format!("{cookie}; Max-Age=21600; Path=/; Secure")
    );
    status.previous_session_affinity_cookie = Some(cookie.clone());
    canary.status = Some(status);
    let after = Kind::Istio
        .build(&canary, Routes::default())
        .expect("build");
    assert_eq!(
        after["spec"]["http"][0]["route"][0]["headers"]["response"]["add"]["Set-Cookie"],
        format!("{cookie}; Max-Age=-1")
    );
    assert_eq!(
        Kind::Istio.routes_of(&after, &canary).expect("read"),
        Routes::default()
    );
    snapshot(
        "istio-session-affinity",
        json!({"weight 10": during, "after": after}),
    );
}

#[test]
fn gateway_api_session_affinity() {
    let mut canary = seed("001-linkerd.yaml");
    canary.spec.service.gateway_refs = vec![
        serde_json::from_value(json!({"name": "public", "namespace": "istio-ingress"}))
            .expect("ref"),
    ];
    canary
        .spec
        .analysis
        .as_mut()
        .expect("analysis")
        .session_affinity =
        Some(serde_json::from_value(json!({"cookieName": "flagger-cookie"})).expect("affinity"));
    canary.status = Some(canary_core::CanaryStatus {
        last_applied_spec: "rev-2".into(),
        ..Default::default()
    });
    let routes = Routes {
        primary: 90,
        canary: 10,
        mirrored: false,
    };
    let during = Kind::GatewayApi("v1")
        .build(&canary, routes)
        .expect("build");
    assert_eq!(
        Kind::GatewayApi("v1")
            .routes_of(&during, &canary)
            .expect("read"),
        routes
    );
    assert_eq!(
        during["spec"]["rules"].as_array().map(Vec::len),
        Some(2),
        "sticky rule, then the weighted rule"
    );
    snapshot("gatewayapi-v1-session-affinity", during);
}

#[test]
fn app_mesh_ab_cookie_and_gateway_api_mirroring() {
    let mut cookie = seed("002-appmesh-ab-cookie.yaml");
    cookie.metadata.uid = Some("uid-podinfo".into());
    let routes = Routes {
        primary: 0,
        canary: 100,
        mirrored: false,
    };
    let router = Kind::AppMesh.build(&cookie, routes).expect("build");
    let header = &router["spec"]["routes"][0]["httpRoute"]["match"]["headers"][0];
    assert_eq!(
        (header["name"].as_str(), header["match"]["regex"].as_str()),
        (Some("cookie"), Some("^(.*?;)?(canary=insider)(;.*)?$"))
    );
    snapshot("appmesh-v1beta2-ab-cookie", router);

    let mut bg = seed("001-linkerd.yaml");
    bg.spec.service.gateway_refs = vec![
        serde_json::from_value(
            json!({"group": "core", "kind": "Service", "name": "podinfo", "port": 9898}),
        )
        .expect("ref"),
    ];
    let a = bg.spec.analysis.as_mut().expect("analysis");
    a.iterations = Some(10);
    a.mirror = true;
    let mirrored = Routes {
        primary: 100,
        canary: 0,
        mirrored: true,
    };
    let route = Kind::GatewayApi("v1").build(&bg, mirrored).expect("build");
    assert_eq!(
        Kind::GatewayApi("v1").routes_of(&route, &bg).expect("read"),
        mirrored
    );
    snapshot("gatewayapi-v1-mirror", route);
}
