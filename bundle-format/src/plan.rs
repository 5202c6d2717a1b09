//! Reconciliation: given what this node holds and what the other side (a
//! stick, or a peer) holds, what to take and what to give.

use crate::clock::Clock;
use crate::coverage::Coverage;

/// Messages `first..=last` of one feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRange {
    /// The feed id.
    pub feed: String,
    /// First sequence number.
    pub first: u32,
    /// Last sequence number (at least `first`).
    pub last: u32,
}

/// What to import and what to export, per feed, in feed id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ranges the other side holds that extend a local feed without a gap:
    /// each starts right after the local latest sequence.
    pub take: Vec<FeedRange>,
    /// Ranges held locally that the other side lacks (filling its gaps too,
    /// so a carrier ends up holding whole feeds).
    pub give: Vec<FeedRange>,
}

/// Plans a sync of `local` (a node's store: contiguous from 1) with `remote`
/// (a stick's union of bundles, or `Coverage::from(&peer_clock)`).
///
/// Take only what can be appended: a remote range that starts beyond the
/// local latest + 1 is useless until the gap is filled, so it is left out.
/// Give everything local the remote lacks.
pub fn plan(local: &Clock, remote: &Coverage) -> Plan {
    let mut p = Plan::default();
    for (feed, ranges) in remote.iter() {
        let next = u64::from(local.get(feed)) + 1;
        if let Some(&(_, last)) = ranges
            .iter()
            .find(|&&(a, b)| u64::from(a) <= next && next <= u64::from(b))
        {
            // `next <= last`, a u32: the conversion cannot fail.
            let first = u32::try_from(next).unwrap_or(last);
            p.take.push(FeedRange {
                feed: feed.to_string(),
                first,
                last,
            });
        }
    }
    for (feed, seq) in local.iter() {
        let mut from = 1u64;
        for &(a, b) in remote.ranges(feed) {
            if u64::from(a) > from {
                let last = (u64::from(a) - 1).min(u64::from(seq));
                if last >= from {
                    p.give.push(range(feed, from, last));
                }
            }
            from = from.max(u64::from(b) + 1);
        }
        if from <= u64::from(seq) {
            p.give.push(range(feed, from, u64::from(seq)));
        }
    }
    p
}

/// A range from u64 bounds that are known to fit in u32.
fn range(feed: &str, first: u64, last: u64) -> FeedRange {
    FeedRange {
        feed: feed.to_string(),
        first: u32::try_from(first).unwrap_or(u32::MAX),
        last: u32::try_from(last).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(feed: &str, first: u32, last: u32) -> FeedRange {
        FeedRange {
            feed: feed.into(),
            first,
            last,
        }
    }

    #[test]
    fn takes_what_extends_and_gives_what_is_missing() {
        let local: Clock = [
            ("@a".to_string(), 40),
            ("@b".to_string(), 10),
            ("@d".to_string(), 3),
        ]
        .into_iter()
        .collect();
        let mut stick = Coverage::new();
        stick.insert("@a", 1, 20); // with the next: give the gap 21..=30
        stick.insert("@a", 31, 60); // take 41..=60, give nothing of 31..40
        stick.insert("@b", 20, 30); // gap 11..19: take nothing, give 1..=10
        stick.insert("@c", 1, 5); // unknown locally: take all
        stick.insert("@d", 1, 3); // equal: nothing
        let p = plan(&local, &stick);
        assert_eq!(p.take, vec![r("@a", 41, 60), r("@c", 1, 5)]);
        assert_eq!(p.give, vec![r("@a", 21, 30), r("@b", 1, 10)]);
    }

    #[test]
    fn a_fresh_stick_gets_everything_and_an_empty_node_takes_prefixes() {
        let local: Clock = [("@a".to_string(), 2)].into_iter().collect();
        let p = plan(&local, &Coverage::new());
        assert_eq!((p.take, p.give), (vec![], vec![r("@a", 1, 2)]));
        let peer: Clock = [("@a".to_string(), 9)].into_iter().collect();
        let p = plan(&Clock::new(), &Coverage::from(&peer));
        assert_eq!((p.take, p.give), (vec![r("@a", 1, 9)], vec![]));
        let top: Clock = [("@a".to_string(), u32::MAX)].into_iter().collect();
        let p = plan(&top, &Coverage::from(&top));
        assert_eq!(p, Plan::default());
    }
}
