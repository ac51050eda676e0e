//! Gateway API: an HTTPRoute's most specific matching rule, weighted `backendRefs`,
//! `requestMirror` and response header filters.

use serde_json::Value;

use super::*;

/// Gateway API's rule precedence: an exact path, then the longest path, then the most
/// header matches; ties go to the earlier rule.
pub(super) fn httproute(
    s: &Snapshot,
    route: &Value,
    req: &Request,
    pick: &mut dyn Pick,
) -> Option<Decision> {
    let ns = ns_of(route);
    let default_match = [Value::Null];
    let mut best: Option<((bool, usize, usize), usize, &Value)> = None;
    for (i, rule) in route["spec"]["rules"].as_array()?.iter().enumerate() {
        let matches = match rule["matches"].as_array() {
            Some(ms) if !ms.is_empty() => ms.as_slice(),
            _ => &default_match,
        };
        for m in matches {
            if let Some(rank) = gateway_match(m, req)
                && best.as_ref().is_none_or(|(r, _, _)| rank > *r)
            {
                best = Some((rank, i, rule));
            }
        }
    }
    let (_, i, rule) = best?;
    let refs: Vec<(&Value, u64)> = rule["backendRefs"]
        .as_array()?
        .iter()
        .map(|b| (b, b["weight"].as_u64().unwrap_or(1)))
        .collect();
    let backend = weighted(&refs, pick)?;
    let to = service_named(
        s,
        backend["name"].as_str()?,
        Some(backend["namespace"].as_str().unwrap_or(ns)),
    )?;
    let mut headers = Vec::new();
    for f in rule["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(backend["filters"].as_array().into_iter().flatten())
    {
        let modifier = &f["responseHeaderModifier"];
        for h in modifier["set"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(modifier["add"].as_array().into_iter().flatten())
        {
            if let (Some(n), Some(v)) = (h["name"].as_str(), h["value"].as_str()) {
                headers.push((n.to_string(), v.to_string()));
            }
        }
    }
    let mirror = rule["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|f| {
            let b = &f["requestMirror"]["backendRef"];
            service_named(
                s,
                b["name"].as_str()?,
                Some(b["namespace"].as_str().unwrap_or(ns)),
            )
        });
    Some(Decision {
        via: format!(
            "HTTPRoute {ns}/{} rules[{i}] -> {} (weight {})",
            name_of(route),
            to.1,
            backend["weight"].as_u64().unwrap_or(1)
        ),
        to,
        mirror,
        headers,
    })
}

/// Whether one HTTPRouteMatch matches, and its precedence.
fn gateway_match(m: &Value, req: &Request) -> Option<(bool, usize, usize)> {
    let kind = m["path"]["type"].as_str().unwrap_or("PathPrefix");
    let value = m["path"]["value"].as_str().unwrap_or("/");
    let path_ok = match kind {
        "Exact" => req.path == value,
        "RegularExpression" => regex_full(value, &req.path),
        _ => {
            let trimmed = value.trim_end_matches('/');
            req.path == trimmed
                || req.path.starts_with(&format!("{trimmed}/"))
                || trimmed.is_empty()
        }
    };
    let method_ok = m["method"].as_str().is_none_or(|x| x == req.method);
    let headers: Vec<&Value> = m["headers"].as_array().into_iter().flatten().collect();
    let headers_ok = headers.iter().all(|h| {
        let got = req.header(h["name"].as_str().unwrap_or_default());
        let want = h["value"].as_str().unwrap_or_default();
        match (h["type"].as_str().unwrap_or("Exact"), got) {
            (_, None) => false,
            ("RegularExpression", Some(v)) => regex_full(want, v),
            (_, Some(v)) => v == want,
        }
    });
    (path_ok && method_ok && headers_ok).then_some((kind == "Exact", value.len(), headers.len()))
}
