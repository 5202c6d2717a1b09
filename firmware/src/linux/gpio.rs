//! GPIO character-device backend (`/dev/gpiochipN`, via gpio-cdev).

use std::path::{Path, PathBuf};

use embedded_hal::digital::{self, ErrorType, OutputPin};
use gpio_cdev::{Chip, LineHandle, LineRequestFlags};
use thiserror::Error;

/// Consumer label shown by `gpioinfo` for the requested line.
const CONSUMER: &str = "ssb-sneakernet-led";

/// Errors of the GPIO backend.
#[derive(Debug, Error)]
pub enum GpioError {
    /// The chip device could not be opened.
    #[error("cannot open GPIO chip {chip}: {source}")]
    OpenChip {
        /// Chip device path.
        chip: PathBuf,
        /// Underlying error.
        source: gpio_cdev::Error,
    },
    /// The line does not exist or could not be claimed as an output
    /// (e.g. another process holds it).
    #[error("cannot claim line {line} of GPIO chip {chip} as an output: {source}")]
    RequestLine {
        /// Chip device path.
        chip: PathBuf,
        /// Line offset.
        line: u32,
        /// Underlying error.
        source: gpio_cdev::Error,
    },
    /// Setting the line's value failed.
    #[error("cannot set GPIO line {line}: {source}")]
    Set {
        /// Line offset.
        line: u32,
        /// Underlying error.
        source: gpio_cdev::Error,
    },
}

impl digital::Error for GpioError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

/// One GPIO line claimed as an output, for an LED wired to a header pin.
/// The line is released when this is dropped.
#[derive(Debug)]
pub struct GpioLed {
    handle: LineHandle,
    line: u32,
}

impl GpioLed {
    /// Claims `line` of `chip` (e.g. `/dev/gpiochip0`) as an output, initially
    /// off. With `active_low` the kernel inverts the line, so "high" (LED on)
    /// drives it low.
    pub fn open(chip: &Path, line: u32, active_low: bool) -> Result<Self, GpioError> {
        let mut c = Chip::new(chip).map_err(|source| GpioError::OpenChip {
            chip: chip.to_path_buf(),
            source,
        })?;
        let mut flags = LineRequestFlags::OUTPUT;
        if active_low {
            flags |= LineRequestFlags::ACTIVE_LOW;
        }
        let handle = c
            .get_line(line)
            .and_then(|l| l.request(flags, 0, CONSUMER))
            .map_err(|source| GpioError::RequestLine {
                chip: chip.to_path_buf(),
                line,
                source,
            })?;
        Ok(GpioLed { handle, line })
    }

    fn set(&mut self, value: u8) -> Result<(), GpioError> {
        self.handle
            .set_value(value)
            .map_err(|source| GpioError::Set {
                line: self.line,
                source,
            })
    }
}

impl ErrorType for GpioLed {
    type Error = GpioError;
}

impl OutputPin for GpioLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.set(0)
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.set(1)
    }
}
