//! How far behind the box is with each peer and each stick, over the feeds
//! it carries: messages it lacks that they hold, and the reverse.
//!
//! A peer's side is the EBT clock it last showed us (stored at most 10 s
//! after anything moved on a session, and when it ends, see [`crate::replication::ebt_link`]), counted over the carried
//! feeds that clock names: a feed the peer did not mention is one it does
//! not replicate, so it lacks nothing of it. Peers that never ran EBT with
//! us (legacy replication) have no clock and are left out. A stick's side
//! is the clock stored at its last visit (what its verified bundles hold
//! from sequence 1 on), counted over every carried feed: the next visit
//! writes the stick whatever it lacks of them.

use std::collections::HashMap;

use super::Node;
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::replica::graph::ReplicateSet;
use crate::replication::ebt_link;
use crate::store::StoreError;

/// The gap between our heads and another holder's, over carried feeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Messages they hold that we lack.
    pub we_lack: u64,
    /// Messages we hold that they lack.
    pub they_lack: u64,
    /// Carried feeds compared.
    pub feeds: u64,
}

impl Lag {
    /// Compares `theirs` with `ours` over the feeds of `set`; feeds missing
    /// from `theirs` count as empty there if `absent_is_empty`, else are
    /// skipped.
    pub fn between(
        ours: &HashMap<FeedId, u32>,
        theirs: &HashMap<FeedId, u32>,
        set: &ReplicateSet,
        absent_is_empty: bool,
    ) -> Lag {
        let mut lag = Lag::default();
        for feed in set.feeds.keys() {
            let Some(t) = theirs.get(feed).copied().or(absent_is_empty.then_some(0)) else {
                continue;
            };
            let o = ours.get(feed).copied().unwrap_or(0);
            lag.feeds += 1;
            lag.we_lack += u64::from(t.saturating_sub(o));
            lag.they_lack += u64::from(o.saturating_sub(t));
        }
        lag
    }

    fn push(&self, o: &mut Object) {
        o.push("we_lack", Value::Number(self.we_lack as f64));
        o.push("they_lack", Value::Number(self.they_lack as f64));
        o.push("feeds", Value::Number(self.feeds as f64));
    }
}

/// Our heads of the carried feeds.
fn our_heads(node: &Node, set: &ReplicateSet) -> Result<HashMap<FeedId, u32>, StoreError> {
    Ok(node
        .replica()
        .store()
        .clock()?
        .into_iter()
        .filter(|(f, _)| set.contains(f))
        .collect())
}

/// The `behind` object of `status`: `peers`, one entry per peer in the peer
/// table with a stored clock (`key`, `we_lack`, `they_lack`, `feeds`), and
/// `sticks`, one per stick seen (`id`, `mount`, and the same three).
pub fn behind(node: &Node) -> Result<Value, StoreError> {
    let set = node.replica().replicate_set();
    let ours = our_heads(node, &set)?;
    let mut peers = Vec::new();
    let table = node.replicator().peers().to_value();
    let rows = match &table {
        Value::Array(rows) => rows.as_slice(),
        _ => &[],
    };
    let keys = rows.iter().filter_map(|row| {
        row.as_object()?
            .get("key")?
            .as_str()?
            .parse::<FeedId>()
            .ok()
    });
    for key in keys {
        let name = ebt_link::remote_name(&key);
        if !node.replica().store().has_remote_clock(&name)? {
            continue;
        }
        let theirs = node.replica().store().remote_clock(&name)?;
        let mut o = Object::new();
        o.push("key", Value::string(&key.to_string()));
        Lag::between(&ours, &theirs, &set, false).push(&mut o);
        peers.push(Value::Object(o));
    }
    let mut sticks = Vec::new();
    for (id, info) in node.replica().store().stick_infos()? {
        let theirs = node
            .replica()
            .store()
            .remote_clock(format!("stick:{id}").as_bytes())?;
        let mount = serde_json::from_slice::<serde_json::Value>(&info)
            .ok()
            .and_then(|v| v.get("mount")?.as_str().map(str::to_owned));
        let mut o = Object::new();
        o.push("id", Value::string(&id));
        o.push("mount", mount.as_deref().map_or(Value::Null, Value::string));
        Lag::between(&ours, &theirs, &set, true).push(&mut o);
        sticks.push(Value::Object(o));
    }
    let mut o = Object::new();
    o.push("peers", Value::Array(peers));
    o.push("sticks", Value::Array(sticks));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_counts_carried_feeds_both_ways() {
        let [a, b, c, foreign] = std::array::from_fn(|i| FeedId([i as u8 + 1; 32]));
        let mut set = ReplicateSet::default();
        for f in [a, b, c] {
            set.feeds.insert(f, 1);
        }
        let ours = HashMap::from([(a, 10), (b, 3), (c, 4)]);
        let theirs = HashMap::from([(a, 4), (b, 9), (foreign, 50)]);
        // A peer: c is not in its clock, foreign is not carried.
        assert_eq!(
            Lag::between(&ours, &theirs, &set, false),
            Lag {
                we_lack: 6,
                they_lack: 6,
                feeds: 2
            }
        );
        // A stick: c is absent, so it lacks all 4.
        assert_eq!(
            Lag::between(&ours, &theirs, &set, true),
            Lag {
                we_lack: 6,
                they_lack: 10,
                feeds: 3
            }
        );
    }
}
