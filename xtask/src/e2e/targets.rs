//! Targets and autoscalers beyond the seeds', as Flagger's own end-to-end tests play them:
//! KEDA (`test/keda/`), a ScaledObject as `autoscalerRef`; and a Service as `targetRef`
//! (Flagger's service controller, which its e2e tests leave out); and a Knative Service
//! (`test/knative/`).

use anyhow::{Context, Result, ensure};
use serde_yaml_ng::Value as Y;

use super::fidelity::{analysis_of, seed_004, set_load_test, without_istio_hosts};
use super::{PODINFO, Play, expect, finish, iteration_events, primary_image, release};

/// The ScaledObject of Flagger's KEDA test, on podinfo's request rate.
const SCALED_OBJECT: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: podinfo-so
  namespace: test
spec:
  scaleTargetRef:
    name: podinfo
  pollingInterval: 10
  cooldownPeriod: 20
  minReplicaCount: 1
  maxReplicaCount: 3
  triggers:
  - type: prometheus
    metricType: AverageValue
    metadata:
      serverAddress: http://prometheus.istio-system:9090
      metricName: http_requests_total
      query: sum(rate(http_requests_total{ app="podinfo" }[30s]))
      threshold: '5'
"#;

/// The target ScaledObject's `autoscaling.keda.sh/paused-replicas`, empty when unpaused.
fn paused(p: &mut Play<'_>) -> Result<String> {
    p.kubectl_words(
        r"-n test get scaledobject podinfo-so -o jsonpath={.metadata.annotations.autoscaling\.keda\.sh/paused-replicas}",
    )
    .map(|v| v.trim().to_string())
}

/// Flagger's KEDA e2e test: seed 004's canary on the kubernetes provider (blue/green, ten
/// iterations) with `autoscalerRef` a ScaledObject. The `-primary` ScaledObject aims at
/// `podinfo-primary` with its query rewritten; the target's is paused at zero replicas while
/// the canary rests, unpaused for the release, paused again after the promotion. (Flagger's
/// test also sees KEDA scale the canary to 3 under load: no KEDA operator runs here.)
pub(super) fn keda(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-so.yaml   # the ScaledObject of Flagger's KEDA test",
        SCALED_OBJECT,
    )?;
    let canary = seed_004(|spec| {
        spec["provider"] = Y::from("kubernetes");
        spec["autoscalerRef"] = serde_yaml_ng::from_str(
            "{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: podinfo-so}",
        )?;
        without_istio_hosts(spec)?;
        let analysis = analysis_of(spec)?;
        analysis.remove("maxWeight");
        analysis.remove("stepWeight");
        analysis.insert(Y::from("iterations"), Y::from(10));
        set_load_test(
            spec,
            "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/",
        )
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary, blue/green, autoscalerRef podinfo-so",
    )?;
    let query = p.kubectl_words(
        "-n test get scaledobject podinfo-so-primary -o jsonpath={.spec.triggers[0].metadata.query}",
    )?;
    let wanted = r#"sum(rate(http_requests_total{ app="podinfo-primary" }[30s]))"#;
    ensure!(
        query.trim() == wanted,
        "the primary ScaledObject's query is {query:?}, not {wanted:?}"
    );
    let aim = p.kubectl_words(
        "-n test get scaledobject podinfo-so-primary -o jsonpath={.spec.scaleTargetRef.name}",
    )?;
    ensure!(
        aim.trim() == "podinfo-primary",
        "the primary ScaledObject scales {aim:?}"
    );
    ensure!(
        paused(p)? == "0",
        "after initialization the target ScaledObject is not paused at 0"
    );
    println!("  podinfo-so paused at 0 replicas; podinfo-so-primary aims at podinfo-primary");
    release(p, "test", "6.0.1")?;
    // The phase is recorded before the step's effects: the pause is lifted right after.
    let mut lifted = false;
    for _ in 0..50 {
        if paused(p)?.is_empty() {
            lifted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ensure!(lifted, "the release did not lift the pause of podinfo-so");
    println!("  the release lifted the pause of podinfo-so");
    finish(p, "the release of 6.0.1", "Succeeded")?;
    expect(
        p,
        &iteration_events(
            &[
                "Starting canary analysis for podinfo.test",
                "Pre-rollout check acceptance-test passed",
            ],
            false,
        ),
    )?;
    let primary = primary_image(p, "test")?;
    ensure!(primary.ends_with("6.0.1"), "podinfo-primary runs {primary}");
    ensure!(
        paused(p)? == "0",
        "after the promotion podinfo-so is not paused at 0 again"
    );
    println!("  promoted; podinfo-so paused again at 0 replicas");
    Ok(())
}

/// The Service a Service target canary follows, and a second revision of podinfo
/// (`podinfo-v2`, 6.0.1) for its selector to move to.
fn backend_and_v2() -> String {
    let deployment = PODINFO.split("\n---\n").next().unwrap_or_default();
    let v2 = deployment
        .replace("app: podinfo\n", "app: podinfo-v2\n")
        .replace("name: podinfo\n", "name: podinfo-v2\n")
        .replace("podinfo:6.0.0", "podinfo:6.0.1");
    format!(
        "{v2}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: backend\n  namespace: test\n  labels:\n    team: payments\nspec:\n  selector:\n    app: podinfo\n  ports:\n  - name: http\n    port: 9898\n    targetPort: 9898\n"
    )
}

/// A Service as `targetRef` on Istio: `backend-primary` and `backend-canary` copies of the
/// Service `backend`, the VirtualService `backend` weighting them. Moving `backend`'s selector
/// to podinfo-v2 is the new revision: the canary copy follows at once, a rollout check curls
/// it, weights advance to 50, and the promotion copies the selector to the primary.
pub(super) fn service_target(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.apply_shown(
        "backend.yaml   # the Service backend (app: podinfo) and a second Deployment podinfo-v2 (6.0.1)",
        &backend_and_v2(),
    )?;
    let canary = seed_004(|spec| {
        spec["targetRef"] =
            serde_yaml_ng::from_str("{apiVersion: v1, kind: Service, name: backend}")?;
        spec.as_mapping_mut()
            .context("seed 004's spec")?
            .remove("autoscalerRef");
        without_istio_hosts(spec)?;
        let analysis = analysis_of(spec)?;
        analysis.remove("metrics");
        analysis.insert(
            Y::from("webhooks"),
            serde_yaml_ng::from_str(
                "[{name: reaches-v2, type: rollout, url: http://flagger-loadtester.test/, timeout: 5s,
                   metadata: {type: bash, cmd: \"curl -s http://backend-canary.test:9898/ | grep 6.0.1\"}}]",
            )?,
        );
        Ok(())
    })?;
    p.canary(
        &canary,
        "backend-canary.yaml   # seed 004's analysis on Istio, targetRef the Service backend",
    )?;
    let selector = |p: &mut Play<'_>, name: &str| -> Result<String> {
        Ok(p.kubectl_words(&format!(
            "-n test get service {name} -o jsonpath={{.spec.selector.app}}"
        ))?
        .trim()
        .to_string())
    };
    ensure!(
        selector(p, "backend-primary")? == "podinfo",
        "backend-primary does not select podinfo after initialization"
    );
    p.kubectl(&[
        "-n",
        "test",
        "patch",
        "service",
        "backend",
        "-p",
        r#"{"spec":{"selector":{"app":"podinfo-v2"}}}"#,
    ])?;
    p.until(&["Progressing"])?;
    finish(p, "the release of backend's new selector", "Succeeded")?;
    // Flagger names the target in these events and the canary (podinfo) in the advances.
    let target = "backend.test";
    let mut events = vec![format!("New revision detected! Scaling up {target}")];
    events.extend((1..=10).map(|i| format!("Advance podinfo.test canary weight {}", i * 5)));
    events.extend([
        format!("Copying {target} template spec to backend-primary.test"),
        "Routing all traffic to primary".to_string(),
        format!("Promotion completed! Scaling down {target}"),
    ]);
    expect(p, &events)?;
    ensure!(
        selector(p, "backend-primary")? == "podinfo-v2",
        "the promotion did not copy backend's selector to backend-primary"
    );
    let answer = p.shell(
        "curl -s http://backend.test:9898/",
        "curl -s --max-time 5 http://backend.test:9898/",
    )?;
    ensure!(
        answer.contains("6.0.1"),
        "backend answers {answer:?}, not podinfo 6.0.1"
    );
    Ok(())
}

/// The Knative Service of Flagger's Knative test, on podinfo's port.
const KNATIVE_SERVICE: &str = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: podinfo
  namespace: test
spec:
  template:
    spec:
      containers:
        - name: podinfod
          image: ghcr.io/stefanprodan/podinfo:6.0.0
          ports:
            - containerPort: 9898
";

/// The Canary of Flagger's Knative test.
const KNATIVE_CANARY: &str = r#"apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: knative
  targetRef:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: podinfo
  progressDeadlineSeconds: 60
  analysis:
    interval: 15s
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      thresholdRange:
        max: 500
      interval: 1m
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          type: cmd
          cmd: "hey -z 1m -q 5 -c 2 http://podinfo.test"
          logCmdOutput: "true"
"#;

/// The Knative Service's primary revision and its spec's traffic.
fn knative_state(p: &mut Play<'_>) -> Result<(String, String)> {
    let primary = p.kubectl_words(
        r"-n test get services.serving podinfo -o jsonpath={.metadata.annotations.flagger\.app/primary-revision}",
    )?;
    let traffic = p.kubectl_words(
        "-n test get services.serving podinfo -o jsonpath={.spec.traffic[*].percent}",
    )?;
    Ok((primary.trim().to_string(), traffic.trim().to_string()))
}

/// A new image for the Knative Service, as Flagger's test patches it.
fn knative_image(p: &mut Play<'_>, tag: &str) -> Result<()> {
    let patch = format!(
        r#"[{{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "ghcr.io/stefanprodan/podinfo:{tag}"}}]"#
    );
    p.kubectl(&[
        "-n",
        "test",
        "patch",
        "services.serving",
        "podinfo",
        "--type=json",
        "-p",
        &patch,
    ])?;
    Ok(())
}

/// Flagger's Knative e2e test: the canary names the Service's first revision primary; a new
/// image's revision gets 10..50% of `spec.traffic` (Knative's controller, played by mesh-sim,
/// programs it and reports `status.traffic`), is judged by Kourier's Envoy series of the
/// revision and promoted by moving the annotation; a revision answering HTTP 500s is rolled
/// back, its traffic back on the primary revision.
pub(super) fn knative(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    p.apply_shown(
        "podinfo-knative.yaml   # the Knative Service of Flagger's Knative test",
        KNATIVE_SERVICE,
    )?;
    p.canary(
        KNATIVE_CANARY,
        "podinfo-canary.yaml   # Flagger's Knative canary",
    )?;
    let (primary, traffic) = knative_state(p)?;
    ensure!(
        primary == "podinfo-00001" && traffic == "0 100",
        "after the initialization the primary revision is {primary:?} with traffic {traffic:?}, not podinfo-00001 with 0 100"
    );
    knative_image(p, "6.0.1")?;
    p.until(&["Progressing"])?;
    finish(p, "the release of 6.0.1", "Succeeded")?;
    let mut events = vec!["New revision detected! Scaling up podinfo.test".to_string()];
    events.extend((1..=5).map(|i| format!("Advance podinfo.test canary weight {}", i * 10)));
    events.extend([
        "Copying podinfo.test template spec to podinfo-primary.test".to_string(),
        "Routing all traffic to primary".to_string(),
        "Promotion completed! Scaling down podinfo.test".to_string(),
    ]);
    expect(p, &events)?;
    let (primary, traffic) = knative_state(p)?;
    ensure!(
        primary == "podinfo-00002" && traffic == "0 100",
        "after the promotion the primary revision is {primary:?} with traffic {traffic:?}, not podinfo-00002 with 0 100"
    );
    super::providers::promoted_by_series(p, "Kourier's Envoy series of revision podinfo-00002")?;
    // HTTP 500s sent to the Service while the next revision is analysed (Flagger's test slows
    // its requests down instead; the rollback is the same).
    let mark = p.events.len();
    knative_image(p, "6.0.2")?;
    p.background(
        "watch curl http://podinfo.test/status/500",
        "while true; do curl -s --max-time 5 http://podinfo.test/status/500 >/dev/null; sleep 0.2; done",
        std::time::Duration::from_secs(150),
    )?;
    p.until(&["Progressing"])?;
    let ended = finish(p, "the release of 6.0.2", "Failed");
    p.stop_background();
    ended?;
    super::steps::in_order(
        &p.events[mark..],
        &[
            "New revision detected! Scaling up podinfo.test",
            "Halt podinfo.test advancement success rate",
            "Rolling back podinfo.test failed checks threshold reached",
            "Canary failed! Scaling down podinfo.test",
        ],
    )?;
    let (primary, traffic) = knative_state(p)?;
    ensure!(
        primary == "podinfo-00002" && traffic == "0 100",
        "after the rollback the primary revision is {primary:?} with traffic {traffic:?}, not podinfo-00002 with 0 100"
    );
    println!("  the primary revision is still podinfo-00002 with all the traffic");
    Ok(())
}
