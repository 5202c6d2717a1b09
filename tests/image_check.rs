//! The fast image checks in the normal test command: `images/check.sh` stages
//! the image's overlay (`images/rootfs/`) with this build of `ssb-node`, and
//! verifies the units with `systemd-analyze verify` and `security` and the
//! scripts with shellcheck. The full image build and boot test are too slow
//! for CI; `images/README.md` says how to run them.
//!
//! Needs `systemd-analyze` and `shellcheck` (Debian's `systemd` and
//! `shellcheck`; `.ci/run` installs them). Where one is missing the check
//! fails at once with one line naming the packages: a test suite installs
//! nothing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout's `images/` folder.
fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images")
}

/// Runs `check.sh` from `images` (a folder laid out like `images/`) against
/// the ssb-node this test suite built.
fn run_check(images: &Path) -> Output {
    Command::new("bash")
        .arg(images.join("check.sh"))
        .env("SSB_NODE_BIN", env!("CARGO_BIN_EXE_ssb-node"))
        .output()
        .expect("running images/check.sh")
}

/// Both output streams, for assertions and failure messages.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn image_overlay_units_and_scripts_pass_the_checks() {
    let out = run_check(&images_dir());
    let all = text(&out);
    assert!(out.status.success(), "images/check.sh failed:\n{all}");
    for line in [
        "check: ssb-node.service verifies",
        "check: ssb-node-firstboot.service verifies",
        "check: ssb-node-wifi.service verifies",
        "check: wifi.txt (shipped) plans the default hotspot",
        "check: ssb-node.service exposure",
        "check: shellcheck clean",
        "check: image overlay OK",
    ] {
        assert!(all.contains(line), "missing {line:?} in:\n{all}");
    }
}

/// The check is not a formality: a copy of `images/` with a unit that lost
/// its hardening, and one with a misspelt directive, both fail it.
#[test]
fn a_weakened_or_broken_unit_fails_the_checks() {
    let unit = "rootfs/usr/lib/systemd/system/ssb-node.service";
    // (name, how the unit is changed, what the failure must name)
    type Case = (&'static str, fn(&str) -> String, &'static str);
    let cases: [Case; 2] = [
        (
            "weakened",
            |u| {
                u.lines()
                    .filter(|l| !l.starts_with("Protect") && !l.starts_with("SystemCall"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            },
            "exposure",
        ),
        (
            "misspelt",
            |u| u.replace("Restart=on-failure", "Restrat=on-failure"),
            "verify ssb-node.service",
        ),
    ];
    for (name, change, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("images");
        let status = Command::new("cp")
            .arg("-a")
            .arg(images_dir())
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        // A built image in images/out is not needed for the check.
        let _ = std::fs::remove_dir_all(copy.join("out"));
        let path = copy.join(unit);
        let original = std::fs::read_to_string(&path).unwrap();
        let changed = change(&original);
        assert_ne!(changed, original, "{name}: the change changed nothing");
        std::fs::write(&path, changed).unwrap();
        let out = run_check(&copy);
        let all = text(&out);
        assert!(!out.status.success(), "{name} unit passed:\n{all}");
        assert!(
            all.contains("check: FAILED") && all.contains(reason),
            "{name}: no failure naming {reason:?} in:\n{all}"
        );
    }
}

/// Without shellcheck on the PATH the check installs nothing: it fails at
/// once with one line naming the package to install.
#[test]
fn a_missing_tool_fails_at_once_naming_its_package() {
    let bin = tempfile::tempdir().unwrap();
    // Every program of the usual PATH but shellcheck.
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = bin.path().join(&name);
            if name == "shellcheck" || link.exists() {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), link).unwrap();
        }
    }
    let out = Command::new("/bin/bash")
        .arg(images_dir().join("check.sh"))
        .env("SSB_NODE_BIN", env!("CARGO_BIN_EXE_ssb-node"))
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "passed without shellcheck:\n{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("check: FAILED") && l.contains("apt-get install shellcheck")),
        "no line naming the package in:\n{all}"
    );
    assert!(!all.contains("host-tools:"), "it tried to install:\n{all}");
}
