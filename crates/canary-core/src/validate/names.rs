//! Names: the objects flaggerd generates are named after the target and the apex Service
//! (`<name>-primary`, `<name>-canary`), so those names must leave room for the suffix
//! within Kubernetes' limits (63 characters for a Service, 253 for a Deployment).

use super::{Problems, truncate};
use crate::spec::CanarySpec;

/// The longest Service name (a DNS-1035 label).
const MAX_LABEL: usize = 63;
/// The longest name of most other objects (a DNS-1123 subdomain).
const MAX_SUBDOMAIN: usize = 253;
/// The longer of the two suffixes of generated objects.
const SUFFIX: &str = "-primary";

pub(super) fn generated(v: &mut Problems, spec: &CanarySpec) {
    let target = spec.target_ref.name.as_str();
    if target.is_empty() {
        v.push("spec.targetRef.name", "required");
    } else if !is_subdomain(target) {
        v.push(
            "spec.targetRef.name",
            format!(
                "{:?} is not a valid object name; expected lowercase letters, digits, '-' and '.'",
                truncate(target, 64)
            ),
        );
    } else if target.len() + SUFFIX.len() > MAX_SUBDOMAIN {
        v.push(
            "spec.targetRef.name",
            format!(
                "{} characters is too long: the generated {target_kind} \"<name>{SUFFIX}\" would exceed {MAX_SUBDOMAIN}",
                target.len(),
                target_kind = spec.target_ref.kind.to_lowercase()
            ),
        );
    }
    // The apex Service is `service.name`, else the target's name.
    let (path, apex) = match spec.service.name.as_deref() {
        Some(n) if !n.is_empty() => ("spec.service.name", n),
        _ if target.is_empty() => return,
        _ => ("spec.targetRef.name", target),
    };
    if !is_label(apex) {
        v.push(
            path,
            format!(
                "{:?} cannot name a Service; expected at most {MAX_LABEL} lowercase letters, digits and '-', starting with a letter",
                truncate(apex, 64)
            ),
        );
    } else if apex.len() + SUFFIX.len() > MAX_LABEL {
        v.push(
            path,
            format!(
                "{:?} makes the generated Service name \"{}{SUFFIX}\" {} characters long; Service names have at most {MAX_LABEL}",
                apex,
                apex,
                apex.len() + SUFFIX.len()
            ),
        );
    }
    if let Some(a) = &spec.autoscaler_ref {
        if a.name.is_empty() {
            v.push("spec.autoscalerRef.name", "required");
        } else if !is_subdomain(&a.name) || a.name.len() + SUFFIX.len() > MAX_SUBDOMAIN {
            v.push(
                "spec.autoscalerRef.name",
                format!(
                    "{:?} cannot name the generated \"<name>{SUFFIX}\" autoscaler; expected at most {} lowercase letters, digits, '-' and '.'",
                    truncate(&a.name, 64),
                    MAX_SUBDOMAIN - SUFFIX.len()
                ),
            );
        }
    }
}

/// A DNS-1035 label: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A DNS-1123 subdomain: dot-separated lowercase alphanumeric labels with '-', at most 253.
fn is_subdomain(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        assert!(is_label("podinfo"));
        assert!(is_label("a-1"));
        assert!(!is_label("1abc"));
        assert!(!is_label("Podinfo"));
        assert!(!is_label("pod.info"));
        assert!(!is_label("podinfo-"));
        assert!(!is_label(&"a".repeat(64)));
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        assert!(is_subdomain("podinfo.v2"));
        assert!(!is_subdomain("podinfo..v2"));
        assert!(!is_subdomain("pödinfo"));
    }
}
