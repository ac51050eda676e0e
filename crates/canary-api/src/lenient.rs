//! Objects as the API server stores them, decoded one by one.
//!
//! The API server accepts values flaggerd cannot model: an integer beyond `i32` where the
//! schema says `int32` (it does not range-check formats), a type that Flagger's own CRD
//! allows, a status someone edited. A watch or list of typed objects fails as a whole on
//! one such object, which would stop every canary. [`Lenient<K>`] decodes each object on
//! its own: the object, or its metadata with the field that failed and why, so the
//! controller reports that one object and goes on with the others.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An object of kind `K`, decoded, or what is known of it when it could not be.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every object decodes; boxing it would cost an allocation per object"
)]
pub enum Lenient<K> {
    /// The object decoded.
    Decoded(K),
    /// The object did not decode.
    Undecodable(Undecodable),
}

/// An object that did not decode: its metadata, the problem, and its raw status (so the
/// controller can read and update the conditions it reports the problem in).
#[derive(Clone, Debug, Default)]
pub struct Undecodable {
    /// The object's metadata.
    pub metadata: ObjectMeta,
    /// The first field that failed.
    pub error: DecodeError,
    /// The object's `status`, undecoded.
    pub status: Option<Value>,
    /// False when even the raw status could not be read (nested too deep): then `status`
    /// is `None` whatever the object holds, and must not be overwritten on that basis.
    pub status_readable: bool,
}

/// A field that could not be decoded: its path from the object's root and what was expected.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    /// Field path, e.g. `spec.analysis.stepWeight`.
    pub path: String,
    /// What is wrong, e.g. `99999999999 is out of range; expected a whole number from
    /// -2147483648 to 2147483647`.
    pub message: String,
}

impl<K> Lenient<K> {
    /// The decoded object, if it decoded.
    pub fn decoded(&self) -> Option<&K> {
        match self {
            Lenient::Decoded(k) => Some(k),
            Lenient::Undecodable(_) => None,
        }
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.meta(),
            Lenient::Undecodable(u) => &u.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.meta_mut(),
            Lenient::Undecodable(u) => &mut u.metadata,
        }
    }
}

/// serde_json's name for a raw JSON value: asked for a newtype struct of this name, its
/// deserializer hands over the object's text unparsed (how `RawValue` works).
const RAW_VALUE: &str = "$serde_json::private::RawValue";

impl<'de, K: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<K> {
    /// From serde_json's deserializer (a LIST), the object's text unparsed: an object nested
    /// deeper than serde_json reads (the API server accepts far deeper) then fails alone
    /// instead of the whole list. From any other (the buffered object of a watch event), the
    /// object's value.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(RAW_VALUE, LenientVisitor(std::marker::PhantomData))
    }
}

struct LenientVisitor<K>(std::marker::PhantomData<K>);

impl<'de, K: serde::de::DeserializeOwned> serde::de::Visitor<'de> for LenientVisitor<K> {
    type Value = Lenient<K>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(decode(Value::deserialize(d)?))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Ok(decode(Value::Object(serde_json::Map::new())));
        };
        if first == RAW_VALUE {
            let text: String = map.next_value()?;
            return Ok(decode_str(&text));
        }
        let mut object = serde_json::Map::new();
        object.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            object.insert(key, value);
        }
        Ok(decode(Value::Object(object)))
    }
}

/// Decodes `value` as `K`, or says which field failed.
pub fn decode<K: serde::de::DeserializeOwned>(value: Value) -> Lenient<K> {
    decode_str(&value.to_string())
}

/// Decodes the JSON text of an object as `K`, or says which field failed.
pub fn decode_str<K: serde::de::DeserializeOwned>(text: &str) -> Lenient<K> {
    let mut de = serde_json::Deserializer::from_str(text);
    let e = match serde_path_to_error::deserialize::<_, K>(&mut de) {
        Ok(k) => return Lenient::Decoded(k),
        Err(e) => e,
    };
    let error = describe(&e.path().to_string(), &e.inner().to_string());
    #[derive(Deserialize)]
    struct Parts {
        #[serde(default)]
        metadata: ObjectMeta,
        #[serde(default)]
        status: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default)]
        metadata: ObjectMeta,
    }
    let (metadata, status, status_readable) = match serde_json::from_str::<Parts>(text) {
        Ok(p) => (p.metadata, p.status, true),
        Err(_) => (
            serde_json::from_str::<Meta>(text)
                .map(|m| m.metadata)
                .unwrap_or_default(),
            None,
            false,
        ),
    };
    Lenient::Undecodable(Undecodable {
        metadata,
        error,
        status,
        status_readable,
    })
}

/// The longest field path a report shows, in segments.
const MAX_PATH: usize = 8;

/// serde's message in the words of a Kubernetes user: what was found and what was
/// expected, with Go-like type names left out.
fn describe(path: &str, serde_message: &str) -> DecodeError {
    let path = if path == "." {
        String::new()
    } else {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.len() > MAX_PATH {
            format!("{}...", segments[..MAX_PATH].join("."))
        } else {
            path.to_string()
        }
    };
    // serde_json appends the position in the text; the path says more.
    let serde_message = match serde_message.rfind(" at line ") {
        Some(i) => &serde_message[..i],
        None => serde_message,
    };
    if serde_message == "recursion limit exceeded" {
        return DecodeError {
            path,
            message: "nests deeper than the 128 levels flaggerd reads".into(),
        };
    }
    if let Some(rest) = serde_message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return DecodeError {
            path: join(&path, field),
            message: "required".into(),
        };
    }
    let parsed = ["invalid value: ", "invalid type: "]
        .iter()
        .find_map(|prefix| {
            let rest = serde_message.strip_prefix(prefix)?;
            let (found, expected) = rest.rsplit_once(", expected ")?;
            Some((prefix.starts_with("invalid value"), found, expected))
        });
    let message = match parsed {
        Some((true, found, expected)) => format!(
            "{} is out of range; expected {}",
            found_text(found),
            expected_text(expected)
        ),
        Some((false, found, expected)) => format!(
            "expected {}, found {}",
            expected_text(expected),
            found_text(found)
        ),
        None => canary_core::validate::truncate(serde_message, 256),
    };
    DecodeError { path, message }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn found_text(found: &str) -> String {
    let unquote = |s: &str| s.trim_matches('`').to_string();
    let text = if let Some(n) = found.strip_prefix("integer ") {
        unquote(n)
    } else if let Some(n) = found.strip_prefix("floating point ") {
        unquote(n)
    } else if let Some(b) = found.strip_prefix("boolean ") {
        unquote(b)
    } else if let Some(s) = found.strip_prefix("string ") {
        format!("the string {s}")
    } else {
        match found {
            "sequence" => "a list".into(),
            "map" => "an object".into(),
            "null" | "unit value" => "null".into(),
            other => other.into(),
        }
    };
    canary_core::validate::truncate(&text, 96)
}

fn expected_text(expected: &str) -> String {
    match expected {
        "i32" => "a whole number from -2147483648 to 2147483647".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "i64" => "a whole number".into(),
        "u64" => "a whole number from 0".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "an object".into(),
        other if other.starts_with("struct ") => "an object".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Canary;
    use serde_json::json;

    fn canary(analysis: Value) -> Value {
        json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": analysis,
            },
        })
    }

    fn error_of(value: Value) -> (Undecodable, String) {
        match decode::<Canary>(value) {
            Lenient::Undecodable(u) => {
                let text = u.error.to_string();
                (u, text)
            }
            Lenient::Decoded(_) => panic!("decoded"),
        }
    }

    #[test]
    fn an_int32_overflow_names_the_field_and_the_range() {
        let (u, text) = error_of(canary(
            json!({"interval": "1m", "threshold": 5, "stepWeight": 99_999_999_999i64}),
        ));
        assert_eq!(
            text,
            "spec.analysis.stepWeight: 99999999999 is out of range; expected a whole number from -2147483648 to 2147483647"
        );
        assert_eq!(u.metadata.name.as_deref(), Some("podinfo"));
    }

    #[test]
    fn a_wrong_type_says_what_was_found() {
        let (_, text) = error_of(canary(
            json!({"interval": "1m", "threshold": 5, "stepWeight": 5, "webhooks": [{"name": "a", "url": "http://a", "retries": "three"}]}),
        ));
        assert_eq!(
            text,
            "spec.analysis.webhooks[0].retries: expected a whole number from -2147483648 to 2147483647, found the string \"three\""
        );
        let mut c = canary(json!({"interval": "1m"}));
        c["spec"]["targetRef"] = json!(5);
        assert_eq!(error_of(c).1, "spec.targetRef: expected an object, found 5");
    }

    #[test]
    fn a_missing_field_is_required() {
        let mut c = canary(json!({"interval": "1m"}));
        c["spec"].as_object_mut().expect("spec").remove("targetRef");
        assert_eq!(error_of(c).1, "spec.targetRef: required");
    }

    #[test]
    fn an_undecodable_status_keeps_the_raw_status() {
        let mut c = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 5}));
        c["status"] = json!({"failedChecks": -3, "conditions": []});
        let (u, text) = error_of(c);
        assert_eq!(
            text,
            "status.failedChecks: -3 is out of range; expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            u.status,
            Some(json!({"failedChecks": -3, "conditions": []}))
        );
    }

    #[test]
    fn a_list_with_one_bad_object_decodes_the_others() {
        let good = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 5}));
        let bad = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 1e30}));
        let text = json!({"items": [good, bad]}).to_string();
        let list: kube::core::ObjectList<Lenient<Canary>> =
            serde_json::from_str(&text).expect("list");
        assert!(list.items[0].decoded().is_some());
        assert!(list.items[1].decoded().is_none());
    }

    #[test]
    fn a_watch_event_with_an_undecodable_object_decodes() {
        let bad = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 1e30}));
        let text = json!({"type": "MODIFIED", "object": bad}).to_string();
        let event: kube::core::WatchEvent<Lenient<Canary>> =
            serde_json::from_str(&text).expect("event");
        let kube::core::WatchEvent::Modified(Lenient::Undecodable(u)) = event else {
            panic!("decoded")
        };
        assert_eq!(u.metadata.name.as_deref(), Some("podinfo"));
        assert!(
            u.error
                .to_string()
                .starts_with("spec.analysis.stepWeight: expected a whole number")
        );
        let good = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 5}));
        let text = json!({"type": "ADDED", "object": good}).to_string();
        let event: kube::core::WatchEvent<Lenient<Canary>> =
            serde_json::from_str(&text).expect("event");
        assert!(matches!(
            event,
            kube::core::WatchEvent::Added(Lenient::Decoded(_))
        ));
    }

    #[test]
    fn an_object_nested_deeper_than_serde_reads_fails_alone() {
        // The API server reads JSON nested up to 10,000 levels; serde_json stops at 128.
        let mut deep = "1".to_string();
        for _ in 0..300 {
            deep = format!("{{\"policy\":{deep}}}");
        }
        let mut bad = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 5}));
        bad["spec"]["service"]["trafficPolicy"] = json!("DEEP");
        let bad = bad.to_string().replace("\"DEEP\"", &deep);
        let good = canary(json!({"interval": "1m", "threshold": 1, "stepWeight": 5}));
        let text = format!("{{\"items\": [{good}, {bad}]}}");
        let list: kube::core::ObjectList<Lenient<Canary>> =
            serde_json::from_str(&text).expect("the list decodes");
        assert!(list.items[0].decoded().is_some());
        let Lenient::Undecodable(u) = &list.items[1] else {
            panic!("decoded")
        };
        assert_eq!(u.metadata.name.as_deref(), Some("podinfo"));
        assert_eq!(
            u.error.to_string(),
            "spec.service.trafficPolicy.policy.policy.policy.policy.policy...: nests deeper than the 128 levels flaggerd reads"
        );
    }
}
