//! Sneakernet benchmark: `cargo bench -p ssb-node --bench bundle`.
//!
//! A real signed dataset: 100,000 messages over 5 feeds (posts whose content
//! is 300–600 bytes of word-like text, some mentioning a blob) and 50 MiB of
//! blobs from 64 KiB to 5 MiB, half random (incompressible) and half text.
//! Every blob is mentioned within the first 10,000 messages, so the smaller
//! runs carry the same blobs and differ only in their message count.
//!
//! For 10 %, 50 % and 100 % of the messages, each a source data dir (`ingest`
//! and `blobs add`), measured `SSB_BENCH_RUNS` times (default 3), real
//! processes of the release binary, wall time, CPU time and peak RSS (`wait4`):
//! - `ssb-node bundle export --out DIR` (its bundle is fsynced);
//! - `ssb-node bundle verify` of that bundle (no store: decompress, digests,
//!   every message's signature and chain);
//! - `ssb-node bundle import` into a fresh data dir that replicates the feeds
//!   (its debug log splits it: lines, blobs and trailer, promotion), and the
//!   same import into a data dir on tmpfs (`/dev/shm`, if there is one): the
//!   difference is what the disk costs;
//! - beside them, `tar -I 'zstd -3 -T1' -cf` (the same zstd level, one thread,
//!   then an fsync of the archive) of exactly the files the bundle holds
//!   (extracted from it: the message lines and the blobs), and
//!   `tar -I 'zstd -d' -xf` of that archive;
//! - and, in a child process, raw ed25519-dalek `verify_batch` over the same
//!   messages, and this crate's own `BatchVerifier` (faster: one term per
//!   author), on one and two threads: the signature floor of any verified
//!   import.
//!
//! Env: `SSB_BENCH_MESSAGES` (100000), `SSB_BENCH_FEEDS` (5),
//! `SSB_BENCH_BLOB_MIB` (50), `SSB_BENCH_RUNS` (3).
#![allow(missing_docs)]

mod measure;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use measure::{env_or, mib, signed, Measured};
use ssb_node::feed::BlobId;

/// Smallest and largest blob.
const BLOB_MIN: u64 = 64 * 1024;
const BLOB_MAX: u64 = 5 * 1024 * 1024;

/// A small deterministic generator (splitmix64): the same dataset every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

const WORDS: &[&str] = &[
    "the", "well", "is", "fixed", "market", "on", "thursday", "bring", "seeds", "for", "swap",
    "village", "school", "roof", "needs", "tin", "sheets", "solar", "panel", "battery", "clinic",
    "opens", "at", "nine", "water", "pump", "broke", "again", "maize", "harvest", "good", "rain",
    "came", "late", "this", "year", "goats", "sold", "we", "meet", "after", "church", "photos",
    "of", "new", "bridge", "attached", "teacher", "arrives", "monday", "bus", "road", "flooded",
];

/// About `len` bytes of word-like text.
fn text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
    }
    s
}

/// A blob the dataset mentions.
struct Blob {
    id: String,
    size: u64,
}

/// Writes blobs of 64 KiB to 5 MiB (sizes log-uniform), alternately random
/// and text, into `dir` until they add up to `total` bytes.
fn make_blobs(dir: &Path, total: u64, rng: &mut Rng) -> Vec<Blob> {
    fs::create_dir_all(dir).expect("blob dir");
    let (lo, hi) = ((BLOB_MIN as f64).ln(), (BLOB_MAX as f64).ln());
    let mut blobs = Vec::new();
    let mut sum = 0;
    while sum < total {
        let f = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let size = ((lo + f * (hi - lo)).exp() as u64)
            .min(total - sum)
            .max(BLOB_MIN);
        let bytes: Vec<u8> = if blobs.len().is_multiple_of(2) {
            let mut b = Vec::with_capacity(size as usize + 8);
            while (b.len() as u64) < size {
                b.extend_from_slice(&rng.next().to_le_bytes());
            }
            b.truncate(size as usize);
            b
        } else {
            let mut t = text(rng, size as usize).into_bytes();
            t.truncate(size as usize);
            t
        };
        fs::write(dir.join(blobs.len().to_string()), &bytes).expect("write blob");
        blobs.push(Blob {
            id: BlobId::of(&bytes).to_string(),
            size,
        });
        sum += size;
    }
    blobs
}

/// The content of a post: 300–600 bytes of JSON, with a mention of `blob`.
fn post(rng: &mut Rng, blob: Option<(usize, &Blob)>) -> String {
    let mentions = blob.map_or(String::new(), |(i, b)| {
        format!(
            r#","mentions":[{{"link":"{}","name":"file-{i}","size":{},"type":"application/octet-stream"}}]"#,
            b.id, b.size
        )
    });
    let target = rng.between(300, 600) as usize;
    let fixed = r#"{"type":"post","text":"","channel":"village"}"#.len() + mentions.len();
    let t = text(rng, target.saturating_sub(fixed).max(20));
    format!(r#"{{"type":"post","text":"{t}","channel":"village"{mentions}}}"#)
}

/// The input file holding the first `n` messages.
fn messages_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("messages.{n}.jsonl"))
}

/// The child role (`SSB_BENCH_PREPARE=DIR`): writes the blobs to `DIR/blobs/`
/// and the first `n` messages for each size in `sizes` to their input files,
/// measures raw `verify_batch` on all messages (best of three), and prints
/// `feed ID` lines and `rates ONE_THREAD TWO_THREADS`. The parent stays small this way: a
/// spawned process's peak RSS starts from its parent's.
fn prepare(dir: &Path, feeds: usize, total: usize, sizes: &[usize], blob_bytes: u64) {
    let mut rng = Rng(0x5eed);
    let blobs = make_blobs(&dir.join("blobs"), blob_bytes, &mut rng);
    // Mentions spread over the first 10,000 messages (or all, if fewer).
    let stride = (total.min(10_000) / blobs.len().max(1)).max(1);
    let keys = signed::keys(feeds);
    let msgs = signed::interleaved(&keys, total / feeds, |feed, seq| {
        let i = (seq - 1) * feeds + feed;
        let blob = i
            .is_multiple_of(stride)
            .then_some(i / stride)
            .and_then(|k| blobs.get(k).map(|b| (k, b)));
        post(&mut rng, blob)
    });
    let mut lines = String::with_capacity(msgs.len() * 900);
    let mut ends = Vec::with_capacity(msgs.len());
    for m in &msgs {
        lines.push_str(&m.value().to_compact());
        lines.push('\n');
        ends.push(lines.len());
    }
    for &n in sizes {
        fs::write(messages_path(dir, n), &lines[..ends[n - 1]]).expect("write messages");
    }
    for k in &keys {
        println!("feed {}", k.id());
    }
    // The best of three: the limit the machine allows when least disturbed.
    let best = |threads| {
        (0..3)
            .map(|_| signed::rate(&msgs, threads, true))
            .fold(0.0, f64::max)
    };
    println!("rates {} {}", best(1), best(2));
    let ours = |threads| {
        (0..3)
            .map(|_| signed::our_rate(&msgs, threads))
            .fold(0.0, f64::max)
    };
    println!("ours {} {}", ours(1), ours(2));
}

/// Median, smallest and largest of some runs.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// `median (min–max)` with `prec` decimals.
    fn show(&self, prec: usize) -> String {
        format!(
            "{:.prec$} ({:.prec$}–{:.prec$})",
            self.median, self.min, self.max
        )
    }
}

/// One measured step of one run: wall and CPU seconds, peak RSS bytes.
#[derive(Clone, Copy, Default)]
struct Step {
    secs: f64,
    cpu: f64,
    rss: u64,
}

impl Step {
    /// Adds a process that ran after the others of this step.
    fn then(self, m: &Measured) -> Step {
        Step {
            secs: self.secs + m.secs,
            cpu: self.cpu + m.cpu_secs,
            rss: self.rss.max(m.peak_rss),
        }
    }
}

impl From<&Measured> for Step {
    fn from(m: &Measured) -> Step {
        Step {
            secs: m.secs,
            cpu: m.cpu_secs,
            rss: m.peak_rss,
        }
    }
}

/// All runs of one size.
#[derive(Default)]
struct Runs {
    tar_c: Vec<Step>,
    export: Vec<Step>,
    verify: Vec<Step>,
    import: Vec<Step>,
    tar_x: Vec<Step>,
    /// Seconds into each import when the bundle was checked and staged,
    /// and when its messages were promoted (from its debug log).
    import_checked: Vec<f64>,
    import_promoted: Vec<f64>,
    /// Seconds into each import when the last line was checked.
    import_lines: Vec<f64>,
    /// Per import, signature batches the reading thread checked itself
    /// because the checking thread was busy, and batches in all.
    import_by_reader: Vec<(u64, u64)>,
    /// The same import into a data dir on tmpfs (no disk), if there is one.
    import_tmpfs: Vec<Step>,
    /// Size of the bundle files (of the last run).
    bundle_bytes: u64,
    /// Size of the tar archive (of the last run).
    archive_bytes: u64,
}

/// `ssb-node --data DATA ARGS…`, measured; it must succeed.
fn ssb(data: &Path, args: &[&str]) -> Measured {
    ssb_logged(data, args, "warn")
}

/// [`ssb`] with the log filter `log` (`SSB_NODE_LOG`).
fn ssb_logged(data: &Path, args: &[&str], log: &str) -> Measured {
    measure::run(
        Command::new(env!("CARGO_BIN_EXE_ssb-node"))
            .env("SSB_NODE_LOG", log)
            .arg("--data")
            .arg(data)
            .args(args),
    )
    .expect_success(&format!("ssb-node {args:?}"))
}

/// The `secs=` field of the log line saying `what`.
fn logged_secs(log: &str, what: &str) -> Option<f64> {
    logged_field(log, what, "secs=")
}

/// The number after `field` (`name=`) on the first log line containing `what`.
fn logged_field(log: &str, what: &str, field: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(what))?;
    let rest = &line[line.find(field)? + field.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A fresh directory on tmpfs (`/dev/shm`), if the machine has one.
fn tmpfs_dir() -> Option<PathBuf> {
    let dir = Path::new("/dev/shm").join(format!("bundle-bench-{}", std::process::id()));
    fs::create_dir_all(&dir).ok().map(|()| dir)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Total size of the files under `dir`, and how many there are.
fn tree_bytes(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    for e in fs::read_dir(dir).expect("read dir") {
        let e = e.expect("dir entry");
        let t = e.file_type().expect("file type");
        if t.is_dir() {
            let (b, f) = tree_bytes(&e.path());
            bytes += b;
            files += f;
        } else {
            bytes += e.metadata().expect("metadata").len();
            files += 1;
        }
    }
    (bytes, files)
}

/// A source data dir holding the first `n` messages and every blob.
fn source(dir: &Path, n: usize, blobs: &[PathBuf]) -> PathBuf {
    let src = dir.join(format!("src-{n}"));
    ssb(&src, &["init"]);
    let input = messages_path(dir, n);
    let r = ssb(&src, &["ingest", path_str(&input)]);
    println!("  source {n}: ingest {:.2} s: {}", r.secs, r.stdout.trim());
    for b in blobs {
        ssb(&src, &["blobs", "add", path_str(b)]);
    }
    src
}

/// Runs one export, verify, import and the two tar commands of size `n`
/// (run `r`), checking what each did; `plain` is made from the first
/// bundle on the first run.
fn run_once(dir: &Path, src: &Path, n: usize, r: usize, feeds: &[String], runs: &mut Runs) {
    let tag = format!("{n}-{r}");
    // Export.
    let out = dir.join(format!("export-{tag}"));
    fs::create_dir(&out).expect("export dir");
    let e = ssb(src, &["bundle", "export", "--out", path_str(&out)]);
    let files: Vec<PathBuf> = e.stdout.lines().map(PathBuf::from).collect();
    assert!(!files.is_empty(), "export wrote no bundle: {}", e.stderr);
    runs.export.push((&e).into());
    runs.bundle_bytes = files
        .iter()
        .map(|f| fs::metadata(f).expect("bundle").len())
        .sum();

    // The same bytes as plain files, once per size: the bundle's own entries.
    let plain = dir.join(format!("plain-{n}"));
    if !plain.exists() {
        fs::create_dir(&plain).expect("plain dir");
        for f in &files {
            let x = measure::run(
                Command::new("tar")
                    .args(["-I", "zstd -d", "-xf"])
                    .arg(f)
                    .arg("-C")
                    .arg(&plain),
            );
            x.expect_success("tar -x of a bundle (GNU tar and zstd needed)");
        }
    }

    // tar + zstd of the same files, fsynced like the export's bundle.
    let archive = dir.join(format!("plain-{tag}.tar.zst"));
    let start = Instant::now();
    let t = measure::run(
        Command::new("tar")
            .args(["-I", "zstd -3 -T1", "-cf"])
            .arg(&archive)
            .arg("-C")
            .arg(&plain)
            .arg("."),
    )
    .expect_success("tar -c");
    fs::File::open(&archive)
        .and_then(|f| f.sync_all())
        .expect("fsync archive");
    runs.tar_c.push(Step {
        secs: start.elapsed().as_secs_f64(),
        ..(&t).into()
    });
    runs.archive_bytes = fs::metadata(&archive).expect("archive").len();

    // Verify, on its own.
    let mut v = Step::default();
    for f in &files {
        let m = ssb(src, &["bundle", "verify", path_str(f)]);
        assert!(m.stdout.starts_with("ok: "), "verify: {}", m.stdout);
        v = v.then(&m);
    }
    runs.verify.push(v);

    // Import into a fresh node that replicates the feeds.
    let fresh = dir.join(format!("import-{tag}"));
    ssb(&fresh, &["init"]);
    let list: Vec<String> = feeds.iter().map(|f| format!("{f:?}")).collect();
    fs::write(
        fresh.join("ssb-node.toml"),
        format!("replicate = [{}]\n", list.join(", ")),
    )
    .expect("write config");
    let mut imp = Step::default();
    let mut added = 0;
    for f in &files {
        let m = ssb_logged(
            &fresh,
            &["bundle", "import", path_str(f), "--json"],
            "ssb_node::sneakernet::import=debug",
        );
        if let (Some(l), Some(c), Some(p)) = (
            logged_secs(&m.stderr, "lines checked"),
            logged_secs(&m.stderr, "bundle checked"),
            logged_secs(&m.stderr, "staged messages promoted"),
        ) {
            runs.import_lines.push(l);
            if let (Some(r), Some(b)) = (
                logged_field(&m.stderr, "signatures checked", "by_reader="),
                logged_field(&m.stderr, "signatures checked", "batches="),
            ) {
                runs.import_by_reader.push((r as u64, b as u64));
            }
            runs.import_checked.push(c);
            runs.import_promoted.push(p - c);
        }
        let report: serde_json::Value = serde_json::from_str(&m.stdout).expect("import report");
        added += report["messages"].as_u64().expect("messages added");
        imp = imp.then(&m);
    }
    assert_eq!(added, n as u64, "messages imported");
    let (blob_bytes, _) = tree_bytes(&fresh.join("blobs/sha256"));
    let (plain_blobs, _) = tree_bytes(&plain.join("blobs"));
    assert_eq!(blob_bytes, plain_blobs, "blob bytes imported");
    runs.import.push(imp);

    // The same import with the data dir in memory: what the disk costs.
    if let Some(shm) = tmpfs_dir() {
        let mem = shm.join(format!("import-{tag}"));
        ssb(&mem, &["init"]);
        fs::copy(fresh.join("ssb-node.toml"), mem.join("ssb-node.toml")).expect("config");
        let mut imp = Step::default();
        for f in &files {
            imp = imp.then(&ssb(&mem, &["bundle", "import", path_str(f)]));
        }
        runs.import_tmpfs.push(imp);
        let _ = fs::remove_dir_all(&shm);
    }

    // tar -x of the archive: the I/O of putting the same bytes into files.
    let untar = dir.join(format!("untar-{tag}"));
    fs::create_dir(&untar).expect("untar dir");
    let x = measure::run(
        Command::new("tar")
            .args(["-I", "zstd -d -T1", "-xf"])
            .arg(&archive)
            .arg("-C")
            .arg(&untar),
    )
    .expect_success("tar -x");
    runs.tar_x.push((&x).into());

    // Keep the disk use to one run's worth.
    for d in [&out, &fresh, &untar] {
        let _ = fs::remove_dir_all(d);
    }
    let _ = fs::remove_file(&archive);
}

fn secs(steps: &[Step]) -> Spread {
    Spread::of(steps.iter().map(|s| s.secs))
}

fn rss(steps: &[Step]) -> Spread {
    Spread::of(steps.iter().map(|s| mib(s.rss)))
}

/// One table row: wall time, msg/s, input MB/s, file MB/s, CPU, peak RSS.
fn row(name: &str, steps: &[Step], n: usize, input_mb: f64, file_mb: f64) {
    let s = secs(steps);
    let cpu = Spread::of(steps.iter().map(|s| s.cpu));
    println!(
        "  {name:<32} {:>22} s {:>9.0} {:>8.1} {:>8.1} {:>7.2} {:>22}",
        s.show(3),
        n as f64 / s.median,
        input_mb / s.median,
        file_mb / s.median,
        cpu.median,
        rss(steps).show(1),
    );
}

fn main() {
    let feeds: usize = env_or("SSB_BENCH_FEEDS", 5);
    let total: usize = env_or::<usize>("SSB_BENCH_MESSAGES", 100_000) / feeds * feeds;
    let blob_mib: u64 = env_or("SSB_BENCH_BLOB_MIB", 50);
    let reps: usize = env_or::<usize>("SSB_BENCH_RUNS", 3).max(1);
    let mut sizes = vec![total / 10 / feeds * feeds, total / 2 / feeds * feeds, total];
    sizes.retain(|&n| n > 0);
    sizes.dedup();
    if let Ok(dir) = std::env::var("SSB_BENCH_PREPARE") {
        prepare(
            Path::new(&dir),
            feeds,
            total,
            &sizes,
            blob_mib * 1024 * 1024,
        );
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("bundle-bench-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path();
    println!("making {feeds} feeds x {} messages and {blob_mib} MiB of blobs, measuring raw signature checks ...", total / feeds);
    let p = measure::run(
        Command::new(std::env::current_exe().expect("own path")).env("SSB_BENCH_PREPARE", dir),
    )
    .expect_success("prepare");
    let mut feed_ids = Vec::new();
    let mut rates = (0.0, 0.0);
    let mut ours = (0.0, 0.0);
    for line in p.stdout.lines() {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["feed", id] => feed_ids.push(id.to_owned()),
            ["rates", a, b] => rates = (a.parse().expect("rate"), b.parse().expect("rate")),
            ["ours", a, b] => ours = (a.parse().expect("rate"), b.parse().expect("rate")),
            _ => panic!("unexpected prepare output: {line}"),
        }
    }
    let mut blobs: Vec<PathBuf> = fs::read_dir(dir.join("blobs"))
        .expect("blobs")
        .map(|e| e.expect("entry").path())
        .collect();
    blobs.sort();
    let (blob_bytes, blob_count) = tree_bytes(&dir.join("blobs"));
    let json_bytes = fs::metadata(messages_path(dir, total))
        .expect("messages")
        .len();
    println!(
        "{total} messages in {feeds} feeds ({:.1} MB of JSON lines), {blob_count} blobs ({:.1} MB), {reps} runs each\n",
        json_bytes as f64 / 1e6,
        blob_bytes as f64 / 1e6
    );
    println!("signature floor (raw ed25519-dalek verify_batch on the same messages):");
    println!("  1 thread  {:>9.0} msg/s", rates.0);
    println!("  2 threads {:>9.0} msg/s", rates.1);
    println!("signature floor (this crate's BatchVerifier, as the import runs it):");
    println!("  1 thread  {:>9.0} msg/s", ours.0);
    println!("  2 threads {:>9.0} msg/s\n", ours.1);

    println!("source data dirs:");
    let mut results = Vec::new();
    for &n in &sizes {
        let src = source(dir, n, &blobs);
        let mut runs = Runs::default();
        for r in 0..reps {
            run_once(dir, &src, n, r, &feed_ids, &mut runs);
        }
        let (input, _) = tree_bytes(&dir.join(format!("plain-{n}")));
        results.push((n, runs, input));
        let _ = fs::remove_dir_all(&src);
    }

    let Some((n, runs, input)) = results.last() else {
        return;
    };
    let (n, input) = (*n, *input);
    let input_mb = input as f64 / 1e6;
    let bundle_mb = runs.bundle_bytes as f64 / 1e6;
    let archive_mb = runs.archive_bytes as f64 / 1e6;
    println!(
        "\n{n} messages, {input_mb:.1} MB of content (the bundle's entries as files); bundle {bundle_mb:.1} MB, tar.zst {archive_mb:.1} MB (both zstd -3); median (min–max) of {reps} runs:\n"
    );
    println!(
        "  {:<32} {:>24} {:>9} {:>8} {:>8} {:>7} {:>22}",
        "", "wall", "msg/s", "in MB/s", "file MB/s", "CPU s", "peak RSS MiB"
    );
    row(
        "tar -I 'zstd -3 -T1' -cf + fsync",
        &runs.tar_c,
        n,
        input_mb,
        archive_mb,
    );
    row(
        "ssb-node bundle export",
        &runs.export,
        n,
        input_mb,
        bundle_mb,
    );
    row(
        "tar -I 'zstd -d -T1' -xf",
        &runs.tar_x,
        n,
        input_mb,
        archive_mb,
    );
    row(
        "ssb-node bundle verify",
        &runs.verify,
        n,
        input_mb,
        bundle_mb,
    );
    row(
        "ssb-node bundle import",
        &runs.import,
        n,
        input_mb,
        bundle_mb,
    );
    if !runs.import_tmpfs.is_empty() {
        row(
            "  import, data dir on tmpfs",
            &runs.import_tmpfs,
            n,
            input_mb,
            bundle_mb,
        );
    }
    let sig_floor = n as f64 / rates.1;
    let (ours_one, ours_two) = (n as f64 / ours.0, n as f64 / ours.1);
    println!(
        "  {:<32} {:>24}\n  {:<32} {:>24}\n  {:<32} {:>24}",
        "signatures alone (dalek, 2 thr.)",
        format!("{sig_floor:.3} s"),
        "signatures alone (ours, 1 thr.)",
        format!("{ours_one:.3} s"),
        "signatures alone (ours, 2 thr.)",
        format!("{ours_two:.3} s"),
    );
    if !runs.import_checked.is_empty() {
        println!(
            "  {:<32} {:>24}\n  {:<32} {:>24}\n  {:<32} {:>24}",
            "  import: lines read and checked",
            format!(
                "{} s",
                Spread::of(runs.import_lines.iter().copied()).show(3)
            ),
            "  import: ... and blobs, trailer",
            format!(
                "{} s",
                Spread::of(runs.import_checked.iter().copied()).show(3)
            ),
            "  import: promote to the store",
            format!(
                "{} s",
                Spread::of(runs.import_promoted.iter().copied()).show(3)
            ),
        );
    }
    println!();
    let ratio =
        |a: &[Step], b: &[Step]| Spread::of(a.iter().zip(b).map(|(a, b)| a.secs / b.secs)).show(2);
    println!(
        "  export / tar+zstd         {} x   (goal: at most 1.5 x)",
        ratio(&runs.export, &runs.tar_c)
    );
    println!(
        "  export / tar+zstd, CPU    {} x",
        Spread::of(
            runs.export
                .iter()
                .zip(&runs.tar_c)
                .map(|(a, b)| a.cpu / b.cpu)
        )
        .show(2)
    );
    println!(
        "  import / verify           {} x",
        ratio(&runs.import, &runs.verify)
    );
    println!(
        "  import / signatures alone {} x   (dalek, 2 threads)",
        Spread::of(runs.import.iter().map(|s| s.secs / sig_floor)).show(2)
    );
    println!(
        "  import / our signatures   {} x   (1 thread; {} x for 2)",
        Spread::of(runs.import.iter().map(|s| s.secs / ours_one)).show(2),
        Spread::of(runs.import.iter().map(|s| s.secs / ours_two)).show(2)
    );
    if let Some((r, b)) = runs.import_by_reader.iter().max_by_key(|(r, _)| *r) {
        let least = runs
            .import_by_reader
            .iter()
            .map(|(r, _)| *r)
            .min()
            .unwrap_or(0);
        println!(
            "  signature batches the reading thread checked itself, the checking thread being busy: {least}–{r} of {b}"
        );
    }
    if !runs.import_checked.is_empty() {
        println!(
            "  import lines / our sigs   {} x   (1 thread: reading, checking and writing the messages)",
            Spread::of(runs.import_lines.iter().map(|s| s / ours_one)).show(2)
        );
        println!(
            "  check+stage / our sigs    {} x   (1 thread; with the blobs and trailer)",
            Spread::of(runs.import_checked.iter().map(|s| s / ours_one)).show(2)
        );
    }
    println!(
        "  import / tar -x           {} x",
        ratio(&runs.import, &runs.tar_x)
    );
    if !runs.import_tmpfs.is_empty() {
        println!(
            "  import / import on tmpfs  {} x   (what the disk adds)",
            ratio(&runs.import, &runs.import_tmpfs)
        );
    }

    println!("\npeak RSS as the message count grows (same blobs), median (min–max) MiB:");
    println!(
        "  {:>8}  {:>22} {:>22} {:>22}   {:>9} {:>9}",
        "messages", "export", "verify", "import", "export/s", "import/s"
    );
    for (n, runs, _) in &results {
        println!(
            "  {n:>8}  {:>22} {:>22} {:>22}   {:>9.0} {:>9.0}",
            rss(&runs.export).show(1),
            rss(&runs.verify).show(1),
            rss(&runs.import).show(1),
            *n as f64 / secs(&runs.export).median,
            *n as f64 / secs(&runs.import).median,
        );
    }
}
