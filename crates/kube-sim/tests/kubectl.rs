//! The real `kubectl` against kube-sim, typing the seeds' commands.

use std::process::{Command, Output};
use std::time::Duration;

use kube_sim::KubeSim;

struct Kubectl {
    kubeconfig: String,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .output()
            .expect("kubectl runs")
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{stdout}\n{stderr}",
            args.join(" ")
        );
        stdout.into_owned()
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_kubectl_commands_work() {
    assert!(
        Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_ok(),
        "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/) to run this test"
    );
    let sim = KubeSim::start().await.expect("kube-sim");
    let k = Kubectl {
        kubeconfig: sim.kubeconfig_path().display().to_string(),
    };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let crds = root().join("deploy/crds");
    let result = tokio::task::spawn_blocking(move || {
        assert_eq!(k.ok(&["create", "ns", "test"]).trim(), "namespace/test created");
        let applied = k.ok(&["apply", "-k", &crds.display().to_string()]);
        assert!(applied.contains("customresourcedefinition.apiextensions.k8s.io/canaries.flagger.app created"), "{applied}");
        let applied = k.ok(&["apply", "-f", &fixtures.join("podinfo.yaml").display().to_string()]);
        assert!(applied.contains("deployment.apps/podinfo created"), "{applied}");
        assert!(applied.contains("horizontalpodautoscaler.autoscaling/podinfo created"), "{applied}");
        let applied = k.ok(&["apply", "-f", &fixtures.join("canary-001.yaml").display().to_string()]);
        assert_eq!(applied.trim(), "canary.flagger.app/podinfo created");
        // Applying again changes nothing.
        let again = k.ok(&["apply", "-f", &fixtures.join("canary-001.yaml").display().to_string()]);
        assert_eq!(again.trim(), "canary.flagger.app/podinfo unchanged");

        // A controller writes status; kubectl shows it in Flagger's columns.
        let status = r#"{"status":{"phase":"Progressing","canaryWeight":15,"failedChecks":0,"lastTransitionTime":"2019-01-16T14:05:07Z"}}"#;
        k.ok(&["-n", "test", "patch", "canary", "podinfo", "--subresource=status", "--type=merge", "-p", status]);
        let table = k.ok(&["get", "canaries", "--all-namespaces"]);
        let lines: Vec<&str> = table.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(header, ["NAMESPACE", "NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"], "{table}");
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row, ["test", "podinfo", "Progressing", "15", "2019-01-16T14:05:07Z"], "{table}");
        let wide = k.ok(&["-n", "test", "get", "canary", "podinfo", "-o", "wide"]);
        assert!(wide.lines().next().unwrap_or_default().contains("STEPWEIGHT"), "{wide}");

        // set image: the template changes, the generation moves, the rest of the container stays.
        let before = k.ok(&["-n", "test", "get", "deploy", "podinfo", "-o", "jsonpath={.metadata.generation}"]);
        let out = k.ok(&["-n", "test", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"]);
        assert_eq!(out.trim(), "deployment.apps/podinfo image updated");
        let after = k.ok(&["-n", "test", "get", "deploy", "podinfo", "-o",
            "jsonpath={.metadata.generation} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[2].containerPort} {.spec.template.spec.containers[0].env[0].value}"]);
        let fields: Vec<&str> = after.split_whitespace().collect();
        assert_eq!(fields[0].parse::<i64>().expect("generation"), before.trim().parse::<i64>().expect("generation") + 1);
        assert_eq!(&fields[1..], ["ghcr.io/stefanprodan/podinfo:6.0.1", "9999", "#34577c"]);

        // describe shows the events recorded against the canary.
        let uid = k.ok(&["-n", "test", "get", "canary", "podinfo", "-o", "jsonpath={.metadata.uid}"]);
        let event = format!(
            r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"podinfo.e1","namespace":"test"}},"involvedObject":{{"apiVersion":"flagger.app/v1beta1","kind":"Canary","name":"podinfo","namespace":"test","uid":"{uid}"}},"reason":"Synced","type":"Normal","message":"Advance podinfo.test canary weight 15","source":{{"component":"flagger"}},"count":1}}"#
        );
        let path = std::env::temp_dir().join(format!("kube-sim-event-{}.json", std::process::id()));
        std::fs::write(&path, event).expect("write event");
        k.ok(&["create", "-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
        let described = k.ok(&["-n", "test", "describe", "canary/podinfo"]);
        assert!(described.contains("Phase:                 Progressing") || described.contains("Phase:  Progressing"), "{described}");
        assert!(described.contains("Normal  Synced") && described.contains("Advance podinfo.test canary weight 15"), "{described}");

        // wait returns when the Promoted condition turns true.
        let waiter = std::thread::spawn({
            let kubeconfig = k.kubeconfig.clone();
            move || Kubectl { kubeconfig }.run(&["-n", "test", "wait", "canary/podinfo", "--for=condition=promoted", "--timeout=20s"])
        });
        real_time_pause(Duration::from_millis(500));
        let promoted = r#"{"status":{"phase":"Succeeded","canaryWeight":0,"conditions":[{"type":"Promoted","status":"True","reason":"Succeeded","message":"Canary analysis completed successfully, promotion finished."}]}}"#;
        k.ok(&["-n", "test", "patch", "canary", "podinfo", "--subresource=status", "--type=merge", "-p", promoted]);
        let waited = waiter.join().expect("waiter");
        assert!(waited.status.success(), "{}", String::from_utf8_lossy(&waited.stderr));
        assert_eq!(String::from_utf8_lossy(&waited.stdout).trim(), "canary.flagger.app/podinfo condition met");

        // delete honours finalizers.
        k.ok(&["-n", "test", "patch", "canary", "podinfo", "--type=merge", "-p", r#"{"metadata":{"finalizers":["finalizer.flagger.app"]}}"#]);
        k.ok(&["-n", "test", "delete", "canary", "podinfo", "--wait=false"]);
        let ts = k.ok(&["-n", "test", "get", "canary", "podinfo", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
        assert!(!ts.trim().is_empty(), "the canary waits for its finalizer");
        k.ok(&["-n", "test", "patch", "canary", "podinfo", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
        let gone = k.run(&["-n", "test", "get", "canary", "podinfo"]);
        assert!(!gone.status.success());
        assert!(String::from_utf8_lossy(&gone.stderr).contains("canaries.flagger.app \"podinfo\" not found"));
    })
    .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Lets the `kubectl wait` child start watching before the condition changes; child
/// processes run in real time, so tokio's clock does not apply.
#[allow(clippy::disallowed_methods)]
fn real_time_pause(d: Duration) {
    std::thread::sleep(d);
}
