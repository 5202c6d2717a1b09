//! A stick visit: import what the stick has that we lack, export what it
//! lacks, and remember the stick's clock.
//!
//! 1. Open the stick (initialising a blank one; refusing one whose layout
//!    leads out of it, see [`super::stick`]), remove a pulled stick's
//!    leftovers, and read the manifests (the first entry of each bundle),
//!    one at a time, keeping of each only a compact summary: its feed
//!    ranges and blob ids (of a bundle not known to be verified, only
//!    those about feeds we replicate and blobs we want). A visit looks at
//!    most at [`MAX_BUNDLES`]
//!    bundles and keeps at most [`MAX_ENTRIES`] feed and blob entries in
//!    all; bundles past those bounds, of a newer format version or over
//!    this node's limits are left where they are, unread, and reported.
//! 2. Import, oldest bundle first, every bundle that offers something: a
//!    range extending a feed we replicate, or a blob we want. Repeat while
//!    that makes progress (one bundle can fill the gap before another).
//!    Between rounds, summaries that left entries out are read again (at
//!    most `REREADS` times a bundle): a bundle's once its import verified
//!    it (so the stick's clock holds all of it), and any bundle's when an
//!    import widened the feeds we replicate (a contact message within
//!    hops), so a site's community comes in with the site's feed.
//!    A bundle that fails its checks is reported and left on the stick
//!    (the stick is a carrier, not ours to clean) unless it is damaged for
//!    every reader: then it is removed, so the next exporter writes its
//!    content again.
//! 3. Trust: a manifest is only a claim until the bundle has been read in
//!    full. A bundle's coverage counts toward what the stick holds only if
//!    the bundle was verified: imported this visit, checked in full by a
//!    verify pass, written by us, or remembered (by its name, the digest
//!    that pins its content) as verified on an earlier visit here. An
//!    unverified bundle that claims part of what we would export is
//!    verified before we rely on it; other unverified bundles count for
//!    nothing and are never removed for being covered.
//! 4. Export, for the feeds we replicate, what no verified bundle on the
//!    stick holds, in bundles that fit the free space less a margin and
//!    stay below FAT32's 4 GiB. When the stick is full, verified bundles
//!    whose content other verified bundles cover are removed first (oldest
//!    first); if still full, the visit ends with a "stick is full" problem.
//! 5. Store the stick's clock (what its verified bundles hold from
//!    sequence 1 on), when we saw it, and the names of the verified
//!    bundles.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bundle_format::{
    plan, BundleError, BundleName, Clock, Coverage, FeedRange, Limits, Manifest, FAT32_MAX_FILE,
};

use super::export::{ExportError, Exporter};
use super::import::{self, ImportError};
use super::stick::{is_no_space, BundleFile, Stick, StickError};
use crate::feed::{BlobId, FeedId};
use crate::replica::Replica;
use crate::store::{now_ms, StoreError};

/// Most bundles one visit looks at (the first by name); the rest stay on
/// the stick unread.
pub const MAX_BUNDLES: usize = 4096;

/// Most manifest entries (feeds and blobs, over all bundles) one visit
/// keeps: about 16 MB of summaries. Every entry of a verified bundle
/// counts, of another bundle only those about feeds we replicate and
/// blobs we want. A bundle that would pass it stays on the stick unread.
/// One bundle at the standard limits (100 000 feeds and 100 000 blobs)
/// fits.
pub const MAX_ENTRIES: u64 = 400_000;

/// Most times one bundle's manifest is read again in a visit, after an
/// import widened the feeds we carry.
const REREADS: u8 = 2;

/// Free space left untouched on a stick: the larger of 1 MiB and 1 %.
fn margin(total: u64) -> u64 {
    (1 << 20).max(total / 100)
}

/// Why a visit failed as a whole (the stick is gone, or our store failed).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The stick could not be used.
    #[error(transparent)]
    Stick(#[from] StickError),
    /// Importing failed locally.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Exporting failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Our store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ReconcileError {
    /// Whether this means the stick ran out of space.
    fn is_full(&self) -> bool {
        match self {
            ReconcileError::Stick(e) => e.is_full(),
            ReconcileError::Export(ExportError::NoRoom { .. }) => true,
            ReconcileError::Export(ExportError::Bundle(BundleError::Io(e))) => is_no_space(e),
            _ => false,
        }
    }
}

/// A bundle that was refused or left unread, and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    /// The bundle's file name.
    pub bundle: String,
    /// Why.
    pub reason: String,
    /// Whether it was removed from the stick: it is damaged for everyone
    /// (format, digests, signatures), not merely at odds with our store.
    #[serde(default)]
    pub removed: bool,
}

/// What a visit did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct StickReport {
    /// The stick's id.
    pub stick: String,
    /// Where it is mounted.
    pub mount: String,
    /// Bundles imported from it.
    pub imported_bundles: u64,
    /// Messages added to our store.
    pub imported_messages: u64,
    /// Blobs added to our blob store.
    pub imported_blobs: u64,
    /// Bundles refused.
    pub rejected: Vec<Rejected>,
    /// Bundles left on the stick unread: of a newer format version, over
    /// this node's limits or this visit's budget, or not regular files.
    #[serde(default)]
    pub unread: Vec<Rejected>,
    /// Bundles past the [`MAX_BUNDLES`] this visit looks at (not listed in
    /// `unread`).
    #[serde(default)]
    pub not_looked_at: u64,
    /// Bundles checked in full by a verify pass (they offered nothing, but
    /// claimed what we would export).
    #[serde(default)]
    pub verified_bundles: u64,
    /// Bundles whose content is not verified, so their manifests' claims
    /// count for nothing (they are carried, for nodes that need them).
    #[serde(default)]
    pub unverified_bundles: u64,
    /// Bundles written to it.
    pub exported_bundles: u64,
    /// Messages in them.
    pub exported_messages: u64,
    /// Blobs in them.
    pub exported_blobs: u64,
    /// Their bytes.
    pub exported_bytes: u64,
    /// Covered bundles removed to make room.
    pub removed_bundles: u64,
    /// Bundles on the stick now that this node reads.
    pub bundles: u64,
    /// Messages on the stick that are new since our last visit (by the
    /// clock we stored then).
    pub new_since_last_visit: u64,
    /// Why the visit could not do everything (stick full, read-only).
    pub problem: Option<String>,
}

impl StickReport {
    /// One line for people.
    pub fn summary(&self) -> String {
        let plural = |n: u64, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        let mut s = format!(
            "stick {} at {}: imported {}, {} from {}; exported {}, {} in {} ({} bytes)",
            self.stick,
            self.mount,
            plural(self.imported_messages, "message"),
            plural(self.imported_blobs, "blob"),
            plural(self.imported_bundles, "bundle"),
            plural(self.exported_messages, "message"),
            plural(self.exported_blobs, "blob"),
            plural(self.exported_bundles, "bundle"),
            self.exported_bytes,
        );
        if !self.rejected.is_empty() {
            s.push_str(&format!(
                "; {} rejected",
                plural(self.rejected.len() as u64, "bundle")
            ));
        }
        let unread = self.unread.len() as u64 + self.not_looked_at;
        if unread > 0 {
            s.push_str(&format!("; {} left unread", plural(unread, "bundle")));
        }
        match &self.problem {
            Some(p) => s.push_str(&format!("; problem: {p}")),
            None => s.push_str("; safe to pull"),
        }
        s
    }
}

/// What a visit is doing, for progress displays (on the control socket as
/// `{"importing": N}` or `{"exporting": N}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Checking a bundle: messages checked so far.
    Importing(u64),
    /// Writing: messages left to export.
    Exporting(u64),
}

/// The stick's clock as stored: `stick:` ‖ id.
fn clock_name(id: &str) -> Vec<u8> {
    format!("stick:{id}").into_bytes()
}

/// What we hold of the feeds we replicate, as a bundle clock.
fn local_clock(node: &Replica) -> Result<Clock, StoreError> {
    let set = node.replicate_set();
    Ok(node
        .store()
        .clock()?
        .into_iter()
        .filter(|(f, _)| set.contains(f) && !set.blocked.contains(f))
        .map(|(f, s)| (f.to_string(), s))
        .collect())
}

/// A bundle on the stick, as a visit keeps it: its manifest's claims in
/// compact form (40 bytes a feed entry, 32 a blob), and whether they are
/// to be believed. Of a bundle not known to be verified only the entries
/// that can matter here are kept (feeds we replicate, blobs we want): its
/// other claims count for nothing, and a manifest full of them costs no
/// memory and crowds no other bundle out of the visit's budget.
struct Held {
    file: BundleFile,
    created: u64,
    /// Feed, first and last sequence.
    feeds: Vec<(FeedId, u32, u32)>,
    blobs: Vec<BlobId>,
    /// Whether `feeds` and `blobs` are all the manifest's entries (else
    /// the bundle may hold more than they say: it is never removed as
    /// covered).
    whole: bool,
    /// Its content was verified in full (see the module docs, 3.).
    verified: bool,
    /// Imported or checked this visit: not to be read again (until its
    /// summary is read again, see `rereads`).
    tried: bool,
    /// How often its manifest was read again this visit.
    rereads: u8,
}

impl Held {
    /// The summary of `m`: every entry if it is `verified`, else those
    /// `node` replicates or wants. `None` if an id in it is not one this
    /// node reads.
    fn new(file: BundleFile, m: &Manifest, verified: bool, node: &Replica) -> Option<Held> {
        let set = node.replicate_set();
        let mut feeds = Vec::new();
        for f in &m.feeds {
            let feed: FeedId = f.feed.parse().ok()?;
            if verified || (set.contains(&feed) && !set.blocked.contains(&feed)) {
                feeds.push((feed, f.first, f.last));
            }
        }
        let mut blobs = Vec::new();
        for b in &m.blobs {
            let id: BlobId = b.id.parse().ok()?;
            // A blob we lack may be one a held message of these feeds
            // mentions and whose want was lost (see `offers`).
            if verified
                || (!node.blobs().has(&id) && (node.wants().is_wanted(&id) || !feeds.is_empty()))
            {
                blobs.push(id);
            }
        }
        feeds.shrink_to_fit();
        blobs.shrink_to_fit();
        Some(Held {
            file,
            created: m.created,
            whole: feeds.len() == m.feeds.len() && blobs.len() == m.blobs.len(),
            feeds,
            blobs,
            verified,
            tried: false,
            rereads: 0,
        })
    }

    /// Manifest entries kept.
    fn entries(&self) -> u64 {
        (self.feeds.len() as u64).saturating_add(self.blobs.len() as u64)
    }
}

/// Whether `h` offers anything this node would take: a feed range that
/// extends a replicated feed without a gap, a blob it wants, or a blob a
/// message it holds mentions and the blob store lacks (its want was lost:
/// [`import::lost_blobs`]).
fn offers(node: &Replica, h: &Held) -> Result<bool, ImportError> {
    let set = node.replicate_set();
    for &(feed, first, last) in &h.feeds {
        if !set.contains(&feed) || set.blocked.contains(&feed) {
            continue;
        }
        let held = node.seq(&feed)?;
        if u64::from(first) <= u64::from(held) + 1 && last > held {
            return Ok(true);
        }
    }
    if h.blobs
        .iter()
        .any(|id| node.wants().is_wanted(id) && !node.blobs().has(id))
    {
        return Ok(true);
    }
    let candidates: HashSet<BlobId> = h
        .blobs
        .iter()
        .filter(|id| !node.blobs().has(id) && !node.wants().is_wanted(id))
        .copied()
        .collect();
    if candidates.is_empty() {
        return Ok(false);
    }
    Ok(!import::lost_blobs(node, h.feeds.iter().copied(), candidates)?.is_empty())
}

/// What the verified bundles hold: per feed its ranges and the bundle each
/// comes from, and per blob how many bundles hold it.
struct Holdings {
    feeds: HashMap<FeedId, Vec<(u32, u32, usize)>>,
    blobs: HashMap<BlobId, u32>,
}

impl Holdings {
    fn of(held: &[Held]) -> Holdings {
        let mut h = Holdings {
            feeds: HashMap::new(),
            blobs: HashMap::new(),
        };
        for (i, b) in held.iter().enumerate().filter(|(_, b)| b.verified) {
            for &(feed, first, last) in &b.feeds {
                h.feeds.entry(feed).or_default().push((first, last, i));
            }
            for id in &b.blobs {
                *h.blobs.entry(*id).or_default() += 1;
            }
        }
        h
    }

    /// As a bundle coverage, for the feeds of `local` only (all that a
    /// plan of what to give looks at).
    fn coverage(&self, local: &Clock) -> Coverage {
        let mut c = Coverage::new();
        for (feed, ranges) in &self.feeds {
            let name = feed.to_string();
            if local.get(&name) == 0 {
                continue;
            }
            for &(a, b, _) in ranges {
                c.insert(&name, a, b);
            }
        }
        c
    }

    /// Per feed, the end of the run held from sequence 1.
    fn clock(&self) -> Vec<(FeedId, u32)> {
        self.feeds
            .iter()
            .filter_map(|(feed, ranges)| {
                let end = run_end(ranges.iter().map(|&(a, b, _)| (a, b)), 1)?;
                Some((*feed, end))
            })
            .collect()
    }

    /// Whether bundles other than `skip` hold all of `b`.
    fn covers_without(&self, b: &Held, skip: usize) -> bool {
        b.feeds.iter().all(|&(feed, first, last)| {
            let others = self
                .feeds
                .get(&feed)
                .into_iter()
                .flatten()
                .filter(|r| r.2 != skip)
                .map(|&(a, b, _)| (a, b));
            run_end(others, first).is_some_and(|end| end >= last)
        }) && b
            .blobs
            .iter()
            .all(|id| self.blobs.get(id).is_some_and(|&n| n >= 2))
    }
}

/// The last sequence of the run from `from` that `ranges` hold without a
/// gap; `None` if they do not hold `from`.
fn run_end(ranges: impl Iterator<Item = (u32, u32)>, from: u32) -> Option<u32> {
    let mut ranges: Vec<(u32, u32)> = ranges.collect();
    ranges.sort_unstable();
    let mut next = u64::from(from);
    for (a, b) in ranges {
        if u64::from(a) > next {
            break;
        }
        next = next.max(u64::from(b) + 1);
    }
    (next > u64::from(from)).then(|| u32::try_from(next - 1).unwrap_or(u32::MAX))
}

/// Whether `h` claims part of `give` (feed → ranges we would export).
fn claims_part_of(h: &Held, give: &HashMap<FeedId, Vec<(u32, u32)>>) -> bool {
    h.feeds.iter().any(|&(feed, first, last)| {
        give.get(&feed)
            .is_some_and(|r| r.iter().any(|&(a, b)| first <= b && a <= last))
    })
}

fn give_index(give: &[FeedRange]) -> HashMap<FeedId, Vec<(u32, u32)>> {
    let mut out: HashMap<FeedId, Vec<(u32, u32)>> = HashMap::new();
    for r in give {
        if let Ok(feed) = r.feed.parse() {
            out.entry(feed).or_default().push((r.first, r.last));
        }
    }
    out
}

/// Removes the oldest verified bundle, of which every entry is known, whose
/// feeds and blobs other verified bundles cover. Returns whether one was
/// removed.
fn drop_one_covered(stick: &Stick, held: &mut Vec<Held>) -> Result<bool, ReconcileError> {
    let holdings = Holdings::of(held);
    let mut order: Vec<usize> = (0..held.len())
        .filter(|&i| held[i].verified && held[i].whole)
        .collect();
    order.sort_by_key(|&i| held[i].created);
    for i in order {
        if holdings.covers_without(&held[i], i) {
            let b = held.remove(i);
            tracing::info!(
                "removing {} from the full stick: newer bundles cover it",
                b.file.path.display()
            );
            stick.remove_bundle(&b.file)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes a bundle that is damaged for every reader (so that it no longer
/// counts as the stick's content, and the next exporter writes it again).
fn remove_damaged(stick: &Stick, b: &BundleFile) -> Result<bool, ReconcileError> {
    if !stick.writable {
        return Ok(false);
    }
    tracing::warn!(
        "removing damaged bundle {} from the stick",
        b.path.display()
    );
    stick.remove_bundle(b)?;
    Ok(true)
}

/// A failed read of a bundle as the visit's error: the stick's I/O.
fn stick_io(b: &BundleFile, e: std::io::Error) -> ReconcileError {
    StickError::Io {
        path: b.path.display().to_string(),
        source: e,
    }
    .into()
}

/// Opens a bundle to read it, or says why it stays unread (it is no
/// longer a regular file of the stick: a link or mount swapped in).
fn open_or_unread(
    stick: &Stick,
    b: &BundleFile,
) -> Result<Result<std::fs::File, Rejected>, ReconcileError> {
    match stick.open_bundle(b) {
        Ok(f) => Ok(Ok(f)),
        Err(StickError::Refused { reason, .. }) => Ok(Err(Rejected {
            bundle: b.name.file_name(),
            reason,
            removed: false,
        })),
        Err(e) => Err(e.into()),
    }
}

/// What became of a bundle that failed a full read.
enum Failed {
    /// Damaged for everyone: refused (and removed if the stick is writable).
    Damaged(Rejected),
    /// At odds with our store (a fork): refused, left for others.
    Refused(Rejected),
    /// Beyond what this node reads (a newer version, over its limits), or
    /// no longer a regular file of the stick: left unread.
    Unread(Rejected),
}

fn failed(stick: &Stick, b: &BundleFile, e: ImportError) -> Result<Failed, ReconcileError> {
    if let ImportError::Rejected(BundleError::Io(e)) = e {
        return Err(stick_io(b, e));
    }
    if !e.is_rejection() {
        return Err(e.into());
    }
    tracing::warn!("{}: {e}", b.path.display());
    let mut r = Rejected {
        bundle: b.name.file_name(),
        reason: e.to_string(),
        removed: false,
    };
    if matches!(&e, ImportError::Rejected(be) if be.is_beyond_this_reader()) {
        return Ok(Failed::Unread(r));
    }
    if e.is_damage() {
        r.removed = remove_damaged(stick, b)?;
        return Ok(Failed::Damaged(r));
    }
    Ok(Failed::Refused(r))
}

/// Visits the stick mounted at `mount`; see the module docs. Blocking: call
/// from a blocking thread.
pub fn sync_stick(
    node: &Replica,
    mount: &Path,
    progress: &mut dyn FnMut(Step),
) -> Result<StickReport, ReconcileError> {
    visit(node, mount, progress, MAX_BUNDLES, MAX_ENTRIES)
}

/// [`sync_stick`] looking at most at `max_bundles` bundles and keeping at
/// most `max_entries` manifest entries.
fn visit(
    node: &Replica,
    mount: &Path,
    progress: &mut dyn FnMut(Step),
    max_bundles: usize,
    max_entries: u64,
) -> Result<StickReport, ReconcileError> {
    let limits = Limits::default();
    let stick = Stick::open(mount)?;
    let mut report = StickReport {
        stick: stick.id.clone(),
        mount: mount.display().to_string(),
        ..StickReport::default()
    };
    // 1. Manifests, one at a time, kept as summaries within the budget.
    let listing = stick.bundles(max_bundles)?;
    report.not_looked_at = listing.over;
    for (bundle, what) in listing.odd {
        report.unread.push(Rejected {
            bundle,
            reason: format!("{what}, not a bundle file: never opened"),
            removed: false,
        });
    }
    let mut budget = max_entries;
    let mut held: Vec<Held> = Vec::new();
    for b in listing.files {
        let unread = |reason: String| Rejected {
            bundle: b.name.file_name(),
            reason,
            removed: false,
        };
        let file = match open_or_unread(&stick, &b)? {
            Ok(f) => f,
            Err(r) => {
                report.unread.push(r);
                continue;
            }
        };
        match bundle_format::read_manifest(file, &limits) {
            Ok((m, name)) if name == b.name => {
                let verified = node.store().bundle_verified(&name.0)?;
                let Some(h) = Held::new(b.clone(), &m, verified, node) else {
                    report.rejected.push(Rejected {
                        bundle: b.name.file_name(),
                        reason: "its manifest names an id this node does not read".into(),
                        removed: false,
                    });
                    continue;
                };
                drop(m);
                let n = h.entries();
                if n > budget {
                    report.unread.push(unread(format!(
                        "the {n} manifest entries it holds for us are over what this visit \
                         keeps ({max_entries} in all)"
                    )));
                    continue;
                }
                budget -= n;
                held.push(h);
            }
            Ok((_, name)) => report.rejected.push(Rejected {
                bundle: b.name.file_name(),
                reason: format!("its content is {}", name.file_name()),
                removed: false,
            }),
            Err(BundleError::Io(e)) => return Err(stick_io(&b, e)),
            Err(e) if e.is_beyond_this_reader() => {
                tracing::info!("{}: {e}; left on the stick", b.path.display());
                report.unread.push(unread(e.to_string()));
            }
            Err(e) => report.rejected.push(Rejected {
                bundle: b.name.file_name(),
                reason: e.to_string(),
                removed: remove_damaged(&stick, &b)?,
            }),
        }
    }
    held.sort_by_key(|h| h.created);

    // 2. Import while it makes progress.
    let mut gone: HashSet<BundleName> = HashSet::new();
    'import: loop {
        let mut progressed = false;
        let set_before = node.replicate_set();
        for h in held.iter_mut() {
            if h.tried || !offers(node, h)? {
                continue;
            }
            h.tried = true;
            let file = match open_or_unread(&stick, &h.file)? {
                Ok(file) => file,
                Err(r) => {
                    gone.insert(h.file.name);
                    report.unread.push(r);
                    continue;
                }
            };
            match import::import(node, file, Some(&h.file.name), &limits, &mut |n| {
                progress(Step::Importing(n))
            }) {
                Ok(r) => {
                    h.verified = true;
                    report.imported_bundles += 1;
                    report.imported_messages += r.messages;
                    report.imported_blobs += r.blobs;
                    progressed |= r.messages > 0 || r.blobs > 0;
                    tracing::info!(
                        "imported {}: {} messages, {} blobs",
                        r.name,
                        r.messages,
                        r.blobs
                    );
                }
                // Our disk has no room: the bundle is fine, the visit
                // takes nothing more, and still exports.
                Err(ImportError::DiskFull(full)) => {
                    tracing::warn!("{}: not imported: {full}", h.file.path.display());
                    report.problem = Some(full.to_string());
                    break 'import;
                }
                Err(e) => {
                    gone.insert(h.file.name);
                    match failed(&stick, &h.file, e)? {
                        Failed::Damaged(r) | Failed::Refused(r) => report.rejected.push(r),
                        Failed::Unread(r) => report.unread.push(r),
                    }
                }
            }
        }
        if !progressed {
            break;
        }
        // The summaries that left entries out are read again (at most
        // [`REREADS`] times each): of a bundle imported now, as it is
        // verified, to keep all it holds (the stick's clock); of any, if
        // what was imported widened what we carry (a contact message of a
        // feed within hops), so the same visit takes the newly carried
        // feeds (a site's community with the site's own feed).
        let widened = *node.replicate_set() != *set_before;
        for h in held.iter_mut() {
            if h.whole
                || h.rereads >= REREADS
                || gone.contains(&h.file.name)
                || !(widened || h.verified)
            {
                continue;
            }
            h.rereads += 1;
            let file = match open_or_unread(&stick, &h.file)? {
                Ok(f) => f,
                Err(_) => continue,
            };
            let m = match bundle_format::read_manifest(file, &limits) {
                Ok((m, name)) if name == h.file.name => m,
                Ok(_) | Err(_) => continue,
            };
            let Some(mut fresh) = Held::new(h.file.clone(), &m, h.verified, node) else {
                continue;
            };
            let (old, new) = (h.entries(), fresh.entries());
            if new > old && new - old > budget {
                continue;
            }
            budget = budget + old - new;
            fresh.rereads = h.rereads;
            *h = fresh;
        }
    }
    held.retain(|h| !gone.contains(&h.file.name));

    // 3. Verify, before believing them, the bundles that claim what we
    // would otherwise export.
    let local = local_clock(node)?;
    if stick.writable {
        // What we would give only shrinks as bundles are verified: one pass.
        let give_now =
            |held: &[Held]| give_index(&plan(&local, &Holdings::of(held).coverage(&local)).give);
        let mut give = give_now(&held);
        let mut i = 0;
        while i < held.len() {
            let h = &mut held[i];
            if h.verified || h.tried || !claims_part_of(h, &give) {
                i += 1;
                continue;
            }
            h.tried = true;
            let b = h.file.clone();
            let checked = match open_or_unread(&stick, &b)? {
                Ok(file) => import::verify(file, Some(&b.name), &limits, &mut |n| {
                    progress(Step::Importing(n))
                })
                .map_err(|e| failed(&stick, &b, e))
                .map(|_| ()),
                Err(r) => Err(Ok(Failed::Unread(r))),
            };
            match checked {
                Ok(()) => {
                    held[i].verified = true;
                    report.verified_bundles += 1;
                    tracing::info!("verified {}", b.name);
                    give = give_now(&held);
                    i += 1;
                }
                Err(f) => {
                    held.remove(i);
                    match f? {
                        Failed::Damaged(r) | Failed::Refused(r) => report.rejected.push(r),
                        Failed::Unread(r) => report.unread.push(r),
                    }
                }
            }
        }
    }
    let before: HashMap<FeedId, u32> = node.store().remote_clock(&clock_name(&stick.id))?;
    for (feed, seq) in Holdings::of(&held).clock() {
        let old = before.get(&feed).copied().unwrap_or(0);
        report.new_since_last_visit += u64::from(seq.saturating_sub(old));
    }

    // 4. Export what the stick lacks.
    if !stick.writable {
        report.problem = Some(StickError::ReadOnly(report.mount.clone()).to_string());
    } else {
        let holdings = Holdings::of(&held);
        let give = plan(&local, &holdings.coverage(&local)).give;
        let skip: HashSet<BlobId> = holdings.blobs.keys().copied().collect();
        drop(holdings);
        let mut ex = Exporter::new(node, give, skip);
        loop {
            progress(Step::Exporting(ex.messages_left()));
            let (free, total) = stick.space()?;
            let cap = FAT32_MAX_FILE.min(free.saturating_sub(margin(total)));
            let attempt = ex
                .plan_next(cap)
                .map_err(ReconcileError::from)
                .and_then(|p| {
                    let Some(p) = p else { return Ok(None) };
                    let mut bytes = 0;
                    let path = stick.write_bundle(|out| {
                        let w = ex.write(&p, out)?;
                        bytes = w.file_bytes;
                        Ok::<_, ReconcileError>(w.name)
                    })?;
                    Ok(Some((p, path, bytes)))
                });
            match attempt {
                Ok(None) => break,
                Ok(Some((p, path, bytes))) => {
                    ex.advance(&p);
                    report.exported_bundles += 1;
                    report.exported_messages += p.manifest.messages();
                    report.exported_blobs += p.manifest.blobs.len() as u64;
                    report.exported_bytes += bytes;
                    tracing::info!("wrote {} ({bytes} bytes)", path.display());
                    let name =
                        BundleName::parse(path.file_name().and_then(|n| n.to_str()).unwrap_or(""));
                    if let Some(name) = name {
                        let file = BundleFile {
                            path,
                            name,
                            size: bytes,
                        };
                        held.extend(Held::new(file, &p.manifest, true, node));
                    }
                }
                Err(e) if e.is_full() => {
                    if drop_one_covered(&stick, &mut held)? {
                        report.removed_bundles += 1;
                        continue;
                    }
                    let free = stick.space().map(|(f, _)| f).unwrap_or(0);
                    report.problem = Some(StickError::Full { free }.to_string());
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    report.bundles = held.len() as u64;
    report.unverified_bundles = held.iter().filter(|h| !h.verified).count() as u64;

    // 5. Remember the stick.
    let clock = Holdings::of(&held).clock();
    node.store()
        .save_remote_clock(&clock_name(&stick.id), clock.iter().copied())?;
    node.store().remember_verified_bundles(
        held.iter().filter(|h| h.verified).map(|h| h.file.name.0),
        now_ms() as u64,
    )?;
    let info = serde_json::json!({
        "id": stick.id,
        "mount": report.mount,
        "last_sync": now_ms() as u64,
        "bundles": report.bundles,
        "feeds": clock.len(),
        "messages": clock.iter().map(|&(_, s)| u64::from(s)).sum::<u64>(),
        "problem": report.problem,
        "brought": { "messages": report.imported_messages, "blobs": report.imported_blobs },
        "took": { "messages": report.exported_messages, "blobs": report.exported_blobs },
    });
    node.store()
        .save_stick_info(&stick.id, info.to_string().as_bytes())?;
    node.store().persist()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_store::BlobStore;
    use crate::feed::Keypair;
    use crate::replica::Policy;
    use crate::store::Store;
    use sha2::Digest as _;

    /// A manifest-only bundle claiming messages 1..=`last` of `feed`, put
    /// in `bundles`; its name.
    fn claim(bundles: &Path, feed: &FeedId, last: u32) -> BundleName {
        let mut m = Manifest::new(feed.to_string(), 1_700_000_000_000 + u64::from(last));
        m.feeds.push(bundle_format::FeedEntry {
            feed: feed.to_string(),
            first: 1,
            last,
            bytes: u64::from(last) * 600,
            sha256: "0".repeat(64),
        });
        let json = m.to_json();
        let mut tar =
            bundle_format::header::canonical("manifest.json", json.len() as u64, m.mtime())
                .to_vec();
        tar.extend_from_slice(&json);
        tar.resize(tar.len().next_multiple_of(512), 0);
        let name = BundleName(sha2::Sha256::digest(&json).into());
        let bytes = zstd::encode_all(&tar[..], 3).unwrap();
        std::fs::write(bundles.join(name.file_name()), bytes).unwrap();
        name
    }

    #[test]
    fn a_visit_keeps_to_its_bounds_and_leaves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let author = Keypair::from_seed(&[7; 32]).id();
        let node = Replica::new(
            Keypair::from_seed(&[1; 32]),
            Store::open(&dir.path().join("db")).unwrap(),
            BlobStore::open(&dir.path().join("blobs")).unwrap(),
            Policy {
                replicate: vec![author],
                ..Policy::default()
            },
        )
        .unwrap();
        let stick = dir.path().join("stick");
        let bundles = stick.join("SSB-SNEAKERNET/bundles");
        std::fs::create_dir_all(&bundles).unwrap();
        let mut names: Vec<BundleName> = (1..=4).map(|n| claim(&bundles, &author, n)).collect();
        names.sort();
        // Three looked at (the first names), two entries kept: the third
        // bundle looked at is over the budget, the fourth not looked at.
        let r = visit(&node, &stick, &mut |_| {}, 3, 2).unwrap();
        assert_eq!(r.not_looked_at, 1, "{r:?}");
        assert_eq!(r.unread.len(), 1, "{r:?}");
        assert_eq!(r.unread[0].bundle, names[2].file_name());
        assert!(r.unread[0]
            .reason
            .contains("over what this visit keeps (2 in all)"));
        // The two kept are forgeries: imported, found damaged, removed.
        assert_eq!(r.rejected.len(), 2, "{r:?}");
        assert!(r.rejected.iter().all(|x| x.removed));
        for (n, there) in names.iter().zip([false, false, true, true]) {
            assert_eq!(bundles.join(n.file_name()).exists(), there);
        }
    }

    #[test]
    fn runs_end_at_the_first_gap() {
        assert_eq!(run_end([(5, 9), (1, 3), (4, 4)].into_iter(), 1), Some(9));
        assert_eq!(run_end([(1, 3), (5, 9)].into_iter(), 1), Some(3));
        assert_eq!(run_end([(2, 3)].into_iter(), 1), None);
        assert_eq!(run_end([(1, 10), (2, 3)].into_iter(), 4), Some(10));
        assert_eq!(run_end([(1, u32::MAX)].into_iter(), 7), Some(u32::MAX));
        assert_eq!(run_end(std::iter::empty(), 1), None);
    }
}
