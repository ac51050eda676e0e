//! MetricTemplates of type `graphite` against Debian's real Graphite (carbon-cache and
//! graphite-web, started by mesh-sim): 30 one-second points fed through carbon, read back by
//! the render API as flaggerd reads it (the last non-null datapoint), no data, graphite-web's
//! refusals, an infinite value, the online check and a Graphite that is gone.

#[allow(
    dead_code,
    reason = "this test uses a few of the backend tests' helpers"
)]
#[path = "backends/common.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canary_core::MetricOutcome;
use common::{World, value};
use mesh_sim::graphite::Graphite;
use serde_json::json;

/// How long carbon may take to make the fed points readable.
const FLUSHED_WITHIN: Duration = Duration::from_secs(30);

/// Requests per second over the last 30 s: all 100, of which 99 succeed, except the newest
/// second with 98: the last point, not an average, is what counts.
fn feed(graphite: &Graphite) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut points = Vec::new();
    for ago in (1..=30).rev() {
        let ok = if ago == 1 { 98.0 } else { 99.0 };
        points.push(("podinfo.requests.ok", ok, now - ago));
        points.push(("podinfo.requests.total", 100.0, now - ago));
    }
    graphite.send_points(&points).expect("feed carbon");
}

/// The check of template `name`, polled until it is `want` (carbon writes the points to its
/// whisper files, or answers them from its cache, a moment after they arrive).
async fn settled(world: &World, name: &str, want: f64) -> MetricOutcome {
    let started = Instant::now();
    loop {
        let outcome = world.check(name).await;
        if matches!(outcome, MetricOutcome::Value(v) if (v - want).abs() < 1e-9)
            || started.elapsed() > FLUSHED_WITHIN
        {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_templates_against_a_real_graphite() {
    let started = Instant::now();
    let mut graphite = Graphite::start().await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("Graphite answered after {:?}", started.elapsed());
    feed(&graphite);

    let world = World::new().await;
    let provider = json!({"type": "graphite", "address": graphite.address});
    let templates = [
        // The error ratio: 2 failed of 100 in the newest second; the metric's max is 1.
        (
            "error-ratio",
            "target=divideSeries(\n  diffSeries(sumSeries({{ target }}.requests.total), sumSeries({{ target }}.requests.ok)),\n  sumSeries({{ target }}.requests.total)\n)\n&from=-10min",
        ),
        // The success rate in percent: above the max of 1, a failing check.
        (
            "success-rate",
            "target=asPercent(sumSeries(podinfo.requests.ok),sumSeries(podinfo.requests.total))&from=-10min",
        ),
        ("nothing", "target=podinfo.requests.nothing&from=-10min"),
        // Every point removed: the series holds only nulls.
        (
            "nulls",
            "target=removeAboveValue(podinfo.requests.ok,50)&from=-10min",
        ),
        // graphite-web 1.1.8 reads an unclosed call as a path matching nothing.
        (
            "unclosed",
            "target=sumSeries(podinfo.requests.ok&from=-10min",
        ),
        (
            "unknown-function",
            "target=noSuchFunction(podinfo.requests.ok)&from=-10min",
        ),
        ("bad-from", "target=podinfo.requests.ok&from=yesterdayish"),
        // Graphite's minute is `min`: the metric's interval `1m` (a Go duration) is refused.
        (
            "interval",
            "target=podinfo.requests.ok&from=-{{ interval }}",
        ),
        (
            "infinite",
            "target=scale(scale(podinfo.requests.ok,1e308),10)&from=-10min",
        ),
    ];
    for (name, query) in templates {
        world.template(name, provider.clone(), query).await;
    }

    let flushing = Instant::now();
    assert_eq!(value(settled(&world, "error-ratio", 0.02).await), 0.02);
    eprintln!("the fed points were read after {:?}", flushing.elapsed());
    assert_eq!(value(settled(&world, "success-rate", 98.0).await), 98.0);
    world.online("error-ratio").await.expect("online");
    let checks = world.checks("graphite", &[]);

    // A series that does not exist (graphite-web answers `[]`), only null points, and a
    // target graphite-web cannot parse but does not refuse.
    for template in ["nothing", "nulls", "unclosed"] {
        checks.check(template).await.no_data("no values found");
    }

    // graphite-web refuses what it cannot evaluate with a 400 and a plain-text reason.
    let refused = "query refused: HTTP 400: Invalid parameters";
    checks.check("unknown-function").await.error(&format!(
        "{refused} (Received request for unknown function: noSuchFunction)"
    ));
    checks
        .check("bad-from")
        .await
        .error(&format!("{refused} (Unknown day reference: yesterdayish)"));
    checks
        .check("interval")
        .await
        .error(&format!("{refused} (Invalid offset unit 'm')"));

    // graphite-web writes an infinite value as `1e9999`, which no float holds: an unreadable
    // answer, as Flagger's decoder finds it too.
    checks.check("infinite").await.error("unreadable answer");

    // Graphite gone: unreachable, and offline.
    graphite.stop().await;
    let unreachable = format!("unreachable: {}", graphite.address);
    checks.check("error-ratio").await.error(&unreachable);
    checks
        .check_online("error-ratio")
        .await
        .offline(&unreachable);
}
