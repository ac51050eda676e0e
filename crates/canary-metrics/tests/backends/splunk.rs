//! Splunk Observability: mesh-sim's SignalFlow stand-in (a WebSocket
//! `/v2/signalflow/connect` speaking the authenticate / execute protocol with binary data
//! messages, and `GET /v2/metric` on the same port), the token checked as SignalFlow checks it.

use std::collections::HashMap;
use std::sync::Arc;

use mesh_sim::vendors::splunk::{Program, Programs, SignalFlow, Val};
use serde_json::json;

use super::common::*;

const TOKEN: &str = "sf-token-0123456789";

/// Programs answering from a table of `program -> answer`; any other publishes nothing.
fn table(programs: HashMap<String, Program>) -> Programs {
    let programs = Arc::new(programs);
    Arc::new(move |p: String| {
        let answer = programs.get(&p).cloned();
        Box::pin(async move { answer })
    })
}

/// Serves `state` on a loopback port; answers `http://127.0.0.1:PORT`.
async fn serve_signalflow(state: Arc<SignalFlow>) -> String {
    mesh_sim::vendors::splunk::start(state).await.expect("bind")
}

fn program(name: &str) -> String {
    format!("data('{name}', filter=filter('app', '{{{{ target }}}}')).mean().publish()")
}

fn rendered(name: &str) -> String {
    program(name).replace("{{ target }}", "podinfo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_values_and_failures() {
    let programs = HashMap::from([
        (
            rendered("errors"),
            Program::Points(vec![(7, Val::Double(0.9)), (7, Val::Double(0.5))]),
        ),
        (
            rendered("latency"),
            Program::Points(vec![(8, Val::Long(42))]),
        ),
        (rendered("nothing"), Program::Points(vec![])),
        (
            rendered("nan"),
            Program::Points(vec![(9, Val::Double(f64::NAN))]),
        ),
        (
            rendered("multi"),
            Program::Points(vec![(1, Val::Double(0.1)), (2, Val::Double(0.2))]),
        ),
        (
            rendered("bad"),
            Program::Fails("Syntax error at line 1".into()),
        ),
    ]);
    let state = Arc::new(SignalFlow::new(TOKEN, table(programs)));
    let address = serve_signalflow(state.clone()).await;
    let world = World::new().await;
    let provider = |a: &str| json!({"type": "splunk", "address": a, "secretRef": {"name": "sf"}});
    world.secret("sf", &[("sf_token_key", TOKEN)]).await;
    for name in ["errors", "latency", "nothing", "nan", "multi", "bad"] {
        world
            .template(name, provider(&address), &program(name))
            .await;
    }
    let secrets = [TOKEN];

    // The last point counts; a long is a number.
    assert_eq!(value(world.check("errors").await), 0.5);
    assert_eq!(
        value(world.check("latency").await),
        42.0,
        "above the max of 1: a failing check"
    );
    world.online("errors").await.expect("online");

    let m = no_data(world.check("nothing").await);
    names(&m, "splunk", "nothing", "no values found", &secrets);
    let m = no_data(world.check("nan").await);
    names(&m, "splunk", "nan", "no values found", &secrets);
    let m = error(world.check("multi").await);
    names(
        &m,
        "splunk",
        "multi",
        "query returned multiple values",
        &secrets,
    );
    let m = error(world.check("bad").await);
    names(
        &m,
        "splunk",
        "bad",
        "query refused: 400: Syntax error at line 1",
        &secrets,
    );

    // A wrong token: SignalFlow's error on authenticate, the API's 401 online.
    world
        .secret("sf", &[("sf_token_key", "wrong-token-1")])
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "splunk",
        "errors",
        "authentication failed: 401: Invalid auth token",
        &["wrong-token-1"],
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "splunk",
        "errors",
        "authentication failed: HTTP 401",
        &["wrong-token-1"],
    );

    // A Secret without the key names it.
    world.secret("sf", &[("other", TOKEN)]).await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "splunk",
        "errors",
        "does not contain the key sf_token_key",
        &secrets,
    );

    // Nothing listening: the stream address is the ws:// form of the address.
    world.secret("sf", &[("sf_token_key", TOKEN)]).await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &program("errors"))
        .await;
    let m = error(world.check("errors").await);
    let stream = down.replacen("http", "ws", 1);
    names(
        &m,
        "splunk",
        "errors",
        &format!("unreachable: {stream}"),
        &secrets,
    );
    let m = world.online("errors").await.expect_err("offline");
    names(
        &m,
        "splunk",
        "errors",
        &format!("unreachable: {down}"),
        &secrets,
    );

    // The address is required.
    world
        .template(
            "errors",
            json!({"type": "splunk", "secretRef": {"name": "sf"}}),
            &program("errors"),
        )
        .await;
    let m = error(world.check("errors").await);
    names(
        &m,
        "splunk",
        "errors",
        "spec.provider.address is required",
        &secrets,
    );
}

/// The execute request: the rendered program over ten intervals in milliseconds, immediate.
#[tokio::test]
async fn splunk_reads_ten_intervals() {
    let state = Arc::new(SignalFlow::new(
        TOKEN,
        table(HashMap::from([(
            rendered("errors"),
            Program::Points(vec![(7, Val::Double(0.5))]),
        )])),
    ));
    let address = serve_signalflow(state.clone()).await;
    let world = World::new().await;
    world.secret("sf", &[("sf_token_key", TOKEN)]).await;
    world
        .template(
            "w",
            json!({"type": "splunk", "address": address, "secretRef": {"name": "sf"}}),
            &program("errors"),
        )
        .await;
    assert_eq!(value(world.check("w").await), 0.5);
    let executes = state.executes.lock().expect("lock");
    let [execute] = executes.as_slice() else {
        panic!("one execute expected: {executes:?}");
    };
    let n = |k: &str| execute[k].as_u64().unwrap_or_default();
    assert_eq!(n("stop") - n("start"), 600_000, "{execute}");
    assert_eq!(execute["immediate"], true);
    assert_eq!(execute["program"], rendered("errors"));
}
