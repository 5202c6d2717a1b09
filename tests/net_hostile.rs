//! Hostile peers against a real `ssb-node run` on 127.0.0.1: a wrong network
//! key, garbage after a good handshake, a peer that stalls mid-handshake, and
//! 200 connections at once; EBT notes naming 300,000 feeds, 20,000 bogus blob
//! wants, a reconnecting slowloris and 150 sessions from random keys (both
//! from other loopback addresses, 127.0.0.x). After each, the node is still
//! up, honest peers still replicate, memory and what is stored stay bounded,
//! and the log says why connections were dropped, in a few lines. Calls a
//! peer opens and ends, and its session, leave no task behind.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssb_node::feed::json::{Object, Value};
use ssb_node::feed::{BlobId, FeedId};
use ssb_node::muxrpc::{
    client_handshake, Body, CallType, Handler, InboundCall, Item, LinkError, Session, SessionConfig,
};
use ssb_node::net::ebt::{clock_value, request_args, Note};
use ssb_node::net::shs::{Keypair, NetworkKey};
use support::running::{sigterm, Node};
use support::ssb_at;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn with_one_message(dir: &Path, config: &str) -> Node {
    let node = Node::start(dir, config);
    let out = ssb_at(
        &node.data,
        &[
            "publish",
            "--content",
            r#"{"type":"post","text":"still here"}"#,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    node
}

/// The log names the drop with `reason`, the node is up, and it still serves a sync.
fn logged_and_still_serving(node: &mut Node, dir: &Path, reason: &str) {
    assert_eq!(
        node.wait_log(reason, 1, Duration::from_secs(5)),
        1,
        "{}",
        node.log()
    );
    assert!(node.alive());
    node.check_serves(dir);
}

#[test]
fn wrong_network_key_is_refused_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "");
    let err = rt().block_on(async {
        let mut s = TcpStream::connect(node.socket).await.unwrap();
        client_handshake(
            &mut s,
            NetworkKey([9; 32]),
            Keypair::generate(),
            node.key,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
    });
    assert!(err.to_string().contains("hung up"), "{err}");
    logged_and_still_serving(
        &mut node,
        dir.path(),
        "dropped: handshake: peer hello does not authenticate",
    );
}

#[test]
fn garbage_after_the_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "");
    rt().block_on(async {
        let mut s = TcpStream::connect(node.socket).await.unwrap();
        client_handshake(
            &mut s,
            NetworkKey::default(),
            Keypair::generate(),
            node.key,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        s.write_all(&[0x5a; 4096]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    logged_and_still_serving(&mut node, dir.path(), "peer disconnected: box-stream");
}

#[test]
fn a_stalled_handshake_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "handshake_timeout = 1\n");
    let started = Instant::now();
    rt().block_on(async {
        let mut s = TcpStream::connect(node.socket).await.unwrap();
        // Half of msg1, then nothing.
        s.write_all(&[1u8; 32]).await.unwrap();
        let mut buf = [0u8; 1];
        // The node hangs up on us once its deadline passes.
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut s, &mut buf),
        )
        .await
        .expect("the node never hung up")
        .unwrap_or(0);
        assert_eq!(n, 0);
    });
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    logged_and_still_serving(&mut node, dir.path(), "dropped: timed out: handshake");
}

#[test]
fn two_hundred_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "handshake_timeout = 2\n");
    let (rss_before, _) = node.memory_kib();
    // 200 at once: a third complete the handshake and send garbage, a third
    // use the wrong network key, a third stall.
    rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let socket = node.socket;
            let key = node.key;
            tasks.push(tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(socket).await else {
                    return;
                };
                match i % 3 {
                    0 | 1 => {
                        let net = if i % 3 == 0 {
                            NetworkKey::default()
                        } else {
                            NetworkKey([3; 32])
                        };
                        let hs = client_handshake(
                            &mut s,
                            net,
                            Keypair::generate(),
                            key,
                            Duration::from_secs(10),
                        );
                        // Those that get through send garbage.
                        if hs.await.is_ok() {
                            let _ = s.write_all(&[0xa5; 1000]).await;
                        }
                    }
                    _ => {
                        let _ = s.write_all(&[7u8; 10]).await;
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    // Every connection is accounted for in the log with its reason.
    let reasons = [
        "dropped: handshake:",
        "dropped: timed out: handshake",
        "dropped: too many",
        "peer disconnected:",
        "dropped: i/o:",
        "dropped: handshake: peer hung up",
    ];
    // Past the first few, drops are counted in one summary line per 10 s.
    let deadline = Instant::now() + Duration::from_secs(25);
    let total = loop {
        let log = node.log();
        let one_by_one = log
            .lines()
            .filter(|l| reasons.iter().any(|r| l.contains(r)))
            .count();
        let summarized: usize = log
            .lines()
            .filter_map(|l| l.split("dropped: ").nth(1))
            .filter_map(|r| {
                r.strip_suffix("")
                    .and_then(|r| r.split(" more connections").next())
            })
            .filter_map(|n| n.parse::<usize>().ok())
            .sum();
        let total = one_by_one + summarized;
        if total >= 200 || Instant::now() > deadline {
            break total;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(node.alive(), "the node died:\n{}", node.log());
    assert!(
        total >= 200,
        "only {total} of 200 drops were logged:\n{}",
        node.log()
    );
    let (rss_after, hwm) = node.memory_kib();
    println!("RSS before {rss_before} KiB, after {rss_after} KiB, peak {hwm} KiB");
    assert!(hwm < 128 * 1024, "peak RSS {hwm} KiB");
    node.check_serves(dir.path());
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A loopback source address other than 127.0.0.1.
fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// A TCP connection to `to` from `from` (any port).
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Answers the node's calls: `blobs.createWants` with `{}` and then `wants`
/// (at distance 1), every other call never; all calls stay open.
struct Hostile {
    wants: Vec<BlobId>,
}

impl Handler for Hostile {
    fn handle(&self, call: InboundCall) {
        let wants = if call.request.method() == "blobs.createWants" {
            self.wants.clone()
        } else {
            Vec::new()
        };
        tokio::spawn(async move {
            if !wants.is_empty() {
                let _ = call
                    .stream
                    .send(Body::json(&Value::Object(Object::new())))
                    .await;
                for chunk in wants.chunks(100) {
                    let mut o = Object::new();
                    for id in chunk {
                        o.push(&id.to_string(), Value::Number(-1.0));
                    }
                    if call
                        .stream
                        .send(Body::json(&Value::Object(o)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            let _keep_open = call;
            std::future::pending::<()>().await;
        });
    }
}

/// A hostile peer's session with `node`: `keys`, from `from`, answering the node's calls with `handler`.
async fn hostile_session(
    node: &Node,
    keys: Keypair,
    from: IpAddr,
    handler: Hostile,
) -> Result<Session, LinkError> {
    let mut s = connect_from(from, node.socket).await?;
    let outcome = client_handshake(
        &mut s,
        NetworkKey::default(),
        keys,
        node.key,
        Duration::from_secs(10),
    )
    .await?;
    Ok(Session::start(
        s,
        Some(&outcome),
        Arc::new(handler),
        SessionConfig::default(),
    ))
}

/// A feed id made from `n`.
fn feed_n(round: u32, n: u32) -> FeedId {
    let mut k = [0xeeu8; 32];
    k[..4].copy_from_slice(&round.to_be_bytes());
    k[4..8].copy_from_slice(&n.to_be_bytes());
    FeedId(k)
}

/// Bytes the process passed to write(2) so far, from /proc/PID/io.
fn written(node: &Node) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", node.child.id())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Opens `ebt.replicate` on the node as `keys`, sends notes for `feeds`
/// feeds it does not replicate (in clocks of 10,000), then asks for the node's
/// own feed and waits for its first message: every note before it was read.
async fn ebt_flood(node: &Node, keys: Keypair, round: u32, feeds: u32, own: &FeedId) {
    let session = hostile_session(node, keys, loopback(1), Hostile { wants: Vec::new() })
        .await
        .unwrap();
    let mut stream = session
        .call(
            &["ebt", "replicate"],
            CallType::Duplex,
            vec![request_args()],
        )
        .await
        .unwrap();
    let note = Note::Have {
        seq: 5,
        receive: true,
    };
    for start in (0..feeds).step_by(10_000) {
        let ids: Vec<FeedId> = (start..(start + 10_000).min(feeds))
            .map(|n| feed_n(round, n))
            .collect();
        let v = clock_value(ids.iter().map(|f| (f, note)));
        stream.send(Body::json(&v)).await.unwrap();
    }
    let ask = Note::Have {
        seq: 0,
        receive: true,
    };
    stream
        .send(Body::json(&clock_value([(own, ask)])))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match stream.recv().await {
                Some(Item::Data(b)) if b.bytes.starts_with(b"{\"previous\":") => return,
                Some(Item::Data(_)) => {}
                other => panic!("the node ended ebt: {other:?}"),
            }
        }
    })
    .await
    .expect("the node never sent its own message");
    session.close().await;
    session.closed().await;
    // Let the goodbye reach the node before this thread blocks.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[test]
fn ebt_notes_for_300000_feeds_store_and_keep_little() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "");
    let own: FeedId = stdout(&ssb_at(&node.data, &["whoami"])).parse().unwrap();
    let hostile = Keypair::generate();
    let hostile_id = FeedId(hostile.public().0);
    let mut figures = Vec::new();
    rt().block_on(async {
        for round in 0..3u32 {
            let before = written(&node);
            ebt_flood(&node, hostile.clone(), round, 300_000, &own).await;
            let n = round as usize + 1;
            assert!(
                node.wait_log("peer disconnected", n, Duration::from_secs(30)) >= n,
                "{}",
                node.log()
            );
            // The clock is saved as the link ends.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (rss, hwm) = node.memory_kib();
            figures.push((written(&node) - before, rss, hwm));
        }
    });
    for (i, (bytes, rss, hwm)) in figures.iter().enumerate() {
        println!("connection {i}: {bytes} bytes written, RSS {rss} KiB, peak {hwm} KiB");
    }
    assert!(node.alive());
    node.check_serves(dir.path());
    // Stop the node and read what it stored of the hostile peer.
    sigterm(&node.child);
    node.child.wait().unwrap();
    let store = ssb_node::store::Store::open(&node.data.join("db")).unwrap();
    let name = ssb_node::replication::ebt_link::remote_name(&hostile_id);
    let clock = store.remote_clock(&name).unwrap();
    assert!(
        clock.len() <= 1 && clock.keys().all(|f| *f == own),
        "{} entries stored for the hostile peer",
        clock.len()
    );
    for (bytes, _, _) in &figures {
        assert!(
            *bytes < 2 * 1024 * 1024,
            "{bytes} bytes written for one connection"
        );
    }
}

#[test]
fn clocks_are_kept_for_a_bounded_number_of_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = with_one_message(dir.path(), "");
    let own: FeedId = stdout(&ssb_at(&node.data, &["whoami"])).parse().unwrap();
    let peers = ssb_node::replication::ebt_link::REMEMBERED_PEERS as u32 + 40;
    rt().block_on(async {
        for i in 0..peers {
            // Each names a feed it has and the node's own; a changed clock is saved.
            ebt_flood(&node, Keypair::generate(), 1_000 + i, 1, &own).await;
        }
    });
    node.wait_log("peer disconnected", peers as usize, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.alive());
    sigterm(&node.child);
    node.child.wait().unwrap();
    let store = ssb_node::store::Store::open(&node.data.join("db")).unwrap();
    let kept = store.remote_names(b"peer:").unwrap().len();
    assert!(
        kept <= ssb_node::replication::ebt_link::REMEMBERED_PEERS,
        "{kept} peers' clocks kept"
    );
}

#[test]
fn bogus_blob_wants_do_not_push_out_our_own() {
    let dir = tempfile::tempdir().unwrap();
    let victim = Node::start(dir.path(), "");
    let honest = Node::start_with(dir.path(), "b", "", &[]);
    let b_id = stdout(&ssb_at(&honest.data, &["whoami"]));
    let blob_file = dir.path().join("blob.bin");
    std::fs::write(&blob_file, b"the blob the victim needs").unwrap();
    let blob = stdout(&ssb_at(
        &honest.data,
        &["blobs", "add", blob_file.to_str().unwrap()],
    ));
    stdout(&ssb_at(
        &honest.data,
        &[
            "publish",
            "--content",
            &format!(r#"{{"type":"post","mentions":[{{"link":"{blob}"}}]}}"#),
        ],
    ));
    stdout(&ssb_at(&victim.data, &["follow", &b_id]));
    let wants_now = || -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&stdout(&ssb_at(&victim.data, &["status", "--json"]))).unwrap();
        v["blob_wants"].as_u64().unwrap()
    };
    let runtime = rt();
    // A hostile peer asks for 20,000 blobs that do not exist and stays connected.
    let bogus: Vec<BlobId> = (0..20_000u32)
        .map(|n| {
            let mut b = [0x77u8; 32];
            b[..4].copy_from_slice(&n.to_be_bytes());
            BlobId(b)
        })
        .collect();
    let session = runtime
        .block_on(hostile_session(
            &victim,
            Keypair::generate(),
            loopback(2),
            Hostile { wants: bogus },
        ))
        .unwrap();
    // Until the node has taken all it will of them.
    let (mut last, mut still) = (0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
        let n = wants_now();
        if n != last {
            (last, still) = (n, Instant::now());
        } else if n > 0 && still.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(Instant::now() < deadline, "the wants never settled");
    }
    println!("the hostile peer's wants held: {last}");
    assert!(!session.is_closed());
    // The victim syncs with the honest peer: the message mentions the blob, which follows.
    let line = stdout(&ssb_at(&victim.data, &["sync", &honest.addr]));
    assert!(line.contains("received 1 messages, 1 blobs;"), "{line}");
    assert_eq!(
        stdout(&ssb_at(&victim.data, &["blobs", "has", &blob])),
        "true"
    );
    drop(session);
}

#[test]
fn a_reconnecting_slowloris_does_not_lock_out_honest_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let node = with_one_message(dir.path(), "handshake_timeout = 2\n");
    let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (refused, attack_ran) = rt().block_on(async {
        let stop = Instant::now() + Duration::from_secs(8);
        let mut attackers = Vec::new();
        // 100 connections from 127.0.0.2 at all times: half of msg1, then
        // nothing; each reconnects as soon as the node hangs up.
        for _ in 0..100 {
            let (socket, attempts) = (node.socket, attempts.clone());
            attackers.push(tokio::spawn(async move {
                while Instant::now() < stop {
                    attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Ok(mut s) = connect_from(loopback(2), socket).await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = s.write_all(&[1u8; 32]).await;
                    let mut buf = [0u8; 1];
                    let left = stop.saturating_duration_since(Instant::now());
                    let _ =
                        tokio::time::timeout(left, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
                            .await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Eleven honest handshakes from 127.0.0.1 meanwhile.
        let mut refused = 0;
        for _ in 0..11 {
            let Ok(mut s) = TcpStream::connect(node.socket).await else {
                refused += 1;
                continue;
            };
            let hs = client_handshake(
                &mut s,
                NetworkKey::default(),
                Keypair::generate(),
                node.key,
                Duration::from_secs(5),
            )
            .await;
            if hs.is_err() {
                refused += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for a in attackers {
            let _ = a.await;
        }
        (refused, attempts.load(std::sync::atomic::Ordering::Relaxed))
    });
    assert_eq!(refused, 0, "{refused} of 11 honest handshakes refused");
    // Wait for the summaries of the windows the attack ran in.
    std::thread::sleep(Duration::from_secs(11));
    let log = node.log();
    let lines = log.lines().filter(|l| l.contains("dropped")).count();
    println!("{attack_ran} attacking connections, {lines} log lines about drops");
    assert!(
        attack_ran > 1_000,
        "the attack made only {attack_ran} connections"
    );
    assert!(lines < 100, "{lines} lines logged:\n{log}");
    assert!(log.contains("more connections in 10 s"), "{log}");
}

/// The running node's live tasks (`status --json` `tasks`).
fn tasks(node: &Node) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ssb_at(&node.data, &["status", "--json"]))).unwrap();
    status["tasks"].as_u64().expect("status has tasks")
}

/// Waits up to `within` for the node's live tasks to be at most `most`; returns the last count.
fn tasks_down_to(node: &Node, most: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let n = tasks(node);
        if n <= most || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn calls_a_peer_ends_leave_no_task_behind() {
    let dir = tempfile::tempdir().unwrap();
    let node = with_one_message(dir.path(), "");
    let id = stdout(&ssb_at(&node.data, &["whoami"]));
    let before = tasks(&node);
    let runtime = rt();
    let session = runtime.block_on(async {
        let session = hostile_session(
            &node,
            Keypair::generate(),
            loopback(1),
            Hostile { wants: Vec::new() },
        )
        .await
        .unwrap();
        // The node gives up waiting for ebt.replicate and starts its pulls.
        tokio::time::sleep(Duration::from_secs(3)).await;
        session
    });
    let with_session = tasks(&node);
    runtime.block_on(async {
        let mut opts = Object::new();
        opts.push("id", Value::string(&id));
        opts.push("live", Value::Bool(true));
        opts.push("keys", Value::Bool(false));
        let opts = Value::Object(opts);
        // Live history streams and blob wants, each ended by the peer, which keeps the session.
        for _ in 0..50 {
            let mut history = session
                .call(
                    &["createHistoryStream"],
                    CallType::Source,
                    vec![opts.clone()],
                )
                .await
                .unwrap();
            assert!(matches!(history.recv().await, Some(Item::Data(_))));
            history.end().await.unwrap();
            let mut wants = session
                .call(&["blobs", "createWants"], CallType::Source, vec![])
                .await
                .unwrap();
            assert!(matches!(wants.recv().await, Some(Item::Data(_))));
            wants.end().await.unwrap();
        }
        // A reply after the last end: every end was written.
        session.call_async(&["whoami"], vec![]).await.unwrap();
    });
    let after_calls = tasks_down_to(&node, with_session, Duration::from_secs(10));
    assert!(
        after_calls <= with_session,
        "{after_calls} tasks after 100 ended calls, {with_session} before them"
    );
    assert!(!session.is_closed());
    runtime.block_on(async {
        session.close().await;
        session.closed().await;
    });
    let after_session = tasks_down_to(&node, before, Duration::from_secs(10));
    assert!(
        after_session <= before,
        "{after_session} tasks after the session closed, {before} before it"
    );
}

#[test]
fn sessions_from_random_keys_do_not_lock_out_followed_peers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "");
    let (b, b_id) = {
        let data = dir.path().join("b");
        let id = stdout(&ssb_at(&data, &["init"]));
        (data, id)
    };
    stdout(&ssb_at(&node.data, &["follow", &b_id]));
    let runtime = rt();
    // 150 sessions with random keys from ten addresses, all kept open.
    let sessions: Vec<Session> = runtime.block_on(async {
        let mut sessions = Vec::new();
        for i in 0..150u8 {
            let from = loopback(2 + i % 10);
            if let Ok(s) = hostile_session(
                &node,
                Keypair::generate(),
                from,
                Hostile { wants: Vec::new() },
            )
            .await
            {
                sessions.push(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        sessions.retain(|s| !s.is_closed());
        sessions
    });
    println!("{} of 150 stranger sessions kept", sessions.len());
    assert!(sessions.len() <= 96, "{} stranger sessions", sessions.len());
    // One key, three sessions: the third is not kept.
    let same = Keypair::generate();
    let kept = runtime.block_on(async {
        let mut kept = Vec::new();
        for _ in 0..3 {
            let s = hostile_session(
                &node,
                same.clone(),
                loopback(1),
                Hostile { wants: Vec::new() },
            )
            .await
            .unwrap();
            kept.push(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        kept.iter().filter(|s| !s.is_closed()).count()
    });
    assert!(kept <= 2, "{kept} sessions with one key");
    // A peer the node follows still gets in.
    let out = ssb_at(&b, &["sync", &node.addr, "--timeout", "30"]);
    assert!(
        out.status.success(),
        "the followed peer was locked out: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    drop(sessions);
}
