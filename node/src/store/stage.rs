//! The staging area: what an import must remember of each message it wrote
//! past a feed's head (see [`super::incoming`]) until the whole bundle is
//! checked (its signature comes last): author, sequence, id, previous, and
//! what promotion and the node need to know of it (blobs it mentions,
//! whether it is a contact message). Then [`Store::promote`] moves the
//! heads over them in chain order, without checking signatures again.
//!
//! A [`Stage`] is an unnamed temporary file in the store's directory,
//! written sequentially and read back once (about 120 bytes a message: the
//! values themselves are already in the log). Nothing but promotion reads
//! it, and it has no name, so a bundle that is rejected half-way, or a
//! process killed mid-import, leaves no file behind.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use fjall::{Database, KeyspaceCreateOptions};

use super::{arr, contacts, corrupt, head_value, log_key, Store, StoreError};
use crate::feed::{BlobId, FeedHead, FeedId, MsgId, Value};

/// The most bytes of memtables (all keyspaces, active and sealed) that
/// promotion lets fjall hold before it waits for a flush (see
/// [`Store::bound_write_buffer`]). Smaller caps flush more often (each
/// flush syncs fjall's journal). Promotion writes only heads, contacts
/// and short runs' ids through memtables; the cap bounds what a long
/// import's runs hold there at once.
const WRITE_BUFFER_CAP: u64 = 6 * 1024 * 1024;

/// How many times (2 ms apart) promotion looks again at fjall's memtable
/// count once nothing is sealed any more (see
/// [`Store::bound_write_buffer`]): the count lags the flush by a moment.
const FLUSH_COUNT_GRACE: u32 = 50;

/// The most messages one [`Store::promote`] call moves (one feed's run,
/// one batch of heads and ids, ~80 bytes a message, held until it commits).
pub const PROMOTE_RUN: usize = 10_000;

/// The keyspace older versions staged messages in.
const OLD_KEYSPACE: &str = "stage";

/// From this many messages on, a promoted run's id index entries are
/// written as a table of their own rather than in its batch (a table costs
/// a flush and a few fsyncs; 2,048 entries are ~150 KB of memtable).
const INDEX_TABLE_MIN: usize = 2048;

/// The largest staged record: ids, flags and at most 255 blob ids.
const MAX_RECORD: usize = 36 + 32 + 33 + 2 + 255 * 32;

/// A verified message waiting in the staging area.
#[derive(Clone, Debug, PartialEq)]
pub struct Staged {
    /// Its author.
    pub author: FeedId,
    /// Its sequence number.
    pub sequence: u32,
    /// Its id.
    pub id: MsgId,
    /// The id it points back to (none for sequence 1).
    pub previous: Option<MsgId>,
    /// Whether it is a `contact` message (it may change the follow graph).
    pub contact: bool,
    /// Blobs its content mentions (at most 255).
    pub blobs: Vec<BlobId>,
}

/// What one [`Store::promote`] call moved into the log.
#[derive(Debug)]
pub struct Promoted {
    /// The feed promoted.
    pub feed: FeedId,
    /// The feed's latest sequence before.
    pub before: u32,
    /// The feed's latest sequence after.
    pub after: u32,
    /// Per message added: sequence, blobs it mentions, whether it is a contact.
    pub added: Vec<(u32, Vec<BlobId>, bool)>,
    /// Staged messages that were already held (same id), now dropped.
    pub skipped: u64,
    /// Why promotion of this feed stopped short, if it did: the staged run
    /// does not continue the stored feed (it was changed meanwhile). The
    /// feed's other staged messages are dropped.
    pub stuck: Option<String>,
}

/// The staging area of one import, being written; see the module docs.
pub struct Stage {
    out: BufWriter<File>,
    count: u64,
    /// Feeds whose entries could not be written (see [`Stage::changed`]).
    changed: HashSet<FeedId>,
}

/// A staging area being read back by [`Store::promote`].
pub struct StageReader {
    input: BufReader<File>,
    left: u64,
    peeked: Option<Staged>,
    /// Feeds whose promotion stopped: the rest of their messages are dropped.
    stuck: HashSet<FeedId>,
    /// Feeds whose entries could not be written (see [`Stage::changed`]).
    changed: HashSet<FeedId>,
}

fn stage_io(e: std::io::Error) -> StoreError {
    StoreError::Stage(e)
}

fn encode(m: &Staged) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + 33 + 2 + 32 * m.blobs.len());
    v.extend_from_slice(m.id.as_bytes());
    match &m.previous {
        Some(p) => {
            v.push(1);
            v.extend_from_slice(p.as_bytes());
        }
        None => v.push(0),
    }
    v.push(u8::from(m.contact));
    let blobs = &m.blobs[..m.blobs.len().min(255)];
    v.push(blobs.len() as u8);
    for b in blobs {
        v.extend_from_slice(b.as_bytes());
    }
    v
}

fn decode(key: &[u8], v: &[u8]) -> Result<Staged, StoreError> {
    let bad = || corrupt("staged entry");
    if key.len() != 36 || v.len() < 32 + 1 + 2 {
        return Err(bad());
    }
    let author = FeedId(arr(&key[..32], "staged author")?);
    let sequence = u32::from_be_bytes(arr(&key[32..], "staged seq")?);
    let id = MsgId(arr(&v[..32], "staged id")?);
    let mut at = 32;
    let previous = match v[at] {
        0 => {
            at += 1;
            None
        }
        1 => {
            let p = v.get(at + 1..at + 33).ok_or_else(bad)?;
            at += 33;
            Some(MsgId(arr(p, "staged previous")?))
        }
        _ => return Err(bad()),
    };
    let contact = *v.get(at).ok_or_else(bad)? == 1;
    let n = usize::from(*v.get(at + 1).ok_or_else(bad)?);
    at += 2;
    let mut blobs = Vec::with_capacity(n);
    for _ in 0..n {
        let b = v.get(at..at + 32).ok_or_else(bad)?;
        blobs.push(BlobId(arr(b, "staged blob")?));
        at += 32;
    }
    if at != v.len() {
        return Err(bad());
    }
    Ok(Staged {
        author,
        sequence,
        id,
        previous,
        contact,
        blobs,
    })
}

impl Stage {
    /// Appends verified messages to the staging area.
    pub fn push(&mut self, msgs: &[Staged]) -> Result<(), StoreError> {
        for m in msgs {
            let mut record = Vec::with_capacity(36 + 100);
            record.extend_from_slice(&log_key(&m.author, m.sequence));
            record.extend_from_slice(&encode(m));
            let len = u32::try_from(record.len())
                .ok()
                .filter(|&n| n as usize <= MAX_RECORD)
                .ok_or_else(|| corrupt("staged message too large"))?;
            self.out.write_all(&len.to_be_bytes()).map_err(stage_io)?;
            self.out.write_all(&record).map_err(stage_io)?;
            self.count += 1;
        }
        Ok(())
    }

    /// How many messages are staged.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Notes that `feed`'s entries could not be written past its head
    /// because it grew meanwhile (see [`super::incoming::Incoming::finish`]):
    /// its staged messages are not promoted, and [`Store::promote`] says so.
    pub fn changed(&mut self, feed: FeedId) {
        self.changed.insert(feed);
    }

    /// Ends writing; the staged messages are then read back in the order
    /// they were pushed.
    pub fn into_reader(self) -> Result<StageReader, StoreError> {
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| stage_io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(stage_io)?;
        Ok(StageReader {
            input: BufReader::with_capacity(64 * 1024, file),
            left: self.count,
            peeked: None,
            stuck: HashSet::new(),
            changed: self.changed,
        })
    }
}

impl StageReader {
    fn read(&mut self) -> Result<Option<Staged>, StoreError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(stage_io)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(36..=MAX_RECORD).contains(&len) {
            return Err(corrupt("staged record length"));
        }
        let mut record = vec![0u8; len];
        self.input.read_exact(&mut record).map_err(stage_io)?;
        self.left -= 1;
        decode(&record[..36], &record[36..]).map(Some)
    }

    /// The next staged message, taking it.
    fn next(&mut self) -> Result<Option<Staged>, StoreError> {
        match self.peeked.take() {
            Some(m) => Ok(Some(m)),
            None => self.read(),
        }
    }

    /// The author of the next staged message, without taking it.
    fn peek_author(&mut self) -> Result<Option<FeedId>, StoreError> {
        if self.peeked.is_none() {
            self.peeked = self.read()?;
        }
        Ok(self.peeked.as_ref().map(|m| m.author))
    }
}

/// Deletes the `stage` keyspace a store written by an older version may
/// hold. Its entries were never visible (a crashed or rejected import's
/// leftovers, or an import's that the next one would have cleared), so
/// nothing is lost.
pub(super) fn drop_old_keyspace(db: &Database) -> Result<(), StoreError> {
    if db.keyspace_exists(OLD_KEYSPACE) {
        let old = db.keyspace(OLD_KEYSPACE, KeyspaceCreateOptions::default)?;
        db.delete_keyspace(old)?;
        tracing::info!("dropped the old staging keyspace");
    }
    Ok(())
}

impl Store {
    /// A new, empty staging area for one import.
    pub fn stage(&self) -> Result<Stage, StoreError> {
        let file = tempfile::tempfile_in(&self.dir).map_err(stage_io)?;
        Ok(Stage {
            out: BufWriter::with_capacity(64 * 1024, file),
            count: 0,
            changed: HashSet::new(),
        })
    }

    /// Moves the head of one feed over the next run of its staged messages
    /// (at most `limit`) that continues the feed's stored chain, in one
    /// atomic batch with their ids and the contacts index; `None` when
    /// nothing is left. Their log entries were written past the head before
    /// (see [`super::incoming`]). The blobs the run's messages mention for
    /// which `lacks` says yes (the blob store lacks them) are wanted in the
    /// same batch, so no crash leaves a visible message whose missing blob
    /// nothing wants. Staged messages the store already holds are dropped;
    /// one that conflicts with the stored feed, or does not continue it,
    /// stops promotion of that feed (see [`Promoted::stuck`]).
    pub fn promote(
        &self,
        staged: &mut StageReader,
        limit: usize,
        lacks: &dyn Fn(&BlobId) -> bool,
    ) -> Result<Option<Promoted>, StoreError> {
        let mut m = loop {
            match staged.next()? {
                None => return Ok(None),
                Some(m) if staged.stuck.contains(&m.author) => continue,
                Some(m) => break m,
            }
        };
        let feed = m.author;
        let mut head: Option<FeedHead> = self.head(&feed)?;
        let mut out = Promoted {
            feed,
            before: head.map_or(0, |h| h.sequence),
            after: 0,
            added: Vec::new(),
            skipped: 0,
            stuck: None,
        };
        let mut batch = self.db.batch();
        // The run's id index entries: in the batch, or, for a long run,
        // ingested as a sorted table of their own before the batch moves
        // the head (no memtable, no flush to wait for).
        let mut index: Vec<([u8; 32], [u8; 36])> = Vec::new();
        let mut stances = contacts::Changes::default();
        for seen in 1.. {
            let held = head.map_or(0, |h| h.sequence);
            if staged.changed.contains(&feed) {
                out.stuck = Some(
                    "the feed grew while the bundle was read; the next visit takes the rest"
                        .to_owned(),
                );
            } else if m.sequence <= held {
                match self.get_at(&feed, m.sequence)? {
                    Some(s) if s.id == m.id => out.skipped += 1,
                    _ => {
                        out.stuck = Some(format!(
                            "message {} conflicts with the one stored (a fork)",
                            m.sequence
                        ));
                    }
                }
            } else if m.sequence != held + 1 || m.previous != head.map(|h| h.id) {
                out.stuck = Some(format!(
                    "message {} does not continue the stored feed (latest {held})",
                    m.sequence
                ));
            } else {
                // Its entry is in the log, past the head (the import wrote
                // it there, and appends write only up to the head). A
                // contact message's content is read back from it.
                index.push((*m.id.as_bytes(), log_key(&feed, m.sequence)));
                if m.contact {
                    let entry = self
                        .log
                        .get(log_key(&feed, m.sequence))?
                        .filter(|e| e.len() >= 40 && e[8..40] == *m.id.as_bytes())
                        .ok_or_else(|| corrupt("a staged message is missing from the log"))?;
                    let value =
                        Value::parse(&entry[40..]).map_err(|_| corrupt("staged message"))?;
                    let content = value
                        .as_object()
                        .and_then(|o| o.get("content"))
                        .unwrap_or(&Value::Null);
                    stances.note(&self.contacts, &feed, content)?;
                }
                head = Some(FeedHead {
                    id: m.id,
                    sequence: m.sequence,
                });
                out.added.push((m.sequence, m.blobs, m.contact));
            }
            if out.stuck.is_some() {
                staged.stuck.insert(feed);
                break;
            }
            if seen == limit || staged.peek_author()? != Some(feed) {
                break;
            }
            match staged.next()? {
                Some(next) => m = next,
                None => break,
            }
        }
        if let Some(h) = head.filter(|h| h.sequence > out.before) {
            batch.insert(&self.clock, *feed.as_bytes(), head_value(&h));
        }
        stances.write(&self.contacts, &mut batch);
        for (_, blobs, _) in &out.added {
            for b in blobs.iter().filter(|b| lacks(b)) {
                batch.insert(&self.wants, *b.as_bytes(), *b"");
            }
        }
        if index.len() >= INDEX_TABLE_MIN {
            index.sort_unstable_by_key(|e| e.0);
            index.dedup_by(|a, b| a.0 == b.0);
            let mut table = self.msgs.start_ingestion()?;
            for (id, key) in index {
                table.write(id, key)?;
            }
            table.finish()?;
        } else {
            for (id, key) in index {
                batch.insert(&self.msgs, id, key);
            }
        }
        self.bound_write_buffer(WRITE_BUFFER_CAP)?;
        batch.commit()?;
        out.after = head.map_or(0, |h| h.sequence);
        Ok(Some(out))
    }

    /// Keeps what a bulk write has written and fjall not yet flushed near
    /// `cap` (promotion's is [`WRITE_BUFFER_CAP`]). fjall rotates a full
    /// memtable only when its one worker thread gets to it, and that
    /// thread may be compacting: then
    /// the memtables of a fast bulk write grow far beyond their size (tens
    /// of MiB for a 100k-message import). So once half the cap is reached
    /// the two keyspaces promotion fills are sealed here (their flush then
    /// runs while the next batch is built), and past the cap promotion
    /// waits for that flush. fjall announces no flush, so the wait looks
    /// every 2 ms; it only happens while an import outruns the flushes,
    /// never when idle.
    pub(super) fn bound_write_buffer(&self, cap: u64) -> Result<(), StoreError> {
        if self.db.write_buffer_size() <= cap / 2 {
            return Ok(());
        }
        let sealed = || self.log.sealed_memtable_count() + self.msgs.sealed_memtable_count();
        if sealed() == 0 {
            self.log.rotate_memtable()?;
            self.msgs.rotate_memtable()?;
        }
        // fjall drops a flushed memtable before it subtracts its size from
        // the count: once nothing is sealed, give the count a moment
        // (`FLUSH_COUNT_GRACE` looks at most) to catch up.
        let mut grace = FLUSH_COUNT_GRACE;
        while self.db.write_buffer_size() > cap {
            if sealed() == 0 {
                if grace == 0 {
                    break;
                }
                grace -= 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, Message, Value};
    use crate::store::posts as chain;

    fn staged(m: &Message) -> Staged {
        Staged {
            author: m.author(),
            sequence: m.sequence(),
            id: m.id(),
            previous: m.previous(),
            contact: m
                .content()
                .as_object()
                .and_then(|o| o.get("type"))
                .and_then(Value::as_str)
                == Some("contact"),
            blobs: vec![BlobId([7; 32])],
        }
    }

    /// What an import does before promotion: the messages (feed by feed,
    /// in order) written past the head, and staged.
    fn written_and_staged(store: &Store, msgs: &[Message]) -> StageReader {
        let mut stage = store.stage().unwrap();
        store
            .mark_incoming(msgs.iter().map(Message::author))
            .unwrap();
        let mut incoming = store.incoming();
        for m in msgs {
            if !incoming.takes(&m.author(), m.sequence()) {
                for feed in std::mem::replace(&mut incoming, store.incoming())
                    .finish()
                    .unwrap()
                {
                    stage.changed(feed);
                }
            }
            let json = m.value().to_compact();
            incoming
                .write(&m.author(), m.sequence(), &m.id(), json.as_bytes())
                .unwrap();
        }
        for feed in incoming.finish().unwrap() {
            stage.changed(feed);
        }
        stage
            .push(&msgs.iter().map(staged).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(stage.len(), msgs.len() as u64);
        stage.into_reader().unwrap()
    }

    #[test]
    fn promotion_keeps_the_contacts_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[5; 32]);
        let friend = FeedId([9; 32]);
        let mut msgs: Vec<Message> = Vec::new();
        for c in [
            format!(r#"{{"type":"contact","contact":"{friend}","following":true}}"#),
            r#"{"type":"post","text":"hi"}"#.to_owned(),
        ] {
            let prev = msgs.last().map(Message::head);
            let content = Value::parse(c.as_bytes()).unwrap();
            msgs.push(Message::create(&keys, prev.as_ref(), 1000.0, content, None).unwrap());
        }
        let mut reader = written_and_staged(&store, &msgs);
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert!(p.added[0].2, "noted as a contact message");
        assert!(store.contacts(&keys.id()).unwrap()[&friend].following);
        store.drop_incoming().unwrap();
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn staged_messages_are_invisible_until_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[3; 32]);
        let other = Keypair::from_seed(&[5; 32]);
        let msgs = chain(&keys, 10);
        let mut all = msgs.clone();
        all.extend(chain(&other, 2));
        let one = staged(&all[1]);
        assert_eq!(
            decode(&log_key(&one.author, 2), &encode(&one)).unwrap(),
            one
        );
        let mut reader = written_and_staged(&store, &all);
        assert!(store.head(&keys.id()).unwrap().is_none());
        assert!(store.get(&msgs[0].id()).unwrap().is_none());
        assert_eq!(store.feed(&keys.id(), 1).count(), 0);

        let p = store.promote(&mut reader, 4, &|_| false).unwrap().unwrap();
        assert_eq!(
            (p.feed, p.before, p.after, p.added.len()),
            (keys.id(), 0, 4, 4)
        );
        assert_eq!(p.added[0].1, vec![BlobId([7; 32])]);
        assert_eq!(store.feed(&keys.id(), 1).count(), 4, "up to the head");
        assert!(store.get(&msgs[3].id()).unwrap().is_some());
        assert!(store.get(&msgs[4].id()).unwrap().is_none());
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert_eq!((p.before, p.after, p.stuck), (4, 10, None));
        // A run ends where the feed changes.
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert_eq!((p.feed, p.before, p.after), (other.id(), 0, 2));
        assert!(store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .is_none());
        let got = store.get_at(&keys.id(), 10).unwrap().unwrap();
        assert_eq!(got.id, msgs[9].id());
        assert_eq!(
            store.drop_incoming().unwrap(),
            0,
            "nothing left past a head"
        );
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn promotion_wants_the_missing_blobs_of_what_it_moves_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[2; 32]);
        let msgs = chain(&keys, 3);
        let mut reader = written_and_staged(&store, &msgs);
        // Every staged message mentions blob [7; 32]: the blob store lacks it.
        let p = store
            .promote(&mut reader, 2, &|b| *b == BlobId([7; 32]))
            .unwrap()
            .unwrap();
        assert_eq!(p.after, 2);
        assert_eq!(store.wants(10).unwrap(), vec![BlobId([7; 32])]);
        store.remove_want(&BlobId([7; 32])).unwrap();
        // A blob held is not wanted.
        store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert!(store.wants(10).unwrap().is_empty());
        store.drop_incoming().unwrap();
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn an_old_stage_keyspace_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keypair::from_seed(&[8; 32]);
        let msgs = chain(&keys, 3);
        {
            // What an older version left: staged entries in a keyspace.
            let db = Database::builder(dir.path()).open().unwrap();
            let old = db
                .keyspace(OLD_KEYSPACE, KeyspaceCreateOptions::default)
                .unwrap();
            for m in &msgs {
                let s = staged(m);
                old.insert(log_key(&s.author, s.sequence), encode(&s))
                    .unwrap();
            }
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.db.keyspace_exists(OLD_KEYSPACE));
            assert!(store.head(&keys.id()).unwrap().is_none());
            // The store works as ever.
            store
                .append(msgs.clone(), &mut crate::feed::BatchVerifier::new())
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.db.keyspace_exists(OLD_KEYSPACE));
        assert_eq!(store.head(&keys.id()).unwrap().map(|h| h.sequence), Some(3));
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn promotion_waits_for_the_memtables_it_filled_to_be_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // One write of three caps' worth, as a promotion run could leave
        // behind while fjall's worker is busy elsewhere.
        let mut batch = store.db.batch();
        for i in 0u32..3 * 1024 {
            let key = log_key(&FeedId([1; 32]), i + 1);
            batch.insert(&store.log, key, vec![b'x'; 6 * 1024]);
            batch.insert(&store.msgs, i.to_be_bytes(), key);
        }
        batch.commit().unwrap();
        store.bound_write_buffer(WRITE_BUFFER_CAP).unwrap();
        let left = store.db.write_buffer_size();
        assert!(left <= WRITE_BUFFER_CAP, "{left} bytes still in memtables");
        assert_eq!(
            store
                .log
                .get(log_key(&FeedId([1; 32]), 7))
                .unwrap()
                .unwrap()
                .len(),
            6 * 1024
        );
    }

    #[test]
    fn a_dropped_stage_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[6; 32]);
        let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        let mut stage = store.stage().unwrap();
        stage
            .push(&chain(&keys, 3).iter().map(staged).collect::<Vec<_>>())
            .unwrap();
        drop(stage);
        let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            before.len(),
            after.len(),
            "no file left in the store's directory"
        );
        assert!(store.head(&keys.id()).unwrap().is_none());
    }

    #[test]
    fn held_messages_are_skipped_and_gaps_forks_and_changed_feeds_stop_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[4; 32]);
        let msgs = chain(&keys, 6);
        store
            .append(msgs[..3].to_vec(), &mut crate::feed::BatchVerifier::new())
            .unwrap();
        // Held 1..=3 (skipped), then 5 without 4: stuck, and 6 is dropped.
        let mut s: Vec<Staged> = msgs.iter().map(staged).collect();
        s.remove(3);
        let mut stage = store.stage().unwrap();
        stage.push(&s).unwrap();
        let mut reader = stage.into_reader().unwrap();
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert_eq!((p.skipped, p.after), (3, 3));
        assert!(p.stuck.unwrap().contains("does not continue"), "gap");
        assert!(store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .is_none());

        // A different message 2 (a fork) stops promotion too.
        let mut fork = staged(&msgs[1]);
        fork.id = MsgId([9; 32]);
        let mut stage = store.stage().unwrap();
        stage.push(&[fork]).unwrap();
        let mut reader = stage.into_reader().unwrap();
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert!(p.stuck.unwrap().contains("fork"));
        assert_eq!(p.after, 3);

        // A feed that grew while the bundle was read: nothing promoted.
        let mut stage = store.stage().unwrap();
        stage.push(&[staged(&msgs[3])]).unwrap();
        stage.changed(keys.id());
        let mut reader = stage.into_reader().unwrap();
        let p = store
            .promote(&mut reader, 100, &|_| false)
            .unwrap()
            .unwrap();
        assert!(p.stuck.unwrap().contains("grew while"));
        assert_eq!((p.after, p.added.len()), (3, 0));

        assert!(store.check().unwrap().problems.is_empty());
    }
}
