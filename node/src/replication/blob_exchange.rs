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
use tokio::sync::Notify;

use super::link::{LinkCtx, LinkStats, ReplicationError};
use crate::feed::json::{Object, Value};
use crate::feed::BlobId;
use crate::muxrpc::{Body, CallError, CallType, Item, Session, Sink};
use crate::replica::{blob_budget, Replica};

/// Most blobs one link's peer may have asked us for and wait on, and most
/// of its haves of blobs not wanted (yet) that are kept.
pub const LINK_ASKS: usize = 1_000;
/// Chunk size for `blobs.get` replies.
const CHUNK: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
pub async fn serve_create_wants(node: Arc<Replica>, ctx: Option<Arc<LinkCtx>>, sink: Sink) {
    if sink
        .send(Body::json(&Value::Object(Object::new())))
        .await
        .is_err()
    {
        return;
    }
    let mut changes = node.wants().changes();
    let mut told: HashSet<BlobId> = HashSet::new();
    loop {
        for (id, distance) in node.wants().snapshot() {
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
                if let Some(size) = node.blobs().size(&id) {
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
                () = sink.ended() => return,
            }
        } else {
            tokio::select! {
                c = changes.changed() => if c.is_err() { return },
                () = sink.ended() => return,
            }
        }
    }
}

/// Opens the peer's `createWants` and fetches what we want from it, until
/// the link ends; then forgets the wants forwarded for the peer.
pub async fn exchange(ctx: Arc<LinkCtx>, session: Session) {
    exchange_wants(&ctx, session).await;
    ctx.replica.wants().release(ctx.blobs.link);
}

async fn exchange_wants(ctx: &Arc<LinkCtx>, session: Session) {
    let node = ctx.replica.clone();
    let mut stream = match session
        .call(&["blobs", "createWants"], CallType::Source, vec![])
        .await
    {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut peer_has: HashMap<BlobId, u64> = HashMap::new();
    let mut changes = node.wants().changes();
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
                        if let Some(size) = node.blobs().size(&id) {
                            ctx.blobs.tell_have(id, size);
                        } else {
                            let mut asked = lock(&ctx.blobs.peer_wants);
                            if asked.len() < LINK_ASKS {
                                asked.insert(id);
                            }
                            drop(asked);
                            if *n == -1.0 {
                                node.wants().forward(ctx.blobs.link, id);
                            }
                        }
                    } else {
                        let size = *n as u64;
                        let wanted = node.wants().is_wanted(&id);
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
                for (id, _) in node.wants().snapshot() {
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
    let node = &ctx.replica;
    if size > node.blob_max() {
        tracing::info!(peer = %ctx.peer, %id, size, "blob larger than blob_max; not fetched");
        return;
    }
    if !node.keeps_blob(size) {
        // The quota would remove it at once: no longer wanted.
        tracing::info!(peer = %ctx.peer, %id, size, "blob larger than the room blob_quota leaves; not fetched, not wanted");
        node.wants().got(&id);
        if let Err(e) = node.store().remove_want(&id) {
            tracing::warn!("forgetting want {id}: {e}");
        }
        return;
    }
    if let Err(full) = node.disk().check(size) {
        tracing::info!(peer = %ctx.peer, %id, size, "blob not fetched: {full}");
        return;
    }
    if !node.wants().begin_fetch(id) {
        return;
    }
    ctx.progress.blob_transfers.fetch_add(1, Ordering::SeqCst);
    let ctx = ctx.clone();
    let session = session.clone();
    tokio::spawn(async move {
        let node = ctx.replica.clone();
        let result = async {
            let _slot = node
                .wants()
                .fetch_slot()
                .await
                .map_err(|_| ReplicationError::Stopping)?;
            if node.blobs().has(&id) {
                return Ok(false);
            }
            let max = node.blob_max();
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
                .await?;
            let mut bytes = Vec::new();
            loop {
                match stream.recv().await {
                    Some(Item::Data(b)) => {
                        if (bytes.len() + b.bytes.len()) as u64 > size.min(max) {
                            let _ = stream.end().await;
                            return Err(ReplicationError::BlobTooLong);
                        }
                        bytes.extend_from_slice(&b.bytes);
                    }
                    Some(Item::End) => break,
                    Some(Item::Error(e)) => return Err(ReplicationError::PeerSaid(e)),
                    None => return Err(CallError::Closed.into()),
                }
            }
            let blobs = node.blobs().clone();
            tokio::task::spawn_blocking(move || blobs.add(&mut Cursor::new(bytes), Some(&id), max))
                .await??;
            Ok::<bool, ReplicationError>(true)
        }
        .await;
        node.wants().end_fetch(&id);
        match result {
            Ok(fetched) => {
                if fetched {
                    LinkStats::add(&ctx.stats.blobs_in, 1);
                    tracing::debug!(peer = %ctx.peer, %id, "blob fetched");
                    if node.blob_quota().is_some() {
                        let r = node.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || blob_budget::enforce_logged(&r))
                                .await;
                    }
                }
                if let Err(e) = node.store().remove_want(&id) {
                    tracing::warn!("forgetting want {id}: {e}");
                }
                node.wants().got(&id);
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

/// Why a blob request is refused or fails, as told to the asker.
#[derive(Debug, thiserror::Error)]
pub enum BlobRequestError {
    /// An id that is not a blob id (the asker's fault).
    #[error("invalid blob id: {0}")]
    BadId(String),
    /// An object without `key` or `hash` (the asker's fault).
    #[error("blob request needs key or hash")]
    NoKey,
    /// Neither a string nor an object (the asker's fault).
    #[error("blob request needs an id")]
    NoId,
    /// A `blobs.has` item that is not a string (the asker's fault).
    #[error("invalid id: not a string")]
    HasNotString,
    /// A `blobs.has` item that is not a blob id (the asker's fault).
    #[error("invalid id: {0}")]
    HasBadId(String),
    /// We do not hold the blob.
    #[error("blob not found: {0}")]
    NotFound(BlobId),
    /// The asker named a size other than the blob's.
    #[error("incorrect blob size: {0}")]
    WrongSize(u64),
    /// The blob is larger than the asker's `max`.
    #[error("blob is {0} bytes, more than max")]
    OverMax(u64),
    /// Our blob file could not be read.
    #[error("reading blob: {0}")]
    Read(std::io::Error),
    /// Our blob file does not hash to its id.
    #[error("stored blob is damaged")]
    Damaged,
    /// The asker went away.
    #[error(transparent)]
    Call(#[from] CallError),
}

fn parse_blob_args(arg: &Value) -> Result<BlobArgs, BlobRequestError> {
    let num = |o: &Object, k: &str| match o.get(k) {
        Some(Value::Number(n)) if *n >= 0.0 => Some(*n as u64),
        _ => None,
    };
    let parse_id = |s: &str| {
        s.parse::<BlobId>()
            .map_err(|_| BlobRequestError::BadId(s.to_owned()))
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
                .ok_or(BlobRequestError::NoKey)?;
            Ok(BlobArgs {
                id: parse_id(key)?,
                size: num(o, "size"),
                max: num(o, "max"),
                start: num(o, "start"),
                end: num(o, "end"),
            })
        }
        _ => Err(BlobRequestError::NoId),
    }
}

/// Serves `blobs.get` (whole) and `blobs.getSlice` (`slice`), in 64 KiB
/// binary items, checking the hash of whole blobs as it reads.
pub async fn serve_get(
    node: Arc<Replica>,
    ctx: Option<Arc<LinkCtx>>,
    arg: &Value,
    sink: Sink,
    slice: bool,
) {
    let result = async {
        let a = parse_blob_args(arg)?;
        let actual = node
            .blobs()
            .size(&a.id)
            .ok_or(BlobRequestError::NotFound(a.id))?;
        if a.size.is_some_and(|s| s != actual) {
            return Err(BlobRequestError::WrongSize(actual));
        }
        if a.max.is_some_and(|m| actual > m) {
            return Err(BlobRequestError::OverMax(actual));
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
        if sent.is_ok() && !slice {
            // Served: younger for the blob quota.
            node.blobs().touch(&a.id);
        }
        sent
    }
    .await;
    let _ = match result {
        Ok(()) => sink.end().await,
        Err(e) => sink.error(&e.to_string()).await,
    };
}

async fn stream_file(
    node: &Replica,
    id: &BlobId,
    start: u64,
    end: u64,
    check: bool,
    sink: &Sink,
) -> Result<(), BlobRequestError> {
    let mut file = tokio::fs::File::open(node.blobs().path(id))
        .await
        .map_err(BlobRequestError::Read)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(BlobRequestError::Read)?;
    let mut hasher = Sha256::new();
    let mut left = end - start;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        file.read_exact(&mut buf)
            .await
            .map_err(BlobRequestError::Read)?;
        left -= want as u64;
        if check {
            hasher.update(&buf);
        }
        sink.send(Body::binary(buf)).await?;
    }
    if check && BlobId(hasher.finalize().into()) != *id {
        return Err(BlobRequestError::Damaged);
    }
    Ok(())
}

/// Answers `blobs.has`: a bool for an id, an array of bools for an array.
pub fn has(node: &Replica, arg: &Value) -> Result<Value, BlobRequestError> {
    let one = |v: &Value| -> Result<Value, BlobRequestError> {
        let s = v.as_str().ok_or(BlobRequestError::HasNotString)?;
        let id = s
            .parse::<BlobId>()
            .map_err(|_| BlobRequestError::HasBadId(s.to_owned()))?;
        Ok(Value::Bool(node.blobs().has(&id)))
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
    use crate::feed::FeedId;

    struct Ignore;

    impl crate::muxrpc::Handler for Ignore {
        fn handle(&self, _call: crate::muxrpc::InboundCall) {}
    }

    /// Serves `blobs.createWants` on `node` and says when the answer ends.
    struct ServeWants {
        node: Arc<Replica>,
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

    /// A peer that answers `blobs.get` with all of `data`, whatever it
    /// announced, in 64 KiB items until the call is ended.
    struct Overlong {
        data: Arc<Vec<u8>>,
    }

    impl crate::muxrpc::Handler for Overlong {
        fn handle(&self, call: crate::muxrpc::InboundCall) {
            let data = self.data.clone();
            tokio::spawn(async move {
                let sink = call.stream.sink();
                for chunk in data.chunks(CHUNK) {
                    if sink.send(Body::binary(chunk.to_vec())).await.is_err() {
                        return;
                    }
                }
                let _ = sink.end().await;
            });
        }
    }

    #[tokio::test]
    async fn a_blob_announced_as_5_mib_that_streams_50_mib_is_cut_off_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        // blob_max is above the 50 MiB: only the announced size bounds it.
        let node = crate::replica::temp_replica_with(
            dir.path(),
            crate::replica::Policy {
                blob_max: 64 * 1024 * 1024,
                ..crate::replica::Policy::default()
            },
        );
        // A real blob of 50 MiB: its bytes hash to the id asked for.
        let blob: Vec<u8> = (0..50 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let id = BlobId::of(&blob);
        node.wants().want(&[id]);
        let peer = Overlong {
            data: Arc::new(blob),
        };
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cfg = crate::muxrpc::SessionConfig::default;
        let _server = Session::start(b, None, Arc::new(peer), cfg());
        let client = Session::start(a, None, Arc::new(Ignore), cfg());
        let ctx = LinkCtx::new(node.clone(), FeedId([3; 32]), true, true);
        let announced = 5 * 1024 * 1024;
        fetch(&ctx, &client, id, announced);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ctx.progress.blob_transfers.load(Ordering::SeqCst) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the fetch never ended"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Read up to the announced size, then cut off: nothing is stored
        // (though the bytes hash right), no temp file is left, and the blob
        // is still wanted (from an honest peer).
        assert!(!node.blobs().has(&id));
        assert_eq!(node.blobs().usage().unwrap().count, 0);
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert!(node.wants().is_wanted(&id));
    }

    #[tokio::test]
    async fn a_create_wants_answer_ends_with_its_session() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::replica::temp_replica(dir.path());
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

    #[tokio::test]
    async fn a_create_wants_answer_ends_with_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::replica::temp_replica(dir.path());
        let (ended, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let cfg = crate::muxrpc::SessionConfig::default;
        let _server = Session::start(b, None, Arc::new(ServeWants { node, ended }), cfg());
        let client = Session::start(a, None, Arc::new(Ignore), cfg());
        let mut stream = client
            .call(&["blobs", "createWants"], CallType::Source, vec![])
            .await
            .unwrap();
        assert!(matches!(stream.recv().await, Some(Item::Data(_))));
        // The peer ends the call, keeps the session, and no want changes.
        stream.end().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), ended_rx.recv())
            .await
            .expect("the createWants answer outlived its call");
        assert!(!client.is_closed());
    }
}
