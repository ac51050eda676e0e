//! Steps the scenarios share: a release promoted or failed, the events it must show.

use super::*;

/// Checks that `expected` appear in `events` in this order (each a prefix of a message;
/// other events may come between).
pub(crate) fn in_order(events: &[String], expected: &[&str]) -> Result<()> {
    let mut rest = events.iter();
    for want in expected {
        if !rest.any(|m| m.starts_with(want)) {
            bail!("expected the event {want:?} (in the seed's order) but it did not come");
        }
    }
    Ok(())
}

/// Sets `spec.analysis.interval` to [`INTERVAL`], keeping everything else.
pub(crate) fn shorten_interval(yaml: &str) -> Result<String> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).context("canary YAML")?;
    let analysis = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("analysis"))
        .context("the canary has no spec.analysis")?;
    analysis["interval"] = serde_yaml_ng::Value::String(INTERVAL.into());
    Ok(serde_yaml_ng::to_string(&doc)?)
}

pub(crate) fn fixture(name: &str) -> Result<String> {
    std::fs::read_to_string(Path::new(FIXTURES).join(name))
        .with_context(|| format!("fixture {name}"))
}

pub(crate) fn set_image(p: &mut Play<'_>, ns: &str, tag: &str) -> Result<()> {
    let image = format!("podinfod=ghcr.io/stefanprodan/podinfo:{tag}");
    p.kubectl(&["-n", ns, "set", "image", "deployment/podinfo", &image])?;
    Ok(())
}

/// A new revision whose analysis has started: the canary has left the phase of the last
/// release (a `Succeeded` read right after `set image` may still be that release's).
pub(crate) fn release(p: &mut Play<'_>, ns: &str, tag: &str) -> Result<()> {
    set_image(p, ns, tag)?;
    p.until(&["Progressing"])?;
    Ok(())
}

/// The events of a promotion by weights up to 50 in steps of 5.
pub(crate) fn promotion_events(target: &str) -> Vec<String> {
    let mut e = vec![
        format!("New revision detected! Scaling up {target}"),
        format!("Starting canary analysis for {target}"),
        "Pre-rollout check acceptance-test passed".to_string(),
    ];
    e.extend((1..=10).map(|i| format!("Advance {target} canary weight {}", i * 5)));
    e.extend([
        format!("Copying {target} template spec to podinfo-primary."),
        "Routing all traffic to primary".to_string(),
        format!("Promotion completed! Scaling down {target}"),
    ]);
    e
}

pub(crate) fn expect(p: &mut Play<'_>, events: &[String]) -> Result<()> {
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    p.expect_events(&refs)
}

/// The image podinfo-primary runs.
pub(crate) fn primary_image(p: &Play<'_>, ns: &str) -> Result<String> {
    let path = "jsonpath={.spec.template.spec.containers[0].image}";
    p.cluster
        .kubectl(&["-n", ns, "get", "deployment", "podinfo-primary", "-o", path])
}

/// Follows a release to its end; fails unless it ends in `want`.
pub(crate) fn finish(p: &mut Play<'_>, what: &str, want: &str) -> Result<()> {
    let phase = p.until(&["Succeeded", "Failed"])?;
    if phase != want {
        bail!("{what} ended {phase}, expected {want}");
    }
    Ok(())
}

/// The events of a promotion after ten iterations (A/B testing, blue/green); `first` come
/// after the revision is detected, and `routing` says whether routes move back to the primary.
pub(crate) fn iteration_events(first: &[&str], routing: bool) -> Vec<String> {
    let mut events = vec!["New revision detected! Scaling up podinfo.test".to_string()];
    events.extend(first.iter().map(|e| e.to_string()));
    events.extend((1..=10).map(|i| format!("Advance podinfo.test canary iteration {i}/10")));
    events.push("Copying podinfo.test template spec to podinfo-primary.test".to_string());
    if routing {
        events.push("Routing all traffic to primary".to_string());
    }
    events.push("Promotion completed! Scaling down podinfo.test".to_string());
    events
}

pub(crate) fn promote(p: &mut Play<'_>, ns: &str, tag: &str) -> Result<()> {
    release(p, ns, tag)?;
    finish(p, &format!("the release of {tag}"), "Succeeded")?;
    expect(p, &promotion_events(&format!("podinfo.{ns}")))?;
    let primary = primary_image(p, ns)?;
    if !primary.ends_with(tag) {
        bail!("after the promotion podinfo-primary runs {primary}, expected {tag}");
    }
    println!("  podinfo-primary now runs {primary}");
    Ok(())
}

/// A failed release: `load` runs while the analysis halts, until the rollback.
pub(crate) fn fail(
    p: &mut Play<'_>,
    ns: &str,
    tag: &str,
    shown: &str,
    load: &str,
    halt: &str,
) -> Result<()> {
    let mark = p.events.len();
    set_image(p, ns, tag)?;
    p.background(shown, load, Duration::from_secs(150))?;
    p.until(&["Progressing"])?;
    let ended = finish(p, &format!("the release of {tag}"), "Failed");
    p.stop_background();
    ended?;
    let target = format!("podinfo.{ns}");
    in_order(
        &p.events[mark..],
        &[
            &format!("New revision detected! Scaling up {target}"),
            &format!("Advance {target} canary weight 5"),
            &format!("Halt {target} advancement {halt}"),
            &format!("Rolling back {target} failed checks threshold reached"),
            &format!("Canary failed! Scaling down {target}"),
        ],
    )?;
    let primary = primary_image(p, ns)?;
    if primary.ends_with(tag) {
        bail!("the failed release {tag} reached podinfo-primary");
    }
    println!("  podinfo-primary still runs {primary}");
    Ok(())
}

/// The DaemonSet of xtask/e2e/daemonset.yaml applied with `canary` (a comment tells which),
/// then its release of podinfo 6.0.1 started.
pub(crate) fn daemonset_release(p: &mut Play<'_>, canary: Option<&str>, shown: &str) -> Result<()> {
    let (workload, own_canary) = include_str!("../../e2e/daemonset.yaml")
        .split_once("\n---\n")
        .context("daemonset.yaml holds a DaemonSet, then a Canary")?;
    println!("$ kubectl apply -f podinfo-daemonset.yaml   # {shown}");
    p.cluster.apply(workload)?;
    p.canary(canary.unwrap_or(own_canary), "podinfo-daemonset.yaml")?;
    p.kubectl(&[
        "-n",
        "test",
        "set",
        "image",
        "daemonset/podinfo",
        "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1",
    ])?;
    Ok(())
}
