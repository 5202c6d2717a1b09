//! Why reading, writing or planning a bundle failed.
//!
//! Every check has its own variant, so a caller (and a test) can tell a path
//! traversal from a symlink from a wrong digest. Variants about the input
//! name the entry (and, for lines, the feed and sequence) or the offset in
//! the uncompressed tar stream where the problem was found.

use std::io;

/// Why a bundle was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading the input or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[source] io::Error),
    /// The input ended before the bundle did.
    #[error("bundle is truncated (input ended at tar offset {offset})")]
    Truncated {
        /// Uncompressed bytes read before the input ended.
        offset: u64,
    },
    /// The zstd layer refused the input (not zstd, corrupt, bad checksum).
    #[error("bundle is not valid zstd: {0}")]
    Decompress(String),
    /// The zstd frame needs a larger window than allowed.
    #[error("zstd frame needs a window larger than 2^{max_log} bytes")]
    WindowTooLarge {
        /// The largest window (as a power of two) this reader accepts.
        max_log: u32,
    },
    /// Bytes follow the end of the bundle.
    #[error("unexpected data after the end of the bundle ({0})")]
    TrailingData(&'static str),

    /// A tar header's checksum does not match its bytes.
    #[error("tar header at offset {offset} has a bad checksum")]
    HeaderChecksum {
        /// Where the header starts in the tar stream.
        offset: u64,
    },
    /// A tar header is not a POSIX ustar header, or a field is unreadable.
    #[error("tar header at offset {offset} is malformed: {reason}")]
    BadHeader {
        /// Where the header starts in the tar stream.
        offset: u64,
        /// Which field is wrong.
        reason: &'static str,
    },
    /// An entry is a symbolic link.
    #[error("entry {name:?} is a symbolic link")]
    Symlink {
        /// The entry's name.
        name: String,
    },
    /// An entry is a hard link.
    #[error("entry {name:?} is a hard link")]
    Hardlink {
        /// The entry's name.
        name: String,
    },
    /// An entry is a character or block device.
    #[error("entry {name:?} is a device file")]
    DeviceFile {
        /// The entry's name.
        name: String,
    },
    /// An entry is a named pipe.
    #[error("entry {name:?} is a fifo")]
    Fifo {
        /// The entry's name.
        name: String,
    },
    /// An entry is a directory.
    #[error("entry {name:?} is a directory")]
    Directory {
        /// The entry's name.
        name: String,
    },
    /// A pax or GNU extension header (long names, extended attributes).
    #[error(
        "entry {name:?} is a pax/GNU extension header (type {kind:?}), which bundles never use"
    )]
    ExtensionHeader {
        /// The entry's name.
        name: String,
        /// The tar type flag.
        kind: char,
    },
    /// Any other tar entry type.
    #[error("entry {name:?} has unsupported tar type {kind:?}")]
    UnsupportedEntryType {
        /// The entry's name.
        name: String,
        /// The tar type flag.
        kind: char,
    },
    /// An entry name is an absolute path.
    #[error("entry {name:?} has an absolute path")]
    AbsolutePath {
        /// The entry's name.
        name: String,
    },
    /// An entry name climbs out of the bundle (`..`).
    #[error("entry {name:?} has a path traversal (`..`)")]
    PathTraversal {
        /// The entry's name.
        name: String,
    },
    /// The first entry is not `manifest.json`.
    #[error("the first entry is {found:?}, not manifest.json")]
    ManifestNotFirst {
        /// The name found.
        found: String,
    },
    /// An entry appears a second time.
    #[error("entry {name:?} appears twice")]
    DuplicateEntry {
        /// The entry's name.
        name: String,
    },
    /// An entry the manifest announces, but not at this place.
    #[error("entry {found:?} is out of order: expected {expected:?}")]
    OutOfOrder {
        /// The name found.
        found: String,
        /// The name expected here.
        expected: String,
    },
    /// An entry this bundle has no place for.
    #[error("unexpected entry {found:?}: expected {expected:?}")]
    UnexpectedEntry {
        /// The name found.
        found: String,
        /// The name expected here.
        expected: String,
    },
    /// The archive ends (zero block) before the trailer.
    #[error("tar end-of-archive at offset {offset}, but {expected:?} is still expected")]
    EarlyEndOfArchive {
        /// Where the zero block starts.
        offset: u64,
        /// The entry expected instead.
        expected: String,
    },
    /// After the trailer, the two zero blocks that end a tar are missing.
    #[error("missing or malformed tar end-of-archive at offset {offset}")]
    BadEndOfArchive {
        /// Where the end-of-archive should start.
        offset: u64,
    },
    /// An entry is larger than its limit.
    #[error("entry {name:?} is {size} bytes, over the limit of {max}")]
    OversizeEntry {
        /// The entry's name.
        name: String,
        /// Its size from the tar header.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An entry's size differs from what the manifest declares.
    #[error("entry {name:?} is {in_header} bytes, but the manifest says {declared}")]
    SizeMismatch {
        /// The entry's name.
        name: String,
        /// The manifest's size.
        declared: u64,
        /// The tar header's size.
        in_header: u64,
    },
    /// A tar header differs from the one the format prescribes (mode, owner,
    /// time or another field).
    #[error("tar header of {name:?} is not the canonical one the format prescribes")]
    NonCanonicalHeader {
        /// The entry's name.
        name: String,
    },
    /// The padding after an entry holds non-zero bytes.
    #[error("padding after entry {name:?} is not zero")]
    NonZeroPadding {
        /// The entry's name.
        name: String,
    },

    /// The manifest is not valid JSON of the expected shape, or breaks a rule.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The manifest is of a format version this code does not read.
    #[error("unsupported bundle format {format:?} version {version}")]
    UnsupportedVersion {
        /// The `format` field.
        format: String,
        /// The `version` field.
        version: u64,
    },
    /// A count or size is over a configured limit.
    #[error("{what}: {value} is over the limit of {max}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        max: u64,
    },

    /// A feed line is longer than allowed.
    #[error("{feed} sequence {seq}: line is longer than {max} bytes")]
    LineTooLong {
        /// The feed.
        feed: String,
        /// The line's sequence number.
        seq: u32,
        /// The limit.
        max: u64,
    },
    /// A feed line is empty.
    #[error("{feed} sequence {seq}: empty line")]
    EmptyLine {
        /// The feed.
        feed: String,
        /// The line's sequence number.
        seq: u32,
    },
    /// A line given to the writer or planner contains a newline.
    #[error("{feed} sequence {seq}: the line contains a newline")]
    NewlineInLine {
        /// The feed.
        feed: String,
        /// The line's sequence number.
        seq: u32,
    },
    /// A feed entry holds a different number of lines than its range.
    #[error(
        "entry {name:?} ({feed}): the manifest's range has {declared} messages, the entry {found}"
    )]
    LineCountMismatch {
        /// The entry's name.
        name: String,
        /// The feed.
        feed: String,
        /// Lines the manifest's range implies.
        declared: u64,
        /// Lines found (a lower bound when there were too many).
        found: u64,
    },
    /// The entry's last line has no final newline.
    #[error("entry {name:?}: the last line has no newline")]
    UnterminatedLine {
        /// The entry's name.
        name: String,
    },
    /// An entry's bytes do not hash to the digest the manifest gives (for a
    /// blob: to its id).
    #[error("entry {name:?}: sha256 is {actual}, the manifest says {expected}")]
    DigestMismatch {
        /// The entry's name.
        name: String,
        /// The digest from the manifest, hex.
        expected: String,
        /// The digest of the bytes, hex.
        actual: String,
    },

    /// The trailer is not the JSON object the format prescribes.
    #[error("invalid trailer: {0}")]
    InvalidTrailer(String),
    /// The trailer names a different manifest digest.
    #[error("the trailer signs manifest {in_trailer}, but the manifest hashes to {actual}")]
    TrailerManifestMismatch {
        /// The digest in the trailer, hex.
        in_trailer: String,
        /// The manifest's digest, hex.
        actual: String,
    },
    /// The trailer's signature is not the author's.
    #[error("the trailer's signature does not verify with the author's key {author}")]
    BadSignature {
        /// The manifest's author.
        author: String,
    },

    /// The writer or planner was used against its contract (this is a bug in
    /// the caller, not bad input).
    #[error("bundle writer misuse: {0}")]
    Misuse(String),
    /// The signing key is not the manifest's author.
    #[error("the signing key is {key}, but the manifest's author is {author}")]
    KeyMismatch {
        /// The key's feed id.
        key: String,
        /// The manifest's author.
        author: String,
    },
    /// A previous call already failed; the reader or writer cannot go on.
    #[error("an earlier error ended this bundle stream")]
    Poisoned,
}

impl BundleError {
    /// Whether the bundle may be valid for another reader: it is of a
    /// format version this code does not read, or over this reader's
    /// limits (which are configuration, not format). A carrier keeps such
    /// a bundle; every other refusal of the input is damage.
    pub fn is_beyond_this_reader(&self) -> bool {
        matches!(
            self,
            BundleError::UnsupportedVersion { .. }
                | BundleError::WindowTooLarge { .. }
                | BundleError::OversizeEntry { .. }
                | BundleError::LimitExceeded { .. }
                | BundleError::LineTooLong { .. }
        )
    }

    /// Classifies an error the zstd decoder returned (the underlying file's
    /// own errors are [`BundleError::Io`] and never come here).
    pub(crate) fn from_zstd(e: io::Error, offset: u64, window_log_max: u32) -> BundleError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return BundleError::Truncated { offset };
        }
        let text = e.to_string();
        if text.contains("too much memory") {
            BundleError::WindowTooLarge {
                max_log: window_log_max,
            }
        } else {
            BundleError::Decompress(text)
        }
    }
}
