//! Wi-Fi from the boot partition, end to end on this machine (no radio):
//! `ssb-node wifi plan` on real files, as the image's controller runs it,
//! and a running node's `ssb-node status` showing the controller's state
//! and the problems of `wifi.txt`. The controller itself and the radios are
//! tested under qemu by `images/boot-test.sh`.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use support::running::spawn_run;
use support::ssb_at;

/// The paths `wifi plan` reads and writes, all under one temp dir.
struct Paths {
    data: PathBuf,
    file: PathBuf,
    passphrase: PathBuf,
    out: PathBuf,
    note: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Paths {
        let data = dir.join("node");
        assert!(ssb_at(&data, &["init"]).status.success());
        Paths {
            data,
            file: dir.join("boot/wifi.txt"),
            passphrase: dir.join("state/hotspot-passphrase"),
            out: dir.join("run"),
            note: dir.join("boot/wifi-hotspot.txt"),
        }
    }

    fn plan(&self) -> Output {
        let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
        ssb_at(
            &self.data,
            &[
                "wifi",
                "plan",
                "--file",
                &path(&self.file),
                "--passphrase-file",
                &path(&self.passphrase),
                "--out",
                &path(&self.out),
                "--note",
                &path(&self.note),
            ],
        )
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "wifi plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_broken_wifi_txt_still_gives_the_default_hotspot_and_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = Paths::new(dir.path());
    std::fs::create_dir_all(p.file.parent().unwrap()).unwrap();
    // Saved on Windows: CRLF; a short hotspot passphrase, an unknown
    // country, a network without its passphrase.
    std::fs::write(
        &p.file,
        "country = XX\r\njoin_ssid = Farm\r\nhotspot_passphrase = short\r\n",
    )
    .unwrap();
    let text = stdout(&p.plan());
    let id = String::from_utf8(ssb_at(&p.data, &["whoami"]).stdout).unwrap();
    let ssid = format!("ssb-{}", &id.trim()[1..9])
        .replace('+', "-")
        .replace('/', "_");
    let pass = std::fs::read_to_string(&p.passphrase).unwrap();
    let pass = pass.trim();
    assert_eq!(pass.len(), 14, "{pass}");
    assert_eq!(
        text,
        format!(
            "wifi: hotspot \"{ssid}\" on channel 6, passphrase {pass} (also in wifi-hotspot.txt \
             on the boot partition); no country (world-wide rules)\n\
             wifi problem: wifi.txt: line 1: unknown country `XX` (a two-letter ISO code such as \
             GB, DE, KE, US); the radio keeps the world-wide rules\n\
             wifi problem: wifi.txt: `join_passphrase` is missing (`join_ssid` is on line 2); \
             the box does not join a network\n\
             wifi problem: wifi.txt: line 3: `hotspot_passphrase` must be 8 to 63 characters \
             (it has 5)\n"
        )
    );
    assert_eq!(p.read("mode"), "hotspot\n");
    assert_eq!(p.read("country"), "\n");
    assert_eq!(p.read("hotspot-name"), format!("{ssid}\n"));
    assert_eq!(p.read("problems").lines().count(), 3);
    let hostapd = p.read("hostapd.conf");
    assert!(
        hostapd.contains(&format!("\nwpa_passphrase={pass}\n")),
        "{hostapd}"
    );
    assert!(!p.out.join("wpa_supplicant.conf").exists());
    // Passphrases stay root's; what status shows is for everyone.
    let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&p.out.join("hostapd.conf")), 0o600);
    assert_eq!(mode(&p.passphrase), 0o600);
    assert_eq!(mode(&p.out.join("problems")), 0o644);
    let note = std::fs::read_to_string(&p.note).unwrap();
    assert!(
        note.contains(&format!("name: {ssid}\r\npassphrase: {pass}\r\n")),
        "{note}"
    );

    // The next start keeps the passphrase (and the note as it is).
    let before = std::fs::metadata(&p.note).unwrap().modified().unwrap();
    let again = stdout(&p.plan());
    assert!(again.contains(&format!("passphrase {pass} ")), "{again}");
    assert_eq!(
        std::fs::metadata(&p.note).unwrap().modified().unwrap(),
        before
    );

    // Fixed: join the network when in range, else the keeper's own hotspot;
    // the note of the generated passphrase goes, the problems are cleared.
    std::fs::write(
        &p.file,
        "country = de\njoin_ssid = Farm\njoin_passphrase = farm pass 1\nhotspot_passphrase = \"village box\"\n",
    )
    .unwrap();
    let text = stdout(&p.plan());
    assert_eq!(
        text,
        format!(
            "wifi: join \"Farm\" when in range, else hotspot \"{ssid}\" on channel 6, \
             passphrase as set in wifi.txt; country DE\n"
        )
    );
    assert_eq!(p.read("mode"), "join-or-hotspot\n");
    assert_eq!(p.read("country"), "DE\n");
    assert_eq!(p.read("join-name"), "Farm\n");
    assert_eq!(p.read("problems"), "");
    let wpa = p.read("wpa_supplicant.conf");
    assert!(
        wpa.contains("\tssid=4661726d\n") && wpa.contains("\tpsk=\"farm pass 1\"\n"),
        "{wpa}"
    );
    assert!(p
        .read("hostapd.conf")
        .contains("\nwpa_passphrase=village box\n"));
    assert!(!p.note.exists(), "the stale note stayed");
}

#[test]
fn a_node_without_an_identity_cannot_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = ssb_at(
        &dir.path().join("none"),
        &[
            "wifi",
            "plan",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("identity"), "{err}");
    assert!(!dir.path().join("run").exists());
}

#[test]
fn status_shows_the_wifi_state_and_the_problems_of_wifi_txt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    assert!(ssb_at(&data, &["init"]).status.success());
    let run = dir.path().join("wifi-run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(
        run.join("problems"),
        "wifi.txt: line 3: `hotspot_passphrase` must be 8 to 63 characters (it has 5)\n",
    )
    .unwrap();
    std::fs::write(
        run.join("state"),
        "hotspot \"ssb-AbCd\" up on wlan0, 10.42.0.1 (DHCP for phones)\n",
    )
    .unwrap();
    let (mut child, _) = spawn_run(
        &data,
        &[],
        &[],
        &[("SSB_NODE_WIFI_DIR", run.to_str().unwrap())],
        Stdio::null(),
    );
    let text = String::from_utf8(ssb_at(&data, &["status"]).stdout).unwrap();
    let json = String::from_utf8(ssb_at(&data, &["status", "--json"]).stdout).unwrap();
    // The controller moves on: the status follows without a restart.
    std::fs::write(run.join("state"), "joined \"Farm\" on wlan0\n").unwrap();
    std::fs::write(run.join("problems"), "").unwrap();
    let later = String::from_utf8(ssb_at(&data, &["status"]).stdout).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains(
            "wifi: hotspot \"ssb-AbCd\" up on wlan0, 10.42.0.1 (DHCP for phones)\n\
             wifi problem: wifi.txt: line 3: `hotspot_passphrase` must be 8 to 63 characters (it has 5)\n"
        ),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["wifi"]["problems"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert!(
        later.contains("wifi: joined \"Farm\" on wlan0\n"),
        "{later}"
    );
    assert!(!later.contains("wifi problem"), "{later}");
}
