//! The optional config file, `ssb-node.toml` in the data dir (or `--config`).
//!
//! Every key is optional; unknown keys are an error, so a typo is reported
//! instead of silently ignored.

use std::path::{Path, PathBuf};

use firmware::LedSpec;

use serde::Deserialize;

use crate::feed::FeedId;
use crate::net::address::{Host, MultiserverAddress};
use crate::net::shs::NetworkKey;
use crate::replica::carry;
use crate::replica::Policy;

pub use crate::replica::{DEFAULT_BLOB_MAX, DEFAULT_HOPS};

/// The file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `HOST:PORT` to listen on for peers.
    pub listen: Option<String>,
    /// Peers to keep connected to (multiserver addresses).
    #[serde(default)]
    pub connect: Vec<String>,
    /// Feeds to replicate in addition to the follow graph.
    #[serde(default)]
    pub replicate: Vec<String>,
    /// Follow-graph distance to replicate (0 = own feed and `replicate` only).
    pub hops: Option<u32>,
    /// Feeds never to replicate or talk to.
    #[serde(default)]
    pub block: Vec<String>,
    /// The carrying policy: `follows` or `connected` (see [`carry`]).
    pub carry: Option<String>,
    /// Most feeds followed under `connected`.
    pub carry_max: Option<u32>,
    /// Other site boxes: followed, with every feed they follow.
    #[serde(default)]
    pub sites: Vec<String>,
    /// LAN discovery on or off.
    pub discovery: Option<bool>,
    /// Largest blob fetched, in bytes.
    pub blob_max: Option<u64>,
    /// Most bytes of blobs kept: a number of bytes, or `"N%"` of the data
    /// disk (default: no quota).
    pub blob_quota: Option<QuotaText>,
    /// Feeds whose blobs the quota never removes (besides our own).
    #[serde(default)]
    pub keep: Vec<String>,
    /// Network key, base64 of 32 bytes (default: the main network).
    pub network_key: Option<String>,
    /// Seconds a peer has to complete the secret handshake (default 10).
    pub handshake_timeout: Option<f64>,
    /// Directories watched for sticks (absolute; default `/media`,
    /// `/run/media`, `/mnt`; `[]` turns stick watching off).
    pub mount_roots: Option<Vec<PathBuf>>,
    /// The status LED (`none`, `sysfs:NAME`, `sysfs:/dir`, `gpio:CHIP:LINE`).
    pub led: Option<String>,
    /// The host (IP or name) invite codes name (default: the LAN address).
    pub public_address: Option<String>,
    /// `HOST:PORT` of the site keeper's web page (none: no web page).
    pub http: Option<String>,
    /// A file (on the boot partition) with a plaintext web admin password,
    /// hashed into the store at start and then blanked.
    pub web_password_file: Option<PathBuf>,
}

/// `blob_quota` as written: bytes, or a text such as `"50%"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum QuotaText {
    /// Bytes.
    Bytes(u64),
    /// A share of the data disk, `"N%"`.
    Text(String),
}

/// The blob quota: bytes, or a share of the data disk's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlobQuota {
    /// This many bytes.
    Bytes(u64),
    /// This percentage of the data disk (more than 0, at most 100).
    Percent(f64),
}

impl BlobQuota {
    /// The quota in bytes, on a data disk of `disk` bytes.
    pub fn bytes(self, disk: u64) -> u64 {
        match self {
            BlobQuota::Bytes(b) => b,
            BlobQuota::Percent(p) => (disk as f64 * p / 100.0) as u64,
        }
    }
}

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        source: Box<toml::de::Error>,
    },
    /// A value is malformed.
    #[error("{path}: {key}: {reason}")]
    Value {
        /// The file.
        path: String,
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The settings the node runs with, after defaults and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: String,
    /// Peers to keep connected to.
    pub connect: Vec<MultiserverAddress>,
    /// Extra feeds to replicate.
    pub replicate: Vec<FeedId>,
    /// Follow-graph distance.
    pub hops: u32,
    /// Blocked feeds.
    pub block: Vec<FeedId>,
    /// The carrying policy.
    pub carry: carry::CarryMode,
    /// Most feeds followed under [`carry::CarryMode::Connected`].
    pub carry_max: u32,
    /// Other site boxes, followed with what they follow.
    pub sites: Vec<FeedId>,
    /// LAN discovery.
    pub discovery: bool,
    /// Largest blob fetched.
    pub blob_max: u64,
    /// Most bytes of blobs kept, if any.
    pub blob_quota: Option<BlobQuota>,
    /// Feeds whose blobs the quota never removes.
    pub keep: Vec<FeedId>,
    /// The network.
    pub network_key: NetworkKey,
    /// Deadline for a peer's secret handshake.
    pub handshake_timeout: std::time::Duration,
    /// Directories watched for sticks.
    pub mount_roots: Vec<PathBuf>,
    /// The status LED.
    pub led: LedSpec,
    /// The host invite codes name, if configured.
    pub public_address: Option<Host>,
    /// Where the web page is served, if anywhere.
    pub http: Option<String>,
    /// The boot partition's plaintext web password file, if configured.
    pub web_password_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "0.0.0.0:8008".into(),
            connect: Vec::new(),
            replicate: Vec::new(),
            hops: DEFAULT_HOPS,
            block: Vec::new(),
            carry: carry::CarryMode::Follows,
            carry_max: carry::DEFAULT_CARRY_MAX,
            sites: Vec::new(),
            discovery: true,
            blob_max: DEFAULT_BLOB_MAX,
            blob_quota: None,
            keep: Vec::new(),
            network_key: NetworkKey::default(),
            handshake_timeout: std::time::Duration::from_secs(10),
            mount_roots: crate::appliance::mounts::DEFAULT_MOUNT_ROOTS
                .iter()
                .map(PathBuf::from)
                .collect(),
            led: LedSpec::None,
            public_address: None,
            http: None,
            web_password_file: None,
        }
    }
}

impl Settings {
    /// What the replica keeps, from these settings, on a data disk of
    /// `disk` bytes (for a quota given as a share of it).
    pub fn policy_on(&self, disk: u64) -> Policy {
        Policy {
            blob_quota: self.blob_quota.map(|q| q.bytes(disk)),
            ..self.policy()
        }
    }

    /// What the replica keeps, from these settings (a quota given as a
    /// share of the disk is left out: see [`Settings::policy_on`]).
    pub fn policy(&self) -> Policy {
        Policy {
            blob_quota: match self.blob_quota {
                Some(BlobQuota::Bytes(b)) => Some(b),
                _ => None,
            },
            keep: self.keep.clone(),
            hops: self.hops,
            replicate: self.replicate.clone(),
            block: self.block.clone(),
            blob_max: self.blob_max,
            carry: self.carry,
            carry_max: self.carry_max,
            sites: self.sites.clone(),
        }
    }

    /// Reads `path` if it exists (a missing file means defaults).
    pub fn load(path: &Path, must_exist: bool) -> Result<Settings, ConfigError> {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Settings::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: shown,
                    source,
                })
            }
        };
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            source: Box::new(e),
        })?;
        Settings::from_file(file, &shown)
    }

    /// Validates a parsed file.
    pub fn from_file(file: ConfigFile, path: &str) -> Result<Settings, ConfigError> {
        let bad = |key, reason: String| ConfigError::Value {
            path: path.to_owned(),
            key,
            reason,
        };
        let feeds = |key, list: &[String]| {
            list.iter()
                .map(|s| {
                    s.parse::<FeedId>()
                        .map_err(|_| bad(key, format!("not a feed id: {s}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let defaults = Settings::default();
        let network_key = match &file.network_key {
            None => defaults.network_key,
            Some(text) => NetworkKey(
                crate::feed::ids::decode_base64_exact::<32>(text)
                    .ok_or_else(|| bad("network_key", "not base64 of 32 bytes".into()))?,
            ),
        };
        let mount_roots = match file.mount_roots {
            None => defaults.mount_roots,
            Some(roots) => {
                if let Some(r) = roots.iter().find(|r| !r.is_absolute()) {
                    return Err(bad(
                        "mount_roots",
                        format!("{} is not an absolute path", r.display()),
                    ));
                }
                roots
            }
        };
        let led = match &file.led {
            None => defaults.led,
            Some(text) => text.parse().map_err(|e| bad("led", format!("{e}")))?,
        };
        let hops = file.hops.unwrap_or(DEFAULT_HOPS);
        let carry = match &file.carry {
            None => defaults.carry,
            Some(text) => text.parse().map_err(|e| bad("carry", format!("{e}")))?,
        };
        if carry == carry::CarryMode::Connected && hops == 0 {
            return Err(bad(
                "carry",
                "\"connected\" carries through follows: it needs hops of 1 or more".into(),
            ));
        }
        if !file.sites.is_empty() && hops < 2 {
            return Err(bad(
                "sites",
                "a site's follows are 2 hops away: it needs hops of 2 or more".into(),
            ));
        }
        let carry_max = match file.carry_max {
            None => defaults.carry_max,
            Some(n) if n <= carry::CARRY_MAX_LIMIT => n,
            Some(_) => {
                return Err(bad(
                    "carry_max",
                    format!("at most {}", carry::CARRY_MAX_LIMIT),
                ))
            }
        };
        let blob_max = file.blob_max.unwrap_or(DEFAULT_BLOB_MAX);
        let blob_quota = match &file.blob_quota {
            None => None,
            Some(QuotaText::Bytes(0)) => {
                return Err(bad(
                    "blob_quota",
                    "0 keeps no blob at all; leave the key out for no quota".into(),
                ))
            }
            Some(QuotaText::Bytes(b)) if *b < blob_max => {
                return Err(bad(
                    "blob_quota",
                    format!("{b} bytes is less than blob_max ({blob_max}): a blob that large would be removed at once"),
                ))
            }
            Some(QuotaText::Bytes(b)) => Some(BlobQuota::Bytes(*b)),
            Some(QuotaText::Text(t)) => {
                let p = t
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .ok_or_else(|| {
                        bad("blob_quota", format!("{t:?} is neither bytes nor a share like \"50%\""))
                    })?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(bad(
                        "blob_quota",
                        format!("{t:?}: a share of the disk is more than 0% and at most 100%"),
                    ));
                }
                Some(BlobQuota::Percent(p))
            }
        };
        let public_address = match &file.public_address {
            None => None,
            Some(text) => Some(
                text.parse::<Host>()
                    .map_err(|e| bad("public_address", format!("{e}")))?,
            ),
        };
        if let Some(f) = file.web_password_file.as_ref().filter(|f| !f.is_absolute()) {
            return Err(bad(
                "web_password_file",
                format!("{} is not an absolute path", f.display()),
            ));
        }
        Ok(Settings {
            http: file.http,
            web_password_file: file.web_password_file,
            carry,
            carry_max,
            sites: feeds("sites", &file.sites)?,
            mount_roots,
            led,
            public_address,
            listen: file.listen.unwrap_or(defaults.listen),
            connect: file
                .connect
                .iter()
                .map(|s| s.parse().map_err(|e| bad("connect", format!("{s}: {e}"))))
                .collect::<Result<_, _>>()?,
            replicate: feeds("replicate", &file.replicate)?,
            hops,
            block: feeds("block", &file.block)?,
            discovery: file.discovery.unwrap_or(true),
            blob_max,
            blob_quota,
            keep: feeds("keep", &file.keep)?,
            network_key,
            handshake_timeout: match file.handshake_timeout {
                None => defaults.handshake_timeout,
                Some(t) if t > 0.0 && t <= 3600.0 => std::time::Duration::from_secs_f64(t),
                Some(_) => {
                    return Err(bad(
                        "handshake_timeout",
                        "must be between 0 and 3600 seconds".into(),
                    ))
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_means_defaults_and_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssb-node.toml");
        let s = Settings::load(&path, false).unwrap();
        assert_eq!(s.hops, 2);
        assert_eq!(s.blob_max, 5 * 1024 * 1024);
        assert!(Settings::load(&path, true).is_err());

        std::fs::write(&path, "hops = 1\nblob_max = 10\ndiscovery = false\n").unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!((s.hops, s.blob_max, s.discovery), (1, 10, false));

        std::fs::write(&path, "hopz = 1\n").unwrap();
        let e = Settings::load(&path, false).unwrap_err().to_string();
        assert!(e.contains("hopz"), "{e}");

        std::fs::write(&path, "replicate = [\"@nope\"]\n").unwrap();
        let e = Settings::load(&path, false).unwrap_err().to_string();
        assert!(e.contains("replicate: not a feed id: @nope"), "{e}");
    }

    #[test]
    fn the_carrying_policy_has_defaults_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssb-node.toml");
        let s = Settings::load(&path, false).unwrap();
        assert_eq!(s.carry, carry::CarryMode::Follows);
        assert_eq!(s.carry_max, carry::DEFAULT_CARRY_MAX);
        assert!(s.sites.is_empty());
        let feed = crate::feed::Keypair::generate().id();
        std::fs::write(
            &path,
            format!("carry = \"connected\"\ncarry_max = 5\nsites = [\"{feed}\"]\n"),
        )
        .unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!((s.carry, s.carry_max), (carry::CarryMode::Connected, 5));
        assert_eq!(s.sites, [feed]);
        for (text, why) in [
            ("carry = \"all\"\n", "carry: unknown carrying mode"),
            (
                "carry = \"connected\"\nhops = 0\n",
                "carry: \"connected\" carries through follows",
            ),
            ("carry_max = 100001\n", "carry_max: at most 100000"),
            ("sites = [\"@x\"]\n", "sites: not a feed id: @x"),
            (
                &format!("sites = [\"{feed}\"]\nhops = 1\n"),
                "sites: a site's follows are 2 hops away",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Settings::load(&path, false).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn mount_roots_and_led_have_defaults_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssb-node.toml");
        let s = Settings::load(&path, false).unwrap();
        let roots: Vec<&str> = s.mount_roots.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(roots, ["/media", "/run/media", "/mnt"]);
        assert_eq!(s.led, LedSpec::None);

        std::fs::write(
            &path,
            "mount_roots = [\"/srv/sticks\"]\nled = \"sysfs:ACT\"\n",
        )
        .unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!(s.mount_roots, [PathBuf::from("/srv/sticks")]);
        assert_eq!(s.led.to_string(), "sysfs:ACT");

        std::fs::write(&path, "mount_roots = []\n").unwrap();
        assert!(Settings::load(&path, false).unwrap().mount_roots.is_empty());

        std::fs::write(&path, "mount_roots = [\"sticks\"]\n").unwrap();
        let e = Settings::load(&path, false).unwrap_err().to_string();
        assert!(
            e.contains("mount_roots: sticks is not an absolute path"),
            "{e}"
        );

        std::fs::write(&path, "led = \"blink:7\"\n").unwrap();
        let e = Settings::load(&path, false).unwrap_err().to_string();
        assert!(e.contains("led: unknown LED backend"), "{e}");
    }

    #[test]
    fn the_blob_quota_is_bytes_or_a_share_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssb-node.toml");
        let s = Settings::load(&path, false).unwrap();
        assert_eq!((s.blob_quota, s.policy().blob_quota), (None, None));
        let feed = crate::feed::Keypair::generate().id();
        std::fs::write(
            &path,
            format!("blob_quota = 100000000\nkeep = [\"{feed}\"]\n"),
        )
        .unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!(s.blob_quota, Some(BlobQuota::Bytes(100_000_000)));
        assert_eq!(s.policy().blob_quota, Some(100_000_000));
        assert_eq!(s.policy().keep, [feed]);
        std::fs::write(&path, "blob_quota = \"25%\"\n").unwrap();
        let s = Settings::load(&path, false).unwrap();
        assert_eq!(s.blob_quota, Some(BlobQuota::Percent(25.0)));
        assert_eq!(s.policy_on(8_000_000_000).blob_quota, Some(2_000_000_000));
        for (text, why) in [
            ("blob_quota = 0\n", "blob_quota: 0 keeps no blob at all"),
            (
                "blob_quota = 1000\n",
                "blob_quota: 1000 bytes is less than blob_max (5242880)",
            ),
            ("blob_quota = \"0%\"\n", "more than 0% and at most 100%"),
            ("blob_quota = \"150%\"\n", "more than 0% and at most 100%"),
            ("blob_quota = \"lots\"\n", "is neither bytes nor a share"),
            ("keep = [\"@x\"]\n", "keep: not a feed id: @x"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Settings::load(&path, false).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_link_to_a_missing_file_means_defaults() {
        // The SD image links the data dir's ssb-node.toml to the boot
        // partition's, which the user may delete.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssb-node.toml");
        std::os::unix::fs::symlink(dir.path().join("gone.toml"), &path).unwrap();
        assert_eq!(Settings::load(&path, false).unwrap().hops, DEFAULT_HOPS);
    }

    #[test]
    fn the_image_config_template_names_real_keys_and_true_defaults() {
        // images/rootfs/boot/firmware/ssb-node.toml: every line commented
        // out. Uncommented, it must name only known keys of the right types,
        // and the values it calls defaults must be the defaults.
        let template = include_str!("../../../images/rootfs/boot/firmware/ssb-node.toml");
        let uncommented: String = template
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let file: ConfigFile = toml::from_str(&uncommented).unwrap();
        let d = Settings::default();
        assert_eq!(file.listen.as_deref(), Some(d.listen.as_str()));
        assert_eq!(file.hops, Some(d.hops));
        assert_eq!(file.discovery, Some(d.discovery));
        assert_eq!(file.blob_max, Some(d.blob_max));
        assert_eq!(
            file.handshake_timeout,
            Some(d.handshake_timeout.as_secs_f64())
        );
        assert_eq!(file.carry_max, Some(d.carry_max));
        let only_defaults = ConfigFile {
            connect: vec![],
            replicate: vec![],
            block: vec![],
            sites: vec![],
            keep: vec![],
            ..file
        };
        let s = Settings::from_file(only_defaults, "template").unwrap();
        assert_eq!(s.network_key.0, d.network_key.0);
        // What the image sets: the LED and the carrying policy.
        let set: ConfigFile = toml::from_str(template).unwrap();
        let s = Settings::from_file(set, "template").unwrap();
        assert_eq!(s.carry, carry::CarryMode::Connected);
        assert_eq!(s.led.to_string(), "sysfs:ACT");
        assert_eq!(s.blob_quota, Some(BlobQuota::Percent(50.0)));
    }
}
