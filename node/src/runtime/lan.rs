//! LAN discovery wired into the node: what [`crate::discovery`] hears is
//! dialled (and kept connected with back-off) until the peer falls silent.
//! Of two nodes that hear each other, the one with the smaller key dials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::peers::{self, Source};
use super::Node;
use crate::discovery::{Discovery, Event};
use crate::feed::FeedId;

/// Announces this node on the LAN and connects to the peers it hears, until aborted.
pub async fn run(node: Arc<Node>, listen: SocketAddr) {
    let discovery = match Discovery::bind(*node.id(), listen) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("LAN discovery off: {e}");
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel(64);
    let service = tokio::spawn(async move {
        if let Err(e) = discovery.run(tx).await {
            tracing::warn!("LAN discovery stopped: {e}");
        }
    });
    let mut dialling: HashMap<FeedId, JoinHandle<()>> = HashMap::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Heard(addr) => {
                let key = *addr.key();
                if key == *node.id() || node.is_blocked(&key) {
                    continue;
                }
                if dialling.get(&key).is_some_and(|t| !t.is_finished()) {
                    node.peers.know(key, Some(addr), Source::Lan);
                    continue;
                }
                // Two of our nodes hear each other at once: only the one with
                // the smaller key dials, so they share one link, not two.
                // (Other implementations dial us anyway; we accept.)
                if key.as_bytes() < node.id().as_bytes() {
                    node.peers.know(key, Some(addr), Source::Lan);
                    continue;
                }
                tracing::info!(%addr, "heard on the LAN");
                dialling.insert(
                    key,
                    tokio::spawn(peers::keep_connected(node.clone(), addr, Source::Lan)),
                );
            }
            Event::Forgotten(key) => {
                tracing::info!(peer = %key, "silent on the LAN; forgotten");
                if !node.peers.is_connected(&key) {
                    if let Some(t) = dialling.remove(&key) {
                        t.abort();
                    }
                    node.peers.forget(&key);
                }
            }
        }
    }
    service.abort();
}
