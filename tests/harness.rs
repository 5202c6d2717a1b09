//! Checks the npm side of the test harness: the pinned packages install, the
//! validation dataset is there, and the JS tools make and validate feeds.

mod support;

use std::fs;
use std::path::Path;

/// Run `validate.js` on `file`; return its exit code and its single stdout line.
fn validate(file: &Path) -> (Option<i32>, String) {
    let path = file.to_str().expect("utf-8 temp path");
    let out = support::run(&mut support::node_script("validate.js", &[path]));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        stdout.starts_with("{\"valid\":"),
        "validate.js printed {stdout:?}, stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), stdout)
}

/// Change the first ASCII letter of the first `"text":"…"` at or after line `from` (0-based).
/// Returns the 1-based line number that was changed.
fn corrupt_text(lines: &mut [String], from: usize) -> usize {
    for (i, line) in lines.iter_mut().enumerate().skip(from) {
        let Some(pos) = line.find("\"text\":\"") else {
            continue;
        };
        let at = pos + "\"text\":\"".len();
        let Some(c) = line[at..].chars().next().filter(char::is_ascii_alphabetic) else {
            continue;
        };
        let new = if c == 'Z' { "Y" } else { "Z" };
        line.replace_range(at..at + 1, new);
        return i + 1;
    }
    panic!("no post text to corrupt");
}

#[test]
fn dataset_has_126_cases() {
    let path = support::dataset_path();
    let data = fs::read_to_string(&path).expect("read data.json");
    assert!(data.trim_start().starts_with('['), "not a JSON array");
    assert_eq!(data.matches("\"valid\":").count(), 126);
}

#[test]
fn make_feed_then_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("feed.jsonl");
    let feed_arg = feed.to_str().expect("utf-8 temp path");
    let args = ["--feeds", "2", "--messages", "20", "--out", feed_arg];
    let out = support::run(&mut support::node_script("make-feed.js", &args));
    assert!(
        out.status.success(),
        "make-feed.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("feed.jsonl.secrets.json").exists());

    let text = fs::read_to_string(&feed).expect("read feed");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 40);
    let (code, stdout) = validate(&feed);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.starts_with("{\"valid\":40,\"invalid\":[],\"ids\":[\"%"),
        "{stdout}"
    );

    let bad_line = corrupt_text(&mut lines, 5);
    let bad = dir.path().join("bad.jsonl");
    fs::write(&bad, lines.join("\n") + "\n").expect("write corrupted feed");
    let (code, stdout) = validate(&bad);
    assert_eq!(code, Some(1), "{stdout}");
    let expected = format!("{{\"line\":{bad_line},\"error\":\"invalid signature\"}}");
    assert!(stdout.contains(&expected), "{stdout}");
}
