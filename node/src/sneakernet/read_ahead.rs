//! Stored lines read on a second thread, so that the exporting thread plans
//! (hashes) or writes (frames, hands to zstd) one batch of lines while the
//! next is read from the store.

use std::sync::mpsc::sync_channel;
use std::thread::Scope;

use crate::feed::FeedId;
use crate::store::{Store, StoreError, StoredJson};

/// Lines handed over at once.
const BATCH: usize = 256;

/// Batches read and not yet taken (with the one being filled and the one
/// being used, at most four batches of lines are in memory).
const AHEAD: usize = 2;

/// Messages `first..first + count` of `feed`.
pub(crate) struct Span {
    /// The feed.
    pub feed: FeedId,
    /// The first sequence.
    pub first: u32,
    /// How many messages at most.
    pub count: usize,
}

/// A line read ahead: the index of its span, its sequence and its value.
pub(crate) type Ahead = Result<(usize, u32, StoredJson), StoreError>;

/// Reads the lines of `spans`, in order, on a thread of `scope`. The thread
/// stops after the first error, or as soon as the iterator is dropped.
pub(crate) fn read_ahead<'scope>(
    scope: &'scope Scope<'scope, '_>,
    store: &'scope Store,
    spans: Vec<Span>,
) -> impl Iterator<Item = Ahead> + 'scope {
    let (tx, rx) = sync_channel::<Vec<Ahead>>(AHEAD);
    scope.spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for (i, span) in spans.iter().enumerate() {
            let lines = store.feed_json(&span.feed, span.first).take(span.count);
            for (seq, stored) in (span.first..).zip(lines) {
                let failed = stored.is_err();
                batch.push(stored.map(|s| (i, seq, s)));
                if batch.len() == BATCH || failed {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).is_err() || failed {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(batch);
    });
    rx.into_iter().flatten()
}
