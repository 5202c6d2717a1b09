//! A real ssb-server@16.0.1 (`tests/js/server.js`) as a child process that a test drives with
//! JSON commands, one line each way. It listens on 127.0.0.1 only, with LAN broadcast off.
//!
//! Include it next to `mod support;`:
//!
//! ```ignore
//! mod support;
//! #[path = "support/ssb_server.rs"]
//! mod ssb_server;
//! ```
//!
//! Every command and answer is described at the top of `tests/js/server.js`.
#![allow(dead_code)]

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{json, Value};

/// How to start an [`SsbServer`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Load ssb-ebt (the default). Without it the server replicates by createHistoryStream only.
    pub ebt: bool,
    /// An ssb-keys `secret` file to use as the server's identity (default: a new one).
    pub secret: Option<PathBuf>,
    /// How long to wait for the server to listen.
    pub ready_timeout: Duration,
    /// How long [`SsbServer::cmd`] waits for an answer before it panics. Commands that take a
    /// `timeoutMs` should be given less than this.
    pub cmd_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ebt: true,
            secret: None,
            ready_timeout: Duration::from_secs(30),
            cmd_timeout: Duration::from_secs(120),
        }
    }
}

impl Options {
    /// The default options without ssb-ebt (`server.js --no-ebt`).
    pub fn legacy() -> Self {
        Options {
            ebt: false,
            ..Options::default()
        }
    }
}

/// A running ssb-server; it is closed (stdin EOF, then killed if it lingers) when dropped.
pub struct SsbServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    dir: tempfile::TempDir,
    id: String,
    address: String,
    cmd_timeout: Duration,
}

/// A free TCP port on 127.0.0.1 (free when this returns; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl SsbServer {
    /// Starts a server in a new temp dir on free ports and waits until it listens.
    /// Panics with the server's stderr if it does not get ready in time.
    pub fn start(opts: Options) -> SsbServer {
        // A port taken between free_port() and the server's bind is the one expected failure:
        // try again with new ports.
        let mut last_err = String::new();
        for _ in 0..3 {
            match Self::try_start(&opts) {
                Ok(server) => return server,
                Err(e) if e.contains("EADDRINUSE") => last_err = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_err}")
    }

    fn try_start(opts: &Options) -> Result<SsbServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("ssb-server-")
            .tempdir()
            .expect("temp dir");
        if let Some(secret) = &opts.secret {
            fs::copy(secret, dir.path().join("secret")).expect("copy the secret file");
        }
        let (port, ws_port) = (free_port().to_string(), free_port().to_string());
        let dir_str = dir.path().to_str().expect("utf8 temp path").to_owned();
        let mut args = vec![
            "--dir",
            dir_str.as_str(),
            "--port",
            port.as_str(),
            "--ws-port",
            ws_port.as_str(),
        ];
        if !opts.ebt {
            args.push("--no-ebt");
        }
        let stderr = fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = crate::support::node_script("server.js", &args)
            .env("HOME", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node tests/js/server.js: {e}"));
        let stdin = child.stdin.take();
        let lines = crate::support::stdout_lines(&mut child);
        let mut server = SsbServer {
            child,
            stdin,
            lines,
            dir,
            id: String::new(),
            address: String::new(),
            cmd_timeout: opts.cmd_timeout,
        };
        let ready = match server.lines.recv_timeout(opts.ready_timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(server.failure(&format!(
                    "ssb-server not listening after {:?}",
                    opts.ready_timeout
                )))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(server.failure("ssb-server exited before it was ready"))
            }
        };
        let v: Value = serde_json::from_str(&ready)
            .map_err(|e| server.failure(&format!("bad ready line {ready:?}: {e}")))?;
        match (
            v["ready"].as_bool(),
            v["id"].as_str(),
            v["address"].as_str(),
        ) {
            (Some(true), Some(id), Some(address)) => {
                server.id = id.to_owned();
                server.address = address.to_owned();
                Ok(server)
            }
            _ => Err(server.failure(&format!("unexpected ready line {ready}"))),
        }
    }

    /// Sends one command and returns its answer (which may be `{"error":…}`).
    /// Panics with the server's stderr if no answer comes within the command timeout.
    pub fn cmd(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let sent = writeln!(stdin, "{cmd}").and_then(|()| stdin.flush());
        if let Err(e) = sent {
            panic!("{}", self.failure(&format!("cannot send {cmd}: {e}")));
        }
        match self.lines.recv_timeout(self.cmd_timeout) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("{}", self.failure(&format!("bad answer {line:?}: {e}")))
            }),
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}",
                self.failure(&format!("no answer to {cmd} in {:?}", self.cmd_timeout))
            ),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}", self.failure(&format!("server exited during {cmd}")))
            }
        }
    }

    /// Like [`cmd`](Self::cmd), but panics (with the server's stderr) on an `{"error":…}` answer.
    pub fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.cmd(cmd.clone());
        if let Some(e) = answer.get("error") {
            panic!("{}", self.failure(&format!("{cmd} failed: {e}")));
        }
        answer
    }

    /// Waits until the server holds message `seq` of `feed`; returns the `waitFor` answer
    /// (`{seq, elapsedMs, arrivedAt}`). Panics on timeout with the feed's current seq.
    pub fn wait_for(&mut self, feed: &str, seq: u64, timeout: Duration) -> Value {
        self.ok(json!({
            "cmd": "waitFor",
            "id": feed,
            "seq": seq,
            "timeoutMs": timeout.as_millis() as u64,
        }))
    }

    /// The latest sequence number the server holds for `feed` (0 if none).
    pub fn seq_of(&mut self, feed: &str) -> u64 {
        self.ok(json!({"cmd": "clock"}))["clock"][feed]
            .as_u64()
            .unwrap_or(0)
    }

    /// The server's feed id, `@….ed25519`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The server's multiserver address, `net:127.0.0.1:PORT~shs:KEY`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The process id of the node process that runs the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's data directory (also its HOME).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// A failure message with the last 4 KB of the server's stderr.
    fn failure(&mut self, what: &str) -> String {
        let stderr = fs::read(self.dir.path().join("stderr")).unwrap_or_default();
        let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(4096)..]);
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!("exited with {s}"),
            _ => "still running".to_owned(),
        };
        format!(
            "{what} (ssb-server {status}; dir {})\n--- stderr ---\n{tail}",
            self.dir.path().display()
        )
    }
}

impl Drop for SsbServer {
    fn drop(&mut self) {
        // EOF on stdin closes the server cleanly; kill it if it takes too long.
        drop(self.stdin.take());
        crate::support::wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}
