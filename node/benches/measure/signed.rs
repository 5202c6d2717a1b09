//! Signed test feeds, and how fast their signatures check on their own (the
//! physical limit of any verified ingest or import).

use std::time::Instant;

use ed25519_dalek::{Signature, VerifyingKey};
use ssb_node::feed::{Keypair, Message, Value};

/// The keys of `n` feeds, from fixed seeds (the same feeds every run).
pub fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Keypair::from_seed(&seed)
        })
        .collect()
}

/// `per_feed` signed messages of each of `keys`' feeds, interleaved as
/// replication delivers them; `content(feed, seq)` is the JSON content of
/// message `seq` of feed number `feed`.
pub fn interleaved(
    keys: &[Keypair],
    per_feed: usize,
    mut content: impl FnMut(usize, usize) -> String,
) -> Vec<Message> {
    let mut heads = vec![None; keys.len()];
    let mut out = Vec::with_capacity(keys.len() * per_feed);
    for seq in 1..=per_feed {
        for (feed, (k, head)) in keys.iter().zip(heads.iter_mut()).enumerate() {
            let text = content(feed, seq);
            let content = Value::parse(text.as_bytes()).expect("content JSON");
            let ts = 1_700_000_000_000.0 + seq as f64;
            let m = Message::create(k, head.as_ref(), ts, content, None).expect("create");
            *head = Some(m.head());
            out.push(m);
        }
    }
    out
}

/// Signature checks per second for `msgs` with raw ed25519-dalek, split over
/// `threads`: `verify_batch` in batches of 1,024, or `verify_strict` one by one.
pub fn rate(msgs: &[Message], threads: usize, batch: bool) -> f64 {
    let items: Vec<(Vec<u8>, Signature, VerifyingKey)> = msgs
        .iter()
        .map(|m| {
            let value = m.value().as_object().expect("object");
            let sig_text = value.get("signature").and_then(Value::as_str).expect("sig");
            let sig_bytes = ssb_node::feed::ids::decode_base64_exact::<64>(
                sig_text.strip_suffix(".sig.ed25519").expect("suffix"),
            )
            .expect("b64");
            let mut unsigned = Vec::new();
            ssb_node::feed::json::write_pretty_entries(&mut unsigned, &value.entries()[..6], 0);
            let key = VerifyingKey::from_bytes(m.author().as_bytes()).expect("key");
            (unsigned, Signature::from_bytes(&sig_bytes), key)
        })
        .collect();
    let start = Instant::now();
    let per = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in items.chunks(per) {
            s.spawn(move || {
                if batch {
                    for chunk in part.chunks(1024) {
                        let bytes: Vec<&[u8]> = chunk.iter().map(|i| i.0.as_slice()).collect();
                        let sigs: Vec<Signature> = chunk.iter().map(|i| i.1).collect();
                        let keys: Vec<VerifyingKey> = chunk.iter().map(|i| i.2).collect();
                        ed25519_dalek::verify_batch(&bytes, &sigs, &keys).expect("valid");
                    }
                } else {
                    for (b, s, k) in part {
                        k.verify_strict(b, s).expect("valid");
                    }
                }
            });
        }
    });
    items.len() as f64 / start.elapsed().as_secs_f64()
}

/// Signature checks per second for `msgs` with this crate's own
/// [`BatchVerifier`] (one term per author in the batch equation), in
/// batches of 1,024 as an import hands them over, split over `threads`.
pub fn our_rate(msgs: &[Message], threads: usize) -> f64 {
    let mut verifier = ssb_node::feed::BatchVerifier::with_threads(threads);
    let start = Instant::now();
    for chunk in msgs.chunks(1024) {
        verifier.verify(chunk).expect("valid");
    }
    msgs.len() as f64 / start.elapsed().as_secs_f64()
}
