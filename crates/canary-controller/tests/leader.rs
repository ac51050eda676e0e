//! Two replicas, one Lease: the second waits while the first renews, and takes over once the
//! first stops.

use std::time::Duration;

use canary_controller::leader;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_replica_leads_and_the_other_takes_over() {
    let sim = kube_sim::KubeSim::start().await.expect("kube-sim");
    let client = sim.client().await.expect("client");
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let duration = Duration::from_secs(2);
    leader::acquire(&leases, "replica-a", duration).await;
    let a_holds = {
        let leases = leases.clone();
        tokio::spawn(async move { leader::hold(&leases, "replica-a", duration).await })
    };
    let b = {
        let leases = leases.clone();
        tokio::spawn(async move {
            leader::acquire(&leases, "replica-b", duration).await;
            tokio::time::Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !b.is_finished(),
        "replica-b must wait while replica-a renews"
    );
    let holder = leases
        .get(leader::LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("replica-a"));
    a_holds.abort();
    let stopped = tokio::time::Instant::now();
    let took_over = tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("takeover")
        .expect("join");
    assert!(
        took_over.duration_since(stopped) <= Duration::from_secs(4),
        "took over after the lease expired"
    );
    let holder = leases
        .get(leader::LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("replica-b"));
}
