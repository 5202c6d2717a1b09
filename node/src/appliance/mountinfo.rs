//! A sans-IO parser for `/proc/self/mountinfo` (proc(5)).
//!
//! Each line describes one mount:
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)    (5)         (6)       (7)    (8) (9)   (10)       (11)
//! ```
//!
//! (1) mount id, (2) parent id, (3) major:minor, (4) root inside the
//! filesystem, (5) mount point, (6) mount options, (7) zero or more optional
//! fields ended by (8) `-`, then (9) filesystem type, (10) source, (11) super
//! options. The kernel escapes space, tab, newline and backslash in paths as
//! three-digit octal (`\040`, `\011`, `\012`, `\134`); we undo that.
//!
//! Paths are bytes (Linux paths need not be UTF-8), so we parse bytes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Most lines we accept: far more mounts than any appliance or desktop has,
/// small enough to bound memory if the kernel (or a test) feeds us garbage.
pub const MAX_MOUNTS: usize = 100_000;

/// One mount, as far as stick detection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount id (unique while mounted; a new mount gets a new id).
    pub id: u64,
    /// Where it is mounted, unescaped.
    pub mount_point: PathBuf,
    /// The filesystem type, e.g. `vfat`, `ext4`, `tmpfs`.
    pub fs_type: String,
    /// The mount source, e.g. `/dev/sda1`, unescaped.
    pub source: String,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountinfoError {
    /// A line has fewer fields than the format requires.
    #[error("mountinfo line {line}: too few fields")]
    TooFewFields {
        /// 1-based line number.
        line: usize,
    },
    /// A line has no `-` separator before the filesystem type.
    #[error("mountinfo line {line}: no '-' separator")]
    NoSeparator {
        /// 1-based line number.
        line: usize,
    },
    /// The mount id is not a number.
    #[error("mountinfo line {line}: mount id is not a number")]
    BadId {
        /// 1-based line number.
        line: usize,
    },
    /// More than [`MAX_MOUNTS`] lines.
    #[error("mountinfo has more than {MAX_MOUNTS} mounts")]
    TooMany,
}

/// Parses the whole file. Empty lines are skipped; any malformed line is an
/// error (the kernel never writes one, so it means we read something else).
pub fn parse(text: &[u8]) -> Result<Vec<Mount>, MountinfoError> {
    let mut mounts = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if mounts.len() == MAX_MOUNTS {
            return Err(MountinfoError::TooMany);
        }
        mounts.push(parse_line(line, index + 1)?);
    }
    Ok(mounts)
}

/// Parses one line (`number` is for error messages).
pub fn parse_line(line: &[u8], number: usize) -> Result<Mount, MountinfoError> {
    let fields: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let too_few = MountinfoError::TooFewFields { line: number };
    if fields.len() < 10 {
        return Err(too_few);
    }
    let id = std::str::from_utf8(fields[0])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(MountinfoError::BadId { line: number })?;
    // The optional fields start at index 6 and end at the lone "-".
    let dash = fields[6..]
        .iter()
        .position(|f| *f == b"-")
        .map(|p| p + 6)
        .ok_or(MountinfoError::NoSeparator { line: number })?;
    let (fs_type, source) = match (fields.get(dash + 1), fields.get(dash + 2)) {
        (Some(t), Some(s)) => (*t, *s),
        _ => return Err(too_few),
    };
    Ok(Mount {
        id,
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
        fs_type: String::from_utf8_lossy(&unescape(fs_type)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

/// Undoes the kernel's `\ooo` octal escapes; anything else is kept as is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' {
            if let Some(value) = field.get(i + 1..i + 4).and_then(octal) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// Three octal digits as one byte (at most `\377`).
fn octal(digits: &[u8]) -> Option<u8> {
    let mut value: u16 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u16::from(d - b'0');
    }
    u8::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parses_the_proc5_example_and_optional_fields() {
        let m = parse_line(
            b"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
            1,
        )
        .unwrap();
        assert_eq!(m.id, 36);
        assert_eq!(m.mount_point, PathBuf::from("/mnt/parent"));
        assert_eq!(m.fs_type, "ext3");
        assert_eq!(m.source, "/dev/root");

        // No optional fields at all, and several of them.
        let m = parse_line(b"22 27 0:21 / /proc rw,relatime - proc proc rw", 1).unwrap();
        assert_eq!((m.id, m.fs_type.as_str()), (22, "proc"));
        let m = parse_line(
            b"42 27 254:0 / /media/pi/STICK rw shared:1 master:2 propagate_from:3 - vfat /dev/sda1 rw",
            1,
        )
        .unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/media/pi/STICK"));
        assert_eq!(m.fs_type, "vfat");
    }

    #[test]
    fn undoes_octal_escapes_in_paths() {
        let m = parse_line(
            br"50 27 8:17 / /media/pi/MY\040STICK\011x\012y\134z rw - exfat /dev/sdb1 rw",
            1,
        )
        .unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/media/pi/MY STICK\tx\ny\\z"));
        // Not an escape: kept as written.
        assert_eq!(unescape(br"a\04"), br"a\04".to_vec());
        assert_eq!(unescape(br"a\089b"), br"a\089b".to_vec());
        assert_eq!(unescape(br"\400"), br"\400".to_vec());
        assert_eq!(unescape(br"trailing\"), br"trailing\".to_vec());
        // Non-UTF-8 bytes survive.
        assert_eq!(unescape(br"\377\200"), vec![0xff, 0x80]);
    }

    #[test]
    fn refuses_malformed_lines_with_their_number() {
        assert_eq!(
            parse(b"22 27 0:21 / /proc rw - proc proc rw\n\nshort line\n"),
            Err(MountinfoError::TooFewFields { line: 3 })
        );
        assert_eq!(
            parse_line(b"1 2 3:4 / /a rw x y z w v", 7),
            Err(MountinfoError::NoSeparator { line: 7 })
        );
        assert_eq!(
            parse_line(b"x 2 3:4 / /a rw - ext4 /dev/a rw", 2),
            Err(MountinfoError::BadId { line: 2 })
        );
        assert_eq!(
            parse_line(b"1 2 3:4 / /a rw a b -", 2),
            Err(MountinfoError::TooFewFields { line: 2 })
        );
    }

    #[test]
    fn parses_this_machines_own_table() {
        let text = std::fs::read("/proc/self/mountinfo").unwrap();
        let mounts = parse(&text).unwrap();
        assert!(mounts.iter().any(|m| m.mount_point == Path::new("/")));
    }

    #[test]
    fn bounds_the_number_of_mounts() {
        let line = b"1 2 3:4 / /a rw - ext4 /dev/a rw\n";
        let text: Vec<u8> = line.repeat(MAX_MOUNTS + 1);
        assert_eq!(parse(&text), Err(MountinfoError::TooMany));
        assert_eq!(parse(&line.repeat(3)).unwrap().len(), 3);
    }
}
