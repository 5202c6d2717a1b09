//! The LED-class backend against temporary directories acting as fake LEDs.

use std::fs;
use std::path::Path;

use embedded_hal::digital::OutputPin;
use firmware::{AnyLed, LedError, LedSpec, Pattern, StatusLed, SysfsError, SysfsLed};
use tempfile::TempDir;

fn fake_led(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        fs::write(dir.path().join(name), content).expect("write fake LED file");
    }
    dir
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).expect("read fake LED file")
}

#[test]
fn writes_max_brightness_and_zero_and_restores_the_trigger() {
    let dir = fake_led(&[
        ("brightness", "0\n"),
        ("max_brightness", "255\n"),
        ("trigger", "none rc-feedback [mmc0] timer heartbeat\n"),
    ]);
    let mut led = SysfsLed::open(dir.path()).expect("open");
    assert_eq!(read(dir.path(), "trigger"), "none");
    assert_eq!(led.saved_trigger(), Some("mmc0"));
    assert_eq!(led.dir(), dir.path());
    led.set_high().expect("on");
    assert_eq!(read(dir.path(), "brightness"), "255");
    led.set_low().expect("off");
    assert_eq!(read(dir.path(), "brightness"), "0");
    drop(led);
    assert_eq!(read(dir.path(), "trigger"), "mmc0");
}

#[test]
fn minimal_fake_led_uses_one_for_on() {
    let dir = fake_led(&[("brightness", "0"), ("trigger", "heartbeat\n")]);
    let mut led = SysfsLed::open(dir.path()).expect("open");
    assert_eq!(read(dir.path(), "trigger"), "none");
    led.set_high().expect("on");
    assert_eq!(read(dir.path(), "brightness"), "1");
    led.restore_trigger().expect("restore");
    assert_eq!(read(dir.path(), "trigger"), "heartbeat");
}

#[test]
fn trigger_already_none_is_left_alone() {
    let dir = fake_led(&[("brightness", "0"), ("trigger", "[none] mmc0\n")]);
    let led = SysfsLed::open(dir.path()).expect("open");
    assert_eq!(led.saved_trigger(), None);
    drop(led);
    assert_eq!(read(dir.path(), "trigger"), "[none] mmc0\n");
}

#[test]
fn no_trigger_file_is_fine_and_none_is_created() {
    let dir = fake_led(&[("brightness", "0")]);
    let mut led = SysfsLed::open(dir.path()).expect("open");
    led.set_high().expect("on");
    drop(led);
    assert!(!dir.path().join("trigger").exists());
    assert_eq!(read(dir.path(), "brightness"), "1");
}

#[test]
fn directory_without_brightness_is_not_an_led() {
    let dir = fake_led(&[("trigger", "none")]);
    match SysfsLed::open(dir.path()) {
        Err(SysfsError::NotAnLed(p)) => assert_eq!(p, dir.path()),
        other => panic!("expected NotAnLed, got {other:?}"),
    }
    let missing = dir.path().join("nope");
    assert!(matches!(
        SysfsLed::open(&missing),
        Err(SysfsError::NotAnLed(_))
    ));
}

#[test]
fn bad_max_brightness_is_a_typed_error() {
    for bad in ["abc", "0", "-1", ""] {
        let dir = fake_led(&[("brightness", "0"), ("max_brightness", bad)]);
        match SysfsLed::open(dir.path()) {
            Err(SysfsError::BadMaxBrightness { value, .. }) => assert_eq!(value, bad),
            other => panic!("{bad:?}: expected BadMaxBrightness, got {other:?}"),
        }
    }
}

#[test]
fn write_errors_are_returned_and_files_never_created() {
    let dir = fake_led(&[("brightness", "0"), ("trigger", "[mmc0]")]);
    let mut led = SysfsLed::open(dir.path()).expect("open");
    fs::remove_file(dir.path().join("brightness")).expect("rm");
    fs::remove_file(dir.path().join("trigger")).expect("rm");
    let err = led.set_high().expect_err("brightness gone");
    assert!(matches!(err, SysfsError::Write { ref path, .. } if path.ends_with("brightness")));
    assert!(err.to_string().contains("brightness"), "{err}");
    assert!(!dir.path().join("brightness").exists());
    assert!(matches!(
        led.restore_trigger(),
        Err(SysfsError::Write { .. })
    ));
    assert!(!dir.path().join("trigger").exists());
}

#[test]
fn spec_opens_a_fake_led_that_the_engine_drives() {
    let dir = fake_led(&[("brightness", "0"), ("trigger", "[mmc0]")]);
    let spec: LedSpec = format!("sysfs:{}", dir.path().display())
        .parse()
        .expect("spec");
    let pin = spec.open().expect("open");
    assert!(matches!(pin, AnyLed::Sysfs(_)));
    let mut led = StatusLed::new(pin, Pattern::Booting, 0);
    assert_eq!(led.update(0).expect("write"), Some(500));
    assert_eq!(read(dir.path(), "brightness"), "1");
    assert_eq!(led.update(500).expect("write"), Some(500));
    assert_eq!(read(dir.path(), "brightness"), "0");
    drop(led);
    assert_eq!(read(dir.path(), "trigger"), "mmc0");
}

#[test]
fn spec_none_opens_a_no_op_led() {
    let mut pin = LedSpec::None.open().expect("none");
    assert!(pin.is_none());
    pin.set_high().expect("no-op");
}

#[test]
fn spec_open_reports_missing_leds_and_chips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = LedSpec::Sysfs(dir.path().join("absent"));
    assert!(matches!(
        spec.open(),
        Err(LedError::Sysfs(SysfsError::NotAnLed(_)))
    ));
    let spec = LedSpec::Gpio {
        chip: dir.path().join("gpiochip99"),
        line: 17,
        active_low: false,
    };
    let err = spec.open().expect_err("no such chip");
    assert!(matches!(
        err,
        LedError::Gpio(firmware::GpioError::OpenChip { .. })
    ));
    assert!(err.to_string().contains("gpiochip99"), "{err}");
}
