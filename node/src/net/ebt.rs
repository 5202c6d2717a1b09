//! Epidemic broadcast trees (`ebt.replicate`, version 3, format `classic`):
//! the vector-clock notes and how to tell a clock from a message, sans-IO.
//!
//! A clock is a JSON object `{feedId: note}`. A note of −1 says "do not
//! replicate"; otherwise `note = (seq << 1) | (receive ? 0 : 1)`, where
//! `receive` asks the other side to send us what it has beyond `seq`
//! (SPEC-CHECKLIST §8).

use crate::feed::json::{Object, Value};
use crate::feed::FeedId;

/// The request arguments the handshake client sends: `{"version":3,"format":"classic"}`.
pub fn request_args() -> Value {
    let mut o = Object::new();
    o.push("version", Value::Number(3.0));
    o.push("format", Value::string("classic"));
    Value::Object(o)
}

/// Why an incoming `ebt.replicate` is refused (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EbtRequestError {
    /// The first argument is not an object.
    #[error("ebt.replicate expects an options object")]
    NoOptions,
    /// A version other than 3.
    #[error("expected ebt version 3")]
    Version,
    /// A format other than `classic`.
    #[error("unsupported ebt format (only classic)")]
    Format,
}

/// Checks the arguments of an incoming `ebt.replicate`; the error says why we refuse.
pub fn check_request_args(args: &[Value]) -> Result<(), EbtRequestError> {
    let o = args
        .first()
        .and_then(Value::as_object)
        .ok_or(EbtRequestError::NoOptions)?;
    match o.get("version") {
        Some(Value::Number(v)) if *v == 3.0 => {}
        _ => return Err(EbtRequestError::Version),
    }
    match o.get("format") {
        None => Ok(()),
        Some(f) if f.as_str() == Some("classic") => Ok(()),
        Some(_) => Err(EbtRequestError::Format),
    }
}

/// One feed's entry in a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// −1: the sender does not replicate this feed.
    Skip,
    /// The sender holds the feed up to `seq`; `receive` asks for what follows.
    Have {
        /// Latest sequence held (0 for none).
        seq: u32,
        /// Whether the sender wants messages after `seq` from us.
        receive: bool,
    },
}

/// A malformed clock or note.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EbtError {
    /// A key is not a feed id.
    #[error("clock key is not a feed id: {0}")]
    BadFeed(String),
    /// A value is not an integer note.
    #[error("clock value for {0} is not a valid note")]
    BadNote(String),
}

impl Note {
    /// The integer on the wire.
    pub fn encode(self) -> i64 {
        match self {
            Note::Skip => -1,
            Note::Have { seq, receive } => (i64::from(seq) << 1) | i64::from(!receive),
        }
    }

    /// Decodes a wire integer; `None` for values that are not notes.
    pub fn decode(v: f64) -> Option<Note> {
        if v.fract() != 0.0 || !v.is_finite() {
            return None;
        }
        if v < 0.0 {
            return (v == -1.0).then_some(Note::Skip);
        }
        if v > f64::from(u32::MAX) * 2.0 + 1.0 {
            return None;
        }
        let n = v as u64;
        Some(Note::Have {
            seq: u32::try_from(n >> 1).ok()?,
            receive: n & 1 == 0,
        })
    }
}

/// Whether a received JSON object is a message (rather than a clock):
/// messages carry `signature`, a clock's values are all numbers.
pub fn is_message(o: &Object) -> bool {
    o.get("signature").is_some() && o.get("author").is_some()
}

/// Parses a clock object; the first malformed entry fails the whole clock.
pub fn parse_clock(o: &Object) -> Result<Vec<(FeedId, Note)>, EbtError> {
    o.entries()
        .iter()
        .map(|(k, v)| {
            let key = k.as_str().unwrap_or_default();
            let feed: FeedId = key.parse().map_err(|_| EbtError::BadFeed(key.to_owned()))?;
            let note = match v {
                Value::Number(n) => Note::decode(*n),
                _ => None,
            }
            .ok_or_else(|| EbtError::BadNote(key.to_owned()))?;
            Ok((feed, note))
        })
        .collect()
}

/// Builds a clock object from notes.
pub fn clock_value<'a>(notes: impl IntoIterator<Item = (&'a FeedId, Note)>) -> Value {
    let mut o = Object::new();
    for (feed, note) in notes {
        o.push(&feed.to_string(), Value::Number(note.encode() as f64));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_match_the_checklist_examples() {
        let have = |seq, receive| Note::Have { seq, receive };
        for (v, note) in [
            (0.0, have(0, true)),
            (1.0, have(0, false)),
            (12.0, have(6, true)),
            (450.0, have(225, true)),
            (-1.0, Note::Skip),
        ] {
            assert_eq!(Note::decode(v), Some(note), "{v}");
            assert_eq!(note.encode() as f64, v);
        }
        for bad in [-2.0, 1.5, f64::NAN, 1e12] {
            assert_eq!(Note::decode(bad), None, "{bad}");
        }
        assert_eq!(
            Note::decode(f64::from(u32::MAX) * 2.0),
            Some(have(u32::MAX, true))
        );
    }

    #[test]
    fn clocks_round_trip_and_bad_entries_are_named() {
        let feed: FeedId = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519"
            .parse()
            .unwrap();
        let v = clock_value([(
            &feed,
            Note::Have {
                seq: 6,
                receive: true,
            },
        )]);
        assert_eq!(
            v.to_compact(),
            r#"{"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519":12}"#
        );
        let parsed = parse_clock(v.as_object().unwrap()).unwrap();
        assert_eq!(
            parsed,
            vec![(
                feed,
                Note::Have {
                    seq: 6,
                    receive: true
                }
            )]
        );
        let bad = Value::parse(br#"{"@nope":2}"#).unwrap();
        assert_eq!(
            parse_clock(bad.as_object().unwrap()),
            Err(EbtError::BadFeed("@nope".into()))
        );
        let bad = Value::parse(br#"{"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519":"x"}"#)
            .unwrap();
        assert!(matches!(
            parse_clock(bad.as_object().unwrap()),
            Err(EbtError::BadNote(_))
        ));
    }

    #[test]
    fn request_arguments_are_checked() {
        assert!(check_request_args(&[request_args()]).is_ok());
        let v2 = Value::parse(br#"{"version":2}"#).unwrap();
        assert!(check_request_args(&[v2]).is_err());
        let bendy = Value::parse(br#"{"version":3,"format":"bendybutt-v1"}"#).unwrap();
        assert!(check_request_args(&[bendy]).is_err());
        assert!(check_request_args(&[]).is_err());
    }
}

#[cfg(test)]
mod vector_tests {
    use super::*;
    use crate::net::test_util::vector;

    #[test]
    fn every_note_in_the_vectors_decodes_and_encodes() {
        let v = vector("epidemic-broadcast-trees/notes.json");
        let cases = v["cases"].as_array().unwrap();
        assert!(cases.len() >= 9);
        for c in cases {
            let encoded = c["encoded"].as_f64().unwrap();
            let want = match c["sequence"].as_u64() {
                None => Note::Skip,
                Some(seq) => Note::Have {
                    seq: seq as u32,
                    receive: c["receive"].as_bool().unwrap(),
                },
            };
            assert_eq!(Note::decode(encoded), Some(want), "{c}");
            assert_eq!(want.encode() as f64, encoded);
        }
        let clock = Value::parse(v["example_clock"].to_string().as_bytes()).unwrap();
        let notes = parse_clock(clock.as_object().unwrap()).unwrap();
        assert_eq!(notes.len(), 4);
        assert_eq!(notes.iter().filter(|(_, n)| *n == Note::Skip).count(), 1);
        let req = Value::parse(v["example_request"]["args"].to_string().as_bytes()).unwrap();
        let Value::Array(args) = req else { panic!() };
        assert!(check_request_args(&args).is_ok());
    }
}
