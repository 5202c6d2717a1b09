//! One muxrpc endpoint over an async byte stream.
//!
//! A session owns two tasks: a *link* task that reads, decrypts, decodes and
//! dispatches frames, and a *writer* task that coalesces outgoing frames into
//! as few box-stream writes as possible. Calls in both directions live in one
//! table keyed by the request number that *arrives* on the wire: `-n` for our
//! request `n`, `+n` for the peer's request `n`.
//!
//! Semantics follow packet-stream / muxrpc (SPEC-CHECKLIST §4): when the peer
//! ends a stream we answer with our own end at once (unless we already sent
//! one), an error is an end with an error body, and an empty body is never
//! sent (JS reads it as goodbye). Every buffer is bounded: the writer queue,
//! each call's inbox, the number of open calls, and the size of one frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::shs_driver::LinkError;
use crate::feed::json::{JsonError, Object, Value};
use crate::net::box_stream::{Decryptor, Encryptor};
use crate::net::rpc::{self, BodyType, Decoder, Encoder, Frame, RequestNumbers};
use crate::net::shs::{Outcome, PublicKey};

/// The four muxrpc call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    /// One request, one reply.
    Async,
    /// One request, a stream of replies.
    Source,
    /// A stream from the requester, one end from the responder.
    Sink,
    /// Streams both ways on one request number.
    Duplex,
}

impl CallType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Async => "async",
            CallType::Source => "source",
            CallType::Sink => "sink",
            CallType::Duplex => "duplex",
        }
    }

    fn parse(s: &str) -> Option<CallType> {
        Some(match s {
            "async" | "sync" => CallType::Async,
            "source" => CallType::Source,
            "sink" => CallType::Sink,
            "duplex" => CallType::Duplex,
            _ => return None,
        })
    }
}

/// A decoded request: `{"name":[…],"type":…,"args":[…]}`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method path, e.g. `["blobs", "get"]`.
    pub name: Vec<String>,
    /// The call type the requester declared.
    pub kind: CallType,
    /// The arguments.
    pub args: Vec<Value>,
}

impl Request {
    /// The method as one dotted string, e.g. `blobs.get`.
    pub fn method(&self) -> String {
        self.name.join(".")
    }

    /// The error JavaScript muxrpc answers for a method it does not offer this caller
    /// (its permissions check), e.g. `method:ebt,replicateFormat is not in list of
    /// allowed methods`: the name parts joined with commas, as ssb-ebt matches it word
    /// for word to tell a missing method from a failure.
    pub fn not_allowed(&self) -> String {
        format!(
            "method:{} is not in list of allowed methods",
            self.name.join(",")
        )
    }

    /// The first argument, or `null`.
    pub fn arg0(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.args.first().unwrap_or(&NULL)
    }

    pub(crate) fn to_body(&self) -> Vec<u8> {
        let mut o = Object::new();
        o.push(
            "name",
            Value::Array(self.name.iter().map(|n| Value::string(n)).collect()),
        );
        o.push("type", Value::string(self.kind.as_str()));
        o.push("args", Value::Array(self.args.clone()));
        Value::Object(o).to_compact().into_bytes()
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Request, RequestError> {
        let v = Value::parse(body).map_err(RequestError::NotJson)?;
        let o = v.as_object().ok_or(RequestError::NotObject)?;
        let name = match o.get("name") {
            Some(Value::Array(parts)) if !parts.is_empty() => parts
                .iter()
                .map(|p| p.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(RequestError::NamePart)?,
            Some(Value::String(s)) => vec![s.as_str().ok_or(RequestError::Name)?.to_owned()],
            _ => return Err(RequestError::NoName),
        };
        let kind = match o.get("type") {
            Some(t) => t
                .as_str()
                .and_then(CallType::parse)
                .ok_or(RequestError::UnknownType)?,
            None => CallType::Async,
        };
        let args = match o.get("args") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(other) => vec![other.clone()],
        };
        Ok(Request { name, kind, args })
    }
}

/// A frame body with its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// How to read `bytes`.
    pub body_type: BodyType,
    /// The bytes (never empty on the wire).
    pub bytes: Vec<u8>,
}

impl Body {
    /// A JSON body.
    pub fn json(v: &Value) -> Body {
        Body::json_text(v.to_compact())
    }

    /// A JSON body from already-serialised compact JSON (e.g. a stored message).
    pub fn json_text(text: String) -> Body {
        Body {
            body_type: BodyType::Json,
            bytes: text.into_bytes(),
        }
    }

    /// A binary body (blob chunks).
    pub fn binary(bytes: Vec<u8>) -> Body {
        Body {
            body_type: BodyType::Binary,
            bytes,
        }
    }

    /// Parses the body as JSON (a UTF-8 string body becomes a JSON string).
    pub fn to_value(&self) -> Result<Value, CallError> {
        match self.body_type {
            BodyType::Utf8 => std::str::from_utf8(&self.bytes)
                .map(Value::string)
                .map_err(|_| CallError::Protocol("string body is not UTF-8".into())),
            _ => Value::parse(&self.bytes)
                .map_err(|e| CallError::Protocol(format!("body is not JSON: {e}"))),
        }
    }
}

/// What arrives on a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A reply (async) or one stream item.
    Data(Body),
    /// The peer ended the stream normally.
    End,
    /// The peer ended the call with an error; the text is its message.
    Error(String),
}

/// Why a peer's request frame is refused (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("request is not JSON: {0}")]
    NotJson(JsonError),
    /// The body is not a JSON object.
    #[error("request is not an object")]
    NotObject,
    /// A part of the name array is not a string.
    #[error("request name has a non-string part")]
    NamePart,
    /// The name string is not valid text.
    #[error("bad name")]
    Name,
    /// No `name`.
    #[error("request has no name")]
    NoName,
    /// A `type` that is not a muxrpc call type.
    #[error("request has an unknown type")]
    UnknownType,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The peer answered with an error.
    #[error("peer error: {0}")]
    Remote(String),
    /// The connection closed before the call finished.
    #[error("connection closed")]
    Closed,
    /// The peer answered with something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Limits for one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest frame body accepted from the peer.
    pub max_body_len: usize,
    /// The link is dropped after this long without a byte from the peer.
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long drops the link.
    pub write_timeout: Duration,
    /// Most calls open at once (both directions).
    pub max_calls: usize,
    /// Items buffered per call before the reader waits (backpressure).
    pub call_buffer: usize,
    /// Frames queued for the writer before senders wait.
    pub write_queue: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_body_len: rpc::DEFAULT_MAX_BODY_LEN,
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(60),
            max_calls: 1024,
            call_buffer: 64,
            write_queue: 256,
        }
    }
}

/// Answers the peer's requests. `handle` must not block: spawn a task for work.
pub trait Handler: Send + Sync + 'static {
    /// A new request from the peer.
    fn handle(&self, call: InboundCall);
}

/// A request from the peer, with the stream to answer on.
#[derive(Debug)]
pub struct InboundCall {
    /// What was asked.
    pub request: Request,
    /// Where replies go (and, for sink/duplex, where the peer's items arrive).
    pub stream: Stream,
}

enum Out {
    Frame(Frame),
    Goodbye,
}

struct Slot {
    tx: Option<mpsc::Sender<Item>>,
    stream: bool,
    we_ended: bool,
    /// Dropped with the slot (the peer ended the call, or the session
    /// closed): what [`Sink::ended`] waits for.
    _ended: watch::Sender<()>,
}

impl Slot {
    /// A slot with its inbox `tx`; also returns what [`Sink::ended`] watches.
    fn new(tx: mpsc::Sender<Item>, stream: bool) -> (Slot, watch::Receiver<()>) {
        let (ended, watch) = watch::channel(());
        let slot = Slot {
            tx: Some(tx),
            stream,
            we_ended: false,
            _ended: ended,
        };
        (slot, watch)
    }
}

struct Table {
    numbers: RequestNumbers,
    slots: HashMap<i32, Slot>,
    closed: bool,
}

struct Inner {
    out: mpsc::Sender<Out>,
    table: Mutex<Table>,
    closed: watch::Sender<Option<String>>,
    peer: Option<PublicKey>,
    cfg: SessionConfig,
}

/// A handle to a running session; cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.inner.peer)
            .finish_non_exhaustive()
    }
}

/// The sending half of a call: cheap to clone, so one task can send while
/// another receives (two peers streaming to each other must never wait on
/// each other's reader).
#[derive(Debug, Clone)]
pub struct Sink {
    session: Session,
    /// The request number on the frames we send.
    wire: i32,
    /// Whether our frames carry the stream flag.
    stream: bool,
    /// Closed when the call's slot goes (`None` for a peer's async call,
    /// which has no slot: it lasts until we answer or the session ends).
    ended: Option<watch::Receiver<()>>,
}

/// One call's handle: send on it, receive from it, end it.
#[derive(Debug)]
pub struct Stream {
    sink: Sink,
    rx: Option<mpsc::Receiver<Item>>,
}

pub(crate) fn error_body(message: &str) -> Vec<u8> {
    let mut o = Object::new();
    o.push("name", Value::string("Error"));
    o.push("message", Value::string(message));
    o.push("stack", Value::string(""));
    Value::Object(o).to_compact().into_bytes()
}

/// Reads the message out of an error body (an object with `message`, or anything else).
pub(crate) fn error_message(body: &[u8]) -> String {
    match Value::parse(body) {
        Ok(v) => match v.as_object().and_then(|o| o.get("message")) {
            Some(m) => m.as_str().map_or_else(|| m.to_compact(), str::to_owned),
            None => v.to_compact(),
        },
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic while holding the lock cannot leave the table half-updated in a
    // way that matters more than losing the session, so keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    /// The session this call belongs to.
    pub fn session(&self) -> &Session {
        &self.sink.session
    }

    /// A sending handle for another task.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Receives the next item; `None` once the call is over (after `End` or
    /// `Error`) or the connection closed.
    pub async fn recv(&mut self) -> Option<Item> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => None,
        }
    }

    /// An item that has already arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Item> {
        self.rx.as_mut().and_then(|rx| rx.try_recv().ok())
    }

    /// Sends one item; see [`Sink::send`].
    pub async fn send(&self, body: Body) -> Result<(), CallError> {
        self.sink.send(body).await
    }

    /// Ends the call normally; see [`Sink::end`].
    pub async fn end(&self) -> Result<(), CallError> {
        self.sink.end().await
    }

    /// Ends the call with an error; see [`Sink::error`].
    pub async fn error(&self, message: &str) -> Result<(), CallError> {
        self.sink.error(message).await
    }
}

impl Sink {
    fn frame(&self, end: bool, body_type: BodyType, body: Vec<u8>) -> Frame {
        Frame {
            req: self.wire,
            stream: self.stream,
            end,
            body_type,
            body,
        }
    }

    /// Whether we may still send on this call.
    fn open_for_send(&self) -> Result<(), CallError> {
        let t = lock(&self.session.inner.table);
        if t.closed {
            return Err(CallError::Closed);
        }
        if self.stream {
            match t.slots.get(&-self.wire) {
                Some(slot) if !slot.we_ended => Ok(()),
                _ => Err(CallError::Closed),
            }
        } else {
            Ok(())
        }
    }

    /// Whether the call is still open for sending (the peer has not ended it).
    pub fn is_open(&self) -> bool {
        self.open_for_send().is_ok()
    }

    /// Waits until the call is over for the peer: it ended the call (our
    /// end is sent for us), or the session closed. A task that answers a
    /// call and waits for something else selects on this to end with it.
    pub async fn ended(&self) {
        match &self.ended {
            Some(watch) => {
                let mut watch = watch.clone();
                // Nothing is ever sent: this returns when the slot is dropped.
                let _ = watch.wait_for(|()| false).await;
            }
            None => {
                self.session.closed().await;
            }
        }
    }

    /// Sends one item (a stream item, or an async reply). Empty bodies are
    /// skipped: they would read as goodbye. Fails once the call has ended.
    pub async fn send(&self, body: Body) -> Result<(), CallError> {
        if body.bytes.is_empty() {
            return Ok(());
        }
        self.open_for_send()?;
        let frame = self.frame(false, body.body_type, body.bytes);
        self.session.send_frame(frame).await
    }

    /// Ends the call normally (stream end `true`); a no-op if already ended.
    pub async fn end(&self) -> Result<(), CallError> {
        self.finish(BodyType::Json, b"true".to_vec()).await
    }

    /// Ends the call with an error carrying `message`.
    pub async fn error(&self, message: &str) -> Result<(), CallError> {
        self.finish(BodyType::Json, error_body(message)).await
    }

    async fn finish(&self, body_type: BodyType, body: Vec<u8>) -> Result<(), CallError> {
        if self.stream {
            let mut t = lock(&self.session.inner.table);
            if t.closed {
                return Err(CallError::Closed);
            }
            match t.slots.get_mut(&-self.wire) {
                Some(slot) if !slot.we_ended => slot.we_ended = true,
                _ => return Ok(()),
            }
        }
        let frame = self.frame(true, body_type, body);
        self.session.send_frame(frame).await
    }
}

impl Session {
    /// Starts a session over `io`, encrypted with `outcome`'s box-stream keys,
    /// or in plain text when `outcome` is `None` (the local control socket).
    /// `handler` answers the peer's requests.
    pub fn start<S>(
        io: S,
        outcome: Option<&Outcome>,
        handler: Arc<dyn Handler>,
        cfg: SessionConfig,
    ) -> Session
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(cfg.write_queue);
        let (closed, _) = watch::channel(None);
        let session = Session {
            inner: Arc::new(Inner {
                out: out_tx,
                table: Mutex::new(Table {
                    numbers: RequestNumbers::new(),
                    slots: HashMap::new(),
                    closed: false,
                }),
                closed,
                peer: outcome.map(|o| o.peer),
                cfg,
            }),
        };
        let (reader, writer) = tokio::io::split(io);
        let (enc, dec) = match outcome {
            Some(o) => {
                let (e, d) = o.box_stream();
                (Some(e), Some(d))
            }
            None => (None, None),
        };
        let write_timeout = session.inner.cfg.write_timeout;
        let mut writer_task = tokio::spawn(write_loop(writer, enc, out_rx, write_timeout));
        let link = session.clone();
        tokio::spawn(async move {
            let mut writer_done = false;
            let result = tokio::select! {
                r = read_loop(reader, dec, &link, handler) => r,
                w = &mut writer_task => {
                    writer_done = true;
                    match w {
                        Ok(r) => r.map(|()| "we closed".to_owned()),
                        Err(_) => Err(LinkError::Internal("writer task failed")),
                    }
                }
            };
            let reason = match result {
                Ok(reason) => reason,
                Err(e) => e.to_string(),
            };
            link.shutdown(&reason);
            // Give the writer a moment to flush our goodbye, then stop it.
            if !writer_done
                && tokio::time::timeout(Duration::from_secs(2), &mut writer_task)
                    .await
                    .is_err()
            {
                writer_task.abort();
            }
            link.inner.closed.send_replace(Some(reason));
        });
        session
    }

    /// The peer's authenticated key (`None` on the local control socket).
    pub fn peer(&self) -> Option<&PublicKey> {
        self.inner.peer.as_ref()
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.table).closed
    }

    /// Waits until the session has ended; returns why.
    pub async fn closed(&self) -> String {
        let mut rx = self.inner.closed.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "session dropped".into();
            }
        }
    }

    /// Says goodbye: the peer sees a clean end, and the session closes.
    pub async fn close(&self) {
        let _ = self.inner.out.send(Out::Goodbye).await;
    }

    async fn send_frame(&self, frame: Frame) -> Result<(), CallError> {
        self.inner
            .out
            .send(Out::Frame(frame))
            .await
            .map_err(|_| CallError::Closed)
    }

    /// Opens a call of any type; use the returned stream to send and receive.
    pub async fn call(
        &self,
        name: &[&str],
        kind: CallType,
        args: Vec<Value>,
    ) -> Result<Stream, CallError> {
        let request = Request {
            name: name.iter().map(|s| (*s).to_owned()).collect(),
            kind,
            args,
        };
        let stream = kind != CallType::Async;
        let (tx, rx) = mpsc::channel(self.inner.cfg.call_buffer);
        let (n, ended) = {
            let mut t = lock(&self.inner.table);
            if t.closed {
                return Err(CallError::Closed);
            }
            if t.slots.len() >= self.inner.cfg.max_calls {
                return Err(CallError::Protocol("too many open calls".into()));
            }
            let n = t
                .numbers
                .next_number()
                .map_err(|e| CallError::Protocol(e.to_string()))?;
            let (slot, ended) = Slot::new(tx, stream);
            t.slots.insert(-n, slot);
            (n, ended)
        };
        self.send_frame(Frame {
            req: n,
            stream,
            end: false,
            body_type: BodyType::Json,
            body: request.to_body(),
        })
        .await?;
        Ok(Stream {
            sink: Sink {
                session: self.clone(),
                wire: n,
                stream,
                ended: Some(ended),
            },
            rx: Some(rx),
        })
    }

    /// An async call: returns the reply body, or the peer's error.
    pub async fn call_async(&self, name: &[&str], args: Vec<Value>) -> Result<Body, CallError> {
        let mut s = self.call(name, CallType::Async, args).await?;
        match s.recv().await {
            Some(Item::Data(body)) => Ok(body),
            Some(Item::Error(m)) => Err(CallError::Remote(m)),
            Some(Item::End) => Err(CallError::Protocol("async reply was a stream end".into())),
            None => Err(CallError::Closed),
        }
    }

    /// Marks the session closed and drops every call's inbox, so waiting
    /// callers see the end.
    fn shutdown(&self, reason: &str) {
        let slots = {
            let mut t = lock(&self.inner.table);
            t.closed = true;
            std::mem::take(&mut t.slots)
        };
        drop(slots);
        tracing::debug!(peer = ?self.inner.peer, reason, "session closed");
        let _ = self.inner.out.try_send(Out::Goodbye);
    }

    /// Routes one frame from the peer.
    async fn dispatch(&self, f: Frame, handler: &Arc<dyn Handler>) {
        enum Route {
            Deliver(mpsc::Sender<Item>, Item, Option<Frame>),
            Data(mpsc::Sender<Item>),
            New,
            Drop(Option<Frame>),
        }
        let key = f.req;
        let mut f = f;
        let route = {
            let mut t = lock(&self.inner.table);
            match t.slots.get_mut(&key) {
                Some(slot) if f.end || !slot.stream => {
                    let answer = (slot.stream && !slot.we_ended).then(|| Frame {
                        req: -key,
                        stream: true,
                        end: true,
                        body_type: BodyType::Json,
                        body: b"true".to_vec(),
                    });
                    let item = if !f.end {
                        Item::Data(Body {
                            body_type: f.body_type,
                            bytes: std::mem::take(&mut f.body),
                        })
                    } else if f.body == b"true" {
                        Item::End
                    } else {
                        Item::Error(error_message(&f.body))
                    };
                    let tx = t.slots.remove(&key).and_then(|s| s.tx);
                    match tx {
                        Some(tx) => Route::Deliver(tx, item, answer),
                        None => Route::Drop(answer),
                    }
                }
                Some(slot) => match &slot.tx {
                    Some(tx) => Route::Data(tx.clone()),
                    None => Route::Drop(None),
                },
                None if key > 0 && !f.end => Route::New,
                None => Route::Drop(None),
            }
        };
        match route {
            Route::Deliver(tx, item, answer) => {
                if let Some(a) = answer {
                    let _ = self.send_frame(a).await;
                }
                let _ = tx.send(item).await;
            }
            Route::Drop(answer) => {
                if let Some(a) = answer {
                    let _ = self.send_frame(a).await;
                }
            }
            Route::Data(tx) => {
                let body = Body {
                    body_type: f.body_type,
                    bytes: f.body,
                };
                if tx.send(Item::Data(body)).await.is_err() {
                    // Nobody listens any more: end our side so the peer stops.
                    let abort = {
                        let mut t = lock(&self.inner.table);
                        match t.slots.get_mut(&key) {
                            Some(slot) if !slot.we_ended => {
                                slot.we_ended = true;
                                slot.tx = None;
                                true
                            }
                            Some(slot) => {
                                slot.tx = None;
                                false
                            }
                            None => false,
                        }
                    };
                    if abort {
                        let _ = self
                            .send_frame(Frame {
                                req: -key,
                                stream: true,
                                end: true,
                                body_type: BodyType::Json,
                                body: b"true".to_vec(),
                            })
                            .await;
                    }
                }
            }
            Route::New => self.accept(f, handler).await,
        }
    }

    /// A new request from the peer: register it and hand it to the handler.
    async fn accept(&self, f: Frame, handler: &Arc<dyn Handler>) {
        let key = f.req;
        let refuse = |message: String| Frame {
            req: -key,
            stream: f.stream,
            end: true,
            body_type: BodyType::Json,
            body: error_body(&message),
        };
        let request = match Request::parse(&f.body) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.send_frame(refuse(e.to_string())).await;
                return;
            }
        };
        let (tx, rx) = mpsc::channel(self.inner.cfg.call_buffer);
        let (full, ended) = {
            let mut t = lock(&self.inner.table);
            let full = t.slots.len() >= self.inner.cfg.max_calls;
            let mut ended = None;
            if !full && f.stream {
                let (slot, watch) = Slot::new(tx, true);
                t.slots.insert(key, slot);
                ended = Some(watch);
            }
            (full, ended)
        };
        if full {
            let _ = self.send_frame(refuse("too many open calls".into())).await;
            return;
        }
        handler.handle(InboundCall {
            request,
            stream: Stream {
                sink: Sink {
                    session: self.clone(),
                    wire: -key,
                    stream: f.stream,
                    ended,
                },
                rx: f.stream.then_some(rx),
            },
        });
    }
}

/// Reads until goodbye, EOF, an error, or the idle timeout; returns why it stopped.
async fn read_loop<R: AsyncRead>(
    reader: R,
    mut dec: Option<Decryptor>,
    session: &Session,
    handler: Arc<dyn Handler>,
) -> Result<String, LinkError> {
    tokio::pin!(reader);
    let idle = session.inner.cfg.idle_timeout;
    let mut decoder = Decoder::with_max_body_len(session.inner.cfg.max_body_len);
    let mut buf = vec![0u8; 16 * 1024];
    let mut plain = Vec::with_capacity(16 * 1024);
    loop {
        let n = tokio::time::timeout(idle, reader.read(&mut buf))
            .await
            .map_err(|_| LinkError::Timeout("idle link"))??;
        if n == 0 {
            if let Some(d) = &dec {
                d.eof()?;
            }
            return Ok(if decoder.is_mid_frame() {
                "peer hung up mid-frame".into()
            } else {
                "peer hung up".into()
            });
        }
        plain.clear();
        let bytes: &[u8] = match &mut dec {
            Some(d) => {
                let mut pos = 0;
                while pos < n {
                    let used = d.decrypt(&buf[pos..n], &mut plain)?;
                    if used == 0 {
                        break;
                    }
                    pos += used;
                }
                &plain
            }
            None => &buf[..n],
        };
        let mut pos = 0;
        while pos < bytes.len() {
            let (used, item) = decoder.decode(&bytes[pos..])?;
            pos += used;
            match item {
                Some(rpc::DecoderItem::Frame(f)) => session.dispatch(f, &handler).await,
                Some(rpc::DecoderItem::Goodbye) => return Ok("peer said goodbye".into()),
                None if used == 0 => break,
                None => {}
            }
        }
        if dec.as_ref().is_some_and(Decryptor::is_finished) {
            return Ok("peer closed the box stream".into());
        }
    }
}

/// Writes queued frames, coalescing whatever is ready into one encrypted write.
async fn write_loop<W: AsyncWrite>(
    writer: W,
    mut enc: Option<Encryptor>,
    mut rx: mpsc::Receiver<Out>,
    write_timeout: Duration,
) -> Result<(), LinkError> {
    const COALESCE: usize = 64 * 1024;
    tokio::pin!(writer);
    let mut encoder = Encoder::new();
    let mut plain = Vec::with_capacity(COALESCE);
    let mut wire = Vec::with_capacity(COALESCE + 1024);
    while let Some(first) = rx.recv().await {
        plain.clear();
        let mut bye = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Out::Frame(f) => encoder.encode(&f, &mut plain)?,
                Out::Goodbye => {
                    bye = true;
                    break;
                }
            }
            if plain.len() < COALESCE {
                next = rx.try_recv().ok();
            }
        }
        if bye && !encoder.is_closed() {
            encoder.goodbye(&mut plain)?;
        }
        let out: &[u8] = match &mut enc {
            Some(e) => {
                wire.clear();
                if !plain.is_empty() {
                    e.encrypt(&plain, &mut wire)?;
                }
                if bye {
                    e.goodbye(&mut wire)?;
                }
                &wire
            }
            None => &plain,
        };
        tokio::time::timeout(write_timeout, async {
            writer.write_all(out).await?;
            writer.flush().await
        })
        .await
        .map_err(|_| LinkError::Timeout("write"))??;
        if bye {
            let _ = writer.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muxrpc::shs_driver::{client_handshake, server_handshake};
    use crate::net::shs::{Keypair, NetworkKey};

    /// Answers `echo` (async), `count` (source of n numbers), `pipe` (duplex
    /// echo) and an error for anything else.
    struct TestHandler;

    impl Handler for TestHandler {
        fn handle(&self, mut call: InboundCall) {
            tokio::spawn(async move {
                let s = &call.stream;
                match call.request.method().as_str() {
                    "echo" => s.send(Body::json(call.request.arg0())).await.unwrap(),
                    "count" => {
                        let n = match call.request.arg0() {
                            Value::Number(n) => *n as u32,
                            _ => 0,
                        };
                        for i in 0..n {
                            if s.send(Body::json(&Value::Number(f64::from(i))))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        s.end().await.unwrap();
                    }
                    "pipe" => {
                        while let Some(Item::Data(b)) = call.stream.recv().await {
                            call.stream.send(b).await.unwrap();
                        }
                        call.stream.end().await.unwrap();
                    }
                    m => {
                        let msg = format!("no such method: {m}");
                        s.error(&msg).await.unwrap();
                    }
                }
            });
        }
    }

    async fn pair() -> (Session, Session) {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        let server = Keypair::generate();
        let pk = *server.public();
        let t = Duration::from_secs(5);
        let net = NetworkKey::default();
        let (c, s) = tokio::join!(
            client_handshake(&mut a, net, Keypair::generate(), pk, t),
            server_handshake(&mut b, net, server, t, |_| true)
        );
        let h: Arc<dyn Handler> = Arc::new(TestHandler);
        let cfg = SessionConfig::default();
        (
            Session::start(a, Some(&c.unwrap()), h.clone(), cfg.clone()),
            Session::start(b, Some(&s.unwrap()), h, cfg),
        )
    }

    #[tokio::test]
    async fn async_call_and_remote_error() {
        let (a, _b) = pair().await;
        let body = a
            .call_async(&["echo"], vec![Value::string("hi")])
            .await
            .unwrap();
        assert_eq!(body.bytes, b"\"hi\"");
        let err = a.call_async(&["nope"], vec![]).await.unwrap_err();
        assert_eq!(err, CallError::Remote("no such method: nope".into()));
    }

    #[tokio::test]
    async fn source_streams_every_item_then_ends() {
        let (a, b) = pair().await;
        // Both directions at once, on the same connection.
        for s in [&a, &b] {
            let mut st = s
                .call(&["count"], CallType::Source, vec![Value::Number(5000.0)])
                .await
                .unwrap();
            let mut got = 0;
            loop {
                match st.recv().await.unwrap() {
                    Item::Data(body) => {
                        assert_eq!(body.bytes, got.to_string().as_bytes());
                        got += 1;
                    }
                    Item::End => break,
                    Item::Error(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, 5000);
            assert!(st.recv().await.is_none());
        }
        assert!(lock(&a.inner.table).slots.is_empty());
    }

    #[tokio::test]
    async fn aborting_a_source_stops_the_responder() {
        let (a, b) = pair().await;
        let mut st = a
            .call(&["count"], CallType::Source, vec![Value::Number(1e6)])
            .await
            .unwrap();
        assert!(matches!(st.recv().await, Some(Item::Data(_))));
        st.end().await.unwrap();
        // The responder answers our end with its own; the call disappears on both sides.
        loop {
            match st.recv().await {
                Some(Item::Data(_)) => continue,
                Some(Item::End) | None => break,
                Some(Item::Error(e)) => panic!("{e}"),
            }
        }
        for _ in 0..100 {
            if lock(&b.inner.table).slots.is_empty() && lock(&a.inner.table).slots.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("calls left open after abort");
    }

    #[tokio::test]
    async fn duplex_round_trip_and_big_binary_items() {
        let (a, _b) = pair().await;
        let mut st = a.call(&["pipe"], CallType::Duplex, vec![]).await.unwrap();
        let big = vec![7u8; 100_000];
        st.send(Body::binary(big.clone())).await.unwrap();
        st.send(Body::json(&Value::Bool(true))).await.unwrap();
        assert_eq!(st.recv().await, Some(Item::Data(Body::binary(big))));
        assert_eq!(
            st.recv().await,
            Some(Item::Data(Body::json(&Value::Bool(true))))
        );
        st.end().await.unwrap();
        assert_eq!(st.recv().await, Some(Item::End));
    }

    #[tokio::test]
    async fn close_ends_pending_calls_on_both_sides() {
        let (a, b) = pair().await;
        let mut st = a.call(&["pipe"], CallType::Duplex, vec![]).await.unwrap();
        b.close().await;
        assert_eq!(st.recv().await, None);
        let reason = a.closed().await;
        assert!(reason.contains("goodbye"), "{reason}");
        assert!(matches!(
            a.call_async(&["echo"], vec![]).await,
            Err(CallError::Closed)
        ));
    }
}
