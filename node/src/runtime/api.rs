//! The muxrpc methods the node answers.
//!
//! Peers get the replication surface: `whoami`, `manifest`,
//! `createHistoryStream`, `ebt.replicate`, `blobs.*` and `gossip.ping`. The
//! local control socket (the CLI while `run` holds the store) also gets
//! `publish`, `get`, `getVectorClock`, `follow`/`unfollow`, `blobs.add`,
//! `peers`, `sync`, `status`, and the sneakernet methods `stick.sync`,
//! `bundle.import`, `bundle.export` and `sticks`. Anything else is answered with a muxrpc
//! error, never a hang-up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::link::{LinkCtx, Mode};
use super::{blobs, ebt, history, Node};
use crate::feed::json::{Object, Value};
use crate::feed::{FeedId, MsgId};
use crate::muxrpc::{Body, CallType, Handler, InboundCall, Item};
use crate::net::ebt as ebt_proto;
use crate::store::{Store, StoreError};

/// Methods offered to peers, with their types (the `manifest` reply).
const PEER_METHODS: &[(&str, CallType)] = &[
    ("whoami", CallType::Async),
    ("manifest", CallType::Async),
    ("createHistoryStream", CallType::Source),
    ("ebt.replicate", CallType::Duplex),
    ("blobs.has", CallType::Async),
    ("blobs.get", CallType::Source),
    ("blobs.getSlice", CallType::Source),
    ("blobs.createWants", CallType::Source),
    ("gossip.ping", CallType::Duplex),
];

/// Methods only the local control socket gets.
const LOCAL_METHODS: &[(&str, CallType)] = &[
    ("publish", CallType::Async),
    ("get", CallType::Async),
    ("getVectorClock", CallType::Async),
    ("follow", CallType::Async),
    ("unfollow", CallType::Async),
    ("blobs.add", CallType::Async),
    ("peers", CallType::Async),
    ("sync", CallType::Async),
    ("status", CallType::Async),
    ("stick.sync", CallType::Async),
    ("bundle.import", CallType::Async),
    ("bundle.export", CallType::Async),
    ("sticks", CallType::Async),
];

/// The handler for one session.
pub struct Api {
    node: Arc<Node>,
    /// The link, for peer sessions.
    ctx: Option<Arc<LinkCtx>>,
    /// Whether this is the local control socket.
    local: bool,
}

impl Api {
    /// A handler for a peer link.
    pub fn peer(ctx: Arc<LinkCtx>) -> Arc<Api> {
        Arc::new(Api {
            node: ctx.node.clone(),
            ctx: Some(ctx),
            local: false,
        })
    }

    /// A handler for the local control socket.
    pub fn local(node: Arc<Node>) -> Arc<Api> {
        Arc::new(Api {
            node,
            ctx: None,
            local: true,
        })
    }

    fn manifest(&self) -> Value {
        let all = PEER_METHODS
            .iter()
            .chain(if self.local { LOCAL_METHODS } else { &[] });
        crate::muxrpc::manifest::manifest(all.map(|(name, kind)| (*name, *kind)))
    }
}

fn id_value(key: &str, id: impl std::fmt::Display) -> Value {
    let mut o = Object::new();
    o.push(key, Value::string(&id.to_string()));
    Value::Object(o)
}

impl Handler for Api {
    fn handle(&self, call: InboundCall) {
        let node = self.node.clone();
        let ctx = self.ctx.clone();
        let local = self.local;
        let manifest = self.manifest();
        tokio::spawn(async move {
            let method = call.request.method();
            let offered = PEER_METHODS.iter().any(|(m, _)| *m == method)
                || (local && LOCAL_METHODS.iter().any(|(m, _)| *m == method));
            if !offered {
                let _ = call.stream.error(&call.request.not_allowed()).await;
                return;
            }
            let arg = call.request.arg0().clone();
            match method.as_str() {
                "createHistoryStream" => {
                    history::serve(node, ctx, &arg, call.stream.sink()).await;
                }
                "ebt.replicate" => serve_ebt(ctx, call).await,
                "blobs.get" => blobs::serve_get(node, ctx, &arg, call.stream.sink(), false).await,
                "blobs.getSlice" => {
                    blobs::serve_get(node, ctx, &arg, call.stream.sink(), true).await;
                }
                "blobs.createWants" => {
                    blobs::serve_create_wants(node, ctx, call.stream.sink()).await;
                }
                "gossip.ping" => ping(call).await,
                m if local
                    && call.request.kind == CallType::Source
                    && super::sneakernet::WITH_PROGRESS.contains(&m) =>
                {
                    super::sneakernet::stream(&node, m, &call.request.args, call.stream.sink())
                        .await;
                }
                _ => {
                    let reply = answer(&node, &method, &call.request.args, manifest).await;
                    let _ = match reply {
                        Ok(v) => call.stream.send(Body::json(&v)).await,
                        Err(e) => call.stream.error(&e).await,
                    };
                }
            }
        });
    }
}

/// `ebt.replicate` from the peer: we are the responder and speak first.
async fn serve_ebt(ctx: Option<Arc<LinkCtx>>, call: InboundCall) {
    let Some(ctx) = ctx else {
        let _ = call.stream.error("ebt.replicate needs a peer link").await;
        return;
    };
    if let Err(e) = ebt_proto::check_request_args(&call.request.args) {
        let _ = call.stream.error(&e).await;
        return;
    }
    ctx.set_mode(Mode::Ebt);
    ctx.ebt_requested.store(true, Ordering::SeqCst);
    ctx.ebt_wake.notify_waiters();
    if let Err(e) = ebt::run(ctx.clone(), call.stream, None).await {
        tracing::info!(peer = %ctx.peer, "ebt ended: {e}");
    }
}

/// `gossip.ping`: answer each timestamp with ours.
async fn ping(mut call: InboundCall) {
    while let Some(Item::Data(_)) = call.stream.recv().await {
        let now = Value::Number(crate::store::now_ms());
        if call.stream.send(Body::json(&now)).await.is_err() {
            return;
        }
    }
    let _ = call.stream.end().await;
}

/// The async methods.
async fn answer(
    node: &Arc<Node>,
    method: &str,
    args: &[Value],
    manifest: Value,
) -> Result<Value, String> {
    let arg = args.first().cloned().unwrap_or(Value::Null);
    match method {
        "whoami" => Ok(id_value("id", node.id())),
        "manifest" => Ok(manifest),
        "blobs.has" => blobs::has(node, &arg),
        "publish" => {
            let ids = node.publish(vec![arg]).await.map_err(|e| e.to_string())?;
            let id = ids.first().ok_or("nothing published")?;
            Ok(id_value("key", id))
        }
        "follow" | "unfollow" => {
            let feed: FeedId = arg
                .as_str()
                .ok_or("expects a feed id")?
                .parse()
                .map_err(|_| "not a feed id".to_owned())?;
            let c = contact(&feed, method == "follow");
            let ids = node.publish(vec![c]).await.map_err(|e| e.to_string())?;
            let id = ids.first().ok_or("nothing published")?;
            Ok(id_value("key", id))
        }
        "get" => {
            let id: MsgId = arg
                .as_str()
                .ok_or("expects a message id")?
                .parse()
                .map_err(|_| "not a message id".to_owned())?;
            match node.store.get(&id).map_err(|e| e.to_string())? {
                Some(m) => Value::parse(m.to_kvt_json().as_bytes()).map_err(|e| e.to_string()),
                None => Err(format!("message {id} is not in the store")),
            }
        }
        "getVectorClock" => vector_clock(&node.store).map_err(|e| e.to_string()),
        "blobs.add" => {
            let path = arg
                .as_str()
                .ok_or("blobs.add expects a file path")?
                .to_owned();
            let blobs = node.blobs.clone();
            let (id, _) = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                blobs.add(&mut f, None, u64::MAX).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            node.wants.got(&id);
            let _ = node.store.remove_want(&id);
            Ok(Value::string(&id.to_string()))
        }
        "peers" => Ok(node.peers.to_value()),
        "sync" => {
            let addr = arg.as_str().ok_or("sync expects an address")?;
            let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
            let timeout = args
                .get(1)
                .and_then(|v| match v {
                    Value::Number(n) if *n > 0.0 => Some(std::time::Duration::from_secs_f64(*n)),
                    _ => None,
                })
                .unwrap_or(super::sync::DEFAULT_TIMEOUT);
            let report = super::sync::sync(node.clone(), &addr, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::string(&report.to_string()))
        }
        "status" => Ok(status(node)),
        m if super::sneakernet::METHODS.contains(&m) => {
            super::sneakernet::answer(node, m, args).await
        }
        _ => Err(format!(
            "method:{} is not in list of allowed methods",
            method.replace('.', ",")
        )),
    }
}

/// The vector clock as one JSON object `{"@feed…": seq}` (what `ssb-node
/// clock` prints, with or without a running node).
pub fn vector_clock(store: &Store) -> Result<Value, StoreError> {
    let mut o = Object::new();
    for (feed, seq) in store.clock()? {
        o.push(&feed.to_string(), Value::Number(f64::from(seq)));
    }
    Ok(Value::Object(o))
}

/// A `contact` content following or unfollowing `feed`.
pub fn contact(feed: &FeedId, following: bool) -> Value {
    let mut o = Object::new();
    o.push("type", Value::string("contact"));
    o.push("contact", Value::string(&feed.to_string()));
    o.push("following", Value::Bool(following));
    Value::Object(o)
}

/// What `ssb-node status` shows: identity, replication counts, peers, and
/// the node status ([`super::status::Snapshot::push_fields`]).
pub fn status(node: &Node) -> Value {
    let mut o = Object::new();
    o.push("id", Value::string(&node.id().to_string()));
    let set = node.replicate_set();
    o.push("replicating", Value::Number(set.feeds.len() as f64));
    o.push(
        "blob_wants",
        Value::Number(node.wants.snapshot().len() as f64),
    );
    o.push("peers", node.peers.to_value());
    let memory = node.store.memory();
    let mut m = Object::new();
    m.push("write_buffer", Value::Number(memory.write_buffer as f64));
    m.push("cache", Value::Number(memory.cache as f64));
    o.push("store_memory", Value::Object(m));
    node.status.snapshot().push_fields(&mut o);
    Value::Object(o)
}
