//! The carrying policy: which feeds a box takes on besides its follow graph.
//!
//! - `follows` (the default): the follow graph within `hops`, the config's
//!   `replicate`, minus blocks ([`super::graph`]).
//! - `connected`: also every feed that connects to us directly (completes
//!   the secret handshake with our network key) and is not blocked. The box
//!   follows it with a `contact` message, so the choice persists in its own
//!   feed, replicates through the graph from then on (in that session: the
//!   follow is published before replication starts) and shows other sites
//!   who this box carries. At most `carry_max` feeds are followed this way
//!   (counted over all of our follows): at the cap a newly connecting feed
//!   is served what it asks for but not carried, and the refusal is logged
//!   and counted in `status`.
//!
//! The mode starts as the config's `carry`; the keeper may set it while the
//! node runs ([`Replica::set_carry_mode`]: `ssb-node carry set`, the web
//! page). The keeper's choice is saved in the store and wins over the
//! config at later starts. It applies to peers that connect from then on;
//! feeds followed under `connected` stay followed under `follows`.
//!
//! Independent of the mode, the config's `sites` lists other site boxes:
//! the node follows each (a `contact` message at start if it does not yet)
//! and every feed a site follows (mirrored as our own follows whenever the
//! graph changes, within the same cap), so a phone that follows only its
//! own box sees the other sites' people at 2 hops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Replica, ReplicaError};
use crate::feed::json::{Object, Value};
use crate::feed::FeedId;
use crate::store::{Store, StoreError};

/// Default most feeds followed by the `connected` mode.
pub const DEFAULT_CARRY_MAX: u32 = 1000;

/// Highest `carry_max` accepted.
pub const CARRY_MAX_LIMIT: u32 = 100_000;

/// Which feeds the node carries besides the follow graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CarryMode {
    /// The follow graph, `replicate`, minus blocks.
    #[default]
    Follows,
    /// Also every unblocked feed that completes the handshake with us.
    Connected,
}

impl CarryMode {
    /// `follows` or `connected`.
    pub fn as_str(self) -> &'static str {
        match self {
            CarryMode::Follows => "follows",
            CarryMode::Connected => "connected",
        }
    }
}

/// The mode's name is not one we know.
#[derive(Debug, thiserror::Error)]
#[error("unknown carrying mode {0:?} (follows or connected)")]
pub struct UnknownMode(String);

impl std::str::FromStr for CarryMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<CarryMode, UnknownMode> {
        match s {
            "follows" => Ok(CarryMode::Follows),
            "connected" => Ok(CarryMode::Connected),
            _ => Err(UnknownMode(s.to_owned())),
        }
    }
}

/// Who chose the carrying mode in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// The config file's `carry` (or its default).
    Config,
    /// The keeper, at runtime; saved in the store.
    Keeper,
}

impl SetBy {
    /// `config` or `keeper`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetBy::Config => "config",
            SetBy::Keeper => "keeper",
        }
    }
}

/// The carrying mode in force, and who chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarryChoice {
    /// The mode.
    pub mode: CarryMode,
    /// Who chose it.
    pub set_by: SetBy,
}

/// `connected` asked of a node that replicates no follows (`hops = 0`):
/// the asker's fault.
#[derive(Debug, thiserror::Error)]
#[error("\"connected\" carries through follows: it needs hops of 1 or more")]
pub struct NeedsHops;

/// Checks that `mode` can work with follow-graph distance `hops`.
pub fn check(mode: CarryMode, hops: u32) -> Result<(), NeedsHops> {
    if mode == CarryMode::Connected && hops == 0 {
        return Err(NeedsHops);
    }
    Ok(())
}

/// The store's setting name of the keeper's mode.
const SETTING: &str = "carry";

/// The keeper's mode saved in `store`, if one is.
pub fn saved(store: &Store) -> Result<Option<CarryMode>, StoreError> {
    let Some(v) = store.setting(SETTING)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&v);
    text.parse()
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("the keeper's carrying mode: {e}")))
}

/// Saves `mode` as the keeper's in `store` (checked against `hops`), for
/// the next start; a running node's replica also needs
/// [`Replica::set_carry_mode`], which calls this.
pub fn save(store: &Store, mode: CarryMode, hops: u32) -> Result<(), ReplicaError> {
    check(mode, hops)?;
    store.set_setting(SETTING, mode.as_str().as_bytes())?;
    Ok(())
}

/// The mode a replica starts with: the keeper's saved one, else the
/// config's (also when the saved one cannot work with the config's `hops`).
pub(super) fn initial(
    store: &Store,
    config: CarryMode,
    hops: u32,
) -> Result<CarryChoice, StoreError> {
    match saved(store)? {
        Some(mode) if check(mode, hops).is_ok() => Ok(CarryChoice {
            mode,
            set_by: SetBy::Keeper,
        }),
        Some(mode) => {
            tracing::warn!(
                "the keeper's carrying mode {:?} needs hops of 1 or more: using the config's {:?}",
                mode.as_str(),
                config.as_str()
            );
            Ok(CarryChoice {
                mode: config,
                set_by: SetBy::Config,
            })
        }
        None => Ok(CarryChoice {
            mode: config,
            set_by: SetBy::Config,
        }),
    }
}

/// What the node did under the policy; one per node.
#[derive(Debug, Default)]
pub struct Carrier {
    /// Held while deciding on and publishing one follow, so two sessions
    /// of a new peer publish one `contact`.
    lock: tokio::sync::Mutex<()>,
    /// Feeds followed because they connected (since start).
    followed: AtomicU64,
    /// Connecting feeds not carried because of `carry_max` (since start).
    refused: AtomicU64,
}

impl Carrier {
    /// Feeds followed because they connected, since start.
    pub fn followed(&self) -> u64 {
        self.followed.load(Ordering::Relaxed)
    }

    /// Connecting feeds left uncarried at the cap, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A `contact` content following `feed`.
fn follow_content(feed: &FeedId) -> Value {
    let mut o = Object::new();
    o.push("type", Value::string("contact"));
    o.push("contact", Value::string(&feed.to_string()));
    o.push("following", Value::Bool(true));
    Value::Object(o)
}

/// Whether we follow `feed` with a contact message of ours.
fn we_follow(node: &Replica, feed: &FeedId) -> Result<bool, ReplicaError> {
    Ok(node
        .store
        .contacts(node.id())?
        .get(feed)
        .is_some_and(|s| s.following))
}

/// How many feeds we follow.
fn follows(node: &Replica) -> Result<usize, ReplicaError> {
    Ok(node
        .store
        .contacts(node.id())?
        .values()
        .filter(|s| s.following)
        .count())
}

/// A peer completed the handshake: under `connected`, follow it (unless it
/// is us, blocked, followed already, or the cap is reached). Returns whether
/// a follow was published. Call before the session replicates.
pub async fn on_connect(node: &Arc<Replica>, peer: &FeedId) -> Result<bool, ReplicaError> {
    if node.carry_mode() != CarryMode::Connected || peer == node.id() || node.is_blocked(peer) {
        return Ok(false);
    }
    let _one = node.carrier().lock.lock().await;
    if we_follow(node, peer)? {
        return Ok(false);
    }
    let max = node.policy().carry_max as usize;
    if follows(node)? >= max {
        node.carrier().refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, "not carrying a connecting feed: {max} feeds followed (carry_max)");
        return Ok(false);
    }
    node.publish(vec![follow_content(peer)]).await?;
    node.carrier().followed.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, "carrying a feed that connected: followed it");
    Ok(true)
}

/// Follows every site of the config's `sites` we do not follow yet and
/// every feed a site follows that we do not (none blocked, none of them
/// us), up to `carry_max` follows in all. Returns how many follows were
/// published.
pub async fn follow_sites(node: &Arc<Replica>) -> Result<usize, ReplicaError> {
    if node.policy().sites.is_empty() {
        return Ok(0);
    }
    let _one = node.carrier().lock.lock().await;
    let ours = node.store().contacts(node.id())?;
    let mut followed = ours.values().filter(|s| s.following).count();
    let mut new = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut consider = |feed: &FeedId, new: &mut Vec<FeedId>| {
        let known = ours.get(feed).is_some_and(|s| s.following || s.blocking);
        if feed == node.id() || known || node.is_blocked(feed) || !seen.insert(*feed) {
            return;
        }
        if followed >= node.policy().carry_max as usize {
            node.carrier().refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        followed += 1;
        new.push(*feed);
    };
    for site in &node.policy().sites {
        consider(site, &mut new);
    }
    for site in &node.policy().sites {
        if node.is_blocked(site) {
            continue;
        }
        for (feed, stance) in node.store().contacts(site)? {
            if stance.following {
                consider(&feed, &mut new);
            }
        }
    }
    if !new.is_empty() {
        node.publish(new.iter().map(follow_content).collect())
            .await?;
        tracing::info!(
            follows = new.len(),
            "followed sites and the feeds they follow"
        );
    }
    Ok(new.len())
}

/// Runs [`follow_sites`] at start and whenever the replicate set changes
/// (a site's new follows arrived), until dropped. Idle otherwise.
pub async fn keep_following_sites(node: Arc<Replica>) {
    if node.policy().sites.is_empty() {
        return;
    }
    let mut changes = node.graph_changes();
    loop {
        if let Err(e) = follow_sites(&node).await {
            tracing::warn!("following the sites' follows: {e}");
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Policy;
    use super::*;
    use crate::blob_store::BlobStore;
    use crate::feed::Keypair;
    use crate::store::Store;

    fn node(dir: &std::path::Path, policy: Policy) -> Arc<Replica> {
        let store = Store::open(&dir.join("db")).unwrap();
        let blobs = BlobStore::open(&dir.join("blobs")).unwrap();
        Replica::new(Keypair::generate(), store, blobs, policy).unwrap()
    }

    #[tokio::test]
    async fn connected_feeds_are_followed_once_up_to_the_cap_and_not_if_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c, blocked] = std::array::from_fn(|_| Keypair::generate().id());
        let settings = Policy {
            carry: CarryMode::Connected,
            carry_max: 2,
            block: vec![blocked],
            ..Policy::default()
        };
        let n = node(dir.path(), settings);
        assert!(on_connect(&n, &a).await.unwrap());
        assert!(n.replicate_set().contains(&a), "carried at once");
        assert!(!on_connect(&n, &a).await.unwrap(), "followed already");
        assert!(!on_connect(&n, &blocked).await.unwrap());
        assert!(!on_connect(&n, n.id()).await.unwrap());
        assert!(on_connect(&n, &b).await.unwrap());
        // The cap: two follows.
        assert!(!on_connect(&n, &c).await.unwrap());
        assert!(!n.replicate_set().contains(&c));
        assert_eq!((n.carrier().followed(), n.carrier().refused()), (2, 1));
        assert_eq!(n.seq(n.id()).unwrap(), 2, "one contact per carried feed");
    }

    #[tokio::test]
    async fn the_follows_mode_carries_nobody_and_sites_and_their_follows_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let site = Keypair::generate();
        let [a, b, blocked] = std::array::from_fn(|_| Keypair::generate().id());
        let settings = Policy {
            sites: vec![site.id(), site.id()],
            block: vec![blocked],
            carry_max: 3,
            ..Policy::default()
        };
        let n = node(dir.path(), settings);
        assert!(!on_connect(&n, &a).await.unwrap());
        assert_eq!(follow_sites(&n).await.unwrap(), 1);
        assert_eq!(follow_sites(&n).await.unwrap(), 0);
        // The site's follows arrive (as from a stick or a peer).
        let contact = |whom: &FeedId| {
            crate::publish::publish(n.store(), &site, [follow_content(whom)]).unwrap();
        };
        for f in [a, *n.id(), blocked, b] {
            contact(&f);
        }
        assert_eq!(follow_sites(&n).await.unwrap(), 2, "a and b");
        let set = n.replicate_set();
        assert_eq!((set.feeds.get(&a), set.feeds.get(&b)), (Some(&1), Some(&1)));
        assert!(!set.contains(&blocked));
        // The cap: 3 follows.
        let c = Keypair::generate().id();
        contact(&c);
        assert_eq!(follow_sites(&n).await.unwrap(), 0);
        assert_eq!(n.carrier().refused(), 1);
        assert_eq!(n.seq(n.id()).unwrap(), 3);
    }

    #[tokio::test]
    async fn the_keepers_mode_is_in_force_at_once_and_wins_over_the_config_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keypair::generate();
        let open = |policy: Policy| {
            let store = Store::open(&dir.path().join("db")).unwrap();
            let blobs = BlobStore::open(&dir.path().join("blobs")).unwrap();
            Replica::new(keys.clone(), store, blobs, policy).unwrap()
        };
        let n = open(Policy::default());
        let config = CarryChoice {
            mode: CarryMode::Follows,
            set_by: SetBy::Config,
        };
        assert_eq!(n.carry(), config);
        let [a, b] = std::array::from_fn(|_| Keypair::generate().id());
        assert!(!on_connect(&n, &a).await.unwrap());
        n.set_carry_mode(CarryMode::Connected).unwrap();
        let keeper = CarryChoice {
            mode: CarryMode::Connected,
            set_by: SetBy::Keeper,
        };
        assert_eq!(n.carry(), keeper);
        assert!(on_connect(&n, &a).await.unwrap(), "carried from now on");
        drop(n);

        // The next start: the keeper's choice, not the config's.
        let n = open(Policy::default());
        assert_eq!(n.carry(), keeper);
        assert!(on_connect(&n, &b).await.unwrap());
        n.set_carry_mode(CarryMode::Follows).unwrap();
        drop(n);
        let settings = Policy {
            carry: CarryMode::Connected,
            ..Policy::default()
        };
        let n = open(settings.clone());
        assert_eq!(n.carry().mode, CarryMode::Follows);
        assert!(!on_connect(&n, &Keypair::generate().id()).await.unwrap());
        drop(n);

        // `connected` needs follows: refused with hops = 0, nothing saved;
        // a saved `connected` under a config of hops = 0 yields to it.
        let n = open(Policy {
            hops: 0,
            ..Policy::default()
        });
        let e = n.set_carry_mode(CarryMode::Connected).unwrap_err();
        assert!(matches!(e, ReplicaError::NeedsHops(_)), "{e}");
        assert_eq!(saved(n.store()).unwrap(), Some(CarryMode::Follows));
        save(n.store(), CarryMode::Connected, 1).unwrap();
        drop(n);
        let n = open(Policy {
            hops: 0,
            ..Policy::default()
        });
        assert_eq!(n.carry(), config);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "connected".parse::<CarryMode>().unwrap(),
            CarryMode::Connected
        );
        assert_eq!("follows".parse::<CarryMode>().unwrap(), CarryMode::Follows);
        let e = "everyone".parse::<CarryMode>().unwrap_err().to_string();
        assert!(e.contains("unknown carrying mode \"everyone\""), "{e}");
    }
}
