//! The `contacts` keyspace: each feed's latest stance on every feed its
//! contact messages name, kept in the same write batch as the messages, so the
//! follow graph is a few short prefix scans instead of a walk over whole feeds.
//!
//! Key: author (32 B) ‖ contact (32 B); value: one byte, bit 0 following,
//! bit 1 blocking. The key [`BUILT`] marks an index that covers the whole log
//! (stores made before the index existed are indexed once, on open).

use std::collections::HashMap;

use fjall::{Database, Keyspace, OwnedWriteBatch};

use super::{arr, corrupt, decode_log_value, StoreError};
use crate::feed::{ContactChange, FeedId, Stance, Value};

/// Marks an index that covers every stored message (shorter than any entry's key).
const BUILT: &[u8] = b"built";

/// Messages read per write batch while indexing an old store.
const REBUILD_BATCH: usize = 4096;

fn key(author: &FeedId, contact: &FeedId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(author.as_bytes());
    k[32..].copy_from_slice(contact.as_bytes());
    k
}

fn encode(s: Stance) -> [u8; 1] {
    [u8::from(s.following) | (u8::from(s.blocking) << 1)]
}

fn decode(v: &[u8]) -> Result<Stance, StoreError> {
    match v {
        [b] if *b <= 3 => Ok(Stance {
            following: b & 1 != 0,
            blocking: b & 2 != 0,
        }),
        _ => Err(corrupt("contacts entry")),
    }
}

/// Stances changed by one write batch, applied in message order on top of
/// what is stored.
#[derive(Default)]
pub(super) struct Changes {
    stances: HashMap<[u8; 64], Stance>,
}

impl Changes {
    /// Applies `author`'s message content, if it is a contact message.
    pub(super) fn note(
        &mut self,
        index: &Keyspace,
        author: &FeedId,
        content: &Value,
    ) -> Result<(), StoreError> {
        let Some(change) = ContactChange::of(content) else {
            return Ok(());
        };
        let k = key(author, &change.contact);
        let before = match self.stances.get(&k) {
            Some(s) => *s,
            None => index
                .get(k)?
                .map(|v| decode(&v))
                .transpose()?
                .unwrap_or_default(),
        };
        self.stances.insert(k, change.apply(before));
        Ok(())
    }

    /// Adds the changed stances to `batch`.
    pub(super) fn write(self, index: &Keyspace, batch: &mut OwnedWriteBatch) {
        for (k, s) in self.stances {
            batch.insert(index, k, encode(s));
        }
    }
}

/// `feed`'s stance on every feed it has sent a contact message about.
pub(super) fn of(index: &Keyspace, feed: &FeedId) -> Result<HashMap<FeedId, Stance>, StoreError> {
    index
        .prefix(feed.as_bytes())
        .map(|g| {
            let (k, v) = g.into_inner()?;
            Ok((
                FeedId(arr(&k[32.min(k.len())..], "contacts key")?),
                decode(&v)?,
            ))
        })
        .collect()
}

/// Every stance in the index, by author and contact.
pub(super) fn all(index: &Keyspace) -> Result<HashMap<(FeedId, FeedId), Stance>, StoreError> {
    let mut out = HashMap::new();
    for g in index.iter() {
        let (k, v) = g.into_inner()?;
        if *k == *BUILT {
            continue;
        }
        if k.len() != 64 {
            return Err(corrupt("contacts key"));
        }
        let author = FeedId(arr(&k[..32], "contacts key")?);
        let contact = FeedId(arr(&k[32..], "contacts key")?);
        out.insert((author, contact), decode(&v)?);
    }
    Ok(out)
}

/// The stances the stored value `json` of `author` implies, applied to `into`
/// (used to index old stores and by the store check).
pub(super) fn replay(into: &mut HashMap<(FeedId, FeedId), Stance>, author: FeedId, value: &Value) {
    let content = value
        .as_object()
        .and_then(|o| o.get("content"))
        .unwrap_or(&Value::Null);
    if let Some(change) = ContactChange::of(content) {
        let s = into.entry((author, change.contact)).or_default();
        *s = change.apply(*s);
    }
}

/// Makes the index hold exactly `stances` (what the log implies), marked
/// as built; returns how many entries were wrong, missing or stray.
pub(super) fn replace_all(
    db: &Database,
    index: &Keyspace,
    mut stances: HashMap<(FeedId, FeedId), Stance>,
) -> Result<usize, StoreError> {
    let mut fixed = 0;
    let mut batch = db.batch();
    let mut queued = 0;
    for g in index.iter() {
        let (k, v) = g.into_inner()?;
        if *k == *BUILT {
            continue;
        }
        let held = (k.len() == 64)
            .then(|| {
                let author = FeedId(arr(&k[..32], "contacts key").ok()?);
                let contact = FeedId(arr(&k[32..], "contacts key").ok()?);
                Some((author, contact))
            })
            .flatten();
        let right = held.and_then(|pair| stances.remove(&pair));
        match right {
            Some(s) if decode(&v).ok() == Some(s) => continue,
            Some(s) => batch.insert(index, k, encode(s)),
            None => batch.remove(index, k),
        }
        fixed += 1;
        queued += 1;
        if queued % REBUILD_BATCH == 0 {
            std::mem::replace(&mut batch, db.batch()).commit()?;
        }
    }
    for ((author, contact), s) in stances {
        batch.insert(index, key(&author, &contact), encode(s));
        fixed += 1;
        queued += 1;
        if queued % REBUILD_BATCH == 0 {
            std::mem::replace(&mut batch, db.batch()).commit()?;
        }
    }
    batch.insert(index, BUILT, *b"");
    batch.commit()?;
    Ok(fixed)
}

/// Indexes the whole log unless the index already covers it.
pub(super) fn ensure_built(
    db: &Database,
    log: &Keyspace,
    index: &Keyspace,
) -> Result<(), StoreError> {
    if index.contains_key(BUILT)? {
        return Ok(());
    }
    let mut stances = HashMap::new();
    let mut read = 0usize;
    for g in log.iter() {
        let (k, v) = g.into_inner()?;
        read += 1;
        let stored = decode_log_value(&v)?;
        // Cheap filter first: only contact messages can matter.
        if !stored.json.contains("\"contact\"") {
            continue;
        }
        let author = FeedId(arr(&k[..32.min(k.len())], "log key")?);
        if let Ok(value) = Value::parse(stored.json.as_bytes()) {
            replay(&mut stances, author, &value);
        }
    }
    let mut batch = db.batch();
    for (i, ((author, contact), s)) in stances.into_iter().enumerate() {
        batch.insert(index, key(&author, &contact), encode(s));
        if (i + 1) % REBUILD_BATCH == 0 {
            std::mem::replace(&mut batch, db.batch()).commit()?;
        }
    }
    batch.insert(index, BUILT, *b"");
    batch.commit()?;
    if read > 0 {
        tracing::info!(
            messages = read,
            "indexed the contact messages of an older store"
        );
    }
    Ok(())
}
