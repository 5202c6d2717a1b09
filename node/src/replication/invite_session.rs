//! Sessions of clients that authenticated with an invite key.
//!
//! A session whose remote key is an invite key this node made (live or
//! not, so a spent code gets a clear refusal) may call only `invite.use`,
//! `getAddress` and `manifest`; it neither replicates nor exchanges blobs,
//! and it is closed after [`INVITE_SESSION_MAX`]. Whether a use is allowed
//! is [`crate::invite::rules`]; this is the part that needs a replica and a
//! link.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::admission::SessionSlot;
use super::Replicator;
use crate::feed::contact::follow_content;
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::invite::host::code_address;
use crate::invite::rules::{self, Attempts, Grant, Refused};
use crate::muxrpc::{Body, Handler, InboundCall, Session, SessionConfig};
use crate::net::address::{Host, MultiserverAddress};
use crate::replica::Replica;
use crate::store::now_ms;

/// Longest an invite session stays open.
pub const INVITE_SESSION_MAX: Duration = Duration::from_secs(60);

/// What invite sessions share: where the node listens (for `getAddress`),
/// the attempt limits, and the one use decided at a time.
#[derive(Debug)]
pub struct InviteSessions {
    listen: OnceLock<(Option<Host>, SocketAddr)>,
    attempts: Mutex<Attempts>,
    /// Held while one use is decided and counted.
    redeeming: tokio::sync::Mutex<()>,
}

impl Default for InviteSessions {
    fn default() -> Self {
        InviteSessions {
            listen: OnceLock::new(),
            attempts: Mutex::new(Attempts::new(Instant::now())),
            redeeming: tokio::sync::Mutex::new(()),
        }
    }
}

impl InviteSessions {
    /// Records where the node listens, and the host configured for codes.
    pub fn set_listen(&self, public_address: Option<Host>, listen: SocketAddr) {
        let _ = self.listen.set((public_address, listen));
    }

    /// The host and port codes and `getAddress` name, once the node listens
    /// (see [`code_address`]: the LAN address is looked up each time).
    pub fn address(&self) -> Option<(Host, u16)> {
        let (public, listen) = self.listen.get()?;
        Some(code_address(public.as_ref(), *listen))
    }
}

/// Whether `key` is an invite key this node made (a store lookup).
pub fn is_invite_key(replica: &Replica, key: &FeedId) -> bool {
    match replica.store().invite(key) {
        Ok(r) => r.is_some(),
        Err(e) => {
            tracing::warn!("reading invites: {e}");
            false
        }
    }
}

/// Serves a session authenticated with the invite key `key` until the
/// client closes it or [`INVITE_SESSION_MAX`] passes.
pub async fn serve(
    node: Arc<Replicator>,
    stream: TcpStream,
    outcome: &crate::net::shs::Outcome,
    key: FeedId,
    slot: SessionSlot,
) {
    let handler = Arc::new(InviteAnswers { node, key });
    let session = Session::start(stream, Some(outcome), handler, SessionConfig::default());
    tracing::info!(invite = %key, "invite session opened");
    let reason = match tokio::time::timeout(INVITE_SESSION_MAX, session.closed()).await {
        Ok(reason) => reason,
        Err(_) => {
            session.close().await;
            "invite session time is up".to_owned()
        }
    };
    drop(slot);
    tracing::info!(invite = %key, "invite session closed: {reason}");
}

/// Why an invite session's call was not answered with a result.
#[derive(Debug, thiserror::Error)]
enum CallRefused {
    /// The use is not allowed (the client's fault, or the invite's state).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A method other than the three (the client's fault), refused in JS muxrpc's
    /// words ([`crate::muxrpc::Request::not_allowed`]), as a JS pub's permissions
    /// refuse it: ssb-ebt matches them to tell a missing method from a failure.
    #[error("{0}")]
    Method(String),
    /// The node does not listen yet, or its address is no address (ours).
    #[error("this node has no address to give{0}")]
    NoAddress(String),
    /// Reading or writing the store, or publishing, failed (ours).
    #[error("{0}")]
    Node(String),
}

/// The methods an invite session answers.
struct InviteAnswers {
    node: Arc<Replicator>,
    key: FeedId,
}

impl Handler for InviteAnswers {
    fn handle(&self, call: InboundCall) {
        let node = self.node.clone();
        let key = self.key;
        tokio::spawn(async move {
            let method = call.request.method();
            let reply = match method.as_str() {
                "invite.use" => use_invite(&node, &key, call.request.arg0()).await,
                "getAddress" => address(&node).map(|a| Value::string(&a)),
                "manifest" => Ok(manifest()),
                _ => Err(CallRefused::Method(call.request.not_allowed())),
            };
            let _ = match reply {
                Ok(v) => call.stream.send(Body::json(&v)).await,
                Err(e) => call.stream.error(&e.to_string()).await,
            };
        });
    }
}

fn manifest() -> Value {
    let mut invite = Object::new();
    invite.push("use", Value::string("async"));
    let mut o = Object::new();
    o.push("invite", Value::Object(invite));
    o.push("getAddress", Value::string("async"));
    o.push("manifest", Value::string("sync"));
    Value::Object(o)
}

/// `net:HOST:PORT~shs:KEY` of this node.
fn address(node: &Replicator) -> Result<String, CallRefused> {
    let (host, port) = node
        .invite_sessions()
        .address()
        .ok_or_else(|| CallRefused::NoAddress(String::new()))?;
    MultiserverAddress::new(host, port, *node.id())
        .map(|a| a.to_string())
        .map_err(|e| CallRefused::NoAddress(format!(": {e}")))
}

/// `invite.use({feed})` from the session of invite key `key`: follows
/// `feed` and counts the use, or says why not.
async fn use_invite(node: &Replicator, key: &FeedId, arg: &Value) -> Result<Value, CallRefused> {
    let sessions = node.invite_sessions();
    sessions
        .attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .attempt(key, Instant::now())?;
    let feed = rules::feed_arg(arg)?;
    let replica = node.replica();
    let ours = |e: &dyn std::fmt::Display| CallRefused::Node(e.to_string());
    let _one_at_a_time = sessions.redeeming.lock().await;
    let record = replica
        .store()
        .invite(key)
        .map_err(|e| ours(&e))?
        .ok_or(Refused::Revoked)?;
    let following = replica
        .store()
        .contacts(replica.id())
        .map_err(|e| ours(&e))?
        .get(&feed)
        .is_some_and(|s| s.following);
    let blocked = replica.is_blocked(&feed);
    let grant = rules::check_use(&record, now_ms(), &feed, replica.id(), following, blocked);
    match grant {
        Err(e) => {
            tracing::info!(invite = %key, %feed, "invite use refused: {e}");
            Err(e.into())
        }
        Ok(Grant::AlreadyFollowing) => {
            tracing::info!(invite = %key, %feed, "invite used by a feed followed already");
            let mut o = Object::new();
            o.push("feed", Value::string(&feed.to_string()));
            o.push("following", Value::Bool(true));
            Ok(Value::Object(o))
        }
        Ok(Grant::Follow) => {
            let ids = replica
                .publish(vec![follow_content(&feed, true)])
                .await
                .map_err(|e| ours(&e))?;
            let counted = rules::count_use(&record);
            replica.store().put_invite(&counted).map_err(|e| ours(&e))?;
            tracing::info!(invite = %key, %feed, uses_left = counted.uses_left, "invite used: following");
            let id = ids.first().ok_or_else(|| ours(&"nothing published"))?;
            match replica.store().get(id).map_err(|e| ours(&e))? {
                Some(m) => Value::parse(m.to_kvt_json().as_bytes()).map_err(|e| ours(&e)),
                None => Err(ours(&format!("message {id} is not in the store"))),
            }
        }
    }
}
