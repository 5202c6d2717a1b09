//! The SSB ids a bundle names: feeds (`@<base64>.ed25519`) and blobs
//! (`&<base64>.sha256`), both 32 bytes in canonical standard base64.
//!
//! Ids stay strings in the manifest and the clocks (as every SSB tool prints
//! them); these helpers check their form and get at the bytes. Ids never
//! appear in tar entry names: feeds are numbered, blobs are named by hex.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

/// Decodes `<sigil><44 base64 chars><suffix>` into 32 bytes, refusing
/// non-canonical base64.
fn decode32(id: &str, sigil: char, suffix: &str) -> Option<[u8; 32]> {
    let body = id.strip_prefix(sigil)?.strip_suffix(suffix)?;
    if body.len() != 44 {
        return None;
    }
    let bytes = STANDARD.decode(body).ok()?;
    let arr: [u8; 32] = bytes.try_into().ok()?;
    // The engine already refuses stray trailing bits; re-encoding makes the
    // one-spelling-per-id rule explicit.
    (STANDARD.encode(arr) == body).then_some(arr)
}

/// The 32-byte public key of a classic feed id, if `id` is one.
pub fn feed_key(id: &str) -> Option<[u8; 32]> {
    decode32(id, '@', ".ed25519")
}

/// The 32-byte sha256 of a blob id, if `id` is one.
pub fn blob_hash(id: &str) -> Option<[u8; 32]> {
    decode32(id, '&', ".sha256")
}

/// The feed id of a public key.
pub fn feed_id(key: &VerifyingKey) -> String {
    format!("@{}.ed25519", STANDARD.encode(key.as_bytes()))
}

/// The blob id of a sha256 digest.
pub fn blob_id(hash: &[u8; 32]) -> String {
    format!("&{}.sha256", STANDARD.encode(hash))
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses exactly 64 lower-case hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_variants() {
        let key = [7u8; 32];
        let id = format!("@{}.ed25519", STANDARD.encode(key));
        assert_eq!(feed_key(&id), Some(key));
        assert_eq!(blob_hash(&blob_id(&key)), Some(key));
        assert_eq!(feed_key(&blob_id(&key)), None);
        assert_eq!(feed_key(&id.replace('@', "&")), None);
        assert_eq!(feed_key(&id[..id.len() - 1]), None);
        // Non-canonical: the last base64 char carries stray low bits.
        let mut bad = id.clone().into_bytes();
        let pos = bad.len() - ".ed25519".len() - 2;
        bad[pos] = b'B'; // 0b000001: a stray low bit
        assert_eq!(feed_key(std::str::from_utf8(&bad).unwrap()), None);
        assert_eq!(feed_key("@/+.ed25519"), None);
    }

    #[test]
    fn hex_round_trips() {
        let b = [0xabu8; 32];
        assert_eq!(parse_hex32(&hex(&b)), Some(b));
        assert_eq!(parse_hex32(&hex(&b).to_uppercase()), None);
        assert_eq!(parse_hex32("ab"), None);
    }
}
