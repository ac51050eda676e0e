//! Splunk Observability: mesh-sim's SignalFlow stand-in (a WebSocket
//! `/v2/signalflow/connect` speaking the authenticate / execute protocol with binary data
//! messages, and `GET /v2/metric` on the same port), the token checked as SignalFlow checks it.

use std::collections::HashMap;
use std::sync::Arc;

use mesh_sim::vendors::splunk::{Program, Programs, SignalFlow, Val};
use serde_json::{Value, json};

use super::common::*;

const TOKEN: &str = "sf-token-0123456789";
const SECRET: &[(&str, &str)] = &[("sf_token_key", TOKEN)];

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

fn provider(address: &str) -> Value {
    json!({"type": "splunk", "address": address, "secretRef": {"name": "sf"}})
}

fn program(name: &str) -> String {
    format!("data('{name}', filter=filter('app', '{{{{ target }}}}')).mean().publish()")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_values_and_failures() {
    let programs = [
        (
            "errors",
            Program::Points(vec![(7, Val::Double(0.9)), (7, Val::Double(0.5))]),
        ),
        ("latency", Program::Points(vec![(8, Val::Long(42))])),
        ("nothing", Program::Points(vec![])),
        ("nan", Program::Points(vec![(9, Val::Double(f64::NAN))])),
        (
            "multi",
            Program::Points(vec![(1, Val::Double(0.1)), (2, Val::Double(0.2))]),
        ),
        ("bad", Program::Fails("Syntax error at line 1".into())),
    ];
    let programs = HashMap::from(programs.map(|(name, p)| (rendered(&program(name)), p)));
    let state = Arc::new(SignalFlow::new(TOKEN, table(programs)));
    let address = serve_signalflow(state.clone()).await;
    let world = World::new().await;
    world.secret("sf", SECRET).await;
    let names = ["errors", "latency", "nothing", "nan", "multi", "bad"];
    world.templates(&names, provider(&address), program).await;
    let checks = world.checks("splunk", &[TOKEN]);

    // The last point counts; a long is a number.
    checks.values_and_no_data("no values found").await;
    world.online("errors").await.expect("online");
    let multiple = "query returned multiple values";
    checks.check("multi").await.error(multiple);
    let syntax = "query refused: 400: Syntax error at line 1";
    checks.check("bad").await.error(syntax);

    // A wrong token: SignalFlow's error on authenticate, the API's 401 online.
    world
        .secret("sf", &[("sf_token_key", "wrong-token-1")])
        .await;
    let wrong = checks.hiding(&["wrong-token-1"]);
    let invalid = "authentication failed: 401: Invalid auth token";
    wrong.check("errors").await.error(invalid);
    let unauthorized = "authentication failed: HTTP 401";
    wrong.check_online("errors").await.offline(unauthorized);

    // A Secret without the key names it.
    world.secret("sf", &[("other", TOKEN)]).await;
    let missing = "does not contain the key sf_token_key";
    checks.check("errors").await.error(missing);

    // Nothing listening: the stream address is the ws:// form of the address.
    world.secret("sf", SECRET).await;
    let down = unreachable().await;
    world
        .template("errors", provider(&down), &program("errors"))
        .await;
    let stream = down.replacen("http", "ws", 1);
    let unreachable = format!("unreachable: {stream}");
    checks.check("errors").await.error(&unreachable);
    let unreachable = format!("unreachable: {down}");
    checks.check_online("errors").await.offline(&unreachable);

    // The address is required.
    let no_address = json!({"type": "splunk", "secretRef": {"name": "sf"}});
    world
        .template("errors", no_address, &program("errors"))
        .await;
    let required = "spec.provider.address is required";
    checks.check("errors").await.error(required);
}

/// The execute request: the rendered program over ten intervals in milliseconds, immediate.
#[tokio::test]
async fn splunk_reads_ten_intervals() {
    let state = Arc::new(SignalFlow::new(
        TOKEN,
        table(HashMap::from([(
            rendered(&program("errors")),
            Program::Points(vec![(7, Val::Double(0.5))]),
        )])),
    ));
    let address = serve_signalflow(state.clone()).await;
    let world = World::new().await;
    world.secret("sf", SECRET).await;
    world
        .template("w", provider(&address), &program("errors"))
        .await;
    assert_eq!(value(world.check("w").await), 0.5);
    let executes = state.executes.lock().expect("lock");
    let [execute] = executes.as_slice() else {
        panic!("one execute expected: {executes:?}");
    };
    let n = |k: &str| execute[k].as_u64().unwrap_or_default();
    assert_eq!(n("stop") - n("start"), 600_000, "{execute}");
    assert_eq!(execute["immediate"], true);
    assert_eq!(execute["program"], rendered(&program("errors")));
}
