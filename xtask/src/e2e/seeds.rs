//! The seeds' scenarios, each as the seed tells it.

use super::*;

pub(crate) fn appmesh_workshop(p: &mut Play<'_>) -> Result<()> {
    let verbatim = fixture("000-appmesh-workshop.yaml")?;
    p.podinfo("demo")?;
    println!("$ kubectl apply -f canary.yaml   # the workshop's spec, verbatim");
    match p.cluster.apply(&verbatim) {
        Ok(out) => bail!("the mis-indented spec was accepted: {out}"),
        Err(e) => {
            let message = format!("{e:#}");
            println!("  {message}");
            if !message.contains("line 66") {
                bail!("the rejection does not name the line of the webhooks block: {message}");
            }
        }
    }
    let fixed = fix_workshop_indentation(&verbatim);
    p.canary(&fixed, "canary.yaml   # webhooks block re-indented")?;
    promote(p, "demo", "6.0.1")?;
    fail(
        p,
        "demo",
        "6.0.2",
        "hey -z 1m -c 5 -q 5 http://podinfo-canary.demo:9898/status/500",
        "hey -z 1m -c 5 -q 5 http://podinfo-canary.demo:9898/status/500",
        "success rate",
    )
}

/// The workshop's webhooks block with its list items indented as YAML needs.
pub(crate) fn fix_workshop_indentation(text: &str) -> String {
    let mut out = String::new();
    let mut in_hooks = false;
    for line in text.lines() {
        if line.trim_start().starts_with("webhooks:") {
            in_hooks = true;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if in_hooks && !line.trim().is_empty() {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            let fixed = match indent {
                8 if body.starts_with("- ") => format!("      {body}"),
                8 => format!("        {body}"),
                12 => format!("          {body}"),
                _ => line.to_string(),
            };
            out.push_str(&fixed);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

pub(crate) fn appmesh_promotion(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("002-appmesh-v1beta2.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")
}

pub(crate) fn linkerd(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("001-linkerd.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")
}

/// Seed 002's A/B edit of its canary: "remove the max/step weight and add the match
/// conditions and iterations" (and the A/B load test); the metrics stay, so the checks only
/// pass if mesh-sim routes the matching requests to the canary.
pub(crate) fn ab_spec(base: &str, ab: &str) -> Result<String> {
    use serde_yaml_ng::Value as Y;
    let mut doc: Y = serde_yaml_ng::from_str(base)?;
    let edit: Y = serde_yaml_ng::from_str(ab)?;
    let analysis = doc["spec"]["analysis"]
        .as_mapping_mut()
        .context("seed 002's canary has no analysis")?;
    analysis.remove("maxWeight");
    analysis.remove("stepWeight");
    for key in ["interval", "threshold", "iterations", "match", "webhooks"] {
        analysis.insert(Y::from(key), edit["spec"]["analysis"][key].clone());
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

pub(crate) fn ab_testing(p: &mut Play<'_>, file: &str) -> Result<()> {
    p.podinfo("test")?;
    let spec = ab_spec(&fixture("002-appmesh-v1beta2.yaml")?, &fixture(file)?)?;
    p.canary(
        &spec,
        "podinfo-abtest.yaml   # seed 002's canary with its A/B edit",
    )?;
    set_image(p, "test", "6.0.1")?;
    finish(p, "the A/B release", "Succeeded")?;
    expect(p, &iteration_events(&[], true))?;
    // The canary had traffic only if mesh-sim routed the matching requests to it.
    let measured = p
        .checks
        .iter()
        .filter(|(m, v)| m == "request-success-rate" && v.is_some_and(|v| v >= 99.0))
        .count();
    if measured < 5 {
        bail!("only {measured} success-rate checks measured the canary's A/B traffic");
    }
    println!("  {measured} success-rate checks measured the A/B traffic that reached the canary");
    Ok(())
}

/// Seed 004's failure: `watch curl .../status/500` as shown, and the bounded loop run for it.
pub(crate) const WATCH_500: (&str, &str) = (
    "watch curl http://podinfo-canary:9898/status/500",
    // `--max-time`: one request that never ends must not stop the load.
    "while true; do curl -s --max-time 5 http://podinfo-canary:9898/status/500 >/dev/null; sleep 1; done",
);

pub(crate) fn istio_errors(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    promote(p, "test", "6.0.1")?;
    fail(p, "test", "6.0.2", WATCH_500.0, WATCH_500.1, "success rate")
}

pub(crate) fn istio_latency(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    fail(
        p,
        "test",
        "6.0.1",
        "watch -n 1 curl http://podinfo-canary:9898/delay/1",
        "while true; do curl -s --max-time 5 http://podinfo-canary:9898/delay/1 >/dev/null; sleep 1; done",
        "request duration",
    )
}

pub(crate) fn blue_green(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(
        include_str!("../../e2e/bluegreen.yaml"),
        "podinfo-bluegreen.yaml",
    )?;
    set_image(p, "test", "6.0.1")?;
    finish(p, "the blue/green release", "Succeeded")?;
    // The kubernetes provider has no routes to move back: no "Routing all traffic" event.
    expect(
        p,
        &iteration_events(&["Pre-rollout check smoke-test passed"], false),
    )
}

pub(crate) fn daemonset(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    daemonset_release(p, None, "a DaemonSet and its Canary")?;
    p.wait_for("a podinfo pod of the new revision", PHASE_TIMEOUT, |p| {
        let pods = p.cluster.kubectl(&["get", "pods", "-n", "test"])?;
        let canary = pods.lines().any(|l| {
            l.starts_with("podinfo-") && !l.starts_with("podinfo-primary-") && l.contains("Running")
        });
        Ok(canary.then_some(()))
    })?;
    p.kubectl(&["get", "pods", "-n", "test"])?;
    finish(p, "the DaemonSet release", "Succeeded")?;
    let mut events = vec![
        "New revision detected! Scaling up podinfo.test".to_string(),
        "Pre-rollout check smoke-test passed".to_string(),
    ];
    events.extend((1..=5).map(|i| format!("Advance podinfo.test canary iteration {i}/5")));
    events.push("Copying podinfo.test template spec to podinfo-primary.test".to_string());
    events.push("Routing all traffic to primary".to_string());
    events.push("Promotion completed! Scaling down podinfo.test".to_string());
    expect(p, &events)?;
    let primary = p.cluster.kubectl(&[
        "-n",
        "test",
        "get",
        "daemonset",
        "podinfo-primary",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])?;
    if !primary.ends_with(":6.0.1") {
        bail!("after the promotion the DaemonSet podinfo-primary runs {primary}, expected 6.0.1");
    }
    println!("  podinfo-primary now runs {primary}");
    // Scaled down as Flagger does it: a node selector no node carries, so no pod is left.
    p.wait_for("the canary DaemonSet without pods", PHASE_TIMEOUT, |p| {
        let pods = p
            .cluster
            .kubectl(&["get", "pods", "-n", "test", "-o", "name"])?;
        let canary = pods
            .lines()
            .any(|l| l.starts_with("pod/podinfo-") && !l.starts_with("pod/podinfo-primary-"));
        Ok((!canary).then_some(()))
    })?;
    p.kubectl(&["describe", "daemonset", "podinfo", "-n", "test"])?;
    Ok(())
}

pub(crate) fn configmap_trigger(p: &mut Play<'_>) -> Result<()> {
    p.kubectl(&["create", "namespace", "test"])?;
    p.loadtester("test")?;
    println!(
        "$ kubectl apply -f podinfo-configmap.yaml   # podinfo reading PODINFO_UI_MESSAGE from a ConfigMap"
    );
    p.cluster
        .apply(include_str!("../../e2e/podinfo-configmap.yaml"))?;
    p.canary(
        include_str!("../../e2e/bluegreen.yaml"),
        "podinfo-bluegreen.yaml",
    )?;
    p.kubectl_words("-n test get configmap podinfo-config-primary -o jsonpath={.data}")?;
    p.kubectl(&[
        "-n",
        "test",
        "patch",
        "configmap",
        "podinfo-config",
        "--type=merge",
        "-p",
        r#"{"data":{"PODINFO_UI_MESSAGE":"hello from the new config"}}"#,
    ])?;
    finish(p, "the configuration release", "Succeeded")?;
    p.expect_events(&[
        "New revision detected! Scaling up podinfo.test",
        "Advance podinfo.test canary iteration 10/10",
        "Promotion completed! Scaling down podinfo.test",
    ])?;
    let copied = p.kubectl_words(
        "-n test get configmap podinfo-config-primary -o jsonpath={.data.PODINFO_UI_MESSAGE}",
    )?;
    if copied != "hello from the new config" {
        bail!("podinfo-config-primary holds {copied:?} after the promotion");
    }
    Ok(())
}

/// A release whose image no node can pull: the canary's pods stay in ImagePullBackOff, the
/// Deployment passes its progress deadline (60 s in podinfo.yaml), and flaggerd rolls back
/// without ever routing traffic to it.
pub(crate) fn missing_image(p: &mut Play<'_>) -> Result<()> {
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    let mark = p.events.len();
    set_image(p, "test", "6.0.99-does-not-exist")?;
    let pulled = p.wait_for(
        "a canary pod in ImagePullBackOff",
        Duration::from_secs(60),
        |p| {
            let pods = p.cluster.kubectl(&["-n", "test", "get", "pods"])?;
            Ok(pods.contains("ImagePullBackOff").then_some(pods))
        },
    )?;
    println!("$ kubectl -n test get pods");
    for line in pulled.lines() {
        println!("  {line}");
    }
    finish(p, "the release of a missing image", "Failed")?;
    // As Flagger: the readiness error is the event, then the rollback (no threshold event).
    let events = &p.events[mark..];
    let deadline = events
        .iter()
        .position(|m| m.starts_with("podinfo.test") && m.contains("progress deadline"))
        .context("no event said the canary passed its progress deadline")?;
    in_order(
        &events[deadline..],
        &["podinfo.test", "Canary failed! Scaling down podinfo.test"],
    )?;
    if p.events[mark..]
        .iter()
        .any(|m| m.starts_with("Advance podinfo.test canary weight"))
    {
        bail!("traffic was shifted to a canary whose image cannot be pulled");
    }
    let primary = primary_image(p, "test")?;
    if primary.contains("6.0.99") {
        bail!("the missing image reached podinfo-primary: {primary}");
    }
    println!("  podinfo-primary still runs {primary}");
    Ok(())
}

/// The seeds' commands, typed as they are: pods, flaggerd's log through jq, a command in the
/// load tester's pod, and a port-forward to the ingress gateway.
pub(crate) fn seed_commands(p: &mut Play<'_>) -> Result<()> {
    p.istio_gateway()?;
    p.podinfo("test")?;
    p.canary(&fixture("004-istio.yaml")?, "podinfo-canary.yaml")?;
    let pods = p.wait_for(
        "podinfo-primary and the load tester Running",
        Duration::from_secs(60),
        |p| {
            let pods = p.cluster.kubectl(&["get", "pods", "-n", "test"])?;
            let running = |prefix: &str| {
                pods.lines()
                    .any(|l| l.starts_with(prefix) && l.contains("Running"))
            };
            Ok((running("podinfo-primary-") && running("flagger-loadtester-")).then_some(pods))
        },
    )?;
    println!("$ kubectl get pods -n test");
    for line in pods.lines() {
        println!("  {line}");
    }
    // The seed injects failures while a release is in progress, when the canary has pods.
    set_image(p, "test", "6.0.1")?;
    p.wait_for("the canary at weight 5", PHASE_TIMEOUT, |p| {
        let row = p.row("test")?;
        Ok((row.phase == "Progressing" && row.weight >= 5).then_some(()))
    })?;
    p.kubectl(&["get", "pods", "-n", "test"])?;

    let messages = p.shell(
        "kubectl -n istio-system logs deploy/flagger -f | jq .msg",
        "timeout 5 kubectl -n istio-system logs deploy/flagger -f | jq .msg",
    )?;
    if !messages.contains("\"Initialization done! podinfo.test\"") {
        bail!("flaggerd's log through jq lacks \"Initialization done! podinfo.test\"");
    }

    let code = p.shell(
        "kubectl -n test exec -it deploy/flagger-loadtester -- sh -c 'curl http://podinfo-canary.test:9898/status/500'",
        "kubectl -n test exec deploy/flagger-loadtester -- sh -c 'curl -s -o /dev/null -w %{http_code} http://podinfo-canary.test:9898/status/500'",
    )?;
    if code.trim() != "500" {
        bail!("curl in the load tester's pod got {code:?}, expected 500 from podinfo");
    }
    let answer = p.shell(
        "kubectl -n test exec -it deploy/flagger-loadtester bash   # then: curl podinfo-canary.test:9898",
        // As the user types it, then `exit`; bounded, so a stream that never ends fails.
        "printf 'curl -s http://podinfo-canary.test:9898/\\nexit\\n' | timeout 30 kubectl -n test exec -i deploy/flagger-loadtester -- bash",
    )?;
    if !answer.contains("greetings from podinfo") {
        bail!("bash in the load tester's pod did not reach podinfo: {answer:?}");
    }

    // app.example.com: the host seed 004's VirtualService binds to the public gateway.
    curl_gateway(p, "istio-system", "istio-ingressgateway", "app.example.com")?;
    Ok(())
}

/// `curl -H 'Host: HOST'` to an ingress gateway's Service `ns/svc` until podinfo answers (at
/// most 20 s), as a user reaches it: on the real cluster through `kubectl port-forward`
/// (KWOK forwards it to mesh-sim), on kube-sim through mesh-sim's proxy. Returns the answer.
pub(crate) fn curl_gateway(p: &mut Play<'_>, ns: &str, svc: &str, host: &str) -> Result<String> {
    let (shown, script) = if p.cluster.kind == Kind::Real {
        let port = crate::cluster::free_port()?;
        let forward = format!("kubectl -n {ns} port-forward svc/{svc} {port}:80");
        p.background(&forward, &forward, Duration::from_secs(60))?;
        let url = format!("http://127.0.0.1:{port}/");
        (
            format!("curl -H 'Host: {host}' {url}"),
            format!("curl -s --noproxy '*' -H 'Host: {host}' {url}"),
        )
    } else {
        let url = format!("http://{svc}.{ns}/");
        (
            format!("curl -H 'Host: {host}' {url}"),
            format!("curl -s -H 'Host: {host}' {url}"),
        )
    };
    let answer = p.wait_for(
        &format!("podinfo through {ns}/{svc}"),
        Duration::from_secs(20),
        |p| {
            Ok(p.shell_quiet(&script)
                .filter(|o| o.contains("greetings from podinfo")))
        },
    );
    p.stop_background();
    let answer = answer?;
    println!("$ {shown}");
    println!("  {}", answer.trim());
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workshop_spec_becomes_valid_with_only_its_indentation_changed() {
        let verbatim = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(FIXTURES)
                .join("000-appmesh-workshop.yaml"),
        )
        .expect("fixture");
        assert!(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&verbatim).is_err());
        let fixed = fix_workshop_indentation(&verbatim);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&fixed).expect("valid YAML");
        let hooks = &doc["spec"]["analysis"]["webhooks"];
        assert_eq!(hooks[0]["name"].as_str(), Some("acceptance-test"));
        assert_eq!(hooks[0]["type"].as_str(), Some("pre-rollout"));
        assert_eq!(
            hooks[1]["metadata"]["cmd"].as_str(),
            Some("hey -z 1m -q 10 -c 2 http://podinfo-canary.demo:9898/")
        );
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squash(&fixed), squash(&verbatim), "only whitespace changed");
        let short = shorten_interval(&fixed).expect("interval");
        let read = |f: &str| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(FIXTURES)
                    .join(f),
            )
            .expect("fixture")
        };
        let ab = ab_spec(
            &read("002-appmesh-v1beta2.yaml"),
            &read("002-appmesh-ab-cookie.yaml"),
        )
        .expect("A/B");
        let ab: serde_yaml_ng::Value = serde_yaml_ng::from_str(&ab).expect("yaml");
        let analysis = &ab["spec"]["analysis"];
        assert!(analysis.get("stepWeight").is_none() && analysis.get("maxWeight").is_none());
        assert_eq!(analysis["iterations"].as_u64(), Some(10));
        assert_eq!(
            analysis["metrics"][0]["name"].as_str(),
            Some("request-success-rate")
        );
        assert!(analysis["match"][0]["headers"]["cookie"]["regex"].is_string());
        assert!(short.contains("interval: 2s"));
        assert!(short.contains("interval: 1m"), "metric intervals unchanged");
    }
}
