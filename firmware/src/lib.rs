//! Status-LED pattern engine for the ssb-sneakernet appliance.
//!
//! The appliance has one LED, so its states must be told apart at a glance.
//! This crate defines a small fixed set of [`Pattern`]s (see the table on
//! [`Pattern`] and in the crate README) and an engine that plays them on any
//! embedded-hal 1.0 [`OutputPin`](embedded_hal::digital::OutputPin).
//!
//! * Core (always `no_std`): [`Pattern`], [`Timeline`], [`Sequencer`] (pure
//!   timing) and [`StatusLed`] (writes a pin only on level changes and says
//!   how long to sleep until the next change).
//! * Feature `std`: `LedSpec` parsing (`none`, `sysfs:NAME`, `sysfs:/dir`,
//!   `gpio:CHIP:LINE[:active-low]`) and the thread-based `LedDriver`.
//! * Feature `linux`: the LED-class (`SysfsLed`) and GPIO character device
//!   (`GpioLed`) backends, and `LedSpec::open`.
//!
//! The crate is `#![no_std]` in every configuration; the `std` feature only
//! adds `extern crate std` for the modules above, so the core can never
//! depend on std by accident.
//!
//! ```
//! use firmware::{NoLed, Pattern, StatusLed};
//!
//! let mut led = StatusLed::new(NoLed, Pattern::Idle, 0);
//! // Heartbeat: lit for 100 ms first, so sleep 100 ms before the next call.
//! assert_eq!(led.update(0), Ok(Some(100)));
//! assert_eq!(led.update(100), Ok(Some(150)));
//! // Solid patterns need no timer at all.
//! assert_eq!(led.set_pattern(Pattern::StickDone, 120), Ok(None));
//! ```

#![no_std]

#[cfg(feature = "std")]
extern crate std;

mod engine;
mod pattern;

#[cfg(feature = "std")]
mod driver;
#[cfg(feature = "linux")]
mod linux;
#[cfg(feature = "std")]
mod spec;

pub use engine::{NoLed, Polarity, Sequencer, StatusLed};
pub use pattern::{Level, Pattern, Phase, Tick, Timeline, UnknownPattern};

#[cfg(feature = "std")]
pub use driver::{DriverError, LedDriver, PatternSender};
#[cfg(feature = "linux")]
pub use linux::{AnyLed, GpioError, GpioLed, LedError, SysfsError, SysfsLed};
#[cfg(feature = "std")]
pub use spec::{LedSpec, SpecError, DEV_DIR, SYSFS_LEDS_DIR};
