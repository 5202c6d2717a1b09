//! The pattern engine's core builds where there is no `std`: the crate with
//! no features, built for a bare-metal target (`thumbv7em-none-eabihf`, a
//! Cortex-M4F, whose standard library does not exist). Part of the normal
//! test command, so a `std` use slipping into the core fails the suite.
//!
//! The target is added with `rustup` if missing. Without rustup (a
//! distribution's Rust), the fallback is the host build with no features and
//! a check that nothing but `embedded-hal` is pulled in (the crate is
//! `#![no_std]` in every configuration).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "thumbv7em-none-eabihf";

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Its own target dir: the suite's may be locked by the cargo running us.
    c.env(
        "CARGO_TARGET_DIR",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-std"),
    )
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn has_target() -> bool {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match listed {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
                || Command::new("rustup")
                    .args(["target", "add", TARGET])
                    .status()
                    .is_ok_and(|s| s.success())
        }
        _ => false,
    }
}

#[test]
fn the_core_builds_for_a_bare_metal_target() {
    if has_target() {
        let out = cargo()
            .args([
                "build",
                "--offline",
                "-p",
                "firmware",
                "--no-default-features",
            ])
            .args(["--target", TARGET])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "no_std build for {TARGET} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    println!("no rustup target {TARGET}: checking the host build's dependencies instead");
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "-p",
            "firmware",
            "--no-default-features",
        ])
        .args(["-e", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut crates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    crates.sort();
    crates.dedup();
    assert_eq!(crates, ["embedded-hal", "firmware"]);
}
