//! The appliance side of `ssb-node run`: the stick watcher feeding the stick
//! handler, and the status LED, all driven by and reporting to the node's
//! status.

use std::path::PathBuf;
use std::sync::Arc;

use firmware::LedSpec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::mounts::{self, StickWatcher, WatchError};
use super::status_led::{self, StatusLed};
use super::{sneakernet, sticks, Node};

/// Stick events waiting for the handler loop (it never blocks for long).
const EVENT_QUEUE: usize = 64;

/// The running stick watcher, stick handler loop and LED. Dropping it stops
/// them (the LED goes off).
#[derive(Debug)]
pub struct Appliance {
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<StickWatcher>,
    _led: Option<StatusLed>,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The stick handler: a full visit (import, export, remember the clock);
/// a visit that could not do everything (stick full, read-only) fails with
/// its summary, so the status shows the problem.
fn reconcile_handler(node: Arc<Node>) -> sticks::StickHandler {
    Arc::new(move |mount| {
        let node = node.clone();
        Box::pin(async move {
            match sneakernet::sync_stick(node, mount).await {
                Ok(report) if report.problem.is_none() => Ok(report.summary()),
                Ok(report) => Err(sticks::StickFailure::Incomplete(report.summary())),
                Err(e) => Err(e.into()),
            }
        })
    })
}

/// Starts watching `mount_roots` for sticks (none: no stick watching) and
/// drives the LED `led` from the node status. An LED that cannot be opened
/// is logged and left out: the node is more use syncing without its LED
/// than not running.
pub fn start(
    node: &Arc<Node>,
    mount_roots: Vec<PathBuf>,
    led: &LedSpec,
) -> Result<Appliance, WatchError> {
    let led = match status_led::start(led, &node.status) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("status LED unavailable, running without it: {e}");
            None
        }
    };
    let mut tasks = Vec::new();
    let mut watcher = None;
    if mount_roots.is_empty() {
        tracing::info!("no mount roots: stick watching is off");
    } else {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        watcher = Some(mounts::spawn(mount_roots, tx)?);
        let handler = reconcile_handler(node.clone());
        tasks.push(tokio::spawn(sticks::run(node.status.clone(), handler, rx)));
    }
    Ok(Appliance {
        tasks,
        _watcher: watcher,
        _led: led,
    })
}
