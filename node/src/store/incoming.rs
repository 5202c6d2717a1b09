//! Log entries past a feed's head: how an import writes a bundle's messages
//! into the log while the bundle is still being read, unseen.
//!
//! Every read of a feed stops at the head the `clock` keyspace holds (see
//! [`Store::feed_json`]), so an entry past it is not part of the feed until
//! a batch moves the head over it ([`Store::promote`]). An import:
//! 1. marks each feed it may write past the head of, with a key in `remote`
//!    made durable before any such entry is ([`Store::mark_incoming`]);
//! 2. writes the messages past their feeds' heads ([`Store::incoming`]),
//!    as many feed entries at a time as keep the key order (all of them,
//!    for a bundle of ours): over 1 MiB as a table of their own (fjall's
//!    bulk ingestion, with no journal, memtable or flush), else as one
//!    write batch; and only where the feed's head is still before them
//!    ([`Incoming::finish`], under the node's append lock, so that no
//!    append writes there meanwhile);
//! 3. once the whole bundle is checked, promotes: per run of a feed, a
//!    batch that moves the head, with the run's id index entries (a long
//!    run's go first, as a sorted table of their own; the index, too, is
//!    only believed up to the head: [`Store::get`]);
//! 4. drops whatever is still past the head of a marked feed (all of it if
//!    the bundle was rejected), and the markers ([`Store::drop_incoming`]).
//!
//! A process killed at any point leaves markers, and [`Store::open`] does
//! step 4. So nothing of a rejected or half-read bundle is ever seen, and
//! every feed stays a valid prefix.

use fjall::PersistMode;

use super::{corrupt, log_key, now_ms, split_log_key, Store, StoreError};
use crate::feed::{FeedId, MsgId};

/// The prefix, in the `remote` keyspace, of the markers of feeds that may
/// have entries past their head; the feed id follows.
const MARK: &[u8] = b"incoming:";

/// Entries deleted per batch when dropping (bounds the batch's memory).
const DROP_BATCH: usize = 10_000;

/// Below this many bytes of values a feed entry is written as one write
/// batch (journal and memtable) rather than as a table of its own: a table
/// costs a flush of the log's memtable and a few fsyncs, which for many
/// small entries (a bundle of 1,000 feeds with 20 new messages each) cost
/// 25 times more than the batches. Also what is held in memory until then.
const TABLE_MIN: usize = 1024 * 1024;

/// How many ids of each feed's first messages an [`Incoming`] keeps, to
/// tell at [`Incoming::finish`] whether a feed that grew meanwhile grew by
/// the very messages written (they came over the network too).
const IDS_KEPT: usize = 256;

/// What an [`Incoming`] wrote of one feed.
struct Written {
    feed: FeedId,
    first: u32,
    last: u32,
    ids: Vec<MsgId>,
}

/// The memtable bytes small entries may fill before a flush is waited for
/// (see [`Store::bound_write_buffer`]). For 1,000 feeds of 20 messages:
/// 6 MiB (promotion's cap) peaked at 30 MiB, 2 MiB at 26 MiB in 5 % more
/// time, 1 MiB at 23 MiB in 45 % more.
const WRITE_BUFFER_CAP: u64 = 2 * 1024 * 1024;

/// The marker key of `feed`.
fn mark_key(feed: &FeedId) -> Vec<u8> {
    [MARK, feed.as_bytes().as_slice()].concat()
}

/// A table being written by fjall's bulk ingestion (whose type fjall does
/// not name, hence this trait).
trait TableSink {
    fn write(&mut self, key: [u8; 36], value: Vec<u8>) -> fjall::Result<()>;
    fn finish(self: Box<Self>) -> fjall::Result<()>;
}

struct Sink<I, W, F> {
    inner: I,
    write: W,
    finish: F,
}

impl<I, W, F> TableSink for Sink<I, W, F>
where
    W: FnMut(&mut I, [u8; 36], Vec<u8>) -> fjall::Result<()>,
    F: FnOnce(I) -> fjall::Result<()>,
{
    fn write(&mut self, key: [u8; 36], value: Vec<u8>) -> fjall::Result<()> {
        (self.write)(&mut self.inner, key, value)
    }

    fn finish(self: Box<Self>) -> fjall::Result<()> {
        let this = *self;
        (this.finish)(this.inner)
    }
}

/// Wraps an ingestion (the bounds give the closures their argument types).
fn sink<I, W, F>(inner: I, write: W, finish: F) -> Sink<I, W, F>
where
    W: FnMut(&mut I, [u8; 36], Vec<u8>) -> fjall::Result<()>,
    F: FnOnce(I) -> fjall::Result<()>,
{
    Sink {
        inner,
        write,
        finish,
    }
}

/// Messages being written past their feeds' heads, in key order (feed by
/// feed, each in sequence): once they are 1 MiB, as a table of
/// their own, else in one write batch (see the module docs). One spans as
/// many feed entries of a bundle as keep the key order; our exporter writes
/// feeds in that order, so all of a bundle of ours goes into one.
pub struct Incoming<'a> {
    store: &'a Store,
    /// Each feed written, in order: the first and last sequence written of
    /// it, and the ids of its first [`IDS_KEPT`] messages (see
    /// [`Incoming::finish`]).
    feeds: Vec<Written>,
    /// Entries held until they are enough for a table, and their size.
    held: Vec<([u8; 36], Vec<u8>)>,
    held_bytes: usize,
    table: Option<Box<dyn TableSink + 'a>>,
}

impl Incoming<'_> {
    /// Whether message `seq` of `feed` can be written next: it follows the
    /// last one written of the same feed, or starts a feed that comes
    /// after it in key order.
    pub fn takes(&self, feed: &FeedId, seq: u32) -> bool {
        match self.feeds.last() {
            None => true,
            Some(w) if w.feed == *feed => Some(seq) == w.last.checked_add(1),
            Some(w) => feed.as_bytes() > w.feed.as_bytes(),
        }
    }

    /// Writes message `seq` of `feed` with its id and value (compact JSON);
    /// see [`Incoming::takes`].
    pub fn write(
        &mut self,
        feed: &FeedId,
        seq: u32,
        id: &MsgId,
        json: &[u8],
    ) -> Result<(), StoreError> {
        if !self.takes(feed, seq) {
            return Err(corrupt("incoming messages out of order"));
        }
        match self.feeds.last_mut() {
            Some(w) if w.feed == *feed => {
                w.last = seq;
                if w.ids.len() < IDS_KEPT {
                    w.ids.push(*id);
                }
            }
            _ => self.feeds.push(Written {
                feed: *feed,
                first: seq,
                last: seq,
                ids: vec![*id],
            }),
        }
        let mut value = Vec::with_capacity(8 + 32 + json.len());
        value.extend_from_slice(&now_ms().to_be_bytes());
        value.extend_from_slice(id.as_bytes());
        value.extend_from_slice(json);
        let key = log_key(feed, seq);
        if let Some(table) = &mut self.table {
            return Ok(table.write(key, value)?);
        }
        self.held_bytes += value.len();
        self.held.push((key, value));
        if self.held_bytes >= TABLE_MIN {
            let mut table = self.store.log_table()?;
            for (key, value) in self.held.drain(..) {
                table.write(key, value)?;
            }
            self.table = Some(table);
        }
        Ok(())
    }

    /// Registers what was written, under the node's append lock. A feed
    /// whose head grew into it meanwhile is fine if it grew by the very
    /// messages written (the same ids; they came over the network too):
    /// then what it holds is kept and the rest goes on from it. Returns the
    /// feeds that grew otherwise (a fork, or beyond the ids kept), whose
    /// messages are not written; a table is all or nothing, so then all of
    /// its feeds.
    pub fn finish(self) -> Result<Vec<FeedId>, StoreError> {
        // Per feed the store grew into: through which sequence what it
        // holds stays as it is (all of it, for a conflict); and the entries
        // it holds where ours repeat them.
        let mut kept: Vec<(FeedId, u32)> = Vec::new();
        let mut conflicts: Vec<FeedId> = Vec::new();
        let mut repeated = Vec::new();
        for w in &self.feeds {
            let Some(head) = self.store.head(&w.feed)?.filter(|h| h.sequence >= w.first) else {
                continue;
            };
            let mut through = head.sequence;
            for seq in w.first..=head.sequence.min(w.last) {
                let key = log_key(&w.feed, seq);
                let ours = w.ids.get((seq - w.first) as usize);
                match (ours, self.store.log.get(key)?) {
                    (Some(id), Some(v)) if v.get(8..40) == Some(id.as_bytes().as_slice()) => {
                        repeated.push((key, v));
                    }
                    _ => {
                        conflicts.push(w.feed);
                        through = u32::MAX;
                        break;
                    }
                }
            }
            kept.push((w.feed, through));
        }
        match self.table {
            Some(_) if !conflicts.is_empty() => {
                // Dropped unregistered: fjall deletes a table file when the
                // store is next opened.
                Ok(self.feeds.into_iter().map(|w| w.feed).collect())
            }
            Some(table) => {
                // The table repeats what the grown feeds hold (and would
                // shadow it): write their entries again over it.
                let mut batch = self.store.db.batch();
                for (key, v) in repeated {
                    batch.insert(&self.store.log, key, v);
                }
                table.finish()?;
                batch.commit()?;
                Ok(conflicts)
            }
            None => {
                let mut batch = self.store.db.batch();
                for (key, value) in self.held {
                    let (feed, seq) = split_log_key(&key, "log key")?;
                    if !kept.iter().any(|&(f, through)| f == feed && seq <= through) {
                        batch.insert(&self.store.log, key, value);
                    }
                }
                // Many small entries fill the memtables as appends do, while
                // the batches being checked are in memory too: keep them
                // smaller than promotion does.
                self.store.bound_write_buffer(WRITE_BUFFER_CAP)?;
                batch.commit()?;
                Ok(conflicts)
            }
        }
    }
}

impl Store {
    /// Marks `feeds` as (about to be) written past their heads, durably,
    /// before any such entry is written.
    pub fn mark_incoming(&self, feeds: impl IntoIterator<Item = FeedId>) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        let mut any = false;
        for feed in feeds {
            batch.insert(&self.remote, mark_key(&feed), []);
            any = true;
        }
        if any {
            batch.commit()?;
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    /// Starts writing messages past their feeds' heads. The feeds must be
    /// marked ([`Store::mark_incoming`]).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            store: self,
            feeds: Vec::new(),
            held: Vec::new(),
            held_bytes: 0,
            table: None,
        }
    }

    /// A new table of log entries (fjall's bulk ingestion).
    fn log_table(&self) -> Result<Box<dyn TableSink + '_>, StoreError> {
        let table = self.log.start_ingestion()?;
        Ok(Box::new(sink(
            table,
            |t, k, v| t.write(k, v),
            |t| t.finish(),
        )))
    }

    /// Deletes every entry past the head of each marked feed, and the
    /// markers; returns how many entries. Ends an import (under the
    /// node's append lock), and runs when the store is opened.
    pub fn drop_incoming(&self) -> Result<u64, StoreError> {
        let marked: Vec<FeedId> = self
            .remote
            .prefix(MARK)
            .map(|g| {
                let k = g.key()?;
                Ok(FeedId(super::arr(&k[MARK.len()..], "incoming marker")?))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut dropped = 0u64;
        for feed in marked {
            let from = self
                .head(&feed)?
                .map_or(0, |h| h.sequence)
                .saturating_add(1);
            loop {
                let entries: Vec<(fjall::Slice, fjall::Slice)> = self
                    .log
                    .range(log_key(&feed, from)..=log_key(&feed, u32::MAX))
                    .take(DROP_BATCH)
                    .map(|g| g.into_inner())
                    .collect::<Result<_, _>>()?;
                if entries.is_empty() {
                    break;
                }
                let mut batch = self.db.batch();
                dropped += entries.len() as u64;
                for (k, v) in entries {
                    // A promotion killed between its index and its heads
                    // left index entries too.
                    if let Some(id) = v.get(8..40) {
                        if self.msgs.get(id)?.is_some_and(|loc| *loc == *k) {
                            batch.remove(&self.msgs, id);
                        }
                    }
                    batch.remove(&self.log, k);
                }
                batch.commit()?;
            }
            self.remote.remove(mark_key(&feed))?;
        }
        if dropped > 0 {
            tracing::info!(
                dropped,
                "dropped log entries of an import that did not finish"
            );
        }
        Ok(dropped)
    }

    /// Whether any feed is marked (for tests and checks).
    pub fn incoming_marked(&self) -> Result<bool, StoreError> {
        match self.remote.prefix(MARK).next() {
            Some(g) => g.key().map(|_| true).map_err(StoreError::from),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{BatchVerifier, Keypair, Message};
    use crate::store::posts as chain;
    use crate::store::stage::Staged;

    fn write_all<'a>(store: &'a Store, msgs: &[Message]) -> Incoming<'a> {
        let mut incoming = store.incoming();
        for m in msgs {
            let json = m.value().to_compact();
            incoming
                .write(&m.author(), m.sequence(), &m.id(), json.as_bytes())
                .unwrap();
        }
        incoming
    }

    #[test]
    fn entries_past_a_head_are_unseen_and_dropped_on_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keypair::from_seed(&[2; 32]);
        let msgs = chain(&keys, 6);
        let feed = keys.id();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .append(msgs[..3].to_vec(), &mut BatchVerifier::new())
                .unwrap();
            // What an import killed before promotion leaves: a marker, and
            // entries 4..=6 past the head.
            store.mark_incoming([feed]).unwrap();
            assert!(write_all(&store, &msgs[3..]).finish().unwrap().is_empty());
            assert!(store.log.get(log_key(&feed, 5)).unwrap().is_some());
            // And a promotion killed between its index and its batch: an
            // index entry for message 4, believed only up to the head.
            store
                .msgs
                .insert(msgs[3].id().as_bytes(), log_key(&feed, 4))
                .unwrap();
            assert!(store.get(&msgs[3].id()).unwrap().is_none());
            assert!(store.get(&msgs[2].id()).unwrap().is_some());
            assert_eq!(store.feed(&feed, 1).count(), 3, "reads stop at the head");
            assert_eq!(store.feed_json(&feed, 2).count(), 2);
            assert_eq!(store.feed_json(&feed, 4).count(), 0);
            assert_eq!(store.head(&feed).unwrap().map(|h| h.sequence), Some(3));
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(
            store.log.get(log_key(&feed, 4)).unwrap().is_none(),
            "dropped"
        );
        assert!(store.msgs.get(msgs[3].id().as_bytes()).unwrap().is_none());
        assert!(!store.incoming_marked().unwrap(), "marker removed");
        assert!(store.check().unwrap().problems.is_empty());
        assert_eq!(store.feed(&feed, 1).count(), 3);
        // The feed goes on from its head.
        store
            .append(msgs[3..].to_vec(), &mut BatchVerifier::new())
            .unwrap();
        assert_eq!(store.feed(&feed, 1).count(), 6);
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn small_entries_go_in_a_batch_and_large_ones_in_a_table_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (small, large) = (Keypair::from_seed(&[6; 32]), Keypair::from_seed(&[7; 32]));
        let large_msgs = chain(&large, 4000);
        let bytes: usize = large_msgs
            .iter()
            .map(|m| m.value().to_compact().len())
            .sum();
        assert!(bytes > TABLE_MIN, "{bytes}");
        store.mark_incoming([small.id(), large.id()]).unwrap();
        let tables = store.log.table_count();
        assert!(write_all(&store, &large_msgs).finish().unwrap().is_empty());
        assert_eq!(store.log.table_count(), tables + 1, "a table");
        assert!(write_all(&store, &chain(&small, 3))
            .finish()
            .unwrap()
            .is_empty());
        assert_eq!(store.log.table_count(), tables + 1, "a batch");
        for (feed, seq) in [(small.id(), 3), (large.id(), 4000)] {
            assert!(store.log.get(log_key(&feed, seq)).unwrap().is_some());
            assert!(store.get_at(&feed, 1).unwrap().is_some());
            assert_eq!(store.feed(&feed, 1).count(), 0, "past the head");
        }
        assert_eq!(store.drop_incoming().unwrap(), 4003);
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn a_feed_that_grew_meanwhile_is_kept_and_a_fork_is_not_written_over() {
        // 4 messages go in a batch, 4,000 in a table: both ways.
        for n in [4, 4000] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let keys = Keypair::from_seed(&[3; 32]);
            let msgs = chain(&keys, n);
            let feed = keys.id();
            store.mark_incoming([feed]).unwrap();
            let incoming = write_all(&store, &msgs);
            // Meanwhile the feed's first two messages arrive another way
            // (received later: their stored bytes differ from ours).
            std::thread::sleep(std::time::Duration::from_millis(2));
            store
                .append(msgs[..2].to_vec(), &mut BatchVerifier::new())
                .unwrap();
            let held = store.log.get(log_key(&feed, 2)).unwrap().unwrap();
            assert!(
                incoming.finish().unwrap().is_empty(),
                "{n}: the same messages"
            );
            assert_eq!(store.head(&feed).unwrap().map(|h| h.sequence), Some(2));
            assert_eq!(
                store.log.get(log_key(&feed, 2)).unwrap().unwrap(),
                held,
                "{n}: what the feed held is kept as it was"
            );
            assert!(store.log.get(log_key(&feed, n)).unwrap().is_some(), "{n}");
            // Promotion goes on from the head.
            let mut stage = store.stage().unwrap();
            let staged: Vec<Staged> = msgs
                .iter()
                .map(|m| Staged {
                    author: m.author(),
                    sequence: m.sequence(),
                    id: m.id(),
                    previous: m.previous(),
                    contact: false,
                    blobs: Vec::new(),
                })
                .collect();
            stage.push(&staged).unwrap();
            let mut reader = stage.into_reader().unwrap();
            let mut added = 0;
            while let Some(p) = store.promote(&mut reader, 10_000, &|_| false).unwrap() {
                assert_eq!(p.stuck, None);
                added += p.added.len();
            }
            assert_eq!(added, n as usize - 2);
            assert_eq!(store.drop_incoming().unwrap(), 0);
            assert!(store.check().unwrap().problems.is_empty());

            // A fork that grew meanwhile: nothing of the feed is written.
            let other = Keypair::from_seed(&[4; 32]);
            let ours = chain(&other, n);
            store.mark_incoming([other.id()]).unwrap();
            let incoming = write_all(&store, &ours);
            let fork = Message::create(
                &other,
                None,
                1.0,
                crate::feed::Value::parse(br#"{"type":"fork"}"#).unwrap(),
                None,
            )
            .unwrap();
            store
                .append(vec![fork.clone()], &mut BatchVerifier::new())
                .unwrap();
            assert_eq!(incoming.finish().unwrap(), vec![other.id()], "{n}: a fork");
            assert!(store.log.get(log_key(&other.id(), 2)).unwrap().is_none());
            assert_eq!(store.get_at(&other.id(), 1).unwrap().unwrap().id, fork.id());
            assert_eq!(store.drop_incoming().unwrap(), 0);
            assert!(store.check().unwrap().problems.is_empty());
        }
    }

    #[test]
    fn out_of_order_writes_are_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[4; 32]);
        let msgs = chain(&keys, 3);
        let feed = keys.id();
        let mut incoming = store.incoming();
        let json = msgs[0].value().to_compact();
        incoming
            .write(&feed, 2, &msgs[1].id(), json.as_bytes())
            .unwrap();
        assert!(!incoming.takes(&feed, 2) && !incoming.takes(&feed, 1));
        assert!(incoming
            .write(&feed, 1, &msgs[0].id(), json.as_bytes())
            .is_err());
        assert!(incoming
            .write(&feed, 4, &msgs[0].id(), json.as_bytes())
            .is_err());
        // Another feed: only one after this one in key order.
        let (before, after) = (FeedId([0; 32]), FeedId([0xff; 32]));
        assert!(!incoming.takes(&before, 1) && incoming.takes(&after, 5));
        assert!(incoming
            .write(&before, 1, &msgs[0].id(), json.as_bytes())
            .is_err());
        incoming
            .write(&after, 5, &msgs[0].id(), json.as_bytes())
            .unwrap();
    }

    #[test]
    fn a_rejected_imports_entries_are_dropped_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[5; 32]);
        let msgs = chain(&keys, 5);
        let feed = keys.id();
        store.mark_incoming([feed]).unwrap();
        assert!(write_all(&store, &msgs).finish().unwrap().is_empty());
        assert_eq!(store.drop_incoming().unwrap(), 5);
        assert!(!store.incoming_marked().unwrap());
        assert!(store.log.get(log_key(&feed, 1)).unwrap().is_none());
        assert!(store.head(&feed).unwrap().is_none());
        assert!(store.check().unwrap().problems.is_empty());
    }
}
