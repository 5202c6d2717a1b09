//! The running node: shared state, and the tasks that serve and replicate.
//!
//! - [`Node`]: identity, store, blobs, settings, the replicate set, and an
//!   event channel that tells live streams about every append.
//! - [`api`]: the muxrpc methods we answer (to peers, and more to the local
//!   control socket).
//! - [`ebt`], [`history`], [`blobs`]: replication by EBT, by
//!   createHistoryStream (legacy), and of blobs.
//! - [`peers`]: dialling, accepting, back-off, the peer table.
//! - [`control`]: the unix socket the CLI uses while `run` holds the store.
//! - [`sync`]: one connection, replicate both ways, report, close.
//! - [`lan`]: LAN discovery feeding the dialler.
//! - [`sneakernet`]: stick visits and bundle files for the running node.
//! - [`status`]: the node's one status (phase, sticks, links) and the LED
//!   pattern derived from it; [`link_status`] feeds it from peer links.
//! - [`appliance`]: stick detection ([`mounts`], [`mountinfo`]), stick
//!   handling ([`sticks`], running [`sneakernet`] visits) and the LED
//!   ([`status_led`]).
//! - [`notify`]: systemd's notify protocol (ready, status, watchdog, stopping).

pub mod admission;
pub mod api;
pub mod appliance;
pub mod blobs;
pub mod config;
pub mod control;
pub mod ebt;
pub mod graph;
pub mod history;
pub mod lan;
pub mod link;
pub mod link_status;
pub mod mountinfo;
pub mod mounts;
pub mod notify;
pub mod open_sessions;
pub mod peers;
pub mod refusals;
pub mod server;
pub mod sneakernet;
pub mod status;
pub mod status_led;
pub mod sticks;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, watch, Mutex};

use crate::blobs::BlobStore;
use crate::feed::json::Value;
use crate::feed::{refs, BatchVerifier, BlobId, FeedId, Keypair, Message, MsgId, Verified};
use crate::net::shs;
use crate::publish::{publish, PublishError};
use crate::sneakernet::stop_at::{self, Point};
use crate::store::{AppendReport, Store, StoreError, StoredMsg};

use config::Settings;
use graph::ReplicateSet;

/// A feed grew: its new latest sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The feed.
    pub feed: FeedId,
    /// Its latest sequence now.
    pub seq: u32,
}

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A blocking task died (a bug).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// The shared state of a running node.
pub struct Node {
    keys: Keypair,
    shs_keys: shs::Keypair,
    id: FeedId,
    /// The message store.
    pub store: Arc<Store>,
    /// The blob store.
    pub blobs: Arc<BlobStore>,
    /// Settings after defaults.
    pub settings: Settings,
    append_lock: Mutex<()>,
    events: broadcast::Sender<Appended>,
    graph: RwLock<Arc<ReplicateSet>>,
    graph_version: watch::Sender<u64>,
    /// Blob wants and fetches in flight.
    pub wants: blobs::Wants,
    /// Known and connected peers.
    pub peers: peers::PeerTable,
    /// Held by the one bundle import at a time.
    pub import_lock: std::sync::Mutex<()>,
    /// What `ssb-node status` shows and the LED plays.
    pub status: status::Status,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Stored messages read per step when streaming a feed to a peer: bounds
/// the memory of a send, and lets other work interleave.
pub const READ_CHUNK: usize = 256;

/// Threads that check signatures: the machine's cores, at most four.
pub fn verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// How many append events a slow listener may fall behind before it must
/// rescan (it then sees `Lagged` and re-reads heads from the store).
const EVENT_BUFFER: usize = 4096;

impl Node {
    /// Builds the node around an open store; computes the replicate set.
    pub fn new(
        keys: Keypair,
        store: Store,
        blobs: BlobStore,
        settings: Settings,
    ) -> Result<Arc<Node>, NodeError> {
        let shs_keys = shs::Keypair::from_secret(keys.to_libsodium_secret())
            .map_err(|e| NodeError::Task(format!("identity: {e}")))?;
        let id = keys.id();
        let graph = graph::compute(
            &store,
            &id,
            settings.hops,
            &settings.replicate,
            &settings.block,
        )?;
        let wants = store.wants(blobs::MAX_WANTS)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Arc::new(Node {
            keys,
            shs_keys,
            id,
            store: Arc::new(store),
            blobs: Arc::new(blobs),
            append_lock: Mutex::new(()),
            events,
            graph: RwLock::new(Arc::new(graph)),
            graph_version: watch::channel(0).0,
            wants: blobs::Wants::new(wants),
            peers: peers::PeerTable::default(),
            import_lock: std::sync::Mutex::new(()),
            status: status::Status::new(),
            settings,
        }))
    }

    /// Our feed id.
    pub fn id(&self) -> &FeedId {
        &self.id
    }

    /// Our identity keys (to sign what we publish and export).
    pub fn keys(&self) -> &Keypair {
        &self.keys
    }

    /// Our identity for the secret handshake.
    pub fn shs_keys(&self) -> &shs::Keypair {
        &self.shs_keys
    }

    /// The feeds we replicate now.
    pub fn replicate_set(&self) -> Arc<ReplicateSet> {
        self.graph
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes whenever the replicate set does.
    pub fn graph_changes(&self) -> watch::Receiver<u64> {
        self.graph_version.subscribe()
    }

    /// Every append from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Appended> {
        self.events.subscribe()
    }

    /// Whether we refuse to talk to or replicate `feed`.
    pub fn is_blocked(&self, feed: &FeedId) -> bool {
        self.replicate_set().blocked.contains(feed)
    }

    /// The latest sequence we hold of `feed` (0 for none).
    pub fn seq(&self, feed: &FeedId) -> Result<u32, StoreError> {
        Ok(self.store.head(feed)?.map_or(0, |h| h.sequence))
    }

    /// Up to [`READ_CHUNK`] stored messages of `feed` from sequence `from` on,
    /// read on a blocking thread.
    pub async fn read_chunk(&self, feed: FeedId, from: u32) -> Result<Vec<StoredMsg>, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store
                .feed(&feed, from)
                .take(READ_CHUNK)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Verifies and stores messages from outside, then tells listeners,
    /// wants the blobs they mention, and updates the follow graph.
    pub async fn append(self: &Arc<Self>, msgs: Vec<Message>) -> Result<AppendReport, NodeError> {
        if msgs.is_empty() {
            return Ok(AppendReport::default());
        }
        let checked = tokio::task::spawn_blocking(move || {
            BatchVerifier::with_threads(verify_threads()).check(msgs)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?;
        self.append_verified(checked).await
    }

    /// Stores messages whose signatures were checked already, as
    /// [`Node::append`] does.
    pub async fn append_verified(
        self: &Arc<Self>,
        batch: Verified,
    ) -> Result<AppendReport, NodeError> {
        if batch.is_empty() {
            return Ok(AppendReport::default());
        }
        let _guard = self.append_lock.lock().await;
        let node = self.clone();
        tokio::task::spawn_blocking(move || {
            let feeds: HashSet<FeedId> = batch.messages().map(Message::author).collect();
            let before = node.heads(&feeds)?;
            let notes: Vec<(FeedId, u32, Vec<BlobId>, bool)> = batch
                .messages()
                .map(|m| {
                    let (blobs, contact) = scan_content(m.content());
                    (m.author(), m.sequence(), blobs, contact)
                })
                .collect();
            let report = node.store.append_verified(batch)?;
            if report.added > 0 {
                let after = node.heads(&feeds)?;
                node.after_append(&before, &after, &notes)?;
            }
            Ok(report)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Publishes our own messages (durably), then tells listeners.
    pub async fn publish(self: &Arc<Self>, contents: Vec<Value>) -> Result<Vec<MsgId>, NodeError> {
        let _guard = self.append_lock.lock().await;
        let node = self.clone();
        tokio::task::spawn_blocking(move || {
            let feeds = HashSet::from([node.id]);
            let before = node.heads(&feeds)?;
            let notes: Vec<(FeedId, u32, Vec<BlobId>, bool)> = contents
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (blobs, contact) = scan_content(c);
                    let seq = before.get(&node.id).copied().unwrap_or(0) + i as u32 + 1;
                    (node.id, seq, blobs, contact)
                })
                .collect();
            let ids = publish(&node.store, &node.keys, contents);
            let after = node.heads(&feeds)?;
            node.after_append(&before, &after, &notes)?;
            Ok(ids?)
        })
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?
    }

    fn heads(&self, feeds: &HashSet<FeedId>) -> Result<HashMap<FeedId, u32>, StoreError> {
        feeds.iter().map(|f| Ok((*f, self.seq(f)?))).collect()
    }

    /// Runs after messages were written: events, blob wants, graph.
    fn after_append(
        &self,
        before: &HashMap<FeedId, u32>,
        after: &HashMap<FeedId, u32>,
        notes: &[(FeedId, u32, Vec<BlobId>, bool)],
    ) -> Result<(), StoreError> {
        let set = self.replicate_set();
        let mut regraph = false;
        let mut wanted = Vec::new();
        for (feed, seq, blobs, contact) in notes {
            let lo = before.get(feed).copied().unwrap_or(0);
            let hi = after.get(feed).copied().unwrap_or(0);
            if *seq <= lo || *seq > hi {
                continue;
            }
            regraph |= *contact && set.shapes_graph(feed, self.settings.hops);
            wanted.extend(blobs.iter().filter(|b| !self.blobs.has(b)).copied());
        }
        if !wanted.is_empty() {
            self.store.add_wants(&wanted)?;
            self.wants.want(&wanted);
        }
        for (feed, hi) in after {
            if before.get(feed).copied().unwrap_or(0) < *hi {
                let _ = self.events.send(Appended {
                    feed: *feed,
                    seq: *hi,
                });
            }
        }
        if regraph {
            self.recompute_graph()?;
        }
        Ok(())
    }

    /// Promotes every message of `stage` (see [`crate::store::stage`]):
    /// moves the heads of their feeds over them, a run at a time under the
    /// append lock (their log entries were written past the heads while the
    /// bundle was read; each run's batch also wants the blobs its messages
    /// mention that the blob store lacks), drops what is left past the
    /// heads, tells listeners, wants those blobs here too and updates the
    /// follow graph, as [`Node::append`] does. Blocking: call from a
    /// blocking thread. Returns how many messages were added, and per feed
    /// that stopped short, why.
    pub fn promote_staged(
        &self,
        stage: crate::store::stage::Stage,
    ) -> Result<(u64, Vec<(FeedId, String)>), StoreError> {
        let mut added = 0;
        let mut stuck = Vec::new();
        let mut staged = stage.into_reader()?;
        loop {
            let _guard = self.append_lock.blocking_lock();
            let Some(p) =
                self.store
                    .promote(&mut staged, crate::store::stage::PROMOTE_RUN, &|b| {
                        !self.blobs.has(b)
                    })?
            else {
                break;
            };
            stop_at::reached(Point::HeadsMoved);
            let feed = p.feed;
            added += p.added.len() as u64;
            let notes: Vec<_> = p
                .added
                .into_iter()
                .map(|(seq, blobs, contact)| (feed, seq, blobs, contact))
                .collect();
            let before = HashMap::from([(feed, p.before)]);
            let after = HashMap::from([(feed, p.after)]);
            self.after_append(&before, &after, &notes)?;
            stop_at::reached(Point::RunNoted);
            if let Some(why) = p.stuck {
                stuck.push((feed, why));
            }
        }
        // Whatever a stuck feed left past its head goes, and the markers.
        self.with_append_lock(|| self.store.drop_incoming())?;
        Ok((added, stuck))
    }

    /// Runs `f` under the append lock (so no message is appended
    /// meanwhile). Blocking: call from a blocking thread.
    pub fn with_append_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.append_lock.blocking_lock();
        f()
    }

    /// Waits for the append in progress, then makes the store durable.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let _guard = self.append_lock.lock().await;
        self.store.persist()
    }

    /// [`Node::shutdown`], and flushes the store's memtables so that the
    /// next start replays little journal (see [`crate::store::Store::settle`]):
    /// for a node that ran for a while, not for a quick `sync`, whose time it
    /// would lengthen.
    pub async fn shutdown_settled(&self) -> Result<(), StoreError> {
        let _guard = self.append_lock.lock().await;
        self.store.settle()
    }

    /// Recomputes the replicate set from the store and tells sessions if it changed.
    pub fn recompute_graph(&self) -> Result<(), StoreError> {
        let s = &self.settings;
        let fresh = graph::compute(&self.store, &self.id, s.hops, &s.replicate, &s.block)?;
        let mut g = self.graph.write().unwrap_or_else(|e| e.into_inner());
        if **g != fresh {
            *g = Arc::new(fresh);
            drop(g);
            self.graph_version.send_modify(|v| *v += 1);
        }
        Ok(())
    }
}

/// Blob ids mentioned anywhere in a message's content, and whether it is a
/// `contact` message.
pub(crate) fn scan_content(content: &Value) -> (Vec<BlobId>, bool) {
    fn walk(v: &Value, out: &mut Vec<BlobId>, depth: usize) {
        if depth > 32 || out.len() >= 64 {
            return;
        }
        match v {
            Value::String(s) => {
                if let Some(text) = s.as_str() {
                    if refs::is_blob(text) {
                        if let Ok(id) = text.parse::<BlobId>() {
                            if !out.contains(&id) {
                                out.push(id);
                            }
                        }
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out, depth + 1)),
            Value::Object(o) => o
                .entries()
                .iter()
                .for_each(|(_, v)| walk(v, out, depth + 1)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(content, &mut out, 0);
    let contact = content
        .as_object()
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str)
        == Some("contact");
    (out, contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_scan_finds_blob_links_and_contacts() {
        let blob = BlobId::of(b"hello");
        let c = Value::parse(
            format!(
                r#"{{"type":"post","mentions":[{{"link":"{blob}","size":5}}],"text":"see {blob}"}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(scan_content(&c), (vec![blob], false));
        let c = Value::parse(br#"{"type":"contact","contact":"x"}"#).unwrap();
        assert_eq!(scan_content(&c), (vec![], true));
    }
}
