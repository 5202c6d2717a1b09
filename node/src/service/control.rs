//! The local control socket, `ssb-node.sock` in the data dir: while `run`
//! holds the store, the other CLI commands talk to it here, over muxrpc in
//! plain text (like ssb-server's no-auth unix socket). Only the owner can
//! connect (mode 0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::api::Api;
use super::command::{self, Command, Reply, ReplyError};
use super::Node;
use crate::feed::json::{Object, Value};
use crate::muxrpc::{
    Body, CallError, CallType, Handler, InboundCall, Item, Session, SessionConfig,
};
use crate::sneakernet::reconcile::Step;

/// The socket's file name in the data dir.
pub const SOCKET_NAME: &str = "ssb-node.sock";

/// The socket path for a data dir.
pub fn socket_path(data_root: &Path) -> PathBuf {
    data_root.join(SOCKET_NAME)
}

fn config() -> SessionConfig {
    SessionConfig {
        // The CLI may wait long on `sync`; the socket is local and trusted.
        idle_timeout: Duration::from_secs(24 * 3600),
        ..SessionConfig::default()
    }
}

/// Binds the socket (replacing a stale one left by a dead node) and serves it.
pub async fn listen(node: Arc<Node>, path: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another node is running on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    Session::start(stream, None, Api::local(node.clone()), config());
                }
                Err(e) => {
                    tracing::warn!("control socket accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

/// Refuses every request: the CLI side offers nothing to the node.
struct Refuse;

impl Handler for Refuse {
    fn handle(&self, call: InboundCall) {
        tokio::spawn(async move {
            let _ = call.stream.error("the CLI answers no requests").await;
        });
    }
}

/// Connects to a running node's socket; `None` if no node is running there.
pub async fn connect(path: &Path) -> Option<Session> {
    let stream = UnixStream::connect(path).await.ok()?;
    Some(Session::start(stream, None, Arc::new(Refuse), config()))
}

/// Runs the control command a request names: as a `source` call that
/// streams progress for the commands that have it, else as an async call.
pub async fn serve(node: &Arc<Node>, method: &str, call: InboundCall) {
    let command = match Command::parse(method, &call.request.args) {
        Ok(c) => c,
        Err(e) => {
            let _ = call.stream.error(&e.to_string()).await;
            return;
        }
    };
    if call.request.kind == CallType::Source && command.streams_progress() {
        return stream(node, command, call).await;
    }
    let reply = command.run(node, |_| {}).await.and_then(|r| r.to_value());
    let _ = match reply {
        Ok(v) => call.stream.send(Body::json(&v)).await,
        Err(e) => call.stream.error(&e.to_string()).await,
    };
}

/// Runs `command` as a `source` call: progress items while it works, then
/// the report, then the end.
async fn stream(node: &Arc<Node>, command: Command, call: InboundCall) {
    let sink = call.stream.sink();
    let (tx, mut rx) = mpsc::channel(1);
    let work = command.run(node, command::forward(tx));
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r.and_then(|r| r.to_value()),
            Some(step) = rx.recv() => {
                let item = serde_json::json!({ "progress": step });
                // A CLI that went away stops getting progress; the work goes on.
                let _ = sink.send(Body::json_text(item.to_string())).await;
            }
        }
    };
    let _ = match result {
        Ok(report) => {
            let mut o = Object::new();
            o.push("report", report);
            match sink.send(Body::json(&Value::Object(o))).await {
                Ok(()) => sink.end().await,
                Err(e) => Err(e),
            }
        }
        Err(e) => sink.error(&e.to_string()).await,
    };
}

/// Why a command sent to a running node failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The node refused or failed the command; its message.
    #[error("{0}")]
    Refused(String),
    /// The connection to the node failed.
    #[error(transparent)]
    Call(CallError),
    /// The node's answer is not what the command answers.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// An item of the progress stream is not JSON, or not progress.
    #[error("the node sent a bad {method} item: {detail}")]
    Item {
        /// The method.
        method: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The stream ended before the report came.
    #[error("the node ended {0} without a report")]
    NoReport(&'static str),
}

impl From<CallError> for SendError {
    fn from(e: CallError) -> SendError {
        match e {
            CallError::Remote(m) => SendError::Refused(m),
            other => SendError::Call(other),
        }
    }
}

/// Sends `command` to the node on `session` and reads its answer; the
/// commands that stream progress tell `progress` the steps the node sends.
/// A publish too large for one request goes as several, in order.
pub async fn send(
    session: &Session,
    command: &Command,
    progress: &mut dyn FnMut(Step),
) -> Result<Reply, SendError> {
    let requests = command.requests();
    if requests.len() == 1 {
        return send_one(session, command, progress).await;
    }
    let mut ids = Vec::new();
    for part in &requests {
        match send_one(session, part, progress).await? {
            Reply::Published(mut more) => ids.append(&mut more),
            other => return Ok(other),
        }
    }
    Ok(Reply::Published(ids))
}

/// Sends one request and reads its answer.
async fn send_one(
    session: &Session,
    command: &Command,
    progress: &mut dyn FnMut(Step),
) -> Result<Reply, SendError> {
    let method = command.method();
    let name: Vec<&str> = method.split('.').collect();
    if !command.streams_progress() {
        let body = session.call_async(&name, command.to_args()).await?;
        return Ok(Reply::from_value(command, body.to_value()?)?);
    }
    let mut stream = session
        .call(&name, CallType::Source, command.to_args())
        .await?;
    let bad = |detail: String| SendError::Item { method, detail };
    loop {
        match stream.recv().await {
            Some(Item::Data(Body { bytes, .. })) => {
                let item = Value::parse(&bytes).map_err(|e| bad(e.to_string()))?;
                let o = item
                    .as_object()
                    .ok_or_else(|| bad("not an object".into()))?;
                if let Some(report) = o.get("report") {
                    return Ok(Reply::from_value(command, report.clone())?);
                }
                if let Some(step) = o.get("progress") {
                    let step =
                        serde_json::from_str(&step.to_compact()).map_err(|e| bad(e.to_string()))?;
                    progress(step);
                }
            }
            Some(Item::End) => return Err(SendError::NoReport(method)),
            Some(Item::Error(e)) => return Err(SendError::Refused(e)),
            None => return Err(SendError::Call(CallError::Closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_store::BlobStore;
    use crate::feed::Keypair;
    use crate::service::config::Settings;
    use crate::store::Store;

    /// A node serving the control API on one end of a socket pair, and the
    /// CLI's session on the other.
    fn pair(dir: &Path) -> (Arc<Node>, Session) {
        let node = Node::new(
            Keypair::from_seed(&[3; 32]),
            Store::open(&dir.join("db")).unwrap(),
            BlobStore::open(&dir.join("blobs")).unwrap(),
            Settings::default(),
        )
        .unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        Session::start(a, None, Api::local(node.clone()), config());
        (node, Session::start(b, None, Arc::new(Refuse), config()))
    }

    fn post(n: usize, text: &str) -> Value {
        let c = format!(r#"{{"type":"post","n":{n},"text":"{text}"}}"#);
        Value::parse(c.as_bytes()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_sent_on_the_socket_run_on_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let (node, session) = pair(dir.path());
        let publish = Command::Publish {
            contents: vec![post(1, "hello")],
        };
        let Reply::Published(ids) = send(&session, &publish, &mut |_| {}).await.unwrap() else {
            panic!("publish answers ids")
        };
        assert_eq!(ids.len(), 1);
        let get = Command::Get { id: ids[0] };
        match send(&session, &get, &mut |_| {}).await.unwrap() {
            Reply::Message(text) => {
                assert!(
                    text.starts_with(&format!(r#"{{"key":"{}","#, ids[0])),
                    "{text}"
                )
            }
            other => panic!("{other:?}"),
        }
        // More than one request holds: sent as several, stored in order.
        let big: Vec<Value> = (0..200).map(|n| post(n, &"x".repeat(6000))).collect();
        let publish = Command::Publish { contents: big };
        assert!(publish.requests().len() > 1);
        let Reply::Published(ids) = send(&session, &publish, &mut |_| {}).await.unwrap() else {
            panic!("publish answers ids")
        };
        assert_eq!(ids.len(), 200);
        assert_eq!(node.replica().seq(node.id()).unwrap(), 201);
        let last = node.replica().store().get(&ids[199]).unwrap().unwrap();
        assert!(last.to_kvt_json().contains(r#""n":199"#));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_control_request_gets_a_clear_error_and_the_socket_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (_node, session) = pair(dir.path());
        let refused = |r: Result<Body, CallError>| match r {
            Err(CallError::Remote(m)) => m,
            other => panic!("{other:?}"),
        };
        let e = refused(session.call_async(&["get"], vec![Value::Number(3.0)]).await);
        assert_eq!(e, "get expects a message id");
        let e = refused(session.call_async(&["shutdown"], vec![]).await);
        assert_eq!(e, "method:shutdown is not in list of allowed methods");
        let e = refused(
            session
                .call_async(&["sync"], vec![Value::string("net:nowhere")])
                .await,
        );
        assert!(e.starts_with("net:nowhere: "), "{e}");
        let missing = "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256";
        let e = send(
            &session,
            &Command::Get {
                id: missing.parse().unwrap(),
            },
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, SendError::Refused(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("message {missing} is not in the store")
        );
        // The session still answers.
        assert!(matches!(
            send(&session, &Command::Clock, &mut |_| {}).await,
            Ok(Reply::Clock(_))
        ));
    }
}
