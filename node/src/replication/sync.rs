//! `ssb-node sync ADDR`: one connection, replicate both ways until each side
//! holds the other's clock, then report and close.
//!
//! "Done" means: the replication protocol says both sides are caught up (EBT:
//! we hold what the peer's clock offered for the feeds we asked for, and sent
//! all it asked for; legacy: our pulls ended and the streams we serve caught
//! up), no blob transfer is in flight, and nothing has moved for a short
//! settle time (blob wants and haves have no explicit end).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::peers::{self, Source};
use super::Replicator;
use crate::feed::FeedId;
use crate::muxrpc::LinkError;
use crate::net::address::MultiserverAddress;

/// How long a sync may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Quiet time after which a caught-up link counts as done, when blobs may
/// still be asked for (we want some, or sent messages that may mention ours).
const SETTLE: Duration = Duration::from_millis(150);
/// Least time given to write what is queued and the goodbye, even when the
/// sync's own deadline has passed.
const FLUSH_AT_LEAST: Duration = Duration::from_secs(2);
/// Quiet time when no blob exchange can follow.
const SETTLE_SHORT: Duration = Duration::from_millis(10);

/// What a sync moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The peer.
    pub peer: FeedId,
    /// Messages received and stored.
    pub msgs_in: u64,
    /// Blobs received.
    pub blobs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// Blobs sent.
    pub blobs_out: u64,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synced with {}: received {} messages, {} blobs; sent {} messages, {} blobs",
            self.peer, self.msgs_in, self.blobs_in, self.msgs_out, self.blobs_out
        )
    }
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Could not connect or authenticate.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        source: LinkError,
    },
    /// The link closed before both sides were caught up.
    #[error("link to {addr} closed before sync finished: {reason}")]
    Closed {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The peer ended replication with an error: it refused what we sent
    /// (its disk is full, say).
    #[error("{addr} refused the sync: {reason}")]
    Refused {
        /// The address.
        addr: String,
        /// What the peer said.
        reason: String,
    },
    /// The deadline passed.
    #[error("sync with {addr} did not finish within {secs} s")]
    Timeout {
        /// The address.
        addr: String,
        /// The deadline.
        secs: u64,
    },
}

/// Syncs with `addr` once.
pub async fn sync(
    node: Arc<Replicator>,
    addr: &MultiserverAddress,
    timeout: Duration,
) -> Result<SyncReport, SyncError> {
    let shown = addr.to_string();
    node.peers()
        .know(*addr.key(), Some(addr.clone()), Source::Sync);
    let (session, ctx) = peers::open_one_shot(node.clone(), addr)
        .await
        .map_err(|source| SyncError::Connect {
            addr: shown.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        let changed = ctx.progress.changed.notified();
        let settle = if node.replica().wants().is_empty()
            && ctx.stats.msgs_out.load(Ordering::SeqCst) == 0
            && !ctx.blobs.peer_asked()
        {
            SETTLE_SHORT
        } else {
            SETTLE
        };
        if let Some(reason) = ctx.progress.refusal() {
            break Err(SyncError::Refused {
                addr: shown.clone(),
                reason,
            });
        }
        if ctx.caught_up() && ctx.progress.quiet_for() >= settle {
            break Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(SyncError::Timeout {
                addr: shown.clone(),
                secs: timeout.as_secs(),
            });
        }
        tokio::select! {
            _ = changed => {}
            // Re-check once the settle time may have passed.
            _ = tokio::time::sleep(settle.min(deadline - now)) => {}
            reason = session.closed() => {
                if let Some(reason) = ctx.progress.refusal() {
                    break Err(SyncError::Refused { addr: shown.clone(), reason });
                }
                if ctx.caught_up() {
                    break Ok(());
                }
                break Err(SyncError::Closed { addr: shown.clone(), reason });
            }
        }
    };
    if outcome.is_ok() {
        super::ebt_link::save_now(&ctx);
    }
    // Our goodbye goes out behind every message we queued; the session
    // closes once the writer has written it all. A slow peer (a busy disk)
    // can take longer than a moment to read it: returning before then would
    // drop what is still queued while saying it was sent.
    session.close().await;
    let flush = deadline
        .saturating_duration_since(Instant::now())
        .max(FLUSH_AT_LEAST);
    let flushed = tokio::time::timeout(flush, session.closed()).await;
    outcome?;
    if flushed.is_err() {
        return Err(SyncError::Timeout {
            addr: shown,
            secs: timeout.as_secs(),
        });
    }
    let s = &ctx.stats;
    Ok(SyncReport {
        peer: ctx.peer,
        msgs_in: s.msgs_in.load(Ordering::SeqCst),
        blobs_in: s.blobs_in.load(Ordering::SeqCst),
        msgs_out: s.msgs_out.load(Ordering::SeqCst),
        blobs_out: s.blobs_out.load(Ordering::SeqCst),
    })
}
