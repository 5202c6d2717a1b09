//! One link's EBT replication rules, sans-IO: notes in, decisions out.
//!
//! [`EbtSession`] holds what one `ebt.replicate` stream knows: the notes we
//! told the peer, the peer's latest sequence per feed, the feeds the peer
//! asked us for (with the next sequence to send), and the messages received
//! but not yet stored. A driver feeds it what the peer sent
//! ([`EbtSession::receive`]), our appends ([`EbtSession::on_append`]),
//! changes of the replicate set ([`EbtSession::on_replicate_change`]), what
//! it stored and sent, and the time (for [`EbtSession::clock_to_save`]); it
//! performs what [`EbtSession::status`] asks: send [`EbtSession::take_notes`]
//! as one clock, stream [`EbtSession::take_streams`] from the store. It asks
//! [`EbtSession::caught_up`] to know when a one-shot sync is done.
//!
//! The session reads our side through [`Local`] (what we replicate, block
//! and hold) and has no clock of its own. A malformed item from the peer is
//! a sticky [`ProtocolError`]: nothing more is decided, and the driver only
//! has to close the stream.
//!
//! Request skipping: the opening clock leaves out feeds where the peer's
//! stored clock matches ours; when the peer or an append mentions such a
//! feed later, we tell our note for it then. A feed the peer declined (-1)
//! is told again whenever we get ahead of our last note for it, so a peer
//! that starts replicating it later in the link knows there is more to ask
//! for.
//!
//! What a peer's notes can cost is bounded: notes for feeds we neither
//! replicate nor hold are followed for at most [`FOREIGN_NOTES`] feeds per
//! link and ignored beyond, and the clock to store keeps only feeds we
//! replicate, at most [`CLOCK_ENTRIES`] of them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::feed::json::{JsonError, Value};
use crate::feed::FeedId;
use crate::net::ebt::{is_message, parse_clock, EbtError, Note};
use crate::net::rpc::BodyType;
use crate::store::StoreError;

/// Notes per link followed for feeds we neither replicate nor hold.
pub const FOREIGN_NOTES: usize = 64;
/// Most entries of one peer's stored clock (36 bytes each: 720,000 bytes).
pub const CLOCK_ENTRIES: usize = 20_000;
/// How often the peer's clock is saved while a link runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Our side, as the session sees it.
pub trait Local {
    /// Whether we replicate `feed`.
    fn replicates(&self, feed: &FeedId) -> bool;
    /// Whether we block `feed` (never replicated, never served).
    fn blocks(&self, feed: &FeedId) -> bool;
    /// The latest sequence we hold of `feed` (0 for none).
    fn seq(&self, feed: &FeedId) -> Result<u32, StoreError>;
}

/// What the peer got wrong. Sticky: a session that failed decides nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// An item is not JSON.
    #[error("ebt item is not JSON: {0}")]
    NotJson(JsonError),
    /// An item is neither a message nor a clock object.
    #[error("ebt item is not an object")]
    NotObject,
    /// A clock has a malformed entry.
    #[error(transparent)]
    Clock(#[from] EbtError),
}

/// Why the session stopped: the peer's fault or our store's.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer broke the protocol.
    #[error(transparent)]
    Peer(#[from] ProtocolError),
    /// Reading our side failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a received item was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A message: the driver has it parsed, checked and stored, then calls
    /// [`EbtSession::on_checked`] and [`EbtSession::on_stored`].
    Message,
    /// A clock, handled; `ignored` notes in it were beyond [`FOREIGN_NOTES`].
    Clock {
        /// Notes ignored.
        ignored: usize,
    },
}

/// What the session needs from its driver next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Notes are queued: send [`EbtSession::take_notes`] as one clock.
    Send,
    /// Feeds have messages to stream: take [`EbtSession::take_streams`].
    Stream,
    /// Nothing to do until the next input.
    Wait,
    /// The peer broke the protocol; close the stream.
    Failed(ProtocolError),
}

/// The opening clock of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// The notes to send as our first clock (possibly none: still sent).
    pub notes: Vec<(FeedId, Note)>,
    /// Feeds left out because the peer's stored clock matches ours.
    pub skipped: usize,
}

/// One link's EBT state. See the module docs.
#[derive(Debug)]
pub struct EbtSession {
    /// Our notes as told to the peer.
    told: HashMap<FeedId, Note>,
    /// The peer's latest sequence per feed (from notes, messages in either direction).
    theirs: HashMap<FeedId, u32>,
    /// What the peer itself showed it holds: its notes and the messages it sent
    /// us. This, not `theirs`, is stored for the next link: a message we sent
    /// may never have been stored by the peer (its disk was full, it was
    /// killed), and a stored clock that claims it was would make both sides
    /// skip the feed next time, so it would never converge.
    claimed: HashMap<FeedId, u32>,
    /// Feeds the peer wants from us, with the next sequence to send.
    sending: HashMap<FeedId, u32>,
    /// Feeds of `sending` that may have messages to stream.
    dirty: HashSet<FeedId>,
    /// Feeds whose latest note from the peer was -1 (it does not replicate them).
    declined: HashSet<FeedId>,
    /// Notes to send.
    notes: Vec<(FeedId, Note)>,
    /// Whether the peer's opening clock arrived.
    opened: bool,
    /// Whether `claimed` changed since it was last taken to be stored.
    unsaved: bool,
    /// Messages received and not yet stored (or refused).
    in_flight: usize,
    /// Feeds received up to the peer's latest, with that sequence: once
    /// stored, our note for them is told again, so the peer stores a clock
    /// of ours it heard from us (see `claimed`) and skips them next time.
    to_confirm: HashMap<FeedId, u32>,
    /// Feeds we neither replicate nor hold whose notes were followed.
    foreign: usize,
    /// Notes ignored because [`FOREIGN_NOTES`] was reached.
    ignored: usize,
    /// When the clock was last taken to be stored.
    last_save: Instant,
    /// The peer's protocol error, once there is one.
    error: Option<ProtocolError>,
}

impl EbtSession {
    /// A session starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            told: HashMap::new(),
            theirs: HashMap::new(),
            claimed: HashMap::new(),
            sending: HashMap::new(),
            dirty: HashSet::new(),
            declined: HashSet::new(),
            notes: Vec::new(),
            opened: false,
            unsaved: false,
            in_flight: 0,
            to_confirm: HashMap::new(),
            foreign: 0,
            ignored: 0,
            last_save: now,
            error: None,
        }
    }

    /// Our opening clock: a note for each feed of `replicated`, except where
    /// `stored` (the peer's clock from its last link) matches ours.
    pub fn open<'a>(
        &mut self,
        local: &impl Local,
        replicated: impl IntoIterator<Item = &'a FeedId>,
        stored: &HashMap<FeedId, u32>,
    ) -> Result<Opening, StoreError> {
        let mut skipped = 0;
        for feed in replicated {
            let ours = local.seq(feed)?;
            if let Some(theirs) = stored.get(feed) {
                self.theirs.insert(*feed, *theirs);
                self.claimed.insert(*feed, *theirs);
                if *theirs == ours {
                    skipped += 1;
                    continue;
                }
            }
            self.tell(*feed, ours);
        }
        Ok(Opening {
            notes: std::mem::take(&mut self.notes),
            skipped,
        })
    }

    /// What to do next.
    pub fn status(&self) -> Status {
        if let Some(e) = &self.error {
            return Status::Failed(e.clone());
        }
        if !self.notes.is_empty() {
            return Status::Send;
        }
        if !self.dirty.is_empty() {
            return Status::Stream;
        }
        Status::Wait
    }

    /// The peer's protocol error, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_ref()
    }

    /// Notes to send as one clock, if any.
    pub fn take_notes(&mut self) -> Option<Vec<(FeedId, Note)>> {
        (!self.notes.is_empty()).then(|| std::mem::take(&mut self.notes))
    }

    /// One item from the peer: a message (left to the driver) or a clock
    /// (handled here).
    pub fn receive(
        &mut self,
        local: &impl Local,
        body_type: BodyType,
        bytes: &[u8],
    ) -> Result<Received, SessionError> {
        if let Some(e) = &self.error {
            return Err(e.clone().into());
        }
        // Every classic message value starts with `previous`; a clock never does.
        if bytes.starts_with(b"{\"previous\":") {
            self.in_flight += 1;
            return Ok(Received::Message);
        }
        let parsed = match body_type {
            BodyType::Utf8 => Err(ProtocolError::NotObject),
            _ => Value::parse(bytes).map_err(ProtocolError::NotJson),
        };
        let notes = parsed.and_then(|v| {
            let o = v.as_object().ok_or(ProtocolError::NotObject)?;
            if is_message(o) {
                return Ok(None);
            }
            Ok(Some(parse_clock(o)?))
        });
        match notes {
            Ok(None) => {
                self.in_flight += 1;
                Ok(Received::Message)
            }
            Ok(Some(notes)) => {
                let ignored = self.on_notes(local, notes)?;
                Ok(Received::Clock { ignored })
            }
            Err(e) => {
                self.fail(e.clone());
                Err(e.into())
            }
        }
    }

    /// The peer's clock, parsed: follow each note we take (see
    /// [`FOREIGN_NOTES`]), start or stop streaming what it asks for, and tell
    /// our note for replicated feeds not told yet. Returns the notes ignored.
    pub fn on_notes(
        &mut self,
        local: &impl Local,
        notes: Vec<(FeedId, Note)>,
    ) -> Result<usize, StoreError> {
        if self.error.is_some() {
            return Ok(0);
        }
        self.opened = true;
        let ignored_before = self.ignored;
        for (feed, note) in notes {
            if !self.follows(local, &feed)? {
                continue;
            }
            match note {
                Note::Skip => {
                    self.sending.remove(&feed);
                    self.declined.insert(feed);
                    // Appends since our note, made before the decline came,
                    // are told now: the peer asks later only if it knows we
                    // hold more than it does.
                    let ours = local.seq(&feed)?;
                    self.retell(feed, ours);
                }
                Note::Have { seq, receive } => {
                    self.declined.remove(&feed);
                    self.claim(feed, seq);
                    if receive && !local.blocks(&feed) {
                        self.sending.insert(feed, seq.saturating_add(1));
                        self.dirty.insert(feed);
                    } else {
                        self.sending.remove(&feed);
                    }
                }
            }
            if local.replicates(&feed) && !self.told.contains_key(&feed) {
                let ours = local.seq(&feed)?;
                self.tell(feed, ours);
            }
        }
        Ok(self.ignored - ignored_before)
    }

    /// We appended `feed` up to `seq`: stream it if the peer wants it, or
    /// tell our note if it is replicated and not told yet (skipped at the
    /// start), or told lower to a peer that declined it (see
    /// [`Self::retell`]), so the peer can ask for it.
    pub fn on_append(&mut self, local: &impl Local, feed: FeedId, seq: u32) {
        if self.error.is_some() {
            return;
        }
        if self.sending.contains_key(&feed) {
            self.dirty.insert(feed);
        } else if local.replicates(&feed) {
            if self.told.contains_key(&feed) {
                self.retell(feed, seq);
            } else {
                self.tell(feed, seq);
            }
        }
    }

    /// Some appends were missed: look at every feed the peer wants, tell
    /// our note for each replicated feed not told yet, and again for each
    /// the peer declined that we hold more of now.
    pub fn on_lagged<'a>(
        &mut self,
        local: &impl Local,
        replicated: impl IntoIterator<Item = &'a FeedId>,
    ) -> Result<(), StoreError> {
        if self.error.is_some() {
            return Ok(());
        }
        self.dirty.extend(self.sending.keys().copied());
        let declined: Vec<FeedId> = self
            .declined
            .iter()
            .filter(|f| local.replicates(f))
            .copied()
            .collect();
        for feed in declined {
            let ours = local.seq(&feed)?;
            self.retell(feed, ours);
        }
        self.on_replicate_change(local, replicated)
    }

    /// The replicate set changed: tell our note for each replicated feed not told yet.
    pub fn on_replicate_change<'a>(
        &mut self,
        local: &impl Local,
        replicated: impl IntoIterator<Item = &'a FeedId>,
    ) -> Result<(), StoreError> {
        if self.error.is_some() {
            return Ok(());
        }
        for feed in replicated {
            if !self.told.contains_key(feed) {
                let ours = local.seq(feed)?;
                self.tell(*feed, ours);
            }
        }
        Ok(())
    }

    /// Received messages passed their checks and are about to be stored:
    /// the peer holds them, so they are never sent back to it.
    pub fn on_checked(&mut self, messages: impl IntoIterator<Item = (FeedId, u32)>) {
        for (feed, seq) in messages {
            self.claim(feed, seq);
            if let Some(next) = self.sending.get_mut(&feed) {
                *next = (*next).max(seq.saturating_add(1));
            }
            if self.theirs.get(&feed).is_some_and(|t| *t <= seq) {
                self.to_confirm.insert(feed, seq);
            }
        }
    }

    /// `n` received messages were stored or refused. Once none is left, our
    /// note is told again for each feed that came in up to the peer's latest
    /// and is held now ([`take_notes`](Self::take_notes) gives it).
    pub fn on_stored(&mut self, local: &impl Local, n: usize) -> Result<(), StoreError> {
        self.in_flight = self.in_flight.saturating_sub(n);
        if self.in_flight > 0 || self.error.is_some() {
            return Ok(());
        }
        for (feed, seq) in std::mem::take(&mut self.to_confirm) {
            // Only what was really stored: a full disk refuses a batch.
            let ours = local.seq(&feed)?;
            if ours < seq || self.theirs.get(&feed).is_some_and(|t| *t > ours) {
                continue;
            }
            self.tell_newer(feed, ours);
        }
        Ok(())
    }

    /// The feeds ready to stream, each with the next sequence to send: those
    /// we hold that sequence of (and do not block). Each is taken once until
    /// it is marked again; one we hold nothing new of is marked again by its
    /// next append, so it is not read from the store until then.
    pub fn take_streams(&mut self, local: &impl Local) -> Vec<(FeedId, u32)> {
        if self.error.is_some() {
            self.dirty.clear();
            return Vec::new();
        }
        let dirty: Vec<FeedId> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .filter(|f| !local.blocks(f))
            .filter_map(|f| self.sending.get(&f).map(|n| (f, *n)))
            // A store error leaves the feed in: reading it reports the error.
            .filter(|(f, next)| local.seq(f).map_or(true, |held| held >= *next))
            .collect()
    }

    /// We sent `feed` up to `last`; whether to go on streaming it (the peer
    /// still wants it).
    pub fn on_sent(&mut self, feed: FeedId, last: u32) -> bool {
        self.saw(feed, last);
        let next = last.saturating_add(1);
        match self.sending.get_mut(&feed) {
            Some(s) => {
                if *s < next {
                    *s = next;
                }
                true
            }
            None => false,
        }
    }

    /// Whether both sides hold each other's clocks: the peer's opening clock
    /// arrived, no message received is still unstored, we hold everything the
    /// peer said it has of the feeds we asked for, and we sent everything it
    /// asked for. A failed session is never caught up.
    pub fn caught_up(&self, local: &impl Local) -> bool {
        if self.error.is_some()
            || !self.opened
            || !self.dirty.is_empty()
            || self.in_flight > 0
            || !self.notes.is_empty()
        {
            return false;
        }
        let ours = |f: &FeedId| local.seq(f).unwrap_or(0);
        let behind_in = self.told.iter().any(|(f, note)| {
            matches!(note, Note::Have { receive: true, .. })
                && self.theirs.get(f).copied().unwrap_or(0) > ours(f)
        });
        let behind_out = self
            .sending
            .iter()
            .any(|(f, next)| *next <= ours(f) && !local.blocks(f));
        !behind_in && !behind_out
    }

    /// The peer's clock to store, if it changed and [`SAVE_EVERY`] passed
    /// since the last time it was taken.
    pub fn clock_to_save(
        &mut self,
        now: Instant,
        local: &impl Local,
    ) -> Option<Vec<(FeedId, u32)>> {
        if now.saturating_duration_since(self.last_save) <= SAVE_EVERY {
            return None;
        }
        self.last_save = now;
        self.take_unsaved(local)
    }

    /// The entries of the peer's clock worth storing: feeds we replicate, at
    /// most [`CLOCK_ENTRIES`]; `None` if nothing changed since the last call.
    pub fn take_unsaved(&mut self, local: &impl Local) -> Option<Vec<(FeedId, u32)>> {
        self.unsaved.then(|| {
            self.unsaved = false;
            self.claimed
                .iter()
                .filter(|(f, _)| local.replicates(f))
                .take(CLOCK_ENTRIES)
                .map(|(f, s)| (*f, *s))
                .collect()
        })
    }

    /// Tells the peer our note for `feed` (we hold `seq`, send us the rest),
    /// unless it was told already on this link.
    fn tell(&mut self, feed: FeedId, seq: u32) {
        if self.told.contains_key(&feed) {
            return;
        }
        let note = Note::Have { seq, receive: true };
        self.told.insert(feed, note);
        self.notes.push((feed, note));
    }

    /// Tells the peer our note for `feed` again, now that we hold `seq`, if
    /// the peer declined the feed (-1) and we told it lower. A peer that
    /// declined a feed (it did not replicate it then) and replicates it later
    /// asks for it only if it knows we hold more than it does (ssb-ebt
    /// compares our last note with its own sequence), so we tell it when we
    /// get ahead, as JS EBT peers tell each other.
    fn retell(&mut self, feed: FeedId, seq: u32) {
        if !self.declined.contains(&feed) {
            return;
        }
        if self.theirs.get(&feed).is_some_and(|t| *t >= seq) {
            return;
        }
        self.tell_newer(feed, seq);
    }

    /// Tells our note for `feed` again at `seq` if the note told on this link
    /// says less: one note per feed per clock (a queued one is replaced).
    fn tell_newer(&mut self, feed: FeedId, seq: u32) {
        let Some(Note::Have { seq: told, receive }) = self.told.get(&feed).copied() else {
            return;
        };
        if told >= seq {
            return;
        }
        let note = Note::Have { seq, receive };
        self.told.insert(feed, note);
        match self.notes.iter_mut().find(|(f, _)| *f == feed) {
            Some(queued) => queued.1 = note,
            None => self.notes.push((feed, note)),
        }
    }

    /// Whether to follow the peer's note for `feed`: always for feeds we
    /// replicate, hold or follow already; for the first [`FOREIGN_NOTES`]
    /// others; never beyond (counted in `ignored`).
    fn follows(&mut self, local: &impl Local, feed: &FeedId) -> Result<bool, StoreError> {
        if local.replicates(feed)
            || self.theirs.contains_key(feed)
            || self.sending.contains_key(feed)
            || local.seq(feed)? > 0
        {
            return Ok(true);
        }
        if self.foreign >= FOREIGN_NOTES {
            self.ignored += 1;
            return Ok(false);
        }
        self.foreign += 1;
        Ok(true)
    }

    /// The peer holds `feed` up to `seq`, as far as this link goes.
    fn saw(&mut self, feed: FeedId, seq: u32) {
        let e = self.theirs.entry(feed).or_insert(0);
        *e = (*e).max(seq);
    }

    /// The peer showed it holds `feed` up to `seq` (its note, or a message it sent).
    fn claim(&mut self, feed: FeedId, seq: u32) {
        self.saw(feed, seq);
        match self.claimed.get_mut(&feed) {
            Some(e) if *e >= seq => {}
            Some(e) => {
                *e = seq;
                self.unsaved = true;
            }
            None => {
                self.claimed.insert(feed, seq);
                self.unsaved = true;
            }
        }
    }

    fn fail(&mut self, e: ProtocolError) {
        self.notes.clear();
        self.dirty.clear();
        self.error = Some(e);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn feed(n: u32) -> FeedId {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        FeedId(k)
    }

    fn have(seq: u32) -> Note {
        Note::Have { seq, receive: true }
    }

    /// Our side: what we replicate, block and hold.
    #[derive(Default)]
    struct Ours {
        replicated: HashSet<FeedId>,
        blocked: HashSet<FeedId>,
        held: HashMap<FeedId, u32>,
    }

    impl Ours {
        fn replicating(feeds: &[(u32, u32)]) -> Self {
            let mut o = Ours::default();
            for (n, seq) in feeds {
                o.replicated.insert(feed(*n));
                o.held.insert(feed(*n), *seq);
            }
            o
        }

        fn feeds(&self) -> Vec<FeedId> {
            let mut v: Vec<FeedId> = self.replicated.iter().copied().collect();
            v.sort();
            v
        }
    }

    impl Local for Ours {
        fn replicates(&self, feed: &FeedId) -> bool {
            self.replicated.contains(feed)
        }
        fn blocks(&self, feed: &FeedId) -> bool {
            self.blocked.contains(feed)
        }
        fn seq(&self, feed: &FeedId) -> Result<u32, StoreError> {
            Ok(self.held.get(feed).copied().unwrap_or(0))
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    /// A session that sent its opening clock (nothing stored of the peer).
    fn opened(ours: &Ours) -> (EbtSession, Opening) {
        let mut s = EbtSession::new(t0());
        let opening = s.open(ours, &ours.feeds(), &HashMap::new()).unwrap();
        (s, opening)
    }

    fn sorted(mut v: Vec<(FeedId, Note)>) -> Vec<(FeedId, Note)> {
        v.sort_by_key(|(f, _)| *f);
        v
    }

    fn clock(notes: &[(u32, Note)]) -> Vec<u8> {
        let notes: Vec<(FeedId, Note)> = notes.iter().map(|(n, note)| (feed(*n), *note)).collect();
        crate::net::ebt::clock_value(notes.iter().map(|(f, n)| (f, *n)))
            .to_compact()
            .into_bytes()
    }

    const MSG: &[u8] = br#"{"previous":null,"author":"@x","sequence":1}"#;

    #[test]
    fn a_fresh_link_tells_every_replicated_feed_and_waits_for_the_peer() {
        let ours = Ours::replicating(&[(1, 5), (2, 0)]);
        let (mut s, opening) = opened(&ours);
        assert_eq!(
            sorted(opening.notes),
            vec![(feed(1), have(5)), (feed(2), have(0))]
        );
        assert_eq!(opening.skipped, 0);
        assert_eq!(s.status(), Status::Wait);
        // Not caught up before the peer's opening clock, even with nothing to move.
        assert!(!s.caught_up(&ours));
        let r = s
            .receive(&ours, BodyType::Json, &clock(&[(1, have(5)), (2, have(0))]))
            .unwrap();
        assert_eq!(r, Received::Clock { ignored: 0 });
        // Nothing more to tell: both feeds were told in the opening.
        assert_eq!(s.take_notes(), None);
        // The peer holds all we hold: nothing to stream.
        assert_eq!(s.take_streams(&ours), vec![]);
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn a_peer_ahead_is_waited_for_until_its_messages_are_stored() {
        let mut ours = Ours::replicating(&[(1, 3)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(7))]).unwrap();
        // The peer wants what follows its 7: we have nothing of that.
        assert_eq!(s.take_streams(&ours), vec![]);
        assert!(!s.caught_up(&ours), "the peer has 4..7 for us");
        for _ in 4..=7 {
            assert_eq!(
                s.receive(&ours, BodyType::Json, MSG).unwrap(),
                Received::Message
            );
        }
        s.on_checked((4..=7).map(|q| (feed(1), q)));
        ours.held.insert(feed(1), 7);
        assert!(!s.caught_up(&ours), "four messages are still being stored");
        s.on_stored(&ours, 4).unwrap();
        assert!(!s.caught_up(&ours), "our confirming note is still to send");
        // Stored up to the peer's latest: we tell so, and the peer stores it.
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(7))]));
        assert!(s.caught_up(&ours));
        // What came from the peer is never streamed back to it.
        assert_eq!(s.take_streams(&ours), vec![]);
    }

    #[test]
    fn a_peer_behind_is_streamed_to_from_its_next_sequence() {
        let ours = Ours::replicating(&[(1, 5)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(2))]).unwrap();
        assert_eq!(s.status(), Status::Stream);
        assert_eq!(s.take_streams(&ours), vec![(feed(1), 3)]);
        // Taken once until marked again.
        assert_eq!(s.take_streams(&ours), vec![]);
        assert_eq!(s.status(), Status::Wait);
        assert!(!s.caught_up(&ours), "3..5 are not sent yet");
        assert!(s.on_sent(feed(1), 4));
        assert!(!s.caught_up(&ours));
        assert!(s.on_sent(feed(1), 5));
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn a_feed_with_nothing_new_for_the_peer_is_streamed_from_its_next_append() {
        let mut ours = Ours::replicating(&[(1, 5), (2, 5)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5)), (feed(2), have(3))])
            .unwrap();
        // Only feed 2 has something for the peer: feed 1 is not read.
        assert_eq!(s.take_streams(&ours), vec![(feed(2), 4)]);
        assert!(s.on_sent(feed(2), 5));
        // Appends the session was not told of do not mark a feed.
        ours.held.insert(feed(1), 6);
        assert_eq!(s.take_streams(&ours), vec![]);
        // Its next append does, from where the peer is.
        s.on_append(&ours, feed(1), 6);
        assert_eq!(s.take_streams(&ours), vec![(feed(1), 6)]);
        // An append marks it; taken once we hold what it asks for.
        s.on_append(&ours, feed(2), 6);
        ours.held.insert(feed(2), 6);
        assert_eq!(s.take_streams(&ours), vec![(feed(2), 6)]);
    }

    #[test]
    fn a_peer_level_with_us_is_caught_up_at_once() {
        let ours = Ours::replicating(&[(1, 5), (2, 9)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5)), (feed(2), have(9))])
            .unwrap();
        s.take_streams(&ours);
        assert!(s.caught_up(&ours));
        assert_eq!(s.take_notes(), None);
    }

    #[test]
    fn a_peer_that_asks_for_nothing_or_stops_is_not_streamed_to() {
        let ours = Ours::replicating(&[(1, 5), (2, 5)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(
            &ours,
            vec![
                (
                    feed(1),
                    Note::Have {
                        seq: 1,
                        receive: false,
                    },
                ),
                (feed(2), have(1)),
            ],
        )
        .unwrap();
        assert_eq!(s.take_streams(&ours), vec![(feed(2), 2)]);
        assert!(s.on_sent(feed(2), 3));
        // The peer says -1 for feed 2 mid-stream: the driver stops.
        s.on_notes(&ours, vec![(feed(2), Note::Skip)]).unwrap();
        assert!(!s.on_sent(feed(2), 5));
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn a_feed_we_block_is_never_streamed() {
        let mut ours = Ours::replicating(&[(1, 5)]);
        ours.blocked.insert(feed(9));
        ours.held.insert(feed(9), 4);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5)), (feed(9), have(0))])
            .unwrap();
        // Feed 9 is not taken though we hold what the peer asks for.
        assert_eq!(s.take_streams(&ours), vec![]);
        // We hold 1..4 of it and the peer asked: still caught up, nothing owed.
        assert!(s.caught_up(&ours));
        // An append to it does not mark it either, nor tell a note.
        s.on_append(&ours, feed(9), 5);
        assert_eq!(s.status(), Status::Wait);
        // A feed blocked after the peer asked is dropped when taken.
        s.on_notes(&ours, vec![(feed(1), have(2))]).unwrap();
        ours.blocked.insert(feed(1));
        assert_eq!(s.take_streams(&ours), vec![]);
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn notes_for_feeds_we_do_not_replicate_are_bounded() {
        let mut ours = Ours::replicating(&(0..10).map(|n| (n, 1)).collect::<Vec<_>>());
        ours.held.insert(feed(500_000), 3);
        let (mut s, _) = opened(&ours);
        let notes: Vec<(FeedId, Note)> = (0..300_000).map(|n| (feed(n), have(0))).collect();
        let ignored = s.on_notes(&ours, notes).unwrap();
        // The ten we replicate and FOREIGN_NOTES of the rest are followed.
        assert_eq!(ignored, 300_000 - 10 - FOREIGN_NOTES);
        assert_eq!(s.sending.len(), 10 + FOREIGN_NOTES);
        // Feeds we replicate, hold or follow already are always followed.
        let ignored = s
            .on_notes(
                &ours,
                vec![
                    (feed(3), have(0)),
                    (feed(500_000), have(1)),
                    (feed(20), have(0)),
                    (feed(299_999), have(0)),
                ],
            )
            .unwrap();
        assert_eq!(ignored, 1, "only the 299,999th is beyond the cap");
        assert_eq!(s.sending.get(&feed(500_000)), Some(&2));
        // No note is told for a feed we do not replicate.
        assert_eq!(s.take_notes(), None);
    }

    #[test]
    fn the_stored_clock_holds_only_feeds_we_replicate_up_to_a_cap() {
        let ours = Ours::replicating(
            &(0..(CLOCK_ENTRIES as u32 + 500))
                .map(|n| (n, 1))
                .collect::<Vec<_>>(),
        );
        let mut s = EbtSession::new(t0());
        let notes = (0..(CLOCK_ENTRIES as u32 + 50_000))
            .map(|n| (feed(n), have(7)))
            .collect();
        s.on_notes(&ours, notes).unwrap();
        let stored = s.take_unsaved(&ours).unwrap();
        assert_eq!(stored.len(), CLOCK_ENTRIES);
        assert!(stored.iter().all(|(f, _)| ours.replicates(f)));
        // Nothing changed: nothing to store.
        assert!(s.take_unsaved(&ours).is_none());
    }

    #[test]
    fn the_clock_is_saved_every_ten_seconds_of_the_time_given() {
        let ours = Ours::replicating(&[(1, 1)]);
        let start = t0();
        let mut s = EbtSession::new(start);
        s.on_notes(&ours, vec![(feed(1), have(4))]).unwrap();
        assert_eq!(s.clock_to_save(start + Duration::from_secs(9), &ours), None);
        assert_eq!(
            s.clock_to_save(start + Duration::from_secs(11), &ours),
            Some(vec![(feed(1), 4)])
        );
        s.on_notes(&ours, vec![(feed(1), have(5))]).unwrap();
        assert_eq!(
            s.clock_to_save(start + Duration::from_secs(12), &ours),
            None
        );
        // At the end of the link, whatever changed is taken regardless of time.
        assert_eq!(s.take_unsaved(&ours), Some(vec![(feed(1), 5)]));
    }

    /// What we sent is not stored as the peer's: a peer that never stored it (disk
    /// full, killed) and whose own stored clock matches what it holds would skip
    /// the feed next time, and so would we: the feed would never converge.
    #[test]
    fn messages_sent_are_not_stored_as_the_peers_clock() {
        let ours = Ours::replicating(&[(1, 10)]);
        let mut s = EbtSession::new(t0());
        s.open(&ours, &ours.feeds(), &HashMap::new()).unwrap();
        s.on_notes(&ours, vec![(feed(1), have(0))]).unwrap();
        for q in 1..=10 {
            assert!(s.on_sent(feed(1), q));
        }
        let stored: HashMap<FeedId, u32> = s.take_unsaved(&ours).unwrap().into_iter().collect();
        assert_eq!(stored, HashMap::from([(feed(1), 0)]));
        // The next link: the peer holds 0 and skips (its stored clock of us
        // matched), and we tell our note, so it asks.
        let mut next = EbtSession::new(t0());
        let opening = next.open(&ours, &ours.feeds(), &stored).unwrap();
        assert_eq!(opening.notes, vec![(feed(1), have(10))]);
    }

    /// A batch the store refused (a full disk) is not confirmed to the peer.
    #[test]
    fn what_was_not_stored_is_not_confirmed() {
        let ours = Ours::replicating(&[(1, 3)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5))]).unwrap();
        for _ in 4..=5 {
            s.receive(&ours, BodyType::Json, MSG).unwrap();
        }
        s.on_checked([(feed(1), 4), (feed(1), 5)]);
        s.on_stored(&ours, 2).unwrap();
        assert_eq!(s.take_notes(), None);
        assert!(!s.caught_up(&ours), "the peer still has 4..5 for us");
    }

    #[test]
    fn request_skipping_leaves_out_matched_feeds_until_they_are_mentioned() {
        let ours = Ours::replicating(&[(1, 5), (2, 8), (3, 2)]);
        let stored = HashMap::from([(feed(1), 5), (feed(2), 6), (feed(3), 2)]);
        let mut s = EbtSession::new(t0());
        let opening = s.open(&ours, &ours.feeds(), &stored).unwrap();
        assert_eq!(opening.notes, vec![(feed(2), have(8))]);
        assert_eq!(opening.skipped, 2);
        // The peer mentions feed 1 (it has more now): we tell ours once.
        s.on_notes(&ours, vec![(feed(1), have(9))]).unwrap();
        assert_eq!(s.status(), Status::Send);
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(5))]));
        s.on_notes(&ours, vec![(feed(1), have(9))]).unwrap();
        assert_eq!(s.take_notes(), None);
    }

    #[test]
    fn our_append_while_linked_is_told_or_streamed() {
        let mut ours = Ours::replicating(&[(1, 5), (2, 3)]);
        let stored = HashMap::from([(feed(1), 5)]);
        let mut s = EbtSession::new(t0());
        s.open(&ours, &ours.feeds(), &stored).unwrap();
        s.on_notes(&ours, vec![(feed(2), have(3))]).unwrap();
        s.take_streams(&ours);
        assert!(s.caught_up(&ours));
        // Feed 1 was skipped: our append tells its note, once.
        ours.held.insert(feed(1), 6);
        s.on_append(&ours, feed(1), 6);
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(6))]));
        s.on_append(&ours, feed(1), 7);
        assert_eq!(s.take_notes(), None);
        // Feed 2 the peer wants: our append is streamed from where it is.
        ours.held.insert(feed(2), 4);
        s.on_append(&ours, feed(2), 4);
        assert_eq!(s.status(), Status::Stream);
        assert!(!s.caught_up(&ours));
        assert_eq!(s.take_streams(&ours), vec![(feed(2), 4)]);
        assert!(s.on_sent(feed(2), 4));
        assert!(s.caught_up(&ours));
        // An append to a feed we do not replicate tells nothing.
        s.on_append(&ours, feed(77), 1);
        assert_eq!(s.status(), Status::Wait);
    }

    #[test]
    fn a_feed_the_peer_declined_is_told_again_when_we_get_ahead() {
        // We told feed 1 at 0; the peer does not replicate it (yet): -1.
        let mut ours = Ours::replicating(&[(1, 0)]);
        let (mut s, opening) = opened(&ours);
        assert_eq!(opening.notes, vec![(feed(1), have(0))]);
        s.on_notes(&ours, vec![(feed(1), Note::Skip)]).unwrap();
        assert_eq!(s.take_notes(), None);
        // Our appends: told again (one note per clock), so the peer, once
        // it replicates the feed, knows we hold more than it does.
        ours.held.insert(feed(1), 3);
        s.on_append(&ours, feed(1), 2);
        s.on_append(&ours, feed(1), 3);
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(3))]));
        assert!(s.take_streams(&ours).is_empty(), "nothing streamed unasked");
        // The peer asks: streamed, and no more notes for our appends.
        s.on_notes(&ours, vec![(feed(1), have(0))]).unwrap();
        assert_eq!(s.take_streams(&ours), vec![(feed(1), 1)]);
        s.on_append(&ours, feed(1), 4);
        assert_eq!(s.take_notes(), None);
        // A feed the peer did not decline and did not ask for: told once.
        let mut ours = Ours::replicating(&[(2, 0)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(
            &ours,
            vec![(
                feed(2),
                Note::Have {
                    seq: 0,
                    receive: false,
                },
            )],
        )
        .unwrap();
        ours.held.insert(feed(2), 1);
        s.on_append(&ours, feed(2), 1);
        assert_eq!(s.take_notes(), None);
    }

    /// The decline can cross our appends: the peer's -1 for our note at 0
    /// arrives after we appended 1..3. Our note is told again then.
    #[test]
    fn a_decline_after_our_appends_tells_our_note_again() {
        let mut ours = Ours::replicating(&[(1, 0)]);
        let (mut s, opening) = opened(&ours);
        assert_eq!(opening.notes, vec![(feed(1), have(0))]);
        ours.held.insert(feed(1), 3);
        s.on_append(&ours, feed(1), 3);
        assert_eq!(s.take_notes(), None, "told once, not declined yet");
        s.on_notes(&ours, vec![(feed(1), Note::Skip)]).unwrap();
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(3))]));
        // Declined again at 3: nothing more until we hold more.
        s.on_notes(&ours, vec![(feed(1), Note::Skip)]).unwrap();
        assert_eq!(s.take_notes(), None);
    }

    #[test]
    fn missed_appends_mark_every_stream_and_tell_skipped_feeds() {
        let mut ours = Ours::replicating(&[(1, 5), (2, 3)]);
        let stored = HashMap::from([(feed(1), 5)]);
        let mut s = EbtSession::new(t0());
        s.open(&ours, &ours.feeds(), &stored).unwrap();
        s.on_notes(&ours, vec![(feed(2), have(3))]).unwrap();
        s.take_streams(&ours);
        // An append to feed 2 whose event was missed.
        ours.held.insert(feed(2), 4);
        s.on_lagged(&ours, &ours.feeds()).unwrap();
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(5))]));
        assert_eq!(s.take_streams(&ours), vec![(feed(2), 4)]);
    }

    #[test]
    fn a_feed_joining_the_replicate_set_is_told_once() {
        let mut ours = Ours::replicating(&[(1, 5)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5))]).unwrap();
        s.take_streams(&ours);
        ours.replicated.insert(feed(2));
        ours.held.insert(feed(2), 0);
        s.on_replicate_change(&ours, &ours.feeds()).unwrap();
        assert_eq!(s.take_notes(), Some(vec![(feed(2), have(0))]));
        s.on_replicate_change(&ours, &ours.feeds()).unwrap();
        assert_eq!(s.take_notes(), None);
        // Until the peer answers for it, nothing is owed either way.
        assert!(s.caught_up(&ours));
        s.on_notes(&ours, vec![(feed(2), have(3))]).unwrap();
        assert!(!s.caught_up(&ours), "the peer has 1..3 of the new feed");
    }

    #[test]
    fn a_note_after_the_done_candidate_takes_it_back() {
        // Under load the peer's answer for a feed can come after the link
        // looked caught up: the sync must not count as done then.
        let mut ours = Ours::replicating(&[(1, 5), (2, 2)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5))]).unwrap();
        s.take_streams(&ours);
        assert!(s.caught_up(&ours), "the done candidate");
        s.receive(&ours, BodyType::Json, &clock(&[(2, have(6))]))
            .unwrap();
        // The peer wants what follows its 6: nothing of ours to send.
        assert_eq!(s.take_streams(&ours), vec![]);
        assert!(!s.caught_up(&ours), "the late note offers 3..6");
        // Its messages arrive and are stored in two batches.
        for _ in 3..=6 {
            s.receive(&ours, BodyType::Json, MSG).unwrap();
        }
        s.on_checked([(feed(2), 3), (feed(2), 4)]);
        ours.held.insert(feed(2), 4);
        s.on_stored(&ours, 2).unwrap();
        assert_eq!(s.take_notes(), None, "not level with the peer yet");
        assert!(!s.caught_up(&ours));
        s.on_checked([(feed(2), 5), (feed(2), 6)]);
        ours.held.insert(feed(2), 6);
        s.on_stored(&ours, 2).unwrap();
        assert_eq!(s.take_notes(), Some(vec![(feed(2), have(6))]));
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn messages_in_flight_beyond_the_peers_note_hold_the_link_open() {
        // Live messages come without a note: until they are stored, the link
        // is not caught up, whatever the clocks say.
        let mut ours = Ours::replicating(&[(1, 5)]);
        let (mut s, _) = opened(&ours);
        s.on_notes(&ours, vec![(feed(1), have(5))]).unwrap();
        s.take_streams(&ours);
        assert!(s.caught_up(&ours));
        let signed = br#"{"author":"@x","signature":"y","sequence":6}"#;
        assert_eq!(
            s.receive(&ours, BodyType::Json, signed).unwrap(),
            Received::Message
        );
        assert!(!s.caught_up(&ours), "one message is still being stored");
        s.on_checked([(feed(1), 6)]);
        ours.held.insert(feed(1), 6);
        s.on_stored(&ours, 1).unwrap();
        assert_eq!(s.take_notes(), Some(vec![(feed(1), have(6))]));
        assert!(s.caught_up(&ours));
    }

    #[test]
    fn a_protocol_error_is_sticky() {
        let ours = Ours::replicating(&[(1, 5)]);
        for (body_type, bytes, want) in [
            (BodyType::Json, &b"[1,2]"[..], ProtocolError::NotObject),
            (BodyType::Utf8, &b"{}"[..], ProtocolError::NotObject),
            (
                BodyType::Json,
                &br#"{"@nope":2}"#[..],
                ProtocolError::Clock(EbtError::BadFeed("@nope".into())),
            ),
        ] {
            let (mut s, _) = opened(&ours);
            s.on_notes(&ours, vec![(feed(1), have(2))]).unwrap();
            let e = s.receive(&ours, body_type, bytes).unwrap_err();
            assert!(matches!(&e, SessionError::Peer(p) if *p == want), "{e}");
            assert_eq!(s.status(), Status::Failed(want.clone()));
            // Nothing more is decided: no streams, no notes, never caught up.
            assert_eq!(s.take_streams(&ours), vec![]);
            s.on_append(&ours, feed(1), 6);
            s.on_replicate_change(&ours, &[feed(1), feed(2)]).unwrap();
            assert_eq!(s.take_notes(), None);
            assert!(!s.caught_up(&ours));
            // Even a good clock is refused with the same error.
            let again = s
                .receive(&ours, BodyType::Json, &clock(&[(1, have(5))]))
                .unwrap_err();
            assert!(matches!(&again, SessionError::Peer(p) if *p == want));
            assert_eq!(s.error(), Some(&want));
        }
        let (mut s, _) = opened(&ours);
        assert!(matches!(
            s.receive(&ours, BodyType::Json, b"{nope").unwrap_err(),
            SessionError::Peer(ProtocolError::NotJson(_))
        ));
    }
}

/// Two sessions talking to each other over in-memory streams, with every
/// interleaving of delivery, storing, streaming and appends a seeded
/// generator picks: they end caught up, holding the same feeds.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod two_peers {
    use std::collections::VecDeque;

    use super::*;
    use crate::net::ebt::clock_value;

    fn feed(n: u32) -> FeedId {
        FeedId([n as u8; 32])
    }

    /// What travels on one direction of the stream.
    enum Frame {
        Clock(Vec<u8>),
        Message(FeedId, u32),
    }

    /// One side: what it replicates and holds, its session, and what its
    /// driver has in hand.
    struct Side {
        replicated: HashSet<FeedId>,
        held: HashMap<FeedId, u32>,
        own: FeedId,
        session: EbtSession,
        /// Received messages not stored yet.
        storing: Vec<(FeedId, u32)>,
        /// Appends not yet seen by the session (the event channel).
        events: VecDeque<(FeedId, u32)>,
        /// What the sender streams: feed and the next sequence.
        streams: VecDeque<(FeedId, u32)>,
    }

    /// A side's replicate set and holdings, borrowed apart from its session.
    struct View<'a> {
        replicated: &'a HashSet<FeedId>,
        held: &'a HashMap<FeedId, u32>,
    }

    impl Local for View<'_> {
        fn replicates(&self, feed: &FeedId) -> bool {
            self.replicated.contains(feed)
        }
        fn blocks(&self, _: &FeedId) -> bool {
            false
        }
        fn seq(&self, feed: &FeedId) -> Result<u32, StoreError> {
            Ok(self.held.get(feed).copied().unwrap_or(0))
        }
    }

    impl Side {
        fn view(&self) -> (View<'_>, &EbtSession) {
            let v = View {
                replicated: &self.replicated,
                held: &self.held,
            };
            (v, &self.session)
        }

        fn split(&mut self) -> (View<'_>, &mut EbtSession) {
            let v = View {
                replicated: &self.replicated,
                held: &self.held,
            };
            (v, &mut self.session)
        }

        fn caught_up(&self) -> bool {
            let (v, s) = self.view();
            s.caught_up(&v)
        }

        fn flush_notes(&mut self, out: &mut VecDeque<Frame>) {
            if let Some(notes) = self.session.take_notes() {
                let v = clock_value(notes.iter().map(|(f, n)| (f, *n)));
                out.push_back(Frame::Clock(v.to_compact().into_bytes()));
            }
        }

        fn take_streams(&mut self) {
            let (v, s) = self.split();
            let work = s.take_streams(&v);
            self.streams.extend(work);
        }
    }

    /// xorshift64*: a small seeded generator.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    fn side(rng: &mut Rng, own: u32, replicated: &[u32], lens: &[(u32, u32)]) -> Side {
        let mut held = HashMap::new();
        for (f, max) in lens {
            let n = if *f == own {
                *max
            } else {
                rng.below(*max as u64 + 1) as u32
            };
            held.insert(feed(*f), n);
        }
        Side {
            replicated: replicated.iter().map(|f| feed(*f)).collect(),
            held,
            own: feed(own),
            session: EbtSession::new(Instant::now()),
            storing: Vec::new(),
            events: VecDeque::new(),
            streams: VecDeque::new(),
        }
    }

    /// A stored clock of `peer` as an earlier link may have left it: for
    /// some feeds, a sequence it held then (at most what it holds now).
    fn stored_of(rng: &mut Rng, peer: &Side) -> HashMap<FeedId, u32> {
        let mut stored = HashMap::new();
        let mut held: Vec<(FeedId, u32)> = peer.held.iter().map(|(f, s)| (*f, *s)).collect();
        held.sort();
        for (f, s) in held {
            if rng.below(2) == 0 {
                stored.insert(f, rng.below(u64::from(s) + 1) as u32);
            }
        }
        stored
    }

    /// Performs step `what` on side `me`, whose peer reads `out` and who
    /// reads `inbox`; false if the step has nothing to do.
    fn step(
        what: u64,
        me: &mut Side,
        inbox: &mut VecDeque<Frame>,
        out: &mut VecDeque<Frame>,
        publish: &mut u32,
    ) -> bool {
        match what {
            // Read one frame.
            0 => {
                let Some(frame) = inbox.pop_front() else {
                    return false;
                };
                let (v, s) = me.split();
                match frame {
                    Frame::Clock(bytes) => {
                        let r = s.receive(&v, BodyType::Json, &bytes).unwrap();
                        assert!(matches!(r, Received::Clock { .. }));
                    }
                    Frame::Message(f, q) => {
                        let bytes = format!("{{\"previous\":null,\"sequence\":{q}}}");
                        let r = s.receive(&v, BodyType::Json, bytes.as_bytes()).unwrap();
                        assert_eq!(r, Received::Message);
                        me.storing.push((f, q));
                    }
                }
                me.flush_notes(out);
                me.take_streams();
            }
            // Store what was received (in order; a gap is refused).
            1 => {
                if me.storing.is_empty() {
                    return false;
                }
                let batch = std::mem::take(&mut me.storing);
                me.session.on_checked(batch.iter().copied());
                for (f, q) in &batch {
                    let held = me.held.entry(*f).or_insert(0);
                    if *q == *held + 1 && me.replicated.contains(f) {
                        *held = *q;
                        me.events.push_back((*f, *q));
                    }
                }
                let (v, s) = me.split();
                s.on_stored(&v, batch.len()).unwrap();
                me.flush_notes(out);
            }
            // The session hears of one append.
            2 => {
                let Some((f, q)) = me.events.pop_front() else {
                    return false;
                };
                let (v, s) = me.split();
                s.on_append(&v, f, q);
                me.flush_notes(out);
                me.take_streams();
            }
            // The sender sends one message of a stream.
            3 => {
                let Some((f, next)) = me.streams.pop_front() else {
                    return false;
                };
                if next > me.held.get(&f).copied().unwrap_or(0) {
                    return true;
                }
                out.push_back(Frame::Message(f, next));
                if me.session.on_sent(f, next) {
                    me.streams.push_front((f, next + 1));
                }
            }
            // We publish on our own feed.
            _ => {
                if *publish == 0 {
                    return false;
                }
                *publish -= 1;
                let own = me.own;
                let held = me.held.entry(own).or_insert(0);
                *held += 1;
                let q = *held;
                me.events.push_back((own, q));
            }
        }
        true
    }

    fn run(seed: u64) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        // Feed 1 is A's, 2 is B's, 3 and 4 are others'; A replicates 1, 2
        // and 3, B replicates 1, 2 and 4 (B follows A's note for 3 as foreign).
        let lens = [(1, 12), (2, 12), (3, 8), (4, 8)];
        let mut a = side(&mut rng, 1, &[1, 2, 3], &lens);
        let mut b = side(&mut rng, 2, &[1, 2, 4], &lens);
        let (stored_a, stored_b) = (stored_of(&mut rng, &b), stored_of(&mut rng, &a));
        let (mut a_to_b, mut b_to_a) = (VecDeque::new(), VecDeque::new());
        let feeds = |s: &Side| {
            let mut v: Vec<FeedId> = s.replicated.iter().copied().collect();
            v.sort();
            v
        };
        // B is the responder: its opening goes first; A reads it, then sends its own.
        let (fa, fb) = (feeds(&a), feeds(&b));
        let opening_b = b
            .session
            .open(
                &View {
                    replicated: &b.replicated,
                    held: &b.held,
                },
                &fb,
                &stored_b,
            )
            .unwrap();
        let opening_a = a
            .session
            .open(
                &View {
                    replicated: &a.replicated,
                    held: &a.held,
                },
                &fa,
                &stored_a,
            )
            .unwrap();
        let clock = |o: &Opening| {
            Frame::Clock(
                clock_value(o.notes.iter().map(|(f, n)| (f, *n)))
                    .to_compact()
                    .into_bytes(),
            )
        };
        b_to_a.push_back(clock(&opening_b));
        a_to_b.push_back(clock(&opening_a));
        let (mut pub_a, mut pub_b) = (rng.below(4) as u32, rng.below(4) as u32);
        for _ in 0..100_000 {
            let mut moved = false;
            // Try steps in a random order until one does something.
            let first = rng.below(10);
            for k in 0..10 {
                let what = (first + k) % 10;
                moved = if what < 5 {
                    step(what, &mut a, &mut b_to_a, &mut a_to_b, &mut pub_a)
                } else {
                    step(what - 5, &mut b, &mut a_to_b, &mut b_to_a, &mut pub_b)
                };
                if moved {
                    break;
                }
            }
            if !moved {
                break;
            }
            // Whenever a side says caught up, nothing it received waits to be stored.
            for s in [&a, &b] {
                if s.caught_up() {
                    assert!(
                        s.storing.is_empty(),
                        "seed {seed}: caught up with messages unstored"
                    );
                }
            }
        }
        assert!(
            a_to_b.is_empty() && b_to_a.is_empty(),
            "seed {seed}: not quiescent"
        );
        assert!(a.caught_up(), "seed {seed}: A is not caught up at the end");
        assert!(b.caught_up(), "seed {seed}: B is not caught up at the end");
        for f in [feed(1), feed(2)] {
            assert_eq!(
                a.held.get(&f),
                b.held.get(&f),
                "seed {seed}: feed {f} differs"
            );
        }
    }

    #[test]
    fn two_sessions_converge_under_3000_random_interleavings() {
        for seed in 0..3_000 {
            run(seed);
        }
    }
}
