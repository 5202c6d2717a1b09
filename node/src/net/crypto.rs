//! The one place that talks to libsodium (through `sodiumoxide`).
//!
//! sodiumoxide is deprecated upstream (RUSTSEC-2021-0137), so every primitive the network
//! layer needs goes through this module with plain byte arrays in and out. Swapping the
//! backend later (e.g. for the RustCrypto crates) only touches this file; the handshake
//! and box-stream tests pin the exact bytes either way.

use std::sync::Once;

use sodiumoxide::crypto::{
    auth,
    hash::{sha256, sha512},
    scalarmult::curve25519,
    secretbox,
    sign::ed25519,
};

/// Length of a secretbox authentication tag (Poly1305).
pub(crate) const TAG_LEN: usize = 16;

/// Calls `sodium_init` exactly once per process.
///
/// libsodium must be initialised before use (it picks the fastest implementations and
/// makes the random generator thread-safe). Every function below goes through this.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // sodium_init only fails if the platform cannot provide basic primitives, in which
        // case no cryptography can be done safely at all.
        if sodiumoxide::init().is_err() {
            panic!("libsodium failed to initialise");
        }
    });
}

/// HMAC-SHA-512-256 (`crypto_auth`) of `msg` under a 32-byte key.
pub(crate) fn auth(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    init();
    auth::authenticate(msg, &auth::Key(*key)).0
}

/// Constant-time check that `tag` is the `crypto_auth` tag of `msg` under `key`.
pub(crate) fn auth_verify(key: &[u8; 32], msg: &[u8], tag: &[u8; 32]) -> bool {
    init();
    auth::verify(&auth::Tag(*tag), msg, &auth::Key(*key))
}

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    init();
    let mut state = sha256::State::new();
    for part in parts {
        state.update(part);
    }
    state.finalize().0
}

/// X25519: `scalar · point`. `None` if the result is all zeros (a low-order point).
pub(crate) fn x25519(scalar: &[u8; 32], point: &[u8; 32]) -> Option<[u8; 32]> {
    init();
    curve25519::scalarmult(
        &curve25519::Scalar(*scalar),
        &curve25519::GroupElement(*point),
    )
    .ok()
    .map(|q| q.0)
}

/// X25519 public key for a secret scalar (`scalar · basepoint`).
pub(crate) fn x25519_base(scalar: &[u8; 32]) -> [u8; 32] {
    init();
    curve25519::scalarmult_base(&curve25519::Scalar(*scalar)).0
}

/// 32 bytes from the operating system's CSPRNG (via `randombytes_buf`).
pub(crate) fn random_32() -> [u8; 32] {
    init();
    let mut out = [0u8; 32];
    sodiumoxide::randombytes::randombytes_into(&mut out);
    out
}

/// XSalsa20-Poly1305 in place: encrypts `buf` and returns the detached 16-byte tag.
pub(crate) fn secretbox_seal_detached(
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    init();
    secretbox::seal_detached(buf, &secretbox::Nonce(*nonce), &secretbox::Key(*key)).0
}

/// XSalsa20-Poly1305 in place: authenticates and decrypts `buf` with a detached tag.
/// Returns `false` (and leaves `buf` unchanged) if authentication fails.
pub(crate) fn secretbox_open_detached(
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> bool {
    init();
    secretbox::open_detached(
        buf,
        &secretbox::Tag(*tag),
        &secretbox::Nonce(*nonce),
        &secretbox::Key(*key),
    )
    .is_ok()
}

/// Ed25519 detached signature with a 64-byte libsodium secret key (seed ‖ public key).
pub(crate) fn sign_detached(secret: &[u8; 64], msg: &[u8]) -> [u8; 64] {
    init();
    ed25519::sign_detached(msg, &ed25519::SecretKey(*secret)).to_bytes()
}

/// Ed25519 detached signature check (libsodium's rules, the same as the JS stack's).
pub(crate) fn verify_detached(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    init();
    // `from_bytes` pre-rejects signatures whose scalar is obviously unreduced; libsodium
    // would reject those too.
    match ed25519::Signature::from_bytes(sig) {
        Ok(sig) => ed25519::verify_detached(&sig, msg, &ed25519::PublicKey(*public)),
        Err(_) => false,
    }
}

/// The Ed25519 public key for a 32-byte seed.
pub(crate) fn ed25519_public_from_seed(seed: &[u8; 32]) -> [u8; 32] {
    init();
    ed25519::keypair_from_seed(&ed25519::Seed(*seed)).0 .0
}

/// Converts an Ed25519 public key to Curve25519; `None` if it is not a valid point.
pub(crate) fn ed25519_pk_to_x25519(public: &[u8; 32]) -> Option<[u8; 32]> {
    init();
    ed25519::to_curve25519_pk(&ed25519::PublicKey(*public))
        .ok()
        .map(|pk| pk.0)
}

/// Converts an Ed25519 seed to the Curve25519 scalar of the same key pair.
///
/// This is what `crypto_sign_ed25519_sk_to_curve25519` computes (the first half of
/// sha512(seed), clamped), written out so it cannot fail.
pub(crate) fn ed25519_seed_to_x25519(seed: &[u8; 32]) -> [u8; 32] {
    init();
    let digest = sha512::hash(seed);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&digest.0[..32]);
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    scalar
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn secretbox_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; 24];
        let mut buf = *b"hello box";
        let tag = secretbox_seal_detached(&key, &nonce, &mut buf);
        assert_ne!(&buf, b"hello box");
        let mut bad = buf;
        bad[0] ^= 1;
        assert!(!secretbox_open_detached(&key, &nonce, &mut bad, &tag));
        assert!(secretbox_open_detached(&key, &nonce, &mut buf, &tag));
        assert_eq!(&buf, b"hello box");
    }

    #[test]
    fn seed_conversion_matches_libsodium() {
        for seed in [[0u8; 32], [1u8; 32], [0xabu8; 32]] {
            let (_, sk) = ed25519::keypair_from_seed(&ed25519::Seed(seed));
            let expected = ed25519::to_curve25519_sk(&sk).unwrap();
            assert_eq!(ed25519_seed_to_x25519(&seed), expected.0);
        }
    }

    #[test]
    fn x25519_rejects_low_order_point() {
        assert_eq!(x25519(&[1u8; 32], &[0u8; 32]), None);
    }
}
