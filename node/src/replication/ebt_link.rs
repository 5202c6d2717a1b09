//! EBT replication over one `ebt.replicate` duplex stream, either side.
//!
//! Three tasks per link, so neither side can deadlock on the other and
//! receiving overlaps storing: the *receiver* reads clocks (answered at once)
//! and gathers raw messages into batches, the *appender* parses and verifies
//! each batch (on all cores) while it writes the one before, and the
//! receiver gathers the next one meanwhile; the *sender* streams
//! what the peer asked for from the store, in order, [`READ_CHUNK`] messages at a time,
//! then follows new appends live.
//!
//! Request skipping: the peer's last clock is kept in the store; our opening
//! clock leaves out the feeds where it already matched ours. When the peer
//! later mentions such a feed, we answer with our note for it.
//!
//! What a peer's notes can cost is bounded: notes for feeds we neither
//! replicate nor hold are followed for at most [`FOREIGN_NOTES`] feeds per
//! link and ignored beyond; the stored clock keeps only feeds we replicate,
//! at most [`CLOCK_ENTRIES`] of them; and clocks are kept for at most
//! [`REMEMBERED_PEERS`] peers (a new peer's clock takes the place of a
//! stranger's, never of a peer we replicate).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, Notify};

use super::link::{LinkCtx, LinkStats};
use crate::feed::{BatchVerifier, FeedId, Verified};
use crate::muxrpc::{Body, Item, Sink, Stream};
use crate::net::ebt::{clock_value, is_message, parse_clock, Note};
use crate::replica::graph::ReplicateSet;
use crate::replica::{verify_threads, Replica, READ_CHUNK};

/// Most messages stored per append. Batches are checked on all cores while
/// the one before is written, so 512 is as fast here as 1,024 (the ed25519
/// batch check gains little past 256 per thread) and keeps less in flight.
const BATCH: usize = 512;
/// How often the peer's clock is saved while a link runs.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Notes per link followed for feeds we neither replicate nor hold.
pub const FOREIGN_NOTES: usize = 64;
/// Most entries of one peer's stored clock (36 bytes each: 720,000 bytes).
pub const CLOCK_ENTRIES: usize = 20_000;
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

/// What both EBT tasks of a link know.
#[derive(Debug, Default)]
pub struct EbtState {
    /// Feeds we sent a note for, with the receive flag we sent.
    told: HashMap<FeedId, bool>,
    /// The peer's latest sequence per feed (from notes, messages in either direction).
    theirs: HashMap<FeedId, u32>,
    /// Feeds the peer wants from us, with the next sequence to send.
    sending: HashMap<FeedId, u32>,
    /// Feeds to look at in the sender.
    dirty: HashSet<FeedId>,
    /// Whether the peer's opening clock arrived.
    pub opened: bool,
    /// Whether `theirs` changed since it was saved.
    unsaved: bool,
    /// Batches the appender took and has not finished (stored and counted).
    storing: usize,
    /// Feeds we neither replicate nor hold whose notes were followed.
    foreign: usize,
    /// Notes ignored because [`FOREIGN_NOTES`] was reached.
    ignored: usize,
}

impl EbtState {
    /// Whether both sides hold each other's clocks: we hold everything the
    /// peer said it has of the feeds we asked for, and we sent everything it
    /// asked for.
    pub fn caught_up(&self, node: &Replica) -> bool {
        if !self.opened || !self.dirty.is_empty() || self.storing > 0 {
            return false;
        }
        let behind_in = self
            .told
            .iter()
            .filter(|(_, rx)| **rx)
            .any(|(f, _)| self.theirs.get(f).copied().unwrap_or(0) > node.seq(f).unwrap_or(0));
        let behind_out = self
            .sending
            .iter()
            .any(|(f, next)| *next <= node.seq(f).unwrap_or(0) && !node.is_blocked(f));
        !behind_in && !behind_out
    }

    /// Whether to follow the peer's note for `feed`: always for feeds we
    /// replicate, hold (`held`) or follow already; for the first
    /// [`FOREIGN_NOTES`] others; never beyond (counted in `ignored`).
    fn follows<E>(
        &mut self,
        set: &ReplicateSet,
        feed: &FeedId,
        held: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        if set.contains(feed)
            || self.theirs.contains_key(feed)
            || self.sending.contains_key(feed)
            || held()?
        {
            return Ok(true);
        }
        if self.foreign >= FOREIGN_NOTES {
            self.ignored += 1;
            return Ok(false);
        }
        self.foreign += 1;
        Ok(true)
    }

    /// The entries of the peer's clock worth storing: feeds we replicate, at
    /// most [`CLOCK_ENTRIES`]; `None` if nothing changed since the last call.
    fn take_unsaved(&mut self, set: &ReplicateSet) -> Option<Vec<(FeedId, u32)>> {
        self.unsaved.then(|| {
            self.unsaved = false;
            self.theirs
                .iter()
                .filter(|(f, _)| set.contains(f))
                .take(CLOCK_ENTRIES)
                .map(|(f, s)| (*f, *s))
                .collect()
        })
    }

    fn saw(&mut self, feed: FeedId, seq: u32) {
        let e = self.theirs.entry(feed).or_insert(0);
        if seq > *e {
            *e = seq;
            self.unsaved = true;
        }
    }
}

fn lock(s: &Mutex<EbtState>) -> std::sync::MutexGuard<'_, EbtState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs EBT on `stream` until it ends. `first` is the peer's opening item
/// when we are the requester (the responder speaks first).
pub async fn run(ctx: Arc<LinkCtx>, mut stream: Stream, first: Option<Body>) -> Result<(), String> {
    let node = ctx.replica.clone();
    let state = Arc::new(Mutex::new(EbtState::default()));
    *ctx.progress.ebt.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.clone());
    let wake = Arc::new(Notify::new());
    let sink = stream.sink();
    let mut events = node.subscribe();
    let mut graph = node.graph_changes();

    // Our opening clock, minus the feeds the peer's last clock already matched.
    let stored = node
        .store()
        .remote_clock(&remote_name(&ctx.peer))
        .map_err(|e| e.to_string())?;
    let set = node.replicate_set();
    let mut opening = Vec::new();
    let mut skipped = 0usize;
    {
        let mut st = lock(&state);
        for feed in set.feeds.keys() {
            let ours = node.seq(feed).map_err(|e| e.to_string())?;
            if let Some(theirs) = stored.get(feed) {
                st.theirs.insert(*feed, *theirs);
                if *theirs == ours {
                    skipped += 1;
                    continue;
                }
            }
            st.told.insert(*feed, true);
            opening.push((
                *feed,
                Note::Have {
                    seq: ours,
                    receive: true,
                },
            ));
        }
    }
    tracing::debug!(peer = %ctx.peer, feeds = opening.len(), skipped, "ebt opening clock");
    let opening = clock_value(opening.iter().map(|(f, n)| (f, *n)));

    let mut pending_first = first;
    if pending_first.is_none() {
        sink.send(Body::json(&opening))
            .await
            .map_err(|e| e.to_string())?;
    }
    let sender = tokio::spawn(send_loop(
        ctx.clone(),
        sink.clone(),
        state.clone(),
        wake.clone(),
    ));
    let (to_appender, from_receiver) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(1);
    let appender = tokio::spawn(append_loop(ctx.clone(), state.clone(), from_receiver));
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut last_save = Instant::now();
    let result = loop {
        let item = match pending_first.take() {
            Some(body) => {
                // We asked; the peer's clock came first. Now ours.
                let r = handle_body(&ctx, &state, &sink, body, &mut batch).await;
                if let Err(e) = sink.send(Body::json(&opening)).await {
                    break Err(e.to_string());
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
                            Err(_) => break Err("the appender stopped".into()),
                        }
                        continue;
                    }
                    ev = events.recv() => {
                        let tell = on_event(&node, &state, ev);
                        wake.notify_one();
                        if !tell.is_empty() {
                            let v = clock_value(tell.iter().map(|(f, n)| (f, *n)));
                            if let Err(e) = sink.send(Body::json(&v)).await {
                                break Err(e.to_string());
                            }
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
                    break Err("the appender stopped".into());
                }
                wake.notify_one();
                if let Err(e) = r {
                    break Err(e);
                }
                if last_save.elapsed() > SAVE_EVERY {
                    save_clock(&node, &ctx.peer, &state);
                    last_save = Instant::now();
                }
            }
            Some(Item::End) | None => break Ok(()),
            Some(Item::Error(e)) => break Err(format!("peer error: {e}")),
        }
    };
    if !batch.is_empty() {
        let _ = to_appender.send(batch).await;
    }
    drop(to_appender);
    let _ = appender.await;
    sender.abort();
    save_clock(&node, &ctx.peer, &state);
    let _ = sink.end().await;
    ctx.progress.touch();
    result
}

/// Turns an end or error seen while draining into the loop's result.
fn pending_end(r: &mut Result<(), String>, item: Item) {
    if let Item::Error(e) = item {
        *r = Err(format!("peer error: {e}"));
    } else {
        *r = Err("stream ended".into());
    }
}

/// A local append: wake the sender if the peer wants the feed, and return
/// notes to send for replicated feeds the peer has not heard about in this
/// session (skipped at the start), so it can ask for the new messages.
fn on_event(
    node: &Replica,
    state: &Mutex<EbtState>,
    ev: Result<crate::replica::Appended, broadcast::error::RecvError>,
) -> Vec<(FeedId, Note)> {
    let mut st = lock(state);
    match ev {
        Ok(a) => {
            if st.sending.contains_key(&a.feed) {
                st.dirty.insert(a.feed);
                return Vec::new();
            }
            if !st.told.contains_key(&a.feed) && node.replicate_set().contains(&a.feed) {
                st.told.insert(a.feed, true);
                return vec![(
                    a.feed,
                    Note::Have {
                        seq: a.seq,
                        receive: true,
                    },
                )];
            }
        }
        Err(broadcast::error::RecvError::Lagged(_)) => {
            let all: Vec<FeedId> = st.sending.keys().copied().collect();
            st.dirty.extend(all);
        }
        Err(broadcast::error::RecvError::Closed) => {}
    }
    Vec::new()
}

/// Handles one item from the peer: a clock (answered at once) or a message
/// (its raw bytes added to `batch`, parsed and checked by the appender).
async fn handle_body(
    ctx: &LinkCtx,
    state: &Mutex<EbtState>,
    sink: &Sink,
    body: Body,
    batch: &mut Vec<Vec<u8>>,
) -> Result<(), String> {
    // Every classic message value starts with `previous`; a clock never does.
    if body.bytes.starts_with(b"{\"previous\":") {
        batch.push(body.bytes);
        return Ok(());
    }
    let v = body.to_value().map_err(|e| e.to_string())?;
    let Some(o) = v.as_object() else {
        return Err("ebt item is not an object".into());
    };
    if is_message(o) {
        batch.push(body.bytes);
        return Ok(());
    }
    let notes = parse_clock(o).map_err(|e| e.to_string())?;
    let node = &ctx.replica;
    let set = node.replicate_set();
    let mut reply = Vec::new();
    {
        let mut st = lock(state);
        st.opened = true;
        let ignored_before = st.ignored;
        for (feed, note) in notes {
            if !st
                .follows(&set, &feed, || Ok(node.seq(&feed)? > 0))
                .map_err(|e: crate::store::StoreError| e.to_string())?
            {
                continue;
            }
            match note {
                Note::Skip => {
                    st.sending.remove(&feed);
                }
                Note::Have { seq, receive } => {
                    st.saw(feed, seq);
                    if receive && !set.blocked.contains(&feed) {
                        st.sending.insert(feed, seq.saturating_add(1));
                        st.dirty.insert(feed);
                    } else {
                        st.sending.remove(&feed);
                    }
                }
            }
            if set.contains(&feed) && !st.told.contains_key(&feed) {
                st.told.insert(feed, true);
                let ours = node.seq(&feed).map_err(|e| e.to_string())?;
                reply.push((
                    feed,
                    Note::Have {
                        seq: ours,
                        receive: true,
                    },
                ));
            }
        }
        if st.ignored > ignored_before {
            tracing::debug!(
                peer = %ctx.peer,
                ignored = st.ignored - ignored_before,
                "ignored notes for feeds we neither replicate nor hold"
            );
        }
    }
    ctx.progress.touch();
    if !reply.is_empty() {
        let v = clock_value(reply.iter().map(|(f, n)| (f, *n)));
        sink.send(Body::json(&v)).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Parses, verifies and stores the receiver's batches in order, while the
/// receiver goes on reading: each batch is parsed and its signatures checked
/// (on all cores) while the batch before it is written.
async fn append_loop(
    ctx: Arc<LinkCtx>,
    state: Arc<Mutex<EbtState>>,
    mut batches: tokio::sync::mpsc::Receiver<Vec<Vec<u8>>>,
) {
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(raw) = batches.recv().await {
        lock(&state).storing += 1;
        let checked = check_batch(&ctx, raw).await;
        // Writes keep the order of the batches.
        if let Some(w) = writing.take() {
            let _ = w.await;
        }
        let (ctx, state) = (ctx.clone(), state.clone());
        writing = Some(tokio::spawn(async move {
            let r = match checked {
                Ok(batch) => store_batch(&ctx, &state, batch).await,
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(peer = %ctx.peer, "storing messages: {e}");
            }
            lock(&state).storing -= 1;
            ctx.progress.touch();
        }));
    }
    if let Some(w) = writing {
        let _ = w.await;
    }
}

/// Parses a batch of received messages, keeps those of feeds we replicate,
/// and checks their signatures, on blocking threads.
async fn check_batch(ctx: &LinkCtx, raw: Vec<Vec<u8>>) -> Result<Verified, String> {
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
    .map_err(|e| e.to_string())
}

/// Stores a checked batch of received messages.
async fn store_batch(
    ctx: &LinkCtx,
    state: &Mutex<EbtState>,
    batch: Verified,
) -> Result<(), String> {
    {
        let mut st = lock(state);
        for m in batch.messages() {
            st.saw(m.author(), m.sequence());
            // Never echo a message back to the peer that sent it.
            if let Some(next) = st.sending.get_mut(&m.author()) {
                *next = (*next).max(m.sequence().saturating_add(1));
            }
        }
    }
    let start = Instant::now();
    let report = ctx
        .replica
        .append_verified(batch)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(peer = %ctx.peer, added = report.added, us = start.elapsed().as_micros(), "stored a batch");
    LinkStats::add(&ctx.stats.msgs_in, report.added as u64);
    if let Some((_, why)) = &report.first_rejection {
        tracing::warn!(peer = %ctx.peer, rejected = report.rejected, "refused messages: {why}");
    }
    Ok(())
}

/// Sends notes for feeds that joined the replicate set.
async fn tell_new_feeds(
    node: &Replica,
    state: &Mutex<EbtState>,
    sink: &Sink,
) -> Result<(), String> {
    let set = node.replicate_set();
    let mut notes = Vec::new();
    {
        let mut st = lock(state);
        for feed in set.feeds.keys() {
            if !st.told.contains_key(feed) {
                st.told.insert(*feed, true);
                let ours = node.seq(feed).map_err(|e| e.to_string())?;
                notes.push((
                    *feed,
                    Note::Have {
                        seq: ours,
                        receive: true,
                    },
                ));
            }
        }
    }
    if notes.is_empty() {
        return Ok(());
    }
    let v = clock_value(notes.iter().map(|(f, n)| (f, *n)));
    sink.send(Body::json(&v)).await.map_err(|e| e.to_string())
}

/// Stores the peer's clock if it changed: only feeds we replicate (what
/// request skipping looks at), at most [`CLOCK_ENTRIES`], and only if there
/// is room among the remembered peers.
fn save_clock(node: &Replica, peer: &FeedId, state: &Mutex<EbtState>) {
    let set = node.replicate_set();
    let entries = lock(state).take_unsaved(&set);
    let Some(entries) = entries else { return };
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
fn room_for(
    node: &Replica,
    set: &ReplicateSet,
    name: &[u8],
) -> Result<bool, crate::store::StoreError> {
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

/// Streams what the peer asked for, feed by feed, from the store.
async fn send_loop(ctx: Arc<LinkCtx>, sink: Sink, state: Arc<Mutex<EbtState>>, wake: Arc<Notify>) {
    let node = ctx.replica.clone();
    loop {
        let work: Vec<(FeedId, u32)> = {
            let mut st = lock(&state);
            let dirty: Vec<FeedId> = st.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|f| st.sending.get(&f).map(|n| (f, *n)))
                .collect()
        };
        if work.is_empty() {
            ctx.progress.touch();
            wake.notified().await;
            continue;
        }
        for (feed, mut next) in work {
            if node.is_blocked(&feed) {
                continue;
            }
            loop {
                let chunk = node.read_chunk(feed, next).await;
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("reading {feed} to send: {e}");
                        break;
                    }
                };
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                let last_seq = next + n as u32 - 1;
                for m in chunk {
                    if sink.send(Body::json_text(m.json)).await.is_err() {
                        return;
                    }
                }
                LinkStats::add(&ctx.stats.msgs_out, n as u64);
                next = last_seq + 1;
                {
                    let mut st = lock(&state);
                    st.saw(feed, last_seq);
                    match st.sending.get_mut(&feed) {
                        Some(s) if *s < next => *s = next,
                        Some(_) => {}
                        None => break,
                    }
                }
                ctx.progress.touch();
                if n < READ_CHUNK {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(n: u32) -> FeedId {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        FeedId(k)
    }

    #[test]
    fn notes_for_feeds_we_do_not_replicate_are_bounded() {
        let mut set = ReplicateSet::default();
        for n in 0..10 {
            set.feeds.insert(feed(n), 1);
        }
        let mut st = EbtState::default();
        let held = |f: u32| move || Ok::<bool, ()>(f == 500_000);
        let followed = (0..300_000u32)
            .filter(|n| st.follows(&set, &feed(*n), held(*n)).unwrap())
            .count();
        // The ten we replicate and FOREIGN_NOTES of the rest.
        assert_eq!(followed, 10 + FOREIGN_NOTES);
        assert_eq!(st.ignored, 300_000 - 10 - FOREIGN_NOTES);
        // Feeds we replicate or hold are always followed.
        assert!(st.follows(&set, &feed(3), held(3)).unwrap());
        assert!(st.follows(&set, &feed(500_000), held(500_000)).unwrap());
    }

    #[test]
    fn the_stored_clock_holds_only_feeds_we_replicate_up_to_a_cap() {
        let mut set = ReplicateSet::default();
        for n in 0..(CLOCK_ENTRIES as u32 + 500) {
            set.feeds.insert(feed(n), 1);
        }
        let mut st = EbtState::default();
        for n in 0..(CLOCK_ENTRIES as u32 + 50_000) {
            st.saw(feed(n), 7);
        }
        let stored = st.take_unsaved(&set).unwrap();
        assert_eq!(stored.len(), CLOCK_ENTRIES);
        assert!(stored.iter().all(|(f, _)| set.contains(f)));
        // Nothing changed: nothing to store.
        assert!(st.take_unsaved(&set).is_none());
    }
}
