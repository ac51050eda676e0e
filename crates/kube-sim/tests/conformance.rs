//! kube-sim against the real kube-rs client: each API convention clients rely on.
//!
//! The same tests run against a real API server: `cargo xtask conformance` starts etcd,
//! kube-apiserver and the garbage collector (built from xtask/controlplane) and runs them
//! with `CONFORMANCE_KUBECONFIG` set, skipping the `sim_only_*` tests, which drive
//! kube-sim's own controls (compaction, fault injection, its workload simulator). Each test
//! works in a namespace of its own, so they can share one server. Where kube-sim and the
//! real server differ, docs/kube-sim.md says so.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube_sim::{FaultConfig, KubeSim, Options, WorkloadConfig};
use serde_json::json;

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    }))
    .expect("deployment")
}

/// Where a test runs: an in-process kube-sim or, with `CONFORMANCE_KUBECONFIG` set, the real
/// API server it names; `ns` is the test's own namespace, created for it.
struct Target {
    _sim: Option<KubeSim>,
    client: kube::Client,
    ns: String,
}

async fn target(test: &str) -> Target {
    let (sim, client) = match std::env::var_os("CONFORMANCE_KUBECONFIG") {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .expect("config");
            (None, kube::Client::try_from(config).expect("client"))
        }
        None => {
            let (sim, client) = sim().await;
            (Some(sim), client)
        }
    };
    let ns: String = test.replace('_', "-").chars().take(63).collect();
    let ns = ns.trim_end_matches('-').to_string();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"),
        )
        .await
        .expect("the test's namespace");
    Target {
        _sim: sim,
        client,
        ns,
    }
}

/// Polls `check` every 50 ms for at most 10 s; whether it became true. Real controllers
/// (the garbage collector) act after the request that triggers them returns.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn sim() -> (KubeSim, kube::Client) {
    let sim = KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    (sim, client)
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_stale_update_gives_409_conflict() {
    let t = target("a_stale_update_gives_409_conflict").await;
    let client = t.client.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).expect("cm");
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &first)
        .await
        .expect("first update");
    let mut stale = created;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api_error(
        api.replace("c", &PostParams::default(), &stale)
            .await
            .expect_err("stale"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn not_found_and_already_exists_are_status_errors() {
    let t = target("not_found_and_already_exists_are_status_errors").await;
    let client = t.client.clone();
    let api: Api<Deployment> = Api::namespaced(client, &t.ns);
    let err = api_error(api.get("missing").await.expect_err("missing"));
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "deployments.apps \"missing\" not found");
    api.create(&PostParams::default(), &deployment("a", "x:1"))
        .await
        .expect("create");
    let err = api_error(
        api.create(&PostParams::default(), &deployment("a", "x:1"))
            .await
            .expect_err("dup"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let nowhere: Api<ConfigMap> = Api::namespaced(api.clone().into_client(), "nowhere");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).expect("cm");
    let err = api_error(
        nowhere
            .create(&PostParams::default(), &cm)
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn status_writes_keep_spec_and_generation_and_spec_writes_bump_it() {
    let t = target("status_writes_keep_spec_and_generation_and_spec_writes_bump_it").await;
    let client = t.client.clone();
    let api: Api<Deployment> = Api::namespaced(client, &t.ns);
    api.create(&PostParams::default(), &deployment("d", "x:1"))
        .await
        .expect("create");
    let d = api.get("d").await.expect("get");
    let generation = d.metadata.generation;
    let status =
        json!({"status": {"observedGeneration": 1, "replicas": 7}, "spec": {"replicas": 9}});
    let after = api
        .patch_status("d", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    assert_eq!(after.status.as_ref().and_then(|s| s.replicas), Some(7));
    assert_eq!(
        after.spec.replicas,
        Some(1),
        "the status endpoint ignores spec"
    );
    assert_eq!(
        after.metadata.generation, generation,
        "a status write keeps the generation"
    );
    let main = json!({"status": {"replicas": 0}, "metadata": {"labels": {"x": "y"}}});
    let after = api
        .patch("d", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .expect("labels");
    assert_eq!(
        after.status.as_ref().and_then(|s| s.replicas),
        Some(7),
        "the main endpoint ignores status"
    );
    assert_eq!(
        after.metadata.generation, generation,
        "a metadata change keeps the generation"
    );
    let spec =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}}});
    let after = api
        .patch("d", &PatchParams::default(), &Patch::Strategic(&spec))
        .await
        .expect("spec");
    assert_eq!(after.metadata.generation, generation.map(|g| g + 1));
}

#[tokio::test]
async fn a_watch_resumes_from_a_resource_version_without_losing_or_repeating_events() {
    let t =
        target("a_watch_resumes_from_a_resource_version_without_losing_or_repeating_events").await;
    let client = t.client.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let mk = |n: &str| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).expect("cm")
    };
    api.create(&PostParams::default(), &mk("a"))
        .await
        .expect("a");
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    for n in ["b", "c", "d"] {
        api.create(&PostParams::default(), &mk(n))
            .await
            .expect("create");
    }
    api.delete("b", &DeleteParams::default())
        .await
        .expect("delete");
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = stream.try_next().await.expect("event") {
        match ev {
            WatchEvent::Added(cm) => {
                seen.push(format!("+{}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(cm) => {
                seen.push(format!("-{}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(cm) => {
                seen.push(format!("~{}", cm.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
        if seen.len() == 4 {
            break;
        }
    }
    assert_eq!(seen, ["+b", "+c", "+d", "-b"]);
}

#[tokio::test]
async fn sim_only_an_expired_resource_version_answers_410_and_the_watcher_relists() {
    let (sim, client) = sim().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mk = |n: &str| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).expect("cm")
    };
    api.create(&PostParams::default(), &mk("a"))
        .await
        .expect("a");
    let rv = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    api.create(&PostParams::default(), &mk("b"))
        .await
        .expect("b");
    let compact = reqwest_like_post(&sim.url(), "/kube-sim/compact").await;
    assert_eq!(compact, 200);
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    assert!(sim.faults().counters().gone >= 1);

    // kube-rs's watcher, with its watches dropped after each event and the history
    // compacted, keeps relisting and ends up with every object.
    sim.faults().set(FaultConfig {
        watch_drop_after_events: Some(1),
        ..Default::default()
    });
    let store_events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(store_events);
        while let Some(Ok(cm)) = s.next().await {
            seen2
                .lock()
                .expect("lock")
                .insert(cm.metadata.name.unwrap_or_default());
        }
    });
    for n in ["c", "d", "e"] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api.create(&PostParams::default(), &mk(n))
            .await
            .expect("create");
        reqwest_like_post(&sim.url(), "/kube-sim/compact").await;
    }
    let want: std::collections::BTreeSet<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for _ in 0..100 {
        if *seen.lock().expect("lock") == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(*seen.lock().expect("lock"), want);
    assert!(sim.faults().counters().watch_drops >= 1);
}

#[tokio::test]
async fn garbage_collection_deletes_owned_objects_and_orphan_keeps_them() {
    let t = target("garbage_collection_deletes_owned_objects_and_orphan_keeps_them").await;
    let client = t.client.clone();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &t.ns);
    let cms: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    for owner in ["o1", "o2"] {
        let d = deploys
            .create(&PostParams::default(), &deployment(owner, "x:1"))
            .await
            .expect("owner");
        let uid = d.metadata.uid.expect("uid");
        let cm = json!({"metadata": {"name": format!("{owner}-child"), "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": uid, "controller": true}]}});
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(cm).expect("cm"),
        )
        .await
        .expect("child");
    }
    deploys
        .delete("o1", &DeleteParams::background())
        .await
        .expect("delete");
    deploys
        .delete("o2", &DeleteParams::orphan())
        .await
        .expect("delete");
    // The garbage collector works after the deletion returns (kube-sim at once, a real one
    // within moments): wait for the owned object to go and the orphan to lose its owner.
    assert!(
        eventually(|| async { cms.get_opt("o1-child").await.expect("get").is_none() }).await,
        "owned object collected"
    );
    let orphaned = eventually(|| async {
        let orphan = cms.get("o2-child").await.expect("orphan kept");
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    assert!(orphaned, "the orphan keeps no owner reference");
    assert!(
        eventually(|| async { deploys.get_opt("o2").await.expect("get").is_none() }).await,
        "the orphaning owner is deleted"
    );
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let t = target("finalizers_hold_a_deletion_until_removed").await;
    let client = t.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let cm = json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(cm).expect("cm"),
    )
    .await
    .expect("create");
    cms.delete("f", &DeleteParams::default())
        .await
        .expect("delete");
    let held = cms.get("f").await.expect("still there");
    assert!(held.metadata.deletion_timestamp.is_some());
    let add = json!({"metadata": {"finalizers": ["example.com/hold", "new"]}});
    let err = api_error(
        cms.patch("f", &PatchParams::default(), &Patch::Merge(&add))
            .await
            .expect_err("no new finalizers"),
    );
    assert_eq!(err.code, 422);
    let clear = json!({"metadata": {"finalizers": null}});
    cms.patch("f", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .expect("clear");
    assert!(cms.get_opt("f").await.expect("get").is_none());
}

#[tokio::test]
async fn server_side_apply_reports_conflicts_between_managers() {
    let t = target("server_side_apply_reports_conflicts_between_managers").await;
    let client = t.client.clone();
    let api: Api<Deployment> = Api::namespaced(client, &t.ns);
    let mut d = serde_json::to_value(deployment("s", "x:1")).expect("json");
    d["apiVersion"] = json!("apps/v1");
    d["kind"] = json!("Deployment");
    api.patch("s", &PatchParams::apply("alice"), &Patch::Apply(&d))
        .await
        .expect("alice applies");
    d["spec"]["replicas"] = json!(3);
    let err = api_error(
        api.patch("s", &PatchParams::apply("bob"), &Patch::Apply(&d))
            .await
            .expect_err("conflict"),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message
            .contains("conflict with \"alice\": .spec.replicas"),
        "{}",
        err.message
    );
    let forced = api
        .patch("s", &PatchParams::apply("bob").force(), &Patch::Apply(&d))
        .await
        .expect("force");
    assert_eq!(forced.spec.replicas, Some(3));
}

#[tokio::test]
async fn selectors_filter_lists() {
    let t = target("selectors_filter_lists").await;
    let client = t.client.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    for (n, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let cm = json!({"metadata": {"name": n, "labels": {"tier": tier}}});
        api.create(
            &PostParams::default(),
            &serde_json::from_value(cm).expect("cm"),
        )
        .await
        .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=web"))
                .await
                .expect("list")
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier notin (web)"))
                .await
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c"))
                .await
                .expect("list")
        ),
        ["c"]
    );
}

#[tokio::test]
async fn a_crd_is_served_with_its_status_subresource() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    let t = target("a_crd_is_served_with_its_status_subresource").await;
    let client = t.client.clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &canary_api::Canary::crd())
        .await
        .expect("crd");
    // A real server serves a new CRD once it is Established, moments after its creation.
    let established = eventually(|| async {
        let crd = crds.get("canaries.flagger.app").await.expect("crd");
        crd.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    })
    .await;
    assert!(established, "the CRD became Established");
    let yaml = include_str!("fixtures/canary-001.yaml");
    let mut canary = canary_api::Canary::from_yaml(yaml).expect("seed");
    canary.metadata.namespace = Some(t.ns.clone());
    let api_test: Api<canary_api::Canary> = Api::namespaced(client, &t.ns);
    let created = eventually(|| async {
        api_test
            .create(&PostParams::default(), &canary)
            .await
            .is_ok()
    })
    .await;
    assert!(created, "the Canary is created");
    let created = api_test.get("podinfo").await.expect("canary");
    assert_eq!(created.metadata.generation, Some(1));
    let status = json!({"status": {"phase": "Progressing", "canaryWeight": 10}});
    let after = api_test
        .patch_status("podinfo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    assert_eq!(
        after.status.as_ref().and_then(|s| s.phase),
        Some(canary_core::Phase::Progressing)
    );
    assert_eq!(after.metadata.generation, Some(1));
    assert_eq!(after.spec, canary.spec);
}

#[tokio::test]
async fn sim_only_workloads_roll_out_and_the_hpa_keeps_replicas_in_bounds() {
    let sim = KubeSim::start_with(Options {
        workloads: WorkloadConfig {
            startup: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("sim");
    let client = sim.client().await.expect("client");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("w", "x:1"))
        .await
        .expect("create");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "w"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"}, "minReplicas": 2, "maxReplicas": 4}});
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client, "default");
    hpas.create(
        &PostParams::default(),
        &serde_json::from_value(hpa).expect("hpa"),
    )
    .await
    .expect("hpa");
    let ready = |d: &Deployment| {
        let s = d.status.clone().unwrap_or_default();
        d.spec.replicas == Some(2)
            && s.available_replicas == Some(2)
            && s.observed_generation == d.metadata.generation
    };
    let mut last = None;
    for _ in 0..60 {
        let d = deploys.get("w").await.expect("get");
        if ready(&d) {
            last = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last.is_some(),
        "deployment became ready with the HPA's 2 replicas"
    );
    deploys
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to zero");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = deploys.get("w").await.expect("get");
    assert_eq!(
        d.spec.replicas,
        Some(0),
        "the HPA leaves a target at zero alone"
    );
    assert_eq!(d.status.and_then(|s| s.available_replicas), Some(0));
}

#[tokio::test]
async fn sim_only_a_never_ready_revision_reports_progress_deadline_exceeded() {
    let (_sim, client) = sim().await;
    let deploys: Api<Deployment> = Api::namespaced(client, "default");
    let mut d = serde_json::to_value(deployment("n", "x:1")).expect("json");
    d["spec"]["progressDeadlineSeconds"] = json!(1);
    d["spec"]["template"]["metadata"]["annotations"] = json!({kube_sim::NEVER_READY: "true"});
    deploys
        .create(
            &PostParams::default(),
            &serde_json::from_value(d).expect("d"),
        )
        .await
        .expect("create");
    let mut reason = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let d = deploys.get("n").await.expect("get");
        let conds = d.status.and_then(|s| s.conditions).unwrap_or_default();
        reason = conds
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            break;
        }
    }
    assert_eq!(reason.as_deref(), Some("ProgressDeadlineExceeded"));
}

/// A kube-rs Controller watching Deployments records each one's image in a ConfigMap. With
/// 10% of requests failing (409, 500) and every watch dropped after 3 events, it still ends
/// with every final image, and the faults are counted.
#[tokio::test]
async fn sim_only_a_controller_survives_injected_errors_and_watch_drops() {
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;
    let sim = KubeSim::start_with(Options {
        faults: FaultConfig {
            error_rate: 0.1,
            error_codes: vec![409, 500],
            watch_drop_after_events: Some(3),
            seed: 7,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("sim");
    let client = sim.client().await.expect("client");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    async fn reconcile(
        d: Arc<Deployment>,
        cms: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let image = d
            .spec
            .template
            .spec
            .as_ref()
            .map(|p| p.containers[0].image.clone().unwrap_or_default())
            .unwrap_or_default();
        let name = format!("{}-seen", d.metadata.name.clone().unwrap_or_default());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"image": image}});
        cms.patch(
            &name,
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&cm),
        )
        .await?;
        Ok(Action::await_change())
    }
    let controller = Controller::new(deploys.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(100)),
            Arc::new(cms.clone()),
        )
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let names: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    for n in &names {
        while deploys
            .create(&PostParams::default(), &deployment(n, "img:1"))
            .await
            .is_err()
        {
            if deploys.get_opt(n).await.ok().flatten().is_some() {
                break;
            }
        }
    }
    for round in 2..=4 {
        for n in &names {
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": format!("img:{round}")}]}}}});
            while deploys
                .patch(n, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .is_err()
            {}
        }
    }
    let mut done = false;
    for _ in 0..200 {
        let mut all = true;
        for n in &names {
            let seen = cms.get_opt(&format!("{n}-seen")).await.ok().flatten();
            if seen
                .and_then(|c| c.data)
                .and_then(|d| d.get("image").cloned())
                .as_deref()
                != Some("img:4")
            {
                all = false;
            }
        }
        if all {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let counters = sim.faults().counters();
    assert!(
        done,
        "every deployment's final image was observed; faults: {counters:?}"
    );
    assert!(counters.errors.values().sum::<u64>() > 0, "{counters:?}");
    assert!(counters.watch_drops > 0, "{counters:?}");
}

/// A POST without a body, for kube-sim's control endpoints.
async fn reqwest_like_post(base: &str, path: &str) -> u16 {
    let addr = base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buf)
        .await
        .expect("read");
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn events_from_the_kube_rs_recorder_are_listed_as_core_events_of_the_object() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let t =
        target("events_from_the_kube_rs_recorder_are_listed_as_core_events_of_the_object").await;
    let client = t.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &t.ns);
    let cm = json!({"metadata": {"name": "target"}});
    let cm = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(cm).expect("cm"),
        )
        .await
        .expect("cm");
    let reporter = Reporter {
        controller: "flagger".into(),
        instance: Some("flaggerd-0".into()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let reference = cm.object_ref(&());
    // kube-rs aggregates events by reason, action and type (not by note), so flaggerd must
    // give each distinct message its own action; a repeated event becomes a series.
    let weight = |w: u32| format!("Advance podinfo.test canary weight {w}");
    for (action, note) in [
        ("Advance5", weight(5)),
        ("Advance10", weight(10)),
        ("Advance10", weight(10)),
    ] {
        let event = Event {
            type_: EventType::Normal,
            reason: "Synced".into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        recorder.publish(&event, &reference).await.expect("publish");
    }
    let events: Api<CoreEvent> = Api::namespaced(client, &t.ns);
    let uid = cm.metadata.uid.clone().unwrap_or_default();
    let selector = format!(
        "involvedObject.name=target,involvedObject.namespace={},involvedObject.kind=ConfigMap,involvedObject.uid={uid}",
        t.ns
    );
    let listed = events
        .list(&ListParams::default().fields(&selector))
        .await
        .expect("events");
    // The core/v1 form of an events.k8s.io Event keeps its series as a series: `count` is
    // the deprecated count kube-rs does not set, as on a real server.
    let mut seen: Vec<(String, Option<i32>, Option<i32>)> = listed
        .items
        .iter()
        .map(|e| {
            (
                e.message.clone().unwrap_or_default(),
                e.series.as_ref().and_then(|s| s.count),
                e.count,
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [(weight(10), Some(2), None), (weight(5), None, None)]);
    assert!(
        listed
            .items
            .iter()
            .all(|e| e.reason.as_deref() == Some("Synced"))
    );
}

#[tokio::test]
async fn the_streaming_list_watcher_gets_initial_events_then_changes() {
    let t = target("the_streaming_list_watcher_gets_initial_events_then_changes").await;
    let client = t.client.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let mk = |n: &str| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).expect("cm")
    };
    api.create(&PostParams::default(), &mk("before"))
        .await
        .expect("create");
    let stream =
        watcher(api.clone(), watcher::Config::default().streaming_lists()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("initial")
        .expect("item")
        .expect("ok");
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    api.create(&PostParams::default(), &mk("after"))
        .await
        .expect("create");
    let second = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("change")
        .expect("item")
        .expect("ok");
    assert_eq!(second.metadata.name.as_deref(), Some("after"));
}

#[tokio::test]
async fn metadata_only_lists_and_watches_carry_no_data() {
    let t = target("metadata_only_lists_and_watches_carry_no_data").await;
    let client = t.client.clone();
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &t.ns);
    let secret = json!({"metadata": {"name": "s", "labels": {"a": "b"}}, "stringData": {"password": "hunter2"}, "data": {"token": "c2VjcmV0"}});
    api.create(
        &PostParams::default(),
        &serde_json::from_value(secret).expect("secret"),
    )
    .await
    .expect("create");
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("s"));
    let types = list.items[0].types.clone().expect("types");
    assert_eq!(
        (types.kind.as_str(), types.api_version.as_str()),
        ("PartialObjectMetadata", "meta.k8s.io/v1")
    );
    let meta: Api<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> =
        Api::namespaced(api.clone().into_client(), &t.ns);
    let stream = watcher(meta, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event")
        .expect("item")
        .expect("ok");
    assert_eq!(
        first
            .metadata
            .labels
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );
}

#[tokio::test]
async fn a_list_with_a_limit_is_served_in_pages_joined_by_continue_tokens() {
    let t = target("a_list_with_a_limit_is_served_in_pages_joined_by_continue_tokens").await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    for n in ["e", "a", "d", "b", "c"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": n}})).expect("cm");
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let names = |l: &kube::core::ObjectList<ConfigMap>| {
        l.items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(
        second.metadata.resource_version, first.metadata.resource_version,
        "every page reports the first page's resourceVersion"
    );
    let token = second.metadata.continue_.clone().expect("a continue token");
    let last = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 3");
    assert_eq!(names(&last), ["e"]);
    assert!(
        last.metadata
            .continue_
            .as_deref()
            .unwrap_or_default()
            .is_empty(),
        "the last page has no continue token"
    );
    let all = api.list(&ListParams::default()).await.expect("no limit");
    assert_eq!(names(&all), ["a", "b", "c", "d", "e"]);
    // kube-rs's watcher pages its initial list with page_size.
    let paged = watcher(api.clone(), watcher::Config::default().page_size(2)).applied_objects();
    let seen: Vec<String> = tokio::time::timeout(
        Duration::from_secs(5),
        paged
            .take(5)
            .map(|c| c.expect("object").metadata.name.unwrap_or_default())
            .collect(),
    )
    .await
    .expect("the watcher's paged list");
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let err = api_error(
        api.list(&ListParams::default().limit(2).continue_token("not-a-token"))
            .await
            .expect_err("a forged token"),
    );
    assert_eq!(err.code, 400);
}

/// The API requests a client sent, read from `apiserver_request_total` on `/metrics`: how a
/// benchmark counts them on either server.
#[tokio::test]
async fn requests_are_counted_by_verb_and_resource_on_metrics() {
    let t = target("requests_are_counted_by_verb_and_resource_on_metrics").await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &t.ns);
    let count = |verb: &'static str, scope: &'static str| {
        let client = t.client.clone();
        async move {
            let request = http::Request::get("/metrics")
                .body(Vec::new())
                .expect("request");
            let text = client.request_text(request).await.expect("/metrics");
            text.lines()
                .filter(|l| l.starts_with("apiserver_request_total{"))
                .filter(|l| {
                    l.contains("code=\"200\"")
                        && l.contains("group=\"\"")
                        && l.contains("resource=\"configmaps\"")
                        && l.contains(&format!("scope=\"{scope}\""))
                        && l.contains("subresource=\"\"")
                        && l.contains(&format!("verb=\"{verb}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "counted"}})).expect("cm");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let (gets, lists) = (
        count("GET", "resource").await,
        count("LIST", "namespace").await,
    );
    for _ in 0..3 {
        api.get("counted").await.expect("get");
    }
    api.list(&ListParams::default()).await.expect("list");
    // Counters are shared by every test on the server: at least ours were added.
    assert!(count("GET", "resource").await >= gets + 3.0);
    assert!(count("LIST", "namespace").await >= lists + 1.0);
}

#[tokio::test]
async fn secret_string_data_is_stored_as_data_and_must_hold_strings() {
    use kube::api::{ApiResource, DynamicObject};
    let t = target("secret_string_data_is_stored_as_data_and_must_hold_strings").await;
    let resource = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &t.ns, &resource);
    let secret = |name: &str, value: serde_json::Value| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"key": value}, "data": {"other": "c2VjcmV0"}}))
        .expect("secret")
    };
    let created = raw
        .create(&PostParams::default(), &secret("strings", json!("4711")))
        .await
        .expect("create");
    assert!(created.data.get("stringData").is_none(), "{created:?}");
    assert_eq!(
        created.data["data"],
        json!({"key": "NDcxMQ==", "other": "c2VjcmV0"})
    );
    let refused = raw
        .create(&PostParams::default(), &secret("number", json!(4711)))
        .await
        .expect_err("a number in stringData");
    let status = api_error(refused);
    assert_eq!(status.code, 400, "{status:?}");
    assert!(
        status.message.contains("cannot unmarshal number"),
        "{status:?}"
    );
}
