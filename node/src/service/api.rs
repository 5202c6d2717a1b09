//! The muxrpc methods the local control socket answers.
//!
//! The control socket (the CLI while `run` holds the store) gets what peers
//! get ([`crate::replication::answers`]), and also
//! `publish`, `get`, `getVectorClock`, `follow`/`unfollow`, `blobs.add`,
//! `peers`, `sync`, `status`, and the sneakernet methods `stick.sync`,
//! `bundle.import`, `bundle.export` and `sticks`. Anything else is answered with a muxrpc
//! error, never a hang-up.

use std::sync::Arc;

use super::Node;
use crate::appliance::visits;
use crate::feed::json::{Object, Value};
use crate::feed::{FeedId, MsgId};
use crate::muxrpc::{Body, CallType, Handler, InboundCall};
use crate::replication::answers::{self, id_value, PEER_METHODS};
use crate::replication::sync;
use crate::store::{Store, StoreError};

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

/// The handler for the local control socket's sessions.
pub struct Api {
    node: Arc<Node>,
}

impl Api {
    /// A handler for the local control socket.
    pub fn local(node: Arc<Node>) -> Arc<Api> {
        Arc::new(Api { node })
    }
}

impl Handler for Api {
    fn handle(&self, call: InboundCall) {
        let node = self.node.clone();
        tokio::spawn(async move {
            let manifest = answers::manifest(PEER_METHODS.iter().chain(LOCAL_METHODS));
            let replica = node.replica().clone();
            let Some(call) = answers::answer(replica, None, call, manifest).await else {
                return;
            };
            let method = call.request.method();
            if !LOCAL_METHODS.iter().any(|(m, _)| *m == method) {
                answers::refuse(call).await;
                return;
            }
            match method.as_str() {
                m if call.request.kind == CallType::Source
                    && visits::WITH_PROGRESS.contains(&m) =>
                {
                    visits::stream(node.replica(), m, &call.request.args, call.stream.sink()).await;
                }
                _ => {
                    let reply = answer(&node, &method, &call.request.args).await;
                    let _ = match reply {
                        Ok(v) => call.stream.send(Body::json(&v)).await,
                        Err(e) => call.stream.error(&e).await,
                    };
                }
            }
        });
    }
}

/// The async methods.
async fn answer(node: &Arc<Node>, method: &str, args: &[Value]) -> Result<Value, String> {
    let arg = args.first().cloned().unwrap_or(Value::Null);
    match method {
        "publish" => {
            let ids = node
                .replica()
                .publish(vec![arg])
                .await
                .map_err(|e| e.to_string())?;
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
            let ids = node
                .replica()
                .publish(vec![c])
                .await
                .map_err(|e| e.to_string())?;
            let id = ids.first().ok_or("nothing published")?;
            Ok(id_value("key", id))
        }
        "get" => {
            let id: MsgId = arg
                .as_str()
                .ok_or("expects a message id")?
                .parse()
                .map_err(|_| "not a message id".to_owned())?;
            match node.replica().store().get(&id).map_err(|e| e.to_string())? {
                Some(m) => Value::parse(m.to_kvt_json().as_bytes()).map_err(|e| e.to_string()),
                None => Err(format!("message {id} is not in the store")),
            }
        }
        "getVectorClock" => vector_clock(node.replica().store()).map_err(|e| e.to_string()),
        "blobs.add" => {
            let path = arg
                .as_str()
                .ok_or("blobs.add expects a file path")?
                .to_owned();
            let blobs = node.replica().blobs().clone();
            let (id, _) = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                blobs.add(&mut f, None, u64::MAX).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            node.replica().wants().got(&id);
            let _ = node.replica().store().remove_want(&id);
            Ok(Value::string(&id.to_string()))
        }
        "peers" => Ok(node.replicator().peers().to_value()),
        "sync" => {
            let addr = arg.as_str().ok_or("sync expects an address")?;
            let addr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
            let timeout = args
                .get(1)
                .and_then(|v| match v {
                    Value::Number(n) if *n > 0.0 => Some(std::time::Duration::from_secs_f64(*n)),
                    _ => None,
                })
                .unwrap_or(sync::DEFAULT_TIMEOUT);
            let report = sync::sync(node.replicator().clone(), &addr, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Value::string(&report.to_string()))
        }
        "status" => Ok(status(node)),
        m if visits::METHODS.contains(&m) => visits::answer(node.replica(), m, args).await,
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
/// the node status ([`crate::appliance::status::Snapshot::push_fields`]).
pub fn status(node: &Node) -> Value {
    let mut o = Object::new();
    o.push("id", Value::string(&node.id().to_string()));
    let set = node.replica().replicate_set();
    o.push("replicating", Value::Number(set.feeds.len() as f64));
    let policy = node.replica().policy();
    let carrier = node.replica().carrier();
    let mut carry = Object::new();
    carry.push("mode", Value::string(policy.carry.as_str()));
    carry.push("feeds", Value::Number(set.feeds.len() as f64));
    carry.push("max", Value::Number(f64::from(policy.carry_max)));
    carry.push("followed", Value::Number(carrier.followed() as f64));
    carry.push("refused", Value::Number(carrier.refused() as f64));
    o.push("carry", Value::Object(carry));
    match super::lag::behind(node) {
        Ok(v) => o.push("behind", v),
        Err(e) => tracing::warn!("status: reading peers' and sticks' clocks: {e}"),
    }
    o.push(
        "blob_wants",
        Value::Number(node.replica().wants().snapshot().len() as f64),
    );
    o.push("peers", node.replicator().peers().to_value());
    let memory = node.replica().store().memory();
    let mut m = Object::new();
    m.push("write_buffer", Value::Number(memory.write_buffer as f64));
    m.push("cache", Value::Number(memory.cache as f64));
    o.push("store_memory", Value::Object(m));
    node.status().snapshot().push_fields(&mut o);
    Value::Object(o)
}
