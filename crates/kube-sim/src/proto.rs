//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed commands send
//! (`kubectl create namespace|configmap|secret` always post protobuf). kube-sim answers in
//! JSON, which every client accepts.

use serde_json::{Map, Value, json};

/// Decodes a `k8s\0`-enveloped object of a kind kube-sim knows; `None` otherwise.
pub fn decode(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let fields = parse(unknown)?;
    let type_meta = parse(bytes(&fields, 1)?)?;
    let api_version = string(&type_meta, 1).unwrap_or_default();
    let kind = string(&type_meta, 2)?;
    let raw = parse(bytes(&fields, 2)?)?;
    let metadata = bytes(&raw, 1)
        .and_then(parse)
        .map(|m| object_meta(&m))
        .unwrap_or_else(|| json!({}));
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
    match kind.as_str() {
        "Namespace" => {
            if let Some(spec) = bytes(&raw, 2).and_then(parse) {
                obj["spec"] = json!({"finalizers": strings(&spec, 1)});
            }
        }
        "ConfigMap" => {
            obj["data"] = map(&raw, 2, |b| {
                Value::String(String::from_utf8_lossy(b).into_owned())
            });
            obj["binaryData"] = map(&raw, 3, |b| Value::String(base64(b)));
        }
        "Secret" => {
            obj["data"] = map(&raw, 2, |b| Value::String(base64(b)));
            if let Some(t) = string(&raw, 3) {
                obj["type"] = Value::String(t);
            }
        }
        _ => return None,
    }
    if let Some(m) = obj.as_object_mut() {
        m.retain(|k, v| k == "metadata" || !matches!(v, Value::Object(o) if o.is_empty()));
    }
    Some(obj)
}

enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn parse(mut buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (key, rest) = varint(buf)?;
        buf = rest;
        match key & 7 {
            0 => {
                let (v, rest) = varint(buf)?;
                buf = rest;
                let _ = v;
                out.push((key >> 3, Field::Varint));
            }
            2 => {
                let (len, rest) = varint(buf)?;
                let len = usize::try_from(len).ok()?;
                if rest.len() < len {
                    return None;
                }
                out.push((key >> 3, Field::Bytes(&rest[..len])));
                buf = &rest[len..];
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

fn bytes<'a>(fields: &[(u64, Field<'a>)], n: u64) -> Option<&'a [u8]> {
    fields.iter().find_map(|(k, f)| match f {
        Field::Bytes(b) if *k == n => Some(*b),
        _ => None,
    })
}

fn string(fields: &[(u64, Field<'_>)], n: u64) -> Option<String> {
    bytes(fields, n).map(|b| String::from_utf8_lossy(b).into_owned())
}

fn strings(fields: &[(u64, Field<'_>)], n: u64) -> Vec<String> {
    fields
        .iter()
        .filter_map(|(k, f)| match f {
            Field::Bytes(b) if *k == n => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

fn map(fields: &[(u64, Field<'_>)], n: u64, value: impl Fn(&[u8]) -> Value) -> Value {
    let mut out = Map::new();
    for (k, f) in fields {
        if let (true, Field::Bytes(entry)) = (*k == n, f)
            && let Some(e) = parse(entry)
        {
            let key = string(&e, 1).unwrap_or_default();
            out.insert(key, value(bytes(&e, 2).unwrap_or_default()));
        }
    }
    Value::Object(out)
}

fn object_meta(m: &[(u64, Field<'_>)]) -> Value {
    let mut meta = json!({});
    for (field, name) in [(1, "name"), (2, "generateName"), (3, "namespace")] {
        if let Some(v) = string(m, field) {
            meta[name] = Value::String(v);
        }
    }
    for (field, name) in [(11, "labels"), (12, "annotations")] {
        let v = map(m, field, |b| {
            Value::String(String::from_utf8_lossy(b).into_owned())
        });
        if v.as_object().is_some_and(|o| !o.is_empty()) {
            meta[name] = v;
        }
    }
    let finalizers = strings(m, 14);
    if !finalizers.is_empty() {
        meta["finalizers"] = json!(finalizers);
    }
    meta
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, data: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, data.len() as u8];
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_the_namespace_kubectl_create_sends() {
        let meta = field(1, b"test");
        let raw = field(1, &meta);
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let obj = decode(&body).expect("decode");
        assert_eq!(obj["kind"], "Namespace");
        assert_eq!(obj["metadata"]["name"], "test");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
