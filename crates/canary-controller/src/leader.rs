//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run and only
//! one reconciles. Flagger's names: the Lease is `flagger-leader-election`.
//!
//! Our own code rather than a crate: kube-leader-election 0.44 is built on kube 4, and
//! kube-lease-manager 0.13 (kube 5) makes a standby sleep until the holder's Lease expires
//! even when it was given up, so a standby would lead a full lease duration (60 s) after
//! the leader's SIGTERM instead of within seconds.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::ObjectMeta;

/// The Lease name.
pub const LEASE: &str = "flagger-leader-election";

/// Why a leader stopped leading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Lost {
    /// Another replica holds the Lease.
    #[error("leadership lost: lease {LEASE} is held by another replica")]
    Taken,
    /// The last renewal before the deadline failed.
    #[error("leadership lost: cannot renew lease {LEASE}")]
    Renew(#[source] kube::Error),
    /// No renewal answered within the renew deadline.
    #[error("leadership lost: lease {LEASE} not renewed within {0:?}")]
    Deadline(Duration),
}

/// Waits until this replica holds the Lease.
pub async fn acquire(api: &Api<Lease>, identity: &str, duration: Duration) {
    loop {
        match try_take(api, identity, duration).await {
            Ok(true) => {
                tracing::info!("leader election: {identity} acquired lease {LEASE}");
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("leader election: {}", crate::error_chain(&e)),
        }
        // As client-go retries: every 2 s (a twelfth of a short lease).
        tokio::time::sleep((duration / 12).min(Duration::from_secs(2))).await;
    }
}

/// Renews the Lease as Flagger's client-go settings do (lease 60 s, renew deadline 15 s,
/// retry 5 s, scaled to `duration`): a try every retry period, and the Lease counts as lost
/// when no try succeeded within the renew deadline, so the leader stops long before a
/// standby may take the Lease (at the end of its duration). Returns when it is lost.
pub async fn hold(api: &Api<Lease>, identity: &str, duration: Duration) -> Lost {
    let retry = (duration / 12).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let deadline = duration / 4;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(retry).await;
        let left = deadline.saturating_sub(renewed.elapsed());
        match tokio::time::timeout(left, try_take(api, identity, duration)).await {
            Ok(Ok(true)) => renewed = tokio::time::Instant::now(),
            Ok(Ok(false)) => return Lost::Taken,
            Ok(Err(e)) if renewed.elapsed() >= deadline => return Lost::Renew(e),
            Ok(Err(e)) => tracing::warn!(
                "leader election: renewing lease {LEASE}: {}",
                crate::error_chain(&e)
            ),
            Err(_) => return Lost::Deadline(deadline),
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
    match api.replace(LEASE, &crate::create_params(), &lease).await {
        Ok(_) => tracing::info!("leader election: {identity} released lease {LEASE}"),
        Err(e) => tracing::warn!("leader election: cannot release lease {LEASE}: {e}"),
    }
}

/// Takes or renews the Lease when it is free, expired or already ours.
async fn try_take(
    api: &Api<Lease>,
    identity: &str,
    duration: Duration,
) -> Result<bool, kube::Error> {
    let now = crate::wall_clock();
    let current = api.get_opt(LEASE).await?;
    let mut lease = current.clone().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..Default::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let renewed = spec.renew_time.as_ref().map(|t| t.0.as_microsecond());
    let seconds = spec
        .lease_duration_seconds
        .unwrap_or(duration.as_secs() as i32);
    let expired =
        renewed.is_none_or(|t| t + i64::from(seconds) * 1_000_000 < now.timestamp_micros());
    let stamp = MicroTime(
        k8s_openapi::jiff::Timestamp::from_microsecond(now.timestamp_micros()).unwrap_or_default(),
    );
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
        api.replace(LEASE, &crate::create_params(), &lease)
            .await
            .map(|_| ())
    } else {
        api.create(&crate::create_params(), &lease)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
