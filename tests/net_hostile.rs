//! Hostile peers against a real `ssb-node run` on 127.0.0.1: a wrong network
//! key, garbage after a good handshake, a peer that stalls mid-handshake, and
//! 200 connections at once. After each, the node is still up, a normal
//! `sync` still works, memory stays bounded, and the log says why each
//! connection was dropped.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ssb_node::feed::ids::decode_base64_exact;
use ssb_node::muxrpc::client_handshake;
use ssb_node::net::shs::{Keypair, NetworkKey, PublicKey};
use support::{ssb_at, ssb_node};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A running node with its stderr going to a file we can read.
struct Node {
    child: Child,
    data: PathBuf,
    log: PathBuf,
    addr: String,
    socket: SocketAddr,
    key: PublicKey,
}

impl Node {
    fn start(dir: &Path, config: &str) -> Node {
        let data = dir.join("node");
        let out = ssb_at(&data, &["init"]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(data.join("ssb-node.toml"), config).unwrap();
        let log = dir.join("node.log");
        let mut child = Command::new(ssb_node())
            .arg("--data")
            .arg(&data)
            .args(["run", "--listen", "127.0.0.1:0", "--no-discovery"])
            .env("SSB_NODE_LOG", "ssb_node=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("no listening line: {line:?}"))
            .to_owned();
        // net:127.0.0.1:PORT~shs:KEY
        let (net, shs) = addr.split_once("~shs:").unwrap();
        let socket: SocketAddr = net.strip_prefix("net:").unwrap().parse().unwrap();
        let key = PublicKey(decode_base64_exact::<32>(shs).unwrap());
        Node {
            child,
            data,
            log,
            addr,
            socket,
            key,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident and peak memory in KiB, from /proc.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Waits until the log holds at least `n` lines containing `needle`.
    fn wait_log(&self, needle: &str, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let count = self.log().matches(needle).count();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh node syncs this node's feed: the node still serves properly.
    fn check_serves(&self, dir: &Path) {
        let me = String::from_utf8(ssb_at(&self.data, &["whoami"]).stdout).unwrap();
        let other = dir.join("checker");
        assert!(ssb_at(&other, &["init"]).status.success());
        assert!(ssb_at(&other, &["follow", me.trim()]).status.success());
        let out = ssb_at(&other, &["sync", &self.addr, "--timeout", "30"]);
        assert!(
            out.status.success(),
            "sync after the attack failed: {}\nnode log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("received 1 messages"), "{text}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    assert_eq!(
        node.wait_log(
            "dropped: handshake: peer hello does not authenticate",
            1,
            Duration::from_secs(5)
        ),
        1,
        "{}",
        node.log()
    );
    assert!(node.alive());
    node.check_serves(dir.path());
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
    assert_eq!(
        node.wait_log("peer disconnected: box-stream", 1, Duration::from_secs(5)),
        1,
        "{}",
        node.log()
    );
    assert!(node.alive());
    node.check_serves(dir.path());
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
    assert_eq!(
        node.wait_log("dropped: timed out: handshake", 1, Duration::from_secs(5)),
        1,
        "{}",
        node.log()
    );
    assert!(node.alive());
    node.check_serves(dir.path());
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
                    0 => {
                        let net = NetworkKey::default();
                        let hs = client_handshake(
                            &mut s,
                            net,
                            Keypair::generate(),
                            key,
                            Duration::from_secs(10),
                        );
                        if hs.await.is_ok() {
                            let _ = s.write_all(&[0xa5; 1000]).await;
                        }
                    }
                    1 => {
                        let net = NetworkKey([3; 32]);
                        let hs = client_handshake(
                            &mut s,
                            net,
                            Keypair::generate(),
                            key,
                            Duration::from_secs(10),
                        );
                        let _ = hs.await;
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
