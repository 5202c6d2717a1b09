//! Quick checks that the writer's pass reads the lines the planner saw.
//!
//! The manifest comes first and states each feed entry's sha256, so the
//! exporter reads its lines twice: a [`crate::Planner`] hashes them, then a
//! [`crate::BundleWriter`] writes them, and must not write other bytes (a
//! store that changed between the passes). Checking that with sha256 again
//! costs as much as the planner's hashing; the planner also takes an xxh3-64
//! of each entry (some 20 times faster), and a writer given these
//! [`LineChecks`] compares those instead. A reader still checks the sha256
//! of every entry, so even an xxh3 collision could not pass wrong bytes as
//! the manifest's.

use sha2::{Digest as _, Sha256};
use xxhash_rust::xxh3::Xxh3;

use crate::ids::hex;

/// The xxh3-64 of each planned feed entry's bytes, in manifest order, from
/// [`crate::Planner::finish_with_checks`] for
/// [`crate::BundleWriter::check_lines_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineChecks(pub(crate) Vec<u64>);

impl LineChecks {
    /// How many feed entries they cover.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether they cover no feed entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The running digest of the feed entry being written.
pub(crate) enum LineDigest {
    /// sha256, compared with the manifest.
    Sha256(Sha256),
    /// xxh3-64, compared with the planner's [`LineChecks`].
    Xxh3(Box<Xxh3>),
}

impl LineDigest {
    /// Adds bytes of the entry.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            LineDigest::Sha256(h) => h.update(bytes),
            LineDigest::Xxh3(h) => h.update(bytes),
        }
    }

    /// The digest so far as hex, and a fresh digest of the same kind.
    pub(crate) fn take_hex(&mut self) -> String {
        match self {
            LineDigest::Sha256(h) => hex(&std::mem::take(h).finalize()),
            LineDigest::Xxh3(h) => {
                let d = h.digest();
                h.reset();
                xxh3_hex(d)
            }
        }
    }
}

/// An xxh3-64 as the 16 hex digits error messages show.
pub(crate) fn xxh3_hex(d: u64) -> String {
    format!("xxh3:{d:016x}")
}
