//! Exact timing of every pattern, pattern switching and "no redundant writes",
//! checked against embedded-hal-mock pins: the mock fails on any pin write not
//! listed, so each test also proves that no extra writes happen.

use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as Delay};
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as Pin};
use embedded_hal_mock::eh1::MockError;
use firmware::{Level, NoLed, Pattern, Polarity, Sequencer, StatusLed};

use Level::{Off, On};

fn write(level: Level) -> Pin {
    Pin::set(match level {
        On => State::High,
        Off => State::Low,
    })
}

/// Drives `pattern` (started at `t0`) the way a driver would, sleeping exactly
/// the returned wait, until `t0 + until`; also pokes the engine in the middle
/// of every phase (which must not write). Returns the edges seen, as
/// (time since t0, level). The mock pin expects exactly `expected` writes.
fn run(pattern: Pattern, t0: u64, until: u64, expected: &[(u64, Level)]) -> Vec<(u64, Level)> {
    let writes: Vec<Pin> = expected.iter().map(|&(_, l)| write(l)).collect();
    let mut led = StatusLed::new(PinMock::new(&writes), pattern, t0);
    let mut edges = Vec::new();
    let mut last = None;
    let mut t = t0;
    while t <= t0 + until {
        let wait = led.update(t).expect("mock pin write");
        let level = led.level().expect("level known after a write");
        if last != Some(level) {
            edges.push((t - t0, level));
            last = Some(level);
        }
        let wait = u64::from(wait.expect("repeating pattern has a next change"));
        if wait > 1 {
            // Halfway through the phase: same level, shorter wait, no write.
            let mid = led.update(t + wait / 2).expect("no write");
            assert_eq!(mid, Some(u32::try_from(wait - wait / 2).expect("small")));
        }
        t += wait;
    }
    led.into_pin().done();
    edges
}

fn check(pattern: Pattern, until: u64, expected: &[(u64, Level)]) {
    assert_eq!(
        run(pattern, 0, until, expected),
        expected,
        "{pattern} from 0"
    );
    // The timeline is relative to when the pattern was set.
    assert_eq!(
        run(pattern, 987_654, until, expected),
        expected,
        "{pattern} from 987654"
    );
}

/// Two cycles of `cycle` (edge times within one cycle), plus the first edge
/// of the third cycle.
fn two_cycles(cycle: &[(u64, Level)], period: u64) -> Vec<(u64, Level)> {
    let mut all: Vec<_> = cycle.to_vec();
    all.extend(cycle.iter().map(|&(t, l)| (t + period, l)));
    all.push((2 * period, On));
    all
}

#[test]
fn booting_is_slow_even_blink() {
    let e = two_cycles(&[(0, On), (500, Off)], 1000);
    assert_eq!(
        e[..5],
        [(0, On), (500, Off), (1000, On), (1500, Off), (2000, On)]
    );
    check(Pattern::Booting, 2000, &e);
}

#[test]
fn idle_is_heartbeat() {
    let e = two_cycles(&[(0, On), (100, Off), (250, On), (350, Off)], 2000);
    assert_eq!(
        e[4..],
        [(2000, On), (2100, Off), (2250, On), (2350, Off), (4000, On)]
    );
    check(Pattern::Idle, 4000, &e);
}

#[test]
fn peer_syncing_is_fast_blink() {
    let e = two_cycles(&[(0, On), (150, Off)], 300);
    check(Pattern::PeerSyncing, 600, &e);
}

#[test]
fn stick_busy_is_rapid_flicker() {
    let e = two_cycles(&[(0, On), (50, Off)], 100);
    assert_eq!(e, [(0, On), (50, Off), (100, On), (150, Off), (200, On)]);
    check(Pattern::StickBusy, 200, &e);
}

#[test]
fn attention_is_sos() {
    let sos = [
        // S: three 150 ms dots, 150 ms apart
        (0, On),
        (150, Off),
        (300, On),
        (450, Off),
        (600, On),
        (750, Off),
        // O: three 450 ms dashes, after a 450 ms letter gap
        (1200, On),
        (1650, Off),
        (1800, On),
        (2250, Off),
        (2400, On),
        (2850, Off),
        // S again, then a 1050 ms pause before repeating
        (3300, On),
        (3450, Off),
        (3600, On),
        (3750, Off),
        (3900, On),
        (4050, Off),
    ];
    let e = two_cycles(&sos, 5100);
    check(Pattern::Attention, 10_200, &e);
}

fn check_steady(pattern: Pattern, level: Level) {
    let mut led = StatusLed::new(PinMock::new(&[write(level)]), pattern, 0);
    for t in [0, 1, 500, 10_000, 86_400_000, u64::MAX] {
        assert_eq!(led.update(t), Ok(None), "{pattern} at {t}");
    }
    assert_eq!(led.level(), Some(level));
    led.into_pin().done();
}

#[test]
fn stick_done_is_solid_on_with_one_write() {
    check_steady(Pattern::StickDone, On);
}

#[test]
fn off_is_dark_with_one_write() {
    check_steady(Pattern::Off, Off);
}

#[test]
fn every_pattern_starts_with_documented_level() {
    for p in Pattern::ALL {
        let first = if p == Pattern::Off { Off } else { On };
        assert_eq!(Sequencer::new(p, 0).at(0).level, first, "{p}");
    }
}

#[test]
fn switching_restarts_the_timeline() {
    // Idle; at 1234 the heartbeat is dark (350..2000). Switch to Booting:
    // it starts over, lit at once for 500 ms.
    let mut led = StatusLed::new(
        PinMock::new(&[write(On), write(Off), write(On), write(Off)]),
        Pattern::Idle,
        0,
    );
    assert_eq!(led.update(0), Ok(Some(100)));
    assert_eq!(led.update(100), Ok(Some(150)));
    assert_eq!(led.set_pattern(Pattern::Booting, 1234), Ok(Some(500)));
    assert_eq!(led.pattern(), Pattern::Booting);
    assert_eq!(led.sequencer().since_ms(), 1234);
    assert_eq!(led.update(1733), Ok(Some(1)));
    assert_eq!(led.update(1734), Ok(Some(500)));
    led.into_pin().done();
}

#[test]
fn switching_to_the_same_level_writes_nothing() {
    // Idle is lit at 50; Booting also starts lit: no write on the switch.
    let mut led = StatusLed::new(PinMock::new(&[write(On), write(Off)]), Pattern::Idle, 0);
    assert_eq!(led.update(0), Ok(Some(100)));
    assert_eq!(led.set_pattern(Pattern::Booting, 50), Ok(Some(500)));
    assert_eq!(led.update(549), Ok(Some(1)));
    assert_eq!(led.update(550), Ok(Some(500)));
    led.into_pin().done();
}

#[test]
fn setting_the_current_pattern_does_not_restart_it() {
    let mut led = StatusLed::new(PinMock::new(&[write(On), write(Off)]), Pattern::Idle, 0);
    assert_eq!(led.update(0), Ok(Some(100)));
    assert_eq!(led.update(400), Ok(Some(1600)));
    // Same pattern at 1000: still in the 350..2000 dark phase.
    assert_eq!(led.set_pattern(Pattern::Idle, 1000), Ok(Some(1000)));
    assert_eq!(led.sequencer().since_ms(), 0);
    led.into_pin().done();
}

#[test]
fn restart_forces_a_fresh_timeline() {
    let mut led = StatusLed::new(
        PinMock::new(&[write(On), write(Off), write(On)]),
        Pattern::Idle,
        0,
    );
    assert_eq!(led.update(0), Ok(Some(100)));
    assert_eq!(led.update(400), Ok(Some(1600)));
    assert_eq!(led.restart(1000), Ok(Some(100)));
    led.into_pin().done();
}

#[test]
fn steady_and_blinking_switch_back_and_forth() {
    let mut led = StatusLed::new(
        PinMock::new(&[write(On), write(Off), write(On), write(Off)]),
        Pattern::StickBusy,
        0,
    );
    assert_eq!(led.update(0), Ok(Some(50)));
    assert_eq!(led.update(50), Ok(Some(50)));
    // Busy -> done: lit, and no timer needed.
    assert_eq!(led.set_pattern(Pattern::StickDone, 70), Ok(None));
    assert_eq!(led.update(100_000), Ok(None));
    // Done -> idle: the heartbeat starts lit, so no write until 100 ms later.
    assert_eq!(led.set_pattern(Pattern::Idle, 100_000), Ok(Some(100)));
    assert_eq!(led.update(100_100), Ok(Some(150)));
    // Idle -> off: one write, no timer.
    assert_eq!(led.set_pattern(Pattern::Off, 100_120), Ok(None));
    assert_eq!(led.update(200_000), Ok(None));
    led.into_pin().done();
}

#[test]
fn a_late_wakeup_lands_on_the_right_phase() {
    // Booting: lit 0..500, 1000..1500, ... Waking at 1234 (late) keeps it lit
    // with 266 ms left; 1600 is dark with 400 ms left. No drift.
    let mut led = StatusLed::new(PinMock::new(&[write(On), write(Off)]), Pattern::Booting, 0);
    assert_eq!(led.update(0), Ok(Some(500)));
    assert_eq!(led.update(1234), Ok(Some(266)));
    assert_eq!(led.update(1600), Ok(Some(400)));
    led.into_pin().done();
}

#[test]
fn a_clock_before_the_start_counts_as_the_start() {
    let seq = Sequencer::new(Pattern::Booting, 1000);
    assert_eq!(seq.at(10), seq.at(1000));
    assert_eq!(seq.at(10).next_change_ms, Some(500));
}

#[test]
fn active_low_inverts_writes() {
    let mut led = StatusLed::new(
        PinMock::new(&[Pin::set(State::Low), Pin::set(State::High)]),
        Pattern::Booting,
        0,
    )
    .with_polarity(Polarity::ActiveLow);
    assert_eq!(led.update(0), Ok(Some(500)));
    assert_eq!(led.update(500), Ok(Some(500)));
    assert_eq!(led.level(), Some(Off));
    led.into_pin().done();
}

#[test]
fn pin_errors_are_returned_and_the_write_retried() {
    let err = MockError::Io(std::io::ErrorKind::PermissionDenied);
    let mut led = StatusLed::new(
        PinMock::new(&[
            Pin::set(State::High).with_error(err.clone()),
            write(On),
            write(Off),
        ]),
        Pattern::Booting,
        0,
    );
    assert_eq!(led.update(0), Err(err));
    assert_eq!(led.level(), None);
    // Retried on the next call, then no redundant writes.
    assert_eq!(led.update(10), Ok(Some(490)));
    assert_eq!(led.update(20), Ok(Some(480)));
    assert_eq!(led.update(500), Ok(Some(500)));
    led.into_pin().done();
}

#[test]
fn play_sleeps_exactly_until_each_edge() {
    let pin = PinMock::new(&[write(On), write(Off), write(On), write(Off), write(On)]);
    let mut delay = CheckedDelay::new(&[
        Delay::delay_ms(100),
        Delay::delay_ms(150),
        Delay::delay_ms(100),
        Delay::delay_ms(1650),
        Delay::delay_ms(50),
    ]);
    let mut led = StatusLed::new(pin, Pattern::Idle, 0);
    // 2050 ms: one full heartbeat, then 50 ms into the next one.
    assert_eq!(led.play(&mut delay, 0, 2050), Ok(2050));
    delay.done();
    led.into_pin().done();
}

#[test]
fn play_steady_is_one_write_and_one_sleep() {
    let mut delay = CheckedDelay::new(&[Delay::delay_ms(60_000)]);
    let mut led = StatusLed::new(PinMock::new(&[write(On)]), Pattern::StickDone, 0);
    assert_eq!(led.play(&mut delay, 5, 60_000), Ok(60_005));
    delay.done();
    led.into_pin().done();
}

#[test]
fn no_led_accepts_everything() {
    let mut led = StatusLed::new(NoLed, Pattern::Attention, 0);
    assert_eq!(led.update(0), Ok(Some(150)));
    assert_eq!(led.set_pattern(Pattern::StickDone, 1), Ok(None));
}
