//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run and only
//! one reconciles. Flagger's names: the Lease is `flagger-leader-election`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The Lease name.
pub const LEASE: &str = "flagger-leader-election";

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, identity: &str, duration: Duration) {
    loop {
        match try_take(api, identity, duration).await {
            Ok(true) => {
                tracing::info!("leader election: {identity} acquired lease {LEASE}");
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("leader election: {e}"),
        }
        // As client-go retries: every 2 s (a twelfth of a short lease).
        tokio::time::sleep((duration / 12).min(Duration::from_secs(2))).await;
    }
}

/// Renews the Lease every quarter of its duration; returns when it is lost.
pub async fn hold(api: &Api<Lease>, identity: &str, duration: Duration) -> String {
    let mut failures = 0;
    loop {
        tokio::time::sleep(duration / 4).await;
        match try_take(api, identity, duration).await {
            Ok(true) => failures = 0,
            Ok(false) => {
                return format!("leadership lost: lease {LEASE} is held by another replica");
            }
            Err(e) => {
                failures += 1;
                if failures >= 3 {
                    return format!("leadership lost: cannot renew lease {LEASE}: {e}");
                }
            }
        }
    }
}

/// Gives the Lease up if this replica holds it (on shutdown), so a standby takes over at
/// its next try instead of waiting for the Lease to expire.
pub async fn release(api: &Api<Lease>, identity: &str) {
    let Ok(Some(mut lease)) = api.get_opt(LEASE).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return;
    }
    spec.holder_identity = None;
    match api.replace(LEASE, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!("leader election: {identity} released lease {LEASE}"),
        Err(e) => tracing::warn!("leader election: cannot release lease {LEASE}: {e}"),
    }
}

/// Takes or renews the Lease when it is free, expired or already ours.
async fn try_take(api: &Api<Lease>, identity: &str, duration: Duration) -> Result<bool, String> {
    let now = crate::wall_clock();
    let current = api.get_opt(LEASE).await.map_err(|e| e.to_string())?;
    let mut lease = current.clone().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..Default::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let renewed = spec.renew_time.as_ref().map(|t| t.0.as_second());
    let seconds = spec
        .lease_duration_seconds
        .unwrap_or(duration.as_secs() as i32);
    let expired = renewed.is_none_or(|t| t + i64::from(seconds) < now.timestamp());
    let stamp =
        MicroTime(k8s_openapi::jiff::Timestamp::from_second(now.timestamp()).unwrap_or_default());
    if !holder.is_empty() && holder != identity && !expired {
        return Ok(false);
    }
    if holder != identity {
        spec.acquire_time = Some(stamp.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(identity.into());
    spec.lease_duration_seconds = Some(duration.as_secs() as i32);
    spec.renew_time = Some(stamp);
    let result = if current.is_some() {
        api.replace(LEASE, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    } else {
        api.create(&PostParams::default(), &lease).await.map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
