//! One authenticated connection to a peer: what both directions of
//! replication share, and the task that decides between EBT and legacy
//! replication.
//!
//! The handshake client asks for `ebt.replicate`; if the peer answers with an
//! error (no EBT, another version) we fall back to createHistoryStream. As the
//! server we wait a short while for the client's `ebt.replicate`; a client
//! that does not ask for it gets legacy replication from us.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{blob_exchange, ebt_link, history};
use crate::blob_store::BlobError;
use crate::feed::FeedId;
use crate::muxrpc::{CallError, CallType, Item, Session};
use crate::net::ebt as ebt_proto;
use crate::replica::{Replica, ReplicaError};
use crate::store::StoreError;

/// Why one replication exchange with a peer (a pull, a blob fetch, a
/// stream served) ended early, named for who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The peer ended the call with an error.
    #[error("peer error: {0}")]
    PeerSaid(String),
    /// The peer sent more blob bytes than it announced.
    #[error("peer sent more bytes than announced")]
    BlobTooLong,
    /// The call failed: the connection closed, or the peer broke muxrpc.
    #[error(transparent)]
    Call(#[from] CallError),
    /// Our replica failed (store, publishing, a blocking task).
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Our store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our blob store refused or failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A blocking task died (a bug of ours).
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The blob fetch slots are closed (the node is stopping).
    #[error("the node is stopping")]
    Stopping,
}

/// How long the server side waits for the client's `ebt.replicate`.
const EBT_WAIT: Duration = Duration::from_secs(2);

/// Counters for one link (what `sync` reports).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Messages received and stored.
    pub msgs_in: AtomicU64,
    /// Messages sent.
    pub msgs_out: AtomicU64,
    /// Blobs received and stored.
    pub blobs_in: AtomicU64,
    /// Blobs sent.
    pub blobs_out: AtomicU64,
}

impl LinkStats {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How replication on this link is going, for `sync` to know when it is done.
#[derive(Debug, Default)]
pub struct LinkProgress {
    /// Which protocol runs.
    pub mode: Mutex<Mode>,
    /// EBT state, once it runs.
    pub ebt: Mutex<Option<Arc<ebt_link::EbtState>>>,
    /// Legacy pulls that have not finished (non-live only).
    pub legacy_pending: AtomicU64,
    /// Legacy history streams we serve that have not caught up.
    pub serving_behind: AtomicU64,
    /// Blob transfers in flight (either way).
    pub blob_transfers: AtomicU64,
    /// Last time anything moved.
    pub last_activity: Mutex<Option<Instant>>,
    /// Woken whenever something above changes.
    pub changed: Notify,
    /// Why the peer ended replication with an error (a refusal of what we
    /// sent, say), if it did.
    pub refusal: Mutex<Option<String>>,
}

/// The replication protocol in use on a link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not decided yet.
    #[default]
    Starting,
    /// EBT.
    Ebt,
    /// createHistoryStream per feed.
    Legacy,
}

impl LinkProgress {
    /// The peer ended replication with the error `why`.
    pub fn refused(&self, why: &str) {
        if let Ok(mut r) = self.refusal.lock() {
            r.get_or_insert_with(|| why.to_owned());
        }
    }

    /// Why the peer ended replication with an error, if it did.
    pub fn refusal(&self) -> Option<String> {
        self.refusal.lock().ok().and_then(|r| r.clone())
    }

    /// Notes that something happened.
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Some(Instant::now());
        }
        self.changed.notify_waiters();
    }

    /// Time since anything moved.
    pub fn quiet_for(&self) -> Duration {
        self.last_activity
            .lock()
            .ok()
            .and_then(|t| *t)
            .map_or(Duration::MAX, |t| t.elapsed())
    }
}

/// What the tasks of one link share.
pub struct LinkCtx {
    /// The feeds and blobs this link replicates.
    pub replica: Arc<Replica>,
    /// The peer's feed id.
    pub peer: FeedId,
    /// Whether we dialled.
    pub is_client: bool,
    /// One-shot (`sync`): streams are not live and the link closes when done.
    pub one_shot: bool,
    /// Counters.
    pub stats: LinkStats,
    /// Progress, for `sync`.
    pub progress: LinkProgress,
    /// Set when the peer opened `ebt.replicate` on us.
    pub ebt_requested: AtomicBool,
    /// Woken when the peer opens `ebt.replicate`.
    pub ebt_wake: Notify,
    /// The blob exchange state of this link.
    pub blobs: blob_exchange::LinkBlobs,
}

impl std::fmt::Debug for LinkCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCtx")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl LinkCtx {
    /// Context for a new link.
    pub fn new(
        replica: Arc<Replica>,
        peer: FeedId,
        is_client: bool,
        one_shot: bool,
    ) -> Arc<LinkCtx> {
        Arc::new(LinkCtx {
            replica,
            peer,
            is_client,
            one_shot,
            stats: LinkStats::default(),
            progress: LinkProgress::default(),
            ebt_requested: AtomicBool::new(false),
            ebt_wake: Notify::new(),
            blobs: blob_exchange::LinkBlobs::default(),
        })
    }

    /// Sets the replication mode (the first decision wins).
    pub fn set_mode(&self, mode: Mode) -> bool {
        let mut m = self.progress.mode.lock().unwrap_or_else(|e| e.into_inner());
        if *m == Mode::Starting {
            *m = mode;
            true
        } else {
            false
        }
    }

    /// The replication mode now.
    pub fn mode(&self) -> Mode {
        *self.progress.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether replication on this link is caught up: no blob transfer in
    /// flight, and by the protocol in use both sides hold what the other
    /// offered (EBT: the peer's clock for the feeds we asked for, and all it
    /// asked for sent; legacy: our pulls ended and the streams we serve
    /// caught up). Not while the protocol is still being chosen.
    pub fn caught_up(&self) -> bool {
        let p = &self.progress;
        if p.blob_transfers.load(Ordering::SeqCst) > 0 || p.refusal().is_some() {
            return false;
        }
        match self.mode() {
            Mode::Starting => false,
            Mode::Legacy => {
                p.legacy_pending.load(Ordering::SeqCst) == 0
                    && p.serving_behind.load(Ordering::SeqCst) == 0
            }
            Mode::Ebt => {
                let ebt = p.ebt.lock().unwrap_or_else(|e| e.into_inner()).clone();
                ebt.is_some_and(|s| ebt_link::caught_up(&s, &self.replica))
            }
        }
    }
}

/// Replicates over `session` until it closes: blobs always; messages by EBT
/// or, failing that, by createHistoryStream.
pub async fn replicate(ctx: Arc<LinkCtx>, session: Session) {
    tokio::spawn(blob_exchange::exchange(ctx.clone(), session.clone()));
    if ctx.is_client {
        match session
            .call(
                &["ebt", "replicate"],
                CallType::Duplex,
                vec![ebt_proto::request_args()],
            )
            .await
        {
            Ok(mut stream) => {
                // The responder speaks first: its clock, or an error.
                match stream.recv().await {
                    Some(Item::Data(first)) => {
                        if ctx.set_mode(Mode::Ebt) {
                            if let Err(e) = ebt_link::run(ctx.clone(), stream, Some(first)).await {
                                tracing::info!(peer = %ctx.peer, "ebt ended: {e}");
                            }
                        }
                        return;
                    }
                    Some(Item::Error(e)) => {
                        tracing::info!(peer = %ctx.peer, "peer has no ebt ({e}); using createHistoryStream");
                    }
                    Some(Item::End) | None => return,
                }
            }
            Err(_) => return,
        }
    } else {
        let asked = async {
            loop {
                let woken = ctx.ebt_wake.notified();
                if ctx.ebt_requested.load(Ordering::SeqCst) {
                    return;
                }
                woken.await;
            }
        };
        if tokio::time::timeout(EBT_WAIT, asked).await.is_ok() || ctx.mode() == Mode::Ebt {
            return;
        }
    }
    if ctx.set_mode(Mode::Legacy) {
        ctx.progress.touch();
        history::pull_all(ctx, session).await;
    }
}
