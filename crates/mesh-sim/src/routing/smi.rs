//! SMI: a TrafficSplit's weighted backends.

use serde_json::Value;

use super::*;

pub(super) fn smi(s: &Snapshot, ts: &Value, pick: &mut dyn Pick) -> Option<Decision> {
    let ns = ns_of(ts);
    let backends: Vec<(String, u64)> = ts["spec"]["backends"]
        .as_array()?
        .iter()
        .filter_map(|b| Some((b["service"].as_str()?.to_string(), quantity(&b["weight"]))))
        .collect();
    let to = weighted(&backends, pick)?;
    let weight = backends.iter().find(|(n, _)| *n == to).map(|(_, w)| *w);
    Some(Decision {
        via: format!(
            "TrafficSplit {ns}/{} -> {to} (weight {})",
            name_of(ts),
            weight.unwrap_or(0)
        ),
        to: service_named(s, &to, Some(ns))?,
        mirror: None,
        headers: Vec::new(),
    })
}

/// An SMI weight: a number, or a quantity string (`"95"`, `"500m"`), in thousandths.
fn quantity(v: &Value) -> u64 {
    if let Some(n) = v.as_u64() {
        return n * 1000;
    }
    let s = v.as_str().unwrap_or("0");
    match s.strip_suffix('m') {
        Some(milli) => milli.parse().unwrap_or(0),
        None => s.parse::<u64>().map(|n| n * 1000).unwrap_or(0),
    }
}
