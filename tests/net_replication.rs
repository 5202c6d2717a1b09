//! Replication between real `ssb-node` processes on 127.0.0.1: a link killed
//! mid-stream resumes exactly where it stopped; a second sync skips what the
//! peer's stored clock says is unchanged; a message published while
//! connected arrives live; blobs mentioned by replicated messages follow;
//! follows within two hops are replicated and blocks are not.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::running::{sigterm, spawn_run, Node};
use support::{ssb_at, ssb_stdin};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn init(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let data = dir.join(name);
    let id = stdout(&ssb_at(&data, &["init"]));
    (data, id)
}

fn publish_n(data: &std::path::Path, n: usize, text: &str) {
    let lines: String = (0..n)
        .map(|i| format!("{{\"type\":\"post\",\"text\":\"{text} {i}\"}}\n"))
        .collect();
    stdout(&ssb_stdin(data, &["publish", "--stdin"], &lines));
}

/// The sequence `data` holds of `feed`, via `ssb-node clock` (works whether a node runs there or not).
fn seq_of(data: &std::path::Path, feed: &str) -> u64 {
    let clock: serde_json::Value =
        serde_json::from_str(&stdout(&ssb_at(data, &["clock"]))).unwrap();
    clock[feed].as_u64().unwrap_or(0)
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn a_killed_link_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let source = Node::start_with(dir.path(), "a", "", &[]);
    let a_id = stdout(&ssb_at(&source.data, &["whoami"]));
    publish_n(&source.data, 10_000, "resume");
    let (b, _) = init(dir.path(), "b");
    stdout(&ssb_at(&b, &["follow", &a_id]));
    // B runs connected to A; kill -9 it while A's feed streams in.
    let mut puller = Node::start_with(dir.path(), "b", "", &["--connect", &source.addr]);
    wait_for("the first messages", Duration::from_secs(60), || {
        seq_of(&puller.data, &a_id) >= 1
    });
    puller.child.kill().unwrap();
    puller.child.wait().unwrap();
    drop(puller);
    let _ = std::fs::remove_file(b.join("ssb-node.sock"));
    let had = seq_of(&b, &a_id);
    println!("killed after {had} of 10000");
    assert!(had < 10_000, "the kill came too late to test anything");
    let check = stdout(&ssb_at(&b, &["check"]));
    assert!(check.ends_with("ok"), "{check}");
    let line = stdout(&ssb_at(&b, &["sync", &source.addr, "--timeout", "60"]));
    assert_eq!(
        line,
        format!(
            "synced with {a_id}: received {} messages, 0 blobs; sent 0 messages, 0 blobs",
            10_000 - had
        )
    );
    assert_eq!(seq_of(&b, &a_id), 10_000);
}

#[test]
fn request_skipping_and_live_messages() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start_with(dir.path(), "a", "", &[]);
    let a_id = stdout(&ssb_at(&a.data, &["whoami"]));
    publish_n(&a.data, 20, "skip");
    let (b, b_id) = init(dir.path(), "b");
    stdout(&ssb_at(&b, &["follow", &a_id]));
    stdout(&ssb_at(&a.data, &["follow", &b_id]));
    let first = stdout(&ssb_at(&b, &["sync", &a.addr]));
    assert_eq!(
        first,
        format!("synced with {a_id}: received 21 messages, 0 blobs; sent 1 messages, 0 blobs")
    );
    // Nothing changed: the second sync moves nothing, and A's opening clock
    // skipped both feeds because B's stored clock matched.
    let second = stdout(&ssb_at(&b, &["sync", &a.addr]));
    assert!(
        second.contains("received 0 messages, 0 blobs; sent 0 messages"),
        "{second}"
    );
    a.wait_log("ebt opening clock", 2, Duration::from_secs(5));
    let log = a.log();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("ebt opening clock"))
        .unwrap();
    assert!(
        last.contains("feeds=0") && last.contains("skipped=2"),
        "{last}"
    );

    // B runs connected to A: a message published on A arrives on B live.
    let b_node = Node::start_with(dir.path(), "b", "", &["--connect", &a.addr]);
    wait_for("the link", Duration::from_secs(20), || {
        stdout(&ssb_at(&a.data, &["peers"])).contains("connected")
    });
    for i in 0..3 {
        let before = seq_of(&b_node.data, &a_id);
        let started = Instant::now();
        stdout(&ssb_at(
            &a.data,
            &[
                "publish",
                "--content",
                &format!(r#"{{"type":"post","text":"live {i}"}}"#),
            ],
        ));
        let took = wait_for("a live message", Duration::from_secs(10), || {
            seq_of(&b_node.data, &a_id) > before
        });
        println!("live message {i} arrived after {:?}", started.elapsed());
        assert!(took < Duration::from_secs(1), "{took:?}");
        // And the other way.
        let before = seq_of(&a.data, &b_id);
        stdout(&ssb_at(
            &b_node.data,
            &[
                "publish",
                "--content",
                &format!(r#"{{"type":"post","text":"back {i}"}}"#),
            ],
        ));
        let took = wait_for("a live message back", Duration::from_secs(10), || {
            seq_of(&a.data, &b_id) > before
        });
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
}

#[test]
fn blobs_follow_their_messages_and_hops_and_blocks_hold() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start_with(dir.path(), "a", "", &[]);
    let a_id = stdout(&ssb_at(&a.data, &["whoami"]));
    // A blob of exactly 3 × 64 KiB, mentioned by a message.
    let blob_file = dir.path().join("blob.bin");
    let bytes: Vec<u8> = (0..196_608u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&blob_file, &bytes).unwrap();
    let blob = stdout(&ssb_at(
        &a.data,
        &["blobs", "add", blob_file.to_str().unwrap()],
    ));
    stdout(&ssb_at(
        &a.data,
        &[
            "publish",
            "--content",
            &format!(
                r#"{{"type":"post","text":"a file","mentions":[{{"link":"{blob}","size":196608}}]}}"#
            ),
        ],
    ));
    // A follows C and D (two hops from B); B's config blocks D.
    let (c, c_id) = init(dir.path(), "c");
    publish_n(&c, 3, "c");
    let (d, d_id) = init(dir.path(), "d");
    publish_n(&d, 2, "d");
    for feed in [&c_id, &d_id] {
        stdout(&ssb_at(&a.data, &["follow", feed]));
    }
    // A gets C's and D's feeds by syncing with them.
    for data in [&c, &d] {
        let node = Node::start_with(
            dir.path(),
            data.file_name().unwrap().to_str().unwrap(),
            "",
            &[],
        );
        stdout(&ssb_at(&a.data, &["sync", &node.addr]));
    }
    let (b, _) = init(dir.path(), "b");
    std::fs::write(b.join("ssb-node.toml"), format!("block = [\"{d_id}\"]\n")).unwrap();
    stdout(&ssb_at(&b, &["follow", &a_id]));
    let line = stdout(&ssb_at(&b, &["sync", &a.addr]));
    assert!(line.contains(", 1 blobs;"), "{line}");
    assert_eq!(stdout(&ssb_at(&b, &["blobs", "has", &blob])), "true");
    let got = dir.path().join("got.bin");
    stdout(&ssb_at(
        &b,
        &["blobs", "get", &blob, "--out", got.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    // A's own feed: 1 post + 2 follows; C's 3 (hop 2); D blocked.
    assert_eq!(seq_of(&b, &a_id), 3);
    // C's feed joins once A's follows arrive (same link, or the next sync).
    if seq_of(&b, &c_id) < 3 {
        stdout(&ssb_at(&b, &["sync", &a.addr]));
    }
    assert_eq!(seq_of(&b, &c_id), 3);
    assert_eq!(seq_of(&b, &d_id), 0);
}

#[test]
fn run_needs_no_setup_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let (mut child, line) = spawn_run(&data, &[], &[], &[], Stdio::null());
    assert!(line.starts_with("net:127.0.0.1:"), "{line}");
    let id = stdout(&ssb_at(&data, &["whoami"]));
    assert!(
        line.trim()
            .ends_with(&format!("~shs:{}", &id[1..id.len() - 8])),
        "{line} {id}"
    );
    // Publish through the running node, then SIGTERM: the message is kept.
    stdout(&ssb_at(
        &data,
        &["publish", "--content", r#"{"type":"post","text":"kept"}"#],
    ));
    // A missing message is reported as without a running node.
    let missing = "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256";
    let out = ssb_at(&data, &["get", missing]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("ssb-node: error: message {missing} is not in the store")
    );
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!data.join("ssb-node.sock").exists(), "socket left behind");
    assert_eq!(seq_of(&data, &id), 1);
    assert!(stdout(&ssb_at(&data, &["check"])).ends_with("ok"));
}

/// The `feeds=… skipped=…` of the `ebt opening clock` line in `log`.
fn opening_clock(log: &str) -> String {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("ebt opening clock"))
        .unwrap_or_else(|| panic!("no opening clock in:\n{log}"));
    line.split_whitespace()
        .filter(|w| w.starts_with("feeds=") || w.starts_with("skipped="))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_second_sync_skips_unchanged_feeds_on_the_syncing_side_too() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start_with(dir.path(), "a", "", &[]);
    let a_id = stdout(&ssb_at(&a.data, &["whoami"]));
    publish_n(&a.data, 5, "skip");
    let (b, _) = init(dir.path(), "b");
    stdout(&ssb_at(&b, &["follow", &a_id]));
    let sync = || {
        let out = std::process::Command::new(support::ssb_node())
            .arg("--data")
            .arg(&b)
            .args(["sync", &a.addr])
            .env("SSB_NODE_LOG", "ssb_node=debug")
            .output()
            .unwrap();
        stdout(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(opening_clock(&sync()), "feeds=2 skipped=0");
    // B stored A's clock before it closed the link: only its own feed,
    // which A does not replicate (A's clock has no note for it), is noted.
    assert_eq!(opening_clock(&sync()), "feeds=1 skipped=1");
}
