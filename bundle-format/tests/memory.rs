//! Memory stays flat from 10k to 100k messages: the heap peak of planning,
//! writing and reading a bundle does not grow with its length.
//!
//! A counting global allocator measures the Rust heap (zstd's own buffers
//! are malloc'd in C and bounded by the window size; the resident-set check
//! at the end covers them). This file is its own test binary with a single
//! test, so no other test's allocations are counted.

// Test helpers panic on failure: that is the test failing.
#![allow(clippy::unwrap_used)]
// The counting allocator needs `unsafe impl GlobalAlloc`; the library itself
// forbids unsafe code.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bundle_format::{
    BundleItem, BundleReader, BundleWriter, Fit, Limits, Planner, WriterOptions, FAT32_MAX_FILE,
};
use support::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), SeqCst) + layout.size();
            PEAK.fetch_max(live, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes `f` needed above what was live when it started.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    f();
    PEAK.load(SeqCst) - base
}

const FEEDS: u8 = 10;

/// `len` bytes of cheap noise, generated as they are read (no big buffer).
struct Noise {
    left: usize,
    x: u32,
}

impl Noise {
    fn new(len: usize) -> Noise {
        Noise {
            left: len,
            x: 0x9e37_79b9,
        }
    }
}

impl std::io::Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left);
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 17;
            self.x ^= self.x << 5;
            *b = self.x as u8;
        }
        self.left -= n;
        Ok(n)
    }
}

/// Plans, writes and reads a bundle of `n` messages over ten feeds and one
/// blob of `blob` bytes; returns the heap peaks of (plan + write, read).
fn run(dir: &std::path::Path, n: u32, blob: usize) -> (usize, usize) {
    let path = dir.join(format!("{n}.ssb-bundle"));
    let per = n / u32::from(FEEDS);
    let id = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut Noise::new(blob), &mut h).unwrap();
        bundle_format::ids::blob_id(&h.finalize().into())
    };
    let write = peak_of(|| {
        let mut p = Planner::new(&feed(1), 1, FAT32_MAX_FILE, Limits::default()).unwrap();
        for f in 0..FEEDS {
            let fid = feed(10 + f);
            assert_eq!(p.begin_feed(&fid, 1).unwrap(), Fit::Added);
            for seq in 1..=per {
                assert_eq!(p.line(&line(&fid, seq)).unwrap(), Fit::Added);
            }
        }
        assert_eq!(p.blob(&id, blob as u64).unwrap(), Fit::Added);
        let m = p.finish().unwrap();
        let out = BufWriter::new(File::create(&path).unwrap());
        let mut w = BundleWriter::new(out, m, &key(1), &WriterOptions::default()).unwrap();
        for f in 0..FEEDS {
            let fid = feed(10 + f);
            for seq in 1..=per {
                w.line(&line(&fid, seq)).unwrap();
            }
        }
        w.blob(&id, &mut Noise::new(blob)).unwrap();
        w.finish().unwrap();
    });
    let read = peak_of(|| {
        let input = BufReader::new(File::open(&path).unwrap());
        let mut r = BundleReader::open(input, &Limits::default()).unwrap();
        let mut lines = 0u32;
        let mut blob_bytes = 0u64;
        while let Some(item) = r.next().unwrap() {
            match item {
                BundleItem::Line(l) => {
                    assert!(!l.bytes.is_empty());
                    lines += 1;
                }
                BundleItem::Blob(mut b) => {
                    blob_bytes += std::io::copy(&mut b, &mut std::io::sink()).unwrap()
                }
            }
        }
        assert_eq!((lines, blob_bytes), (n, blob as u64));
    });
    (write, read)
}

/// The process's peak resident set, in KiB (Linux).
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Caps glibc's malloc arenas at two, as the `ssb-node` binary does at
/// start. Without the cap, each new zstd worker thread may get an arena of
/// its own, and each arena keeps its own high-water mark: the resident set
/// would step up with each bundle's fresh workers until every arena (8 per
/// core) had been used once, which says nothing of the writer's bound.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc parameter, before this test starts
    // any thread of its own (it is the only test in this binary).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}

#[test]
fn memory_is_flat_from_10k_to_100k_messages() {
    cap_malloc_arenas();
    let dir = tempfile::tempdir().unwrap();
    // Warm up: a bundle longer than the zstd window and than the jobs its
    // workers hold at once (a few MiB), so zstd's own buffers reach their
    // bounded size before the resident set is compared.
    run(dir.path(), 40_000, 4 * 1024 * 1024);
    let (w10, r10) = run(dir.path(), 10_000, 256 * 1024);
    let rss10 = vm_hwm_kib();
    let (w100, r100) = run(dir.path(), 100_000, 4 * 1024 * 1024);
    let rss100 = vm_hwm_kib();
    eprintln!("heap peak: write {w10} -> {w100} B, read {r10} -> {r100} B; VmHWM {rss10:?} -> {rss100:?} KiB");
    // Ten times the messages (and a 16x larger blob): the same heap, within
    // a little slack for allocator rounding.
    const SLACK: usize = 16 * 1024;
    assert!(w100 <= w10 + SLACK, "write peak grew: {w10} -> {w100}");
    assert!(r100 <= r10 + SLACK, "read peak grew: {r10} -> {r100}");
    // And small in absolute terms: buffers, one line, the manifest.
    assert!(w100 < 1024 * 1024 && r100 < 1024 * 1024, "{w100} {r100}");
    // The resident set (zstd's C buffers included) moves by no more than
    // what zstd's workers may hold at once: how many 1 MiB jobs of input and
    // output are in flight at the peak, and how they fall in the arenas,
    // depends on thread timing (1-4 MiB seen on top of the 10k run's peak).
    if let (Some(a), Some(b)) = (rss10, rss100) {
        assert!(b <= a + 6 * 1024, "VmHWM grew from {a} to {b} KiB");
    }
}
