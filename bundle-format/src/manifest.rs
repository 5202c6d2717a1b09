//! The manifest: the first entry of every bundle, saying who made it, when,
//! and exactly what follows (per feed the sequence range, byte count and
//! sha256 of its entry; per blob its id and size).
//!
//! From the manifest alone a reader knows every entry's name, size and
//! digest, and so the exact length of the tar stream: nothing else in a
//! bundle is free-form.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::header::{padded, BLOCK, MAX_OCTAL11};
use crate::ids::{blob_hash, feed_key, hex, parse_hex32};
use crate::limits::Limits;
use crate::trailer::TRAILER_LEN;

/// The manifest's `format` value.
pub const FORMAT: &str = "ssb-sneakernet-bundle";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// The first entry's name.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The last entry's name.
pub const TRAILER_NAME: &str = "trailer.json";

/// A bundle's manifest, as stored (compact JSON, these field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for bundles this crate writes.
    pub version: u32,
    /// The exporting node's feed id; its key signs the trailer.
    pub author: String,
    /// When the bundle was made, ms since the Unix epoch.
    pub created: u64,
    /// The feed entries, in the order they appear in the tar.
    pub feeds: Vec<FeedEntry>,
    /// The blob entries, in the order they appear in the tar.
    pub blobs: Vec<BlobEntry>,
}

/// One feed's entry: messages `first..=last` of `feed`, one per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedEntry {
    /// The feed id (`@…ed25519`).
    pub feed: String,
    /// Sequence number of the first line (at least 1).
    pub first: u32,
    /// Sequence number of the last line (at least `first`).
    pub last: u32,
    /// The entry's size: all lines with their newlines.
    pub bytes: u64,
    /// sha256 of the entry's bytes, lower-case hex.
    pub sha256: String,
}

impl FeedEntry {
    /// How many messages (lines) the range holds.
    pub fn count(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }
}

/// One blob's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobEntry {
    /// The blob id (`&…sha256`); the entry's bytes must hash to it.
    pub id: String,
    /// The blob's size in bytes.
    pub bytes: u64,
}

/// The `format` and `version` fields alone, read before the strict parse so
/// a newer bundle gets a clear "unsupported version".
#[derive(Deserialize)]
struct Probe {
    format: String,
    version: u64,
}

/// The tar entry name of the feed entry at `index` in the manifest.
pub fn feed_entry_name(index: usize) -> String {
    format!("feeds/{index}.jsonl")
}

/// The tar entry name of the blob whose sha256 is `hash`.
pub fn blob_entry_name(hash: &[u8; 32]) -> String {
    format!("blobs/{}", hex(hash))
}

/// Bytes one entry of `size` takes in the tar stream: header and padding.
pub fn entry_tar_bytes(size: u64) -> u64 {
    BLOCK.saturating_add(padded(size))
}

impl Manifest {
    /// An empty manifest by `author` (a feed id), made at `created` (ms).
    pub fn new(author: String, created: u64) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            author,
            created,
            feeds: Vec::new(),
            blobs: Vec::new(),
        }
    }

    /// The stored form: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings and integers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a stored manifest.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Manifest, BundleError> {
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::InvalidManifest(format!("not a manifest: {e}")))?;
        if probe.format != FORMAT || probe.version != u64::from(VERSION) {
            return Err(BundleError::UnsupportedVersion {
                format: probe.format,
                version: probe.version,
            });
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
        m.validate(limits)?;
        let len = bytes.len() as u64;
        m.check_tar_size(len, limits)?;
        Ok(m)
    }

    /// The modification time every tar header of this bundle carries.
    pub fn mtime(&self) -> u64 {
        self.created / 1000
    }

    /// Messages carried, over all feeds.
    pub fn messages(&self) -> u64 {
        self.feeds.iter().map(FeedEntry::count).sum()
    }

    /// The exact length of the uncompressed tar stream, given the length of
    /// the manifest's own JSON.
    pub fn tar_size(&self, manifest_len: u64) -> u64 {
        let feeds = self
            .feeds
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(entry_tar_bytes(f.bytes)));
        let blobs = self
            .blobs
            .iter()
            .fold(0u64, |acc, b| acc.saturating_add(entry_tar_bytes(b.bytes)));
        entry_tar_bytes(manifest_len)
            .saturating_add(feeds)
            .saturating_add(blobs)
            .saturating_add(entry_tar_bytes(TRAILER_LEN))
            .saturating_add(2 * BLOCK)
    }

    /// Checks the whole tar stream stays within the limit.
    pub(crate) fn check_tar_size(
        &self,
        manifest_len: u64,
        limits: &Limits,
    ) -> Result<(), BundleError> {
        if manifest_len > limits.max_manifest_bytes {
            return Err(BundleError::OversizeEntry {
                name: MANIFEST_NAME.into(),
                size: manifest_len,
                max: limits.max_manifest_bytes,
            });
        }
        let total = self.tar_size(manifest_len);
        if total > limits.max_tar_bytes {
            return Err(BundleError::LimitExceeded {
                what: "uncompressed tar stream bytes",
                value: total,
                max: limits.max_tar_bytes,
            });
        }
        Ok(())
    }

    /// Checks every rule of FORMAT.md that the manifest alone can break.
    pub fn validate(&self, limits: &Limits) -> Result<(), BundleError> {
        let bad = |s: String| Err(BundleError::InvalidManifest(s));
        if self.format != FORMAT || self.version != VERSION {
            return Err(BundleError::UnsupportedVersion {
                format: self.format.clone(),
                version: u64::from(self.version),
            });
        }
        if feed_key(&self.author).is_none() {
            return bad(format!("author {:?} is not a feed id", self.author));
        }
        if self.mtime() > MAX_OCTAL11 {
            return bad(format!("created {} is too far in the future", self.created));
        }
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if count(self.feeds.len()) > u64::from(limits.max_feeds) {
            return Err(BundleError::LimitExceeded {
                what: "feeds in the manifest",
                value: count(self.feeds.len()),
                max: u64::from(limits.max_feeds),
            });
        }
        if count(self.blobs.len()) > u64::from(limits.max_blobs) {
            return Err(BundleError::LimitExceeded {
                what: "blobs in the manifest",
                value: count(self.blobs.len()),
                max: u64::from(limits.max_blobs),
            });
        }
        let mut feeds = HashSet::with_capacity(self.feeds.len());
        for f in &self.feeds {
            if feed_key(&f.feed).is_none() {
                return bad(format!("{:?} is not a feed id", f.feed));
            }
            if !feeds.insert(f.feed.as_str()) {
                return bad(format!("feed {} is listed twice", f.feed));
            }
            if f.first == 0 || f.last < f.first {
                return bad(format!(
                    "feed {}: range {}..={} is not a range of sequence numbers",
                    f.feed, f.first, f.last
                ));
            }
            // Each line holds at least one byte and a newline, and at most
            // the line limit and a newline.
            let min = f.count() * 2;
            let max = f.count().saturating_mul(limits.max_line_bytes + 1);
            if f.bytes < min || f.bytes > max {
                return bad(format!(
                    "feed {}: {} bytes cannot hold {} lines",
                    f.feed,
                    f.bytes,
                    f.count()
                ));
            }
            if parse_hex32(&f.sha256).is_none() {
                return bad(format!(
                    "feed {}: sha256 {:?} is not 64 hex digits",
                    f.feed, f.sha256
                ));
            }
        }
        let mut blobs = HashSet::with_capacity(self.blobs.len());
        for b in &self.blobs {
            let Some(hash) = blob_hash(&b.id) else {
                return bad(format!("{:?} is not a blob id", b.id));
            };
            if !blobs.insert(hash) {
                return bad(format!("blob {} is listed twice", b.id));
            }
            if b.bytes > limits.max_blob_bytes {
                return Err(BundleError::OversizeEntry {
                    name: blob_entry_name(&hash),
                    size: b.bytes,
                    max: limits.max_blob_bytes,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::blob_id;

    fn feed(n: u8) -> String {
        crate::ids::feed_id(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key())
    }

    fn sample() -> Manifest {
        let mut m = Manifest::new(feed(1), 1_700_000_000_000);
        m.feeds.push(FeedEntry {
            feed: feed(2),
            first: 1,
            last: 3,
            bytes: 30,
            sha256: "0".repeat(64),
        });
        m.blobs.push(BlobEntry {
            id: blob_id(&[9; 32]),
            bytes: 5,
        });
        m
    }

    #[test]
    fn round_trips_and_sizes() {
        let m = sample();
        let json = m.to_json();
        assert_eq!(Manifest::from_json(&json, &Limits::default()).unwrap(), m);
        let len = json.len() as u64;
        assert_eq!(
            m.tar_size(len),
            512 + padded(len) + 512 + 512 + 512 + 512 + 512 + padded(TRAILER_LEN) + 1024
        );
    }

    #[test]
    fn refuses_broken_manifests() {
        let l = Limits::default();
        let check = |f: &dyn Fn(&mut Manifest)| {
            let mut m = sample();
            f(&mut m);
            Manifest::from_json(&m.to_json(), &l).unwrap_err()
        };
        assert!(matches!(
            check(&|m| m.version = 2),
            BundleError::UnsupportedVersion { version: 2, .. }
        ));
        assert!(matches!(
            check(&|m| m.author = "@x.ed25519".into()),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.feeds[0].first = 0),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.feeds[0].last = 0),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.feeds[0].bytes = 5),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.feeds[0].sha256 = "0".repeat(63)),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.feeds.push(m.feeds[0].clone())),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.blobs.push(m.blobs[0].clone())),
            BundleError::InvalidManifest(_)
        ));
        assert!(matches!(
            check(&|m| m.blobs[0].bytes = u64::MAX),
            BundleError::OversizeEntry { .. }
        ));
        assert!(matches!(
            check(&|m| m.feeds[0].feed = feed(1).replace(".ed25519", "/../x")),
            BundleError::InvalidManifest(_)
        ));
        let extra = br#"{"format":"ssb-sneakernet-bundle","version":1,"author":"x","created":0,"feeds":[],"blobs":[],"more":1}"#;
        assert!(matches!(
            Manifest::from_json(extra, &l),
            Err(BundleError::InvalidManifest(_))
        ));
        let small = Limits {
            max_feeds: 0,
            ..Limits::default()
        };
        assert!(matches!(
            Manifest::from_json(&sample().to_json(), &small),
            Err(BundleError::LimitExceeded { .. })
        ));
    }
}
