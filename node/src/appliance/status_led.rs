//! Plays the node status on the status LED: a task sends the status's
//! pattern to firmware's `LedDriver` thread on every change. The driver
//! sleeps between edges (no timer at all for steady patterns), so an idle
//! node costs nothing here either.

use firmware::{LedDriver, LedError, LedSpec, Pattern};

use super::status::Status;

/// Why the LED could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StatusLedError {
    /// The LED named by the spec could not be opened.
    #[error("opening LED {spec}: {source}")]
    Open {
        /// The spec, as given.
        spec: String,
        /// The cause.
        source: LedError,
    },
    /// The driver thread could not be started.
    #[error("starting the LED thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The running LED. Dropping it stops the updates, turns the LED off and
/// hands it back (a sysfs LED gets its trigger back).
#[derive(Debug)]
pub struct StatusLed {
    task: tokio::task::JoinHandle<()>,
    _driver: LedDriver,
}

impl Drop for StatusLed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the LED `spec` names and keeps it showing `status`'s pattern;
/// `None` for `none`.
pub fn start(spec: &LedSpec, status: &Status) -> Result<Option<StatusLed>, StatusLedError> {
    if *spec == LedSpec::None {
        return Ok(None);
    }
    let pin = spec.open().map_err(|source| StatusLedError::Open {
        spec: spec.to_string(),
        source,
    })?;
    let mut changes = status.subscribe();
    let mut shown: Pattern = changes.borrow_and_update().pattern();
    let shown_spec = spec.to_string();
    let driver = LedDriver::spawn(pin, shown, move |e| {
        tracing::warn!(led = %shown_spec, "LED write failed: {e}");
    })
    .map_err(StatusLedError::Thread)?;
    let sender = driver.sender();
    tracing::info!(led = %spec, pattern = %shown, "status LED on");
    let task = tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let pattern = changes.borrow_and_update().pattern();
            if pattern != shown {
                shown = pattern;
                if let Err(e) = sender.show(pattern) {
                    tracing::warn!("status LED stopped: {e}");
                    return;
                }
            }
        }
    });
    Ok(Some(StatusLed {
        task,
        _driver: driver,
    }))
}
