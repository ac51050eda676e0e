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
