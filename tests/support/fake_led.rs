//! A fake LED-class directory (`brightness`, `max_brightness`, `trigger`)
//! and a recorder of every value written to its `brightness` file (inotify,
//! so no write is missed by sampling).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Deadline for waits that only fail when something is broken.
const DEADLINE: Duration = Duration::from_secs(20);

/// Makes `dir/led` with brightness 0, max_brightness 255 and the `mmc0`
/// trigger active (the node must set it to `none` and give it back).
pub fn fake_led(dir: &Path) -> PathBuf {
    let led = dir.join("led");
    std::fs::create_dir(&led).unwrap();
    std::fs::write(led.join("brightness"), "0").unwrap();
    std::fs::write(led.join("max_brightness"), "255\n").unwrap();
    std::fs::write(led.join("trigger"), "none [mmc0] heartbeat\n").unwrap();
    led
}

/// Every value written to a fake LED's `brightness` file, in order.
pub struct LedRecorder {
    writes: Arc<Mutex<Vec<String>>>,
}

impl LedRecorder {
    /// Starts recording on a thread of its own (it lives as long as the test
    /// process).
    pub fn start(dir: &Path) -> LedRecorder {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).unwrap();
        inotify
            .add_watch(&dir.join("brightness"), AddWatchFlags::IN_CLOSE_WRITE)
            .unwrap();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (w, file) = (writes.clone(), dir.join("brightness"));
        std::thread::spawn(move || {
            while inotify.read_events().is_ok() {
                let value = std::fs::read_to_string(&file).unwrap_or_default();
                w.lock().unwrap().push(value.trim().to_owned());
            }
        });
        LedRecorder { writes }
    }

    /// Writes recorded so far.
    pub fn count(&self) -> usize {
        self.writes.lock().unwrap().len()
    }

    /// The values written since write number `from`.
    pub fn since(&self, from: usize) -> Vec<String> {
        self.writes.lock().unwrap()[from..].to_vec()
    }

    /// Waits until at least `n` writes were recorded since `from`.
    pub fn wait_writes(&self, from: usize, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.count() < from + n {
            assert!(
                Instant::now() < deadline,
                "LED: only {:?}",
                self.since(from)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until 2.5 s pass with no write (a steady pattern; the heartbeat
    /// writes at least every 1.65 s), giving up after 4 tries.
    pub fn wait_steady(&self) {
        let mut last = self.count();
        for round in 0.. {
            assert!(round < 4, "the LED keeps changing: {:?}", self.since(0));
            std::thread::sleep(Duration::from_millis(2500));
            let now = self.count();
            if now == last {
                return;
            }
            last = now;
        }
    }
}
