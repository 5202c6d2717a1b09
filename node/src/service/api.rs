//! The muxrpc methods the local control socket answers.
//!
//! The control socket (the CLI while `run` holds the store) gets what peers
//! get ([`crate::replication::answers`]), and also the control commands
//! ([`command::METHODS`]), which [`control::serve`] runs. Anything else is
//! answered with a muxrpc error, never a hang-up.

use std::sync::Arc;

use super::{command, control, Node};
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::muxrpc::{CallType, Handler, InboundCall};
use crate::replication::answers::{self, PEER_METHODS};
use crate::store::{Store, StoreError};

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
            let commands: Vec<(&str, CallType)> = command::METHODS
                .iter()
                .map(|m| (*m, CallType::Async))
                .collect();
            let manifest = answers::manifest(PEER_METHODS.iter().chain(&commands));
            let replica = node.replica().clone();
            let Some(call) = answers::answer(replica, None, call, manifest).await else {
                return;
            };
            let method = call.request.method();
            if !command::METHODS.contains(&method.as_str()) {
                answers::refuse(call).await;
                return;
            }
            control::serve(&node, &method, call).await;
        });
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
    crate::feed::contact::follow_content(feed, following)
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
    let choice = node.replica().carry();
    carry.push("mode", Value::string(choice.mode.as_str()));
    carry.push("set_by", Value::string(choice.set_by.as_str()));
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
    match command::blob_usage(
        node.replica().blobs(),
        node.replica().blob_quota(),
        node.replica().blob_max(),
    ) {
        Ok(v) => o.push("blobs", v),
        Err(e) => tracing::warn!("status: counting the blobs held: {e}"),
    }
    o.push("disk", disk(node));
    // The runtime's live tasks: each session and call holds a few, so a
    // count that keeps growing shows tasks outliving their session.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        o.push(
            "tasks",
            Value::Number(rt.metrics().num_alive_tasks() as f64),
        );
    }
    node.status().snapshot().push_fields(&mut o);
    // The image's Wi-Fi controller's state and wifi.txt's problems.
    let wifi = crate::appliance::wifi::report::dir();
    if let Some(w) = crate::appliance::wifi::report::read(&wifi) {
        o.push("wifi", w);
    }
    Value::Object(o)
}

/// The data disk in `status`: `state` (`ok` or `full`), `total`, `free` and
/// `reserve` in bytes, and while full the `reason`. A full disk is checked
/// again here, so the status clears as soon as space is back.
fn disk(node: &Node) -> Value {
    let space = node.replica().disk();
    let full = match space.full() {
        Some(_) => {
            let now = space.recheck();
            node.status()
                .set_disk_full(now.as_ref().map(ToString::to_string));
            now
        }
        None => None,
    };
    let mut d = Object::new();
    d.push(
        "state",
        Value::string(if full.is_some() { "full" } else { "ok" }),
    );
    if let Ok(room) = space.room() {
        d.push("total", Value::Number(room.total as f64));
        d.push("free", Value::Number(room.free as f64));
        d.push(
            "reserve",
            Value::Number(space.reserve_for(room.total) as f64),
        );
    }
    if let Some(f) = full {
        d.push("reason", Value::string(&f.to_string()));
    }
    Value::Object(d)
}
