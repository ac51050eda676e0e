//! flaggerd: parse Flagger's flags, set up JSON logs, build the real implementations and run
//! the controller (behind the leader Lease when asked) until SIGTERM or Ctrl-C.

mod flags;

use std::sync::Arc;

use anyhow::Context as _;
use canary_controller::client::Throttle;
use canary_controller::{Context, leader, logging};
use k8s_openapi::api::coordination::v1::Lease;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let startup = match flags::parse(std::env::args(), |k| std::env::var(k).ok()) {
        Ok(flags::Command::Run(s)) => *s,
        Ok(flags::Command::Version) => {
            println!("{}", flags::version_line());
            return Ok(());
        }
        Err(e) => e.exit(),
    };
    let settings = startup.settings;
    logging::init(&settings.log_level, &settings.log_encoding);
    let mut config = kube_config(settings.kubeconfig.as_deref(), "-kubeconfig").await?;
    if let Some(master) = &startup.master {
        config.cluster_url = master
            .parse()
            .with_context(|| format!("-master {master:?} is not a URL"))?;
    }
    let stats = Arc::new(canary_controller::Stats::new(
        canary_controller::VERSION,
        &settings.engine.default_provider,
    ));
    let throttle = Throttle {
        qps: settings.kubeconfig_qps,
        burst: settings.kubeconfig_burst,
    };
    let main_url = config.cluster_url.clone();
    let client = canary_controller::client::counted(config, stats.clone(), throttle)?;
    let mesh_client = match &startup.kubeconfig_service_mesh {
        Some(path) => {
            let config = kube_config(Some(path), "-kubeconfig-service-mesh").await?;
            if config.cluster_url == main_url {
                // The same API server (as Flagger compares hosts): routing objects are
                // written as without the flag, with owner references.
                tracing::info!(
                    "-kubeconfig-service-mesh names this cluster's API server: routing objects get owner references"
                );
                None
            } else {
                Some(canary_controller::client::counted(
                    config,
                    stats.clone(),
                    throttle,
                )?)
            }
        }
        None => None,
    };
    tracing::info!(version = canary_controller::VERSION, provider = %settings.engine.default_provider, "Starting flaggerd");
    let (election, identity, duration) = (
        settings.leader_election,
        settings.instance.clone(),
        settings.lease_duration,
    );
    let leases: kube::Api<Lease> =
        kube::Api::namespaced(client.clone(), &settings.leader_election_namespace);
    let mut ctx = Context::new(client, settings)?;
    if let Some(mesh) = mesh_client {
        ctx = ctx.route_in(mesh);
    }
    ctx.stats = stats;
    let ctx = Arc::new(ctx);
    // /healthz and /metrics answer from the start; /readyz once this replica leads.
    let server = ctx.serve();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if election {
        tokio::select! {
            _ = leader::acquire(&leases, &identity, duration) => {}
            _ = until_stopped(stopped.clone()) => return Ok(()),
        }
    }
    let shutdown = until_stopped(stopped);
    let controller = canary_controller::run(ctx, shutdown);
    if election {
        tokio::select! {
            r = controller => r?,
            lost = leader::hold(&leases, &identity, duration) => {
                tracing::error!("{}", canary_controller::error_chain(&lost));
                std::process::exit(1);
            }
        }
        // Given up on shutdown, so a standby takes over at its next try (about a twelfth of
        // the lease duration) instead of when the Lease expires.
        leader::release(&leases, &identity).await;
    } else {
        controller.await?;
    }
    server.abort();
    Ok(())
}

/// The client configuration of a kubeconfig file, or in-cluster (or `$KUBECONFIG`) without one.
async fn kube_config(path: Option<&str>, flag: &str) -> anyhow::Result<kube::Config> {
    match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("{flag}: cannot read kubeconfig {path}"))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .with_context(|| format!("{flag}: kubeconfig {path}"))
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig: pass -kubeconfig or run in a cluster"),
    }
}
