//! Sneakernet end to end: real `ssb-node` processes, folders as sticks.
//!
//! - three sites converge by carrying one stick A → B → C → A → B;
//! - a stick is a carrier: A's feed reaches C through B, which does not follow A;
//! - bundle files: export, import (twice: idempotent), verify, inspect, export --clock;
//! - a running node does the same through its control socket;
//! - hostile bundles are rejected with their reason and change nothing;
//! - a full stick and a read-only stick give a clear error (in a private
//!   mount namespace; skipped with a printed reason where not permitted).

mod support;

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::ssb_at as ssb;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn fails(out: Output) -> String {
    assert!(!out.status.success(), "should have failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// A site: a data dir with an identity and `posts` posts of its own.
struct Site {
    data: PathBuf,
    id: String,
}

impl Site {
    fn new(root: &Path, name: &str, posts: usize) -> Site {
        let data = root.join(name);
        let id = ok(ssb(&data, &["init"])).trim().to_owned();
        let site = Site { data, id };
        if posts > 0 {
            site.publish(posts, name);
        }
        site
    }

    fn publish(&self, n: usize, tag: &str) {
        let lines: String = (0..n)
            .map(|i| format!("{{\"type\":\"post\",\"text\":\"{tag} {i}\"}}\n"))
            .collect();
        let mut child = Command::new(support::ssb_node())
            .arg("--data")
            .arg(&self.data)
            .args(["publish", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn replicate(&self, feeds: &[&str]) {
        let list: Vec<String> = feeds.iter().map(|f| format!("{f:?}")).collect();
        fs::write(
            self.data.join("ssb-node.toml"),
            format!("replicate = [{}]\n", list.join(", ")),
        )
        .unwrap();
    }

    fn clock(&self) -> serde_json::Value {
        serde_json::from_str(&ok(ssb(&self.data, &["clock"]))).unwrap()
    }

    fn seq(&self, feed: &str) -> u64 {
        self.clock()[feed].as_u64().unwrap_or(0)
    }

    fn stick_sync(&self, stick: &Path) -> serde_json::Value {
        let out = ssb(
            &self.data,
            &["stick", "sync", stick.to_str().unwrap(), "--json"],
        );
        serde_json::from_str(&ok(out)).unwrap()
    }

    fn check(&self) {
        let out = ok(ssb(&self.data, &["check"]));
        assert!(out.contains("ok"), "{out}");
    }
}

#[test]
fn three_sites_converge_by_carrying_one_stick() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    let a = Site::new(dir.path(), "a", 30);
    let b = Site::new(dir.path(), "b", 20);
    let c = Site::new(dir.path(), "c", 10);
    a.replicate(&[&b.id, &c.id]);
    b.replicate(&[&a.id, &c.id]);
    c.replicate(&[&a.id, &b.id]);
    // A blob A's feed mentions travels too.
    let blob_file = dir.path().join("photo.bin");
    fs::write(&blob_file, vec![7u8; 100_000]).unwrap();
    let blob = ok(ssb(&a.data, &["blobs", "add", blob_file.to_str().unwrap()]))
        .trim()
        .to_owned();
    let content = format!(r#"{{"type":"post","text":"photo","mentions":[{{"link":"{blob}"}}]}}"#);
    ok(ssb(&a.data, &["publish", "--content", &content]));

    let r = a.stick_sync(&stick);
    assert_eq!(
        (
            r["exported_messages"].as_u64(),
            r["exported_blobs"].as_u64()
        ),
        (Some(31), Some(1)),
        "{r}"
    );
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 31, "{r}");
    assert_eq!(r["exported_messages"], 20, "{r}");
    let r = c.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 51, "{r}");
    assert_eq!(r["imported_blobs"], 1, "{r}");
    let r = a.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 30, "{r}");
    assert!(r["problem"].is_null(), "{r}");
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 10, "{r}");
    assert_eq!(r["exported_messages"], 0, "nothing left to carry: {r}");

    let want = a.clock();
    assert_eq!(want[&a.id], 31);
    assert_eq!(want[&b.id], 20);
    assert_eq!(want[&c.id], 10);
    assert_eq!(b.clock(), want);
    assert_eq!(c.clock(), want);
    for s in [&a, &b, &c] {
        s.check();
        assert_eq!(ok(ssb(&s.data, &["blobs", "has", &blob])).trim(), "true");
    }
    // Every site remembers the stick and its clock.
    let sticks = ok(ssb(&b.data, &["sticks", "--json"]));
    let row: serde_json::Value = serde_json::from_str(sticks.lines().next().unwrap()).unwrap();
    assert_eq!(row["id"], r["stick"]);
    assert_eq!(row["messages"], 61);
    // A visit with nothing new reads only manifests and writes nothing.
    let r = c.stick_sync(&stick);
    assert_eq!(
        (
            r["imported_bundles"].as_u64(),
            r["exported_bundles"].as_u64()
        ),
        (Some(0), Some(0)),
        "{r}"
    );
}

#[test]
fn a_stick_carries_feeds_the_middle_site_does_not_follow() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    let a = Site::new(dir.path(), "a", 12);
    let b = Site::new(dir.path(), "b", 5);
    let c = Site::new(dir.path(), "c", 0);
    b.replicate(&[]); // B follows nobody.
    c.replicate(&[&a.id]);
    a.stick_sync(&stick);
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 0, "{r}");
    assert_eq!(b.seq(&a.id), 0);
    let r = c.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 12, "{r}");
    assert_eq!(c.seq(&a.id), 12);
    assert_eq!(c.seq(&b.id), 0, "C does not replicate B");
}

#[test]
fn bundle_files_export_import_verify_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 40);
    let b = Site::new(dir.path(), "b", 3);
    b.replicate(&[&a.id]);
    let file = dir.path().join("a.bundle");
    let out = ok(ssb(
        &a.data,
        &["bundle", "export", "--out", file.to_str().unwrap()],
    ));
    assert_eq!(out.trim(), file.to_str().unwrap());
    let v = ok(ssb(&a.data, &["bundle", "verify", file.to_str().unwrap()]));
    assert!(
        v.starts_with("ok: ") && v.contains("40 messages checked"),
        "{v}"
    );
    let i: serde_json::Value = serde_json::from_str(&ok(ssb(
        &a.data,
        &["bundle", "inspect", file.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    assert_eq!(i["manifest"]["author"], a.id.as_str());
    assert_eq!(i["manifest"]["feeds"][0]["last"], 40);
    // Import twice: the second adds nothing.
    let r: serde_json::Value = serde_json::from_str(&ok(ssb(
        &b.data,
        &["bundle", "import", file.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    assert_eq!(
        (r["checked"].as_u64(), r["messages"].as_u64()),
        (Some(40), Some(40)),
        "{r}"
    );
    let r: serde_json::Value = serde_json::from_str(&ok(ssb(
        &b.data,
        &["bundle", "import", file.to_str().unwrap(), "--json"],
    )))
    .unwrap();
    assert_eq!(r["messages"], 0, "{r}");
    assert_eq!(b.seq(&a.id), 40);
    // Export beyond B's clock: only what B lacks, into a folder, named by content.
    a.publish(5, "more");
    let clock = dir.path().join("b-clock.json");
    fs::write(&clock, ok(ssb(&b.data, &["clock"]))).unwrap();
    let outdir = dir.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let files = ok(ssb(
        &a.data,
        &[
            "bundle",
            "export",
            "--out",
            outdir.to_str().unwrap(),
            "--clock",
            clock.to_str().unwrap(),
        ],
    ));
    let path = files.lines().next().unwrap().to_owned();
    assert!(path.ends_with(".ssb-bundle"), "{path}");
    let i: serde_json::Value =
        serde_json::from_str(&ok(ssb(&a.data, &["bundle", "inspect", &path, "--json"]))).unwrap();
    // A's feed 41..=45 and B's feed (which B's clock already has) is left out.
    assert_eq!(i["manifest"]["feeds"].as_array().unwrap().len(), 1, "{i}");
    assert_eq!(i["manifest"]["feeds"][0]["first"], 41);
    assert_eq!(i["name_matches_file"], true);
    // A renamed bundle is refused by name.
    let renamed = outdir.join(format!("{}.ssb-bundle", "0".repeat(64)));
    fs::copy(&path, &renamed).unwrap();
    let e = fails(ssb(
        &b.data,
        &["bundle", "import", renamed.to_str().unwrap()],
    ));
    assert!(e.contains("named") && e.contains("content"), "{e}");
    let r = ok(ssb(&b.data, &["bundle", "import", &path]));
    assert!(r.contains("5 added"), "{r}");
    b.check();
}

#[test]
fn a_running_node_syncs_sticks_and_bundles_through_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 25);
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    let node = support::running::Node::start(dir.path(), &format!("replicate = [{:?}]\n", a.id));
    let r = ok(ssb(&node.data, &["stick", "sync", stick.to_str().unwrap()]));
    assert!(
        r.contains("imported 25 messages") && r.ends_with("safe to pull\n"),
        "{r}"
    );
    let b_id = ok(ssb(&node.data, &["whoami"])).trim().to_owned();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ok(ssb(&node.data, &["clock"]))).unwrap()[&a.id],
        25
    );
    ok(ssb(
        &node.data,
        &["publish", "--content", r#"{"type":"post","text":"from b"}"#],
    ));
    let file = dir.path().join("b.bundle");
    ok(ssb(
        &node.data,
        &["bundle", "export", "--out", file.to_str().unwrap()],
    ));
    a.replicate(&[&b_id]);
    let r = ok(ssb(&a.data, &["bundle", "import", file.to_str().unwrap()]));
    assert!(r.contains("1 added"), "{r}");
    let sticks = ok(ssb(&node.data, &["sticks"]));
    assert!(
        sticks.contains("bundles=1") && sticks.contains(&format!("{}", stick.display())),
        "{sticks}"
    );
}

/// Runs `script` in a private mount namespace (root, or a user namespace);
/// `None` if this machine does not allow one.
fn in_mount_namespace(script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .output()
        .ok()?;
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: no private mount namespace here: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        return None;
    }
    Some(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-ec", script])
            .output()
            .expect("unshare"),
    )
}

#[test]
fn a_read_only_stick_is_read_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 8);
    let b = Site::new(dir.path(), "b", 2);
    b.replicate(&[&a.id]);
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    let s = stick.display();
    let script = format!(
        "mount --bind {s} {s}; mount -o remount,bind,ro {s}; {} --data {} stick sync {s}",
        support::ssb_node().display(),
        b.data.display()
    );
    let Some(out) = in_mount_namespace(&script) else {
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("imported 8 messages") && text.contains("read-only"),
        "{text}"
    );
    assert_eq!(b.seq(&a.id), 8);
}

#[test]
fn a_full_stick_gives_a_clear_error_and_leaves_whole_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    let a = Site::new(dir.path(), "a", 0);
    // Incompressible posts: ~3 KiB of random base64 each, 400 of them.
    let mut rng = 0x2545F4914F6CDD1Du64;
    let lines: String = (0..400)
        .map(|_| {
            let text: String = (0..3000)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [(rng % 64) as usize],
                    )
                })
                .collect();
            format!("{{\"type\":\"post\",\"text\":\"{text}\"}}\n")
        })
        .collect();
    let mut child = Command::new(support::ssb_node())
        .arg("--data")
        .arg(&a.data)
        .args(["publish", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    // A 1.5 MiB stick: less than the ~1.3 MB of posts plus the 1 MiB margin.
    let s = stick.display();
    let script = format!(
        "mount -t tmpfs -o size=1536k tmpfs {s}; set +e; {bin} --data {d} stick sync {s}; echo exit=$?; \
         {bin} --data {d} stick sync {s}; echo exit=$?; ls {s}/SSB-SNEAKERNET/tmp | wc -l",
        bin = support::ssb_node().display(),
        d = a.data.display()
    );
    let Some(out) = in_mount_namespace(&script) else {
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("problem: stick is full"), "{text}");
    assert_eq!(text.matches("exit=1").count(), 2, "{text}");
    assert!(text.trim_end().ends_with('0'), "no temp files left: {text}");
    // What did fit is on the stick as whole bundles (only inside the namespace,
    // now gone), and A's store is untouched.
    a.check();
}
