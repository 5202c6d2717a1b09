//! LAN discovery wired into the node: what [`crate::discovery`] hears in either form
//! (plain on the TCP port, encrypted on [`ENCRYPTED_PORT`]; already narrowed to senders
//! announcing their own on-link IP) is dialled, and kept connected with
//! back-off, until the peer falls silent. Of two nodes that hear each other, the one with
//! the smaller key dials.
//!
//! Announcements are unauthenticated, so the dialling is paced by [`DialPlan`], a sans-IO
//! policy that takes the time as an argument: one attempt at a time per key, none while a
//! session with that key is up, a back-off per key (1 s doubling to 60 s, reset after a
//! session that lasted a minute), and a token bucket over all keys ([`DIAL_BURST`] at
//! once, then one per [`DIAL_INTERVAL`]). The driver ([`run`]) sleeps until the plan's
//! next due time and wakes for nothing else but events and finished attempts.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::peers::{self, Source};
use super::Replicator;
use crate::discovery::{Discovery, Event, ENCRYPTED_PORT};
use crate::feed::FeedId;
use crate::net::address::MultiserverAddress;

/// Most LAN dials started at once, after a quiet spell.
pub const DIAL_BURST: u32 = 4;
/// One more LAN dial may start per this interval, over all keys.
pub const DIAL_INTERVAL: Duration = Duration::from_secs(1);
/// Back-off bounds per key.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A session that lasted this long resets the key's back-off.
const SESSION_RESETS_BACKOFF: Duration = Duration::from_secs(60);
/// How long a key whose session is up (it dialled us) waits before it is looked at again.
const CONNECTED_RECHECK: Duration = Duration::from_secs(15);

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A session ran, for this long.
    Session(Duration),
    /// The dial or the handshake failed.
    Failed,
}

/// Where one wanted key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not dialled before `not_before`.
    Waiting { not_before: Instant },
    /// An attempt is running.
    InFlight,
}

#[derive(Debug)]
struct Wanted {
    address: MultiserverAddress,
    stage: Stage,
    /// The wait after the next attempt ends.
    backoff: Duration,
}

/// The LAN dial policy: which heard peers to dial when (see the module docs).
#[derive(Debug)]
pub struct DialPlan {
    wanted: HashMap<FeedId, Wanted>,
    tokens: u32,
    /// When `tokens` was last topped up, in whole [`DIAL_INTERVAL`]s.
    refilled: Instant,
}

impl DialPlan {
    /// A plan with a full bucket at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            wanted: HashMap::new(),
            tokens: DIAL_BURST,
            refilled: now,
        }
    }

    /// A peer to dial was heard at `address` at `now`: wanted from now on, due at once if
    /// it is new. A key already wanted keeps its schedule and takes the newer address for
    /// its next attempt.
    pub fn heard(&mut self, address: MultiserverAddress, now: Instant) {
        match self.wanted.get_mut(address.key()) {
            Some(w) => w.address = address,
            None => {
                let key = *address.key();
                let stage = Stage::Waiting { not_before: now };
                let backoff = BACKOFF_MIN;
                self.wanted.insert(
                    key,
                    Wanted {
                        address,
                        stage,
                        backoff,
                    },
                );
            }
        }
    }

    /// The peer fell silent: no more attempts. Returns whether one is running.
    pub fn forget(&mut self, key: &FeedId) -> bool {
        self.wanted
            .remove(key)
            .is_some_and(|w| w.stage == Stage::InFlight)
    }

    /// The attempt at `key` ended at `now`; it waits its back-off before the next one.
    /// Nothing happens for a key no longer wanted.
    pub fn finished(&mut self, key: &FeedId, attempt: Attempt, now: Instant) {
        let Some(w) = self.wanted.get_mut(key) else {
            return;
        };
        if matches!(attempt, Attempt::Session(d) if d >= SESSION_RESETS_BACKOFF) {
            w.backoff = BACKOFF_MIN;
        }
        w.stage = Stage::Waiting {
            not_before: now + w.backoff,
        };
        w.backoff = (w.backoff * 2).min(BACKOFF_MAX);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let intervals = elapsed.as_nanos() / DIAL_INTERVAL.as_nanos();
        let room = DIAL_BURST - self.tokens;
        if intervals >= u128::from(room) {
            self.tokens = DIAL_BURST;
            self.refilled = now;
        } else if let Ok(n) = u32::try_from(intervals) {
            self.tokens += n;
            self.refilled += DIAL_INTERVAL * n;
        }
    }

    /// The next address to dial at `now`, if one is due and the bucket allows; it is then
    /// in flight until [`DialPlan::finished`]. A due key for which `hold(key)` is true (a
    /// session is up, or it is blocked) is looked at again `CONNECTED_RECHECK` later.
    /// Of several due keys, the one due longest goes first.
    pub fn next_dial(
        &mut self,
        now: Instant,
        hold: impl Fn(&FeedId) -> bool,
    ) -> Option<MultiserverAddress> {
        self.refill(now);
        loop {
            let (key, _) = self
                .wanted
                .iter()
                .filter_map(|(k, w)| match w.stage {
                    Stage::Waiting { not_before } if not_before <= now => Some((*k, not_before)),
                    _ => None,
                })
                .min_by_key(|(_, at)| *at)?;
            let w = self.wanted.get_mut(&key)?;
            if hold(&key) {
                w.stage = Stage::Waiting {
                    not_before: now + CONNECTED_RECHECK,
                };
                continue;
            }
            if self.tokens == 0 {
                return None;
            }
            self.tokens -= 1;
            w.stage = Stage::InFlight;
            return Some(w.address.clone());
        }
    }

    /// When [`DialPlan::next_dial`] may next return something (given `now`), or `None`
    /// if nothing waits. Never earlier than `now`.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let due = self
            .wanted
            .values()
            .filter_map(|w| match w.stage {
                Stage::Waiting { not_before } => Some(not_before),
                Stage::InFlight => None,
            })
            .min()?;
        let token = if self.tokens > 0 {
            now
        } else {
            self.refilled + DIAL_INTERVAL
        };
        Some(due.max(token).max(now))
    }

    /// How many keys are wanted.
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether no key is wanted.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }
}

/// The clock of the tokio runtime, as [`crate::discovery`] uses it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Announces this node on the LAN and connects to the peers it hears, until aborted.
pub async fn run(node: Arc<Replicator>, listen: SocketAddr) {
    let mut discovery = match Discovery::bind(*node.id(), listen) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("LAN discovery off: {e}");
            return;
        }
    };
    // ssb-lan's encrypted form (Manyverse) beside the plain one; without it, only plain.
    let encrypted = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), ENCRYPTED_PORT);
    let keys = node.shs_keys().clone();
    if let Err(e) = discovery.add_encrypted(encrypted, node.network().key, keys) {
        tracing::warn!("LAN discovery: encrypted announcements off: {e}");
    }
    let (tx, mut rx) = mpsc::channel(64);
    let service = tokio::spawn(async move {
        if let Err(e) = discovery.run(tx).await {
            tracing::warn!("LAN discovery stopped: {e}");
        }
    });
    let mut plan = DialPlan::new(now());
    let mut attempts: JoinSet<Attempt> = JoinSet::new();
    let mut running: HashMap<FeedId, AbortHandle> = HashMap::new();
    let mut keys: HashMap<tokio::task::Id, FeedId> = HashMap::new();
    loop {
        let hold = |key: &FeedId| node.peers().is_connected(key) || node.replica().is_blocked(key);
        while let Some(addr) = plan.next_dial(now(), hold) {
            let key = *addr.key();
            let node = node.clone();
            let handle = attempts.spawn(async move {
                match peers::connect_once(&node, &addr).await {
                    Ok(lasted) => Attempt::Session(lasted),
                    Err(_) => Attempt::Failed,
                }
            });
            keys.insert(handle.id(), key);
            running.insert(key, handle);
        }
        let wake = plan.next_wake(now());
        tokio::select! {
            event = rx.recv() => match event {
                None => break,
                Some(Event::Heard(addr)) => {
                    let key = *addr.key();
                    if key == *node.id() || node.replica().is_blocked(&key) {
                        continue;
                    }
                    node.peers().know(key, Some(addr.clone()), Source::Lan);
                    // Two of our nodes hear each other at once: only the one with
                    // the smaller key dials, so they share one link, not two.
                    // (Other implementations dial us anyway; we accept.)
                    if key.as_bytes() < node.id().as_bytes() {
                        continue;
                    }
                    tracing::info!(%addr, "heard on the LAN");
                    plan.heard(addr, now());
                }
                Some(Event::Forgotten(key)) => {
                    tracing::info!(peer = %key, "silent on the LAN; forgotten");
                    plan.forget(&key);
                    if !node.peers().is_connected(&key) {
                        if let Some(handle) = running.remove(&key) {
                            handle.abort();
                        }
                        node.peers().forget(&key);
                    }
                }
            },
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                let (id, attempt) = match done {
                    Ok((id, attempt)) => (id, attempt),
                    Err(e) => (e.id(), Attempt::Failed),
                };
                if let Some(key) = keys.remove(&id) {
                    if running.get(&key).is_some_and(|h| h.id() == id) {
                        running.remove(&key);
                    }
                    plan.finished(&key, attempt, now());
                }
            }
            () = sleep_until(wake), if wake.is_some() => {}
        }
    }
    attempts.abort_all();
    service.abort();
}

/// Sleeps until `at` (forever for `None`; the caller's guard keeps that branch off).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::address::Host;

    fn key(n: u8) -> FeedId {
        FeedId([n; 32])
    }

    fn addr(ip: &str, n: u8) -> MultiserverAddress {
        MultiserverAddress::new(Host::Ip(ip.parse().unwrap()), 8008, key(n)).unwrap()
    }

    const S: Duration = Duration::from_secs(1);

    /// Every address due at `now`, as `next_dial` hands them out, none held.
    fn drain(plan: &mut DialPlan, now: Instant) -> Vec<MultiserverAddress> {
        std::iter::from_fn(|| plan.next_dial(now, |_| false)).collect()
    }

    #[test]
    fn one_attempt_per_key_and_back_off_after_it() {
        let t0 = Instant::now();
        let mut plan = DialPlan::new(t0);
        let a = addr("10.0.0.2", 2);
        plan.heard(a.clone(), t0);
        // Heard again and again (a flood of the same key): still one attempt.
        for _ in 0..1000 {
            plan.heard(a.clone(), t0);
        }
        assert_eq!(drain(&mut plan, t0), std::slice::from_ref(&a));
        assert_eq!(drain(&mut plan, t0 + 100 * S), [], "in flight: not again");
        assert_eq!(plan.next_wake(t0), None);
        // Failures back off 1, 2, 4 ... 60 s.
        let mut at = t0;
        for wait in [1, 2, 4, 8, 16, 32, 60, 60] {
            plan.finished(a.key(), Attempt::Failed, at);
            assert_eq!(plan.next_wake(at), Some(at + wait * S));
            assert_eq!(
                drain(&mut plan, at + wait * S - Duration::from_millis(1)),
                []
            );
            at += wait * S;
            assert_eq!(drain(&mut plan, at), std::slice::from_ref(&a));
        }
        // A session of a minute resets the back-off.
        plan.finished(a.key(), Attempt::Session(60 * S), at);
        assert_eq!(plan.next_wake(at), Some(at + S));
        // A forgotten key is not dialled again, even when its attempt ends later.
        assert!(!plan.forget(a.key()));
        plan.finished(a.key(), Attempt::Failed, at);
        assert!(plan.is_empty());
        assert_eq!(drain(&mut plan, at + 100 * S), []);
    }

    #[test]
    fn a_connected_or_held_key_is_not_dialled() {
        let t0 = Instant::now();
        let mut plan = DialPlan::new(t0);
        plan.heard(addr("10.0.0.2", 2), t0);
        assert_eq!(plan.next_dial(t0, |k| *k == key(2)), None);
        // Looked at again later, not in a loop: the next wake is the recheck.
        assert_eq!(plan.next_wake(t0), Some(t0 + CONNECTED_RECHECK));
        assert_eq!(
            plan.next_dial(t0 + CONNECTED_RECHECK, |_| false),
            Some(addr("10.0.0.2", 2))
        );
        assert!(plan.forget(&key(2)), "in flight when forgotten");
    }

    #[test]
    fn dials_over_all_keys_are_rate_limited() {
        let t0 = Instant::now();
        let mut plan = DialPlan::new(t0);
        // 200 keys heard at once: a burst, then one a second, the earliest due first.
        for n in 1..=200u8 {
            plan.heard(addr(&format!("10.0.0.{n}"), n), t0);
        }
        assert_eq!(drain(&mut plan, t0).len(), DIAL_BURST as usize);
        assert_eq!(plan.next_wake(t0), Some(t0 + DIAL_INTERVAL));
        assert_eq!(drain(&mut plan, t0 + Duration::from_millis(999)), []);
        let mut dialled = 0;
        for s in 1..=15 {
            dialled += drain(&mut plan, t0 + s * S).len();
        }
        assert_eq!(dialled, 15, "one a second");
        // Time passing with nothing due fills the bucket up to the burst, no more.
        let mut idle = DialPlan::new(t0);
        let later = t0 + 3600 * S;
        for n in 1..=10u8 {
            idle.heard(addr(&format!("10.0.1.{n}"), n), later);
        }
        assert_eq!(drain(&mut idle, later).len(), DIAL_BURST as usize);
    }

    #[test]
    fn a_key_failing_fast_gets_no_more_than_its_back_off() {
        // The shape: keys that refuse at once, redialled for 15 s.
        let t0 = Instant::now();
        let mut plan = DialPlan::new(t0);
        for n in 1..=4u8 {
            plan.heard(addr("10.0.0.9", n), t0);
        }
        let mut dials = 0;
        let mut t = t0;
        while t <= t0 + 15 * S {
            for a in drain(&mut plan, t) {
                dials += 1;
                plan.finished(a.key(), Attempt::Failed, t);
            }
            t += Duration::from_millis(100);
        }
        // Each key at 0, 1, 3, 7 and 15 s at most: 5 dials each.
        assert!(dials <= 20, "{dials} dials");
        assert!(dials >= 16, "{dials} dials: back-off, not a stop");
    }
}
