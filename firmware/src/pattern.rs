//! The fixed set of LED patterns and their on/off timelines.
//!
//! Each [`Pattern`] is either steady (one level forever) or a repeating list of
//! [`Phase`]s. Repeating timelines always start with the LED on, alternate
//! strictly between on and off, and have an even number of phases, so every
//! phase boundary (including the wrap from the last phase to the first) is a
//! real level change. The unit tests check this for every pattern.

use core::fmt;
use core::str::FromStr;

/// Whether the LED is lit. Kept separate from pin levels so that active-low
/// wiring is a property of the output, not of the patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// LED dark.
    Off,
    /// LED lit.
    On,
}

/// One step of a repeating timeline: hold `level` for `ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Phase {
    /// Level held during this phase.
    pub level: Level,
    /// Duration of this phase in milliseconds (never zero).
    pub ms: u32,
}

/// How a pattern drives the LED over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timeline {
    /// One level until the pattern changes: no timer is needed at all.
    Steady(Level),
    /// These phases, repeated forever from the moment the pattern was set.
    Repeat(&'static [Phase]),
}

/// What the LED should show at one instant, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tick {
    /// Level the LED should have now.
    pub level: Level,
    /// Milliseconds until the level next changes; `None` for a steady
    /// pattern, whose level never changes until the pattern does.
    pub next_change_ms: Option<u32>,
}

const fn on(ms: u32) -> Phase {
    Phase {
        level: Level::On,
        ms,
    }
}

const fn off(ms: u32) -> Phase {
    Phase {
        level: Level::Off,
        ms,
    }
}

/// Slow even blink, 1 Hz.
const BOOTING: &[Phase] = &[on(500), off(500)];
/// Heartbeat: two short pulses, then a long dark pause (2 s cycle).
const IDLE: &[Phase] = &[on(100), off(150), on(100), off(1650)];
/// Fast even blink, about 3.3 Hz: still slow enough to count.
const PEER_SYNCING: &[Phase] = &[on(150), off(150)];
/// Rapid flicker, 10 Hz: too fast to count.
const STICK_BUSY: &[Phase] = &[on(50), off(50)];
/// Morse SOS (`... --- ...`), unit 150 ms: dot 1 unit, dash 3, gap inside a
/// letter 1, between letters 3, before repeating 7. Cycle 5.1 s.
const ATTENTION: &[Phase] = &[
    // S
    on(150),
    off(150),
    on(150),
    off(150),
    on(150),
    off(450),
    // O
    on(450),
    off(150),
    on(450),
    off(150),
    on(450),
    off(450),
    // S
    on(150),
    off(150),
    on(150),
    off(150),
    on(150),
    off(1050),
];

impl Timeline {
    /// Length of one cycle in milliseconds; `None` for a steady timeline.
    pub fn period_ms(&self) -> Option<u64> {
        match self {
            Timeline::Steady(_) => None,
            Timeline::Repeat(phases) => Some(phases.iter().map(|p| u64::from(p.ms)).sum()),
        }
    }

    /// The level and the time to the next change, `elapsed_ms` after the
    /// timeline started. Pure: depends only on its arguments, so a caller that
    /// wakes late still lands on the right phase (no drift).
    pub fn at(&self, elapsed_ms: u64) -> Tick {
        let phases = match self {
            Timeline::Steady(level) => {
                return Tick {
                    level: *level,
                    next_change_ms: None,
                }
            }
            Timeline::Repeat(phases) => phases,
        };
        let period = self.period_ms().unwrap_or(0);
        if period == 0 {
            // Not produced by any built-in pattern; treat as steady off.
            return Tick {
                level: Level::Off,
                next_change_ms: None,
            };
        }
        let mut pos = elapsed_ms % period;
        for phase in phases.iter() {
            let len = u64::from(phase.ms);
            if pos < len {
                // `len - pos` is at most `phase.ms`, so it fits in u32.
                let left = u32::try_from(len - pos).unwrap_or(phase.ms);
                return Tick {
                    level: phase.level,
                    next_change_ms: Some(left),
                };
            }
            pos -= len;
        }
        // Unreachable: pos < period == sum of phase lengths.
        Tick {
            level: Level::Off,
            next_change_ms: None,
        }
    }
}

/// A status the appliance shows on its single LED.
///
/// | pattern        | looks like                          | timing (ms)                              |
/// |----------------|-------------------------------------|------------------------------------------|
/// | `Off`          | dark                                | steady off                               |
/// | `Booting`      | slow even blink, 1 Hz               | on 500, off 500                          |
/// | `Idle`         | heartbeat, double pulse every 2 s   | on 100, off 150, on 100, off 1650        |
/// | `PeerSyncing`  | fast even blink, ~3 Hz              | on 150, off 150                          |
/// | `StickBusy`    | rapid flicker, 10 Hz                | on 50, off 50                            |
/// | `StickDone`    | solid on                            | steady on                                |
/// | `Attention`    | Morse SOS, repeating                | dot 150, dash 450, gaps 150/450/1050     |
///
/// When several states hold at once, show the one with the highest
/// [`Pattern::priority`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// LED dark: powered off, shut down, or LED released.
    Off,
    /// Starting up; wait.
    Booting,
    /// Running and healthy, nothing to do (heartbeat).
    Idle,
    /// Exchanging messages with a peer over the network; nothing to do.
    PeerSyncing,
    /// Reading or writing a USB stick: do NOT pull it.
    StickBusy,
    /// Finished with the USB stick: safe to pull it.
    StickDone,
    /// Something needs a person: a stick error, full disk, failed check.
    Attention,
}

impl Pattern {
    /// Every pattern, in the order of the documentation table.
    pub const ALL: [Pattern; 7] = [
        Pattern::Off,
        Pattern::Booting,
        Pattern::Idle,
        Pattern::PeerSyncing,
        Pattern::StickBusy,
        Pattern::StickDone,
        Pattern::Attention,
    ];

    /// The on/off timeline this pattern plays.
    pub const fn timeline(self) -> Timeline {
        match self {
            Pattern::Off => Timeline::Steady(Level::Off),
            Pattern::Booting => Timeline::Repeat(BOOTING),
            Pattern::Idle => Timeline::Repeat(IDLE),
            Pattern::PeerSyncing => Timeline::Repeat(PEER_SYNCING),
            Pattern::StickBusy => Timeline::Repeat(STICK_BUSY),
            Pattern::StickDone => Timeline::Steady(Level::On),
            Pattern::Attention => Timeline::Repeat(ATTENTION),
        }
    }

    /// Stable lower-case name (`"stick-busy"`), used in logs and CLI flags.
    pub const fn name(self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::Booting => "booting",
            Pattern::Idle => "idle",
            Pattern::PeerSyncing => "peer-syncing",
            Pattern::StickBusy => "stick-busy",
            Pattern::StickDone => "stick-done",
            Pattern::Attention => "attention",
        }
    }

    /// Which pattern wins when several states hold at once (higher wins).
    /// Attention beats everything; "don't pull" beats "safe to pull", which
    /// beats network activity, so a person is never told a busy stick is done.
    pub const fn priority(self) -> u8 {
        match self {
            Pattern::Off => 0,
            Pattern::Idle => 1,
            Pattern::Booting => 2,
            Pattern::PeerSyncing => 3,
            Pattern::StickDone => 4,
            Pattern::StickBusy => 5,
            Pattern::Attention => 6,
        }
    }

    /// The more urgent of two patterns, by [`Pattern::priority`].
    pub const fn most_urgent(self, other: Pattern) -> Pattern {
        if other.priority() > self.priority() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not the [`Pattern::name`] of any pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownPattern;

impl fmt::Display for UnknownPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown LED pattern; expected one of: ")?;
        for (i, p) in Pattern::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(p.name())?;
        }
        Ok(())
    }
}

impl core::error::Error for UnknownPattern {}

impl FromStr for Pattern {
    type Err = UnknownPattern;

    /// Parses a [`Pattern::name`], ignoring ASCII case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Pattern::ALL
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or(UnknownPattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeating_timelines_alternate_and_start_on() {
        for p in Pattern::ALL {
            if let Timeline::Repeat(phases) = p.timeline() {
                assert!(!phases.is_empty(), "{p}");
                assert_eq!(phases.len() % 2, 0, "{p}: odd phase count");
                assert_eq!(phases[0].level, Level::On, "{p}");
                for pair in phases.windows(2) {
                    assert_ne!(pair[0].level, pair[1].level, "{p}: no change");
                }
                assert!(phases.iter().all(|ph| ph.ms > 0), "{p}: zero phase");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(p.name().parse::<Pattern>(), Ok(p));
        }
        assert_eq!(" Stick-Busy ".parse::<Pattern>(), Ok(Pattern::StickBusy));
        assert_eq!("blinky".parse::<Pattern>(), Err(UnknownPattern));
    }

    #[test]
    fn periods() {
        assert_eq!(Pattern::Booting.timeline().period_ms(), Some(1000));
        assert_eq!(Pattern::Idle.timeline().period_ms(), Some(2000));
        assert_eq!(Pattern::PeerSyncing.timeline().period_ms(), Some(300));
        assert_eq!(Pattern::StickBusy.timeline().period_ms(), Some(100));
        assert_eq!(Pattern::Attention.timeline().period_ms(), Some(5100));
        assert_eq!(Pattern::StickDone.timeline().period_ms(), None);
    }

    #[test]
    fn priorities_are_distinct() {
        for a in Pattern::ALL {
            for b in Pattern::ALL {
                if a != b {
                    assert_ne!(a.priority(), b.priority());
                }
            }
        }
        assert_eq!(
            Pattern::StickDone.most_urgent(Pattern::StickBusy),
            Pattern::StickBusy
        );
        assert_eq!(
            Pattern::Attention.most_urgent(Pattern::StickBusy),
            Pattern::Attention
        );
    }
}
