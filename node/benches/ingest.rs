//! Verified ingest benchmark: `cargo bench -p ssb-node --bench ingest`.
//!
//! Makes 100 feeds × 1,000 signed messages, then, in one run:
//! 1. the physical limit: raw ed25519-dalek signature checks on the same
//!    messages (one by one, and `verify_batch` on 1 and 2 threads);
//! 2. the real `ssb-node ingest` binary into a fresh fjall store, with
//!    one-by-one and batch verification, timing it and reading its peak RSS;
//! 3. peak RSS for 10k, 50k and 100k messages, to show memory stays flat.
//!
//! Set `SSB_BENCH_FEEDS` / `SSB_BENCH_PER_FEED` for other sizes.
#![allow(missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use ssb_node::feed::{Keypair, Message, Value};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Signed messages of `feeds` feeds, interleaved as replication delivers them.
fn make_messages(feeds: usize, per_feed: usize) -> Vec<Message> {
    let keys: Vec<Keypair> = (0..feeds)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Keypair::from_seed(&seed)
        })
        .collect();
    let mut heads = vec![None; feeds];
    let mut out = Vec::with_capacity(feeds * per_feed);
    for seq in 1..=per_feed {
        for (k, head) in keys.iter().zip(heads.iter_mut()) {
            let text = format!(
                r#"{{"type":"post","text":"Message {seq}: the well is fixed, market on Thursday, bring seeds for the swap.","mentions":[],"channel":"village"}}"#
            );
            let content = Value::parse(text.as_bytes()).expect("json");
            let ts = 1_700_000_000_000.0 + seq as f64;
            let m = Message::create(k, head.as_ref(), ts, content, None).expect("create");
            *head = Some(m.head());
            out.push(m);
        }
    }
    out
}

/// Signature checks per second for `msgs`, split over `threads`.
fn raw_rate(msgs: &[Message], threads: usize, batch: bool) -> f64 {
    let items: Vec<(Vec<u8>, Signature, VerifyingKey)> = msgs
        .iter()
        .map(|m| {
            let value = m.value().as_object().expect("object");
            let sig_text = value.get("signature").and_then(Value::as_str).expect("sig");
            let sig_bytes = ssb_node::feed::ids::decode_base64_exact::<64>(
                sig_text.strip_suffix(".sig.ed25519").expect("suffix"),
            )
            .expect("b64");
            let mut unsigned = Vec::new();
            ssb_node::feed::json::write_pretty_entries(&mut unsigned, &value.entries()[..6], 0);
            let key = VerifyingKey::from_bytes(m.author().as_bytes()).expect("key");
            (unsigned, Signature::from_bytes(&sig_bytes), key)
        })
        .collect();
    let start = Instant::now();
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in items.chunks(per) {
            s.spawn(move || {
                if batch {
                    for chunk in part.chunks(1024) {
                        let bytes: Vec<&[u8]> = chunk.iter().map(|i| i.0.as_slice()).collect();
                        let sigs: Vec<Signature> = chunk.iter().map(|i| i.1).collect();
                        let keys: Vec<VerifyingKey> = chunk.iter().map(|i| i.2).collect();
                        ed25519_dalek::verify_batch(&bytes, &sigs, &keys).expect("valid");
                    }
                } else {
                    for (b, s, k) in part {
                        k.verify_strict(b, s).expect("valid");
                    }
                }
            });
        }
    });
    items.len() as f64 / start.elapsed().as_secs_f64()
}

/// Runs `ssb-node ingest` on a fresh store; returns (seconds, peak RSS in KiB).
#[allow(unsafe_code)]
fn ingest(input: &Path, data: &Path, extra: &[&str]) -> (f64, i64) {
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let child = Command::new(env!("CARGO_BIN_EXE_ssb-node"))
        .arg("--data")
        .arg(data)
        .arg("ingest")
        .arg(input)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ssb-node");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain POSIX call on our own child; both out-pointers are valid
    // for the call. wait4 gives this child's own peak RSS (std's wait does not).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "ingest failed"
    );
    (secs, usage.ru_maxrss)
}

/// The file holding the first `n` lines of `input`.
fn part_path(input: &Path, n: usize) -> std::path::PathBuf {
    input.with_extension(format!("{n}.jsonl"))
}

/// The child role: makes the messages, writes the input file, measures the
/// raw limits, prints `limits ONE BATCH1 BATCH2 MB`. Keeping the big data in
/// a child keeps the parent small, since a spawned process's peak RSS
/// (`ru_maxrss`) starts from its parent's.
fn prepare(input: &Path, feeds: usize, per_feed: usize) {
    let msgs = make_messages(feeds, per_feed);
    let mut text = String::with_capacity(msgs.len() * 600);
    for m in &msgs {
        text.push_str(&m.value().to_compact());
        text.push('\n');
    }
    std::fs::write(input, &text).expect("write input");
    for n in [msgs.len() / 10, msgs.len() / 2] {
        let end = text
            .match_indices('\n')
            .nth(n - 1)
            .map_or(text.len(), |(i, _)| i + 1);
        std::fs::write(part_path(input, n), &text[..end]).expect("write part");
    }
    let one = raw_rate(&msgs, 1, false);
    let batch1 = raw_rate(&msgs, 1, true);
    let batch2 = raw_rate(&msgs, 2, true);
    println!("limits {one} {batch1} {batch2} {}", text.len() as f64 / 1e6);
}

fn main() {
    let feeds = env_or("SSB_BENCH_FEEDS", 100);
    let per_feed = env_or("SSB_BENCH_PER_FEED", 1000);
    let total = feeds * per_feed;
    if let Ok(path) = std::env::var("SSB_BENCH_PREPARE") {
        prepare(Path::new(&path), feeds, per_feed);
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("input.jsonl");
    println!("making {feeds} feeds x {per_feed} messages and measuring raw signature checks ...");
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("SSB_BENCH_PREPARE", &input)
        .output()
        .expect("run the preparing child");
    assert!(out.status.success(), "prepare failed");
    let line = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().expect("number"))
        .collect();
    let [one, batch1, batch2, mb] = nums[..] else {
        panic!("unexpected prepare output: {line}")
    };
    println!("{total} messages, {mb:.1} MB of JSON lines\n");

    println!("physical limit (raw ed25519-dalek on the same messages):");
    println!("  verify_strict one by one, 1 thread   {one:>9.0} msg/s");
    println!("  verify_batch, 1 thread               {batch1:>9.0} msg/s");
    println!("  verify_batch, 2 threads              {batch2:>9.0} msg/s\n");

    println!("ssb-node ingest into a fresh fjall store ({total} messages; parsing runs on its own thread):");
    let runs: [(&str, &[&str], f64); 3] = [
        (
            "one-by-one, 1 verify thread",
            &["--verify", "one-by-one"],
            one,
        ),
        ("batch, 1 verify thread", &["--threads", "1"], batch1),
        ("batch, 2 verify threads", &["--threads", "2"], batch2),
    ];
    for (i, (name, args, limit)) in runs.iter().enumerate() {
        let (secs, rss) = ingest(&input, &dir.path().join(format!("run{i}")), args);
        let rate = total as f64 / secs;
        println!(
            "  {name:<28} {rate:>9.0} msg/s  {:>6.1} MB/s  peak RSS {:>5.1} MiB  = {:.2} x its raw limit, {:.2} x 1-thread batch",
            mb / secs,
            rss as f64 / 1024.0,
            rate / limit,
            rate / batch1
        );
    }

    println!("\npeak RSS as the input grows (batch, 2 verify threads):");
    for n in [total / 10, total / 2, total] {
        let part = if n == total {
            input.clone()
        } else {
            part_path(&input, n)
        };
        let (secs, rss) = ingest(&part, &dir.path().join(format!("rss{n}")), &[]);
        println!(
            "  {n:>7} messages  {:>9.0} msg/s  peak RSS {:>5.1} MiB",
            n as f64 / secs,
            rss as f64 / 1024.0
        );
    }
}
