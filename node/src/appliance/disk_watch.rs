//! Shows the data disk's state in the node status (`disk full` turns the LED
//! to attention), and, only while the disk is full, re-checks it every
//! [`RECHECK_WHILE_FULL`] so that the state clears once space comes back
//! even if nothing tries to write. With room on the disk it sleeps until a
//! write attempt finds the disk full. The disk is checked once at start.

use std::sync::Arc;

use super::status::NodeStatus;
use crate::replica::disk_space::RECHECK_WHILE_FULL;
use crate::replica::Replica;

/// Runs until the replica's disk state can no longer change (never, in a
/// running node).
pub async fn run(replica: Arc<Replica>, status: NodeStatus) {
    let mut changes = replica.disk().changes();
    // A node started on a full disk says so at once.
    replica.disk().recheck();
    loop {
        let full = changes.borrow_and_update().clone();
        status.set_disk_full(full.as_ref().map(ToString::to_string));
        if full.is_some() {
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                () = tokio::time::sleep(RECHECK_WHILE_FULL) => {
                    replica.disk().recheck();
                }
            }
        } else if changes.changed().await.is_err() {
            return;
        }
    }
}
