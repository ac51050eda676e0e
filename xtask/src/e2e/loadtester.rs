//! The loadtester's tools as Flagger's guides use them: helm and helmv3 tasks, `helm test`,
//! and gRPC checks with grpc_health_probe and ghz.

use anyhow::{Context, Result, ensure};
use serde_yaml_ng::Value as Y;

use super::fidelity::seed_004;
use super::{Play, promote};

/// Seed 004's canary with two more pre-rollout checks of Flagger's loadtester task types
/// `helm` and `helmv3`: `helm version` and `helm list` of the canary's namespace.
pub(super) fn loadtester_helm(p: &mut Play<'_>) -> Result<()> {
    loadtester_tools(p)?;
    p.podinfo("test")?;
    let canary = seed_004(|spec| {
        let hooks = spec["analysis"]["webhooks"]
            .as_sequence_mut()
            .context("seed 004's canary has webhooks")?;
        for (name, kind, cmd) in [
            ("helm-version", "helm", "version --short"),
            ("helm-list", "helmv3", "list --namespace test"),
        ] {
            hooks.insert(
                0,
                serde_yaml_ng::from_str(&format!(
                    "{{name: {name}, type: pre-rollout, url: 'http://flagger-loadtester.test/', timeout: 30s, metadata: {{type: {kind}, cmd: '{cmd}'}}}}"
                ))?,
            );
        }
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary with helm and helmv3 pre-rollout tasks",
    )?;
    promote(p, "test", "6.0.1")?;
    p.expect_events(&[
        "Pre-rollout check helm-list passed",
        "Pre-rollout check helm-version passed",
    ])
}

/// Gives the cluster's loadtester what its image carries beyond Debian's programs: helm,
/// grpc_health_probe and ghz from the pinned module (xtask/tools), first on its PATH, and
/// gRPC's health.proto; returns where that file is (`/tmp/ghz/health.proto` in the image).
fn loadtester_tools(p: &mut Play<'_>) -> Result<std::path::PathBuf> {
    let tools = crate::image::build_tools()?;
    let bin = p.cluster.dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    for (name, _) in crate::image::TOOL_COMMANDS {
        std::fs::copy(tools.join(name), bin.join(name))
            .with_context(|| format!("cannot copy {name} into the cluster's PATH"))?;
    }
    let proto = std::path::absolute(p.cluster.dir.join("health.proto"))?;
    std::fs::copy(crate::image::HEALTH_PROTO, &proto)
        .with_context(|| format!("cannot copy {}", crate::image::HEALTH_PROTO))?;
    Ok(proto)
}

/// Seed 004's canary with port discovery (podinfo's gRPC port 9999 on its Services) and the
/// gRPC webhooks of Flagger's guides: `grpc_health_probe` and a short `ghz` run against the
/// canary as pre-rollout checks, `ghz` as the load test. gRPC goes through mesh-sim's
/// CONNECT tunnel (HTTPS_PROXY), routed call by call.
pub(super) fn grpc(p: &mut Play<'_>) -> Result<()> {
    let proto = loadtester_tools(p)?;
    let proto = proto.display();
    p.podinfo("test")?;
    let ghz = format!("ghz --insecure --proto={proto} --call=grpc.health.v1.Health/Check");
    let canary = seed_004(|spec| {
        spec["service"]["portDiscovery"] = Y::from(true);
        let hooks = spec["analysis"]["webhooks"]
            .as_sequence_mut()
            .context("seed 004's canary has webhooks")?;
        hooks.insert(
            0,
            serde_yaml_ng::from_str(&format!(
                "{{name: ghz-check, type: pre-rollout, url: 'http://flagger-loadtester.test/', timeout: 30s, metadata: {{type: bash, cmd: \"{ghz} -n 20 podinfo-canary.test:9999 | grep -F '[OK]   20 responses'\"}}}}"
            ))?,
        );
        hooks.insert(
            0,
            serde_yaml_ng::from_str(
                "{name: grpc-health, type: pre-rollout, url: 'http://flagger-loadtester.test/', timeout: 30s, metadata: {type: bash, cmd: 'grpc_health_probe -addr=podinfo-canary.test:9999'}}",
            )?,
        );
        hooks.push(serde_yaml_ng::from_str(&format!(
            "{{name: grpc-load, url: 'http://flagger-loadtester.test/', timeout: 5s, metadata: {{cmd: '{ghz} -z 1m -q 10 -c 2 podinfo.test:9999'}}}}"
        ))?);
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary with portDiscovery and gRPC webhooks (grpc_health_probe, ghz)",
    )?;
    // The probe tells a serving service from an unknown one, so the check can fail.
    let unknown = p.shell(
        "grpc_health_probe -addr=podinfo.test:9999 -service=nope; echo exit=$?",
        "grpc_health_probe -addr=podinfo.test:9999 -service=nope 2>&1; echo exit=$?",
    )?;
    ensure!(
        unknown.contains("NotFound") && !unknown.contains("exit=0"),
        "grpc_health_probe for an unknown service: {unknown:?}"
    );
    promote(p, "test", "6.0.1")?;
    p.expect_events(&[
        "Pre-rollout check grpc-health passed",
        "Pre-rollout check ghz-check passed",
    ])
}

/// Seed 004's canary with Flagger's "helm test" pre-rollout check: the loadtester's
/// `helmv3` task runs `helm test` on a release installed beside podinfo, whose test hook Pod
/// curls the canary. First a release whose test Pod cannot start (its image cannot be
/// pulled) shows `helm test` failing, so the check can fail.
pub(super) fn helm_test(p: &mut Play<'_>) -> Result<()> {
    loadtester_tools(p)?;
    p.podinfo("test")?;
    let chart = std::path::absolute("xtask/e2e/charts/podinfo-tests")?;
    let chart = chart.display();
    p.shell(
        "helm install podinfo-tests ./podinfo-tests -n test",
        &format!("helm install podinfo-tests {chart} -n test"),
    )?;
    p.shell(
        "helm install podinfo-broken ./podinfo-tests -n test --set image=ghcr.io/example/missing:1.0",
        &format!(
            "helm install podinfo-broken {chart} -n test --set image=ghcr.io/example/missing:1.0"
        ),
    )?;
    let broken = p.shell(
        "helm test podinfo-broken -n test --timeout 10s; echo exit=$?",
        "helm test podinfo-broken -n test --timeout 10s 2>&1; echo exit=$?",
    )?;
    ensure!(
        !broken.contains("exit=0"),
        "helm test of a release whose test Pod cannot start passed: {broken:?}"
    );
    let canary = seed_004(|spec| {
        let hooks = spec["analysis"]["webhooks"]
            .as_sequence_mut()
            .context("seed 004's canary has webhooks")?;
        hooks.insert(
            0,
            serde_yaml_ng::from_str(
                "{name: helm-test, type: pre-rollout, url: 'http://flagger-loadtester.test/', timeout: 3m, metadata: {type: helmv3, cmd: 'test podinfo-tests -n test --timeout 60s'}}",
            )?,
        );
        Ok(())
    })?;
    p.canary(
        &canary,
        "podinfo-canary.yaml   # seed 004's canary with a helm test pre-rollout check",
    )?;
    promote(p, "test", "6.0.1")?;
    p.expect_events(&["Pre-rollout check helm-test passed"])?;
    let phase = p.kubectl(&[
        "-n",
        "test",
        "get",
        "pod",
        "podinfo-tests-curl",
        "-o",
        "jsonpath={.status.phase}",
    ])?;
    ensure!(
        phase.trim() == "Succeeded",
        "the release's test Pod is {phase:?}, expected Succeeded"
    );
    Ok(())
}
