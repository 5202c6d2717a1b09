//! End to end: a real `ssb-node run` process watching a temporary mount root,
//! driving a fake LED directory, and `ssb-node status [--json]` reading it
//! over the control socket. Sticks are folders moved in with rename(2), and
//! real bind mounts inside a private mount namespace (skipped, saying so,
//! where namespaces cannot be made).
//!
//! Waits are for the status or the log to say something, with a generous
//! deadline that only matters when the code is broken.
#![allow(clippy::unwrap_used)]

mod support;

#[path = "support/fake_led.rs"]
mod fake_led;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fake_led::{fake_led, LedRecorder};
use serde_json::Value;
use support::running::Node;
use support::ssb_at;

const DEADLINE: Duration = Duration::from_secs(30);

/// `ssb-node status --json` of a running node.
fn status(node: &Node) -> Value {
    let out = ssb_at(&node.data, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status failed: {out:?}\n{}",
        node.log()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the node's status satisfies `pred`; returns that status.
fn until(node: &Node, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = status(node);
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {what}: {s}\nlog:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status entry of the stick at `path`.
fn entry<'a>(s: &'a Value, path: &Path) -> Option<&'a Value> {
    s["sticks"]
        .as_array()?
        .iter()
        .find(|st| st["path"].as_str() == path.to_str())
}

fn stick_state(s: &Value, path: &Path) -> Option<String> {
    entry(s, path).and_then(|st| st["state"].as_str().map(str::to_owned))
}

/// A folder stick made outside the roots (with one bundle-like file).
fn folder_stick(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("SSB-SNEAKERNET")).unwrap();
    std::fs::write(dir.join("SSB-SNEAKERNET/one.bundle"), b"x").unwrap();
    dir.to_path_buf()
}

/// How often the log says the stick at `path` became busy.
fn busy_count(node: &Node, path: &Path) -> usize {
    node.log()
        .lines()
        .filter(|l| l.contains("stick busy") && l.ends_with(&format!("stick={}", path.display())))
        .count()
}

fn root_in(dir: &Path) -> PathBuf {
    let root = dir.join("media");
    std::fs::create_dir(&root).unwrap();
    root.canonicalize().unwrap()
}

#[test]
fn status_without_a_node_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    assert!(ssb_at(&data, &["init"]).status.success());
    for args in [&["status"][..], &["status", "--json"]] {
        let out = ssb_at(&data, args);
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no node is running"), "{err}");
    }
}

#[test]
fn a_stick_dropped_into_a_root_drives_the_led_from_heartbeat_to_solid() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let led = fake_led(dir.path());
    let recorder = LedRecorder::start(&led);
    let led_arg = format!("sysfs:{}", led.display());
    let node = Node::start_with(
        dir.path(),
        "node",
        "",
        &["--mount-root", root.to_str().unwrap(), "--led", &led_arg],
    );
    let s = until(&node, "ready", |s| s["state"] == "ready");
    assert_eq!(s["led"], "idle");
    assert_eq!(
        std::fs::read_to_string(led.join("trigger")).unwrap(),
        "none"
    );
    // The idle heartbeat: on and off.
    recorder.wait_writes(0, 4);
    let idle = recorder.since(0);
    assert!(
        idle.contains(&"255".into()) && idle.contains(&"0".into()),
        "{idle:?}"
    );

    let stick = root.join("STICK");
    std::fs::rename(folder_stick(&dir.path().join("s")), &stick).unwrap();
    let s = until(&node, "the stick done", |s| {
        stick_state(s, &stick).as_deref() == Some("done")
    });
    assert_eq!(s["led"], "stick-done");
    let summary = entry(&s, &stick).unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        summary.starts_with("stick ") && summary.ends_with("safe to pull"),
        "{summary}"
    );
    // The pattern went idle -> busy -> done, in that order.
    let log = node.log();
    let busy = log.find("LED idle -> stick-busy").expect(&log);
    let done = log.find("LED stick-busy -> stick-done").expect(&log);
    assert!(busy < done);
    // Solid: lit, and nothing written any more.
    recorder.wait_steady();
    assert_eq!(
        std::fs::read_to_string(led.join("brightness")).unwrap(),
        "255"
    );

    // The text form says the same.
    let out = ssb_at(&node.data, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("node: ready"), "{text}");
    assert!(text.contains("led: stick-done"), "{text}");
    assert!(
        text.contains(&format!("stick {}: done (stick ", stick.display())),
        "{text}"
    );

    // Pulled: forgotten, and back to the heartbeat.
    let from = recorder.count();
    std::fs::rename(&stick, dir.path().join("out")).unwrap();
    let s = until(&node, "idle again", |s| s["led"] == "idle");
    assert_eq!(s["sticks"].as_array().map(Vec::len), Some(0), "{s}");
    recorder.wait_writes(from, 2);
    assert!(recorder.since(from).contains(&"0".into()));
}

/// A real visit interrupted: the node is writing a bundle (its temp file is
/// on the stick) when the stick leaves the root. The status says pulled
/// early, the LED asks for attention, the node runs on; put back, the stick
/// is visited again, ends with whole bundles only, and carries the feed.
#[test]
fn a_stick_removed_mid_write_is_pulled_early_and_the_next_visit_converges() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let root = root_in(&dir);
    let node = Node::start_with(&dir, "node", "", &["--mount-root", root.to_str().unwrap()]);
    until(&node, "ready", |s| s["state"] == "ready");
    let id = String::from_utf8(ssb_at(&node.data, &["whoami"]).stdout).unwrap();
    let stick = root.join("STICK");
    let tmp = stick.join("SSB-SNEAKERNET/tmp");
    // A bundle is being written: a temp file of over 1 MB on the stick (the
    // descriptor's is tiny). Written already: a file in bundles/.
    let writing = || {
        std::fs::read_dir(&tmp).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 1_000_000))
        })
    };
    let written = || {
        std::fs::read_dir(stick.join("SSB-SNEAKERNET/bundles"))
            .is_ok_and(|mut d| d.next().is_some())
    };
    // Each try adds ~9 MB that does not compress, so the next bundle takes
    // longer to write; a try whose bundle was written before this thread
    // saw it being written (a loaded machine) is let finish and taken out.
    let mut posts = 0;
    let caught = (0..4).any(|attempt| {
        let out = support::ssb_stdin(
            &node.data,
            &["publish", "--stdin"],
            &support::incompressible_posts(1500, 6000),
        );
        assert!(out.status.success(), "{out:?}");
        posts += 1500;
        let blank = dir.join(format!("blank{attempt}"));
        std::fs::create_dir_all(blank.join("SSB-SNEAKERNET")).unwrap();
        std::fs::rename(&blank, &stick).unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            if writing() {
                return true;
            }
            if written() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no bundle written: {}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        until(&node, "the missed try done", |s| {
            stick_state(s, &stick).as_deref() == Some("done")
        });
        std::fs::rename(&stick, dir.join(format!("missed{attempt}"))).unwrap();
        until(&node, "the missed try forgotten", |s| {
            entry(s, &stick).is_none()
        });
        false
    });
    assert!(caught, "never caught a bundle being written");
    let pulled = dir.join("pulled");
    std::fs::rename(&stick, &pulled).unwrap();
    let s = until(&node, "pulled early", |s| {
        entry(s, &stick).is_some_and(|st| st["present"] == false)
    });
    assert_eq!(s["led"], "attention", "{s}");
    assert_eq!(s["state"], "ready", "{s}");
    assert!(node.log().contains("stick pulled early"), "{}", node.log());
    // The interrupted visit ends: with the error that was the pull, or later
    // (its writes may go on in the moved folder), ignored.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = node.log();
        if log.contains("stick handler finished after the stick was pulled")
            || log.contains("stick pulled early, needs attention (")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the visit never ended: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Back in: visited again, done, and attention is cleared.
    std::fs::rename(&pulled, &stick).unwrap();
    let s = until(&node, "done after re-insertion", |s| {
        stick_state(s, &stick).as_deref() == Some("done")
    });
    assert_eq!(s["led"], "stick-done", "{s}");
    // Only whole bundles, no temp file, and they carry every message.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    std::fs::rename(&stick, &pulled).unwrap();
    for b in std::fs::read_dir(pulled.join("SSB-SNEAKERNET/bundles")).unwrap() {
        let path = b.unwrap().path();
        let out = ssb_at(&node.data, &["bundle", "verify", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {out:?}", path.display());
    }
    let other = dir.join("other");
    assert!(ssb_at(&other, &["init"]).status.success());
    std::fs::write(
        other.join("ssb-node.toml"),
        format!("replicate = [{:?}]\n", id.trim()),
    )
    .unwrap();
    let out = ssb_at(&other, &["stick", "sync", pulled.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("imported {posts} messages")),
        "{out:?}"
    );
}

#[test]
fn folder_sticks_at_depth_one_and_two_and_two_at_once_are_handled_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    // One stick already there when the node starts.
    let early = root.join("EARLY");
    std::fs::rename(folder_stick(&dir.path().join("e")), &early).unwrap();
    let node = Node::start_with(
        dir.path(),
        "node",
        "",
        &["--mount-root", root.to_str().unwrap()],
    );
    until(&node, "the early stick done", |s| {
        stick_state(s, &early).as_deref() == Some("done")
    });

    // Depth 2, as automounters make them (/media/USER/LABEL).
    std::fs::create_dir(root.join("pi")).unwrap();
    let deep = root.join("pi/LABEL");
    std::fs::rename(folder_stick(&dir.path().join("d")), &deep).unwrap();
    until(&node, "the depth-2 stick done", |s| {
        stick_state(s, &deep).as_deref() == Some("done")
    });

    // Two at once.
    let (a, b) = (root.join("A"), root.join("B"));
    let (sa, sb) = (
        folder_stick(&dir.path().join("a")),
        folder_stick(&dir.path().join("b")),
    );
    std::fs::rename(sa, &a).unwrap();
    std::fs::rename(sb, &b).unwrap();
    let s = until(&node, "both sticks done", |s| {
        stick_state(s, &a).as_deref() == Some("done")
            && stick_state(s, &b).as_deref() == Some("done")
    });
    assert_eq!(s["led"], "stick-done");

    // A stick that stays is not handled again, even when written to.
    std::fs::write(deep.join("SSB-SNEAKERNET/new.bundle"), b"y").unwrap();
    std::fs::create_dir(deep.join("SSB-SNEAKERNET/sub")).unwrap();
    let sentinel = root.join("SENTINEL");
    std::fs::rename(folder_stick(&dir.path().join("n")), &sentinel).unwrap();
    until(&node, "the sentinel done", |s| {
        stick_state(s, &sentinel).as_deref() == Some("done")
    });
    for p in [&early, &deep, &a, &b, &sentinel] {
        assert_eq!(busy_count(&node, p), 1, "{}\n{}", p.display(), node.log());
    }

    // Pulled and put back: handled again.
    std::fs::rename(&a, dir.path().join("a-out")).unwrap();
    until(&node, "A gone", |s| entry(s, &a).is_none());
    std::fs::rename(dir.path().join("a-out"), &a).unwrap();
    until(&node, "A done again", |s| {
        stick_state(s, &a).as_deref() == Some("done")
    });
    assert_eq!(busy_count(&node, &a), 2);
}

/// Bind-mounts `src` on `dst` inside the mount namespace of process `pid`.
fn bind(pid: u32, src: &Path, dst: &Path) {
    in_ns(
        pid,
        &[
            "mount",
            "--bind",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    );
}

/// `nsenter` into the mount namespace of process `pid`, to run a command.
fn nsenter(pid: u32) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &pid.to_string(), "-m", "--"]);
    c
}

/// Runs `args` inside the mount namespace of process `pid`; its stdout.
fn in_ns(pid: u32, args: &[&str]) -> String {
    let out = nsenter(pid).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until the stick at `path` failed; the status then and the reason.
fn until_failed(node: &Node, path: &Path) -> (Value, String) {
    let s = until(node, "the stick failed", |s| {
        stick_state(s, path).as_deref() == Some("error")
    });
    let reason = entry(&s, path).unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    (s, reason)
}

/// A node started inside its own private mount namespace, watching `root`.
fn start_in_namespace(dir: &Path, root: &Path) -> Node {
    let node = Node::start_wrapped(
        dir,
        "node",
        "",
        &["--mount-root", root.to_str().unwrap()],
        &["unshare", "-m", "--propagation", "private", "--"],
    );
    until(&node, "ready", |s| s["state"] == "ready");
    node
}

#[test]
fn mounted_sticks_in_a_private_mount_namespace() {
    if !support::private_mount_namespace_possible() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let root = root_in(&dir);
    let node = start_in_namespace(&dir, &root);
    let pid = node.child.id();

    // A stick without SSB-SNEAKERNET/, mounted at depth 2 on an existing
    // directory (which inotify cannot see): initialised.
    let src = dir.join("stick-fs");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir_all(root.join("pi/STICK")).unwrap();
    let point = root.join("pi/STICK");
    bind(pid, &src, &point);
    let s = until(&node, "the mounted stick done", |s| {
        stick_state(s, &point).as_deref() == Some("done")
    });
    let summary = entry(&s, &point).unwrap()["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.ends_with("safe to pull"), "{summary}");
    assert!(
        src.join("SSB-SNEAKERNET/stick.json").is_file(),
        "the blank mounted stick was initialised"
    );
    assert!(src.join("SSB-SNEAKERNET").is_dir());

    // A read-only stick: made read-only out of sight, then moved in whole.
    let ro_src = dir.join("ro-fs");
    let staging = dir.join("staging");
    std::fs::create_dir(&ro_src).unwrap();
    std::fs::create_dir(&staging).unwrap();
    let ro = root.join("RO");
    std::fs::create_dir(&ro).unwrap();
    bind(pid, &ro_src, &staging);
    in_ns(
        pid,
        &["mount", "-o", "remount,ro,bind", staging.to_str().unwrap()],
    );
    in_ns(
        pid,
        &[
            "mount",
            "--move",
            staging.to_str().unwrap(),
            ro.to_str().unwrap(),
        ],
    );
    let (s, reason) = until_failed(&node, &ro);
    assert!(reason.ends_with("is read-only"), "{reason}");
    assert_eq!(s["led"], "attention");

    // Unmounted: the done stick is forgotten, the failed one stays a problem.
    in_ns(pid, &["umount", point.to_str().unwrap()]);
    in_ns(pid, &["umount", ro.to_str().unwrap()]);
    let s = until(&node, "both unmounted", |s| {
        entry(s, &point).is_none() && entry(s, &ro).is_some_and(|st| st["present"] == false)
    });
    assert_eq!(s["led"], "attention");
    // A stick inserted after the problem that syncs fine clears it.
    bind(pid, &src, &point);
    let s = until(&node, "attention cleared", |s| {
        stick_state(s, &point).as_deref() == Some("done") && entry(s, &ro).is_none()
    });
    assert_eq!(s["led"], "stick-done");
}

/// A real small file system (ext4 of 1,100 KiB on a loop device, mounted in
/// the node's namespace) that cannot take the node's 1.2 MB feed: the status
/// says the stick is full and why, the LED asks for attention, the stick
/// holds only whole bundles and no temp file, and the node runs on.
#[test]
fn a_full_mounted_stick_is_a_problem_in_the_status_and_the_node_runs_on() {
    if !support::private_mount_namespace_possible() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let image = dir.join("stick.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(1100 * 1024)
        .unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .output();
    if !mkfs.as_ref().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: cannot make an ext4 file system here (mkfs.ext4: {mkfs:?})");
        return;
    }
    let root = root_in(&dir);
    let node = start_in_namespace(&dir, &root);
    let pid = node.child.id();
    let out = support::ssb_stdin(
        &node.data,
        &["publish", "--stdin"],
        &support::incompressible_posts(400, 3000),
    );
    assert!(out.status.success(), "{out:?}");

    let point = root.join("SMALL");
    std::fs::create_dir(&point).unwrap();
    let probe = nsenter(pid)
        .args(["mount", "-o", "loop"])
        .arg(&image)
        .arg(&point)
        .output()
        .unwrap();
    if !probe.status.success() {
        println!("SKIPPED: no loop mounts here: {probe:?}");
        return;
    }
    let (s, reason) = until_failed(&node, &point);
    assert!(reason.contains("stick is full"), "{reason}");
    assert_eq!(s["led"], "attention");
    let text = String::from_utf8(ssb_at(&node.data, &["status"]).stdout).unwrap();
    assert!(text.contains("stick is full"), "{text}");
    let stick = point.join("SSB-SNEAKERNET");
    let tmp = in_ns(pid, &["ls", "-A", stick.join("tmp").to_str().unwrap()]);
    assert_eq!(tmp, "", "temp files left on the full stick");
    // Every bundle that is there is whole: `bundle verify` (no store) passes.
    let bundles = in_ns(pid, &["ls", "-A", stick.join("bundles").to_str().unwrap()]);
    for name in bundles.lines() {
        let path = stick.join("bundles").join(name);
        let bin = support::ssb_node();
        in_ns(
            pid,
            &[
                bin.to_str().unwrap(),
                "bundle",
                "verify",
                path.to_str().unwrap(),
            ],
        );
    }

    // The node runs on: it publishes, and says it is ready.
    let out = ssb_at(
        &node.data,
        &[
            "publish",
            "--content",
            r#"{"type":"post","text":"still here"}"#,
        ],
    );
    assert!(out.status.success(), "{out:?}\n{}", node.log());
    let s = status(&node);
    assert_eq!(s["state"], "ready", "{s}");
    // Pulled: still a problem until a later stick syncs fine.
    in_ns(pid, &["umount", point.to_str().unwrap()]);
    let s = until(&node, "the full stick pulled", |s| {
        entry(s, &point).is_some_and(|st| st["present"] == false)
    });
    assert_eq!(s["led"], "attention");
}

#[test]
fn a_replicating_peer_shows_as_syncing_until_caught_up_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let b_data = dir.path().join("b");
    assert!(ssb_at(&b_data, &["init"]).status.success());
    let b_id = String::from_utf8(ssb_at(&b_data, &["whoami"]).stdout).unwrap();
    let b_id = b_id.trim();
    let post = |text: &str| {
        let content = format!(r#"{{"type":"post","text":"{text}"}}"#);
        let out = ssb_at(&b_data, &["publish", "--content", &content]);
        assert!(out.status.success(), "{out:?}");
    };
    for i in 0..3 {
        post(&format!("before {i}"));
    }
    let a = Node::start_with(dir.path(), "a", &format!("replicate = [\"{b_id}\"]\n"), &[]);
    let _b = Node::start_with(dir.path(), "b", "", &["--connect", &a.addr]);
    let held = |n: u64| {
        let clock: Value = serde_json::from_slice(&ssb_at(&a.data, &["clock"]).stdout).unwrap();
        clock[b_id].as_u64() == Some(n)
    };
    let quiet =
        |s: &Value| s["peers_connected"] == 1 && s["peers_syncing"] == 0 && s["led"] == "idle";
    until(&a, "B's feed held and the link quiet", |s| {
        quiet(s) && held(3)
    });
    let log = a.log();
    let syncing = log.find("LED idle -> peer-syncing").expect(&log);
    let idle = log.rfind("LED peer-syncing -> idle").expect(&log);
    assert!(syncing < idle);

    // A live message: syncing again, then quiet again.
    post("live");
    assert_eq!(
        a.wait_log("LED idle -> peer-syncing", 2, DEADLINE),
        2,
        "{}",
        a.log()
    );
    until(&a, "the live message held and the link quiet", |s| {
        quiet(s) && held(4)
    });
}

/// A folder stick whose `tmp/` is a link to a folder elsewhere: the running
/// node refuses it, says why in `status --json`, and touches nothing there.
#[test]
fn a_stick_with_a_link_out_of_it_is_refused_in_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_in(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("thesis.txt"), b"years of work").unwrap();
    std::fs::write(outside.join("1-0.part"), b"not a leftover").unwrap();
    let node = Node::start_with(
        dir.path(),
        "node",
        "",
        &["--mount-root", root.to_str().unwrap()],
    );
    let made = dir.path().join("s");
    std::fs::create_dir_all(made.join("SSB-SNEAKERNET")).unwrap();
    std::os::unix::fs::symlink(&outside, made.join("SSB-SNEAKERNET/tmp")).unwrap();
    let stick = root.join("STICK");
    std::fs::rename(&made, &stick).unwrap();
    let (s, reason) = until_failed(&node, &stick);
    assert!(
        reason.contains("refused") && reason.contains("SSB-SNEAKERNET/tmp is a symbolic link"),
        "{reason}"
    );
    assert_eq!(s["led"], "attention");
    let st = entry(&s, &stick).unwrap();
    assert_eq!(st["attention"], true, "{s}");
    let mut left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["1-0.part", "thesis.txt"]);
    let text = String::from_utf8(ssb_at(&node.data, &["status"]).stdout).unwrap();
    assert!(text.contains("symbolic link"), "{text}");
    // A folder whose SSB-SNEAKERNET itself is a link: a stick, refused.
    let made = dir.path().join("s2");
    std::fs::create_dir(&made).unwrap();
    std::os::unix::fs::symlink(&outside, made.join("SSB-SNEAKERNET")).unwrap();
    let linked = root.join("LINKED");
    std::fs::rename(&made, &linked).unwrap();
    let (_, reason) = until_failed(&node, &linked);
    assert!(
        reason.contains("SSB-SNEAKERNET is a symbolic link"),
        "{reason}"
    );
    let mut left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["1-0.part", "thesis.txt"]);
}
