//! Yanks: a stick pulled, or the process killed, at random points of an
//! export and of an import, and at each named step of an import (117 in
//! all). After each: the store passes
//! `ssb-node check` (0 corrupt), nothing held before is lost, the stick holds
//! only whole bundles (and perhaps a temp file), and the next visit converges.
//!
//! Random points come from a seed printed at the start (set
//! `SNEAKERNET_SEED` to replay one). One import is also killed at each of its
//! named steps in turn (`SSB_NODE_FAULT_STOP_AT`, see
//! `ssb_node::replica::stop_at`).

#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use site::{fails, ok, Site};
use support::ssb_at as ssb;

/// xorshift64*, seeded from `SNEAKERNET_SEED` or the clock (printed).
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("SNEAKERNET_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{test}: SNEAKERNET_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D) % n.max(1)
    }
}

/// Runs `ssb-node --data DATA ARGS…` and kills it (SIGKILL) after `after`,
/// unless it finished first. Returns whether it was killed.
fn run_and_kill(data: &Path, args: &[&str], after: Duration) -> bool {
    let mut child = Command::new(support::ssb_node())
        .arg("--data")
        .arg(data)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// How long a command takes when left alone.
fn time(data: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    ok(ssb(data, args));
    t.elapsed()
}

/// A source site with `n` posts and a blob, and the bundle of it all.
fn source(root: &Path, n: usize) -> (Site, std::path::PathBuf) {
    let a = Site::new(root, "a", n);
    let blob_file = root.join("blob.bin");
    fs::write(&blob_file, vec![5u8; 200_000]).unwrap();
    let blob = ok(ssb(&a.data, &["blobs", "add", blob_file.to_str().unwrap()]));
    let content = format!(
        r#"{{"type":"post","text":"see","mentions":["{}"]}}"#,
        blob.trim()
    );
    ok(ssb(&a.data, &["publish", "--content", &content]));
    let file = root.join("a.bundle");
    ok(ssb(
        &a.data,
        &["bundle", "export", "--out", file.to_str().unwrap()],
    ));
    (a, file)
}

#[test]
fn imports_of_a_stick_pulled_at_40_random_points_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("truncated imports");
    let (a, file) = source(dir.path(), 2000);
    let b = Site::new(dir.path(), "b", 10);
    b.replicate(&[&a.id]);
    let bytes = fs::read(&file).unwrap();
    let cut = dir.path().join("cut.bundle");
    for i in 0..40 {
        let at = rng.below(bytes.len() as u64) as usize;
        fs::write(&cut, &bytes[..at]).unwrap();
        let e = fails(ssb(&b.data, &["bundle", "import", cut.to_str().unwrap()]));
        assert!(e.contains("bundle rejected"), "cut at {at}: {e}");
        assert_eq!(
            b.seq(&a.id),
            0,
            "cut at {at}: nothing of a rejected bundle is visible"
        );
        if i % 10 == 9 {
            b.check();
        }
    }
    assert_eq!(b.seq(&b.id), 10);
    let r = ok(ssb(&b.data, &["bundle", "import", file.to_str().unwrap()]));
    assert!(
        r.contains("2001 added") && r.contains("1 blobs added"),
        "{r}"
    );
    b.check();
}

#[test]
fn imports_killed_at_30_random_points_leave_valid_prefixes_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("killed imports");
    let (a, file) = source(dir.path(), 6000);
    let args = ["bundle", "import", file.to_str().unwrap()];
    // How long a whole import takes here, on a scratch site.
    let scratch = Site::new(dir.path(), "scratch", 0);
    scratch.replicate(&[&a.id]);
    let whole = time(&scratch.data, &args);
    let b = Site::new(dir.path(), "b", 10);
    b.replicate(&[&a.id]);
    let mut killed = 0;
    let mut last = 0;
    for _ in 0..30 {
        let after = Duration::from_micros(rng.below(whole.as_micros() as u64 * 6 / 5));
        killed += u32::from(run_and_kill(&b.data, &args, after));
        b.check();
        assert_eq!(b.seq(&b.id), 10, "own feed intact");
        let now = b.seq(&a.id);
        assert!(now >= last, "never loses what it had: {now} < {last}");
        last = now;
    }
    eprintln!(
        "{killed} of 30 imports killed mid-way (whole import: {whole:?}); A's feed at {last}"
    );
    assert!(
        killed >= 10,
        "the kill points must mostly land inside the import"
    );
    ok(ssb(&b.data, &args));
    assert_eq!(b.seq(&a.id), 6001);
    let has = ok(ssb(&b.data, &["blobs", "has", &blob_of(&a)]));
    assert_eq!(has.trim(), "true");
    b.check();
}

/// Adds a blob of `n` bytes of `fill` to `site` and publishes a message
/// mentioning it; returns the blob id.
fn mention_new_blob(site: &Site, root: &Path, fill: u8, n: usize) -> String {
    let file = root.join(format!("blob-{fill}.bin"));
    fs::write(&file, vec![fill; n]).unwrap();
    let blob = ok(ssb(&site.data, &["blobs", "add", file.to_str().unwrap()]));
    let content = format!(
        r#"{{"type":"post","text":"see","mentions":["{}"]}}"#,
        blob.trim()
    );
    ok(ssb(&site.data, &["publish", "--content", &content]));
    blob.trim().to_owned()
}

#[test]
fn imports_killed_at_every_step_leave_valid_prefixes_and_converge() {
    use ssb_node::replica::stop_at::{Point, VAR};
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Two feeds (two promotion runs), each with a blob mentioned by its
    // first message and one by its last: C's reaches A by a bundle.
    let c = Site::new(root, "c", 0);
    let mut blobs = vec![mention_new_blob(&c, root, 1, 70_000)];
    c.publish(500, "c");
    blobs.push(mention_new_blob(&c, root, 2, 1_000));
    let c_bundle = root.join("c.bundle");
    ok(ssb(
        &c.data,
        &["bundle", "export", "--out", c_bundle.to_str().unwrap()],
    ));
    let a = Site::new(root, "a", 0);
    a.replicate(&[&c.id]);
    ok(ssb(
        &a.data,
        &["bundle", "import", c_bundle.to_str().unwrap()],
    ));
    blobs.push(mention_new_blob(&a, root, 3, 200_000));
    a.publish(2500, "a");
    blobs.push(mention_new_blob(&a, root, 4, 50_000));
    let feeds = [(&a.id, 2502), (&c.id, 502)];
    let file = root.join("a.bundle");
    ok(ssb(
        &a.data,
        &["bundle", "export", "--out", file.to_str().unwrap()],
    ));
    let args = ["bundle", "import", file.to_str().unwrap()];
    let started = Instant::now();
    for point in Point::ALL {
        let name = point.name();
        let b = Site::new(root, &format!("b-{name}"), 10);
        b.replicate(&[&a.id, &c.id]);
        let status = Command::new(support::ssb_node())
            .arg("--data")
            .arg(&b.data)
            .args(args)
            .env(VAR, name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(9), "{name}: killed there ({status})");
        b.check();
        assert_eq!(b.seq(&b.id), 10, "{name}: own feed intact");
        for (feed, n) in feeds {
            assert!(b.seq(feed) <= n, "{name}: {feed} a prefix");
        }
        // Nothing visible mentions a blob the bundle carried but the store
        // lacks: every held blob-mentioning message has its blob.
        let r = ok(ssb(&b.data, &args));
        for (feed, n) in feeds {
            assert_eq!(b.seq(feed), n, "{name}: {feed} complete after {r}");
        }
        for blob in &blobs {
            let has = ok(ssb(&b.data, &["blobs", "has", blob]));
            assert_eq!(has.trim(), "true", "{name}: blob {blob} after {r}");
        }
        b.check();
    }
    eprintln!(
        "{} kill points, each followed by a whole import: {:?}",
        Point::ALL.len(),
        started.elapsed()
    );
}

#[test]
fn a_held_message_whose_blob_was_lost_gets_it_from_the_next_stick() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = source(dir.path(), 50);
    let blob = blob_of(&a);
    let stick = dir.path().join("stick");
    fs::create_dir(&stick).unwrap();
    a.stick_sync(&stick);
    let b = Site::new(dir.path(), "b", 3);
    b.replicate(&[&a.id]);
    let r = b.stick_sync(&stick);
    assert_eq!(
        (&r["imported_messages"], &r["imported_blobs"]),
        (&51.into(), &1.into()),
        "{r}"
    );
    // What a kill between "message visible" and "blob in place" left behind:
    // the message held, its blob missing, and no want of it.
    let id: ssb_node::feed::BlobId = blob.parse().unwrap();
    let path = ssb_node::blob_store::BlobStore::open(&b.data.join("blobs"))
        .unwrap()
        .path(&id);
    fs::remove_file(&path).unwrap();
    assert_eq!(ok(ssb(&b.data, &["blobs", "has", &blob])).trim(), "false");
    // The stick's bundle extends no feed, but carries the blob.
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_bundles"], 1, "{r}");
    assert_eq!(
        (&r["imported_messages"], &r["imported_blobs"]),
        (&0.into(), &1.into()),
        "{r}"
    );
    assert_eq!(ok(ssb(&b.data, &["blobs", "has", &blob])).trim(), "true");
    b.check();
    // Once it is held, the bundle offers nothing.
    let r = b.stick_sync(&stick);
    assert_eq!(r["imported_bundles"], 0, "{r}");
}

/// The blob A's last message mentions.
fn blob_of(a: &Site) -> String {
    let last = ok(ssb(&a.data, &["feed", "--from", &a.seq(&a.id).to_string()]));
    let v: serde_json::Value = serde_json::from_str(last.trim()).unwrap();
    v["value"]["content"]["mentions"][0]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every bundle on the stick verifies.
fn assert_whole_bundles(site: &Site, stick: &Path) -> usize {
    let dir = stick.join("SSB-SNEAKERNET/bundles");
    let mut n = 0;
    for e in fs::read_dir(&dir).into_iter().flatten() {
        let p = e.unwrap().path();
        ok(ssb(&site.data, &["bundle", "verify", p.to_str().unwrap()]));
        n += 1;
    }
    n
}

#[test]
fn exports_killed_at_30_random_points_leave_whole_bundles_and_converge() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("killed exports");
    let (a, _) = source(dir.path(), 4000);
    let probe = dir.path().join("probe");
    fs::create_dir(&probe).unwrap();
    let whole = time(&a.data, &["stick", "sync", probe.to_str().unwrap()]);
    let mut killed = 0;
    for i in 0..30 {
        let stick = dir.path().join(format!("stick{i}"));
        fs::create_dir(&stick).unwrap();
        let s = stick.to_str().unwrap();
        let after = Duration::from_micros(rng.below(whole.as_micros() as u64 * 6 / 5));
        killed += u32::from(run_and_kill(&a.data, &["stick", "sync", s], after));
        a.check();
        assert_whole_bundles(&a, &stick);
        // The next visit removes leftovers and writes what is missing.
        let r = a.stick_sync(&stick);
        assert!(r["problem"].is_null(), "{r}");
        let tmp = stick.join("SSB-SNEAKERNET/tmp");
        assert_eq!(
            fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
            0,
            "leftovers removed"
        );
        let sticks = ok(ssb(&a.data, &["sticks", "--json"]));
        let row = sticks
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|row| row["mount"] == s)
            .expect("stick recorded");
        assert_eq!(row["messages"], 4001, "the stick holds all of A: {row}");
        if i % 10 == 0 {
            assert!(assert_whole_bundles(&a, &stick) >= 1);
        }
        fs::remove_dir_all(&stick).unwrap();
    }
    eprintln!("{killed} of 30 exports killed mid-way (whole visit: {whole:?})");
    assert!(
        killed >= 10,
        "the kill points must mostly land inside the export"
    );
}

#[test]
fn bundles_cut_short_on_the_stick_are_refused_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new("cut bundles on a stick");
    let (a, _) = source(dir.path(), 500);
    for i in 0..10 {
        let b = Site::new(dir.path(), &format!("b{i}"), 3);
        b.replicate(&[&a.id]);
        // A stick whose file system lost the end of a renamed bundle. B needs
        // it, so B reads it whole, refuses it and removes it.
        let stick = dir.path().join(format!("stick{i}"));
        fs::create_dir(&stick).unwrap();
        a.stick_sync(&stick);
        let bundles = stick.join("SSB-SNEAKERNET/bundles");
        let path = fs::read_dir(&bundles)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = fs::metadata(&path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(rng.below(len)).unwrap();
        drop(f);
        let r = b.stick_sync(&stick);
        assert_eq!(r["rejected"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(
            r["rejected"][0]["removed"], true,
            "damaged for everyone: removed {r}"
        );
        assert_eq!(r["imported_messages"], 0, "{r}");
        b.check();
        // A's next visit sees the stick lacks A's feed and writes it again.
        let r = a.stick_sync(&stick);
        assert_eq!(r["exported_messages"], 501, "{r}");
        let r = b.stick_sync(&stick);
        assert_eq!(r["imported_messages"], 501, "{r}");
        b.check();
        fs::remove_dir_all(&stick).unwrap();
    }
}
