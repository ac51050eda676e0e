//! `MetricTemplate` and `AlertProvider`: the other two Flagger CRDs.

use std::collections::BTreeMap;

use canary_core::spec::Extra;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `MetricTemplate.spec`: a query and the provider that answers it.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "MetricTemplate",
    namespaced,
    status = "MetricTemplateStatus",
    category = "all",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.type"}"#
)]
pub struct MetricTemplateSpec {
    /// The metrics backend.
    pub provider: MetricProvider,
    /// The query, a template with `{{ namespace }}`, `{{ target }}`, `{{ interval }}`...
    pub query: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `MetricTemplate.spec.provider`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// Backend type; flaggerd queries `prometheus` (other types report "not supported yet").
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["prometheus", "influxdb", "datadog", "externalmetrics", "stackdriver", "cloudwatch", "newrelic", "graphite", "dynatrace", "keptn", "splunk"]))]
    pub r#type: String,
    /// Address of the backend, e.g. `http://prometheus.istio-system:9090`.
    pub address: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Secret with credentials (`token`, or `username` and `password`).
    pub secret_ref: Option<SecretRef>,
    /// Region (CloudWatch).
    pub region: Option<String>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// A reference to a Secret in the same namespace.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
}

/// `MetricTemplate.status` (declared by Flagger, unused).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MetricTemplateStatus {
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<canary_core::status::Condition>,
}

/// `AlertProvider.spec`: where alerts go.
#[serde_with::skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "AlertProvider",
    namespaced,
    status = "AlertProviderStatus",
    category = "all",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// `slack`, `msteams`, `discord`, `rocket` or `gchat`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["slack", "msteams", "discord", "rocket", "gchat"]))]
    pub r#type: String,
    /// Channel (Slack), `general` by default.
    pub channel: Option<String>,
    /// User name shown, `flagger` by default.
    pub username: Option<String>,
    /// Webhook address; the secret's `address` key overrides it.
    pub address: Option<String>,
    /// HTTP proxy for the calls.
    pub proxy: Option<String>,
    /// Secret with `address` and optionally `token`.
    pub secret_ref: Option<SecretRef>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `AlertProvider.status`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AlertProviderStatus {
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<canary_core::status::Condition>,
}

/// The Secret that a MetricTemplate's `spec.provider.secretRef` or an AlertProvider's
/// `spec.secretRef` names could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}.{namespace} secret {secret} error")]
pub struct SecretError {
    /// The object as messages name its kind: `metric template` or `alert provider`.
    pub kind: &'static str,
    /// The object's name.
    pub name: String,
    /// Its namespace, the Secret's too.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The API error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}
