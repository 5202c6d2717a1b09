//! The replica: the feeds and blobs this node holds, and every way they grow.
//!
//! [`Replica`] owns the store handle, the blob store, the blob [`wants`],
//! the replicate set and follow [`graph`] (with what the [`carry`]ing
//! policy adds to it), the append lock and the append events. Messages enter only through [`Replica::append`],
//! [`Replica::append_verified`], [`Replica::publish`] and
//! [`Replica::promote_staged`], which keep wants, events and the graph in
//! step with the store. Replication and sneakernet both work on a replica;
//! neither knows the running node.

pub mod blob_budget;
pub mod carry;
pub mod content;
pub mod disk_space;
pub mod graph;
pub mod stop_at;
pub mod wants;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, watch, Mutex};

use crate::blob_store::BlobStore;
use crate::feed::json::Value;
use crate::feed::{BatchVerifier, BlobId, FeedId, Keypair, Message, MsgId, Verified};
use crate::publish::{publish, PublishError};
use crate::store::stage::{Stage, PROMOTE_RUN};
use crate::store::{AppendReport, Store, StoreError, StoredMsg};
use stop_at::Point;

pub use content::scan_content;
pub use disk_space::{DiskFull, DiskSpace};
pub use graph::ReplicateSet;
pub use wants::Wants;

/// Default most blob size fetched (ssb-blobs' 5 MiB).
pub const DEFAULT_BLOB_MAX: u64 = 5 * 1024 * 1024;

/// Default follow-graph distance replicated.
pub const DEFAULT_HOPS: u32 = 2;

/// Stored messages read per step when streaming a feed to a peer: bounds
/// the memory of a send, and lets other work interleave.
pub const READ_CHUNK: usize = 256;

/// Room a message may take on disk, for the check before an append (the
/// largest legal message, with its index entries).
pub const MESSAGE_ROOM: u64 = 24 * 1024;

/// How many append events a slow listener may fall behind before it must
/// rescan (it then sees `Lagged` and re-reads heads from the store).
const EVENT_BUFFER: usize = 4096;

/// Threads that check signatures: the machine's cores, at most four.
pub fn verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Messages of one feed read by [`Replica::read_chunks`].
#[derive(Debug)]
pub struct FeedChunk {
    /// The feed.
    pub feed: FeedId,
    /// The sequence the read started at.
    pub first: u32,
    /// Its messages from `first` on, in order (or why they could not be read).
    pub msgs: Result<Vec<StoredMsg>, StoreError>,
    /// Whether the read's bound cut it short: more may follow.
    pub cut: bool,
}

/// A feed grew: its new latest sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The feed.
    pub feed: FeedId,
    /// Its latest sequence after the append.
    pub seq: u32,
}

/// What the replica keeps: the follow graph's shape and the largest blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Follow-graph distance replicated.
    pub hops: u32,
    /// Feeds replicated besides the follow graph.
    pub replicate: Vec<FeedId>,
    /// Feeds never replicated nor served.
    pub block: Vec<FeedId>,
    /// Largest blob fetched or imported.
    pub blob_max: u64,
    /// The config's carrying mode ([`carry`]); the keeper's saved choice
    /// wins over it ([`Replica::carry`]).
    pub carry: carry::CarryMode,
    /// Most feeds followed by [`carry::CarryMode::Connected`] and for `sites`.
    pub carry_max: u32,
    /// Other site boxes, followed with what they follow.
    pub sites: Vec<FeedId>,
    /// Most bytes of blobs kept ([`blob_budget`]; `None`: no quota).
    pub blob_quota: Option<u64>,
    /// Feeds whose blobs the quota never removes (besides our own).
    pub keep: Vec<FeedId>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            hops: DEFAULT_HOPS,
            replicate: Vec::new(),
            block: Vec::new(),
            blob_max: DEFAULT_BLOB_MAX,
            carry: carry::CarryMode::Follows,
            carry_max: carry::DEFAULT_CARRY_MAX,
            sites: Vec::new(),
            blob_quota: None,
            keep: Vec::new(),
        }
    }
}

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A blocking task of ours panicked or was cancelled (a bug of ours).
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The data disk has no room above its reserve: nothing was written.
    #[error(transparent)]
    DiskFull(#[from] DiskFull),
    /// A carrying mode that cannot work with this node's `hops`.
    #[error(transparent)]
    NeedsHops(#[from] carry::NeedsHops),
}

/// The feeds and blobs this node holds (see the module docs).
pub struct Replica {
    keys: Keypair,
    id: FeedId,
    store: Arc<Store>,
    blobs: Arc<BlobStore>,
    wants: Wants,
    policy: Policy,
    append_lock: Mutex<()>,
    import_lock: std::sync::Mutex<()>,
    events: broadcast::Sender<Appended>,
    graph: RwLock<Arc<ReplicateSet>>,
    graph_version: watch::Sender<u64>,
    carrier: carry::Carrier,
    /// The carrying mode in force (see [`carry`]).
    carry: std::sync::Mutex<carry::CarryChoice>,
    disk: DiskSpace,
    budget: blob_budget::BudgetState,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Builds the replica around an open store; computes the replicate set
    /// and loads the blob wants kept in the store.
    pub fn new(
        keys: Keypair,
        store: Store,
        blobs: BlobStore,
        policy: Policy,
    ) -> Result<Arc<Replica>, StoreError> {
        let id = keys.id();
        let graph = graph::compute(&store, &id, policy.hops, &policy.replicate, &policy.block)?;
        let wants = store.wants(wants::MAX_WANTS)?;
        let carry = carry::initial(&store, policy.carry, policy.hops)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let disk = DiskSpace::new(blobs.dir());
        Ok(Arc::new(Replica {
            disk,
            budget: blob_budget::BudgetState::default(),
            keys,
            id,
            store: Arc::new(store),
            blobs: Arc::new(blobs),
            wants: Wants::new(wants),
            policy,
            append_lock: Mutex::new(()),
            import_lock: std::sync::Mutex::new(()),
            events,
            graph: RwLock::new(Arc::new(graph)),
            graph_version: watch::channel(0).0,
            carrier: carry::Carrier::default(),
            carry: std::sync::Mutex::new(carry),
        }))
    }

    /// The carrying mode in force, and who chose it.
    pub fn carry(&self) -> carry::CarryChoice {
        *self.carry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The carrying mode in force.
    pub fn carry_mode(&self) -> carry::CarryMode {
        self.carry().mode
    }

    /// Sets the carrying mode as the keeper's choice: saved in the store
    /// (durably, so it wins over the config at later starts), in force for
    /// peers that connect from now on. Blocking (a store flush).
    pub fn set_carry_mode(&self, mode: carry::CarryMode) -> Result<(), ReplicaError> {
        let mut now = self.carry.lock().unwrap_or_else(|e| e.into_inner());
        carry::save(&self.store, mode, self.policy.hops)?;
        *now = carry::CarryChoice {
            mode,
            set_by: carry::SetBy::Keeper,
        };
        tracing::info!(mode = mode.as_str(), "the keeper set the carrying mode");
        Ok(())
    }

    /// What the carrying policy did.
    pub fn carrier(&self) -> &carry::Carrier {
        &self.carrier
    }

    /// Our feed id.
    pub fn id(&self) -> &FeedId {
        &self.id
    }

    /// Our identity keys (to sign what we publish and export).
    pub fn keys(&self) -> &Keypair {
        &self.keys
    }

    /// The message store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<BlobStore> {
        &self.blobs
    }

    /// The data disk's room: ask before a write that grows the data dir.
    pub fn disk(&self) -> &DiskSpace {
        &self.disk
    }

    /// The blobs we and our peers want.
    pub fn wants(&self) -> &Wants {
        &self.wants
    }

    /// What this replica keeps.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The largest blob fetched or imported.
    pub fn blob_max(&self) -> u64 {
        self.policy.blob_max
    }

    /// Holds the one bundle import at a time until the guard drops.
    pub fn lock_imports(&self) -> std::sync::MutexGuard<'_, ()> {
        self.import_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The feeds we replicate.
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

    /// Every append from the call on.
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
    pub async fn read_chunk(
        &self,
        feed: FeedId,
        from: u32,
    ) -> Result<Vec<StoredMsg>, ReplicaError> {
        let store = self.store.clone();
        let chunk = tokio::task::spawn_blocking(move || {
            store
                .feed(&feed, from)
                .take(READ_CHUNK)
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        Ok(chunk)
    }

    /// Stored messages of several feeds, [`READ_CHUNK`] in all at most,
    /// read on one blocking thread: for each of `from` (a feed and its first
    /// sequence), in order, its messages, and whether the bound cut it short.
    /// It stops at the bound: the feeds after the last one given back are
    /// not read. A feed whose read fails gives its error and the rest go on.
    pub async fn read_chunks(
        &self,
        from: Vec<(FeedId, u32)>,
    ) -> Result<Vec<FeedChunk>, ReplicaError> {
        let store = self.store.clone();
        let chunks = tokio::task::spawn_blocking(move || {
            let mut left = READ_CHUNK;
            let mut chunks = Vec::new();
            for (feed, first) in from {
                if left == 0 {
                    break;
                }
                let msgs = store
                    .feed(&feed, first)
                    .take(left)
                    .collect::<Result<Vec<_>, _>>();
                let cut = msgs.as_ref().is_ok_and(|m| m.len() == left);
                left -= msgs.as_ref().map_or(0, Vec::len);
                chunks.push(FeedChunk {
                    feed,
                    first,
                    msgs,
                    cut,
                });
            }
            chunks
        })
        .await?;
        Ok(chunks)
    }

    /// Verifies and stores messages from outside, then tells listeners,
    /// wants the blobs they mention, and updates the follow graph.
    pub async fn append(
        self: &Arc<Self>,
        msgs: Vec<Message>,
    ) -> Result<AppendReport, ReplicaError> {
        if msgs.is_empty() {
            return Ok(AppendReport::default());
        }
        let checked = tokio::task::spawn_blocking(move || {
            BatchVerifier::with_threads(verify_threads()).check(msgs)
        })
        .await?;
        self.append_verified(checked).await
    }

    /// Stores messages whose signatures were checked already, as
    /// [`Replica::append`] does.
    pub async fn append_verified(
        self: &Arc<Self>,
        batch: Verified,
    ) -> Result<AppendReport, ReplicaError> {
        if batch.is_empty() {
            return Ok(AppendReport::default());
        }
        self.disk.check(batch.len() as u64 * MESSAGE_ROOM)?;
        let _guard = self.append_lock.lock().await;
        let replica = self.clone();
        tokio::task::spawn_blocking(move || {
            let feeds: HashSet<FeedId> = batch.messages().map(Message::author).collect();
            let before = replica.heads(&feeds)?;
            let notes: Vec<(FeedId, u32, Vec<BlobId>, bool)> = batch
                .messages()
                .map(|m| {
                    let (blobs, contact) = scan_content(m.content());
                    (m.author(), m.sequence(), blobs, contact)
                })
                .collect();
            let report = replica.store.append_verified(batch)?;
            if report.added > 0 {
                let after = replica.heads(&feeds)?;
                replica.after_append(&before, &after, &notes)?;
            }
            Ok(report)
        })
        .await?
    }

    /// Publishes our own messages (durably), then tells listeners.
    pub async fn publish(
        self: &Arc<Self>,
        contents: Vec<Value>,
    ) -> Result<Vec<MsgId>, ReplicaError> {
        self.disk.check(contents.len() as u64 * MESSAGE_ROOM)?;
        let _guard = self.append_lock.lock().await;
        let replica = self.clone();
        tokio::task::spawn_blocking(move || {
            let feeds = HashSet::from([replica.id]);
            let before = replica.heads(&feeds)?;
            let notes: Vec<(FeedId, u32, Vec<BlobId>, bool)> = contents
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (blobs, contact) = scan_content(c);
                    let seq = before.get(&replica.id).copied().unwrap_or(0) + i as u32 + 1;
                    (replica.id, seq, blobs, contact)
                })
                .collect();
            let ids = publish(&replica.store, &replica.keys, contents);
            let after = replica.heads(&feeds)?;
            replica.after_append(&before, &after, &notes)?;
            Ok(ids?)
        })
        .await?
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
            regraph |= *contact && set.shapes_graph(feed, self.policy.hops);
            for b in blobs {
                if self.blobs.has(b) {
                    // Mentioned again: younger for the blob quota.
                    self.blobs.touch(b);
                } else {
                    wanted.push(*b);
                }
            }
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
    /// follow graph, as [`Replica::append`] does. Blocking: call from a
    /// blocking thread. Returns how many messages were added, and per feed
    /// that stopped short, why.
    pub fn promote_staged(&self, stage: Stage) -> Result<(u64, Vec<(FeedId, String)>), StoreError> {
        let mut added = 0;
        let mut stuck = Vec::new();
        let mut staged = stage.into_reader()?;
        loop {
            let _guard = self.append_lock.blocking_lock();
            let Some(p) = self
                .store
                .promote(&mut staged, PROMOTE_RUN, &|b| !self.blobs.has(b))?
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

    /// [`Replica::shutdown`], and flushes the store's memtables so that the
    /// next start replays little journal (see [`crate::store::Store::settle`]):
    /// for a node that ran for a while, not for a quick `sync`, whose time it
    /// would lengthen.
    pub async fn shutdown_settled(&self) -> Result<(), StoreError> {
        let _guard = self.append_lock.lock().await;
        self.store.settle()
    }

    /// Recomputes the replicate set from the store and tells sessions if it changed.
    pub fn recompute_graph(&self) -> Result<(), StoreError> {
        let p = &self.policy;
        let fresh = graph::compute(&self.store, &self.id, p.hops, &p.replicate, &p.block)?;
        let mut g = self.graph.write().unwrap_or_else(|e| e.into_inner());
        if **g != fresh {
            *g = Arc::new(fresh);
            drop(g);
            self.graph_version.send_modify(|v| *v += 1);
        }
        Ok(())
    }
}

/// A replica in a fresh data dir under `dir`, for unit tests.
#[cfg(test)]
pub(crate) fn temp_replica(dir: &std::path::Path) -> Arc<Replica> {
    temp_replica_with(dir, Policy::default())
}

/// A replica in a fresh data dir under `dir` keeping `policy`, for unit tests.
#[cfg(test)]
pub(crate) fn temp_replica_with(dir: &std::path::Path, policy: Policy) -> Arc<Replica> {
    let data = crate::data_dir::DataDir::new(dir);
    let (keys, _) = data.init(None).expect("init");
    Replica::new(
        keys,
        data.open_store().expect("store"),
        data.open_blobs().expect("blobs"),
        policy,
    )
    .expect("replica")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Keypair;

    #[tokio::test]
    async fn read_chunks_reads_feeds_in_order_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let node = temp_replica(dir.path());
        let keys: Vec<Keypair> = (1..=3).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let sizes = [5, READ_CHUNK as u32 + 40, 7];
        for (k, n) in keys.iter().zip(sizes) {
            let report = node.append(crate::store::posts(k, n)).await.unwrap();
            assert_eq!(report.added, n as usize);
        }
        let [a, b, c] = [0, 1, 2].map(|i| keys[i].id());
        let seqs = |chunk: &FeedChunk| -> Vec<u32> {
            let msgs = chunk.msgs.as_ref().unwrap();
            msgs.iter()
                .map(|m| m.message().unwrap().sequence())
                .collect()
        };
        // Short feeds share a read; the bound cuts the feed it reaches and
        // the feeds after it are not read.
        let chunks = node
            .read_chunks(vec![(a, 2), (c, 8), (b, 1), (c, 1)])
            .await
            .unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!((chunks[0].feed, chunks[0].first), (a, 2));
        assert_eq!(seqs(&chunks[0]), (2..=5).collect::<Vec<_>>());
        assert!(!chunks[0].cut);
        assert!(seqs(&chunks[1]).is_empty(), "nothing past feed c's head");
        assert!(!chunks[1].cut);
        assert_eq!(chunks[2].feed, b);
        assert_eq!(
            seqs(&chunks[2]),
            (1..=READ_CHUNK as u32 - 4).collect::<Vec<_>>()
        );
        assert!(chunks[2].cut, "the bound of {READ_CHUNK} in all cut it");
        // A feed alone: at most the bound.
        let chunks = node.read_chunks(vec![(b, 1)]).await.unwrap();
        assert_eq!(seqs(&chunks[0]).len(), READ_CHUNK);
        assert!(chunks[0].cut);
        let chunks = node.read_chunks(vec![(b, 257), (a, 1)]).await.unwrap();
        assert_eq!(seqs(&chunks[0]), (257..=sizes[1]).collect::<Vec<_>>());
        assert!(!chunks[0].cut);
        assert_eq!(seqs(&chunks[1]), (1..=5).collect::<Vec<_>>());
    }
}
