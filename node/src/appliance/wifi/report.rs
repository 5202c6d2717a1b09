//! The Wi-Fi state for `ssb-node status`: two small files in the Wi-Fi run
//! directory (`/run/ssb-node-wifi`, or `SSB_NODE_WIFI_DIR`):
//!
//! - `state`: one line the controller rewrites at each change (`hotspot
//!   "ssb-…" up on 10.42.0.1`, `joined "Farm" as 192.168.1.20`, …);
//! - `problems`: one line per problem `ssb-node wifi plan` found in
//!   `wifi.txt`.
//!
//! Both are read bounded (at most [`MAX_FILE`] bytes, [`MAX_LINES`] lines of
//! at most [`MAX_LINE`] characters), as a root-owned file in `/run` is still
//! not the node's own.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::feed::json::{Object, Value};

/// Where the Wi-Fi files are unless `SSB_NODE_WIFI_DIR` says otherwise.
pub const DEFAULT_DIR: &str = "/run/ssb-node-wifi";

/// Where the image writes the hotspot's name and generated passphrase for
/// the keeper, unless `SSB_NODE_WIFI_NOTE` says otherwise.
pub const DEFAULT_NOTE: &str = "/boot/firmware/wifi-hotspot.txt";

/// The most bytes read of each file.
pub const MAX_FILE: u64 = 8 * 1024;
/// The most lines kept of the problems.
pub const MAX_LINES: usize = 16;
/// The most characters kept of a line.
pub const MAX_LINE: usize = 300;

/// The Wi-Fi run directory: `SSB_NODE_WIFI_DIR`, else [`DEFAULT_DIR`].
pub fn dir() -> PathBuf {
    std::env::var_os("SSB_NODE_WIFI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// The hotspot note: `SSB_NODE_WIFI_NOTE`, else [`DEFAULT_NOTE`].
pub fn note_path() -> PathBuf {
    std::env::var_os("SSB_NODE_WIFI_NOTE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NOTE))
}

/// The hotspot note's lines (name and passphrase), bounded; empty if there
/// is none (the passphrase is the keeper's own, or the box runs no hotspot).
pub fn read_note(path: &Path) -> Vec<String> {
    lines(&read_bounded(path))
}

/// The lines of `state` and `problems` text, bounded, blank lines dropped.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .filter(|l| !l.is_empty())
        .take(MAX_LINES)
        .map(|l| l.chars().take(MAX_LINE).collect())
        .collect()
}

/// The report as the status shows it: `{"state": "…", "problems": […]}`,
/// or `None` when neither file holds anything.
pub fn to_value(state: &str, problems: &str) -> Option<Value> {
    let state = lines(state).into_iter().next();
    let problems = lines(problems);
    if state.is_none() && problems.is_empty() {
        return None;
    }
    let mut o = Object::new();
    o.push(
        "state",
        Value::string(state.as_deref().unwrap_or("not started")),
    );
    o.push(
        "problems",
        Value::Array(problems.iter().map(|p| Value::string(p)).collect()),
    );
    Some(Value::Object(o))
}

fn read_bounded(path: &Path) -> String {
    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.take(MAX_FILE).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads the report from `dir`; `None` if the box runs no Wi-Fi controller
/// (no files, as on a machine without the image's units).
pub fn read(dir: &Path) -> Option<Value> {
    to_value(
        &read_bounded(&dir.join("state")),
        &read_bounded(&dir.join("problems")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_files_no_report_and_files_are_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        std::fs::write(dir.path().join("problems"), "wifi.txt: line 2: bad\r\n\n").unwrap();
        let v = read(dir.path()).unwrap();
        assert_eq!(
            v.to_compact(),
            r#"{"state":"not started","problems":["wifi.txt: line 2: bad"]}"#
        );
        std::fs::write(dir.path().join("state"), "hotspot \"ssb-x\" up\n").unwrap();
        let long = format!("{}\n", "x".repeat(MAX_LINE + 1)).repeat(100);
        std::fs::write(dir.path().join("problems"), long).unwrap();
        let v = read(dir.path()).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(
            o.get("state").and_then(Value::as_str),
            Some("hotspot \"ssb-x\" up")
        );
        let Some(Value::Array(p)) = o.get("problems") else {
            panic!("no problems array")
        };
        // 8 KiB read (27 lines), MAX_LINES kept, each cut to MAX_LINE.
        assert_eq!(p.len(), MAX_LINES);
        assert!(p.iter().all(|l| l.as_str().unwrap().len() == MAX_LINE));
    }
}
