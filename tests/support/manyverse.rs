//! A client on Manyverse's stack (`tests/js/manyverse.js`: secret-stack, ssb-db2 8, ssb-ebt 9,
//! ssb-replication-scheduler 3, ssb-friends 5, ssb-conn 6, ssb-invite-client, ssb-blobs 2) as a
//! child process driven with JSON commands, one line each way, listening on 127.0.0.1, or on a
//! host of a test LAN ([`Manyverse::start_in`]).
//!
//! Include it next to `mod support;` with `#[path = "support/manyverse.rs"] mod manyverse;`.
//! Every command and answer is described at the top of `tests/js/manyverse.js`.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::io::Write as _;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{json, Value};

/// A running Manyverse-stack client; closed (stdin EOF, then killed) when dropped.
pub struct Manyverse {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    dir: tempfile::TempDir,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

impl Manyverse {
    /// Starts a client in a new temp dir on a free port and waits until it listens.
    pub fn start() -> Manyverse {
        Manyverse::spawn(None, "127.0.0.1", None, &[])
    }

    /// Starts a client inside the network namespace `netns` (a test LAN's host), listening on
    /// `host`, its address there, with Manyverse's LAN discovery (ssb-lan) on, so it finds,
    /// dials and is dialled on that LAN only. `secret` is the text of its ssb-keys secret file
    /// (else a new identity); `env` adds variables, e.g. `DEBUG=ssb:conn*` for ssb-conn's log.
    pub fn start_in(
        netns: &str,
        host: &str,
        secret: Option<&str>,
        env: &[(&str, &str)],
    ) -> Manyverse {
        Manyverse::spawn(Some(netns), host, secret, env)
    }

    fn spawn(
        netns: Option<&str>,
        host: &str,
        secret: Option<&str>,
        env: &[(&str, &str)],
    ) -> Manyverse {
        let dir = tempfile::Builder::new()
            .prefix("manyverse-")
            .tempdir()
            .unwrap();
        let port = free_port().to_string();
        let data = dir.path().join("ssb");
        if let Some(secret) = secret {
            fs::create_dir_all(&data).unwrap();
            fs::write(data.join("secret"), secret).unwrap();
        }
        let stderr = fs::File::create(dir.path().join("stderr")).unwrap();
        let mut args = vec![
            "--dir",
            data.to_str().unwrap(),
            "--port",
            &port,
            "--host",
            host,
        ];
        let mut command = match netns {
            Some(netns) => {
                args.push("--lan");
                crate::support::node_script_in(netns, "manyverse.js", &args)
            }
            None => crate::support::node_script("manyverse.js", &args),
        };
        let mut child = command
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node tests/js/manyverse.js: {e}"));
        let stdin = child.stdin.take();
        let lines = crate::support::stdout_lines(&mut child);
        let mut m = Manyverse {
            child,
            stdin,
            lines,
            dir,
            id: String::new(),
        };
        let ready = m
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("manyverse.js not ready ({e}): {}", m.stderr_tail()));
        let v: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(v["ready"], true, "{ready}");
        m.id = v["id"].as_str().unwrap().to_owned();
        m
    }

    /// The client's feed id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends one command; its answer (maybe `{"error":…}`).
    pub fn cmd(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        match self.lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => serde_json::from_str(&line).unwrap(),
            Err(e) => panic!("no answer to {cmd} ({e}): {}", self.stderr_tail()),
        }
    }

    /// Like [`cmd`](Self::cmd), panicking on an error answer.
    pub fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.cmd(cmd.clone());
        assert!(
            answer.get("error").is_none(),
            "{cmd}: {answer}\n{}",
            self.stderr_tail()
        );
        answer
    }

    /// Waits until the client holds message `seq` of `feed`.
    pub fn wait_for(&mut self, feed: &str, seq: u64, timeout: Duration) {
        self.ok(json!({"cmd": "waitFor", "id": feed, "seq": seq, "timeoutMs": timeout.as_millis() as u64}));
    }

    /// The latest sequence the client holds of `feed`.
    pub fn seq_of(&mut self, feed: &str) -> u64 {
        self.ok(json!({"cmd": "clock"}))["clock"][feed]
            .as_u64()
            .unwrap_or(0)
    }

    /// The last 4 KB of its stderr.
    pub fn stderr_tail(&self) -> String {
        let bytes = fs::read(self.dir.path().join("stderr")).unwrap_or_default();
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(4096)..]).into_owned()
    }

    /// Its whole stderr.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Manyverse {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
