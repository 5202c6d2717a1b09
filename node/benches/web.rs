//! The web page's budget: `cargo bench -p ssb-node --bench web` (by hand,
//! not in CI; release build).
//!
//! 1. Idle cost: two `ssb-node run` on 127.0.0.1 with the same empty data,
//!    one without and one with `--http`; after they settle (and after 20
//!    page loads on the second), each one's VmRSS, then the context switches
//!    of its threads (12 s after the loads) over `SSB_WEB_IDLE_SECS` (default 10) of idling:
//!    the HTTP server's share is the difference (budget: ≤ 2 MiB, 0
//!    wake-ups).
//! 2. Rendering: an in-process node carrying 1,000 feeds (each with a
//!    message, half named by an `about`), the status and feeds pages served
//!    through the router `SSB_WEB_RENDERS` (default 200) times each: median
//!    and worst time per page (budget for the status page: < 20 ms).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod measure;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use measure::{env_or, mib};
use ssb_node::blob_store::BlobStore;
use ssb_node::feed::json::Value;
use ssb_node::feed::Keypair;
use ssb_node::service::config::Settings;
use ssb_node::service::Node;
use ssb_node::store::Store;
use support::{ssb_at, ssb_node};
use tower::ServiceExt;

fn field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// VmRSS of `pid`, bytes.
fn rss(pid: u32) -> u64 {
    field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap(),
        "VmRSS:",
    ) * 1024
}

/// Context switches (voluntary and not) of each of `pid`'s threads.
fn switches(pid: u32) -> std::collections::HashMap<String, u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| {
            let s = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let n =
                field(&s, "voluntary_ctxt_switches:") + field(&s, "nonvoluntary_ctxt_switches:");
            (t.file_name().to_string_lossy().into_owned(), n)
        })
        .collect()
}

/// Wake-ups between two samples: the switches of threads in both, plus one
/// per thread that appeared or left.
fn wakeups(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> u64 {
    let mut n = 0;
    for (tid, a) in after {
        n += match before.get(tid) {
            Some(b) => a.saturating_sub(*b),
            None => 1,
        };
    }
    n + before.keys().filter(|t| !after.contains_key(*t)).count() as u64
}

/// `ssb-node run` on a fresh data dir, with `extra` arguments.
fn start(dir: &Path, name: &str, extra: &[&str]) -> Child {
    let data = dir.join(name);
    assert!(ssb_at(&data, &["init"]).status.success());
    let mut child = Command::new(ssb_node())
        .arg("--data")
        .arg(&data)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--no-discovery",
            "--mount-root",
        ])
        .arg(dir.join(format!("{name}-sticks")))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening "), "{line}");
    if !extra.is_empty() {
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("web "), "{line}");
    }
    child
}

fn load(port: u16, path: &str) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(all.starts_with(b"HTTP/1.1 200"), "{path}");
    all.len()
}

fn idle_cost() {
    let idle = Duration::from_secs(env_or("SSB_WEB_IDLE_SECS", 10));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = format!("127.0.0.1:{port}");
    let mut plain = start(dir.path(), "plain", &[]);
    let mut web = start(dir.path(), "web", &["--http", &http]);
    std::thread::sleep(Duration::from_secs(3));
    let (rss_plain, rss_web) = (rss(plain.id()), rss(web.id()));
    for _ in 0..5 {
        for path in ["/", "/feeds", "/sticks", "/status.json"] {
            load(port, path);
        }
    }
    // Past tokio's 10 s keep-alive of idle blocking threads.
    std::thread::sleep(Duration::from_secs(12));
    let rss_web_used = rss(web.id());
    let (p0, w0) = (switches(plain.id()), switches(web.id()));
    std::thread::sleep(idle);
    let (p1, w1) = (switches(plain.id()), switches(web.id()));
    println!("idle node, RSS: without --http {:.2} MiB; with --http {:.2} MiB (+{:.2}); after 20 page loads {:.2} MiB (+{:.2})",
        mib(rss_plain), mib(rss_web), mib(rss_web.saturating_sub(rss_plain)),
        mib(rss_web_used), mib(rss_web_used.saturating_sub(rss_plain)));
    println!(
        "idle node, context switches in {} s: without --http {}; with --http {} (after the page loads)",
        idle.as_secs(),
        wakeups(&p0, &p1),
        wakeups(&w0, &w1)
    );
    for c in [&mut plain, &mut web] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn render_times() {
    let renders: usize = env_or("SSB_WEB_RENDERS", 200);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(&root.join("db")).unwrap();
    let blobs = BlobStore::open(&root.join("blobs")).unwrap();
    let mut carried = Vec::new();
    for i in 0..1000 {
        let k = Keypair::generate();
        let mut contents =
            vec![
                Value::parse(format!(r#"{{"type":"post","text":"post {i}"}}"#).as_bytes()).unwrap(),
            ];
        if i % 2 == 0 {
            let about = format!(
                r#"{{"type":"about","about":"{}","name":"Person {i}"}}"#,
                k.id()
            );
            contents.push(Value::parse(about.as_bytes()).unwrap());
        }
        ssb_node::publish::publish(&store, &k, contents).unwrap();
        carried.push(k.id());
    }
    let settings = Settings {
        replicate: carried,
        ..Settings::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let node = Node::new(Keypair::generate(), store, blobs, settings).unwrap();
        let web = ssb_node::web::server::web_state(node.clone(), root.to_path_buf());
        web.names.read_all(node.replica().store()).unwrap();
        let app = ssb_node::web::server::router(web);
        for path in ["/", "/feeds"] {
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..renders {
                let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
                let t = Instant::now();
                let r = app.clone().oneshot(req).await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
                times.push(t.elapsed());
                size = body.len();
            }
            times.sort();
            println!(
                "{path} with {} carried feeds: median {:.2} ms, worst {:.2} ms over {renders} renders ({} bytes)",
                node.replica().replicate_set().feeds.len(),
                times[times.len() / 2].as_secs_f64() * 1e3,
                times[times.len() - 1].as_secs_f64() * 1e3,
                size
            );
        }
    });
}

fn main() {
    render_times();
    idle_cost();
}
