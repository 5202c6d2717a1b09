//! What an `invite.use({feed})` may do, and how often it may be tried.
//!
//! [`check_use`] decides one use against the stored record; [`Attempts`]
//! bounds how often uses are tried, per invite key and over all keys, with
//! state bounded by [`MAX_TRACKED_KEYS`]. Both take the time as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::feed::json::Value;
use crate::feed::FeedId;
use crate::store::invites::InviteRecord;

/// Why a use was refused; the message is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The owner revoked it.
    #[error("invite was revoked")]
    Revoked,
    /// Every use was taken.
    #[error("invite has been used up")]
    UsedUp,
    /// Past its expiry.
    #[error("invite has expired")]
    Expired,
    /// The argument is not `{feed: "@….ed25519"}`.
    #[error("invite.use expects {{feed: \"@<key>.ed25519\"}}: {0}")]
    BadFeed(String),
    /// The feed is this node's own.
    #[error("invite.use cannot make this node follow itself")]
    OwnFeed,
    /// The node blocks the feed.
    #[error("this node blocks {0}")]
    Blocked(FeedId),
    /// Too many attempts, for this key or in all.
    #[error("too many invite attempts; try again in a few seconds")]
    RateLimited,
}

/// The feed named by `invite.use`'s argument `{feed}`.
pub fn feed_arg(arg: &Value) -> Result<FeedId, Refused> {
    let text = arg
        .as_object()
        .and_then(|o| o.get("feed"))
        .ok_or_else(|| Refused::BadFeed("feed to follow is missing".into()))?
        .as_str()
        .ok_or_else(|| Refused::BadFeed("feed is not a string".into()))?;
    text.parse()
        .map_err(|_| Refused::BadFeed(format!("not a feed id: {}", short(text))))
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a granted use does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Follow the feed, and count the use.
    Follow,
    /// The node follows the feed already: nothing to publish, no use counted.
    AlreadyFollowing,
}

/// Decides a use of `record` at `now` (ms since the epoch) by `feed`.
/// `own` is this node; `following` and `blocked` say how it stands to `feed`.
pub fn check_use(
    record: &InviteRecord,
    now: f64,
    feed: &FeedId,
    own: &FeedId,
    following: bool,
    blocked: bool,
) -> Result<Grant, Refused> {
    if record.revoked {
        return Err(Refused::Revoked);
    }
    if record.expires.is_some_and(|e| now >= e) {
        return Err(Refused::Expired);
    }
    if record.uses_left == 0 {
        return Err(Refused::UsedUp);
    }
    if feed == own {
        return Err(Refused::OwnFeed);
    }
    if blocked {
        return Err(Refused::Blocked(*feed));
    }
    Ok(if following {
        Grant::AlreadyFollowing
    } else {
        Grant::Follow
    })
}

/// The record after a granted [`Grant::Follow`].
pub fn count_use(record: &InviteRecord) -> InviteRecord {
    InviteRecord {
        uses_left: record.uses_left.saturating_sub(1),
        ..record.clone()
    }
}

/// Attempts one invite key may burst.
pub const PER_KEY_BURST: f64 = 3.0;
/// Attempts one invite key gets back per second.
pub const PER_KEY_RATE: f64 = 0.5;
/// Attempts all keys together may burst.
pub const GLOBAL_BURST: f64 = 20.0;
/// Attempts all keys together get back per second.
pub const GLOBAL_RATE: f64 = 5.0;
/// Invite keys whose attempts are tracked at once; past it, a new key waits
/// until one has been quiet long enough to forget (a bucket refilled to its
/// burst is forgotten, which loses nothing).
pub const MAX_TRACKED_KEYS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, at: Instant) -> Bucket {
        Bucket { tokens: burst, at }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    fn is_full_at(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + dt * rate >= burst
    }
}

/// Token buckets for `invite.use` attempts: one per invite key and one for
/// all; an attempt takes a token from both.
#[derive(Debug)]
pub struct Attempts {
    global: Bucket,
    keys: HashMap<FeedId, Bucket>,
}

impl Attempts {
    /// Full buckets at `now`.
    pub fn new(now: Instant) -> Attempts {
        Attempts {
            global: Bucket::full(GLOBAL_BURST, now),
            keys: HashMap::new(),
        }
    }

    /// Takes a token for an attempt by `key` at `now`, or refuses.
    pub fn attempt(&mut self, key: &FeedId, now: Instant) -> Result<(), Refused> {
        self.global.refill(now, GLOBAL_RATE, GLOBAL_BURST);
        if !self.keys.contains_key(key) && self.keys.len() >= MAX_TRACKED_KEYS {
            self.keys
                .retain(|_, b| !b.is_full_at(now, PER_KEY_RATE, PER_KEY_BURST));
            if self.keys.len() >= MAX_TRACKED_KEYS {
                return Err(Refused::RateLimited);
            }
        }
        let bucket = self
            .keys
            .entry(*key)
            .or_insert_with(|| Bucket::full(PER_KEY_BURST, now));
        bucket.refill(now, PER_KEY_RATE, PER_KEY_BURST);
        if bucket.tokens < 1.0 || self.global.tokens < 1.0 {
            return Err(Refused::RateLimited);
        }
        bucket.tokens -= 1.0;
        self.global.tokens -= 1.0;
        Ok(())
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.keys.len()
    }
}

/// How long a key that used its burst waits for one more attempt.
pub fn per_key_wait() -> Duration {
    Duration::from_secs_f64(1.0 / PER_KEY_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> InviteRecord {
        InviteRecord {
            key: FeedId([1; 32]),
            uses_left: 2,
            uses: 2,
            expires: Some(1000.0),
            note: None,
            created: 0.0,
            revoked: false,
        }
    }

    const OWN: FeedId = FeedId([9; 32]);
    const FEED: FeedId = FeedId([5; 32]);

    #[test]
    fn a_live_invite_follows_and_counts_down_to_used_up() {
        let r = record();
        assert_eq!(
            check_use(&r, 10.0, &FEED, &OWN, false, false),
            Ok(Grant::Follow)
        );
        let r = count_use(&r);
        assert_eq!(r.uses_left, 1);
        let r = count_use(&r);
        assert_eq!(
            check_use(&r, 10.0, &FEED, &OWN, false, false),
            Err(Refused::UsedUp)
        );
        assert_eq!(count_use(&r).uses_left, 0);
    }

    #[test]
    fn expired_revoked_own_and_blocked_are_refused() {
        let r = record();
        assert_eq!(
            check_use(&r, 1000.0, &FEED, &OWN, false, false),
            Err(Refused::Expired)
        );
        let revoked = InviteRecord {
            revoked: true,
            ..record()
        };
        assert_eq!(
            check_use(&revoked, 10.0, &FEED, &OWN, false, false),
            Err(Refused::Revoked)
        );
        assert_eq!(
            check_use(&r, 10.0, &OWN, &OWN, false, false),
            Err(Refused::OwnFeed)
        );
        assert_eq!(
            check_use(&r, 10.0, &FEED, &OWN, false, true),
            Err(Refused::Blocked(FEED))
        );
        assert_eq!(
            check_use(&r, 10.0, &FEED, &OWN, true, false),
            Ok(Grant::AlreadyFollowing)
        );
    }

    #[test]
    fn the_feed_argument_must_be_a_feed_id() {
        let ok = Value::parse(format!(r#"{{"feed":"{FEED}"}}"#).as_bytes()).unwrap();
        assert_eq!(feed_arg(&ok), Ok(FEED));
        for bad in [
            r#"{}"#,
            r#"{"feed":1}"#,
            r#"{"feed":"@abc.ed25519"}"#,
            r#"{"feed":"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"}"#,
            r#""@x""#,
            r#"null"#,
        ] {
            let v = Value::parse(bad.as_bytes()).unwrap();
            assert!(matches!(feed_arg(&v), Err(Refused::BadFeed(_))), "{bad}");
        }
    }

    #[test]
    fn attempts_are_limited_per_key_and_in_all() {
        let t0 = Instant::now();
        let mut a = Attempts::new(t0);
        let k = FeedId([1; 32]);
        for _ in 0..3 {
            assert_eq!(a.attempt(&k, t0), Ok(()));
        }
        assert_eq!(a.attempt(&k, t0), Err(Refused::RateLimited));
        assert_eq!(a.attempt(&k, t0 + per_key_wait()), Ok(()));
        // Other keys share the global bucket: 17 left after the first three,
        // refilled to its burst of 20 in the 2 s, less the one just taken.
        let mut granted = 0;
        for n in 0..40u8 {
            if a.attempt(&FeedId([n + 10; 32]), t0 + per_key_wait())
                .is_ok()
            {
                granted += 1;
            }
        }
        assert_eq!(granted, 19);
    }

    #[test]
    fn tracked_keys_stay_bounded() {
        let t0 = Instant::now();
        let mut a = Attempts::new(t0);
        let mut t = t0;
        let mut refused = 0;
        for n in 0..2000u32 {
            // One attempt per 0.2 s: the global rate, so only the key
            // table can refuse.
            t += Duration::from_millis(200);
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&n.to_be_bytes());
            if a.attempt(&FeedId(k), t).is_err() {
                refused += 1;
            }
            assert!(a.tracked() <= MAX_TRACKED_KEYS);
        }
        // A key's bucket is full again 2 s after its one attempt, so old
        // keys are forgotten and new ones keep getting in.
        assert_eq!(refused, 0);
    }
}
