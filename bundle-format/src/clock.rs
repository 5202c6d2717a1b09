//! A vector clock: per feed, the latest sequence number held, everything
//! from 1 up to it included (what a node's store has; `ssb-node clock`
//! prints the same JSON object).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Feed id → latest sequence held (messages `1..=seq`). A feed not in the
/// clock is held at 0: nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Clock(BTreeMap<String, u32>);

impl Clock {
    /// An empty clock.
    pub fn new() -> Clock {
        Clock::default()
    }

    /// The latest sequence of `feed` (0 if none).
    pub fn get(&self, feed: &str) -> u32 {
        self.0.get(feed).copied().unwrap_or(0)
    }

    /// Sets `feed` to `seq` (0 removes it).
    pub fn set(&mut self, feed: &str, seq: u32) {
        if seq == 0 {
            self.0.remove(feed);
        } else {
            self.0.insert(feed.to_string(), seq);
        }
    }

    /// Raises `feed` to `seq` if that is further (never lowers).
    pub fn advance(&mut self, feed: &str, seq: u32) {
        if seq > self.get(feed) {
            self.0.insert(feed.to_string(), seq);
        }
    }

    /// Raises every feed to the other clock's value where that is further.
    pub fn merge(&mut self, other: &Clock) {
        for (feed, &seq) in &other.0 {
            self.advance(feed, seq);
        }
    }

    /// The feeds and their sequences, in feed id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(f, &s)| (f.as_str(), s))
    }

    /// How many feeds the clock holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the clock holds no feed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, u32)> for Clock {
    fn from_iter<I: IntoIterator<Item = (String, u32)>>(iter: I) -> Clock {
        let mut c = Clock::new();
        for (feed, seq) in iter {
            c.advance(&feed, seq);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_plain_object_and_merge_takes_the_max() {
        let mut a: Clock = [("@a".to_string(), 5), ("@b".to_string(), 1)]
            .into_iter()
            .collect();
        let b: Clock = serde_json::from_str(r#"{"@b":7,"@c":2}"#).unwrap();
        a.merge(&b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"@a":5,"@b":7,"@c":2}"#
        );
        a.advance("@a", 3);
        assert_eq!(a.get("@a"), 5);
        a.set("@a", 0);
        assert_eq!((a.get("@a"), a.len()), (0, 2));
    }
}
