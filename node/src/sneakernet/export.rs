//! Exporting: what the other side lacks, as bundles under a size cap.
//!
//! Each bundle takes two streaming passes over the store (the format's
//! manifest comes first and states every entry's size and digest): a
//! [`bundle_format::Planner`] measures up to the cap, then a
//! [`bundle_format::BundleWriter`] writes exactly the planned ranges. The
//! store is append-only, so the second pass reads the same bytes; the writer
//! checks that anyway. Blobs the exported messages mention follow the feeds,
//! up to the node's `blob_max` each.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::Write;

use bundle_format::{
    BundleError, BundleWriter, FeedRange, Fit, Limits, LineChecks, Manifest, Planner,
    WriterOptions, Written,
};

use super::read_ahead::{read_ahead, Span};
use crate::blob_store::BlobError;
use crate::feed::{BlobId, FeedId};
use crate::replica::Replica;
use crate::store::{now_ms, StoreError};

/// The most blob ids remembered for one export (bounds memory; more blobs
/// wait for the next export).
const MAX_PENDING_BLOBS: usize = 65_536;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The bundle could not be planned or written (includes write errors).
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Our store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Our blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// Not even one message or blob fits in the room there is.
    #[error("no room: the next message or blob does not fit in {cap} bytes")]
    NoRoom {
        /// The cap that was too small.
        cap: u64,
    },
}

/// Where the export has got to: the next range and sequence, then blobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cursor {
    range: usize,
    seq: u32,
    blob: usize,
}

/// A bundle planned by [`Exporter::plan_next`], ready to write.
#[derive(Debug)]
pub struct Planned {
    /// Its manifest.
    pub manifest: Manifest,
    /// The planner's checks of its lines, for the writer.
    checks: LineChecks,
    /// Where the export continues once it is written.
    next: Cursor,
}

/// Exports ranges of the store, and the blobs they mention, as a series of
/// bundles.
pub struct Exporter<'a> {
    node: &'a Replica,
    give: Vec<(FeedId, FeedRange)>,
    /// Blobs the other side already holds.
    skip_blobs: HashSet<BlobId>,
    /// Blobs mentioned by planned messages that we hold and will export.
    blobs: BTreeSet<BlobId>,
    /// Their order, fixed once every feed is planned.
    blob_order: Vec<(BlobId, u64)>,
    at: Cursor,
    limits: Limits,
}

/// Blob ids mentioned in a message's JSON: `&` + 44 base64 + `.sha256`,
/// found by a byte scan (no parse needed for the stored compact JSON).
fn blob_links(json: &[u8], out: &mut impl FnMut(BlobId)) {
    for start in memchr::memchr_iter(b'&', json) {
        if let Some(text) = json.get(start..start + 52) {
            if text.ends_with(b".sha256") {
                if let Some(id) = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                    out(id);
                }
            }
        }
    }
}

impl<'a> Exporter<'a> {
    /// An export of `give` (feed ranges the other side lacks), leaving out
    /// blobs in `skip_blobs`.
    pub fn new(
        node: &'a Replica,
        give: Vec<FeedRange>,
        skip_blobs: HashSet<BlobId>,
    ) -> Exporter<'a> {
        let mut give: Vec<(FeedId, FeedRange)> = give
            .into_iter()
            .filter_map(|r| Some((r.feed.parse().ok()?, r)))
            .collect();
        // In the store's key order, so that an importer can write them all
        // as one sorted table (see `store::incoming`).
        give.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Exporter {
            node,
            give,
            skip_blobs,
            blobs: BTreeSet::new(),
            blob_order: Vec::new(),
            at: Cursor {
                seq: 0,
                ..Cursor::default()
            },
            limits: Limits::default(),
        }
    }

    /// Messages left to export (an upper bound: the ranges not yet written).
    pub fn messages_left(&self) -> u64 {
        self.give
            .iter()
            .enumerate()
            .skip(self.at.range)
            .map(|(i, (_, r))| {
                let from = if i == self.at.range && self.at.seq > 0 {
                    self.at.seq
                } else {
                    r.first
                };
                u64::from(r.last.saturating_sub(from)) + 1
            })
            .sum()
    }

    /// Plans the next bundle of at most `cap` bytes; `None` when everything
    /// has been exported. Nothing advances until [`Exporter::advance`], so a
    /// bundle that could not be written can be planned again smaller.
    pub fn plan_next(&mut self, cap: u64) -> Result<Option<Planned>, ExportError> {
        let author = self.node.id().to_string();
        let created = now_ms() as u64;
        let mut planner = Planner::new(&author, created, cap, self.limits.clone())?;
        let mut at = self.at;
        let node = self.node;
        let base = at.range;
        let spans = self.give[base..]
            .iter()
            .enumerate()
            .map(|(k, (feed, range))| {
                let first = if k == 0 && at.seq != 0 {
                    at.seq
                } else {
                    range.first
                };
                Span {
                    feed: *feed,
                    first,
                    count: (range.last.saturating_sub(first)) as usize + 1,
                }
            })
            .collect();
        std::thread::scope(|s| {
            let mut open = None;
            for item in read_ahead(s, node.store(), spans) {
                let (k, seq, stored) = item?;
                if open != Some(k) {
                    if k > 0 {
                        at.range = base + k;
                        at.seq = 0;
                    }
                    if planner.begin_feed(&self.give[base + k].1.feed, seq)? == Fit::Full {
                        return Ok(());
                    }
                    open = Some(k);
                }
                if planner.line(stored.bytes())? == Fit::Full {
                    at.seq = seq;
                    return Ok(());
                }
                if self.blobs.len() < MAX_PENDING_BLOBS {
                    blob_links(stored.bytes(), &mut |id| {
                        if !self.skip_blobs.contains(&id) {
                            self.blobs.insert(id);
                        }
                    });
                }
            }
            at.range = self.give.len();
            at.seq = 0;
            Ok::<_, ExportError>(())
        })?;
        if at.range == self.give.len() {
            if self.blob_order.is_empty() && !self.blobs.is_empty() {
                let max = node.blob_max();
                self.blob_order = std::mem::take(&mut self.blobs)
                    .into_iter()
                    .filter_map(|id| Some((id, node.blobs().size(&id)?)))
                    .filter(|&(_, size)| size <= max)
                    .collect();
            }
            while let Some(&(id, size)) = self.blob_order.get(at.blob) {
                if planner.blob(&id.to_string(), size)? == Fit::Full {
                    break;
                }
                at.blob += 1;
            }
        }
        if planner.is_empty() {
            let done = at.range == self.give.len() && at.blob == self.blob_order.len();
            return if done {
                Ok(None)
            } else {
                Err(ExportError::NoRoom { cap })
            };
        }
        let (manifest, checks) = planner.finish_with_checks()?;
        Ok(Some(Planned {
            manifest,
            checks,
            next: at,
        }))
    }

    /// Whether nothing is left to export after `planned`.
    pub fn is_last(&self, planned: &Planned) -> bool {
        planned.next.range == self.give.len() && planned.next.blob == self.blob_order.len()
    }

    /// Marks a planned bundle as written: the export continues after it.
    pub fn advance(&mut self, planned: &Planned) {
        self.at = planned.next;
    }

    /// Writes a planned bundle to `out` (second pass over the store).
    pub fn write<W: Write>(&self, planned: &Planned, out: W) -> Result<Written<W>, ExportError> {
        let node = self.node;
        let options = WriterOptions::default();
        let manifest = planned.manifest.clone();
        let mut w = BundleWriter::new(out, manifest, node.keys().signing_key(), &options)?;
        // The lines are read again: check them against the plan's xxh3
        // rather than hashing them with sha256 a second time.
        w.check_lines_with(planned.checks.clone())?;
        let spans = planned
            .manifest
            .feeds
            .iter()
            .map(|f| {
                let feed: FeedId = f
                    .feed
                    .parse()
                    .map_err(|_| BundleError::Misuse(format!("{} is not a feed id", f.feed)))?;
                Ok(Span {
                    feed,
                    first: f.first,
                    count: f.count() as usize,
                })
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        std::thread::scope(|s| {
            for item in read_ahead(s, node.store(), spans) {
                w.line(item?.2.bytes())?;
            }
            Ok::<_, ExportError>(())
        })?;
        for b in &planned.manifest.blobs {
            let id: BlobId =
                b.id.parse()
                    .map_err(|_| BundleError::Misuse(format!("{} is not a blob id", b.id)))?;
            let path = node.blobs().path(&id);
            let mut file = File::open(&path).map_err(|source| BlobError::Io {
                path: path.display().to_string(),
                source,
            })?;
            w.blob(&b.id, &mut file)?;
        }
        Ok(w.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blob_links_in_raw_json() {
        let a = BlobId([1; 32]).to_string();
        let b = BlobId([2; 32]).to_string();
        let json = format!(r#"{{"content":{{"text":"see {a} and","x":["{b}","&short.sha256"]}}}}"#);
        let mut found = Vec::new();
        blob_links(json.as_bytes(), &mut |id| found.push(id));
        assert_eq!(found, vec![BlobId([1; 32]), BlobId([2; 32])]);
    }
}
