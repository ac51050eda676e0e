//! Spec hashing: a short, stable fingerprint of a pod template or of a config's data.
//!
//! The hash is FNV-1a (64 bit) over the canonical JSON of the value (object keys sorted),
//! printed in decimal like Flagger's `lastAppliedSpec`. It is not bit-compatible with Go
//! Flagger's hash (see docs/compatibility.md): adopting a canary Flagger initialized starts
//! one extra analysis.

use serde_json::Value;

/// The fingerprint of a JSON value.
pub fn spec_hash(value: &Value) -> String {
    let mut h = Fnv::default();
    write_canonical(value, &mut h);
    h.0.to_string()
}

/// The fingerprint of a tracked config's data (`configmap/<name>` or `secret/<name>`), in
/// hex like Flagger's config checksums.
pub fn config_checksum(data: &Value) -> String {
    let mut h = Fnv::default();
    write_canonical(data, &mut h);
    format!("{:016x}", h.0)
}

/// The session-affinity cookie of a revision: `<name>=<10 letters>` derived from the
/// revision's fingerprint, so the engine and the router agree on it without sharing state,
/// and a restart gives the same cookie.
pub fn session_cookie(name: &str, revision: &str) -> String {
    let mut h = Fnv::default();
    h.write(name.as_bytes());
    h.write(b"\0");
    h.write(revision.as_bytes());
    let mut x = h.0;
    let letters: String = (0..10)
        .map(|_| {
            let c = (b'a' + (x % 26) as u8) as char;
            x = (x / 26) ^ x.rotate_left(17);
            c
        })
        .collect();
    format!("{name}={letters}")
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn write_canonical(value: &Value, h: &mut Fnv) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.write(b"{");
            for k in keys {
                write_canonical(&Value::String(k.clone()), h);
                h.write(b":");
                write_canonical(&map[k], h);
                h.write(b",");
            }
            h.write(b"}");
        }
        Value::Array(items) => {
            h.write(b"[");
            for item in items {
                write_canonical(item, h);
                h.write(b",");
            }
            h.write(b"]");
        }
        other => h.write(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = json!({"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}]});
        let b = json!({"containers": [{"image": "podinfo:6.0.0", "name": "podinfod"}]});
        assert_eq!(spec_hash(&a), spec_hash(&b));
    }

    #[test]
    fn session_cookies_are_stable_per_revision() {
        let a = session_cookie("flagger-cookie", "rev-1");
        assert_eq!(a, session_cookie("flagger-cookie", "rev-1"));
        assert_ne!(a, session_cookie("flagger-cookie", "rev-2"));
        assert!(a.starts_with("flagger-cookie=") && a.len() == "flagger-cookie=".len() + 10);
    }

    #[test]
    fn a_new_image_changes_the_hash() {
        let a = json!({"containers": [{"name": "podinfod", "image": "podinfo:6.0.0"}]});
        let b = json!({"containers": [{"name": "podinfod", "image": "podinfo:6.0.1"}]});
        assert_ne!(spec_hash(&a), spec_hash(&b));
        assert_eq!(config_checksum(&a).len(), 16);
    }
}
