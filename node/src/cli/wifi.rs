//! `ssb-node wifi plan`: reads the boot partition's `wifi.txt` and writes
//! what the image's Wi-Fi controller (`/usr/libexec/ssb-node/wifi`) runs:
//! the mode, the country, hostapd's and wpa_supplicant's configs, and the
//! problems found, into the Wi-Fi run directory; the generated hotspot
//! passphrase is made once and kept, and written to the boot partition for
//! the keeper. Prints what the radio will do and each problem, one line
//! each, for the console. A wrong `wifi.txt` is not a failure: the box
//! still gets a plan (at worst the default hotspot).

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use ssb_node::appliance::wifi::plan::{self, Plan};
use ssb_node::appliance::wifi::settings::{self, Passphrase, Problem};
use ssb_node::data_dir::DataDir;

/// `ssb-node wifi plan`'s arguments (defaults: the image's paths).
#[derive(clap::Args)]
pub struct PlanArgs {
    /// The Wi-Fi settings (absent: the default hotspot).
    #[arg(long, value_name = "FILE", default_value = "/boot/firmware/wifi.txt")]
    file: PathBuf,
    /// Where the generated hotspot passphrase is kept (made on first use).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/lib/ssb-node-wifi/hotspot-passphrase"
    )]
    passphrase_file: PathBuf,
    /// The run directory for the configs, the mode and the problems.
    #[arg(long, value_name = "DIR", default_value = "/run/ssb-node-wifi")]
    out: PathBuf,
    /// The note naming the hotspot and its generated passphrase.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/boot/firmware/wifi-hotspot.txt"
    )]
    note: PathBuf,
    /// The wireless interface.
    #[arg(long, value_name = "NAME", default_value = "wlan0")]
    interface: String,
}

/// Runs `wifi plan`.
pub fn plan(args: &PlanArgs, data: &DataDir, out: &mut dyn Write) -> Result<ExitCode> {
    let node = data
        .keys()
        .context("the node's identity (for the hotspot's name)")?
        .id();
    let (settings, mut problems) = match read_settings(&args.file) {
        Ok(Some(bytes)) => settings::parse(&bytes),
        Ok(None) => (settings::Settings::default(), Vec::new()),
        Err(e) => (
            settings::Settings::default(),
            vec![Problem::Unreadable(format!("{e}"))],
        ),
    };
    problems.truncate(settings::MAX_PROBLEMS);
    let generated = generated_passphrase(&args.passphrase_file)?;
    let plan = plan::plan(&settings, &node, &generated);
    write_outputs(&plan, &problems, args)?;
    update_note(&plan, &args.note);
    writeln!(out, "wifi: {}", plan.summary())?;
    for p in &problems {
        writeln!(out, "wifi problem: wifi.txt: {p}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The file's first bytes (one more than the parser reads, so it can say
/// the file is too large); `None` if there is no file.
fn read_settings(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(settings::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The kept generated passphrase, or a new one (kept from then on, mode
/// 0600 in a 0700 directory).
fn generated_passphrase(path: &Path) -> Result<Passphrase> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(p) = Passphrase::new(text.trim()) {
            return Ok(p);
        }
        tracing::warn!(path = %path.display(), "the kept hotspot passphrase is not valid: making a new one");
    }
    let mut random = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    let p = plan::generate_passphrase(random);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("{}", dir.display()))?;
    }
    write_private(path, &format!("{}\n", p.as_str()))?;
    Ok(p)
}

/// Writes `text` to `path` through a temporary file and a rename, mode 0600.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}", path.display()))
}

fn write_outputs(plan: &Plan, problems: &[Problem], args: &PlanArgs) -> Result<()> {
    let dir = &args.out;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("{}", dir.display()))?;
    let put = |name: &str, text: Option<String>| -> Result<()> {
        let path = dir.join(name);
        match text {
            Some(t) => write_private(&path, &t),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("{}", path.display()))
                }
                _ => Ok(()),
            },
        }
    };
    put("hostapd.conf", plan.hostapd_conf(&args.interface))?;
    put("wpa_supplicant.conf", plan.wpa_supplicant_conf())?;
    put("mode", Some(format!("{}\n", plan.mode.as_str())))?;
    put(
        "country",
        Some(format!(
            "{}\n",
            plan.country.as_ref().map_or("", |c| c.as_str())
        )),
    )?;
    // The names as written, for the controller's messages and scans.
    put(
        "join-name",
        plan.join.as_ref().map(|j| format!("{}\n", j.ssid.as_str())),
    )?;
    put(
        "hotspot-name",
        plan.hotspot
            .as_ref()
            .map(|h| format!("{}\n", h.ssid.as_str())),
    )?;
    let mut lines = String::new();
    for p in problems {
        lines.push_str(&format!("wifi.txt: {p}\n"));
    }
    put("problems", Some(lines))?;
    // The state and the problems are for everyone (`ssb-node status` runs
    // as the node's user); the configs hold passphrases and stay root's.
    for name in ["problems", "mode", "country", "join-name", "hotspot-name"] {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("{}", path.display()))?;
        }
    }
    Ok(())
}

/// The boot partition's note: written when the hotspot uses the generated
/// passphrase (only if it changed: the FAT card is not rewritten at every
/// boot), removed when the keeper set a passphrase of their own. Failing
/// to write it is logged, not fatal: the console shows the same.
fn update_note(plan: &Plan, path: &Path) {
    match plan.hotspot_note() {
        Some(note) => {
            if std::fs::read_to_string(path).ok().as_deref() == Some(note.as_str()) {
                return;
            }
            if let Err(e) = std::fs::write(path, note) {
                tracing::warn!(path = %path.display(), "cannot write the hotspot note: {e}");
            }
        }
        None => {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "cannot remove the old hotspot note: {e}");
                }
            }
        }
    }
}
