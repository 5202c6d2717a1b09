//! The muxrpc methods the node answers.
//!
//! Peers get the replication surface: `whoami`, `manifest`,
//! `createHistoryStream`, `ebt.replicate`, `blobs.*` and `gossip.ping`. The
//! local control socket (the CLI while `run` holds the store) also gets the
//! control commands ([`command::METHODS`]), which [`control::serve`] runs.
//! Anything else is answered with a muxrpc error, never a hang-up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::link::{LinkCtx, Mode};
use super::{blobs, command, control, ebt, history, Node};
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
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
        let mut o = Object::new();
        for (name, kind) in PEER_METHODS {
            o.push(name, Value::string(kind.as_str()));
        }
        if self.local {
            for name in command::METHODS {
                o.push(name, Value::string(CallType::Async.as_str()));
            }
        }
        Value::Object(o)
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
                || (local && command::METHODS.contains(&method.as_str()));
            if !offered {
                let _ = call
                    .stream
                    .error(&format!(
                        "method:{method} is not in list of allowed methods"
                    ))
                    .await;
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
                m if local && command::METHODS.contains(&m) => {
                    control::serve(&node, m, call).await;
                }
                _ => {
                    let reply = answer(&node, &method, &call.request.args, manifest).await;
                    let _ = match reply {
                        Ok(v) => call.stream.send(Body::json(&v)).await,
                        Err(e) => call.stream.error(&e.to_string()).await,
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
        let _ = call.stream.error(&e.to_string()).await;
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

/// The async methods peers get.
async fn answer(
    node: &Arc<Node>,
    method: &str,
    args: &[Value],
    manifest: Value,
) -> Result<Value, PeerRequestError> {
    let arg = args.first().cloned().unwrap_or(Value::Null);
    match method {
        "whoami" => Ok(id_value("id", node.id())),
        "manifest" => Ok(manifest),
        "blobs.has" => Ok(blobs::has(node, &arg)?),
        _ => Err(PeerRequestError::UnknownMethod(method.to_owned())),
    }
}

/// Why a peer's async request is refused.
#[derive(Debug, thiserror::Error)]
enum PeerRequestError {
    /// A method we do not offer (the peer's fault).
    #[error("method:{0} is not in list of allowed methods")]
    UnknownMethod(String),
    /// A bad `blobs.has`.
    #[error(transparent)]
    Blob(#[from] blobs::BlobRequestError),
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
