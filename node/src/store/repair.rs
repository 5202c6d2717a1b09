//! `ssb-node check --repair`: the store rebuilt from its log.
//!
//! The log is what the store vouches for; the id index, the clock and the
//! contacts index are derived from it. Repair walks every feed from sequence
//! 1 as [`Store::check`] does (shape, key, id, chain, signature), keeps the
//! longest valid prefix of each feed and drops the rest: the first damaged
//! message and everything after it, which cannot be chained without it. Then
//! the clock says each kept prefix's head, the id index names exactly the
//! kept messages and the contacts index holds what their contact messages
//! say. A feed whose tail was dropped has a lower head than its peers show,
//! so the next EBT session (or stick visit) fetches the tail again.
//!
//! Memory: one feed's batch of messages at a time, plus a sequence per feed
//! and the stances the contact messages set (as [`Store::check`] holds).

use std::collections::HashMap;

use super::{contacts, decode_log_value, head_value, log_key, split_log_key, Store, StoreError};
use crate::feed::{BatchVerifier, FeedHead, FeedId, Message, Stance};

/// Messages whose signatures are checked together.
const VERIFY_CHUNK: usize = 256;

/// Changes per write batch (bounds the batch's memory).
const WRITE_BATCH: usize = 10_000;

/// The damaged end of a feed that repair dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTail {
    /// The feed.
    pub feed: FeedId,
    /// The first sequence dropped (the damaged message's place).
    pub from: u32,
    /// Log entries dropped, from `from` on.
    pub messages: usize,
    /// What is wrong with the entry at `from`.
    pub reason: String,
}

/// A clock entry that repair corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockFix {
    /// The feed.
    pub feed: FeedId,
    /// The sequence the clock said (`None`: no entry, or none readable).
    pub was: Option<u32>,
    /// The sequence it says now (`None`: the entry is removed).
    pub now: Option<u32>,
}

/// What [`Store::repair`] changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RepairReport {
    /// Feeds kept (with at least one message).
    pub feeds: usize,
    /// Messages kept.
    pub messages: usize,
    /// Damaged feed tails dropped, in feed order.
    pub dropped: Vec<DroppedTail>,
    /// Clock entries corrected or removed.
    pub clocks: Vec<ClockFix>,
    /// Id index entries written for kept messages that had none (or a wrong one).
    pub index_added: usize,
    /// Id index entries removed: they named no kept message.
    pub index_removed: usize,
    /// Contacts index entries corrected, added or removed.
    pub contacts_fixed: usize,
    /// Log and clock entries removed whose key has no shape this program writes.
    pub stray: usize,
}

impl RepairReport {
    /// Whether repair found nothing to change.
    pub fn is_clean(&self) -> bool {
        self.dropped.is_empty()
            && self.clocks.is_empty()
            && self.index_added == 0
            && self.index_removed == 0
            && self.contacts_fixed == 0
            && self.stray == 0
    }
}

/// Writes in batches of at most [`WRITE_BATCH`] changes.
struct Writer<'a> {
    store: &'a Store,
    batch: fjall::OwnedWriteBatch,
    queued: usize,
}

impl<'a> Writer<'a> {
    fn new(store: &'a Store) -> Self {
        Writer {
            store,
            batch: store.db.batch(),
            queued: 0,
        }
    }

    fn queued(&mut self) -> Result<(), StoreError> {
        self.queued += 1;
        if self.queued >= WRITE_BATCH {
            self.commit()?;
        }
        Ok(())
    }

    fn remove(&mut self, ks: &fjall::Keyspace, key: &[u8]) -> Result<(), StoreError> {
        self.batch.remove(ks, key);
        self.queued()
    }

    fn insert(&mut self, ks: &fjall::Keyspace, key: &[u8], v: &[u8]) -> Result<(), StoreError> {
        self.batch.insert(ks, key, v);
        self.queued()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::replace(&mut self.batch, self.store.db.batch());
        self.queued = 0;
        Ok(batch.commit()?)
    }
}

/// The feed being walked.
struct Walk {
    author: FeedId,
    /// The last message kept (its signature checked).
    kept: Option<FeedHead>,
    /// The last message chained, its signature maybe not checked yet.
    chained: Option<FeedHead>,
    /// Chained messages waiting for their signature check.
    pending: Vec<Message>,
    /// The damaged tail, once found.
    bad: Option<DroppedTail>,
}

/// Everything repair keeps track of across feeds.
struct State<'a> {
    store: &'a Store,
    writer: Writer<'a>,
    verifier: BatchVerifier,
    report: RepairReport,
    /// What the clock said, by feed (removed as each feed is walked).
    clock: HashMap<FeedId, Option<[u8; 36]>>,
    /// The kept head's sequence of each feed.
    heads: HashMap<FeedId, u32>,
    stances: HashMap<(FeedId, FeedId), Stance>,
}

impl State<'_> {
    /// Keeps a checked message: its id index entry and its stance.
    fn keep(&mut self, walk: &mut Walk, m: &Message) -> Result<(), StoreError> {
        let key = log_key(&walk.author, m.sequence());
        match self.store.msgs.get(m.id().as_bytes())? {
            Some(loc) if *loc == key[..] => {}
            _ => {
                self.writer
                    .insert(&self.store.msgs, m.id().as_bytes(), &key)?;
                self.report.index_added += 1;
            }
        }
        contacts::replay(&mut self.stances, walk.author, m.value());
        walk.kept = Some(m.head());
        self.report.messages += 1;
        Ok(())
    }

    /// Checks the pending signatures: keeps the good ones before the first
    /// bad one, and drops that one and the rest.
    fn flush(&mut self, walk: &mut Walk) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut walk.pending);
        let good = match self.verifier.verify(&pending) {
            Ok(()) => pending.len(),
            Err((k, e)) => {
                walk.bad = Some(DroppedTail {
                    feed: walk.author,
                    from: pending[k].sequence(),
                    messages: 0,
                    reason: e.to_string(),
                });
                k
            }
        };
        for m in &pending[..good] {
            self.keep(walk, m)?;
        }
        for m in &pending[good..] {
            self.drop_entry(walk, m.sequence())?;
        }
        Ok(())
    }

    /// Drops log entry `seq` of the walked feed, part of its damaged tail.
    fn drop_entry(&mut self, walk: &mut Walk, seq: u32) -> Result<(), StoreError> {
        if let Some(bad) = &mut walk.bad {
            bad.messages += 1;
        }
        self.writer
            .remove(&self.store.log, &log_key(&walk.author, seq))
    }

    /// One log entry of the walked feed.
    fn entry(&mut self, walk: &mut Walk, seq: u32, value: &[u8]) -> Result<(), StoreError> {
        if walk.bad.is_some() {
            return self.drop_entry(walk, seq);
        }
        let checked = decode_log_value(value)
            .map_err(|e| match e {
                StoreError::Corrupt(what) => what,
                e => e.to_string(),
            })
            .and_then(|stored| {
                let m = stored.message().map_err(|e| e.to_string())?;
                if m.author() != walk.author || m.sequence() != seq {
                    return Err(format!(
                        "stored under the wrong key (it is {} seq {})",
                        m.author(),
                        m.sequence()
                    ));
                }
                if m.id() != stored.id {
                    return Err("stored id is not the message's id".to_owned());
                }
                m.check_chain(walk.chained.as_ref())
                    .map_err(|e| e.to_string())?;
                Ok(m)
            });
        match checked {
            Ok(m) => {
                walk.chained = Some(m.head());
                walk.pending.push(m);
                if walk.pending.len() >= VERIFY_CHUNK {
                    self.flush(walk)?;
                }
                Ok(())
            }
            Err(reason) => {
                // An earlier bad signature comes first.
                self.flush(walk)?;
                if walk.bad.is_none() {
                    walk.bad = Some(DroppedTail {
                        feed: walk.author,
                        from: seq,
                        messages: 0,
                        reason,
                    });
                }
                self.drop_entry(walk, seq)
            }
        }
    }

    /// Ends the walk of a feed: its clock entry says its kept head.
    fn finish(&mut self, mut walk: Walk) -> Result<(), StoreError> {
        if walk.bad.is_none() {
            self.flush(&mut walk)?;
        }
        let was = self.clock.remove(&walk.author).flatten();
        let now = walk.kept.map(|h| head_value(&h));
        if was != now {
            let key = walk.author.as_bytes();
            match &now {
                Some(v) => self.writer.insert(&self.store.clock, key, v)?,
                None => self.writer.remove(&self.store.clock, key)?,
            }
            self.report.clocks.push(ClockFix {
                feed: walk.author,
                was: was.map(seq_of),
                now: walk.kept.map(|h| h.sequence),
            });
        }
        if let Some(h) = walk.kept {
            self.heads.insert(walk.author, h.sequence);
            self.report.feeds += 1;
        }
        if let Some(bad) = walk.bad {
            self.report.dropped.push(bad);
        }
        Ok(())
    }
}

/// The sequence in a clock value.
fn seq_of(v: [u8; 36]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

impl Store {
    /// Rebuilds the id index, the clock and the contacts index from the log,
    /// dropping each feed's damaged tail (see the [module](self)); durable
    /// when it returns. The store must not be written meanwhile (the CLI
    /// opens it exclusively).
    pub fn repair(&self) -> Result<RepairReport, StoreError> {
        let mut state = State {
            store: self,
            writer: Writer::new(self),
            verifier: BatchVerifier::new(),
            report: RepairReport::default(),
            clock: HashMap::new(),
            heads: HashMap::new(),
            stances: HashMap::new(),
        };
        for g in self.clock.iter() {
            let (k, v) = g.into_inner()?;
            match <[u8; 32]>::try_from(&*k) {
                Ok(feed) => {
                    let v = <[u8; 36]>::try_from(&*v).ok();
                    state.clock.insert(FeedId(feed), v);
                }
                Err(_) => {
                    state.writer.remove(&self.clock, &k)?;
                    state.report.stray += 1;
                }
            }
        }
        let mut walk: Option<Walk> = None;
        for g in self.log.iter() {
            let (k, v) = g.into_inner()?;
            let Ok((author, seq)) = split_log_key(&k, "log key") else {
                state.writer.remove(&self.log, &k)?;
                state.report.stray += 1;
                continue;
            };
            if walk.as_ref().map(|w| w.author) != Some(author) {
                if let Some(done) = walk.take() {
                    state.finish(done)?;
                }
                walk = Some(Walk {
                    author,
                    kept: None,
                    chained: None,
                    pending: Vec::with_capacity(VERIFY_CHUNK),
                    bad: None,
                });
            }
            if let Some(w) = &mut walk {
                state.entry(w, seq, &v)?;
            }
        }
        if let Some(done) = walk.take() {
            state.finish(done)?;
        }
        // Clock entries of feeds with no log entries at all.
        let ghosts: Vec<_> = state.clock.drain().collect();
        for (feed, was) in ghosts {
            state.writer.remove(&self.clock, feed.as_bytes())?;
            state.report.clocks.push(ClockFix {
                feed,
                was: was.map(seq_of),
                now: None,
            });
        }
        state.writer.commit()?;
        // Id index entries that name no kept message.
        for g in self.msgs.iter() {
            let (id, loc) = g.into_inner()?;
            let names_kept = match split_log_key(&loc, "index entry") {
                Ok((author, seq)) if state.heads.get(&author).is_some_and(|h| seq <= *h) => self
                    .log
                    .get(&*loc)?
                    .is_some_and(|v| v.get(8..40) == Some(&*id)),
                _ => false,
            };
            if !names_kept {
                state.writer.remove(&self.msgs, &id)?;
                state.report.index_removed += 1;
            }
        }
        state.writer.commit()?;
        let stances = std::mem::take(&mut state.stances);
        state.report.contacts_fixed = contacts::replace_all(&self.db, &self.contacts, stances)?;
        self.persist()?;
        state.report.dropped.sort_by_key(|d| d.feed.0);
        Ok(state.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, Value};

    /// `n` chained messages by `keys`; every third is a contact message
    /// following `whom`.
    fn chain(keys: &Keypair, n: u32, whom: &FeedId) -> Vec<Message> {
        let mut head = None;
        (1..=n)
            .map(|i| {
                let text = if i % 3 == 0 {
                    format!(r#"{{"type":"contact","contact":"{whom}","following":true}}"#)
                } else {
                    format!(r#"{{"type":"post","text":"m{i}"}}"#)
                };
                let c = Value::parse(text.as_bytes()).expect("json");
                let m =
                    Message::create(keys, head.as_ref(), f64::from(i), c, None).expect("create");
                head = Some(m.head());
                m
            })
            .collect()
    }

    fn store_with(feeds: &[(&Keypair, u32)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let whom = FeedId([3; 32]);
        for (k, n) in feeds {
            store
                .append(chain(k, *n, &whom), &mut BatchVerifier::new())
                .expect("append");
        }
        (dir, store)
    }

    fn assert_checks(store: &Store) {
        let problems = store.check().expect("check").problems;
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_sound_store_is_left_as_it_is() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (_dir, store) = store_with(&[(&a, 700), (&b, 5)]);
        let r = store.repair().expect("repair");
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.feeds, r.messages), (2, 705));
        assert_checks(&store);
    }

    #[test]
    fn a_corrupt_message_drops_its_feed_from_there_and_nothing_else() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (_dir, store) = store_with(&[(&a, 30), (&b, 10)]);
        // Message 12 of a, cut short in the middle of its JSON.
        let key = log_key(&a.id(), 12);
        let v = store.log.get(key).expect("get").expect("held");
        store.log.insert(key, &v[..v.len() / 2]).expect("insert");
        let r = store.repair().expect("repair");
        assert_eq!(r.dropped.len(), 1, "{r:?}");
        let d = &r.dropped[0];
        assert_eq!((d.feed, d.from, d.messages), (a.id(), 12, 19));
        assert!(d.reason.starts_with("not JSON"), "{}", d.reason);
        assert_eq!(
            r.clocks,
            vec![ClockFix {
                feed: a.id(),
                was: Some(30),
                now: Some(11)
            }]
        );
        assert_eq!(r.index_removed, 19);
        assert_eq!((r.feeds, r.messages), (2, 21));
        assert_eq!(
            store.head(&a.id()).expect("head").map(|h| h.sequence),
            Some(11)
        );
        assert_eq!(store.feed(&a.id(), 1).count(), 11);
        assert_eq!(store.feed(&b.id(), 1).count(), 10);
        assert_checks(&store);
        // Sound now: a second repair changes nothing.
        assert!(store.repair().expect("repair again").is_clean());
    }

    #[test]
    fn a_bad_signature_deep_in_a_feed_is_found_among_its_batch() {
        let a = Keypair::from_seed(&[1; 32]);
        let (_dir, store) = store_with(&[(&a, 600)]);
        // Message 300: another message's signature (well formed, wrong).
        let key = log_key(&a.id(), 300);
        let v = store.log.get(key).expect("get").expect("held");
        let other = store.get_at(&a.id(), 299).expect("get").expect("held");
        let sig = |json: &str| {
            let at = json.find("\"signature\"").expect("signature");
            json[at..].to_owned()
        };
        let json = std::str::from_utf8(&v[40..]).expect("utf8");
        let forged = json.replace(&sig(json), &sig(&other.json));
        let mut nv = v[..40].to_vec();
        nv.extend_from_slice(forged.as_bytes());
        // The id stored beside it is the forged value's own, so only the signature is wrong.
        let m = Message::parse(forged.as_bytes(), None).expect("shape");
        nv[8..40].copy_from_slice(m.id().as_bytes());
        store.log.insert(key, nv).expect("insert");
        let r = store.repair().expect("repair");
        let d = &r.dropped[0];
        assert_eq!((d.from, d.messages), (300, 301), "{r:?}");
        assert_eq!(d.reason, "signature does not verify");
        assert_eq!(
            store.head(&a.id()).expect("head").map(|h| h.sequence),
            Some(299)
        );
        assert_checks(&store);
    }

    #[test]
    fn indexes_and_clocks_are_rebuilt_from_the_log() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (_dir, store) = store_with(&[(&a, 9), (&b, 4)]);
        let m3 = store.get_at(&a.id(), 3).expect("get").expect("held");
        // A lost index entry, a stray one, an understating and an
        // overstating clock, a clock of a feed with no messages, a lost
        // contacts entry.
        store.msgs.remove(m3.id.as_bytes()).expect("remove");
        store
            .msgs
            .insert([9u8; 32], log_key(&b.id(), 2))
            .expect("insert");
        let head = |feed: &FeedId, seq: u32| {
            let m = store.get_at(feed, seq).expect("get").expect("held");
            head_value(&FeedHead {
                id: m.id,
                sequence: seq,
            })
        };
        store
            .clock
            .insert(a.id().as_bytes(), head(&a.id(), 5))
            .expect("insert");
        let mut over = head(&b.id(), 4);
        over[..4].copy_from_slice(&7u32.to_be_bytes());
        store.clock.insert(b.id().as_bytes(), over).expect("insert");
        let ghost = FeedId([8; 32]);
        store.clock.insert(ghost.as_bytes(), over).expect("insert");
        let mut contact = a.id().as_bytes().to_vec();
        contact.extend_from_slice(&[3; 32]);
        store.contacts.remove(contact).expect("remove");
        // Check looks up each message's index entry; a stray one it does not see.
        assert_eq!(store.check().expect("check").problems.len(), 5);

        let r = store.repair().expect("repair");
        assert!(r.dropped.is_empty(), "{r:?}");
        assert_eq!(r.index_added, 1);
        assert_eq!(r.index_removed, 1);
        assert_eq!(r.contacts_fixed, 1);
        let mut clocks = r.clocks.clone();
        clocks.sort_by_key(|c| c.feed.0);
        let mut want = vec![
            ClockFix {
                feed: a.id(),
                was: Some(5),
                now: Some(9),
            },
            ClockFix {
                feed: b.id(),
                was: Some(7),
                now: Some(4),
            },
            ClockFix {
                feed: ghost,
                was: Some(7),
                now: None,
            },
        ];
        want.sort_by_key(|c| c.feed.0);
        assert_eq!(clocks, want);
        assert_eq!(store.get(&m3.id).expect("get").map(|s| s.id), Some(m3.id));
        assert!(store.contacts(&a.id()).expect("contacts")[&FeedId([3; 32])].following);
        assert_checks(&store);
    }

    #[test]
    fn a_gap_and_a_wrong_first_message_drop_from_there() {
        let (a, b) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (_dir, store) = store_with(&[(&a, 8), (&b, 3)]);
        store.log.remove(log_key(&a.id(), 5)).expect("remove");
        store.log.remove(log_key(&b.id(), 1)).expect("remove");
        let r = store.repair().expect("repair");
        let got: Vec<_> = r
            .dropped
            .iter()
            .map(|d| (d.feed, d.from, d.messages, d.reason.clone()))
            .collect();
        let mut want = vec![
            (
                a.id(),
                6,
                3,
                "expected sequence 5 of this feed, got 6".to_owned(),
            ),
            (
                b.id(),
                2,
                2,
                "expected sequence 1 of this feed, got 2".to_owned(),
            ),
        ];
        want.sort_by_key(|w| w.0 .0);
        assert_eq!(got, want);
        assert_eq!(store.head(&b.id()).expect("head"), None);
        assert_checks(&store);
    }
}
