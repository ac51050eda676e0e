//! Istio: a VirtualService's `http` routes in order, `match` on uri, method and headers,
//! weighted destinations, mirroring and response headers.

use serde_json::Value;

use super::*;

fn istio_match(m: &Value, req: &Request) -> bool {
    if !m["uri"].is_null() && !string_match(&m["uri"], Some(&req.path)) {
        return false;
    }
    if !m["method"].is_null() && !string_match(&m["method"], Some(&req.method)) {
        return false;
    }
    let headers_ok = m["headers"].as_object().is_none_or(|hs| {
        hs.iter()
            .all(|(name, sm)| string_match(sm, req.header(name)))
    });
    let without_ok = m["withoutHeaders"].as_object().is_none_or(|hs| {
        hs.iter()
            .all(|(name, sm)| !string_match(sm, req.header(name)))
    });
    headers_ok && without_ok
}

pub(super) fn istio(
    s: &Snapshot,
    vs: &Value,
    req: &Request,
    pick: &mut dyn Pick,
) -> Option<Decision> {
    let ns = ns_of(vs);
    let (i, route) = vs["spec"]["http"]
        .as_array()?
        .iter()
        .enumerate()
        .find(|(_, r)| {
            r["match"]
                .as_array()
                .is_none_or(|ms| ms.is_empty() || ms.iter().any(|m| istio_match(m, req)))
        })?;
    let dests: Vec<&Value> = route["route"].as_array()?.iter().collect();
    let single = dests.len() == 1;
    let options: Vec<(&Value, u64)> = dests
        .iter()
        .map(|d| {
            (
                *d,
                d["weight"].as_u64().unwrap_or(if single { 100 } else { 0 }),
            )
        })
        .collect();
    let dest = weighted(&options, pick)?;
    let host = dest["destination"]["host"].as_str()?;
    let to = service_named(s, host, Some(ns))?;
    let mut headers = Vec::new();
    for h in [&route["headers"]["response"], &dest["headers"]["response"]] {
        for key in ["set", "add"] {
            for (n, v) in h[key].as_object().into_iter().flatten() {
                headers.push((n.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
    }
    let percent = route["mirrorPercentage"]["value"].as_f64().unwrap_or(100.0);
    let mirror = route["mirror"]["host"]
        .as_str()
        .filter(|_| (pick.pick(10_000) as f64) < percent * 100.0)
        .and_then(|h| service_named(s, h, Some(ns)));
    Some(Decision {
        via: format!(
            "istio VirtualService {ns}/{} http[{i}] -> {} (weight {})",
            name_of(vs),
            to.1,
            dest["weight"].as_u64().unwrap_or(100)
        ),
        to,
        mirror,
        headers,
    })
}
