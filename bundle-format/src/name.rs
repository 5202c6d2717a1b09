//! Bundle file names: `<64 hex digits>.ssb-bundle`, the hex being the sha256
//! of the bundle's manifest.
//!
//! The manifest pins every byte of the bundle but the signature, and ed25519
//! signatures are deterministic, so two bundles with the same name carry the
//! same content: a stick or node can recognise a duplicate by its name alone.
//! The name is a claim until the bundle is read: [`crate::verify`] returns
//! the name the content really has, to compare with the file's.

use std::fmt;

use crate::ids::{hex, parse_hex32};

/// The file name extension.
pub const EXTENSION: &str = "ssb-bundle";

/// A bundle's content-derived name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleName(pub [u8; 32]);

impl BundleName {
    /// The file name: `<hex>.ssb-bundle`.
    pub fn file_name(&self) -> String {
        format!("{}.{EXTENSION}", hex(&self.0))
    }

    /// Parses a file name of that form (anything else is not a bundle).
    pub fn parse(file_name: &str) -> Option<BundleName> {
        let stem = file_name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
        parse_hex32(stem).map(BundleName)
    }
}

impl fmt::Display for BundleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = BundleName([0x5a; 32]);
        assert_eq!(BundleName::parse(&n.file_name()), Some(n));
        assert_eq!(n.file_name().len(), 75);
        assert_eq!(BundleName::parse("x.ssb-bundle"), None);
        assert_eq!(BundleName::parse(&n.file_name().to_uppercase()), None);
        assert_eq!(BundleName::parse(&format!("{}.tmp", hex(&n.0))), None);
    }
}
