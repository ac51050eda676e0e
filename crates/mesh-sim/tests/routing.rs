//! mesh-sim's routing over the very objects flaggerd's routers write (canary-router's
//! committed snapshots), with the Services and Deployments of seed 001's bootstrap.

use std::collections::BTreeMap;

use mesh_sim::cluster::Snapshot;
use mesh_sim::routing::{Request, Route, resolve};
use serde_json::{Value, json};

fn snapshot_file(name: &str) -> Value {
    let path = format!(
        "{}/../canary-router/tests/snapshots/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("router snapshot");
    serde_yaml_ng::from_str(&text).expect("yaml")
}

fn service(name: &str, app: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "test"},
           "spec": {"selector": {"app": app}, "ports": [{"port": 9898}]}})
}

fn deployment(name: &str, image: &str, available: u64) -> Value {
    json!({"metadata": {"name": name, "namespace": "test"},
           "spec": {"template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "podinfod", "image": image}]}}},
           "status": {"availableReplicas": available}})
}

/// The generated Services and both Deployments (canary 6.0.1, primary 6.0.0).
fn cluster() -> Snapshot {
    Snapshot {
        services: vec![
            service("podinfo", "podinfo-primary"),
            service("podinfo-primary", "podinfo-primary"),
            service("podinfo-canary", "podinfo"),
        ],
        deployments: vec![
            deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1", 1),
            deployment("podinfo-primary", "ghcr.io/stefanprodan/podinfo:6.0.0", 2),
        ],
        ..Snapshot::default()
    }
}

fn get(host: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        host: host.into(),
        method: "GET".into(),
        path: "/".into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

/// The Deployment that answers, with a counter as the source of weighted choices.
fn route(s: &Snapshot, req: &Request, n: &mut u64) -> Route {
    let upstreams = BTreeMap::from([(
        "flagger-loadtester.test".to_string(),
        "127.0.0.1:1".to_string(),
    )]);
    resolve(s, &upstreams, req, &mut |m: u64| {
        *n += 1;
        (*n * 7919) % m
    })
}

fn answered_by(s: &Snapshot, req: &Request) -> String {
    match route(s, req, &mut 0) {
        Route::Backend { workload, .. } => workload.deployment,
        other => panic!("{req:?}: {other:?}"),
    }
}

/// How many of 1000 requests reach the canary.
fn canary_share(s: &Snapshot, req: &Request) -> usize {
    let mut n = 0;
    (0..1000)
        .filter(|_| {
            matches!(route(s, req, &mut n), Route::Backend { workload, .. } if workload.deployment == "podinfo")
        })
        .count()
}

#[test]
fn plain_services_select_ready_deployments() {
    let s = cluster();
    assert_eq!(
        answered_by(&s, &get("podinfo-canary.test:9898", &[])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &[])),
        "podinfo-primary"
    );
    assert_eq!(
        answered_by(&s, &get("podinfo-primary.test.svc.cluster.local:9898", &[])),
        "podinfo-primary"
    );
    // A bare name resolves when one namespace has it.
    assert_eq!(answered_by(&s, &get("podinfo-canary:9898", &[])), "podinfo");
    match route(&s, &get("podinfo-canary.test:9898", &[]), &mut 0) {
        Route::Backend { workload, .. } => {
            assert_eq!(workload.image, "ghcr.io/stefanprodan/podinfo:6.0.1");
            let rest = workload.pod.strip_prefix("podinfo-").expect("pod name");
            let (hash, suffix) = rest.split_once('-').expect("hash-suffix");
            assert!(hash.chars().all(|c| c.is_ascii_alphanumeric()), "{hash}");
            assert_eq!(suffix.len(), 5, "{}", workload.pod);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        route(&s, &get("flagger-loadtester.test", &[]), &mut 0),
        Route::Upstream("127.0.0.1:1".into())
    );
    let wrong_port = route(&s, &get("podinfo.test:80", &[]), &mut 0);
    assert!(
        matches!(&wrong_port, Route::NoRoute(e) if e.contains("has no port 80")),
        "{wrong_port:?}"
    );
    let unknown = route(&s, &get("nothing.test:9898", &[]), &mut 0);
    assert!(matches!(unknown, Route::NoRoute(_)), "{unknown:?}");

    let mut scaled = cluster();
    scaled.deployments[0]["status"]["availableReplicas"] = json!(0);
    let down = route(&scaled, &get("podinfo-canary.test:9898", &[]), &mut 0);
    assert!(
        matches!(&down, Route::Unavailable(e) if e.contains("no healthy upstream")),
        "{down:?}"
    );
}

#[test]
fn istio_header_and_cookie_matches_send_insiders_to_the_canary() {
    let mut s = cluster();
    s.istio = vec![snapshot_file("istio-ab-header")];
    assert_eq!(
        answered_by(&s, &get("app.example.com", &[("x-canary", "insider")])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &get("app.example.com", &[])),
        "podinfo-primary"
    );
    // Bound to the public gateway only, it does not route in-mesh traffic: podinfo's
    // Service (primary) answers, whatever the header.
    let inside = [("x-canary", "insider")];
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &inside)),
        "podinfo-primary"
    );
    // Bound to the mesh too, it does.
    s.istio[0]["spec"]["gateways"] =
        json!(["public-gateway.istio-system.svc.cluster.local", "mesh"]);
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &inside)),
        "podinfo"
    );

    s.istio = vec![snapshot_file("istio-ab-cookie")];
    let cookie = [("cookie", "session=1;canary=insider")];
    assert_eq!(answered_by(&s, &get("app.example.com", &cookie)), "podinfo");
    assert_eq!(
        answered_by(&s, &get("app.example.com", &[])),
        "podinfo-primary"
    );
    assert_eq!(
        answered_by(
            &s,
            &get("app.example.com", &[("cookie", "canary=outsider")])
        ),
        "podinfo-primary"
    );
}

#[test]
fn weights_split_traffic_in_proportion() {
    let mut s = cluster();
    let mut vs = snapshot_file("istio-ab-header");
    let http = vs["spec"]["http"].as_array_mut().expect("http");
    http.remove(0);
    http[0]["route"][0]["weight"] = json!(90);
    http[0]["route"][1]["weight"] = json!(10);
    s.istio = vec![vs];
    let share = canary_share(&s, &get("app.example.com", &[]));
    assert!((90..=110).contains(&share), "10% of 1000 gave {share}");

    let smi = snapshot_file("smi-v1alpha1-001");
    let mut s = cluster();
    s.splits = vec![smi["weight 5"].clone()];
    let share = canary_share(&s, &get("podinfo.test:9898", &[]));
    assert!((40..=60).contains(&share), "5% of 1000 gave {share}");
    s.splits = vec![smi["promoted"].clone()];
    assert_eq!(canary_share(&s, &get("podinfo.test:9898", &[])), 0);

    let gw = snapshot_file("gatewayapi-v1-001");
    let mut s = cluster();
    s.httproutes = vec![gw["weight 50"].clone()];
    let share = canary_share(&s, &get("podinfo.test:9898", &[]));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
}

#[test]
fn app_mesh_routes_by_priority_header_and_virtual_node() {
    let seed = snapshot_file("appmesh-v1beta2-002");
    let mut s = cluster();
    s.appmesh_services = seed["virtualServices"].as_array().expect("vs").clone();
    s.appmesh_nodes = seed["virtualNodes"].as_array().expect("nodes").clone();
    s.appmesh_routers = vec![snapshot_file("appmesh-v1beta2-ab-header")];
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &[("X-Canary", "insider")])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &[])),
        "podinfo-primary"
    );

    s.appmesh_routers = vec![snapshot_file("appmesh-v1beta2-ab-cookie")];
    let cookie = [("cookie", "canary=insider")];
    assert_eq!(
        answered_by(&s, &get("podinfo.test:9898", &cookie)),
        "podinfo"
    );

    s.appmesh_routers = vec![seed["weight 5"].clone()];
    let share = canary_share(&s, &get("podinfo.test:9898", &[]));
    assert!((40..=60).contains(&share), "5% of 1000 gave {share}");
    match route(&s, &get("podinfo.test:9898", &[]), &mut 0) {
        Route::Backend { via, .. } => assert!(
            via.starts_with("appmesh VirtualRouter test/podinfo"),
            "{via}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mirrors_and_session_cookies() {
    let mut s = cluster();
    s.istio = vec![snapshot_file("istio-mirror")];
    // mirrorPercentage 50: half the requests are copied to the canary; all are answered by
    // the primary.
    let mut n = 0;
    let mirrored = (0..1000)
        .filter(|_| match route(&s, &get("app.example.com", &[]), &mut n) {
            Route::Backend {
                workload, mirror, ..
            } => {
                assert_eq!(workload.deployment, "podinfo-primary");
                mirror.is_some_and(|m| m.deployment == "podinfo")
            }
            other => panic!("{other:?}"),
        })
        .count();
    assert!(
        (400..=600).contains(&mirrored),
        "50% of 1000 gave {mirrored}"
    );

    let mut s = cluster();
    let mut hr = snapshot_file("gatewayapi-v1-session-affinity");
    // Attached to the podinfo Service (GAMMA) rather than a gateway.
    hr["spec"]["parentRefs"] =
        json!([{"group": "core", "kind": "Service", "name": "podinfo", "port": 9898}]);
    s.httproutes = vec![hr];
    let host = "podinfo.test:9898";
    let mut n = 0;
    let cookies: Vec<Vec<(String, String)>> = (0..200)
        .filter_map(|_| match route(&s, &get(host, &[]), &mut n) {
            Route::Backend {
                workload,
                response_headers,
                ..
            } if workload.deployment == "podinfo" => Some(response_headers),
            _ => None,
        })
        .collect();
    assert!(!cookies.is_empty(), "10% of 200 requests reach the canary");
    let set = &cookies[0][0];
    assert_eq!(set.0, "Set-Cookie");
    let cookie = set.1.split(';').next().expect("cookie").to_string();
    // With the cookie, every request sticks to the canary.
    for _ in 0..20 {
        assert_eq!(
            answered_by(&s, &get(host, &[("Cookie", &cookie)])),
            "podinfo"
        );
    }
}

#[test]
fn ingress_gateway_services_route_by_host() {
    let gateway_service = |ns: &str, name: &str, selector: Value, labels: Value| {
        json!({"metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"selector": selector, "ports": [{"name": "http", "port": 80}]}})
    };
    let mut s = cluster();
    s.services.push(gateway_service(
        "istio-system",
        "istio-ingressgateway",
        json!({"app": "istio-ingressgateway", "istio": "ingressgateway"}),
        json!({"istio": "ingressgateway"}),
    ));
    s.services.push(gateway_service(
        "istio-ingress",
        "public-gateway-istio",
        json!({"gateway.networking.k8s.io/gateway-name": "public-gateway"}),
        json!({"gateway.networking.k8s.io/gateway-name": "public-gateway"}),
    ));
    s.istio = vec![snapshot_file("istio-004")["promoted"].clone()];
    let mut route_v1 = snapshot_file("gatewayapi-v1-001")["weight 50"].clone();
    route_v1["spec"]["parentRefs"] =
        json!([{"name": "public-gateway", "namespace": "istio-ingress"}]);
    route_v1["spec"]["hostnames"] = json!(["web.example.com"]);
    s.httproutes = vec![route_v1];

    // Istio's ingress gateway: the VirtualService bound to a gateway, by Host.
    let through_istio = get(
        "istio-ingressgateway.istio-system:80",
        &[("host", "app.example.com")],
    );
    assert_eq!(answered_by(&s, &through_istio), "podinfo-primary");
    let wrong_host = get(
        "istio-ingressgateway.istio-system:80",
        &[("host", "web.example.com")],
    );
    let refused = route(&s, &wrong_host, &mut 0);
    assert!(
        matches!(&refused, Route::NoRoute(e) if e.contains("has no route for host \"web.example.com\"")),
        "{refused:?}"
    );

    // A Gateway's Service: the HTTPRoutes attached to that Gateway, with their weights.
    let through_gateway = get(
        "public-gateway-istio.istio-ingress",
        &[("host", "web.example.com:80")],
    );
    let share = canary_share(&s, &through_gateway);
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    let not_istio = get(
        "public-gateway-istio.istio-ingress",
        &[("host", "app.example.com")],
    );
    assert!(matches!(route(&s, &not_istio, &mut 0), Route::NoRoute(_)));
    s.httproutes[0]["spec"]["parentRefs"][0]["name"] = json!("other-gateway");
    assert!(matches!(
        route(&s, &through_gateway, &mut 0),
        Route::NoRoute(_)
    ));
}

#[test]
fn ingress_nginx_routes_by_host_path_weight_header_and_cookie() {
    let mut s = cluster();
    s.services.push(json!({"metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        "spec": {"selector": {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
                 "ports": [{"name": "http", "port": 80}]}}));
    let steps = snapshot_file("nginx-weights");
    let mut main = steps["weight 50"].clone();
    main["metadata"]["name"] = json!("podinfo");
    main["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "nginx"});
    main["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("podinfo");
    s.ingresses = vec![main, steps["weight 50"].clone()];
    let through = |headers: &[(&str, &str)]| {
        let mut all = vec![("host", "app.example.com")];
        all.extend_from_slice(headers);
        get("ingress-nginx-controller.ingress-nginx", &all)
    };

    // canary-weight 50: about half; every request labelled with the main Ingress.
    let share = canary_share(&s, &through(&[]));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    let mut n = 0;
    let labels: Vec<_> = (0..50)
        .filter_map(|_| match route(&s, &through(&[]), &mut n) {
            Route::Backend {
                ingress, workload, ..
            } => Some((workload.deployment, ingress.expect("labelled"))),
            _ => None,
        })
        .collect();
    for (deployment, hit) in &labels {
        assert_eq!(
            (
                hit.ingress.as_str(),
                hit.service.as_str(),
                hit.path.as_str()
            ),
            ("podinfo", "podinfo", "/")
        );
        let canary = if deployment == "podinfo" {
            "test-podinfo-canary-80"
        } else {
            ""
        };
        assert_eq!(hit.canary, canary, "{deployment}");
    }
    // Another host, or a path no Ingress has, is not routed.
    let other = get(
        "ingress-nginx-controller.ingress-nginx",
        &[("host", "web.example.com")],
    );
    assert!(matches!(route(&s, &other, &mut 0), Route::NoRoute(_)));
    // /docs goes to its own Service (which this cluster lacks: 503, routed by the Ingress).
    let mut docs = through(&[]);
    docs.path = "/docs/api".into();
    assert!(matches!(route(&s, &docs, &mut 0), Route::Unavailable(e) if e.contains("docs")));

    // Weight 0 with a header: the header decides, then the cookie, then the weight.
    let canary_ann = &mut s.ingresses[1]["metadata"]["annotations"];
    canary_ann["nginx.ingress.kubernetes.io/canary-weight"] = json!("0");
    canary_ann["nginx.ingress.kubernetes.io/canary-by-header"] = json!("x-canary");
    canary_ann["nginx.ingress.kubernetes.io/canary-by-header-value"] = json!("insider");
    canary_ann["nginx.ingress.kubernetes.io/canary-by-cookie"] = json!("canary");
    assert_eq!(
        answered_by(&s, &through(&[("x-canary", "insider")])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &through(&[("x-canary", "outsider")])),
        "podinfo-primary"
    );
    // A Go client's `-host app.example.com` is the proxy request's authority: an Ingress host
    // that is no Service reaches ingress-nginx all the same.
    let by_host = get("app.example.com", &[("x-canary", "insider")]);
    assert_eq!(answered_by(&s, &by_host), "podinfo");
    assert_eq!(
        answered_by(&s, &through(&[("cookie", "a=b; canary=always")])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &through(&[("cookie", "canary=never")])),
        "podinfo-primary"
    );
    assert_eq!(canary_share(&s, &through(&[])), 0);
    let canary_ann = &mut s.ingresses[1]["metadata"]["annotations"];
    canary_ann
        .as_object_mut()
        .expect("map")
        .remove("nginx.ingress.kubernetes.io/canary-by-header-value");
    canary_ann["nginx.ingress.kubernetes.io/canary-by-header-pattern"] = json!("^ins.*");
    assert_eq!(
        answered_by(&s, &through(&[("x-canary", "inside")])),
        "podinfo"
    );
    assert_eq!(
        answered_by(&s, &through(&[("x-canary", "outside")])),
        "podinfo-primary"
    );
}

#[test]
fn contour_routes_through_the_root_proxy_and_its_include_by_weight_and_header() {
    let mut s = cluster();
    s.services.push(
        json!({"metadata": {"name": "envoy", "namespace": "projectcontour"},
        "spec": {"selector": {"app": "envoy"}, "ports": [{"name": "http", "port": 80}]}}),
    );
    let root = json!({"metadata": {"name": "podinfo-ingress", "namespace": "test"},
        "spec": {"virtualhost": {"fqdn": "app.example.com"},
                 "includes": [{"name": "podinfo", "namespace": "test"}]}});
    let weights = snapshot_file("contour-weights");
    s.httpproxies = vec![root, weights["weight 50"].clone()];
    let through = |headers: &[(&str, &str)]| {
        let mut all = vec![("host", "app.example.com")];
        all.extend_from_slice(headers);
        get("envoy.projectcontour", &all)
    };
    let share = canary_share(&s, &through(&[]));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    match route(&s, &through(&[]), &mut 0) {
        Route::Backend {
            workload, upstream, ..
        } => {
            let upstream = upstream.expect("labelled with its Envoy cluster");
            let want = if workload.deployment == "podinfo" {
                "test_podinfo-canary_9898"
            } else {
                "test_podinfo-primary_9898"
            };
            assert_eq!(upstream.name, want);
        }
        other => panic!("{other:?}"),
    }
    // The weight 0 step leaves the canary's weight out: it gets nothing.
    s.httpproxies[1] = weights["weight 0"].clone();
    assert_eq!(canary_share(&s, &through(&[])), 0);
    // A/B: the header route wins over the prefix route, others stay on the primary.
    s.httpproxies[1] = snapshot_file("contour-ab");
    let insider = [
        ("x-canary", "insider"),
        ("x-region", "eu-west"),
        ("cookie", "canary=insider"),
    ];
    assert_eq!(answered_by(&s, &through(&insider)), "podinfo");
    assert_eq!(answered_by(&s, &through(&insider[..2])), "podinfo-primary");
    assert_eq!(canary_share(&s, &through(&[])), 0);
    // `hey -host app.example.com` names the host as the authority: Contour serves it too.
    assert_eq!(
        answered_by(&s, &get("app.example.com", &insider)),
        "podinfo"
    );
    // Another host has no root proxy.
    let other = get("envoy.projectcontour", &[("host", "web.example.com")]);
    assert!(matches!(route(&s, &other, &mut 0), Route::NoRoute(_)));
}

#[test]
fn traefik_routes_by_ingress_route_rule_through_the_weighted_traefik_service() {
    let mut s = cluster();
    s.services.push(json!({"metadata": {"name": "traefik", "namespace": "traefik"},
        "spec": {"selector": {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-traefik"},
                 "ports": [{"name": "web", "port": 80}]}}));
    s.ingressroutes = vec![json!({"metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {"entryPoints": ["web"], "routes": [
            {"match": "Host(`app.example.com`)", "kind": "Rule",
             "services": [{"name": "podinfo", "kind": "TraefikService"}]},
            {"match": "Host(`app.example.com`) && PathPrefix(`/api`) && Header(`x-team`, `blue`)", "kind": "Rule",
             "services": [{"name": "podinfo-primary", "port": 9898}]}]}})];
    let weights = snapshot_file("traefik-weights");
    s.traefikservices = vec![weights["weight 50"].clone()];
    let through = |path: &str, headers: &[(&str, &str)]| {
        let mut all = vec![("host", "app.example.com")];
        all.extend_from_slice(headers);
        let mut r = get("traefik.traefik", &all);
        r.path = path.into();
        r
    };
    let share = canary_share(&s, &through("/", &[]));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    let mut n = 0;
    for _ in 0..20 {
        match route(&s, &through("/", &[]), &mut n) {
            Route::Backend {
                workload, upstream, ..
            } => {
                let name = upstream.expect("labelled").name;
                let want = format!(
                    "test-{}-9898@kubernetescrd",
                    if workload.deployment == "podinfo" {
                        "podinfo-canary"
                    } else {
                        "podinfo-primary"
                    }
                );
                assert_eq!(name, want);
            }
            other => panic!("{other:?}"),
        }
    }
    // The longer rule wins when it holds: /api with x-team: blue goes to the primary alone.
    assert_eq!(
        canary_share(&s, &through("/api/info", &[("x-team", "blue")])),
        0
    );
    let share = canary_share(&s, &through("/api/info", &[("x-team", "green")]));
    assert!(
        (450..=550).contains(&share),
        "the short rule holds: {share}"
    );
    // Weight 0: the canary is not listed; `-host app.example.com` reaches Traefik too.
    s.traefikservices = vec![weights["weight 0"].clone()];
    assert_eq!(canary_share(&s, &get("app.example.com", &[])), 0);
    s.traefikservices = vec![weights["all canary"].clone()];
    assert_eq!(canary_share(&s, &through("/", &[])), 1000);
    let other = get("traefik.traefik", &[("host", "web.example.com")]);
    assert!(matches!(route(&s, &other, &mut 0), Route::NoRoute(_)));
}

#[test]
fn skipper_routes_by_the_canary_ingress_weights_and_predicates() {
    let mut s = cluster();
    s.services.push(
        json!({"metadata": {"name": "skipper-ingress", "namespace": "kube-system"},
        "spec": {"selector": {"application": "skipper-ingress"}, "ports": [{"port": 80}]}}),
    );
    let steps = snapshot_file("skipper-weights");
    let mut main = steps["weight 50"].clone();
    main["metadata"] = json!({"name": "podinfo", "namespace": "test",
        "annotations": {"kubernetes.io/ingress.class": "skipper"}});
    main["spec"]["rules"][0]["http"]["paths"] = json!([{"path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "podinfo", "port": {"number": 80}}}}]);
    let nginx_one = json!({"metadata": {"name": "other", "namespace": "test",
        "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "podinfo-canary", "port": {"number": 80}}}}]}}]}});
    s.ingresses = vec![main, steps["weight 50"].clone(), nginx_one];
    let through = |headers: &[(&str, &str)]| {
        let mut all = vec![("host", "app.example.com")];
        all.extend_from_slice(headers);
        get("skipper-ingress.kube-system", &all)
    };
    // The snapshot's predicate asks for X-Env: prod; with it the canary Ingress (Weight(100))
    // splits 50/50, without it the original Ingress answers through the apex Service.
    let prod = [("x-env", "prod")];
    let share = canary_share(&s, &through(&prod));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    assert_eq!(canary_share(&s, &through(&[])), 0);
    match route(&s, &through(&prod), &mut 0) {
        Route::Backend {
            workload, upstream, ..
        } => {
            let svc = if workload.deployment == "podinfo" {
                "podinfo_canary"
            } else {
                "podinfo_primary"
            };
            assert_eq!(
                upstream.expect("labelled").name,
                format!("kube_test__podinfo_canary__app_example_com_____{svc}")
            );
        }
        other => panic!("{other:?}"),
    }
    // Weight 0: False() disables the canary Ingress.
    s.ingresses[1] = steps["weight 0"].clone();
    assert_eq!(canary_share(&s, &through(&prod)), 0);
    // An Ingress of another class is not Skipper's.
    s.ingresses.truncate(2);
    s.ingresses[0]["metadata"]["annotations"]["kubernetes.io/ingress.class"] = json!("nginx");
    assert_eq!(canary_share(&s, &through(&prod)), 0);
}

#[test]
fn apisix_routes_by_priority_host_path_and_method_then_weights() {
    let mut s = cluster();
    s.services.push(json!({"metadata": {"name": "apisix-gateway", "namespace": "apisix"},
        "spec": {"selector": {"app.kubernetes.io/name": "apisix", "app.kubernetes.io/instance": "apisix"},
                 "ports": [{"name": "apisix-gateway", "port": 80}]}}));
    let steps = snapshot_file("apisix-weights");
    let mut original = steps["weight 50"].clone();
    original["metadata"] = json!({"name": "podinfo", "namespace": "test"});
    original["spec"]["http"][0]["priority"] = json!(0);
    if let Some(m) = original["spec"]["http"][0]["match"].as_object_mut() {
        m.remove("methods");
    }
    original["spec"]["http"][0]["backends"] =
        json!([{"serviceName": "podinfo", "servicePort": 9898}]);
    s.apisixroutes = vec![original, steps["weight 50"].clone()];
    let through = |method: &str| {
        let mut r = get("apisix-gateway.apisix", &[("host", "app.example.com")]);
        r.method = method.into();
        r
    };
    let share = canary_share(&s, &through("GET"));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    match route(&s, &through("GET"), &mut 0) {
        Route::Backend { upstream, .. } => assert_eq!(
            upstream.expect("labelled").name,
            "test_podinfo-podinfo-canary_method"
        ),
        other => panic!("{other:?}"),
    }
    // The copy only matches GET: a POST takes the original route, to the apex Service.
    assert_eq!(answered_by(&s, &through("POST")), "podinfo-primary");
    s.apisixroutes[1] = steps["weight 0"].clone();
    assert_eq!(canary_share(&s, &get("app.example.com", &[])), 0);
    let other = get("apisix-gateway.apisix", &[("host", "web.example.com")]);
    assert!(matches!(route(&s, &other, &mut 0), Route::NoRoute(_)));
}

#[test]
fn kuma_splits_requests_for_the_traffic_routes_destination() {
    let mut s = cluster();
    let steps = snapshot_file("kuma-weights");
    s.trafficroutes = vec![steps["weight 50"].clone()];
    let req = get("podinfo.test:9898", &[]);
    let share = canary_share(&s, &req);
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    match route(&s, &req, &mut 0) {
        Route::Backend {
            workload, upstream, ..
        } => {
            let svc = if workload.deployment == "podinfo" {
                "podinfo-canary"
            } else {
                "podinfo-primary"
            };
            assert_eq!(
                upstream.expect("labelled").name,
                format!("{svc}_test_svc_9898")
            );
        }
        other => panic!("{other:?}"),
    }
    s.trafficroutes = vec![steps["promoted"].clone()];
    assert_eq!(canary_share(&s, &req), 0);
    // The canary Service itself is not the route's destination.
    assert_eq!(
        answered_by(&s, &get("podinfo-canary.test:9898", &[])),
        "podinfo"
    );
}

#[test]
fn gloo_routes_through_the_virtual_service_its_route_table_and_upstreams() {
    let mut s = cluster();
    s.services.push(
        json!({"metadata": {"name": "gateway-proxy", "namespace": "gloo-system"},
        "spec": {"selector": {"gloo": "gateway-proxy"}, "ports": [{"name": "http", "port": 80}]}}),
    );
    s.gloo_virtualservices = vec![
        json!({"metadata": {"name": "podinfo", "namespace": "gloo-system"},
        "spec": {"virtualHost": {"domains": ["app.example.com"], "routes": [
            {"matchers": [{"prefix": "/"}], "delegateAction": {"ref": {"name": "podinfo", "namespace": "test"}}}]}}}),
    ];
    let steps = snapshot_file("gloo-weights");
    s.gloo_upstreams = vec![
        steps["primary upstream"].clone(),
        steps["canary upstream without upstreamRef"].clone(),
    ];
    s.routetables = vec![steps["weight 50"].clone()];
    let through = |headers: &[(&str, &str)]| {
        let mut all = vec![("host", "app.example.com")];
        all.extend_from_slice(headers);
        get("gateway-proxy.gloo-system", &all)
    };
    let share = canary_share(&s, &through(&[]));
    assert!((450..=550).contains(&share), "50% of 1000 gave {share}");
    match route(&s, &through(&[]), &mut 0) {
        Route::Backend {
            workload, upstream, ..
        } => {
            let want = match workload.deployment.as_str() {
                "podinfo" => "test-podinfo-canaryupstream-9898_test",
                _ => "test-podinfo-primaryupstream-9898_test",
            };
            assert_eq!(upstream.expect("labelled").name, want);
        }
        other => panic!("{other:?}"),
    }
    // The weight 0 step leaves the canary's weight out: it gets nothing.
    s.routetables = vec![steps["weight 0"].clone()];
    assert_eq!(canary_share(&s, &through(&[])), 0);
    // A/B: the header and method route first, the fallback route to the primary after it.
    s.routetables = vec![snapshot_file("gloo-ab")];
    let insider = [("x-canary", "insider"), ("x-region", "eu.west")];
    assert_eq!(answered_by(&s, &through(&insider)), "podinfo");
    assert_eq!(answered_by(&s, &through(&insider[..1])), "podinfo-primary");
    let mut post = through(&insider);
    post.method = "POST".into();
    assert_eq!(answered_by(&s, &post), "podinfo-primary");
    assert_eq!(
        answered_by(&s, &get("app.example.com", &insider)),
        "podinfo",
        "`hey -host` names the host as the authority"
    );
    // Another host has no VirtualService; a missing RouteTable leaves no route.
    assert!(matches!(
        route(
            &s,
            &get(
                "gateway-proxy.gloo-system",
                &[("host", "other.example.com")]
            ),
            &mut 0
        ),
        Route::NoRoute(_)
    ));
    s.routetables.clear();
    assert!(matches!(
        route(&s, &through(&[]), &mut 0),
        Route::NoRoute(_)
    ));
}

#[test]
fn knative_routes_by_the_services_traffic_to_its_revisions() {
    // The objects mesh-sim's Knative controller makes for two images of the Service.
    let mut s = Snapshot::default();
    let mut ksvc = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1", "generation": 1},
        "spec": {"template": {"spec": {"containers": [
            {"image": "ghcr.io/stefanprodan/podinfo:6.0.0", "ports": [{"containerPort": 9898}]}]}}}});
    for image in ["6.0.0", "6.0.1"] {
        ksvc["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!(format!("ghcr.io/stefanprodan/podinfo:{image}"));
        let plan = mesh_sim::knative::plan(&s, &ksvc);
        for (res, obj) in plan.creates {
            match res.kind.as_str() {
                "Revision" => s.revisions.push(obj),
                "Deployment" => {
                    let mut d = obj;
                    d["status"] =
                        json!({"availableReplicas": 1, "readyReplicas": 1, "replicas": 1});
                    s.deployments.push(d);
                }
                _ => s.services.push(obj),
            }
        }
    }
    ksvc["spec"]["traffic"] = json!([{"latestRevision": true, "percent": 30},
        {"revisionName": "podinfo-00001", "percent": 70}]);
    let plan = mesh_sim::knative::plan(&s, &ksvc);
    let (.., status) = plan
        .statuses
        .iter()
        .find(|(r, ..)| r.kind == "Service")
        .expect("the Service's status");
    ksvc["status"] = status.clone();
    s.knative_services = vec![ksvc];
    let via = |host: &str| get(host, &[]);
    let mut n = 0;
    let newer = (0..1000)
        .filter(|_| {
            matches!(route(&s, &via("podinfo.test"), &mut n),
            Route::Backend { workload, .. } if workload.deployment == "podinfo-00002-deployment")
        })
        .count();
    assert!((250..=350).contains(&newer), "30% of 1000 gave {newer}");
    match route(&s, &via("podinfo.test.example.com"), &mut 0) {
        Route::Backend {
            workload, upstream, ..
        } => {
            let rev = workload
                .deployment
                .trim_end_matches("-deployment")
                .to_string();
            assert_eq!(upstream.expect("labelled").name, format!("test/{rev}"));
        }
        other => panic!("{other:?}"),
    }
    // Through Kourier's gateway by Host.
    s.services.push(json!({"metadata": {"name": "kourier", "namespace": "kourier-system"},
        "spec": {"selector": {"app": "3scale-kourier-gateway"}, "ports": [{"name": "http2", "port": 80}]}}));
    assert!(matches!(
        route(
            &s,
            &get(
                "kourier.kourier-system",
                &[("host", "podinfo.test.example.com")]
            ),
            &mut 0
        ),
        Route::Backend { .. }
    ));
}
