//! Every flag of Flagger's list (docs/flags.md) starts flaggerd: the test reads the table,
//! starts the binary with all of them against kube-sim, and a canary initializes; `-h`
//! names each, `-version` prints the version, and `-kubeconfig-qps` throttles the client.

use std::time::{Duration, Instant};

use canary_api::Canary;
use kube::api::{Api, PostParams};

#[path = "support/cluster.rs"]
mod support;
use support::{deployment, free_port, kube_sim, reaches};

/// The rows of the first table of docs/flags.md: (flag, example).
fn flaggers_flags() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/flags.md"))
        .expect("docs/flags.md");
    let table = doc
        .split("## Flagger's flags")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .expect("the table of Flagger's flags");
    let cell = |c: &str| c.trim().trim_matches('`').to_string();
    table
        .lines()
        .filter(|l| l.starts_with("| `-"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            (cell(cells[1]), cell(cells[3]))
        })
        .collect()
}

fn flaggerd(args: &[String]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args(args)
        .output()
        .expect("flaggerd runs")
}

#[test]
fn help_names_every_flag_of_flaggers_list_and_version_prints_the_version() {
    let flags = flaggers_flags();
    assert_eq!(flags.len(), 32, "cmd/flagger/main.go declares 32 flags");
    let help = String::from_utf8_lossy(&flaggerd(&["-h".into()]).stdout).into_owned();
    for (flag, _) in &flags {
        assert!(
            help.contains(&format!("-{flag} ")) || help.contains(&format!("-{flag}[=")),
            "-h does not name {flag}:\n{help}"
        );
    }
    for form in ["-version", "--version", "-version=true"] {
        let out = flaggerd(&[form.into()]);
        assert!(out.status.success(), "{form}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("flaggerd version 0."), "{form}: {text}");
    }
    let out = flaggerd(&["-threadiness".into(), "many".into()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value 'many' for '--threadiness")
    );
}

const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: kubernetes\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 10s, threshold: 2, iterations: 2}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaggerd_starts_with_every_flag_of_flaggers_list() {
    let (sim, client) = kube_sim().await;
    deployment(&client, "podinfo", 1).await;
    Api::<Canary>::namespaced(client.clone(), "test")
        .create(
            &PostParams::default(),
            &Canary::from_yaml(CANARY).expect("canary"),
        )
        .await
        .expect("canary");
    let port = free_port();
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let mut args = Vec::new();
    for (flag, example) in flaggers_flags() {
        let value = example
            .replace("$KUBECONFIG", &kubeconfig)
            .replace("$MASTER", &sim.url())
            .replace("$PORT", &port.to_string());
        match value.as_str() {
            "" => {} // -version: it prints and exits (the test above)
            v if v.starts_with('-') => args.push(v.to_string()),
            v => args.extend([flag.clone(), v.to_string()]),
        }
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts");
    let initialized = reaches(
        &client,
        "podinfo",
        canary_core::Phase::Initialized,
        Duration::from_secs(30),
    )
    .await;
    let still_running = child.try_wait().expect("status").is_none();
    let _ = child.start_kill();
    let out = child.wait_with_output().await.expect("output");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(still_running, "flaggerd {} exited:\n{logs}", args.join(" "));
    assert!(
        initialized,
        "the canary did not initialize with {}:\n{logs}",
        args.join(" ")
    );
    // -kubeconfig-service-mesh names the same API server: routing as without it.
    assert!(
        logs.contains("names this cluster's API server: routing objects get owner references"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_qps_and_burst_throttle_the_client() {
    let (sim, _client) = kube_sim().await;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(sim.kubeconfig_path()).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let stats = std::sync::Arc::new(canary_controller::Stats::new("test", "kubernetes"));
    let throttle = canary_controller::client::Throttle { qps: 4, burst: 2 };
    let client = canary_controller::client::counted(config, stats, throttle).expect("client");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let started = Instant::now();
    for _ in 0..6 {
        namespaces.get("test").await.expect("get");
    }
    // 2 at once, then 2 per half second: the sixth request goes out after 1 s at the earliest.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "6 requests at 4/s (burst 2) took {took:?}"
    );
}
