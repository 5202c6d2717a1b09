//! Sneakernet end to end: real `ssb-node` processes, folders as sticks.
//!
//! - three sites converge by carrying one stick A → B → C → A → B;
//! - a stick is a carrier: A's feed reaches C through B, which does not follow A;
//! - bundle files: export, import (twice: idempotent), verify, inspect, export --clock;
//! - a running node does the same through its control socket;
//! - long imports and exports show progress on a terminal (a pty from
//!   `script`), with and without a running node, and not when piped;
//! - hostile bundles are rejected with their reason and change nothing;
//! - a full stick and a read-only stick give a clear error (in a private
//!   mount namespace; skipped with a printed reason where not permitted);
//! - hostile sticks: links and bind mounts out of the stick are refused and
//!   nothing outside changes; fifos and devices are never opened; bundles
//!   and sticks of a newer version are left as they are; manifest-only
//!   forgeries neither stop an export nor push out a real bundle.

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
mod support;

use std::fs;
use std::os::unix::fs::FileTypeExt as _;
use std::process::{Command, Output};

use site::{fails, ok, Site};
use support::ssb_at as ssb;

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

/// Runs `ssb-node --data DATA ARGS…` with a pseudo-terminal as its stdin,
/// stdout and stderr (util-linux `script`); everything it wrote, and whether
/// it succeeded.
fn on_terminal(data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut line = format!(
        "{} --data {}",
        support::ssb_node().display(),
        data.display()
    );
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn progress_shows_on_a_terminal_with_and_without_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 3000);
    let file = dir.path().join("a.bundle");
    let file = file.to_str().unwrap();
    // No node running: the CLI does the work and draws its own progress.
    let (done, text) = on_terminal(&a.data, &["bundle", "export", "--out", file]);
    assert!(
        done && text.contains("exporting: 3000 messages left"),
        "{text:?}"
    );
    let b = Site::new(dir.path(), "b", 0);
    b.replicate(&[&a.id]);
    let (done, text) = on_terminal(&b.data, &["bundle", "import", file]);
    assert!(done && text.contains("checking: "), "{text:?}");
    assert!(text.contains("3000 added"), "{text:?}");
    // Piped: the same import prints only its report.
    let c = Site::new(dir.path(), "c", 0);
    c.replicate(&[&a.id]);
    let r = ok(ssb(&c.data, &["bundle", "import", file]));
    assert!(!r.contains("checking") && r.contains("3000 added"), "{r}");

    // A running node streams its progress over the control socket.
    let node = support::running::Node::start(dir.path(), &format!("replicate = [{:?}]\n", a.id));
    let (done, text) = on_terminal(&node.data, &["bundle", "import", file]);
    assert!(done && text.contains("checking: "), "{text:?}");
    assert!(text.contains("3000 added"), "{text:?}");
    let out = dir.path().join("again.bundle");
    let (done, text) = on_terminal(
        &node.data,
        &["bundle", "export", "--out", out.to_str().unwrap()],
    );
    assert!(
        done && text.contains("exporting: 3000 messages left"),
        "{text:?}"
    );
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    let (done, text) = on_terminal(&node.data, &["stick", "sync", stick.to_str().unwrap()]);
    assert!(done && text.contains("exporting: "), "{text:?}");
    assert!(text.contains("safe to pull"), "{text:?}");
}

/// Runs `script` in a private mount namespace (root, or a user namespace);
/// `None` if this machine does not allow one.
fn in_mount_namespace(script: &str) -> Option<Output> {
    if !support::private_mount_namespace_possible() {
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
    let lines = support::incompressible_posts(400, 3000);
    ok(support::ssb_stdin(&a.data, &["publish", "--stdin"], &lines));
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

/// The value JSON of each line `ssb-node feed` prints, byte for byte.
fn values(site: &Site, feed: &str) -> Vec<Vec<u8>> {
    ok(ssb(&site.data, &["feed", feed]))
        .lines()
        .map(|l| {
            let start = l.find(",\"value\":").unwrap() + ",\"value\":".len();
            let end = l.rfind(",\"timestamp\":").unwrap();
            l.as_bytes()[start..end].to_vec()
        })
        .collect()
}

/// A well-formed, validly signed bundle (by some exporter) carrying `lines`
/// as messages `first..` of `feed`.
fn bundle_of(feed: &str, first: u32, lines: &[Vec<u8>]) -> Vec<u8> {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let author = format!(
        "@{}.ed25519",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            key.verifying_key().as_bytes()
        )
    );
    let limits = bundle_format::Limits::default();
    let mut p = bundle_format::Planner::new(
        &author,
        1_700_000_000_000,
        bundle_format::FAT32_MAX_FILE,
        limits,
    )
    .unwrap();
    p.begin_feed(feed, first).unwrap();
    for l in lines {
        p.line(l).unwrap();
    }
    let m = p.finish().unwrap();
    let mut w = bundle_format::BundleWriter::new(Vec::new(), m, &key, &Default::default()).unwrap();
    for l in lines {
        w.line(l).unwrap();
    }
    w.finish().unwrap().out
}

#[test]
fn hostile_bundles_are_rejected_with_their_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 4);
    let other = Site::new(dir.path(), "other", 1);
    let b = Site::new(dir.path(), "b", 2);
    b.replicate(&[&a.id]);
    let good = values(&a, &a.id);
    let mut bad_sig = good.clone();
    let text = String::from_utf8(bad_sig[2].clone()).unwrap();
    let at = text.find("\"signature\":\"").unwrap() + 14;
    let flipped = if &text[at..=at] == "A" { "B" } else { "A" };
    bad_sig[2] = format!("{}{}{}", &text[..at], flipped, &text[at + 1..]).into_bytes();
    let gap = vec![good[0].clone(), good[1].clone(), good[3].clone()];
    let misplaced = vec![good[0].clone(), values(&other, &other.id)[0].clone()];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "forged signature",
            bundle_of(&a.id, 1, &bad_sig),
            "message 3 of",
        ),
        (
            "gap in the chain",
            bundle_of(&a.id, 1, &gap),
            "holds message 4",
        ),
        (
            "another feed's message",
            bundle_of(&a.id, 1, &misplaced),
            "holds message 1 of",
        ),
        (
            "message 1 placed as 2",
            bundle_of(&a.id, 2, &good[..1]),
            "holds message 1",
        ),
        (
            "not zstd",
            b"PK\x03\x04 a zip file".to_vec(),
            "not valid zstd",
        ),
        ("empty", Vec::new(), "truncated"),
    ];
    for (what, bytes, reason) in cases {
        let path = dir.path().join("hostile.bundle");
        fs::write(&path, &bytes).unwrap();
        let e = fails(ssb(&b.data, &["bundle", "verify", path.to_str().unwrap()]));
        assert!(
            e.contains("bundle rejected") && e.contains(reason),
            "{what}: {e}"
        );
        let e = fails(ssb(&b.data, &["bundle", "import", path.to_str().unwrap()]));
        assert!(e.contains(reason), "{what}: {e}");
        assert_eq!(b.seq(&a.id), 0, "{what}: nothing of it is visible");
        // Nor kept: what the import wrote past the feed's head is gone.
        b.check();
    }
    // A path-traversal entry made by a tar tool.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "manifest.json", &b"{}"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()[..10].copy_from_slice(b"../escaped");
    h.set_size(1);
    h.set_cksum();
    tar.append(&h, &b"x"[..]).unwrap();
    let path = dir.path().join("traversal.bundle");
    fs::write(
        &path,
        zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap(),
    )
    .unwrap();
    let e = fails(ssb(&b.data, &["bundle", "verify", path.to_str().unwrap()]));
    assert!(e.contains("bundle rejected"), "{e}");
    // The genuine bundle goes in, and the store is sound.
    let path = dir.path().join("good.bundle");
    fs::write(&path, bundle_of(&a.id, 1, &good)).unwrap();
    assert!(ok(ssb(&b.data, &["bundle", "import", path.to_str().unwrap()])).contains("4 added"));
    b.check();
}

#[test]
fn a_running_node_keeps_nothing_of_a_rejected_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 4);
    // The last message forged: every line chains, so all of them are
    // written past the feed's head before the signature check refuses it.
    let mut forged = values(&a, &a.id);
    let text = String::from_utf8(forged[3].clone()).unwrap();
    let at = text.find("\"signature\":\"").unwrap() + 14;
    let flipped = if &text[at..=at] == "A" { "B" } else { "A" };
    forged[3] = format!("{}{}{}", &text[..at], flipped, &text[at + 1..]).into_bytes();
    let path = dir.path().join("forged.bundle");
    fs::write(&path, bundle_of(&a.id, 1, &forged)).unwrap();
    {
        let node =
            support::running::Node::start(dir.path(), &format!("replicate = [{:?}]\n", a.id));
        // Read and written past the feed's head, then refused at message 4.
        let e = fails(ssb(
            &node.data,
            &["bundle", "import", path.to_str().unwrap()],
        ));
        assert!(e.contains("message 4 of"), "{e}");
        assert!(ok(ssb(&node.data, &["clock"])).trim() == "{}");
    } // killed (SIGKILL): only what the running node did is on disk
      // Nothing was left for the next open to drop: the node dropped it.
    let out = support::run(
        Command::new(support::ssb_node())
            .env("SSB_NODE_LOG", "ssb_node=info")
            .arg("--data")
            .arg(dir.path().join("node"))
            .arg("check"),
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("did not finish"), "{said}");
}

/// The running node's status as JSON.
fn status(data: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&ok(ssb(data, &["status", "--json"]))).unwrap()
}

/// Waits until every stick in the status is done (and there are `n`).
fn wait_done(data: &std::path::Path, n: usize) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = status(data);
        let sticks = s["sticks"].as_array().cloned().unwrap_or_default();
        if sticks.len() == n && sticks.iter().all(|st| st["state"] == "done") {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "sticks not done: {s}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn sticks_moved_into_a_watched_root_are_synced_with_no_command_typed() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 15);
    let c = Site::new(dir.path(), "c", 7);
    let root = dir.path().join("media");
    fs::create_dir(&root).unwrap();
    // Two sticks prepared elsewhere: one with A's feed, one with C's.
    let (s1, s2) = (dir.path().join("s1"), dir.path().join("s2"));
    for (s, site) in [(&s1, &a), (&s2, &c)] {
        fs::create_dir(s).unwrap();
        site.stick_sync(s);
    }
    let config = format!("replicate = [{:?}, {:?}]\n", a.id, c.id);
    let node = support::running::Node::start_with(
        dir.path(),
        "b",
        &config,
        &["--mount-root", root.to_str().unwrap()],
    );
    assert_eq!(
        status(&node.data)["sticks"].as_array().map(Vec::len),
        Some(0)
    );
    // One at depth 1.
    fs::rename(&s1, root.join("STICK1")).unwrap();
    let s = wait_done(&node.data, 1);
    assert!(
        s["sticks"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("imported 15 messages"),
        "{s}"
    );
    // Then two at once, one at depth 2 (as /media/<user>/<label>).
    fs::create_dir(root.join("user")).unwrap();
    fs::rename(&s2, root.join("user/STICK2")).unwrap();
    let fresh = dir.path().join("blank");
    fs::create_dir_all(fresh.join("SSB-SNEAKERNET")).unwrap();
    fs::rename(&fresh, root.join("BLANK")).unwrap();
    let s = wait_done(&node.data, 3);
    let clock: serde_json::Value = serde_json::from_str(&ok(ssb(&node.data, &["clock"]))).unwrap();
    assert_eq!(
        (clock[&a.id].as_u64(), clock[&c.id].as_u64()),
        (Some(15), Some(7)),
        "{s}"
    );
    // The blank stick got both feeds written to it.
    let blank = root.join("BLANK/SSB-SNEAKERNET/bundles");
    assert!(fs::read_dir(&blank).unwrap().count() >= 1, "{s}");
    let text = ok(ssb(&node.data, &["status"]));
    assert!(text.contains("done"), "{text}");
}

/// Every file below `dir` with its bytes (to see that nothing changed).
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// A folder outside every stick holding files a visit must never touch,
/// among them one named like a temp file and one like a bundle.
fn precious(dir: &std::path::Path) -> std::path::PathBuf {
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("thesis.txt"), b"years of work").unwrap();
    fs::write(outside.join("123-0.part"), b"not a leftover").unwrap();
    fs::write(
        outside.join(format!("{}.ssb-bundle", "ab".repeat(32))),
        b"not a bundle",
    )
    .unwrap();
    outside
}

#[test]
fn a_stick_whose_folders_are_links_out_of_it_is_refused_and_nothing_outside_changes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 5);
    let outside = precious(dir.path());
    let before = snapshot(&outside);
    for entry in [
        "SSB-SNEAKERNET",
        "SSB-SNEAKERNET/tmp",
        "SSB-SNEAKERNET/bundles",
    ] {
        let stick = dir
            .path()
            .join(format!("stick-{}", entry.replace('/', "-")));
        fs::create_dir(&stick).unwrap();
        if entry != "SSB-SNEAKERNET" {
            fs::create_dir(stick.join("SSB-SNEAKERNET")).unwrap();
        }
        std::os::unix::fs::symlink(&outside, stick.join(entry)).unwrap();
        let e = fails(ssb(&a.data, &["stick", "sync", stick.to_str().unwrap()]));
        assert!(
            e.contains("refused") && e.contains(&format!("{entry} is a symbolic link")),
            "{entry}: {e}"
        );
        assert_eq!(snapshot(&outside), before, "{entry}: outside changed");
    }
    // The descriptor as a link to a (valid) descriptor elsewhere.
    let stick = dir.path().join("stick-descriptor");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    let real = stick.join("SSB-SNEAKERNET/stick.json");
    let elsewhere = dir.path().join("stick.json");
    fs::rename(&real, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &real).unwrap();
    let e = fails(ssb(&a.data, &["stick", "sync", stick.to_str().unwrap()]));
    assert!(e.contains("stick.json is a symbolic link"), "{e}");
    // Fifos and a device in tmp/ and bundles/ are never opened (a fifo
    // would block the visit for ever): the temp one is unlinked as a
    // leftover, the others are named in the report and left.
    let stick = dir.path().join("stick-odd");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    let folder = stick.join("SSB-SNEAKERNET");
    let fifo = |p: &std::path::Path| {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
    };
    fifo(&folder.join("tmp/99-0.part"));
    let named = |b: u8| {
        folder.join(format!(
            "bundles/{}.ssb-bundle",
            format!("{b:02x}").repeat(32)
        ))
    };
    fifo(&named(0x11));
    let dev = nix::sys::stat::mknod(
        &named(0x22),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
        nix::sys::stat::makedev(1, 5),
    )
    .is_ok();
    let b = Site::new(dir.path(), "b", 0);
    b.replicate(&[&a.id]);
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 5, "{r}");
    assert_eq!(
        r["unread"].as_array().unwrap().len(),
        1 + usize::from(dev),
        "{r}"
    );
    assert!(!folder.join("tmp/99-0.part").exists());
    assert!(fs::symlink_metadata(named(0x11))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(snapshot(&outside), before);
}

#[test]
fn a_stick_with_a_mount_inside_it_is_refused_and_nothing_outside_changes() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 5);
    let outside = precious(dir.path());
    let before = snapshot(&outside);
    for entry in [
        "SSB-SNEAKERNET",
        "SSB-SNEAKERNET/tmp",
        "SSB-SNEAKERNET/bundles",
    ] {
        let stick = dir
            .path()
            .join(format!("stick-{}", entry.replace('/', "-")));
        fs::create_dir(&stick).unwrap();
        a.stick_sync(&stick);
        // A bind mount of a folder of the same file system: the same
        // st_dev, another mount.
        let script = format!(
            "mount --bind {o} {s}/{entry}; set +e; {bin} --data {d} stick sync {s}; echo exit=$?",
            o = outside.display(),
            s = stick.display(),
            bin = support::ssb_node().display(),
            d = a.data.display()
        );
        let Some(out) = in_mount_namespace(&script) else {
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("exit=1"), "{entry}: {text}");
        assert!(
            text.contains(&format!("{entry} is on another file system or mount")),
            "{entry}: {text}"
        );
        assert_eq!(snapshot(&outside), before, "{entry}: outside changed");
    }
}

/// A bundle file holding only `manifest` (as its first entry, with the
/// canonical header) and then nothing: what a manifest-only forgery is.
/// Its file name: the manifest's sha256.
fn manifest_only(manifest: &serde_json::Value, declared: Option<u64>) -> (String, Vec<u8>) {
    use sha2::Digest as _;
    let json = serde_json::to_vec(manifest).unwrap();
    let mtime = manifest["created"].as_u64().unwrap_or(0) / 1000;
    let size = declared.unwrap_or(json.len() as u64);
    let mut tar = bundle_format::header::canonical("manifest.json", size, mtime).to_vec();
    tar.extend_from_slice(&json);
    tar.resize(tar.len().next_multiple_of(512), 0);
    let name = sha2::Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    (
        format!("{name}.ssb-bundle"),
        zstd::encode_all(&tar[..], 3).unwrap(),
    )
}

/// A manifest (version 1, valid in form) claiming messages `1..=last` of
/// `feed`, made at `created`, by some author.
fn claim(feed: &str, last: u32, created: u64) -> serde_json::Value {
    serde_json::json!({
        "format": "ssb-sneakernet-bundle",
        "version": 1,
        "author": feed,
        "created": created,
        "feeds": [{
            "feed": feed,
            "first": 1,
            "last": last,
            "bytes": u64::from(last) * 600,
            "sha256": "0".repeat(64),
        }],
        "blobs": [],
    })
}

/// Puts a bundle file on the stick; its path.
fn put(stick: &std::path::Path, (name, bytes): (String, Vec<u8>)) -> std::path::PathBuf {
    let path = stick.join("SSB-SNEAKERNET/bundles").join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn bundles_and_sticks_of_a_newer_version_are_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 6);
    let b = Site::new(dir.path(), "b", 0);
    b.replicate(&[&a.id]);
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    // Version 2, with a field version 1 does not know; and one over this
    // node's manifest limit (its header says 17 MiB).
    let mut newer = claim(&a.id, 6, now_ms());
    newer["version"] = 2.into();
    newer["compression"] = "something newer".into();
    let newer = put(&stick, manifest_only(&newer, None));
    let big = put(
        &stick,
        manifest_only(&claim(&b.id, 1, now_ms()), Some(17 << 20)),
    );
    let kept = [fs::read(&newer).unwrap(), fs::read(&big).unwrap()];
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 6, "{r}");
    assert!(r["rejected"].as_array().unwrap().is_empty(), "{r}");
    let unread = r["unread"].as_array().unwrap();
    assert_eq!(unread.len(), 2, "{r}");
    assert!(
        unread.iter().any(|u| u["reason"]
            .as_str()
            .unwrap()
            .contains("unsupported bundle format \"ssb-sneakernet-bundle\" version 2")),
        "{r}"
    );
    assert!(unread.iter().all(|u| u["removed"] == false), "{r}");
    assert_eq!([fs::read(&newer).unwrap(), fs::read(&big).unwrap()], kept);
    // Again, from the writer's side: still there.
    a.publish(1, "more");
    let r = a.stick_sync(&stick);
    assert_eq!(r["exported_messages"], 1, "{r}");
    assert_eq!([fs::read(&newer).unwrap(), fs::read(&big).unwrap()], kept);

    // A stick set up by a newer node: refused, and not changed at all.
    let newer_stick = dir.path().join("newer-stick");
    fs::create_dir_all(newer_stick.join("SSB-SNEAKERNET")).unwrap();
    let text = r#"{"format":"ssb-sneakernet-stick","version":2,"id":"0123456789abcdef0123456789abcdef","parts":["bundles2"]}"#;
    fs::write(newer_stick.join("SSB-SNEAKERNET/stick.json"), text).unwrap();
    let before = snapshot(&newer_stick);
    let e = fails(ssb(
        &a.data,
        &["stick", "sync", newer_stick.to_str().unwrap()],
    ));
    assert!(
        e.contains("stick layout version 2 is newer than this node's (1)"),
        "{e}"
    );
    assert_eq!(snapshot(&newer_stick), before);
    assert_eq!(
        fs::read_dir(newer_stick.join("SSB-SNEAKERNET"))
            .unwrap()
            .count(),
        1,
        "no folder made"
    );
}

#[test]
fn a_manifest_only_claim_is_checked_before_it_stops_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a", 20);
    let c = Site::new(dir.path(), "c", 0);
    c.replicate(&[&a.id]);
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    Site::new(dir.path(), "blank", 0).stick_sync(&stick);
    // A 300-byte forgery claiming all of A's feed, and one claiming a feed
    // nobody here follows.
    let forged = put(&stick, manifest_only(&claim(&a.id, 20, now_ms()), None));
    assert!(fs::metadata(&forged).unwrap().len() < 400);
    let stranger = Site::new(dir.path(), "stranger", 0);
    let other = put(
        &stick,
        manifest_only(&claim(&stranger.id, 9, now_ms()), None),
    );
    let r = a.stick_sync(&stick);
    assert_eq!(r["exported_messages"], 20, "{r}");
    assert_eq!(r["rejected"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["rejected"][0]["removed"], true, "{r}");
    assert!(!forged.exists(), "damaged for everyone: removed");
    // The claim about a feed no one here needs is carried, never believed.
    assert!(other.exists());
    assert_eq!(r["unverified_bundles"], 1, "{r}");
    let r = c.stick_sync(&stick);
    assert_eq!(r["imported_messages"], 20, "{r}");
    assert_eq!(c.seq(&a.id), 20);
    // A visit with nothing new checks nothing again: the bundle A wrote is
    // remembered as verified, the stranger's claim concerns nothing A has.
    let r = a.stick_sync(&stick);
    assert_eq!(
        (
            r["verified_bundles"].as_u64(),
            r["exported_bundles"].as_u64()
        ),
        (Some(0), Some(0)),
        "{r}"
    );
    assert!(other.exists());
}

#[test]
fn on_a_full_stick_an_unverified_claim_never_pushes_out_a_real_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    let a = Site::new(dir.path(), "a", 0);
    let c = Site::new(dir.path(), "c", 0);
    c.replicate(&[&a.id]);
    // ~240 KB of incompressible posts now, three times as much later; a
    // 1.5 MiB stick (less the 1 MiB margin) holds the first but not all.
    ok(support::ssb_stdin(
        &a.data,
        &["publish", "--stdin"],
        &support::incompressible_posts(100, 3000),
    ));
    let later = dir.path().join("later.txt");
    fs::write(&later, support::incompressible_posts(300, 3000)).unwrap();
    // A forgery claiming A's first 100 messages, newer than the real bundle.
    let forged = dir.path().join("forged");
    let (name, bytes) = manifest_only(&claim(&a.id, 100, now_ms() + 3_600_000), None);
    fs::write(&forged, bytes).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1536k tmpfs {s}; set +e; \
         {bin} --data {a} stick sync {s} --json > {d}/r1.json; \
         cp {forged} {s}/SSB-SNEAKERNET/bundles/{name}; \
         {bin} --data {a} publish --stdin < {later} > /dev/null; \
         {bin} --data {a} stick sync {s} --json > {d}/r2.json; \
         {bin} --data {c} stick sync {s} --json > {d}/r3.json; echo done",
        s = stick.display(),
        bin = support::ssb_node().display(),
        a = a.data.display(),
        c = c.data.display(),
        d = dir.path().display(),
        forged = forged.display(),
        later = later.display(),
    );
    let Some(out) = in_mount_namespace(&script) else {
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("done"), "{text}");
    let report = |n: u8| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(dir.path().join(format!("r{n}.json"))).unwrap())
            .unwrap_or_else(|e| panic!("r{n}: {e}\n{text}"))
    };
    let r1 = report(1);
    assert_eq!(r1["exported_messages"], 100, "{r1}");
    let r2 = report(2);
    assert_eq!(
        r2["removed_bundles"], 0,
        "the real bundle stays: {r2}\n{r1}"
    );
    assert!(
        r2["problem"]
            .as_str()
            .is_some_and(|p| p.contains("stick is full")),
        "{r2}"
    );
    // The next site gets the real first 100 messages (and what of the
    // rest fitted after them).
    let r3 = report(3);
    assert!(r3["imported_messages"].as_u64() >= Some(100), "{r3}\n{r2}");
    assert!(c.seq(&a.id) >= 100);
    c.check();
}
