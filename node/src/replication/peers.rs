//! Connections: accepting and dialling (TCP_NODELAY, handshake deadline,
//! limits), keeping configured peers connected with back-off, and the table
//! of known peers that `ssb-node peers` prints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use super::admission::{Admission, HandshakeSlot, Refusal, SessionSlot};
use super::answers::PeerAnswers;
use super::invite_session;
use super::link::{self, LinkCtx};
use super::link_status;
use super::open_sessions::OpenSessions;
use super::refusals::Refusals;
use super::Replicator;
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::muxrpc::{client_handshake, server_handshake, LinkError, Session, SessionConfig};
use crate::net::address::MultiserverAddress;
use crate::net::shs::PublicKey;

/// Deadline for the TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Peers kept in the table beyond which a stranger that dialled us is
/// forgotten when its last session closes.
const PEERS_REMEMBERED: usize = 256;
/// Back-off bounds for reconnecting.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where we learned of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file.
    Config,
    /// `--connect` on the command line.
    Cli,
    /// LAN discovery.
    Lan,
    /// It connected to us.
    Incoming,
    /// A one-shot `sync`.
    Sync,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Cli => "cli",
            Source::Lan => "lan",
            Source::Incoming => "incoming",
            Source::Sync => "sync",
        }
    }
}

/// A peer's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Dialling or handshaking.
    Connecting,
    /// A session is up.
    Connected,
    /// Waiting before the next attempt.
    Backoff,
    /// Known, not connected.
    Known,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Backoff => "backoff",
            State::Known => "known",
        }
    }
}

/// What we know of one peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its address, when known.
    pub address: Option<MultiserverAddress>,
    /// Where it came from.
    pub source: Source,
    /// Its state.
    pub state: State,
    /// Sessions open with it now.
    pub sessions: u32,
    /// The last problem, if any.
    pub last_error: Option<String>,
    /// When it last changed state.
    pub since: Instant,
}

/// The table of known peers.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: Mutex<HashMap<FeedId, PeerInfo>>,
    /// Which connections are taken.
    pub admission: Admission,
    /// The rate-limited log of dropped connections.
    pub refusals: Refusals,
    /// The sessions open now, told goodbye when the node stops.
    pub open: Arc<OpenSessions>,
}

impl PeerTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<FeedId, PeerInfo>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a peer (keeps the first source; fills in an address).
    pub fn know(&self, key: FeedId, address: Option<MultiserverAddress>, source: Source) {
        let mut t = self.lock();
        let e = t.entry(key).or_insert(PeerInfo {
            address: None,
            source,
            state: State::Known,
            sessions: 0,
            last_error: None,
            since: Instant::now(),
        });
        if address.is_some() {
            e.address = address;
        }
    }

    fn set_state(&self, key: &FeedId, state: State, error: Option<String>) {
        if let Some(p) = self.lock().get_mut(key) {
            if p.sessions == 0 || state == State::Connected {
                p.state = state;
            }
            if error.is_some() {
                p.last_error = error;
            }
            p.since = Instant::now();
        }
    }

    fn session_opened(&self, key: &FeedId) {
        if let Some(p) = self.lock().get_mut(key) {
            p.sessions += 1;
            p.state = State::Connected;
            p.since = Instant::now();
        }
    }

    fn session_closed(&self, key: &FeedId, reason: &str) {
        let mut t = self.lock();
        let full = t.len() > PEERS_REMEMBERED;
        if let Some(p) = t.get_mut(key) {
            p.sessions = p.sessions.saturating_sub(1);
            if p.sessions == 0 {
                p.state = State::Known;
                if full && p.source == Source::Incoming {
                    t.remove(key);
                    return;
                }
            }
            p.last_error = Some(reason.to_owned());
            p.since = Instant::now();
        }
    }

    /// How many peer sessions are open now.
    pub fn session_count(&self) -> usize {
        self.admission.sessions()
    }

    /// Whether `key` is a peer from the config file or the command line.
    pub fn is_configured(&self, key: &FeedId) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|p| matches!(p.source, Source::Config | Source::Cli))
    }

    /// Whether a session with `key` is open.
    pub fn is_connected(&self, key: &FeedId) -> bool {
        self.lock().get(key).is_some_and(|p| p.sessions > 0)
    }

    /// Forgets a peer that is not connected (LAN silence).
    pub fn forget(&self, key: &FeedId) {
        let mut t = self.lock();
        if t.get(key).is_some_and(|p| p.sessions == 0) {
            t.remove(key);
        }
    }

    /// The table as JSON: one object per peer.
    pub fn to_value(&self) -> Value {
        let t = self.lock();
        let mut rows: Vec<(&FeedId, &PeerInfo)> = t.iter().collect();
        rows.sort_by_key(|(k, _)| k.to_string());
        Value::Array(
            rows.into_iter()
                .map(|(key, p)| {
                    let mut o = Object::new();
                    let addr = p.address.as_ref().map(ToString::to_string);
                    o.push(
                        "address",
                        addr.as_deref().map_or(Value::Null, Value::string),
                    );
                    o.push("key", Value::string(&key.to_string()));
                    o.push("state", Value::string(p.state.as_str()));
                    o.push("source", Value::string(p.source.as_str()));
                    if let Some(a) = &p.address {
                        o.push("host", Value::string(&a.host().to_string()));
                        o.push("port", Value::Number(f64::from(a.port())));
                    }
                    o.push("sessions", Value::Number(f64::from(p.sessions)));
                    o.push("seconds", Value::Number(p.since.elapsed().as_secs() as f64));
                    if let Some(e) = &p.last_error {
                        o.push("last_error", Value::string(e));
                    }
                    Value::Object(o)
                })
                .collect(),
        )
    }
}

fn feed_of(pk: &PublicKey) -> FeedId {
    FeedId(pk.0)
}

/// Session limits for peer links.
fn session_config() -> SessionConfig {
    SessionConfig::default()
}

/// Why an incoming connection was dropped before its session ran.
#[derive(Debug, thiserror::Error)]
enum Dropped {
    /// The connection or the handshake failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The peer authenticated, but its session is not taken.
    #[error("{0}")]
    Refused(#[from] Refusal),
}

/// Accepts peers on `listener` until the task is dropped.
pub async fn accept_loop(node: Arc<Replicator>, listener: TcpListener) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match node.peers().admission.handshake(from.ip()) {
            Ok(s) => s,
            Err(e) => {
                node.peers().refusals.dropped(from, &e.to_string());
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let r = incoming(node.clone(), stream, from, slot).await;
            if let Err(e) = r {
                node.peers().refusals.dropped(from, &e.to_string());
            }
        });
    }
}

/// Whether `peer` is one strangers cannot lock out: a feed we replicate or a
/// configured peer.
fn is_known(node: &Replicator, peer: &FeedId) -> bool {
    node.replica().replicate_set().contains(peer) || node.peers().is_configured(peer)
}

async fn incoming(
    node: Arc<Replicator>,
    mut stream: TcpStream,
    from: SocketAddr,
    slot: HandshakeSlot,
) -> Result<(), Dropped> {
    stream.set_nodelay(true).map_err(LinkError::from)?;
    let outcome = server_handshake(
        &mut stream,
        node.network().key,
        node.shs_keys().clone(),
        node.network().handshake_timeout,
        |pk| !node.replica().is_blocked(&feed_of(pk)),
    )
    .await?;
    drop(slot);
    let peer = feed_of(&outcome.peer);
    let session_slot =
        node.peers()
            .admission
            .session(peer, Some(from.ip()), is_known(&node, &peer))?;
    if invite_session::is_invite_key(node.replica(), &peer) {
        invite_session::serve(node, stream, &outcome, peer, session_slot).await;
        return Ok(());
    }
    tracing::info!(%from, %peer, "peer connected");
    node.peers().know(peer, None, Source::Incoming);
    run_session(node, stream, &outcome, peer, false, false, session_slot).await;
    Ok(())
}

/// Runs a session with replication until it closes; returns why it closed.
async fn run_session(
    node: Arc<Replicator>,
    stream: TcpStream,
    outcome: &crate::net::shs::Outcome,
    peer: FeedId,
    is_client: bool,
    one_shot: bool,
    slot: SessionSlot,
) -> String {
    carry_peer(&node, &peer).await;
    let ctx = LinkCtx::new(node.replica().clone(), peer, is_client, one_shot);
    let session = Session::start(
        stream,
        Some(outcome),
        PeerAnswers::new(ctx.clone()),
        session_config(),
    );
    let open = node.peers().open.register(&session);
    node.peers().session_opened(&peer);
    let link = node.link_watch().link_opened(peer);
    tokio::spawn(link_status::track(link, ctx.clone(), session.clone()));
    let repl = tokio::spawn(link::replicate(ctx, session.clone()));
    let reason = session.closed().await;
    repl.abort();
    node.peers().session_closed(&peer, &reason);
    drop((open, slot));
    tracing::info!(%peer, "peer disconnected: {reason}");
    reason
}

/// Applies the carrying policy to a peer that completed the handshake,
/// before its session replicates (so a feed carried now replicates in it).
async fn carry_peer(node: &Replicator, peer: &FeedId) {
    if let Err(e) = crate::replica::carry::on_connect(node.replica(), peer).await {
        tracing::warn!(%peer, "carrying a connected feed: {e}");
    }
}

/// Dials `addr` and completes the handshake.
pub async fn dial(
    node: &Replicator,
    addr: &MultiserverAddress,
) -> Result<(TcpStream, crate::net::shs::Outcome), LinkError> {
    let connect = async {
        match addr.socket_addr() {
            Some(sa) => TcpStream::connect(sa).await,
            None => TcpStream::connect(format!("{}:{}", addr.host(), addr.port())).await,
        }
    };
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| LinkError::Timeout("connect"))??;
    stream.set_nodelay(true)?;
    let server = PublicKey(*addr.key().as_bytes());
    let outcome = client_handshake(
        &mut stream,
        node.network().key,
        node.shs_keys().clone(),
        server,
        node.network().handshake_timeout,
    )
    .await?;
    Ok((stream, outcome))
}

/// Dials `addr` and returns the session and its link, replicating one-shot.
pub async fn open_one_shot(
    node: Arc<Replicator>,
    addr: &MultiserverAddress,
) -> Result<(Session, Arc<LinkCtx>), LinkError> {
    let (stream, outcome) = dial(&node, addr).await?;
    let peer = feed_of(&outcome.peer);
    carry_peer(&node, &peer).await;
    let ctx = LinkCtx::new(node.replica().clone(), peer, true, true);
    let session = Session::start(
        stream,
        Some(&outcome),
        PeerAnswers::new(ctx.clone()),
        session_config(),
    );
    let link = node.link_watch().link_opened(peer);
    tokio::spawn(link_status::track(link, ctx.clone(), session.clone()));
    tokio::spawn(link::replicate(ctx.clone(), session.clone()));
    let open = node.peers().open.register(&session);
    let until_closed = session.clone();
    tokio::spawn(async move {
        until_closed.closed().await;
        drop(open);
    });
    Ok((session, ctx))
}

/// Keeps a session with `addr` open: reconnects with exponential back-off
/// (1 s doubling to 60 s, reset after a session that lasted a minute).
pub async fn keep_connected(node: Arc<Replicator>, addr: MultiserverAddress, source: Source) {
    let peer = *addr.key();
    if peer == *node.id() {
        return;
    }
    node.peers().know(peer, Some(addr.clone()), source);
    let mut backoff = BACKOFF_MIN;
    loop {
        if node.replica().is_blocked(&peer) {
            return;
        }
        if node.peers().is_connected(&peer) {
            // It dialled us; check again later.
            tokio::time::sleep(BACKOFF_MAX / 4).await;
            continue;
        }
        let lasted = connect_once(&node, &addr).await;
        if lasted.is_ok_and(|d| d > Duration::from_secs(60)) {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Why one dial gave no session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The dial or handshake failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The peer was reached, but our limits refused the session.
    #[error("session refused: {0}")]
    Refused(#[from] super::admission::Refusal),
}

/// One attempt of a keep-connected loop: dials `addr` (a peer already [known]) and runs
/// the session until it closes, keeping the peer's state in the table. Returns how long
/// the session lasted, or why the dial failed. Back-off and pacing are the caller's.
///
/// [known]: PeerTable::know
pub async fn connect_once(
    node: &Arc<Replicator>,
    addr: &MultiserverAddress,
) -> Result<Duration, ConnectError> {
    let peer = *addr.key();
    node.peers().set_state(&peer, State::Connecting, None);
    let started = Instant::now();
    let result = match dial(node, addr).await {
        Ok((stream, outcome)) => {
            let from = stream.peer_addr().ok().map(|a| a.ip());
            match node.peers().admission.session(peer, from, true) {
                Ok(slot) => {
                    tracing::info!(%addr, "connected");
                    run_session(node.clone(), stream, &outcome, peer, true, false, slot).await;
                    Ok(started.elapsed())
                }
                Err(e) => {
                    tracing::info!(%addr, "not keeping the session: {e}");
                    node.peers()
                        .set_state(&peer, State::Backoff, Some(e.to_string()));
                    Err(ConnectError::from(e))
                }
            }
        }
        Err(e) => {
            tracing::info!(%addr, "connect failed: {e}");
            node.peers()
                .set_state(&peer, State::Backoff, Some(e.to_string()));
            Err(ConnectError::from(e))
        }
    };
    node.peers().set_state(&peer, State::Backoff, None);
    result
}
