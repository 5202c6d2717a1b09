//! The one tar header shape a bundle uses, built and checked byte for byte.
//!
//! Every entry is a POSIX ustar regular file whose 512-byte header is fully
//! determined by its name, size and the bundle's creation time (see
//! FORMAT.md, "Tar headers"). The reader rebuilds the header it expects and
//! compares; before that it classifies what it found (link, device, pax or
//! GNU extension, traversal…) so a refusal says what was wrong.

use crate::error::BundleError;

/// The tar block size.
pub const BLOCK: u64 = 512;

/// Largest value an 11-digit octal field holds.
pub const MAX_OCTAL11: u64 = 0o777_7777_7777;

/// `n` rounded up to whole blocks.
pub fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// Zero bytes that follow `n` bytes of entry data.
pub fn padding(n: u64) -> u64 {
    padded(n) - n
}

fn put(block: &mut [u8; 512], at: usize, bytes: &[u8]) {
    block[at..at + bytes.len()].copy_from_slice(bytes);
}

fn checksum(block: &[u8; 512]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// The canonical header of a regular file `name` of `size` bytes, modified
/// at `mtime` (seconds). `name` is at most 99 bytes and both numbers fit in
/// 11 octal digits (the manifest's checks guarantee it).
pub fn canonical(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, format!("{mtime:011o}\0").as_bytes());
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    put(&mut h, 329, b"0000000\0");
    put(&mut h, 337, b"0000000\0");
    let sum = checksum(&h);
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Parses an octal numeric field: optional leading spaces, octal digits, then
/// only NULs or spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| b != b' ')?;
    let field = &field[start..];
    let end = field
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(field.len());
    if end == 0 || field[end..].iter().any(|&b| b != 0 && b != b' ') {
        return None;
    }
    field[..end].iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// A NUL-terminated text field.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// What a header says, once it passed the checks that need no context.
#[derive(Debug)]
pub struct Parsed {
    /// The entry's path.
    pub name: String,
    /// The entry's data size.
    pub size: u64,
}

/// Whether a block is all zeros (a tar end-of-archive block).
pub fn is_zero(block: &[u8; 512]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Checks a header's checksum, type, path and format, and reads its name and
/// size. `offset` is where it starts in the tar stream (for errors).
pub fn parse(h: &[u8; 512], offset: u64) -> Result<Parsed, BundleError> {
    let stored = octal(&h[148..156]).ok_or(BundleError::BadHeader {
        offset,
        reason: "checksum field is not octal",
    })?;
    if stored != checksum(h) {
        return Err(BundleError::HeaderChecksum { offset });
    }
    let ustar = &h[257..263] == b"ustar\0" && &h[263..265] == b"00";
    let mut raw = Vec::with_capacity(256);
    if ustar && h[345] != 0 {
        raw.extend_from_slice(text(&h[345..500]));
        raw.push(b'/');
    }
    raw.extend_from_slice(text(&h[0..100]));
    let name = String::from_utf8(raw).map_err(|_| BundleError::BadHeader {
        offset,
        reason: "name is not UTF-8",
    })?;
    let kind = h[156];
    match kind {
        b'0' | 0 => {}
        b'1' => return Err(BundleError::Hardlink { name }),
        b'2' => return Err(BundleError::Symlink { name }),
        b'3' | b'4' => return Err(BundleError::DeviceFile { name }),
        b'5' => return Err(BundleError::Directory { name }),
        b'6' => return Err(BundleError::Fifo { name }),
        b'x' | b'g' | b'L' | b'K' => {
            return Err(BundleError::ExtensionHeader {
                name,
                kind: char::from(kind),
            })
        }
        other => {
            return Err(BundleError::UnsupportedEntryType {
                name,
                kind: char::from(other),
            })
        }
    }
    if name.starts_with('/') {
        return Err(BundleError::AbsolutePath { name });
    }
    if name.split('/').any(|part| part == "..") {
        return Err(BundleError::PathTraversal { name });
    }
    if !ustar {
        return Err(BundleError::BadHeader {
            offset,
            reason: "not a POSIX ustar header (GNU or old-style tar)",
        });
    }
    let size = octal(&h[124..136]).ok_or(BundleError::BadHeader {
        offset,
        reason: "size field is not octal",
    })?;
    Ok(Parsed { name, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_header_is_what_tar_writes_and_reads() {
        let h = canonical("feeds/0.jsonl", 1234, 1_700_000_000);
        let p = parse(&h, 0).unwrap();
        assert_eq!(p.name, "feeds/0.jsonl");
        assert_eq!(p.size, 1234);
        // The tar crate agrees on every field.
        let t = tar::Header::from_byte_slice(&h);
        assert_eq!(t.path().unwrap().to_str(), Some("feeds/0.jsonl"));
        assert_eq!(t.size().unwrap(), 1234);
        assert_eq!(t.mode().unwrap(), 0o644);
        assert_eq!(t.mtime().unwrap(), 1_700_000_000);
        assert_eq!(u64::from(t.cksum().unwrap()), checksum(&h));
        assert!(t.as_ustar().is_some());
        assert!(t.entry_type().is_file());
    }

    #[test]
    fn octal_fields() {
        assert_eq!(octal(b"0000644\0"), Some(0o644));
        assert_eq!(octal(b"  644 \0"), Some(0o644));
        assert_eq!(octal(b"\0\0\0"), None);
        assert_eq!(octal(b"0008\0"), None);
        assert_eq!(octal(b"12\x001"), None);
    }
}
