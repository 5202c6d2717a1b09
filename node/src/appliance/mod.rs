//! The appliance: what a box with USB ports and a LED does around the
//! replica.
//!
//! - [`mounts`], [`mountinfo`]: stick detection under the mount roots.
//! - [`sticks`]: one stick at a time, from plugged in to pulled out;
//!   [`visits`]: stick visits and bundle files, run on blocking threads.
//! - [`status`]: the node's one status (phase, sticks, links);
//!   [`status_led`]: the LED pattern it plays.
//! - [`notify`]: systemd's notify protocol (ready, status, watchdog).
//! - [`disk_watch`]: the data disk's state (`disk full`) in the status.
//! - [`wifi`]: the boot partition's Wi-Fi settings, the radio's plan, and
//!   the Wi-Fi state in the status.
//! - [`start`]: the stick watcher feeding the stick handler, and the LED,
//!   all driven by and reporting to the status.

pub mod disk_watch;
pub mod mountinfo;
pub mod mounts;
pub mod notify;
pub mod status;
pub mod status_led;
pub mod sticks;
pub mod visits;
pub mod wifi;

use std::path::PathBuf;
use std::sync::Arc;

use firmware::LedSpec;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::replica::Replica;
use mounts::{StickWatcher, WatchError};
use status::NodeStatus;
use status_led::RunningLed;

/// Stick events waiting for the handler loop (it never blocks for long).
const EVENT_QUEUE: usize = 64;

/// The running stick watcher, stick handler loop and LED. Dropping it stops
/// them (the LED goes off).
#[derive(Debug)]
pub struct Appliance {
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<StickWatcher>,
    _led: Option<RunningLed>,
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
fn reconcile_handler(node: Arc<Replica>) -> sticks::StickHandler {
    Arc::new(move |mount| {
        let node = node.clone();
        Box::pin(async move {
            match visits::sync_stick(node, mount).await {
                Ok(report) if report.problem.is_none() => Ok(report.summary()),
                Ok(report) => Err(sticks::StickFailure::Incomplete(report.summary())),
                Err(e) => Err(e.into()),
            }
        })
    })
}

/// Starts watching `mount_roots` for sticks (none: no stick watching), each
/// visited on `replica`, and drives the LED `led` from `status`. An LED that cannot be opened
/// is logged and left out: the node is more use syncing without its LED
/// than not running.
pub fn start(
    replica: &Arc<Replica>,
    status: &NodeStatus,
    mount_roots: Vec<PathBuf>,
    led: &LedSpec,
) -> Result<Appliance, WatchError> {
    let led = match status_led::start(led, status) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("status LED unavailable, running without it: {e}");
            None
        }
    };
    let mut tasks = vec![tokio::spawn(disk_watch::run(
        replica.clone(),
        status.clone(),
    ))];
    // A node started over its blob quota (or with a smaller one) trims at once.
    let r = replica.clone();
    drop(tokio::task::spawn_blocking(move || {
        crate::replica::blob_budget::enforce_logged(&r)
    }));
    let mut watcher = None;
    if mount_roots.is_empty() {
        tracing::info!("no mount roots: stick watching is off");
    } else {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        watcher = Some(mounts::spawn(mount_roots, tx)?);
        let handler = reconcile_handler(replica.clone());
        tasks.push(tokio::spawn(sticks::run(status.clone(), handler, rx)));
    }
    Ok(Appliance {
        tasks,
        _watcher: watcher,
        _led: led,
    })
}
