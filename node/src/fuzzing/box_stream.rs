//! FuzzTarget for box-stream: decryption of a real stream with some of its
//! bytes changed, and of bytes from nowhere.

use super::{bounded, FuzzTarget};
use crate::net::box_stream::{Decryptor, Encryptor, Key, Nonce, HEADER_LEN};

/// `box_stream::Decryptor`: never yields a byte of a box that was changed
/// (nor of any box after it), yields every byte before it, and an unchanged
/// stream reads back whole and ends cleanly, whatever the chunking.
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "box_stream",
    body,
    seeds,
};

const KEY: Key = [7; 32];
/// Near the top: the counter wraps inside the stream.
const NONCE: Nonce = {
    let mut n = [0xff; 24];
    n[23] = 0xfd;
    n
};

/// Decrypts `wire` in chunks of `chunk` bytes: what came out, whether the
/// goodbye came, and how many bytes were consumed.
fn decrypt(wire: &[u8], chunk: usize) -> (Vec<u8>, bool, usize) {
    let mut dec = Decryptor::new(KEY, NONCE);
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in wire.chunks(chunk.max(1)) {
        match dec.decrypt(piece, &mut out) {
            Ok(n) => {
                consumed += n;
                if n < piece.len() {
                    break;
                }
            }
            Err(e) => {
                assert_eq!(dec.decrypt(piece, &mut out), Err(e), "errors are sticky");
                assert_eq!(dec.eof(), Err(e));
                return (out, false, consumed);
            }
        }
    }
    (out, dec.eof().is_ok(), consumed)
}

/// The target's body.
///
/// Byte 0: the mode (odd: decrypt the rest as it is) and the box size. In
/// tamper mode, byte 1 is a count `n` of edits, then `n` edits of three
/// bytes (position, big-endian u16; xor mask), then the plaintext.
pub fn body(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The wire this body makes is up to 35 bytes per plaintext byte (one-byte
    // boxes); the decryptor itself keeps at most one 4 KiB body.
    bounded(40 * data.len() + (64 << 10), || {
        let chunk = 1 + usize::from(mode / 2);
        if mode % 2 == 1 {
            // Nobody without the key makes a box that opens.
            let (out, finished, _) = decrypt(rest, chunk);
            assert!(out.is_empty(), "forged bytes came out of the box stream");
            assert!(!finished, "a forged goodbye was taken");
            return;
        }
        let Some((&n, rest)) = rest.split_first() else {
            return;
        };
        let edits_len = (usize::from(n) * 3).min(rest.len());
        let (edits, plain) = rest.split_at(edits_len);
        let mut enc = Encryptor::new(KEY, NONCE);
        let mut wire = Vec::new();
        // Boxes of `1 + mode` bytes, with where each ends on the wire.
        let box_len = 1 + usize::from(mode);
        let mut boxes = Vec::new();
        for piece in plain.chunks(box_len) {
            enc.encrypt(piece, &mut wire).expect("encrypt");
            boxes.push((wire.len(), piece.len()));
        }
        enc.goodbye(&mut wire).expect("goodbye");
        let sent = wire.clone();
        for e in edits.chunks_exact(3) {
            if !wire.is_empty() {
                let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % wire.len();
                wire[at] ^= e[2];
            }
        }
        // Edits may undo each other: what counts is the first byte that differs.
        let first_changed = wire.iter().zip(&sent).position(|(a, b)| a != b);
        let (out, finished, consumed) = decrypt(&wire, chunk);
        let (again, _, _) = decrypt(&wire, wire.len());
        assert_eq!(out, again, "chunking changes the output");
        match first_changed {
            None => {
                assert_eq!(out, plain, "an intact stream reads back changed");
                assert!(finished, "an intact stream does not end");
                assert_eq!(consumed, wire.len());
            }
            Some(at) => {
                // Every box that ends before the change, and nothing else.
                let intact: usize = boxes
                    .iter()
                    .take_while(|(end, _)| *end <= at)
                    .map(|(_, len)| len)
                    .sum();
                assert_eq!(out, &plain[..intact], "bytes of a changed box came out");
                assert!(!finished, "a changed stream ended cleanly");
            }
        }
    });
}

fn seeds() -> Vec<Vec<u8>> {
    let text: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut seeds = Vec::new();
    // Intact streams with small and large boxes.
    for mode in [0u8, 10, 254] {
        let mut s = vec![mode, 0];
        s.extend_from_slice(&text);
        seeds.push(s);
    }
    // One edit in a body, one in a header.
    for (at, mask) in [(40u16, 1u8), (3, 0x80)] {
        let mut s = vec![20, 1];
        s.extend_from_slice(&at.to_be_bytes());
        s.push(mask);
        s.extend_from_slice(&text);
        seeds.push(s);
    }
    // Raw mode: headers' worth of bytes from nowhere (no seed holds a real
    // box, so no mutation can make one).
    let mut raw = vec![1];
    raw.extend(text.iter().take(3 * HEADER_LEN));
    seeds.push(raw);
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn box_stream_short_run() {
        run(&TARGET, 5000);
    }
}
