//! The `invites` keyspace: the pub-style invites this node has made.
//!
//! Key: the invite's public key (32 B), the key of the one-time keypair
//! whose seed the invite code carries. Value: an [`InviteRecord`] as compact
//! JSON. The seed itself is never stored: only a client holding the code can
//! authenticate with that key.

use fjall::Keyspace;
use serde::{Deserialize, Serialize};

use super::{arr, StoreError};
use crate::feed::FeedId;

/// Most invites kept; making one more drops the oldest that can no longer
/// be used (see [`InviteRecord::is_live`]), or fails if all are live.
pub const MAX_INVITES: usize = 1024;

/// One invite as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct InviteRecord {
    /// The invite keypair's public key, as a feed id.
    pub key: FeedId,
    /// Uses left.
    pub uses_left: u32,
    /// Uses it was made with.
    pub uses: u32,
    /// When it stops working (ms since the epoch), if ever.
    pub expires: Option<f64>,
    /// A note for the box's owner (who it was for).
    pub note: Option<String>,
    /// When it was made (ms since the epoch).
    pub created: f64,
    /// Revoked by the owner.
    pub revoked: bool,
}

impl InviteRecord {
    /// Whether it can still be used at `now` (ms since the epoch).
    pub fn is_live(&self, now: f64) -> bool {
        !self.revoked && self.uses_left > 0 && self.expires.is_none_or(|e| now < e)
    }
}

/// The value of an entry: the record less its key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    uses_left: u32,
    uses: u32,
    expires: Option<f64>,
    note: Option<String>,
    created: f64,
    revoked: bool,
}

fn decode(key: &[u8], value: &[u8]) -> Result<InviteRecord, StoreError> {
    let key = FeedId(arr(key, "invites key")?);
    let s: Stored = serde_json::from_slice(value)
        .map_err(|e| StoreError::Corrupt(format!("invite record: {e}")))?;
    Ok(InviteRecord {
        key,
        uses_left: s.uses_left,
        uses: s.uses,
        expires: s.expires,
        note: s.note,
        created: s.created,
        revoked: s.revoked,
    })
}

fn encode(r: &InviteRecord) -> Vec<u8> {
    let s = Stored {
        uses_left: r.uses_left,
        uses: r.uses,
        expires: r.expires,
        note: r.note.clone(),
        created: r.created,
        revoked: r.revoked,
    };
    // Plain fields with finite numbers always serialise.
    serde_json::to_vec(&s).unwrap_or_default()
}

/// The invite with public key `key`, if this node made it.
pub(super) fn get(index: &Keyspace, key: &FeedId) -> Result<Option<InviteRecord>, StoreError> {
    index
        .get(key.as_bytes())?
        .map(|v| decode(key.as_bytes(), &v))
        .transpose()
}

/// Every stored invite, oldest first.
pub(super) fn all(index: &Keyspace) -> Result<Vec<InviteRecord>, StoreError> {
    let mut out = index
        .iter()
        .map(|g| {
            let (k, v) = g.into_inner()?;
            decode(&k, &v)
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.created.total_cmp(&b.created));
    Ok(out)
}

/// Writes `record` (new or changed).
pub(super) fn put(index: &Keyspace, record: &InviteRecord) -> Result<(), StoreError> {
    Ok(index.insert(record.key.as_bytes(), encode(record))?)
}

/// Adds a new invite, first dropping the oldest dead ones if the keyspace
/// holds [`MAX_INVITES`]. `None` if it is full of live invites.
pub(super) fn add(
    index: &Keyspace,
    record: &InviteRecord,
    now: f64,
) -> Result<Option<()>, StoreError> {
    let existing = all(index)?;
    if existing.len() >= MAX_INVITES {
        let excess = existing.len() + 1 - MAX_INVITES;
        let dead: Vec<&InviteRecord> = existing
            .iter()
            .filter(|r| !r.is_live(now))
            .take(excess)
            .collect();
        if dead.len() < excess {
            return Ok(None);
        }
        for r in dead {
            index.remove(r.key.as_bytes())?;
        }
    }
    put(index, record)?;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    fn record(n: u8, created: f64) -> InviteRecord {
        InviteRecord {
            key: FeedId([n; 32]),
            uses_left: 1,
            uses: 1,
            expires: None,
            note: Some(format!("for {n}")),
            created,
            revoked: false,
        }
    }

    #[test]
    fn invites_survive_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let store = Store::open(dir.path()).expect("open");
            assert!(store.add_invite(&record(1, 1.0), 2.0).expect("add"));
            let mut r = record(2, 2.0);
            r.expires = Some(10.5);
            assert!(store.add_invite(&r, 2.0).expect("add"));
            r.uses_left = 0;
            store.put_invite(&r).expect("put");
            store.persist().expect("persist");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let all = store.invites().expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], record(1, 1.0));
        assert_eq!(all[1].uses_left, 0);
        assert_eq!(all[1].expires, Some(10.5));
        assert_eq!(
            store.invite(&FeedId([1; 32])).expect("get"),
            Some(record(1, 1.0))
        );
        assert_eq!(store.invite(&FeedId([9; 32])).expect("get"), None);
    }

    #[test]
    fn a_full_keyspace_drops_dead_invites_first_and_refuses_when_all_live() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let mut n = 0u32;
        let key = |n: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&n.to_be_bytes());
            FeedId(k)
        };
        for _ in 0..MAX_INVITES {
            let mut r = record(0, f64::from(n));
            r.key = key(n);
            r.revoked = n == 5;
            assert!(store.add_invite(&r, 0.0).expect("add"));
            n += 1;
        }
        let mut r = record(0, f64::from(n));
        r.key = key(n);
        assert!(
            store.add_invite(&r, 0.0).expect("add"),
            "the revoked one goes"
        );
        assert_eq!(store.invite(&key(5)).expect("get"), None);
        assert_eq!(store.invites().expect("list").len(), MAX_INVITES);
        r.key = key(n + 1);
        assert!(!store.add_invite(&r, 0.0).expect("add"), "all are live");
        assert_eq!(store.invites().expect("list").len(), MAX_INVITES);
    }
}
