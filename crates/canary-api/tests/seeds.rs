//! Every Canary YAML of the seeds parses and validates, except seed 000's mis-indented
//! webhooks block, which fails naming its line.

use canary_api::{Canary, Error};

fn fixture(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../canary-core/tests/fixtures");
    std::fs::read_to_string(format!("{dir}/{name}")).expect("fixture")
}

#[test]
fn the_seeds_canaries_parse_and_validate() {
    for file in [
        "001-linkerd.yaml",
        "002-appmesh-v1beta2.yaml",
        "002-appmesh-ab-header.yaml",
        "002-appmesh-ab-cookie.yaml",
        "003-how-it-works.yaml",
        "004-istio.yaml",
    ] {
        let canary = Canary::from_yaml(&fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let problems = canary_core::validate(&canary.spec);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        assert_eq!(canary.spec.target_ref.name, "podinfo");
    }
}

#[test]
fn seed_002_fields_are_read_as_written() {
    let canary = Canary::from_yaml(&fixture("002-appmesh-v1beta2.yaml")).expect("parse");
    let spec = &canary.spec;
    assert_eq!(spec.provider.as_deref(), Some("appmesh:v1beta2"));
    assert_eq!(spec.progress_deadline_seconds, Some(60));
    assert_eq!(spec.service.port, 9898);
    assert_eq!(spec.service.timeout.as_deref(), Some("15s"));
    let retries = spec.service.retries.as_ref().expect("retries");
    assert_eq!(
        retries.retry_on.as_deref(),
        Some("gateway-error,client-error,stream-error")
    );
    let a = spec.analysis().expect("analysis");
    assert_eq!((a.threshold(), a.max_weight(), a.step_weight()), (5, 50, 5));
    assert_eq!(
        a.metrics[0].threshold_range.as_ref().and_then(|r| r.min),
        Some(99.0)
    );
    assert_eq!(
        a.webhooks[0].kind(),
        Some(canary_core::HookType::PreRollout)
    );
    assert_eq!(a.webhooks[1].kind(), Some(canary_core::HookType::Rollout));
    assert_eq!(a.webhooks[0].timeout(), std::time::Duration::from_secs(30));
    let meta = a.webhooks[0].metadata.as_ref().expect("metadata");
    assert_eq!(
        meta["cmd"],
        "curl -sd 'test' http://podinfo-canary.test:9898/token | grep token"
    );
    assert_eq!(spec.strategy(), canary_core::Strategy::Canary);

    let ab = Canary::from_yaml(&fixture("002-appmesh-ab-cookie.yaml")).expect("parse");
    assert_eq!(ab.spec.strategy(), canary_core::Strategy::AbTesting);
    let cookie = &ab.spec.analysis().expect("analysis").r#match[0].headers["cookie"];
    assert_eq!(
        cookie.regex.as_deref(),
        Some("^(.*?;)?(canary=insider)(;.*)?$")
    );
}

#[test]
fn seed_000_misindented_webhooks_fail_naming_the_line() {
    let text = fixture("000-appmesh-workshop.yaml");
    let bad_line = text
        .lines()
        .position(|l| l.trim() == "type: pre-rollout")
        .expect("line")
        + 1;
    let err = Canary::from_yaml(&text).expect_err("the seed's YAML is mis-indented");
    let Error::Yaml { line, problem, .. } = &err else {
        panic!("unexpected error {err}")
    };
    assert!(
        (bad_line..=bad_line + 1).contains(line),
        "error at line {line}, the mis-indented key is at line {bad_line}: {err}"
    );
    assert!(problem.contains("indented"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("canary YAML, line {line} column")),
        "{err}"
    );
}

#[test]
fn unknown_fields_survive_a_round_trip() {
    let text = fixture("002-appmesh-v1beta2.yaml")
        .replace(
            "  provider: appmesh:v1beta2\n",
            "  provider: appmesh:v1beta2\n  futureSpecField: kept\n",
        )
        .replace(
            "    threshold: 5\n",
            "    threshold: 5\n    futureAnalysisField: {a: 1}\n",
        )
        .replace(
            "      type: pre-rollout\n",
            "      type: pre-rollout\n      futureHookField: true\n",
        );
    let canary = Canary::from_yaml(&text).expect("parse");
    let json = serde_json::to_value(&canary).expect("serialize");
    assert_eq!(json["spec"]["futureSpecField"], "kept");
    assert_eq!(json["spec"]["analysis"]["futureAnalysisField"]["a"], 1);
    assert_eq!(
        json["spec"]["analysis"]["webhooks"][0]["futureHookField"],
        true
    );
    assert_eq!(json["apiVersion"], "flagger.app/v1beta1");
    assert_eq!(json["kind"], "Canary");
    let back: Canary = serde_json::from_value(json).expect("deserialize");
    assert_eq!(back.spec, canary.spec);
}

#[test]
fn status_round_trips_with_flaggers_field_names() {
    let status = serde_json::json!({
        "phase": "Succeeded",
        "failedChecks": 0,
        "canaryWeight": 0,
        "iterations": 0,
        "lastAppliedSpec": "14788816656920327485",
        "lastPromotedSpec": "14788816656920327485",
        "trackedConfigs": {"configmap/podinfo-config": "a1b2c3"},
        "lastTransitionTime": "2019-07-10T08:23:18Z",
        "conditions": [{
            "lastTransitionTime": "2019-07-10T08:23:18Z",
            "lastUpdateTime": "2019-07-10T08:23:18Z",
            "message": "Canary analysis completed successfully, promotion finished.",
            "reason": "Succeeded",
            "status": "True",
            "type": "Promoted"
        }],
        "futureStatusField": 7
    });
    let parsed: canary_core::CanaryStatus = serde_json::from_value(status.clone()).expect("parse");
    assert_eq!(parsed.phase, Some(canary_core::Phase::Succeeded));
    assert_eq!(serde_json::to_value(&parsed).expect("serialize"), status);
    let empty: canary_core::CanaryStatus =
        serde_json::from_value(serde_json::json!({"phase": ""})).expect("empty phase");
    assert_eq!(empty.phase, None);
    let bad =
        serde_json::from_value::<canary_core::CanaryStatus>(serde_json::json!({"phase": "Bogus"}));
    assert!(
        bad.expect_err("unknown phase")
            .to_string()
            .contains("unknown canary phase \"Bogus\"")
    );
}

#[test]
fn printer_columns_are_flaggers() {
    use kube::CustomResourceExt;
    let crd = Canary::crd();
    let cols = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let shown: Vec<&str> = cols
        .iter()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(shown, ["Status", "Weight", "LastTransitionTime"]);
    assert_eq!(cols.len(), 10);
    assert!(
        crd.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
}
