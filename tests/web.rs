//! The site keeper's web page, from a real `ssb-node run --http` on
//! 127.0.0.1: loaded in a real headless Chromium (Debian's `chromium`,
//! driven by playwright-core from the pinned npm packages, see
//! `tests/js/browser.js`), and attacked over raw TCP.
//!
//! Screenshots of every page at phone (390 px) and desktop (1280 px) width
//! go to `target/web-screenshots/`.
#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
#[path = "support/ssb_server.rs"]
mod ssb_server;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use site::{fails, ok, Site};
use ssb_server::{free_port, Options, SsbServer};
use support::running::{sigterm, spawn_run, Node};
use support::{npm_root, ssb_at, ssb_stdin};

const PASSWORD: &str = "keeper of the well";

/// A headless Chromium behind `tests/js/browser.js`.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Browser {
    fn start() -> Browser {
        let tests = npm_root().parent().unwrap().to_path_buf();
        let mut child = Command::new("node")
            .arg(tests.join("js/browser.js"))
            .current_dir(&tests)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node tests/js/browser.js");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut b = Browser { child, stdin, out };
        let ready = b.read();
        assert_eq!(ready["ready"], true, "{ready}");
        b
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("browser said {line:?}: {e}"))
    }

    fn cmd(&mut self, c: Value) -> Value {
        writeln!(self.stdin, "{c}").unwrap();
        let a = self.read();
        assert_eq!(a["ok"], true, "{c} -> {a}");
        a
    }

    fn goto(&mut self, url: &str) -> Value {
        self.cmd(json!({"op": "goto", "url": url}))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One HTTP/1.1 exchange over a fresh connection: status, head, body.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, all[end + 4..].to_vec())
}

fn get(addr: SocketAddr, path: &str, cookie: &str) -> (u16, String, Vec<u8>) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: box\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    http(addr, req.as_bytes())
}

fn post(addr: SocketAddr, path: &str, cookie: &str, form: &str) -> (u16, String, Vec<u8>) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: box\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    http(addr, req.as_bytes())
}

/// The value of the hidden `csrf` field in a page.
fn csrf_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let at = text.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    text[at..].split('"').next().unwrap().to_owned()
}

/// The value of cookie `name` set in a response head.
fn set_cookie(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
        .to_owned()
}

/// Logs in over raw HTTP: the session cookie (`ssb_session=…`).
fn login(addr: SocketAddr, password: &str) -> (u16, String) {
    let (status, head, body) = get(addr, "/login", "");
    assert_eq!(status, 200, "{head}");
    let token = set_cookie(&head, "ssb_login");
    assert_eq!(csrf_of(&body), token);
    let form = format!(
        "csrf={token}&next=%2Finvite&password={}",
        password.replace(' ', "+")
    );
    let (status, head, _) = post(addr, "/login", &format!("ssb_login={token}"), &form);
    let session = if head.contains("set-cookie: ssb_session=") {
        format!("ssb_session={}", set_cookie(&head, "ssb_session"))
    } else {
        String::new()
    };
    (status, session)
}

/// The text of `ssb-node status --json` or `/status.json` with the fields
/// that change by the second (ages, store memory, the disk's free bytes,
/// the runtime's live tasks) zeroed.
fn steady(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for key in [
            "\"seconds\":",
            "\"write_buffer\":",
            "\"cache\":",
            "\"free\":",
            "\"tasks\":",
        ] {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(key);
                out.push('0');
                rest = after.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
                continue 'scan;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn whoami(data: &Path) -> String {
    String::from_utf8(ssb_at(data, &["whoami"]).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

fn status_json(node: &Node) -> Value {
    let out = ssb_at(&node.data, &["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn clock_of(node: &Node, feed: &str) -> u64 {
    let out = ssb_at(&node.data, &["clock"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[feed].as_u64().unwrap_or(0)
}

fn start_box(dir: &Path, config: &str, extra: &[&str]) -> (Node, SocketAddr) {
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let mut args = vec!["--http", &http];
    args.extend_from_slice(extra);
    let node = Node::start_with(dir, "box", config, &args);
    let addr: SocketAddr = http.parse().unwrap();
    wait_web(&node, addr);
    (node, addr)
}

/// Waits until the web page on `addr` takes connections.
fn wait_web(node: &Node, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "no web page:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops `node` cleanly (SIGTERM, waits for it to exit).
fn stop(mut node: Node) -> PathBuf {
    sigterm(&node.child);
    node.child.wait().unwrap();
    node.data.clone()
}

/// Runs a node again on `data`, with the web page on a fresh port.
fn start_again(data: &Path, dir: &Path, name: &str) -> (Node, SocketAddr) {
    start_with_env(data, dir, name, &[])
}

/// Runs a node on `data` with `envs` set, the web page on a fresh port.
fn start_with_env(
    data: &Path,
    dir: &Path,
    name: &str,
    envs: &[(&str, &str)],
) -> (Node, SocketAddr) {
    let http = format!("127.0.0.1:{}", free_port());
    let log = dir.join(format!("{name}.log"));
    let mut all = vec![("SSB_NODE_LOG", "ssb_node=debug")];
    all.extend_from_slice(envs);
    let (child, addr) = spawn_run(
        data,
        &["--http", &http],
        &[],
        &all,
        std::fs::File::create(&log).unwrap().into(),
    );
    let (net, shs) = addr.split_once("~shs:").unwrap();
    let node = Node {
        child,
        data: data.to_path_buf(),
        log,
        socket: net.strip_prefix("net:").unwrap().parse().unwrap(),
        key: ssb_node::net::shs::PublicKey(
            ssb_node::feed::ids::decode_base64_exact::<32>(shs).unwrap(),
        ),
        addr,
    };
    let web: SocketAddr = http.parse().unwrap();
    wait_web(&node, web);
    (node, web)
}

/// The carrying mode in `status --json`, and who set it.
fn carry_mode(node: &Node) -> (String, String) {
    let s = status_json(node);
    let text = |k: &str| s["carry"][k].as_str().unwrap_or("").to_owned();
    (text("mode"), text("set_by"))
}

fn mode(m: &str, by: &str) -> (String, String) {
    (m.to_owned(), by.to_owned())
}

/// A phone (`posts` posts, following the box) syncs with `node` once;
/// returns how much of its feed the box holds then.
fn phone_syncs(dir: &Path, name: &str, posts: usize, node: &Node) -> (u64, u64) {
    let phone = Site::new(dir, name, posts);
    ok(ssb_at(&phone.data, &["follow", &whoami(&node.data)]));
    let out = ok(ssb_at(
        &phone.data,
        &["sync", &node.addr, "--timeout", "30"],
    ));
    eprintln!("web: {name} synced: {out}");
    (clock_of(node, &phone.id), posts as u64 + 1)
}

/// Decodes the one QR code in a PNG.
fn decode_qr(png: &Path) -> String {
    let img = image::open(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in {}", png.display());
    grids[0].decode().unwrap().1
}

#[test]
fn every_page_works_in_a_real_browser_and_the_invite_qr_code_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sticks");
    std::fs::create_dir_all(&root).unwrap();
    let (node, addr) = start_box(
        dir.path(),
        "public_address = \"127.0.0.1\"\n",
        &["--mount-root", root.to_str().unwrap()],
    );
    let base = format!("http://{addr}");
    let shots = screenshots();
    let mut browser = Browser::start();

    // Read-only without a password: the invite page says how to set one.
    let page = browser.goto(&format!("{base}/invite"));
    let text = page["text"].as_str().unwrap();
    assert!(text.contains("No keeper password is set"), "{text}");

    // A feed that just replicated: a peer named by its about message.
    let peer = dir.path().join("peer");
    assert!(ssb_at(&peer, &["init"]).status.success());
    let peer_id = whoami(&peer);
    let about = json!({"type": "about", "about": peer_id, "name": "Ana at the well"}).to_string();
    for content in [
        about.as_str(),
        r#"{"type":"post","text":"water is up"}"#,
        r#"{"type":"post","text":"pump fixed"}"#,
    ] {
        assert!(ssb_at(&peer, &["publish", "--content", content])
            .status
            .success());
    }
    assert!(ssb_at(&node.data, &["follow", &peer_id]).status.success());
    let out = ssb_at(&peer, &["sync", &node.addr, "--timeout", "30"]);
    assert!(out.status.success(), "{out:?}\n{}", node.log());
    assert_eq!(clock_of(&node, &peer_id), 3);
    let feeds = browser.cmd(json!({"op": "wait_text", "url": format!("{base}/feeds"), "needle": "Ana at the well", "within_ms": 5000}));
    let text = feeds["text"].as_str().unwrap();
    assert!(text.contains("latest #3"), "{text}");
    assert!(text.contains(&peer_id), "{text}");

    // A stick dropped into the watched folder: on the status page within
    // 2 s of the node finishing it.
    let made = dir.path().join("made");
    std::fs::create_dir_all(made.join("SSB-SNEAKERNET")).unwrap();
    std::fs::rename(&made, root.join("KEEPER")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let s = status_json(&node);
        let done = s["sticks"].as_array().unwrap().iter().any(|st| {
            st["path"].as_str().unwrap_or("").ends_with("KEEPER") && st["state"] == "done"
        });
        if done {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the stick never finished: {s}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let shown = browser.cmd(json!({"op": "wait_text", "url": format!("{base}/"), "needle": "Stick done: safe to pull", "within_ms": 2000}));
    let after = finished.elapsed();
    assert!(
        after < Duration::from_secs(2),
        "shown {after:?} after the node finished"
    );
    assert!(
        shown["text"].as_str().unwrap().contains("KEEPER"),
        "{shown}"
    );
    eprintln!("web: the stick was on the status page {after:?} after the node finished it");
    let sticks = browser.goto(&format!("{base}/sticks"));
    let text = sticks["text"].as_str().unwrap();
    assert!(text.contains("Brought") && text.contains("Took"), "{text}");

    // /status.json is what `ssb-node status --json` prints.
    let (code, head, body) = get(addr, "/status.json", "");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let cli = ssb_at(&node.data, &["status", "--json"]);
    assert_eq!(
        steady(&String::from_utf8(body).unwrap()),
        steady(&String::from_utf8(cli.stdout).unwrap())
    );

    // The keeper sets a password through the running node, logs in, and
    // makes an invite: its QR code decodes to a code ssb-server 16 accepts.
    let out = ssb_stdin(&node.data, &["web-password"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let page = browser.goto(&format!("{base}/invite"));
    assert!(page["url"].as_str().unwrap().contains("/login"), "{page}");
    browser.cmd(json!({"op": "shot", "path": shots.join("login-390.png")}));
    browser.cmd(json!({"op": "fill", "selector": "#password", "value": PASSWORD}));
    let page = browser.cmd(json!({"op": "submit", "selector": "main button[type=submit]"}));
    assert!(page["url"].as_str().unwrap().ends_with("/invite"), "{page}");
    browser.cmd(json!({"op": "fill", "selector": "#note", "value": "Ana's phone"}));
    let page = browser.cmd(json!({"op": "submit", "selector": "form[action='/invite'] button"}));
    assert_eq!(page["status"], 200, "{page}");
    browser.cmd(json!({"op": "shot", "path": shots.join("invite-390.png")}));
    let qr = shots.join("invite-qr.png");
    browser.cmd(json!({"op": "element_shot", "selector": "#invite-qr", "path": qr}));
    let code = browser.cmd(json!({"op": "text", "selector": "#invite-code"}))["text"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(decode_qr(&qr), code);
    browser.cmd(json!({"op": "viewport", "width": 1280, "height": 900}));
    browser.cmd(json!({"op": "shot", "path": shots.join("invite-1280.png")}));
    let mut client = SsbServer::start(Options::default());
    let accepted = client.cmd(json!({"cmd": "inviteAccept", "code": code}));
    assert_eq!(accepted["accepted"], true, "{accepted}\n{}", node.log());

    // An admin form: follow a feed.
    let other = format!("@{}E=.ed25519", "A".repeat(42));
    browser.goto(&format!("{base}/feeds"));
    browser.cmd(json!({"op": "fill", "selector": "#follow-feed", "value": other}));
    let page =
        browser.cmd(json!({"op": "submit", "selector": "form[action='/feeds/follow'] button"}));
    assert!(
        page["text"].as_str().unwrap().contains("Followed"),
        "{page}"
    );

    // Every page at both widths.
    for (name, path) in [
        ("status", "/"),
        ("feeds", "/feeds"),
        ("sticks", "/sticks"),
        ("login", "/login"),
    ] {
        for width in [390, 1280] {
            if name == "login" && width == 390 {
                continue;
            }
            browser.cmd(json!({"op": "viewport", "width": width, "height": if width == 390 { 844 } else { 900 }}));
            let page = browser.goto(&format!("{base}{path}"));
            assert_eq!(page["status"], 200, "{page}");
            browser.cmd(json!({"op": "shot", "path": shots.join(format!("{name}-{width}.png"))}));
        }
    }
    eprintln!("web: screenshots in {}", shots.display());
}

/// CPU time (user + system) of process `pid`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[test]
fn bad_input_gets_clear_answers_and_the_node_keeps_replicating() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("web-password.txt");
    std::fs::write(&boot, format!("{PASSWORD}\n")).unwrap();
    let config = format!("web_password_file = \"{}\"\n", boot.display());
    let (mut node, addr) = start_box(dir.path(), &config, &[]);
    let pid = node.child.id();
    // The boot partition's password was taken and the file blanked.
    assert_eq!(std::fs::read(&boot).unwrap(), b"");
    let (rss_before, _) = node.memory_kib();

    // Oversized head: 431; oversized body: 413.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: box\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(http(addr, big.as_bytes()).0, 431);
    let (_, head, body) = get(addr, "/login", "");
    let token = set_cookie(&head, "ssb_login");
    assert_eq!(csrf_of(&body), token);
    let form = format!("csrf={token}&password={}", "x".repeat(100_000));
    assert_eq!(
        post(addr, "/login", &format!("ssb_login={token}"), &form).0,
        413
    );

    // Path traversal: 404, never a file.
    for path in [
        "/../../../../etc/passwd",
        "/assets/..%2f..%2f..%2fetc%2fpasswd",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/../../src/main.rs",
        "/assets/style.css/../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let (code, head, body) = get(addr, path, "");
        assert_eq!(code, 404, "{path}: {head}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("root:") && !text.contains("fn main"),
            "{path}: {text}"
        );
    }
    assert_eq!(get(addr, "/assets/style.css", "").0, 200);

    // CSRF: a logged-in POST without the form's token is refused.
    let (code, session) = login(addr, PASSWORD);
    assert_eq!(code, 303);
    assert!(!session.is_empty());
    let (code, _, _) = post(addr, "/invite", &session, "uses=1&note=forged");
    assert_eq!(code, 403);
    let (code, _, _) = post(addr, "/invite", &session, "csrf=wrong&uses=1");
    assert_eq!(code, 403);
    let (_, _, page) = get(addr, "/invite", &session);
    let (code, _, body) = post(
        addr,
        "/invite",
        &session,
        &format!("csrf={}&uses=1", csrf_of(&page)),
    );
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("<svg"));
    // Without a session: refused, whatever the token.
    assert_eq!(post(addr, "/feeds/follow", "", "csrf=x&feed=y").0, 403);

    // A slow client (one byte per 5 s) is cut off by the head deadline.
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\n" {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match slow.read(&mut buf) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the slow client was still served after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );

    // 200 connections at once: past the cap they are closed at once, and
    // once the held ones time out the page answers again.
    let held: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = held
        .iter()
        .filter(|s| {
            let mut s = *s;
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = [0u8; 1];
            match s.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
        .count();
    assert!(refused >= 200 - 64, "{refused} of 200 closed at once");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = TcpStream::connect(addr).ok().and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /status.json HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut all = Vec::new();
            s.read_to_end(&mut all).ok()?;
            all.starts_with(b"HTTP/1.1 200").then_some(())
        });
        if ok.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the page never answered again");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(held);

    // A wrong password 1,000 times: 401 while the bucket lasts, then 429,
    // and hardly any hashing.
    let cpu_before = cpu_time(pid);
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..1000 {
        let (code, _) = login(addr, "not the password");
        *codes.entry(code).or_insert(0) += 1;
    }
    let cpu = cpu_time(pid) - cpu_before;
    eprintln!("web: 1,000 wrong passwords: {codes:?}, node CPU {cpu:?}");
    assert_eq!(
        codes.get(&429).copied().unwrap_or(0) + codes.get(&401).copied().unwrap_or(0),
        1000,
        "{codes:?}"
    );
    assert!(codes.get(&401).copied().unwrap_or(0) <= 5, "{codes:?}");
    assert!(cpu < Duration::from_secs(10), "{cpu:?}");
    // The right password is also refused while the bucket is empty.
    assert_eq!(login(addr, PASSWORD).0, 429);

    let (rss_after, _) = node.memory_kib();
    eprintln!("web: node RSS {rss_before} KiB before the attacks, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
    assert!(node.alive());
    let post = r#"{"type":"post","text":"still here"}"#;
    assert!(ssb_at(&node.data, &["publish", "--content", post])
        .status
        .success());
    node.check_serves(dir.path());
}

#[test]
fn the_keeper_sets_the_carrying_policy_on_the_feeds_page_and_it_holds_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr) = start_box(dir.path(), "", &[]);
    let base = format!("http://{addr}");
    assert_eq!(carry_mode(&node), mode("follows", "config"));
    // Under `follows` a phone that connects is not carried.
    assert_eq!(phone_syncs(dir.path(), "phone1", 3, &node).0, 0);
    // Logged out, there is no form.
    let (_, _, page) = get(addr, "/feeds", "");
    assert!(!String::from_utf8_lossy(&page).contains("/feeds/carry"));

    // The keeper logs in and chooses `connected` on the feeds page.
    ok(ssb_stdin(
        &node.data,
        &["web-password"],
        &format!("{PASSWORD}\n"),
    ));
    let mut browser = Browser::start();
    browser.goto(&format!("{base}/login?next=/feeds"));
    browser.cmd(json!({"op": "fill", "selector": "#password", "value": PASSWORD}));
    let page = browser.cmd(json!({"op": "submit", "selector": "main button[type=submit]"}));
    assert!(page["url"].as_str().unwrap().ends_with("/feeds"), "{page}");
    let text = page["text"].as_str().unwrap();
    assert!(
        text.contains("Now: follows, set by the config file"),
        "{text}"
    );
    browser.cmd(json!({"op": "check", "selector": "#carry-connected"}));
    let page =
        browser.cmd(json!({"op": "submit", "selector": "form[action='/feeds/carry'] button"}));
    let text = page["text"].as_str().unwrap();
    assert!(text.contains("Carrying policy set: connected."), "{text}");
    assert!(text.contains("Now: connected, set by you"), "{text}");
    let shots = screenshots();
    browser.cmd(
        json!({"op": "element_shot", "selector": "#carry", "path": shots.join("carry-390.png")}),
    );
    assert_eq!(carry_mode(&node), mode("connected", "keeper"));
    // A phone that connects now is carried in that session.
    let (held, all) = phone_syncs(dir.path(), "phone2", 3, &node);
    assert_eq!(held, all, "{}", node.log());

    // A POST without the form's token is refused, and changes nothing.
    let (code, session) = login(addr, PASSWORD);
    assert_eq!(code, 303);
    assert_eq!(post(addr, "/feeds/carry", &session, "mode=follows").0, 403);
    let forged = "csrf=wrong&mode=follows";
    assert_eq!(post(addr, "/feeds/carry", &session, forged).0, 403);
    assert_eq!(post(addr, "/feeds/carry", "", forged).0, 403);
    assert_eq!(carry_mode(&node), mode("connected", "keeper"));

    // After a restart the keeper's choice holds (the config says nothing).
    let data = stop(node);
    let (node, _) = start_again(&data, dir.path(), "box-2");
    assert_eq!(carry_mode(&node), mode("connected", "keeper"));
    let (held, all) = phone_syncs(dir.path(), "phone3", 2, &node);
    assert_eq!(held, all, "{}", node.log());

    // The CLI, through the running node: back to `follows`.
    let out = ok(ssb_at(&node.data, &["carry", "set", "follows"]));
    assert_eq!(out.trim(), "carrying mode set to follows");
    assert_eq!(carry_mode(&node), mode("follows", "keeper"));
    assert_eq!(phone_syncs(dir.path(), "phone4", 2, &node).0, 0);

    // And on the store when no node runs; a mode it does not know fails.
    let data = stop(node);
    let e = fails(ssb_at(&data, &["carry", "set", "everyone"]));
    assert!(e.contains("unknown carrying mode \"everyone\""), "{e}");
    let out = ok(ssb_at(&data, &["carry", "set", "connected"]));
    assert_eq!(out.trim(), "carrying mode set to connected");
    let (node, _) = start_again(&data, dir.path(), "box-3");
    assert_eq!(carry_mode(&node), mode("connected", "keeper"));
}

/// The image's Wi-Fi controller's state and `wifi.txt`'s problems are on the
/// status page for everyone; the hotspot's generated passphrase only for
/// the logged-in keeper.
#[test]
fn the_status_page_shows_the_wifi_state_and_only_the_keeper_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("box");
    ok(ssb_at(&data, &["init"]));
    let run = dir.path().join("wifi-run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(
        run.join("state"),
        "hotspot \"ssb-abc\" up on wlan0, 10.42.0.1 (DHCP for phones)\n",
    )
    .unwrap();
    std::fs::write(
        run.join("problems"),
        "wifi.txt: line 3: unknown country \"XX\"\n",
    )
    .unwrap();
    let note = dir.path().join("wifi-hotspot.txt");
    std::fs::write(
        &note,
        "hotspot: ssb-abc\r\npassphrase: seven-lemon-tree-42\r\n",
    )
    .unwrap();
    let (node, addr) = start_with_env(
        &data,
        dir.path(),
        "box",
        &[
            ("SSB_NODE_WIFI_DIR", run.to_str().unwrap()),
            ("SSB_NODE_WIFI_NOTE", note.to_str().unwrap()),
        ],
    );
    let (code, _, body) = get(addr, "/", "");
    let page = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(code, 200);
    assert!(page.contains("<h2>Wi-Fi</h2>"), "{page}");
    assert!(
        page.contains("ssb-abc") && page.contains("10.42.0.1"),
        "{page}"
    );
    assert!(page.contains("unknown country"), "{page}");
    assert!(
        !page.contains("seven-lemon-tree-42"),
        "passphrase shown logged out"
    );
    assert!(page.contains("after logging in"), "{page}");
    let json = status_json(&node);
    assert_eq!(
        json["wifi"]["problems"],
        json!(["wifi.txt: line 3: unknown country \"XX\""])
    );

    let out = ssb_stdin(&node.data, &["web-password"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let (code, session) = login(addr, PASSWORD);
    assert_eq!(code, 303, "login");
    let (_, _, body) = get(addr, "/", &session);
    let page = String::from_utf8_lossy(&body).into_owned();
    assert!(page.contains("passphrase: seven-lemon-tree-42"), "{page}");
    drop(node);
}
