//! Classic SSB messages: shape rules, signing bytes, message id, signature
//! checks (one at a time; batches are in [`super::verify`]), and creating new
//! signed messages.
//!
//! The rules are ssb-validate 4.1.4's, checked against the 126 cases of
//! ssb-validation-dataset. A [`Message`] only exists once its shape is valid;
//! [`Message::verify`] and [`Message::check_chain`] then decide whether it may
//! follow a given feed head.

use ed25519_dalek::{Signature, VerifyingKey};
use hmac::Mac as _;
use sha2::Digest as _;

use super::ids::{decode_base64_exact, encode_base64, FeedId, MsgId};
use super::json::{latin1_bytes, utf16_len, write_pretty_entries, write_quoted, Object, Value};
use super::keys::Keypair;

/// The largest message, in UTF-16 code units of its 2-space JSON.
pub const MAX_MESSAGE_UTF16: usize = 8192;

/// Shortest and longest content `type`, in UTF-16 code units.
pub const TYPE_LEN: std::ops::RangeInclusive<usize> = 3..=52;

/// A network's signing HMAC key (`caps.sign`); the main network has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HmacKey(pub [u8; 32]);

impl HmacKey {
    /// Parses the base64 form used in configs (canonical, 32 bytes).
    pub fn from_base64(text: &str) -> Option<HmacKey> {
        decode_base64_exact::<32>(text).map(HmacKey)
    }

    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        // HMAC-SHA-512-256 as libsodium's crypto_auth: HMAC-SHA-512 cut to 32.
        let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(bytes);
        mac.finalize().into_bytes()[..32].to_vec()
    }
}

/// The latest message of a feed as far as a reader knows: what the next
/// message must point back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedHead {
    /// Its id.
    pub id: MsgId,
    /// Its sequence number.
    pub sequence: u32,
}

/// Why a message was refused. Every variant says what rule it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Json(#[from] super::json::JsonError),
    /// Not a JSON object.
    #[error("message must be a JSON object")]
    NotObject,
    /// Keys missing, extra, or out of order.
    #[error("message keys must be exactly previous, author, sequence, timestamp, hash, content, signature, in that order")]
    KeyOrder,
    /// `author` is not an ed25519 feed id.
    #[error("author must be an ed25519 feed id ('@' + base64 of 32 bytes + '.ed25519')")]
    Author,
    /// `author` is a feed id that is no valid Ed25519 public key.
    #[error("author is not a valid Ed25519 public key")]
    AuthorKey,
    /// `sequence` is no positive 32-bit integer.
    #[error("sequence must be an integer from 1 to 2147483647")]
    Sequence,
    /// `previous` is neither null nor a message id.
    #[error("previous must be null or a message id")]
    Previous,
    /// `previous` is null exactly when sequence is 1, and it isn't.
    #[error("previous must be null for sequence 1, and only then (sequence {0})")]
    FirstMessage(u32),
    /// The first message has no numeric timestamp.
    #[error("the first message of a feed must have a numeric timestamp")]
    Timestamp,
    /// `hash` is not `"sha256"`.
    #[error("hash must be \"sha256\"")]
    Hash,
    /// Content breaks a rule.
    #[error("content {0}")]
    Content(&'static str),
    /// Too large.
    #[error("message is {0} UTF-16 units long, more than the limit of {MAX_MESSAGE_UTF16}")]
    TooLarge(usize),
    /// `signature` is not base64 of 64 bytes + `.sig.ed25519`.
    #[error("signature must be canonical base64 of 64 bytes + '.sig.ed25519'")]
    SignatureFormat,
    /// The signature does not match.
    #[error("signature does not verify")]
    BadSignature,
    /// The feed's next message has another sequence number.
    #[error("expected sequence {expected} of this feed, got {got}")]
    Sequencing {
        /// The sequence that would fit.
        expected: u32,
        /// The sequence the message has.
        got: u32,
    },
    /// A `{key, value}` wrapper whose key is not the value's id.
    #[error("the key given with the message is not its id")]
    KeyMismatch,
    /// Right sequence, wrong previous: a fork of the feed.
    #[error("previous does not match message {sequence} of this feed (a fork)")]
    Fork {
        /// The sequence of the message it should point to.
        sequence: u32,
    },
}

/// A message whose shape is valid; see the module docs.
#[derive(Clone, Debug)]
pub struct Message {
    value: Value,
    id: MsgId,
    author: FeedId,
    sequence: u32,
    previous: Option<MsgId>,
    signature: [u8; 64],
    signed: Vec<u8>,
}

impl Message {
    /// Parses a JSON text into a message (shape checks only).
    pub fn parse(text: &[u8], hmac: Option<&HmacKey>) -> Result<Message, Invalid> {
        Message::from_value(Value::parse(text)?, hmac)
    }

    /// Checks a value's shape and computes its id and signing bytes.
    pub fn from_value(value: Value, hmac: Option<&HmacKey>) -> Result<Message, Invalid> {
        let Value::Object(obj) = &value else {
            return Err(Invalid::NotObject);
        };
        check_key_order(obj)?;
        let field = |k: &str| obj.get(k).unwrap_or(&Value::Null);

        let author: FeedId = field("author")
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or(Invalid::Author)?;
        let sequence = match field("sequence") {
            Value::Number(n) if n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(i32::MAX) => {
                *n as u32
            }
            _ => return Err(Invalid::Sequence),
        };
        let previous = match field("previous") {
            Value::Null => None,
            v => Some(
                v.as_str()
                    .and_then(|s| s.parse::<MsgId>().ok())
                    .ok_or(Invalid::Previous)?,
            ),
        };
        if (sequence == 1) != previous.is_none() {
            return Err(Invalid::FirstMessage(sequence));
        }
        if sequence == 1 && !matches!(field("timestamp"), Value::Number(_)) {
            return Err(Invalid::Timestamp);
        }
        if field("hash").as_str() != Some("sha256") {
            return Err(Invalid::Hash);
        }
        check_content(field("content"))?;
        let signature_text = field("signature")
            .as_str()
            .ok_or(Invalid::SignatureFormat)?;
        let signature = signature_text
            .strip_suffix(".sig.ed25519")
            .and_then(decode_base64_exact::<64>)
            .ok_or(Invalid::SignatureFormat)?;

        // Signing text: the value without its last key (`signature`).
        let mut text = Vec::with_capacity(1024);
        write_pretty_entries(&mut text, &obj.entries()[..6], 0);
        // The full text is the signing text with `,\n  "signature": "…"\n}`
        // in place of its closing `\n}`: hash and measure it in two parts.
        let mut tail = Vec::with_capacity(120);
        tail.extend_from_slice(b",\n  \"signature\": ");
        write_quoted(&mut tail, signature_text.as_bytes());
        tail.extend_from_slice(b"\n}");
        let head = &text[..text.len() - 2];
        let len = utf16_len(head) + utf16_len(&tail);
        if len > MAX_MESSAGE_UTF16 {
            return Err(Invalid::TooLarge(len));
        }
        let mut hasher = sha2::Sha256::new();
        hasher.update(latin1_bytes(head));
        hasher.update(latin1_bytes(&tail));
        let id = MsgId(hasher.finalize().into());
        let signed = match hmac {
            Some(key) => key.apply(&text),
            None => text,
        };

        Ok(Message {
            value,
            id,
            author,
            sequence,
            previous,
            signature,
            signed,
        })
    }

    /// Makes and signs the message that follows `head` (None: the first one).
    /// Content gets JavaScript key order, so JS peers accept the signature.
    pub fn create(
        keys: &Keypair,
        head: Option<&FeedHead>,
        timestamp: f64,
        content: Value,
        hmac: Option<&HmacKey>,
    ) -> Result<Message, Invalid> {
        check_content(&content)?;
        let mut obj = Object::new();
        obj.push(
            "previous",
            head.map_or(Value::Null, |h| Value::string(&h.id.to_string())),
        );
        obj.push("author", Value::string(&keys.id().to_string()));
        let sequence = head.map_or(1, |h| h.sequence.saturating_add(1));
        obj.push("sequence", Value::Number(f64::from(sequence)));
        obj.push("timestamp", Value::Number(timestamp));
        obj.push("hash", Value::string("sha256"));
        obj.push("content", content);
        let mut text = Vec::with_capacity(1024);
        write_pretty_entries(&mut text, obj.entries(), 0);
        let signed = match hmac {
            Some(key) => key.apply(&text),
            None => text,
        };
        let sig = keys.sign(&signed);
        obj.push(
            "signature",
            Value::string(&format!("{}.sig.ed25519", encode_base64(&sig))),
        );
        Message::from_value(Value::Object(obj), hmac)
    }

    /// Checks that this message may follow `head` (None: the feed is new).
    pub fn check_chain(&self, head: Option<&FeedHead>) -> Result<(), Invalid> {
        let expected = head.map_or(1, |h| h.sequence.saturating_add(1));
        if self.sequence != expected {
            return Err(Invalid::Sequencing {
                expected,
                got: self.sequence,
            });
        }
        if let Some(h) = head {
            if self.previous != Some(h.id) {
                return Err(Invalid::Fork {
                    sequence: h.sequence,
                });
            }
        }
        Ok(())
    }

    /// The bytes the signature is over (the signing text, or its HMAC).
    pub(super) fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// The signature.
    pub(super) fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Verifies the signature alone (strict, as libsodium does).
    pub fn verify(&self) -> Result<(), Invalid> {
        let key =
            VerifyingKey::from_bytes(self.author.as_bytes()).map_err(|_| Invalid::AuthorKey)?;
        key.verify_strict(&self.signed, &Signature::from_bytes(&self.signature))
            .map_err(|_| Invalid::BadSignature)
    }

    /// The message id.
    pub fn id(&self) -> MsgId {
        self.id
    }

    /// The author's feed.
    pub fn author(&self) -> FeedId {
        self.author
    }

    /// The sequence number (1-based).
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The previous message's id (None for sequence 1).
    pub fn previous(&self) -> Option<MsgId> {
        self.previous
    }

    /// The claimed timestamp, if it is a number.
    pub fn timestamp(&self) -> Option<f64> {
        match self.value.as_object().and_then(|o| o.get("timestamp")) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// The content (an object, or a string for private messages).
    pub fn content(&self) -> &Value {
        self.value
            .as_object()
            .and_then(|o| o.get("content"))
            .unwrap_or(&Value::Null)
    }

    /// The whole signed value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// This message as the head its successor must follow.
    pub fn head(&self) -> FeedHead {
        FeedHead {
            id: self.id,
            sequence: self.sequence,
        }
    }
}

fn check_key_order(obj: &Object) -> Result<(), Invalid> {
    let keys: Vec<&[u8]> = obj.entries().iter().map(|(k, _)| k.as_bytes()).collect();
    let ok = keys.len() == 7
        && keys[0] == b"previous"
        && ((keys[1] == b"author" && keys[2] == b"sequence")
            || (keys[1] == b"sequence" && keys[2] == b"author"))
        && keys[3] == b"timestamp"
        && keys[4] == b"hash"
        && keys[5] == b"content"
        && keys[6] == b"signature";
    if ok {
        Ok(())
    } else {
        Err(Invalid::KeyOrder)
    }
}

/// Content is an object with a `type` of 3 to 52 UTF-16 units, or a private
/// box: base64 followed by `.box` (and possibly more, e.g. `.box2`).
fn check_content(content: &Value) -> Result<(), Invalid> {
    match content {
        Value::Object(o) => match o.get("type") {
            Some(Value::String(t)) if TYPE_LEN.contains(&t.utf16_len()) => Ok(()),
            Some(Value::String(_)) => Err(Invalid::Content("type must be 3 to 52 characters long")),
            _ => Err(Invalid::Content("type must be a string")),
        },
        Value::String(s) if is_boxed(s.as_bytes()) => Ok(()),
        Value::String(_) => Err(Invalid::Content(
            "string must be base64 followed by '.box' (a private message)",
        )),
        Value::Array(_) => Err(Invalid::Content("must not be an array")),
        Value::Null => Err(Invalid::Content("must not be null")),
        _ => Err(Invalid::Content(
            "must be an object or a private-box string",
        )),
    }
}

/// `/^[0-9A-Za-z\/+]+={0,2}\.box/` as ssb-validate tests private content.
fn is_boxed(s: &[u8]) -> bool {
    let b64 = s
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'/' || **c == b'+')
        .count();
    if b64 == 0 {
        return false;
    }
    let pad = s[b64..].iter().take(2).take_while(|c| **c == b'=').count();
    s[b64 + pad..].starts_with(b".box")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(path: &str) -> String {
        let p = format!("{}/../tests/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn obj_get<'a>(v: &'a Value, k: &str) -> &'a Value {
        v.as_object().and_then(|o| o.get(k)).expect(k)
    }

    #[test]
    fn protocol_guide_messages() {
        let all = Value::parse(vector("protocol-guide/messages.json").as_bytes()).expect("json");
        let Value::Array(good) = obj_get(&all, "verifies") else {
            panic!()
        };
        assert_eq!(good.len(), 3);
        for case in good {
            let m = Message::from_value(obj_get(case, "value").clone(), None).expect("shape");
            m.verify().expect("signature");
            assert_eq!(
                Some(m.id().to_string().as_str()),
                obj_get(case, "computed_id").as_str()
            );
        }
        let Value::Array(bad) = obj_get(&all, "does_not_verify") else {
            panic!()
        };
        assert_eq!(bad.len(), 2);
        for case in bad {
            let m = Message::from_value(obj_get(case, "value").clone(), None).expect("shape");
            assert_eq!(m.verify(), Err(Invalid::BadSignature));
        }
    }

    #[test]
    fn legacy_hash_is_latin1() {
        let v = Value::parse(vector("ssb-keys/legacy-hash-weird.json").as_bytes()).expect("json");
        let m = Message::from_value(obj_get(&v, "message").clone(), None).expect("shape");
        m.verify().expect("signature");
        assert_eq!(
            Some(m.id().to_string().as_str()),
            obj_get(&v, "expected_id").as_str()
        );
        assert_ne!(
            Some(m.id().to_string().as_str()),
            obj_get(&v, "wrong_id_if_hashing_utf8").as_str()
        );
    }

    /// A vector file holds a bare value or a `{key, value, …}`; returns the
    /// message and the key it claims, if any.
    fn legacy_msg(file: &str) -> (Message, Option<String>) {
        let v =
            Value::parse(vector(&format!("ssb-legacy-msg/{file}.json")).as_bytes()).expect("json");
        let (value, key) = match v.as_object().and_then(|o| o.get("value")) {
            Some(value) => (
                value.clone(),
                obj_get(&v, "key").as_str().map(str::to_owned),
            ),
            None => (v, None),
        };
        (
            Message::from_value(value, None).unwrap_or_else(|e| panic!("{file}: {e}")),
            key,
        )
    }

    #[test]
    fn ssb_legacy_msg_alice() {
        for f in [
            "about-full-from-log",
            "about-value-from-log",
            "about-value-to-verify",
            "post-valid",
            "private-valid",
        ] {
            let (m, key) = legacy_msg(f);
            m.verify().unwrap_or_else(|e| panic!("{f}: {e}"));
            if let Some(key) = key {
                assert_eq!(m.id().to_string(), key, "{f}");
            }
        }
        // Signing bytes are exactly the recorded ones.
        let (m, _) = legacy_msg("about-value-from-log");
        let to_sign = vector("ssb-legacy-msg/about-value-to-sign.json");
        assert_eq!(
            String::from_utf8(m.signed.clone()).expect("utf8"),
            to_sign.trim_end_matches('\n')
        );
        // Tampered ones fail, and their claimed keys are not their ids.
        for f in ["post-tampered", "private-tampered"] {
            let (m, key) = legacy_msg(f);
            assert_eq!(m.verify(), Err(Invalid::BadSignature), "{f}");
            if let Some(key) = key {
                assert_ne!(m.id().to_string(), key, "{f}");
            }
        }
    }

    #[test]
    fn create_then_validate_chain() {
        let keys = Keypair::from_seed(&[1; 32]);
        let c1 = Value::parse(br#"{"type":"post","text":"hi \u00df \ud83d\ude00","10":1,"2":[]}"#)
            .expect("json");
        let m1 = Message::create(&keys, None, 1_700_000_000_000.0, c1, None).expect("create");
        m1.verify().expect("sig");
        m1.check_chain(None).expect("first");
        // Integer-like keys were moved first, as JS would.
        assert!(m1
            .value()
            .to_compact()
            .contains(r#""content":{"2":[],"10":1,"type":"post""#));
        let c2 = Value::parse(br#"{"type":"post","n":1e21}"#).expect("json");
        let m2 = Message::create(&keys, Some(&m1.head()), 1_700_000_000_001.5, c2, None)
            .expect("create");
        m2.verify().expect("sig");
        m2.check_chain(Some(&m1.head())).expect("second");
        assert_eq!(
            m2.check_chain(None),
            Err(Invalid::Sequencing {
                expected: 1,
                got: 2
            })
        );
        // Round trip through compact JSON gives the same id.
        let again = Message::parse(m2.value().to_compact().as_bytes(), None).expect("parse");
        assert_eq!(again.id(), m2.id());
        // A fork: same sequence, other previous.
        let m2b = Message::create(
            &keys,
            Some(&m1.head()),
            5.0,
            Value::parse(br#"{"type":"xyz"}"#).expect("json"),
            None,
        )
        .expect("create");
        assert_eq!(
            m2b.check_chain(Some(&m2.head())),
            Err(Invalid::Sequencing {
                expected: 3,
                got: 2
            })
        );
        let fake_head = FeedHead {
            id: m2.id(),
            sequence: 1,
        };
        assert_eq!(
            m2b.check_chain(Some(&fake_head)),
            Err(Invalid::Fork { sequence: 1 })
        );
    }

    #[test]
    fn hmac_signing() {
        let keys = Keypair::from_seed(&[2; 32]);
        let hmac = HmacKey([9; 32]);
        let c = Value::parse(br#"{"type":"post"}"#).expect("json");
        let m = Message::create(&keys, None, 1.0, c, Some(&hmac)).expect("create");
        m.verify().expect("sig with hmac");
        let plain = Message::from_value(m.value().clone(), None).expect("shape");
        assert_eq!(plain.verify(), Err(Invalid::BadSignature));
    }

    #[test]
    fn size_limit_counts_utf16_units() {
        let keys = Keypair::from_seed(&[3; 32]);
        let make = |text: String| {
            let mut o = Object::new();
            o.push("type", Value::string("post"));
            o.push("text", Value::string(&text));
            Message::create(&keys, None, 1.0, Value::Object(o), None)
        };
        // Find the longest ASCII text that fits, then check the boundary.
        let base = make(String::new()).expect("small");
        let overhead = utf16_len(base.value().to_pretty().as_bytes());
        let fits = make("a".repeat(MAX_MESSAGE_UTF16 - overhead)).expect("exactly at the limit");
        assert_eq!(
            utf16_len(fits.value().to_pretty().as_bytes()),
            MAX_MESSAGE_UTF16
        );
        assert_eq!(
            make("a".repeat(MAX_MESSAGE_UTF16 - overhead + 1)).err(),
            Some(Invalid::TooLarge(MAX_MESSAGE_UTF16 + 1))
        );
        // Three UTF-8 bytes but one UTF-16 unit each: still fits.
        assert!(make("€".repeat(MAX_MESSAGE_UTF16 - overhead)).is_ok());
    }

    #[test]
    fn box_content_prefix_rule() {
        assert!(is_boxed(b"abc=.box"));
        assert!(is_boxed(b"abc==.box2"));
        assert!(!is_boxed(b"abc===.box"));
        assert!(!is_boxed(b".box"));
        assert!(!is_boxed(b"abc.bo"));
    }
}
