//! `cargo xtask bench scale [--canaries N] [--others M]`: flaggerd (the release binary, a
//! separate process) against kube-sim with N canaries (kubernetes provider, interval 10 s,
//! 3 iterations) and their Deployments, beside M unrelated Deployments and M ConfigMaps.
//! It waits for every canary to be Initialized, watches a minute of rest, releases all N at
//! once and waits for every promotion, then prints what flaggerd cost: its API requests
//! (counted by kube-sim's `apiserver_request_total`, minus the benchmark's own requests,
//! which its client counts), the step lag, the starved canaries, its memory and its CPU.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use canary_api::Canary;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

/// The analysis interval of every canary.
const INTERVAL: Duration = Duration::from_secs(10);
/// Canaries per namespace.
const PER_NAMESPACE: usize = 100;
/// Requests the benchmark sends at once while it creates objects.
const CREATE_CONCURRENCY: usize = 32;
/// The rest watched between initialization and the release.
const IDLE: Duration = Duration::from_secs(60);

/// Requests by kube-apiserver's verb (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`).
type Counts = BTreeMap<String, u64>;

struct Args {
    canaries: usize,
    others: usize,
    flaggerd: String,
    threadiness: u16,
    /// flaggerd's -kubeconfig-qps and -kubeconfig-burst (Flagger's 100 and 250 by default).
    qps: u32,
    burst: u32,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        canaries: 100,
        others: 1000,
        flaggerd: "target/release/flaggerd".into(),
        threadiness: 2,
        qps: 100,
        burst: 250,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--canaries" => a.canaries = value.parse()?,
            "--others" => a.others = value.parse()?,
            "--flaggerd" => a.flaggerd = value,
            "--threadiness" => a.threadiness = value.parse()?,
            "--kubeconfig-qps" => a.qps = value.parse()?,
            "--kubeconfig-burst" => a.burst = value.parse()?,
            other => bail!(
                "unknown flag {other}; usage: scale [--canaries N] [--others M] [--flaggerd PATH] [--threadiness N] [--kubeconfig-qps N] [--kubeconfig-burst N]"
            ),
        }
    }
    Ok(a)
}

/// What the benchmark saw of one canary.
#[derive(Default, Clone)]
struct Seen {
    phase: String,
    iterations: i64,
    /// The status' lastTransitionTime: a new value is a new step.
    last_transition: String,
    /// When each step was seen, with the phase it led to.
    steps: Vec<(Instant, String, i64)>,
}

type Board = Arc<Mutex<HashMap<String, Seen>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    if !std::path::Path::new(&args.flaggerd).is_file() {
        bail!(
            "no flaggerd binary at {}; build it with: cargo build --release -p flaggerd",
            args.flaggerd
        );
    }
    let options = kube_sim::Options {
        history: 200_000,
        ..Default::default()
    };
    let sim = kube_sim::KubeSim::start_with(options).await?;
    let own: Arc<Mutex<Counts>> = Arc::default();
    let client = counting_client(&sim, own.clone()).await?;

    let started = Instant::now();
    setup(&client, args.canaries, args.others).await?;
    println!(
        "set up {} canaries with their Deployments, {} unrelated Deployments and {} ConfigMaps in {:.1}s",
        args.canaries,
        args.others,
        args.others,
        started.elapsed().as_secs_f64()
    );

    let board: Board = Arc::default();
    let watch = tokio::spawn(follow(client.clone(), board.clone()));
    let port = free_port()?;
    let mut flaggerd = Command::new(&args.flaggerd)
        .arg(format!("-kubeconfig={}", sim.kubeconfig_path().display()))
        .arg(format!("-port={port}"))
        .arg(format!("-threadiness={}", args.threadiness))
        .arg(format!("-kubeconfig-qps={}", args.qps))
        .arg(format!("-kubeconfig-burst={}", args.burst))
        .arg("-metrics-server=http://127.0.0.1:1")
        .arg("-log-level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start flaggerd")?;
    let pid = flaggerd.id();
    let result = measure(&sim, &client, &own, &board, &args, pid, port, &mut flaggerd).await;
    let _ = flaggerd.kill();
    let _ = flaggerd.wait();
    watch.abort();
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    sim: &kube_sim::KubeSim,
    client: &kube::Client,
    own: &Arc<Mutex<Counts>>,
    board: &Board,
    args: &Args,
    pid: u32,
    port: u16,
    flaggerd: &mut Child,
) -> anyhow::Result<()> {
    let n = args.canaries;
    let t0 = Instant::now();
    let init_deadline = Duration::from_secs(1800);
    wait_all(board, n, flaggerd, init_deadline, |s| {
        s.phase == "Initialized"
    })
    .await?;
    let initialized = t0.elapsed();
    println!(
        "all {n} canaries Initialized {:.1}s after flaggerd started",
        initialized.as_secs_f64()
    );
    let startup = flaggerd_requests(sim, own);

    // Rest: nothing changes; flaggerd looks at every canary each interval.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before_idle = flaggerd_requests(sim, own);
    let (rss_steady_before, _) = memory(pid)?;
    tokio::time::sleep(IDLE).await;
    let after_idle = flaggerd_requests(sim, own);
    let (rss_steady, _) = memory(pid)?;
    let idle = diff(&after_idle, &before_idle);

    // The release of all N at once.
    let release_started = Instant::now();
    let before_release = flaggerd_requests(sim, own);
    set_images(client, n, "6.0.1").await?;
    // A steady analysis step: from the moment every canary has done iteration 1 to the
    // moment every canary has done iteration 2, each canary takes exactly one step.
    let release_deadline = Duration::from_secs(600);
    wait_all(board, n, flaggerd, release_deadline, |s| {
        s.phase == "Progressing" && s.iterations >= 1 || s.phase == "Succeeded"
    })
    .await?;
    let at_first = flaggerd_requests(sim, own);
    let all_first = count(board, |s| s.phase == "Progressing" && s.iterations == 1);
    wait_all(board, n, flaggerd, release_deadline, |s| {
        s.phase == "Progressing" && s.iterations >= 2 || s.phase == "Succeeded"
    })
    .await?;
    let at_second = flaggerd_requests(sim, own);
    let all_second = count(board, |s| s.phase == "Progressing" && s.iterations == 2);
    wait_all(board, n, flaggerd, release_deadline, |s| {
        s.phase == "Succeeded"
    })
    .await?;
    let released = release_started.elapsed();
    // The last events of the final step.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_release = flaggerd_requests(sim, own);
    let (rss_after, peak) = memory(pid)?;
    let cpu = cpu_seconds(pid)?;

    let release = diff(&after_release, &before_release);
    let steady = diff(&at_second, &at_first);
    let (lags, starved, steps) = lags(board, release_started);
    let metrics = scrape(port).await.unwrap_or_default();

    let per = |c: &Counts, d: f64| -> String {
        let total: u64 = c.values().sum();
        let by_verb: Vec<String> = c
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / d))
            .collect();
        format!("{:.2} ({})", total as f64 / d, by_verb.join(", "))
    };
    let nf = n as f64;
    println!(
        "\n== flaggerd at {n} canaries beside {} Deployments and {} ConfigMaps ==",
        args.others, args.others
    );
    println!(
        "start-up until all Initialized:      {:.1}s, {} requests ({})",
        initialized.as_secs_f64(),
        startup.values().sum::<u64>(),
        per(&startup, 1.0)
    );
    println!(
        "idle, per canary per minute:         {}",
        per(&idle, nf * IDLE.as_secs_f64() / 60.0)
    );
    println!(
        "steady analysis step, per canary:    {} (window: {all_first} at iteration 1 -> {all_second} at iteration 2)",
        per(&steady, nf)
    );
    println!(
        "whole release, per canary:           {} over {:.1} steps",
        per(&release, nf),
        steps
    );
    println!(
        "per step of the release, per canary: {}",
        per(&release, nf * steps)
    );
    println!(
        "release of all {n}:                   {:.1}s",
        released.as_secs_f64()
    );
    println!(
        "step lag (seen by the benchmark):    p50 {:.3}s, p99 {:.3}s, max {:.3}s over {} steps",
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        quantile(&lags, 1.0),
        lags.len()
    );
    println!(
        "step lag (flaggerd_step_lag_seconds): p50 <= {}, p99 <= {}",
        histogram_quantile(&metrics, 0.5),
        histogram_quantile(&metrics, 0.99)
    );
    println!(
        "canaries starved (a step later than one interval late, or never released): {starved}"
    );
    println!(
        "flaggerd RSS: {:.1} MiB at rest ({:.1} MiB before), {:.1} MiB after the release, peak {:.1} MiB",
        rss_steady, rss_steady_before, rss_after, peak
    );
    println!("flaggerd CPU: {cpu:.1}s in total (user + system)");
    Ok(())
}

async fn counting_client(
    sim: &kube_sim::KubeSim,
    own: Arc<Mutex<Counts>>,
) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(sim.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        let verb = match canary_controller::client::verb(req.method(), req.uri()) {
            "get" => "GET",
            "list" => "LIST",
            "watch" => "WATCH",
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" => "DELETE",
            _ => "OTHER",
        };
        *own.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(verb.into())
            .or_default() += 1;
        req
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// flaggerd's requests so far: kube-sim's count minus the benchmark's own. Server-side
/// apply is counted as `APPLY`.
fn flaggerd_requests(sim: &kube_sim::KubeSim, own: &Mutex<Counts>) -> Counts {
    let mut out = Counts::new();
    for (k, v) in sim.requests() {
        *out.entry(k.verb.to_string()).or_default() += v;
    }
    for (verb, v) in own.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let e = out.entry(verb.clone()).or_default();
        *e = e.saturating_sub(*v);
    }
    out
}

fn diff(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

fn namespace_of(i: usize) -> String {
    format!("scale-{}", i / PER_NAMESPACE)
}

fn deployment(name: &str, image: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "podinfod", "image": format!("ghcr.io/stefanprodan/podinfo:{image}"),
                    "ports": [{"name": "http", "containerPort": 9898}],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]}}}
    }))?)
}

async fn setup(client: &kube::Client, canaries: usize, others: usize) -> anyhow::Result<()> {
    let pp = PostParams::default();
    for crd in canary_api::crd_objects() {
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&pp, &crd)
            .await?;
    }
    let mut namespaces: Vec<String> = (0..canaries).map(namespace_of).collect();
    namespaces.dedup();
    namespaces.push("others".into());
    for ns in &namespaces {
        Api::<Namespace>::all(client.clone())
            .create(
                &pp,
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
    }
    let others_deploy: Api<Deployment> = Api::namespaced(client.clone(), "others");
    let others_cm: Api<ConfigMap> = Api::namespaced(client.clone(), "others");
    futures::stream::iter(0..others)
        .map(|i| {
            let (d, c, pp) = (others_deploy.clone(), others_cm.clone(), pp.clone());
            async move {
                d.create(&pp, &deployment(&format!("other-{i}"), "6.0.0")?).await?;
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("config-{i}")},
                    "data": {"settings.json": format!("{{\"id\": {i}, \"feature\": true, \"padding\": \"{}\"}}", "x".repeat(200))},
                }))?;
                c.create(&pp, &cm).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    futures::stream::iter(0..canaries)
        .map(|i| {
            let (client, pp) = (client.clone(), pp.clone());
            async move {
                let ns = namespace_of(i);
                let name = format!("app-{i}");
                Api::<Deployment>::namespaced(client.clone(), &ns)
                    .create(&pp, &deployment(&name, "6.0.0")?)
                    .await?;
                let canary = Canary::from_yaml(&format!(
                    "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  provider: kubernetes\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}\n  progressDeadlineSeconds: 600\n  service: {{port: 9898}}\n  analysis: {{interval: {}s, threshold: 2, iterations: 3}}\n",
                    INTERVAL.as_secs()
                ))?;
                Api::<Canary>::namespaced(client, &ns).create(&pp, &canary).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

async fn set_images(client: &kube::Client, canaries: usize, tag: &str) -> anyhow::Result<()> {
    futures::stream::iter(0..canaries)
        .map(|i| {
            let client = client.clone();
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &namespace_of(i));
                let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "podinfod", "image": format!("ghcr.io/stefanprodan/podinfo:{tag}")}]}}}});
                api.patch(&format!("app-{i}"), &PatchParams::default(), &Patch::Strategic(&patch))
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Follows every canary's status through one watch.
async fn follow(client: kube::Client, board: Board) {
    let api: Api<DynamicObject> = Api::all_with(client, &canary_resource());
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let objs = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                vec![serde_json::to_value(o).unwrap_or_default()]
            }
            _ => continue,
        };
        let now = Instant::now();
        let mut board = board.lock().unwrap_or_else(|e| e.into_inner());
        for o in objs {
            let key = format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            let s = &o["status"];
            let seen = board.entry(key).or_default();
            let phase = s["phase"].as_str().unwrap_or_default().to_string();
            let iterations = s["iterations"].as_i64().unwrap_or(0);
            let last = s["lastTransitionTime"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if last != seen.last_transition || phase != seen.phase || iterations != seen.iterations
            {
                seen.steps.push((now, phase.clone(), iterations));
            }
            seen.phase = phase;
            seen.iterations = iterations;
            seen.last_transition = last;
        }
    }
}

fn canary_resource() -> kube::core::ApiResource {
    let gvk = kube::core::GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary");
    kube::core::ApiResource::from_gvk_with_plural(&gvk, "canaries")
}

fn count(board: &Board, pred: impl Fn(&Seen) -> bool) -> usize {
    board
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|s| pred(s))
        .count()
}

async fn wait_all(
    board: &Board,
    n: usize,
    flaggerd: &mut Child,
    limit: Duration,
    pred: impl Fn(&Seen) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let done = count(board, &pred);
        if done >= n {
            return Ok(());
        }
        if let Some(status) = flaggerd.try_wait()? {
            bail!("flaggerd exited ({status})");
        }
        if Instant::now() > deadline {
            bail!(
                "only {done} of {n} canaries got there in {}s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lag of every scheduled step of the release (seen time minus the previous step's seen
/// time plus the interval), the canaries starved (a step more than one interval late, or not
/// released), and the steps a release took on average.
fn lags(board: &Board, since: Instant) -> (Vec<f64>, usize, f64) {
    let board = board.lock().unwrap_or_else(|e| e.into_inner());
    let mut lags = Vec::new();
    let (mut starved, mut steps) = (0, 0usize);
    for seen in board.values() {
        let release: Vec<&(Instant, String, i64)> =
            seen.steps.iter().filter(|(t, _, _)| *t >= since).collect();
        steps += release.len();
        let mut late = seen.phase != "Succeeded";
        // The first step (the new revision) is not scheduled; each later one is due an
        // interval after the one before.
        for pair in release.windows(2) {
            let gap = pair[1].0.duration_since(pair[0].0).as_secs_f64();
            let lag = gap - INTERVAL.as_secs_f64();
            if gap < INTERVAL.as_secs_f64() / 2.0 {
                continue;
            }
            lags.push(lag.max(0.0));
            if lag > INTERVAL.as_secs_f64() {
                late = true;
            }
        }
        if late {
            starved += 1;
        }
    }
    lags.sort_by(f64::total_cmp);
    let avg = steps as f64 / board.len().max(1) as f64;
    (lags, starved, avg)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The upper bound of the bucket holding quantile `q` of `flaggerd_step_lag_seconds`.
fn histogram_quantile(metrics: &str, q: f64) -> String {
    let buckets: Vec<(String, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("flaggerd_step_lag_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_string();
            let v: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, v))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        return "n/a".into();
    }
    buckets
        .iter()
        .find(|(_, v)| *v >= q * total)
        .map_or("n/a".into(), |(le, _)| format!("{le}s"))
}

async fn scrape(port: u16) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    Ok(body)
}

/// flaggerd's resident memory now and at its peak, in MiB.
fn memory(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// flaggerd's CPU time (user + system), in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of /proc/PID/stat; `after` starts at field 3.
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    Ok(ticks / 100.0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
