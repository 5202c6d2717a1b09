//! The running node: the replica, its replication with peers, the status,
//! and the settings they were built from.

use std::sync::Arc;

use super::config::Settings;
use crate::appliance::status::Status;
use crate::blob_store::BlobStore;
use crate::feed::{FeedId, Keypair};
use crate::net::shs;
use crate::replica::Replica;
use crate::replication::{Network, Replicator};
use crate::store::{Store, StoreError};

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

/// The shared state of a running node.
pub struct Node {
    replicator: Arc<Replicator>,
    settings: Settings,
    status: Status,
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
        let replica = Replica::new(keys, store, blobs, settings.policy())?;
        let status = Status::new();
        let network = Network {
            key: settings.network_key,
            handshake_timeout: settings.handshake_timeout,
        };
        let replicator = Replicator::new(replica, network, Arc::new(status.clone()))?;
        Ok(Arc::new(Node {
            replicator,
            settings,
            status,
        }))
    }

    /// The feeds and blobs we hold.
    pub fn replica(&self) -> &Arc<Replica> {
        self.replicator.replica()
    }

    /// Replication with peers.
    pub fn replicator(&self) -> &Arc<Replicator> {
        &self.replicator
    }

    /// Our feed id.
    pub fn id(&self) -> &FeedId {
        self.replicator.id()
    }

    /// Settings after defaults.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What `ssb-node status` shows and the LED plays.
    pub fn status(&self) -> &Status {
        &self.status
    }
}
