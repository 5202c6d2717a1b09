//! Runs a handler for every stick the watcher reports, and keeps the node
//! status in step: busy while the handler runs, then done or failed, and
//! pulled early if the stick vanishes first.
//!
//! The handler is pluggable ([`StickHandler`]): it gets the stick's path and
//! returns a one-line summary or a short reason. Each stick's handler runs in
//! its own task, so a slow or hung stick never holds up another.
//!
//! Pulling a stick usually makes its handler fail with an I/O error *before*
//! the unmount (or the folder's removal) reaches the watcher. So a failure is
//! held back for [`GONE_GRACE`]: if the stick vanishes within it, the status
//! says pulled early (with the handler's error as detail), else it says
//! failed. The stick shows busy meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::mounts::StickEvent;
use super::status::Status;
use super::visits::SneakernetError;

/// Why a stick handler failed; its text is the reason the status shows.
#[derive(Debug, thiserror::Error)]
pub enum StickFailure {
    /// The visit ran but could not do everything (the stick is full or
    /// read-only): its summary.
    #[error("{0}")]
    Incomplete(String),
    /// The visit failed (the stick, its bundles, or our store).
    #[error(transparent)]
    Visit(#[from] SneakernetError),
    /// Reading or writing the stick failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The handler's task died (a bug of ours).
    #[error("stick handler failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What a stick handler reports: a one-line summary, or why it failed.
pub type StickOutcome = Result<String, StickFailure>;

/// The future a stick handler returns.
pub type StickFuture = Pin<Box<dyn Future<Output = StickOutcome> + Send + 'static>>;

/// Handles one stick, given the path where it is mounted or found.
pub type StickHandler = Arc<dyn Fn(PathBuf) -> StickFuture + Send + Sync>;

/// How long a failed handler's stick may take to vanish for the failure to
/// count as the stick having been pulled (well above the watcher's debounce).
pub const GONE_GRACE: Duration = Duration::from_secs(2);

enum Note {
    Finished { run: u64, outcome: StickOutcome },
    Settle { run: u64 },
}

/// Handles the sticks in `events` with `handler` until the channel closes.
pub async fn run(status: Status, handler: StickHandler, mut events: mpsc::Receiver<StickEvent>) {
    // Bounded by the number of sticks the watcher reports at once.
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<Note>();
    // The run of each stick that is in.
    let mut present: HashMap<PathBuf, u64> = HashMap::new();
    // Failures waiting to see whether their stick vanishes.
    let mut failing: HashMap<u64, StickFailure> = HashMap::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(StickEvent::Appeared(path)) => {
                    let run = status.stick_busy(&path);
                    present.insert(path.clone(), run);
                    let work = tokio::spawn(handler(path));
                    let tx = notes_tx.clone();
                    tokio::spawn(async move {
                        let outcome = work.await.unwrap_or_else(|e| Err(e.into()));
                        let _ = tx.send(Note::Finished { run, outcome });
                    });
                }
                Some(StickEvent::Vanished(path)) => {
                    let Some(run) = present.remove(&path) else { continue };
                    match failing.remove(&run) {
                        Some(reason) => status.stick_pulled_early(run, Some(reason.to_string())),
                        None => status.stick_vanished(run),
                    }
                }
            },
            Some(note) = notes.recv() => match note {
                Note::Finished { run, outcome: Err(reason) } if present.values().any(|r| *r == run) => {
                    failing.insert(run, reason);
                    let tx = notes_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(GONE_GRACE).await;
                        let _ = tx.send(Note::Settle { run });
                    });
                }
                Note::Finished { run, outcome } => status.stick_finished(run, outcome),
                Note::Settle { run } => {
                    if let Some(reason) = failing.remove(&run) {
                        status.stick_finished(run, Err(reason));
                    }
                }
            },
        }
    }
}
