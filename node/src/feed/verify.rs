//! Signature checks in batches: many messages at once, split over threads,
//! and the [`Verified`] batches the store writes.
//!
//! A batch check is several times as fast as one by one: it tests one random
//! linear combination of all the signature equations (see `batch_holds`).
//! Like ed25519-dalek's `verify_batch` it does not insist on canonical point
//! encodings, so a signature its own author crafted to be malleable could
//! pass here and fail in libsodium; that admits no forgery. Weak
//! (small-order) author keys and small-order `R` points are refused.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use ed25519_dalek::VerifyingKey;
use rand_core::RngCore as _;
use sha2::{Digest as _, Sha512};

use super::ids::FeedId;
use super::message::{Invalid, Message};

/// Whether every signature in `msgs` (by the authors `keys`) is valid, with
/// overwhelming probability: for random 128-bit `z_i`,
///
/// `−(Σ z_i·s_i)·B + Σ z_i·R_i + Σ_A (Σ_{i by A} z_i·k_i)·A = 0`,
///
/// where `k_i = SHA-512(R_i ‖ A_i ‖ M_i)`. This is ed25519-dalek's batch
/// equation with the terms of each author gathered into one: a feed's
/// messages arrive in long runs by one author, so the multiscalar
/// multiplication has about half as many points. `s` must be canonical and
/// `R` a point that is not of small order.
fn batch_holds<M: std::borrow::Borrow<Message>>(msgs: &[M], keys: &[VerifyingKey]) -> bool {
    let n = msgs.len();
    if n != keys.len() {
        return false;
    }
    let mut random = vec![0u8; 16 * n];
    if rand_core::OsRng.try_fill_bytes(&mut random).is_err() {
        return false; // the caller then checks one by one
    }
    let mut scalars = Vec::with_capacity(n + 2);
    let mut points = Vec::with_capacity(n + 2);
    scalars.push(Scalar::ZERO); // the basepoint's, below
    points.push(ED25519_BASEPOINT_POINT);
    let mut b = Scalar::ZERO;
    // Each distinct author: its point and gathered scalar.
    let mut authors: Vec<(&VerifyingKey, Scalar)> = Vec::new();
    let mut author_at: HashMap<&[u8; 32], usize> = HashMap::new();
    for ((m, key), z) in msgs.iter().zip(keys).zip(random.chunks_exact(16)) {
        let sig = m.borrow().signature();
        let (r_bytes, s_bytes) = sig.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) = (<[u8; 32]>::try_from(r_bytes), s_bytes.try_into()) else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        if r.is_small_order() {
            return false;
        }
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(key.as_bytes())
                .chain_update(m.borrow().signed_bytes()),
        );
        let mut z_bytes = [0u8; 16];
        z_bytes.copy_from_slice(z);
        let z = Scalar::from(u128::from_le_bytes(z_bytes));
        b += z * s;
        scalars.push(z);
        points.push(r);
        let zk = z * k;
        match author_at.get(key.as_bytes()) {
            Some(&at) => authors[at].1 += zk,
            None => {
                author_at.insert(key.as_bytes(), authors.len());
                authors.push((key, zk));
            }
        }
    }
    scalars[0] = -b;
    for (key, sum) in authors {
        scalars.push(sum);
        points.push(key.to_edwards());
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// Messages whose signatures were checked, each with its verdict, in input
/// order. Only a [`BatchVerifier`] makes one, so holding a `Verified` batch
/// means the check ran.
#[derive(Debug, Default)]
pub struct Verified {
    items: Vec<(Message, Result<(), Invalid>)>,
}

impl Verified {
    /// How many messages the batch holds (good and bad).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The messages, in input order.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.items.iter().map(|(m, _)| m)
    }

    /// The messages with their verdicts, in input order.
    pub fn into_items(self) -> Vec<(Message, Result<(), Invalid>)> {
        self.items
    }
}

/// Verifies many signatures at once, with a cache of decoded author keys,
/// splitting large batches over `threads` threads (the caller's among them).
#[derive(Debug)]
pub struct BatchVerifier {
    keys: HashMap<FeedId, Option<VerifyingKey>>,
    threads: usize,
    batch: bool,
}

impl Default for BatchVerifier {
    fn default() -> Self {
        BatchVerifier {
            keys: HashMap::new(),
            threads: 1,
            batch: true,
        }
    }
}

/// Below this many messages a batch is not worth a second thread.
const MIN_PER_THREAD: usize = 64;

impl BatchVerifier {
    /// A batch verifier on the calling thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch verifier that splits large batches over `threads` threads.
    pub fn with_threads(threads: usize) -> Self {
        BatchVerifier {
            threads: threads.max(1),
            ..Self::default()
        }
    }

    /// A verifier that checks signatures one by one (for comparison).
    pub fn one_by_one() -> Self {
        BatchVerifier {
            batch: false,
            ..Self::default()
        }
    }

    /// A verifier like this one for one more thread (its own key cache).
    fn helper(&self) -> BatchVerifier {
        BatchVerifier {
            keys: HashMap::new(),
            threads: 1,
            batch: self.batch,
        }
    }

    /// How many parts `n` messages are split into.
    fn parts(&self, n: usize) -> usize {
        self.threads.min(n / MIN_PER_THREAD).max(1)
    }

    fn key(&mut self, author: FeedId) -> Option<VerifyingKey> {
        *self.keys.entry(author).or_insert_with(|| {
            VerifyingKey::from_bytes(author.as_bytes())
                .ok()
                .filter(|k| !k.is_weak())
        })
    }

    /// Verifies every message; on failure says which is the first bad one
    /// and why, so the caller can keep the good ones before it.
    pub fn verify<M: std::borrow::Borrow<Message> + Sync>(
        &mut self,
        msgs: &[M],
    ) -> Result<(), (usize, Invalid)> {
        if !self.batch {
            for (i, m) in msgs.iter().enumerate() {
                m.borrow().verify().map_err(|e| (i, e))?;
            }
            return Ok(());
        }
        if self.keys.len() > 100_000 {
            self.keys.clear(); // bound the cache
        }
        let mut keys = Vec::with_capacity(msgs.len());
        for (i, m) in msgs.iter().enumerate() {
            match self.key(m.borrow().author()) {
                Some(key) => keys.push(key),
                None => {
                    // The caller takes everything before the failure for
                    // verified: check it before blaming this one.
                    self.verify(&msgs[..i])?;
                    return Err((i, Invalid::AuthorKey));
                }
            }
        }
        let parts = self.parts(msgs.len());
        let per = msgs.len().div_ceil(parts).max(1);
        let check = |(ms, ks): (&[M], &[VerifyingKey])| batch_holds(ms, ks);
        let all_ok = if parts == 1 {
            check((msgs, &keys))
        } else {
            std::thread::scope(|s| {
                let mut parts = msgs.chunks(per).zip(keys.chunks(per));
                let mine = parts.next();
                let handles: Vec<_> = parts.map(|part| s.spawn(move || check(part))).collect();
                let ok = mine.is_none_or(check);
                handles
                    .into_iter()
                    .fold(ok, |ok, h| h.join().unwrap_or(false) && ok)
            })
        };
        if all_ok {
            return Ok(());
        }
        for (i, m) in msgs.iter().enumerate() {
            m.borrow().verify().map_err(|e| (i, e))?;
        }
        // The batch failed but each one passes: cannot happen for honest
        // input; refuse the first rather than accept unverified data.
        Err((0, Invalid::BadSignature))
    }

    /// Checks every message, so that each bad one gets its own verdict.
    pub fn check(&mut self, msgs: Vec<Message>) -> Verified {
        let mut verdicts: Vec<Result<(), Invalid>> = vec![Ok(()); msgs.len()];
        let mut from = 0;
        while from < msgs.len() {
            match self.verify(&msgs[from..]) {
                Ok(()) => break,
                Err((k, e)) => {
                    verdicts[from + k] = Err(e);
                    from += k + 1;
                }
            }
        }
        Verified {
            items: msgs.into_iter().zip(verdicts).collect(),
        }
    }

    /// Parses message values (JSON texts, as EBT sends them) and checks the
    /// signatures of those `want` accepts; each of the verifier's threads
    /// parses and checks its own part. Returns the checked batch, in input
    /// order, and for each text that is no valid message its index and why.
    pub fn parse_and_check(
        &mut self,
        texts: &[Vec<u8>],
        want: impl Fn(&Message) -> bool + Sync,
    ) -> (Verified, Vec<(usize, Invalid)>) {
        let one = |offset: usize, part: &[Vec<u8>], v: &mut BatchVerifier| {
            let mut msgs = Vec::with_capacity(part.len());
            let mut refused = Vec::new();
            for (i, text) in part.iter().enumerate() {
                match Message::parse(text, None) {
                    Ok(m) if want(&m) => msgs.push(m),
                    Ok(_) => {}
                    Err(e) => refused.push((offset + i, e)),
                }
            }
            (v.check(msgs), refused)
        };
        let parts = self.parts(texts.len());
        if parts == 1 {
            return one(0, texts, self);
        }
        let per = texts.len().div_ceil(parts);
        let results = std::thread::scope(|s| {
            let one = &one;
            let handles: Vec<_> = texts
                .chunks(per)
                .enumerate()
                .skip(1)
                .map(|(k, part)| {
                    let mut v = self.helper();
                    s.spawn(move || one(k * per, part, &mut v))
                })
                .collect();
            // The caller's part is one of the `parts`: checked on this
            // thread alone, not split over threads again.
            let threads = std::mem::replace(&mut self.threads, 1);
            let mine = one(0, &texts[..per], self);
            self.threads = threads;
            let mut results = vec![mine];
            for h in handles {
                results.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            results
        });
        let mut all = Verified::default();
        let mut refused = Vec::new();
        for (v, r) in results {
            all.items.extend(v.items);
            refused.extend(r);
        }
        (all, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::ids::encode_base64;
    use crate::feed::{Keypair, Value};

    fn chain(n: u32) -> Vec<Message> {
        let keys = Keypair::from_seed(&[4; 32]);
        let mut msgs = Vec::new();
        let mut head = None;
        for i in 0..n {
            let c = Value::parse(format!(r#"{{"type":"post","i":{i}}}"#).as_bytes()).expect("json");
            let m = Message::create(&keys, head.as_ref(), f64::from(i), c, None).expect("create");
            head = Some(m.head());
            msgs.push(m);
        }
        msgs
    }

    /// `m` with its content changed and its signature kept: a bad signature.
    fn forged(m: &Message) -> Message {
        let text = m
            .value()
            .to_compact()
            .replace("\"i\":", "\"i\":1")
            .replace("\"n\":", "\"n\":1");
        Message::parse(text.as_bytes(), None).expect("shape")
    }

    #[test]
    fn batch_finds_the_bad_one() {
        let mut msgs = chain(10);
        for mut v in [
            BatchVerifier::new(),
            BatchVerifier::one_by_one(),
            BatchVerifier::with_threads(2),
        ] {
            v.verify(&msgs).expect("all good");
        }
        msgs[6] = forged(&msgs[6]);
        for mut v in [
            BatchVerifier::new(),
            BatchVerifier::one_by_one(),
            BatchVerifier::with_threads(2),
        ] {
            assert_eq!(v.verify(&msgs), Err((6, Invalid::BadSignature)));
        }
        // Split over threads: a bad one in the second half is found too.
        let many: Vec<&Message> = msgs.iter().cycle().take(300).collect();
        assert_eq!(
            BatchVerifier::with_threads(2).verify(&many),
            Err((6, Invalid::BadSignature))
        );
        let good: Vec<&Message> = many.iter().copied().filter(|m| m.sequence() != 7).collect();
        BatchVerifier::with_threads(2)
            .verify(&good)
            .expect("all good over threads");
    }

    /// `m` with `sig` in place of its signature (shape-valid, maybe wrong).
    fn with_signature(m: &Message, sig: &[u8; 64]) -> Message {
        let old = format!("{}.sig.ed25519", encode_base64(m.signature()));
        let new = format!("{}.sig.ed25519", encode_base64(sig));
        let text = m.value().to_compact().replace(&old, &new);
        Message::parse(text.as_bytes(), None).expect("shape")
    }

    fn keys_of(msgs: &[Message]) -> Vec<VerifyingKey> {
        msgs.iter()
            .map(|m| VerifyingKey::from_bytes(m.author().as_bytes()).expect("key"))
            .collect()
    }

    /// Three authors' messages, interleaved.
    fn mixed() -> Vec<Message> {
        let keys: Vec<Keypair> = (1..=3).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let mut heads = [None; 3];
        (0..90u32)
            .map(|i| {
                let k = (i * 7 % 3) as usize;
                let c =
                    Value::parse(format!(r#"{{"type":"post","n":{i}}}"#).as_bytes()).expect("json");
                let m = Message::create(&keys[k], heads[k].as_ref(), f64::from(i), c, None)
                    .expect("create");
                heads[k] = Some(m.head());
                m
            })
            .collect()
    }

    #[test]
    fn batch_equation_refuses_what_single_checks_refuse() {
        let msgs = mixed();
        let keys = keys_of(&msgs);
        assert!(batch_holds(&msgs, &keys));
        // The order `l` of the basepoint, little-endian.
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        for at in [0usize, 41, 89] {
            let good = *msgs[at].signature();
            let mut bad: Vec<[u8; 64]> = Vec::new();
            for byte in [0usize, 17, 31, 32, 45, 63] {
                let mut s = good;
                s[byte] ^= 0x04;
                bad.push(s);
            }
            // s + l: the same scalar, not canonical.
            let mut s = good;
            let mut carry = 0u16;
            for (i, li) in l.iter().enumerate() {
                let v = u16::from(s[32 + i]) + u16::from(*li) + carry;
                s[32 + i] = v as u8;
                carry = v >> 8;
            }
            bad.push(s);
            // R = the identity (small order).
            let mut s = good;
            s[..32].copy_from_slice(&[0; 32]);
            s[0] = 1;
            bad.push(s);
            // Another author's valid signature.
            bad.push(*msgs[(at + 1) % msgs.len()].signature());
            for sig in bad {
                let mut tampered = msgs.clone();
                tampered[at] = with_signature(&msgs[at], &sig);
                assert!(tampered[at].verify().is_err(), "single check, at {at}");
                assert!(!batch_holds(&tampered, &keys), "batch, at {at}");
                assert_eq!(
                    BatchVerifier::with_threads(2).verify(&tampered),
                    Err((at, Invalid::BadSignature))
                );
            }
            // A signature over other bytes (the content changed).
            let mut tampered = msgs.clone();
            tampered[at] = forged(&msgs[at]);
            assert!(!batch_holds(&tampered, &keys));
        }
        // Keys that do not belong to the messages.
        let mut wrong = keys.clone();
        wrong.swap(0, 1);
        assert!(!batch_holds(&msgs, &wrong));
        assert!(!batch_holds(&msgs, &keys[1..]));
    }

    /// `m` as written by `author` (shape-valid; the signature is not theirs).
    fn with_author(m: &Message, author: &[u8; 32]) -> Message {
        let old = m.author().to_string();
        let new = format!("@{}.ed25519", encode_base64(author));
        let text = m.value().to_compact().replace(&old, &new);
        Message::parse(text.as_bytes(), None).expect("shape")
    }

    #[test]
    fn a_bad_signature_before_an_unusable_author_key_is_refused() {
        // Found by the `message` fuzz target: the key lookup stopped the
        // batch at the unusable key, and `check` took the messages before
        // it for verified without checking them.
        let mut msgs = chain(3);
        msgs[0] = forged(&msgs[0]);
        // The identity point: a key of small order (weak), refused.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        msgs[1] = with_author(&msgs[1], &weak);
        for mut v in [BatchVerifier::new(), BatchVerifier::with_threads(1)] {
            assert_eq!(v.verify(&msgs), Err((0, Invalid::BadSignature)));
            let verdicts: Vec<bool> = v
                .check(msgs.clone())
                .into_items()
                .iter()
                .map(|(_, r)| r.is_ok())
                .collect();
            assert_eq!(verdicts, [false, false, true]);
        }
    }

    #[test]
    fn check_gives_each_message_its_verdict() {
        let mut msgs = chain(200);
        for i in [3, 4, 150, 199] {
            msgs[i] = forged(&msgs[i]);
        }
        for mut v in [BatchVerifier::new(), BatchVerifier::with_threads(2)] {
            let checked = v.check(msgs.clone());
            let bad: Vec<usize> = checked
                .into_items()
                .iter()
                .enumerate()
                .filter(|(_, (_, r))| r.is_err())
                .map(|(i, _)| i)
                .collect();
            assert_eq!(bad, [3, 4, 150, 199]);
        }
    }

    #[test]
    fn parse_and_check_keeps_order_over_threads() {
        let mut msgs = chain(300);
        msgs[250] = forged(&msgs[250]);
        let mut texts: Vec<Vec<u8>> = msgs.iter().map(|m| m.value().to_compact().into()).collect();
        texts[10] = b"{\"previous\":".to_vec();
        texts[200] = b"[]".to_vec();
        for threads in [1, 2, 3] {
            // The wanted ones: all but sequence 5.
            let (checked, refused) =
                BatchVerifier::with_threads(threads).parse_and_check(&texts, |m| m.sequence() != 5);
            assert_eq!(
                refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                [10, 200],
                "{threads} threads"
            );
            assert_eq!(checked.len(), 297);
            let items = checked.into_items();
            let seqs: Vec<u32> = items.iter().map(|(m, _)| m.sequence()).collect();
            let want: Vec<u32> = (1..=300).filter(|s| ![5, 11, 201].contains(s)).collect();
            assert_eq!(seqs, want, "{threads} threads");
            let bad: Vec<u32> = items
                .iter()
                .filter(|(_, r)| r.is_err())
                .map(|(m, _)| m.sequence())
                .collect();
            assert_eq!(bad, [251], "{threads} threads");
        }
    }
}
