//! What a carrier (a stick) holds: per feed, a set of sequence ranges.
//!
//! A stick is the union of its bundles, and a bundle may carry a feed from
//! the middle (what the stick lacked when it was written), so a stick's
//! holdings can have gaps a plain [`Clock`] cannot express. Ranges are kept
//! sorted, disjoint and with adjacent ones merged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::manifest::Manifest;

/// Feed id → sorted, disjoint, non-adjacent inclusive ranges `(first, last)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Coverage(BTreeMap<String, Vec<(u32, u32)>>);

impl Coverage {
    /// Holds nothing.
    pub fn new() -> Coverage {
        Coverage::default()
    }

    /// Adds messages `first..=last` of `feed` (an empty or 0-based range
    /// adds nothing below 1).
    pub fn insert(&mut self, feed: &str, first: u32, last: u32) {
        let first = first.max(1);
        if last < first {
            return;
        }
        let ranges = self.0.entry(feed.to_string()).or_default();
        ranges.push((first, last));
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ranges = merged;
    }

    /// Adds every range a bundle's manifest carries.
    pub fn add_manifest(&mut self, manifest: &Manifest) {
        for f in &manifest.feeds {
            self.insert(&f.feed, f.first, f.last);
        }
    }

    /// The union of several bundles' manifests (a stick's holdings).
    pub fn from_manifests<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Coverage {
        let mut c = Coverage::new();
        for m in manifests {
            c.add_manifest(m);
        }
        c
    }

    /// Whether message `seq` of `feed` is held.
    pub fn contains(&self, feed: &str, seq: u32) -> bool {
        self.ranges(feed).iter().any(|&(a, b)| a <= seq && seq <= b)
    }

    /// The ranges held of `feed`.
    pub fn ranges(&self, feed: &str) -> &[(u32, u32)] {
        self.0.get(feed).map_or(&[], Vec::as_slice)
    }

    /// Every feed and its ranges, in feed id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[(u32, u32)])> {
        self.0.iter().map(|(f, r)| (f.as_str(), r.as_slice()))
    }

    /// As a clock: per feed, the end of the run that starts at 1 (feeds
    /// held only from the middle are left out).
    pub fn clock(&self) -> Clock {
        self.0
            .iter()
            .filter_map(|(f, r)| {
                r.first()
                    .filter(|(a, _)| *a == 1)
                    .map(|&(_, b)| (f.clone(), b))
            })
            .collect()
    }
}

impl From<&Clock> for Coverage {
    fn from(clock: &Clock) -> Coverage {
        let mut c = Coverage::new();
        for (feed, seq) in clock.iter() {
            c.insert(feed, 1, seq);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_keep_gaps() {
        let mut c = Coverage::new();
        c.insert("@a", 51, 100);
        c.insert("@a", 1, 20);
        c.insert("@a", 21, 30);
        c.insert("@a", 90, 120);
        c.insert("@b", 5, 6);
        c.insert("@c", 3, 2);
        assert_eq!(c.ranges("@a"), &[(1, 30), (51, 120)]);
        assert!(c.contains("@a", 30) && !c.contains("@a", 31) && c.contains("@a", 51));
        assert_eq!(serde_json::to_string(&c.clock()).unwrap(), r#"{"@a":30}"#);
        assert_eq!(c.ranges("@c"), &[]);
        c.insert("@a", u32::MAX, u32::MAX);
        c.insert("@a", 121, u32::MAX - 1);
        assert_eq!(c.ranges("@a"), &[(1, 30), (51, u32::MAX)]);
    }
}
