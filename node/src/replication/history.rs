//! `createHistoryStream`: serving it (to any peer, and to our own CLI), and
//! legacy replication that pulls each replicated feed with it.
//!
//! Bounds follow the JS code, not the guide: `sequence` is inclusive (≥)
//! (SPEC-CHECKLIST §5, §12), so a puller asks for `have + 1`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::link::{LinkCtx, LinkStats, ReplicationError};
use crate::feed::json::{Object, Value};
use crate::feed::{FeedId, Invalid, Message};
use crate::muxrpc::{Body, CallError, CallType, Item, Session, Sink};
use crate::replica::{Replica, ReplicaError, READ_CHUNK};

/// Messages stored per append when pulling.
const BATCH: usize = 1024;
/// Most feeds pulled at once on one link.
const MAX_PULLS: usize = 512;

/// Why a `createHistoryStream` request is refused (the asker's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryArgsError {
    /// The first argument is not an object.
    #[error("createHistoryStream expects an options object")]
    NoOptions,
    /// No `id`.
    #[error("createHistoryStream needs an id")]
    NoId,
    /// An `id` that is not a feed id.
    #[error("createHistoryStream: id is not a feed id")]
    BadId,
    /// A count that is not a whole number.
    #[error("createHistoryStream: {0} must be a whole number")]
    NotWhole(&'static str),
    /// `sequence` and its alias `seq` disagree.
    #[error("createHistoryStream: sequence and seq differ")]
    SeqDiffers,
}

/// Parsed `createHistoryStream` options.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryOpts {
    /// The feed.
    pub id: FeedId,
    /// First sequence sent (inclusive).
    pub sequence: u32,
    /// Most messages sent (old and live together).
    pub limit: Option<u64>,
    /// Keep the stream open and send new messages as they arrive.
    pub live: bool,
    /// Send what is already stored.
    pub old: bool,
    /// Send `{key, value, timestamp}` rather than bare values.
    pub keys: bool,
}

impl HistoryOpts {
    /// Parses the first argument; the error is the text sent back to the peer.
    pub fn parse(arg: &Value) -> Result<HistoryOpts, HistoryArgsError> {
        let o = arg.as_object().ok_or(HistoryArgsError::NoOptions)?;
        let id = o
            .get("id")
            .and_then(Value::as_str)
            .ok_or(HistoryArgsError::NoId)?
            .parse::<FeedId>()
            .map_err(|_| HistoryArgsError::BadId)?;
        let num = |key: &'static str| -> Result<Option<f64>, HistoryArgsError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => Ok(Some(*n)),
                Some(_) => Err(HistoryArgsError::NotWhole(key)),
            }
        };
        let sequence = match (num("sequence")?, num("seq")?) {
            (Some(a), Some(b)) if a != b => return Err(HistoryArgsError::SeqDiffers),
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => 0.0,
        };
        let flag = |key: &str, default: bool| match o.get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        };
        Ok(HistoryOpts {
            id,
            sequence: sequence.min(f64::from(u32::MAX)) as u32,
            limit: num("limit")?.map(|n| n as u64),
            live: flag("live", false),
            old: flag("old", true),
            keys: flag("keys", true),
        })
    }

    /// The options object as sent when pulling.
    pub fn to_value(&self) -> Value {
        let mut o = Object::new();
        o.push("id", Value::string(&self.id.to_string()));
        o.push("sequence", Value::Number(f64::from(self.sequence)));
        if let Some(l) = self.limit {
            o.push("limit", Value::Number(l as f64));
        }
        o.push("live", Value::Bool(self.live));
        o.push("old", Value::Bool(self.old));
        o.push("keys", Value::Bool(self.keys));
        Value::Object(o)
    }
}

/// Sends messages from `*next` on, up to what is stored (or the limit);
/// returns false once the peer is gone or the limit is reached.
async fn send_from(
    node: &Replica,
    opts: &HistoryOpts,
    sink: &Sink,
    next: &mut u32,
    sent: &mut u64,
    ctx: Option<&LinkCtx>,
) -> Result<bool, ReplicaError> {
    loop {
        if opts.limit.is_some_and(|l| *sent >= l) {
            return Ok(false);
        }
        let chunk = node.read_chunk(opts.id, *next).await?;
        if chunk.is_empty() {
            return Ok(true);
        }
        let n = chunk.len();
        for m in chunk {
            if opts.limit.is_some_and(|l| *sent >= l) {
                return Ok(false);
            }
            let text = if opts.keys { m.to_kvt_json() } else { m.json };
            if sink.send(Body::json_text(text)).await.is_err() {
                return Ok(false);
            }
            *sent += 1;
            *next += 1;
            if let Some(ctx) = ctx {
                LinkStats::add(&ctx.stats.msgs_out, 1);
            }
        }
        if let Some(ctx) = ctx {
            ctx.progress.touch();
        }
        if n < READ_CHUNK {
            return Ok(true);
        }
    }
}

/// Answers a `createHistoryStream` call on `sink`.
pub async fn serve(node: Arc<Replica>, ctx: Option<Arc<LinkCtx>>, arg: &Value, sink: Sink) {
    let opts = match HistoryOpts::parse(arg) {
        Ok(o) => o,
        Err(e) => {
            let _ = sink.error(&e.to_string()).await;
            return;
        }
    };
    if node.is_blocked(&opts.id) || ctx.as_ref().is_some_and(|c| node.is_blocked(&c.peer)) {
        let _ = sink.end().await;
        return;
    }
    let behind = ctx.as_ref().map(|c| {
        c.progress.serving_behind.fetch_add(1, Ordering::SeqCst);
        c.clone()
    });
    let caught_up = |behind: &Option<Arc<LinkCtx>>| {
        if let Some(c) = behind {
            c.progress.serving_behind.fetch_sub(1, Ordering::SeqCst);
            c.progress.touch();
        }
    };
    // Subscribe before reading, so nothing appended in between is missed.
    let mut events = opts.live.then(|| node.subscribe());
    let mut next = opts.sequence.max(1);
    let mut sent = 0u64;
    if !opts.old {
        next = node.seq(&opts.id).unwrap_or(0) + 1;
    }
    let go_on = if opts.old {
        send_from(&node, &opts, &sink, &mut next, &mut sent, ctx.as_deref()).await
    } else {
        Ok(true)
    };
    caught_up(&behind);
    match go_on {
        Err(e) => {
            let _ = sink.error(&e.to_string()).await;
            return;
        }
        Ok(false) => {
            let _ = sink.end().await;
            return;
        }
        Ok(true) => {}
    }
    let Some(events) = events.as_mut() else {
        let _ = sink.end().await;
        return;
    };
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            // The peer ended the call or left while nothing changed.
            () = sink.ended() => return,
        };
        let relevant = match ev {
            Ok(a) => a.feed == opts.id,
            Err(broadcast::error::RecvError::Lagged(_)) => true,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if relevant {
            match send_from(&node, &opts, &sink, &mut next, &mut sent, ctx.as_deref()).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = sink.end().await;
                    return;
                }
                Err(e) => {
                    let _ = sink.error(&e.to_string()).await;
                    return;
                }
            }
        }
    }
}

/// Legacy replication: one createHistoryStream per replicated feed (live
/// unless the link is one-shot), started again for feeds that join the set.
pub async fn pull_all(ctx: Arc<LinkCtx>, session: Session) {
    let node = ctx.replica.clone();
    let mut graph = node.graph_changes();
    let mut running: HashSet<FeedId> = HashSet::new();
    loop {
        let set = node.replicate_set();
        for feed in set.feeds.keys() {
            if running.len() >= MAX_PULLS {
                tracing::warn!(peer = %ctx.peer, "more than {MAX_PULLS} feeds; pulling the first only");
                break;
            }
            if running.insert(*feed) {
                ctx.progress.legacy_pending.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(pull(ctx.clone(), session.clone(), *feed));
            }
        }
        ctx.progress.touch();
        tokio::select! {
            changed = graph.changed() => if changed.is_err() { return },
            _ = session.closed() => return,
        }
    }
}

/// Pulls one feed from the peer, from what we hold on.
async fn pull(ctx: Arc<LinkCtx>, session: Session, feed: FeedId) {
    let result = pull_inner(&ctx, &session, feed).await;
    if let Err(e) = result {
        tracing::debug!(peer = %ctx.peer, %feed, "createHistoryStream ended: {e}");
    }
    ctx.progress.legacy_pending.fetch_sub(1, Ordering::SeqCst);
    ctx.progress.touch();
}

async fn pull_inner(
    ctx: &LinkCtx,
    session: &Session,
    feed: FeedId,
) -> Result<(), ReplicationError> {
    let node = &ctx.replica;
    let opts = HistoryOpts {
        id: feed,
        sequence: node.seq(&feed)? + 1,
        limit: None,
        live: !ctx.one_shot,
        old: true,
        keys: false,
    };
    let mut stream = session
        .call(
            &["createHistoryStream"],
            CallType::Source,
            vec![opts.to_value()],
        )
        .await?;
    loop {
        let mut batch = Vec::new();
        let mut end = None;
        match stream.recv().await {
            Some(Item::Data(b)) => push_msg(&mut batch, b),
            Some(Item::End) | None => end = Some(Ok(())),
            Some(Item::Error(e)) => end = Some(Err(ReplicationError::PeerSaid(e))),
        }
        while end.is_none() && batch.len() < BATCH {
            match stream.try_recv() {
                Some(Item::Data(b)) => push_msg(&mut batch, b),
                Some(Item::End) => end = Some(Ok(())),
                Some(Item::Error(e)) => end = Some(Err(ReplicationError::PeerSaid(e))),
                None => break,
            }
        }
        if !batch.is_empty() {
            let batch: Vec<Message> = batch.into_iter().filter(|m| m.author() == feed).collect();
            let report = node.append(batch).await?;
            LinkStats::add(&ctx.stats.msgs_in, report.added as u64);
            if let Some((_, why)) = &report.first_rejection {
                tracing::warn!(peer = %ctx.peer, %feed, "refused messages: {why}");
            }
            ctx.progress.touch();
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// Why a history stream item is not a message (the peer's fault).
#[derive(Debug, thiserror::Error)]
enum InvalidMessage {
    #[error(transparent)]
    Json(CallError),
    #[error(transparent)]
    Message(Invalid),
}

fn push_msg(batch: &mut Vec<Message>, body: Body) {
    let parsed = body.to_value().map_err(InvalidMessage::Json).and_then(|v| {
        // Accept `{key, value}` too, from peers that ignore keys:false.
        let v = match v.as_object().and_then(|o| o.get("value")) {
            Some(inner) if v.as_object().is_some_and(|o| o.get("key").is_some()) => inner.clone(),
            _ => v,
        };
        Message::from_value(v, None).map_err(InvalidMessage::Message)
    });
    match parsed {
        Ok(m) => batch.push(m),
        Err(e) => tracing::debug!("invalid message in history stream: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muxrpc::{Handler, InboundCall, SessionConfig};

    struct Ignore;

    impl Handler for Ignore {
        fn handle(&self, _call: InboundCall) {}
    }

    /// Serves `createHistoryStream` on `node` and says when the answer ends.
    struct ServeHistory {
        node: Arc<Replica>,
        ended: tokio::sync::mpsc::UnboundedSender<()>,
    }

    impl Handler for ServeHistory {
        fn handle(&self, call: InboundCall) {
            let (node, ended) = (self.node.clone(), self.ended.clone());
            tokio::spawn(async move {
                let arg = call.request.arg0().clone();
                serve(node, None, &arg, call.stream.sink()).await;
                let _ = ended.send(());
            });
        }
    }

    #[tokio::test]
    async fn a_live_history_answer_ends_with_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::replica::temp_replica(dir.path());
        let (ended, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let handler = ServeHistory {
            node: node.clone(),
            ended,
        };
        let _server = Session::start(b, None, Arc::new(handler), SessionConfig::default());
        let client = Session::start(a, None, Arc::new(Ignore), SessionConfig::default());
        let opts = HistoryOpts {
            id: FEED.parse().unwrap(),
            sequence: 1,
            limit: None,
            live: true,
            old: true,
            keys: false,
        };
        let stream = client
            .call(
                &["createHistoryStream"],
                CallType::Source,
                vec![opts.to_value()],
            )
            .await
            .unwrap();
        // The peer ends the call but keeps the session, while other feeds
        // keep appending (none of them the one asked for).
        stream.end().await.unwrap();
        let appends = async {
            for i in 0..100 {
                let text = Value::string(&format!("other feed {i}"));
                let mut c = Object::new();
                c.push("type", Value::string("post"));
                c.push("text", text);
                node.publish(vec![Value::Object(c)]).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            _ = ended_rx.recv() => {}
            () = appends => panic!("the live createHistoryStream answer outlived its call"),
        }
        assert!(!client.is_closed());
    }

    const FEED: &str = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519";

    #[test]
    fn options_follow_the_js_defaults_and_aliases() {
        let v = Value::parse(format!(r#"{{"id":"{FEED}"}}"#).as_bytes()).unwrap();
        let o = HistoryOpts::parse(&v).unwrap();
        assert_eq!(
            (o.sequence, o.limit, o.live, o.old, o.keys),
            (0, None, false, true, true)
        );
        let v = Value::parse(
            format!(r#"{{"id":"{FEED}","seq":5,"limit":2,"live":true,"keys":false}}"#).as_bytes(),
        )
        .unwrap();
        let o = HistoryOpts::parse(&v).unwrap();
        assert_eq!(
            (o.sequence, o.limit, o.live, o.keys),
            (5, Some(2), true, false)
        );
        assert_eq!(HistoryOpts::parse(&o.to_value()).unwrap(), o);
        for bad in [
            format!(r#"{{"id":"{FEED}","seq":5,"sequence":6}}"#),
            r#"{"id":"@nope"}"#.to_owned(),
            r#"{}"#.to_owned(),
            format!(r#"{{"id":"{FEED}","limit":-1}}"#),
        ] {
            assert!(
                HistoryOpts::parse(&Value::parse(bad.as_bytes()).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
