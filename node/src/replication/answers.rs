//! The muxrpc methods a peer may call: the replication surface (`whoami`,
//! `manifest`, `createHistoryStream`, `ebt.replicate`, `blobs.*` and
//! `gossip.ping`). Anything else is answered with a muxrpc error, never a
//! hang-up. The control socket answers these too, and more (see the
//! service's `api`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::link::{LinkCtx, Mode};
use super::{blob_exchange, ebt_link, history};
use crate::feed::json::{Object, Value};
use crate::muxrpc::{Body, CallType, Handler, InboundCall, Item};
use crate::net::ebt as ebt_proto;
use crate::replica::Replica;

/// Methods offered to peers, with their types (the `manifest` reply).
pub const PEER_METHODS: &[(&str, CallType)] = &[
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

/// The `manifest` reply listing `methods`, nested as muxrpc clients build
/// their API from it (see [`crate::muxrpc::manifest`]).
pub fn manifest<'a>(methods: impl IntoIterator<Item = &'a (&'a str, CallType)>) -> Value {
    crate::muxrpc::manifest::manifest(methods.into_iter().map(|(name, kind)| (*name, *kind)))
}

/// The error a caller gets for a method not offered to it, in JS muxrpc's
/// words ([`crate::muxrpc::Request::not_allowed`]).
pub async fn refuse(call: InboundCall) {
    let _ = call.stream.error(&call.request.not_allowed()).await;
}

/// The handler of one peer link's session.
pub struct PeerAnswers {
    ctx: Arc<LinkCtx>,
}

impl PeerAnswers {
    /// Answers the peer of `ctx`.
    pub fn new(ctx: Arc<LinkCtx>) -> Arc<PeerAnswers> {
        Arc::new(PeerAnswers { ctx })
    }
}

impl Handler for PeerAnswers {
    fn handle(&self, call: InboundCall) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let replica = ctx.replica.clone();
            if let Some(call) = answer(replica, Some(ctx), call, manifest(PEER_METHODS)).await {
                refuse(call).await;
            }
        });
    }
}

/// Answers `call` if it is one of [`PEER_METHODS`] (with `manifest` as the
/// `manifest` reply); hands it back otherwise. `ctx` is the link, for peer
/// sessions.
pub async fn answer(
    replica: Arc<Replica>,
    ctx: Option<Arc<LinkCtx>>,
    call: InboundCall,
    manifest: Value,
) -> Option<InboundCall> {
    let method = call.request.method();
    let arg = call.request.arg0().clone();
    let reply = match method.as_str() {
        "createHistoryStream" => {
            history::serve(replica, ctx, &arg, call.stream.sink()).await;
            return None;
        }
        "ebt.replicate" => {
            serve_ebt(ctx, call).await;
            return None;
        }
        "blobs.get" | "blobs.getSlice" => {
            let slice = method == "blobs.getSlice";
            blob_exchange::serve_get(replica, ctx, &arg, call.stream.sink(), slice).await;
            return None;
        }
        "blobs.createWants" => {
            blob_exchange::serve_create_wants(replica, ctx, call.stream.sink()).await;
            return None;
        }
        "gossip.ping" => {
            ping(call).await;
            return None;
        }
        "whoami" => Ok(id_value("id", replica.id())),
        "manifest" => Ok(manifest),
        "blobs.has" => blob_exchange::has(&replica, &arg),
        _ => return Some(call),
    };
    let _ = match reply {
        Ok(v) => call.stream.send(Body::json(&v)).await,
        Err(e) => call.stream.error(&e.to_string()).await,
    };
    None
}

/// `{key: id}`.
pub fn id_value(key: &str, id: impl std::fmt::Display) -> Value {
    let mut o = Object::new();
    o.push(key, Value::string(&id.to_string()));
    Value::Object(o)
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
    if let Err(e) = ebt_link::run(ctx.clone(), call.stream, None).await {
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
