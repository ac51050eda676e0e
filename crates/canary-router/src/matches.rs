//! Request matches shared by the providers: Flagger's merge of the analysis' A/B conditions
//! with the service's base match, and their JSON forms.

use canary_core::spec::HttpMatch;
use serde_json::Value;

/// Every analysis match combined with every base match; the analysis' headers, query
/// parameters and source labels win (Flagger's `mergeMatchConditions`).
pub fn merge(analysis: &[HttpMatch], base: &[HttpMatch]) -> Vec<HttpMatch> {
    if base.is_empty() {
        return analysis.to_vec();
    }
    let mut out = Vec::new();
    for a in analysis {
        for b in base {
            let mut m = b.clone();
            m.headers.extend(a.headers.clone());
            m.query_params.extend(a.query_params.clone());
            m.source_labels.extend(a.source_labels.clone());
            if a.uri.is_some() {
                m.uri = a.uri.clone();
            }
            if a.method.is_some() {
                m.method = a.method.clone();
            }
            out.push(m);
        }
    }
    out
}

/// The JSON of a list of matches as Istio spells them.
pub fn to_json(matches: &[HttpMatch]) -> Value {
    serde_json::to_value(matches).unwrap_or(Value::Null)
}
