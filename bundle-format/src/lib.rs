//! bundle-format: the on-stick format of ssb-sneakernet.
//!
//! A bundle is a zstd-compressed POSIX tar: `manifest.json` (who, when, and
//! per feed the range, size and digest of its entry; per blob its id and
//! size), one `feeds/<n>.jsonl` per feed (the signed messages as received,
//! one per line), `blobs/<hex>` per blob, and `trailer.json` (the exporter's
//! ed25519 signature over the manifest's sha256). `FORMAT.md` beside this
//! crate is the specification.
//!
//! - Writing takes two streaming passes: a [`Planner`] measures the content
//!   against a size cap and yields the [`Manifest`]; a [`BundleWriter`] then
//!   writes it.
//! - Reading is one streaming pass ([`BundleReader`]) that checks everything
//!   against the manifest and refuses untrusted input at the first problem
//!   ([`BundleError`]); [`verify`] is that pass with the content discarded.
//! - [`Clock`], [`Coverage`] and [`plan()`] decide what to take from and give
//!   to a stick.
//!
//! No async runtime and no storage engine: the node brings both.

#![forbid(unsafe_code)]

pub mod clock;
mod compressor;
pub mod coverage;
pub mod error;
pub mod header;
pub mod ids;
pub mod limits;
pub mod line_check;
pub mod manifest;
pub mod name;
pub mod plan;
pub mod planner;
pub mod reader;
pub mod trailer;
pub mod writer;

pub use clock::Clock;
pub use coverage::Coverage;
pub use error::BundleError;
pub use limits::{Limits, FAT32_MAX_FILE};
pub use line_check::LineChecks;
pub use manifest::{BlobEntry, FeedEntry, Manifest};
pub use name::BundleName;
pub use plan::{plan, FeedRange, Plan};
pub use planner::{compress_bound, Fit, Planner};
pub use reader::{
    read_manifest, verify, BlobReader, BundleItem, BundleReader, Line, VerifiedBundle,
};
pub use trailer::Trailer;
pub use writer::{BundleWriter, WriterOptions, Written};
