//! The thread-based driver, with a recording pin and a fake sysfs LED.
//! Timing assertions only bound from below (edges never come early) and
//! loosely from above, so a busy machine does not make them flaky.

use std::convert::Infallible;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, OutputPin};
use firmware::{DriverError, LedDriver, LedSpec, Pattern};

type Log = Arc<Mutex<Vec<(Instant, bool)>>>;

/// Records every write with its time.
struct Recorder(Log);

impl ErrorType for Recorder {
    type Error = Infallible;
}

impl OutputPin for Recorder {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.lock().expect("log").push((Instant::now(), false));
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.lock().expect("log").push((Instant::now(), true));
        Ok(())
    }
}

fn levels(log: &Log) -> Vec<bool> {
    log.lock().expect("log").iter().map(|&(_, l)| l).collect()
}

/// Polls `cond` for up to 5 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(5));
    }
    false
}

fn no_errors(e: Infallible) {
    match e {}
}

#[test]
fn steady_pattern_writes_once_then_sleeps() {
    let log = Log::default();
    let driver =
        LedDriver::spawn(Recorder(log.clone()), Pattern::StickDone, no_errors).expect("spawn");
    assert!(eventually(|| levels(&log) == [true]));
    sleep(Duration::from_millis(300));
    assert_eq!(levels(&log), [true], "no writes while steady");
    driver.stop().expect("stop");
    assert_eq!(levels(&log), [true, false], "turned off on stop");
}

#[test]
fn blinks_with_edges_never_early_and_no_redundant_writes() {
    let log = Log::default();
    let driver =
        LedDriver::spawn(Recorder(log.clone()), Pattern::Booting, no_errors).expect("spawn");
    assert!(eventually(|| levels(&log).len() >= 3));
    driver.stop().expect("stop");
    let log = log.lock().expect("log").clone();
    for pair in log.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "redundant write");
    }
    assert!(log[0].1, "booting starts lit");
    let gap = log[1].0 - log[0].0;
    assert!(gap >= Duration::from_millis(450), "edge too early: {gap:?}");
    assert!(
        gap <= Duration::from_millis(2500),
        "edge far too late: {gap:?}"
    );
}

#[test]
fn pattern_changes_from_another_thread_take_effect() {
    let log = Log::default();
    let driver = LedDriver::spawn(Recorder(log.clone()), Pattern::Off, no_errors).expect("spawn");
    let sender = driver.sender();
    assert!(eventually(|| levels(&log) == [false]));
    std::thread::spawn(move || sender.show(Pattern::StickBusy))
        .join()
        .expect("join")
        .expect("send");
    // 10 Hz flicker: several alternating writes within a few hundred ms.
    assert!(eventually(|| levels(&log).len() >= 6));
    driver.show(Pattern::StickDone).expect("send");
    assert!(eventually(|| levels(&log).last() == Some(&true)));
    sleep(Duration::from_millis(200));
    let settled = levels(&log);
    sleep(Duration::from_millis(200));
    assert_eq!(levels(&log), settled, "steady after the switch");
    for pair in settled.windows(2) {
        assert_ne!(pair[0], pair[1], "redundant write");
    }
    drop(driver);
    assert_eq!(levels(&log).last(), Some(&false));
}

#[test]
fn senders_fail_once_the_driver_has_stopped() {
    let log = Log::default();
    let driver = LedDriver::spawn(Recorder(log), Pattern::Idle, no_errors).expect("spawn");
    let sender = driver.sender();
    driver.stop().expect("stop");
    assert_eq!(sender.show(Pattern::Attention), Err(DriverError::Stopped));
}

#[test]
fn pin_errors_go_to_the_callback_and_the_driver_keeps_going() {
    struct Broken;
    impl ErrorType for Broken {
        type Error = embedded_hal::digital::ErrorKind;
    }
    impl OutputPin for Broken {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            Err(embedded_hal::digital::ErrorKind::Other)
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            Err(embedded_hal::digital::ErrorKind::Other)
        }
    }
    let errors = Arc::new(AtomicUsize::new(0));
    let count = errors.clone();
    let driver = LedDriver::spawn(Broken, Pattern::StickDone, move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    })
    .expect("spawn");
    assert!(eventually(|| errors.load(Ordering::SeqCst) >= 1));
    driver.show(Pattern::Idle).expect("still running");
    driver.stop().expect("stop");
}

#[test]
fn drives_a_fake_sysfs_led_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("brightness"), "0").expect("write");
    fs::write(dir.path().join("trigger"), "none [mmc0]").expect("write");
    let spec: LedSpec = format!("sysfs:{}", dir.path().display())
        .parse()
        .expect("spec");
    let pin = spec.open().expect("open");
    let driver = LedDriver::spawn(pin, Pattern::StickDone, |e| panic!("{e}")).expect("spawn");
    let brightness = || fs::read_to_string(dir.path().join("brightness")).expect("read");
    assert!(eventually(|| brightness() == "1"));
    assert_eq!(
        fs::read_to_string(dir.path().join("trigger")).expect("read"),
        "none"
    );
    driver.stop().expect("stop");
    assert_eq!(brightness(), "0");
    assert_eq!(
        fs::read_to_string(dir.path().join("trigger")).expect("read"),
        "mmc0"
    );
}
