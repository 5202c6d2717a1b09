//! Shows the patterns on a real (or fake) LED, to check they look distinct.
//!
//! ```text
//! cargo run -p firmware --example led-demo -- sysfs:ACT            # every pattern, 6 s each
//! cargo run -p firmware --example led-demo -- gpio:gpiochip0:17 attention 20
//! ```

use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use firmware::{LedDriver, LedSpec, Pattern};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("led-demo: {e}");
            eprintln!("usage: led-demo SPEC [PATTERN [SECONDS]]");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let spec: LedSpec = args.next().ok_or("missing LED spec")?.parse()?;
    let patterns: Vec<Pattern> = match args.next() {
        Some(p) => vec![p.parse()?],
        None => Pattern::ALL.to_vec(),
    };
    let secs: u64 = match args.next() {
        Some(s) => s.parse()?,
        None => 6,
    };
    let led = spec.open()?;
    let driver = LedDriver::spawn(led, Pattern::Off, |e| eprintln!("led-demo: LED error: {e}"))?;
    for p in patterns {
        println!("{p}");
        driver.show(p)?;
        sleep(Duration::from_secs(secs));
    }
    driver.stop()?;
    Ok(())
}
