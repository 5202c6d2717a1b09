//! The running node: shared state, and the tasks that serve and replicate.
//!
//! - [`Node`]: identity, store, blobs, settings, the replicate set, and an
//!   event channel that tells live streams about every append.
//! - [`api`]: the muxrpc methods we answer (to peers, and more to the local
//!   control socket).
//! - [`ebt`], [`history`], [`blobs`]: replication by EBT, by
//!   createHistoryStream (legacy), and of blobs.
//! - [`peers`]: dialling, accepting, back-off, the peer table.
//! - [`control`]: the unix socket the CLI uses while `run` holds the store.
//! - [`sync`]: one connection, replicate both ways, report, close.
//! - [`lan`]: LAN discovery feeding the dialler.
//! - [`sneakernet`]: stick visits and bundle files for the running node.
//! - [`status`]: the node's one status (phase, sticks, links) and the LED
//!   pattern derived from it; [`link_status`] feeds it from peer links.
//! - [`appliance`]: stick detection ([`mounts`], [`mountinfo`]), stick
//!   handling ([`sticks`], running [`sneakernet`] visits) and the LED
//!   ([`status_led`]).
//! - [`notify`]: systemd's notify protocol (ready, status, watchdog, stopping).

pub mod admission;
pub mod api;
pub mod appliance;
pub mod blobs;
pub mod config;
pub mod control;
pub mod ebt;
pub mod history;
pub mod lan;
pub mod link;
pub mod link_status;
pub mod mountinfo;
pub mod mounts;
pub mod notify;
pub mod peers;
pub mod refusals;
pub mod server;
pub mod sneakernet;
pub mod status;
pub mod status_led;
pub mod sticks;
pub mod sync;

use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::feed::{FeedId, Keypair};
use crate::net::shs;
use crate::replica::Replica;
use crate::store::{Store, StoreError};

use config::Settings;

/// Why the running node could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our identity keys do not make a handshake identity (a bug of ours).
    #[error("identity: {0}")]
    Identity(#[from] shs::KeyError),
}

/// The shared state of a running node: the replica, and what links,
/// stick visits and the control socket add around it.
pub struct Node {
    replica: Arc<Replica>,
    shs_keys: shs::Keypair,
    /// Settings after defaults.
    pub settings: Settings,
    /// Known and connected peers.
    pub peers: peers::PeerTable,
    /// What `ssb-node status` shows and the LED plays.
    pub status: status::Status,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Builds the node around an open store; computes the replicate set.
    pub fn new(
        keys: Keypair,
        store: Store,
        blobs: BlobStore,
        settings: Settings,
    ) -> Result<Arc<Node>, NodeError> {
        let shs_keys = shs::Keypair::from_secret(keys.to_libsodium_secret())?;
        let replica = Replica::new(keys, store, blobs, settings.policy())?;
        Ok(Arc::new(Node {
            replica,
            shs_keys,
            peers: peers::PeerTable::default(),
            status: status::Status::new(),
            settings,
        }))
    }

    /// The feeds and blobs we hold.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Our feed id.
    pub fn id(&self) -> &FeedId {
        self.replica.id()
    }

    /// Our identity for the secret handshake.
    pub fn shs_keys(&self) -> &shs::Keypair {
        &self.shs_keys
    }
}
