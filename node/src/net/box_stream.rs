//! Box-stream: the bulk encryption used after the secret handshake (one per direction).
//!
//! Each write becomes one or more boxes: a 34-byte header (a secretbox, at nonce `n`, of the
//! body length as u16 BE followed by the body's 16-byte tag) and then the body ciphertext
//! (secretbox at nonce `n + 1`, tag detached). The next box starts at `n + 2`. Bodies are
//! 1..=4096 bytes. The stream ends with a goodbye: a header whose plaintext is 18 zero bytes.
//!
//! [`Encryptor`] and [`Decryptor`] are sans-IO: bytes in, bytes out, no buffering beyond
//! one header plus one body in the decryptor.

use crate::net::crypto::{self, TAG_LEN};

/// Wire length of a box header: 16-byte tag + 2-byte length + 16-byte body tag.
pub const HEADER_LEN: usize = 34;

/// Largest body one box may carry; longer writes are split.
pub const MAX_BODY_LEN: usize = 4096;

/// Plaintext length of a header (length + body tag).
const HEADER_PLAIN_LEN: usize = HEADER_LEN - TAG_LEN;

/// A 32-byte secretbox key for one direction of a box stream.
pub type Key = [u8; 32];

/// A 24-byte secretbox nonce, used as a big-endian counter.
pub type Nonce = [u8; 24];

/// Errors from a box stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoxStreamError {
    /// A header did not authenticate: wrong key, wrong nonce, or tampering.
    #[error("box-stream header failed to authenticate")]
    HeaderAuth,
    /// A body did not authenticate against the tag in its header.
    #[error("box-stream body failed to authenticate")]
    BodyAuth,
    /// A header opened but announced a body length outside 1..=4096.
    #[error("box-stream header announces invalid body length {0}")]
    InvalidLength(u16),
    /// The input ended without a goodbye header.
    #[error("peer hung up without a box-stream goodbye")]
    UnexpectedHangup,
    /// A write was attempted after the goodbye was sent.
    #[error("box-stream already closed with goodbye")]
    Closed,
}

/// Adds one to a big-endian 24-byte counter, wrapping from ff…ff to 00…00.
fn increment(nonce: &mut Nonce) {
    for byte in nonce.iter_mut().rev() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            return;
        }
    }
}

/// Returns the nonce one past `nonce` (used for bodies).
fn successor(nonce: &Nonce) -> Nonce {
    let mut next = *nonce;
    increment(&mut next);
    next
}

/// Encrypting half of a box stream (what we send).
#[derive(Clone)]
pub struct Encryptor {
    key: Key,
    nonce: Nonce,
    closed: bool,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a stream with the key and starting nonce from the handshake outcome.
    pub fn new(key: Key, nonce: Nonce) -> Self {
        Self {
            key,
            nonce,
            closed: false,
        }
    }

    /// Encrypts `plain` and appends the wire bytes to `out`.
    ///
    /// Splits into 4096-byte boxes; an empty `plain` appends nothing (an empty box would
    /// look like a goodbye to some readers).
    pub fn encrypt(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), BoxStreamError> {
        if self.closed {
            return Err(BoxStreamError::Closed);
        }
        out.reserve(plain.len() + plain.len().div_ceil(MAX_BODY_LEN) * HEADER_LEN);
        for chunk in plain.chunks(MAX_BODY_LEN) {
            self.encrypt_box(chunk, out);
        }
        Ok(())
    }

    /// Appends one box holding `chunk` (1..=4096 bytes) to `out`.
    fn encrypt_box(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let header_at = out.len();
        out.resize(header_at + HEADER_LEN, 0);
        out.extend_from_slice(chunk);
        let body_nonce = successor(&self.nonce);
        let body_tag = crypto::secretbox_seal_detached(
            &self.key,
            &body_nonce,
            &mut out[header_at + HEADER_LEN..],
        );

        let mut header = [0u8; HEADER_PLAIN_LEN];
        // chunk.len() <= MAX_BODY_LEN, which fits in a u16.
        header[..2].copy_from_slice(&(chunk.len() as u16).to_be_bytes());
        header[2..].copy_from_slice(&body_tag);
        let header_tag = crypto::secretbox_seal_detached(&self.key, &self.nonce, &mut header);
        out[header_at..header_at + TAG_LEN].copy_from_slice(&header_tag);
        out[header_at + TAG_LEN..header_at + HEADER_LEN].copy_from_slice(&header);

        self.nonce = successor(&body_nonce);
    }

    /// Appends the 34-byte goodbye and closes the stream; later writes fail.
    pub fn goodbye(&mut self, out: &mut Vec<u8>) -> Result<(), BoxStreamError> {
        if self.closed {
            return Err(BoxStreamError::Closed);
        }
        let mut header = [0u8; HEADER_PLAIN_LEN];
        let tag = crypto::secretbox_seal_detached(&self.key, &self.nonce, &mut header);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&header);
        increment(&mut self.nonce);
        self.closed = true;
        Ok(())
    }

    /// Whether the goodbye has been sent.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Where the decryptor is in the byte stream.
#[derive(Clone, Copy)]
enum ReadState {
    /// Collecting a header; `filled` bytes of it are in `Decryptor::header`.
    Header { filled: usize },
    /// Collecting a body of `len` bytes (partial bytes in `Decryptor::body`).
    Body { len: usize, tag: [u8; TAG_LEN] },
    /// The goodbye was received.
    Finished,
    /// A box failed; the error is sticky.
    Failed(BoxStreamError),
}

/// Decrypting half of a box stream (what we receive).
pub struct Decryptor {
    key: Key,
    nonce: Nonce,
    state: ReadState,
    header: [u8; HEADER_LEN],
    body: Vec<u8>,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Starts a stream with the key and starting nonce from the handshake outcome.
    pub fn new(key: Key, nonce: Nonce) -> Self {
        Self {
            key,
            nonce,
            state: ReadState::Header { filled: 0 },
            header: [0; HEADER_LEN],
            body: Vec::new(),
        }
    }

    /// Feeds bytes read from the peer, in chunks of any size, and appends every complete
    /// decrypted body to `out`.
    ///
    /// Returns how many bytes of `input` were consumed: all of them, unless the goodbye
    /// arrived, after which nothing more is consumed (the rest is not part of the stream).
    /// Errors are sticky: once a box fails, every later call returns the same error.
    pub fn decrypt(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, BoxStreamError> {
        let mut pos = 0;
        loop {
            match self.state {
                ReadState::Finished => return Ok(pos),
                ReadState::Failed(err) => return Err(err),
                ReadState::Header { filled } => {
                    let take = (HEADER_LEN - filled).min(input.len() - pos);
                    self.header[filled..filled + take].copy_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if filled + take < HEADER_LEN {
                        self.state = ReadState::Header {
                            filled: filled + take,
                        };
                        return Ok(pos);
                    }
                    self.state = self.open_header();
                }
                ReadState::Body { len, tag } => {
                    let available = input.len() - pos;
                    if self.body.is_empty() && available >= len {
                        // Whole body at hand: decrypt straight into `out`.
                        let start = out.len();
                        out.extend_from_slice(&input[pos..pos + len]);
                        pos += len;
                        if !self.open_body(&mut out[start..], &tag) {
                            out.truncate(start);
                        }
                    } else {
                        let take = (len - self.body.len()).min(available);
                        self.body.extend_from_slice(&input[pos..pos + take]);
                        pos += take;
                        if self.body.len() < len {
                            return Ok(pos);
                        }
                        let mut body = std::mem::take(&mut self.body);
                        if self.open_body(&mut body, &tag) {
                            out.extend_from_slice(&body);
                        }
                        body.clear();
                        self.body = body;
                    }
                }
            }
        }
    }

    /// Opens the buffered header and returns the next state.
    fn open_header(&mut self) -> ReadState {
        let (tag, plain) = self.header.split_at_mut(TAG_LEN);
        let mut tag_bytes = [0u8; TAG_LEN];
        tag_bytes.copy_from_slice(tag);
        if !crypto::secretbox_open_detached(&self.key, &self.nonce, plain, &tag_bytes) {
            return ReadState::Failed(BoxStreamError::HeaderAuth);
        }
        increment(&mut self.nonce);
        if plain.iter().all(|&b| b == 0) {
            return ReadState::Finished;
        }
        let len = u16::from_be_bytes([plain[0], plain[1]]);
        if len == 0 || usize::from(len) > MAX_BODY_LEN {
            return ReadState::Failed(BoxStreamError::InvalidLength(len));
        }
        let mut body_tag = [0u8; TAG_LEN];
        body_tag.copy_from_slice(&plain[2..]);
        ReadState::Body {
            len: usize::from(len),
            tag: body_tag,
        }
    }

    /// Opens a complete body in place; sets the next state and reports success.
    fn open_body(&mut self, body: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        if crypto::secretbox_open_detached(&self.key, &self.nonce, body, tag) {
            increment(&mut self.nonce);
            self.state = ReadState::Header { filled: 0 };
            true
        } else {
            self.state = ReadState::Failed(BoxStreamError::BodyAuth);
            false
        }
    }

    /// Whether the peer's goodbye has been received (a clean end of stream).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, ReadState::Finished)
    }

    /// Call when the underlying transport reports EOF: `Ok` after a goodbye, otherwise
    /// [`BoxStreamError::UnexpectedHangup`] (or the error that already stopped the stream).
    pub fn eof(&self) -> Result<(), BoxStreamError> {
        match self.state {
            ReadState::Finished => Ok(()),
            ReadState::Failed(err) => Err(err),
            _ => Err(BoxStreamError::UnexpectedHangup),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::net::test_util::{hex, hex_array, str_at, vector};

    fn c_vector() -> (serde_json::Value, Key, Nonce) {
        let v = vector("box-stream-c/box-stream.json");
        let key = hex_array(str_at(&v, "key"));
        let nonce = hex_array(str_at(&v, "initial_nonce"));
        (v, key, nonce)
    }

    /// Decrypts `wire` fed in chunks of `chunk` bytes; returns plaintext and consumed count.
    fn decrypt_chunked(
        key: Key,
        nonce: Nonce,
        wire: &[u8],
        chunk: usize,
    ) -> (Decryptor, Result<Vec<u8>, BoxStreamError>, usize) {
        let mut dec = Decryptor::new(key, nonce);
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in wire.chunks(chunk) {
            match dec.decrypt(piece, &mut out) {
                Ok(n) => consumed += n,
                Err(e) => return (dec, Err(e), consumed),
            }
        }
        (dec, Ok(out), consumed)
    }

    #[test]
    fn nonce_increment_wraps() {
        let mut n = [0xffu8; 24];
        increment(&mut n);
        assert_eq!(n, [0u8; 24]);
        let mut n = [0u8; 24];
        n[23] = 0xff;
        increment(&mut n);
        assert_eq!(&n[22..], &[1, 0]);
    }

    #[test]
    fn box_stream_c_valid_encrypts_exactly() {
        let (v, key, nonce) = c_vector();
        let mut enc = Encryptor::new(key, nonce);
        for packet in v["valid"]["packets"].as_array().unwrap() {
            let mut out = Vec::new();
            enc.encrypt(&hex(str_at(packet, "plaintext")), &mut out)
                .unwrap();
            assert_eq!(&out[..HEADER_LEN], &hex(str_at(packet, "header"))[..]);
            assert_eq!(&out[HEADER_LEN..], &hex(str_at(packet, "body"))[..]);
        }
        let mut out = Vec::new();
        enc.goodbye(&mut out).unwrap();
        assert_eq!(out, hex(str_at(&v["valid"], "goodbye_header")));
        assert!(enc.is_closed());
        assert_eq!(enc.encrypt(b"x", &mut out), Err(BoxStreamError::Closed));
        assert_eq!(enc.goodbye(&mut out), Err(BoxStreamError::Closed));
    }

    #[test]
    fn box_stream_c_valid_decrypts_in_any_chunking() {
        let (v, key, nonce) = c_vector();
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        for packet in v["valid"]["packets"].as_array().unwrap() {
            wire.extend(hex(str_at(packet, "header")));
            wire.extend(hex(str_at(packet, "body")));
            plain.extend(hex(str_at(packet, "plaintext")));
        }
        wire.extend(hex(str_at(&v["valid"], "goodbye_header")));
        for chunk in [1, 2, 5, 33, 34, 35, 42, wire.len()] {
            let (dec, out, consumed) = decrypt_chunked(key, nonce, &wire, chunk);
            assert_eq!(out.unwrap(), plain, "chunk size {chunk}");
            assert_eq!(consumed, wire.len());
            assert!(dec.is_finished());
            assert_eq!(dec.eof(), Ok(()));
        }
    }

    #[test]
    fn box_stream_c_tampered_body_fails() {
        let (v, _, _) = c_vector();
        for case in v["invalid"].as_array().unwrap() {
            assert_eq!(str_at(case, "expect"), "body_auth_failure");
            let key = hex_array(str_at(case, "key"));
            let nonce = hex_array(str_at(case, "initial_nonce"));
            let mut wire = hex(str_at(case, "header"));
            wire.extend(hex(str_at(case, "body")));
            for chunk in [1, 34, wire.len()] {
                let (dec, out, _) = decrypt_chunked(key, nonce, &wire, chunk);
                assert_eq!(out, Err(BoxStreamError::BodyAuth));
                // Sticky, and nothing was emitted.
                let mut sink = Vec::new();
                let mut dec = dec;
                assert_eq!(
                    dec.decrypt(b"more", &mut sink),
                    Err(BoxStreamError::BodyAuth)
                );
                assert!(sink.is_empty());
                assert_eq!(dec.eof(), Err(BoxStreamError::BodyAuth));
            }
        }
    }

    #[test]
    fn tampered_header_fails() {
        let (v, key, nonce) = c_vector();
        let mut wire = hex(str_at(&v["valid"]["packets"][0], "header"));
        wire[20] ^= 0x01;
        let (_, out, _) = decrypt_chunked(key, nonce, &wire, 7);
        assert_eq!(out, Err(BoxStreamError::HeaderAuth));
        // A goodbye at the wrong nonce does not open either.
        let bye = hex(str_at(&v["valid"], "goodbye_header"));
        let (_, out, _) = decrypt_chunked(key, nonce, &bye, 34);
        assert_eq!(out, Err(BoxStreamError::HeaderAuth));
    }

    #[test]
    fn js_reference_cases() {
        let v = vector("js-reference-generated/box-stream.json");
        let key: Key = hex_array(str_at(&v, "key"));
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3);
        for case in cases {
            let name = str_at(case, "name");
            let nonce: Nonce = hex_array(str_at(case, "initial_nonce"));
            let expected = hex(str_at(case, "ciphertext"));

            // Encrypt write by write and check the chunk layout and exact bytes.
            let mut enc = Encryptor::new(key, nonce);
            let mut wire = Vec::new();
            for write in case["input_writes"].as_array().unwrap() {
                enc.encrypt(&hex(write.as_str().unwrap()), &mut wire)
                    .unwrap();
            }
            enc.goodbye(&mut wire).unwrap();
            assert_eq!(wire, expected, "{name}");
            let lengths: Vec<usize> = case["output_chunks_lengths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(lengths.iter().sum::<usize>(), wire.len(), "{name}");

            // Decrypt box by box to check each body.
            let bodies: Vec<Vec<u8>> = case["decrypted_bodies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| hex(b.as_str().unwrap()))
                .collect();
            let mut dec = Decryptor::new(key, nonce);
            let mut pos = 0;
            let mut got = Vec::new();
            for pair in lengths.chunks(2) {
                let len: usize = pair.iter().sum();
                let mut out = Vec::new();
                assert_eq!(
                    dec.decrypt(&wire[pos..pos + len], &mut out),
                    Ok(len),
                    "{name}"
                );
                if !out.is_empty() {
                    got.push(out);
                }
                pos += len;
            }
            assert_eq!(got, bodies, "{name}");
            assert!(dec.is_finished(), "{name}");

            // And in odd-sized chunks.
            let (dec, out, consumed) = decrypt_chunked(key, nonce, &wire, 1000);
            assert_eq!(out.unwrap(), bodies.concat(), "{name}");
            assert_eq!(consumed, wire.len());
            assert!(dec.is_finished());
        }
    }

    #[test]
    fn empty_write_emits_nothing() {
        let mut enc = Encryptor::new([1; 32], [2; 24]);
        let mut out = Vec::new();
        enc.encrypt(&[], &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn hangup_without_goodbye_is_an_error() {
        let mut enc = Encryptor::new([1; 32], [2; 24]);
        let mut wire = Vec::new();
        enc.encrypt(b"some data", &mut wire).unwrap();
        let mut dec = Decryptor::new([1; 32], [2; 24]);
        let mut out = Vec::new();
        // Complete box, then EOF.
        assert_eq!(dec.decrypt(&wire, &mut out), Ok(wire.len()));
        assert_eq!(out, b"some data");
        assert_eq!(dec.eof(), Err(BoxStreamError::UnexpectedHangup));
        // Half a header, then EOF.
        let mut dec = Decryptor::new([1; 32], [2; 24]);
        assert_eq!(dec.decrypt(&wire[..10], &mut out), Ok(10));
        assert_eq!(dec.eof(), Err(BoxStreamError::UnexpectedHangup));
    }

    #[test]
    fn bytes_after_goodbye_are_not_consumed() {
        let mut enc = Encryptor::new([1; 32], [2; 24]);
        let mut wire = Vec::new();
        enc.encrypt(b"abc", &mut wire).unwrap();
        enc.goodbye(&mut wire).unwrap();
        let end = wire.len();
        wire.extend_from_slice(b"trailing");
        let mut dec = Decryptor::new([1; 32], [2; 24]);
        let mut out = Vec::new();
        assert_eq!(dec.decrypt(&wire, &mut out), Ok(end));
        assert_eq!(out, b"abc");
        assert_eq!(dec.decrypt(b"more", &mut out), Ok(0));
    }

    #[test]
    fn header_with_bad_length_is_rejected() {
        let key = [3u8; 32];
        let nonce = [4u8; 24];
        for len in [0u16, 4097, u16::MAX] {
            let mut plain = [0u8; HEADER_PLAIN_LEN];
            plain[..2].copy_from_slice(&len.to_be_bytes());
            plain[2] = 1; // not a goodbye
            let tag = crypto::secretbox_seal_detached(&key, &nonce, &mut plain);
            let mut wire = tag.to_vec();
            wire.extend_from_slice(&plain);
            let mut dec = Decryptor::new(key, nonce);
            assert_eq!(
                dec.decrypt(&wire, &mut Vec::new()),
                Err(BoxStreamError::InvalidLength(len))
            );
        }
    }

    #[test]
    fn large_round_trip_in_odd_chunks() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut enc = Encryptor::new([9; 32], [0xff; 24]);
        let mut wire = Vec::new();
        enc.encrypt(&data, &mut wire).unwrap();
        enc.encrypt(&data[..1], &mut wire).unwrap();
        enc.goodbye(&mut wire).unwrap();
        // 20000 = 4 * 4096 + 3616 -> 5 boxes, plus 1 box, plus goodbye.
        assert_eq!(wire.len(), data.len() + 1 + 7 * HEADER_LEN);
        let (dec, out, _) = decrypt_chunked([9; 32], [0xff; 24], &wire, 4133);
        let mut expected = data.clone();
        expected.push(data[0]);
        assert_eq!(out.unwrap(), expected);
        assert!(dec.is_finished());
    }
}
