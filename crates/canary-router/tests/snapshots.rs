//! Snapshots of each provider's routing objects for the seeds' canaries, in
//! `tests/snapshots/` (mesh-sim's tests route by them). A snapshot that differs fails with a
//! diff; `UPDATE_EXPECT=1 cargo test -p canary-router --test snapshots` rewrites them for
//! review.

use canary_api::Canary;
use canary_core::Routes;
use canary_core::spec::{HttpMatch, StringMatch};
use canary_router::{Kind, apisix, gloo, istio, nginx, skipper};
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

/// [`header_match`] with an `x-region` header matched by `prefix`.
fn header_and_region_match(prefix: &str) -> Vec<HttpMatch> {
    let mut m = header_match();
    m[0].headers.insert(
        "x-region".into(),
        StringMatch {
            prefix: Some(prefix.into()),
            ..Default::default()
        },
    );
    m
}

/// Every request to the canary, as in an A/B test.
const ALL_CANARY: Routes = Routes {
    primary: 0,
    canary: 100,
    mirrored: false,
};

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

/// The Ingress Flagger's NGINX e2e test installs: host `app.example.com`, everything to the
/// apex Service `podinfo` on port 80, and a path to another Service left as it is.
fn podinfo_ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"},
            "annotations": {
                "kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/canary-weight": "30",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            }},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [
            {"pathType": "Prefix", "path": "/", "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}},
            {"pathType": "Prefix", "path": "/docs", "backend": {"service": {"name": "docs", "port": {"name": "http"}}}},
        ]}}]},
    })
}

fn nginx_canary() -> Canary {
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("nginx".into());
    canary.spec.ingress_ref = Some(
        serde_json::from_value(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
        )
        .expect("ref"),
    );
    canary.spec.service.port = 80;
    canary
}

#[test]
fn nginx_canary_ingress_at_each_weight() {
    let canary = nginx_canary();
    let prefix = nginx::DEFAULT_PREFIX;
    let mut out = serde_json::Map::new();
    for (label, routes) in weights() {
        let obj =
            nginx::canary_ingress(&canary, &podinfo_ingress(), routes, prefix).expect("build");
        assert_eq!(
            nginx::routes_of(&obj, &canary, prefix).expect("read back"),
            routes,
            "{label}"
        );
        out.insert(label.into(), obj);
    }
    snapshot("nginx-weights", Value::Object(out));
}

#[test]
fn nginx_ab_testing_by_header_and_cookie() {
    let prefix = nginx::DEFAULT_PREFIX;
    let regex = {
        let mut m = HttpMatch::default();
        m.headers.insert(
            "user-agent".into(),
            StringMatch {
                regex: Some(".*Firefox.*".into()),
                ..Default::default()
            },
        );
        vec![m]
    };
    let named_cookie = {
        let mut m = HttpMatch::default();
        m.headers.insert(
            "cookie".into(),
            StringMatch {
                exact: Some("canary".into()),
                ..Default::default()
            },
        );
        vec![m]
    };
    let mut out = serde_json::Map::new();
    for (label, m) in [
        ("header", header_match()),
        ("pattern", regex),
        ("cookie", named_cookie),
    ] {
        let mut canary = nginx_canary();
        let a = canary.spec.analysis.as_mut().expect("analysis");
        a.r#match = m;
        a.iterations = Some(10);
        let all_canary = Routes {
            primary: 0,
            canary: 100,
            mirrored: false,
        };
        let obj =
            nginx::canary_ingress(&canary, &podinfo_ingress(), all_canary, prefix).expect("build");
        assert_eq!(
            nginx::routes_of(&obj, &canary, prefix).expect("read"),
            all_canary
        );
        out.insert(label.into(), obj["metadata"]["annotations"].clone());
        // Promotion sends everything back to the primary: the header and cookie go.
        let back = nginx::canary_ingress(&canary, &podinfo_ingress(), Routes::default(), prefix)
            .expect("build");
        assert_eq!(
            nginx::routes_of(&back, &canary, prefix).expect("read"),
            Routes::default()
        );
        assert!(
            back["metadata"]["annotations"]
                .as_object()
                .expect("annotations")
                .keys()
                .all(|k| !k.contains("canary-by")),
            "{back}"
        );
    }
    snapshot("nginx-ab", Value::Object(out));
}

#[test]
fn nginx_refuses_an_ingress_without_the_apex_backend_and_a_canary_without_ingress_ref() {
    let canary = nginx_canary();
    let mut other = podinfo_ingress();
    other["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("web");
    let err = nginx::canary_ingress(
        &canary,
        &other,
        Routes::default(),
        "nginx.ingress.kubernetes.io",
    )
    .expect_err("no apex backend");
    assert_eq!(
        err.to_string(),
        "ingress podinfo.test: no path of spec.rules has the backend service podinfo; the canary ingress needs one to send to podinfo-canary"
    );
    let mut without = nginx_canary();
    without.spec.ingress_ref = None;
    let err = nginx::canary_ingress(&without, &podinfo_ingress(), Routes::default(), "x")
        .expect_err("no ingressRef");
    assert!(err.to_string().starts_with("spec.ingressRef:"), "{err}");
    let mut bad =
        nginx::canary_ingress(&canary, &podinfo_ingress(), Routes::default(), "p").expect("build");
    bad["metadata"]["annotations"]["p/canary-weight"] = json!("150");
    assert_eq!(
        nginx::routes_of(&bad, &canary, "p")
            .expect_err("out of range")
            .to_string(),
        "ingress podinfo-canary: annotation p/canary-weight is \"150\", not a weight from 0 to 100"
    );
}

fn contour_canary() -> Canary {
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("contour".into());
    canary.spec.service.gateways.clear();
    canary.spec.service.hosts.clear();
    canary
}

#[test]
fn contour_http_proxy_at_each_weight() {
    let mut canary = contour_canary();
    canary.spec.service.timeout = Some("15s".into());
    canary.spec.service.retries = Some(
        serde_json::from_value(
            json!({"attempts": 3, "perTryTimeout": "5s", "retryOn": "5xx, gateway-error"}),
        )
        .expect("retries"),
    );
    let mut all = steps(Kind::Contour, &canary);
    let options = canary_router::Options {
        ingress_class: "contour-internal".into(),
        ..Default::default()
    };
    let classed = Kind::Contour
        .build_with(&canary, Routes::default(), &options)
        .expect("build");
    all["with -ingress-class"] = classed["spec"]["ingressClassName"].clone();
    snapshot("contour-weights", all);
}

#[test]
fn contour_ab_testing_by_headers() {
    let mut canary = contour_canary();
    let a = canary.spec.analysis.as_mut().expect("analysis");
    a.r#match = header_and_region_match("eu-");
    a.r#match.extend(cookie_match());
    a.iterations = Some(10);
    let all_canary = ALL_CANARY;
    let obj = Kind::Contour.build(&canary, all_canary).expect("build");
    assert_eq!(
        Kind::Contour.routes_of(&obj, &canary).expect("read"),
        all_canary
    );
    let prefixes = obj["spec"]["routes"][0]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter(|c| c["prefix"].is_string())
        .count();
    assert_eq!(prefixes, 1, "Contour allows one prefix condition per route");
    snapshot("contour-ab", obj);
}

#[test]
fn traefik_weighted_service_at_each_weight() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("traefik".into());
    let mut all = steps(Kind::Traefik, &canary);
    let full = Routes {
        primary: 0,
        canary: 100,
        mirrored: false,
    };
    let obj = Kind::Traefik.build(&canary, full).expect("build");
    assert_eq!(Kind::Traefik.routes_of(&obj, &canary).expect("read"), full);
    all["all canary"] = obj;
    snapshot("traefik-weights", all);
}

#[test]
fn skipper_canary_ingress_at_each_weight() {
    let mut canary = nginx_canary();
    canary.spec.provider = Some("skipper".into());
    let mut original = podinfo_ingress();
    original["metadata"]["annotations"] = json!({
        "kubernetes.io/ingress.class": "skipper",
        "zalando.org/skipper-predicate": "Header(\"X-Env\", \"prod\") && Weight(100)",
    });
    let mut out = serde_json::Map::new();
    for (label, routes) in weights() {
        let obj = skipper::canary_ingress(&canary, &original, routes).expect("build");
        assert_eq!(
            skipper::routes_of(&obj, &canary).expect("read back"),
            routes,
            "{label} round-trips"
        );
        out.insert(label.into(), obj);
    }
    snapshot("skipper-weights", Value::Object(out));
}

fn podinfo_apisix_route() -> Value {
    json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
        "spec": {"http": [
            {"name": "docs", "match": {"hosts": ["app.example.com"], "paths": ["/docs/*"]},
             "backends": [{"serviceName": "docs", "servicePort": 80}]},
            {"name": "method", "match": {"hosts": ["app.example.com"], "methods": ["GET"], "paths": ["/*"]},
             "backends": [{"serviceName": "podinfo", "servicePort": 80, "resolveGranularity": "service"}],
             "plugins": [{"name": "prometheus", "enable": true, "config": {"disable": false, "prefer_name": true}}]}]}})
}

#[test]
fn apisix_route_copy_at_each_weight() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("apisix".into());
    canary.spec.route_ref = serde_json::from_value(
        json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo"}),
    )
    .ok();
    let mut out = serde_json::Map::new();
    for (label, routes) in weights() {
        let obj = apisix::canary_route(&canary, &podinfo_apisix_route(), routes).expect("build");
        assert_eq!(
            apisix::routes_of(&obj, &canary).expect("read back"),
            routes,
            "{label} round-trips"
        );
        out.insert(label.into(), obj);
    }
    snapshot("apisix-weights", Value::Object(out));
    let mut two = podinfo_apisix_route();
    if let Some(b) = two["spec"]["http"][1]["backends"].as_array_mut() {
        b.push(json!({"serviceName": "other", "servicePort": 80}));
    }
    let err = apisix::canary_route(&canary, &two, Routes::default()).expect_err("two backends");
    assert_eq!(
        err.to_string(),
        "apisixroute podinfo.test: http route method has 2 backends; only one is supported"
    );
}

#[test]
fn kuma_traffic_route_at_each_weight() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("kuma".into());
    canary
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("kuma.io/mesh".into(), "payments".into());
    snapshot("kuma-weights", steps(Kind::Kuma, &canary));
}

fn podinfo_service(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"selector": {"app": app}, "ports": [{"port": 9898}]}})
}

#[test]
fn gloo_route_table_and_upstreams() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("gloo".into());
    let mut all = steps(Kind::Gloo, &canary);
    let config = json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
    "metadata": {"name": "config-upstream", "namespace": "gloo-system"},
    "spec": {
        "static": {"hosts": [{"addr": "example.com", "port": 80}]},
        "labels": {"team": "payments", "app.kubernetes.io/part-of": "shop"},
        "connectionConfig": {"connectTimeout": "2s", "maxRequestsPerConnection": 51},
        "httpProxyHostname": "podinfo.example.com",
        "loadBalancerConfig": {"roundRobin": {"slowStartConfig": {"slowStartWindow": "2m", "minWeightPercent": 5}}},
    }});
    let primary = podinfo_service("podinfo-primary", "podinfo-primary");
    all["primary upstream"] = gloo::upstream(&canary, gloo::Side::Primary, &primary, Some(&config));
    let bare = podinfo_service("podinfo-canary", "podinfo");
    all["canary upstream without upstreamRef"] =
        gloo::upstream(&canary, gloo::Side::Canary, &bare, None);
    snapshot("gloo-weights", all);
}

#[test]
fn gloo_ab_testing_by_headers_and_method() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("gloo".into());
    let a = canary.spec.analysis.as_mut().expect("analysis");
    let mut m = header_and_region_match("eu.");
    m[0].method = Some(StringMatch {
        exact: Some("GET".into()),
        ..Default::default()
    });
    a.r#match = m;
    a.iterations = Some(10);
    let all_canary = ALL_CANARY;
    let obj = Kind::Gloo.build(&canary, all_canary).expect("build");
    assert_eq!(
        Kind::Gloo.routes_of(&obj, &canary).expect("read"),
        all_canary
    );
    let fallback = &obj["spec"]["routes"][1];
    assert!(fallback["matchers"].is_null(), "the fallback matches all");
    snapshot("gloo-ab", obj);
}

#[test]
fn gloo_reads_no_weights_from_a_route_table_without_two_destinations() {
    let mut canary = contour_canary();
    canary.spec.provider = Some("gloo".into());
    let rt = json!({"spec": {"routes": [{"routeAction": {"multi": {"destinations": [
        {"destination": {"upstream": {"name": "test-podinfo-primaryupstream-9898", "namespace": "test"}}, "weight": 100}]}}}]}});
    assert_eq!(
        Kind::Gloo.routes_of(&rt, &canary).unwrap_err().to_string(),
        "routetable podinfo.test: spec.routes[0].routeAction.multi.destinations has fewer than 2 destinations"
    );
}

#[test]
fn knative_traffic_at_each_weight() {
    let mut all = serde_json::Map::new();
    for (label, routes) in weights() {
        all.insert(
            label.into(),
            json!({"spec": {"traffic": canary_router::knative::traffic("podinfo-00001", routes)}}),
        );
    }
    snapshot("knative-traffic", Value::Object(all));
}
