//! The OpenAPI v3 index and per-group-version documents kubectl reads before `apply` and
//! `create`: their PATCH operations advertise the `fieldValidation` parameter, so kubectl
//! hands validation to the server (`fieldValidation=Strict`) instead of needing schemas.

use serde_json::{Map, Value, json};

use crate::registry::Registry;

/// `/openapi/v3`: one entry per served group-version.
pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for t in registry.all() {
        let gv = gv_path(&t.group, &t.version);
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=kube-sim")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn group_version(registry: &Registry, gv: &str) -> Option<Value> {
    let mut paths = Map::new();
    for t in registry
        .all()
        .filter(|t| gv_path(&t.group, &t.version) == gv)
    {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", t.kind),
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            })
        };
        let prefix = format!("/{gv}");
        let scope = if t.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        paths.insert(
            format!("{prefix}{scope}/{}", t.plural),
            json!({"post": op("create")}),
        );
        paths.insert(
            format!("{prefix}{scope}/{}/{{name}}", t.plural),
            json!({"patch": op("patch"), "put": op("replace")}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (kube-sim)", "version": crate::http::KUBE_VERSION}, "paths": paths, "components": {"schemas": {}}}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}
