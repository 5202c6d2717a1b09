//! Tells a [`LinkWatch`] (the node status) whether each peer link is syncing.
//!
//! A link is *syncing* (LED: peer syncing) while anything moved on it in the
//! last [`ACTIVE_WINDOW`] (messages or blobs, either way), or while it is not
//! caught up ([`LinkCtx::caught_up`]: the protocol is still being chosen, or
//! one side still lacks what the other offered). A connected, caught-up,
//! quiet link is not syncing, so an idle live connection shows the idle
//! heartbeat.
//!
//! Nothing is polled: the task waits for the link's progress notifications
//! or an append to the store, and for one timer while the activity window
//! runs out. The caught-up check
//! (which reads the store) runs only after a quiet window, never per message.

use std::sync::Arc;
use std::time::Duration;

use super::link::LinkCtx;
use crate::feed::FeedId;
use crate::muxrpc::Session;

/// How long after the last movement a link still counts as syncing.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(3);

/// Where links are shown: told when one opens, it hands back a mark that
/// shows whether the link is syncing, until the mark is dropped.
pub trait LinkWatch: Send + Sync {
    /// A link to `peer` opened; it counts as syncing until told otherwise.
    fn link_opened(&self, peer: FeedId) -> Box<dyn LinkMark>;
}

/// One open link as a [`LinkWatch`] shows it; dropping it removes the link.
pub trait LinkMark: Send + Sync {
    /// Says whether the link is replicating.
    fn set_syncing(&self, syncing: bool);
}

/// Tracks `ctx` (shown as `link`) until `session` closes.
pub async fn track(link: Box<dyn LinkMark>, ctx: Arc<LinkCtx>, session: Session) {
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        let changed = ctx.progress.changed.notified();
        let quiet = ctx.progress.quiet_for();
        if quiet < ACTIVE_WINDOW {
            link.set_syncing(true);
            tokio::select! {
                () = tokio::time::sleep(ACTIVE_WINDOW - quiet) => {}
                _ = &mut closed => return,
            }
            continue;
        }
        // Another link's appends can catch this one up too.
        let mut appends = ctx.replica.subscribe();
        link.set_syncing(!ctx.caught_up());
        tokio::select! {
            () = changed => {}
            _ = appends.recv() => {}
            _ = &mut closed => return,
        }
    }
}
