//! The routers against kube-sim with the mesh CRDs: objects created, weights round-trip,
//! fields users add survive a reconcile, finalize sends traffic back to the primary.

use canary_api::Canary;
use canary_core::Routes;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

async fn cluster() -> (kube_sim::KubeSim, kube::Client) {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in [
        include_str!("../../mesh-sim/crds/meshes.yaml"),
        include_str!("../../mesh-sim/crds/contour.yaml"),
        include_str!("../../mesh-sim/crds/traefik.yaml"),
        include_str!("../../mesh-sim/crds/apisix.yaml"),
        include_str!("../../mesh-sim/crds/gloo.yaml"),
        include_str!("../../mesh-sim/crds/knative.yaml"),
    ]
    .concat()
    .split("\n---\n")
    .skip(1)
    {
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(doc).expect("crd");
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create crd");
    }
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
    )
    .await
    .expect("ns");
    (sim, client)
}

fn seed(file: &str) -> Canary {
    let path = format!(
        "{}/../canary-core/tests/fixtures/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut c = Canary::from_yaml(&std::fs::read_to_string(path).expect("fixture")).expect("seed");
    c.metadata.namespace = Some("test".into());
    c.metadata.uid = Some("uid-podinfo".into());
    c
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The Istio objects of kind `kind` in the test namespace.
fn istio_api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "test",
        &resource("networking.istio.io", "v1beta1", kind, plural),
    )
}

#[tokio::test]
async fn istio_objects_are_created_and_weights_round_trip() {
    let (_sim, client) = cluster().await;
    let canary = seed("004-istio.yaml");
    let router = canary_router::for_provider("istio", client.clone(), None).expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let vs_api = istio_api(&client, "VirtualService", "virtualservices");
    let dr_api = istio_api(&client, "DestinationRule", "destinationrules");
    assert!(
        vs_api.get("podinfo").await.is_ok(),
        "virtualservice podinfo"
    );
    for name in ["podinfo-primary", "podinfo-canary"] {
        assert!(dr_api.get(name).await.is_ok(), "destinationrule {name}");
    }
    assert_eq!(
        router.get_routes(&canary).await.expect("routes"),
        Routes::default()
    );
    for w in [5, 10, 50] {
        let routes = Routes {
            primary: 100 - w,
            canary: w,
            mirrored: false,
        };
        router.set_routes(&canary, routes).await.expect("set");
        assert_eq!(router.get_routes(&canary).await.expect("get"), routes);
    }

    // A user's annotation and a field flaggerd does not own survive a reconcile.
    let user =
        json!({"metadata": {"annotations": {"team": "payments"}}, "spec": {"exportTo": ["."]}});
    vs_api
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&user))
        .await
        .expect("user edit");
    router.reconcile(&canary).await.expect("reconcile");
    let vs = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    assert_eq!(vs["metadata"]["annotations"]["team"], "payments");
    assert_eq!(vs["spec"]["exportTo"], json!(["."]));
    assert_eq!(
        router.get_routes(&canary).await.expect("get").canary,
        50,
        "reconcile keeps the weights"
    );

    router.finalize(&canary).await.expect("finalize");
    assert_eq!(
        router.get_routes(&canary).await.expect("get"),
        Routes::default()
    );
}

#[tokio::test]
async fn linkerd_traffic_split_and_gateway_api_routes_round_trip() {
    let (_sim, client) = cluster().await;
    let canary = seed("001-linkerd.yaml");
    let smi = canary_router::for_provider("linkerd", client.clone(), None).expect("router");
    smi.reconcile(&canary).await.expect("reconcile");
    let routes = Routes {
        primary: 95,
        canary: 5,
        mirrored: false,
    };
    smi.set_routes(&canary, routes).await.expect("set");
    assert_eq!(smi.get_routes(&canary).await.expect("get"), routes);
    let ts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &resource(
            "split.smi-spec.io",
            "v1alpha1",
            "TrafficSplit",
            "trafficsplits",
        ),
    );
    let ts = serde_json::to_value(ts.get("podinfo").await.expect("trafficsplit")).expect("json");
    assert_eq!(ts["spec"]["service"], "podinfo");

    let mut gw = canary.clone();
    gw.spec.service.gateway_refs = vec![
        serde_json::from_value(
            json!({"group": "core", "kind": "Service", "name": "podinfo", "port": 9898}),
        )
        .expect("ref"),
    ];
    let route = canary_router::for_provider("gatewayapi:v1", client.clone(), None).expect("router");
    route.reconcile(&gw).await.expect("reconcile");
    route
        .set_routes(
            &gw,
            Routes {
                primary: 50,
                canary: 50,
                mirrored: false,
            },
        )
        .await
        .expect("set");
    assert_eq!(route.get_routes(&gw).await.expect("get").canary, 50);
}

#[tokio::test]
async fn an_unknown_provider_is_a_clear_error() {
    let (_sim, client) = cluster().await;
    let unknown = canary_router::for_provider("consul", client, None)
        .err()
        .expect("unknown");
    assert!(
        unknown
            .to_string()
            .starts_with("unknown provider \"consul\"; expected one of"),
        "{unknown}"
    );
}

#[tokio::test]
async fn app_mesh_creates_the_objects_seed_002_lists() {
    let (_sim, client) = cluster().await;
    let canary = seed("002-appmesh-v1beta2.yaml");
    let selector = canary_router::appmesh::PodSelector {
        label: "app".into(),
        value: "podinfo".into(),
    };
    let router = canary_router::for_provider("appmesh:v1beta2", client.clone(), Some(selector))
        .expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let names = |kind: &str, plural: &str| {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "test",
            &resource("appmesh.k8s.aws", "v1beta2", kind, plural),
        );
        async move {
            let mut n: Vec<String> = api
                .list(&Default::default())
                .await
                .expect("list")
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(
        names("VirtualNode", "virtualnodes").await,
        ["podinfo-canary", "podinfo-primary"]
    );
    assert_eq!(
        names("VirtualRouter", "virtualrouters").await,
        ["podinfo", "podinfo-canary"]
    );
    assert_eq!(
        names("VirtualService", "virtualservices").await,
        ["podinfo", "podinfo-canary"]
    );
    let routes = Routes {
        primary: 95,
        canary: 5,
        mirrored: false,
    };
    router.set_routes(&canary, routes).await.expect("set");
    assert_eq!(router.get_routes(&canary).await.expect("get"), routes);
    let without = canary_router::for_provider("appmesh", client, None).expect("router");
    let err = without
        .reconcile(&canary)
        .await
        .expect_err("needs the selector");
    assert!(err.to_string().contains("selector label"), "{err}");
}

/// Flagger's revertOnDeletion with a VirtualService the user made before the canary: it is
/// never owned by the canary (deleting the canary must not delete it), its spec is kept in
/// `flagger.kubernetes.io/original-configuration`, and finalize puts that spec back.
#[tokio::test]
async fn a_users_virtual_service_is_taken_over_without_ownership_and_restored() {
    let (_sim, client) = cluster().await;
    let canary = seed("004-istio.yaml");
    let vs_api = istio_api(&client, "VirtualService", "virtualservices");
    let users = json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"team": "payments"}},
        "spec": {"hosts": ["podinfo.example.com"], "http": [{"route": [{"destination": {"host": "podinfo-legacy"}}]}]},
    });
    vs_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(users.clone()).expect("vs"),
        )
        .await
        .expect("the user's virtual service");
    // And a DestinationRule of the user's for the canary's host.
    let dr_api = istio_api(&client, "DestinationRule", "destinationrules");
    let users_rule = json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "podinfo-canary", "namespace": "test"},
        "spec": {"host": "podinfo-canary.test.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
    });
    dr_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(users_rule.clone()).expect("dr"),
        )
        .await
        .expect("the user's destination rule");
    let router = canary_router::for_provider("istio", client.clone(), None).expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    router
        .set_routes(
            &canary,
            Routes {
                primary: 90,
                canary: 10,
                mirrored: false,
            },
        )
        .await
        .expect("set");
    let rule = serde_json::to_value(dr_api.get("podinfo-canary").await.expect("dr")).expect("json");
    assert_ne!(rule["spec"], users_rule["spec"], "taken over: {rule}");
    let vs = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    assert!(
        vs["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the user's object is never owned by the canary: {vs}"
    );
    assert_eq!(vs["metadata"]["labels"]["team"], "payments");
    let kept: serde_json::Value = serde_json::from_str(
        vs["metadata"]["annotations"][canary_router::ORIGINAL]
            .as_str()
            .expect("original kept"),
    )
    .expect("json");
    assert_eq!(kept, users["spec"]);
    assert_eq!(router.get_routes(&canary).await.expect("routes").canary, 10);

    router.finalize(&canary).await.expect("finalize");
    let vs = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    assert_eq!(vs["spec"], users["spec"], "the user's spec is back intact");
    assert_eq!(vs["metadata"]["labels"]["team"], "payments");
    let rule = serde_json::to_value(dr_api.get("podinfo-canary").await.expect("dr")).expect("json");
    assert_eq!(
        rule["spec"], users_rule["spec"],
        "the user's rule is back intact"
    );
}

#[tokio::test]
async fn a_canary_made_again_under_its_name_keeps_its_predecessors_objects_as_its_own() {
    let (_sim, client) = cluster().await;
    let first = seed("004-istio.yaml");
    let router = canary_router::for_provider("istio", client.clone(), None).expect("router");
    router.reconcile(&first).await.expect("reconcile");
    let vs_api = istio_api(&client, "VirtualService", "virtualservices");
    // Deleted and applied again before the garbage collector ran: a new uid.
    let mut again = first.clone();
    again.metadata.uid = Some("uid-podinfo-2".into());
    router.reconcile(&again).await.expect("reconcile");
    let vs = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    let owners: Vec<&str> = vs["metadata"]["ownerReferences"]
        .as_array()
        .expect("owned")
        .iter()
        .filter_map(|r| r["uid"].as_str())
        .collect();
    assert_eq!(
        owners,
        ["uid-podinfo-2"],
        "the stale reference is replaced: {vs}"
    );
    assert!(
        vs["metadata"]["annotations"][canary_router::ORIGINAL].is_null(),
        "its own object is not taken over as a user's: {vs}"
    );
    // A Canary of another name does not own it.
    let mut other = first.clone();
    other.metadata.name = Some("frontend".into());
    let obj = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    assert!(canary_router::owned_by(&obj, &again));
    assert!(!canary_router::owned_by(&obj, &other));
}

#[tokio::test]
async fn in_another_cluster_its_own_objects_are_not_taken_for_a_users() {
    let (_sim, client) = cluster().await;
    let canary = seed("004-istio.yaml");
    let router = canary_router::for_provider_remote(
        "istio",
        client.clone(),
        client.clone(),
        None,
        &Default::default(),
    )
    .expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    for w in [10, 20] {
        let routes = Routes {
            primary: 100 - w,
            canary: w,
            mirrored: false,
        };
        router.set_routes(&canary, routes).await.expect("set");
    }
    let vs_api = istio_api(&client, "VirtualService", "virtualservices");
    let vs = serde_json::to_value(vs_api.get("podinfo").await.expect("vs")).expect("json");
    assert!(vs["metadata"]["ownerReferences"].is_null(), "{vs}");
    assert!(
        vs["metadata"]["annotations"][canary_router::ORIGINAL].is_null(),
        "flaggerd's own object carries no original configuration: {vs}"
    );
    router.finalize(&canary).await.expect("finalize");
    assert_eq!(
        router.get_routes(&canary).await.expect("routes"),
        Routes::default(),
        "finalize sends traffic back to the primary"
    );
}

#[tokio::test]
async fn nginx_clones_the_ingress_and_moves_weights_with_its_annotations() {
    use k8s_openapi::api::networking::v1::Ingress;
    let (_sim, client) = cluster().await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "test");
    let original: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "labels": {"app": "podinfo"},
            "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{"pathType": "Prefix", "path": "/",
            "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}}]}}]}
    }))
    .expect("ingress");
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("nginx".into());
    canary.spec.ingress_ref = serde_json::from_value(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
    )
    .ok();
    let options = canary_router::Options {
        ingress_annotations_prefix: "custom.nginx.org".into(),
        ..Default::default()
    };
    let router = canary_router::for_provider_cached("nginx", client.clone(), None, None, &options)
        .expect("router");
    let missing = router.reconcile(&canary).await.expect_err("no ingress yet");
    assert_eq!(
        missing.to_string(),
        "spec.ingressRef.name: ingress podinfo.test not found"
    );
    ingresses
        .create(&PostParams::default(), &original)
        .await
        .expect("create");
    router.reconcile(&canary).await.expect("reconcile");
    let clone = ingresses.get("podinfo-canary").await.expect("clone");
    let annotations = clone.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("custom.nginx.org/canary")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations
            .get("custom.nginx.org/canary-weight")
            .map(String::as_str),
        Some("0")
    );
    let backend = &clone
        .spec
        .as_ref()
        .expect("spec")
        .rules
        .as_ref()
        .expect("rules")[0]
        .http
        .as_ref()
        .expect("http")
        .paths[0]
        .backend;
    assert_eq!(
        backend.service.as_ref().map(|s| s.name.as_str()),
        Some("podinfo-canary")
    );

    let half = Routes {
        primary: 50,
        canary: 50,
        mirrored: false,
    };
    router.set_routes(&canary, half).await.expect("set");
    assert_eq!(router.get_routes(&canary).await.expect("get"), half);
    // A reconcile keeps the weight, and brings a label the user adds to the original.
    let label = json!({"metadata": {"labels": {"team": "web"}}});
    ingresses
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label");
    router.reconcile(&canary).await.expect("reconcile");
    assert_eq!(router.get_routes(&canary).await.expect("get"), half);
    let clone = ingresses.get("podinfo-canary").await.expect("clone");
    assert_eq!(
        clone
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("web")
    );
    router.finalize(&canary).await.expect("finalize");
    assert_eq!(
        router.get_routes(&canary).await.expect("get"),
        Routes::default()
    );
}

#[tokio::test]
async fn contour_http_proxy_moves_weights_keeps_a_users_fields_and_its_class() {
    let (_sim, client) = cluster().await;
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("contour".into());
    let options = canary_router::Options {
        ingress_class: "contour".into(),
        ..Default::default()
    };
    let router =
        canary_router::for_provider_cached("contour", client.clone(), None, None, &options)
            .expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let proxies: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &resource("projectcontour.io", "v1", "HTTPProxy", "httpproxies"),
    );
    let proxy = proxies.get("podinfo").await.expect("httpproxy");
    assert_eq!(proxy.data["spec"]["ingressClassName"], "contour");
    assert_eq!(
        router.get_routes(&canary).await.expect("routes"),
        Routes::default()
    );
    let step = Routes {
        primary: 80,
        canary: 20,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    // A user's field survives, and a reconcile keeps the split in progress.
    let user = json!({"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy", "metadata": {"name": "podinfo"},
        "spec": {"virtualhost": {"fqdn": "podinfo.example.com"}}});
    proxies
        .patch(
            "podinfo",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&user),
        )
        .await
        .expect("user field");
    router.reconcile(&canary).await.expect("reconcile");
    assert_eq!(router.get_routes(&canary).await.expect("routes"), step);
    let proxy = proxies.get("podinfo").await.expect("httpproxy");
    assert_eq!(
        proxy.data["spec"]["virtualhost"]["fqdn"],
        "podinfo.example.com"
    );
    router
        .set_routes(&canary, Routes::default())
        .await
        .expect("back");
    let proxy = proxies.get("podinfo").await.expect("httpproxy");
    let canary_svc = &proxy.data["spec"]["routes"][0]["services"][1];
    assert_eq!(canary_svc["name"], "podinfo-canary");
    assert!(
        canary_svc["weight"].is_null(),
        "weight 0 is left out: {canary_svc}"
    );
}

#[tokio::test]
async fn traefik_service_lists_the_canary_only_while_it_has_traffic() {
    let (_sim, client) = cluster().await;
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("traefik".into());
    let router = canary_router::for_provider("traefik", client.clone(), None).expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let services: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &resource(
            "traefik.io",
            "v1alpha1",
            "TraefikService",
            "traefikservices",
        ),
    );
    let names = |obj: &DynamicObject| -> Vec<String> {
        obj.data["spec"]["weighted"]["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{}={}", s["name"].as_str().unwrap_or("?"), s["weight"]))
            .collect()
    };
    let ts = services.get("podinfo").await.expect("traefikservice");
    assert_eq!(names(&ts), ["podinfo-primary=100"]);
    let step = Routes {
        primary: 90,
        canary: 10,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    router
        .reconcile(&canary)
        .await
        .expect("reconcile keeps the split");
    assert_eq!(router.get_routes(&canary).await.expect("routes"), step);
    let ts = services.get("podinfo").await.expect("traefikservice");
    assert_eq!(names(&ts), ["podinfo-primary=90", "podinfo-canary=10"]);
    router
        .set_routes(&canary, Routes::default())
        .await
        .expect("back");
    let ts = services.get("podinfo").await.expect("traefikservice");
    assert_eq!(names(&ts), ["podinfo-primary=100"]);
}

#[tokio::test]
async fn skipper_weights_the_clone_and_deletes_it_on_finalize() {
    use k8s_openapi::api::networking::v1::Ingress;
    let (_sim, client) = cluster().await;
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "test");
    let original: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "podinfo", "annotations": {"kubernetes.io/ingress.class": "skipper"}},
        "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{"pathType": "Prefix", "path": "/",
            "backend": {"service": {"name": "podinfo", "port": {"number": 9898}}}}]}}]}
    }))
    .expect("ingress");
    ingresses
        .create(&PostParams::default(), &original)
        .await
        .expect("create");
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("skipper".into());
    canary.spec.ingress_ref = serde_json::from_value(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo"}),
    )
    .ok();
    let router = canary_router::for_provider("skipper", client.clone(), None).expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let annotation = |i: &Ingress, k: &str| {
        i.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k).cloned())
            .unwrap_or_default()
    };
    let clone = ingresses.get("podinfo-canary").await.expect("clone");
    assert_eq!(
        annotation(&clone, "zalando.org/skipper-predicate"),
        "False()"
    );
    let step = Routes {
        primary: 70,
        canary: 30,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    router
        .reconcile(&canary)
        .await
        .expect("reconcile keeps the split");
    assert_eq!(router.get_routes(&canary).await.expect("routes"), step);
    let clone = ingresses.get("podinfo-canary").await.expect("clone");
    assert_eq!(
        annotation(&clone, "zalando.org/backend-weights"),
        r#"{"podinfo-canary":30,"podinfo-primary":70}"#
    );
    assert_eq!(
        annotation(&clone, "zalando.org/skipper-predicate"),
        "Weight(100)"
    );
    router.finalize(&canary).await.expect("finalize");
    assert!(
        ingresses
            .get_opt("podinfo-canary")
            .await
            .expect("get")
            .is_none(),
        "Skipper's finalize deletes the canary Ingress"
    );
    assert!(ingresses.get_opt("podinfo").await.expect("get").is_some());
}

#[tokio::test]
async fn kuma_traffic_route_is_cluster_scoped_marked_and_weighted() {
    let (_sim, client) = cluster().await;
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("kuma".into());
    let router = canary_router::for_provider("kuma", client.clone(), None).expect("router");
    router.reconcile(&canary).await.expect("reconcile");
    let routes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("kuma.io", "v1alpha1", "TrafficRoute", "trafficroutes"),
    );
    let tr = routes.get("podinfo").await.expect("trafficroute");
    assert_eq!(tr.data["mesh"], "default");
    assert!(tr.metadata.owner_references.is_none());
    assert_eq!(
        tr.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("flaggerd.app/canary"))
            .map(String::as_str),
        Some("test/podinfo")
    );
    let step = Routes {
        primary: 60,
        canary: 40,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    router
        .reconcile(&canary)
        .await
        .expect("reconcile keeps the split");
    assert_eq!(router.get_routes(&canary).await.expect("routes"), step);
    let tr = routes.get("podinfo").await.expect("trafficroute");
    assert!(
        tr.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("flagger.kubernetes.io/original-configuration")),
        "its own TrafficRoute is not taken for a user's"
    );
}

#[tokio::test]
async fn kuma_refuses_another_namespaces_route_restores_a_users_and_deletes_its_own() {
    let (_sim, client) = cluster().await;
    let ar = resource("kuma.io", "v1alpha1", "TrafficRoute", "trafficroutes");
    let routes: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("kuma".into());
    canary.spec.revert_on_deletion = true;
    let router = canary_router::for_provider("kuma", client.clone(), None).expect("router");
    // A user's TrafficRoute of that name: taken over, then restored by finalize.
    let users: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "mesh": "payments",
        "metadata": {"name": "podinfo"},
        "spec": {"sources": [{"match": {"kuma.io/service": "*"}}],
                 "destinations": [{"match": {"kuma.io/service": "podinfo_test_svc_9898"}}],
                 "conf": {"split": [{"weight": 100, "destination": {"kuma.io/service": "legacy_test_svc_9898"}}]}}
    }))
    .expect("tr");
    routes
        .create(&PostParams::default(), &users)
        .await
        .expect("user's route");
    router.reconcile(&canary).await.expect("take over");
    let step = Routes {
        primary: 80,
        canary: 20,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    let taken = routes.get("podinfo").await.expect("tr");
    assert!(
        taken
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("flagger.kubernetes.io/original-configuration")),
        "the user's spec is kept across steps"
    );
    // Another namespace's canary of the same name is refused, not fought over.
    let mut other = canary.clone();
    other.metadata.namespace = Some("other".into());
    let err = router
        .reconcile(&other)
        .await
        .expect_err("another canary's route");
    assert!(
        err.to_string().contains("routes the canary test/podinfo"),
        "{err}"
    );
    router.finalize(&canary).await.expect("finalize");
    let restored = routes.get("podinfo").await.expect("tr");
    assert_eq!(
        restored.data["spec"]["conf"]["split"][0]["destination"]["kuma.io/service"],
        "legacy_test_svc_9898"
    );
    assert_eq!(restored.data["mesh"], "payments");
    // Its own: deleted by finalize.
    routes
        .delete("podinfo", &Default::default())
        .await
        .expect("delete");
    router.reconcile(&canary).await.expect("create its own");
    router.finalize(&canary).await.expect("finalize");
    assert!(routes.get_opt("podinfo").await.expect("get").is_none());
}

#[tokio::test]
async fn gloo_writes_upstreams_from_the_services_and_weights_the_route_table() {
    let (_sim, client) = cluster().await;
    let mut canary = seed("004-istio.yaml");
    canary.spec.provider = Some("gloo".into());
    canary.spec.upstream_ref = Some(
        serde_json::from_value(json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
            "name": "config-upstream", "namespace": "test"}))
        .expect("ref"),
    );
    let router = canary_router::for_provider("gloo", client.clone(), None).expect("router");
    // The Services and the config Upstream come first: without them, errors that name them.
    let err = router.reconcile(&canary).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "spec.upstreamRef.name: upstream config-upstream.test not found"
    );
    let upstreams: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &canary_router::gloo::upstream_resource(),
    );
    let config = json!({"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
        "metadata": {"name": "config-upstream"},
        "spec": {"static": {"hosts": [{"addr": "example.com", "port": 80}]},
            "connectionConfig": {"connectTimeout": "2s", "maxRequestsPerConnection": 51},
            "loadBalancerConfig": {"roundRobin": {"slowStartConfig": {"slowStartWindow": "2m", "minWeightPercent": 5}}}}});
    let pp = PatchParams::apply("user");
    upstreams
        .patch("config-upstream", &pp, &Patch::Apply(&config))
        .await
        .expect("config upstream");
    let err = router.reconcile(&canary).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "service podinfo-primary.test not found: Gloo's upstream needs it"
    );
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "test");
    for (name, app) in [
        ("podinfo-primary", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
    ] {
        let svc = json!({"metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 9898}]}});
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(svc).expect("svc"),
            )
            .await
            .expect("service");
    }
    router.reconcile(&canary).await.expect("reconcile");
    let canary_up = upstreams
        .get("test-podinfo-canaryupstream-9898")
        .await
        .expect("canary upstream");
    assert_eq!(canary_up.data["spec"]["kube"]["selector"]["app"], "podinfo");
    assert_eq!(
        canary_up.data["spec"]["connectionConfig"]["maxRequestsPerConnection"],
        51
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("routes"),
        Routes::default()
    );
    let step = Routes {
        primary: 70,
        canary: 30,
        mirrored: false,
    };
    router.set_routes(&canary, step).await.expect("set");
    // A change of the config Upstream reaches both upstreams; the split in progress stays.
    let mut changed = config.clone();
    changed["spec"]["loadBalancerConfig"]["roundRobin"]["slowStartConfig"]["minWeightPercent"] =
        json!(20);
    upstreams
        .patch("config-upstream", &pp, &Patch::Apply(&changed))
        .await
        .expect("config change");
    router.reconcile(&canary).await.expect("reconcile");
    assert_eq!(router.get_routes(&canary).await.expect("routes"), step);
    for name in [
        "test-podinfo-primaryupstream-9898",
        "test-podinfo-canaryupstream-9898",
    ] {
        let up = upstreams.get(name).await.expect("upstream");
        assert_eq!(
            up.data["spec"]["loadBalancerConfig"]["roundRobin"]["slowStartConfig"]["minWeightPercent"],
            20,
            "{name}"
        );
    }
    router.finalize(&canary).await.expect("finalize");
    assert_eq!(
        router.get_routes(&canary).await.expect("routes"),
        Routes::default()
    );
    let tables: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "test",
        &canary_router::gloo::route_table_resource(),
    );
    let rt = tables.get("podinfo").await.expect("route table");
    let canary_dest = &rt.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"][1];
    assert!(
        canary_dest["weight"].is_null(),
        "weight 0 is left out: {canary_dest}"
    );
}
