//! Shared helpers for the integration tests: the pinned npm packages under
//! `tests/node_modules`, the JS tools in `tests/js/`, and the `ssb-node` binary.
//!
//! Include it from a test file declared in `node/Cargo.toml` with `mod support;`.
#![allow(dead_code)]

pub mod running;

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{mpsc, OnceLock};

/// Name of the file in `node_modules` that holds a copy of the lockfile it was installed from.
const STAMP: &str = ".lock-stamp";

/// The absolute path of the repository's `tests/` directory.
pub fn tests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("cannot find the tests directory {}: {e}", dir.display()))
}

/// The absolute path of `tests/node_modules`, running `npm ci` first when it is
/// missing or was installed from another `package-lock.json`.
///
/// Safe to call from many threads and processes at once: the install runs at most
/// once per process and under an exclusive file lock across processes.
pub fn npm_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(ensure_installed).clone()
}

/// Path of an executable from the pinned packages, e.g. `npm_bin("shs1testserver")`.
pub fn npm_bin(name: &str) -> PathBuf {
    npm_root().join(".bin").join(name)
}

/// Path of ssb-validation-dataset's `data.json` (126 cases; AGPL, installed from npm).
pub fn dataset_path() -> PathBuf {
    npm_root().join("ssb-validation-dataset/data.json")
}

/// A `node tests/js/<script> args...` command, run in `tests/` so that
/// `require` finds the pinned packages. Pass absolute paths as arguments.
pub fn node_script(script: &str, args: &[&str]) -> Command {
    let tests = npm_root()
        .parent()
        .expect("node_modules has a parent")
        .to_path_buf();
    let mut cmd = Command::new("node");
    cmd.arg(tests.join("js").join(script))
        .args(args)
        .current_dir(&tests);
    cmd
}

/// Like [`node_script`], run inside the network namespace `netns` (`ip netns exec`, which
/// execs node in place: the child's pid is node's).
pub fn node_script_in(netns: &str, script: &str, args: &[&str]) -> Command {
    let plain = node_script(script, args);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns])
        .arg(plain.get_program())
        .args(plain.get_args());
    if let Some(dir) = plain.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

/// Run `cmd` to completion and return its output; panics (with the command) only if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (are node and npm installed?)"))
}

/// Waits up to `within` for `child` to exit (after it was asked to stop),
/// then kills it. For `Drop` impls: never panics.
pub fn wait_or_kill(child: &mut std::process::Child, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `ssb-node --data DATA ARGS…` to completion.
pub fn ssb_at(data: &Path, args: &[&str]) -> Output {
    run(Command::new(ssb_node()).arg("--data").arg(data).args(args))
}

/// Runs `ssb-node --data DATA ARGS…` with `input` on its stdin, to completion.
pub fn ssb_stdin(data: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(ssb_node())
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

/// `n` lines for `publish --stdin`: posts of `len` random base64 characters
/// each, so a bundle of them does not compress (for filling a stick).
pub fn incompressible_posts(n: usize, len: usize) -> String {
    let mut rng = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|_| {
            let text: String = (0..len)
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
        .collect()
}

/// Whether this machine lets a test make a private mount namespace (it says
/// SKIPPED when not).
pub fn private_mount_namespace_possible() -> bool {
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        other => {
            println!("SKIPPED: cannot make a private mount namespace here (unshare -m: {other:?})");
            false
        }
    }
}

/// The path of the `ssb-node` binary that cargo built for this test.
pub fn ssb_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ssb-node"))
}

/// Install the pinned packages if needed and return `tests/node_modules`.
fn ensure_installed() -> PathBuf {
    let tests = tests_dir();
    let modules = tests.join("node_modules");
    let lockfile_path = tests.join("package-lock.json");
    let lockfile = fs::read(&lockfile_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", lockfile_path.display()));
    if stamp_matches(&modules, &lockfile) {
        return modules;
    }
    let _lock = exclusive_lock(&tests);
    if !stamp_matches(&modules, &lockfile) {
        npm_ci(&tests);
        let stamp = modules.join(STAMP);
        fs::write(&stamp, &lockfile)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", stamp.display()));
    }
    modules
}

/// Whether `node_modules` holds a stamp equal to the current lockfile.
fn stamp_matches(modules: &Path, lockfile: &[u8]) -> bool {
    fs::read(modules.join(STAMP)).is_ok_and(|stamp| stamp == lockfile)
}

/// Take an exclusive lock (released when the returned file is dropped or the process dies)
/// on a lock file in the temp dir named after `tests`, so the work tree stays clean.
fn exclusive_lock(tests: &Path) -> File {
    let name: String = tests
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = std::env::temp_dir().join(format!("ssb-node-npm-ci{name}.lock"));
    let file = File::create(&path)
        .unwrap_or_else(|e| panic!("cannot create lock file {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

/// Run `npm ci --no-audit --no-fund` in `tests`, panicking with its output if it fails.
fn npm_ci(tests: &Path) {
    let mut cmd = Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(tests);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run `npm ci` in {}: {e}; Node.js 20 and npm must be on PATH",
            tests.display()
        )
    });
    if !out.status.success() {
        panic!(
            "`npm ci --no-audit --no-fund` in {} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            tests.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The lines `child` writes to its piped stdout, read on a thread of their
/// own, so that a caller can wait for one with a deadline. The thread reads
/// to the end even once the receiver is gone, so the child's later writes
/// never fail on a closed pipe.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}
