//! Login sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! mapped in memory to its CSRF token and expiry. A restart logs everyone
//! out. At most [`MAX_SESSIONS`] are kept (the oldest is dropped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::csrf;

/// The session cookie's name.
pub const COOKIE: &str = "ssb_session";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 32;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token its forms carry.
    pub csrf: String,
    expires: Instant,
}

/// The sessions of this run.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session: its id (the cookie's value).
    pub fn start(&self, now: Instant) -> String {
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        let id = csrf::new_token();
        map.insert(
            id.clone(),
            Session {
                csrf: csrf::new_token(),
                expires: now + LIFETIME,
            },
        );
        id
    }

    /// The live session with this id.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let map = self.lock();
        map.get(id).filter(|s| s.expires > now).cloned()
    }

    /// Ends the session with this id.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `Set-Cookie` value that starts session `id`.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_are_bounded() {
        let s = Sessions::default();
        let t = Instant::now();
        let id = s.start(t);
        assert!(s.get(&id, t).is_some());
        assert!(s.get(&id, t + LIFETIME).is_none());
        assert!(s.get("nope", t).is_none());
        s.end(&id);
        assert!(s.get(&id, t).is_none());
        let ids: Vec<String> = (0..MAX_SESSIONS + 5)
            .map(|i| s.start(t + Duration::from_secs(i as u64)))
            .collect();
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        assert!(s.get(&ids[0], t).is_none());
        assert!(s.get(ids.last().unwrap(), t).is_some());
        assert!(set_cookie(&id).contains("HttpOnly; SameSite=Strict"));
    }
}
