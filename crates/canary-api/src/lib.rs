//! canary-api: the Kubernetes resources flaggerd reads, `flagger.app/v1beta1` `Canary`,
//! `MetricTemplate` and `AlertProvider`, field for field as Flagger's CRDs.
//!
//! The Canary's spec and status are canary-core's types, wrapped here in kube's
//! `CustomResource` derive; [`crds`] renders the CRD manifests that `cargo xtask crds`
//! writes to `deploy/crds/`. This crate holds types and pure conversions only: it must never
//! need a Kubernetes client or an async runtime.

mod lenient;
mod templates;

use std::ops::{Deref, DerefMut};

use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use lenient::{DecodeError, Lenient, Undecodable, decode};
pub use templates::{
    AlertProvider, AlertProviderSpec, AlertProviderStatus, MetricProvider, MetricTemplate,
    MetricTemplateSpec, MetricTemplateStatus, SecretError, SecretRef,
};

/// The API group of every flaggerd resource.
pub const GROUP: &str = "flagger.app";
/// The API version served.
pub const VERSION: &str = "v1beta1";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A YAML document could not be read; the message names the line.
    #[error("{what} YAML, line {line} column {column}: {problem}")]
    Yaml {
        /// What was being read, e.g. `canary`.
        what: &'static str,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's description, with a hint where one helps.
        problem: String,
    },
    /// A manifest could not be rendered.
    #[error("cannot render the {0} CRD")]
    Render(&'static str, #[source] serde_yaml_ng::Error),
}

/// `pub type Result<T, E = Error>`, as in every flaggerd library crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Canary.spec`: canary-core's [`canary_core::CanarySpec`], wrapped for kube's derive.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    plural = "canaries",
    namespaced,
    status = "canary_core::CanaryStatus",
    category = "all",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend","priority":1}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"integer","jsonPath":".status.failedChecks","priority":1}"#,
    printcolumn = r#"{"name":"Interval","type":"string","jsonPath":".spec.analysis.interval","priority":1}"#,
    printcolumn = r#"{"name":"Mirror","type":"boolean","jsonPath":".spec.analysis.mirror","priority":1}"#,
    printcolumn = r#"{"name":"StepWeight","type":"string","jsonPath":".spec.analysis.stepWeight","priority":1}"#,
    printcolumn = r#"{"name":"StepWeights","type":"string","jsonPath":".spec.analysis.stepWeights","priority":1}"#,
    printcolumn = r#"{"name":"MaxWeight","type":"string","jsonPath":".spec.analysis.maxWeight","priority":1}"#,
    printcolumn = r#"{"name":"LastTransitionTime","type":"string","jsonPath":".status.lastTransitionTime"}"#
)]
#[serde(transparent)]
pub struct CanarySpec(pub canary_core::CanarySpec);

impl Deref for CanarySpec {
    type Target = canary_core::CanarySpec;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for CanarySpec {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Canary {
    /// Reads a Canary from YAML, with an error that names the line and the problem.
    pub fn from_yaml(text: &str) -> Result<Canary> {
        from_yaml("canary", text)
    }
}

/// Reads any resource from YAML, with an error that names the line and the problem.
pub fn from_yaml<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut problem = e.to_string();
        // The parser's own text repeats the position; keep only its description.
        if let Some(i) = problem.find(" at line ") {
            problem.truncate(i);
        }
        if problem.contains("did not find expected") || problem.contains("mapping values are not allowed") {
            problem.push_str(
                " (the lines around it are not indented consistently: each key of a list item must line up with the first key after its '-')",
            );
        }
        Error::Yaml { what, line, column, problem }
    })
}

/// The three CRD objects, to install in a (test) cluster.
pub fn crd_objects()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![Canary::crd(), MetricTemplate::crd(), AlertProvider::crd()]
}

/// The CRD manifests as `(file name, YAML)`, each with the "generated, do not edit" header.
pub fn crds() -> Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("canaries.yaml", render("Canary", &Canary::crd())?),
        (
            "metrictemplates.yaml",
            render("MetricTemplate", &MetricTemplate::crd())?,
        ),
        (
            "alertproviders.yaml",
            render("AlertProvider", &AlertProvider::crd())?,
        ),
    ])
}

fn render(
    kind: &'static str,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<String> {
    let body = serde_yaml_ng::to_string(crd).map_err(|e| Error::Render(kind, e))?;
    Ok(format!(
        "# Generated by `cargo xtask crds` from crates/canary-api; do not edit.\n# The {kind} CRD of flagger.app/v1beta1, served unchanged for Flagger's YAML.\n---\n{body}"
    ))
}
