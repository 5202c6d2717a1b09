//! The node's one status: what `ssb-node status` shows and what the LED
//! plays.
//!
//! It holds the node's phase (booting, ready), every stick the node is
//! handling or has a problem with, and the peer links with whether each is
//! replicating. The LED pattern is derived from it ([`Snapshot::pattern`]),
//! the highest-priority of what holds (firmware's order: attention > stick
//! busy > stick done > peer syncing > booting > idle).
//!
//! Stick states: `busy` from insertion until its handler finishes; then
//! `done` (with the handler's one-line summary, solid LED: safe to pull) or
//! `error` (with the reason). A stick that vanishes while `busy` is
//! `pulled-early`, whatever its handler says afterwards. A `done` stick is
//! forgotten when it is pulled.
//!
//! Attention (`error`, `pulled-early`) stays, even after the stick is pulled,
//! until a stick *inserted after the problem* finishes fine; re-inserting the
//! same stick counts. So an SOS is never cleared by a stick that was already
//! in when the problem happened, and the reason stays in `ssb-node status`
//! (and the log) until then. At most [`MAX_ABSENT_PROBLEMS`] problems of
//! pulled sticks are kept (oldest dropped).
//!
//! Subscribers get every change through a `tokio::sync::watch`; every change
//! of a stick, of the phase and of the pattern is logged at info.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use firmware::Pattern;
use tokio::sync::watch;

use super::sticks::StickOutcome;
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::replication::{LinkMark, LinkWatch};

/// Most remembered problems of sticks that are no longer in.
pub const MAX_ABSENT_PROBLEMS: usize = 16;

/// The node's life phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifePhase {
    /// Starting: store open, not yet serving.
    Booting,
    /// Serving peers, the control socket and sticks.
    Ready,
}

impl LifePhase {
    /// `booting` or `ready`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifePhase::Booting => "booting",
            LifePhase::Ready => "ready",
        }
    }
}

/// Where one stick stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickState {
    /// Its handler runs: do not pull.
    Busy,
    /// Its handler finished fine: safe to pull.
    Done {
        /// The handler's one-line summary.
        summary: String,
    },
    /// Its handler failed.
    Failed {
        /// Why, in a few words ("stick full", "read-only", …).
        reason: String,
    },
    /// It vanished while its handler ran.
    PulledEarly {
        /// What the handler said afterwards, if anything went wrong.
        detail: Option<String>,
    },
}

impl StickState {
    /// `busy`, `done`, `error` or `pulled-early`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StickState::Busy => "busy",
            StickState::Done { .. } => "done",
            StickState::Failed { .. } => "error",
            StickState::PulledEarly { .. } => "pulled-early",
        }
    }

    /// Whether this is a problem a person should look at.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            StickState::Failed { .. } | StickState::PulledEarly { .. }
        )
    }

    /// The summary, reason or detail, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            StickState::Busy => None,
            StickState::Done { summary } => Some(summary),
            StickState::Failed { reason } => Some(reason),
            StickState::PulledEarly { detail } => detail.as_deref(),
        }
    }
}

/// One stick the status knows about.
#[derive(Debug, Clone)]
pub struct StickStatus {
    /// Where it is (was) mounted or found.
    pub path: PathBuf,
    /// Which insertion this is (increasing over the node's life).
    pub run: u64,
    /// Its state.
    pub state: StickState,
    /// Whether it is still in.
    pub present: bool,
    /// Whether its problem still needs attention (drives the LED).
    pub attention: bool,
    /// When the state last changed.
    pub since: Instant,
    /// The last run number handed out when its problem was noted.
    noted_at: u64,
}

/// One peer link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    /// The peer.
    pub peer: FeedId,
    /// Whether it is replicating (not caught up, or moved data lately).
    pub syncing: bool,
}

/// The whole status at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Booting or ready.
    pub phase: LifePhase,
    /// Sticks in insertion order.
    pub sticks: Vec<StickStatus>,
    /// Open peer links by link number.
    pub links: BTreeMap<u64, LinkReport>,
    /// Why the data disk takes no new messages and blobs, while it is full
    /// (needs attention).
    pub disk_full: Option<String>,
}

impl Snapshot {
    fn new() -> Snapshot {
        Snapshot {
            phase: LifePhase::Booting,
            sticks: Vec::new(),
            links: BTreeMap::new(),
            disk_full: None,
        }
    }

    /// The LED pattern: the most urgent of what holds.
    pub fn pattern(&self) -> Pattern {
        let base = match self.phase {
            LifePhase::Booting => Pattern::Booting,
            LifePhase::Ready => Pattern::Idle,
        };
        let syncing = self.links.values().any(|l| l.syncing);
        let mut p = if syncing {
            base.most_urgent(Pattern::PeerSyncing)
        } else {
            base
        };
        if self.disk_full.is_some() {
            p = p.most_urgent(Pattern::Attention);
        }
        for s in &self.sticks {
            let q = match &s.state {
                StickState::Busy => Pattern::StickBusy,
                StickState::Done { .. } if s.present => Pattern::StickDone,
                _ if s.attention => Pattern::Attention,
                _ => continue,
            };
            p = p.most_urgent(q);
        }
        p
    }

    /// Open peer links.
    pub fn peers_connected(&self) -> usize {
        self.links.len()
    }

    /// Peer links replicating now.
    pub fn peers_syncing(&self) -> usize {
        self.links.values().filter(|l| l.syncing).count()
    }

    /// Adds the status fields to the `status` reply: `state`, `led`,
    /// `peers_connected`, `peers_syncing` and `sticks` (one object per stick:
    /// `path`, `state`, `present`, `attention`, `seconds`, and `summary`,
    /// `reason` or `detail`).
    pub fn push_fields(&self, o: &mut Object) {
        o.push("state", Value::string(self.phase.as_str()));
        o.push("led", Value::string(self.pattern().name()));
        o.push(
            "peers_connected",
            Value::Number(self.peers_connected() as f64),
        );
        o.push("peers_syncing", Value::Number(self.peers_syncing() as f64));
        let sticks = self
            .sticks
            .iter()
            .map(|s| {
                let mut st = Object::new();
                st.push("path", Value::string(&s.path.to_string_lossy()));
                st.push("state", Value::string(s.state.as_str()));
                st.push("present", Value::Bool(s.present));
                st.push("attention", Value::Bool(s.attention));
                st.push("seconds", Value::Number(s.since.elapsed().as_secs() as f64));
                let key = match s.state {
                    StickState::Busy => None,
                    StickState::Done { .. } => Some("summary"),
                    StickState::Failed { .. } => Some("reason"),
                    StickState::PulledEarly { .. } => Some("detail"),
                };
                if let (Some(k), Some(text)) = (key, s.state.text()) {
                    st.push(k, Value::string(text));
                }
                Value::Object(st)
            })
            .collect();
        o.push("sticks", Value::Array(sticks));
    }

    fn stick_mut(&mut self, run: u64) -> Option<&mut StickStatus> {
        self.sticks.iter_mut().find(|s| s.run == run)
    }

    /// Keeps at most [`MAX_ABSENT_PROBLEMS`] problems of pulled sticks.
    fn trim(&mut self) {
        let absent = self.sticks.iter().filter(|s| !s.present).count();
        let mut excess = absent.saturating_sub(MAX_ABSENT_PROBLEMS);
        self.sticks.retain(|s| {
            if excess > 0 && !s.present {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// A handle on the node's status; clones share it.
#[derive(Clone)]
pub struct NodeStatus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: watch::Sender<Snapshot>,
    /// The last run number handed out.
    runs: AtomicU64,
    /// The last link number handed out.
    links: AtomicU64,
}

impl Default for NodeStatus {
    fn default() -> Self {
        NodeStatus::new()
    }
}

impl std::fmt::Debug for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeStatus")
            .field(&*self.inner.tx.borrow())
            .finish()
    }
}

impl NodeStatus {
    /// A fresh status: booting, no sticks, no links.
    pub fn new() -> NodeStatus {
        NodeStatus {
            inner: Arc::new(Inner {
                tx: watch::channel(Snapshot::new()).0,
                runs: AtomicU64::new(0),
                links: AtomicU64::new(0),
            }),
        }
    }

    /// The status now.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.tx.borrow().clone()
    }

    /// Every change from now on (the current value counts as seen).
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.inner.tx.subscribe()
    }

    /// Applies `change` (which says whether it changed anything) and logs a
    /// change of LED pattern.
    fn update(&self, change: impl FnOnce(&mut Snapshot) -> bool) {
        self.inner.tx.send_if_modified(|s| {
            let before = s.pattern();
            if !change(s) {
                return false;
            }
            let after = s.pattern();
            if after != before {
                tracing::info!("status: LED {before} -> {after}");
            }
            true
        });
    }

    /// The node serves: booting is over.
    pub fn set_ready(&self) {
        self.update(|s| {
            let changed = s.phase != LifePhase::Ready;
            s.phase = LifePhase::Ready;
            if changed {
                tracing::info!("status: node ready");
            }
            changed
        });
    }

    /// The data disk turned full (with why) or has room again (`None`).
    pub fn set_disk_full(&self, why: Option<String>) {
        self.update(|s| {
            let changed = s.disk_full.is_some() != why.is_some();
            s.disk_full = why;
            changed
        });
    }

    /// A stick was inserted and its handler starts: it is busy. Returns the
    /// run number that later calls name it by. Replaces anything known about
    /// an earlier stick at the same path.
    pub fn stick_busy(&self, path: &Path) -> u64 {
        let run = self.inner.runs.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(stick = %path.display(), "status: stick busy, do not pull");
        self.update(|s| {
            s.sticks.retain(|st| st.path != path);
            s.sticks.push(StickStatus {
                path: path.to_path_buf(),
                run,
                state: StickState::Busy,
                present: true,
                attention: false,
                since: Instant::now(),
                noted_at: 0,
            });
            true
        });
        run
    }

    /// A stick's handler finished. Ignored (but logged) if the stick was
    /// pulled early or replaced meanwhile. Success clears the attention of
    /// every problem noted before this stick was inserted.
    pub fn stick_finished(&self, run: u64, outcome: StickOutcome) {
        let noted_at = self.inner.runs.load(Ordering::SeqCst);
        self.update(|s| {
            let Some(st) = s.stick_mut(run) else {
                tracing::info!(run, "stick handler finished after its stick was forgotten: {outcome:?}");
                return false;
            };
            if st.state != StickState::Busy {
                tracing::info!(stick = %st.path.display(), "stick handler finished after the stick was pulled: {outcome:?}");
                return false;
            }
            st.since = Instant::now();
            match outcome {
                Ok(summary) => {
                    tracing::info!(stick = %st.path.display(), "status: stick done, safe to pull: {summary}");
                    st.state = StickState::Done { summary };
                    clear_attention(s, run);
                }
                Err(failure) => {
                    let reason = failure.to_string();
                    tracing::warn!(stick = %st.path.display(), "status: stick failed, needs attention: {reason}");
                    st.state = StickState::Failed { reason };
                    st.attention = true;
                    st.noted_at = noted_at;
                }
            }
            true
        });
    }

    /// A stick vanished before its handler's failure was settled: the
    /// failure was the pull.
    pub fn stick_pulled_early(&self, run: u64, detail: Option<String>) {
        let noted_at = self.inner.runs.load(Ordering::SeqCst);
        self.update(|s| {
            let Some(st) = s.stick_mut(run) else {
                return false;
            };
            tracing::warn!(stick = %st.path.display(), "status: stick pulled early, needs attention{}",
                detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default());
            st.state = StickState::PulledEarly { detail };
            st.present = false;
            st.attention = true;
            st.noted_at = noted_at;
            st.since = Instant::now();
            s.trim();
            true
        });
    }

    /// A stick vanished: pulled early if it was busy, forgotten if it was
    /// done, kept as a problem otherwise.
    pub fn stick_vanished(&self, run: u64) {
        let busy = self
            .inner
            .tx
            .borrow()
            .sticks
            .iter()
            .any(|s| s.run == run && s.state == StickState::Busy);
        if busy {
            return self.stick_pulled_early(run, None);
        }
        self.update(|s| {
            let Some(st) = s.stick_mut(run) else {
                return false;
            };
            tracing::info!(stick = %st.path.display(), "status: stick pulled");
            if st.state.is_problem() {
                st.present = false;
                s.trim();
            } else {
                s.sticks.retain(|x| x.run != run);
            }
            true
        });
    }

    /// A peer link opened; it counts as syncing until told otherwise.
    /// Dropping the returned handle removes it.
    pub fn link_opened(&self, peer: FeedId) -> LinkHandle {
        let id = self.inner.links.fetch_add(1, Ordering::SeqCst) + 1;
        self.update(|s| {
            s.links.insert(
                id,
                LinkReport {
                    peer,
                    syncing: true,
                },
            );
            true
        });
        LinkHandle {
            status: self.clone(),
            id,
        }
    }
}

/// Clears the attention of problems noted before run `run` was inserted;
/// forgets those whose sticks are gone.
fn clear_attention(s: &mut Snapshot, run: u64) {
    for st in s.sticks.iter_mut() {
        if st.attention && st.noted_at < run {
            tracing::info!(stick = %st.path.display(), "status: attention cleared by a stick that synced fine");
            st.attention = false;
        }
    }
    s.sticks.retain(|st| st.present || st.attention);
}

/// One open link in the status; dropping it removes the link.
#[derive(Debug)]
pub struct LinkHandle {
    status: NodeStatus,
    id: u64,
}

impl LinkHandle {
    /// Says whether the link is replicating.
    pub fn set_syncing(&self, syncing: bool) {
        self.status.update(|s| match s.links.get_mut(&self.id) {
            Some(l) if l.syncing != syncing => {
                tracing::debug!(peer = %l.peer, syncing, "status: link");
                l.syncing = syncing;
                true
            }
            _ => false,
        });
    }
}

impl LinkMark for LinkHandle {
    fn set_syncing(&self, syncing: bool) {
        LinkHandle::set_syncing(self, syncing);
    }
}

impl LinkWatch for NodeStatus {
    fn link_opened(&self, peer: FeedId) -> Box<dyn LinkMark> {
        Box::new(NodeStatus::link_opened(self, peer))
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.status.update(|s| s.links.remove(&self.id).is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appliance::sticks::StickFailure;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn the_pattern_follows_a_stick_from_insert_to_pull() {
        let status = NodeStatus::new();
        assert_eq!(status.snapshot().pattern(), Pattern::Booting);
        status.set_ready();
        assert_eq!(status.snapshot().pattern(), Pattern::Idle);
        let run = status.stick_busy(&p("/media/a"));
        assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);
        status.stick_finished(run, Ok("found 3 bundles".into()));
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::StickDone);
        assert_eq!(snap.sticks[0].state.text(), Some("found 3 bundles"));
        status.stick_vanished(run);
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::Idle);
        assert!(snap.sticks.is_empty());
    }

    #[test]
    fn a_stick_pulled_while_busy_needs_attention_whatever_its_handler_says() {
        let status = NodeStatus::new();
        status.set_ready();
        let run = status.stick_busy(&p("/media/a"));
        status.stick_vanished(run);
        status.stick_finished(
            run,
            Err(StickFailure::Incomplete(
                "I/O error: No such file or directory".into(),
            )),
        );
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::Attention);
        assert_eq!(
            snap.sticks[0].state,
            StickState::PulledEarly { detail: None }
        );
        assert!(!snap.sticks[0].present);
        // A late success does not hide it either.
        status.stick_finished(run, Ok("all fine".into()));
        assert_eq!(status.snapshot().pattern(), Pattern::Attention);
    }

    #[test]
    fn attention_clears_only_when_a_later_stick_syncs_fine() {
        let status = NodeStatus::new();
        status.set_ready();
        let a = status.stick_busy(&p("/media/a"));
        let b = status.stick_busy(&p("/media/b"));
        status.stick_finished(a, Err(StickFailure::Incomplete("stick full".into())));
        // b was in before a failed: its success does not clear a's problem.
        status.stick_finished(b, Ok("ok".into()));
        assert_eq!(status.snapshot().pattern(), Pattern::Attention);
        status.stick_vanished(a);
        status.stick_vanished(b);
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::Attention);
        assert_eq!(snap.sticks.len(), 1);
        assert_eq!(snap.sticks[0].state.text(), Some("stick full"));
        // A new stick busy: attention still wins over the flicker.
        let c = status.stick_busy(&p("/media/c"));
        assert_eq!(status.snapshot().pattern(), Pattern::Attention);
        status.stick_finished(c, Ok("ok".into()));
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::StickDone);
        assert_eq!(snap.sticks.len(), 1, "{snap:?}");
        assert_eq!(snap.sticks[0].path, p("/media/c"));
    }

    #[test]
    fn reinserting_the_failed_stick_and_syncing_clears_it() {
        let status = NodeStatus::new();
        status.set_ready();
        let a = status.stick_busy(&p("/media/a"));
        status.stick_vanished(a);
        assert_eq!(status.snapshot().pattern(), Pattern::Attention);
        let again = status.stick_busy(&p("/media/a"));
        let snap = status.snapshot();
        assert_eq!(snap.sticks.len(), 1);
        assert_eq!(snap.pattern(), Pattern::StickBusy);
        status.stick_finished(again, Ok("ok".into()));
        assert_eq!(status.snapshot().pattern(), Pattern::StickDone);
    }

    #[test]
    fn links_drive_peer_syncing_below_sticks() {
        let status = NodeStatus::new();
        status.set_ready();
        let link = status.link_opened(FeedId([1; 32]));
        assert_eq!(status.snapshot().pattern(), Pattern::PeerSyncing);
        link.set_syncing(false);
        let snap = status.snapshot();
        assert_eq!((snap.peers_connected(), snap.peers_syncing()), (1, 0));
        assert_eq!(snap.pattern(), Pattern::Idle);
        link.set_syncing(true);
        let run = status.stick_busy(&p("/media/a"));
        assert_eq!(status.snapshot().pattern(), Pattern::StickBusy);
        status.stick_finished(run, Ok("ok".into()));
        assert_eq!(status.snapshot().pattern(), Pattern::StickDone);
        drop(link);
        assert_eq!(status.snapshot().peers_connected(), 0);
    }

    #[test]
    fn a_full_disk_needs_attention_until_it_has_room() {
        let status = NodeStatus::new();
        status.set_ready();
        let run = status.stick_busy(&p("/media/a"));
        status.set_disk_full(Some("the data disk is full".into()));
        let snap = status.snapshot();
        assert_eq!(snap.pattern(), Pattern::Attention);
        assert_eq!(snap.disk_full.as_deref(), Some("the data disk is full"));
        // A stick that syncs fine does not clear it.
        status.stick_finished(run, Ok("ok".into()));
        assert_eq!(status.snapshot().pattern(), Pattern::Attention);
        status.set_disk_full(None);
        assert_eq!(status.snapshot().pattern(), Pattern::StickDone);
    }

    #[test]
    fn problems_of_pulled_sticks_are_bounded() {
        let status = NodeStatus::new();
        for i in 0..MAX_ABSENT_PROBLEMS + 5 {
            let run = status.stick_busy(&p(&format!("/media/{i}")));
            status.stick_vanished(run);
        }
        let snap = status.snapshot();
        assert_eq!(snap.sticks.len(), MAX_ABSENT_PROBLEMS);
        // The newest are kept.
        assert_eq!(
            snap.sticks.last().map(|s| s.path.clone()),
            Some(p(&format!("/media/{}", MAX_ABSENT_PROBLEMS + 4)))
        );
    }

    #[test]
    fn subscribers_see_changes_and_the_json_names_them() {
        let status = NodeStatus::new();
        let mut rx = status.subscribe();
        status.set_ready();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().phase, LifePhase::Ready);
        status.set_ready();
        assert!(!rx.has_changed().unwrap(), "no change, no wake-up");
        let run = status.stick_busy(&p("/media/a b"));
        status.stick_finished(run, Err(StickFailure::Incomplete("read-only".into())));
        let mut o = Object::new();
        status.snapshot().push_fields(&mut o);
        let json = Value::Object(o).to_compact();
        assert!(
            json.contains(r#""state":"ready","led":"attention""#),
            "{json}"
        );
        assert!(
            json.contains(r#""path":"/media/a b","state":"error","present":true,"attention":true"#),
            "{json}"
        );
        assert!(json.contains(r#""reason":"read-only""#), "{json}");
    }
}
