//! The Debian package: `images/deb-test.sh` builds the amd64 `.deb` around
//! this test suite's `ssb-node`, installs it with `dpkg -i` into a fresh
//! Debian 12 chroot (mmdebstrap, from apt's configured mirror), checks the
//! unit is enabled, the user exists and the files are in place, reinstalls
//! it over an edited config, and purges it, checking that nothing of it is
//! left. About 1–3 minutes, most of it mmdebstrap.
//!
//! Needs root (a chroot): without it the test says so and skips. Needs
//! `mmdebstrap` (`.ci/run` installs it); where it is missing the script
//! fails at once naming the package: a test suite installs nothing.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_installs_enabled_in_a_fresh_debian_and_purges_clean() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!(
            "skipped: the .deb test needs root (it builds a Debian chroot and runs dpkg in it)"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/deb-test.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("SSB_NODE_BIN", env!("CARGO_BIN_EXE_ssb-node"))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "images/deb-test.sh failed:\n{all}");
    for line in [
        "dpkg -i: installed",
        "ssb-node.service enabled",
        "user ssb-node: uid",
        "files in place, conffile registered",
        "reinstall: config edit kept, still enabled, same identity",
        "dpkg --purge: no file, link, user or group of the package left",
        "deb-test: PASSED",
    ] {
        assert!(all.contains(line), "missing {line:?} in:\n{all}");
    }
}
