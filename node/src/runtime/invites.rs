//! Invites in the running node: making, listing and revoking them (the
//! control socket's `invite.*` methods, and the same functions on the store
//! when no node runs), and the sessions of clients that authenticated with
//! an invite key.
//!
//! A session whose remote key is an invite key this node made (live or
//! not, so a spent code gets a clear refusal) may call only `invite.use`,
//! `getAddress` and `manifest`; it neither replicates nor exchanges blobs,
//! and it is closed after [`INVITE_SESSION_MAX`].

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::admission::SessionSlot;
use super::{api, Node};
use crate::feed::json::Value;
use crate::feed::FeedId;
use crate::invite::code::InviteCode;
use crate::invite::host::invite_host;
use crate::invite::rules::{self, Attempts, Grant, Refused};
use crate::muxrpc::{Body, Handler, InboundCall, Session, SessionConfig};
use crate::net::address::{Host, MultiserverAddress};
use crate::store::invites::InviteRecord;
use crate::store::{now_ms, Store, StoreError};

/// Longest an invite session stays open.
pub const INVITE_SESSION_MAX: Duration = Duration::from_secs(60);
/// Most uses one invite may be made with.
pub const MAX_USES: u32 = 10_000;
/// Longest expiry, in days.
pub const MAX_EXPIRES_DAYS: f64 = 36_500.0;
/// Longest note, in bytes.
pub const MAX_NOTE: usize = 500;

/// The control socket's invite methods.
pub const LOCAL_METHODS: &[&str] = &["invite.create", "invite.list", "invite.revoke"];

/// Why an invite command failed.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The options are out of range (the caller's fault).
    #[error("{0}")]
    Options(String),
    /// Every kept invite is live and there is no room.
    #[error(
        "this node keeps {} invites, all still usable; revoke some first",
        crate::store::invites::MAX_INVITES
    )]
    Full,
    /// No invite has that id.
    #[error("no invite {0} (see `ssb-node invite list`)")]
    NotFound(String),
    /// The id prefix names several invites.
    #[error("{0} names more than one invite; give more of its id")]
    Ambiguous(String),
    /// The listener address gives no port for the code.
    #[error("cannot tell the port to put in the code from listen = {0:?}")]
    Port(String),
}

/// What `invite create` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// Uses (default 1).
    pub uses: Option<u32>,
    /// Days until it expires (fractions allowed; none: never).
    pub expires_days: Option<f64>,
    /// A note for the owner.
    pub note: Option<String>,
}

impl CreateOptions {
    /// As the control socket carries them.
    pub fn to_value(&self) -> Value {
        let mut o = crate::feed::json::Object::new();
        if let Some(u) = self.uses {
            o.push("uses", Value::Number(f64::from(u)));
        }
        if let Some(d) = self.expires_days {
            o.push("expires", Value::Number(d));
        }
        if let Some(n) = &self.note {
            o.push("note", Value::string(n));
        }
        Value::Object(o)
    }

    /// From the control socket's argument.
    pub fn from_value(v: &Value) -> Result<CreateOptions, InviteError> {
        let bad = |m: &str| InviteError::Options(m.to_owned());
        let o = match v {
            Value::Null => return Ok(CreateOptions::default()),
            Value::Object(o) => o,
            _ => return Err(bad("invite.create expects an object")),
        };
        let uses = match o.get("uses") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n))
                if n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX) =>
            {
                Some(*n as u32)
            }
            Some(_) => return Err(bad("uses must be a whole number")),
        };
        let expires_days = match o.get("expires") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(*n),
            Some(_) => return Err(bad("expires must be a number of days")),
        };
        let note = match o.get("note") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| bad("note must be text"))?
                    .to_owned(),
            ),
        };
        Ok(CreateOptions {
            uses,
            expires_days,
            note,
        })
    }

    /// Checks the ranges; the record for `key` made at `now`.
    fn record(&self, key: FeedId, now: f64) -> Result<InviteRecord, InviteError> {
        let uses = self.uses.unwrap_or(1);
        if uses == 0 || uses > MAX_USES {
            return Err(InviteError::Options(format!(
                "--uses must be between 1 and {MAX_USES}"
            )));
        }
        let expires = match self.expires_days {
            None => None,
            Some(d) if d.is_finite() && (0.0..=MAX_EXPIRES_DAYS).contains(&d) => {
                Some(now + d * 86_400_000.0)
            }
            Some(_) => {
                return Err(InviteError::Options(format!(
                    "--expires must be between 0 and {MAX_EXPIRES_DAYS} days"
                )))
            }
        };
        let note = match &self.note {
            Some(n) if n.len() > MAX_NOTE => {
                return Err(InviteError::Options(format!(
                    "--note is longer than {MAX_NOTE} bytes"
                )))
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(InviteError::Options(
                    "--note must not hold control characters".into(),
                ))
            }
            Some(n) if !n.trim().is_empty() => Some(n.trim().to_owned()),
            _ => None,
        };
        Ok(InviteRecord {
            key,
            uses_left: uses,
            uses,
            expires,
            note,
            created: now,
            revoked: false,
        })
    }
}

/// The host and port an invite code (and `getAddress`) names: config
/// `public_address`; else the listener's IP if it is a specific one; else
/// the LAN address (see [`invite_host`]).
pub fn code_address(public_address: Option<&Host>, listen: SocketAddr) -> (Host, u16) {
    let host = match public_address {
        Some(h) => h.clone(),
        None if !listen.ip().is_unspecified() => Host::Ip(listen.ip()),
        None => invite_host(None),
    };
    (host, listen.port())
}

/// The listener address as configured (`listen`), when no node runs.
pub fn configured_listen(listen: &str) -> Result<SocketAddr, InviteError> {
    listen
        .parse::<SocketAddr>()
        .or_else(|_| {
            // `HOST:PORT` with a name: only the port matters here.
            listen
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .map(|p| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), p))
                .ok_or(())
        })
        .map_err(|()| InviteError::Port(listen.to_owned()))
}

/// Makes an invite for the node `node` at `host:port`: stores its public
/// key and limits, and returns the code (shown once, never stored).
pub fn create(
    store: &Store,
    node: &FeedId,
    host: Host,
    port: u16,
    opts: &CreateOptions,
) -> Result<(InviteCode, InviteRecord), InviteError> {
    let now = now_ms();
    let code = InviteCode::generate(host, port, *node);
    let record = opts.record(code.key(), now)?;
    if !store.add_invite(&record, now)? {
        return Err(InviteError::Full);
    }
    tracing::info!(invite = %record.key, uses = record.uses, "invite created");
    Ok((code, record))
}

/// Finds the invite named by `id`: its full id, or a unique start of its
/// base64 (with or without the `@`).
fn find(store: &Store, id: &str) -> Result<InviteRecord, InviteError> {
    let want = id.trim().trim_start_matches('@');
    if want.is_empty() {
        return Err(InviteError::NotFound(id.to_owned()));
    }
    let mut hits = store
        .invites()?
        .into_iter()
        .filter(|r| r.key.to_string()[1..].starts_with(want));
    let first = hits
        .next()
        .ok_or_else(|| InviteError::NotFound(id.to_owned()))?;
    if hits.next().is_some() {
        return Err(InviteError::Ambiguous(id.to_owned()));
    }
    Ok(first)
}

/// Revokes the invite named by `id` (see [`find`]); returns it.
pub fn revoke(store: &Store, id: &str) -> Result<InviteRecord, InviteError> {
    let mut r = find(store, id)?;
    r.revoked = true;
    store.put_invite(&r)?;
    tracing::info!(invite = %r.key, "invite revoked");
    Ok(r)
}

/// How an invite stands at `now`: `live`, `used up`, `expired` or `revoked`.
pub fn state(r: &InviteRecord, now: f64) -> &'static str {
    if r.revoked {
        "revoked"
    } else if r.expires.is_some_and(|e| now >= e) {
        "expired"
    } else if r.uses_left == 0 {
        "used up"
    } else {
        "live"
    }
}

/// An invite as `invite list --json` shows it.
pub fn record_json(r: &InviteRecord, now: f64) -> serde_json::Value {
    serde_json::json!({
        "id": r.key.to_string(),
        "state": state(r, now),
        "uses_left": r.uses_left,
        "uses": r.uses,
        "expires": r.expires.map(|e| e as u64),
        "created": r.created as u64,
        "note": r.note,
    })
}

fn to_value(v: &serde_json::Value) -> Result<Value, String> {
    Value::parse(v.to_string().as_bytes()).map_err(|e| e.to_string())
}

/// The control socket's `invite.create`, `invite.list` and `invite.revoke`.
pub async fn answer_local(node: &Arc<Node>, method: &str, args: &[Value]) -> Result<Value, String> {
    let arg = args.first().cloned().unwrap_or(Value::Null);
    let now = now_ms();
    match method {
        "invite.create" => {
            let opts = CreateOptions::from_value(&arg).map_err(|e| e.to_string())?;
            let (host, port) = node.invites.address(node);
            let (code, record) =
                create(&node.store, node.id(), host, port, &opts).map_err(|e| e.to_string())?;
            let mut v = record_json(&record, now);
            v["code"] = serde_json::Value::String(code.text());
            to_value(&v)
        }
        "invite.list" => {
            let list = node.store.invites().map_err(|e| e.to_string())?;
            to_value(&serde_json::Value::Array(
                list.iter().map(|r| record_json(r, now)).collect(),
            ))
        }
        "invite.revoke" => {
            let id = arg.as_str().ok_or("invite.revoke expects an invite id")?;
            let r = revoke(&node.store, id).map_err(|e| e.to_string())?;
            to_value(&record_json(&r, now))
        }
        _ => Err(format!("method:{method} is not in list of allowed methods")),
    }
}

/// The running node's invite state.
#[derive(Debug)]
pub struct Invites {
    listen: OnceLock<SocketAddr>,
    attempts: Mutex<Attempts>,
    /// Held while one use is decided and counted.
    redeeming: tokio::sync::Mutex<()>,
}

impl Default for Invites {
    fn default() -> Self {
        Invites {
            listen: OnceLock::new(),
            attempts: Mutex::new(Attempts::new(Instant::now())),
            redeeming: tokio::sync::Mutex::new(()),
        }
    }
}

impl Invites {
    /// Records where the node listens (for the codes it makes).
    pub fn set_listen(&self, addr: SocketAddr) {
        let _ = self.listen.set(addr);
    }

    /// The host and port codes and `getAddress` name.
    pub fn address(&self, node: &Node) -> (Host, u16) {
        let listen = self.listen.get().copied().unwrap_or_else(|| {
            configured_listen(&node.settings.listen)
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8008)))
        });
        code_address(node.settings.public_address.as_ref(), listen)
    }
}

/// Whether `key` is an invite key this node made (a store lookup).
pub fn is_invite_key(node: &Node, key: &FeedId) -> bool {
    match node.store.invite(key) {
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
    node: Arc<Node>,
    stream: TcpStream,
    outcome: &crate::net::shs::Outcome,
    key: FeedId,
    slot: SessionSlot,
) {
    let handler = Arc::new(InviteApi {
        node: node.clone(),
        key,
    });
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

/// The methods an invite session answers.
struct InviteApi {
    node: Arc<Node>,
    key: FeedId,
}

impl Handler for InviteApi {
    fn handle(&self, call: InboundCall) {
        let node = self.node.clone();
        let key = self.key;
        tokio::spawn(async move {
            let method = call.request.method();
            let reply = match method.as_str() {
                "invite.use" => use_invite(&node, &key, call.request.arg0()).await,
                "getAddress" => address(&node).map(|a| Value::string(&a)),
                "manifest" => Ok(manifest()),
                m => Err(format!(
                    "method:{m} is not in list of allowed methods: this connection \
                     authenticated with an invite key and may call only invite.use and getAddress"
                )),
            };
            let _ = match reply {
                Ok(v) => call.stream.send(Body::json(&v)).await,
                Err(e) => call.stream.error(&e).await,
            };
        });
    }
}

fn manifest() -> Value {
    let mut invite = crate::feed::json::Object::new();
    invite.push("use", Value::string("async"));
    let mut o = crate::feed::json::Object::new();
    o.push("invite", Value::Object(invite));
    o.push("getAddress", Value::string("async"));
    o.push("manifest", Value::string("sync"));
    Value::Object(o)
}

/// `net:HOST:PORT~shs:KEY` of this node.
fn address(node: &Node) -> Result<String, String> {
    let (host, port) = node.invites.address(node);
    MultiserverAddress::new(host, port, *node.id())
        .map(|a| a.to_string())
        .map_err(|e| format!("this node has no address to give: {e}"))
}

/// `invite.use({feed})` from the session of invite key `key`: follows
/// `feed` and counts the use, or says why not.
async fn use_invite(node: &Arc<Node>, key: &FeedId, arg: &Value) -> Result<Value, String> {
    node.invites
        .attempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .attempt(key, Instant::now())
        .map_err(|e| e.to_string())?;
    let feed = rules::feed_arg(arg).map_err(|e| e.to_string())?;
    let _one_at_a_time = node.invites.redeeming.lock().await;
    let record = node
        .store
        .invite(key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| Refused::Revoked.to_string())?;
    let following = node
        .store
        .contacts(node.id())
        .map_err(|e| e.to_string())?
        .get(&feed)
        .is_some_and(|s| s.following);
    let blocked = node.is_blocked(&feed) || node.settings.block.contains(&feed);
    let grant = rules::check_use(&record, now_ms(), &feed, node.id(), following, blocked);
    match grant {
        Err(e) => {
            tracing::info!(invite = %key, %feed, "invite use refused: {e}");
            Err(e.to_string())
        }
        Ok(Grant::AlreadyFollowing) => {
            tracing::info!(invite = %key, %feed, "invite used by a feed followed already");
            let mut o = crate::feed::json::Object::new();
            o.push("feed", Value::string(&feed.to_string()));
            o.push("following", Value::Bool(true));
            Ok(Value::Object(o))
        }
        Ok(Grant::Follow) => {
            let ids = node
                .publish(vec![api::contact(&feed, true)])
                .await
                .map_err(|e| e.to_string())?;
            let counted = rules::count_use(&record);
            node.store.put_invite(&counted).map_err(|e| e.to_string())?;
            tracing::info!(invite = %key, %feed, uses_left = counted.uses_left, "invite used: following");
            let id = ids.first().ok_or("nothing published")?;
            match node.store.get(id).map_err(|e| e.to_string())? {
                Some(m) => Value::parse(m.to_kvt_json().as_bytes()).map_err(|e| e.to_string()),
                None => Err(format!("message {id} is not in the store")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = CreateOptions {
            uses: Some(3),
            expires_days: Some(0.5),
            note: Some("  for Ana ".into()),
        };
        let r = ok.record(FeedId([1; 32]), 1000.0).expect("valid");
        assert_eq!((r.uses, r.uses_left), (3, 3));
        assert_eq!(r.expires, Some(1000.0 + 43_200_000.0));
        assert_eq!(r.note.as_deref(), Some("for Ana"));
        let back = CreateOptions::from_value(&ok.to_value()).expect("round trip");
        assert_eq!(back, ok);
        for bad in [
            CreateOptions {
                uses: Some(0),
                ..CreateOptions::default()
            },
            CreateOptions {
                uses: Some(MAX_USES + 1),
                ..CreateOptions::default()
            },
            CreateOptions {
                expires_days: Some(-1.0),
                ..CreateOptions::default()
            },
            CreateOptions {
                expires_days: Some(f64::NAN),
                ..CreateOptions::default()
            },
            CreateOptions {
                note: Some("x".repeat(MAX_NOTE + 1)),
                ..CreateOptions::default()
            },
            CreateOptions {
                note: Some("a\nb".into()),
                ..CreateOptions::default()
            },
        ] {
            assert!(bad.record(FeedId([1; 32]), 0.0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_code_names_the_configured_then_the_listen_then_the_lan_host() {
        let listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let public: Host = "box.example.org".parse().unwrap();
        assert!(code_address(Some(&public), listen) == (public.clone(), 9000));
        assert!(code_address(None, listen) == ("127.0.0.1".parse().unwrap(), 9000));
        let any: SocketAddr = "0.0.0.0:8008".parse().unwrap();
        assert_eq!(code_address(None, any).1, 8008);
        assert_eq!(configured_listen("0.0.0.0:8008").unwrap().port(), 8008);
        assert_eq!(configured_listen("box.local:8009").unwrap().port(), 8009);
        assert!(configured_listen("nonsense").is_err());
    }

    #[test]
    fn create_list_revoke_on_the_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let node = FeedId([4; 32]);
        let (code, r) = create(
            &store,
            &node,
            "127.0.0.1".parse().unwrap(),
            8008,
            &CreateOptions::default(),
        )
        .expect("create");
        assert_eq!(code.key(), r.key);
        assert_eq!(state(&r, now_ms()), "live");
        let text = code.text();
        assert!(text.starts_with("127.0.0.1:8008:@"));
        // The seed is nowhere in the store's files, as text or as bytes.
        let seed = text.rsplit('~').next().unwrap().to_owned();
        let raw = crate::feed::ids::decode_base64_exact::<32>(&seed).unwrap();
        store.persist().expect("persist");
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            for needle in [seed.as_bytes(), &raw[..]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{}",
                    entry.display()
                );
            }
        }
        let id = r.key.to_string();
        assert!(matches!(
            revoke(&store, "zzzz"),
            Err(InviteError::NotFound(_))
        ));
        let revoked = revoke(&store, &id[1..8]).expect("revoke by prefix");
        assert!(revoked.revoked);
        assert_eq!(
            state(&store.invites().expect("list")[0], now_ms()),
            "revoked"
        );
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
