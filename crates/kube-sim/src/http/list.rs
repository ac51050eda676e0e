//! Lists: selectors, pages with continue tokens, and the metadata-only forms.

use super::*;

pub(super) fn list(
    c: &crate::api::Cluster,
    rt: &ResourceType,
    ns: &str,
    query: &BTreeMap<String, String>,
    table: bool,
    include: &str,
) -> Result<Value, ApiError> {
    let (items, rv) = c.list(rt, ns);
    let selected = query.contains_key("labelSelector") || query.contains_key("fieldSelector");
    let items = select(items, query)?;
    let page = paginate(items, rv, query, selected)?;
    let mut list = if table {
        table::table(rt, &page.items, page.rv, include)
    } else {
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": page.rv.to_string()}, "items": page.items})
    };
    if let Some(token) = page.next {
        list["metadata"]["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        list["metadata"]["remainingItemCount"] = json!(remaining);
    }
    Ok(list)
}

/// One page of a list: its items, the list's resourceVersion, the token of the next page
/// and, without selectors, how many items remain after it.
pub(super) struct Page {
    items: Vec<Value>,
    rv: u64,
    next: Option<String>,
    remaining: Option<usize>,
}

/// Cuts `items` (in key order: namespace, then name) to `limit`, starting after the key in
/// the `continue` token. The token carries the first page's resourceVersion, which every
/// page reports; unlike etcd, later pages read the current objects (docs/kube-sim.md).
pub(super) fn paginate(
    items: Vec<Value>,
    rv: u64,
    query: &BTreeMap<String, String>,
    selected: bool,
) -> Result<Page, ApiError> {
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 0,
        Some(Ok(l)) => l.max(0),
        Some(Err(_)) => return Err(ApiError::bad_request("limit must be an integer")),
    };
    let (rv, after) = match query.get("continue").filter(|t| !t.is_empty()) {
        None => (rv, None),
        Some(token) => {
            let (list_rv, key) = continue_token::decode(token).ok_or_else(|| {
                ApiError::bad_request(
                    "continue key is not valid: the token was not issued by this server",
                )
            })?;
            (list_rv, Some(key))
        }
    };
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let mut items: Vec<Value> = match &after {
        Some(after) => items.into_iter().filter(|o| key(o) > *after).collect(),
        None => items,
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit == 0 || items.len() <= limit {
        return Ok(Page {
            items,
            rv,
            next: None,
            remaining: None,
        });
    }
    let remaining = items.len() - limit;
    items.truncate(limit);
    let next = items.last().map(|o| continue_token::encode(rv, &key(o)));
    Ok(Page {
        items,
        rv,
        next,
        remaining: (!selected).then_some(remaining),
    })
}

/// The opaque `continue` token: the list's resourceVersion and the last key served, as
/// JSON in hexadecimal (clients never look inside).
pub(super) mod continue_token {
    use serde_json::{Value, json};

    pub(super) fn encode(rv: u64, key: &str) -> String {
        let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key}).to_string();
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn decode(token: &str) -> Option<(u64, String)> {
        if !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
            .collect();
        let v: Value = serde_json::from_slice(&bytes?).ok()?;
        Some((v["rv"].as_u64()?, v["start"].as_str()?.to_string()))
    }
}

pub(super) fn select(
    items: Vec<Value>,
    query: &BTreeMap<String, String>,
) -> Result<Vec<Value>, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(items
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect())
}

/// The `meta.k8s.io/v1` PartialObjectMetadata form of an object.
pub(super) fn partial_object(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
}

pub(super) fn partial_list(list: Value) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(partial_object)
        .collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list["metadata"], "items": items})
}
