//! The log of refused and failed incoming connections, rate-limited: the
//! first [`LOGGED_PER_WINDOW`] of a [`WINDOW`] are logged one by one, the rest
//! are counted by reason and logged as one summary line when the window
//! ends, so a flood writes a few lines, not thousands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Refusals logged one by one per window.
pub const LOGGED_PER_WINDOW: usize = 20;
/// How long a window lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Reasons told apart in a summary; others are counted as "other".
const REASONS: usize = 16;

#[derive(Debug, Default)]
struct Window {
    /// Whether a window is running (its summary task is scheduled or it logged).
    open: bool,
    logged: usize,
    counted: BTreeMap<String, u64>,
}

/// Rate-limited refusal log; cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct Refusals {
    window: Arc<Mutex<Window>>,
}

impl Refusals {
    /// Logs (or counts) that the connection from `from` was dropped for `reason`.
    pub fn dropped(&self, from: SocketAddr, reason: &str) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if !w.open {
            w.open = true;
            let window = self.window.clone();
            // One timer per window with refusals in it, none when idle.
            tokio::spawn(async move {
                tokio::time::sleep(WINDOW).await;
                let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
                let counted = std::mem::take(&mut w.counted);
                *w = Window::default();
                drop(w);
                summarize(&counted);
            });
        }
        if w.logged < LOGGED_PER_WINDOW {
            w.logged += 1;
            drop(w);
            tracing::info!(%from, "dropped: {reason}");
            return;
        }
        let key = if w.counted.len() < REASONS || w.counted.contains_key(reason) {
            reason.to_owned()
        } else {
            "other".to_owned()
        };
        *w.counted.entry(key).or_insert(0) += 1;
    }
}

fn summarize(counted: &BTreeMap<String, u64>) {
    let total: u64 = counted.values().sum();
    if total == 0 {
        return;
    }
    let reasons: Vec<String> = counted.iter().map(|(r, n)| format!("{n} × {r}")).collect();
    tracing::info!(
        "dropped: {total} more connections in {} s, not logged one by one: {}",
        WINDOW.as_secs(),
        reasons.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_logged_as_a_summary() {
        let r = Refusals::default();
        let from: SocketAddr = "10.0.0.1:1".parse().unwrap();
        for i in 0..5_000 {
            r.dropped(from, if i % 2 == 0 { "a" } else { "b" });
        }
        {
            let w = r.window.lock().unwrap();
            assert_eq!(w.logged, LOGGED_PER_WINDOW);
            let counted: u64 = w.counted.values().sum();
            assert_eq!(counted, 5_000 - LOGGED_PER_WINDOW as u64);
            assert_eq!(w.counted.len(), 2);
        }
        tokio::time::sleep(WINDOW + Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        // The window closed with its summary; the next refusal is logged again.
        assert!(!r.window.lock().unwrap().open);
        r.dropped(from, "c");
        assert_eq!(r.window.lock().unwrap().logged, 1);
    }
}
