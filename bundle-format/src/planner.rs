//! The first of the writer's two passes: measure what will go into a bundle,
//! stop at a size cap, and produce the manifest.
//!
//! A tar header states its entry's size before the data, and the manifest
//! (the first entry) states every entry's size and digest. So the exporter
//! reads its messages twice: once through a [`Planner`] (sizes, digests,
//! where the cap falls), then again through a [`crate::BundleWriter`]. Both
//! passes stream; the planner keeps one running hash and one small record per
//! feed and blob, never the lines.
//!
//! The cap bounds the compressed file. zstd never grows data by more than
//! [`compress_bound`] allows, so a bundle whose uncompressed tar stream `n`
//! has `compress_bound(n) <= cap` fits, whatever the data. The bound is
//! conservative (SSB JSON compresses several times), which costs a few more,
//! smaller bundles, never a file over the cap.

use sha2::{Digest as _, Sha256};
use xxhash_rust::xxh3::Xxh3;

use crate::error::BundleError;
use crate::header::BLOCK;
use crate::ids::{blob_hash, feed_key, hex};
use crate::limits::Limits;
use crate::line_check::LineChecks;
use crate::manifest::{entry_tar_bytes, BlobEntry, FeedEntry, Manifest};
use crate::trailer::TRAILER_LEN;

/// The most a zstd frame of `n` input bytes can take: zstd's own
/// `ZSTD_compressBound` plus room for the frame header and checksum.
pub fn compress_bound(n: u64) -> u64 {
    n.saturating_add(n >> 8).saturating_add(512)
}

/// Whether a line, blob or feed went into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// It is in the plan.
    Added,
    /// It would break the cap or a limit; it is not in the plan. Finish this
    /// bundle and start the next one with it.
    Full,
}

/// The feed being measured.
struct Open {
    entry: FeedEntry,
    lines: u64,
    hasher: Sha256,
    /// The entry's xxh3-64, for the writer's check (see `line_check.rs`).
    quick: Box<Xxh3>,
    /// What its item adds to the manifest at most.
    manifest_bytes: u64,
}

/// Measures a bundle's contents against a size cap; see the module docs.
pub struct Planner {
    cap: u64,
    limits: Limits,
    manifest: Manifest,
    open: Option<Open>,
    /// Upper bound of the manifest's JSON length.
    manifest_bytes: u64,
    /// Tar bytes of all entries but the manifest (trailer and end included).
    rest_bytes: u64,
    /// The xxh3-64 of each feed entry ended so far.
    checks: LineChecks,
}

/// The JSON length of a value (only integers and strings: cannot fail).
fn json_len<T: serde::Serialize>(v: &T) -> u64 {
    serde_json::to_vec(v).map_or(0, |v| v.len() as u64)
}

impl Planner {
    /// A planner for a bundle by `author` made at `created` (ms), whose file
    /// must not exceed `cap` bytes (at most [`crate::FAT32_MAX_FILE`] is sensible on
    /// a FAT32 stick), within `limits`.
    pub fn new(
        author: &str,
        created: u64,
        cap: u64,
        limits: Limits,
    ) -> Result<Planner, BundleError> {
        let manifest = Manifest::new(author.to_string(), created);
        if feed_key(author).is_none() {
            return Err(BundleError::Misuse(format!(
                "author {author:?} is not a feed id"
            )));
        }
        // The empty manifest with `created` widened to the largest number.
        let widest = Manifest::new(author.to_string(), u64::MAX);
        Ok(Planner {
            cap,
            limits,
            manifest_bytes: json_len(&widest),
            manifest,
            open: None,
            rest_bytes: entry_tar_bytes(TRAILER_LEN) + 2 * BLOCK,
            checks: LineChecks::default(),
        })
    }

    /// The tar stream length if the plan ended now, with the open feed
    /// holding `open_bytes` and the manifest `manifest_bytes` long.
    fn total(&self, manifest_bytes: u64, open_bytes: Option<u64>) -> u64 {
        entry_tar_bytes(manifest_bytes)
            .saturating_add(self.rest_bytes)
            .saturating_add(open_bytes.map_or(0, entry_tar_bytes))
    }

    fn fits(&self, manifest_bytes: u64, open_bytes: Option<u64>) -> bool {
        let total = self.total(manifest_bytes, open_bytes);
        manifest_bytes <= self.limits.max_manifest_bytes
            && total <= self.limits.max_tar_bytes
            && compress_bound(total) <= self.cap
    }

    /// Starts the next feed entry: messages of `feed` from sequence `first`
    /// on. Ends the open feed first.
    pub fn begin_feed(&mut self, feed: &str, first: u32) -> Result<Fit, BundleError> {
        self.end_feed();
        if feed_key(feed).is_none() {
            return Err(BundleError::Misuse(format!("{feed:?} is not a feed id")));
        }
        if first == 0 {
            return Err(BundleError::Misuse(format!("{feed}: sequences start at 1")));
        }
        if self.manifest.feeds.iter().any(|f| f.feed == feed) {
            return Err(BundleError::Misuse(format!(
                "{feed} is already in this bundle"
            )));
        }
        let widest = FeedEntry {
            feed: feed.to_string(),
            first: u32::MAX,
            last: u32::MAX,
            bytes: u64::MAX,
            sha256: "0".repeat(64),
        };
        let item = json_len(&widest) + 1; // and a comma
        let n = self.manifest.feeds.len() as u64;
        if n >= u64::from(self.limits.max_feeds) || !self.fits(self.manifest_bytes + item, Some(0))
        {
            return Ok(Fit::Full);
        }
        self.open = Some(Open {
            entry: FeedEntry {
                feed: feed.to_string(),
                first,
                last: first,
                bytes: 0,
                sha256: String::new(),
            },
            lines: 0,
            hasher: Sha256::new(),
            quick: Box::new(Xxh3::new()),
            manifest_bytes: item,
        });
        Ok(Fit::Added)
    }

    /// Adds the next message of the open feed: its exact signed JSON, one
    /// line without the newline.
    pub fn line(&mut self, line: &[u8]) -> Result<Fit, BundleError> {
        let Some(open) = &self.open else {
            return Err(BundleError::Misuse("line() without begin_feed()".into()));
        };
        let seq64 = u64::from(open.entry.first) + open.lines;
        let seq = u32::try_from(seq64).unwrap_or(u32::MAX);
        self.limits.check_line(line, &open.entry.feed, seq)?;
        let bytes = open.entry.bytes + line.len() as u64 + 1;
        if seq64 > u64::from(u32::MAX)
            || !self.fits(self.manifest_bytes + open.manifest_bytes, Some(bytes))
        {
            return Ok(Fit::Full);
        }
        if let Some(open) = &mut self.open {
            open.hasher.update(line);
            open.hasher.update(b"\n");
            open.quick.update(line);
            open.quick.update(b"\n");
            open.entry.bytes = bytes;
            open.entry.last = seq;
            open.lines += 1;
        }
        Ok(Fit::Added)
    }

    /// Ends the open feed (a feed with no lines is left out).
    pub fn end_feed(&mut self) {
        if let Some(open) = self.open.take() {
            if open.lines > 0 {
                let mut entry = open.entry;
                entry.sha256 = hex(&open.hasher.finalize());
                self.checks.0.push(open.quick.digest());
                self.rest_bytes += entry_tar_bytes(entry.bytes);
                self.manifest_bytes += open.manifest_bytes;
                self.manifest.feeds.push(entry);
            }
        }
    }

    /// Adds a blob of `bytes` bytes (after all feeds: this ends the open one).
    pub fn blob(&mut self, id: &str, bytes: u64) -> Result<Fit, BundleError> {
        self.end_feed();
        if blob_hash(id).is_none() {
            return Err(BundleError::Misuse(format!("{id:?} is not a blob id")));
        }
        if self.manifest.blobs.iter().any(|b| b.id == id) {
            return Err(BundleError::Misuse(format!(
                "blob {id} is already in this bundle"
            )));
        }
        if bytes > self.limits.max_blob_bytes {
            return Err(BundleError::LimitExceeded {
                what: "blob bytes",
                value: bytes,
                max: self.limits.max_blob_bytes,
            });
        }
        let widest = BlobEntry {
            id: id.to_string(),
            bytes: u64::MAX,
        };
        let item = json_len(&widest) + 1;
        let n = self.manifest.blobs.len() as u64;
        let rest = self.rest_bytes.saturating_add(entry_tar_bytes(bytes));
        let total = entry_tar_bytes(self.manifest_bytes + item).saturating_add(rest);
        if n >= u64::from(self.limits.max_blobs)
            || self.manifest_bytes + item > self.limits.max_manifest_bytes
            || total > self.limits.max_tar_bytes
            || compress_bound(total) > self.cap
        {
            return Ok(Fit::Full);
        }
        self.rest_bytes = rest;
        self.manifest_bytes += item;
        self.manifest.blobs.push(BlobEntry {
            id: id.to_string(),
            bytes,
        });
        Ok(Fit::Added)
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.manifest.feeds.is_empty()
            && self.manifest.blobs.is_empty()
            && self.open.as_ref().is_none_or(|o| o.lines == 0)
    }

    /// The upper bound of the finished bundle's file size so far.
    pub fn file_bound(&self) -> u64 {
        let open = self.open.as_ref().map(|o| o.entry.bytes);
        let extra = self.open.as_ref().map_or(0, |o| o.manifest_bytes);
        compress_bound(self.total(self.manifest_bytes + extra, open))
    }

    /// Ends the plan: the manifest for [`crate::BundleWriter::new`].
    pub fn finish(self) -> Result<Manifest, BundleError> {
        Ok(self.finish_with_checks()?.0)
    }

    /// Ends the plan: the manifest, and the checks for
    /// [`crate::BundleWriter::check_lines_with`] (so the writer need not
    /// compute every line's sha256 again).
    pub fn finish_with_checks(mut self) -> Result<(Manifest, LineChecks), BundleError> {
        self.end_feed();
        let m = self.manifest;
        m.validate(&self.limits)?;
        let len = m.to_json().len() as u64;
        debug_assert!(len <= self.manifest_bytes);
        debug_assert!(compress_bound(m.tar_size(len)) <= self.cap);
        debug_assert_eq!(self.checks.len(), m.feeds.len());
        Ok((m, self.checks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{blob_id, feed_id};
    use crate::limits::FAT32_MAX_FILE;
    use ed25519_dalek::SigningKey;

    fn id(n: u8) -> String {
        feed_id(&SigningKey::from_bytes(&[n; 32]).verifying_key())
    }

    #[test]
    fn plans_ranges_digests_and_stops_at_the_cap() {
        let cap = 64 * 1024;
        let mut p = Planner::new(&id(1), 1_000, cap, Limits::default()).unwrap();
        assert_eq!(p.begin_feed(&id(2), 5).unwrap(), Fit::Added);
        let line = vec![b'x'; 1000];
        let mut added = 0u32;
        while p.line(&line).unwrap() == Fit::Added {
            added += 1;
            assert!(p.file_bound() <= cap);
        }
        assert!(added > 50, "{added}");
        assert_eq!(p.blob(&blob_id(&[1; 32]), 100_000).unwrap(), Fit::Full);
        let m = p.finish().unwrap();
        let f = &m.feeds[0];
        assert_eq!(
            (f.first, f.last, f.bytes),
            (5, 4 + added, u64::from(added) * 1001)
        );
        let mut h = Sha256::new();
        for _ in 0..added {
            h.update(&line);
            h.update(b"\n");
        }
        assert_eq!(f.sha256, hex(&h.finalize()));
        assert!(compress_bound(m.tar_size(m.to_json().len() as u64)) <= cap);
    }

    #[test]
    fn refuses_bad_lines_and_drops_empty_feeds() {
        let mut p = Planner::new(&id(1), 0, FAT32_MAX_FILE, Limits::default()).unwrap();
        assert!(matches!(p.line(b"x"), Err(BundleError::Misuse(_))));
        p.begin_feed(&id(2), 1).unwrap();
        assert!(matches!(
            p.line(b""),
            Err(BundleError::EmptyLine { seq: 1, .. })
        ));
        assert!(matches!(
            p.line(b"a\nb"),
            Err(BundleError::NewlineInLine { .. })
        ));
        assert!(matches!(
            p.line(&vec![b'x'; 65 * 1024]),
            Err(BundleError::LineTooLong { .. })
        ));
        p.begin_feed(&id(3), 1).unwrap();
        p.line(b"{}").unwrap();
        assert!(matches!(
            p.begin_feed(&id(3), 2),
            Err(BundleError::Misuse(_))
        ));
        let m = p.finish().unwrap();
        assert_eq!(m.feeds.len(), 1);
        assert_eq!(m.feeds[0].feed, id(3));
    }
}
