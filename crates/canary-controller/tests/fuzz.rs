//! Fuzzing as a property test: Canaries the API server would store, generated from the
//! CRD's own schema (plus, now and then, a value of another type, as Flagger's CRD or a
//! cluster without the schema would store), go through what flaggerd does with a stored
//! object: tolerant decoding, validation, a run of engine steps with arbitrary
//! observations, webhook and metric results and clock values, and the builders of every
//! generated object (the primary workload, the Services, each provider's routes). Nothing
//! may panic.
//!
//! `PROPTEST_CASES` sets the number of cases: `cargo test` runs 256, `cargo xtask fuzz`
//! many more.

use std::cell::Cell;
use std::collections::BTreeMap;

use canary_api::{Canary, Lenient};
use canary_core::{
    Action, CanaryRef, HookResult, MetricOutcome, MetricResult, Observation, Revision, Routes,
    Settings, WorkloadKind, WorkloadStatus,
};
use chrono::{DateTime, Utc};
use kube::CustomResourceExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// How deep free-form objects (`x-kubernetes-preserve-unknown-fields`) go.
const FREE_DEPTH: u32 = 3;

fn schema() -> Value {
    let crd = serde_json::to_value(Canary::crd()).expect("crd");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Integers as the API server takes them: small ones, the edges of int32 and int64.
fn integer(min: Option<i64>) -> BoxedStrategy<Value> {
    let lo = min.unwrap_or(i64::MIN);
    prop_oneof![
        4 => (-3i64..120).prop_map(move |n| json!(n.max(lo))),
        1 => prop::sample::select(vec![
            i32::MAX as i64, i32::MIN as i64, i32::MAX as i64 + 1, u32::MAX as i64,
            u32::MAX as i64 + 1, i64::MAX, i64::MIN, 99_999_999_999,
        ])
        .prop_map(move |n| json!(n.max(lo))),
        1 => any::<i64>().prop_map(move |n| json!(n.max(lo))),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (-10.0f64..200.0).prop_map(|f| json!(f)),
        prop::sample::select(vec![0.0, -0.0, 1e300, -1e300, f64::MIN_POSITIVE, 99.5])
            .prop_map(|f| json!(f)),
    ]
    .boxed()
}

/// Strings, including durations (`pattern: ^[0-9]+(m|s)` is not anchored at the end),
/// regular expressions, names, unicode and long text.
fn string(pattern: bool, date: bool) -> BoxedStrategy<Value> {
    if date {
        return prop_oneof![
            (0i64..4_102_444_800)
                .prop_map(|s| json!(DateTime::from_timestamp(s, 0).unwrap_or_default())),
            Just(json!("9999-12-31T23:59:59Z")),
            Just(json!("0001-01-01T00:00:00Z")),
        ]
        .boxed();
    }
    let duration = (
        any::<u64>(),
        prop::sample::select(vec!["s", "m", "ms", "h", "x", ""]),
        "[a-z0-9.]{0,3}",
    )
        .prop_map(|(n, unit, tail)| json!(format!("{}{unit}{tail}", n % 100_000_000_000_000)));
    if pattern {
        return (
            any::<u64>(),
            prop::sample::select(vec!["m", "s"]),
            prop::sample::select(vec!["", "30s", "junk", "0ms", "99999999999h"]),
        )
            .prop_map(|(n, unit, tail)| json!(format!("{}{unit}{tail}", n % 10_000_000_000_000)))
            .boxed();
    }
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,12}".prop_map(|s| json!(s)),
        2 => duration,
        1 => prop::sample::select(vec![
            "", "podinfo", "http://flagger-loadtester.test/", "(insider", "[z-a]", "a{1000}{1000}",
            "^.*$", "\u{1F680}", "p\u{f6}dinfo", "istio", "kubernetes", "appmesh:v1beta2",
            "smi:v1alpha3:linkerd", "nginx", "Deployment", "DaemonSet", "StatefulSet",
            "HorizontalPodAutoscaler", "confirm-rollout", "pre-rollout", "rollout",
            "confirm-promotion", "post-rollout", "event", "rollback", "confirm-traffic-increase",
            "request-success-rate", "request-duration", "Strict", "info", "warn", "error",
        ])
        .prop_map(|s| json!(s)),
        1 => ".{0,40}".prop_map(|s| json!(s)),
        1 => (1usize..70).prop_map(|n| json!("n".repeat(n))),
    ]
    .boxed()
}

/// Any JSON, a few levels deep: what a free-form field or a wrong-typed value holds.
fn free(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(|b| json!(b)),
        integer(None),
        number(),
        string(false, false),
    ]
    .boxed();
    if depth == 0 {
        return leaf;
    }
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(free(depth - 1), 0..3).prop_map(Value::Array),
        1 => prop::collection::btree_map("[a-z]{1,6}", free(depth - 1), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

/// A value that the schema admits; with `chaos`, sometimes one of another type.
fn value(schema: &Value, chaos: bool) -> BoxedStrategy<Value> {
    let admitted = admitted(schema, chaos);
    if chaos {
        prop_oneof![30 => admitted, 1 => free(1)].boxed()
    } else {
        admitted
    }
}

fn admitted(schema: &Value, chaos: bool) -> BoxedStrategy<Value> {
    if let Some(values) = schema["enum"].as_array() {
        return prop::sample::select(values.clone()).boxed();
    }
    if schema["x-kubernetes-int-or-string"] == true {
        return prop_oneof![integer(None), string(false, false)].boxed();
    }
    let kind = schema["type"]
        .as_str()
        .unwrap_or(if schema.get("properties").is_some() {
            "object"
        } else {
            ""
        });
    match kind {
        "boolean" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "integer" => integer(schema["minimum"].as_f64().map(|m| m as i64)),
        "number" => number(),
        "string" => string(
            schema.get("pattern").is_some(),
            schema["format"] == "date-time",
        ),
        "array" => prop::collection::vec(value(&schema["items"], chaos), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "object" => object(schema, chaos),
        _ => free(FREE_DEPTH),
    }
}

fn object(schema: &Value, chaos: bool) -> BoxedStrategy<Value> {
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        return prop::collection::btree_map("[a-z-]{1,8}", value(values, chaos), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed();
    }
    let Some(properties) = schema["properties"].as_object() else {
        return free(FREE_DEPTH);
    };
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .iter()
        .map(|(name, sub)| {
            let name = name.clone();
            let v = value(sub, chaos);
            if required.contains(&name) {
                v.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                prop::option::weighted(0.4, v)
                    .prop_map(move |v| v.map(|v| (name.clone(), v)))
                    .boxed()
            }
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()))
        .boxed()
}

/// Seed 004's canary with two of its fields (of the spec, its analysis or its service)
/// replaced by generated values: mostly valid, so the engine gets far.
fn seeded(schema: &Value) -> BoxedStrategy<Value> {
    let seed: Value = serde_json::to_value(
        Canary::from_yaml(include_str!(
            "../../canary-core/tests/fixtures/004-istio.yaml"
        ))
        .expect("seed 004"),
    )
    .expect("json");
    let spec = &schema["properties"]["spec"];
    let mut fields: Vec<(&'static str, String, Value)> = Vec::new();
    for (section, sub) in [
        ("", spec),
        ("analysis", &spec["properties"]["analysis"]),
        ("service", &spec["properties"]["service"]),
    ] {
        for (key, field) in sub["properties"].as_object().into_iter().flatten() {
            fields.push((section, key.clone(), field.clone()));
        }
    }
    let mutation = prop::sample::select(fields).prop_flat_map(|(section, key, field)| {
        value(&field, true).prop_map(move |v| (section, key.clone(), v))
    });
    prop::collection::vec(mutation, 0..3)
        .prop_map(move |mutations| {
            let mut spec = seed["spec"].clone();
            for (section, key, v) in mutations {
                let target = if section.is_empty() {
                    Some(&mut spec)
                } else {
                    spec.get_mut(section)
                };
                // An earlier mutation may have made the section a non-object.
                if let Some(Value::Object(target)) = target {
                    target.insert(key, v);
                }
            }
            spec
        })
        .boxed()
}

/// A Canary as stored: a generated spec (or a mutated seed) and status under fixed metadata.
fn stored(schema: &Value) -> impl Strategy<Value = Value> {
    let spec = prop_oneof![value(&schema["properties"]["spec"], true), seeded(schema)];
    let status = prop::option::weighted(0.6, value(&schema["properties"]["status"], true));
    (spec, status).prop_map(|(spec, status)| {
        let mut obj = json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1", "generation": 1},
            "spec": spec,
        });
        if let Some(status) = status {
            obj["status"] = status;
        }
        obj
    })
}

/// What the shell could observe and answer, step after step.
#[derive(Clone, Debug)]
struct World {
    ticks: Vec<(i64, i32, i32, u32, bool, u8)>,
    now: i64,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(
            (
                any::<i64>(),
                -2i32..5,
                -2i32..5,
                0u32..250,
                any::<bool>(),
                any::<u8>(),
            ),
            1..12,
        ),
        prop_oneof![
            Just(1_764_700_000i64),
            0i64..8_000_000_000,
            Just(i64::MAX / 1_000_000),
        ],
    )
        .prop_map(|(ticks, now)| World { ticks, now })
}

fn workload(kind: WorkloadKind, name: &str, t: &(i64, i32, i32, u32, bool, u8)) -> WorkloadStatus {
    WorkloadStatus {
        kind,
        name: name.into(),
        generation: t.0 % 3,
        observed_generation: t.0 % 2,
        desired_replicas: t.1,
        replicas: t.1.saturating_add(t.2),
        updated_replicas: t.2,
        available_replicas: t.1.saturating_sub(t.2),
        progressing_reason: t
            .5
            .is_multiple_of(7)
            .then(|| "ProgressDeadlineExceeded".into()),
        unavailable_since: DateTime::from_timestamp(t.0 % 8_000_000_000, 0),
    }
}

/// Runs the engine on the canary for each tick, answering its requests.
fn play(canary: &Canary, world: &World) {
    let settings = Settings::new("istio");
    let name = canary.metadata.name.clone().unwrap_or_default();
    let ns = canary.metadata.namespace.clone().unwrap_or_default();
    let canary_ref = CanaryRef {
        name: &name,
        namespace: &ns,
        spec: &canary.spec,
        settings: &settings,
    };
    let mut status = canary.status.clone().unwrap_or_default();
    let mut now: DateTime<Utc> = DateTime::from_timestamp(world.now, 0).unwrap_or_default();
    for (i, t) in world.ticks.iter().enumerate() {
        let kind = if canary.spec.target_ref.kind == "DaemonSet" {
            WorkloadKind::DaemonSet
        } else {
            WorkloadKind::Deployment
        };
        let mut obs = Observation {
            target: Revision {
                spec_hash: format!("rev-{}", t.5 % 3),
                configs: BTreeMap::new(),
            },
            primary: (t.5 % 5 != 0).then(|| workload(kind, "podinfo-primary.test", t)),
            canary: (t.5 % 6 != 0).then(|| workload(kind, "podinfo.test", t)),
            routes: if t.5 % 9 == 0 {
                Err("routes unreadable".into())
            } else {
                Ok(Routes {
                    primary: 250u32.saturating_sub(t.3),
                    canary: t.3,
                    mirrored: t.4,
                })
            },
            deleting: t.5 % 11 == 0,
            has_finalizer: t.4,
            ..Observation::default()
        };
        let mut step = canary_core::advance(&canary_ref, &status, &obs, now);
        for _ in 0..8 {
            match step.request() {
                Some(Action::RunWebhooks { kind, .. }) => {
                    let names: Vec<String> = canary
                        .spec
                        .analysis()
                        .map(|a| a.hooks(*kind).map(|h| h.name.clone()).collect())
                        .unwrap_or_default();
                    let results = names
                        .into_iter()
                        .enumerate()
                        .map(|(j, name)| HookResult {
                            name,
                            outcome: if (t.5 as usize + j).is_multiple_of(3) {
                                Err("denied".into())
                            } else {
                                Ok(())
                            },
                        })
                        .collect();
                    obs.webhooks.insert(*kind, results);
                }
                Some(Action::QueryMetrics) => {
                    let metrics = canary
                        .spec
                        .analysis()
                        .map(|a| a.metrics.clone())
                        .unwrap_or_default();
                    obs.metrics = Some(
                        metrics
                            .iter()
                            .enumerate()
                            .map(|(j, m)| MetricResult {
                                name: m.name.clone(),
                                outcome: match (t.5 as usize + j) % 5 {
                                    0 => MetricOutcome::NoData("no values".into()),
                                    1 => MetricOutcome::Error("unreachable".into()),
                                    2 => MetricOutcome::Value(f64::NAN),
                                    3 => MetricOutcome::Value(t.0 as f64),
                                    _ => MetricOutcome::Value(99.9),
                                },
                            })
                            .collect(),
                    );
                }
                Some(Action::CheckMetricProviders) => {
                    obs.providers_online = Some(if t.4 { Ok(()) } else { Err("down".into()) })
                }
                _ => break,
            }
            step = canary_core::advance(&canary_ref, &status, &obs, now);
        }
        // The journal records the effects: they must serialize and read back.
        let record: Vec<Action> = step
            .actions
            .iter()
            .filter(|a| !a.is_request() && !matches!(a, Action::Requeue(_)))
            .cloned()
            .collect();
        let text = serde_json::to_string(&record).expect("effects serialize");
        let back: Vec<Action> = serde_json::from_str(&text).expect("effects read back");
        assert_eq!(back, record);
        status = step.status;
        let advance_by = chrono::TimeDelta::seconds((t.0 % 100_000).abs() + i as i64);
        now = now.checked_add_signed(advance_by).unwrap_or(now);
    }
}

/// Builds every object flaggerd generates for the canary, with arbitrary weights.
fn build(canary: &Canary, world: &World) {
    let target = json!({
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {"metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfod", "image": "podinfo:1",
                    "ports": [{"containerPort": 9898, "name": "http"}, {"containerPort": 9797}]}]}}},
    });
    let sel = canary_controller::workload::Selector {
        label: "app".into(),
        value: "podinfo".into(),
    };
    let ports = canary_controller::services::discovered_ports(&target, &canary.spec.service);
    for role in [
        canary_controller::services::Role::Apex,
        canary_controller::services::Role::Primary,
        canary_controller::services::Role::Canary,
    ] {
        let _ = canary_controller::services::build(canary, &sel, role, &ports);
    }
    let _ = canary_controller::workload::primary(
        &target,
        canary,
        &sel,
        &Default::default(),
        "id",
        &["*".to_string()],
    );
    let pods = canary_router::appmesh::PodSelector {
        label: "app".into(),
        value: "podinfo".into(),
    };
    for t in &world.ticks {
        let routes = Routes {
            primary: 250u32.saturating_sub(t.3),
            canary: t.3,
            mirrored: t.4,
        };
        let vs = canary_router::istio::virtual_service(canary, routes);
        let _ = canary_router::istio::routes_of(&vs, canary);
        let _ = canary_router::istio::destination_rules(canary);
        for version in ["v1alpha1", "v1alpha2", "v1alpha3"] {
            let ts = canary_router::smi::traffic_split(canary, routes, version);
            let _ = canary_router::smi::routes_of(&ts, canary);
        }
        for version in ["v1", "v1beta1"] {
            if let Ok(route) = canary_router::gatewayapi::http_route(canary, routes, version) {
                let _ = canary_router::gatewayapi::routes_of(&route, canary);
            }
        }
        let _ = canary_router::appmesh::virtual_nodes(canary, &pods);
        let [router, _] = canary_router::appmesh::virtual_routers(canary, routes);
        let _ = canary_router::appmesh::routes_of(&router, canary);
        let _ = canary_router::appmesh::virtual_services(canary);
    }
}

#[test]
fn stored_canaries_never_panic_flaggerd() {
    let schema = schema();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let (decoded, valid) = (Cell::new(0u32), Cell::new(0u32));
    runner
        .run(&(stored(&schema), world()), |(obj, world)| {
            let lenient: Lenient<Canary> =
                serde_json::from_str(&obj.to_string()).expect("a stored object always reads");
            let Lenient::Decoded(canary) = lenient else {
                return Ok(());
            };
            decoded.set(decoded.get() + 1);
            let problems = canary_core::validate(&canary.spec);
            let _ = canary_core::validate::summarize(&problems);
            if problems.is_empty() {
                valid.set(valid.get() + 1);
            }
            play(&canary, &world);
            if problems.is_empty() {
                build(&canary, &world);
            }
            Ok(())
        })
        .expect("no panic");
    let (decoded, valid) = (decoded.get(), valid.get());
    eprintln!("{cases} cases: {decoded} decoded, {valid} valid");
    assert!(
        decoded > 0 && valid > 0,
        "the generator never reaches the engine"
    );
}
