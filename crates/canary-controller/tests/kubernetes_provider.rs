//! The controller against kube-sim with the kubernetes provider (blue/green): seed 001's
//! podinfo canary initializes into the objects the seed lists, then a new revision is
//! promoted, rolled back, restarted, and survives a controller restart at every phase and
//! injected API faults. Metrics and webhooks are mocked here.

#[path = "support/cluster.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use canary_api::Canary;
use canary_core::Phase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::FaultConfig;
use serde_json::json;
use support::*;

const NEW_IMAGE: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_initializes_then_promotes_a_new_revision() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(None))
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));

    let initialized = wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    // The status is recorded before the step's effects (the Services) are carried out.
    running.settle().await;
    let promoted = initialized
        .status
        .as_ref()
        .and_then(|s| s.condition("Promoted"))
        .expect("condition");
    assert_eq!(
        (promoted.status.as_str(), promoted.reason.as_str()),
        ("True", "Initialized")
    );
    let services: Api<Service> = Api::namespaced(c.client.clone(), "test");
    for (name, selector) in [
        ("podinfo", "podinfo-primary"),
        ("podinfo-canary", "podinfo"),
        ("podinfo-primary", "podinfo-primary"),
    ] {
        let svc = services
            .get(name)
            .await
            .unwrap_or_else(|_| panic!("service {name}"));
        let sel = svc.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(
            sel.get("app").map(String::as_str),
            Some(selector),
            "selector of {name}"
        );
    }
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    assert_eq!(
        primary
            .spec
            .selector
            .match_labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("podinfo-primary")
    );
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.client.clone(), "test");
    let primary_hpa = hpas.get("podinfo-primary").await.expect("primary hpa");
    assert_eq!(primary_hpa.spec.scale_target_ref.name, "podinfo-primary");
    // The target HPA's labels but Flux's, as Flagger gives them.
    assert_eq!(
        primary_hpa.metadata.labels.unwrap_or_default(),
        [("app.kubernetes.io/name".to_string(), "podinfo".to_string())].into()
    );
    assert_eq!(
        deploys.get("podinfo").await.expect("target").spec.replicas,
        Some(0),
        "the target is scaled to zero"
    );
    assert!(
        messages(&c.client)
            .await
            .contains(&"Initialization done! podinfo.test".to_string())
    );

    let set_at = tokio::time::Instant::now();
    set_image(&c.client, NEW_IMAGE).await;
    wait_for_phase(&canaries, Phase::Progressing, Duration::from_secs(10)).await;
    let detection = set_at.elapsed();
    let done = wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.stop().await;

    let events = steady(&messages(&c.client).await);
    let from = events
        .iter()
        .position(|m| m == "New revision detected! Scaling up podinfo.test")
        .expect("detected");
    let mut expected = vec![
        "New revision detected! Scaling up podinfo.test".to_string(),
        "Starting canary analysis for podinfo.test".into(),
        "Pre-rollout check acceptance-test passed".into(),
    ];
    expected.extend((1..=10).map(|i| format!("Advance podinfo.test canary iteration {i}/10")));
    expected.extend([
        "Copying podinfo.test template spec to podinfo-primary.test".to_string(),
        "Promotion completed! Scaling down podinfo.test".into(),
    ]);
    assert_eq!(events[from..], expected[..]);
    assert_eq!(primary_image(&c.client).await.as_deref(), Some(NEW_IMAGE));
    assert_eq!(
        deploys.get("podinfo").await.expect("target").spec.replicas,
        Some(0)
    );
    let status = done.status.expect("status");
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);
    assert!(
        detection < Duration::from_secs(2),
        "new revision detected in {detection:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metric_rolls_back_with_flaggers_events() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(10)))
        .await
        .expect("canary");
    let bad: MetricScript = Arc::new(|name: &str| {
        canary_core::MetricOutcome::Value(if name == "request-duration" {
            120.0
        } else {
            61.39
        })
    });
    let running = start(context(c.client.clone(), bad));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    set_image(&c.client, NEW_IMAGE).await;
    let failed = wait_for_phase(&canaries, Phase::Failed, Duration::from_secs(60)).await;
    running.stop().await;
    let events = steady(&messages(&c.client).await);
    let halts = events
        .iter()
        .filter(|m| *m == "Halt podinfo.test advancement success rate 61.39% < 99%")
        .count();
    assert_eq!(
        halts, 1,
        "repeats of one halt are one event series: {events:#?}"
    );
    let n = events.len();
    assert_eq!(
        events[n - 2..],
        [
            "Rolling back podinfo.test failed checks threshold reached 5".to_string(),
            "Canary failed! Scaling down podinfo.test".into()
        ]
    );
    let status = failed.status.expect("status");
    assert_eq!(status.failed_checks, 5);
    let report = status.analysis.expect("explanation");
    let rate = report
        .checks
        .iter()
        .find(|c| c.name == "request-success-rate")
        .expect("check");
    assert_eq!(
        (rate.value, rate.threshold.as_deref()),
        (Some(61.39), Some(">= 99"))
    );
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    assert_eq!(
        deploys.get("podinfo").await.expect("target").spec.replicas,
        Some(0)
    );
    assert_eq!(
        primary_image(&c.client).await.as_deref(),
        Some("ghcr.io/stefanprodan/podinfo:6.0.0"),
        "the primary keeps the old revision"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_change_starts_an_analysis_and_is_promoted_to_the_primary_copy() {
    let c = cluster(FaultConfig::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "test");
    let cm = json!({"metadata": {"name": "podinfo-config"}, "data": {"color": "blue"}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(cm).expect("cm"),
    )
    .await
    .expect("configmap");
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let env_from = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "envFrom": [{"configMapRef": {"name": "podinfo-config"}}]}]}}}});
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&env_from),
        )
        .await
        .expect("envFrom");
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(2)))
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    let init = wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    running.settle().await;
    assert!(
        init.status
            .and_then(|s| s.tracked_configs)
            .is_some_and(|t| t.contains_key("configmap/podinfo-config"))
    );
    let copy = cms
        .get("podinfo-config-primary")
        .await
        .expect("primary copy");
    assert_eq!(
        copy.data
            .unwrap_or_default()
            .get("color")
            .map(String::as_str),
        Some("blue")
    );
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    let refs = serde_json::to_value(&primary.spec.template).expect("json");
    assert_eq!(
        refs["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        "podinfo-config-primary"
    );

    running.settle().await;
    let mark = messages(&c.client).await.len();
    cms.patch(
        "podinfo-config",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"color": "green"}})),
    )
    .await
    .expect("edit");
    wait_for_phase(&canaries, Phase::Progressing, Duration::from_secs(10)).await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(30)).await;
    running.stop().await;
    let events = messages(&c.client).await;
    assert_eq!(
        events.get(mark).map(String::as_str),
        Some("New revision detected! Scaling up podinfo.test"),
        "{events:#?}"
    );
    let copy = cms
        .get("podinfo-config-primary")
        .await
        .expect("primary copy");
    assert_eq!(
        copy.data
            .unwrap_or_default()
            .get("color")
            .map(String::as_str),
        Some("green")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_never_becomes_ready_fails_at_the_progress_deadline() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut canary = seed_canary(Some(3));
    canary.spec.progress_deadline_seconds = Some(2);
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let broken = json!({"spec": {"template": {"metadata": {"annotations": {kube_sim::NEVER_READY: "true"}}}}});
    deploys
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Strategic(&broken),
        )
        .await
        .expect("broken revision");
    wait_for_phase(&canaries, Phase::Failed, Duration::from_secs(30)).await;
    running.stop().await;
    let events = messages(&c.client).await;
    assert!(
        events
            .iter()
            .any(|m| m.starts_with("podinfo.test progress deadline exceeded")),
        "{events:#?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("Canary failed! Scaling down podinfo.test")
    );
    assert!(
        !events.iter().any(|m| m.starts_with("Advance")),
        "no traffic step for a revision that never became ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_canary_with_revert_on_deletion_restores_the_target() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut canary = seed_canary(Some(3));
    canary.spec.revert_on_deletion = true;
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    let init = wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    let _ = init;
    for _ in 0..100 {
        if canary_has_finalizer(&canaries).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        canary_has_finalizer(&canaries).await,
        "revertOnDeletion adds the finalizer"
    );
    delete_and_wait(&canaries).await;
    assert!(
        canaries.get_opt("podinfo").await.expect("get").is_none(),
        "the finalizer is removed after the revert"
    );
    running.stop().await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    assert_eq!(
        deploys.get("podinfo").await.expect("target").spec.replicas,
        Some(2),
        "the target gets the primary's replicas back"
    );
    let events = messages(&c.client).await;
    assert!(
        events.contains(&"Terminating canary podinfo.test".to_string())
            && events.contains(&"Terminated canary podinfo.test".to_string()),
        "{events:#?}"
    );
}

async fn canary_has_finalizer(api: &Api<Canary>) -> bool {
    canary(api)
        .await
        .metadata
        .finalizers
        .unwrap_or_default()
        .iter()
        .any(|f| f == "finalizer.flagger.app")
}

/// Stops the controller each time the phase changes and starts a new one: the events and
/// the end state are those of an uninterrupted run, and the primary is promoted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_at_every_phase() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(3)))
        .await
        .expect("canary");
    let mut running = start(context(c.client.clone(), healthy()));
    let mut phase = None;
    let mut restarts = 0;
    let mut released = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while phase != Some(Phase::Succeeded) {
        assert!(tokio::time::Instant::now() < deadline, "stuck in {phase:?}");
        let now = canary(&canaries).await.status.and_then(|s| s.phase);
        if now != phase {
            phase = now;
            running.stop().await;
            restarts += 1;
            running = start(context(c.client.clone(), healthy()));
        }
        if phase == Some(Phase::Initialized) && !released {
            set_image(&c.client, NEW_IMAGE).await;
            released = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    assert!(restarts >= 5, "restarted at {restarts} phase changes");
    let events = steady(&messages(&c.client).await);
    let expected = [
        "Initialization done! podinfo.test",
        "New revision detected! Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Pre-rollout check acceptance-test passed",
        "Advance podinfo.test canary iteration 1/3",
        "Advance podinfo.test canary iteration 2/3",
        "Advance podinfo.test canary iteration 3/3",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Scaling down podinfo.test",
    ];
    let tail: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "all the metrics providers are available!")
        .collect();
    assert_eq!(tail, expected);
    assert_eq!(primary_image(&c.client).await.as_deref(), Some(NEW_IMAGE));
}

/// 10% of API requests fail (409 on writes, 500) and every watch drops after 3 events: the
/// release still ends promoted, and the faults were injected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_api_faults_do_not_change_the_outcome() {
    let faults = FaultConfig {
        error_rate: 0.1,
        error_codes: vec![409, 500],
        watch_drop_after_events: Some(3),
        seed: 11,
        ..Default::default()
    };
    let c = cluster(faults).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let (pp, seed) = (PostParams::default(), seed_canary(Some(3)));
    persist(|| canaries.create(&pp, &seed)).await;
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(30)).await;
    set_image(&c.client, NEW_IMAGE).await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.stop().await;
    let image = loop {
        if let Some(i) = primary_image(&c.client).await {
            break i;
        }
    };
    assert_eq!(image, NEW_IMAGE);
    let counters = c.sim.faults().counters();
    assert!(counters.errors.values().sum::<u64>() >= 10, "{counters:?}");
    assert!(counters.watch_drops >= 5, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_canary_on_the_same_target_is_reported_and_left_alone() {
    let c = cluster(FaultConfig::default()).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(3)))
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    let mut second = seed_canary(Some(3));
    second.metadata.name = Some("podinfo-two".into());
    canaries
        .create(&PostParams::default(), &second)
        .await
        .expect("second canary");
    let mut valid = None;
    for _ in 0..100 {
        let c2 = canaries.get("podinfo-two").await.expect("get");
        valid = c2
            .status
            .as_ref()
            .and_then(|s| s.condition("Valid").cloned());
        if valid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    let valid = valid.expect("the second canary reports the conflict");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "TargetConflict")
    );
    assert_eq!(
        valid.message,
        "spec.targetRef: deployment podinfo.test is already the target of canary podinfo.test; only one canary may target a workload"
    );
    let second = canaries.get("podinfo-two").await.expect("get");
    assert_eq!(
        second.status.and_then(|s| s.phase),
        None,
        "the second canary does nothing"
    );
    assert_eq!(
        canary(&canaries).await.status.and_then(|s| s.phase),
        Some(Phase::Initialized)
    );
}

/// An older canary that already runs on another workload, retargeted at one a newer canary
/// holds, does not take it over: the canary that owns `<target>-primary` keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_canary_retargeted_at_a_held_workload_is_reported() {
    let c = cluster(FaultConfig::default()).await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let other: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "other", "labels": {"app": "other"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.0.0"}]}}}
    }))
    .expect("deployment");
    let pp = PostParams::default();
    persist(|| deploys.create(&pp, &other)).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut older = seed_canary(Some(3));
    older.metadata.name = Some("aaa-older".into());
    older.spec.target_ref.name = "other".into();
    older.spec.autoscaler_ref = None;
    canaries.create(&pp, &older).await.expect("older canary");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    canaries
        .create(&pp, &seed_canary(Some(3)))
        .await
        .expect("podinfo");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    let older_api = canaries.clone();
    let phase_of = |name: &'static str| {
        let api = older_api.clone();
        async move { api.get(name).await.ok().and_then(|c| c.status?.phase) }
    };
    for _ in 0..200 {
        if phase_of("aaa-older").await == Some(Phase::Initialized) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let patch = json!({"spec": {"targetRef": {"name": "podinfo"}}});
    canaries
        .patch("aaa-older", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("retarget");
    let mut valid = None;
    for _ in 0..200 {
        valid = canaries
            .get("aaa-older")
            .await
            .ok()
            .and_then(|c| c.status?.condition("Valid").cloned())
            .filter(|v| v.status == "False");
        if valid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let valid = valid.expect("the retargeted canary reports the conflict");
    assert_eq!(valid.reason, "TargetConflict");
    assert!(
        valid
            .message
            .contains("is already the target of canary podinfo.test"),
        "{}",
        valid.message
    );
    set_image(&c.client, NEW_IMAGE).await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.stop().await;
}

/// Seed 001's canary (two iterations) initialized, then a release of [`NEW_IMAGE`] promoted.
async fn release_of_two_iterations(client: &kube::Client) {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    canaries
        .create(&PostParams::default(), &seed_canary(Some(2)))
        .await
        .expect("canary");
    let running = start(context(client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    set_image(client, NEW_IMAGE).await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_the_user_made_is_promoted_to_but_never_owned() {
    let c = cluster(FaultConfig::default()).await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    let mut users = deploys.get("podinfo").await.expect("target");
    users.metadata = kube::api::ObjectMeta {
        name: Some("podinfo-primary".into()),
        namespace: Some("test".into()),
        ..Default::default()
    };
    let spec = &mut users.spec;
    spec.selector.match_labels = Some([("app".to_string(), "podinfo-primary".to_string())].into());
    if let Some(labels) = spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
    {
        labels.insert("app".into(), "podinfo-primary".into());
    }
    deploys
        .create(&PostParams::default(), &users)
        .await
        .expect("the user's primary");
    release_of_two_iterations(&c.client).await;
    assert_eq!(primary_image(&c.client).await.as_deref(), Some(NEW_IMAGE));
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    assert!(
        primary
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "the user's primary is not made the canary's (it would be deleted with it)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_flagger_wrote_loses_what_the_target_no_longer_has() {
    let c = cluster(FaultConfig::default()).await;
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), "test");
    // The primary as Flagger left it: written by its client (field manager `flagger`), owned
    // by the Canary, with an env var the target has since dropped.
    let mut flaggers = deploys.get("podinfo").await.expect("target");
    flaggers.metadata = serde_json::from_value(serde_json::json!({
        "name": "podinfo-primary", "namespace": "test",
        "ownerReferences": [{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
                             "uid": "uid-from-flagger", "controller": true, "blockOwnerDeletion": true}]}))
    .expect("meta");
    let spec = &mut flaggers.spec;
    spec.selector.match_labels = Some([("app".to_string(), "podinfo-primary".to_string())].into());
    let template = spec.template.metadata.as_mut().expect("template metadata");
    template
        .labels
        .get_or_insert_default()
        .insert("app".into(), "podinfo-primary".into());
    let pod = spec.template.spec.as_mut().expect("pod spec");
    pod.containers[0].env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
        name: "DROPPED".into(),
        value: Some("1".into()),
        ..Default::default()
    }]);
    let by_flagger = PostParams {
        field_manager: Some("flagger".into()),
        ..Default::default()
    };
    deploys
        .create(&by_flagger, &flaggers)
        .await
        .expect("Flagger's primary");
    release_of_two_iterations(&c.client).await;
    let primary = deploys.get("podinfo-primary").await.expect("primary");
    let env = primary.spec.template.spec.expect("pod").containers[0]
        .env
        .clone();
    assert!(
        env.unwrap_or_default().iter().all(|e| e.name != "DROPPED"),
        "the env var the target dropped is gone from the promoted primary"
    );
    let managers: Vec<(String, String)> = primary
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        !managers.contains(&("flagger".into(), "Update".into())),
        "{managers:?}"
    );
}

/// KEDA, as Flagger's `test/keda`: the `-primary` ScaledObject aimed at the primary with its
/// query rewritten, the target's paused at zero while the canary rests, unpaused for a
/// release and for `revertOnDeletion`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keda_scaled_object_is_copied_for_the_primary_and_paused_while_the_canary_rests() {
    use kube::api::DynamicObject;
    use kube::core::{ApiResource, GroupVersionKind};
    let c = cluster(FaultConfig::default()).await;
    install_mesh_crds(&c.client).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"),
        "scaledobjects",
    );
    let sos: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "test", &ar);
    let so: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "podinfo-so", "namespace": "test"},
        "spec": {"scaleTargetRef": {"name": "podinfo"}, "pollingInterval": 10, "cooldownPeriod": 20,
            "minReplicaCount": 1, "maxReplicaCount": 3,
            "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                "serverAddress": "http://prometheus.istio-system:9090",
                "query": "sum(rate(http_requests_total{ app=\"podinfo\" }[30s]))", "threshold": "5"}}]}
    }))
    .expect("so");
    let pp = PostParams::default();
    persist(|| sos.create(&pp, &so)).await;
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut canary = seed_canary(Some(2));
    canary.spec.revert_on_deletion = true;
    canary.spec.autoscaler_ref = serde_json::from_value(
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so"}),
    )
    .ok();
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    running.settle().await;
    let primary = sos.get("podinfo-so-primary").await.expect("primary so");
    assert_eq!(
        primary.data["spec"]["triggers"][0]["metadata"]["query"],
        "sum(rate(http_requests_total{ app=\"podinfo-primary\" }[30s]))"
    );
    assert_eq!(
        primary.data["spec"]["scaleTargetRef"]["name"],
        "podinfo-primary"
    );
    let paused = |o: &DynamicObject| {
        o.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("autoscaling.keda.sh/paused-replicas").cloned())
    };
    let paused_now = || async { paused(&sos.get("podinfo-so").await.expect("so")) };
    assert_eq!(paused_now().await.as_deref(), Some("0"), "paused at init");
    assert_eq!(paused(&primary), None, "the primary is never paused");

    set_image(&c.client, NEW_IMAGE).await;
    let mut unpaused = false;
    for _ in 0..200 {
        if paused_now().await.is_none() {
            unpaused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        unpaused,
        "a release lifts the pause before scaling the canary up"
    );
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.settle().await;
    assert_eq!(
        paused_now().await.as_deref(),
        Some("0"),
        "paused after the promotion"
    );
    delete_and_wait(&canaries).await;
    running.stop().await;
    assert_eq!(
        paused_now().await,
        None,
        "revertOnDeletion resumes the target's scaler"
    );
}

/// A Service target (Flagger's service controller): `-primary` and `-canary` copies of the
/// target Service, the canary copy following the target, the primary getting the analysed
/// spec at promotion; no workload is scaled and no other Service is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_target_is_copied_and_its_new_spec_promoted() {
    let c = cluster(FaultConfig::default()).await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "test");
    let target: Service = serde_json::from_value(json!({
        "metadata": {"name": "backend", "labels": {"team": "a"}},
        "spec": {"selector": {"app": "podinfo"}, "ports": [{"name": "http", "port": 9898}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &target)
        .await
        .expect("target service");
    let canaries: Api<Canary> = Api::namespaced(c.client.clone(), "test");
    let mut canary = seed_canary(Some(2));
    canary.spec.target_ref =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "name": "backend"}))
            .expect("ref");
    canary.spec.autoscaler_ref = None;
    canaries
        .create(&PostParams::default(), &canary)
        .await
        .expect("canary");
    let running = start(context(c.client.clone(), healthy()));
    wait_for_phase(&canaries, Phase::Initialized, Duration::from_secs(20)).await;
    running.settle().await;
    let selector = |s: &Service| {
        s.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
            .get("app")
            .cloned()
            .unwrap_or_default()
    };
    for name in ["backend-primary", "backend-canary"] {
        let copy = services.get(name).await.expect(name);
        assert_eq!(selector(&copy), "podinfo", "{name}");
        assert_eq!(
            copy.metadata
                .labels
                .unwrap_or_default()
                .get("team")
                .map(String::as_str),
            Some("a")
        );
    }
    assert_eq!(
        selector(&services.get("backend").await.expect("target")),
        "podinfo",
        "the target Service is the user's: the kubernetes router writes nothing"
    );
    let new_spec = json!({"spec": {"selector": {"app": "podinfo-v2"}}});
    services
        .patch("backend", &PatchParams::default(), &Patch::Merge(&new_spec))
        .await
        .expect("new revision");
    wait_for_phase(&canaries, Phase::Progressing, Duration::from_secs(10)).await;
    wait_for_phase(&canaries, Phase::Succeeded, Duration::from_secs(60)).await;
    running.settle().await;
    running.stop().await;
    let primary = services.get("backend-primary").await.expect("primary");
    assert_eq!(
        selector(&primary),
        "podinfo-v2",
        "the promotion copies the analysed spec"
    );
    let events = steady(&messages(&c.client).await);
    let from = events
        .iter()
        .position(|m| m == "New revision detected! Scaling up backend.test")
        .expect("detected");
    assert_eq!(
        events[from..].last().map(String::as_str),
        Some("Promotion completed! Scaling down backend.test"),
        "{events:#?}"
    );
}

/// Deletes the canary `podinfo` and waits (up to 10 s) until it is gone.
async fn delete_and_wait(canaries: &Api<Canary>) {
    canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .expect("delete");
    for _ in 0..200 {
        if canaries.get_opt("podinfo").await.expect("get").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
