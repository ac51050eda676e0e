//! Flagger's Gloo e2e test (`test/gloo/`): Gloo's gateway proxy Service in front of mesh-sim,
//! the VirtualService of Flagger's test delegating `app.example.com` to the canary's
//! RouteTable, and the config Upstream whose settings the generated Upstreams copy.

use std::time::Duration;

use anyhow::{Result, ensure};

use super::providers::{
    Front, ab_then_rollback, acceptance_through, front_canary, promoted_by_series,
};
use super::{Play, promote};

/// Gloo's gateway proxy, as Flagger's Gloo test reaches it.
const GLOO: Front = Front {
    provider: "gloo",
    url: "http://gateway-proxy.gloo-system",
    header: "x-canary",
};

/// The VirtualService of Flagger's Gloo test: `app.example.com` delegated to the RouteTable
/// flaggerd makes for the canary.
const VIRTUAL_SERVICE: &str = "apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: podinfo
  namespace: gloo-system
spec:
  virtualHost:
    domains:
      - app.example.com
    routes:
      - matchers:
          - prefix: /
        delegateAction:
          ref:
            name: podinfo
            namespace: test
";

/// The Upstream of Flagger's Gloo test whose connection and load-balancing settings the
/// canary's Upstreams copy (`spec.upstreamRef`); nothing routes to it.
const CONFIG_UPSTREAM: &str = "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: config-upstream
  namespace: gloo-system
spec:
  static:
    hosts:
      - addr: example.com
        port: 80
  connectionConfig:
    connectTimeout: 2s
    maxRequestsPerConnection: 51
  loadBalancerConfig:
    roundRobin:
      slowStartConfig:
        slowStartWindow: 2m
        minWeightPercent: 5
";

/// The canary's Upstream, as Flagger's test reads it.
const CANARY_UPSTREAM: &str = "upstream test-podinfo-canaryupstream-9898";

/// Flagger's Gloo e2e test: Upstreams with the config Upstream's settings (and a change of
/// them followed), an acceptance test through the gateway proxy, a promotion judged by
/// Envoy's upstream series, then the A/B release and rollback of [`ab_then_rollback`].
pub(super) fn gloo(p: &mut Play<'_>) -> Result<()> {
    p.apply_shown(
        "gloo.yaml   # Gloo's gateway proxy Deployment and Service in gloo-system",
        include_str!("../../e2e/gloo.yaml"),
    )?;
    p.podinfo("test")?;
    p.apply_shown(
        "podinfo-virtualservice.yaml   # app.example.com delegated to the RouteTable test/podinfo",
        VIRTUAL_SERVICE,
    )?;
    p.apply_shown(
        "config-upstream.yaml   # settings for the generated Upstreams, as Flagger's test",
        CONFIG_UPSTREAM,
    )?;
    let canary = front_canary(&GLOO, |spec| {
        spec["upstreamRef"] = serde_yaml_ng::from_str(
            "{apiVersion: gloo.solo.io/v1, kind: Upstream, name: config-upstream, namespace: gloo-system}",
        )?;
        acceptance_through(spec, &GLOO)
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary on gloo with upstreamRef config-upstream",
    )?;
    let per_connection = p.kubectl_words(&format!(
        "-n test get {CANARY_UPSTREAM} -o jsonpath={{.spec.connectionConfig.maxRequestsPerConnection}}"
    ))?;
    ensure!(
        per_connection.trim() == "51",
        "the canary Upstream's maxRequestsPerConnection is {per_connection:?}, not the config Upstream's 51"
    );
    p.kubectl(&[
        "-n",
        "gloo-system",
        "patch",
        "upstream",
        "config-upstream",
        "--type",
        "json",
        "-p",
        r#"[{"op": "replace", "path": "/spec/loadBalancerConfig/roundRobin/slowStartConfig/minWeightPercent", "value": 20}]"#,
    ])?;
    let slow_start = [
        "-n",
        "test",
        "get",
        "upstream",
        "test-podinfo-canaryupstream-9898",
        "-o",
        "jsonpath={.spec.loadBalancerConfig.roundRobin.slowStartConfig.minWeightPercent}",
    ];
    p.wait_for(
        "the config Upstream's new minWeightPercent on the canary Upstream",
        Duration::from_secs(60),
        |p| Ok((p.cluster.kubectl(&slow_start)?.trim() == "20").then_some(())),
    )?;
    println!("  the canary Upstream follows the config Upstream: minWeightPercent 20");
    promote(p, "test", "6.0.1")?;
    let weights = p.kubectl_words(
        "-n test get routetable podinfo -o jsonpath={.spec.routes[0].routeAction.multi.destinations[*].weight}",
    )?;
    ensure!(
        weights.trim() == "100",
        "after the promotion the RouteTable's weights are {weights:?}: the primary's 100, the canary's left out"
    );
    promoted_by_series(p, "Gloo's Envoy series of the canary upstream")?;
    ab_then_rollback(p, &GLOO)
}
