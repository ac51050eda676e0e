//! `cargo xtask chart`: the Helm chart `charts/flaggerd` checked with the pinned helm
//! (`helm lint`, `helm template` with the default values and with every option on), its
//! ClusterRole compared with `deploy/flaggerd/rbac.yaml`, and the rendered chart and
//! `deploy/flaggerd` applied with `--dry-run=server` to a real API server (etcd and
//! kube-apiserver built from xtask/controlplane), which validates every object against its
//! schema and admission as an install would.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_yaml_ng::Value;

use crate::cluster::{self, Cluster};

const CHART: &str = "charts/flaggerd";

/// Values that turn every template on (the monitors need the Prometheus Operator's CRDs,
/// which a bare API server lacks: they are rendered and linted, not applied).
const EVERYTHING: &[&str] = &[
    "crd.create=true",
    "leaderElection.enabled=true",
    "leaderElection.replicaCount=2",
    "meshProvider=istio",
    "namespace=test",
    "selectorLabels=app\\,name",
    "includeLabelPrefix=app.kubernetes.io",
    "threadiness=4",
    "eventWebhook=http://events.example/hook",
    "clusterName=prod-eu",
    "slack.url=https://hooks.slack.com/services/T/B/X",
    "slack.token=xoxb-1",
    "slack.channel=releases",
    "msteams.proxyUrl=http://proxy:3128",
    "kubeconfigQPS=50",
    "kubeconfigBurst=100",
    "controlplane.kubeconfig.secretName=mesh-kubeconfig",
    "noCrossNamespaceRefs=true",
    "podDisruptionBudget.enabled=true",
    "ingressClass=contour",
];

pub(crate) fn run(controlplane: &Path) -> Result<()> {
    let helm = crate::image::build_tools()?.join("helm");
    let out = cluster::target_dir().join("chart");
    std::fs::create_dir_all(&out)?;
    let helm_cmd = |args: &[&str]| -> Result<String> {
        println!("\n$ helm {}", args.join(" "));
        let o = Command::new(&helm)
            .args(args)
            .output()
            .context("cannot run helm")?;
        ensure!(
            o.status.success(),
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let everything = EVERYTHING.join(",");
    let monitors = format!(
        "{everything},serviceMonitor.enabled=true,podMonitor.enabled=true,linkerdAuthPolicy.create=true"
    );
    helm_cmd(&["lint", "--strict", CHART])?;
    helm_cmd(&["lint", "--strict", CHART, "--set", &monitors])?;
    let render = |name: &str, set: Option<&str>| -> Result<PathBuf> {
        let mut args = vec![
            "template",
            "flaggerd",
            CHART,
            "--namespace",
            "flagger-system",
        ];
        if let Some(s) = set {
            args.extend(["--set", s]);
        }
        let text = helm_cmd(&args)?;
        let path = out.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let defaults = render("defaults.yaml", None)?;
    let full = render("everything.yaml", Some(&everything))?;
    let with_monitors = render("monitors.yaml", Some(&monitors))?;
    let kinds = kinds(&std::fs::read_to_string(&with_monitors)?)?;
    for want in [
        "ServiceMonitor",
        "PodMonitor",
        "AuthorizationPolicy",
        "Service",
    ] {
        ensure!(
            kinds.iter().any(|k| k == want),
            "the chart rendered no {want}: {kinds:?}"
        );
    }
    same_rules(&std::fs::read_to_string(&full)?)?;
    no_secret_in_the_pod_spec(&std::fs::read_to_string(&full)?)?;

    println!("\n$ cargo xtask chart   # server-side dry runs on a real API server");
    let cluster = Cluster::start_bare(controlplane, "chart")?;
    let result = dry_runs(&cluster, &[&defaults, &full]);
    if result.is_err() {
        println!("  the API server's logs: {}", cluster.dir.display());
    }
    drop(cluster);
    result?;
    println!("\nxtask chart: lint, template and server-side dry runs passed");
    Ok(())
}

fn dry_runs(cluster: &Cluster, rendered: &[&Path]) -> Result<()> {
    cluster.kubectl(&["create", "namespace", "flagger-system"])?;
    for path in rendered {
        let file = path.display().to_string();
        println!("$ kubectl apply --dry-run=server -f {file}");
        let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", &file])?;
        print!("{}", indent(&out));
    }
    println!("$ kubectl apply -k deploy/flaggerd --dry-run=server");
    let out = cluster.kubectl(&["apply", "-k", "deploy/flaggerd", "--dry-run=server"])?;
    print!("{}", indent(&out));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn documents(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = <Value as serde::Deserialize>::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn kinds(text: &str) -> Result<Vec<String>> {
    Ok(documents(text)?
        .iter()
        .filter_map(|d| d["kind"].as_str().map(String::from))
        .collect())
}

/// The chart's ClusterRole and leader Role grant exactly what deploy/flaggerd/rbac.yaml does.
fn same_rules(rendered: &str) -> Result<()> {
    let deploy = std::fs::read_to_string("deploy/flaggerd/rbac.yaml")?;
    let rules = |text: &str, kind: &str| -> Result<Value> {
        documents(text)?
            .into_iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .map(|d| d["rules"].clone())
            .with_context(|| format!("no {kind}"))
    };
    for kind in ["ClusterRole", "Role"] {
        if rules(rendered, kind)? != rules(&deploy, kind)? {
            bail!(
                "the chart's {kind} differs from deploy/flaggerd/rbac.yaml's: keep charts/flaggerd/templates/rbac.yaml in step"
            );
        }
    }
    println!("  the chart's ClusterRole and Role match deploy/flaggerd/rbac.yaml");
    Ok(())
}

/// The notifiers' addresses and token reach flaggerd through a Secret, never the pod spec.
fn no_secret_in_the_pod_spec(rendered: &str) -> Result<()> {
    let docs = documents(rendered)?;
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .context("no Deployment")?;
    let spec = serde_yaml_ng::to_string(&deployment["spec"])?;
    for secret in ["hooks.slack.com", "xoxb-1", "proxy:3128"] {
        ensure!(
            !spec.contains(secret),
            "the Deployment's pod spec holds {secret:?}"
        );
    }
    Ok(())
}
