//! End to end: `ssb-node check --repair` on a real fjall store damaged on
//! purpose through fjall itself (the layout store/mod.rs documents): a
//! message cut short in the middle of a replicated feed, a lost id index
//! entry, a clock that understates, a lost follow in the contacts index.
//! `check` finds each; `check --repair` says exactly what it changed (the
//! dropped tail by feed, sequence and reason), `check` passes afterwards,
//! and the next `sync` with the peer that holds the feed fetches the
//! dropped tail again (the follow is back, so the feed is replicated).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use ssb_node::feed::ids::decode_base64_exact;
use support::running::Node;
use support::{ssb_at, ssb_stdin};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn publish_n(data: &Path, n: usize, text: &str) {
    let lines: String = (0..n)
        .map(|i| format!("{{\"type\":\"post\",\"text\":\"{text} {i}\"}}\n"))
        .collect();
    stdout(&ssb_stdin(data, &["publish", "--stdin"], &lines));
}

fn seq_of(data: &Path, feed: &str) -> u64 {
    let clock: serde_json::Value =
        serde_json::from_str(&stdout(&ssb_at(data, &["clock"]))).unwrap();
    clock[feed].as_u64().unwrap_or(0)
}

/// The 32 key bytes of a feed id `@….ed25519`.
fn feed_bytes(id: &str) -> [u8; 32] {
    let b64 = id
        .strip_prefix('@')
        .unwrap()
        .strip_suffix(".ed25519")
        .unwrap();
    decode_base64_exact::<32>(b64).unwrap()
}

/// A `log` key: author ‖ sequence (u32 BE).
fn log_key(author: &[u8; 32], seq: u32) -> Vec<u8> {
    [author.as_slice(), &seq.to_be_bytes()].concat()
}

#[test]
fn repair_drops_a_damaged_tail_rebuilds_the_rest_and_the_feed_refetches() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start_with(dir.path(), "a", "", &[]);
    let a_id = stdout(&ssb_at(&a.data, &["whoami"]));
    publish_n(&a.data, 40, "from a");
    let b = dir.path().join("b");
    let b_id = stdout(&ssb_at(&b, &["init"]));
    stdout(&ssb_at(&b, &["follow", &a_id]));
    publish_n(&b, 5, "from b");
    stdout(&ssb_at(&b, &["sync", &a.addr]));
    assert_eq!(seq_of(&b, &a_id), 40);
    assert_eq!(seq_of(&b, &b_id), 6);
    assert!(stdout(&ssb_at(&b, &["check"])).ends_with("ok"));

    // Damage B's store (B is not running: the store is free).
    let (a_key, b_key) = (feed_bytes(&a_id), feed_bytes(&b_id));
    {
        let db = fjall::Database::builder(b.join("db")).open().unwrap();
        let ks = |name: &str| {
            db.keyspace(name, fjall::KeyspaceCreateOptions::default)
                .unwrap()
        };
        let (log, msg, clock, contacts) = (ks("log"), ks("msg"), ks("clock"), ks("contacts"));
        // A's message 20: its JSON cut short.
        let v = log.get(log_key(&a_key, 20)).unwrap().unwrap();
        log.insert(log_key(&a_key, 20), &v[..v.len() - 30]).unwrap();
        // A's message 5: its id index entry lost.
        let v = log.get(log_key(&a_key, 5)).unwrap().unwrap();
        msg.remove(&v[8..40]).unwrap();
        // B's clock: says 3 (of 6), naming no message.
        let mut wrong = 3u32.to_be_bytes().to_vec();
        wrong.extend_from_slice(&[0; 32]);
        clock.insert(b_key, wrong).unwrap();
        // B's follow of A: gone from the contacts index.
        contacts
            .remove([b_key.as_slice(), &a_key].concat())
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }

    let check = ssb_at(&b, &["check"]);
    assert!(!check.status.success());
    let found = String::from_utf8_lossy(&check.stdout);
    assert!(
        found.contains(&format!("{a_id} seq 20: not JSON")),
        "{found}"
    );
    assert!(
        found.contains(&format!("{a_id} seq 5: missing from the id index")),
        "{found}"
    );
    assert!(
        found.contains(&format!("{b_id}: clock does not say sequence 6")),
        "{found}"
    );
    assert!(
        found.contains("the contacts index is wrong about"),
        "{found}"
    );

    let repaired = stdout(&ssb_at(&b, &["check", "--repair"]));
    println!("{repaired}");
    let lines: Vec<&str> = repaired.lines().collect();
    let dropped = format!("dropped: {a_id} from sequence 20 on (21 messages): not JSON");
    assert!(lines[0].starts_with(&dropped), "{repaired}");
    let mut clocks: Vec<&str> = lines[1..3].to_vec();
    clocks.sort_unstable();
    let mut want = vec![
        format!("clock: {a_id} said sequence 40, now sequence 19"),
        format!("clock: {b_id} said sequence 3, now sequence 6"),
    ];
    want.sort_unstable();
    assert_eq!(clocks, want, "{repaired}");
    assert_eq!(
        lines[3],
        "repaired: 2 feeds, 25 messages kept; 1 tails dropped, 2 clock entries, \
         1 id index entries added, 21 removed, 1 contacts entries, 0 stray entries"
    );
    assert_eq!(lines[4], "checked 2 feeds, 25 messages: ok");
    assert!(stdout(&ssb_at(&b, &["check"])).ends_with("ok"));
    assert_eq!(seq_of(&b, &a_id), 19);

    // The next sync fetches what was dropped.
    let line = stdout(&ssb_at(&b, &["sync", &a.addr]));
    assert!(
        line.starts_with(&format!("synced with {a_id}: received 21 messages")),
        "{line}"
    );
    assert_eq!(seq_of(&b, &a_id), 40);
    assert_eq!(
        stdout(&ssb_at(&b, &["check"])),
        "checked 2 feeds, 46 messages: ok"
    );
}
