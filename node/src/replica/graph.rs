//! What to replicate: our own feed, the follow graph from `contact` messages
//! within `hops`, feeds listed in the config, minus blocks.
//!
//! The graph is recomputed from the store's contacts index (a breadth-first
//! walk that reads the stances of the feeds within `hops − 1`), whenever a
//! contact message from such a feed arrives.

use std::collections::{HashMap, HashSet};

use crate::feed::FeedId;
use crate::store::{Store, StoreError};

/// The feeds to replicate, each with its distance from us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicateSet {
    /// Feed → hops (0 = us).
    pub feeds: HashMap<FeedId, u32>,
    /// Feeds we (or the config) block: never replicated, never served to.
    pub blocked: HashSet<FeedId>,
}

impl ReplicateSet {
    /// Whether `feed` is replicated.
    pub fn contains(&self, feed: &FeedId) -> bool {
        self.feeds.contains_key(feed)
    }

    /// Whether `feed`'s contact messages can change the set (it is close enough).
    pub fn shapes_graph(&self, feed: &FeedId, hops: u32) -> bool {
        self.feeds.get(feed).is_some_and(|h| *h < hops)
    }
}

/// Computes the set: `me` at 0, `extra` at 1, follows of feeds at distance
/// `h < hops` at `h + 1`; our blocks and `blocks` removed.
pub fn compute(
    store: &Store,
    me: &FeedId,
    hops: u32,
    extra: &[FeedId],
    blocks: &[FeedId],
) -> Result<ReplicateSet, StoreError> {
    let mut set = ReplicateSet::default();
    set.blocked.extend(blocks.iter().copied());
    let mine = store.contacts(me)?;
    for (feed, stance) in &mine {
        if stance.blocking {
            set.blocked.insert(*feed);
        }
    }
    set.feeds.insert(*me, 0);
    // Breadth first: distances along the queue never decrease.
    let mut queue = std::collections::VecDeque::from([(*me, 0u32)]);
    for f in extra {
        if !set.blocked.contains(f) && !set.feeds.contains_key(f) {
            set.feeds.insert(*f, 1);
            queue.push_back((*f, 1));
        }
    }
    let mut cache = HashMap::from([(*me, mine)]);
    while let Some((feed, dist)) = queue.pop_front() {
        if dist >= hops {
            continue;
        }
        let contacts = match cache.remove(&feed) {
            Some(c) => c,
            None => store.contacts(&feed)?,
        };
        for (c, stance) in contacts {
            if stance.following && !set.blocked.contains(&c) && !set.feeds.contains_key(&c) {
                set.feeds.insert(c, dist + 1);
                queue.push_back((c, dist + 1));
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Keypair, Value};
    use crate::publish::publish;

    fn follow(store: &Store, who: &Keypair, whom: &FeedId, following: bool, blocking: bool) {
        let c = format!(
            r#"{{"type":"contact","contact":"{whom}","following":{following},"blocking":{blocking}}}"#
        );
        publish(store, who, [Value::parse(c.as_bytes()).unwrap()]).unwrap();
    }

    #[test]
    fn hops_follows_unfollows_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let [me, a, b, c, d] = std::array::from_fn(|_| Keypair::generate());
        follow(&store, &me, &a.id(), true, false);
        follow(&store, &a, &b.id(), true, false);
        follow(&store, &b, &c.id(), true, false);
        follow(&store, &me, &d.id(), true, false);
        follow(&store, &me, &d.id(), false, false);

        let s = compute(&store, &me.id(), 2, &[], &[]).unwrap();
        assert_eq!(s.feeds.get(&me.id()), Some(&0));
        assert_eq!(s.feeds.get(&a.id()), Some(&1));
        assert_eq!(s.feeds.get(&b.id()), Some(&2));
        assert!(!s.contains(&c.id()), "3 hops away");
        assert!(!s.contains(&d.id()), "unfollowed");

        let s = compute(&store, &me.id(), 1, &[], &[]).unwrap();
        assert!(s.contains(&a.id()) && !s.contains(&b.id()));

        // A block by us, or by the config, removes the feed and its branch.
        follow(&store, &me, &a.id(), false, true);
        let s = compute(&store, &me.id(), 2, &[], &[]).unwrap();
        assert!(!s.contains(&a.id()) && !s.contains(&b.id()));
        assert!(s.blocked.contains(&a.id()));

        let s = compute(&store, &me.id(), 2, &[c.id()], &[b.id()]).unwrap();
        assert_eq!(s.feeds.get(&c.id()), Some(&1));
        assert!(!s.contains(&b.id()));
    }
}
