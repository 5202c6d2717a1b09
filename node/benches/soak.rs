//! Soak: `cargo bench -p ssb-node --bench soak` (run by hand, not in CI).
//!
//! One `ssb-node run` (the hub, release build) on 127.0.0.1 runs for
//! `SSB_SOAK_MINUTES` (default 30; `SSB_SOAK_MINUTES=1` to try it) while, in
//! rounds of about 5 s:
//! - the hub publishes (through its control socket);
//! - two peers publish and `sync` with it once each (connect, sync, drop);
//! - a third peer `run --connect`s the hub for about a minute, publishing
//!   live, then stops (SIGTERM) and comes back a round later;
//! - every third round a folder stick, exported to by a site node with no
//!   network, is moved into the hub's watched mount root, handled, moved out,
//!   and visited by the site again;
//! - hostile connections: garbage on a bare TCP connection, half a handshake
//!   that stalls, a wrong network key, garbage after a good handshake (two of
//!   each per round).
//!
//! Every `SSB_SOAK_SAMPLE_SECS` (10) the hub's VmRSS and its anonymous part,
//! open fds, threads (/proc/PID), its data dir's size on disk, and its store
//! buffers and live tasks (`status --json`) are printed as a table row and
//! written to `target/soak.csv`. At the end: first/last/min/max/median and
//! slope per hour of each column (over the run, its last two thirds and its
//! last third), then a last sync of every peer and a last stick visit, and
//! the check that the hub holds every peer's feed and site's feed, each peer
//! holds the hub's, and `ssb-node check` passes on the hub. Exits non-zero
//! when that fails. Only 127.0.0.1; everything is bounded in count and time
//! and stops by itself.
//!
//! `SSB_SOAK_HUB_WRAPPER` (words split on spaces) runs the hub under a
//! program that execs it, e.g. `env LD_PRELOAD=… DUMP_HEAPTRACK_OUTPUT=…`
//! for heaptrack: the sampled PID stays the hub's.
#![allow(missing_docs)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod measure;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{env_or, mib};
use serde_json::Value;
use ssb_node::muxrpc::client_handshake;
use ssb_node::net::shs::{Keypair, NetworkKey};
use support::running::{sigterm, spawn_run, Node};
use support::ssb_at;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// Peers that connect with one `sync` a round.
const SYNC_PEERS: usize = 2;
/// Rounds the live peer stays connected before it stops.
const LIVE_ROUNDS: u64 = 12;
/// Pause between rounds.
const ROUND_PAUSE: Duration = Duration::from_secs(5);
/// How long a stick may take to be handled.
const STICK_DEADLINE: Duration = Duration::from_secs(60);

/// `ssb-node --data DATA ARGS…`; its stdout, or the failure as text.
fn ssb(data: &Path, args: &[&str]) -> Result<String, String> {
    let out = ssb_at(data, args);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ssb-node {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like [`ssb`], panicking on failure (set-up and the final check).
fn ssb_ok(data: &Path, args: &[&str]) -> String {
    ssb(data, args).unwrap_or_else(|e| panic!("{e}"))
}

fn init(data: &Path, config: &str) -> String {
    let id = ssb_ok(data, &["init"]).trim().to_owned();
    std::fs::write(data.join("ssb-node.toml"), config).expect("config");
    id
}

fn replicate(ids: &[&str]) -> String {
    let list: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!("replicate = [{}]\nhops = 0\n", list.join(", "))
}

fn publish(data: &Path, text: &str) -> Result<String, String> {
    let content = format!(r#"{{"type":"post","text":"{text}"}}"#);
    ssb(data, &["publish", "--content", &content])
}

fn clock(data: &Path) -> Value {
    serde_json::from_str(&ssb_ok(data, &["clock"])).expect("clock JSON")
}

fn seq(clock: &Value, id: &str) -> u64 {
    clock[id].as_u64().unwrap_or(0)
}

/// Counts of what the driver did and what failed.
#[derive(Default)]
struct Counts {
    published: AtomicU64,
    syncs: AtomicU64,
    sync_failures: AtomicU64,
    live_starts: AtomicU64,
    sticks: AtomicU64,
    stick_failures: AtomicU64,
    hostile: AtomicU64,
    other_failures: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A column of the summary: its name and how to read it from a sample.
type Column = (&'static str, fn(&Sample) -> f64);

/// One sample of the hub.
struct Sample {
    secs: f64,
    rss_kib: u64,
    /// The anonymous part of VmRSS (heap, stacks: `RssAnon`). The rest is
    /// mostly pages of the binary and libraries mapped in, shared with the
    /// other `ssb-node` processes and bounded by their size; it grows as
    /// more of the code runs.
    anon_kib: u64,
    fds: u64,
    threads: u64,
    store_kib: u64,
    /// The store's memtables and block cache in use (`status --json`'s
    /// `store_memory`): bounded, and part of RSS.
    buffers_kib: u64,
    /// The hub's live tokio tasks (`status --json` `tasks`): flat unless
    /// tasks outlive their session or call.
    tasks: u64,
}

/// Size on disk (allocated blocks) of everything under `dir`.
fn disk_usage_kib(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total / 1024
}

/// The hub's store memtables and block cache in use (KiB) and its live
/// tasks, from its status.
fn status_sample(data: &Path) -> (u64, u64) {
    let Ok(out) = ssb(data, &["status", "--json"]) else {
        return (0, 0);
    };
    let Ok(v) = serde_json::from_str::<Value>(&out) else {
        return (0, 0);
    };
    let m = &v["store_memory"];
    let buffers =
        (m["write_buffer"].as_u64().unwrap_or(0) + m["cache"].as_u64().unwrap_or(0)) / 1024;
    (buffers, v["tasks"].as_u64().unwrap_or(0))
}

fn sample(pid: u32, data: &Path, start: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let (buffers_kib, tasks) = status_sample(data);
    Some(Sample {
        secs: start.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        fds,
        threads: field("Threads:"),
        store_kib: disk_usage_kib(data),
        buffers_kib,
        tasks,
    })
}

/// The hostile connections of one round, against `node` (2 of each kind).
async fn hostile_round(socket: std::net::SocketAddr, key: ssb_node::net::shs::PublicKey) -> u64 {
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        tasks.push(tokio::spawn(async move {
            let Ok(Ok(mut s)) =
                tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(socket)).await
            else {
                return;
            };
            match i % 4 {
                // Garbage instead of a handshake.
                0 => {
                    let _ = s.write_all(&[0x42; 300]).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // Half of msg1, then silence past the handshake timeout.
                1 => {
                    let _ = s.write_all(&[1u8; 32]).await;
                    let mut buf = [0u8; 1];
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
                    )
                    .await;
                }
                // Another network.
                2 => {
                    let _ = client_handshake(
                        &mut s,
                        NetworkKey([9; 32]),
                        Keypair::generate(),
                        key,
                        Duration::from_secs(5),
                    )
                    .await;
                }
                // A good handshake, then garbage.
                _ => {
                    let ok = client_handshake(
                        &mut s,
                        NetworkKey::default(),
                        Keypair::generate(),
                        key,
                        Duration::from_secs(5),
                    )
                    .await
                    .is_ok();
                    if ok {
                        let _ = s.write_all(&[0xa5; 2000]).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    let n = tasks.len() as u64;
    for t in tasks {
        let _ = t.await;
    }
    n
}

/// The stick state of `path` in the hub's status, if any.
fn stick_state(hub: &Path, path: &Path) -> Option<String> {
    let s: Value = serde_json::from_str(&ssb(hub, &["status", "--json"]).ok()?).ok()?;
    s["sticks"]
        .as_array()?
        .iter()
        .find(|st| st["path"].as_str() == path.to_str())
        .and_then(|st| st["state"].as_str().map(str::to_owned))
}

/// One stick round: the site visits the stick, it goes into the hub's root
/// until handled, comes out, and the site visits it again.
fn stick_round(site: &Path, hub: &Path, stick: &Path, inside: &Path) -> Result<(), String> {
    ssb(site, &["stick", "sync", stick.to_str().expect("utf8")])?;
    std::fs::rename(stick, inside).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + STICK_DEADLINE;
    let state = loop {
        match stick_state(hub, inside).as_deref() {
            Some(s @ ("done" | "error" | "pulled-early")) => break s.to_owned(),
            _ if Instant::now() > deadline => break "timed out".to_owned(),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    std::fs::rename(inside, stick).map_err(|e| e.to_string())?;
    if state != "done" {
        return Err(format!("stick ended {state}"));
    }
    ssb(site, &["stick", "sync", stick.to_str().expect("utf8")])?;
    Ok(())
}

/// A `run --connect HUB` of the live peer.
fn start_live(data: &Path, hub_addr: &str, log: &Path) -> Child {
    let (child, _) = spawn_run(
        data,
        &["--connect", hub_addr],
        &[],
        &[("SSB_NODE_LOG", "ssb_node=info")],
        std::fs::File::create(log).expect("log").into(),
    );
    child
}

fn stop(child: &mut Child) {
    sigterm(child);
    support::wait_or_kill(child, Duration::from_secs(10));
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Least-squares slope of `ys` over `xs` (seconds), per hour.
fn slope_per_hour(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 3600.0
    }
}

fn main() {
    let minutes: f64 = env_or("SSB_SOAK_MINUTES", 30.0);
    let every = Duration::from_secs(env_or("SSB_SOAK_SAMPLE_SECS", 10));
    let run_for = Duration::from_secs_f64(minutes * 60.0);
    let tmp = tempfile::Builder::new()
        .prefix("soak-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().canonicalize().expect("temp dir");
    let csv_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .canonicalize()
        .expect("target dir")
        .join("soak.csv");

    // Identities first: the hub replicates every peer and the site; they replicate the hub.
    let peers: Vec<PathBuf> = (0..=SYNC_PEERS)
        .map(|i| dir.join(format!("peer{i}")))
        .collect();
    let site = dir.join("site");
    let hub = dir.join("hub");
    let hub_id = init(&hub, "");
    let peer_ids: Vec<String> = peers
        .iter()
        .map(|p| init(p, &replicate(&[&hub_id])))
        .collect();
    let site_id = init(&site, &replicate(&[&hub_id]));
    let mut all: Vec<&str> = peer_ids.iter().map(String::as_str).collect();
    all.push(&site_id);
    std::fs::write(
        hub.join("ssb-node.toml"),
        format!("{}handshake_timeout = 2\n", replicate(&all)),
    )
    .expect("hub config");
    let root = dir.join("media");
    std::fs::create_dir(&root).expect("root");
    let stick = dir.join("stick");
    std::fs::create_dir_all(stick.join("SSB-SNEAKERNET")).expect("stick");
    let stick_inside = root.join("STICK");

    let hub_log = dir.join("hub.log");
    let wrapper: String = env_or("SSB_SOAK_HUB_WRAPPER", String::new());
    let wrapper: Vec<&str> = wrapper.split_whitespace().collect();
    let (hub_child, hub_addr) = spawn_run(
        &hub,
        &["--mount-root", root.to_str().expect("utf8")],
        &wrapper,
        &[("SSB_NODE_LOG", "ssb_node=info")],
        std::fs::File::create(&hub_log).expect("log").into(),
    );
    let (net, shs) = hub_addr.split_once("~shs:").expect("address");
    let socket: std::net::SocketAddr = net
        .strip_prefix("net:")
        .and_then(|s| s.parse().ok())
        .expect("socket address");
    let key = ssb_node::net::shs::PublicKey(
        ssb_node::feed::ids::decode_base64_exact::<32>(shs).expect("key"),
    );
    let hub_node = Node {
        child: hub_child,
        data: hub.clone(),
        log: hub_log.clone(),
        addr: hub_addr.clone(),
        socket,
        key,
    };
    let pid = hub_node.child.id();
    println!(
        "soak: {minutes} min, hub pid {pid} at {hub_addr}\n  dir {}\n  hub log {}\n  samples every {} s -> {}",
        dir.display(),
        hub_log.display(),
        every.as_secs(),
        csv_path.display()
    );

    let counts = Arc::new(Counts::default());
    let stop_flag = Arc::new(AtomicBool::new(false));

    // Hostile connections, one batch a round.
    let hostile = {
        let (counts, stop_flag) = (counts.clone(), stop_flag.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            while !stop_flag.load(Ordering::Relaxed) {
                let n = rt.block_on(hostile_round(socket, key));
                counts.hostile.fetch_add(n, Ordering::Relaxed);
                std::thread::sleep(ROUND_PAUSE);
            }
        })
    };

    // The friendly traffic, round after round.
    let driver = {
        let (counts, stop_flag) = (counts.clone(), stop_flag.clone());
        let (hub, site, peers, hub_addr) =
            (hub.clone(), site.clone(), peers.clone(), hub_addr.clone());
        let (stick, stick_inside, dir) = (stick.clone(), stick_inside.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut live: Option<Child> = None;
            let mut round = 0u64;
            let note = |r: Result<String, String>, ok: &AtomicU64, failed: &AtomicU64| match r {
                Ok(_) => bump(ok),
                Err(e) => {
                    bump(failed);
                    eprintln!("  round failure: {e}");
                }
            };
            while !stop_flag.load(Ordering::Relaxed) {
                round += 1;
                note(
                    publish(&hub, &format!("hub round {round}")),
                    &counts.published,
                    &counts.other_failures,
                );
                for p in &peers[..SYNC_PEERS] {
                    note(
                        publish(p, &format!("peer round {round}")),
                        &counts.published,
                        &counts.other_failures,
                    );
                    note(
                        ssb(p, &["sync", &hub_addr, "--timeout", "60"]),
                        &counts.syncs,
                        &counts.sync_failures,
                    );
                }
                let live_data = &peers[SYNC_PEERS];
                let phase = round % (LIVE_ROUNDS + 1);
                match (&mut live, phase) {
                    (Some(child), 0) => {
                        stop(child);
                        live = None;
                    }
                    (None, p) if p != 0 => {
                        live = Some(start_live(live_data, &hub_addr, &dir.join("live.log")));
                        bump(&counts.live_starts);
                    }
                    _ => {}
                }
                if live.is_some() {
                    note(
                        publish(live_data, &format!("live round {round}")),
                        &counts.published,
                        &counts.other_failures,
                    );
                }
                if round.is_multiple_of(3) {
                    note(
                        publish(&site, &format!("site round {round}")),
                        &counts.published,
                        &counts.other_failures,
                    );
                    match stick_round(&site, &hub, &stick, &stick_inside) {
                        Ok(()) => bump(&counts.sticks),
                        Err(e) => {
                            bump(&counts.stick_failures);
                            eprintln!("  stick failure: {e}");
                        }
                    }
                }
                std::thread::sleep(ROUND_PAUSE);
            }
            if let Some(mut child) = live {
                stop(&mut child);
            }
            round
        })
    };

    // Samples.
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut csv = String::from(
        "seconds,rss_kib,open_fds,threads,store_kib,store_buffers_kib,tasks,anon_kib\n",
    );
    println!(
        "{:>8} {:>10} {:>8} {:>8} {:>11} {:>12} {:>14} {:>6} {:>9}",
        "seconds",
        "RSS MiB",
        "fds",
        "threads",
        "store MiB",
        "buffers MiB",
        "RSS-buf MiB",
        "tasks",
        "anon MiB"
    );
    let mut next = start;
    while start.elapsed() < run_for {
        let Some(s) = sample(pid, &hub, start) else {
            stop_flag.store(true, Ordering::Relaxed);
            panic!(
                "the hub is gone; log:\n{}",
                std::fs::read_to_string(&hub_log).unwrap_or_default()
            );
        };
        println!(
            "{:>8.0} {:>10.2} {:>8} {:>8} {:>11.2} {:>12.2} {:>14.2} {:>6} {:>9.2}",
            s.secs,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads,
            s.store_kib as f64 / 1024.0,
            s.buffers_kib as f64 / 1024.0,
            s.rss_kib.saturating_sub(s.buffers_kib) as f64 / 1024.0,
            s.tasks,
            s.anon_kib as f64 / 1024.0
        );
        csv.push_str(&format!(
            "{:.1},{},{},{},{},{},{},{}\n",
            s.secs, s.rss_kib, s.fds, s.threads, s.store_kib, s.buffers_kib, s.tasks, s.anon_kib
        ));
        let _ = std::fs::write(&csv_path, &csv);
        samples.push(s);
        next += every;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    stop_flag.store(true, Ordering::Relaxed);
    let rounds = driver.join().expect("driver thread");
    let _ = hostile.join();

    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "\n{rounds} rounds: {} messages published, {} syncs ({} failed), {} live-peer runs, \
         {} stick visits ({} failed), {} hostile connections, {} other failures",
        c(&counts.published),
        c(&counts.syncs),
        c(&counts.sync_failures),
        c(&counts.live_starts),
        c(&counts.sticks),
        c(&counts.stick_failures),
        c(&counts.hostile),
        c(&counts.other_failures)
    );
    let xs: Vec<f64> = samples.iter().map(|s| s.secs).collect();
    println!(
        "\n{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12}",
        "column", "first", "last", "min", "max", "median", "slope/hour", "last 2/3", "last 1/3"
    );
    let columns: [Column; 9] = [
        ("RSS MiB", |s| s.rss_kib as f64 / 1024.0),
        ("buffers", |s| s.buffers_kib as f64 / 1024.0),
        ("RSS-buf", |s| {
            s.rss_kib.saturating_sub(s.buffers_kib) as f64 / 1024.0
        }),
        ("anon MiB", |s| s.anon_kib as f64 / 1024.0),
        ("anon-buf", |s| {
            s.anon_kib.saturating_sub(s.buffers_kib) as f64 / 1024.0
        }),
        ("fds", |s| s.fds as f64),
        ("threads", |s| s.threads as f64),
        ("tasks", |s| s.tasks as f64),
        ("store MiB", |s| s.store_kib as f64 / 1024.0),
    ];
    for (name, f) in columns {
        let mut ys: Vec<f64> = samples.iter().map(f).collect();
        let slope = slope_per_hour(&xs, &ys);
        // The trend once warmed up: over the last two thirds and the last third.
        let tail = |part: usize| {
            let from = xs.len() - xs.len() * part / 3;
            slope_per_hour(&xs[from..], &ys[from..])
        };
        let (two_thirds, third) = (tail(2), tail(1));
        let (first, last) = (ys[0], ys[ys.len() - 1]);
        let min = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let med = median(&mut ys);
        println!(
            "{name:<10} {first:>9.2} {last:>9.2} {min:>9.2} {max:>9.2} {med:>9.2} {slope:>12.2} \
             {two_thirds:>12.2} {third:>12.2}"
        );
    }
    let held = seq(&clock(&hub), &hub_id);
    println!(
        "store: {:.1} KiB on disk per message held ({} messages in all feeds)",
        samples.last().map_or(0, |s| s.store_kib) as f64
            / clock(&hub).as_object().map_or(1, |m| m
                .values()
                .filter_map(Value::as_u64)
                .sum::<u64>()
                .max(1)) as f64,
        clock(&hub)
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>())
    );

    // Convergence: one last sync of each peer and one last stick visit.
    for p in &peers {
        ssb_ok(p, &["sync", &hub_addr, "--timeout", "120"]);
    }
    stick_round(&site, &hub, &stick, &stick_inside).unwrap_or_else(|e| panic!("last stick: {e}"));
    let hub_clock = clock(&hub);
    let mut ok = true;
    for (p, id) in peers.iter().zip(&peer_ids).chain([(&site, &site_id)]) {
        let own = seq(&clock(p), id);
        let at_hub = seq(&hub_clock, id);
        let hubs = seq(&clock(p), &hub_id);
        let fine = own == at_hub && hubs == held;
        ok &= fine;
        println!(
            "  {}: own feed {own}, hub holds {at_hub}; holds hub's {hubs} of {held}: {}",
            p.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            if fine { "converged" } else { "NOT CONVERGED" }
        );
    }
    let mut hub_node = hub_node;
    assert!(hub_node.alive(), "the hub died:\n{}", hub_node.log());
    let drops = hub_node.log().matches("dropped").count();
    println!("  hub log: {drops} lines about dropped connections");
    stop(&mut hub_node.child);
    let check = ssb_at(&hub, &["check"]);
    println!(
        "  ssb-node check on the hub: {}",
        if check.status.success() {
            "passes"
        } else {
            "FAILS"
        }
    );
    println!("samples: {} ({})", samples.len(), csv_path.display());
    assert!(check.status.success(), "check: {check:?}");
    assert!(ok, "the peers did not converge");
    println!(
        "soak: PASS (RSS {:.1} -> {:.1} MiB peak VmRSS sample {:.1} MiB)",
        samples[0].rss_kib as f64 / 1024.0,
        samples[samples.len() - 1].rss_kib as f64 / 1024.0,
        mib(samples.iter().map(|s| s.rss_kib * 1024).max().unwrap_or(0))
    );
}
