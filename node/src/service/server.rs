//! `ssb-node run`: listen for peers, serve the control socket, keep
//! configured peers connected, find LAN peers, and stop cleanly on SIGTERM or
//! SIGINT (no append is cut: the store is made durable after the last one).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use super::{control, Node};
use crate::appliance::mounts::WatchError;
use crate::appliance::{self, notify};
use crate::net::address::{AddressError, MultiserverAddress};
use crate::replica::{carry, ReplicaError};
use crate::replication::lan;
use crate::replication::peers::{self, Source};
use crate::store::StoreError;

/// Why `run` could not start or stop cleanly (our side: the machine, the
/// store, the configuration).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The signal handlers could not be set up.
    #[error("signal handlers: {0}")]
    Signals(std::io::Error),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {error}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        error: std::io::Error,
    },
    /// The control socket could not be served.
    #[error("control socket {path}: {error}")]
    Control {
        /// The socket path.
        path: String,
        /// The cause.
        error: std::io::Error,
    },
    /// Our own listening address cannot be written as a multiserver address.
    #[error("our own address: {0}")]
    Address(AddressError),
    /// The `listening` line could not be written to stdout.
    #[error("writing to stdout: {0}")]
    Stdout(std::io::Error),
    /// The follows of the config's sites could not be published.
    #[error("following the config's sites: {0}")]
    Sites(ReplicaError),
    /// The stick watcher could not start.
    #[error("watching for sticks: {0}")]
    Sticks(WatchError),
    /// The store could not be saved on the way out.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a stopping node waits for its sessions to write their goodbye.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// What `run` was asked on the command line (the config file adds to it).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Listen address (overrides the config).
    pub listen: Option<String>,
    /// Extra peers to keep connected.
    pub connect: Vec<MultiserverAddress>,
    /// Turn LAN discovery off.
    pub no_discovery: bool,
    /// The control socket path.
    pub socket: PathBuf,
    /// Where sticks get mounted (empty: no stick watching).
    pub mount_roots: Vec<PathBuf>,
    /// The status LED.
    pub led: firmware::LedSpec,
}

/// Runs the node until SIGTERM or SIGINT.
pub async fn run(node: Arc<Node>, opts: RunOptions) -> Result<(), RunError> {
    // Before anyone can be told we are ready: a stop request from then on
    // must find the handlers in place.
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let listen = opts
        .listen
        .clone()
        .unwrap_or_else(|| node.settings().listen.clone());
    let listen_error = |error| RunError::Listen {
        addr: listen.clone(),
        error,
    };
    let listener = TcpListener::bind(&listen).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    node.replicator()
        .invite_sessions()
        .set_listen(node.settings().public_address.clone(), local);
    let control = control::listen(node.clone(), &opts.socket)
        .await
        .map_err(|error| RunError::Control {
            path: opts.socket.display().to_string(),
            error,
        })?;
    let me = MultiserverAddress::from_socket(local, *node.id()).map_err(RunError::Address)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {me}")
            .and_then(|()| out.flush())
            .map_err(RunError::Stdout)?;
    }
    tracing::info!(%me, "node running");
    let service = notify::Service::from_env();
    service.ready(&format!("listening on {me}"));

    carry::follow_sites(node.replica())
        .await
        .map_err(RunError::Sites)?;
    let appliance = appliance::start(
        node.replica(),
        node.status(),
        opts.mount_roots.clone(),
        &opts.led,
    )
    .map_err(RunError::Sticks)?;
    let mut tasks = vec![
        control,
        tokio::spawn(peers::accept_loop(node.replicator().clone(), listener)),
        tokio::spawn(carry::keep_following_sites(node.replica().clone())),
    ];
    for addr in &node.settings().connect {
        tasks.push(tokio::spawn(peers::keep_connected(
            node.replicator().clone(),
            addr.clone(),
            Source::Config,
        )));
    }
    for addr in &opts.connect {
        tasks.push(tokio::spawn(peers::keep_connected(
            node.replicator().clone(),
            addr.clone(),
            Source::Cli,
        )));
    }
    if node.settings().discovery && !opts.no_discovery {
        tasks.push(tokio::spawn(lan::run(node.replicator().clone(), local)));
    }
    node.status().set_ready();

    let status = {
        let (node, me) = (node.clone(), me.to_string());
        move || {
            format!(
                "listening on {me}; {} peer sessions",
                node.replicator().peers().session_count()
            )
        }
    };
    tasks.extend(service.spawn_watchdog(status));

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    service.stopping("stopping: saving the store");
    // Every link ends with its goodbye before the listener and dialers go: peers see a
    // clean end, not a box-stream cut short. A session opened meanwhile is told at once.
    let left = node.replicator().peers().open.close_all(GOODBYE_WAIT).await;
    if left > 0 {
        tracing::info!(
            left,
            "stopping: sessions not closed within {GOODBYE_WAIT:?}"
        );
    }
    for t in &tasks {
        t.abort();
    }
    drop(appliance);
    let _ = std::fs::remove_file(&opts.socket);
    node.replica().shutdown_settled().await?;
    Ok(())
}
