//! Linux LED-class backend: `/sys/class/leds/<name>/{brightness,trigger}`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};

use embedded_hal::digital::{self, ErrorType, OutputPin};
use thiserror::Error;

/// Errors of the LED-class backend; each names the file involved.
#[derive(Debug, Error)]
pub enum SysfsError {
    /// The directory has no `brightness` file, so it is not an LED.
    #[error("{0}: not an LED directory (no brightness file)")]
    NotAnLed(PathBuf),
    /// Reading a file of the LED directory failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File that could not be read.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Writing a file of the LED directory failed (often: permission denied).
    #[error("cannot write {path}: {source}")]
    Write {
        /// File that could not be written.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// `max_brightness` holds something other than a positive integer.
    #[error("{path}: max_brightness {value:?} is not a positive integer")]
    BadMaxBrightness {
        /// The `max_brightness` file.
        path: PathBuf,
        /// Its (trimmed) content.
        value: String,
    },
}

impl digital::Error for SysfsError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

/// An LED-class device used as an output pin.
///
/// Opening it sets the kernel `trigger` to `none` (otherwise e.g. the `mmc0`
/// trigger on a Pi's ACT LED would fight the patterns) and remembers the old
/// trigger, which is written back on drop. "High" writes `max_brightness`
/// (or `1` when the file is absent), "low" writes `0`.
#[derive(Debug)]
pub struct SysfsLed {
    dir: PathBuf,
    on_value: String,
    saved_trigger: Option<String>,
}

impl SysfsLed {
    /// Opens the LED directory `dir` (e.g. `/sys/class/leds/ACT`, or a test
    /// directory holding plain `brightness` and `trigger` files).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SysfsError> {
        let dir = dir.into();
        let brightness = dir.join("brightness");
        match fs::metadata(&brightness) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(SysfsError::NotAnLed(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SysfsError::NotAnLed(dir)),
            Err(source) => {
                return Err(SysfsError::Read {
                    path: brightness,
                    source,
                })
            }
        }

        let max_path = dir.join("max_brightness");
        let on_value = match read_optional(&max_path)? {
            None => "1".to_string(),
            Some(text) => {
                let text = text.trim();
                match text.parse::<u32>() {
                    Ok(n) if n > 0 => n.to_string(),
                    _ => {
                        return Err(SysfsError::BadMaxBrightness {
                            path: max_path,
                            value: text.to_string(),
                        })
                    }
                }
            }
        };

        let trigger_path = dir.join("trigger");
        let saved_trigger = match read_optional(&trigger_path)? {
            None => None,
            Some(text) => match active_trigger(&text) {
                Some(t) if t != "none" => {
                    write_file(&trigger_path, "none")?;
                    Some(t.to_string())
                }
                _ => None,
            },
        };

        Ok(SysfsLed {
            dir,
            on_value,
            saved_trigger,
        })
    }

    /// The LED directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trigger that was active before opening, restored on drop
    /// (`None` if it was already `none` or there is no trigger file).
    pub fn saved_trigger(&self) -> Option<&str> {
        self.saved_trigger.as_deref()
    }

    /// Writes the saved trigger back now and reports failure (drop does the
    /// same silently).
    pub fn restore_trigger(mut self) -> Result<(), SysfsError> {
        self.restore()
    }

    fn restore(&mut self) -> Result<(), SysfsError> {
        match self.saved_trigger.take() {
            Some(t) => write_file(&self.dir.join("trigger"), &t),
            None => Ok(()),
        }
    }
}

impl Drop for SysfsLed {
    fn drop(&mut self) {
        // Nowhere to report an error from drop; restore_trigger() reports it.
        let _ = self.restore();
    }
}

impl ErrorType for SysfsLed {
    type Error = SysfsError;
}

impl OutputPin for SysfsLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        write_file(&self.dir.join("brightness"), "0")
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        write_file(&self.dir.join("brightness"), &self.on_value)
    }
}

/// The active trigger in a `trigger` file: the bracketed word of
/// `none [mmc0] timer`, or the only word of a file holding just one.
fn active_trigger(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    let bracketed = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')));
    match bracketed {
        Some(t) => Some(t),
        None => match (words.next(), words.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        },
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, SysfsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SysfsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One open + one write, truncating: correct for sysfs attributes and for
/// plain files standing in for them. Never creates the file.
fn write_file(path: &Path, value: &str) -> Result<(), SysfsError> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| SysfsError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::active_trigger;

    #[test]
    fn finds_active_trigger() {
        assert_eq!(active_trigger("none [mmc0] timer\n"), Some("mmc0"));
        assert_eq!(active_trigger("[none] mmc0"), Some("none"));
        assert_eq!(active_trigger("heartbeat\n"), Some("heartbeat"));
        assert_eq!(active_trigger("none mmc0"), None);
        assert_eq!(active_trigger(""), None);
    }
}
