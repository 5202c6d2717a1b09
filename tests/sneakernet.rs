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
//!   mount namespace; skipped with a printed reason where not permitted).

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
mod support;

use std::fs;
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
