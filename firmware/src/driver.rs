//! A small thread that plays the current pattern on a pin, for std targets.
//!
//! The thread blocks on a channel with a timeout equal to the time until the
//! next edge (or with no timeout for steady patterns), so it wakes only for
//! LED edges and pattern changes. It is runtime-agnostic: async code sends
//! patterns through [`PatternSender::show`], which never blocks.

use std::io;
use std::string::String;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;
use thiserror::Error;

use crate::engine::StatusLed;
use crate::pattern::Pattern;

/// After a failed pin write, try again this much later.
const ERROR_RETRY_MS: u32 = 1000;

enum Command {
    Show(Pattern),
    Stop,
}

/// The driver could not take the request.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum DriverError {
    /// The driver thread has exited (stopped, or its error callback panicked).
    #[error("the status LED driver thread is no longer running")]
    Stopped,
    /// The driver thread panicked (only the error callback can panic).
    #[error("the status LED driver thread panicked")]
    Panicked,
}

/// A cloneable, non-blocking handle for changing the pattern from any thread
/// or async task.
#[derive(Clone, Debug)]
pub struct PatternSender {
    tx: Sender<Command>,
}

impl PatternSender {
    /// Shows `pattern` from now on (a no-op if it is already showing).
    pub fn show(&self, pattern: Pattern) -> Result<(), DriverError> {
        self.tx
            .send(Command::Show(pattern))
            .map_err(|_| DriverError::Stopped)
    }
}

/// Owns the thread that drives the LED. Dropping it stops the thread, turns
/// the LED off and drops the pin (a `SysfsLed` then
/// restores its trigger).
#[derive(Debug)]
pub struct LedDriver {
    sender: PatternSender,
    thread: Option<JoinHandle<()>>,
}

impl LedDriver {
    /// Starts a thread named `status-led` playing `initial` on `pin`. Pin
    /// errors go to `on_error` (e.g. a log call) and the write is retried a
    /// second later; they never stop the driver.
    pub fn spawn<P, F>(pin: P, initial: Pattern, on_error: F) -> io::Result<Self>
    where
        P: OutputPin + Send + 'static,
        F: FnMut(P::Error) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name(String::from("status-led"))
            .spawn(move || run(pin, initial, &rx, on_error))?;
        Ok(LedDriver {
            sender: PatternSender { tx },
            thread: Some(thread),
        })
    }

    /// Shows `pattern` from now on (a no-op if it is already showing).
    pub fn show(&self, pattern: Pattern) -> Result<(), DriverError> {
        self.sender.show(pattern)
    }

    /// A handle to give to other threads or tasks.
    pub fn sender(&self) -> PatternSender {
        self.sender.clone()
    }

    /// Stops the thread and waits for it: the LED is turned off and the pin
    /// dropped before this returns.
    pub fn stop(mut self) -> Result<(), DriverError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DriverError> {
        // Fails only if the thread is already gone; join tells us how.
        let _ = self.sender.tx.send(Command::Stop);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| DriverError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for LedDriver {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn run<P, F>(pin: P, initial: Pattern, rx: &Receiver<Command>, mut on_error: F)
where
    P: OutputPin,
    F: FnMut(P::Error),
{
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut led = StatusLed::new(pin, initial, now());
    let mut wait = settle(led.update(now()), &mut on_error);
    loop {
        let received = match wait {
            Some(ms) => match rx.recv_timeout(Duration::from_millis(u64::from(ms))) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(cmd) => Some(cmd),
                Err(_) => break,
            },
        };
        let result = match received {
            None => led.update(now()),
            Some(Command::Stop) => break,
            Some(Command::Show(mut pattern)) => {
                // Coalesce a burst of changes: only the latest one is shown.
                let mut stop = false;
                while let Ok(cmd) = rx.try_recv() {
                    match cmd {
                        Command::Show(p) => pattern = p,
                        Command::Stop => stop = true,
                    }
                }
                if stop {
                    break;
                }
                led.set_pattern(pattern, now())
            }
        };
        wait = settle(result, &mut on_error);
    }
    if let Err(e) = led.set_pattern(Pattern::Off, now()) {
        on_error(e);
    }
}

/// The wait after an update: its own, or the retry delay after an error.
fn settle<E>(result: Result<Option<u32>, E>, on_error: &mut impl FnMut(E)) -> Option<u32> {
    match result {
        Ok(wait) => wait,
        Err(e) => {
            on_error(e);
            Some(ERROR_RETRY_MS)
        }
    }
}
