//! The second pass: write a planned bundle, streaming.
//!
//! [`BundleWriter::new`] writes the manifest; then the caller hands over, in
//! manifest order, every line of every feed ([`BundleWriter::line`]) and then
//! every blob ([`BundleWriter::blob`]); [`BundleWriter::finish`] signs and
//! closes. The writer checks everything against the manifest as it goes (a
//! store that changed between the passes is caught, not written) and holds
//! no more than one 64 KiB copy buffer, a 128 KiB chunk of input, zstd's
//! compression contexts and jobs (see `compressor.rs`: compression runs on
//! zstd's worker threads beside the reading and hashing; a few MiB at the
//! default 2 MiB window and two workers), and the manifest.

use std::io::{self, Read, Write};

use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};

use crate::compressor::Compressor;
use crate::error::BundleError;
use crate::header::{canonical, padding, BLOCK};
use crate::ids::{blob_hash, feed_id, hex};
use crate::limits::Limits;
use crate::line_check::{xxh3_hex, LineChecks, LineDigest};
use crate::manifest::{blob_entry_name, feed_entry_name, Manifest, MANIFEST_NAME, TRAILER_NAME};
use crate::name::BundleName;
use crate::trailer::Trailer;

/// The most zstd workers [`WriterOptions::workers`] may ask for.
const MAX_WORKERS: u32 = 16;

/// How to compress.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// zstd level, 1..=19 (default 3: fast on a Pi, still ~5x on SSB JSON).
    pub level: i32,
    /// The zstd window, as a power of two (default 21, what zstd itself
    /// picks at level 3: 2 MiB). A larger window finds few more matches in
    /// SSB JSON and blobs but costs memory on both sides and time (its
    /// tables miss the CPU caches more). Kept within the limits'
    /// `window_log_max`.
    pub window_log: u32,
    /// zstd worker threads compressing beside the caller (default 2; 0
    /// compresses on the caller's thread). Each holds a compression context
    /// and a few 1 MiB jobs; the bundle stays one frame, a little larger
    /// with more workers (each job starts from only a part of the window).
    pub workers: u32,
    /// The limits the bundle must keep to (by default those every default
    /// reader accepts). The zstd window is kept within `window_log_max`.
    pub limits: Limits,
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions {
            level: 3,
            window_log: 21,
            workers: 2,
            limits: Limits::default(),
        }
    }
}

/// What [`BundleWriter::finish`] made.
#[derive(Debug)]
pub struct Written<W> {
    /// The output, flushed.
    pub out: W,
    /// The bundle's name (use [`BundleName::file_name`] for the file).
    pub name: BundleName,
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Length of the compressed file.
    pub file_bytes: u64,
}

/// Writes one bundle; see the module docs.
pub struct BundleWriter<W: Write> {
    enc: Compressor<W>,
    manifest: Manifest,
    manifest_sha256: [u8; 32],
    manifest_len: u64,
    key: SigningKey,
    mtime: u64,
    /// Index of the feed being written (== feeds.len() once all are done).
    feed: usize,
    /// Lines of that feed written so far.
    lines: u64,
    /// Bytes of that feed written so far.
    bytes: u64,
    /// The digest of that feed's bytes so far.
    hasher: LineDigest,
    /// The planner's xxh3-64 of each feed entry, if given: compared instead
    /// of the manifest's sha256.
    checks: Option<LineChecks>,
    /// Index of the next blob.
    blob: usize,
    /// Tar bytes written.
    pos: u64,
    poisoned: bool,
    limits: Limits,
}

fn io(e: io::Error) -> BundleError {
    BundleError::Io(e)
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle on `out`: checks `manifest` (as a reader would) and
    /// that `key` is its author's, then writes the manifest entry.
    pub fn new(
        out: W,
        manifest: Manifest,
        key: &SigningKey,
        options: &WriterOptions,
    ) -> Result<BundleWriter<W>, BundleError> {
        let limits = options.limits.clone();
        manifest.validate(&limits)?;
        let json = manifest.to_json();
        let manifest_len = json.len() as u64;
        manifest.check_tar_size(manifest_len, &limits)?;
        let key_id = feed_id(&key.verifying_key());
        if key_id != manifest.author {
            return Err(BundleError::KeyMismatch {
                key: key_id,
                author: manifest.author,
            });
        }
        if !(1..=19).contains(&options.level) {
            return Err(BundleError::Misuse(format!(
                "zstd level {} is not 1..=19",
                options.level
            )));
        }
        let enc = Compressor::new(
            out,
            options.level,
            options.window_log.min(limits.window_log_max).clamp(10, 23),
            options.workers.min(MAX_WORKERS),
        )
        .map_err(io)?;
        let mut w = BundleWriter {
            enc,
            mtime: manifest.mtime(),
            manifest_sha256: Sha256::digest(&json).into(),
            manifest_len,
            manifest,
            key: key.clone(),
            feed: 0,
            lines: 0,
            bytes: 0,
            hasher: LineDigest::Sha256(Sha256::new()),
            checks: None,
            blob: 0,
            pos: 0,
            poisoned: false,
            limits,
        };
        w.entry(MANIFEST_NAME, &json)?;
        Ok(w)
    }

    /// Checks each feed entry's lines against the planner's `checks` (from
    /// [`crate::Planner::finish_with_checks`] for this manifest) instead of
    /// hashing them with sha256 again: the same guard against a store that
    /// changed between the passes, at a fraction of the CPU. Call it before
    /// the first line.
    pub fn check_lines_with(&mut self, checks: LineChecks) -> Result<(), BundleError> {
        if self.feed > 0 || self.lines > 0 {
            return Err(BundleError::Misuse(
                "line checks given after the first line".into(),
            ));
        }
        if checks.len() != self.manifest.feeds.len() {
            return Err(BundleError::Misuse(format!(
                "{} line checks for {} feed entries",
                checks.len(),
                self.manifest.feeds.len()
            )));
        }
        self.hasher = LineDigest::Xxh3(Box::default());
        self.checks = Some(checks);
        Ok(())
    }

    /// The manifest being written.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bundle's name, known before its first byte is written (to name
    /// the temp file's destination up front).
    pub fn name(&self) -> BundleName {
        BundleName(self.manifest_sha256)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), BundleError> {
        self.enc.write_all(bytes).map_err(io)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn header(&mut self, name: &str, size: u64) -> Result<(), BundleError> {
        let h = canonical(name, size, self.mtime);
        self.raw(&h)
    }

    fn pad(&mut self, size: u64) -> Result<(), BundleError> {
        let zeros = [0u8; 512];
        // padding() < 512: the cast cannot truncate.
        let n = padding(size) as usize;
        self.raw(&zeros[..n])
    }

    /// A whole small entry: header, data, padding.
    fn entry(&mut self, name: &str, data: &[u8]) -> Result<(), BundleError> {
        let size = data.len() as u64;
        self.header(name, size)?;
        self.raw(data)?;
        self.pad(size)
    }

    /// Runs `f` unless an earlier call failed; a failure poisons the writer.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, BundleError>,
    ) -> Result<T, BundleError> {
        if self.poisoned {
            return Err(BundleError::Poisoned);
        }
        let r = f(self);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Writes the next line: the next message of the current feed (the
    /// feeds in manifest order, each from `first` to `last`), without its
    /// newline.
    pub fn line(&mut self, line: &[u8]) -> Result<(), BundleError> {
        self.guarded(|w| w.line_inner(line))
    }

    fn line_inner(&mut self, line: &[u8]) -> Result<(), BundleError> {
        let Some(f) = self.manifest.feeds.get(self.feed) else {
            return Err(BundleError::Misuse(
                "more lines than the manifest's ranges hold".into(),
            ));
        };
        let (name, declared, count) = (feed_entry_name(self.feed), f.bytes, f.count());
        let seq = u32::try_from(u64::from(f.first) + self.lines).unwrap_or(u32::MAX);
        self.limits.check_line(line, &f.feed, seq)?;
        let bytes = self.bytes + line.len() as u64 + 1;
        if bytes > declared {
            return Err(BundleError::Misuse(format!(
                "{name}: the lines are longer than the {declared} bytes planned (did the store change?)"
            )));
        }
        if self.lines == 0 {
            self.header(&name, declared)?;
        }
        self.raw(line)?;
        self.raw(b"\n")?;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.bytes = bytes;
        self.lines += 1;
        if self.lines == count {
            let expected = match &self.checks {
                Some(checks) => xxh3_hex(checks.0[self.feed]),
                None => self.manifest.feeds[self.feed].sha256.clone(),
            };
            let actual = self.hasher.take_hex();
            if self.bytes != declared {
                return Err(BundleError::Misuse(format!(
                    "{name}: the lines are {} bytes, {declared} were planned (did the store change?)",
                    self.bytes
                )));
            }
            if actual != expected && self.checks.is_some() {
                return Err(BundleError::Misuse(format!(
                    "{name}: the lines are not those planned ({actual}, planned {expected}; did the store change?)"
                )));
            }
            if actual != expected {
                return Err(BundleError::DigestMismatch {
                    name,
                    expected,
                    actual,
                });
            }
            self.pad(declared)?;
            self.feed += 1;
            self.lines = 0;
            self.bytes = 0;
        }
        Ok(())
    }

    /// Writes the next blob (in manifest order, after all lines): `id`, its
    /// bytes read from `data`, which must hash to `id` and be as long as
    /// planned.
    pub fn blob(&mut self, id: &str, data: &mut dyn Read) -> Result<(), BundleError> {
        self.guarded(|w| w.blob_inner(id, data))
    }

    fn blob_inner(&mut self, id: &str, data: &mut dyn Read) -> Result<(), BundleError> {
        if self.feed < self.manifest.feeds.len() {
            return Err(BundleError::Misuse(format!(
                "blob before the last line of {}",
                self.manifest.feeds[self.feed].feed
            )));
        }
        let Some(b) = self.manifest.blobs.get(self.blob) else {
            return Err(BundleError::Misuse(format!(
                "blob {id} is not in the manifest"
            )));
        };
        if b.id != id {
            return Err(BundleError::Misuse(format!(
                "blob {id} given where {} is next",
                b.id
            )));
        }
        let Some(hash) = blob_hash(id) else {
            return Err(BundleError::Misuse(format!("{id:?} is not a blob id")));
        };
        let (name, size) = (blob_entry_name(&hash), b.bytes);
        self.header(&name, size)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(BundleError::Misuse(format!(
                        "blob {id} ended {left} bytes before its planned size {size}"
                    )))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            hasher.update(&buf[..n]);
            self.raw(&buf[..n])?;
            left -= n as u64;
        }
        let actual: [u8; 32] = hasher.finalize().into();
        if actual != hash {
            return Err(BundleError::DigestMismatch {
                name,
                expected: hex(&hash),
                actual: hex(&actual),
            });
        }
        self.pad(size)?;
        self.blob += 1;
        Ok(())
    }

    /// Writes the signed trailer and the end of the archive, and flushes.
    pub fn finish(mut self) -> Result<Written<W>, BundleError> {
        if self.poisoned {
            return Err(BundleError::Poisoned);
        }
        if self.feed < self.manifest.feeds.len() || self.blob < self.manifest.blobs.len() {
            return Err(BundleError::Misuse(
                "finish() before every line and blob was written".into(),
            ));
        }
        let trailer = Trailer::sign(self.manifest_sha256, &self.key).to_json();
        self.entry(TRAILER_NAME, &trailer)?;
        self.raw(&[0u8; 2 * BLOCK as usize])?;
        let expected = self.manifest.tar_size(self.manifest_len);
        if self.pos != expected {
            return Err(BundleError::Misuse(format!(
                "wrote {} tar bytes where the manifest implies {expected}",
                self.pos
            )));
        }
        let (out, file_bytes) = self.enc.finish().map_err(io)?;
        Ok(Written {
            name: BundleName(self.manifest_sha256),
            tar_bytes: self.pos,
            file_bytes,
            out,
        })
    }
}
