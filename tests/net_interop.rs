//! Network interop of `ssb-node` with the real ssb-server@16.0.1 on 127.0.0.1:
//! feeds of 10,000 messages both ways by EBT and by legacy createHistoryStream replication
//! (ssb-server without ssb-ebt), blobs both ways (one of exactly 3 × 64 KiB), and the delay
//! from a publish on one side to its arrival on the other while connected.
//!
//! Our node is driven through its CLI only: `init`, `follow`, `publish`, `run --listen
//! 127.0.0.1:0 --no-discovery` (the address comes from its `listening …` line), `sync ADDR`,
//! `clock`, `feed`, `blobs`. The server is `tests/js/server.js` (see `support/ssb_server.rs`).

#[path = "support/ssb_server.rs"]
mod ssb_server;
mod support;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use ssb_server::{Options, SsbServer};

/// Messages in each replicated feed.
const N: u64 = 10_000;
/// Deadline for a CLI command that does not replicate.
const SHORT: Duration = Duration::from_secs(30);
/// Deadline for replicating one 10,000-message feed.
const PULL: Duration = Duration::from_secs(90);
/// The most a message may take to reach the other side while connected.
const MAX_DELAY_MS: u64 = 1000;

// ---------------------------------------------------------------------------------------------
// Helpers: our node, its `run` process, deadlines.

/// Runs `cmd` with `input` on stdin; panics if it is not done within `timeout`.
fn run_with_deadline(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let reader = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Calls `f` every 10 ms until it returns `Ok`; panics after `timeout` with its last `Err`.
fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {state}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Milliseconds since the Unix epoch (comparable with server.js's `…At` times).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// One of our nodes: a data dir `…/data` with an identity, and room for logs beside it.
struct Node {
    dir: tempfile::TempDir,
    id: String,
}

impl Node {
    /// A fresh node (`ssb-node init`).
    fn init() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("ssb-node-")
            .tempdir()
            .expect("temp dir");
        let mut node = Node {
            dir,
            id: String::new(),
        };
        node.id = node.ok(&["init"], SHORT).trim().to_owned();
        assert!(
            node.id.starts_with('@') && node.id.ends_with(".ed25519"),
            "init printed {:?}",
            node.id
        );
        node
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `ssb-node --data D ARGS…`, which must succeed within `timeout`; its stdout.
    fn ok(&self, args: &[&str], timeout: Duration) -> String {
        self.ok_with_input(args, None, timeout)
    }

    fn ok_with_input(&self, args: &[&str], input: Option<Vec<u8>>, timeout: Duration) -> String {
        let mut cmd = Command::new(support::ssb_node());
        cmd.arg("--data").arg(self.data()).args(args);
        let out = run_with_deadline(&mut cmd, input, timeout);
        assert!(
            out.status.success(),
            "ssb-node {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 output")
    }

    /// The latest sequence number this node holds for `feed` (0 if none), from `ssb-node clock`.
    fn seq_of(&self, feed: &str) -> u64 {
        let clock: Value = serde_json::from_str(&self.ok(&["clock"], SHORT)).expect("clock JSON");
        clock[feed].as_u64().unwrap_or(0)
    }

    /// Publishes one message; returns its `%id`.
    fn publish(&self, content: &Value) -> String {
        let id = self.ok(&["publish", "--content", &content.to_string()], SHORT);
        assert!(id.trim().starts_with('%'), "publish printed {id:?}");
        id.trim().to_owned()
    }

    /// Starts `ssb-node run --listen 127.0.0.1:0 --no-discovery EXTRA…`.
    fn run(&self, extra: &[&str]) -> Running {
        Running::start(self, extra)
    }
}

/// A running `ssb-node run`; stopped with SIGTERM (then SIGKILL) when dropped.
struct Running {
    child: Child,
    address: String,
}

impl Running {
    fn start(node: &Node, extra: &[&str]) -> Running {
        let log_path = node.dir.path().join("run.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(support::ssb_node())
            .arg("--data")
            .arg(node.data())
            .args(["run", "--listen", "127.0.0.1:0", "--no-discovery"])
            // Sticks: a (missing) folder of its own, never the machine's mount roots.
            .arg("--mount-root")
            .arg(node.dir.path().join("sticks"))
            .args(extra)
            .env("SSB_NODE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start ssb-node run");
        let line = support::stdout_lines(&mut child).recv_timeout(SHORT);
        let key = node.id.trim_start_matches('@').trim_end_matches(".ed25519");
        match line {
            Ok(line)
                if line.starts_with("listening net:127.0.0.1:")
                    && line.ends_with(&format!("~shs:{key}")) =>
            {
                Running {
                    child,
                    address: line["listening ".len()..].to_owned(),
                }
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ssb-node run: expected `listening net:127.0.0.1:PORT~shs:{key}`, got {other:?}; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        crate::support::wait_or_kill(&mut self.child, Duration::from_secs(5));
    }
}

/// The counts of a `sync` line:
/// `synced with @KEY.ed25519: received N messages, B blobs; sent M messages, C blobs`.
#[derive(Debug, PartialEq)]
struct Synced {
    peer: String,
    received: u64,
    received_blobs: u64,
    sent: u64,
    sent_blobs: u64,
}

fn parse_synced(out: &str) -> Synced {
    let parse = || -> Option<Synced> {
        let rest = out.trim().strip_prefix("synced with ")?;
        let (peer, rest) = rest.split_once(": received ")?;
        let (received, sent) = rest.split_once("; sent ")?;
        let counts = |s: &str| -> Option<(u64, u64)> {
            let (m, b) = s.split_once(" messages, ")?;
            Some((m.parse().ok()?, b.strip_suffix(" blobs")?.parse().ok()?))
        };
        let ((received, received_blobs), (sent, sent_blobs)) = (counts(received)?, counts(sent)?);
        Some(Synced {
            peer: peer.to_owned(),
            received,
            received_blobs,
            sent,
            sent_blobs,
        })
    };
    parse().unwrap_or_else(|| panic!("unexpected sync output: {out:?}"))
}

/// `ssb-node sync ADDR` from `node` to `srv`; returns the parsed line and the time it took.
fn sync(node: &Node, srv: &SsbServer) -> (Synced, Duration) {
    let start = Instant::now();
    let out = node.ok(
        &[
            "sync",
            srv.address(),
            "--timeout",
            &PULL.as_secs().to_string(),
        ],
        PULL + Duration::from_secs(30),
    );
    let took = start.elapsed();
    let synced = parse_synced(&out);
    assert_eq!(synced.peer, srv.id(), "sync names the peer");
    (synced, took)
}

/// The part of a `{"key","value","timestamp"}` line before the timestamp (the receiver's clock).
fn key_and_value(line: &str) -> &str {
    &line[..line.rfind(",\"timestamp\":").expect("timestamp field")]
}

/// Both sides hold `feed` with `n` messages and identical keys and values, in order.
fn assert_same_feed(node: &Node, srv: &mut SsbServer, feed: &str, n: u64) {
    let path = srv.dir().join("export.jsonl");
    let exported = srv.ok(json!({"cmd": "export", "id": feed, "path": path}));
    assert_eq!(exported["count"], n, "ssb-server's copy of {feed}");
    let theirs = std::fs::read_to_string(&path).expect("export file");
    let ours = node.ok(&["feed", feed], PULL);
    let (theirs, ours): (Vec<&str>, Vec<&str>) = (
        theirs.lines().map(key_and_value).collect(),
        ours.lines().map(key_and_value).collect(),
    );
    assert_eq!(ours.len() as u64, n, "our copy of {feed}");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "message {} of {feed} differs", i + 1);
    }
}

/// `len` deterministic bytes: sha256(seed ‖ counter) blocks.
fn blob_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend(
            Sha256::new()
                .chain_update(seed)
                .chain_update(i.to_le_bytes())
                .finalize(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// The SSB blob id of `bytes`: `&` + base64(sha256) + `.sha256`.
fn blob_id(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "&{}.sha256",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Blob sizes used both ways: exactly 3 × 64 KiB and an odd size.
///
/// ssb-server reads blobs with pull-file in 64 KiB buffers; for an exact multiple it sends one
/// more muxrpc stream frame with an empty body before the end frame. packet-stream-codec (JS)
/// decodes any zero-length frame as GOODBYE, so two ssb-servers cannot exchange such a blob at
/// all. Our node must take that empty frame as an empty chunk (only 9 zero bytes are goodbye),
/// and must not send empty chunks itself.
const BLOB_SIZES: [usize; 2] = [196_608, 70_001];

fn mode(ebt: bool) -> &'static str {
    if ebt {
        "EBT"
    } else {
        "legacy"
    }
}

fn server(ebt: bool) -> SsbServer {
    SsbServer::start(if ebt {
        Options::default()
    } else {
        Options::legacy()
    })
}

// ---------------------------------------------------------------------------------------------
// The harness itself: two real ssb-servers replicate, and --no-ebt really means createHistoryStream.

#[test]
fn harness_ssb_servers_replicate_with_and_without_ebt() {
    // (source has ebt, fetcher has ebt) → EBT; fetcher without ebt → createHistoryStream both
    // ways; fetcher with ebt against a source without it → ebt.replicate fails, legacy fallback.
    for (src_ebt, dst_ebt) in [(true, true), (true, false), (false, true)] {
        let mut src = server(src_ebt);
        let mut dst = server(dst_ebt);
        src.ok(json!({"cmd": "publishMany", "n": 500}));
        let src_id = src.id().to_owned();
        let dst_id = dst.id().to_owned();
        dst.ok(json!({"cmd": "follow", "id": src_id}));
        src.ok(json!({"cmd": "follow", "id": dst_id}));
        dst.ok(json!({"cmd": "connect", "address": src.address()}));
        dst.wait_for(&src_id, 501, Duration::from_secs(30));
        src.wait_for(&dst_id, 1, Duration::from_secs(30));
        let (s, d) = (
            src.ok(json!({"cmd": "stats"})),
            dst.ok(json!({"cmd": "stats"})),
        );
        let what = format!("source ebt={src_ebt}, fetcher ebt={dst_ebt}: {s} {d}");
        if src_ebt && dst_ebt {
            assert_eq!(
                (s["ebtIn"].as_u64(), s["historyIn"].as_u64()),
                (Some(1), Some(0)),
                "{what}"
            );
        } else {
            assert_eq!(s["ebtIn"], 0, "{what}");
            assert!(s["historyIn"].as_u64() >= Some(1), "{what}");
            assert!(d["historyIn"].as_u64() >= Some(1), "{what}");
            assert_eq!(d["fallbacks"], u64::from(dst_ebt), "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Our node pulls a 10,000-message ssb-server feed.

fn node_pulls_server_feed(ebt: bool) {
    let mut srv = server(ebt);
    let srv_id = srv.id().to_owned();
    let made = srv.ok(json!({"cmd": "publishMany", "n": N}));
    assert_eq!(made["last"], N);
    let node = Node::init();
    node.ok(&["follow", &srv_id], SHORT); // our seq 1
    srv.ok(json!({"cmd": "follow", "id": node.id})); // server seq N + 1

    let (synced, took) = sync(&node, &srv);
    println!(
        "{}: ssb-node pulled {} messages from ssb-server in {:.2} s",
        mode(ebt),
        synced.received,
        took.as_secs_f64()
    );
    assert_eq!(
        synced,
        Synced {
            peer: srv_id.clone(),
            received: N + 1,
            received_blobs: 0,
            sent: 1,
            sent_blobs: 0,
        }
    );
    assert_eq!(node.seq_of(&srv_id), N + 1);
    assert_same_feed(&node, &mut srv, &srv_id, N + 1);
    // The other way round: the server got our follow message.
    srv.wait_for(&node.id, 1, Duration::from_secs(5));
    let check = node.ok(&["check"], PULL);
    assert!(check.contains(": ok"), "check: {check}");

    let stats = srv.ok(json!({"cmd": "stats"}));
    if ebt {
        assert!(stats["ebtIn"].as_u64() >= Some(1), "no EBT stream: {stats}");
        assert_eq!(
            stats["historyIn"], 0,
            "EBT peer used createHistoryStream: {stats}"
        );
    } else {
        assert!(stats["historyIn"].as_u64() >= Some(1), "{stats}");
    }
}

#[test]
fn ssb_node_pulls_10000_messages_from_ssb_server_by_ebt() {
    node_pulls_server_feed(true);
}

#[test]
fn ssb_node_pulls_10000_messages_from_ssb_server_by_legacy_replication() {
    node_pulls_server_feed(false);
}

// ---------------------------------------------------------------------------------------------
// ssb-server follows and pulls our 10,000-message feed.

fn server_pulls_node_feed(ebt: bool) {
    let node = Node::init();
    let mut srv = server(ebt);
    let srv_id = srv.id().to_owned();
    node.ok(&["follow", &srv_id], SHORT); // our seq 1
    let lines: String = (1..=N)
        .map(|i| {
            json!({"type": "post", "text": format!("message {i} from ssb-node: ß 😀 “quoted” \u{2028}")})
                .to_string()
                + "\n"
        })
        .collect();
    let ids = node.ok_with_input(&["publish", "--stdin"], Some(lines.into_bytes()), PULL);
    assert_eq!(ids.lines().filter(|l| l.starts_with('%')).count() as u64, N);
    srv.ok(json!({"cmd": "follow", "id": node.id}));

    let run = node.run(&[]);
    let start = Instant::now();
    srv.ok(json!({"cmd": "connect", "address": run.address}));
    srv.wait_for(&node.id, N + 1, PULL);
    println!(
        "{}: ssb-server pulled {} messages from ssb-node in {:.2} s",
        mode(ebt),
        N + 1,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(srv.seq_of(&node.id), N + 1);
    assert_same_feed(&node, &mut srv, &node.id, N + 1);
    if ebt {
        let stats = srv.ok(json!({"cmd": "stats"}));
        assert_eq!(
            stats["fallbacks"], 0,
            "ssb-node refused ebt.replicate: {stats}"
        );
    }
}

#[test]
fn ssb_server_pulls_10000_messages_from_ssb_node_by_ebt() {
    server_pulls_node_feed(true);
}

#[test]
fn ssb_server_pulls_10000_messages_from_ssb_node_by_legacy_replication() {
    server_pulls_node_feed(false);
}

// ---------------------------------------------------------------------------------------------
// Blobs both ways.

/// A post that mentions each blob, as patchwork writes them.
fn mentions(blobs: &[(String, usize)]) -> Value {
    let links: Vec<Value> = blobs
        .iter()
        .map(|(id, size)| json!({"link": id, "size": size, "type": "application/octet-stream"}))
        .collect();
    json!({"type": "post", "text": "some blobs", "mentions": links})
}

#[test]
fn ssb_node_fetches_blobs_from_ssb_server() {
    let mut srv = server(true);
    let srv_id = srv.id().to_owned();
    let blobs: Vec<(Vec<u8>, String)> = BLOB_SIZES
        .iter()
        .map(|&len| {
            let bytes = blob_bytes("from ssb-server", len);
            let id = blob_id(&bytes);
            (bytes, id)
        })
        .collect();
    for (bytes, id) in &blobs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let added = srv.ok(json!({"cmd": "blobAdd", "base64": b64}));
        assert_eq!(added["id"], id.as_str(), "ssb-server's blob id");
    }
    let listed: Vec<(String, usize)> = blobs.iter().map(|(b, id)| (id.clone(), b.len())).collect();
    srv.ok(json!({"cmd": "publish", "content": mentions(&listed)}));

    let node = Node::init();
    node.ok(&["follow", &srv_id], SHORT);
    let (synced, _) = sync(&node, &srv);
    assert_eq!(
        (synced.received, synced.received_blobs),
        (1, 2),
        "{synced:?}"
    );
    for (bytes, id) in &blobs {
        assert_eq!(node.ok(&["blobs", "has", id], SHORT).trim(), "true", "{id}");
        let out = node.dir.path().join("blob.out");
        node.ok(
            &["blobs", "get", id, "--out", out.to_str().expect("utf8")],
            SHORT,
        );
        let got = std::fs::read(&out).expect("blob file");
        assert_eq!(got.len(), bytes.len(), "{id}");
        assert_eq!(blob_id(&got), *id, "hash of what arrived");
        assert!(got == *bytes, "{id}: bytes differ");
    }
}

#[test]
fn ssb_server_fetches_blobs_from_ssb_node() {
    let node = Node::init();
    let mut srv = server(true);
    let srv_id = srv.id().to_owned();
    node.ok(&["follow", &srv_id], SHORT); // our seq 1
    let mut listed = Vec::new();
    for (i, len) in BLOB_SIZES.into_iter().enumerate() {
        let bytes = blob_bytes("from ssb-node", len);
        let file = node.dir.path().join(format!("blob{i}"));
        std::fs::write(&file, &bytes).expect("write blob file");
        let id = node.ok(&["blobs", "add", file.to_str().expect("utf8")], SHORT);
        assert_eq!(id.trim(), blob_id(&bytes), "our blob id");
        listed.push((id.trim().to_owned(), len, hex(&Sha256::digest(&bytes))));
    }
    let plain: Vec<(String, usize)> = listed
        .iter()
        .map(|(id, len, _)| (id.clone(), *len))
        .collect();
    node.publish(&mentions(&plain)); // our seq 2
    srv.ok(json!({"cmd": "follow", "id": node.id}));

    let run = node.run(&[]);
    srv.ok(json!({"cmd": "connect", "address": run.address}));
    srv.wait_for(&node.id, 2, Duration::from_secs(30));
    for (id, len, sha) in &listed {
        let want = srv.ok(json!({"cmd": "blobWant", "id": id, "timeoutMs": 20_000}));
        println!(
            "ssb-server fetched {id} ({len} bytes) in {} ms",
            want["elapsedMs"]
        );
        let got = srv.ok(json!({"cmd": "blobGet", "id": id}));
        assert_eq!(got["size"], *len as u64, "{id}");
        assert_eq!(
            got["sha256"],
            sha.as_str(),
            "hash of what arrived at ssb-server"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// While connected, a new message reaches the other side within a second.

fn live_delay(ebt: bool) {
    let mut srv = server(ebt);
    let srv_id = srv.id().to_owned();
    let node = Node::init();
    node.ok(&["follow", &srv_id], SHORT);
    let mut our_seq = 1;
    srv.ok(json!({"cmd": "follow", "id": node.id}));
    let run = node.run(&["--connect", srv.address()]);

    // Warm up: one message each way, so the connection and replication streams are up.
    let warm = srv.ok(json!({"cmd": "publish", "content": {"type": "post", "text": "warm-up"}}));
    let srv_seq = warm["seq"].as_u64().expect("seq");
    node.publish(&json!({"type": "post", "text": "warm-up"}));
    our_seq += 1;
    wait_until(
        Duration::from_secs(30),
        "the warm-up message at ssb-node",
        || {
            let seq = node.seq_of(&srv_id);
            if seq >= srv_seq {
                Ok(())
            } else {
                Err(format!("at seq {seq} of {srv_seq}"))
            }
        },
    );
    srv.wait_for(&node.id, our_seq, Duration::from_secs(30));

    for round in 1..=3 {
        // ssb-server → ssb-node: from the server's publish call to our `clock` showing it
        // (polled, so this is an upper bound).
        let text = format!("from ssb-server, round {round}");
        let r = srv.ok(json!({"cmd": "publish", "content": {"type": "post", "text": text}}));
        let (seq, started) = (
            r["seq"].as_u64().expect("seq"),
            r["startedAt"].as_u64().expect("startedAt"),
        );
        wait_until(
            Duration::from_secs(10),
            "a live message at ssb-node",
            || {
                let have = node.seq_of(&srv_id);
                if have >= seq {
                    Ok(())
                } else {
                    Err(format!("at seq {have} of {seq}"))
                }
            },
        );
        let to_node = now_ms().saturating_sub(started);

        // ssb-node → ssb-server: from just before `ssb-node publish` to the server writing it.
        let before = now_ms();
        node.publish(&json!({"type": "post", "text": format!("from ssb-node, round {round}")}));
        our_seq += 1;
        let w = srv.wait_for(&node.id, our_seq, Duration::from_secs(10));
        let arrived = w["arrivedAt"].as_u64().unwrap_or_else(now_ms);
        let to_server = arrived.saturating_sub(before);

        println!(
            "{}: round {round}: ssb-server → ssb-node {to_node} ms, ssb-node → ssb-server {to_server} ms",
            mode(ebt)
        );
        assert!(
            to_node < MAX_DELAY_MS && to_server < MAX_DELAY_MS,
            "{}: a live message took {to_node} ms to ssb-node and {to_server} ms to ssb-server",
            mode(ebt)
        );
    }
    drop(run);
}

#[test]
fn live_messages_arrive_within_a_second_by_ebt() {
    live_delay(true);
}

#[test]
fn live_messages_arrive_within_a_second_by_legacy_replication() {
    live_delay(false);
}

#[test]
fn sync_line_parses() {
    let s = parse_synced(
        "synced with @AAAA.ed25519: received 10000 messages, 2 blobs; sent 1 messages, 0 blobs\n",
    );
    assert_eq!(
        s,
        Synced {
            peer: "@AAAA.ed25519".into(),
            received: 10_000,
            received_blobs: 2,
            sent: 1,
            sent_blobs: 0
        }
    );
    assert!(
        std::panic::catch_unwind(|| parse_synced("synced with @A: received 1 messages")).is_err()
    );
}
