//! `LedSpec` parsing: accepted forms, round trips, and typed errors.

use std::path::PathBuf;

use firmware::{LedSpec, SpecError};

fn parse(s: &str) -> Result<LedSpec, SpecError> {
    s.parse()
}

fn gpio(chip: &str, line: u32, active_low: bool) -> LedSpec {
    LedSpec::Gpio {
        chip: PathBuf::from(chip),
        line,
        active_low,
    }
}

#[test]
fn accepted_forms() {
    assert_eq!(parse("none"), Ok(LedSpec::None));
    assert_eq!(parse("  none\n"), Ok(LedSpec::None));
    assert_eq!(
        parse("sysfs:ACT"),
        Ok(LedSpec::Sysfs("/sys/class/leds/ACT".into()))
    );
    assert_eq!(
        parse("sysfs:/tmp/fake-led"),
        Ok(LedSpec::Sysfs("/tmp/fake-led".into()))
    );
    assert_eq!(
        parse("gpio:gpiochip0:17"),
        Ok(gpio("/dev/gpiochip0", 17, false))
    );
    assert_eq!(
        parse("gpio:gpiochip4:27:active-low"),
        Ok(gpio("/dev/gpiochip4", 27, true))
    );
    assert_eq!(
        parse("gpio:/dev/gpiochip1:0"),
        Ok(gpio("/dev/gpiochip1", 0, false))
    );
}

#[test]
fn led_names_may_contain_colons() {
    assert_eq!(
        parse("sysfs:input3::capslock"),
        Ok(LedSpec::Sysfs("/sys/class/leds/input3::capslock".into()))
    );
    assert_eq!(
        parse("sysfs:mmc0::"),
        Ok(LedSpec::Sysfs("/sys/class/leds/mmc0::".into()))
    );
}

#[test]
fn display_round_trips() {
    for s in [
        "none",
        "sysfs:ACT",
        "sysfs:input3::capslock",
        "sysfs:/tmp/fake-led",
        "gpio:gpiochip0:17",
        "gpio:gpiochip0:17:active-low",
        "gpio:/srv/chip:3",
    ] {
        let spec = parse(s).expect(s);
        assert_eq!(spec.to_string(), s);
        assert_eq!(parse(&spec.to_string()), Ok(spec));
    }
    // An absolute path under /sys/class/leds prints in the short form.
    assert_eq!(
        parse("sysfs:/sys/class/leds/ACT").expect("ok").to_string(),
        "sysfs:ACT"
    );
    assert_eq!(
        parse("gpio:/dev/gpiochip0:5").expect("ok").to_string(),
        "gpio:gpiochip0:5"
    );
}

#[test]
fn typed_errors() {
    assert_eq!(parse(""), Err(SpecError::Empty));
    assert_eq!(parse("   "), Err(SpecError::Empty));
    assert_eq!(
        parse("led:ACT"),
        Err(SpecError::UnknownBackend("led".into()))
    );
    assert_eq!(parse("ACT"), Err(SpecError::UnknownBackend("ACT".into())));
    assert_eq!(
        parse("SYSFS:ACT"),
        Err(SpecError::UnknownBackend("SYSFS".into()))
    );
    assert_eq!(parse("sysfs"), Err(SpecError::MissingArgument("sysfs")));
    assert_eq!(parse("sysfs:"), Err(SpecError::MissingArgument("sysfs")));
    assert_eq!(parse("gpio"), Err(SpecError::MissingArgument("gpio")));
    assert_eq!(parse("gpio:"), Err(SpecError::MissingArgument("gpio")));
    assert_eq!(
        parse("none:x"),
        Err(SpecError::NoneTakesNoArgument("x".into()))
    );
    assert_eq!(
        parse("sysfs:leds/ACT"),
        Err(SpecError::RelativeSysfsPath("leds/ACT".into()))
    );
    assert_eq!(
        parse("sysfs:.."),
        Err(SpecError::RelativeSysfsPath("..".into()))
    );
    assert_eq!(
        parse("gpio:gpiochip0"),
        Err(SpecError::GpioShape("gpiochip0".into()))
    );
    assert_eq!(parse("gpio::17"), Err(SpecError::GpioShape(":17".into())));
    assert_eq!(
        parse("gpio:gpiochip0:17:active-low:x"),
        Err(SpecError::GpioShape("gpiochip0:17:active-low:x".into()))
    );
    assert_eq!(
        parse("gpio:dev/gpiochip0:17"),
        Err(SpecError::RelativeGpioChip("dev/gpiochip0".into()))
    );
    assert!(matches!(
        parse("gpio:gpiochip0:seventeen"),
        Err(SpecError::GpioLine { line, .. }) if line == "seventeen"
    ));
    assert!(matches!(
        parse("gpio:gpiochip0:-1"),
        Err(SpecError::GpioLine { .. })
    ));
    assert!(matches!(
        parse("gpio:gpiochip0:"),
        Err(SpecError::GpioLine { .. })
    ));
    assert_eq!(
        parse("gpio:gpiochip0:17:inverted"),
        Err(SpecError::GpioOption("inverted".into()))
    );
}

#[test]
fn error_messages_say_what_is_accepted() {
    let msg = parse("led:ACT").expect_err("bad").to_string();
    assert!(msg.contains("\"led\""), "{msg}");
    assert!(
        msg.contains("sysfs:NAME") && msg.contains("gpio:CHIP:LINE"),
        "{msg}"
    );
    let msg = parse("gpio:gpiochip0:x").expect_err("bad").to_string();
    assert!(msg.contains("\"x\""), "{msg}");
}
