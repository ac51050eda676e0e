//! `kubectl apply -k deploy/flaggerd` is accepted by a cluster (kube-sim here).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kustomize_manifests_apply() {
    assert!(
        std::process::Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_ok(),
        "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/) to run this test"
    );
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/flaggerd");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .args(["apply", "-k", dir])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("kubectl")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "namespace/flagger-system created",
        "customresourcedefinition.apiextensions.k8s.io/canaries.flagger.app created",
        "serviceaccount/flaggerd created",
        "clusterrole.rbac.authorization.k8s.io/flaggerd created",
        "clusterrolebinding.rbac.authorization.k8s.io/flaggerd created",
        "deployment.apps/flaggerd created",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
