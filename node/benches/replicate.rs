//! Side-by-side replication benchmark: `cargo bench -p ssb-node --bench replicate`.
//!
//! One feed of 10,000 messages (made once by `tests/js/make-feed.js` with ssb-validate) is the
//! own feed of a source peer, which a fresh peer that follows it then replicates over loopback:
//!
//! (a) ssb-node → fresh ssb-node: the source (`init --secret`, `ingest`) runs
//!     `run --listen 127.0.0.1:0 --no-discovery`; the fresh node `follow`s it and runs
//!     `sync ADDR`. Time: the whole `sync` process. Peak RSS: that process's own (`wait4`).
//! (b) ssb-server → fresh ssb-server (16.0.1, `tests/js/server.js`): the source gets the same
//!     messages by `sbot.add`; the fresh server follows it, and is timed from `connect` until it
//!     holds the last message. Peak RSS: the fresh server's VmHWM, read just before it exits.
//!
//! Env: `SSB_BENCH_MESSAGES` (default 10000); `SSB_BENCH_PART` = `a`, `b` or `both` (default).
#![allow(missing_docs)]

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../../tests/support/ssb_server.rs"]
mod ssb_server;

mod measure;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use measure::{env_or, mib};
use serde_json::{json, Value};
use ssb_server::{Options, SsbServer};

/// How long one replication may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(600);

/// A replication run: seconds and the receiving side's peak RSS in bytes.
struct Run {
    secs: f64,
    peak_rss: u64,
}

/// Makes the feed; returns its author's id and writes `dir/secret` (ssb-keys file format).
fn make_feed(dir: &Path, n: u64) -> String {
    let feed = dir.join("feed.jsonl");
    let out = support::run(&mut support::node_script(
        "make-feed.js",
        &[
            "--feeds",
            "1",
            "--messages",
            &n.to_string(),
            "--seed",
            "replicate-bench",
            "--out",
            feed.to_str().expect("utf8 path"),
        ],
    ));
    assert!(
        out.status.success(),
        "make-feed.js: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("feed.jsonl.secrets.json")).expect("secrets file"),
    )
    .expect("secrets JSON");
    let k = &secrets[0];
    let keys =
        json!({"curve": k["curve"], "public": k["public"], "private": k["private"], "id": k["id"]});
    let text = format!(
        "# ssb-keys secret of the benchmark feed\n{}\n",
        serde_json::to_string_pretty(&keys).expect("json")
    );
    std::fs::write(dir.join("secret"), text).expect("write secret");
    k["id"].as_str().expect("id").to_owned()
}

/// (b): ssb-server → fresh ssb-server.
fn servers(dir: &Path, author: &str, n: u64) -> Run {
    let mut src = SsbServer::start(Options {
        secret: Some(dir.join("secret")),
        cmd_timeout: DEADLINE,
        ..Options::default()
    });
    assert_eq!(src.id(), author, "source server identity");
    let added = src.ok(json!({"cmd": "addFile", "path": dir.join("feed.jsonl")}));
    println!(
        "  source ssb-server: sbot.add of {} messages took {:.2} s",
        added["added"],
        added["ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
    let mut dst = SsbServer::start(Options {
        cmd_timeout: DEADLINE,
        ..Options::default()
    });
    dst.ok(json!({"cmd": "follow", "id": author}));
    let idle = dst.ok(json!({"cmd": "rss"}))["hwm"].as_u64().unwrap_or(0);
    println!(
        "  fresh ssb-server before replicating: VmHWM {:.1} MiB",
        mib(idle)
    );
    let start = Instant::now();
    dst.ok(json!({"cmd": "connect", "address": src.address()}));
    dst.wait_for(author, n, DEADLINE);
    let secs = start.elapsed().as_secs_f64();
    let hwm = dst.ok(json!({"cmd": "rss"}))["hwm"]
        .as_u64()
        .expect("VmHWM");
    assert_eq!(dst.seq_of(author), n, "fresh server's copy");
    Run {
        secs,
        peak_rss: hwm,
    }
}

/// `ssb-node --data DATA ARGS…`, which must succeed; its stdout.
fn ssb_ok(data: &Path, args: &[&str]) -> String {
    let out = support::ssb_at(data, args);
    assert!(
        out.status.success(),
        "ssb-node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (a): ssb-node → fresh ssb-node.
fn nodes(dir: &Path, author: &str, n: u64) -> Run {
    let src = dir.join("src-node");
    let secret = dir.join("secret");
    let id = ssb_ok(&src, &["init", "--secret", secret.to_str().expect("utf8")]);
    assert_eq!(id.trim(), author, "source node identity");
    let start = Instant::now();
    let report = ssb_ok(
        &src,
        &["ingest", dir.join("feed.jsonl").to_str().expect("utf8")],
    );
    println!(
        "  source ssb-node: ingest took {:.2} s: {}",
        start.elapsed().as_secs_f64(),
        report.trim()
    );

    let (mut run, address) = support::running::start_run(
        Command::new(support::ssb_node())
            .arg("--data")
            .arg(&src)
            .args(["run", "--listen", "127.0.0.1:0", "--no-discovery"])
            .arg("--mount-root")
            .arg(dir.join("sticks")),
        &dir.join("src-node.log"),
        Duration::from_secs(30),
    );

    let fresh = dir.join("fresh-node");
    ssb_ok(&fresh, &["init"]);
    ssb_ok(&fresh, &["follow", author]);
    let timeout = DEADLINE.as_secs().to_string();
    let synced = measure::run(
        Command::new(support::ssb_node())
            .arg("--data")
            .arg(&fresh)
            .args(["sync", &address, "--timeout", &timeout]),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();
    let synced = synced.expect_success("ssb-node sync");
    println!("  {}", synced.stdout.trim());
    let clock: Value = serde_json::from_str(&ssb_ok(&fresh, &["clock"])).expect("clock JSON");
    assert_eq!(clock[author].as_u64(), Some(n), "fresh node's copy");
    Run {
        secs: synced.secs,
        peak_rss: synced.peak_rss,
    }
}

/// Prints one side's result; `how` says how its peak RSS was read.
fn report(r: &Run, n: u64, how: &str) {
    println!(
        "  {n} messages in {:.2} s = {:.0} msg/s; receiver peak RSS ({how}) {:.1} MiB\n",
        r.secs,
        n as f64 / r.secs,
        mib(r.peak_rss)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: u64 = env_or("SSB_BENCH_MESSAGES", 10_000);
    let part: String = env_or("SSB_BENCH_PART", "both".to_owned());
    let dir = tempfile::Builder::new()
        .prefix("replicate-bench-")
        .tempdir()
        .expect("temp dir");
    println!("making one feed of {n} messages with make-feed.js ...");
    let author = make_feed(dir.path(), n);
    let feed_mb = std::fs::metadata(dir.path().join("feed.jsonl"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    println!("feed {author}: {n} messages, {feed_mb:.1} MB of JSON lines\n");

    let mut b = None;
    if part == "b" || part == "both" {
        println!("(b) ssb-server 16.0.1 -> fresh ssb-server over 127.0.0.1:");
        let r = servers(dir.path(), &author, n);
        report(&r, n, "VmHWM");
        b = Some(r);
    }
    let mut a = None;
    if part == "a" || part == "both" {
        println!("(a) ssb-node -> fresh ssb-node over 127.0.0.1:");
        let r = nodes(dir.path(), &author, n);
        report(&r, n, "wait4");
        a = Some(r);
    }
    if let (Some(a), Some(b)) = (a, b) {
        println!(
            "ssb-node is {:.2} x as fast as ssb-server and peaks at {:.2} x its RSS",
            b.secs / a.secs,
            a.peak_rss as f64 / b.peak_rss as f64
        );
    }
}
