//! Linux backends and [`AnyLed`], the output a [`LedSpec`] opens to.

mod gpio;
mod sysfs;

pub use gpio::{GpioError, GpioLed};
pub use sysfs::{SysfsError, SysfsLed};

use embedded_hal::digital::{self, ErrorType, OutputPin};
use thiserror::Error;

use crate::engine::NoLed;
use crate::spec::LedSpec;

/// Any of the LEDs a [`LedSpec`] can name, as one output pin type, so the
/// node can hold "the LED" without generics.
#[derive(Debug)]
pub enum AnyLed {
    /// No LED.
    None(NoLed),
    /// An LED-class device.
    Sysfs(SysfsLed),
    /// A GPIO line.
    Gpio(GpioLed),
}

/// An error of whichever backend [`AnyLed`] wraps.
#[derive(Debug, Error)]
pub enum LedError {
    /// From the LED-class backend.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// From the GPIO backend.
    #[error(transparent)]
    Gpio(#[from] GpioError),
}

impl digital::Error for LedError {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

impl LedSpec {
    /// Opens the LED this spec names. For `sysfs` this sets the trigger to
    /// `none`; for `gpio` it claims the line as an output.
    pub fn open(&self) -> Result<AnyLed, LedError> {
        Ok(match self {
            LedSpec::None => AnyLed::None(NoLed),
            LedSpec::Sysfs(dir) => AnyLed::Sysfs(SysfsLed::open(dir.clone())?),
            LedSpec::Gpio {
                chip,
                line,
                active_low,
            } => AnyLed::Gpio(GpioLed::open(chip, *line, *active_low)?),
        })
    }
}

impl AnyLed {
    /// Whether this is the `none` LED (a caller may skip the driver thread).
    pub fn is_none(&self) -> bool {
        matches!(self, AnyLed::None(_))
    }
}

impl ErrorType for AnyLed {
    type Error = LedError;
}

impl OutputPin for AnyLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        match self {
            AnyLed::None(_) => Ok(()),
            AnyLed::Sysfs(led) => Ok(led.set_low()?),
            AnyLed::Gpio(led) => Ok(led.set_low()?),
        }
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        match self {
            AnyLed::None(_) => Ok(()),
            AnyLed::Sysfs(led) => Ok(led.set_high()?),
            AnyLed::Gpio(led) => Ok(led.set_high()?),
        }
    }
}
