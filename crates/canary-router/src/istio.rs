//! Istio: the VirtualService `<apex>` routing between `<apex>-primary` and `<apex>-canary`,
//! and the DestinationRules of both (flagger-behaviour.md 3.2).

use canary_api::Canary;
use canary_core::Routes;
use serde_json::{Map, Value, json};

use crate::{Error, Result, apex_name, cookie_attributes, managed_metadata, matches};

/// The VirtualService for the canary with `routes`.
pub fn virtual_service(canary: &Canary, routes: Routes) -> Value {
    let spec: &canary_core::CanarySpec = &canary.spec;
    let s = &spec.service;
    let apex = apex_name(canary);
    let (primary, canary_host) = (format!("{apex}-primary"), format!("{apex}-canary"));
    let mut hosts: Vec<String> = s.hosts.clone();
    if !hosts.iter().any(|h| h == &apex || h == "*") {
        hosts.push(apex.clone());
    }
    let gateways: Vec<String> = if s.gateways.is_empty() {
        vec!["mesh".into()]
    } else {
        s.gateways.clone()
    };
    let with_port =
        s.port_discovery && (s.delegation || gateways.first().is_some_and(|g| g != "mesh"));
    let destination = |host: &str, weight: u32| {
        let mut d = json!({"destination": {"host": host}, "weight": weight});
        if with_port {
            d["destination"]["port"] = json!({"number": s.port});
        }
        d
    };
    let mut base = Map::new();
    for (key, value) in [
        ("rewrite", s.rewrite.as_ref().map(|r| json!({"uri": r.uri, "authority": r.authority}))),
        ("timeout", s.timeout.as_ref().map(|t| json!(t))),
        ("retries", s.retries.as_ref().map(|r| json!({"attempts": r.attempts, "perTryTimeout": r.per_try_timeout, "retryOn": r.retry_on}))),
        ("corsPolicy", s.cors_policy.as_ref().and_then(|c| serde_json::to_value(c).ok())),
        ("headers", s.headers.as_ref().and_then(|h| serde_json::to_value(h).ok())),
    ] {
        if let Some(mut v) = value {
            strip_nulls(&mut v);
            base.insert(key.into(), v);
        }
    }
    let weighted = |mut route: Map<String, Value>, p: u32, c: u32, mirror: bool| {
        route.insert(
            "route".into(),
            json!([destination(&primary, p), destination(&canary_host, c)]),
        );
        if mirror {
            route.insert("mirror".into(), json!({"host": canary_host}));
            let weight = spec.analysis().and_then(|a| a.mirror_weight).unwrap_or(0);
            if weight > 0 {
                route.insert("mirrorPercentage".into(), json!({"value": weight}));
            }
        }
        Value::Object(route)
    };
    let ab = spec
        .analysis()
        .map(|a| a.r#match.clone())
        .unwrap_or_default();
    let http = if ab.is_empty() {
        let mut route = base.clone();
        if !s.r#match.is_empty() {
            route.insert("match".into(), matches::to_json(&s.r#match));
        }
        vec![weighted(
            route,
            routes.primary,
            routes.canary,
            routes.mirrored,
        )]
    } else {
        let mut first = base.clone();
        first.insert(
            "match".into(),
            matches::to_json(&matches::merge(&ab, &s.r#match)),
        );
        let mut second = base.clone();
        if !s.r#match.is_empty() {
            second.insert("match".into(), matches::to_json(&s.r#match));
        }
        vec![
            weighted(first, routes.primary, routes.canary, routes.mirrored),
            weighted(second, 100, 0, false),
        ]
    };
    let http = match spec.analysis().and_then(|a| a.session_affinity.as_ref()) {
        Some(affinity) => with_session_affinity(
            canary,
            affinity,
            routes,
            http,
            &primary,
            &canary_host,
            &destination,
        ),
        None => http,
    };
    let mut vs_spec = json!({"hosts": hosts, "gateways": gateways, "http": http});
    if s.delegation {
        vs_spec = json!({"http": vs_spec["http"]});
    }
    json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": managed_metadata(canary, &apex, true),
        "spec": vs_spec,
    })
}

/// Name of the routes flaggerd adds for session affinity (skipped when reading weights).
const STICKY: &str = "flagger-session-affinity";

/// Sticky sessions (Flagger's Istio session affinity): while the canary takes traffic, its
/// responses set the revision's cookie and a first route sends requests carrying it to the
/// canary; once traffic is back on the primary, a route answers the previous cookie with an
/// expiry. The cookie is derived from the revision (`canary_core::hash::session_cookie`).
fn with_session_affinity(
    canary: &Canary,
    affinity: &canary_core::spec::SessionAffinity,
    routes: Routes,
    mut http: Vec<Value>,
    primary: &str,
    canary_host: &str,
    destination: &dyn Fn(&str, u32) -> Value,
) -> Vec<Value> {
    let status = canary.status.clone().unwrap_or_default();
    let attributes = cookie_attributes(affinity, affinity.max_age.unwrap_or(86400));
    let cookie_match =
        |cookie: &str| json!([{"headers": {"Cookie": {"regex": format!(".*{cookie}.*")}}}]);
    let with_cookie = |mut d: Value, cookie: &str, attrs: &str| {
        d["headers"] = json!({"response": {"add": {"Set-Cookie": format!("{cookie}{attrs}")}}});
        d
    };
    if routes.canary > 0 {
        let cookie =
            canary_core::hash::session_cookie(&affinity.cookie_name, &status.last_applied_spec);
        if let Some(weighted) = http.first_mut() {
            weighted["route"][1] = with_cookie(weighted["route"][1].clone(), &cookie, &attributes);
            if let Some(name) = &affinity.primary_cookie_name {
                let primary_cookie =
                    canary_core::hash::session_cookie(name, &status.last_applied_spec);
                let interval = canary
                    .spec
                    .analysis()
                    .map_or(60, |a| a.interval(std::time::Duration::ZERO).as_secs());
                weighted["route"][0] = with_cookie(
                    weighted["route"][0].clone(),
                    &primary_cookie,
                    &cookie_attributes(affinity, interval as i32),
                );
                http.insert(0, json!({"name": format!("{STICKY}-primary"), "match": cookie_match(&primary_cookie), "route": [destination(primary, 100), destination(canary_host, 0)]}));
            }
        }
        let sticky = json!({"name": STICKY, "match": cookie_match(&cookie), "route": [destination(primary, 0), with_cookie(destination(canary_host, 100), &cookie, &attributes)]});
        http.insert(0, sticky);
    } else if let Some(previous) = status
        .session_affinity_cookie
        .or(status.previous_session_affinity_cookie)
    {
        let expire = json!({"name": STICKY, "match": cookie_match(&previous), "route": [with_cookie(destination(primary, 100), &previous, "; Max-Age=-1"), destination(canary_host, 0)]});
        http.insert(0, expire);
    }
    http
}

/// The DestinationRules `<apex>-primary` and `<apex>-canary`.
pub fn destination_rules(canary: &Canary) -> [Value; 2] {
    let apex = apex_name(canary);
    let policy = canary.spec.service.traffic_policy.clone();
    [format!("{apex}-primary"), format!("{apex}-canary")].map(|name| {
        let mut spec = json!({"host": name});
        if let Some(p) = &policy {
            spec["trafficPolicy"] = p.clone();
        }
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "metadata": managed_metadata(canary, &name, false), "spec": spec})
    })
}

/// The weights a VirtualService holds: the route that has the canary destination (the A/B
/// route when there are two).
pub fn routes_of(vs: &Value, canary: &Canary) -> Result<Routes> {
    let apex = apex_name(canary);
    let (primary, canary_host) = (format!("{apex}-primary"), format!("{apex}-canary"));
    let http = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
    for route in http
        .iter()
        .filter(|r| !r["name"].as_str().is_some_and(|n| n.starts_with(STICKY)))
    {
        let dests = route["route"].as_array().cloned().unwrap_or_default();
        let weight = |host: &str| {
            dests
                .iter()
                .find(|d| d["destination"]["host"] == host)
                .map(|d| d["weight"].as_u64().unwrap_or(0) as u32)
        };
        if let (Some(p), Some(c)) = (weight(&primary), weight(&canary_host)) {
            if p == 0 && c == 0 {
                return Err(Error::Invalid(format!(
                    "virtualservice {apex}: both weights are 0"
                )));
            }
            return Ok(Routes {
                primary: p,
                canary: c,
                mirrored: route["mirror"]["host"] == canary_host.as_str(),
            });
        }
    }
    Err(Error::Invalid(format!(
        "virtualservice {apex} has no route to {primary} and {canary_host}"
    )))
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}
