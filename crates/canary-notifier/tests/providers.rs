//! Alerts through AlertProviders (kube-sim) to an in-process receiver: each provider's body
//! and headers, the secret's address and token, severity filtering and the cluster name.

use std::sync::{Arc, Mutex};

use canary_api::Canary;
use canary_core::{Alert, Level};
use canary_notifier::{AlertProviders, Notifier};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

async fn receiver(seen: Seen) -> String {
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, h: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let auth = h
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                seen.lock().expect("lock").push((
                    uri.path().to_string(),
                    auth,
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                "ok"
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn cluster() -> (kube_sim::KubeSim, kube::Client) {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in canary_api::crd_objects() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("crd");
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "test"}})).expect("ns"),
    )
    .await
    .expect("ns");
    (sim, client)
}

const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis:\n    interval: 1m\n    threshold: 5\n    stepWeight: 10\n    alerts:\n    - {name: on-call, severity: error, providerRef: {name: slack}}\n    - {name: team, severity: info, providerRef: {name: teams}}\n    - {name: dev, severity: warn, providerRef: {name: discord}}\n    - {name: ops, severity: info, providerRef: {name: rocket}}\n    - {name: chat, providerRef: {name: gchat}}\n    - {name: gone, severity: error, providerRef: {name: missing}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_gets_its_payload_and_severities_filter() {
    let seen: Seen = Arc::default();
    let url = receiver(seen.clone()).await;
    let (_sim, client) = cluster().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "test");
    let secret = json!({"metadata": {"name": "chat"}, "data": {"address": to_b64(&format!("{url}/from-secret")), "token": to_b64("s3cr3t")}});
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(secret).expect("secret"),
        )
        .await
        .expect("secret");
    let providers: Api<canary_api::AlertProvider> = Api::namespaced(client.clone(), "test");
    for (name, kind, extra) in [
        (
            "slack",
            "slack",
            json!({"address": format!("{url}/slack-hook"), "channel": "releases"}),
        ),
        (
            "teams",
            "msteams",
            json!({"address": format!("{url}/teams")}),
        ),
        (
            "discord",
            "discord",
            json!({"address": format!("{url}/discord")}),
        ),
        (
            "rocket",
            "rocket",
            json!({"address": format!("{url}/rocket")}),
        ),
        ("gchat", "gchat", json!({"secretRef": {"name": "chat"}})),
    ] {
        let mut spec = extra;
        spec["type"] = json!(kind);
        let obj = json!({"apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider", "metadata": {"name": name}, "spec": spec});
        providers
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj).expect("provider"),
            )
            .await
            .expect("provider");
    }
    let canary = Canary::from_yaml(CANARY).expect("canary");
    let notifier = AlertProviders::new(client, "prod-eu");
    let fields = vec![("Target".to_string(), "Deployment/podinfo.test".to_string())];
    let info = Alert {
        level: Level::Info,
        message: "New revision detected, progressing canary analysis.".into(),
        fields,
    };
    notifier.send(&canary, &info).await.expect("info");
    let mut paths: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(p, _, _)| p.clone())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/from-secret", "/rocket", "/teams"],
        "info goes to info (and empty-severity) alerts only"
    );
    seen.lock().expect("lock").clear();

    let error = Alert {
        level: Level::Error,
        message: "Failed checks threshold reached 5".into(),
        fields: vec![],
    };
    let failed = notifier
        .send(&canary, &error)
        .await
        .expect_err("the missing provider is reported");
    assert!(
        matches!(&failed, canary_notifier::Error::Alerts(list) if list.len() == 1),
        "{failed:?}"
    );
    let failed = canary_core::error_chain(&failed);
    assert!(
        failed.starts_with("alert gone (missing.test): alert provider missing.test error:"),
        "{failed}"
    );
    let got = seen.lock().expect("lock").clone();
    assert_eq!(
        got.len(),
        5,
        "the other providers were still sent to: {got:?}"
    );
    let by = |p: &str| {
        got.iter()
            .find(|(path, _, _)| path == p)
            .cloned()
            .unwrap_or_else(|| panic!("no post to {p}: {got:?}"))
    };
    let (_, _, slack) = by("/slack-hook");
    assert_eq!(slack["channel"], "releases");
    assert_eq!(slack["username"], "flagger");
    assert_eq!(slack["attachments"][0]["color"], "danger");
    assert_eq!(slack["attachments"][0]["author_name"], "podinfo.test");
    assert_eq!(
        slack["attachments"][0]["text"],
        "Failed checks threshold reached 5"
    );
    assert_eq!(
        slack["attachments"][0]["fields"][0],
        json!({"title": "Cluster", "value": "prod-eu", "short": false})
    );
    let (_, _, discord) = by("/discord/slack");
    assert_eq!(
        discord["attachments"][0]["color"], "danger",
        "discord takes Slack's body at /slack"
    );
    let (_, _, rocket) = by("/rocket");
    assert_eq!(rocket["attachments"][0]["color"], "#FF0000");
    let (_, _, teams) = by("/teams");
    assert_eq!(
        (teams["@type"].as_str(), teams["themeColor"].as_str()),
        (Some("MessageCard"), Some("FF0000"))
    );
    assert_eq!(
        teams["sections"][0]["activityTitle"],
        "Failed checks threshold reached 5"
    );
    let (_, auth, gchat) = by("/from-secret");
    assert_eq!(auth.as_deref(), Some("Bearer s3cr3t"), "the secret's token");
    assert_eq!(gchat["cards"][0]["header"]["subtitle"], "podinfo.test");
    assert_eq!(
        gchat["cards"][0]["sections"][0]["widgets"][0]["textParagraph"]["text"],
        "Failed checks threshold reached 5"
    );
}

const BARE: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, stepWeight: 10}\n";

fn global(kind: &str, url: String, token: Option<&str>) -> canary_notifier::Global {
    canary_notifier::Global {
        kind: kind.into(),
        url,
        token: token.map(String::from),
        proxy: None,
        username: "release-bot".into(),
        channel: "deploys".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_without_alerts_go_to_the_global_notifier_of_any_severity() {
    let seen: Seen = Arc::default();
    let url = receiver(seen.clone()).await;
    let (_sim, client) = cluster().await;
    let bare = Canary::from_yaml(BARE).expect("canary");
    let with_alerts = Canary::from_yaml(CANARY).expect("canary");
    let notifier = AlertProviders::new(client.clone(), "prod-eu").with_global(Some(global(
        "slack",
        format!("{url}/global"),
        Some("xoxb-token"),
    )));
    for level in [Level::Info, Level::Warn, Level::Error] {
        let alert = Alert {
            level,
            message: format!("{level:?} news"),
            fields: vec![],
        };
        notifier.send(&bare, &alert).await.expect("global slack");
    }
    let got = seen.lock().expect("lock").clone();
    assert_eq!(
        got.len(),
        3,
        "every severity goes to the global notifier: {got:?}"
    );
    let (path, auth, body) = &got[2];
    assert_eq!(path, "/global");
    assert_eq!(auth.as_deref(), Some("Bearer xoxb-token"));
    assert_eq!(
        (body["username"].as_str(), body["channel"].as_str()),
        (Some("release-bot"), Some("deploys"))
    );
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert_eq!(body["attachments"][0]["fields"][0]["value"], "prod-eu");
    seen.lock().expect("lock").clear();

    // A canary with alerts uses its AlertProviders only (none exist here: errors, no post).
    let info = Alert {
        level: Level::Info,
        message: "x".into(),
        fields: vec![],
    };
    let _ = notifier.send(&with_alerts, &info).await;
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .all(|(p, _, _)| p != "/global")
    );

    let teams = AlertProviders::new(client, "").with_global(Some(global(
        "msteams",
        format!("{url}/teams-global"),
        None,
    )));
    teams.send(&bare, &info).await.expect("global msteams");
    let got = seen.lock().expect("lock").clone();
    let (path, _, body) = got.last().expect("a post");
    assert_eq!(
        (path.as_str(), body["@type"].as_str()),
        ("/teams-global", Some("MessageCard"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_names_the_provider_and_cause_never_the_address_or_token() {
    let (_sim, client) = cluster().await;
    let bare = Canary::from_yaml(BARE).expect("canary");
    // Nothing listens on port 9 of loopback: the post is refused.
    let hook = "http://127.0.0.1:9/services/T000/B000/XXXXsecretpathXXXX";
    let notifier = AlertProviders::new(client, "").with_global(Some(global(
        "slack",
        hook.into(),
        Some("xoxb-secret-token"),
    )));
    let alert = Alert {
        level: Level::Error,
        message: "x".into(),
        fields: vec![],
    };
    let error = notifier.send(&bare, &alert).await.expect_err("refused");
    let error = canary_core::error_chain(&error);
    assert!(
        error.starts_with("global slack notifier: posting to slack failed"),
        "{error}"
    );
    for secret in ["XXXXsecretpathXXXX", "xoxb-secret-token", "127.0.0.1:9"] {
        assert!(!error.contains(secret), "{secret} leaked: {error}");
    }
    let debug = format!(
        "{:?}",
        global("slack", hook.into(), Some("xoxb-secret-token"))
    );
    assert!(!debug.contains("secret"), "{debug}");
}

fn to_b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
