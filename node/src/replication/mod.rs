//! Replication with peers: one authenticated link at a time, over it EBT
//! or legacy history streams, and the blob exchange.
//!
//! - [`Replicator`]: what every link shares (the replica, our handshake
//!   identity and network, the peer table, and where link status goes).
//! - [`link`]: one link's shared state and the choice of protocol;
//!   [`ebt_link`], [`history`], [`blob_exchange`] drive EBT, legacy
//!   `createHistoryStream` and blobs on it; [`answers`] is what a peer may
//!   call.
//! - [`peers`]: accepting, dialling, back-off and the peer table, bounded by
//!   [`admission`], with dropped connections logged by [`refusals`];
//!   [`open_sessions`] ends every link with its goodbye when the node stops.
//! - [`sync`]: one connection, replicate both ways, report, close.
//! - [`lan`]: LAN discovery feeding the dialler.
//! - [`invite_session`]: the sessions of clients holding an invite key.
//! - [`link_status`]: each link's syncing state, told to a [`LinkWatch`].

pub mod admission;
pub mod answers;
pub mod blob_exchange;
pub mod ebt_link;
pub mod history;
pub mod invite_session;
pub mod lan;
pub mod link;
pub mod link_status;
pub mod open_sessions;
pub mod peers;
pub mod refusals;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use crate::feed::FeedId;
use crate::net::shs::{self, NetworkKey};
use crate::replica::Replica;

pub use invite_session::InviteSessions;
pub use link_status::{LinkMark, LinkWatch};
pub use peers::PeerTable;

/// What the handshake of every link uses.
#[derive(Debug, Clone)]
pub struct Network {
    /// The network (SSB's "caps" key).
    pub key: NetworkKey,
    /// Deadline for a peer's secret handshake.
    pub handshake_timeout: Duration,
}

/// What all links of a node share (see the module docs).
pub struct Replicator {
    replica: Arc<Replica>,
    shs_keys: shs::Keypair,
    network: Network,
    peers: PeerTable,
    links: Arc<dyn LinkWatch>,
    invites: InviteSessions,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

impl Replicator {
    /// Replicates `replica` on `network`, telling `links` how each link goes.
    pub fn new(
        replica: Arc<Replica>,
        network: Network,
        links: Arc<dyn LinkWatch>,
    ) -> Result<Arc<Replicator>, shs::KeyError> {
        let shs_keys = shs::Keypair::from_secret(replica.keys().to_libsodium_secret())?;
        Ok(Arc::new(Replicator {
            replica,
            shs_keys,
            network,
            peers: PeerTable::default(),
            links,
            invites: InviteSessions::default(),
        }))
    }

    /// The feeds and blobs replicated.
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

    /// The network and handshake deadline.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Known and connected peers.
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    /// What invite-key sessions share.
    pub fn invite_sessions(&self) -> &InviteSessions {
        &self.invites
    }

    /// Where each link's syncing state goes.
    pub fn link_watch(&self) -> &dyn LinkWatch {
        &*self.links
    }
}
