//! The endpoint behind a Service: a ready Pod from its EndpointSlices on a real API
//! server, else a ready Deployment or DaemonSet its selector picks (kube-sim serves no Pods).

use serde_json::Value;

use super::*;

/// A ready endpoint of the Service: from its EndpointSlices where the API server has them
/// (a real one), else a ready Deployment or DaemonSet its selector picks (kube-sim serves
/// no Pods).
pub(super) fn endpoint(
    s: &Snapshot,
    svc: &ServiceRef,
    pick: &mut dyn Pick,
) -> Result<Workload, String> {
    let service = service(s, svc).ok_or_else(|| format!("no Service {}/{}", svc.0, svc.1))?;
    let no_upstream = || {
        format!(
            "no healthy upstream: no ready pod matches the selector of Service {}/{}",
            svc.0, svc.1
        )
    };
    if s.has_endpoint_slices {
        let ready = ready_pods(s, svc);
        let pod = weighted(&ready.into_iter().map(|p| (p, 1)).collect::<Vec<_>>(), pick)
            .ok_or_else(no_upstream)?;
        return Ok(pod_workload(&svc.0, pod));
    }
    let selector = service["spec"]["selector"]
        .as_object()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| format!("Service {}/{} has no selector", svc.0, svc.1))?;
    let ready: Vec<(&Value, u64)> = s
        .deployments
        .iter()
        .chain(&s.daemonsets)
        .filter(|d| ns_of(d) == svc.0)
        .filter(|d| {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            selector.iter().all(|(k, v)| &labels[k] == v)
        })
        .map(|d| {
            let status = &d["status"];
            let available = status["availableReplicas"].as_u64();
            (
                d,
                available
                    .or(status["numberAvailable"].as_u64())
                    .unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let d = weighted(&ready, pick).ok_or_else(no_upstream)?;
    let deployment = name_of(d).to_string();
    let template = &d["spec"]["template"];
    let image = template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let hash = fnv(&template.to_string());
    Ok(Workload {
        namespace: svc.0.clone(),
        pod: format!(
            "{deployment}-{}-{}",
            safe_chars(hash, 9),
            safe_chars(hash >> 17, 5)
        ),
        deployment,
        image,
    })
}

/// The pods behind a Service's ready endpoints (EndpointSlices labelled with its name).
fn ready_pods<'s>(s: &'s Snapshot, svc: &ServiceRef) -> Vec<&'s Value> {
    let mut names: Vec<&str> = s
        .endpoint_slices
        .iter()
        .filter(|e| ns_of(e) == svc.0)
        .filter(|e| e["metadata"]["labels"]["kubernetes.io/service-name"] == svc.1.as_str())
        .flat_map(|e| e["endpoints"].as_array().into_iter().flatten())
        .filter(|ep| ep["conditions"]["ready"].as_bool().unwrap_or(true))
        .filter(|ep| ep["targetRef"]["kind"] == "Pod")
        .filter_map(|ep| ep["targetRef"]["name"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| s.pods.iter().find(|p| ns_of(p) == svc.0 && name_of(p) == n))
        .collect()
}

/// A pod as the workload that answers: its workload is its owner (a ReplicaSet's
/// Deployment, a DaemonSet), its image the first container's.
fn pod_workload(namespace: &str, pod: &Value) -> Workload {
    let owner = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.first())
        .map(|o| {
            let name = o["name"].as_str().unwrap_or_default();
            let hash = pod["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or_default();
            match o["kind"].as_str() {
                Some("ReplicaSet") if !hash.is_empty() => name
                    .strip_suffix(&format!("-{hash}"))
                    .unwrap_or(name)
                    .to_string(),
                _ => name.to_string(),
            }
        })
        .unwrap_or_else(|| name_of(pod).to_string());
    Workload {
        namespace: namespace.to_string(),
        deployment: owner,
        image: pod["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        pod: name_of(pod).to_string(),
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Kubernetes' name-suffix alphabet (no vowels), as in pod names.
fn safe_chars(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789bcdfghjklmnpqrstvwxz";
    let mut out = String::with_capacity(len);
    for _ in 0..len {
        out.push(char::from(DIGITS[(n % DIGITS.len() as u64) as usize]));
        n /= DIGITS.len() as u64;
    }
    out
}
