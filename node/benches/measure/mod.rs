//! What the benchmarks share: running a real process and reading its wall
//! time, CPU time and peak RSS; signed test feeds and raw signature-check
//! rates ([`signed`]).
//!
//! Include it from a bench with `mod measure;` (it lives in a folder, so
//! cargo does not take it for a bench of its own).
#![allow(dead_code)]

pub mod signed;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Instant;

/// An environment variable parsed as `T`, or `default` when unset or unparsable.
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A finished process: how it ended, what it printed, and what it cost.
#[derive(Debug)]
pub struct Measured {
    /// The raw wait status (0: exited with 0).
    pub status: i32,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
    /// Wall time from spawn to exit, seconds.
    pub secs: f64,
    /// User plus system CPU time, seconds (its own and its waited-for children's).
    pub cpu_secs: f64,
    /// Peak RSS in bytes: the largest of it and its waited-for children.
    pub peak_rss: u64,
}

impl Measured {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// Panics with its stderr unless it exited with status 0.
    pub fn expect_success(self, what: &str) -> Measured {
        assert!(
            self.success(),
            "{what} failed (wait status {}): {}",
            self.status,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` to its end (stdin empty, stdout and stderr captured) and reads
/// its peak RSS and CPU time with `wait4` (std's wait gives neither).
///
/// `wait4` reports the child together with the children it waited for, so a
/// `tar -I zstd` is measured with its `zstd`. A child's peak RSS starts from
/// its parent's RSS at spawn, so keep the measuring process small.
#[allow(unsafe_code)]
pub fn run(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain POSIX call on our own child; both out-pointers are valid for the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        secs,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}
