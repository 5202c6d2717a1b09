//! Runs the shs1-test suite (npm shs1-test@1.1.1) against the `shs1-server` and
//! `shs1-client` binaries: 45 handshakes each (20 good, 25 with a faulty peer).
//!
//! The suite prints no pass count, only "Passed the … test suite" and exits with the
//! number of failed tests. To check that all 45 tests really ran, the binary is started
//! through a small wrapper script that counts its invocations.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Tests per suite (shs1-test 1.1.1: 20 successful handshakes + 25 faulty peers).
const TESTS_PER_SUITE: usize = 45;
/// How long one suite may take (it runs its 45 handshakes in parallel; ~10 s here).
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Of those, the ones where the peer misbehaves and our binary must exit non-zero.
const REJECTIONS_PER_SUITE: usize = 25;

/// Runs `script` (test-server.js / test-client.js) against `binary`; checks the exit code,
/// the success line, the number of invocations, and the number of rejections.
fn run_suite(script: &str, binary: &str, role: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let count_file = dir.path().join("invocations");
    let wrapper = dir.path().join("wrapped");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
            count_file.display(),
            binary
        ),
    )
    .expect("write wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");

    let suite = support::npm_root().join("shs1-test").join(script);
    assert!(suite.exists(), "{} is missing", suite.display());
    // Output goes to files (no pipe to drain while waiting); the wait has a deadline so
    // a hanging binary fails the test instead of blocking it forever.
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new("node")
        .arg(&suite)
        .arg(&wrapper)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", suite.display()));
    let deadline = Instant::now() + SUITE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not finish within {SUITE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(&stdout_path).expect("read stdout");
    let stderr = fs::read_to_string(&stderr_path).expect("read stderr");
    assert_eq!(
        status.code(),
        Some(0),
        "{script} reported failures\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("Passed the {role} test suite")),
        "unexpected output: {stdout}"
    );
    let runs = count_lines(&count_file);
    assert_eq!(runs, TESTS_PER_SUITE, "number of handshakes the suite ran");
    // Each rejection prints exactly one diagnostic line from the binary on stderr.
    let name = Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("binary name");
    let rejections = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{name}:")))
        .count();
    assert_eq!(rejections, REJECTIONS_PER_SUITE, "stderr:\n{stderr}");
    eprintln!("{script}: {runs}/{TESTS_PER_SUITE} passed");
}

fn count_lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .count()
}

#[test]
fn shs1_test_server_suite_passes() {
    run_suite(
        "test-server.js",
        env!("CARGO_BIN_EXE_shs1-server"),
        "server",
    );
}

#[test]
fn shs1_test_client_suite_passes() {
    run_suite(
        "test-client.js",
        env!("CARGO_BIN_EXE_shs1-client"),
        "client",
    );
}
