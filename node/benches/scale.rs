//! Scale benchmark: `cargo bench -p ssb-node --bench scale`.
//!
//! 1. **A big store.** `SSB_SCALE_MESSAGES` (1,000,000) signed messages from
//!    `SSB_SCALE_FEEDS` (5,000) feeds with a skewed graph: feed `i` holds a
//!    share proportional to 1/(i+1) (a few large feeds, many of a few dozen
//!    messages), interleaved by time as replication delivers them. Ingested
//!    by the real `ssb-node ingest` in three steps into one store (to 10 %,
//!    50 % and 100 %), each step's rate and peak RSS (`wait4`) beside the raw
//!    ed25519-dalek `verify_batch` limit on 1 and 2 threads, measured in the
//!    same run on a sample of the same messages. Then the store's open time
//!    and the latest 100 messages of the largest and of a small feed
//!    (in-process, and as the whole `ssb-node feed` command), and the RSS of
//!    `ssb-node run` on that store after `SSB_SCALE_IDLE_SECS` (60) idle.
//! 2. **Many-feed EBT.** `SSB_SCALE_EBT_FEEDS` (1,000) feeds ×
//!    `SSB_SCALE_EBT_PER_FEED` (20) messages, held by a source; a fresh
//!    receiver follows every feed (not timed) and replicates them over
//!    127.0.0.1: ssb-node → ssb-node (`sync`, the whole process timed),
//!    ssb-server 16 → ssb-server (from `connect` until it holds every
//!    feed's last message), ssb-server → ssb-node (`sync`) and ssb-node →
//!    ssb-server. Then a second ssb-node → ssb-node session with nothing
//!    new: its wall and CPU time, the source's CPU time for it, and how many
//!    feeds each side's opening clock names (request skipping leaves out the
//!    feeds the peer's stored clock matched).
//!
//! `SSB_SCALE_PART` = `store`, `ebt` or `all` (default). Every process is the
//! release binary, measured from outside; the big data lives only in child
//! processes (a child's peak RSS starts from its parent's).
#![allow(missing_docs)]

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../../tests/support/ssb_server.rs"]
mod ssb_server;

mod measure;

use std::collections::BinaryHeap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use measure::{env_or, mib, signed};
use serde_json::{json, Value as Json};
use ssb_node::feed::{FeedId, Message, Value};
use ssb_server::{Options, SsbServer};

/// How long one replication may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(300);

/// Messages of the raw signature-check sample.
const SAMPLE: usize = 100_000;

/// The content of message `seq` of feed `feed`: a post of 60–200 characters.
fn post(feed: usize, seq: usize) -> String {
    let len = 60 + (feed * 31 + seq * 17) % 140;
    let words = "the well is fixed, market on thursday, bring seeds for the swap; ";
    let text: String = words.chars().cycle().take(len).collect();
    format!(r#"{{"type":"post","text":"{seq}: {text}","channel":"village"}}"#)
}

/// How many messages each of `feeds` feeds holds: proportional to 1/(i+1),
/// at least 1, `total` in all.
fn skewed(feeds: usize, total: usize) -> Vec<usize> {
    let h: f64 = (0..feeds).map(|i| 1.0 / (i as f64 + 1.0)).sum();
    let mut n: Vec<usize> = (0..feeds)
        .map(|i| ((total as f64 / h / (i as f64 + 1.0)) as usize).max(1))
        .collect();
    let sum: usize = n.iter().sum();
    if sum < total {
        n[0] += total - sum;
    } else {
        let mut over = sum - total;
        for x in n.iter_mut() {
            let take = over.min(x.saturating_sub(1));
            *x -= take;
            over -= take;
        }
    }
    n
}

/// A feed's next message in time order: (−time, feed), for a max-heap.
#[derive(PartialEq)]
struct Next(f64, usize);
impl Eq for Next {}
impl Ord for Next {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}
impl PartialOrd for Next {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Writes the messages of feeds with `sizes` (keys from `seed_base`) to
/// `parts` files: each feed's messages spread evenly over the same time
/// span, all merged by time; file `k` ends after `cuts[k]` messages. Returns
/// the messages of the first `sample` lines.
fn write_feeds(
    seed_base: usize,
    sizes: &[usize],
    parts: &[(PathBuf, usize)],
    sample: usize,
) -> Vec<Message> {
    let keys = keys_from(seed_base, sizes.len());
    let mut heads = vec![None; sizes.len()];
    let mut done = vec![0usize; sizes.len()];
    let mut heap: BinaryHeap<Next> = (0..sizes.len())
        .map(|i| Next(-0.5 / sizes[i] as f64, i))
        .collect();
    let mut out = Vec::with_capacity(sample);
    let mut written = 0;
    for (path, cut) in parts {
        let mut w = BufWriter::new(std::fs::File::create(path).expect("create part"));
        while written < *cut {
            let Some(Next(t, i)) = heap.pop() else { break };
            done[i] += 1;
            let content = Value::parse(post(i, done[i]).as_bytes()).expect("content");
            let ts = 1_700_000_000_000.0 - t * 1e9;
            let m =
                Message::create(&keys[i], heads[i].as_ref(), ts, content, None).expect("create");
            heads[i] = Some(m.head());
            w.write_all(m.value().to_compact().as_bytes())
                .expect("write");
            w.write_all(b"\n").expect("write");
            if out.len() < sample {
                out.push(m);
            }
            if done[i] < sizes[i] {
                heap.push(Next(-(done[i] as f64 + 0.5) / sizes[i] as f64, i));
            }
            written += 1;
        }
        w.flush().expect("flush");
    }
    out
}

/// The `ssb-node` measured: `SSB_SCALE_BIN` (another build, to compare
/// with), else the one cargo built with this bench.
fn node_bin() -> PathBuf {
    std::env::var_os("SSB_SCALE_BIN").map_or_else(support::ssb_node, PathBuf::from)
}

/// The keys of feeds `base..base + n`, made as [`signed::keys`] makes them
/// (so `keys_from(0, n)` is `signed::keys(n)`).
fn keys_from(base: usize, n: usize) -> Vec<ssb_node::feed::Keypair> {
    (base..base + n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            ssb_node::feed::Keypair::from_seed(&seed)
        })
        .collect()
}

/// `ssb-node --data DATA ARGS…`, which must succeed; its stdout.
fn ssb_ok(data: &Path, args: &[&str]) -> String {
    let out = support::run(Command::new(node_bin()).arg("--data").arg(data).args(args));
    assert!(
        out.status.success(),
        "ssb-node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The child role `prepare`: writes the big store's three input parts and
/// prints `limits BATCH1 BATCH2 BIGGEST SMALL`.
fn prepare(dir: &Path, feeds: usize, total: usize) {
    let sizes = skewed(feeds, total);
    let parts: Vec<(PathBuf, usize)> = checkpoints(total)
        .iter()
        .enumerate()
        .map(|(k, n)| (dir.join(format!("part{k}.jsonl")), *n))
        .collect();
    let sample = write_feeds(0, &sizes, &parts, SAMPLE.min(total));
    let batch1 = signed::rate(&sample, 1, true);
    let batch2 = signed::rate(&sample, 2, true);
    let keys = signed::keys(feeds);
    let small = feeds / 2;
    println!(
        "limits {batch1} {batch2} {} {} {} {} {}",
        keys[0].id(),
        sizes[0],
        keys[small].id(),
        sizes[small],
        sizes[feeds - 1]
    );
}

/// The store sizes measured: 10 %, 50 % and 100 % of `total`.
fn checkpoints(total: usize) -> [usize; 3] {
    [total / 10, total / 2, total]
}

/// The child role `probe`: opens the store in `data` and times it, and the
/// latest 100 messages of `feed` (`seq` of them held); prints
/// `probe OPEN_MS FEED_MS`.
fn probe(data: &Path, feed: &str, seq: u32) {
    let start = Instant::now();
    let store = ssb_node::store::Store::open(&data.join("db")).expect("open");
    let open = start.elapsed();
    let feed: FeedId = feed.parse().expect("feed id");
    let start = Instant::now();
    let got: Vec<_> = store
        .feed(&feed, seq.saturating_sub(99))
        .take(100)
        .collect::<Result<_, _>>()
        .expect("feed");
    let read = start.elapsed();
    assert_eq!(got.len(), 100.min(seq as usize));
    println!(
        "probe {} {}",
        open.as_secs_f64() * 1e3,
        read.as_secs_f64() * 1e3
    );
}

/// Runs this bench binary as the child role `role` (an env var) and returns
/// the numbers of its `role …` line.
fn child(role: &str, value: &str) -> Vec<String> {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(role, value)
        .stderr(Stdio::inherit())
        .output()
        .expect("run a child role");
    assert!(out.status.success(), "{role} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// `ssb-node run` on `data`, listening on 127.0.0.1; its process and address.
fn run_node(data: &Path, log: &Path) -> (Child, String, f64) {
    let start = Instant::now();
    let (run, address) = support::running::start_run(
        Command::new(node_bin())
            .arg("--data")
            .arg(data)
            .args(["run", "--listen", "127.0.0.1:0", "--no-discovery"])
            .arg("--mount-root")
            .arg(data.with_extension("sticks"))
            .env("SSB_NODE_LOG", "ssb_node=debug"),
        log,
        Duration::from_secs(60),
    );
    (run, address, start.elapsed().as_secs_f64())
}

fn stop(mut run: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();
}

/// A field of `/proc/PID/status` in bytes (e.g. `VmRSS`).
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// User + system CPU seconds of a running process so far.
fn proc_cpu(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn store_part(dir: &Path) {
    let feeds = env_or("SSB_SCALE_FEEDS", 5000usize);
    let total = env_or("SSB_SCALE_MESSAGES", 1_000_000usize);
    let idle = env_or("SSB_SCALE_IDLE_SECS", 60u64);
    println!("making {total} messages from {feeds} feeds (share of feed i ~ 1/(i+1)) ...");
    let start = Instant::now();
    let l = child("SSB_SCALE_PREPARE", dir.to_str().expect("utf8"));
    let [b1, b2, big, big_n, small, small_n, least] = &l[..] else {
        panic!("unexpected prepare output: {l:?}")
    };
    let (b1, b2): (f64, f64) = (b1.parse().expect("n"), b2.parse().expect("n"));
    let mb: f64 = (0..3)
        .map(|k| {
            std::fs::metadata(dir.join(format!("part{k}.jsonl")))
                .map_or(0.0, |m| m.len() as f64 / 1e6)
        })
        .sum();
    println!(
        "  made in {:.1} s: {mb:.1} MB of JSON lines; largest feed {big_n} messages, median {small_n}, smallest {least}\n",
        start.elapsed().as_secs_f64()
    );
    println!(
        "raw ed25519-dalek verify_batch on {} of these messages:",
        SAMPLE.min(total)
    );
    println!("  1 thread                 {b1:>9.0} msg/s");
    println!("  2 threads (the limit)    {b2:>9.0} msg/s\n");

    let data = dir.join("store");
    ssb_ok(&data, &["init"]);
    println!("ssb-node ingest into one store, in three steps (batch, 2 verify threads):");
    let mut before = 0;
    for (k, n) in checkpoints(total).iter().enumerate() {
        let part = dir.join(format!("part{k}.jsonl"));
        let m = measure::run(
            Command::new(node_bin())
                .arg("--data")
                .arg(&data)
                .arg("ingest")
                .arg(&part),
        )
        .expect_success("ingest");
        let added = n - before;
        let rate = added as f64 / m.secs;
        println!(
            "  to {n:>8} messages: {added:>7} in {:>6.2} s = {rate:>7.0} msg/s = {:.2} x the 2-thread limit ({:.2} x 1-thread); peak RSS {:>5.1} MiB; CPU {:.0} %",
            m.secs,
            rate / b2,
            rate / b1,
            mib(m.peak_rss),
            100.0 * m.cpu_secs / m.secs
        );
        before = *n;
    }
    let du = Command::new("du")
        .args(["-sm"])
        .arg(data.join("db"))
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_default();
    println!("  store on disk: {du} MiB\n");

    println!("open and read (in a fresh process each; median of 5):");
    for (name, feed, n) in [("largest", big, big_n), ("median", small, small_n)] {
        let mut opens = Vec::new();
        let mut reads = Vec::new();
        for _ in 0..5 {
            let p = child(
                "SSB_SCALE_PROBE",
                &format!("{}\t{feed}\t{n}", data.display()),
            );
            opens.push(p[0].parse::<f64>().expect("ms"));
            reads.push(p[1].parse::<f64>().expect("ms"));
        }
        let mut cmd = Vec::new();
        let from = n
            .parse::<u32>()
            .expect("n")
            .saturating_sub(99)
            .max(1)
            .to_string();
        for _ in 0..5 {
            let m = measure::run(
                Command::new(node_bin())
                    .arg("--data")
                    .arg(&data)
                    .args(["feed", feed, "--from", &from, "--limit", "100"]),
            )
            .expect_success("feed");
            assert_eq!(m.stdout.lines().count(), 100.min(n.parse().expect("n")));
            cmd.push(m.secs * 1e3);
        }
        println!(
            "  {name} feed ({n} messages): Store::open {:.1} ms; its latest 100 {:.2} ms; the whole `ssb-node feed --from {from} --limit 100` {:.1} ms",
            median(&mut opens),
            median(&mut reads),
            median(&mut cmd)
        );
    }

    let (run, _, ready) = run_node(&data, &dir.join("idle.log"));
    std::thread::sleep(Duration::from_secs(idle));
    let pid = run.id();
    let (rss, hwm, cpu) = (
        proc_status(pid, "VmRSS"),
        proc_status(pid, "VmHWM"),
        proc_cpu(pid),
    );
    stop(run);
    println!(
        "\nssb-node run on that store: listening after {:.0} ms; after {idle} s idle VmRSS {:.1} MiB (peak {:.1} MiB), CPU {cpu:.2} s in all\n",
        ready * 1e3,
        mib(rss),
        mib(hwm)
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The many-feed dataset: `dir/ebt.jsonl` and the feed ids.
fn ebt_data(dir: &Path, feeds: usize, per_feed: usize) -> Vec<String> {
    let path = dir.join("ebt.jsonl");
    // Seeds past the big store's feeds: other authors.
    write_feeds(
        1_000_000,
        &vec![per_feed; feeds],
        &[(path, feeds * per_feed)],
        0,
    );
    keys_from(1_000_000, feeds)
        .iter()
        .map(|k| k.id().to_string())
        .collect()
}

/// A fresh ssb-node data dir that follows every feed of `ids`.
fn fresh_node(data: &Path, ids: &[String]) {
    ssb_ok(data, &["init"]);
    let lines: String = ids
        .iter()
        .map(|id| format!("{{\"type\":\"contact\",\"contact\":\"{id}\",\"following\":true}}\n"))
        .collect();
    let mut child = Command::new(node_bin())
        .arg("--data")
        .arg(data)
        .args(["publish", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("publish");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write follows");
    assert!(child.wait().expect("wait").success(), "publish follows");
}

/// A fresh ssb-server that follows every feed of `ids`.
fn fresh_server(ids: &[String]) -> SsbServer {
    let mut s = SsbServer::start(Options {
        cmd_timeout: DEADLINE,
        ..Options::default()
    });
    for id in ids {
        s.ok(json!({"cmd": "follow", "id": id}));
    }
    s
}

/// Connects `dst` to `address` and waits until it holds `per_feed` of each
/// feed; seconds from `connect` on.
fn server_pulls(dst: &mut SsbServer, address: &str, ids: &[String], per_feed: u64) -> f64 {
    let start = Instant::now();
    dst.ok(json!({"cmd": "connect", "address": address}));
    for id in ids {
        dst.wait_for(id, per_feed, DEADLINE);
    }
    start.elapsed().as_secs_f64()
}

/// `ssb-node sync ADDRESS` from `data`, with a debug log; (measured, log).
fn sync(data: &Path, address: &str) -> (measure::Measured, String) {
    let timeout = DEADLINE.as_secs().to_string();
    let m = measure::run(
        Command::new(node_bin())
            .arg("--data")
            .arg(data)
            .env("SSB_NODE_LOG", "ssb_node=debug")
            .args(["sync", address, "--timeout", &timeout]),
    );
    let log = m.stderr.clone();
    (m.expect_success("sync"), log)
}

/// The `feeds=N skipped=M` of the last `ebt opening clock` line in `log`.
fn opening(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("ebt opening clock"))
        .map(|l| {
            l.split_whitespace()
                .filter(|w| w.starts_with("feeds=") || w.starts_with("skipped="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "(no opening clock logged)".to_owned())
}

fn holds_all(data: &Path, ids: &[String], per_feed: u64) {
    let clock: Json = serde_json::from_str(&ssb_ok(data, &["clock"])).expect("clock JSON");
    for id in ids {
        assert_eq!(
            clock[id].as_u64(),
            Some(per_feed),
            "{id} in {}",
            data.display()
        );
    }
}

fn ebt_part(dir: &Path) {
    let feeds = env_or("SSB_SCALE_EBT_FEEDS", 1000usize);
    let per_feed = env_or("SSB_SCALE_EBT_PER_FEED", 20usize);
    let total = feeds * per_feed;
    println!("EBT: {feeds} feeds x {per_feed} messages ({total}), to a fresh receiver that follows each feed, over 127.0.0.1:");
    let ids = ebt_data(dir, feeds, per_feed);
    let input = dir.join("ebt.jsonl");
    let per = per_feed as u64;

    // ssb-server -> ssb-server. Every source follows each feed too: a
    // server offers only the feeds it replicates itself.
    let mut src = fresh_server(&ids);
    let added = src.ok(json!({"cmd": "addFile", "path": input}));
    assert_eq!(added["added"].as_u64(), Some(total as u64));
    let mut dst = fresh_server(&ids);
    let servers = server_pulls(&mut dst, src.address(), &ids, per);
    let servers_hwm = dst.ok(json!({"cmd": "rss"}))["hwm"].as_u64().unwrap_or(0);
    drop(dst);
    println!(
        "  ssb-server -> ssb-server: {servers:.2} s (receiver VmHWM {:.1} MiB)",
        mib(servers_hwm)
    );

    // ssb-server -> ssb-node.
    let from_server = dir.join("from-server");
    fresh_node(&from_server, &ids);
    let (m, _) = sync(&from_server, src.address());
    holds_all(&from_server, &ids, per);
    println!(
        "  ssb-server -> ssb-node:   {:.2} s (receiver peak RSS {:.1} MiB) = {:.1} x ssb-server -> ssb-server",
        m.secs,
        mib(m.peak_rss),
        servers / m.secs
    );
    let (again, log) = sync(&from_server, src.address());
    println!(
        "    again, nothing new: {:.0} ms, {:.0} ms CPU; our opening clock {}",
        again.secs * 1e3,
        again.cpu_secs * 1e3,
        opening(&log)
    );
    drop(src);

    // ssb-node -> ssb-node.
    let source = dir.join("ebt-source");
    fresh_node(&source, &ids);
    ssb_ok(&source, &["ingest", input.to_str().expect("utf8")]);
    let src_log = dir.join("ebt-source.log");
    let (run, address, _) = run_node(&source, &src_log);
    let fresh = dir.join("fresh-node");
    fresh_node(&fresh, &ids);
    let (m, _) = sync(&fresh, &address);
    holds_all(&fresh, &ids, per);
    println!(
        "  ssb-node -> ssb-node:     {:.2} s (receiver peak RSS {:.1} MiB) = {:.1} x ssb-server -> ssb-server",
        m.secs,
        mib(m.peak_rss),
        servers / m.secs
    );
    let cpu_before = proc_cpu(run.id());
    let (again, log) = sync(&fresh, &address);
    let src_cpu = proc_cpu(run.id()) - cpu_before;
    let src_text = std::fs::read_to_string(&src_log).unwrap_or_default();
    println!(
        "    again, nothing new: {:.0} ms, {:.0} ms CPU (the source: {:.0} ms CPU); opening clocks: ours {}, the source's {}",
        again.secs * 1e3,
        again.cpu_secs * 1e3,
        src_cpu * 1e3,
        opening(&log),
        opening(&src_text)
    );

    // ssb-node -> ssb-server.
    let mut dst = fresh_server(&ids);
    let secs = server_pulls(&mut dst, &address, &ids, per);
    let hwm = dst.ok(json!({"cmd": "rss"}))["hwm"].as_u64().unwrap_or(0);
    drop(dst);
    stop(run);
    println!(
        "  ssb-node -> ssb-server:   {secs:.2} s (receiver VmHWM {:.1} MiB) = {:.1} x ssb-server -> ssb-server\n",
        mib(hwm),
        servers / secs
    );
}

fn main() {
    if let Ok(dir) = std::env::var("SSB_SCALE_PREPARE") {
        let feeds = env_or("SSB_SCALE_FEEDS", 5000usize);
        let total = env_or("SSB_SCALE_MESSAGES", 1_000_000usize);
        prepare(Path::new(&dir), feeds, total);
        return;
    }
    if let Ok(args) = std::env::var("SSB_SCALE_PROBE") {
        let mut it = args.split('\t');
        let (Some(data), Some(feed), Some(seq)) = (it.next(), it.next(), it.next()) else {
            panic!("probe arguments: {args}")
        };
        probe(Path::new(data), feed, seq.parse().expect("seq"));
        return;
    }
    let part: String = env_or("SSB_SCALE_PART", "all".to_owned());
    let dir = tempfile::Builder::new()
        .prefix("scale-bench-")
        .tempdir()
        .expect("temp dir");
    let start = Instant::now();
    if part == "store" || part == "all" {
        store_part(dir.path());
    }
    if part == "ebt" || part == "all" {
        ebt_part(dir.path());
    }
    println!("bench took {:.0} s", start.elapsed().as_secs_f64());
}
