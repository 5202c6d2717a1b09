//! SSB identifiers: feeds (`@….ed25519`), messages (`%….sha256`) and blobs
//! (`&….sha256`), each a sigil, the standard padded base64 of 32 bytes, and a
//! suffix. Only canonical base64 is accepted (no stray padding bits), as
//! ssb-ref does, so one id has exactly one spelling.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {text:?}: expected {expected}")]
pub struct IdError {
    kind: &'static str,
    expected: &'static str,
    text: String,
}

/// Decodes canonical padded standard base64 into exactly `N` bytes.
pub fn decode_base64_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    // 32 bytes = 44 characters; refuse long input before decoding.
    if text.len() != N.div_ceil(3) * 4 {
        return None;
    }
    let bytes = STANDARD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// Standard padded base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn parse_id(
    text: &str,
    sigil: char,
    suffix: &str,
    kind: &'static str,
    expected: &'static str,
) -> Result<[u8; 32], IdError> {
    text.strip_prefix(sigil)
        .and_then(|rest| rest.strip_suffix(suffix))
        .and_then(decode_base64_exact::<32>)
        .ok_or_else(|| IdError {
            kind,
            expected,
            text: text.chars().take(80).collect(),
        })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $sigil:literal, $suffix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The 32 raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_id(
                    s,
                    $sigil,
                    $suffix,
                    $kind,
                    concat!("'", $sigil, "' + base64 of 32 bytes + '", $suffix, "'"),
                )
                .map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}{}", $sigil, encode_base64(&self.0), $suffix)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

id_type!(
    /// A classic feed: the author's Ed25519 public key.
    FeedId, '@', ".ed25519", "feed"
);
id_type!(
    /// A message: sha256 of its latin1-truncated 2-space JSON.
    MsgId, '%', ".sha256", "message"
);
id_type!(
    /// A blob: sha256 of its bytes.
    BlobId, '&', ".sha256", "blob"
);

impl BlobId {
    /// The blob id of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobId {
        use sha2::Digest as _;
        BlobId(sha2::Sha256::digest(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical() {
        let s = "@jEA8WSl0URsB/g/XYG5zCGBkMOyTeBZfGtbw3RJMIuk=.ed25519";
        let id: FeedId = s.parse().expect("valid");
        assert_eq!(id.to_string(), s);
        // Same bytes, non-zero padding bits: refused.
        assert!("@jEA8WSl0URsB/g/XYG5zCGBkMOyTeBZfGtbw3RJMIul=.ed25519"
            .parse::<FeedId>()
            .is_err());
        assert!("@jEA8WSl0URsB/g/XYG5zCGBkMOyTeBZfGtbw3RJMIuk=.sha256"
            .parse::<FeedId>()
            .is_err());
        assert!("%jEA8WSl0URsB/g/XYG5zCGBkMOyTeBZfGtbw3RJMIuk=.sha256"
            .parse::<MsgId>()
            .is_ok());
        assert!("&cat=.sha256".parse::<BlobId>().is_err());
        let err = "@x".parse::<FeedId>().expect_err("invalid");
        assert!(err.to_string().contains("feed"), "{err}");
    }

    #[test]
    fn blob_of_bytes() {
        assert_eq!(
            BlobId::of(b"").to_string(),
            "&47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.sha256"
        );
    }
}
