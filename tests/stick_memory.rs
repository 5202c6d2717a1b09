//! A stick visit's memory is bounded whatever the stick holds: 24
//! manifest-only bundles with manifests near the 16 MiB limit (95 000 feed
//! entries each, a few hundred KB each on the stick) keep `ssb-node stick
//! sync` well under 300 MiB resident. This file is its own test binary with
//! a single test, so the peak resident set of its children
//! (`getrusage(RUSAGE_CHILDREN)`) is that of this test's processes only.
#![allow(clippy::unwrap_used)]

#[path = "support/site.rs"]
mod site;
mod support;

use std::fs;
use std::path::Path;

use sha2::Digest as _;
use site::Site;

/// Bundles on the stick.
const BUNDLES: u32 = 24;
/// Feed entries in each manifest (as many as fit in the standard 16 MiB).
const FEEDS: u32 = 95_000;

/// A manifest-only bundle whose manifest claims `FEEDS` feeds no one
/// holds; written to `dir` under its name.
fn write_manifest_only(dir: &Path, n: u32) {
    let author = format!(
        "@{}.ed25519",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [n as u8; 32])
    );
    let mut json = format!(
        r#"{{"format":"ssb-sneakernet-bundle","version":1,"author":"{author}","created":1700000000000,"feeds":["#
    );
    for i in 0..FEEDS {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&n.to_be_bytes());
        key[4..8].copy_from_slice(&i.to_be_bytes());
        let feed = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"feed":"@{feed}.ed25519","first":1,"last":1,"bytes":2,"sha256":"{}"}}"#,
            "0".repeat(64)
        ));
    }
    json.push_str(r#"],"blobs":[]}"#);
    let json = json.into_bytes();
    assert!(json.len() < 16 << 20, "{}", json.len());
    let mut tar =
        bundle_format::header::canonical("manifest.json", json.len() as u64, 1_700_000_000)
            .to_vec();
    tar.extend_from_slice(&json);
    tar.resize(tar.len().next_multiple_of(512), 0);
    let name: String = sha2::Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(
        dir.join(format!("{name}.ssb-bundle")),
        zstd::encode_all(&tar[..], 3).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_visit_to_a_stick_of_huge_manifests_stays_within_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    let bundles = stick.join("SSB-SNEAKERNET/bundles");
    fs::create_dir_all(&bundles).unwrap();
    for n in 0..BUNDLES {
        write_manifest_only(&bundles, n);
    }
    let on_stick: u64 = fs::read_dir(&bundles)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let a = Site::new(dir.path(), "a", 3);
    let r = a.stick_sync(&stick);
    assert_eq!(r["exported_messages"], 3, "{r}");
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    // Kilobytes on Linux.
    let peak_mib = usage.max_rss() / 1024;
    println!("{BUNDLES} bundles, {on_stick} bytes on the stick: peak RSS {peak_mib} MiB");
    assert!(peak_mib < 300, "stick sync peaked at {peak_mib} MiB");
    // Each bundle is kept in summary or named as unread, and all are left.
    assert!(
        r["unread"].as_array().unwrap().len() as u64 + r["bundles"].as_u64().unwrap()
            >= u64::from(BUNDLES),
        "{r}"
    );
    assert_eq!(fs::read_dir(&bundles).unwrap().count() as u32, BUNDLES + 1);
}
