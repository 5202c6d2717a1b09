//! The blob quota: the most bytes of blobs kept (config `blob_quota`).
//!
//! When the blobs held exceed the quota, [`enforce`] removes *foreign* blobs,
//! highest score first, until they fit again. The score of a blob is
//!
//! > size in bytes × seconds since it was last stored, mentioned by a message
//! > appended here, or served to a peer (its file's modification time)
//!
//! so big blobs nobody asked about for a long time go first, and a blob just
//! fetched (score near 0) goes last. Never removed:
//!
//! - blobs mentioned by a message of our own feed or of a feed in config
//!   `keep`, and blobs added here by hand (`ssb-node blobs add`);
//! - a blob being fetched from a peer; nothing at all while a stick visit or
//!   bundle import or export runs (the quota is enforced when it ends).
//!
//! Protected blobs count toward the quota but are never removed, so the
//! room left for foreign blobs is the quota less the protected bytes. A
//! foreign blob larger than that room would be removed at once: it is not
//! fetched, not imported, and no longer wanted ([`Replica::keeps_blob`]). A
//! removed blob is not wanted either, until a message appended later
//! mentions it again, which wants and fetches it again; a stick visit takes
//! it back only then too (its healing of blobs missing under held messages
//! covers, under a quota, only our own and the `keep` feeds).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use super::{scan_content, Replica};
use crate::blob_store::{BlobError, Usage};
use crate::feed::BlobId;
use crate::store::StoreError;

/// Why the quota could not be enforced.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// Reading the feeds that protect blobs failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Listing or removing blobs failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// The quota's bookkeeping in the replica.
#[derive(Debug, Default)]
pub struct BudgetState {
    /// Bytes of protected blobs at the last pass.
    protected_bytes: AtomicU64,
    /// Stick visits and bundle imports and exports running.
    visits: AtomicUsize,
}

/// Holds off the quota while a stick visit or bundle import or export runs.
#[derive(Debug)]
pub struct VisitHold<'a>(&'a BudgetState);

impl Drop for VisitHold<'_> {
    fn drop(&mut self) {
        self.0.visits.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one pass of [`enforce`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The blobs removed, with their sizes, in the order removed.
    pub removed: Vec<(BlobId, u64)>,
    /// What is held afterwards.
    pub usage: Usage,
    /// Bytes of protected blobs.
    pub protected_bytes: u64,
    /// Whether the pass was put off (a visit runs).
    pub deferred: bool,
}

/// A blob's score: size × seconds since last touched (at least 1).
pub fn score(size: u64, touched: SystemTime, now: SystemTime) -> u128 {
    let age = now
        .duration_since(touched)
        .map_or(0, |d| d.as_secs())
        .max(1);
    u128::from(size) * u128::from(age)
}

/// The blobs mentioned by messages of our own feed and of the `keep` feeds.
pub fn protected(replica: &Replica) -> Result<HashSet<BlobId>, StoreError> {
    let mut feeds = vec![*replica.id()];
    feeds.extend(replica.policy().keep.iter().copied());
    let mut ids = HashSet::new();
    for feed in feeds {
        for stored in replica.store().feed(&feed, 1) {
            let stored = stored?;
            if let Ok(m) = stored.message() {
                ids.extend(scan_content(m.content()).0);
            }
        }
    }
    Ok(ids)
}

impl Replica {
    /// The quota's bookkeeping.
    pub fn budget(&self) -> &BudgetState {
        &self.budget
    }

    /// The most bytes of blobs kept, if there is a quota.
    pub fn blob_quota(&self) -> Option<u64> {
        self.policy.blob_quota
    }

    /// Holds the quota off until the returned guard drops (a stick visit or
    /// bundle import or export runs).
    pub fn hold_blob_quota(&self) -> VisitHold<'_> {
        self.budget.visits.fetch_add(1, Ordering::SeqCst);
        VisitHold(&self.budget)
    }

    /// Whether a foreign blob of `size` bytes would be kept: within the
    /// room the quota leaves beside the protected blobs.
    pub fn keeps_blob(&self, size: u64) -> bool {
        match self.blob_quota() {
            None => true,
            Some(q) => size <= q.saturating_sub(self.budget.protected_bytes.load(Ordering::SeqCst)),
        }
    }
}

/// Removes foreign blobs, highest score first, until the blobs held fit the
/// quota (see the module docs). Blocking: call from a blocking thread.
pub fn enforce(replica: &Replica) -> Result<Removal, BudgetError> {
    let Some(quota) = replica.blob_quota() else {
        return Ok(Removal {
            usage: replica.blobs().usage()?,
            ..Removal::default()
        });
    };
    let blobs = replica.blobs();
    let usage = blobs.usage()?;
    if usage.bytes <= quota {
        return Ok(Removal {
            usage,
            protected_bytes: replica.budget.protected_bytes.load(Ordering::SeqCst),
            ..Removal::default()
        });
    }
    if replica.budget.visits.load(Ordering::SeqCst) > 0 {
        return Ok(Removal {
            usage,
            deferred: true,
            ..Removal::default()
        });
    }
    let keep = protected(replica)?;
    let now = SystemTime::now();
    let mut candidates = Vec::new();
    let mut protected_bytes = 0;
    for b in blobs.list()? {
        if keep.contains(&b.id) || blobs.is_own(&b.id) {
            protected_bytes += b.size;
        } else if !replica.wants().is_fetching(&b.id) {
            candidates.push((score(b.size, b.touched, now), b));
        }
    }
    replica
        .budget
        .protected_bytes
        .store(protected_bytes, Ordering::SeqCst);
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut removed = Vec::new();
    let mut held = blobs.usage()?.bytes;
    for (_, b) in candidates {
        if held <= quota {
            break;
        }
        if let Some(size) = blobs.remove(&b.id)? {
            held = held.saturating_sub(size);
            removed.push((b.id, size));
        }
    }
    let usage = blobs.usage()?;
    if !removed.is_empty() {
        tracing::info!(
            removed = removed.len(),
            freed = removed.iter().map(|r| r.1).sum::<u64>(),
            used = usage.bytes,
            quota,
            "blob quota: removed foreign blobs"
        );
    }
    if usage.bytes > quota {
        tracing::warn!(
            used = usage.bytes,
            quota,
            protected = protected_bytes,
            "blob quota: over the quota with only protected blobs left"
        );
    }
    Ok(Removal {
        removed,
        usage,
        protected_bytes,
        deferred: false,
    })
}

/// [`enforce`], logging a failure (for callers that go on either way).
pub fn enforce_logged(replica: &Replica) {
    if replica.blob_quota().is_none() {
        return;
    }
    if let Err(e) = enforce(replica) {
        tracing::warn!("blob quota: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Policy;
    use super::*;
    use crate::feed::json::Value;
    use crate::feed::{Keypair, Message};

    fn mention(id: &BlobId) -> Value {
        Value::parse(format!(r#"{{"type":"post","mentions":[{{"link":"{id}"}}]}}"#).as_bytes())
            .unwrap()
    }

    /// A blob of `size` bytes made from `seed`, last touched `age` ago.
    fn blob(node: &Replica, seed: u8, size: usize, age: Duration) -> BlobId {
        let data: Vec<u8> = (0..size).map(|i| (i as u8) ^ seed).collect();
        let (id, _) = node.blobs().add(&mut &data[..], None, u64::MAX).unwrap();
        let f = std::fs::File::open(node.blobs().path(&id)).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        id
    }

    #[tokio::test]
    async fn over_the_quota_the_highest_scores_go_and_own_and_kept_blobs_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (kept_feed, other) = (Keypair::generate(), Keypair::generate());
        let policy = Policy {
            blob_quota: Some(10_000),
            keep: vec![kept_feed.id()],
            replicate: vec![other.id()],
            hops: 0,
            ..Policy::default()
        };
        let node = crate::replica::temp_replica_with(dir.path(), policy);
        let day = Duration::from_secs(86_400);
        // Protected: mentioned by our feed, by a `keep` feed, added by hand;
        // all old and large.
        let ours = blob(&node, 1, 3_000, 30 * day);
        let kept = blob(&node, 2, 3_000, 30 * day);
        let by_hand = blob(&node, 3, 1_000, 30 * day);
        node.blobs().mark_own(&by_hand).unwrap();
        node.publish(vec![mention(&ours)]).await.unwrap();
        crate::publish::publish(node.store(), &kept_feed, vec![mention(&kept)]).unwrap();
        // Foreign: scores 2000×10d, 1000×15d, 4000×1d (lowest: newest),
        // 2000×9d, and one being fetched (old and large, but in flight).
        let big_old = blob(&node, 4, 2_000, 10 * day);
        let small_older = blob(&node, 5, 1_000, 15 * day);
        let big_new = blob(&node, 6, 4_000, day);
        let mid = blob(&node, 7, 2_000, 9 * day);
        let fetching = blob(&node, 8, 5_000, 40 * day);
        assert!(node.wants().begin_fetch(fetching));
        assert_eq!(node.blobs().usage().unwrap().bytes, 21_000);

        // A visit running holds the quota off.
        let hold = node.hold_blob_quota();
        assert!(enforce(&node).unwrap().deferred);
        assert_eq!(node.blobs().usage().unwrap().bytes, 21_000);
        drop(hold);

        let r = enforce(&node).unwrap();
        let removed: Vec<BlobId> = r.removed.iter().map(|(id, _)| *id).collect();
        // 21,000 → 19,000 → 17,000 → 16,000 → 12,000: over, but only the
        // blob being fetched is left of the foreign ones.
        assert_eq!(removed, [big_old, mid, small_older, big_new]);
        assert_eq!(r.protected_bytes, 7_000);
        for id in [ours, kept, by_hand, fetching] {
            assert!(node.blobs().has(&id), "{id} was removed");
        }
        assert_eq!(r.usage.bytes, 12_000);
        assert!(node.store().check().unwrap().problems.is_empty());
        // Once fetched it is foreign like any other, and goes.
        node.wants().end_fetch(&fetching);
        let r = enforce(&node).unwrap();
        assert_eq!(r.removed, [(fetching, 5_000)]);
        assert_eq!(r.usage.bytes, 7_000);
        assert!(enforce(&node).unwrap().removed.is_empty());

        // What would go at once is not taken: the room is quota − protected.
        assert!(node.keeps_blob(3_000));
        assert!(!node.keeps_blob(3_001));

        // Removed blobs are not wanted, until a message mentions one again.
        assert!(!node.wants().is_wanted(&big_old));
        let m = Message::create(&other, None, 1.0, mention(&big_old), None).unwrap();
        node.append(vec![m]).await.unwrap();
        assert!(node.wants().is_wanted(&big_old));
        assert_eq!(node.store().wants(10).unwrap(), [big_old]);
    }

    #[tokio::test]
    async fn a_blob_mentioned_again_is_younger() {
        let dir = tempfile::tempdir().unwrap();
        let other = Keypair::generate();
        let node = crate::replica::temp_replica_with(
            dir.path(),
            Policy {
                blob_quota: Some(3_000),
                replicate: vec![other.id()],
                hops: 0,
                ..Policy::default()
            },
        );
        let day = Duration::from_secs(86_400);
        let a = blob(&node, 1, 2_000, 10 * day);
        let b = blob(&node, 2, 2_000, 5 * day);
        // `a` would go first; a message mentioning it makes it the newest.
        let m = Message::create(&other, None, 1.0, mention(&a), None).unwrap();
        node.append(vec![m]).await.unwrap();
        assert_eq!(enforce(&node).unwrap().removed, [(b, 2_000)]);
    }
}
