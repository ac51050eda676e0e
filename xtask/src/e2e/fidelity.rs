//! Scenarios of Flagger behaviour its users rely on beyond the seeds: the metadata and
//! ports of the Services flaggerd makes or adopts, a user's VirtualService restored when
//! its canary goes, two releases in a row, and Gateway API checks on the source
//! reporter's series.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Y;

use super::{Play, fixture, promote};

/// Flux's annotations, which Flagger sets on every Service and routing object it manages.
const FLUX: [&str; 2] = [
    "kustomize.toolkit.fluxcd.io/reconcile",
    "helm.toolkit.fluxcd.io/driftDetection",
];

fn get_json(p: &mut Play<'_>, args: &[&str]) -> Result<Value> {
    let mut all = vec!["-n", "test", "get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let out = p.cluster.kubectl(&all)?;
    serde_json::from_str(&out).with_context(|| format!("kubectl {}", all.join(" ")))
}

fn has_flux_annotations(obj: &Value) -> bool {
    FLUX.iter()
        .all(|k| obj["metadata"]["annotations"][k] == "disabled")
}

fn owned_by_canary(obj: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| r.iter().any(|o| o["kind"] == "Canary"))
}

/// Seed 004's canary with `edit` applied to its spec.
/// Removes the Istio gateways and hosts of seed 004's canary `spec` (a provider other than
/// Istio's ingress routes it).
pub(super) fn without_istio_hosts(spec: &mut Y) -> Result<()> {
    let service = spec["service"]
        .as_mapping_mut()
        .context("seed 004's canary has no service")?;
    service.remove("gateways");
    service.remove("hosts");
    Ok(())
}

/// The `analysis` of seed 004's canary `spec`.
pub(super) fn analysis_of(spec: &mut Y) -> Result<&mut serde_yaml_ng::Mapping> {
    spec["analysis"]
        .as_mapping_mut()
        .context("seed 004's canary has an analysis")
}

/// Points the load test of seed 004's canary `spec` at `cmd`.
pub(super) fn set_load_test(spec: &mut Y, cmd: &str) -> Result<()> {
    let hooks = spec["analysis"]["webhooks"]
        .as_sequence_mut()
        .context("seed 004's canary has webhooks")?;
    let load = hooks
        .iter_mut()
        .find(|h| h["name"] == "load-test")
        .context("seed 004's canary has a load-test webhook")?;
    load["metadata"]["cmd"] = Y::from(cmd);
    Ok(())
}

pub(super) fn seed_004(edit: impl FnOnce(&mut Y) -> Result<()>) -> Result<String> {
    let mut doc: Y = serde_yaml_ng::from_str(&fixture("004-istio.yaml")?)?;
    edit(&mut doc["spec"])?;
    Ok(serde_yaml_ng::to_string(&doc)?)
}

const USERS_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: test
  labels: {team: payments}
  annotations: {owner: payments}
spec:
  selector: {app: podinfo, tier: web}
  ports:
  - {name: web, port: 80, targetPort: 9898}
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-canary
  namespace: test
  labels: {team: payments}
spec:
  selector: {app: podinfo}
  ports:
  - {name: web, port: 80, targetPort: 9898}
";

/// The apex Service the user made is adopted (flaggerd's selector and ports, the user's
/// labels and annotations, never owned); the generated ones carry Flux's annotations and
/// the discovered ports (each to its number, not the one `targetPort` names).
pub(super) fn services(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    println!(
        "$ kubectl apply -f podinfo-svc.yaml   # the user's own Services podinfo and podinfo-canary, before the canary"
    );
    p.cluster.apply(USERS_SERVICE)?;
    let canary = seed_004(|spec| {
        spec["service"]["portDiscovery"] = Y::Bool(true);
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary with portDiscovery: true",
    )?;

    let apex = get_json(p, &["service", "podinfo"])?;
    let ports = |svc: &Value| -> Vec<(String, i64, Value)> {
        svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["port"].as_i64().unwrap_or_default(),
                    p["targetPort"].clone(),
                )
            })
            .collect()
    };
    let want = vec![
        ("http".to_string(), 9898, json!(9898)),
        ("http-metrics".to_string(), 9797, json!(9797)),
        ("grpc".to_string(), 9999, json!(9999)),
    ];
    ensure!(
        apex["spec"]["selector"] == json!({"app": "podinfo-primary"}),
        "the adopted Service selects {}, expected the primary only",
        apex["spec"]["selector"]
    );
    ensure!(
        ports(&apex) == want,
        "the adopted Service's ports are {:?}, expected {want:?}",
        ports(&apex)
    );
    ensure!(
        apex["metadata"]["labels"]["team"] == "payments"
            && apex["metadata"]["annotations"]["owner"] == "payments",
        "the user's labels and annotations were lost: {}",
        apex["metadata"]
    );
    ensure!(
        has_flux_annotations(&apex),
        "the adopted Service lacks Flux's annotations"
    );
    ensure!(
        !owned_by_canary(&apex),
        "the user's Service is owned by the canary"
    );
    println!(
        "  the user's Service podinfo: selector app=podinfo-primary, ports http/http-metrics/grpc, its labels kept, not owned, Flux annotations"
    );
    for name in ["podinfo-primary", "podinfo-canary"] {
        let svc = get_json(p, &["service", name])?;
        ensure!(
            has_flux_annotations(&svc),
            "Service {name} lacks Flux's annotations"
        );
        // podinfo-canary is the user's too: adopted, not owned.
        ensure!(
            owned_by_canary(&svc) == (name == "podinfo-primary"),
            "Service {name}: owned by the canary is {}, expected only for the one flaggerd made",
            owned_by_canary(&svc)
        );
        ensure!(
            ports(&svc) == want,
            "Service {name}'s ports are {:?}, expected {want:?}",
            ports(&svc)
        );
    }
    println!(
        "  podinfo-primary (made, owned) and podinfo-canary (the user's, adopted): Flux annotations, ports discovered to their numbers"
    );
    promote(p, "test", "6.0.1")
}

const USERS_VIRTUAL_SERVICE: &str = "apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
  labels: {team: payments}
spec:
  hosts: [podinfo]
  http:
  - timeout: 7s
    route:
    - destination: {host: podinfo}
";

/// `revertOnDeletion` with the user's VirtualService: taken over without ownership, its
/// spec kept in `flagger.kubernetes.io/original-configuration`, and restored intact when
/// the canary is deleted (the object stays).
pub(super) fn revert(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    println!(
        "$ kubectl apply -f podinfo-vs.yaml   # the user's own VirtualService podinfo, before the canary"
    );
    p.cluster.apply(USERS_VIRTUAL_SERVICE)?;
    let original =
        get_json(p, &["virtualservices.networking.istio.io", "podinfo"])?["spec"].clone();
    let canary = seed_004(|spec| {
        spec["revertOnDeletion"] = Y::Bool(true);
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary with revertOnDeletion: true",
    )?;
    // The routes are written right after the initialization is recorded.
    let limit = std::time::Duration::from_secs(30);
    let vs = p.wait_for("the canary's routes in the VirtualService", limit, |p| {
        let vs = get_json(p, &["virtualservices.networking.istio.io", "podinfo"])?;
        Ok((vs["spec"] != original).then_some(vs))
    })?;
    ensure!(
        !owned_by_canary(&vs),
        "the user's VirtualService is owned by the canary"
    );
    // Applied with kubectl, the user's spec is in kubectl's last-applied configuration,
    // which Flagger (and flaggerd) restore from; else flaggerd keeps a copy.
    let annotations = &vs["metadata"]["annotations"];
    let kept: Value = match annotations["flagger.kubernetes.io/original-configuration"].as_str() {
        Some(text) => serde_json::from_str(text)?,
        None => {
            let applied = annotations["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .context("neither flagger.kubernetes.io/original-configuration nor kubectl's last-applied configuration")?;
            serde_json::from_str::<Value>(applied)?["spec"].clone()
        }
    };
    ensure!(
        kept == original,
        "the kept configuration {kept} is not the user's spec {original}"
    );
    println!(
        "  the VirtualService is the canary's routing, not owned, the user's spec kept (kubectl's last-applied configuration)"
    );
    p.kubectl(&["-n", "test", "delete", "canary", "podinfo", "--timeout=60s"])?;
    let vs = get_json(p, &["virtualservices.networking.istio.io", "podinfo"])?;
    ensure!(
        vs["spec"] == original,
        "after the canary's deletion the VirtualService is {}, expected the user's {original}",
        vs["spec"]
    );
    ensure!(
        vs["metadata"]["labels"]["team"] == "payments",
        "the user's label was lost"
    );
    // The routes went back only once the target served again (Flagger's order).
    let target = get_json(p, &["deployment", "podinfo"])?;
    let ready = target["status"]["readyReplicas"].as_i64().unwrap_or(0);
    ensure!(
        ready >= 1,
        "the VirtualService went back to podinfo before it was ready ({ready} ready replicas)"
    );
    println!(
        "  after the canary's deletion the VirtualService is the user's again, intact, and podinfo serves ({ready} ready)"
    );
    Ok(())
}

/// Two releases of one workload in a row on Istio: the second one's checks find the new
/// revision's series (the pod label keeps them apart) and it is promoted too.
pub(super) fn two_releases(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")?;
    promote(p, "test", "6.0.2")?;
    let row = p.row("test")?;
    ensure!(
        row.failed == 0,
        "the second release ended with {} failed checks",
        row.failed
    );
    Ok(())
}

const SOURCE_TEMPLATES: &str = r#"apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: error-rate
  namespace: test
spec:
  provider:
    type: prometheus
  query: |
    100 - sum(
        rate(
            istio_requests_total{
              reporter="source",
              destination_workload_namespace="{{ namespace }}",
              destination_workload=~"{{ target }}",
              response_code!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            istio_requests_total{
              reporter="source",
              destination_workload_namespace="{{ namespace }}",
              destination_workload=~"{{ target }}"
            }[{{ interval }}]
        )
    )
    * 100
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: test
spec:
  provider:
    type: prometheus
  query: |
    histogram_quantile(0.99,
      sum(
        rate(
          istio_request_duration_milliseconds_bucket{
            reporter="source",
            destination_workload_namespace="{{ namespace }}",
            destination_workload=~"{{ target }}"
          }[{{ interval }}]
        )
      ) by (le)
    )
"#;

/// Seed 004's canary on `gatewayapi:v1` (an HTTPRoute attached to a Gateway), its load sent
/// through the Gateway's Service with the route's host, checked by the MetricTemplates of
/// Flagger's Gateway API guide on the source reporter's series; after the promotion a user's
/// curl through the Gateway (`kubectl port-forward` on the real cluster) reaches the new
/// revision.
pub(super) fn gateway_api(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "gateway.yaml   # the Gateway public-gateway, and its Deployment and Service as Istio makes them",
        include_str!("../../e2e/gateway-api.yaml"),
    )?;
    p.podinfo("test")?;
    println!(
        "$ kubectl apply -f metric-templates.yaml   # error-rate and latency on reporter=\"source\", as Flagger's Gateway API guide"
    );
    p.cluster.apply(SOURCE_TEMPLATES)?;
    let canary = seed_004(|spec| {
        spec["provider"] = Y::from("gatewayapi:v1");
        let service = spec["service"]
            .as_mapping_mut()
            .context("seed 004's canary has no service")?;
        service.remove("gateways");
        service.insert(
            Y::from("gatewayRefs"),
            serde_yaml_ng::from_str("[{name: public-gateway, namespace: istio-ingress}]")?,
        );
        // As Flagger's Gateway API guide: the load enters through the Gateway.
        set_load_test(
            spec,
            "hey -z 1m -q 10 -c 2 -host app.example.com http://public-gateway-istio.istio-ingress/",
        )?;
        spec["analysis"]["metrics"] = serde_yaml_ng::from_str(
            "[{name: error-rate, templateRef: {name: error-rate}, thresholdRange: {max: 1}, interval: 1m},
              {name: latency, templateRef: {name: latency}, thresholdRange: {max: 500}, interval: 30s}]",
        )?;
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on gatewayapi:v1 with the guide's MetricTemplates",
    )?;
    promote(p, "test", "6.0.1")?;
    let measured = p
        .checks
        .iter()
        .filter(|(m, v)| m == "error-rate" && v.is_some())
        .count();
    ensure!(
        measured >= 5,
        "only {measured} error-rate checks found the source reporter's series"
    );
    println!("  {measured} error-rate checks measured the source reporter's series");
    let answer = super::curl_gateway(
        p,
        "istio-ingress",
        "public-gateway-istio",
        "app.example.com",
    )?;
    ensure!(
        answer.contains("6.0.1"),
        "through the Gateway after the promotion: {answer:?}, expected podinfo 6.0.1"
    );
    Ok(())
}

const DAEMONSET_CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: DaemonSet
    name: podinfo
  progressDeadlineSeconds: 60
  service:
    port: 9898
  analysis:
    interval: 10s
    threshold: 2
    iterations: 3
    webhooks:
    - name: curl-canary
      type: pre-rollout
      url: http://flagger-loadtester.test/
      timeout: 15s
      metadata:
        type: bash
        cmd: \"curl -sf http://podinfo-canary.test:9898/version | grep 6.0.1\"
";

/// A DaemonSet canary on the kubernetes provider whose pre-rollout check curls its canary
/// Service: the DaemonSet's pods are that Service's endpoints, and the check sees the new
/// revision.
pub(super) fn daemonset_kubernetes(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    super::daemonset_release(
        p,
        Some(DAEMONSET_CANARY),
        "the DaemonSet, and a kubernetes-provider canary with a pre-rollout curl",
    )?;
    super::finish(p, "the DaemonSet release", "Succeeded")?;
    p.expect_events(&[
        "New revision detected! Scaling up podinfo.test",
        "Pre-rollout check curl-canary passed",
        "Promotion completed! Scaling down podinfo.test",
    ])
}
