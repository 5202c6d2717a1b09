//! Which connections the node takes, sans-IO: handshake slots in all and per
//! source address, sessions in all, per identity and per address, and room
//! kept for known peers (feeds we replicate, configured peers) that strangers
//! cannot take. A slot is held by a guard and freed when it is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::feed::FeedId;

/// Most handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 64;
/// Most handshakes in progress from one source address.
pub const HANDSHAKES_PER_ADDRESS: usize = 8;
/// Most peer sessions at once.
pub const MAX_SESSIONS: usize = 128;
/// Most sessions with one identity (two: both sides may dial at once).
pub const SESSIONS_PER_KEY: usize = 2;
/// Most sessions with strangers (the rest are kept for known peers).
pub const STRANGER_SESSIONS: usize = 96;
/// Most sessions with strangers from one source address.
pub const STRANGER_SESSIONS_PER_ADDRESS: usize = 16;

/// Why a connection is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// All handshake slots are taken.
    #[error("too many handshakes in progress")]
    Handshakes,
    /// The source address holds all its handshake slots.
    #[error("too many handshakes from this address")]
    HandshakesFromAddress,
    /// All session slots are taken.
    #[error("too many sessions")]
    Sessions,
    /// The identity has its sessions already.
    #[error("too many sessions with this key")]
    SessionsWithKey,
    /// The slots strangers may take are taken.
    #[error("too many sessions with strangers")]
    Strangers,
    /// The source address holds all the stranger sessions it may.
    #[error("too many stranger sessions from this address")]
    StrangersFromAddress,
}

#[derive(Debug, Default)]
struct Counts {
    handshakes: usize,
    handshakes_from: HashMap<IpAddr, usize>,
    sessions: usize,
    strangers: usize,
    strangers_from: HashMap<IpAddr, usize>,
    with_key: HashMap<FeedId, usize>,
}

fn up<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K) {
    *m.entry(k).or_insert(0) += 1;
}

fn down<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

/// The node's connection counts.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
}

/// A handshake slot; freed on drop.
#[derive(Debug)]
pub struct HandshakeSlot {
    counts: Arc<Mutex<Counts>>,
    from: IpAddr,
}

/// A session slot; freed on drop.
#[derive(Debug)]
pub struct SessionSlot {
    counts: Arc<Mutex<Counts>>,
    key: FeedId,
    /// The source address, for a stranger's session.
    stranger_from: Option<Option<IpAddr>>,
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handshake from `from` may start (an incoming connection).
    pub fn handshake(&self, from: IpAddr) -> Result<HandshakeSlot, Refusal> {
        let mut c = self.lock();
        if c.sessions >= MAX_SESSIONS {
            return Err(Refusal::Sessions);
        }
        if c.handshakes >= MAX_HANDSHAKES {
            return Err(Refusal::Handshakes);
        }
        if c.handshakes_from.get(&from).copied().unwrap_or(0) >= HANDSHAKES_PER_ADDRESS {
            return Err(Refusal::HandshakesFromAddress);
        }
        c.handshakes += 1;
        up(&mut c.handshakes_from, from);
        Ok(HandshakeSlot {
            counts: self.counts.clone(),
            from,
        })
    }

    /// A session with `key` (from `from`, when it dialled us) may open;
    /// `known` peers are never counted as strangers.
    pub fn session(
        &self,
        key: FeedId,
        from: Option<IpAddr>,
        known: bool,
    ) -> Result<SessionSlot, Refusal> {
        let mut c = self.lock();
        if c.with_key.get(&key).copied().unwrap_or(0) >= SESSIONS_PER_KEY {
            return Err(Refusal::SessionsWithKey);
        }
        if c.sessions >= MAX_SESSIONS {
            return Err(Refusal::Sessions);
        }
        if !known {
            if c.strangers >= STRANGER_SESSIONS {
                return Err(Refusal::Strangers);
            }
            if let Some(ip) = from {
                if c.strangers_from.get(&ip).copied().unwrap_or(0) >= STRANGER_SESSIONS_PER_ADDRESS
                {
                    return Err(Refusal::StrangersFromAddress);
                }
                up(&mut c.strangers_from, ip);
            }
            c.strangers += 1;
        }
        c.sessions += 1;
        up(&mut c.with_key, key);
        Ok(SessionSlot {
            counts: self.counts.clone(),
            key,
            stranger_from: (!known).then_some(from),
        })
    }

    /// Sessions open now.
    pub fn sessions(&self) -> usize {
        self.lock().sessions
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.handshakes -= 1;
        down(&mut c.handshakes_from, &self.from);
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.sessions -= 1;
        down(&mut c.with_key, &self.key);
        if let Some(from) = self.stranger_from {
            c.strangers -= 1;
            if let Some(ip) = from {
                down(&mut c.strangers_from, &ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> FeedId {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        FeedId(k)
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn one_address_cannot_hold_the_handshake_slots() {
        let a = Admission::default();
        let held: Vec<_> = (0..HANDSHAKES_PER_ADDRESS)
            .map(|_| a.handshake(ip(1)).unwrap())
            .collect();
        assert_eq!(
            a.handshake(ip(1)).unwrap_err(),
            Refusal::HandshakesFromAddress
        );
        // Others still get in, up to the total.
        let mut others = Vec::new();
        for n in 2..=200u8 {
            match a.handshake(ip(n)) {
                Ok(s) => others.push(s),
                Err(e) => {
                    assert_eq!(e, Refusal::Handshakes);
                    break;
                }
            }
        }
        assert_eq!(held.len() + others.len(), MAX_HANDSHAKES);
        drop(held);
        assert!(a.handshake(ip(1)).is_ok());
    }

    #[test]
    fn strangers_cannot_lock_out_known_peers() {
        let a = Admission::default();
        let mut strangers = Vec::new();
        // Random keys from many addresses: at most STRANGER_SESSIONS get in.
        for n in 0..1_000u32 {
            if let Ok(s) = a.session(key(n), Some(ip((n % 50) as u8)), false) {
                strangers.push(s);
            }
        }
        assert_eq!(strangers.len(), STRANGER_SESSIONS);
        assert_eq!(
            a.session(key(5_000), Some(ip(200)), false).unwrap_err(),
            Refusal::Strangers
        );
        // Known peers fill the rest, each at most twice.
        let mut known = Vec::new();
        for n in 0..(MAX_SESSIONS - STRANGER_SESSIONS) as u32 {
            known.push(a.session(key(10_000 + n), Some(ip(1)), true).unwrap());
        }
        assert_eq!(a.sessions(), MAX_SESSIONS);
        assert_eq!(
            a.session(key(20_000), None, true).unwrap_err(),
            Refusal::Sessions
        );
        drop(known.pop());
        known.push(a.session(key(20_000), None, true).unwrap());
        drop(strangers);
        assert_eq!(a.sessions(), MAX_SESSIONS - STRANGER_SESSIONS);
    }

    #[test]
    fn one_key_and_one_address_are_bounded() {
        let a = Admission::default();
        let two: Vec<_> = (0..SESSIONS_PER_KEY)
            .map(|_| a.session(key(1), Some(ip(1)), true).unwrap())
            .collect();
        assert_eq!(
            a.session(key(1), Some(ip(2)), true).unwrap_err(),
            Refusal::SessionsWithKey
        );
        let from_one: Vec<_> = (0..STRANGER_SESSIONS_PER_ADDRESS as u32)
            .map(|n| a.session(key(100 + n), Some(ip(9)), false).unwrap())
            .collect();
        assert_eq!(
            a.session(key(999), Some(ip(9)), false).unwrap_err(),
            Refusal::StrangersFromAddress
        );
        // A known peer from that address still gets in.
        assert!(a.session(key(1_000), Some(ip(9)), true).is_ok());
        drop((two, from_one));
        assert!(a.session(key(1), Some(ip(9)), false).is_ok());
    }
}
