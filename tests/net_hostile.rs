//! Hostile peers against a real `ssb-node run` on 127.0.0.1: a wrong network
//! key, garbage after a good handshake, a peer that stalls mid-handshake, and
//! 200 connections at once. After each, the node is still up, a normal
//! `sync` still works, memory stays bounded, and the log says why each
//! connection was dropped.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ssb_node::muxrpc::client_handshake;
use ssb_node::net::shs::{Keypair, NetworkKey};
use support::running::Node;
use support::ssb_at;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
    let deadline = Instant::now() + Duration::from_secs(10);
    let total = loop {
        let log = node.log();
        let total: usize = log
            .lines()
            .filter(|l| reasons.iter().any(|r| l.contains(r)))
            .count();
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
