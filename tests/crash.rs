//! `kill -9` at random points of an ingest, many times: after every kill the
//! store reopens, passes a full check (every feed a valid, verified prefix),
//! and never loses what an earlier run had committed; a last run completes.

mod support;

use support::ssb_at as ssb;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ssb_node::feed::{Keypair, Message, Value};

/// A tiny deterministic generator (the seed is printed for reruns).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Writes `feeds` × `per_feed` messages, interleaved, as JSON lines.
fn write_input(path: &Path, feeds: u8, per_feed: u32) -> usize {
    let keys: Vec<Keypair> = (0..feeds)
        .map(|i| Keypair::from_seed(&[i + 1; 32]))
        .collect();
    let mut heads = vec![None; keys.len()];
    let mut text = String::new();
    for seq in 1..=per_feed {
        for (k, head) in keys.iter().zip(heads.iter_mut()) {
            let content = Value::parse(
                format!(r#"{{"type":"post","text":"message {seq} of a feed that is long enough to matter"}}"#).as_bytes(),
            )
            .expect("json");
            let m =
                Message::create(k, head.as_ref(), f64::from(seq), content, None).expect("create");
            *head = Some(m.head());
            text.push_str(&m.value().to_compact());
            text.push('\n');
        }
    }
    std::fs::write(path, text).expect("write input");
    usize::from(feeds) * per_feed as usize
}

/// The clock as (feed, sequence) pairs, sorted.
fn clock(data: &Path) -> Vec<(String, u64)> {
    let out = ssb(data, &["clock"]);
    assert!(
        out.status.success(),
        "clock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = Value::parse(&out.stdout).expect("clock json");
    let mut pairs: Vec<(String, u64)> = v
        .as_object()
        .expect("object")
        .entries()
        .iter()
        .map(|(k, v)| match v {
            Value::Number(n) => (k.as_str().expect("key").to_owned(), *n as u64),
            _ => panic!("clock value"),
        })
        .collect();
    pairs.sort();
    pairs
}

/// Bytes the process has read so far (`rchar` of `/proc/PID/io`).
fn bytes_read(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
}

/// Runs an ingest into `data` and SIGKILLs it once it has read `fraction`
/// of the input, a point that does not depend on the machine's speed.
/// Returns whether it was killed (rather than finishing first).
fn ingest_and_kill(data: &Path, input: &Path, fraction: f64) -> bool {
    let size = std::fs::metadata(input).expect("input").len();
    let target = (size as f64 * fraction) as u64;
    let mut child = Command::new(support::ssb_node())
        .arg("--data")
        .arg(data)
        .arg("ingest")
        .arg(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ingest");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if bytes_read(child.id()).is_some_and(|n| n >= target)
            || std::time::Instant::now() > deadline
        {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// `ssb-node check` passes: every feed is a valid, verified prefix.
fn assert_store_ok(data: &Path, context: &str) -> String {
    let check = ssb(data, &["check"]);
    let text = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success() && text.contains(": ok"),
        "{context}: store check failed: {text} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    text
}

#[test]
fn kill_9_during_ingest_never_corrupts_or_loses() {
    const STORES: usize = 6;
    const KILLS_PER_STORE: usize = 5;
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("input.jsonl");
    let total = write_input(&input, 16, 1500);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for store in 0..STORES {
        let data = dir.path().join(format!("data-{store}"));
        let mut before: Vec<(String, u64)> = Vec::new();
        for round in 0..KILLS_PER_STORE {
            let context = format!("store {store} round {round} (seed {seed})");
            // Anywhere in the input: in parts already held (skipped) and
            // in new ones, so kills land mid-read, mid-verify and mid-write.
            let fraction = rng.next(1000) as f64 / 1000.0;
            kills += usize::from(ingest_and_kill(&data, &input, fraction));
            assert_store_ok(&data, &context);
            let now = clock(&data);
            for (feed, seq) in &before {
                let kept = now.iter().find(|(f, _)| f == feed).map_or(0, |(_, s)| *s);
                assert!(
                    kept >= *seq,
                    "{context}: {feed} went back from {seq} to {kept}"
                );
            }
            before = now;
        }
        // The next run converges.
        let out = ssb(&data, &["ingest", input.to_str().expect("utf8")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let done = clock(&data);
        assert_eq!(done.len(), 16);
        assert!(done.iter().all(|(_, s)| *s == 1500));
        let text = assert_store_ok(&data, "after the last run");
        assert!(
            text.contains(&format!("16 feeds, {total} messages: ok")),
            "{text}"
        );
    }
    println!(
        "{kills} of {} runs killed mid-ingest",
        STORES * KILLS_PER_STORE
    );
    assert!(
        kills >= STORES * KILLS_PER_STORE * 2 / 3,
        "only {kills} runs were killed mid-way (seed {seed})"
    );
}
