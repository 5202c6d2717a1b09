//! Publishing this node's own messages.
//!
//! Each new message follows the stored head of the node's feed, with a
//! timestamp that is the wall clock or, if the clock is behind (a Pi with no
//! RTC that booted without network), one millisecond past the previous
//! message, since ssb-validate requires increasing timestamps from creators.

use crate::feed::{BatchVerifier, FeedHead, Invalid, Keypair, Message, MsgId, Value};
use crate::ingest::BATCH;
use crate::store::{now_ms, Store, StoreError};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The content cannot make a valid message.
    #[error("content {index}: {reason}")]
    Invalid {
        /// Which content (0-based) in the input.
        index: usize,
        /// Why.
        reason: Invalid,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signs and stores one message per content, in order, durably. Either all
/// contents before a bad one are published and the error names the bad one,
/// or all are published.
pub fn publish(
    store: &Store,
    keys: &Keypair,
    contents: impl IntoIterator<Item = Value>,
) -> Result<Vec<MsgId>, PublishError> {
    let feed = keys.id();
    let mut head: Option<FeedHead> = store.head(&feed)?;
    let mut last_ts = store
        .latest(&feed)?
        .and_then(|m| m.message().ok()?.timestamp())
        .unwrap_or(f64::NEG_INFINITY);
    let mut verifier = BatchVerifier::new();
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    let mut failure = None;
    for (index, content) in contents.into_iter().enumerate() {
        let ts = now_ms().max((last_ts + 1.0).floor());
        match Message::create(keys, head.as_ref(), ts, content, None) {
            Ok(m) => {
                head = Some(m.head());
                last_ts = ts;
                ids.push(m.id());
                batch.push(m);
            }
            Err(reason) => {
                failure = Some(PublishError::Invalid { index, reason });
                break;
            }
        }
        if batch.len() >= BATCH {
            let base = ids.len() - batch.len();
            write(store, std::mem::take(&mut batch), &mut verifier, base)?;
        }
    }
    let base = ids.len() - batch.len();
    write(store, batch, &mut verifier, base)?;
    store.persist()?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ids),
    }
}

/// Appends `batch`, whose first message is content number `base`.
fn write(
    store: &Store,
    batch: Vec<Message>,
    verifier: &mut BatchVerifier,
    base: usize,
) -> Result<(), PublishError> {
    let report = store.append(batch, verifier)?;
    match report.first_rejection {
        // Our own fresh messages can only be refused if the store changed
        // under us (another writer): say so rather than lose them silently.
        Some((index, reason)) => Err(PublishError::Invalid {
            index: base + index,
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_a_chain_with_increasing_timestamps() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys = Keypair::from_seed(&[11; 32]);
        let contents = (0..3).map(|i| {
            Value::parse(format!(r#"{{"type":"post","i":{i}}}"#).as_bytes()).expect("json")
        });
        let ids = publish(&store, &keys, contents).expect("publish");
        assert_eq!(ids.len(), 3);
        let more = publish(
            &store,
            &keys,
            [Value::parse(br#"{"type":"post"}"#).expect("json")],
        )
        .expect("publish");
        assert_eq!(
            store
                .head(&keys.id())
                .expect("head")
                .map(|h| (h.sequence, h.id)),
            Some((4, more[0]))
        );
        let ts: Vec<f64> = store
            .feed(&keys.id(), 1)
            .map(|m| {
                m.expect("read")
                    .message()
                    .expect("parse")
                    .timestamp()
                    .expect("ts")
            })
            .collect();
        assert!(ts.windows(2).all(|w| w[1] > w[0]), "{ts:?}");
        // Bad content: the ones before it are published.
        let bad = [
            Value::parse(br#"{"type":"post"}"#).expect("json"),
            Value::parse(br#"{"type":"x"}"#).expect("json"),
        ];
        assert!(matches!(
            publish(&store, &keys, bad),
            Err(PublishError::Invalid { index: 1, .. })
        ));
        assert_eq!(
            store.head(&keys.id()).expect("head").map(|h| h.sequence),
            Some(5)
        );
    }
}
