//! `spec.service`: how the target is exposed (the generated Services and each provider's
//! routing object).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Extra, HttpMatch, free_object, free_object_list, is_false};

/// `spec.service` (Flagger's `CanaryService`).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryService {
    /// Apex Service name; defaults to the target's name. Treat it as immutable.
    pub name: Option<String>,
    /// ClusterIP port of the generated Services.
    #[serde(default)]
    pub port: i32,
    /// Port name, `http` by default; `grpc` for gRPC workloads.
    pub port_name: Option<String>,
    /// Container port number or name; defaults to `port`.
    pub target_port: Option<IntOrString>,
    /// `appProtocol` of the generated Service ports.
    pub app_protocol: Option<String>,
    /// `trafficDistribution` of the generated Services.
    #[schemars(extend("enum" = ["PreferClose", "PreferSameZone", "PreferSameNode"]))]
    pub traffic_distribution: Option<String>,
    /// Generate headless Services (`clusterIP: None`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub headless: bool,
    /// Add every container port of the target to the Services.
    #[serde(default, skip_serializing_if = "is_false")]
    pub port_discovery: bool,
    /// Request timeout (Istio, Gateway API, App Mesh).
    pub timeout: Option<String>,
    /// Backend request timeout (Gateway API).
    pub backend_timeout: Option<String>,
    /// Istio gateways; `mesh` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Gateway API parent references (required by the Gateway API provider).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<ParentRef>,
    /// Hosts of the routing object (Istio hosts, Gateway API hostnames, App Mesh domains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Istio VirtualService delegation: no hosts and gateways.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delegation: bool,
    /// Istio DestinationRule traffic policy, applied to both `-primary` and `-canary`.
    #[serde(default)]
    #[schemars(schema_with = "free_object")]
    pub traffic_policy: Option<serde_json::Value>,
    /// Base route match conditions.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HttpMatch>,
    /// URI and authority rewrite.
    pub rewrite: Option<Rewrite>,
    /// Retry policy.
    pub retries: Option<Retries>,
    /// Request and response header operations.
    pub headers: Option<Headers>,
    /// Static Gateway API request mirror filters (not the analysis mirror).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_object_list")]
    pub mirror: Vec<serde_json::Value>,
    /// CORS policy.
    pub cors_policy: Option<CorsPolicy>,
    /// App Mesh mesh name.
    pub mesh_name: Option<String>,
    /// App Mesh backends: virtual service names or ARNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
    /// Labels and annotations of the apex Service and of the routing object.
    pub apex: Option<CustomMetadata>,
    /// Labels and annotations of the `-primary` Service.
    pub primary: Option<CustomMetadata>,
    /// Labels and annotations of the `-canary` Service.
    pub canary: Option<CustomMetadata>,
    /// Label and annotation keys flaggerd leaves alone on the Services it owns.
    pub unmanaged_metadata: Option<UnmanagedMetadata>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// An integer or a string (Kubernetes' `IntOrString`), as in `targetPort`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
#[schemars(schema_with = "int_or_string")]
pub enum IntOrString {
    /// A port number.
    Int(i32),
    /// A port name.
    String(String),
}

fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-int-or-string": true })
}

/// A Gateway API `ParentReference`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// API group of the parent; `gateway.networking.k8s.io` by default, `core` for a Service.
    pub group: Option<String>,
    /// Kind of the parent: `Gateway`, or `Service` for mesh (GAMMA) routing.
    pub kind: Option<String>,
    /// Namespace of the parent.
    pub namespace: Option<String>,
    /// Name of the parent.
    #[serde(default)]
    pub name: String,
    /// Listener name.
    pub section_name: Option<String>,
    /// Port of the parent.
    pub port: Option<i32>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `service.rewrite`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// New URI or prefix.
    pub uri: Option<String>,
    /// New authority (Host header).
    pub authority: Option<String>,
    /// Gateway API: `ReplaceFullPath` (default) or `ReplacePrefixMatch`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `service.retries` (Istio `HTTPRetry`, also mapped to App Mesh).
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Number of attempts.
    pub attempts: Option<i32>,
    /// Timeout of each attempt, e.g. `1s`.
    pub per_try_timeout: Option<String>,
    /// Comma-separated retry conditions, e.g. `gateway-error,connect-failure`.
    pub retry_on: Option<String>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// `service.headers`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Operations on request headers.
    pub request: Option<HeaderOperations>,
    /// Operations on response headers.
    pub response: Option<HeaderOperations>,
}

/// Header set, add and remove operations.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Headers to overwrite.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to append.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `service.corsPolicy`.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Allowed origins (exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Allowed origins as string matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_object_list")]
    pub allow_origins: Vec<serde_json::Value>,
    /// Allowed methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Exposed headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Preflight cache duration.
    pub max_age: Option<String>,
    /// Whether credentials are allowed.
    pub allow_credentials: Option<bool>,
    /// Fields this version does not model.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: Extra,
}

/// Labels and annotations for a generated object.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct CustomMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Keys of labels and annotations to preserve on the generated Services.
#[serde_with::skip_serializing_none]
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct UnmanagedMetadata {
    /// Label keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Annotation keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
}
