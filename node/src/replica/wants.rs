//! The blobs wanted: our own (from the messages we hold) and those forwarded
//! for peers, bounded per link and in all, and the fetches in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{watch, AcquireError, Semaphore, SemaphorePermit};

use crate::feed::BlobId;

/// Most of our own wants kept at once (the rest stay in the store and are
/// loaded again on restart).
pub const MAX_WANTS: usize = 10_000;
/// Most wants forwarded for one link's peer.
pub const LINK_FORWARDS: usize = 256;
/// Most wants forwarded for all peers together.
pub const MAX_FORWARDS: usize = 1_000;
/// Blob downloads at once (each buffers up to `blob_max` bytes).
const FETCHES: usize = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The wanted blobs: our own (distance 1, from the messages we hold) apart
/// from those forwarded for peers (distance 2), which are bounded per link
/// and in all, never take the place of our own, and end with their link.
#[derive(Debug, Default)]
struct WantTable {
    own: HashSet<BlobId>,
    /// Forwarded want → the link it is kept for.
    forwarded: HashMap<BlobId, u64>,
    /// Forwarded wants per link.
    per_link: HashMap<u64, usize>,
}

impl WantTable {
    fn want(&mut self, id: BlobId) -> bool {
        if self.own.contains(&id) || self.own.len() >= MAX_WANTS {
            return false;
        }
        self.unforward(&id);
        self.own.insert(id)
    }

    fn forward(&mut self, link: u64, id: BlobId) -> bool {
        if self.own.contains(&id) || self.forwarded.contains_key(&id) {
            return false;
        }
        let n = self.per_link.entry(link).or_insert(0);
        if *n >= LINK_FORWARDS || self.forwarded.len() >= MAX_FORWARDS {
            return false;
        }
        *n += 1;
        self.forwarded.insert(id, link);
        true
    }

    fn unforward(&mut self, id: &BlobId) -> bool {
        let Some(link) = self.forwarded.remove(id) else {
            return false;
        };
        if let Some(n) = self.per_link.get_mut(&link) {
            *n -= 1;
            if *n == 0 {
                self.per_link.remove(&link);
            }
        }
        true
    }

    fn release(&mut self, link: u64) -> bool {
        if self.per_link.remove(&link).is_none() {
            return false;
        }
        self.forwarded.retain(|_, l| *l != link);
        true
    }
}

/// The node's wanted blobs, by distance (1 = ours, 2 = a peer's).
#[derive(Debug)]
pub struct Wants {
    table: Mutex<WantTable>,
    fetching: Mutex<HashSet<BlobId>>,
    changed: watch::Sender<u64>,
    fetch_slots: Semaphore,
}

impl Wants {
    /// Starts with our own wants kept in the store.
    pub fn new(initial: Vec<BlobId>) -> Wants {
        let mut table = WantTable::default();
        for id in initial {
            table.want(id);
        }
        Wants {
            table: Mutex::new(table),
            fetching: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
            fetch_slots: Semaphore::new(FETCHES),
        }
    }

    fn changed_if(&self, changed: bool) {
        if changed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// We want `ids` ourselves (up to [`MAX_WANTS`]; a forwarded want of the
    /// same blob becomes ours).
    pub fn want(&self, ids: &[BlobId]) {
        let mut t = lock(&self.table);
        let mut changed = false;
        for id in ids {
            changed |= t.want(*id);
        }
        drop(t);
        self.changed_if(changed);
    }

    /// Wakes whoever waits on the wants without changing them, so that
    /// links look again at what their peers have (the disk has room again).
    pub fn nudge(&self) {
        self.changed_if(true);
    }

    /// Forwards the want of `link`'s peer for `id`, within [`LINK_FORWARDS`]
    /// per link and [`MAX_FORWARDS`] in all; false when not taken.
    pub fn forward(&self, link: u64, id: BlobId) -> bool {
        let taken = lock(&self.table).forward(link, id);
        self.changed_if(taken);
        taken
    }

    /// `link` ended: forget what was forwarded for it.
    pub fn release(&self, link: u64) {
        let changed = lock(&self.table).release(link);
        self.changed_if(changed);
    }

    /// Whether `id` is wanted.
    pub fn is_wanted(&self, id: &BlobId) -> bool {
        let t = lock(&self.table);
        t.own.contains(id) || t.forwarded.contains_key(id)
    }

    /// Whether nothing is wanted.
    pub fn is_empty(&self) -> bool {
        let t = lock(&self.table);
        t.own.is_empty() && t.forwarded.is_empty()
    }

    /// All wants with their distance, our own first.
    pub fn snapshot(&self) -> Vec<(BlobId, u8)> {
        let t = lock(&self.table);
        t.own
            .iter()
            .map(|id| (*id, 1))
            .chain(t.forwarded.keys().map(|id| (*id, 2)))
            .collect()
    }

    /// `id` arrived (or will never be fetched): forget it.
    pub fn got(&self, id: &BlobId) {
        let mut t = lock(&self.table);
        let changed = t.own.remove(id) | t.unforward(id);
        drop(t);
        self.changed_if(changed);
    }

    /// Changes whenever the wants do.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Marks `id` as being fetched; false when a fetch of it is on its way.
    pub fn begin_fetch(&self, id: BlobId) -> bool {
        lock(&self.fetching).insert(id)
    }

    /// Whether a fetch of `id` is on its way.
    pub fn is_fetching(&self, id: &BlobId) -> bool {
        lock(&self.fetching).contains(id)
    }

    /// The fetch of `id` ended (fetched or not).
    pub fn end_fetch(&self, id: &BlobId) {
        lock(&self.fetching).remove(id);
    }

    /// Waits for one of the few download slots (each download buffers up to
    /// `blob_max` bytes).
    pub async fn fetch_slot(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.fetch_slots.acquire().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u32) -> BlobId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        BlobId(b)
    }

    #[test]
    fn forwarded_wants_never_take_the_place_of_our_own() {
        let wants = Wants::new(vec![blob(0)]);
        // One peer asks for 20,000 blobs, then another for 2,000.
        let taken = (1..=20_000).filter(|n| wants.forward(7, blob(*n))).count();
        assert_eq!(taken, LINK_FORWARDS);
        let others = (0..8u64)
            .map(|link| {
                (0..2_000)
                    .filter(|n| {
                        wants.forward(100 + link, blob(1_000_000 + link as u32 * 10_000 + n))
                    })
                    .count()
            })
            .sum::<usize>();
        assert_eq!(LINK_FORWARDS + others, MAX_FORWARDS);
        // Our own wants still fit, all of them, and come first.
        let ours: Vec<BlobId> = (1..MAX_WANTS as u32).map(|n| blob(5_000_000 + n)).collect();
        wants.want(&ours);
        assert!(wants.is_wanted(&blob(0)));
        assert!(ours.iter().all(|id| wants.is_wanted(id)));
        let snap = wants.snapshot();
        assert_eq!(snap.len(), MAX_WANTS + MAX_FORWARDS);
        assert!(snap[..MAX_WANTS].iter().all(|(_, d)| *d == 1));
        // A forwarded want we come to want ourselves is ours (and frees its slot).
        wants.got(&blob(0));
        wants.want(&[blob(1)]);
        assert!(wants.snapshot().contains(&(blob(1), 1)));
        assert!(wants.forward(7, blob(30_000)));
        // The peer's link ends: what was forwarded for it goes, ours stays.
        wants.release(7);
        assert!(!wants.is_wanted(&blob(2)));
        assert!(!wants.is_wanted(&blob(30_000)));
        assert!(wants.is_wanted(&blob(1)));
        assert_eq!(
            wants.snapshot().len(),
            MAX_WANTS + MAX_FORWARDS - LINK_FORWARDS
        );
    }
}
