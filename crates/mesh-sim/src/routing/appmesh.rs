//! App Mesh: a VirtualService's VirtualRouter, its routes by priority, prefix and header
//! matches, weighted targets to VirtualNodes whose DNS hostname names the Service.

use serde_json::Value;

use super::*;

pub(super) fn appmesh(
    s: &Snapshot,
    avs: &Value,
    req: &Request,
    pick: &mut dyn Pick,
) -> Option<Decision> {
    let ns = ns_of(avs);
    let node_service = |node: &str| {
        let vn = s
            .appmesh_nodes
            .iter()
            .find(|o| ns_of(o) == ns && name_of(o) == node)?;
        let host = vn["spec"]["serviceDiscovery"]["dns"]["hostname"].as_str()?;
        service_named(s, host, Some(ns))
    };
    let provider = &avs["spec"]["provider"];
    if let Some(node) = provider["virtualNode"]["virtualNodeRef"]["name"].as_str() {
        let to = node_service(node)?;
        return Some(Decision {
            via: format!(
                "appmesh VirtualService {ns}/{} -> node {node}",
                name_of(avs)
            ),
            to,
            mirror: None,
            headers: Vec::new(),
        });
    }
    let router = provider["virtualRouter"]["virtualRouterRef"]["name"].as_str()?;
    let vr = s
        .appmesh_routers
        .iter()
        .find(|o| ns_of(o) == ns && name_of(o) == router)?;
    let mut routes: Vec<&Value> = vr["spec"]["routes"].as_array()?.iter().collect();
    routes.sort_by_key(|r| r["priority"].as_u64().unwrap_or(u64::MAX));
    let route = routes.into_iter().find(|r| {
        let m = &r["httpRoute"]["match"];
        let prefix = m["prefix"].as_str().unwrap_or("/");
        req.path.starts_with(prefix)
            && m["method"].as_str().is_none_or(|x| x == req.method)
            && m["headers"].as_array().into_iter().flatten().all(|h| {
                let name = h["name"].as_str().unwrap_or_default();
                let found = appmesh_header(&h["match"], req.header(name));
                found != h["invert"].as_bool().unwrap_or(false)
            })
    })?;
    let targets: Vec<(String, u64)> = route["httpRoute"]["action"]["weightedTargets"]
        .as_array()?
        .iter()
        .filter_map(|t| {
            Some((
                t["virtualNodeRef"]["name"].as_str()?.to_string(),
                t["weight"].as_u64().unwrap_or(0),
            ))
        })
        .collect();
    let node = weighted(&targets, pick)?;
    let weight = targets.iter().find(|(n, _)| *n == node).map(|(_, w)| *w);
    Some(Decision {
        via: format!(
            "appmesh VirtualRouter {ns}/{router} route {} -> node {node} (weight {})",
            route["name"].as_str().unwrap_or("?"),
            weight.unwrap_or(0)
        ),
        to: node_service(&node)?,
        mirror: None,
        headers: Vec::new(),
    })
}

/// App Mesh's header match (`exact`, `prefix`, `suffix`, `regex`; none means present).
fn appmesh_header(m: &Value, value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    if let Some(x) = m["suffix"].as_str() {
        return value.ends_with(x);
    }
    string_match(m, Some(value))
}
