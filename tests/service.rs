//! `ssb-node run` as a systemd service would run it: the notify protocol on a
//! real datagram socket (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), and SIGTERM while
//! messages are being published: every message a client was told about is
//! still in the store afterwards.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::running::{sigterm, spawn_run};
use support::ssb_at;

/// The next datagram, or a panic after a generous wait.
fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no notification within 60 s");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Datagrams until one starts with `prefix` (at most `limit` of them).
fn recv_until(sock: &UnixDatagram, prefix: &str, limit: usize) -> String {
    for _ in 0..limit {
        let m = recv(sock);
        if m.starts_with(prefix) {
            return m;
        }
    }
    panic!("no {prefix} among {limit} notifications");
}

fn publish(data: &std::path::Path, text: &str) -> Option<String> {
    let content = format!(r#"{{"type":"post","text":"{text}"}}"#);
    let out = ssb_at(data, &["publish", "--content", &content]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn notifies_systemd_and_keeps_every_message_across_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    // A watchdog ping every 50 ms, so the test sees several without waiting long.
    let (mut child, me) = spawn_run(
        &data,
        &[],
        &[
            ("NOTIFY_SOCKET", sock_path.as_os_str()),
            ("WATCHDOG_USEC", "100000".as_ref()),
        ],
        Stdio::null(),
    );

    // READY=1 comes first, after the node listens, and says where.
    assert_eq!(recv(&sock), format!("READY=1\nSTATUS=listening on {me}"));
    for _ in 0..3 {
        assert_eq!(
            recv(&sock),
            format!("WATCHDOG=1\nSTATUS=listening on {me}; 0 peer sessions")
        );
    }

    // Publish through the running node, one message at a time, and SIGTERM
    // it in the middle. A publish that started as the node stopped may fail,
    // or may run on its own after the node has gone; either way, every id a
    // publish printed must be in the store at the end.
    let mut acked: Vec<String> = (0..5)
        .map(|i| publish(&data, &format!("before {i}")).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let more = Arc::new(Mutex::new(Vec::new()));
    let publisher = {
        let (data, stop, more) = (data.clone(), stop.clone(), more.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if let Some(id) = publish(&data, &format!("during {i}")) {
                    more.lock().unwrap().push(id);
                }
                i += 1;
            }
        })
    };
    let start = Instant::now();
    while more.lock().unwrap().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "publishing stalled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    sigterm(&child);
    assert_eq!(
        recv_until(&sock, "STOPPING=1", 10_000),
        "STOPPING=1\nSTATUS=stopping: saving the store"
    );
    let status = child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    assert!(status.success(), "{status:?}");

    acked.extend(more.lock().unwrap().iter().cloned());
    for id in &acked {
        let out = ssb_at(&data, &["get", id]);
        assert!(
            out.status.success(),
            "{id} was acknowledged but is gone: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let check = ssb_at(&data, &["check"]);
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout)
        .trim()
        .ends_with("ok"));
}

#[test]
fn a_bad_notify_socket_does_not_stop_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let nobody = dir.path().join("nobody-listens");
    let (mut child, addr) = spawn_run(
        &data,
        &[],
        &[("NOTIFY_SOCKET", nobody.as_os_str())],
        Stdio::null(),
    );
    assert!(addr.starts_with("net:127.0.0.1:"), "{addr}");
    assert!(publish(&data, "still serving").is_some());
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}
