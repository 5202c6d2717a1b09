//! The bounds a reader enforces (and a writer keeps to).
//!
//! Every size is `u64` and every count `u32`, so the same limits mean the
//! same thing on a 32-bit Pi as on a 64-bit one.

use crate::error::BundleError;

/// FAT32's largest file: 4 GiB - 1 bytes.
pub const FAT32_MAX_FILE: u64 = 0xFFFF_FFFF;

/// Bounds on what a bundle may contain. [`Limits::default`] is what FORMAT.md
/// calls the standard limits; a writer that keeps to them writes bundles every
/// default reader accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest `manifest.json`, in bytes.
    pub max_manifest_bytes: u64,
    /// Most feeds in one bundle.
    pub max_feeds: u32,
    /// Most blobs in one bundle.
    pub max_blobs: u32,
    /// Longest feed line, in bytes, without its newline.
    pub max_line_bytes: u64,
    /// Largest blob, in bytes.
    pub max_blob_bytes: u64,
    /// Largest uncompressed tar stream, in bytes (headers and padding
    /// included).
    pub max_tar_bytes: u64,
    /// Largest zstd window a reader allocates, as a power of two.
    pub window_log_max: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 16 * 1024 * 1024,
            max_feeds: 100_000,
            max_blobs: 100_000,
            max_line_bytes: 64 * 1024,
            max_blob_bytes: 64 * 1024 * 1024,
            max_tar_bytes: FAT32_MAX_FILE,
            window_log_max: 23,
        }
    }
}

impl Limits {
    /// Checks one feed line as a writer must: not empty, no newline inside,
    /// at most `max_line_bytes`. `feed` and `seq` name it in the error.
    pub fn check_line(&self, line: &[u8], feed: &str, seq: u32) -> Result<(), BundleError> {
        if line.is_empty() {
            return Err(BundleError::EmptyLine {
                feed: feed.to_owned(),
                seq,
            });
        }
        if line.contains(&b'\n') {
            return Err(BundleError::NewlineInLine {
                feed: feed.to_owned(),
                seq,
            });
        }
        if line.len() as u64 > self.max_line_bytes {
            return Err(BundleError::LineTooLong {
                feed: feed.to_owned(),
                seq,
                max: self.max_line_bytes,
            });
        }
        Ok(())
    }
}
