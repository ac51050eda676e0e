//! Label and field selectors, as the API server parses them.

use serde_json::Value;

/// A parsed label selector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A selector that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("unable to parse requirement: {0:?}")]
pub struct SelectorError(pub String);

impl LabelSelector {
    /// Parses `app=podinfo,tier!=db,env in (a,b),!canary`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top(text) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let err = || SelectorError(p.to_string());
            let req = if let Some(k) = p.strip_prefix('!') {
                Requirement::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Requirement::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Requirement::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(rest).ok_or_else(err)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                Requirement::In(k.trim().into(), set(rest).ok_or_else(err)?)
            } else if p.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) {
                Requirement::Exists(p.to_string())
            } else {
                return Err(err());
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// True when the labels satisfy every requirement.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `metadata.name=podinfo,involvedObject.kind=Canary`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `=`, `==` and `!=` terms on dotted field paths.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError(part.to_string()));
            };
            terms.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// True when the object satisfies every term. A missing field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, eq, value)| {
            let mut v = object;
            for seg in path.split('.') {
                v = v.get(seg).unwrap_or(&Value::Null);
            }
            let actual = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

fn split_top(text: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_of_every_form() {
        let labels = json!({"app": "podinfo", "tier": "web"});
        let yes = [
            "app=podinfo",
            "app==podinfo",
            "tier!=db",
            "tier in (web,api)",
            "env notin (prod)",
            "app",
            "!canary",
            "app=podinfo,tier=web",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).expect(s).matches(&labels), "{s}");
        }
        for s in ["app=other", "tier in (db)", "!app", "canary"] {
            assert!(!LabelSelector::parse(s).expect(s).matches(&labels), "{s}");
        }
    }

    #[test]
    fn field_selectors_on_event_fields() {
        let ev = json!({"metadata": {"name": "e1", "namespace": "test"}, "involvedObject": {"kind": "Canary", "name": "podinfo"}});
        let s = FieldSelector::parse(
            "involvedObject.kind=Canary,involvedObject.name=podinfo,metadata.namespace=test",
        )
        .expect("parse");
        assert!(s.matches(&ev));
        assert!(
            !FieldSelector::parse("involvedObject.name!=podinfo")
                .expect("parse")
                .matches(&ev)
        );
    }
}
