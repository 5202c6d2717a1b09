//! Shows the data disk's state in the node status (`disk full` turns the LED
//! to attention), and, only while the disk is full, re-checks it every
//! [`RECHECK_WHILE_FULL`] so that the state clears once space comes back
//! even if nothing tries to write. With room on the disk it sleeps until a
//! write attempt finds the disk full. The disk is checked once at start.
//! When the disk has room again, the blob wants are nudged so that live
//! links fetch what they could not.

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
    let mut was_full = false;
    loop {
        let full = changes.borrow_and_update().clone();
        status.set_disk_full(full.as_ref().map(ToString::to_string));
        if was_full && full.is_none() {
            // Blobs that could not be fetched are tried again on live links.
            replica.wants().nudge();
        }
        was_full = full.is_some();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_status_shows_a_full_disk_and_clears_by_the_recheck_alone() {
        let dir = tempfile::tempdir().unwrap();
        let replica = crate::replica::temp_replica(dir.path());
        let status = NodeStatus::new();
        status.set_ready();
        replica.disk().set_reserve(Some(0));
        let task = tokio::spawn(run(replica.clone(), status.clone()));
        tokio::task::yield_now().await;
        assert!(status.snapshot().disk_full.is_none());

        // A write attempt finds the disk full.
        replica.disk().set_reserve(Some(u64::MAX / 2));
        assert!(replica.disk().check(1).is_err());
        let mut snaps = status.subscribe();
        while status.snapshot().disk_full.is_none() {
            snaps.changed().await.unwrap();
        }
        assert_eq!(status.snapshot().pattern(), firmware::Pattern::Attention);

        // Space comes back; nothing writes. The re-check clears it, and
        // the wants are nudged.
        let wants = replica.wants().changes();
        replica.disk().set_reserve(Some(0));
        tokio::time::sleep(RECHECK_WHILE_FULL + std::time::Duration::from_secs(1)).await;
        while status.snapshot().disk_full.is_some() {
            snaps.changed().await.unwrap();
        }
        assert_eq!(status.snapshot().pattern(), firmware::Pattern::Idle);
        tokio::task::yield_now().await;
        assert!(wants.has_changed().unwrap());
        task.abort();
    }
}
