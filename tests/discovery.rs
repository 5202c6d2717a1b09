//! LAN discovery across real (namespaced) networks with broadcast.
//!
//! - `services_hear_and_forget_each_other`: three [`ssb_node::discovery::Discovery`]
//!   services on one bridged LAN, each in its own network namespace, bound to
//!   `0.0.0.0:8008` and announcing on the interface broadcast address as a node does.
//! - `nodes_find_each_other`: two `ssb-node run` processes in two namespaces, given no
//!   address, must connect through LAN discovery alone (`ssb-node peers --json`).
//! - `hostile_announcements_are_not_dialled`: a sender floods announcements naming
//!   loopback, a name, an off-subnet address, another host (from its own and from a
//!   spoofed source) and itself with made-up keys; TCP listeners at each count what the
//!   node dials, and an honest node on the LAN is still found and replicated from.
//!
//! - `manyverse_ssb_lan_and_the_node_find_each_other`: Manyverse's ssb-lan 1.2.3
//!   (`tests/js/lan.js`) on two hosts, one with its plain form off, and `ssb-node run` on a
//!   third hear each other in both forms.
//!
//! All skip (with a message) where network namespaces cannot be made.

#[path = "support/netns.rs"]
mod netns;
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use netns::Lan;
use ssb_node::discovery::{Discovery, Event, FORGET_AFTER};
use ssb_node::feed::FeedId;

/// What a service thread reports: which host heard what, and when.
type Report = (usize, Event, Instant);

/// Runs a discovery service as host `i` of `lan` on a thread of its own, sending its events
/// to `out` until `stop` fires or is dropped.
fn spawn_service(
    lan: &Lan,
    i: usize,
    key: FeedId,
    stop: tokio::sync::oneshot::Receiver<()>,
    out: std_mpsc::Sender<Report>,
) -> std::thread::JoinHandle<()> {
    let name = lan.host(i).netns.clone();
    std::thread::spawn(move || {
        netns::enter(&name);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listen = "0.0.0.0:8008".parse().expect("addr");
            let discovery = Discovery::bind(key, listen).expect("bind discovery");
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let task = tokio::spawn(discovery.run(tx));
            let mut stop = stop;
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    event = rx.recv() => match event {
                        Some(event) => {
                            if out.send((i, event, Instant::now())).is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            }
            // Dropping the receiver ends run(); wait for it so the socket is closed.
            drop(rx);
            task.await
                .expect("join")
                .expect("discovery ran without error");
        });
    })
}

#[test]
fn services_hear_and_forget_each_other() {
    let Some(lan) = Lan::new(3) else { return };
    let keys: Vec<FeedId> = (1..=3u8).map(|n| FeedId([n; 32])).collect();
    let (out, reports) = std_mpsc::channel::<Report>();
    let mut stops = Vec::new();
    let mut threads = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        stops.push(Some(stop_tx));
        threads.push(spawn_service(&lan, i, *key, stop_rx, out.clone()));
    }
    drop(out);

    // Each host hears exactly the two others, at their eth0 address and port 8008.
    let mut heard = vec![Vec::new(); 3];
    let deadline = Instant::now() + Duration::from_secs(10);
    while heard.iter().map(Vec::len).sum::<usize>() < 6 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, event, _) = reports
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("not everyone heard everyone in time: {heard:?}"));
        match event {
            Event::Heard(address) => heard[i].push(address.to_string()),
            other => panic!("host {i}: unexpected {other:?}"),
        }
    }
    for (i, got) in heard.iter_mut().enumerate() {
        got.sort();
        let mut want: Vec<String> = (0..3)
            .filter(|&j| j != i)
            .map(|j| {
                let key = &keys[j].to_string()[1..45];
                format!("net:{}:8008~shs:{key}", lan.host(j).ip)
            })
            .collect();
        want.sort();
        assert_eq!(*got, want, "host {i}");
    }

    // Stop host 2: hosts 0 and 1 forget it about FORGET_AFTER later, and only it.
    let stopped = Instant::now();
    if let Some(stop) = stops[2].take() {
        let _ = stop.send(());
    }
    let mut forgotten = Vec::new();
    while forgotten.len() < 2 {
        let (i, event, at) = reports
            .recv_timeout(FORGET_AFTER + Duration::from_secs(5))
            .expect("host 2 forgotten in time");
        assert_eq!(event, Event::Forgotten(keys[2]), "host {i}");
        let after = at - stopped;
        assert!(
            after >= FORGET_AFTER - Duration::from_secs(2)
                && after <= FORGET_AFTER + Duration::from_secs(2),
            "host {i} forgot host 2 after {after:?}"
        );
        forgotten.push(i);
    }
    forgotten.sort();
    assert_eq!(forgotten, [0, 1]);
    drop(stops);
    for thread in threads {
        thread.join().expect("service thread");
    }
}

/// What a JavaScript node does (ssb-local): host 1 sends a limited broadcast to
/// 255.255.255.255:8008 and listens on 0.0.0.0:8008. The service on host 0 hears it, and
/// host 1 receives the service's announcement in exactly the documented format.
#[test]
fn wire_format_as_javascript_nodes_see_it() {
    let Some(lan) = Lan::new(2) else { return };
    let (ours, theirs) = (FeedId([1; 32]), FeedId([2; 32]));
    let (out, reports) = std_mpsc::channel::<Report>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let service = spawn_service(&lan, 0, ours, stop_rx, out);

    let name = lan.host(1).netns.clone();
    let theirs_b64 = theirs.to_string()[1..45].to_owned();
    let sent = format!("10.77.0.2:8008:@{theirs_b64}.ed25519");
    // Set once the service has heard us: the JS side announces, as JS does, until then.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let js_done = done.clone();
    let js = std::thread::spawn(move || {
        netns::enter(&name);
        let socket = std::net::UdpSocket::bind("0.0.0.0:8008").expect("bind");
        socket.set_broadcast(true).expect("SO_BROADCAST");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut received = None;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // `sent` is in the legacy form, as old ssb-server versions announce.
            socket
                .send_to(sent.as_bytes(), "255.255.255.255:8008")
                .expect("limited broadcast");
            // Read for a second (our own broadcast comes back too).
            let second = Instant::now() + Duration::from_secs(1);
            while Instant::now() < second {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    if buf[..len] != *sent.as_bytes() && received.is_none() {
                        received = Some((String::from_utf8_lossy(&buf[..len]).into_owned(), from));
                    }
                }
            }
            if received.is_some() && js_done.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        received
    });

    let heard = reports.recv_timeout(Duration::from_secs(10));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let received = js.join().expect("js thread");
    let (_, event, _) = heard.expect("the JS-style announcement heard");
    assert_eq!(
        event,
        Event::Heard(
            format!("net:10.77.0.2:8008~shs:{theirs_b64}")
                .parse()
                .expect("address")
        )
    );
    let (payload, from) = received.expect("the service's announcement received");
    let ours_b64 = &ours.to_string()[1..45];
    assert_eq!(payload, format!("net:10.77.0.1:8008~shs:{ours_b64}"));
    assert_eq!(
        from,
        "10.77.0.1:8008".parse().expect("addr"),
        "sent from port 8008"
    );
    let _ = stop_tx.send(());
    service.join().expect("service thread");
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ssb_node(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssb-node"));
    cmd.arg("--data").arg(data);
    cmd
}

/// Runs an `ssb-node` command to completion and returns its stdout; panics on failure.
fn ok_stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// One entry of `ssb-node peers --json`.
#[derive(Debug)]
struct Peer {
    key: String,
    state: String,
    source: String,
}

/// The peers a running node reports, or why it could not say.
fn peers(data: &Path) -> Result<Vec<Peer>, String> {
    let out = ssb_node(data)
        .args(["peers", "--json"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let text = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{line:?}: {e}"))?;
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{line:?}: no string {name:?}"))
            };
            Ok(Peer {
                key: field("key")?,
                state: field("state")?,
                source: field("source")?,
            })
        })
        .collect()
}

/// Starts `ssb-node run` as host `i`, listening on 0.0.0.0:8008 with discovery on (the
/// default), and waits for its `listening` line.
fn start_node(lan: &Lan, i: usize, data: &Path) -> Running {
    let log = std::fs::File::create(data.join("run.log")).expect("log file");
    let mut child = lan
        .command(i, env!("CARGO_BIN_EXE_ssb-node"))
        .arg("--data")
        .arg(data)
        .args(["run", "--listen", "0.0.0.0:8008"])
        .arg("--mount-root")
        .arg(data.join("sticks"))
        .env("SSB_NODE_LOG", "info,ssb_node=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn ssb-node run");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no `listening` line from host {i}: {}", log_of(data)));
    assert!(
        line.starts_with("listening net:0.0.0.0:8008~shs:"),
        "host {i} printed {line:?}; log: {}",
        log_of(data)
    );
    running
}

/// The last 60 lines of a node's log, for failure messages.
fn log_of(data: &Path) -> String {
    let log = std::fs::read_to_string(data.join("run.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

#[test]
fn nodes_find_each_other() {
    let Some(lan) = Lan::new(2) else { return };
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let data: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("node")).collect();
    let ids: Vec<String> = data
        .iter()
        .map(|d| ok_stdout(ssb_node(d).arg("init")).trim().to_owned())
        .collect();
    // Declared after `lan`, so the processes die before their namespaces go.
    let _nodes: Vec<Running> = (0..2).map(|i| start_node(&lan, i, &data[i])).collect();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = (0..2).map(|i| peers(&data[i])).collect::<Vec<_>>();
        let connected = |i: usize| {
            last[i].as_ref().ok().and_then(|ps| {
                ps.iter()
                    .find(|p| p.key == ids[1 - i] && p.state == "connected")
            })
        };
        if let (Some(a), Some(b)) = (connected(0), connected(1)) {
            // Neither node was given an address: at least one dialled what it heard.
            assert!(
                a.source == "lan" || b.source == "lan",
                "connected, but not through discovery: {a:?} {b:?}"
            );
            for p in last.iter().flatten().flatten() {
                assert!(ids.contains(&p.key), "a peer no one announced: {p:?}");
            }
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "the nodes did not connect within 20 s; peers: {last:?}\n\
                 log of host 0:\n{}\nlog of host 1:\n{}",
                log_of(&data[0]),
                log_of(&data[1])
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A TCP listener run by a thread in host `netns` at `at`, counting the connections it
/// accepts (each closed at once) until `stop` is set.
fn count_connections(
    netns: String,
    at: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    use std::sync::atomic::Ordering;
    let at: std::net::SocketAddr = at.parse().expect("listener address");
    let (ready_tx, ready) = std_mpsc::channel();
    let thread = std::thread::spawn(move || {
        netns::enter(&netns);
        let listener = std::net::TcpListener::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let _ = ready_tx.send(());
        let mut count = 0;
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok(_) => count += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        count
    });
    ready.recv().expect("listener ready");
    thread
}

/// A UDP socket in the calling thread's network sending from `source`, which need not be
/// one of its addresses (IP_TRANSPARENT: a spoofed sender), to broadcasts.
fn spoofing_socket(source: &str) -> std::net::UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .expect("udp socket");
    socket.set_ip_transparent_v4(true).expect("IP_TRANSPARENT");
    socket.set_broadcast(true).expect("SO_BROADCAST");
    let source: std::net::SocketAddr = format!("{source}:0").parse().expect("source");
    socket
        .bind(&source.into())
        .expect("bind the spoofed source");
    socket.into()
}

#[test]
fn hostile_announcements_are_not_dialled() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let Some(lan) = Lan::new(4) else { return };
    // Host 0 is the node under test, host 1 an honest node, host 2 the hostile sender,
    // host 3 a bystander the sender wants the node to connect to, also reachable at an
    // address off the /24.
    lan.add_address(3, "10.88.0.1/32", "lo");
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let data: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("node")).collect();
    let ids: Vec<String> = data
        .iter()
        .map(|d| ok_stdout(ssb_node(d).arg("init")).trim().to_owned())
        .collect();
    for n in 0..3 {
        let post = format!(r#"{{"type":"post","text":"honest {n}"}}"#);
        ok_stdout(ssb_node(&data[1]).args(["publish", "--content", &post]));
    }
    ok_stdout(ssb_node(&data[0]).args(["follow", &ids[1]]));

    let stop = Arc::new(AtomicBool::new(false));
    let ns = |i: usize| lan.host(i).netns.clone();
    // What each listener stands for, where it is, and the most dials it may get: none
    // where the sender does not announce itself; else 4 keys at an IP, each dialled at
    // most at 0, 1, 3, 7 and 15 s (its back-off).
    let targets = [
        ("127.0.0.1 and localhost", 0, "127.0.0.1:9002", 0),
        ("off-subnet 10.88.0.1", 3, "10.88.0.1:9003", 0),
        (
            "another host, announced by the sender",
            3,
            "10.77.0.4:9000",
            0,
        ),
        (
            "another host, spoofed as its sender",
            3,
            "10.77.0.4:9005",
            20,
        ),
        (
            "the sender itself, with made-up keys",
            2,
            "10.77.0.3:9001",
            20,
        ),
    ];
    let listeners: Vec<_> = targets
        .iter()
        .map(|(_, host, at, _)| count_connections(ns(*host), at, stop.clone()))
        .collect();

    // Declared after `lan`, so the processes die before their namespaces go.
    let _nodes: Vec<Running> = (0..2).map(|i| start_node(&lan, i, &data[i])).collect();

    // The flood: 5 s at the issue's rate (42,600 datagrams), each with a fresh key that
    // sorts above any real one (so the node is the side that dials), round robin over the
    // hostile kinds, to the node under test (so what the listeners count is its dialling
    // alone, not the honest node's too).
    let flood_for = Duration::from_secs(5);
    let sender_ns = ns(2);
    let flood = std::thread::spawn(move || {
        netns::enter(&sender_ns);
        let own = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        own.set_broadcast(true).expect("SO_BROADCAST");
        let spoofed = spoofing_socket("10.77.0.4");
        let to = "10.77.0.1:8008";
        let mut sent = 0u32;
        let start = Instant::now();
        while start.elapsed() < flood_for {
            for _ in 0..85 {
                let mut key = [0xffu8; 32];
                key[4..8].copy_from_slice(&sent.to_be_bytes());
                let key = ssb_node::feed::ids::encode_base64(&key);
                let (socket, host, port) = match sent % 9 {
                    0 => (&own, "127.0.0.1", 9002),
                    1 => (&own, "localhost", 9002),
                    2 => (&own, "10.88.0.1", 9003),
                    3 => (&own, "10.77.0.4", 9000),
                    4 => (&spoofed, "10.77.0.4", 9005),
                    5 => (&own, "10.77.0.3", 9001),
                    6 => (&own, "10.77.0.255", 9000),
                    7 => (&own, "fe80::1", 9000),
                    _ => (&own, "garbage", 0),
                };
                let payload = if port == 0 {
                    // Not an address at all; and ssb-lan's encrypted format's port.
                    let _ = own.send_to(&key.as_bytes()[..40], "10.77.0.255:26830");
                    key.as_bytes()[..40].to_vec()
                } else {
                    format!("net:{host}:{port}~shs:{key}").into_bytes()
                };
                socket.send_to(&payload, to).expect("send an announcement");
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    let started = Instant::now();
    let sent = flood.join().expect("flood thread");
    std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::SeqCst);
    let counts: Vec<usize> = listeners
        .into_iter()
        .map(|l| l.join().expect("listener thread"))
        .collect();
    println!("{sent} announcements in {flood_for:?}; connections in 15 s:");
    for ((what, _, at, _), n) in targets.iter().zip(&counts) {
        println!("  {n:5}  {at:16} {what}");
    }
    let log = std::fs::read_to_string(data[0].join("run.log")).unwrap_or_default();
    println!("node log: {} lines", log.lines().count());

    for ((what, _, at, most), n) in targets.iter().zip(&counts) {
        assert!(
            n <= most,
            "{n} connections to {at} ({what}), at most {most} allowed"
        );
    }
    let total: usize = counts.iter().sum();
    assert!(
        total <= 20,
        "{total} connections in all: more than the dial budget"
    );
    // One summary a second, not a line per datagram.
    assert!(
        log.lines().count() < 1_000,
        "the node logged {} lines for the flood",
        log.lines().count()
    );

    // The honest node is found (whoever dials) and its feed replicated.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seq = ssb_node(&data[0])
            .arg("clock")
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|clock| clock[&ids[1]].as_u64());
        let connected = peers(&data[0])
            .is_ok_and(|ps| ps.iter().any(|p| p.key == ids[1] && p.state == "connected"));
        if seq == Some(3) && connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the honest node was not replicated from (clock {seq:?}, connected {connected}); log:\n{}",
            log_of(&data[0])
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What one ssb-lan instance reported: each `{"address", "verified"}` line it printed.
fn ssb_lan_heard(lines: &std_mpsc::Receiver<String>, seen: &mut Vec<(String, bool)>) {
    while let Ok(line) = lines.try_recv() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let address = v["address"].as_str().expect("address").to_owned();
        let verified = v["verified"].as_bool().expect("verified");
        if !seen.contains(&(address.clone(), verified)) {
            seen.push((address, verified));
        }
    }
}

/// Starts `node tests/js/lan.js run` as host `i`, announcing `net:IP:8008~shs:KEY` of
/// `seed`; its stdout lines go to the returned channel.
fn start_ssb_lan(
    lan: &Lan,
    i: usize,
    seed: u8,
    legacy: bool,
) -> (Running, std_mpsc::Receiver<String>) {
    let tests = support::npm_root()
        .parent()
        .expect("node_modules has a parent")
        .to_path_buf();
    let seed_hex = format!("{seed:02x}").repeat(32);
    let host = lan.host(i).ip.to_string();
    let mut child = lan
        .command(i, "node")
        .arg(tests.join("js/lan.js"))
        .args([
            "run", "--seed", &seed_hex, "--host", &host, "--port", "8008",
        ])
        .args(["--legacy", if legacy { "true" } else { "false" }])
        .current_dir(&tests)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node tests/js/lan.js");
    let rx = support::stdout_lines(&mut child);
    (Running(child), rx)
}

/// The key ssb-keys makes from a seed of 32 times `seed`, as `@….ed25519`.
fn key_of_seed(seed: u8) -> String {
    let keys = ssb_node::net::shs::Keypair::from_seed([seed; 32]);
    FeedId(keys.public().0).to_string()
}

#[test]
fn manyverse_ssb_lan_and_the_node_find_each_other() {
    let Some(lan) = Lan::new(3) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    let id = ok_stdout(ssb_node(&data).arg("init")).trim().to_owned();
    let key_b64 = id.trim_start_matches('@').trim_end_matches(".ed25519");
    // Declared after `lan`, so the processes die before their namespaces go.
    let _node = start_node(&lan, 0, &data);
    // Host 1 sends only the encrypted form, host 2 both.
    let (_sealed_only, sealed_lines) = start_ssb_lan(&lan, 1, 0x31, false);
    let (_both, both_lines) = start_ssb_lan(&lan, 2, 0x32, true);
    let ours = format!("net:{}:8008~shs:{key_b64}", lan.host(0).ip);
    let (k1, k2) = (key_of_seed(0x31), key_of_seed(0x32));

    let mut heard1 = Vec::new();
    let mut heard2 = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ssb_lan_heard(&sealed_lines, &mut heard1);
        ssb_lan_heard(&both_lines, &mut heard2);
        let listed = peers(&data).unwrap_or_default();
        let lan_peer = |k: &str| listed.iter().any(|p| p.key == k && p.source == "lan");
        // ssb-lan verified our encrypted form (its signature) and took our plain one.
        let js_heard_both = heard2.contains(&(ours.clone(), true))
            && heard2.contains(&(ours.clone(), false))
            && heard1.contains(&(ours.clone(), true));
        if js_heard_both && lan_peer(&k1) && lan_peer(&k2) {
            // Besides us, each ssb-lan hears only the other one.
            let js = |i: usize, k: &str| {
                let b64 = k.trim_start_matches('@').trim_end_matches(".ed25519");
                format!("net:{}:8008~shs:{b64}", lan.host(i).ip)
            };
            let known = [ours.clone(), js(1, &k1), js(2, &k2)];
            for (address, _) in heard1.iter().chain(&heard2) {
                assert!(known.contains(address), "ssb-lan heard {address}");
            }
            for p in &listed {
                assert!(p.key == k1 || p.key == k2, "a peer no one announced: {p:?}");
            }
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "not found within 20 s: host 1 heard {heard1:?}, host 2 heard {heard2:?}, \
                 the node lists {listed:?} (want {k1} and {k2})\nnode log:\n{}",
                log_of(&data)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
