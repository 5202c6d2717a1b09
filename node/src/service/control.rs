//! The local control socket, `ssb-node.sock` in the data dir: while `run`
//! holds the store, the other CLI commands talk to it here, over muxrpc in
//! plain text (like ssb-server's no-auth unix socket). Only the owner can
//! connect (mode 0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use super::api::Api;
use super::Node;
use crate::muxrpc::{Handler, InboundCall, Session, SessionConfig};

/// The socket's file name in the data dir.
pub const SOCKET_NAME: &str = "ssb-node.sock";

/// The socket path for a data dir.
pub fn socket_path(data_root: &Path) -> PathBuf {
    data_root.join(SOCKET_NAME)
}

fn config() -> SessionConfig {
    SessionConfig {
        // The CLI may wait long on `sync`; the socket is local and trusted.
        idle_timeout: Duration::from_secs(24 * 3600),
        ..SessionConfig::default()
    }
}

/// Binds the socket (replacing a stale one left by a dead node) and serves it.
pub async fn listen(node: Arc<Node>, path: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another node is running on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    Session::start(stream, None, Api::local(node.clone()), config());
                }
                Err(e) => {
                    tracing::warn!("control socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// Refuses every request: the CLI side offers nothing to the node.
struct Refuse;

impl Handler for Refuse {
    fn handle(&self, call: InboundCall) {
        tokio::spawn(async move {
            let _ = call.stream.error("the CLI answers no requests").await;
        });
    }
}

/// Connects to a running node's socket; `None` if no node is running there.
pub async fn connect(path: &Path) -> Option<Session> {
    let stream = UnixStream::connect(path).await.ok()?;
    Some(Session::start(stream, None, Arc::new(Refuse), config()))
}
