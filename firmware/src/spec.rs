//! `LedSpec`: which LED to drive, parsed from a command-line string.

use core::fmt;
use core::num::ParseIntError;
use core::str::FromStr;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};

use thiserror::Error;

/// Where the kernel lists LED-class devices; `sysfs:NAME` means `SYSFS_LEDS_DIR/NAME`.
pub const SYSFS_LEDS_DIR: &str = "/sys/class/leds";
/// Where GPIO chips live; `gpio:gpiochip0:17` means `DEV_DIR/gpiochip0`.
pub const DEV_DIR: &str = "/dev";

const USAGE: &str = "expected none, sysfs:NAME, sysfs:/abs/dir or gpio:CHIP:LINE[:active-low]";

/// Which LED to drive.
///
/// | string                        | meaning                                             |
/// |-------------------------------|-----------------------------------------------------|
/// | `none`                        | no LED                                              |
/// | `sysfs:ACT`                   | LED class device `/sys/class/leds/ACT`              |
/// | `sysfs:/abs/dir`              | a directory with `brightness` (and `trigger`) files |
/// | `gpio:gpiochip0:17`           | line 17 of `/dev/gpiochip0`, LED lit when high      |
/// | `gpio:gpiochip0:17:active-low`| same, LED lit when low                              |
/// | `gpio:/dev/gpiochip0:17`      | chip given by absolute path                         |
///
/// LED names may contain `:` (`input3::capslock`); everything after `sysfs:`
/// is the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LedSpec {
    /// No LED: status changes are accepted and ignored.
    None,
    /// A Linux LED-class directory (holds `brightness`, usually `trigger`).
    Sysfs(PathBuf),
    /// One line of a GPIO character device, driven as an output.
    Gpio {
        /// Path of the chip device, e.g. `/dev/gpiochip0`.
        chip: PathBuf,
        /// Line offset on the chip.
        line: u32,
        /// LED lit when the line is low.
        active_low: bool,
    },
}

/// Why an LED spec string was rejected. Messages name the accepted forms.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// The string was empty.
    #[error("empty LED spec; {USAGE}")]
    Empty,
    /// The part before the first `:` is not a known backend.
    #[error("unknown LED backend {0:?}; {USAGE}")]
    UnknownBackend(String),
    /// `sysfs` or `gpio` without anything after it.
    #[error("LED backend {0:?} needs an argument; {USAGE}")]
    MissingArgument(&'static str),
    /// `none:something`.
    #[error("LED backend \"none\" takes no argument (got {0:?})")]
    NoneTakesNoArgument(String),
    /// `sysfs:` followed by a relative path (or `.`/`..`) instead of a
    /// plain LED name or an absolute directory.
    #[error("sysfs LED {0:?} is neither a plain LED name nor an absolute path")]
    RelativeSysfsPath(String),
    /// `gpio:` not of the form `CHIP:LINE[:active-low]`.
    #[error("GPIO LED spec {0:?} is not CHIP:LINE[:active-low]")]
    GpioShape(String),
    /// The GPIO chip is a relative path.
    #[error("GPIO chip {0:?} is neither a plain name (gpiochip0) nor an absolute path")]
    RelativeGpioChip(String),
    /// The GPIO line is not a non-negative integer.
    #[error("GPIO line {line:?} is not a line number: {source}")]
    GpioLine {
        /// The offending text.
        line: String,
        /// Why it did not parse.
        source: ParseIntError,
    },
    /// A GPIO option other than `active-low`.
    #[error("unknown GPIO LED option {0:?}; the only option is active-low")]
    GpioOption(String),
}

impl FromStr for LedSpec {
    type Err = SpecError;

    /// Parses `none`, `sysfs:NAME`, `sysfs:/abs/dir` or
    /// `gpio:CHIP:LINE[:active-low]` (surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        let (backend, arg) = match s.split_once(':') {
            Some((b, a)) => (b, Some(a)),
            None => (s, None),
        };
        match backend {
            "none" => match arg {
                None => Ok(LedSpec::None),
                Some(a) => Err(SpecError::NoneTakesNoArgument(a.to_string())),
            },
            "sysfs" => parse_sysfs(arg.unwrap_or("")),
            "gpio" => parse_gpio(arg.unwrap_or("")),
            other => Err(SpecError::UnknownBackend(other.to_string())),
        }
    }
}

fn parse_sysfs(arg: &str) -> Result<LedSpec, SpecError> {
    if arg.is_empty() {
        return Err(SpecError::MissingArgument("sysfs"));
    }
    if arg.starts_with('/') {
        return Ok(LedSpec::Sysfs(PathBuf::from(arg)));
    }
    if arg.contains('/') || arg == "." || arg == ".." {
        return Err(SpecError::RelativeSysfsPath(arg.to_string()));
    }
    Ok(LedSpec::Sysfs(Path::new(SYSFS_LEDS_DIR).join(arg)))
}

fn parse_gpio(arg: &str) -> Result<LedSpec, SpecError> {
    if arg.is_empty() {
        return Err(SpecError::MissingArgument("gpio"));
    }
    let mut parts = arg.split(':');
    let (chip, line, option) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(chip), Some(line), option, None) if !chip.is_empty() => (chip, line, option),
        _ => return Err(SpecError::GpioShape(arg.to_string())),
    };
    let chip = if chip.starts_with('/') {
        PathBuf::from(chip)
    } else if chip.contains('/') || chip == "." || chip == ".." {
        return Err(SpecError::RelativeGpioChip(chip.to_string()));
    } else {
        Path::new(DEV_DIR).join(chip)
    };
    let line = line.parse::<u32>().map_err(|source| SpecError::GpioLine {
        line: line.to_string(),
        source,
    })?;
    let active_low = match option {
        None => false,
        Some("active-low") => true,
        Some(other) => return Err(SpecError::GpioOption(other.to_string())),
    };
    Ok(LedSpec::Gpio {
        chip,
        line,
        active_low,
    })
}

impl fmt::Display for LedSpec {
    /// Writes the spec back in the form [`LedSpec::from_str`] accepts,
    /// using the short `sysfs:NAME` / `gpio:gpiochipN` forms where possible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedSpec::None => f.write_str("none"),
            LedSpec::Sysfs(dir) => match short_name(dir, SYSFS_LEDS_DIR) {
                Some(name) => write!(f, "sysfs:{name}"),
                None => write!(f, "sysfs:{}", dir.display()),
            },
            LedSpec::Gpio {
                chip,
                line,
                active_low,
            } => {
                match short_name(chip, DEV_DIR) {
                    Some(name) => write!(f, "gpio:{name}:{line}")?,
                    None => write!(f, "gpio:{}:{line}", chip.display())?,
                }
                if *active_low {
                    f.write_str(":active-low")?;
                }
                Ok(())
            }
        }
    }
}

/// `name` if `path` is exactly `root/name` with a single UTF-8 component.
fn short_name<'a>(path: &'a Path, root: &str) -> Option<&'a str> {
    let name = path.strip_prefix(root).ok()?.to_str()?;
    (!name.is_empty() && !name.contains('/') && name != "." && name != "..").then_some(name)
}
