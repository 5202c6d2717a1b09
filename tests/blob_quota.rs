//! The blob quota in a real `ssb-node run`: a peer's blobs fetched over the
//! quota push out the foreign blob of highest score (size × age), never the
//! node's own (mentioned by its feed, or added by hand); `blobs usage` and
//! `status` show the figures; a removed blob that a new message mentions is
//! fetched again, by a peer sync and from a stick, and a removed blob a
//! stick carries but no new message mentions is not taken back; `check`
//! passes after.
//! And the bad inputs: a quota of 0 stops `run` with a clear error, one
//! larger than the disk is a warning at start.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::running::Node;
use support::ssb_at;

const KB: usize = 1000;

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A blob file of `len` bytes made from `seed`.
fn blob_file(dir: &Path, seed: u64, len: usize) -> std::path::PathBuf {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = dir.join(format!("blob-{seed}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Adds a blob of `len` bytes to `data` and publishes a message mentioning it.
fn post_blob(data: &Path, dir: &Path, seed: u64, len: usize) -> String {
    let file = blob_file(dir, seed, len);
    let id = ok(
        &ssb_at(data, &["blobs", "add", file.to_str().unwrap()]),
        "blobs add",
    );
    mention(data, &id);
    id
}

fn mention(data: &Path, id: &str) {
    let content = format!(r#"{{"type":"post","text":"a blob","mentions":[{{"link":"{id}"}}]}}"#);
    ok(
        &ssb_at(data, &["publish", "--content", &content]),
        "publish",
    );
}

/// Where blob `id` lives in `data` (`blobs/sha256/HH/HHH…`).
fn blob_path(data: &Path, id: &str) -> std::path::PathBuf {
    use base64::Engine as _;
    let b64 = id
        .strip_prefix('&')
        .unwrap()
        .strip_suffix(".sha256")
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    data.join("blobs/sha256").join(&hex[..2]).join(&hex[2..])
}

/// Makes blob `id` of `data` look last touched `days` ago.
fn age(data: &Path, id: &str, days: u64) {
    let f = std::fs::File::open(blob_path(data, id)).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

fn has(node: &Node, id: &str) -> bool {
    ok(&ssb_at(&node.data, &["blobs", "has", id]), "blobs has") == "true"
}

fn usage(node: &Node) -> Value {
    let out = ssb_at(&node.data, &["blobs", "usage", "--json"]);
    serde_json::from_str(&ok(&out, "blobs usage")).unwrap()
}

const QUOTA: u64 = 2_500_000;

#[test]
fn over_the_quota_foreign_blobs_go_by_score_own_stay_and_a_new_mention_fetches_again() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let p = dir.join("p");
    let p_id = ok(&ssb_at(&p, &["init"]), "init p");
    let config =
        format!("blob_max = 1000000\nblob_quota = {QUOTA}\nhops = 0\nreplicate = [\"{p_id}\"]\n");
    let a = Node::start(dir, &config);

    // Ours: one mentioned by our feed, one added by hand (900 KB protected).
    let own = post_blob(&a.data, dir, 1, 600 * KB);
    let file = blob_file(dir, 2, 300 * KB);
    let by_hand = ok(
        &ssb_at(&a.data, &["blobs", "add", file.to_str().unwrap()]),
        "blobs add",
    );
    // P's first two blobs fit the quota exactly.
    let b1 = post_blob(&p, dir, 11, 800 * KB);
    let b2 = post_blob(&p, dir, 12, 800 * KB);
    ok(&ssb_at(&p, &["sync", &a.addr, "--timeout", "30"]), "sync 1");
    assert!(has(&a, &b1) && has(&a, &b2));
    let u = usage(&a);
    assert_eq!(u["used"], 2_500_000, "{u}");
    assert_eq!(
        (u["count"].as_u64(), u["quota"].as_u64()),
        (Some(4), Some(QUOTA))
    );
    assert_eq!(u["max"], 1_000_000, "{u}");

    // b1 untouched for 10 days, b2 for 1: the third of P's blobs pushes b1 out.
    age(&a.data, &b1, 10);
    age(&a.data, &b2, 1);
    let b3 = post_blob(&p, dir, 13, 800 * KB);
    ok(&ssb_at(&p, &["sync", &a.addr, "--timeout", "30"]), "sync 2");
    assert!(has(&a, &b3), "b3 was not fetched");
    assert!(!has(&a, &b1), "b1 (highest score) stayed");
    assert!(has(&a, &b2) && has(&a, &own) && has(&a, &by_hand));
    assert!(usage(&a)["used"].as_u64().unwrap() <= QUOTA);
    assert!(a.log().contains("blob quota: removed foreign blobs"));

    // status shows the usage.
    let text = ok(&ssb_at(&a.data, &["status"]), "status");
    assert!(
        text.contains("blobs: 4 held, 2.4 MiB of 2.4 MiB quota"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&ok(
        &ssb_at(&a.data, &["status", "--json"]),
        "status --json",
    ))
    .unwrap();
    assert_eq!(json["blobs"]["count"], 4, "{json}");
    assert_eq!(json["blobs"]["quota"], QUOTA, "{json}");

    // P mentions b1 again: the next sync fetches it, and b2 (older than b3) goes.
    mention(&p, &b1);
    ok(&ssb_at(&p, &["sync", &a.addr, "--timeout", "30"]), "sync 3");
    assert!(has(&a, &b1), "b1, mentioned again, was not fetched again");
    assert!(!has(&a, &b2), "b2 (now highest score) stayed");
    assert!(has(&a, &b3) && has(&a, &own) && has(&a, &by_hand));

    // P mentions b2 again and writes a stick; the node's visit takes b2
    // from it, and b3 (made older) goes.
    mention(&p, &b2);
    let stick = dir.join("stick");
    std::fs::create_dir(&stick).unwrap();
    ok(
        &ssb_at(&p, &["stick", "sync", stick.to_str().unwrap()]),
        "P writes the stick",
    );
    age(&a.data, &b3, 5);
    let out = ssb_at(&a.data, &["stick", "sync", stick.to_str().unwrap()]);
    println!("the node's visit: {}", ok(&out, "stick sync"));
    assert!(
        has(&a, &b2),
        "b2, mentioned again, did not come from the stick"
    );
    assert!(!has(&a, &b3), "b3 (now highest score) stayed");
    assert!(has(&a, &b1) && has(&a, &own) && has(&a, &by_hand));
    assert!(usage(&a)["used"].as_u64().unwrap() <= QUOTA);
    // The stick still carries b3, which held messages mention: removed on
    // purpose, it is not taken back (nor anything else pushed out for it).
    let before = usage(&a);
    let out = ssb_at(&a.data, &["stick", "sync", stick.to_str().unwrap()]);
    println!("the node's second visit: {}", ok(&out, "stick sync again"));
    assert!(!has(&a, &b3), "b3 came back from the stick");
    assert!(has(&a, &b1) && has(&a, &b2));
    assert_eq!(usage(&a), before);

    let data = a.data.clone();
    drop(a);
    ok(&ssb_at(&data, &["check"]), "check");
    // Without a running node, `blobs usage` reads the store and the config.
    let u: Value = serde_json::from_str(&ok(
        &ssb_at(&data, &["blobs", "usage", "--json"]),
        "blobs usage, no node",
    ))
    .unwrap();
    assert_eq!(
        (u["count"].as_u64(), u["quota"].as_u64()),
        (Some(4), Some(QUOTA))
    );
}

#[test]
fn a_quota_of_0_stops_run_and_one_larger_than_the_disk_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    ok(&ssb_at(&data, &["init"]), "init");
    std::fs::write(data.join("ssb-node.toml"), "blob_quota = 0\n").unwrap();
    let out = ssb_at(&data, &["run", "--listen", "127.0.0.1:0", "--no-discovery"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("blob_quota: 0 keeps no blob at all"), "{err}");

    let huge = 1u64 << 50;
    let a = Node::start_with(dir.path(), "big", &format!("blob_quota = {huge}\n"), &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !a.log().contains("larger than the data disk") {
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let u = usage(&a);
    assert_eq!(u["quota"].as_u64(), Some(huge));
}
