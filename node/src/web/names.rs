//! Feeds' names, from the `about` messages in which a feed names itself
//! (`{"type":"about","about":"@self","name":"Ana"}`; the latest wins). Read
//! once over the store when the server starts (on a blocking thread), then
//! kept up to date from the replica's appends, so a page only looks names up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;

use crate::feed::json::Value;
use crate::feed::FeedId;
use crate::replica::Replica;
use crate::store::{Store, StoreError};

/// Longest name kept, in characters.
pub const MAX_NAME: usize = 64;
/// Most feeds whose names are kept.
pub const MAX_FEEDS: usize = 100_000;

#[derive(Debug, Default)]
struct Inner {
    names: HashMap<FeedId, String>,
    /// The last sequence read of each feed.
    read: HashMap<FeedId, u32>,
}

/// The names known, shared with the task that keeps them.
#[derive(Debug, Clone, Default)]
pub struct Names {
    inner: Arc<Mutex<Inner>>,
}

/// The name a message's value gives its own author, if it is such an
/// `about`.
pub fn self_name(value: &Value) -> Option<String> {
    let v = value.as_object()?;
    let author = v.get("author")?.as_str()?;
    let c = v.get("content")?.as_object()?;
    if c.get("type")?.as_str()? != "about" || c.get("about")?.as_str()? != author {
        return None;
    }
    let name: String = c
        .get("name")?
        .as_str()?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

impl Names {
    /// The name of `feed`, if it gave itself one.
    pub fn get(&self, feed: &FeedId) -> Option<String> {
        self.lock().names.get(feed).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `feed` from where it was last read up to `seq`.
    fn read_feed(&self, store: &Store, feed: &FeedId, seq: u32) -> Result<(), StoreError> {
        let from = {
            let inner = self.lock();
            if !inner.read.contains_key(feed) && inner.read.len() >= MAX_FEEDS {
                return Ok(());
            }
            inner.read.get(feed).copied().unwrap_or(0)
        };
        if seq <= from {
            return Ok(());
        }
        let mut last = from;
        let mut name = None;
        for m in store.feed(feed, from + 1) {
            let m = m?;
            last += 1;
            // Cheap test first: most messages are not abouts.
            if m.json.contains("\"about\"") {
                if let Some(n) = Value::parse(m.json.as_bytes())
                    .ok()
                    .as_ref()
                    .and_then(self_name)
                {
                    name = Some(n);
                }
            }
            if last >= seq {
                break;
            }
        }
        let mut inner = self.lock();
        inner.read.insert(*feed, last);
        if let Some(n) = name {
            inner.names.insert(*feed, n);
        }
        Ok(())
    }

    /// Reads every feed of `store` up to its head.
    pub fn read_all(&self, store: &Store) -> Result<(), StoreError> {
        for (feed, seq) in store.clock()? {
            self.read_feed(store, &feed, seq)?;
        }
        Ok(())
    }

    /// Reads the store, then follows `replica`'s appends until the replica
    /// is gone.
    pub async fn keep(self, replica: Arc<Replica>) {
        let mut appends = replica.subscribe();
        let first = {
            let (names, replica) = (self.clone(), replica.clone());
            tokio::task::spawn_blocking(move || names.read_all(replica.store())).await
        };
        if let Ok(Err(e)) = first {
            tracing::warn!("web: reading feeds' names: {e}");
        }
        loop {
            match appends.recv().await {
                Ok(a) => {
                    let store = replica.store().clone();
                    let names = self.clone();
                    let done = tokio::task::spawn_blocking(move || {
                        names.read_feed(&store, &a.feed, a.seq)
                    })
                    .await;
                    if let Ok(Err(e)) = done {
                        tracing::warn!("web: reading {}'s name: {e}", a.feed);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let (names, replica) = (self.clone(), replica.clone());
                    let _ =
                        tokio::task::spawn_blocking(move || names.read_all(replica.store())).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_feed_naming_itself_counts() {
        let me = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519";
        let other = "@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519";
        let v = |about: &str, name: &str| {
            let text = format!(
                r#"{{"author":"{me}","content":{{"type":"about","about":"{about}","name":"{name}"}}}}"#
            );
            Value::parse(text.as_bytes()).unwrap()
        };
        assert_eq!(self_name(&v(me, "Ana")).as_deref(), Some("Ana"));
        assert_eq!(self_name(&v(other, "Ana")), None);
        assert_eq!(self_name(&v(me, "  ")), None);
        let long = "x".repeat(200);
        assert_eq!(self_name(&v(me, &long)).unwrap().chars().count(), MAX_NAME);
    }
}
