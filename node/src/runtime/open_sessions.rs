//! The peer sessions open now, so that a stopping node ends each with its goodbye: the
//! muxrpc goodbye and the box-stream goodbye header, written and flushed before the
//! process exits, never a link cut inside a header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::muxrpc::Session;

/// The open sessions; once [`OpenSessions::close_all`] has begun, a session registered
/// later is closed at once.
#[derive(Default)]
pub struct OpenSessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    sessions: HashMap<u64, Session>,
    stopping: bool,
}

impl std::fmt::Debug for OpenSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.lock();
        f.debug_struct("OpenSessions")
            .field("open", &t.sessions.len())
            .field("stopping", &t.stopping)
            .finish()
    }
}

/// Keeps one session in the set until dropped.
#[must_use = "the session leaves the set when this is dropped"]
pub struct Registered {
    set: Arc<OpenSessions>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.set.lock().sessions.remove(&self.id);
    }
}

impl OpenSessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `session` to the set while the returned guard lives. If the node is stopping,
    /// the session is told goodbye at once.
    pub fn register(self: &Arc<Self>, session: &Session) -> Registered {
        let mut t = self.lock();
        let id = t.next;
        t.next += 1;
        t.sessions.insert(id, session.clone());
        if t.stopping {
            let s = session.clone();
            tokio::spawn(async move { s.close().await });
        }
        Registered {
            set: self.clone(),
            id,
        }
    }

    /// How many sessions are in the set.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is in the set.
    pub fn is_empty(&self) -> bool {
        self.lock().sessions.is_empty()
    }

    /// Says goodbye on every open session and waits until each has written it (its writer
    /// ended) or `within` has passed; returns how many had not closed by then.
    pub async fn close_all(&self, within: Duration) -> usize {
        let sessions: Vec<Session> = {
            let mut t = self.lock();
            t.stopping = true;
            t.sessions.values().cloned().collect()
        };
        let mut closing = JoinSet::new();
        for s in sessions {
            closing.spawn(async move {
                s.close().await;
                s.closed().await
            });
        }
        let total = closing.len();
        let mut done = 0;
        let _ = tokio::time::timeout(within, async {
            while closing.join_next().await.is_some() {
                done += 1;
            }
        })
        .await;
        total - done
    }
}
