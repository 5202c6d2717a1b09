//! A stick visit: import what the stick has that we lack, export what it
//! lacks, and remember the stick's clock.
//!
//! 1. Open the stick (initialising a blank one), remove a pulled stick's
//!    leftovers, read every bundle's manifest (cheap: the first entry).
//! 2. Import, oldest bundle first, every bundle that offers something: a
//!    range extending a feed we replicate, or a blob we want. Repeat while
//!    that makes progress (one bundle can fill the gap before another).
//!    A bundle that fails its checks is reported and left on the stick:
//!    the stick is a carrier, not ours to clean.
//! 3. Export, for the feeds we replicate, what no bundle on the stick holds,
//!    in bundles that fit the free space less a margin and stay below
//!    FAT32's 4 GiB. When the stick is full, bundles whose content other
//!    bundles cover are removed first (oldest first); if still full, the
//!    visit ends with a "stick is full" problem.
//! 4. Store the stick's clock (what its bundles hold from sequence 1 on) and
//!    when we saw it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bundle_format::{plan, BundleError, Clock, Coverage, Limits, Manifest, FAT32_MAX_FILE};

use super::export::{ExportError, Exporter};
use super::import::{self, ImportError};
use super::stick::{is_no_space, BundleFile, Stick, StickError};
use crate::feed::{BlobId, FeedId};
use crate::runtime::Node;
use crate::store::{now_ms, StoreError};

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

/// A bundle that was refused, and why.
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
    /// Bundles on the stick now.
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
fn local_clock(node: &Node) -> Result<Clock, StoreError> {
    let set = node.replicate_set();
    Ok(node
        .store
        .clock()?
        .into_iter()
        .filter(|(f, _)| set.contains(f) && !set.blocked.contains(f))
        .map(|(f, s)| (f.to_string(), s))
        .collect())
}

/// Removes the oldest bundle whose feeds and blobs the others cover.
/// Returns whether one was removed.
fn drop_one_covered(
    stick: &Stick,
    held: &mut Vec<(BundleFile, Manifest)>,
) -> Result<bool, ReconcileError> {
    let mut order: Vec<usize> = (0..held.len()).collect();
    order.sort_by_key(|&i| held[i].1.created);
    for i in order {
        let others = held
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, (_, m))| m);
        let cover = Coverage::from_manifests(others.clone());
        let blobs: HashSet<&str> = others
            .flat_map(|m| m.blobs.iter().map(|b| b.id.as_str()))
            .collect();
        let m = &held[i].1;
        let covered = m.feeds.iter().all(|f| {
            cover
                .ranges(&f.feed)
                .iter()
                .any(|&(a, b)| a <= f.first && f.last <= b)
        }) && m.blobs.iter().all(|b| blobs.contains(b.id.as_str()));
        if covered {
            let (file, _) = held.remove(i);
            tracing::info!(
                "removing {} from the full stick: newer bundles cover it",
                file.path.display()
            );
            stick.remove_bundle(&file)?;
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

/// Visits the stick mounted at `mount`; see the module docs. Blocking: call
/// from a blocking thread.
pub fn sync_stick(
    node: &Node,
    mount: &Path,
    progress: &mut dyn FnMut(Step),
) -> Result<StickReport, ReconcileError> {
    let limits = Limits::default();
    let stick = Stick::open(mount)?;
    let mut report = StickReport {
        stick: stick.id.clone(),
        mount: mount.display().to_string(),
        ..StickReport::default()
    };
    // 1. Manifests.
    let mut held: Vec<(BundleFile, Manifest)> = Vec::new();
    for b in stick.bundles()? {
        let file = stick.open_bundle(&b)?;
        match bundle_format::read_manifest(file, &limits) {
            Ok((m, name)) if name == b.name => held.push((b, m)),
            Ok((_, name)) => report.rejected.push(Rejected {
                bundle: b.name.file_name(),
                reason: format!("its content is {}", name.file_name()),
                removed: false,
            }),
            Err(BundleError::Io(e)) => {
                return Err(StickError::Io {
                    path: b.path.display().to_string(),
                    source: e,
                }
                .into())
            }
            Err(e) => report.rejected.push(Rejected {
                bundle: b.name.file_name(),
                reason: e.to_string(),
                removed: remove_damaged(&stick, &b)?,
            }),
        }
    }
    held.sort_by_key(|(_, m)| m.created);
    let before: HashMap<FeedId, u32> = node.store.remote_clock(&clock_name(&stick.id))?;
    for (feed, seq) in Coverage::from_manifests(held.iter().map(|(_, m)| m))
        .clock()
        .iter()
    {
        let old = feed
            .parse()
            .ok()
            .and_then(|f| before.get(&f))
            .copied()
            .unwrap_or(0);
        report.new_since_last_visit += u64::from(seq.saturating_sub(old));
    }

    // 2. Import while it makes progress.
    let mut done: HashSet<usize> = HashSet::new();
    loop {
        let mut progressed = false;
        for (i, (b, m)) in held.iter().enumerate() {
            if done.contains(&i) || !import::offers_anything(node, m)? {
                continue;
            }
            let file = stick.open_bundle(b)?;
            match import::import(node, file, Some(&b.name), &limits, &mut |n| {
                progress(Step::Importing(n))
            }) {
                Ok(r) => {
                    done.insert(i);
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
                Err(ImportError::Rejected(BundleError::Io(e))) => {
                    return Err(StickError::Io {
                        path: b.path.display().to_string(),
                        source: e,
                    }
                    .into())
                }
                Err(e) if e.is_rejection() => {
                    tracing::warn!("{}: {e}", b.path.display());
                    done.insert(i);
                    let removed = e.is_damage() && remove_damaged(&stick, b)?;
                    report.rejected.push(Rejected {
                        bundle: b.name.file_name(),
                        reason: e.to_string(),
                        removed,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !progressed {
            break;
        }
    }
    let rejected: HashSet<String> = report.rejected.iter().map(|r| r.bundle.clone()).collect();
    held.retain(|(b, _)| !rejected.contains(&b.name.file_name()));

    // 3. Export what the stick lacks.
    if !stick.writable {
        report.problem = Some(StickError::ReadOnly(report.mount.clone()).to_string());
    } else {
        let coverage = Coverage::from_manifests(held.iter().map(|(_, m)| m));
        let give = plan(&local_clock(node)?, &coverage).give;
        let skip: HashSet<BlobId> = held
            .iter()
            .flat_map(|(_, m)| m.blobs.iter().filter_map(|b| b.id.parse().ok()))
            .collect();
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
                    let name = bundle_format::BundleName::parse(
                        path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                    );
                    if let Some(name) = name {
                        let file = BundleFile {
                            path,
                            name,
                            size: bytes,
                        };
                        held.push((file, p.manifest));
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

    // 4. Remember the stick.
    let clock = Coverage::from_manifests(held.iter().map(|(_, m)| m)).clock();
    node.store.save_remote_clock(
        &clock_name(&stick.id),
        clock.iter().filter_map(|(f, s)| Some((f.parse().ok()?, s))),
    )?;
    let info = serde_json::json!({
        "id": stick.id,
        "mount": report.mount,
        "last_sync": now_ms() as u64,
        "bundles": report.bundles,
        "feeds": clock.len(),
        "messages": clock.iter().map(|(_, s)| u64::from(s)).sum::<u64>(),
        "problem": report.problem,
    });
    node.store
        .save_stick_info(&stick.id, info.to_string().as_bytes())?;
    node.store.persist()?;
    Ok(report)
}
