//! The running node: the replica, its replication with peers, the status,
//! and the settings they were built from.

use std::sync::Arc;

use super::config::Settings;
use crate::appliance::status::NodeStatus;
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
    status: NodeStatus,
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
        let disk = crate::replica::disk_space::room(blobs.dir()).ok();
        let policy = match disk {
            Some(r) => settings.policy_on(r.total),
            None => {
                tracing::warn!("the data disk's size is unknown: a blob_quota given as a share of it is left out");
                settings.policy()
            }
        };
        if let (Some(quota), Some(disk)) = (policy.blob_quota, disk) {
            if quota > disk.total {
                tracing::warn!(
                    "blob_quota of {quota} bytes is larger than the data disk ({} bytes): the disk fills first, and then the node takes no more blobs",
                    disk.total
                );
            }
        }
        let replica = Replica::new(keys, store, blobs, policy)?;
        let status = NodeStatus::new();
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
    pub fn status(&self) -> &NodeStatus {
        &self.status
    }
}
