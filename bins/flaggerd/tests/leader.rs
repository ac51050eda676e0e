//! Two flaggerd replicas with leader election against kube-sim: both serve `/healthz` from
//! the start, `/readyz` tells the leader from the standby, and the Lease given up on
//! SIGTERM lets the standby lead within seconds.

use std::time::{Duration, Instant};

#[path = "support/cluster.rs"]
mod support;
use support::{free_port, kube_sim};

/// The HTTP status of `GET path` on the port, `None` when nothing answers.
async fn status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Waits up to `limit` until `GET path` answers `want`.
async fn answers(port: u16, path: &str, want: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if status(port, path).await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn replica(kubeconfig: &str, port: u16, name: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args([
            "-kubeconfig",
            kubeconfig,
            "-mesh-provider",
            "kubernetes",
            "-enable-leader-election=true",
            "-leader-election-namespace",
            "test",
            "-port",
            &port.to_string(),
        ])
        .env("POD_NAME", name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_serves_health_and_leads_within_seconds_after_the_leader_stops() {
    let (sim, _client) = kube_sim().await;
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let ports = [free_port(), free_port()];
    let mut replicas = [
        replica(&kubeconfig, ports[0], "flaggerd-a"),
        replica(&kubeconfig, ports[1], "flaggerd-b"),
    ];
    for port in ports {
        assert!(
            answers(port, "/healthz", 200, Duration::from_secs(20)).await,
            "replica on {port} does not serve /healthz"
        );
    }
    // One leads, the other waits; which one is up to the race for the Lease.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let ready = [
            status(ports[0], "/readyz").await,
            status(ports[1], "/readyz").await,
        ];
        match ready {
            [Some(200), Some(503)] => break 0,
            [Some(503), Some(200)] => break 1,
            other if Instant::now() > deadline => panic!("no single leader: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let standby = 1 - leader;
    assert_eq!(status(ports[standby], "/metrics").await, Some(200));

    let pid = replicas[leader].id().expect("leader pid").to_string();
    let stopped = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        answers(ports[standby], "/readyz", 200, Duration::from_secs(5)).await,
        "the standby did not lead within 5 s of the leader's SIGTERM"
    );
    let took = stopped.elapsed();
    let exited = tokio::time::timeout(Duration::from_secs(10), replicas[leader].wait())
        .await
        .expect("the leader exits after SIGTERM")
        .expect("wait");
    assert!(exited.success(), "the leader exited with {exited}");
    println!(
        "the standby led {:.1}s after the leader's SIGTERM",
        took.as_secs_f64()
    );
}

/// Each replica of the takeover test: a lease of 12 s (renewed every 1 s) and 1 s steps.
fn fast_replica(kubeconfig: &str, port: u16, name: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flaggerd"))
        .args(["-kubeconfig", kubeconfig, "-mesh-provider", "kubernetes"])
        .args([
            "-enable-leader-election",
            "-leader-election-namespace",
            "test",
        ])
        .args(["-lease-duration", "12s", "-min-analysis-interval", "1s"])
        .args(["-port", &port.to_string()])
        .env("POD_NAME", name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("flaggerd starts")
}

const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: kubernetes\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1s, threshold: 2, iterations: 10}\n";

/// The replica answering /readyz 200 among `ports`, waiting up to 20 s.
async fn leader_of(ports: &[u16]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, port) in ports.iter().enumerate() {
            if status(*port, "/readyz").await == Some(200) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no replica leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the canary's analysis has run `n` iterations of the current release.
async fn iterations_reach(client: &kube::Client, n: u32) {
    let api: kube::Api<canary_api::Canary> = kube::Api::namespaced(client.clone(), "test");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = api.get("podinfo").await.expect("canary");
        let status = c.status.unwrap_or_default();
        if status.phase == Some(canary_core::Phase::Progressing) && status.iterations >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the release did not reach iteration {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of the canary: message and count.
async fn events(client: &kube::Client) -> Vec<(String, i32)> {
    let api: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(client.clone(), "test");
    let list = api.list(&Default::default()).await.expect("events");
    list.items
        .into_iter()
        .map(|e| (e.message.unwrap_or_default(), e.count.unwrap_or(1)))
        .collect()
}

/// Each iteration of a release is announced once (a repeated step would count an event
/// twice, a skipped one would leave a number out), and the release ends promoted.
fn each_step_once(events: &[(String, i32)], before: &[(String, i32)]) {
    for k in 1..=9 {
        let message = format!("Advance podinfo.test canary iteration {k}/10");
        let was = before
            .iter()
            .find(|(m, _)| *m == message)
            .map_or(0, |e| e.1);
        let now = events
            .iter()
            .find(|(m, _)| *m == message)
            .map_or(0, |e| e.1);
        assert_eq!(
            now - was,
            1,
            "{message:?} announced {} times in this release: {events:?}",
            now - was
        );
    }
    let done = "Promotion completed! Scaling down podinfo.test";
    let was = before.iter().find(|(m, _)| m == done).map_or(0, |e| e.1);
    let now = events.iter().find(|(m, _)| m == done).map_or(0, |e| e.1);
    assert_eq!(now - was, 1, "promoted once: {events:?}");
}

/// Starts a release of `tag`, stops the leader with `signal` at its third iteration, and
/// checks that the standby on `standby_port` leads within `within` seconds and the release
/// is promoted with each step once. Returns how long the standby took.
async fn stop_mid_release(
    client: &kube::Client,
    leader: &mut tokio::process::Child,
    standby_port: u16,
    tag: &str,
    signal: &str,
    within: u64,
) -> Duration {
    let before = events(client).await;
    let image = format!("ghcr.io/stefanprodan/podinfo:{tag}");
    support::set_image(client, "podinfo", &image).await;
    iterations_reach(client, 3).await;
    let stopped = Instant::now();
    match signal {
        "SIGTERM" => {
            let pid = leader.id().expect("pid").to_string();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
            assert!(sent.expect("kill").success());
        }
        _ => leader.start_kill().expect("SIGKILL"),
    }
    assert!(
        answers(standby_port, "/readyz", 200, Duration::from_secs(within)).await,
        "the standby did not lead within {within} s of the leader's {signal}"
    );
    let took = stopped.elapsed();
    let promoted = support::reaches(
        client,
        "podinfo",
        canary_core::Phase::Succeeded,
        Duration::from_secs(60),
    );
    assert!(
        promoted.await,
        "the release of {tag} was promoted by the new leader"
    );
    each_step_once(&promotion_events(client, &before).await, &before);
    took
}

/// The events once the release's "Promotion completed!" is among them: flaggerd records a
/// step (its phase included) before it carries out the step's effects, so that event may
/// follow the Succeeded phase by moments. At most 10 s.
async fn promotion_events(client: &kube::Client, before: &[(String, i32)]) -> Vec<(String, i32)> {
    let done = "Promotion completed! Scaling down podinfo.test";
    let count = |list: &[(String, i32)]| list.iter().find(|(m, _)| m == done).map_or(0, |e| e.1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = events(client).await;
        if count(&now) > count(before) || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_on_once_when_its_leader_stops_mid_release() {
    use canary_core::Phase;
    let (sim, client) = kube_sim().await;
    support::deployment(&client, "podinfo", 1).await;
    kube::Api::<canary_api::Canary>::namespaced(client.clone(), "test")
        .create(
            &Default::default(),
            &canary_api::Canary::from_yaml(CANARY).expect("canary"),
        )
        .await
        .expect("canary");
    let kubeconfig = sim.kubeconfig_path().display().to_string();
    let ports = [free_port(), free_port()];
    let names = ["flaggerd-a", "flaggerd-b"];
    let mut replicas = [
        fast_replica(&kubeconfig, ports[0], names[0]),
        fast_replica(&kubeconfig, ports[1], names[1]),
    ];
    let leader = leader_of(&ports).await;
    assert!(
        support::reaches(
            &client,
            "podinfo",
            Phase::Initialized,
            Duration::from_secs(30)
        )
        .await,
        "initialized"
    );

    // SIGTERM mid-release: the standby leads within 5 s and the release goes on once.
    let standby = 1 - leader;
    let took_term = stop_mid_release(
        &client,
        &mut replicas[leader],
        ports[standby],
        "6.0.1",
        "SIGTERM",
        5,
    )
    .await;
    let _ = replicas[leader].wait().await;

    // SIGKILL mid-release: the stopped replica comes back as the standby; it leads within
    // the Lease's duration (12 s, plus its 1 s retry) and the release goes on once.
    replicas[leader] = fast_replica(&kubeconfig, ports[leader], names[leader]);
    assert!(answers(ports[leader], "/healthz", 200, Duration::from_secs(20)).await);
    assert_eq!(
        status(ports[leader], "/readyz").await,
        Some(503),
        "it stands by"
    );
    let took_kill = stop_mid_release(
        &client,
        &mut replicas[standby],
        ports[leader],
        "6.0.2",
        "SIGKILL",
        13,
    )
    .await;
    println!(
        "takeover: {:.1}s after SIGTERM, {:.1}s after SIGKILL (lease 12 s)",
        took_term.as_secs_f64(),
        took_kill.as_secs_f64()
    );
}
