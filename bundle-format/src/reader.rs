//! Reading an untrusted bundle in one streaming pass.
//!
//! [`BundleReader::open`] reads and checks the manifest; then
//! [`BundleReader::next`] hands out each feed line and each blob in order,
//! checking every header, size, padding and digest against the manifest, and
//! at the end the trailer's signature, the end of the archive and that
//! nothing follows. It stops at the first problem with its own
//! [`BundleError`] variant.
//!
//! Nothing read is trustworthy until `next` has returned `Ok(None)`: a
//! caller that must not let anything of a bad bundle become visible runs
//! [`verify`] first (a pass that discards the content) and then imports in a
//! second pass. Memory stays flat whatever the bundle's length: the
//! manifest, a blob-id index, one line of at most
//! [`Limits::max_line_bytes`], two 64 KiB buffers and the zstd window (at
//! most 2^[`Limits::window_log_max`] bytes, allocated by zstd itself).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest as _, Sha256};

use crate::error::BundleError;
use crate::header::{canonical, is_zero, padding, parse, BLOCK};
use crate::ids::{blob_hash, hex, parse_hex32};
use crate::limits::Limits;
use crate::manifest::{blob_entry_name, feed_entry_name, Manifest, MANIFEST_NAME, TRAILER_NAME};
use crate::name::BundleName;
use crate::trailer::{Trailer, TRAILER_LEN};

/// Buffer size on both sides of the decompressor.
const BUF: usize = 64 * 1024;

/// The compressed input, remembering whether it (rather than zstd) failed.
struct Source<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        if matches!(&r, Err(e) if e.kind() != io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        r
    }
}

type Decoder<R> = zstd::stream::read::Decoder<'static, BufReader<Source<R>>>;

/// Where the reader is.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Before the header of entry `next` (feeds, then blobs, then trailer).
    Between { next: usize },
    /// Inside feed entry `index`.
    Feed {
        index: usize,
        lines_left: u64,
        bytes_left: u64,
    },
    /// Inside blob `index` (its data, maybe partly read by a [`BlobReader`]).
    Blob {
        index: usize,
        left: u64,
        checked: bool,
    },
    /// The trailer verified; nothing follows.
    Done,
    /// An error was returned.
    Failed,
}

/// One item of a bundle.
pub enum Item<'a, R: Read> {
    /// The next message of a feed.
    Line(Line<'a>),
    /// The next blob, to be read (or not) before the next call to `next`.
    Blob(BlobReader<'a, R>),
}

/// One feed line: a message as its exporter stored it.
#[derive(Debug)]
pub struct Line<'a> {
    /// The feed id.
    pub feed: &'a str,
    /// The message's sequence number, as the manifest's range places it
    /// (the node must check it against the message itself).
    pub seq: u32,
    /// The line's bytes, without the newline.
    pub bytes: &'a [u8],
}

/// What a completely read, verified bundle was.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its content-derived name.
    pub name: BundleName,
}

/// Reads a bundle; see the module docs.
pub struct BundleReader<R: Read> {
    src: BufReader<Decoder<R>>,
    limits: Limits,
    manifest: Manifest,
    manifest_sha256: [u8; 32],
    /// Entry position of each blob by its hash (feeds come first).
    blobs: HashMap<[u8; 32], usize>,
    state: State,
    line: Vec<u8>,
    hasher: Sha256,
    /// Uncompressed (tar) bytes consumed.
    pos: u64,
    /// An error found inside [`BlobReader::read`], returned by the next `next`.
    pending: Option<BundleError>,
}

/// Maps a read error to the input's (`Io`) or zstd's (the others).
fn classify<R: Read>(
    src: &BufReader<Decoder<R>>,
    e: io::Error,
    pos: u64,
    window_log_max: u32,
) -> BundleError {
    if src.get_ref().get_ref().get_ref().failed {
        BundleError::Io(e)
    } else {
        BundleError::from_zstd(e, pos, window_log_max)
    }
}

/// The next uncompressed bytes of `src`; `Truncated` at the end of the input.
fn fill<R: Read>(
    src: &mut BufReader<Decoder<R>>,
    pos: u64,
    window_log_max: u32,
) -> Result<&[u8], BundleError> {
    loop {
        match src.fill_buf() {
            Ok([]) => return Err(BundleError::Truncated { offset: pos }),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(src, e, pos, window_log_max)),
        }
    }
    src.fill_buf().map_err(BundleError::Io)
}

/// Reads a whole bundle, discarding its content, and returns its manifest
/// and name once everything checked out (the verify pass).
pub fn verify<R: Read>(input: R, limits: &Limits) -> Result<VerifiedBundle, BundleError> {
    let mut r = BundleReader::open(input, limits)?;
    while let Some(item) = r.next()? {
        if let Item::Blob(mut blob) = item {
            io::copy(&mut blob, &mut io::sink()).map_err(|e| blob.error(e))?;
        }
    }
    Ok(VerifiedBundle {
        manifest: r.manifest,
        name: BundleName(r.manifest_sha256),
    })
}

/// Reads only the manifest (cheap: the first entry), for planning. It is not
/// authenticated: a bundle's content is trusted only after a full pass.
pub fn read_manifest<R: Read>(
    input: R,
    limits: &Limits,
) -> Result<(Manifest, BundleName), BundleError> {
    let r = BundleReader::open(input, limits)?;
    Ok((r.manifest, BundleName(r.manifest_sha256)))
}

impl<R: Read> BundleReader<R> {
    /// Starts reading `input` (the compressed file) and reads the manifest.
    pub fn open(input: R, limits: &Limits) -> Result<BundleReader<R>, BundleError> {
        let source = BufReader::with_capacity(
            BUF,
            Source {
                inner: input,
                failed: false,
            },
        );
        let mut dec = Decoder::with_buffer(source)
            .map_err(BundleError::Io)?
            .single_frame();
        dec.window_log_max(limits.window_log_max)
            .map_err(BundleError::Io)?;
        let mut r = BundleReader {
            src: BufReader::with_capacity(BUF, dec),
            limits: limits.clone(),
            manifest: Manifest::new(String::new(), 0),
            manifest_sha256: [0; 32],
            blobs: HashMap::new(),
            state: State::Failed,
            line: Vec::new(),
            hasher: Sha256::new(),
            pos: 0,
            pending: None,
        };
        r.read_manifest()?;
        r.state = State::Between { next: 0 };
        Ok(r)
    }

    /// The manifest (checked for form, not yet authenticated).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bundle's content-derived name.
    pub fn name(&self) -> BundleName {
        BundleName(self.manifest_sha256)
    }

    /// Maps a read error to the input's or zstd's.
    fn read_error(&self, e: io::Error) -> BundleError {
        classify(&self.src, e, self.pos, self.limits.window_log_max)
    }

    /// The next uncompressed bytes; `Truncated` at the end of the input.
    fn fill(&mut self) -> Result<&[u8], BundleError> {
        fill(&mut self.src, self.pos, self.limits.window_log_max)
    }

    fn consume(&mut self, n: usize) {
        self.src.consume(n);
        self.pos += n as u64;
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), BundleError> {
        let mut done = 0;
        while done < out.len() {
            let buf = self.fill()?;
            let n = buf.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&buf[..n]);
            self.consume(n);
            done += n;
        }
        Ok(())
    }

    /// Reads the zero padding after an entry of `size` bytes.
    fn skip_padding(
        &mut self,
        size: u64,
        name: impl FnOnce() -> String,
    ) -> Result<(), BundleError> {
        let mut pad = [0u8; 512];
        // padding() < 512: the cast cannot truncate.
        let pad = &mut pad[..padding(size) as usize];
        self.read_exact(pad)?;
        if pad.iter().any(|&b| b != 0) {
            return Err(BundleError::NonZeroPadding { name: name() });
        }
        Ok(())
    }

    fn read_header(&mut self) -> Result<([u8; 512], u64), BundleError> {
        let offset = self.pos;
        let mut h = [0u8; 512];
        self.read_exact(&mut h)?;
        Ok((h, offset))
    }

    fn read_manifest(&mut self) -> Result<(), BundleError> {
        let (h, offset) = self.read_header()?;
        if is_zero(&h) {
            return Err(BundleError::EarlyEndOfArchive {
                offset,
                expected: MANIFEST_NAME.into(),
            });
        }
        let p = parse(&h, offset)?;
        if p.name != MANIFEST_NAME {
            return Err(BundleError::ManifestNotFirst { found: p.name });
        }
        if p.size > self.limits.max_manifest_bytes {
            return Err(BundleError::OversizeEntry {
                name: p.name,
                size: p.size,
                max: self.limits.max_manifest_bytes,
            });
        }
        // Bounded by max_manifest_bytes just above.
        let mut json = vec![
            0u8;
            usize::try_from(p.size).map_err(|_| BundleError::OversizeEntry {
                name: MANIFEST_NAME.into(),
                size: p.size,
                max: self.limits.max_manifest_bytes,
            })?
        ];
        self.read_exact(&mut json)?;
        let manifest = Manifest::from_json(&json, &self.limits)?;
        if h != canonical(MANIFEST_NAME, p.size, manifest.mtime()) {
            return Err(BundleError::NonCanonicalHeader { name: p.name });
        }
        self.skip_padding(p.size, || MANIFEST_NAME.into())?;
        let feeds = manifest.feeds.len();
        self.blobs = manifest
            .blobs
            .iter()
            .enumerate()
            .filter_map(|(i, b)| blob_hash(&b.id).map(|h| (h, feeds + i)))
            .collect();
        self.manifest_sha256 = Sha256::digest(&json).into();
        self.manifest = manifest;
        Ok(())
    }

    /// Entries before the trailer.
    fn entries(&self) -> usize {
        self.manifest.feeds.len() + self.manifest.blobs.len()
    }

    /// The name and size of entry `i` (feeds, blobs, then the trailer).
    fn expected(&self, i: usize) -> (String, u64) {
        let feeds = self.manifest.feeds.len();
        if let Some(f) = self.manifest.feeds.get(i) {
            (feed_entry_name(i), f.bytes)
        } else if let Some(b) = self.manifest.blobs.get(i - feeds) {
            let hash = blob_hash(&b.id).unwrap_or_default();
            (blob_entry_name(&hash), b.bytes)
        } else {
            (TRAILER_NAME.into(), TRAILER_LEN)
        }
    }

    /// The entry position a name belongs to, if any.
    fn position(&self, name: &str) -> Option<usize> {
        if name == MANIFEST_NAME {
            // Always behind us: it was the first entry.
            return Some(usize::MAX);
        }
        if name == TRAILER_NAME {
            return Some(self.entries());
        }
        if let Some(n) = name
            .strip_prefix("feeds/")
            .and_then(|n| n.strip_suffix(".jsonl"))
        {
            let i: usize = n.parse().ok()?;
            return (i < self.manifest.feeds.len() && feed_entry_name(i) == name).then_some(i);
        }
        let hash = parse_hex32(name.strip_prefix("blobs/")?)?;
        self.blobs.get(&hash).copied()
    }

    /// Reads the header of entry `next` and checks it is that entry.
    fn open_entry(&mut self, next: usize) -> Result<(String, u64), BundleError> {
        let (expected, size) = self.expected(next);
        let (h, offset) = self.read_header()?;
        if is_zero(&h) {
            return Err(BundleError::EarlyEndOfArchive { offset, expected });
        }
        let p = parse(&h, offset)?;
        if p.name != expected {
            let found = p.name;
            return Err(match self.position(&found) {
                Some(i) if i == usize::MAX || i < next => {
                    BundleError::DuplicateEntry { name: found }
                }
                Some(_) => BundleError::OutOfOrder { found, expected },
                None => BundleError::UnexpectedEntry { found, expected },
            });
        }
        if p.size != size {
            return Err(BundleError::SizeMismatch {
                name: p.name,
                declared: size,
                in_header: p.size,
            });
        }
        if h != canonical(&expected, size, self.manifest.mtime()) {
            return Err(BundleError::NonCanonicalHeader { name: expected });
        }
        Ok((expected, size))
    }

    /// The next line or blob; `Ok(None)` once the whole bundle, trailer and
    /// signature included, checked out. After an error, every call fails.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item<'_, R>>, BundleError> {
        if let Some(e) = self.pending.take() {
            self.state = State::Failed;
            return Err(e);
        }
        match self.step() {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                self.state = State::Failed;
                return Err(e);
            }
        }
        match self.state {
            State::Feed {
                index, lines_left, ..
            } => {
                let f = &self.manifest.feeds[index];
                // lines_left was decremented for this line.
                let seq = u32::try_from(u64::from(f.last) - lines_left).unwrap_or(u32::MAX);
                Ok(Some(Item::Line(Line {
                    feed: &f.feed,
                    seq,
                    bytes: &self.line,
                })))
            }
            State::Blob { index, left, .. } => {
                let b = &self.manifest.blobs[index - self.manifest.feeds.len()];
                let size = b.bytes;
                debug_assert_eq!(left, size);
                Ok(Some(Item::Blob(BlobReader {
                    r: self,
                    index,
                    size,
                })))
            }
            _ => Err(BundleError::Poisoned),
        }
    }

    /// Advances to the next item: `Ok(true)` with a line in `self.line` or a
    /// blob ready, `Ok(false)` at the verified end.
    fn step(&mut self) -> Result<bool, BundleError> {
        loop {
            match self.state {
                State::Failed => return Err(BundleError::Poisoned),
                State::Done => return Ok(false),
                State::Feed {
                    index,
                    lines_left,
                    bytes_left,
                } => {
                    if lines_left > 0 {
                        self.read_line(index, lines_left, bytes_left)?;
                        return Ok(true);
                    }
                    let name = feed_entry_name(index);
                    let f = &self.manifest.feeds[index];
                    if bytes_left > 0 {
                        return Err(BundleError::LineCountMismatch {
                            name,
                            feed: f.feed.clone(),
                            declared: f.count(),
                            found: f.count() + 1,
                        });
                    }
                    let expected = f.sha256.clone();
                    let bytes = f.bytes;
                    let actual = hex(&std::mem::take(&mut self.hasher).finalize());
                    if actual != expected {
                        return Err(BundleError::DigestMismatch {
                            name,
                            expected,
                            actual,
                        });
                    }
                    self.skip_padding(bytes, || name)?;
                    self.state = State::Between { next: index + 1 };
                }
                State::Blob {
                    index,
                    left,
                    checked,
                } => {
                    if left > 0 || !checked {
                        self.drain_blob()?;
                    }
                    let (name, size) = self.expected(index);
                    self.skip_padding(size, || name)?;
                    self.state = State::Between { next: index + 1 };
                }
                State::Between { next } if next == self.entries() => {
                    self.finish()?;
                    self.state = State::Done;
                    return Ok(false);
                }
                State::Between { next } => {
                    let (_, size) = self.open_entry(next)?;
                    self.hasher = Sha256::new();
                    if let Some(f) = self.manifest.feeds.get(next) {
                        self.state = State::Feed {
                            index: next,
                            lines_left: f.count(),
                            bytes_left: size,
                        };
                    } else {
                        self.state = State::Blob {
                            index: next,
                            left: size,
                            checked: false,
                        };
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Reads one line of feed `index` into `self.line`.
    fn read_line(
        &mut self,
        index: usize,
        lines_left: u64,
        mut bytes_left: u64,
    ) -> Result<(), BundleError> {
        let f = &self.manifest.feeds[index];
        let seq64 = u64::from(f.last) + 1 - lines_left;
        let seq = u32::try_from(seq64).unwrap_or(u32::MAX);
        let max = self.limits.max_line_bytes;
        self.line.clear();
        loop {
            if bytes_left == 0 {
                let f = &self.manifest.feeds[index];
                return Err(if self.line.is_empty() {
                    BundleError::LineCountMismatch {
                        name: feed_entry_name(index),
                        feed: f.feed.clone(),
                        declared: f.count(),
                        found: f.count() - lines_left,
                    }
                } else {
                    BundleError::UnterminatedLine {
                        name: feed_entry_name(index),
                    }
                });
            }
            let buf = fill(&mut self.src, self.pos, self.limits.window_log_max)?;
            let avail = usize::try_from(bytes_left).map_or(buf.len(), |b| b.min(buf.len()));
            let (take, newline) = match buf[..avail].iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail, false),
            };
            if (self.line.len() + take) as u64 > max {
                let f = &self.manifest.feeds[index];
                return Err(BundleError::LineTooLong {
                    feed: f.feed.clone(),
                    seq,
                    max,
                });
            }
            self.line.extend_from_slice(&buf[..take]);
            let used = take + usize::from(newline);
            self.src.consume(used);
            self.pos += used as u64;
            bytes_left -= used as u64;
            if newline {
                break;
            }
        }
        if self.line.is_empty() {
            return Err(BundleError::EmptyLine {
                feed: self.manifest.feeds[index].feed.clone(),
                seq,
            });
        }
        self.hasher.update(&self.line);
        self.hasher.update(b"\n");
        self.state = State::Feed {
            index,
            lines_left: lines_left - 1,
            bytes_left,
        };
        Ok(())
    }

    /// Reads up to `out.len()` bytes of the current blob, checking its
    /// digest when its last byte is read.
    fn blob_read(&mut self, out: &mut [u8]) -> Result<usize, BundleError> {
        let State::Blob {
            index,
            left,
            checked,
        } = self.state
        else {
            return Err(BundleError::Poisoned);
        };
        if left == 0 {
            if !checked {
                self.check_blob(index)?;
            }
            return Ok(0);
        }
        let buf = fill(&mut self.src, self.pos, self.limits.window_log_max)?;
        let n = usize::try_from(left)
            .map_or(buf.len(), |l| l.min(buf.len()))
            .min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.hasher.update(&buf[..n]);
        self.src.consume(n);
        self.pos += n as u64;
        let left = left - n as u64;
        self.state = State::Blob {
            index,
            left,
            checked: false,
        };
        if left == 0 {
            self.check_blob(index)?;
        }
        Ok(n)
    }

    fn check_blob(&mut self, index: usize) -> Result<(), BundleError> {
        let (name, _) = self.expected(index);
        let b = &self.manifest.blobs[index - self.manifest.feeds.len()];
        let expected = blob_hash(&b.id).unwrap_or_default();
        let actual: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if actual != expected {
            return Err(BundleError::DigestMismatch {
                name,
                expected: hex(&expected),
                actual: hex(&actual),
            });
        }
        self.state = State::Blob {
            index,
            left: 0,
            checked: true,
        };
        Ok(())
    }

    /// Reads (and checks) what is left of the current blob.
    fn drain_blob(&mut self) -> Result<(), BundleError> {
        let mut buf = vec![0u8; BUF];
        while self.blob_read(&mut buf)? > 0 {}
        Ok(())
    }

    /// Reads the trailer and checks the signature, the end of the archive
    /// and that nothing follows.
    fn finish(&mut self) -> Result<(), BundleError> {
        let next = self.entries();
        self.open_entry(next)?;
        let mut json = [0u8; TRAILER_LEN as usize];
        self.read_exact(&mut json)?;
        let trailer = Trailer::parse(&json)?;
        self.skip_padding(TRAILER_LEN, || TRAILER_NAME.into())?;
        let offset = self.pos;
        let mut end = [0u8; 2 * BLOCK as usize];
        self.read_exact(&mut end)?;
        if end.iter().any(|&b| b != 0) {
            return Err(BundleError::BadEndOfArchive { offset });
        }
        // The tar stream must end here, and so must the zstd frame (reading
        // on also makes zstd check the frame's checksum) and the file.
        match self.src.fill_buf() {
            Ok([]) => {}
            Ok(_) => {
                return Err(BundleError::TrailingData(
                    "more data after the tar end, inside the zstd frame",
                ))
            }
            Err(e) => return Err(self.read_error(e)),
        }
        let file = self.src.get_mut().get_mut();
        match file.fill_buf() {
            Ok([]) => {}
            Ok(_) => return Err(BundleError::TrailingData("more data after the zstd frame")),
            Err(e) => return Err(BundleError::Io(e)),
        }
        trailer.verify(&self.manifest_sha256, &self.manifest.author)
    }
}

/// One blob's bytes, streamed out of the bundle. Its digest is checked when
/// its last byte is read: an [`io::Error`] of kind `InvalidData` then means
/// the bytes are not the blob, and the bundle's `next` returns the precise
/// [`BundleError`]. Dropping it unread is fine: `next` reads past it (and
/// still checks it).
pub struct BlobReader<'a, R: Read> {
    r: &'a mut BundleReader<R>,
    index: usize,
    size: u64,
}

impl<R: Read> BlobReader<'_, R> {
    /// The blob id.
    pub fn id(&self) -> &str {
        &self.r.manifest.blobs[self.index - self.r.manifest.feeds.len()].id
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Turns an error from `read` back into the bundle's own error (for
    /// callers that copy the blob with `io::copy`).
    pub fn error(&mut self, e: io::Error) -> BundleError {
        self.r.state = State::Failed;
        self.r.pending.take().unwrap_or(BundleError::Io(e))
    }
}

impl<R: Read> Read for BlobReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.r.pending.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bundle already failed",
            ));
        }
        self.r.blob_read(buf).map_err(|e| {
            let err = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
            self.r.pending = Some(e);
            err
        })
    }
}
