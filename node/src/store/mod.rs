//! The message store: fjall on disk, every message verified before it is
//! written.
//!
//! Keyspaces:
//! - `log`: author (32 B) ‖ sequence (u32 BE) → received time (f64 BE) ‖
//!   message id (32 B) ‖ the message value as compact JSON;
//! - `msg`: message id → author ‖ sequence;
//! - `clock`: author → sequence ‖ id of the feed's latest message;
//! - `remote`: a name (`peer:` ‖ public key, …) → the vector clock that
//!   remote last showed us, as author ‖ sequence entries (request skipping);
//!   also each stick's record (`stickinfo:` ‖ id) and the names of bundles
//!   verified in full (`verified:` ‖ name → when last seen), and the
//!   keeper's small settings (`setting:` ‖ name → value);
//! - `wants`: blob id → nothing: blobs we want and do not hold yet;
//! - `contacts`: author ‖ contact → the author's stance on that feed (see
//!   `contacts`), kept in step with `log` by every append and promotion;
//! - `invites`: invite public key → the invite's uses, expiry and note (see
//!   [`invites`]).
//!
//! Messages from a bundle are written into `log` past their feed's head,
//! where no read looks, while the bundle is checked (see [`incoming`]);
//! what promotion needs of them waits in an unnamed temporary file (see
//! [`stage`]). Stores written by older versions kept them in a `stage`
//! keyspace; opening such a store deletes it (its entries were never
//! visible).
//!
//! One [`Store::append`] call is one fjall write batch, which fjall's journal
//! applies entirely or not at all. A feed therefore only ever grows by whole,
//! verified, contiguous runs: after a crash (even `kill -9` mid-write) every
//! feed is still a valid prefix, which [`Store::check`] proves.

mod contacts;
pub mod invites;
pub mod repair;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::feed::{
    BatchVerifier, BlobId, FeedHead, FeedId, Invalid, Message, MsgId, Stance, Verified,
};

pub mod incoming;
pub mod stage;

/// Why the store failed (not why a message was refused: see [`Invalid`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// fjall reported an error.
    #[error("store: {0}")]
    Db(fjall::Error),
    /// The disk under the data dir is full: nothing of the failed write is kept.
    #[error("store: the disk is full ({0})")]
    DiskFull(std::io::Error),
    /// fjall refuses writes since one failed (it cannot vouch for what follows);
    /// what was committed before stays readable.
    #[error("store: takes no writes since one failed (is the disk full?); free space and restart the node")]
    Poisoned,
    /// The store is held by another process.
    #[error("the store at {0} is in use by another process (is `ssb-node run` running?)")]
    Locked(String),
    /// The staging file of an import failed.
    #[error("staging file: {0}")]
    Stage(std::io::Error),
    /// Bytes on disk are not what this program writes.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> StoreError {
        let full = |io: &std::io::Error| io.kind() == std::io::ErrorKind::StorageFull;
        match e {
            fjall::Error::Poisoned => StoreError::Poisoned,
            fjall::Error::Io(io) if full(&io) => StoreError::DiskFull(io),
            fjall::Error::Storage(fjall::LsmError::Io(io)) if full(&io) => StoreError::DiskFull(io),
            e => StoreError::Db(e),
        }
    }
}

/// A message as stored: its id, when it was received, and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMsg {
    /// The message id.
    pub id: MsgId,
    /// When this node received it (ms since the epoch).
    pub received: f64,
    /// The signed value, compact JSON in its original key order.
    pub json: String,
}

impl StoredMsg {
    /// `{"key","value","timestamp"}` as createHistoryStream sends it.
    pub fn to_kvt_json(&self) -> String {
        let mut ts = Vec::with_capacity(24);
        crate::feed::json::write_number(&mut ts, self.received);
        format!(
            "{{\"key\":\"{}\",\"value\":{},\"timestamp\":{}}}",
            self.id,
            self.json,
            String::from_utf8_lossy(&ts)
        )
    }

    /// Parses the stored value back into a message.
    pub fn message(&self) -> Result<Message, Invalid> {
        Message::parse(self.json.as_bytes(), None)
    }
}

/// A stored message's value as it was signed, straight from the store
/// (see [`Store::feed_json`]).
pub struct StoredJson(fjall::Slice);

impl StoredJson {
    /// The compact JSON bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0[40..]
    }
}

/// What one [`Store::append`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AppendReport {
    /// Messages written.
    pub added: usize,
    /// Messages already held (same id at the same place).
    pub skipped: usize,
    /// Messages refused.
    pub rejected: usize,
    /// The first refusal: the message's index in the input and why.
    pub first_rejection: Option<(usize, Invalid)>,
}

impl AppendReport {
    /// Counts a refused message, keeping the first reason.
    fn reject(&mut self, i: usize, e: Invalid) {
        self.rejected += 1;
        if self.first_rejection.is_none() {
            self.first_rejection = Some((i, e));
        }
    }

    /// Adds another report's counts (keeps the earlier first rejection,
    /// shifting the other's index by `offset`).
    pub fn merge(&mut self, other: AppendReport, offset: usize) {
        self.added += other.added;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
        if self.first_rejection.is_none() {
            self.first_rejection = other.first_rejection.map(|(i, e)| (i + offset, e));
        }
    }
}

/// What [`Store::check`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CheckReport {
    /// Feeds checked.
    pub feeds: usize,
    /// Messages checked.
    pub messages: usize,
    /// Problems found, each a sentence.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Records a problem; past 1,000 the rest are only counted by the
    /// caller's exit status (a broken store can have millions).
    fn problem(&mut self, p: String) {
        if self.problems.len() < 1000 {
            self.problems.push(p);
        }
    }
}

/// The largest table the `log` and `msg` keyspaces write (fjall's default
/// is 64 MiB, whose filter alone needs 8 MiB of key hashes while the `msg`
/// table is written).
const TABLE_TARGET: u64 = 16 * 1024 * 1024;

/// The memtable bytes appends may fill before the next append waits for a
/// flush (see [`Store::bound_write_buffer`]): without it, memtables sealed
/// while fjall's one worker compacts pile up to the journal's limit
/// (64 MiB) during a bulk ingest.
const APPEND_WRITE_BUFFER_CAP: u64 = 8 * 1024 * 1024;

/// The store: open one per process; all methods take `&self`.
pub struct Store {
    db: Database,
    log: Keyspace,
    msgs: Keyspace,
    clock: Keyspace,
    remote: Keyspace,
    wants: Keyspace,
    contacts: Keyspace,
    invites: Keyspace,
    /// The store's directory (where staging files go).
    dir: PathBuf,
}

fn log_key(author: &FeedId, seq: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(author.as_bytes());
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The author and sequence of a `log` key ([`log_key`] backwards); `what`
/// names the bytes in the error if they are not one.
fn split_log_key(k: &[u8], what: &str) -> Result<(FeedId, u32), StoreError> {
    let k: [u8; 36] = arr(k, what)?;
    let (author, seq) = k.split_at(32);
    Ok((
        FeedId(arr(author, what)?),
        u32::from_be_bytes(arr(seq, what)?),
    ))
}

/// The `remote` keys of bundles verified in full: this prefix ‖ the
/// bundle's name (32 bytes) → when it was last seen (ms, u64 BE).
const VERIFIED_PREFIX: &[u8] = b"verified:";

/// The `remote` key of the web page's admin password hash.
const WEB_PASSWORD_KEY: &[u8] = b"web:password";

/// The `remote` keys of the keeper's settings: this prefix ‖ the name.
const SETTING_PREFIX: &str = "setting:";

/// Most bundle names remembered as verified (about 400 KiB).
pub const MAX_VERIFIED_BUNDLES: usize = 8192;

fn verified_key(name: &[u8; 32]) -> Vec<u8> {
    [VERIFIED_PREFIX, name].concat()
}

fn head_value(h: &FeedHead) -> [u8; 36] {
    let mut v = [0u8; 36];
    v[..4].copy_from_slice(&h.sequence.to_be_bytes());
    v[4..].copy_from_slice(h.id.as_bytes());
    v
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn arr<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    b.try_into().map_err(|_| corrupt(what))
}

fn decode_log_value(v: &[u8]) -> Result<StoredMsg, StoreError> {
    if v.len() < 40 {
        return Err(corrupt("short log entry"));
    }
    let received = f64::from_be_bytes(arr(&v[..8], "log time")?);
    let id = MsgId(arr(&v[8..40], "log id")?);
    let json =
        String::from_utf8(v[40..].to_vec()).map_err(|_| corrupt("log entry is not UTF-8"))?;
    Ok(StoredMsg { id, received, json })
}

/// Wall-clock time in milliseconds since the epoch, as SSB timestamps are.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64)
}

/// Bytes the store holds in memory ([`Store::memory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMemory {
    /// Memtables not yet written out.
    pub write_buffer: u64,
    /// The block cache in use.
    pub cache: u64,
}

impl Store {
    /// Opens (or creates) the store in `dir`, sized for small machines.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = Database::builder(dir)
            .cache_size(8 * 1024 * 1024)
            .max_journaling_size(64 * 1024 * 1024)
            .worker_threads(1)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => StoreError::Locked(dir.display().to_string()),
                e => StoreError::from(e),
            })?;
        let small =
            |mb: u64| move || KeyspaceCreateOptions::default().max_memtable_size(mb * 1024 * 1024);
        // The big keyspaces write tables of at most TABLE_TARGET: a table
        // being written holds a hash of each of its keys for its filter and
        // its whole index until it is done (fjall keeps these options from
        // a keyspace's creation on).
        let big = |mb: u64| {
            move || {
                small(mb)().compaction_strategy(Arc::new(
                    fjall::compaction::Leveled::default().with_table_target_size(TABLE_TARGET),
                ))
            }
        };
        let log = db.keyspace("log", big(4))?;
        let msgs = db.keyspace("msg", big(2))?;
        let clock = db.keyspace("clock", small(1))?;
        let remote = db.keyspace("remote", small(1))?;
        let wants = db.keyspace("wants", small(1))?;
        let contacts = db.keyspace("contacts", small(1))?;
        let invites = db.keyspace("invites", small(1))?;
        stage::drop_old_keyspace(&db)?;
        let store = Store {
            db,
            log,
            msgs,
            clock,
            remote,
            wants,
            contacts,
            invites,
            dir: dir.to_path_buf(),
        };
        store.drop_incoming()?;
        contacts::ensure_built(&store.db, &store.log, &store.contacts)?;
        Ok(store)
    }

    /// What the store holds in memory: memtables not yet written out as
    /// tables (each keyspace's is bounded, 10 MiB in all) and the block cache
    /// in use (at most 8 MiB). Both fill as the node runs, then stay.
    pub fn memory(&self) -> StoreMemory {
        StoreMemory {
            write_buffer: self.db.write_buffer_size(),
            cache: self.db.cache_size(),
        }
    }

    /// Makes everything written so far durable (fsync).
    pub fn persist(&self) -> Result<(), StoreError> {
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    /// Ends a bulk write: writes every keyspace's memtable out as a table
    /// and waits for it (then persists). fjall deletes a sealed journal only
    /// once every keyspace written in it has flushed past it, and the small
    /// keyspaces (clock, contacts, ...) never fill a memtable of their own:
    /// after a big ingest or import their few entries would pin tens of MB
    /// of journal, which every later open reads again (~0.08 s after 100k
    /// messages). The wait looks every millisecond; it is a few flushes of
    /// at most a memtable each, once per bulk write.
    pub fn settle(&self) -> Result<(), StoreError> {
        let keyspaces = [
            &self.log,
            &self.msgs,
            &self.clock,
            &self.remote,
            &self.wants,
            &self.contacts,
            &self.invites,
        ];
        for k in keyspaces {
            k.rotate_memtable()?;
        }
        while keyspaces.iter().any(|k| k.sealed_memtable_count() > 0) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // fjall drops a flushed memtable before it subtracts its size from
        // its count; wait (briefly, bounded) for the count too.
        for _ in 0..100 {
            if self.db.write_buffer_size() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.persist()
    }

    /// The latest message of `feed`, if any.
    pub fn head(&self, feed: &FeedId) -> Result<Option<FeedHead>, StoreError> {
        self.clock
            .get(feed.as_bytes())?
            .map(|v| {
                if v.len() != 36 {
                    return Err(corrupt("clock entry"));
                }
                Ok(FeedHead {
                    sequence: u32::from_be_bytes(arr(&v[..4], "clock seq")?),
                    id: MsgId(arr(&v[4..], "clock id")?),
                })
            })
            .transpose()
    }

    /// The vector clock: every feed held and its latest sequence.
    pub fn clock(&self) -> Result<Vec<(FeedId, u32)>, StoreError> {
        let mut out = Vec::new();
        for g in self.clock.iter() {
            let (k, v) = g.into_inner()?;
            if v.len() != 36 {
                return Err(corrupt("clock entry"));
            }
            out.push((
                FeedId(arr(&k, "clock key")?),
                u32::from_be_bytes(arr(&v[..4], "clock seq")?),
            ));
        }
        Ok(out)
    }

    /// A message by id.
    pub fn get(&self, id: &MsgId) -> Result<Option<StoredMsg>, StoreError> {
        let Some(loc) = self.msgs.get(id.as_bytes())? else {
            return Ok(None);
        };
        // The index may name a message past its feed's head, not promoted
        // yet (see [`incoming`]): not there yet.
        let (author, seq) = split_log_key(&loc, "message index entry")?;
        if self.head(&author)?.is_none_or(|h| seq > h.sequence) {
            return Ok(None);
        }
        let v = self
            .log
            .get(&*loc)?
            .ok_or_else(|| corrupt("message index points at nothing"))?;
        decode_log_value(&v).map(Some)
    }

    /// Message `seq` of `feed`, for `seq` at most the feed's head (past it
    /// lie only entries not promoted yet: see [`incoming`]).
    pub fn get_at(&self, feed: &FeedId, seq: u32) -> Result<Option<StoredMsg>, StoreError> {
        self.log
            .get(log_key(feed, seq))?
            .map(|v| decode_log_value(&v))
            .transpose()
    }

    /// Messages of `feed` from sequence `from` on, in order, streamed.
    pub fn feed(
        &self,
        feed: &FeedId,
        from: u32,
    ) -> impl Iterator<Item = Result<StoredMsg, StoreError>> + '_ {
        self.feed_json(feed, from)
            .map(|r| r.and_then(|j| decode_log_value(&j.0)))
    }

    /// The stored values (compact JSON bytes, as signed) of `feed` from
    /// sequence `from` on, without copying or decoding them: for streaming
    /// a feed out as it is (bundle export). Up to the feed's head: entries
    /// past it are not promoted yet (see [`incoming`]).
    pub fn feed_json(
        &self,
        feed: &FeedId,
        from: u32,
    ) -> impl Iterator<Item = Result<StoredJson, StoreError>> + '_ {
        let (last, failed) = match self.head(feed) {
            Ok(head) => (head.map_or(0, |h| h.sequence), None),
            Err(e) => (0, Some(e)),
        };
        let first = from.max(1);
        let range = (first <= last).then(|| {
            self.log
                .range(log_key(feed, first)..=log_key(feed, last))
                .map(|g| {
                    let (_, v) = g.into_inner()?;
                    if v.len() < 40 {
                        return Err(corrupt("short log entry"));
                    }
                    Ok(StoredJson(v))
                })
        });
        failed
            .map(Err)
            .into_iter()
            .chain(range.into_iter().flatten())
    }

    /// Verifies `msgs` against the stored heads and each other, and writes
    /// the valid ones in one atomic batch. Messages already held are
    /// skipped (and not verified again); a refused message does not stop the
    /// rest (later messages of its feed then fail their chain check).
    pub fn append(
        &self,
        msgs: Vec<Message>,
        verifier: &mut BatchVerifier,
    ) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        let (fresh, heads) = self.sort_out(msgs.into_iter().map(|m| (m, ())), &mut report)?;
        let (places, msgs): (Vec<usize>, Vec<Message>) =
            fresh.into_iter().map(|(i, m, ())| (i, m)).unzip();
        let checked = verifier.check(msgs).into_items();
        let fresh = places
            .into_iter()
            .zip(checked)
            .map(|(i, (m, verdict))| (i, m, verdict));
        self.write(fresh, heads, report)
    }

    /// Like [`Store::append`], for messages whose signatures were checked
    /// already (in parallel with other work, say).
    pub fn append_verified(&self, batch: Verified) -> Result<AppendReport, StoreError> {
        let mut report = AppendReport::default();
        let (fresh, heads) = self.sort_out(batch.into_items().into_iter(), &mut report)?;
        self.write(fresh.into_iter(), heads, report)
    }

    /// Step 1 of an append: the stored heads of the feeds involved, and the
    /// messages not held yet with their places in the input (each carrying
    /// `T` along). Held ones count as skipped, other ones at a held
    /// sequence as forks.
    #[allow(clippy::type_complexity)]
    fn sort_out<T>(
        &self,
        msgs: impl Iterator<Item = (Message, T)>,
        report: &mut AppendReport,
    ) -> Result<(Vec<(usize, Message, T)>, HashMap<FeedId, Option<FeedHead>>), StoreError> {
        let mut heads: HashMap<FeedId, Option<FeedHead>> = HashMap::new();
        let mut fresh = Vec::with_capacity(msgs.size_hint().0);
        for (i, (m, t)) in msgs.enumerate() {
            let head = match heads.get(&m.author()) {
                Some(h) => *h,
                None => {
                    let h = self.head(&m.author())?;
                    heads.insert(m.author(), h);
                    h
                }
            };
            match head {
                Some(h) if m.sequence() <= h.sequence => {
                    let held = self.get_at(&m.author(), m.sequence())?;
                    if held.is_some_and(|s| s.id == m.id()) {
                        report.skipped += 1;
                    } else {
                        report.reject(
                            i,
                            Invalid::Fork {
                                sequence: m.sequence().saturating_sub(1),
                            },
                        );
                    }
                }
                _ => fresh.push((i, m, t)),
            }
        }
        Ok((fresh, heads))
    }

    /// Step 2 of an append: the chain checks, in input order, and one write
    /// batch for the messages that pass them and their signature checks.
    fn write(
        &self,
        fresh: impl Iterator<Item = (usize, Message, Result<(), Invalid>)>,
        heads: HashMap<FeedId, Option<FeedHead>>,
        mut report: AppendReport,
    ) -> Result<AppendReport, StoreError> {
        let now = now_ms();
        let mut batch = self.db.batch();
        let mut written: HashMap<FeedId, FeedHead> = HashMap::new();
        let mut stances = contacts::Changes::default();
        for (i, m, verdict) in fresh {
            if let Err(e) = verdict {
                report.reject(i, e);
                continue;
            }
            let head = written
                .get(&m.author())
                .copied()
                .or(heads.get(&m.author()).copied().flatten());
            if let Err(e) = m.check_chain(head.as_ref()) {
                // Already held within this batch (a repeated line) counts as skipped.
                if head.is_some_and(|h| m.sequence() <= h.sequence) {
                    report.skipped += 1;
                } else {
                    report.reject(i, e);
                }
                continue;
            }
            let key = log_key(&m.author(), m.sequence());
            let mut v = Vec::with_capacity(1024);
            v.extend_from_slice(&now.to_be_bytes());
            v.extend_from_slice(m.id().as_bytes());
            m.value().write_compact(&mut v);
            batch.insert(&self.log, key, v);
            batch.insert(&self.msgs, *m.id().as_bytes(), key);
            stances.note(&self.contacts, &m.author(), m.content())?;
            written.insert(m.author(), m.head());
            report.added += 1;
        }
        for (author, head) in &written {
            batch.insert(&self.clock, *author.as_bytes(), head_value(head));
        }
        stances.write(&self.contacts, &mut batch);
        batch.commit()?;
        self.bound_write_buffer(APPEND_WRITE_BUFFER_CAP)?;
        Ok(report)
    }

    /// Re-verifies everything: each feed's chain from sequence 1, every
    /// signature and id, the id index, the clock and the contacts index.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        let mut report = CheckReport::default();
        let mut verifier = BatchVerifier::new();
        let mut clock: HashMap<FeedId, u32> = self.clock()?.into_iter().collect();
        // The feed being walked and its head so far.
        let mut current: Option<(FeedId, Option<FeedHead>)> = None;
        let mut pending: Vec<Message> = Vec::new();
        let mut stances = HashMap::new();
        let flush =
            |pending: &mut Vec<Message>, verifier: &mut BatchVerifier, r: &mut CheckReport| {
                if let Err((k, e)) = verifier.verify(pending) {
                    let m = &pending[k];
                    r.problem(format!("{} seq {}: {e}", m.author(), m.sequence()));
                }
                pending.clear();
            };
        // A finished feed's last sequence must be what the clock says.
        let finish = |feed: Option<(FeedId, Option<FeedHead>)>,
                      clock: &mut HashMap<FeedId, u32>,
                      r: &mut CheckReport| {
            if let Some((feed, head)) = feed {
                let held = head.map_or(0, |h| h.sequence);
                if clock.remove(&feed) != Some(held) {
                    r.problem(format!("{feed}: clock does not say sequence {held}"));
                }
            }
        };
        for g in self.log.iter() {
            let (k, v) = g.into_inner()?;
            let (author, seq) = split_log_key(&k, "log key")?;
            if current.as_ref().map(|c| c.0) != Some(author) {
                finish(current.take(), &mut clock, &mut report);
                report.feeds += 1;
            }
            let head = &mut current.get_or_insert((author, None)).1;
            let stored = decode_log_value(&v)?;
            report.messages += 1;
            let m = match stored.message() {
                Ok(m) => m,
                Err(e) => {
                    report.problem(format!("{author} seq {seq}: {e}"));
                    continue;
                }
            };
            if m.author() != author || m.sequence() != seq {
                report.problem(format!("{author} seq {seq}: stored under the wrong key"));
            }
            if m.id() != stored.id {
                report.problem(format!(
                    "{author} seq {seq}: stored id is not the message's id"
                ));
            }
            if let Err(e) = m.check_chain(head.as_ref()) {
                report.problem(format!("{author} seq {seq}: {e}"));
            }
            match self.msgs.get(m.id().as_bytes())? {
                Some(loc) if *loc == k[..] => {}
                _ => report.problem(format!("{author} seq {seq}: missing from the id index")),
            }
            *head = Some(m.head());
            contacts::replay(&mut stances, author, m.value());
            pending.push(m);
            if pending.len() >= 256 {
                flush(&mut pending, &mut verifier, &mut report);
            }
        }
        flush(&mut pending, &mut verifier, &mut report);
        finish(current.take(), &mut clock, &mut report);
        for (feed, seq) in clock {
            report.problem(format!(
                "{feed}: clock says sequence {seq} but no messages are stored"
            ));
        }
        let mut indexed = contacts::all(&self.contacts)?;
        for ((author, contact), s) in stances {
            if indexed.remove(&(author, contact)) != Some(s) {
                report.problem(format!(
                    "{author}: the contacts index is wrong about {contact}"
                ));
            }
        }
        for (author, contact) in indexed.into_keys() {
            report.problem(format!(
                "{author}: the contacts index names {contact}, but no message does"
            ));
        }
        Ok(report)
    }

    /// Records the clock a remote (a peer, a stick) last showed us.
    pub fn save_remote_clock(
        &self,
        name: &[u8],
        clock: impl IntoIterator<Item = (FeedId, u32)>,
    ) -> Result<(), StoreError> {
        let mut v = Vec::new();
        for (feed, seq) in clock {
            v.extend_from_slice(feed.as_bytes());
            v.extend_from_slice(&seq.to_be_bytes());
        }
        Ok(self.remote.insert(name, v)?)
    }

    /// The clock last recorded for a remote (empty if none).
    pub fn remote_clock(&self, name: &[u8]) -> Result<HashMap<FeedId, u32>, StoreError> {
        let Some(v) = self.remote.get(name)? else {
            return Ok(HashMap::new());
        };
        if v.len() % 36 != 0 {
            return Err(corrupt("remote clock entry"));
        }
        v.chunks_exact(36)
            .map(|c| {
                Ok((
                    FeedId(arr(&c[..32], "remote clock feed")?),
                    u32::from_be_bytes(arr(&c[32..], "remote clock seq")?),
                ))
            })
            .collect()
    }

    /// Whether a clock is recorded under `name`.
    pub fn has_remote_clock(&self, name: &[u8]) -> Result<bool, StoreError> {
        Ok(self.remote.contains_key(name)?)
    }

    /// The names of the recorded clocks that start with `prefix` (keys only).
    pub fn remote_names(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.remote
            .prefix(prefix)
            .map(|g| Ok(g.key()?.to_vec()))
            .collect()
    }

    /// Forgets the clock recorded under `name`.
    pub fn remove_remote_clock(&self, name: &[u8]) -> Result<(), StoreError> {
        Ok(self.remote.remove(name)?)
    }

    /// Records what we know of a stick (a small JSON document) under its id.
    pub fn save_stick_info(&self, id: &str, info: &[u8]) -> Result<(), StoreError> {
        Ok(self.remote.insert(format!("stickinfo:{id}"), info)?)
    }

    /// The web page's admin password hash (a PHC string), if one is set.
    pub fn web_password(&self) -> Result<Option<String>, StoreError> {
        match self.remote.get(WEB_PASSWORD_KEY)? {
            Some(v) => Ok(Some(
                String::from_utf8(v.to_vec()).map_err(|_| corrupt("web password hash"))?,
            )),
            None => Ok(None),
        }
    }

    /// Sets the web page's admin password hash (a PHC string), durably.
    pub fn set_web_password(&self, hash: &str) -> Result<(), StoreError> {
        self.remote.insert(WEB_PASSWORD_KEY, hash.as_bytes())?;
        self.persist()
    }

    /// The keeper's setting `name` (set at runtime, e.g. the carrying
    /// mode), if one is set.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .remote
            .get(format!("{SETTING_PREFIX}{name}"))?
            .map(|v| v.to_vec()))
    }

    /// Sets the keeper's setting `name` to `value` (a few bytes), durably.
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.remote
            .insert(format!("{SETTING_PREFIX}{name}"), value)?;
        self.persist()
    }

    /// Every stick's recorded info, by stick id.
    pub fn stick_infos(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.remote
            .prefix("stickinfo:")
            .map(|g| {
                let (k, v) = g.into_inner()?;
                let id = String::from_utf8_lossy(&k["stickinfo:".len()..]).into_owned();
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    /// Whether the bundle named `name` (its manifest's sha256, which pins
    /// its content) was verified in full here (see
    /// [`Store::remember_verified_bundles`]).
    pub fn bundle_verified(&self, name: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.remote.get(verified_key(name))?.is_some())
    }

    /// Remembers bundles verified in full (imported, checked, or written
    /// here) as seen at `now` (ms), keeping the [`MAX_VERIFIED_BUNDLES`]
    /// seen most recently.
    pub fn remember_verified_bundles(
        &self,
        names: impl IntoIterator<Item = [u8; 32]>,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for name in names {
            batch.insert(&self.remote, verified_key(&name), now.to_be_bytes());
        }
        batch.commit()?;
        let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
        for g in self.remote.prefix(VERIFIED_PREFIX) {
            let (k, v) = g.into_inner()?;
            let at = u64::from_be_bytes(arr(&v, "verified bundle time")?);
            seen.push((at, k.to_vec()));
        }
        if seen.len() > MAX_VERIFIED_BUNDLES {
            seen.sort_unstable();
            let mut batch = self.db.batch();
            for (_, k) in &seen[..seen.len() - MAX_VERIFIED_BUNDLES] {
                batch.remove(&self.remote, k.as_slice());
            }
            batch.commit()?;
        }
        Ok(())
    }

    /// Adds blobs to the wanted list.
    pub fn add_wants(&self, ids: &[BlobId]) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for id in ids {
            batch.insert(&self.wants, *id.as_bytes(), *b"");
        }
        Ok(batch.commit()?)
    }

    /// Removes a blob from the wanted list (it arrived, or is refused).
    pub fn remove_want(&self, id: &BlobId) -> Result<(), StoreError> {
        Ok(self.wants.remove(id.as_bytes())?)
    }

    /// The wanted blobs, at most `limit` of them.
    pub fn wants(&self, limit: usize) -> Result<Vec<BlobId>, StoreError> {
        self.wants
            .iter()
            .take(limit)
            .map(|g| {
                let (k, _) = g.into_inner()?;
                Ok(BlobId(arr(&k, "wants key")?))
            })
            .collect()
    }

    /// `feed`'s stance on each feed its contact messages name.
    pub fn contacts(&self, feed: &FeedId) -> Result<HashMap<FeedId, Stance>, StoreError> {
        contacts::of(&self.contacts, feed)
    }

    /// The invite whose keypair has public key `key`, if this node made it.
    pub fn invite(&self, key: &FeedId) -> Result<Option<invites::InviteRecord>, StoreError> {
        invites::get(&self.invites, key)
    }

    /// Every invite this node keeps, oldest first.
    pub fn invites(&self) -> Result<Vec<invites::InviteRecord>, StoreError> {
        invites::all(&self.invites)
    }

    /// Stores a new invite durably, dropping the oldest dead ones past
    /// [`invites::MAX_INVITES`] (dead at `now`, ms); `false` if all kept
    /// ones are live and there is no room.
    pub fn add_invite(&self, record: &invites::InviteRecord, now: f64) -> Result<bool, StoreError> {
        let added = invites::add(&self.invites, record, now)?.is_some();
        self.persist()?;
        Ok(added)
    }

    /// Writes a changed invite (a use counted, a revocation), durably.
    pub fn put_invite(&self, record: &invites::InviteRecord) -> Result<(), StoreError> {
        invites::put(&self.invites, record)?;
        self.persist()
    }

    /// The latest stored message of `feed`, if any.
    pub fn latest(&self, feed: &FeedId) -> Result<Option<StoredMsg>, StoreError> {
        match self.head(feed)? {
            Some(head) => self
                .get_at(feed, head.sequence)?
                .ok_or_else(|| corrupt("clock points past the log"))
                .map(Some),
            None => Ok(None),
        }
    }
}

/// Test messages: `n` chained posts `{"type":"post","n":i}` by `keys`.
#[cfg(test)]
pub(crate) fn posts(keys: &crate::feed::Keypair, n: u32) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for i in 0..n {
        let content =
            crate::feed::Value::parse(format!("{{\"type\":\"post\",\"n\":{i}}}").as_bytes())
                .expect("json");
        let prev = out.last().map(Message::head);
        out.push(
            Message::create(keys, prev.as_ref(), 1000.0 + f64::from(i), content, None)
                .expect("create"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, Value};

    fn chain(keys: &Keypair, n: u32) -> Vec<Message> {
        let mut head = None;
        (1..=n)
            .map(|i| {
                let c = Value::parse(format!(r#"{{"type":"post","text":"m{i}"}}"#).as_bytes())
                    .expect("json");
                let m =
                    Message::create(keys, head.as_ref(), f64::from(i), c, None).expect("create");
                head = Some(m.head());
                m
            })
            .collect()
    }

    #[test]
    fn append_read_back_and_skip() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys = Keypair::from_seed(&[5; 32]);
        let msgs = chain(&keys, 20);
        let mut v = BatchVerifier::new();
        let r = store.append(msgs[..10].to_vec(), &mut v).expect("append");
        assert_eq!((r.added, r.skipped, r.rejected), (10, 0, 0));
        let r = store.append(msgs.clone(), &mut v).expect("append");
        assert_eq!((r.added, r.skipped, r.rejected), (10, 10, 0));
        assert_eq!(store.clock().expect("clock"), vec![(keys.id(), 20)]);
        let back: Vec<StoredMsg> = store
            .feed(&keys.id(), 5)
            .collect::<Result<_, _>>()
            .expect("feed");
        assert_eq!(back.len(), 16);
        assert_eq!(back[0].json, msgs[4].value().to_compact());
        let raw: Vec<StoredJson> = store
            .feed_json(&keys.id(), 5)
            .collect::<Result<_, _>>()
            .expect("feed_json");
        assert_eq!(raw.len(), 16);
        for (r, b) in raw.iter().zip(&back) {
            assert_eq!(r.bytes(), b.json.as_bytes());
        }
        assert_eq!(
            store.get(&msgs[7].id()).expect("get").map(|s| s.id),
            Some(msgs[7].id())
        );
        let report = store.check().expect("check");
        assert_eq!(
            (report.feeds, report.messages, report.problems.len()),
            (1, 20, 0)
        );
    }

    #[test]
    fn settle_leaves_nothing_in_memtables_and_loses_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = Keypair::from_seed(&[8; 32]);
        let msgs = chain(&keys, 30);
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .append(msgs.clone(), &mut BatchVerifier::new())
                .expect("append");
            assert!(store.db.write_buffer_size() > 0);
            store.settle().expect("settle");
            assert_eq!(store.db.write_buffer_size(), 0, "every memtable flushed");
            // Settling again, with nothing written, is a no-op.
            store.settle().expect("settle again");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.clock().expect("clock"), vec![(keys.id(), 30)]);
        assert_eq!(store.feed(&keys.id(), 1).count(), 30);
        assert!(store.check().expect("check").problems.is_empty());
    }

    #[test]
    fn refuses_gaps_forks_and_bad_signatures() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys = Keypair::from_seed(&[6; 32]);
        let msgs = chain(&keys, 6);
        let mut v = BatchVerifier::new();
        // A gap: 1, 2, then 4.
        let r = store
            .append(
                vec![msgs[0].clone(), msgs[1].clone(), msgs[3].clone()],
                &mut v,
            )
            .expect("append");
        assert_eq!((r.added, r.rejected), (2, 1));
        assert_eq!(
            r.first_rejection,
            Some((
                2,
                Invalid::Sequencing {
                    expected: 3,
                    got: 4
                }
            ))
        );
        // A fork at sequence 2.
        let other = Message::create(
            &keys,
            Some(&msgs[0].head()),
            9.0,
            Value::parse(br#"{"type":"fork"}"#).expect("json"),
            None,
        )
        .expect("create");
        let r = store.append(vec![other], &mut v).expect("append");
        assert_eq!(r.rejected, 1);
        // A bad signature (same author, swapped content) in the middle of a run:
        // the messages before it stay, the ones after it fail their chain.
        let forged = {
            let mut value = msgs[3].value().to_compact();
            value = value.replace("\"m4\"", "\"m5\"");
            Message::parse(value.as_bytes(), None).expect("shape")
        };
        let r = store
            .append(vec![msgs[2].clone(), forged, msgs[4].clone()], &mut v)
            .expect("append");
        assert_eq!((r.added, r.rejected), (1, 2));
        assert_eq!(r.first_rejection, Some((1, Invalid::BadSignature)));
        assert_eq!(
            store.head(&keys.id()).expect("head").map(|h| h.sequence),
            Some(3)
        );
        assert!(store.check().expect("check").problems.is_empty());
    }

    #[test]
    fn check_finds_damage() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys = Keypair::from_seed(&[7; 32]);
        let msgs = chain(&keys, 5);
        store
            .append(msgs.clone(), &mut BatchVerifier::new())
            .expect("append");
        assert!(store.check().expect("check").problems.is_empty());
        // A clock that overstates, a lost index entry, a clock for nothing.
        let wrong = FeedHead {
            id: msgs[4].id(),
            sequence: 7,
        };
        store
            .clock
            .insert(keys.id().as_bytes(), head_value(&wrong))
            .expect("insert");
        store.msgs.remove(msgs[2].id().as_bytes()).expect("remove");
        let ghost = Keypair::from_seed(&[8; 32]).id();
        store
            .clock
            .insert(ghost.as_bytes(), head_value(&wrong))
            .expect("insert");
        // A message stored under another sequence than its own.
        let mut v = store
            .log
            .get(log_key(&keys.id(), 4))
            .expect("get")
            .expect("held")
            .to_vec();
        let key = log_key(&keys.id(), 6);
        store
            .log
            .insert(key, std::mem::take(&mut v))
            .expect("insert");
        let report = store.check().expect("check");
        let all = report.problems.join("\n");
        assert!(all.contains("clock does not say sequence 4"), "{all}");
        assert!(all.contains("seq 3: missing from the id index"), "{all}");
        assert!(
            all.contains("clock says sequence 7 but no messages are stored"),
            "{all}"
        );
        assert!(all.contains("seq 6: stored under the wrong key"), "{all}");
        assert_eq!((report.feeds, report.messages), (1, 6));
    }

    #[test]
    fn contacts_index_follows_appends_and_is_rebuilt_for_old_stores() {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = Keypair::from_seed(&[9; 32]);
        let (a, b) = (FeedId([1; 32]), FeedId([2; 32]));
        let contents = [
            format!(r#"{{"type":"contact","contact":"{a}","following":true}}"#),
            format!(r#"{{"type":"contact","contact":"{b}","following":true}}"#),
            r#"{"type":"post","text":"hi"}"#.to_owned(),
            // Sets only `blocking`: `following` stays as it was.
            format!(r#"{{"type":"contact","contact":"{a}","blocking":true}}"#),
            format!(r#"{{"type":"contact","contact":"{b}","following":false}}"#),
        ];
        let mut head = None;
        let msgs: Vec<Message> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = Value::parse(c.as_bytes()).expect("json");
                let m =
                    Message::create(&keys, head.as_ref(), i as f64 + 1.0, c, None).expect("create");
                head = Some(m.head());
                m
            })
            .collect();
        let want = HashMap::from([
            (
                a,
                Stance {
                    following: true,
                    blocking: true,
                },
            ),
            (b, Stance::default()),
        ]);
        {
            let store = Store::open(dir.path()).expect("open");
            let mut v = BatchVerifier::new();
            // Across two appends, the second starting from what the first stored.
            store.append(msgs[..2].to_vec(), &mut v).expect("append");
            assert!(store.contacts(&keys.id()).expect("contacts")[&b].following);
            store.append(msgs[2..].to_vec(), &mut v).expect("append");
            assert_eq!(store.contacts(&keys.id()).expect("contacts"), want);
            assert!(store.contacts(&a).expect("contacts").is_empty());
            assert!(store.check().expect("check").problems.is_empty());

            // A wrong entry and a stray one are found by the check.
            let wrong = Stance {
                following: false,
                blocking: true,
            };
            store
                .contacts
                .insert(
                    contacts_key(&keys.id(), &a),
                    [u8::from(wrong.blocking) << 1],
                )
                .expect("insert");
            store
                .contacts
                .insert(contacts_key(&a, &b), [1])
                .expect("insert");
            let all = store.check().expect("check").problems.join("\n");
            assert!(all.contains("the contacts index is wrong about"), "{all}");
            assert!(all.contains("names @"), "{all}");

            // An older store: no index at all.
            let keys_held: Vec<_> = store
                .contacts
                .iter()
                .map(|g| g.key().expect("key").to_vec())
                .collect();
            for k in keys_held {
                store.contacts.remove(k).expect("remove");
            }
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.contacts(&keys.id()).expect("contacts"), want);
        assert!(store.check().expect("check").problems.is_empty());
    }

    /// The contacts index key, as the index module makes it.
    fn contacts_key(author: &FeedId, contact: &FeedId) -> Vec<u8> {
        [author.as_bytes().as_slice(), contact.as_bytes()].concat()
    }

    #[test]
    fn kvt_shape() {
        let s = StoredMsg {
            id: MsgId([0; 32]),
            received: 1.5,
            json: "{}".into(),
        };
        assert_eq!(
            s.to_kvt_json(),
            r#"{"key":"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256","value":{},"timestamp":1.5}"#
        );
    }

    #[test]
    fn verified_bundle_names_are_bounded_and_the_oldest_go_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let name = |i: usize| {
            let mut n = [0u8; 32];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            n
        };
        // Seen in three visits: the oldest first.
        store
            .remember_verified_bundles((0..10).map(name), 1)
            .expect("remember");
        store
            .remember_verified_bundles((10..MAX_VERIFIED_BUNDLES).map(name), 2)
            .expect("remember");
        // Seen again later: kept over the ones not seen again.
        store
            .remember_verified_bundles([name(3)], 3)
            .expect("remember");
        store
            .remember_verified_bundles(
                (MAX_VERIFIED_BUNDLES..MAX_VERIFIED_BUNDLES + 5).map(name),
                4,
            )
            .expect("remember");
        let held: Vec<bool> = (0..10)
            .map(|i| store.bundle_verified(&name(i)).expect("get"))
            .collect();
        assert_eq!(
            held,
            [false, false, false, true, false, false, true, true, true, true]
        );
        assert!(store
            .bundle_verified(&name(MAX_VERIFIED_BUNDLES + 4))
            .expect("get"));
        assert_eq!(
            store.remote.prefix(VERIFIED_PREFIX).count(),
            MAX_VERIFIED_BUNDLES
        );
    }
}
