//! The staging area: messages from a bundle wait here, verified but
//! invisible, until the whole bundle has been checked (its signature comes
//! last). Then [`Store::promote`] moves them into the log in chain order,
//! without checking signatures again.
//!
//! Nothing reads the staging area but promotion, so a bundle that is
//! rejected half-way, or a process killed mid-import, leaves nothing
//! visible; the next import starts with [`Store::clear_stage`]. Promotion
//! writes one atomic batch per run of messages, so a crash during it leaves
//! every feed a valid prefix, as [`Store::append`] does.

use std::ops::Bound;

use super::{arr, contacts, corrupt, head_value, log_key, now_ms, Store, StoreError};
use crate::feed::{BlobId, FeedHead, FeedId, MsgId, Value};

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
    /// The signed value as compact JSON.
    pub json: Vec<u8>,
}

/// What one [`Store::promote`] call moved into the log.
#[derive(Debug, Default)]
pub struct Promoted {
    /// The feed's latest sequence before.
    pub before: u32,
    /// The feed's latest sequence after.
    pub after: u32,
    /// Per message added: sequence, blobs it mentions, whether it is a contact.
    pub added: Vec<(u32, Vec<BlobId>, bool)>,
    /// Staged messages that were already held (same id), now dropped.
    pub skipped: u64,
    /// Whether more staged messages of this feed wait (call again).
    pub more: bool,
    /// Why promotion of this feed stopped short, if it did: the staged run
    /// does not continue the stored feed (it was changed meanwhile).
    pub stuck: Option<String>,
}

fn encode(m: &Staged) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + 33 + 2 + 32 * m.blobs.len() + m.json.len());
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
    v.extend_from_slice(&m.json);
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
    Ok(Staged {
        author,
        sequence,
        id,
        previous,
        contact,
        blobs,
        json: v[at..].to_vec(),
    })
}

impl Store {
    /// Writes verified messages into the staging area, in one batch.
    pub fn stage(&self, msgs: &[Staged]) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for m in msgs {
            batch.insert(&self.stage, log_key(&m.author, m.sequence), encode(m));
        }
        Ok(batch.commit()?)
    }

    /// Empties the staging area; returns how many entries it held.
    pub fn clear_stage(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let keys: Vec<_> = self
                .stage
                .iter()
                .take(4096)
                .map(|g| g.key())
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                return Ok(removed);
            }
            let mut batch = self.db.batch();
            for k in &keys {
                batch.remove(&self.stage, k.clone());
            }
            batch.commit()?;
            removed += keys.len() as u64;
        }
    }

    /// The feeds that have staged messages, in key order.
    pub fn staged_feeds(&self) -> Result<Vec<FeedId>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<[u8; 36]> = None;
        loop {
            let next = match after {
                None => self.stage.iter().next(),
                Some(k) => self
                    .stage
                    .range::<&[u8], _>((Bound::Excluded(&k[..]), Bound::Unbounded))
                    .next(),
            };
            let Some(g) = next else {
                return Ok(out);
            };
            let key = g.key()?;
            let feed = FeedId(arr(key.get(..32).unwrap_or(&[]), "staged author")?);
            out.push(feed);
            after = Some(log_key(&feed, u32::MAX));
        }
    }

    /// Moves up to `limit` staged messages of `feed` that continue its stored
    /// chain into the log, in one atomic batch. Staged messages the store
    /// already holds are dropped; one that conflicts with the stored feed, or
    /// does not continue it, stops promotion of this feed (see
    /// [`Promoted::stuck`]).
    pub fn promote(&self, feed: &FeedId, limit: usize) -> Result<Promoted, StoreError> {
        let mut head: Option<FeedHead> = self.head(feed)?;
        let mut out = Promoted {
            before: head.map_or(0, |h| h.sequence),
            ..Promoted::default()
        };
        let start = log_key(feed, 1);
        let end = log_key(feed, u32::MAX);
        let mut batch = self.db.batch();
        let mut stances = contacts::Changes::default();
        let now = now_ms();
        for (seen, g) in self.stage.range(start..=end).enumerate() {
            if seen == limit {
                out.more = true;
                break;
            }
            let (k, v) = g.into_inner()?;
            let m = decode(&k, &v)?;
            let held = head.map_or(0, |h| h.sequence);
            if m.sequence <= held {
                match self.get_at(feed, m.sequence)? {
                    Some(s) if s.id == m.id => {
                        batch.remove(&self.stage, k);
                        out.skipped += 1;
                        continue;
                    }
                    _ => {
                        out.stuck = Some(format!(
                            "message {} conflicts with the one stored (a fork)",
                            m.sequence
                        ));
                        break;
                    }
                }
            }
            if m.sequence != held + 1 || m.previous != head.map(|h| h.id) {
                out.stuck = Some(format!(
                    "message {} does not continue the stored feed (latest {held})",
                    m.sequence
                ));
                break;
            }
            let key = log_key(feed, m.sequence);
            let mut value = Vec::with_capacity(8 + 32 + m.json.len());
            value.extend_from_slice(&now.to_be_bytes());
            value.extend_from_slice(m.id.as_bytes());
            value.extend_from_slice(&m.json);
            batch.insert(&self.log, key, value);
            batch.insert(&self.msgs, *m.id.as_bytes(), key);
            // Any message that names "contact" may be one (cheaper than
            // trusting the staged flag to match the index's own rule).
            if m.json.windows(9).any(|w| w == b"\"contact\"") {
                let value = Value::parse(&m.json).map_err(|_| corrupt("staged message"))?;
                let content = value
                    .as_object()
                    .and_then(|o| o.get("content"))
                    .unwrap_or(&Value::Null);
                stances.note(&self.contacts, feed, content)?;
            }
            batch.remove(&self.stage, k);
            head = Some(FeedHead {
                id: m.id,
                sequence: m.sequence,
            });
            out.added.push((m.sequence, m.blobs, m.contact));
        }
        if let Some(h) = head.filter(|h| h.sequence > out.before) {
            batch.insert(&self.clock, *feed.as_bytes(), head_value(&h));
        }
        stances.write(&self.contacts, &mut batch);
        batch.commit()?;
        out.after = head.map_or(0, |h| h.sequence);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, Message, Value};

    fn staged(m: &Message) -> Staged {
        let mut json = Vec::new();
        m.value().write_compact(&mut json);
        Staged {
            author: m.author(),
            sequence: m.sequence(),
            id: m.id(),
            previous: m.previous(),
            contact: false,
            blobs: vec![BlobId([7; 32])],
            json,
        }
    }

    fn chain(keys: &Keypair, n: u32) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::new();
        for i in 0..n {
            let content =
                Value::parse(format!("{{\"type\":\"post\",\"n\":{i}}}").as_bytes()).unwrap();
            let prev = out.last().map(Message::head);
            out.push(
                Message::create(keys, prev.as_ref(), 1000.0 + f64::from(i), content, None).unwrap(),
            );
        }
        out
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
        store
            .stage(&msgs.iter().map(staged).collect::<Vec<_>>())
            .unwrap();
        store.promote(&keys.id(), 100).unwrap();
        assert!(store.contacts(&keys.id()).unwrap()[&friend].following);
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn staged_messages_are_invisible_until_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[3; 32]);
        let msgs = chain(&keys, 10);
        let all: Vec<Staged> = msgs.iter().map(staged).collect();
        assert_eq!(
            decode(&log_key(&all[1].author, 2), &encode(&all[1])).unwrap(),
            all[1]
        );
        store.stage(&all).unwrap();
        assert!(store.head(&keys.id()).unwrap().is_none());
        assert!(store.get(&msgs[0].id()).unwrap().is_none());
        assert_eq!(store.staged_feeds().unwrap(), vec![keys.id()]);

        let p = store.promote(&keys.id(), 4).unwrap();
        assert_eq!((p.before, p.after, p.added.len(), p.more), (0, 4, 4, true));
        assert_eq!(p.added[0].1, vec![BlobId([7; 32])]);
        let p = store.promote(&keys.id(), 100).unwrap();
        assert_eq!((p.before, p.after, p.more, p.stuck), (4, 10, false, None));
        assert!(store.staged_feeds().unwrap().is_empty());
        let got = store.get_at(&keys.id(), 10).unwrap().unwrap();
        assert_eq!(got.id, msgs[9].id());
        assert!(store.check().unwrap().problems.is_empty());
    }

    #[test]
    fn held_messages_are_skipped_and_gaps_and_forks_stop_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = Keypair::from_seed(&[4; 32]);
        let msgs = chain(&keys, 6);
        store
            .append(msgs[..3].to_vec(), &mut crate::feed::BatchVerifier::new())
            .unwrap();
        // Held 1..=3 (skipped), then 5 without 4: stuck.
        let mut s: Vec<Staged> = msgs.iter().map(staged).collect();
        s.remove(3);
        store.stage(&s).unwrap();
        let p = store.promote(&keys.id(), 100).unwrap();
        assert_eq!((p.skipped, p.after), (3, 3));
        assert!(p.stuck.unwrap().contains("does not continue"), "gap");
        assert_eq!(store.clear_stage().unwrap(), 2);

        // A different message 2 (a fork) stops promotion too.
        let other = chain(&keys, 2);
        let mut fork = staged(&other[1]);
        fork.json.push(b' ');
        fork.id = MsgId([9; 32]);
        store.stage(&[fork]).unwrap();
        let p = store.promote(&keys.id(), 100).unwrap();
        assert!(p.stuck.unwrap().contains("fork"));
        assert_eq!(p.after, 3);
        store.clear_stage().unwrap();
        assert!(store.staged_feeds().unwrap().is_empty());
    }
}
