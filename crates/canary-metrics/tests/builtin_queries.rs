//! Every builtin query as Flagger's observers render it for seed podinfo (namespace `test`,
//! Ingress and route `podinfo`, interval `1m`), in `tests/snapshots/builtin-queries.txt`.
//! `UPDATE_EXPECT=1 cargo test -p canary-metrics --test builtin_queries` rewrites it.

use std::fmt::Write;

use canary_core::spec::Builtin;
use canary_metrics::query::{Model, builtin, render};

#[test]
fn every_builtin_query_as_flagger_renders_it() {
    let model = Model {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: "podinfo".into(),
        interval: "1m".into(),
        variables: Default::default(),
    };
    let mut out = String::new();
    for observer in ["istio", "linkerd", "appmesh", "http", "nginx"] {
        for (name, metric) in [
            ("request-success-rate", Builtin::SuccessRate),
            ("request-duration", Builtin::Duration),
        ] {
            let query = render("builtin", builtin(observer, metric), &model).expect("render");
            let _ = writeln!(out, "{observer} {name}\n{query}\n");
        }
    }
    expect_test::expect_file!["snapshots/builtin-queries.txt"].assert_eq(&out);
}
