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

mod measure;

use std::path::Path;
use std::process::Command;

use measure::{env_or, mib, signed};

/// The content of message `seq`: a short post.
fn post(_feed: usize, seq: usize) -> String {
    format!(
        r#"{{"type":"post","text":"Message {seq}: the well is fixed, market on Thursday, bring seeds for the swap.","mentions":[],"channel":"village"}}"#
    )
}

/// Runs `ssb-node ingest` on a fresh store; returns (seconds, peak RSS in bytes).
fn ingest(input: &Path, data: &Path, extra: &[&str]) -> (f64, u64) {
    let m = measure::run(
        Command::new(env!("CARGO_BIN_EXE_ssb-node"))
            .arg("--data")
            .arg(data)
            .arg("ingest")
            .arg(input)
            .args(extra),
    )
    .expect_success("ingest");
    (m.secs, m.peak_rss)
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
    let msgs = signed::interleaved(&signed::keys(feeds), per_feed, post);
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
    let one = signed::rate(&msgs, 1, false);
    let batch1 = signed::rate(&msgs, 1, true);
    let batch2 = signed::rate(&msgs, 2, true);
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
            mib(rss),
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
            mib(rss)
        );
    }
}
