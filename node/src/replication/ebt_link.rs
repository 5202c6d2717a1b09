//! The tokio driver of EBT over one `ebt.replicate` duplex stream, either
//! side: it reads frames, feeds them to the link's
//! [`EbtSession`], and performs what the
//! session decides (notes to send, feeds to stream, the peer's clock to
//! store). The rules of replication live in the session.
//!
//! Three tasks per link, so neither side can deadlock on the other and
//! receiving overlaps storing: the *receiver* reads clocks (answered at once)
//! and gathers raw messages into batches, the *appender* parses and verifies
//! each batch (on all cores) while it writes the one before, and the
//! receiver gathers the next one meanwhile; the *sender* streams
//! what the peer asked for from the store, in order, [`READ_CHUNK`] messages at a time,
//! then follows new appends live.
//!
//! The peer's clock is kept in the store (for request skipping) for at most
//! [`REMEMBERED_PEERS`] peers: a new peer's clock takes the place of a
//! stranger's, never of a peer we replicate.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{broadcast, watch, Notify};

use super::link::{LinkCtx, LinkStats};
use crate::feed::{BatchVerifier, FeedId, Verified};
use crate::muxrpc::{Body, CallError, Item, Sink, Stream};
use crate::net::ebt::{clock_value, Note};
use crate::net::ebt_session::{EbtSession, Local, Received, SessionError, SAVE_EVERY};
use crate::replica::graph::ReplicateSet;
use crate::replica::{
    verify_threads, DiskFull, FeedChunk, Replica, ReplicaError, MESSAGE_ROOM, READ_CHUNK,
};
use crate::store::StoreError;

/// Most messages stored per append. Batches are checked on all cores while
/// the one before is written, so 512 is as fast here as 1,024 (the ed25519
/// batch check gains little past 256 per thread) and keeps less in flight.
const BATCH: usize = 512;

/// Most peers whose clock is stored.
pub const REMEMBERED_PEERS: usize = 256;
/// What the names of peers' stored clocks start with.
const PEER_PREFIX: &[u8] = b"peer:";

/// The name under which a peer's clock is stored.
pub fn remote_name(peer: &FeedId) -> Vec<u8> {
    let mut k = PEER_PREFIX.to_vec();
    k.extend_from_slice(peer.as_bytes());
    k
}

/// The EBT session of a link, shared by its tasks and by `sync`.
pub type EbtState = Mutex<EbtSession>;

/// Whether the link's EBT session is caught up (see [`EbtSession::caught_up`]).
pub fn caught_up(state: &EbtState, node: &Replica) -> bool {
    lock(state).caught_up(&ReplicaSide::new(node))
}

/// Our side as the session sees it: the node's store, and its replicate set
/// read once, when first asked.
struct ReplicaSide<'a> {
    node: &'a Replica,
    set: OnceCell<Arc<ReplicateSet>>,
}

impl<'a> ReplicaSide<'a> {
    fn new(node: &'a Replica) -> Self {
        Self {
            node,
            set: OnceCell::new(),
        }
    }

    fn with_set(node: &'a Replica, set: Arc<ReplicateSet>) -> Self {
        Self {
            node,
            set: OnceCell::from(set),
        }
    }

    fn set(&self) -> &ReplicateSet {
        self.set.get_or_init(|| self.node.replicate_set())
    }
}

impl Local for ReplicaSide<'_> {
    fn replicates(&self, feed: &FeedId) -> bool {
        self.set().contains(feed)
    }

    fn blocks(&self, feed: &FeedId) -> bool {
        self.set().blocked.contains(feed)
    }

    fn seq(&self, feed: &FeedId) -> Result<u32, StoreError> {
        self.node.seq(feed)
    }
}

/// Why one EBT exchange on a link ended badly, named for who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EbtLinkError {
    /// The peer ended the stream with an error.
    #[error("peer error: {0}")]
    PeerSaid(String),
    /// The peer ended the stream while a batch was being read.
    #[error("stream ended")]
    Ended,
    /// The peer broke EBT's rules, or our store failed under the session.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Sending on the link failed (it closed, or the peer broke muxrpc).
    #[error(transparent)]
    Send(#[from] CallError),
    /// Our store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our replica failed to store a batch.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// A blocking task died (a bug of ours).
    #[error("internal task failed: {0}")]
    Task(tokio::task::JoinError),
    /// The task that stores received batches stopped (a bug of ours, or the
    /// node stopping).
    #[error("the appender stopped")]
    AppenderStopped,
    /// Our data disk has no room: the peer's messages are refused (and the
    /// peer is told so).
    #[error(transparent)]
    DiskFull(#[from] DiskFull),
}

fn lock(s: &EbtState) -> std::sync::MutexGuard<'_, EbtSession> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends the notes the session queued, as one clock.
async fn send_notes(state: &EbtState, sink: &Sink) -> Result<(), EbtLinkError> {
    let notes = lock(state).take_notes();
    send_clock(sink, notes).await
}

/// Sends `notes`, if any, as one clock.
async fn send_clock(sink: &Sink, notes: Option<Vec<(FeedId, Note)>>) -> Result<(), EbtLinkError> {
    let Some(notes) = notes else { return Ok(()) };
    let v = clock_value(notes.iter().map(|(f, n)| (f, *n)));
    tracing::trace!(clock = %v.to_compact(), "ebt clock sent");
    Ok(sink.send(Body::json(&v)).await?)
}

/// Runs EBT on `stream` until it ends. `first` is the peer's opening item
/// when we are the requester (the responder speaks first).
pub async fn run(
    ctx: Arc<LinkCtx>,
    mut stream: Stream,
    first: Option<Body>,
) -> Result<(), EbtLinkError> {
    let node = ctx.replica.clone();
    let state = Arc::new(Mutex::new(EbtSession::new(Instant::now())));
    *ctx.progress.ebt.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.clone());
    let wake = Arc::new(Notify::new());
    let sink = stream.sink();
    let mut events = node.subscribe();
    let mut graph = node.graph_changes();

    // Our opening clock, minus the feeds the peer's last clock already matched.
    let stored = node.store().remote_clock(&remote_name(&ctx.peer))?;
    let set = node.replicate_set();
    let opening = lock(&state).open(
        &ReplicaSide::with_set(&node, set.clone()),
        set.feeds.keys(),
        &stored,
    )?;
    tracing::debug!(peer = %ctx.peer, feeds = opening.notes.len(), skipped = opening.skipped, "ebt opening clock");
    let opening = clock_value(opening.notes.iter().map(|(f, n)| (f, *n)));

    let mut pending_first = first;
    if pending_first.is_none() {
        sink.send(Body::json(&opening)).await?;
    }
    let sender = AbortOnDrop(tokio::spawn(send_loop(
        ctx.clone(),
        sink.clone(),
        state.clone(),
        wake.clone(),
    )));
    let (to_appender, from_receiver) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(1);
    let refusal = Arc::new(watch::channel(None).0);
    let mut refused = refusal.subscribe();
    let appender = tokio::spawn(append_loop(
        ctx.clone(),
        state.clone(),
        sink.clone(),
        from_receiver,
        refusal,
    ));
    let mut batch: Vec<Vec<u8>> = Vec::new();
    // When the peer's clock is saved next, once something moved: so the
    // stored clock (what `status` shows) is at most SAVE_EVERY old on an
    // idle live link too, with no timer while nothing moves.
    let mut save_at: Option<tokio::time::Instant> = None;
    let result = loop {
        let item = match pending_first.take() {
            Some(body) => {
                // We asked; the peer's clock came first. Now ours.
                let r = handle_body(&ctx, &state, &sink, body, &mut batch).await;
                if let Err(e) = sink.send(Body::json(&opening)).await {
                    break Err(e.into());
                }
                if let Err(e) = r {
                    break Err(e);
                }
                wake.notify_one();
                continue;
            }
            None => {
                tokio::select! {
                    item = stream.recv() => item,
                    // Hand the gathered batch over as soon as the appender can take it;
                    // while it is busy the batch keeps growing (bigger, cheaper appends).
                    permit = to_appender.reserve(), if !batch.is_empty() => {
                        match permit {
                            Ok(p) => p.send(std::mem::take(&mut batch)),
                            Err(_) => break Err(EbtLinkError::AppenderStopped),
                        }
                        continue;
                    }
                    Ok(()) = refused.changed() => {
                        if let Some(full) = refused.borrow_and_update().clone() {
                            break Err(EbtLinkError::DiskFull(full));
                        }
                        continue;
                    }
                    () = save_timer(save_at) => {
                        let entries = lock(&state).take_unsaved(&ReplicaSide::new(&node));
                        save_clock(&node, &ctx.peer, entries);
                        save_at = None;
                        continue;
                    }
                    ev = events.recv() => {
                        save_at.get_or_insert_with(|| tokio::time::Instant::now() + SAVE_EVERY);
                        let notes = match on_event(&node, &state, ev) {
                            Ok(notes) => notes,
                            Err(e) => break Err(e.into()),
                        };
                        wake.notify_one();
                        if let Err(e) = send_clock(&sink, notes).await {
                            break Err(e);
                        }
                        continue;
                    }
                    changed = graph.changed() => {
                        if changed.is_ok() {
                            if let Err(e) = tell_new_feeds(&node, &state, &sink).await {
                                break Err(e);
                            }
                        }
                        continue;
                    }
                }
            }
        };
        match item {
            Some(Item::Data(body)) => {
                save_at.get_or_insert_with(|| tokio::time::Instant::now() + SAVE_EVERY);
                let mut r = handle_body(&ctx, &state, &sink, body, &mut batch).await;
                // Drain what already arrived, so messages are stored in batches.
                while r.is_ok() && batch.len() < BATCH {
                    match stream.try_recv() {
                        Some(Item::Data(b)) => {
                            r = handle_body(&ctx, &state, &sink, b, &mut batch).await
                        }
                        Some(other) => {
                            pending_end(&mut r, other);
                            break;
                        }
                        None => break,
                    }
                }
                if batch.len() >= BATCH
                    && to_appender.send(std::mem::take(&mut batch)).await.is_err()
                {
                    break Err(EbtLinkError::AppenderStopped);
                }
                wake.notify_one();
                if let Err(e) = r {
                    break Err(e);
                }
                let entries = lock(&state).clock_to_save(Instant::now(), &ReplicaSide::new(&node));
                save_clock(&node, &ctx.peer, entries);
            }
            Some(Item::End) | None => break Ok(()),
            Some(Item::Error(e)) => break Err(EbtLinkError::PeerSaid(e)),
        }
    };
    let refusing = matches!(result, Err(EbtLinkError::DiskFull(_)));
    if !batch.is_empty() && !refusing {
        let _ = to_appender.send(batch).await;
    }
    drop(to_appender);
    let _ = appender.await;
    drop(sender);
    let entries = lock(&state).take_unsaved(&ReplicaSide::new(&node));
    save_clock(&node, &ctx.peer, entries);
    match &result {
        // The peer learns that what it sent was not taken.
        Err(EbtLinkError::DiskFull(full)) => {
            let _ = sink.error(&full.to_string()).await;
        }
        Err(EbtLinkError::PeerSaid(why)) => {
            ctx.progress.refused(why);
            let _ = sink.end().await;
        }
        _ => {
            let _ = sink.end().await;
        }
    }
    ctx.progress.touch();
    result
}

/// A task that stops when its handle is dropped: the sender stops with
/// `run`, also when `run` itself is cancelled (its link task aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until `at`, or forever if there is none.
async fn save_timer(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Turns an end or error seen while draining into the loop's result.
fn pending_end(r: &mut Result<(), EbtLinkError>, item: Item) {
    if let Item::Error(e) = item {
        *r = Err(EbtLinkError::PeerSaid(e));
    } else {
        *r = Err(EbtLinkError::Ended);
    }
}

/// A local append (or appends missed) for the session; returns the notes
/// it queued.
fn on_event(
    node: &Replica,
    state: &EbtState,
    ev: Result<crate::replica::Appended, broadcast::error::RecvError>,
) -> Result<Option<Vec<(FeedId, Note)>>, StoreError> {
    match ev {
        Ok(a) => {
            let mut st = lock(state);
            st.on_append(&ReplicaSide::new(node), a.feed, a.seq);
            Ok(st.take_notes())
        }
        Err(broadcast::error::RecvError::Lagged(_)) => {
            let set = node.replicate_set();
            let mut st = lock(state);
            st.on_lagged(&ReplicaSide::with_set(node, set.clone()), set.feeds.keys())?;
            Ok(st.take_notes())
        }
        Err(broadcast::error::RecvError::Closed) => Ok(None),
    }
}

/// Handles one item from the peer: a clock (answered at once) or a message
/// (its raw bytes added to `batch`, parsed and checked by the appender).
async fn handle_body(
    ctx: &LinkCtx,
    state: &EbtState,
    sink: &Sink,
    body: Body,
    batch: &mut Vec<Vec<u8>>,
) -> Result<(), EbtLinkError> {
    let received =
        lock(state).receive(&ReplicaSide::new(&ctx.replica), body.body_type, &body.bytes);
    match received? {
        Received::Message => {
            // The first message of a batch asks for room; the append asks
            // again for the whole batch.
            if batch.is_empty() {
                ctx.replica.disk().check(MESSAGE_ROOM)?;
            }
            batch.push(body.bytes);
            return Ok(());
        }
        Received::Clock { ignored } if ignored > 0 => tracing::debug!(
            peer = %ctx.peer,
            ignored,
            "ignored notes for feeds we neither replicate nor hold"
        ),
        Received::Clock { .. } => {}
    }
    tracing::trace!(peer = %ctx.peer, clock = %String::from_utf8_lossy(&body.bytes), "ebt clock received");
    ctx.progress.touch();
    send_notes(state, sink).await
}

/// Parses, verifies and stores the receiver's batches in order, while the
/// receiver goes on reading: each batch is parsed and its signatures checked
/// (on all cores) while the batch before it is written.
async fn append_loop(
    ctx: Arc<LinkCtx>,
    state: Arc<EbtState>,
    sink: Sink,
    mut batches: tokio::sync::mpsc::Receiver<Vec<Vec<u8>>>,
    refusal: Arc<watch::Sender<Option<DiskFull>>>,
) {
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(raw) = batches.recv().await {
        let n = raw.len();
        let checked = check_batch(&ctx, raw).await;
        // Writes keep the order of the batches.
        if let Some(w) = writing.take() {
            let _ = w.await;
        }
        let (ctx, state, sink, refusal) =
            (ctx.clone(), state.clone(), sink.clone(), refusal.clone());
        writing = Some(tokio::spawn(async move {
            let r = match checked {
                Ok(batch) => store_batch(&ctx, &state, batch).await,
                Err(e) => Err(e),
            };
            match r {
                Err(EbtLinkError::Replica(ReplicaError::DiskFull(full))) => {
                    tracing::warn!(peer = %ctx.peer, "refusing the peer's messages: {full}");
                    refusal.send_replace(Some(full));
                }
                Err(e) => tracing::warn!(peer = %ctx.peer, "storing messages: {e}"),
                Ok(()) => {}
            }
            let stored = lock(&state).on_stored(&ReplicaSide::new(&ctx.replica), n);
            match stored {
                // The notes that confirm what came in, before the link counts as caught up.
                Ok(()) => {
                    if let Err(e) = send_notes(&state, &sink).await {
                        tracing::debug!(peer = %ctx.peer, "telling what was stored: {e}");
                    }
                }
                Err(e) => tracing::warn!(peer = %ctx.peer, "reading what was stored: {e}"),
            }
            ctx.progress.touch();
        }));
    }
    if let Some(w) = writing {
        let _ = w.await;
    }
}

/// Parses a batch of received messages, keeps those of feeds we replicate,
/// and checks their signatures, on blocking threads.
async fn check_batch(ctx: &LinkCtx, raw: Vec<Vec<u8>>) -> Result<Verified, EbtLinkError> {
    let set = ctx.replica.replicate_set();
    let peer = ctx.peer;
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let (checked, refused) = BatchVerifier::with_threads(verify_threads())
            .parse_and_check(&raw, |m| set.contains(&m.author()));
        for (_, e) in &refused {
            tracing::debug!(%peer, "invalid message over ebt: {e}");
        }
        tracing::debug!(%peer, n = raw.len(), us = start.elapsed().as_micros(), "checked a batch");
        checked
    })
    .await
    .map_err(EbtLinkError::Task)
}

/// Stores a checked batch of received messages.
async fn store_batch(ctx: &LinkCtx, state: &EbtState, batch: Verified) -> Result<(), EbtLinkError> {
    lock(state).on_checked(batch.messages().map(|m| (m.author(), m.sequence())));
    let start = Instant::now();
    let report = ctx.replica.append_verified(batch).await?;
    tracing::debug!(peer = %ctx.peer, added = report.added, us = start.elapsed().as_micros(), "stored a batch");
    LinkStats::add(&ctx.stats.msgs_in, report.added as u64);
    if let Some((_, why)) = &report.first_rejection {
        tracing::warn!(peer = %ctx.peer, rejected = report.rejected, "refused messages: {why}");
    }
    Ok(())
}

/// Stores the peer's clock as the link's EBT session holds it now, if it
/// changed since it was last stored. `sync` calls it before it closes the
/// link: the session's own task stores it only once the link has ended,
/// which a process that exits right after closing does not wait for, and
/// without the stored clock the next session cannot skip the unchanged feeds.
pub fn save_now(ctx: &LinkCtx) {
    let state = ctx
        .progress
        .ebt
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(state) = state {
        let entries = lock(&state).take_unsaved(&ReplicaSide::new(&ctx.replica));
        save_clock(&ctx.replica, &ctx.peer, entries);
    }
}

/// Sends notes for feeds that joined the replicate set.
async fn tell_new_feeds(node: &Replica, state: &EbtState, sink: &Sink) -> Result<(), EbtLinkError> {
    let set = node.replicate_set();
    lock(state).on_replicate_change(&ReplicaSide::with_set(node, set.clone()), set.feeds.keys())?;
    send_notes(state, sink).await
}

/// Stores the peer's clock `entries` (if the session gave any), if there is
/// room among the remembered peers.
fn save_clock(node: &Replica, peer: &FeedId, entries: Option<Vec<(FeedId, u32)>>) {
    let Some(entries) = entries else { return };
    let set = node.replicate_set();
    let name = remote_name(peer);
    let saved = room_for(node, &set, &name).and_then(|room| {
        if room {
            node.store().save_remote_clock(&name, entries)?;
        } else {
            tracing::debug!(%peer, "not storing the peer's clock: {REMEMBERED_PEERS} peers remembered");
        }
        Ok(())
    });
    if let Err(e) = saved {
        tracing::warn!(%peer, "saving the peer's clock: {e}");
    }
}

/// Whether the clock `name` may be stored: it is stored already, fewer than
/// [`REMEMBERED_PEERS`] are, or a stranger's (a peer we do not replicate)
/// can make room.
fn room_for(node: &Replica, set: &ReplicateSet, name: &[u8]) -> Result<bool, StoreError> {
    if node.store().has_remote_clock(name)? {
        return Ok(true);
    }
    let names = node.store().remote_names(PEER_PREFIX)?;
    if names.len() < REMEMBERED_PEERS {
        return Ok(true);
    }
    let stranger = names.iter().find(|n| {
        <[u8; 32]>::try_from(&n[PEER_PREFIX.len()..]).map_or(true, |k| !set.contains(&FeedId(k)))
    });
    match stranger {
        Some(n) => {
            node.store().remove_remote_clock(n)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Streams what the peer asked for, feed by feed, from the store: the
/// feeds' messages are read [`READ_CHUNK`] at a time, several short feeds
/// in one read.
async fn send_loop(ctx: Arc<LinkCtx>, sink: Sink, state: Arc<EbtState>, wake: Arc<Notify>) {
    let node = ctx.replica.clone();
    loop {
        let work = lock(&state).take_streams(&ReplicaSide::new(&node));
        if work.is_empty() {
            ctx.progress.touch();
            tokio::select! {
                () = wake.notified() => {}
                // The peer ended the stream or left: nothing more to send.
                () = sink.ended() => return,
            }
            continue;
        }
        // Each feed with the next sequence to read, in order.
        let mut queue: VecDeque<(FeedId, u32)> = work.into();
        while !queue.is_empty() {
            let asked: Vec<(FeedId, u32)> = queue.iter().take(READ_CHUNK).copied().collect();
            let chunks = match node.read_chunks(asked).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("reading feeds to send: {e}");
                    break;
                }
            };
            // The feeds read leave the queue; one the bound cut short (the
            // last read) goes on first.
            queue.drain(..chunks.len());
            let mut more = None;
            for FeedChunk {
                feed,
                first,
                msgs,
                cut,
            } in chunks
            {
                let msgs = match msgs {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("reading {feed} to send: {e}");
                        continue;
                    }
                };
                if msgs.is_empty() {
                    continue;
                }
                let n = msgs.len();
                let last_seq = first + n as u32 - 1;
                for m in msgs {
                    if sink.send(Body::json_text(m.json)).await.is_err() {
                        return;
                    }
                }
                LinkStats::add(&ctx.stats.msgs_out, n as u64);
                let wanted = lock(&state).on_sent(feed, last_seq);
                ctx.progress.touch();
                if cut && wanted {
                    more = Some((feed, last_seq + 1));
                }
            }
            if let Some(next) = more {
                queue.push_front(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muxrpc::{CallType, Handler, InboundCall, Session, SessionConfig};
    use crate::net::ebt as ebt_proto;

    struct Ignore;

    impl Handler for Ignore {
        fn handle(&self, _call: InboundCall) {}
    }

    /// Runs EBT as the responder on `ctx`, handing back each run's task.
    struct ServeEbt {
        ctx: Arc<LinkCtx>,
        runs: tokio::sync::mpsc::UnboundedSender<tokio::task::JoinHandle<()>>,
    }

    impl Handler for ServeEbt {
        fn handle(&self, call: InboundCall) {
            let ctx = self.ctx.clone();
            let task = tokio::spawn(async move {
                let _ = run(ctx, call.stream, None).await;
            });
            let _ = self.runs.send(task);
        }
    }

    #[tokio::test]
    async fn the_sender_ends_when_its_run_is_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::replica::temp_replica(dir.path());
        let ctx = LinkCtx::new(node, FeedId([7; 32]), false, false);
        let (runs, mut run_rx) = tokio::sync::mpsc::unbounded_channel();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let handler = ServeEbt {
            ctx: ctx.clone(),
            runs,
        };
        let server = Session::start(b, None, Arc::new(handler), SessionConfig::default());
        let client = Session::start(a, None, Arc::new(Ignore), SessionConfig::default());
        let mut stream = client
            .call(
                &["ebt", "replicate"],
                CallType::Duplex,
                vec![ebt_proto::request_args()],
            )
            .await
            .unwrap();
        // The responder's opening clock: its sender is waiting for work.
        assert!(matches!(stream.recv().await, Some(Item::Data(_))));
        // The link task is aborted (as a session's is once it closed), then the session closes.
        run_rx.recv().await.unwrap().abort();
        client.close().await;
        server.closed().await;
        // Every task of the link lets go of it.
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while Arc::strong_count(&ctx) > 1 {
            assert!(
                Instant::now() < deadline,
                "a task of the EBT link outlived its session"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
