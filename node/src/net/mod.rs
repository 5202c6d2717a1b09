//! Sans-IO cores of the SSB network protocols.
//!
//! Each module is a pure state machine in the style of quinn-proto / rustls: no sockets,
//! no async, no clocks. Callers feed in the bytes they read and send out the bytes the
//! machine produces, so every layer can be tested byte-for-byte against recorded vectors
//! and driven later by any I/O runtime.
//!
//! - [`address`]: multiserver addresses (`net:HOST:PORT~shs:KEY`) and invite codes.
//! - [`shs`]: secret handshake v1 (authenticates both peers, derives session keys).
//! - [`box_stream`]: the encrypted, framed byte stream that follows the handshake.
//! - [`rpc`]: muxrpc / packet-stream framing carried inside the box stream.
//! - [`ebt`]: EBT's vector-clock notes; [`ebt_session`]: one link's EBT rules
//!   (notes in, decisions out; time passed in by the driver).
//!
//! All libsodium use is confined to the private `crypto` module.

pub(crate) mod crypto;

pub mod address;
pub mod box_stream;
pub mod ebt;
pub mod ebt_session;
pub mod rpc;
pub mod shs;

/// Helpers shared by the unit tests of this module tree.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// Decodes lowercase or uppercase hex; panics on malformed input (test data only).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd-length hex");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    /// Decodes hex into a fixed-size array.
    pub(crate) fn hex_array<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().expect("hex length")
    }

    /// Loads a JSON vector file from `tests/vectors/` at the workspace root.
    pub(crate) fn vector(rel: &str) -> serde_json::Value {
        let path =
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors")).join(rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).expect("vector JSON")
    }

    /// The string at `key`, panicking with the key name if absent.
    pub(crate) fn str_at<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("missing string {key}"))
    }
}
