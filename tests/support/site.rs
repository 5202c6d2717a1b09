//! A site for sneakernet tests: a data dir with an identity and posts, driven
//! through the real `ssb-node` binary. Include it next to `mod support;`:
//!
//! ```ignore
//! mod support;
//! #[path = "support/site.rs"]
//! mod site;
//! ```
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::support::{self, ssb_at as ssb};

/// The stdout of a command that must succeed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The stderr and stdout of a command that must fail.
pub fn fails(out: Output) -> String {
    assert!(!out.status.success(), "should have failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// A site: a data dir with an identity and `posts` posts of its own.
pub struct Site {
    /// Its data dir.
    pub data: PathBuf,
    /// Its feed id.
    pub id: String,
}

impl Site {
    pub fn new(root: &Path, name: &str, posts: usize) -> Site {
        let data = root.join(name);
        let id = ok(ssb(&data, &["init"])).trim().to_owned();
        let site = Site { data, id };
        if posts > 0 {
            site.publish(posts, name);
        }
        site
    }

    pub fn publish(&self, n: usize, tag: &str) {
        let lines: String = (0..n)
            .map(|i| format!("{{\"type\":\"post\",\"text\":\"{tag} {i}\"}}\n"))
            .collect();
        ok(support::ssb_stdin(
            &self.data,
            &["publish", "--stdin"],
            &lines,
        ));
    }

    pub fn replicate(&self, feeds: &[&str]) {
        let list: Vec<String> = feeds.iter().map(|f| format!("{f:?}")).collect();
        fs::write(
            self.data.join("ssb-node.toml"),
            format!("replicate = [{}]\n", list.join(", ")),
        )
        .unwrap();
    }

    pub fn clock(&self) -> serde_json::Value {
        serde_json::from_str(&ok(ssb(&self.data, &["clock"]))).unwrap()
    }

    pub fn seq(&self, feed: &str) -> u64 {
        self.clock()[feed].as_u64().unwrap_or(0)
    }

    pub fn stick_sync(&self, stick: &Path) -> serde_json::Value {
        let out = ssb(
            &self.data,
            &["stick", "sync", stick.to_str().unwrap(), "--json"],
        );
        serde_json::from_str(&ok(out)).unwrap()
    }

    pub fn check(&self) {
        let out = ok(ssb(&self.data, &["check"]));
        assert!(out.contains("ok"), "{out}");
    }
}
