//! Token buckets that bound password attempts: one per client address and
//! one for everyone, so neither one guesser nor many can make the box hash
//! more than a few passwords a minute. An attempt takes a token from both;
//! with either empty the answer is 429 before any hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bucket: up to `capacity` tokens, refilled one per `every`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Tokens when full.
    pub capacity: u32,
    /// Time to refill one token.
    pub every: Duration,
}

/// Attempts one client address may make: 5 at once, then one per 12 s.
pub const PER_CLIENT: Rate = Rate {
    capacity: 5,
    every: Duration::from_secs(12),
};
/// Attempts all clients together may make: 20 at once, then one per 2 s.
pub const GLOBAL: Rate = Rate {
    capacity: 20,
    every: Duration::from_secs(2),
};
/// Client addresses tracked at once; past this, full buckets are forgotten,
/// and if none is full new clients are refused until some refill.
pub const MAX_CLIENTS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.capacity),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() / rate.every.as_secs_f64();
        self.tokens = (self.tokens + gained).min(f64::from(rate.capacity));
        self.at = now;
    }
}

/// The buckets of password attempts.
#[derive(Debug)]
pub struct Limiter {
    per_client: Rate,
    global: Rate,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
    all: Mutex<Bucket>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(PER_CLIENT, GLOBAL)
    }
}

impl Limiter {
    /// Buckets of these rates, all full.
    pub fn new(per_client: Rate, global: Rate) -> Limiter {
        Limiter {
            per_client,
            global,
            clients: Mutex::new(HashMap::new()),
            all: Mutex::new(Bucket::full(global, Instant::now())),
        }
    }

    /// Takes one attempt for `client` at `now`; false if either bucket is
    /// empty (nothing is taken then).
    pub fn try_take(&self, client: IpAddr, now: Instant) -> bool {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            let rate = self.per_client;
            clients.retain(|_, b| {
                b.refill(rate, now);
                b.tokens < f64::from(rate.capacity)
            });
            if clients.len() >= MAX_CLIENTS {
                return false;
            }
        }
        let mine = clients
            .entry(client)
            .or_insert_with(|| Bucket::full(self.per_client, now));
        mine.refill(self.per_client, now);
        let mut all = self
            .all
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.refill(self.global, now);
        if mine.tokens < 1.0 || all.tokens < 1.0 {
            return false;
        }
        mine.tokens -= 1.0;
        all.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_one_per_interval() {
        let l = Limiter::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            assert!(l.try_take(ip, t));
        }
        assert!(!l.try_take(ip, t));
        assert!(!l.try_take(ip, t + Duration::from_secs(11)));
        assert!(l.try_take(ip, t + Duration::from_secs(13)));
        assert!(!l.try_take(ip, t + Duration::from_secs(13)));
    }

    #[test]
    fn many_clients_share_the_global_bucket() {
        let l = Limiter::default();
        let t = Instant::now();
        let granted = (0..100u8)
            .filter(|i| l.try_take(IpAddr::from([10, 0, 1, *i]), t))
            .count();
        assert_eq!(granted, 20);
        assert!(l.try_take(IpAddr::from([10, 0, 2, 1]), t + Duration::from_secs(2)));
    }

    #[test]
    fn the_client_table_is_bounded() {
        let l = Limiter::new(
            PER_CLIENT,
            Rate {
                capacity: 100_000,
                every: Duration::from_millis(1),
            },
        );
        let t = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            assert!(l.try_take(IpAddr::from(i.to_be_bytes()), t));
        }
        // All tracked buckets are part-used: a new client waits.
        assert!(!l.try_take(IpAddr::from([200, 0, 0, 1]), t));
        // Once they refill, they are forgotten and room is made.
        assert!(l.try_take(IpAddr::from([200, 0, 0, 1]), t + Duration::from_secs(13)));
        assert!(l.clients.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
