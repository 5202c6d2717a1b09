//! Importing a bundle: check everything, stage, then make it visible.
//!
//! One pass over the file. Every message in the bundle is parsed and its
//! signature checked (in batches, on the other cores while the next batch
//! is parsed), its author and sequence must be where the manifest places it,
//! and each feed entry must chain: line to line, and to the store where the
//! store holds the message before the entry's first. Messages that extend a
//! feed we replicate are written into the log past their feed's head, where
//! no read looks (see [`crate::store::incoming`]), and noted in a staging
//! file; wanted blobs go to the blob store's temp area (invisible). Only
//! when the reader has checked every digest and the trailer's signature are
//! the blobs moved into place and then the messages promoted (the heads
//! moved over them): so nothing from a rejected bundle becomes visible
//! (what it wrote is dropped at once), and a crash at any point leaves
//! every feed a valid prefix and no visible message without its bundled
//! blob (the next open drops what lies past the heads; the next import
//! converges). Importing a bundle twice adds nothing the second time.
//! [`crate::replica::stop_at`] names the steps, for tests that kill an import at
//! each.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use bundle_format::{BundleError, BundleItem, BundleName, BundleReader, Limits, Manifest};

use crate::blob_store::{BlobError, StagedBlob};
use crate::feed::{BatchVerifier, BlobId, FeedHead, FeedId, Invalid, Message, Value};
use crate::replica::stop_at::{self, Point};
use crate::replica::{scan_content, Replica};
use crate::store::incoming::Incoming;
use crate::store::stage::{Stage, Staged};
use crate::store::StoreError;

/// Messages verified together.
const BATCH: usize = crate::ingest::BATCH;

/// Why an import failed. Every `Rejected…` variant means nothing of the
/// bundle became visible.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle itself is bad: format, digests, signature, limits.
    #[error("bundle rejected: {0}")]
    Rejected(#[from] BundleError),
    /// A message in it is bad.
    #[error("bundle rejected: message {seq} of {feed}: {reason}")]
    RejectedMessage {
        /// The feed entry's feed.
        feed: String,
        /// The line's sequence.
        seq: u32,
        /// What is wrong with it.
        reason: Invalid,
    },
    /// A line holds another message than the manifest places there.
    #[error("bundle rejected: the line for message {seq} of {feed} holds {actual}")]
    Misplaced {
        /// The feed entry's feed.
        feed: String,
        /// The sequence the line should have.
        seq: u32,
        /// What it holds.
        actual: String,
    },
    /// The file's name does not match its content.
    #[error("bundle rejected: the file is named {file} but its content is {content}")]
    RejectedName {
        /// The name on the file.
        file: String,
        /// The name its manifest gives.
        content: String,
    },
    /// Our store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Our blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// The data disk has no room above its reserve for what the bundle adds.
    #[error(transparent)]
    DiskFull(#[from] crate::replica::DiskFull),
}

impl ImportError {
    /// Whether the bundle was refused (as opposed to a local failure).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            ImportError::Rejected(_)
                | ImportError::RejectedMessage { .. }
                | ImportError::Misplaced { .. }
                | ImportError::RejectedName { .. }
        )
    }
}

impl ImportError {
    /// Whether the bundle is bad for every reader (format, digests,
    /// signatures, placement), as opposed to at odds with our store (a
    /// fork), beyond what this reader reads (a newer version, over its
    /// limits) or a local failure.
    pub fn is_damage(&self) -> bool {
        match self {
            ImportError::Rejected(BundleError::Io(_)) => false,
            ImportError::Rejected(e) if e.is_beyond_this_reader() => false,
            ImportError::RejectedMessage { reason, .. } => !matches!(reason, Invalid::Fork { .. }),
            other => other.is_rejection(),
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    /// The bundle's name.
    pub name: String,
    /// Who made it.
    pub author: String,
    /// Messages checked (all in the bundle).
    pub checked: u64,
    /// Messages added to the store.
    pub messages: u64,
    /// Blobs added to the blob store.
    pub blobs: u64,
    /// Their bytes.
    pub blob_bytes: u64,
    /// Feed entries that could not be used yet, and why (a gap before
    /// them, or a feed we do not replicate).
    pub unused: Vec<String>,
}

/// Told how many messages are checked so far.
pub type OnChecked<'a> = &'a mut dyn FnMut(u64);

/// What to do with one feed entry, decided from the manifest and the store.
struct Entry {
    feed: FeedId,
    /// The store's latest sequence of the feed (0 for none).
    held: u32,
    /// The message before the entry's first, if the store holds it (or the
    /// entry starts at 1): the chain's anchor.
    anchor: Option<Option<FeedHead>>,
    /// Whether new messages of this entry are staged.
    take: bool,
}

fn bad_entry(feed: &str) -> BundleError {
    BundleError::InvalidManifest(format!("feed {feed:?} is not a classic feed id"))
}

/// Plans every feed entry of `manifest` against the store, or, with no
/// node (checking a bundle on its own), anchors only entries that start at 1.
fn entries(
    node: Option<&Replica>,
    manifest: &Manifest,
    unused: &mut Vec<String>,
) -> Result<Vec<Entry>, ImportError> {
    let set = node.map(Replica::replicate_set);
    let mut out = Vec::with_capacity(manifest.feeds.len());
    for f in &manifest.feeds {
        let feed: FeedId = f.feed.parse().map_err(|_| bad_entry(&f.feed))?;
        let held = node.map_or(Ok(0), |n| n.seq(&feed))?;
        let anchor = if f.first == 1 {
            Some(None)
        } else if let Some(node) = node.filter(|_| f.first - 1 <= held) {
            node.store().get_at(&feed, f.first - 1)?.map(|m| {
                Some(FeedHead {
                    id: m.id,
                    sequence: f.first - 1,
                })
            })
        } else {
            None
        };
        let Some(set) = &set else {
            out.push(Entry {
                feed,
                held,
                anchor,
                take: false,
            });
            continue;
        };
        let replicated = set.contains(&feed) && !set.blocked.contains(&feed);
        let take = replicated && anchor.is_some() && f.last > held;
        if !replicated {
            unused.push(format!("{}: not replicated here", f.feed));
        } else if anchor.is_none() {
            unused.push(format!(
                "{}: starts at {}, but we hold only up to {held}",
                f.feed, f.first
            ));
        }
        out.push(Entry {
            feed,
            held,
            anchor,
            take,
        });
    }
    Ok(out)
}

/// Of `candidates` (blobs a bundle carries that the blob store lacks and
/// nothing wants), those that a message the store holds within `ranges`
/// (feed, first, last of the bundle's feed entries) mentions: their want was
/// lost (a process killed after the message became visible and before its
/// want was written). Reads held messages only when there is a candidate,
/// and stops once every one is found.
pub fn lost_blobs(
    node: &Replica,
    ranges: impl IntoIterator<Item = (FeedId, u32, u32)>,
    mut candidates: HashSet<BlobId>,
) -> Result<HashSet<BlobId>, ImportError> {
    let mut lost = HashSet::new();
    for (feed, first, last) in ranges {
        if candidates.is_empty() {
            break;
        }
        // Under a blob quota a foreign blob not held may have been removed
        // on purpose: only the blobs it never removes are healed.
        if node.blob_quota().is_some() && feed != *node.id() && !node.policy().keep.contains(&feed)
        {
            continue;
        }
        let last = last.min(node.seq(&feed)?);
        if first == 0 || first > last {
            continue;
        }
        for stored in node
            .store()
            .feed(&feed, first)
            .take((last - first + 1) as usize)
        {
            let stored = stored?;
            let value = Value::parse(stored.json.as_bytes())
                .map_err(|_| StoreError::Corrupt("a stored message is not JSON".to_owned()))?;
            let content = value
                .as_object()
                .and_then(|o| o.get("content"))
                .unwrap_or(&Value::Null);
            for b in scan_content(content).0 {
                if candidates.remove(&b) {
                    lost.insert(b);
                }
            }
            if candidates.is_empty() {
                break;
            }
        }
    }
    Ok(lost)
}

/// A read error seen by the blob store's copy, kept so it can be reported
/// as the bundle's fault rather than ours.
struct Tap<'a, R: Read> {
    inner: &'a mut R,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }
}

/// Imports the bundle read from `input` into `node`. With `file_name`, the
/// bundle's content must match that name. Blocking: call from a blocking
/// thread. See the module docs for what is checked.
pub fn import(
    node: &Replica,
    input: impl Read,
    file_name: Option<&BundleName>,
    limits: &Limits,
    progress: OnChecked<'_>,
) -> Result<ImportReport, ImportError> {
    let _one_at_a_time = node.lock_imports();
    let start = std::time::Instant::now();
    // On any error the staging file and staged blobs are dropped unseen,
    // and so is what was written past the feeds' heads.
    let (mut report, stage, blobs) = match check(Some(node), input, file_name, limits, progress) {
        Ok(checked) => checked,
        Err(e) => {
            if let Err(dropping) = node.with_append_lock(|| node.store().drop_incoming()) {
                tracing::warn!("dropping what a rejected import wrote: {dropping} (done when the store is next opened)");
            }
            return Err(e);
        }
    };
    tracing::debug!(
        secs = start.elapsed().as_secs_f64(),
        checked = report.checked,
        "bundle checked"
    );
    stop_at::reached(Point::Checked);
    // The blobs go into place (each fsynced) before any head moves over a
    // message that mentions them: a crash in between leaves blobs that no
    // visible message mentions yet, never a visible message whose bundled
    // blob is missing.
    if let Err(e) = place_blobs(node, blobs, &mut report) {
        if let Err(dropping) = node.with_append_lock(|| node.store().drop_incoming()) {
            tracing::warn!("dropping what a failed import wrote: {dropping} (done when the store is next opened)");
        }
        return Err(e);
    }
    stop_at::reached(Point::BlobsPlaced);
    if let Some(stage) = stage {
        let (added, stuck) = node.promote_staged(stage)?;
        report.messages = added;
        for (feed, why) in stuck {
            report.unused.push(format!("{feed}: {why}"));
        }
    }
    tracing::debug!(
        secs = start.elapsed().as_secs_f64(),
        added = report.messages,
        "staged messages promoted"
    );
    stop_at::reached(Point::Promoted);
    stop_at::reached(Point::Imported);
    Ok(report)
}

/// Moves the staged blobs into the blob store, and forgets their wants.
fn place_blobs(
    node: &Replica,
    blobs: Vec<StagedBlob>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    for b in blobs {
        let id = b.id;
        let size = b.size;
        node.blobs().commit(b)?;
        node.store().remove_want(&id)?;
        node.wants().got(&id);
        report.blobs += 1;
        report.blob_bytes += size;
    }
    Ok(())
}

/// Checks a bundle completely on its own, with no store: format, digests,
/// trailer signature, every message's signature and placement, and each
/// feed entry's chain from its first line (anchored only where it starts at
/// sequence 1). What `ssb-node bundle verify` runs.
pub fn verify(
    input: impl Read,
    file_name: Option<&BundleName>,
    limits: &Limits,
    progress: OnChecked<'_>,
) -> Result<ImportReport, ImportError> {
    check(None, input, file_name, limits, progress).map(|(report, _, _)| report)
}

/// A batch of parsed messages, each marked for staging or not.
type Batch = Vec<(Message, bool)>;

/// Signature checks beside the reading thread: each of a few threads
/// checks whole batches while the reading thread decompresses, hashes,
/// parses and stages the next one. When they are all busy (one batch is
/// already waiting), the reading thread checks the batch itself instead of
/// waiting, so every core stays busy whichever side is slower. At most
/// two batches per checking thread, plus the one being read, are in
/// memory. The first failure in file order is kept, and once one is seen
/// no more batches are taken.
struct Checker<'scope> {
    tx: SyncSender<(u64, Batch)>,
    /// Batches handed over so far (each one's place in file order).
    sent: u64,
    stopped: Arc<AtomicBool>,
    threads: Vec<ScopedJoinHandle<'scope, Option<(u64, ImportError)>>>,
    /// The reading thread's own verifier, the batches it checked (the
    /// checking threads were all busy: signatures were the bottleneck),
    /// and the first failure it found.
    own: BatchVerifier,
    helped: u64,
    own_failure: Option<(u64, ImportError)>,
}

/// How many threads check signatures: one core is the reading thread's.
fn verifier_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).clamp(1, 3))
}

impl<'scope> Checker<'scope> {
    fn start(scope: &'scope Scope<'scope, '_>) -> Checker<'scope> {
        let (tx, rx) = sync_channel::<(u64, Batch)>(1);
        let rx = Arc::new(Mutex::new(rx));
        let stopped = Arc::new(AtomicBool::new(false));
        let threads = (0..verifier_threads())
            .map(|_| {
                let (rx, stopped) = (Arc::clone(&rx), Arc::clone(&stopped));
                scope.spawn(move || {
                    let mut verifier = BatchVerifier::new();
                    let mut first: Option<(u64, ImportError)> = None;
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((place, batch)) = job else { break };
                        if first.as_ref().is_some_and(|(p, _)| *p < place) {
                            continue;
                        }
                        if let Err(e) = verify_batch(&mut verifier, &batch) {
                            stopped.store(true, Ordering::Relaxed);
                            first = Some((place, e));
                        }
                    }
                    first
                })
            })
            .collect();
        Checker {
            tx,
            sent: 0,
            stopped,
            threads,
            own: BatchVerifier::new(),
            helped: 0,
            own_failure: None,
        }
    }

    /// Hands over a batch; false if checking has stopped (a batch failed:
    /// [`Checker::finish`] says why).
    fn send(&mut self, batch: Batch) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        if batch.is_empty() {
            return true;
        }
        let place = self.sent;
        self.sent += 1;
        match self.tx.try_send((place, batch)) {
            Ok(()) => true,
            Err(TrySendError::Full((place, batch))) => match verify_batch(&mut self.own, &batch) {
                Ok(()) => {
                    self.helped += 1;
                    true
                }
                Err(e) => {
                    self.stopped.store(true, Ordering::Relaxed);
                    self.own_failure = Some((place, e));
                    false
                }
            },
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Waits until every batch handed over is checked; the first failure
    /// in file order, if any.
    fn finish(self) -> Result<(), ImportError> {
        drop(self.tx);
        tracing::debug!(
            batches = self.sent,
            by_reader = self.helped,
            "signatures checked"
        );
        let mut first = self.own_failure;
        for t in self.threads {
            let failed = t
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if let Some((place, e)) = failed {
                if first.as_ref().is_none_or(|(p, _)| place < *p) {
                    first = Some((place, e));
                }
            }
        }
        first.map_or(Ok(()), |(_, e)| Err(e))
    }
}

/// The checking pass: with a node, everything new is staged (nothing
/// visible yet); without one, only checked.
fn check(
    node: Option<&Replica>,
    input: impl Read,
    file_name: Option<&BundleName>,
    limits: &Limits,
    progress: OnChecked<'_>,
) -> Result<(ImportReport, Option<Stage>, Vec<StagedBlob>), ImportError> {
    let started = std::time::Instant::now();
    let mut reader = BundleReader::open(input, limits)?;
    let name = reader.name();
    if let Some(file) = file_name.filter(|f| **f != name) {
        return Err(ImportError::RejectedName {
            file: file.file_name(),
            content: name.file_name(),
        });
    }
    let manifest = reader.manifest().clone();
    let mut report = ImportReport {
        name: name.file_name(),
        author: manifest.author.clone(),
        ..ImportReport::default()
    };
    let plan = entries(node, &manifest, &mut report.unused)?;
    let offered: HashSet<BlobId> = manifest
        .blobs
        .iter()
        .filter_map(|b| b.id.parse().ok())
        .collect();
    // Blobs whose want was lost are wanted again (durably, so that peers
    // are asked too) and taken from this bundle like those it links.
    let mut linked = HashSet::new();
    if let Some(node) = node {
        let candidates: HashSet<BlobId> = manifest
            .blobs
            .iter()
            .filter(|b| b.bytes <= node.blob_max() && node.keeps_blob(b.bytes))
            .filter_map(|b| b.id.parse().ok())
            .filter(|id| !node.blobs().has(id) && !node.wants().is_wanted(id))
            .collect();
        let ranges = manifest
            .feeds
            .iter()
            .zip(&plan)
            .map(|(f, e)| (e.feed, f.first, f.last));
        linked = lost_blobs(node, ranges, candidates)?;
        if !linked.is_empty() {
            let lost: Vec<BlobId> = linked.iter().copied().collect();
            tracing::info!(
                blobs = lost.len(),
                "held messages mention blobs nothing wanted: wanted again"
            );
            node.store().add_wants(&lost)?;
            node.wants().want(&lost);
        }
        node.store()
            .mark_incoming(plan.iter().filter(|e| e.take).map(|e| e.feed))?;
    }
    let stage = node.map(|n| n.store().stage()).transpose()?;
    let (stage, blobs) = std::thread::scope(|s| {
        let mut at = Reading {
            node,
            manifest: &manifest,
            plan: &plan,
            checker: Some(Checker::start(s)),
            stage,
            incoming: None,
            started,
            offered: &offered,
            linked,
            count: 0,
            progress,
        };
        let read = at.items(&mut reader);
        // Register what was written of an entry left half-read (a failure,
        // or a stop because a signature failed), so that dropping the
        // import's entries (the caller does) reclaims its space:
        // unregistered, its table file would stay on disk until the store
        // is next opened. After a whole read this does nothing.
        let ended = at.end_incoming();
        // Whatever happened, wait for the checking threads: their failure
        // is earlier in the file than the reading's.
        if let Some(checker) = at.checker.take() {
            checker.finish()?;
        }
        report.checked = at.count;
        let blobs = read?;
        ended?;
        Ok::<_, ImportError>((at.stage, blobs))
    })?;
    Ok((report, stage, blobs))
}

/// The reading side of the checking pass.
struct Reading<'a, 'scope> {
    node: Option<&'a Replica>,
    manifest: &'a Manifest,
    plan: &'a [Entry],
    /// The checking threads, until every line is handed over.
    checker: Option<Checker<'scope>>,
    /// The staging area (with a node). Lines are staged, and written past
    /// their feed's head, as they are read, before their signatures are
    /// checked: nothing of them is promoted unless every one passes.
    stage: Option<Stage>,
    /// The messages being written past their feeds' heads.
    incoming: Option<Incoming<'a>>,
    /// Blobs the bundle offers.
    offered: &'a HashSet<BlobId>,
    /// Offered blobs that staged messages mention, or held ones do whose
    /// want was lost (see [`lost_blobs`]).
    linked: HashSet<BlobId>,
    /// Lines handed over.
    count: u64,
    /// When the import began (for its debug log).
    started: std::time::Instant,
    progress: OnChecked<'a>,
}

impl Reading<'_, '_> {
    /// Stages a batch and hands it to the checking threads; false if they
    /// have stopped.
    fn hand_over(&mut self, pending: &mut Batch) -> Result<bool, ImportError> {
        if self.checker.is_none() {
            return Ok(false);
        }
        self.stage_batch(pending)?;
        let Some(checker) = &mut self.checker else {
            return Ok(false);
        };
        self.count += pending.len() as u64;
        let ok = checker.send(std::mem::replace(pending, Vec::with_capacity(BATCH)));
        (self.progress)(self.count);
        Ok(ok)
    }

    /// Writes the messages of a batch that are marked for it past their
    /// feed's head, and stages them, noting the offered blobs they mention.
    fn stage_batch(&mut self, batch: &Batch) -> Result<(), ImportError> {
        let (Some(node), Some(_)) = (self.node, &self.stage) else {
            return Ok(());
        };
        let taken = batch.iter().filter(|(_, take)| *take).count() as u64;
        if taken > 0 {
            node.disk().check(taken * crate::replica::MESSAGE_ROOM)?;
        }
        let mut staged = Vec::new();
        let mut json = Vec::with_capacity(1024);
        for (m, take) in batch {
            if !take {
                continue;
            }
            if !self
                .incoming
                .as_ref()
                .is_some_and(|i| i.takes(&m.author(), m.sequence()))
            {
                self.end_incoming()?;
                self.incoming = Some(node.store().incoming());
            }
            json.clear();
            m.value().write_compact(&mut json);
            if let Some(incoming) = &mut self.incoming {
                incoming.write(&m.author(), m.sequence(), &m.id(), &json)?;
            }
            let (blobs, contact) = scan_content(m.content());
            self.linked
                .extend(blobs.iter().filter(|b| self.offered.contains(b)).copied());
            staged.push(Staged {
                author: m.author(),
                sequence: m.sequence(),
                id: m.id(),
                previous: m.previous(),
                contact,
                blobs,
            });
        }
        if let Some(stage) = &mut self.stage {
            stage.push(&staged)?;
        }
        Ok(())
    }

    /// Registers what was written past the feeds' heads, except of feeds
    /// that grew into it meanwhile (their staged messages stay unused).
    fn end_incoming(&mut self) -> Result<(), ImportError> {
        let (Some(node), Some(incoming)) = (self.node, self.incoming.take()) else {
            return Ok(());
        };
        for feed in node.with_append_lock(|| incoming.finish())? {
            if let Some(stage) = &mut self.stage {
                stage.changed(feed);
            }
        }
        Ok(())
    }

    /// Reads every item: lines are parsed, placed and handed over in
    /// batches; at the first blob the checking threads must finish (blobs
    /// are kept if staged messages mention them). Returns the staged blobs;
    /// stops early with none if the checking threads have stopped.
    fn items<R: Read>(
        &mut self,
        reader: &mut BundleReader<R>,
    ) -> Result<Vec<StagedBlob>, ImportError> {
        let mut pending: Batch = Vec::with_capacity(BATCH);
        let mut staged_blobs = Vec::new();
        // The feed entry being read, and the head its next line must follow.
        let mut current: Option<(usize, Option<FeedHead>)> = None;
        while let Some(item) = reader.next()? {
            let mut blob = match item {
                BundleItem::Line(line) => {
                    let (index, m) = self.line(&line, current)?;
                    current = Some((index, Some(m.head())));
                    let entry = &self.plan[index];
                    let stage = entry.take && m.sequence() > entry.held;
                    pending.push((m, stage));
                    if pending.len() == BATCH && !self.hand_over(&mut pending)? {
                        return Ok(Vec::new());
                    }
                    continue;
                }
                BundleItem::Blob(blob) => blob,
            };
            if self.checker.is_some() {
                if !self.hand_over(&mut pending)? {
                    return Ok(Vec::new());
                }
                self.end_incoming()?;
                if let Some(checker) = self.checker.take() {
                    checker.finish()?;
                }
                stop_at::reached(Point::LinesStaged);
                tracing::debug!(
                    secs = self.started.elapsed().as_secs_f64(),
                    lines = self.count,
                    "lines checked; reading blobs"
                );
            }
            let id: Option<BlobId> = blob.id().parse().ok();
            let wanted = self.node.zip(id).and_then(|(node, id)| {
                let wanted = (self.linked.contains(&id) || node.wants().is_wanted(&id))
                    && !node.blobs().has(&id)
                    && blob.size() <= node.blob_max()
                    && node.keeps_blob(blob.size());
                wanted.then_some((node, id))
            });
            match wanted {
                Some((node, id)) => {
                    node.disk().check(blob.size())?;
                    let mut tap = Tap {
                        inner: &mut blob,
                        failed: None,
                    };
                    match node.blobs().stage(&mut tap, Some(&id), u64::MAX) {
                        Ok(staged) => staged_blobs.push(staged),
                        Err(e) => {
                            return Err(match tap.failed.take() {
                                Some(read) => ImportError::Rejected(blob.error(read)),
                                None => ImportError::Blob(e),
                            })
                        }
                    }
                }
                None => {
                    io::copy(&mut blob, &mut io::sink()).map_err(|e| blob.error(e))?;
                }
            }
        }
        // No blobs: the last lines are still to hand over.
        if self.checker.is_some() {
            self.hand_over(&mut pending)?;
            self.end_incoming()?;
            stop_at::reached(Point::LinesStaged);
        }
        Ok(staged_blobs)
    }

    /// Parses one line and checks where it stands: author and sequence as
    /// the manifest places it, chained to the line before (or the store),
    /// and no fork of what the store holds. Returns its feed entry's index.
    fn line(
        &self,
        line: &bundle_format::Line<'_>,
        current: Option<(usize, Option<FeedHead>)>,
    ) -> Result<(usize, Message), ImportError> {
        // Lines come entry by entry: look the feed up only when it changes.
        let index = match current {
            Some((i, _)) if self.manifest.feeds[i].feed == line.feed => i,
            _ => self
                .manifest
                .feeds
                .iter()
                .position(|f| f.feed == line.feed)
                .ok_or_else(|| bad_entry(line.feed))?,
        };
        let entry = &self.plan[index];
        let reject = |reason| ImportError::RejectedMessage {
            feed: line.feed.to_string(),
            seq: line.seq,
            reason,
        };
        let m = Message::parse(line.bytes, None).map_err(reject)?;
        if m.author() != entry.feed || m.sequence() != line.seq {
            return Err(ImportError::Misplaced {
                feed: line.feed.to_string(),
                seq: line.seq,
                actual: format!("message {} of {}", m.sequence(), m.author()),
            });
        }
        let prev = match current {
            Some((i, head)) if i == index => Some(head),
            _ => entry.anchor,
        };
        if let Some(head) = prev {
            m.check_chain(head.as_ref()).map_err(reject)?;
        }
        if let Some(node) = self.node.filter(|_| m.sequence() <= entry.held) {
            let stored = node.store().get_at(&entry.feed, m.sequence())?;
            if stored.is_some_and(|s| s.id != m.id()) {
                return Err(reject(Invalid::Fork {
                    sequence: m.sequence() - 1,
                }));
            }
        }
        Ok((index, m))
    }
}

/// Checks the signatures of a batch.
fn verify_batch(verifier: &mut BatchVerifier, batch: &Batch) -> Result<(), ImportError> {
    let msgs: Vec<&Message> = batch.iter().map(|(m, _)| m).collect();
    verifier.verify(&msgs).map_err(|(i, reason)| {
        let m = msgs[i];
        ImportError::RejectedMessage {
            feed: m.author().to_string(),
            seq: m.sequence(),
            reason,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_store::BlobStore;
    use crate::feed::{Keypair, Value};
    use crate::replica::Policy;
    use crate::store::Store;
    use std::path::Path;

    /// Table files under the store's keyspaces.
    fn table_files(db: &Path) -> usize {
        std::fs::read_dir(db.join("keyspaces"))
            .unwrap()
            .filter_map(|k| std::fs::read_dir(k.unwrap().path().join("tables")).ok())
            .map(Iterator::count)
            .sum()
    }

    /// A bundle of `n` messages by `author` that chain, message 2 with a
    /// signature that does not hold (the rest are signed on top of it).
    fn forged_at_2(author: &Keypair, n: u32) -> Vec<u8> {
        let mut lines = Vec::new();
        let mut head = None;
        for i in 1..=n {
            let content = Value::parse(format!(r#"{{"type":"post","n":{i}}}"#).as_bytes()).unwrap();
            let mut m =
                Message::create(author, head.as_ref(), f64::from(i), content, None).unwrap();
            if i == 2 {
                let json = m.value().to_compact();
                let at = json.find("\"signature\":\"").unwrap() + 13;
                let flipped = if &json[at..=at] == "A" { "B" } else { "A" };
                let forged = format!("{}{flipped}{}", &json[..at], &json[at + 1..]);
                m = Message::parse(forged.as_bytes(), None).unwrap();
            }
            head = Some(m.head());
            lines.push(m.value().to_compact().into_bytes());
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let exporter = Keypair::from_seed(&[9; 32]).id().to_string();
        let limits = Limits::default();
        let mut plan =
            bundle_format::Planner::new(&exporter, 1, bundle_format::FAT32_MAX_FILE, limits)
                .unwrap();
        plan.begin_feed(&author.id().to_string(), 1).unwrap();
        for l in &lines {
            plan.line(l).unwrap();
        }
        let manifest = plan.finish().unwrap();
        let mut w =
            bundle_format::BundleWriter::new(Vec::new(), manifest, &key, &Default::default())
                .unwrap();
        for l in &lines {
            w.line(l).unwrap();
        }
        w.finish().unwrap().out
    }

    #[test]
    fn a_bundle_refused_part_way_leaves_no_table_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let author = Keypair::from_seed(&[7; 32]);
        let bundle = forged_at_2(&author, 6000);
        let db = dir.path().join("db");
        let node = Replica::new(
            Keypair::from_seed(&[1; 32]),
            Store::open(&db).unwrap(),
            BlobStore::open(&dir.path().join("blobs")).unwrap(),
            Policy {
                replicate: vec![author.id()],
                ..Policy::default()
            },
        )
        .unwrap();
        // The signature check of the first batch fails while later lines
        // are still being read and written past the feed's head.
        let e = import(&node, &bundle[..], None, &Limits::default(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(e, ImportError::RejectedMessage { seq: 2, .. }),
            "{e}"
        );
        assert_eq!(node.store().head(&author.id()).unwrap(), None);
        assert!(!node.store().incoming_marked().unwrap());
        drop(node);
        let before = table_files(&db);
        // Opening deletes every table file no version names: none.
        let store = Store::open(&db).unwrap();
        assert_eq!(table_files(&db), before, "an unregistered table was left");
        assert!(store.check().unwrap().problems.is_empty());
    }
}
