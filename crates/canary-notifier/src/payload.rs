//! The request bodies of each chat provider, as Flagger's notifiers write them.

use serde_json::{Value, json};

/// What an alert says, ready for any provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `<name>.<namespace>` of the canary.
    pub workload: String,
    /// The alert's text.
    pub text: String,
    /// The fields (Target, Failed checks threshold, ...), with `Cluster` first when set.
    pub fields: Vec<(String, String)>,
    /// Error severity (red) or not.
    pub error: bool,
    /// Slack channel.
    pub channel: String,
    /// Slack user name.
    pub username: String,
}

/// The body for a provider type: `slack`, `discord`, `rocket`, `msteams` or `gchat`.
pub fn body(kind: &str, m: &Message) -> Value {
    let fields: Vec<Value> = m
        .fields
        .iter()
        .map(|(t, v)| json!({"title": t, "value": v, "short": false}))
        .collect();
    match kind {
        "msteams" => json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": if m.error { "FF0000" } else { "0076D7" },
            "summary": m.workload,
            "sections": [{
                "activityTitle": m.text,
                "activitySubtitle": m.workload,
                "facts": m.fields.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            }],
        }),
        "gchat" => {
            let mut widgets = vec![json!({"textParagraph": {"text": m.text}})];
            widgets.extend(
                m.fields
                    .iter()
                    .map(|(t, v)| json!({"keyValue": {"topLabel": t, "content": v}})),
            );
            json!({"cards": [{
                "header": {"title": "Flagger", "subtitle": m.workload, "imageUrl": "https://raw.githubusercontent.com/fluxcd/flagger/main/docs/logo/flagger-icon.png"},
                "sections": [{"widgets": widgets}],
            }]})
        }
        _ => {
            let color = match (kind, m.error) {
                ("rocket", true) => "#FF0000",
                ("rocket", false) => "#0076D7",
                (_, true) => "danger",
                (_, false) => "good",
            };
            json!({
                "channel": m.channel,
                "username": m.username,
                "icon_emoji": ":rocket:",
                "attachments": [{
                    "color": color,
                    "author_name": m.workload,
                    "text": m.text,
                    "mrkdwn_in": ["text"],
                    "fields": fields,
                }],
            })
        }
    }
}

/// Discord takes Slack's body at `<url>/slack`.
pub fn address(kind: &str, url: &str) -> String {
    if kind == "discord" && !url.trim_end_matches('/').ends_with("/slack") {
        format!("{}/slack", url.trim_end_matches('/'))
    } else {
        url.to_string()
    }
}
