//! The trailer: the last entry, the exporting node's ed25519 signature over
//! the manifest's sha256.
//!
//! The signature covers the whole bundle because the manifest pins every
//! other byte: each entry's digest and size, and (through the canonical tar
//! headers and zero padding the reader insists on) the tar framing. What is
//! signed is a fixed domain-separation prefix followed by the 32-byte digest,
//! so the signature can never be mistaken for (or replayed as) an SSB message
//! signature or any other use of the node's key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::ids::{feed_key, hex, parse_hex32};

/// Prepended to the manifest digest before signing.
pub const SIGNING_DOMAIN: &[u8] = b"ssb-sneakernet bundle v1 manifest sha256\n";

/// The trailer's JSON length: it has one fixed shape.
pub const TRAILER_LEN: u64 = 201;

const SIG_SUFFIX: &str = ".sig.ed25519";

/// The stored form of the trailer.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    manifest_sha256: String,
    signature: String,
}

/// A parsed trailer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// sha256 of the manifest entry's bytes.
    pub manifest_sha256: [u8; 32],
    /// The author's signature over [`SIGNING_DOMAIN`] ‖ `manifest_sha256`.
    pub signature: Signature,
}

/// The bytes the trailer's signature is over.
pub fn signed_bytes(manifest_sha256: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(SIGNING_DOMAIN.len() + 32);
    v.extend_from_slice(SIGNING_DOMAIN);
    v.extend_from_slice(manifest_sha256);
    v
}

impl Trailer {
    /// Signs a manifest digest.
    pub fn sign(manifest_sha256: [u8; 32], key: &SigningKey) -> Trailer {
        Trailer {
            manifest_sha256,
            signature: key.sign(&signed_bytes(&manifest_sha256)),
        }
    }

    /// The stored form: `{"manifest_sha256":"<hex>","signature":"<base64>.sig.ed25519"}`.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = Stored {
            manifest_sha256: hex(&self.manifest_sha256),
            signature: format!("{}{SIG_SUFFIX}", STANDARD.encode(self.signature.to_bytes())),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Parses a stored trailer; only the canonical bytes are accepted.
    pub fn parse(bytes: &[u8]) -> Result<Trailer, BundleError> {
        let bad = |s: &str| BundleError::InvalidTrailer(s.into());
        let stored: Stored = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::InvalidTrailer(e.to_string()))?;
        let manifest_sha256 = parse_hex32(&stored.manifest_sha256)
            .ok_or_else(|| bad("manifest_sha256 is not 64 hex digits"))?;
        let sig = stored
            .signature
            .strip_suffix(SIG_SUFFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| bad("signature is not base64 of 64 bytes ending .sig.ed25519"))?;
        let t = Trailer {
            manifest_sha256,
            signature: Signature::from_bytes(&sig),
        };
        if t.to_json() != bytes {
            return Err(bad("not in canonical form"));
        }
        Ok(t)
    }

    /// Checks the trailer belongs to a manifest with digest `actual` and was
    /// signed by `author` (a feed id).
    pub fn verify(&self, actual: &[u8; 32], author: &str) -> Result<(), BundleError> {
        if &self.manifest_sha256 != actual {
            return Err(BundleError::TrailerManifestMismatch {
                in_trailer: hex(&self.manifest_sha256),
                actual: hex(actual),
            });
        }
        let bad = || BundleError::BadSignature {
            author: author.into(),
        };
        let key = feed_key(author)
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(bad)?;
        key.verify_strict(&signed_bytes(actual), &self.signature)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::feed_id;

    #[test]
    fn signs_verifies_and_has_fixed_length() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let author = feed_id(&key.verifying_key());
        let t = Trailer::sign([5; 32], &key);
        let json = t.to_json();
        assert_eq!(json.len() as u64, TRAILER_LEN);
        assert_eq!(
            SIGNING_DOMAIN.len(),
            41,
            "FORMAT.md section 8 gives the length"
        );
        let back = Trailer::parse(&json).unwrap();
        assert_eq!(back, t);
        back.verify(&[5; 32], &author).unwrap();
        assert!(matches!(
            back.verify(&[6; 32], &author),
            Err(BundleError::TrailerManifestMismatch { .. })
        ));
        let other = feed_id(&SigningKey::from_bytes(&[4; 32]).verifying_key());
        assert!(matches!(
            back.verify(&[5; 32], &other),
            Err(BundleError::BadSignature { .. })
        ));
        let spaced = String::from_utf8(json).unwrap().replace(':', ": ");
        assert!(matches!(
            Trailer::parse(spaced.as_bytes()),
            Err(BundleError::InvalidTrailer(_))
        ));
    }
}
