//! `ssb-node run` as the JavaScript stack sees it: ssb-client 4.9 builds its API from our
//! `manifest` and calls `blobs.has`; methods we do not offer are refused with the error JS
//! muxrpc gives, word for word (ssb-ebt 9 matches it to tell "not supported" from a failure).
//! A node stopped with SIGTERM ends its links with the box-stream goodbye, so the JS side
//! sees a clean end.

#[path = "support/manyverse.rs"]
mod manyverse;
#[path = "support/ssb_server.rs"]
mod ssb_server;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use manyverse::Manyverse;
use serde_json::{json, Value};
use ssb_node::muxrpc::{client_handshake, Handler, InboundCall, Session, SessionConfig};
use ssb_node::net::shs::{Keypair, NetworkKey};
use ssb_server::{Options, SsbServer};
use support::running::{sigterm, Node};

/// Runs `tests/js/client.js` against `addr`; its one JSON line.
fn client(addr: &str, blobs: &[&str]) -> Value {
    let mut args = vec!["--remote", addr];
    for b in blobs {
        args.extend(["--blob", b]);
    }
    let out = support::run(support::node_script("client.js", &args).env("HOME", "/nonexistent"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.js failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn add_blob(node: &Node, dir: &Path, bytes: &[u8]) -> String {
    let file = dir.join("blob");
    std::fs::write(&file, bytes).expect("write the blob file");
    let out = support::ssb_at(
        &node.data,
        &["blobs", "add", file.to_str().expect("a UTF-8 temp path")],
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("a blob id")
        .trim()
        .to_owned()
}

#[test]
fn ssb_client_builds_its_api_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "");
    let blob = add_blob(&node, dir.path(), b"a blob for ssb-client\n");
    let missing = "&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256";
    let got = client(&node.addr, &[&blob, missing]);

    let manifest = &got["manifest"];
    assert_eq!(manifest["whoami"], "async", "{manifest}");
    assert_eq!(manifest["blobs"]["has"], "async", "{manifest}");
    assert_eq!(manifest["blobs"]["get"], "source", "{manifest}");
    assert_eq!(manifest["ebt"]["replicate"], "duplex", "{manifest}");
    assert!(
        manifest
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains('.')),
        "flat keys in {manifest}"
    );
    let id = node.addr.split_once("~shs:").unwrap().1;
    assert_eq!(got["whoami"], format!("@{id}.ed25519"));
    assert_eq!(got["has"], json!({ blob.as_str(): true, missing: false }));

    // What JS muxrpc answers for a method it does not offer: an Error named "Error" whose
    // message names the path with commas.
    for (method, path) in [
        ("ebt.clock", "ebt,clock"),
        ("ebt.replicateFormat", "ebt,replicateFormat"),
        ("ebt.nope", "ebt,nope"),
        ("nope", "nope"),
    ] {
        let e = &got["errors"][method];
        assert_eq!(e["name"], "Error", "{method}: {e}");
        assert_eq!(
            e["message"],
            format!("method:{path} is not in list of allowed methods"),
            "{method}: {e}"
        );
    }
}

/// ssb-server 16 dials our node and fetches a blob from it; then the node gets SIGTERM.
/// The link ends with our goodbye: ssb-server logs no `stream ended with:N but wanted:34`
/// (a box-stream cut inside a header) and no exception.
#[test]
fn sigterm_ends_a_served_link_with_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), "");
    let blob = add_blob(&node, dir.path(), &[7u8; 100_000]);
    let mut srv = SsbServer::start(Options::default());
    srv.ok(json!({"cmd": "connect", "address": node.addr}));
    srv.ok(json!({"cmd": "blobWant", "id": blob, "timeoutMs": 20_000}));
    // Let ssb-ebt's replicate stream and the blob wants settle on the link.
    std::thread::sleep(Duration::from_secs(1));
    sigterm(&node.child);
    wait_exit(&mut node);
    // The JS side notices the end and logs it (or not) right away; give it a moment.
    std::thread::sleep(Duration::from_secs(2));
    let log = srv.stderr();
    for bad in ["but wanted:", "exception", "unexpected hangup"] {
        assert!(!log.contains(bad), "ssb-server logged {bad:?}:\n{log}");
    }
}

/// Keeps every call the node makes open, answering none.
struct Silent;

impl Handler for Silent {
    fn handle(&self, call: InboundCall) {
        tokio::spawn(async move {
            let _keep_open = call;
            std::future::pending::<()>().await;
        });
    }
}

/// Waits up to 15 s for `node` to exit after SIGTERM; it must exit 0.
fn wait_exit(node: &mut Node) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = node.child.try_wait().expect("wait for the node") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}\n{}", node.log());
}

/// Three peers hold sessions with the node (replication running on each); on SIGTERM the
/// node ends every one with its goodbye before it exits: each peer's session ends
/// cleanly, not with a box-stream cut short.
#[test]
fn sigterm_says_goodbye_on_every_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sessions: Vec<Session> = rt.block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..3 {
            let mut s = tokio::net::TcpStream::connect(node.socket).await.unwrap();
            let outcome = client_handshake(
                &mut s,
                NetworkKey::default(),
                Keypair::generate(),
                node.key,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
            sessions.push(Session::start(
                s,
                Some(&outcome),
                Arc::new(Silent),
                SessionConfig::default(),
            ));
        }
        sessions
    });
    assert_eq!(
        node.wait_log("peer connected", 3, Duration::from_secs(10)),
        3
    );
    sigterm(&node.child);
    let reasons: Vec<String> = rt.block_on(async {
        let mut reasons = Vec::new();
        for s in &sessions {
            let r = tokio::time::timeout(Duration::from_secs(15), s.closed()).await;
            reasons.push(r.unwrap_or_else(|_| "still open".into()));
        }
        reasons
    });
    wait_exit(&mut node);
    for r in &reasons {
        assert!(
            r == "peer said goodbye" || r == "peer closed the box stream",
            "a link ended with {r:?}; all: {reasons:?}\nnode log:\n{}",
            node.log()
        );
    }
}

/// A peer on Manyverse's stack (`tests/js/manyverse.js`: secret-stack 8, ssb-db2 8, ssb-ebt 9
/// with a second format, ssb-conn 6, ssb-blobs 2) dials the node, runs EBT with it, fetches a
/// blob, and then the node gets SIGTERM. ssb-ebt logs no exception: neither for
/// `ebt.replicateFormat`, which it must see as a method the node lacks, nor for the end of the
/// link (a box-stream cut without its goodbye reads as `stream ended with:N but wanted:34`).
#[test]
fn manyverse_stack_logs_no_exception() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), "");
    // A tiny blob: with it a node that exits without its goodbye makes ssb-ebt log
    // `stream ended with:28 but wanted:34` every time; with a 70 kB one it did not.
    let blob = add_blob(&node, dir.path(), b"hello\n");
    let mut js = Manyverse::start();
    js.ok(json!({"cmd": "connect", "address": node.addr}));
    let got = js.ok(json!({"cmd": "blobWant", "id": blob}));
    assert_eq!(got["has"], true, "{got}");
    // Let the EBT streams of both formats settle on the link.
    std::thread::sleep(Duration::from_secs(1));
    sigterm(&node.child);
    wait_exit(&mut node);
    std::thread::sleep(Duration::from_secs(2));
    let log = js.stderr();
    drop(js);
    for bad in ["exception", "but wanted:"] {
        assert!(
            !log.contains(bad),
            "the Manyverse stack logged {bad:?}:\n{log}"
        );
    }
    assert!(
        log.contains("does not support RPC ebt.replicateFormat"),
        "ssb-ebt did not take the refusal as a missing method:\n{log}"
    );
}
