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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::muxrpc::{Handler, InboundCall, SessionConfig};
    use tokio::io::AsyncReadExt;

    struct Ignore;

    impl Handler for Ignore {
        fn handle(&self, _call: InboundCall) {}
    }

    fn session(buffer: usize) -> (Session, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(buffer);
        let s = Session::start(ours, None, Arc::new(Ignore), SessionConfig::default());
        (s, theirs)
    }

    /// Reads the far end to EOF; returns the bytes.
    async fn drain(mut io: tokio::io::DuplexStream) -> Vec<u8> {
        let mut all = Vec::new();
        let _ = io.read_to_end(&mut all).await;
        all
    }

    #[tokio::test]
    async fn every_session_writes_its_goodbye() {
        let set = Arc::new(OpenSessions::default());
        let (a, a_far) = session(1024);
        let (b, b_far) = session(1024);
        let _ra = set.register(&a);
        let _rb = set.register(&b);
        assert_eq!(set.len(), 2);
        let readers = (tokio::spawn(drain(a_far)), tokio::spawn(drain(b_far)));
        assert_eq!(set.close_all(Duration::from_secs(5)).await, 0);
        // The muxrpc goodbye: nine zero bytes, then the end of the stream.
        assert_eq!(readers.0.await.unwrap(), [0; 9]);
        assert_eq!(readers.1.await.unwrap(), [0; 9]);
        assert!(a.is_closed() && b.is_closed());
        // A session opened while stopping is told at once.
        let (c, c_far) = session(1024);
        let rc = set.register(&c);
        assert_eq!(drain(c_far).await, [0; 9]);
        drop(rc);
        drop((_ra, _rb));
        assert!(set.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_read_holds_the_stop_no_longer_than_the_wait() {
        let set = Arc::new(OpenSessions::default());
        // One byte of room and a peer that never reads: the goodbye cannot be written.
        let (stuck, _far) = session(1);
        let _r = set.register(&stuck);
        let started = tokio::time::Instant::now();
        assert_eq!(set.close_all(Duration::from_secs(2)).await, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
