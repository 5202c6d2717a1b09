//! Blob replication: wants (ours, kept in the store, and a peer's forwarded
//! one hop), the `blobs.createWants` exchange, fetching with `blobs.get`
//! (hash-checked, size-capped), and serving `has`, `get`, `getSlice`.
//!
//! `createWants` (SPEC-CHECKLIST §7): each side opens it on the other; the
//! responder sends `{}` and then `{id: n}` items: `n < 0` is a want at
//! distance `|n|`, `n ≥ 0` a have of `n` bytes. A peer's direct want (−1)
//! that we cannot answer becomes our want at distance 2, which we forward.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{watch, Notify, Semaphore};

use super::link::{LinkCtx, LinkStats};
use super::Node;
use crate::feed::json::{Object, Value};
use crate::feed::BlobId;
use crate::muxrpc::{Body, CallType, Item, Session, Sink};

/// Most of our own wants kept at once (the rest stay in the store and are
/// loaded again on restart).
pub const MAX_WANTS: usize = 10_000;
/// Most wants forwarded for one link's peer.
pub const LINK_FORWARDS: usize = 256;
/// Most wants forwarded for all peers together.
pub const MAX_FORWARDS: usize = 1_000;
/// Most blobs one link's peer may have asked us for and wait on, and most
/// of its haves of blobs not wanted (yet) that are kept.
pub const LINK_ASKS: usize = 1_000;
/// Chunk size for `blobs.get` replies.
const CHUNK: usize = 64 * 1024;
/// Blob downloads at once (each buffers up to `blob_max` bytes).
const FETCHES: usize = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The wanted blobs: our own (distance 1, from the messages we hold) apart
/// from those forwarded for peers (distance 2), which are bounded per link
/// and in all, never take the place of our own, and end with their link.
#[derive(Debug, Default)]
struct WantTable {
    own: HashSet<BlobId>,
    /// Forwarded want → the link it is kept for.
    forwarded: HashMap<BlobId, u64>,
    /// Forwarded wants per link.
    per_link: HashMap<u64, usize>,
}

impl WantTable {
    fn want(&mut self, id: BlobId) -> bool {
        if self.own.contains(&id) || self.own.len() >= MAX_WANTS {
            return false;
        }
        self.unforward(&id);
        self.own.insert(id)
    }

    fn forward(&mut self, link: u64, id: BlobId) -> bool {
        if self.own.contains(&id) || self.forwarded.contains_key(&id) {
            return false;
        }
        let n = self.per_link.entry(link).or_insert(0);
        if *n >= LINK_FORWARDS || self.forwarded.len() >= MAX_FORWARDS {
            return false;
        }
        *n += 1;
        self.forwarded.insert(id, link);
        true
    }

    fn unforward(&mut self, id: &BlobId) -> bool {
        let Some(link) = self.forwarded.remove(id) else {
            return false;
        };
        if let Some(n) = self.per_link.get_mut(&link) {
            *n -= 1;
            if *n == 0 {
                self.per_link.remove(&link);
            }
        }
        true
    }

    fn release(&mut self, link: u64) -> bool {
        if self.per_link.remove(&link).is_none() {
            return false;
        }
        self.forwarded.retain(|_, l| *l != link);
        true
    }
}

/// The node's wanted blobs, by distance (1 = ours, 2 = a peer's).
#[derive(Debug)]
pub struct Wants {
    table: Mutex<WantTable>,
    fetching: Mutex<HashSet<BlobId>>,
    changed: watch::Sender<u64>,
    fetch_slots: Semaphore,
}

impl Wants {
    /// Starts with our own wants kept in the store.
    pub fn new(initial: Vec<BlobId>) -> Wants {
        let mut table = WantTable::default();
        for id in initial {
            table.want(id);
        }
        Wants {
            table: Mutex::new(table),
            fetching: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
            fetch_slots: Semaphore::new(FETCHES),
        }
    }

    fn changed_if(&self, changed: bool) {
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// We want `ids` ourselves (up to [`MAX_WANTS`]; a forwarded want of the
    /// same blob becomes ours).
    pub fn want(&self, ids: &[BlobId]) {
        let mut t = lock(&self.table);
        let mut changed = false;
        for id in ids {
            changed |= t.want(*id);
        }
        drop(t);
        self.changed_if(changed);
    }

    /// Forwards the want of `link`'s peer for `id`, within [`LINK_FORWARDS`]
    /// per link and [`MAX_FORWARDS`] in all; false when not taken.
    pub fn forward(&self, link: u64, id: BlobId) -> bool {
        let taken = lock(&self.table).forward(link, id);
        self.changed_if(taken);
        taken
    }

    /// `link` ended: forget what was forwarded for it.
    pub fn release(&self, link: u64) {
        let changed = lock(&self.table).release(link);
        self.changed_if(changed);
    }

    /// Whether `id` is wanted.
    pub fn is_wanted(&self, id: &BlobId) -> bool {
        let t = lock(&self.table);
        t.own.contains(id) || t.forwarded.contains_key(id)
    }

    /// Whether nothing is wanted.
    pub fn is_empty(&self) -> bool {
        let t = lock(&self.table);
        t.own.is_empty() && t.forwarded.is_empty()
    }

    /// All wants with their distance, our own first.
    pub fn snapshot(&self) -> Vec<(BlobId, u8)> {
        let t = lock(&self.table);
        t.own
            .iter()
            .map(|id| (*id, 1))
            .chain(t.forwarded.keys().map(|id| (*id, 2)))
            .collect()
    }

    /// `id` arrived (or will never be fetched): forget it.
    pub fn got(&self, id: &BlobId) {
        let mut t = lock(&self.table);
        let changed = t.own.remove(id) | t.unforward(id);
        drop(t);
        self.changed_if(changed);
    }

    /// Changes whenever the wants do.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// What one link's blob exchange shares with the `createWants` we serve.
#[derive(Debug)]
pub struct LinkBlobs {
    /// This link's number, under which wants are forwarded for its peer.
    link: u64,
    /// Haves to tell the peer.
    outbox: Mutex<Vec<(BlobId, u64)>>,
    /// Blobs the peer wants.
    peer_wants: Mutex<HashSet<BlobId>>,
    /// Woken when the outbox fills.
    wake: Notify,
}

impl Default for LinkBlobs {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LinkBlobs {
            link: NEXT.fetch_add(1, Ordering::Relaxed),
            outbox: Mutex::default(),
            peer_wants: Mutex::default(),
            wake: Notify::new(),
        }
    }
}

impl LinkBlobs {
    /// Whether the peer has asked for any blob on this link.
    pub fn peer_asked(&self) -> bool {
        !lock(&self.peer_wants).is_empty() || !lock(&self.outbox).is_empty()
    }

    fn tell_have(&self, id: BlobId, size: u64) {
        lock(&self.outbox).push((id, size));
        self.wake.notify_one();
    }
}

fn one_entry(id: &BlobId, n: i64) -> Value {
    let mut o = Object::new();
    o.push(&id.to_string(), Value::Number(n as f64));
    Value::Object(o)
}

/// Serves `blobs.createWants`: `{}`, then our wants, then haves the peer asked for.
pub async fn serve_create_wants(node: Arc<Node>, ctx: Option<Arc<LinkCtx>>, sink: Sink) {
    if sink
        .send(Body::json(&Value::Object(Object::new())))
        .await
        .is_err()
    {
        return;
    }
    let mut changes = node.wants.changes();
    let mut told: HashSet<BlobId> = HashSet::new();
    loop {
        for (id, distance) in node.wants.snapshot() {
            // Forward a want only one hop beyond the peer that asked.
            if distance <= 2
                && told.insert(id)
                && sink
                    .send(Body::json(&one_entry(&id, -i64::from(distance))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if let Some(ctx) = &ctx {
            // Blobs the peer wanted that we have now.
            let pending: Vec<BlobId> = lock(&ctx.blobs.peer_wants).iter().copied().collect();
            for id in pending {
                if let Some(size) = node.blobs.size(&id) {
                    lock(&ctx.blobs.peer_wants).remove(&id);
                    ctx.blobs.tell_have(id, size);
                }
            }
            let haves: Vec<(BlobId, u64)> = std::mem::take(&mut *lock(&ctx.blobs.outbox));
            for (id, size) in haves {
                let n = i64::try_from(size).unwrap_or(i64::MAX);
                if sink.send(Body::json(&one_entry(&id, n))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                _ = ctx.blobs.wake.notified() => {}
                () = sink.session_closed() => return,
            }
        } else {
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                () = sink.session_closed() => return,
            }
        }
    }
}

/// Opens the peer's `createWants` and fetches what we want from it, until
/// the link ends; then forgets the wants forwarded for the peer.
pub async fn exchange(ctx: Arc<LinkCtx>, session: Session) {
    exchange_wants(&ctx, session).await;
    ctx.node.wants.release(ctx.blobs.link);
}

async fn exchange_wants(ctx: &Arc<LinkCtx>, session: Session) {
    let node = ctx.node.clone();
    let mut stream = match session
        .call(&["blobs", "createWants"], CallType::Source, vec![])
        .await
    {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut peer_has: HashMap<BlobId, u64> = HashMap::new();
    let mut changes = node.wants.changes();
    loop {
        tokio::select! {
            item = stream.recv() => {
                let body = match item {
                    Some(Item::Data(b)) => b,
                    Some(Item::Error(e)) => {
                        tracing::debug!(peer = %ctx.peer, "blobs.createWants: {e}");
                        return;
                    }
                    Some(Item::End) | None => return,
                };
                let Ok(v) = body.to_value() else { continue };
                let Some(o) = v.as_object() else { continue };
                for (k, n) in o.entries() {
                    let (Some(id), Value::Number(n)) = (k.as_str().and_then(|s| s.parse::<BlobId>().ok()), n) else {
                        continue;
                    };
                    if *n < 0.0 {
                        if let Some(size) = node.blobs.size(&id) {
                            ctx.blobs.tell_have(id, size);
                        } else {
                            let mut asked = lock(&ctx.blobs.peer_wants);
                            if asked.len() < LINK_ASKS {
                                asked.insert(id);
                            }
                            drop(asked);
                            if *n == -1.0 {
                                node.wants.forward(ctx.blobs.link, id);
                            }
                        }
                    } else {
                        let size = *n as u64;
                        let wanted = node.wants.is_wanted(&id);
                        // Haves of blobs nobody wants yet are kept up to a cap.
                        if wanted || peer_has.len() < LINK_ASKS {
                            peer_has.insert(id, size);
                        }
                        if wanted {
                            fetch(ctx, &session, id, size);
                        }
                    }
                }
                ctx.progress.touch();
            }
            c = changes.changed() => {
                if c.is_err() {
                    return;
                }
                for (id, _) in node.wants.snapshot() {
                    if let Some(size) = peer_has.get(&id) {
                        fetch(ctx, &session, id, *size);
                    }
                }
                ctx.blobs.wake.notify_one();
            }
        }
    }
}

/// Starts fetching `id` from the peer unless it is too big or already on its way.
fn fetch(ctx: &Arc<LinkCtx>, session: &Session, id: BlobId, size: u64) {
    let node = &ctx.node;
    if size > node.settings.blob_max {
        tracing::info!(peer = %ctx.peer, %id, size, "blob larger than blob_max; not fetched");
        return;
    }
    if !lock(&node.wants.fetching).insert(id) {
        return;
    }
    ctx.progress.blob_transfers.fetch_add(1, Ordering::SeqCst);
    let ctx = ctx.clone();
    let session = session.clone();
    tokio::spawn(async move {
        let node = ctx.node.clone();
        let result = async {
            let _slot = node
                .wants
                .fetch_slots
                .acquire()
                .await
                .map_err(|e| e.to_string())?;
            if node.blobs.has(&id) {
                return Ok(false);
            }
            let max = node.settings.blob_max;
            let mut args = Object::new();
            args.push("key", Value::string(&id.to_string()));
            args.push("size", Value::Number(size as f64));
            args.push("max", Value::Number(max as f64));
            let mut stream = session
                .call(
                    &["blobs", "get"],
                    CallType::Source,
                    vec![Value::Object(args)],
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            loop {
                match stream.recv().await {
                    Some(Item::Data(b)) => {
                        if (bytes.len() + b.bytes.len()) as u64 > size.min(max) {
                            let _ = stream.end().await;
                            return Err("peer sent more bytes than announced".to_owned());
                        }
                        bytes.extend_from_slice(&b.bytes);
                    }
                    Some(Item::End) => break,
                    Some(Item::Error(e)) => return Err(format!("peer error: {e}")),
                    None => return Err("connection closed".into()),
                }
            }
            let blobs = node.blobs.clone();
            tokio::task::spawn_blocking(move || blobs.add(&mut Cursor::new(bytes), Some(&id), max))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(true)
        }
        .await;
        lock(&node.wants.fetching).remove(&id);
        match result {
            Ok(fetched) => {
                if fetched {
                    LinkStats::add(&ctx.stats.blobs_in, 1);
                    tracing::debug!(peer = %ctx.peer, %id, "blob fetched");
                }
                if let Err(e) = node.store.remove_want(&id) {
                    tracing::warn!("forgetting want {id}: {e}");
                }
                node.wants.got(&id);
            }
            Err(e) => tracing::info!(peer = %ctx.peer, %id, "blob fetch failed: {e}"),
        }
        ctx.progress.blob_transfers.fetch_sub(1, Ordering::SeqCst);
        ctx.progress.touch();
    });
}

/// A blob request's target: `"&id"` or `{key|hash, size?, max?}` (plus
/// `start`/`end` for slices).
struct BlobArgs {
    id: BlobId,
    size: Option<u64>,
    max: Option<u64>,
    start: Option<u64>,
    end: Option<u64>,
}

fn parse_blob_args(arg: &Value) -> Result<BlobArgs, String> {
    let num = |o: &Object, k: &str| match o.get(k) {
        Some(Value::Number(n)) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    };
    let parse_id = |s: &str| {
        s.parse::<BlobId>()
            .map_err(|_| format!("invalid blob id: {s}"))
    };
    match arg {
        Value::String(s) => Ok(BlobArgs {
            id: parse_id(s.as_str().unwrap_or_default())?,
            size: None,
            max: None,
            start: None,
            end: None,
        }),
        Value::Object(o) => {
            let key = o
                .get("key")
                .or_else(|| o.get("hash"))
                .and_then(Value::as_str)
                .ok_or("blob request needs key or hash")?;
            Ok(BlobArgs {
                id: parse_id(key)?,
                size: num(o, "size"),
                max: num(o, "max"),
                start: num(o, "start"),
                end: num(o, "end"),
            })
        }
        _ => Err("blob request needs an id".into()),
    }
}

/// Serves `blobs.get` (whole) and `blobs.getSlice` (`slice`), in 64 KiB
/// binary items, checking the hash of whole blobs as it reads.
pub async fn serve_get(
    node: Arc<Node>,
    ctx: Option<Arc<LinkCtx>>,
    arg: &Value,
    sink: Sink,
    slice: bool,
) {
    let result = async {
        let a = parse_blob_args(arg)?;
        let actual = node
            .blobs
            .size(&a.id)
            .ok_or_else(|| format!("blob not found: {}", a.id))?;
        if a.size.is_some_and(|s| s != actual) {
            return Err(format!("incorrect blob size: {actual}"));
        }
        if a.max.is_some_and(|m| actual > m) {
            return Err(format!("blob is {actual} bytes, more than max"));
        }
        let (start, end) = if slice {
            let start = a.start.unwrap_or(0);
            let end = a.end.unwrap_or(actual).min(actual);
            (start.min(end), end)
        } else {
            (0, actual)
        };
        if let Some(c) = &ctx {
            c.progress.blob_transfers.fetch_add(1, Ordering::SeqCst);
        }
        let sent = stream_file(&node, &a.id, start, end, !slice, &sink).await;
        if let Some(c) = &ctx {
            c.progress.blob_transfers.fetch_sub(1, Ordering::SeqCst);
            c.progress.touch();
            if sent.is_ok() && !slice {
                LinkStats::add(&c.stats.blobs_out, 1);
            }
        }
        sent
    }
    .await;
    let _ = match result {
        Ok(()) => sink.end().await,
        Err(e) => sink.error(&e).await,
    };
}

async fn stream_file(
    node: &Node,
    id: &BlobId,
    start: u64,
    end: u64,
    check: bool,
    sink: &Sink,
) -> Result<(), String> {
    let mut file = tokio::fs::File::open(node.blobs.path(id))
        .await
        .map_err(|e| format!("reading blob: {e}"))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| format!("reading blob: {e}"))?;
    let mut hasher = Sha256::new();
    let mut left = end - start;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf)
            .await
            .map_err(|e| format!("reading blob: {e}"))?;
        left -= want as u64;
        if check {
            hasher.update(&buf);
        }
        sink.send(Body::binary(buf))
            .await
            .map_err(|e| e.to_string())?;
    }
    if check && BlobId(hasher.finalize().into()) != *id {
        return Err("stored blob is damaged".into());
    }
    Ok(())
}

/// Answers `blobs.has`: a bool for an id, an array of bools for an array.
pub fn has(node: &Node, arg: &Value) -> Result<Value, String> {
    let one = |v: &Value| -> Result<Value, String> {
        let s = v.as_str().ok_or("invalid id: not a string")?;
        let id = s
            .parse::<BlobId>()
            .map_err(|_| format!("invalid id: {s}"))?;
        Ok(Value::Bool(node.blobs.has(&id)))
    };
    match arg {
        Value::Array(items) => Ok(Value::Array(
            items.iter().map(one).collect::<Result<_, _>>()?,
        )),
        v => one(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u32) -> BlobId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        BlobId(b)
    }

    struct Ignore;

    impl crate::muxrpc::Handler for Ignore {
        fn handle(&self, _call: crate::muxrpc::InboundCall) {}
    }

    /// Serves `blobs.createWants` on `node` and says when the answer ends.
    struct ServeWants {
        node: Arc<Node>,
        ended: tokio::sync::mpsc::UnboundedSender<()>,
    }

    impl crate::muxrpc::Handler for ServeWants {
        fn handle(&self, call: crate::muxrpc::InboundCall) {
            let (node, ended) = (self.node.clone(), self.ended.clone());
            tokio::spawn(async move {
                serve_create_wants(node, None, call.stream.sink()).await;
                let _ = ended.send(());
            });
        }
    }

    #[tokio::test]
    async fn a_create_wants_answer_ends_with_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let data = crate::data_dir::DataDir::new(dir.path());
        let (keys, _) = data.init(None).unwrap();
        let node = Node::new(
            keys,
            data.open_store().unwrap(),
            data.open_blobs().unwrap(),
            super::super::config::Settings::default(),
        )
        .unwrap();
        let (ended, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cfg = crate::muxrpc::SessionConfig::default;
        let server = Session::start(b, None, Arc::new(ServeWants { node, ended }), cfg());
        let client = Session::start(a, None, Arc::new(Ignore), cfg());
        let mut stream = client
            .call(&["blobs", "createWants"], CallType::Source, vec![])
            .await
            .unwrap();
        assert!(matches!(stream.recv().await, Some(Item::Data(_))));
        // The peer leaves while no want changes.
        client.close().await;
        server.closed().await;
        tokio::time::timeout(std::time::Duration::from_secs(10), ended_rx.recv())
            .await
            .expect("the createWants answer outlived its session");
    }

    #[test]
    fn forwarded_wants_never_take_the_place_of_our_own() {
        let wants = Wants::new(vec![blob(0)]);
        // One peer asks for 20,000 blobs, then another for 2,000.
        let taken = (1..=20_000).filter(|n| wants.forward(7, blob(*n))).count();
        assert_eq!(taken, LINK_FORWARDS);
        let others = (0..8u64)
            .map(|link| {
                (0..2_000)
                    .filter(|n| {
                        wants.forward(100 + link, blob(1_000_000 + link as u32 * 10_000 + n))
                    })
                    .count()
            })
            .sum::<usize>();
        assert_eq!(LINK_FORWARDS + others, MAX_FORWARDS);
        // Our own wants still fit, all of them, and come first.
        let ours: Vec<BlobId> = (1..MAX_WANTS as u32).map(|n| blob(5_000_000 + n)).collect();
        wants.want(&ours);
        assert!(wants.is_wanted(&blob(0)));
        assert!(ours.iter().all(|id| wants.is_wanted(id)));
        let snap = wants.snapshot();
        assert_eq!(snap.len(), MAX_WANTS + MAX_FORWARDS);
        assert!(snap[..MAX_WANTS].iter().all(|(_, d)| *d == 1));
        // A forwarded want we come to want ourselves is ours (and frees its slot).
        wants.got(&blob(0));
        wants.want(&[blob(1)]);
        assert!(wants.snapshot().contains(&(blob(1), 1)));
        assert!(wants.forward(7, blob(30_000)));
        // The peer's link ends: what was forwarded for it goes, ours stays.
        wants.release(7);
        assert!(!wants.is_wanted(&blob(2)));
        assert!(!wants.is_wanted(&blob(30_000)));
        assert!(wants.is_wanted(&blob(1)));
        assert_eq!(
            wants.snapshot().len(),
            MAX_WANTS + MAX_FORWARDS - LINK_FORWARDS
        );
    }
}
