//! The ingress and mesh providers beyond the seeds', played as Flagger's own end-to-end tests
//! play them: NGINX (`test/nginx/`), with ingress-nginx's controller Service in front of
//! mesh-sim and the Ingress of Flagger's test; Contour (`test/contour/`), with Envoy's Service
//! and the root HTTPProxy of Flagger's test; Traefik (`test/traefik/`), with Traefik's Service and
//! the IngressRoute of Flagger's test; Skipper, APISIX, Kuma and OSM. Gloo's is in `gloo.rs`.

use anyhow::{Context, Result, ensure};
use serde_yaml_ng::Value as Y;

use super::fidelity::{analysis_of, seed_004, set_load_test, without_istio_hosts};
use super::seeds::WATCH_500;
use super::{Play, expect, fail, finish, iteration_events, promote, release};

/// The Ingress of Flagger's NGINX e2e test, on seed 004's port: `app.example.com` to the
/// apex Service `podinfo`.
const PODINFO_INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: podinfo
  namespace: test
  labels:
    app: podinfo
  annotations:
    kubernetes.io/ingress.class: nginx
spec:
  rules:
    - host: app.example.com
      http:
        paths:
          - pathType: Prefix
            path: /
            backend:
              service:
                name: podinfo
                port:
                  number: 9898
";

/// An ingress in front of podinfo, as the load tester reaches it: the canary's provider, the
/// ingress's Service URL and the header of Flagger's A/B test for it.
pub(super) struct Front {
    pub(super) provider: &'static str,
    pub(super) url: &'static str,
    pub(super) header: &'static str,
}

/// ingress-nginx's controller, as Flagger's NGINX test reaches it.
const NGINX: Front = Front {
    provider: "nginx",
    url: "http://ingress-nginx-controller.ingress-nginx",
    header: "x-user",
};

/// Contour's Envoy, as Flagger's Contour test reaches it.
const CONTOUR: Front = Front {
    provider: "contour",
    url: "http://envoy.projectcontour",
    header: "x-canary",
};

/// Traefik, as Flagger's Traefik test reaches it (Flagger has no A/B testing on Traefik).
const TRAEFIK: Front = Front {
    provider: "traefik",
    url: "http://traefik.traefik",
    header: "",
};

/// Skipper, as Flagger's Skipper test reaches it (Flagger has no A/B testing on Skipper).
const SKIPPER: Front = Front {
    provider: "skipper",
    url: "http://skipper-ingress.kube-system",
    header: "",
};

/// APISIX's gateway, as Flagger's APISIX test reaches it (no A/B testing on APISIX).
const APISIX: Front = Front {
    provider: "apisix",
    url: "http://apisix-gateway.apisix",
    header: "",
};

/// Seed 004's canary on the front's provider, its load sent through the front with the
/// host `app.example.com` (as Flagger's tests), then `edit`; NGINX's and Skipper's name
/// `ingressRef`.
pub(super) fn front_canary(
    front: &Front,
    edit: impl FnOnce(&mut Y) -> Result<()>,
) -> Result<String> {
    seed_004(|spec| {
        spec["provider"] = Y::from(front.provider);
        if ["nginx", "skipper"].contains(&front.provider) {
            spec["ingressRef"] = serde_yaml_ng::from_str(
                "{apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}",
            )?;
        }
        if front.provider == "apisix" {
            spec["routeRef"] = serde_yaml_ng::from_str(
                "{apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}",
            )?;
        }
        without_istio_hosts(spec)?;
        set_load_test(
            spec,
            &format!("hey -z 1m -q 10 -c 2 -host app.example.com {}/", front.url),
        )?;
        edit(spec)
    })
}

/// How many `metric` checks found a value (the canary upstream's series had traffic).
fn measured(p: &Play<'_>, metric: &str) -> usize {
    p.checks
        .iter()
        .filter(|(m, v)| m == metric && v.is_some())
        .count()
}

/// Flagger's NGINX e2e test: a promotion by weight through the canary Ingress, then the A/B
/// release and rollback of [`ab_then_rollback`].
pub(super) fn nginx(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "ingress-nginx.yaml   # the controller's IngressClass, Deployment and Service, as its chart makes them",
        include_str!("../../e2e/ingress-nginx.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-ingress.yaml   # app.example.com to podinfo, as Flagger's NGINX test",
        PODINFO_INGRESS,
    )?;
    p.canary(
        &front_canary(&NGINX, |_| Ok(()))?,
        "podinfo-canary.yaml   # seed 004's canary on nginx with ingressRef podinfo",
    )?;
    promote(p, "test", "6.0.1")?;
    let annotations =
        p.kubectl_words("-n test get ingress podinfo-canary -o jsonpath={.metadata.annotations}")?;
    for wanted in [
        r#""nginx.ingress.kubernetes.io/canary":"true""#,
        r#""nginx.ingress.kubernetes.io/canary-weight":"0""#,
    ] {
        ensure!(
            annotations.contains(wanted),
            "after the promotion the canary Ingress lacks {wanted}: {annotations}"
        );
    }
    promoted_by_series(p, "ingress-nginx's canary series")?;
    ab_then_rollback(p, &NGINX)
}

/// The root HTTPProxy of Flagger's Contour test: `app.example.com`, including the HTTPProxy
/// flaggerd makes for the canary.
const ROOT_PROXY: &str = "apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata:
  name: podinfo-ingress
  namespace: test
spec:
  virtualhost:
    fqdn: app.example.com
  includes:
    - name: podinfo
      namespace: test
      conditions:
        - prefix: /
";

/// Flagger's Contour e2e test: the HTTPProxy of class `contour` (flaggerd runs with
/// `-ingress-class=contour`) included by a root proxy, an acceptance test through Envoy, a
/// promotion judged by Envoy's upstream series, then the A/B release and rollback of
/// [`ab_then_rollback`].
pub(super) fn contour(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "contour.yaml   # Contour's Envoy Deployment and Service in projectcontour",
        include_str!("../../e2e/contour.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-ingress.yaml   # the root HTTPProxy for app.example.com, including podinfo",
        ROOT_PROXY,
    )?;
    let canary = front_canary(&CONTOUR, |spec| acceptance_through(spec, &CONTOUR))?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on contour",
    )?;
    let class =
        p.kubectl_words("-n test get httpproxy podinfo -o jsonpath={.spec.ingressClassName}")?;
    ensure!(
        class.trim() == "contour",
        "the HTTPProxy's ingressClassName is {class:?}, not contour"
    );
    promote(p, "test", "6.0.1")?;
    let weights = p.kubectl_words(
        "-n test get httpproxy podinfo -o jsonpath={.spec.routes[0].services[*].weight}",
    )?;
    ensure!(
        weights.trim() == "100",
        "after the promotion the HTTPProxy's weights are {weights:?}: the primary's 100, the canary's left out"
    );
    promoted_by_series(p, "Contour's Envoy series of podinfo-canary")?;
    ab_then_rollback(p, &CONTOUR)
}

/// The IngressRoute of Flagger's Traefik test: `app.example.com` to the TraefikService
/// flaggerd makes for the canary.
const INGRESS_ROUTE: &str = "apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: podinfo
  namespace: test
spec:
  entryPoints:
    - web
  routes:
    - match: Host(`app.example.com`)
      kind: Rule
      services:
        - name: podinfo
          kind: TraefikService
";

/// Flagger's Traefik e2e test: the TraefikService with the apex labels and annotations, an
/// acceptance test through Traefik, a promotion judged by Traefik's service series, then a
/// rollback on HTTP 500s sent through Traefik.
pub(super) fn traefik(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "traefik.yaml   # Traefik's Deployment and Service in traefik, as its chart makes them",
        include_str!("../../e2e/traefik.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-ingressroute.yaml   # app.example.com to the TraefikService podinfo",
        INGRESS_ROUTE,
    )?;
    let canary = front_canary(&TRAEFIK, |spec| {
        spec["service"]["apex"] = serde_yaml_ng::from_str(
            "{labels: {test: test-label}, annotations: {test: test-annotation}}",
        )?;
        acceptance_through(spec, &TRAEFIK)
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on traefik, apex metadata as Flagger's test",
    )?;
    let meta = p.kubectl_words("-n test get traefikservice podinfo -o jsonpath={.metadata}")?;
    for wanted in [r#""test":"test-label""#, r#""test":"test-annotation""#] {
        ensure!(
            meta.contains(wanted),
            "the TraefikService lacks {wanted}: {meta}"
        );
    }
    promote(p, "test", "6.0.1")?;
    let services = p.kubectl_words(
        "-n test get traefikservice podinfo -o jsonpath={.spec.weighted.services[*].name}",
    )?;
    ensure!(
        services.trim() == "podinfo-primary",
        "after the promotion the TraefikService routes to {services:?}, not podinfo-primary alone"
    );
    promoted_by_series(p, "Traefik's series of podinfo-canary")?;
    rollback_through(p, &TRAEFIK)
}

/// Flagger's Skipper e2e test: `<ingress>-canary` weighted by `zalando.org/backend-weights`,
/// a promotion judged by Skipper's route series, then a rollback on HTTP 500s sent through
/// Skipper.
pub(super) fn skipper(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "skipper.yaml   # Skipper's Deployment and Service in kube-system, as Zalando's manifests",
        include_str!("../../e2e/skipper.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-ingress.yaml   # app.example.com to podinfo, class skipper",
        &PODINFO_INGRESS.replace("ingress.class: nginx", "ingress.class: skipper"),
    )?;
    let canary = front_canary(&SKIPPER, |_| Ok(()))?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on skipper with ingressRef podinfo",
    )?;
    promote(p, "test", "6.0.1")?;
    let annotations =
        p.kubectl_words("-n test get ingress podinfo-canary -o jsonpath={.metadata.annotations}")?;
    for wanted in [
        r#"{\"podinfo-canary\":0,\"podinfo-primary\":100}"#,
        r#""zalando.org/skipper-predicate":"False()""#,
    ] {
        ensure!(
            annotations.contains(wanted),
            "after the promotion the canary Ingress lacks {wanted}: {annotations}"
        );
    }
    promoted_by_series(p, "Skipper's route series of podinfo-canary")?;
    rollback_through(p, &SKIPPER)
}

/// The ApisixRoute of Flagger's APISIX test, on seed 004's port.
const APISIX_ROUTE: &str = "apiVersion: apisix.apache.org/v2
kind: ApisixRoute
metadata:
  name: podinfo
  namespace: test
spec:
  http:
    - backends:
        - serviceName: podinfo
          servicePort: 9898
      match:
        hosts:
          - app.example.com
        methods:
          - GET
        paths:
          - /*
      name: method
      plugins:
        - name: prometheus
          enable: true
          config:
            disable: false
            prefer_name: true
";

/// Flagger's APISIX e2e test: `podinfo-podinfo-canary`, a copy of the ApisixRoute with
/// weighted primary and canary backends, a promotion judged by APISIX's route series, then a
/// rollback on HTTP 500s sent through the gateway.
pub(super) fn apisix(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "apisix.yaml   # APISIX's gateway Deployment and Service in apisix, as its chart makes them",
        include_str!("../../e2e/apisix.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-apisixroute.yaml   # app.example.com to podinfo, as Flagger's APISIX test",
        APISIX_ROUTE,
    )?;
    let canary = front_canary(&APISIX, |_| Ok(()))?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on apisix with routeRef podinfo",
    )?;
    promote(p, "test", "6.0.1")?;
    let weights = p.kubectl_words(
        "-n test get apisixroute podinfo-podinfo-canary -o jsonpath={.spec.http[0].backends[*].weight}",
    )?;
    ensure!(
        weights.trim() == "100 0",
        "after the promotion the ApisixRoute copy weighs {weights:?}, not 100 0"
    );
    promoted_by_series(p, "APISIX's route series of the copy")?;
    rollback_through(p, &APISIX)
}

/// Adds Flagger's pre-rollout acceptance test through the front (a POST to `/token`).
pub(super) fn acceptance_through(spec: &mut Y, front: &Front) -> Result<()> {
    let hooks = spec["analysis"]["webhooks"]
        .as_sequence_mut()
        .context("seed 004's canary has webhooks")?;
    hooks.insert(
        0,
        serde_yaml_ng::from_str(&format!(
            "{{name: {}-acceptance-test, type: pre-rollout, url: http://flagger-loadtester.test/, timeout: 10s,
              metadata: {{type: bash, cmd: \"curl -sd 'test' -H 'Host: app.example.com' {}/token | grep token\"}}}}",
            front.provider, front.url
        ))?,
    );
    Ok(())
}

/// Fails unless at least 5 success-rate checks of the promotion found the provider's series.
pub(super) fn promoted_by_series(p: &Play<'_>, series: &str) -> Result<()> {
    let promoted = measured(p, "request-success-rate");
    ensure!(
        promoted >= 5,
        "only {promoted} success-rate checks found {series}"
    );
    println!("  {promoted} success-rate checks measured {series}");
    Ok(())
}

/// An A/B release for requests with the front's header `insider`, checked with curl as
/// Flagger's `test-header-routing` webhook does, then a rollback on HTTP 500s sent through
/// the front (last: the errors stay in the metrics' one-minute window).
pub(super) fn ab_then_rollback(p: &mut Play<'_>, front: &Front) -> Result<()> {
    let (url, header) = (front.url, front.header);
    let ab = front_canary(front, |spec| {
        let analysis = analysis_of(spec)?;
        analysis.remove("maxWeight");
        analysis.remove("stepWeight");
        analysis.insert(Y::from("iterations"), Y::from(10));
        analysis.insert(
            Y::from("match"),
            serde_yaml_ng::from_str(&format!("[{{headers: {{{header}: {{exact: insider}}}}}}]"))?,
        );
        let hooks = analysis
            .get_mut("webhooks")
            .and_then(Y::as_sequence_mut)
            .context("seed 004's canary has webhooks")?;
        hooks.push(serde_yaml_ng::from_str(&format!(
            "{{name: test-header-routing, type: rollout, url: http://flagger-loadtester.test/, timeout: 5s,
              metadata: {{type: bash, cmd: \"curl -sH '{header}: insider' -H 'Host: app.example.com' {url} | grep 6.0.2\"}}}}"
        ))?);
        for hook in hooks.iter_mut().filter(|h| h["name"] == "load-test") {
            hook["metadata"]["cmd"] = Y::from(format!(
                "hey -z 1m -q 10 -c 2 -H '{header}: insider' -host app.example.com {url}/"
            ));
        }
        Ok(())
    })?;
    p.apply_canary(
        &ab,
        &format!("podinfo-abtest.yaml   # A/B: 10 iterations for requests with {header}: insider"),
    )?;
    let before = measured(p, "request-success-rate");
    release(p, "test", "6.0.2")?;
    finish(p, "the A/B release", "Succeeded")?;
    expect(p, &iteration_events(&[], true))?;
    let ab_checks = measured(p, "request-success-rate") - before;
    ensure!(
        ab_checks >= 5,
        "only {ab_checks} success-rate checks of the A/B release found canary traffic"
    );
    println!(
        "  {ab_checks} A/B success-rate checks measured requests the header sent to the canary"
    );
    p.apply_canary(
        &front_canary(front, |_| Ok(()))?,
        "podinfo-canary.yaml   # back to the weighted analysis",
    )?;
    rollback_through(p, front)
}

/// A release that fails on HTTP 500s sent through the front (last in a scenario: the errors
/// stay in the metrics' one-minute window).
fn rollback_through(p: &mut Play<'_>, front: &Front) -> Result<()> {
    let url = front.url;
    let errors = format!(
        "while true; do curl -s --max-time 5 -H 'Host: app.example.com' {url}/status/500 >/dev/null; sleep 0.2; done"
    );
    fail(
        p,
        "test",
        "6.0.3",
        &format!("watch curl -H 'Host: app.example.com' {url}/status/500"),
        &errors,
        "success rate",
    )?;
    Ok(())
}

/// Kuma: seed 001's canary on `kuma`, routed by the cluster-scoped TrafficRoute `podinfo` in
/// the mesh its `kuma.io/mesh` annotation names, judged by Kuma's dataplane series: a
/// promotion, then a rollback on HTTP 500s.
pub(super) fn kuma(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    let mut doc: Y = serde_yaml_ng::from_str(&super::fixture("001-linkerd.yaml")?)?;
    doc["spec"]["provider"] = Y::from("kuma");
    doc["metadata"]["annotations"] = serde_yaml_ng::from_str("{kuma.io/mesh: default}")?;
    p.canary(
        &serde_yaml_ng::to_string(&doc)?,
        "podinfo-canary.yaml   # seed 001's canary on kuma, mesh default",
    )?;
    promote(p, "test", "6.0.1")?;
    let split =
        p.kubectl_words("get trafficroute podinfo -o jsonpath={.spec.conf.split[*].weight}")?;
    ensure!(
        split.trim() == "100 0",
        "after the promotion the TrafficRoute splits {split:?}, not 100 0"
    );
    promoted_by_series(p, "Kuma's dataplane series of podinfo-canary")?;
    fail(p, "test", "6.0.2", WATCH_500.0, WATCH_500.1, "success rate")
}

/// Open Service Mesh: seed 001's canary on `osm`, routed by an SMI v1alpha2 TrafficSplit and
/// judged by OSM's builtin queries (`osm_request_total`, `osm_request_duration_ms`): a
/// promotion, then a rollback on HTTP 500s.
pub(super) fn osm(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    let mut doc: Y = serde_yaml_ng::from_str(&super::fixture("001-linkerd.yaml")?)?;
    doc["spec"]["provider"] = Y::from("osm");
    p.canary(
        &serde_yaml_ng::to_string(&doc)?,
        "podinfo-canary.yaml   # seed 001's canary on osm",
    )?;
    promote(p, "test", "6.0.1")?;
    p.kubectl_words("-n test get trafficsplits.v1alpha2.split.smi-spec.io podinfo")?;
    let checked = measured(p, "request-success-rate");
    ensure!(
        checked >= 5,
        "only {checked} success-rate checks found OSM's series"
    );
    println!("  {checked} success-rate checks measured osm_request_total");
    fail(p, "test", "6.0.2", WATCH_500.0, WATCH_500.1, "success rate")
}
