//! The engine: turns "pattern + time" into pin writes and sleep durations.
//!
//! [`Sequencer`] is pure timing (no I/O). [`StatusLed`] owns an embedded-hal
//! [`OutputPin`], writes it only when the level changes, and tells the caller
//! how long it may sleep before the next change.

use core::convert::Infallible;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType, OutputPin};

use crate::pattern::{Level, Pattern, Tick};

/// Which pin level lights the LED.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// Pin high = LED on (LED between pin and ground).
    #[default]
    ActiveHigh,
    /// Pin low = LED on (LED between supply and pin).
    ActiveLow,
}

/// Pure timing state: which pattern is showing and since when.
///
/// Times are milliseconds on any monotonic clock the caller chooses (a `u64`
/// does not wrap in practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sequencer {
    pattern: Pattern,
    since_ms: u64,
}

impl Sequencer {
    /// Starts `pattern` at `now_ms`.
    pub const fn new(pattern: Pattern, now_ms: u64) -> Self {
        Sequencer {
            pattern,
            since_ms: now_ms,
        }
    }

    /// The pattern being shown.
    pub const fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// When the current timeline started.
    pub const fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// Switches to `pattern`, restarting its timeline at `now_ms`, and
    /// returns `true`. Setting the pattern already shown is a no-op that
    /// returns `false`, so repeated identical status reports do not keep
    /// resetting a heartbeat; use [`Sequencer::restart`] to force a restart.
    pub fn set_pattern(&mut self, pattern: Pattern, now_ms: u64) -> bool {
        if pattern == self.pattern {
            return false;
        }
        *self = Sequencer::new(pattern, now_ms);
        true
    }

    /// Restarts the current pattern's timeline at `now_ms`.
    pub fn restart(&mut self, now_ms: u64) {
        self.since_ms = now_ms;
    }

    /// The level at `now_ms` and the time until it next changes. A clock
    /// reading before the start counts as the start.
    pub fn at(&self, now_ms: u64) -> Tick {
        self.pattern
            .timeline()
            .at(now_ms.saturating_sub(self.since_ms))
    }
}

/// A status LED on an embedded-hal output pin, driven by a [`Sequencer`].
///
/// Call [`StatusLed::update`] with the current time whenever the previous
/// call's wait has elapsed (or earlier, harmlessly); call
/// [`StatusLed::set_pattern`] when the status changes. The pin is written only
/// when the LED level actually changes.
#[derive(Debug)]
pub struct StatusLed<P> {
    pin: P,
    seq: Sequencer,
    polarity: Polarity,
    /// Level known to be on the pin; `None` before the first write or after
    /// a failed one (so the next update writes again).
    written: Option<Level>,
}

impl<P: OutputPin> StatusLed<P> {
    /// Wraps `pin` (active-high) and starts `pattern` at `now_ms`. Nothing is
    /// written until the first [`StatusLed::update`].
    pub fn new(pin: P, pattern: Pattern, now_ms: u64) -> Self {
        StatusLed {
            pin,
            seq: Sequencer::new(pattern, now_ms),
            polarity: Polarity::ActiveHigh,
            written: None,
        }
    }

    /// Uses `polarity` for all later writes.
    pub fn with_polarity(mut self, polarity: Polarity) -> Self {
        if polarity != self.polarity {
            self.polarity = polarity;
            self.written = None;
        }
        self
    }

    /// The pattern being shown.
    pub fn pattern(&self) -> Pattern {
        self.seq.pattern()
    }

    /// The timing state (for inspection or tests).
    pub fn sequencer(&self) -> &Sequencer {
        &self.seq
    }

    /// The level last written successfully, if any.
    pub fn level(&self) -> Option<Level> {
        self.written
    }

    /// Switches to `pattern` (restarting its timeline at `now_ms` if it is a
    /// different pattern) and applies it at once, like [`StatusLed::update`].
    pub fn set_pattern(&mut self, pattern: Pattern, now_ms: u64) -> Result<Option<u32>, P::Error> {
        self.seq.set_pattern(pattern, now_ms);
        self.update(now_ms)
    }

    /// Restarts the current pattern at `now_ms` and applies it.
    pub fn restart(&mut self, now_ms: u64) -> Result<Option<u32>, P::Error> {
        self.seq.restart(now_ms);
        self.update(now_ms)
    }

    /// Brings the pin to the level due at `now_ms`, writing only on a change.
    ///
    /// Returns `Some(ms)`: call again after `ms` milliseconds; or `None`: the
    /// pattern is steady, sleep until the pattern changes. On a pin error the
    /// error is returned and the next call writes again; choose a retry delay.
    pub fn update(&mut self, now_ms: u64) -> Result<Option<u32>, P::Error> {
        let tick = self.seq.at(now_ms);
        self.write(tick.level)?;
        Ok(tick.next_change_ms)
    }

    /// Plays the pattern for `duration_ms` using a blocking `delay`, starting
    /// at virtual time `now_ms`, sleeping exactly until each edge. Returns the
    /// virtual time at the end, to pass to the next call. For boards with a
    /// delay but no clock.
    pub fn play<D: DelayNs>(
        &mut self,
        delay: &mut D,
        now_ms: u64,
        duration_ms: u64,
    ) -> Result<u64, P::Error> {
        let end = now_ms.saturating_add(duration_ms);
        let mut t = now_ms;
        while t < end {
            let left = end - t;
            let step = match self.update(t)? {
                Some(wait) => left.min(u64::from(wait)),
                None => left,
            };
            // Chunk waits longer than u32::MAX ms (steady patterns).
            let chunk = u32::try_from(step).unwrap_or(u32::MAX);
            delay.delay_ms(chunk);
            t += u64::from(chunk);
        }
        Ok(t)
    }

    /// Gives the pin back.
    pub fn into_pin(self) -> P {
        self.pin
    }

    fn write(&mut self, level: Level) -> Result<(), P::Error> {
        if self.written == Some(level) {
            return Ok(());
        }
        self.written = None;
        let high = (level == Level::On) == (self.polarity == Polarity::ActiveHigh);
        if high {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        self.written = Some(level);
        Ok(())
    }
}

/// An output that does nothing: the `none` LED, or a board without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NoLed;

impl ErrorType for NoLed {
    type Error = Infallible;
}

impl OutputPin for NoLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
