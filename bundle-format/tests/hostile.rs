//! Untrusted bundles: every kind of damage or attack is refused with its own
//! error, in bounded time and memory, and what was handed out before a
//! refusal is a clean prefix of each feed.

// Test helpers panic on failure: that is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};

use bundle_format::manifest::Manifest;
use bundle_format::{BundleError as E, Limits, Trailer};
use sha2::{Digest as _, Sha256};
use support::*;

/// The entries of the standard small bundle:
/// manifest, feeds/0 (3 lines), feeds/1 (2 lines), blob (700 B), blob (empty), trailer.
fn parts() -> Vec<Entry> {
    entries(&untar(&bundle(&small())))
}

fn refuse(entries: &[Entry]) -> E {
    refusal(&zst(&tar_of(entries)))
}

#[test]
fn path_traversal_and_absolute_paths() {
    let mut p = parts();
    p[1].set_name("../feeds/0.jsonl");
    assert!(matches!(refuse(&p), E::PathTraversal { name } if name == "../feeds/0.jsonl"));
    let mut p = parts();
    p[1].set_name("feeds/../../etc/cron.d/x");
    assert!(matches!(refuse(&p), E::PathTraversal { .. }));
    let mut p = parts();
    p[1].set_name("/etc/passwd");
    assert!(matches!(refuse(&p), E::AbsolutePath { name } if name == "/etc/passwd"));
    // In the ustar prefix field too.
    let mut p = parts();
    p[1].header[345..348].copy_from_slice(b"../");
    fix_cksum(&mut p[1].header);
    assert!(matches!(refuse(&p), E::PathTraversal { .. }));
}

#[test]
fn links_devices_fifos_directories_and_extension_headers() {
    type Check = fn(&E) -> bool;
    let cases: [(u8, Check); 9] = [
        (b'2', |e| matches!(e, E::Symlink { .. })),
        (b'1', |e| matches!(e, E::Hardlink { .. })),
        (b'3', |e| matches!(e, E::DeviceFile { .. })),
        (b'4', |e| matches!(e, E::DeviceFile { .. })),
        (b'6', |e| matches!(e, E::Fifo { .. })),
        (b'5', |e| matches!(e, E::Directory { .. })),
        (b'x', |e| matches!(e, E::ExtensionHeader { kind: 'x', .. })),
        (b'L', |e| matches!(e, E::ExtensionHeader { kind: 'L', .. })),
        (b'7', |e| {
            matches!(e, E::UnsupportedEntryType { kind: '7', .. })
        }),
    ];
    for (kind, ok) in cases {
        let mut p = parts();
        p[1].set_type(kind);
        let e = refuse(&p);
        assert!(ok(&e), "type {}: {e}", kind as char);
    }
}

#[test]
fn entries_made_by_the_tar_crate_are_classified_too() {
    // A symlink and a GNU long name, as tar::Builder writes them.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "manifest.json", "/etc/shadow")
        .unwrap();
    let t = b.into_inner().unwrap();
    assert!(matches!(refusal(&zst(&t)), E::Symlink { name } if name == "manifest.json"));

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "x".repeat(150), &b"a"[..]).unwrap();
    let t = b.into_inner().unwrap();
    assert!(matches!(
        refusal(&zst(&t)),
        E::ExtensionHeader { kind: 'L', .. }
    ));

    // A well-named regular file in GNU (not ustar) format.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    b.append_data(&mut h, "manifest.json", &b"{}"[..]).unwrap();
    let t = b.into_inner().unwrap();
    assert!(matches!(refusal(&zst(&t)), E::BadHeader { .. }));
}

#[test]
fn duplicate_unexpected_and_out_of_order_entries() {
    let mut p = parts();
    p.insert(2, p[1].clone());
    assert!(matches!(refuse(&p), E::DuplicateEntry { name } if name == "feeds/0.jsonl"));
    let mut p = parts();
    p.insert(1, p[0].clone());
    assert!(matches!(refuse(&p), E::DuplicateEntry { name } if name == "manifest.json"));

    let mut p = parts();
    p.insert(3, Entry::new("evil.sh", b"rm -rf /\n".to_vec()));
    assert!(
        matches!(refuse(&p), E::UnexpectedEntry { found, expected } if found == "evil.sh" && expected.starts_with("blobs/"))
    );
    for name in [
        "feeds/2.jsonl",
        "feeds/01.jsonl",
        "feeds/1.json",
        "blobs/00",
        "manifest.json/",
    ] {
        let mut p = parts();
        p[2].set_name(name);
        assert!(matches!(refuse(&p), E::UnexpectedEntry { .. }), "{name}");
    }

    let mut p = parts();
    p.swap(1, 2);
    assert!(
        matches!(refuse(&p), E::OutOfOrder { found, expected } if found == "feeds/1.jsonl" && expected == "feeds/0.jsonl")
    );
    let mut p = parts();
    p.swap(3, 5);
    assert!(matches!(refuse(&p), E::OutOfOrder { found, .. } if found == "trailer.json"));

    let mut p = parts();
    p.swap(0, 1);
    assert!(matches!(refuse(&p), E::ManifestNotFirst { found } if found == "feeds/0.jsonl"));
}

#[test]
fn oversize_entries_are_refused_before_reading_them() {
    // A manifest header claiming 1 GiB, followed by nothing: refused from
    // the header alone.
    let mut p = parts();
    p[0].header[124..136].copy_from_slice(format!("{:011o}\0", 1u64 << 30).as_bytes());
    fix_cksum(&mut p[0].header);
    let mut t = p[0].header.to_vec();
    t.resize(4096, 0);
    assert!(matches!(refusal(&zst(&t)), E::OversizeEntry { size, .. } if size == 1 << 30));
    // A blob over the reader's limit, refused from the manifest.
    let bytes = bundle(&small());
    let strict = Limits {
        max_blob_bytes: 100,
        ..Limits::default()
    };
    let e = bundle_format::verify(&bytes[..], &strict).unwrap_err();
    assert!(
        matches!(
            e,
            E::OversizeEntry {
                size: 700,
                max: 100,
                ..
            }
        ),
        "{e}"
    );
    // A line over the limit.
    let tight = Limits {
        max_line_bytes: 100,
        ..Limits::default()
    };
    let e = bundle_format::verify(&bytes[..], &tight).unwrap_err();
    assert!(matches!(e, E::InvalidManifest(_)), "{e}");
    // An entry whose header size differs from the manifest.
    let mut p = parts();
    p[3].data.push(0);
    p[3].header[124..136].copy_from_slice(format!("{:011o}\0", 701).as_bytes());
    fix_cksum(&mut p[3].header);
    assert!(matches!(
        refuse(&p),
        E::SizeMismatch {
            declared: 700,
            in_header: 701,
            ..
        }
    ));
}

/// A reader that counts the compressed bytes taken from it.
struct Counted<'a>(&'a [u8], usize);
impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n;
        Ok(n)
    }
}

/// Compresses `tar` followed by `zeros` zero bytes, as one frame.
fn with_zeros(tar: &[u8], zeros: u64) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.write_all(tar).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..zeros / (1 << 20) {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

#[test]
fn decompression_bombs_stop_early() {
    const GIB: u64 = 1 << 30;
    // 1 GiB of zeros after a valid bundle's tar end.
    let tar = untar(&bundle(&small()));
    let bomb = with_zeros(&tar, GIB);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let mut input = Counted(&bomb, 0);
    let e = bundle_format::verify(&mut input, &Limits::default()).unwrap_err();
    assert!(matches!(e, E::TrailingData(_)), "{e}");
    assert!(input.1 < 200_000, "read {} compressed bytes", input.1);

    // 1 GiB of zeros where a feed entry's lines should be.
    let p = parts();
    let mut t = tar_of(&p[..1]);
    t.truncate(t.len() - 1024);
    t.extend_from_slice(&p[1].header);
    let bomb = with_zeros(&t, GIB);
    let mut input = Counted(&bomb, 0);
    let e = bundle_format::verify(&mut input, &Limits::default()).unwrap_err();
    // The reader never reads past the size the manifest gives the entry.
    assert!(matches!(e, E::UnterminatedLine { .. }), "{e}");
    assert!(input.1 < 200_000, "read {} compressed bytes", input.1);

    // A manifest entry claiming 1 GiB, with the GiB of zeros present.
    let mut h = p[0].header;
    h[124..136].copy_from_slice(format!("{:011o}\0", GIB).as_bytes());
    fix_cksum(&mut h);
    let bomb = with_zeros(&h, GIB);
    let mut input = Counted(&bomb, 0);
    let e = bundle_format::verify(&mut input, &Limits::default()).unwrap_err();
    assert!(matches!(e, E::OversizeEntry { .. }), "{e}");
    assert!(input.1 < 200_000, "read {} compressed bytes", input.1);
}

#[test]
fn a_zstd_window_over_the_limit_is_refused() {
    let tar = untar(&bundle(&small()));
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.window_log(27).unwrap();
    enc.write_all(&tar).unwrap();
    let big = enc.finish().unwrap();
    let e = refusal(&big);
    assert!(matches!(e, E::WindowTooLarge { max_log: 23 }), "{e}");
    // The same bundle is fine for a reader that allows the window.
    let roomy = Limits {
        window_log_max: 27,
        ..Limits::default()
    };
    bundle_format::verify(&big[..], &roomy).unwrap();
}

#[test]
fn truncation_anywhere_is_reported_and_leaves_prefixes() {
    let content = Content {
        feeds: vec![(2, 1, 40), (3, 1, 40)],
        blobs: vec![blob_data(1, 3000)],
    };
    let bytes = bundle(&content);
    let tar = untar(&bytes);
    let check_prefix = |delivered: &Contents| {
        for f in [feed(2), feed(3)] {
            let seqs: Vec<u32> = delivered
                .0
                .iter()
                .filter(|l| l.0 == f)
                .map(|l| l.1)
                .collect();
            assert_eq!(seqs, (1..=seqs.len() as u32).collect::<Vec<_>>());
        }
        for (f, seq, l) in &delivered.0 {
            assert_eq!(l, &line(f, *seq));
        }
    };
    // Cut the compressed file.
    for cut in 0..bytes.len() {
        let (e, delivered) = read_all(&bytes[..cut], &Limits::default()).unwrap_err();
        assert!(
            matches!(e, E::Truncated { .. } | E::Decompress(_)),
            "cut {cut}: {e}"
        );
        check_prefix(&delivered);
    }
    // Cut the tar inside a complete zstd frame.
    for cut in (0..tar.len())
        .step_by(97)
        .chain([tar.len() - 1, tar.len() - 512])
    {
        let (e, delivered) = read_all(&zst(&tar[..cut]), &Limits::default()).unwrap_err();
        assert!(matches!(e, E::Truncated { .. }), "cut {cut}: {e}");
        check_prefix(&delivered);
    }
}

#[test]
fn every_bit_flip_in_the_tar_stream_is_caught() {
    let tar = untar(&bundle(&small()));
    for at in 0..tar.len() {
        let mut t = tar.clone();
        t[at] ^= 1 << (at % 8);
        let r = bundle_format::verify(&zst(&t)[..], &Limits::default());
        assert!(r.is_err(), "flip at tar byte {at} went unnoticed");
    }
}

#[test]
fn bit_flips_in_the_compressed_file_are_caught_or_harmless() {
    // A flip in the zstd layer may leave the tar stream intact (a larger
    // window size in the frame header, another match offset inside a run of
    // zeros): then the bundle must read back exactly the same. Everything
    // else must be refused.
    let bytes = bundle(&small());
    let tar = untar(&bytes);
    let original = read_all(&bytes, &Limits::default()).unwrap();
    let mut harmless = 0;
    for at in 0..bytes.len() {
        for bit in [0, 5] {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            if let Ok(contents) = read_all(&b, &Limits::default()) {
                assert_eq!(
                    contents, original,
                    "flip at byte {at} bit {bit} changed the content"
                );
                assert_eq!(
                    untar(&b),
                    tar,
                    "flip at byte {at} bit {bit} changed the tar"
                );
                harmless += 1;
            }
        }
    }
    assert!(harmless < bytes.len() / 50, "{harmless}");
}

#[test]
fn wrong_signature_wrong_digest_and_wrong_trailer() {
    // Signed by another key.
    let mut p = parts();
    resign(&mut p, &key(9));
    assert!(matches!(refuse(&p), E::BadSignature { author } if author == feed(1)));
    // A trailer of another manifest.
    let mut p = parts();
    let t = Trailer::sign([0; 32], &key(1)).to_json();
    let last = p.len() - 1;
    p[last] = Entry::new("trailer.json", t);
    assert!(matches!(refuse(&p), E::TrailerManifestMismatch { .. }));
    // A trailer with a flipped signature bit, re-encoded canonically.
    let mut p = parts();
    let mut t = Trailer::parse(&p[last].data).unwrap();
    let mut sig = t.signature.to_bytes();
    sig[10] ^= 4;
    t.signature = ed25519_dalek::Signature::from_bytes(&sig);
    p[last] = Entry::new("trailer.json", t.to_json());
    assert!(matches!(refuse(&p), E::BadSignature { .. }));
    // A trailer that is not canonical JSON.
    let mut p = parts();
    let spaced = String::from_utf8(p[last].data.clone())
        .unwrap()
        .replacen(',', " ,", 1);
    p[last] = Entry::new("trailer.json", spaced.into_bytes());
    assert!(matches!(refuse(&p), E::SizeMismatch { .. }));
    let mut p = parts();
    let swapped = String::from_utf8(p[last].data.clone())
        .unwrap()
        .replacen('a', "b", 1);
    p[last] = Entry::new("trailer.json", swapped.into_bytes());
    assert!(matches!(
        refuse(&p),
        E::TrailerManifestMismatch { .. } | E::InvalidTrailer(_)
    ));

    // A feed line changed (same length): its entry digest no longer matches.
    let mut p = parts();
    let i = p[1].data.iter().position(|&b| b == b'7').unwrap();
    p[1].data[i] = b'8';
    assert!(matches!(refuse(&p), E::DigestMismatch { name, .. } if name == "feeds/0.jsonl"));
    // A blob changed.
    let mut p = parts();
    p[3].data[699] ^= 0x80;
    assert!(matches!(refuse(&p), E::DigestMismatch { name, .. } if name.starts_with("blobs/")));
}

/// Rewrites entry `feed` of the parts with new lines, updating the manifest
/// (bytes and digest, range as given) and re-signing with the author's key:
/// only the line structure is then wrong.
fn with_feed_data(feed_index: usize, data: Vec<u8>, first: u32, last: u32) -> Vec<Entry> {
    let mut p = parts();
    let mut m: Manifest = serde_json::from_slice(&p[0].data).unwrap();
    let f = &mut m.feeds[feed_index];
    f.first = first;
    f.last = last;
    f.bytes = data.len() as u64;
    f.sha256 = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    p[0] = Entry::new("manifest.json", m.to_json());
    p[1 + feed_index] = Entry::new(&format!("feeds/{feed_index}.jsonl"), data);
    resign(&mut p, &key(1));
    p
}

#[test]
fn line_structure_must_match_the_manifest() {
    let f = feed(2);
    let lines = |seqs: std::ops::RangeInclusive<u32>| -> Vec<u8> {
        seqs.flat_map(|s| {
            let mut l = line(&f, s);
            l.push(b'\n');
            l
        })
        .collect()
    };
    // The untouched rewrite reads fine (the helper itself is sound).
    read_all(
        &zst(&tar_of(&with_feed_data(0, lines(1..=3), 1, 3))),
        &Limits::default(),
    )
    .unwrap();
    // Four lines where the range says three.
    let e = refuse(&with_feed_data(0, lines(1..=4), 1, 3));
    assert!(
        matches!(
            e,
            E::LineCountMismatch {
                declared: 3,
                found: 4,
                ..
            }
        ),
        "{e}"
    );
    // Two lines where the range says three.
    let e = refuse(&with_feed_data(0, lines(1..=2), 1, 3));
    assert!(
        matches!(
            e,
            E::LineCountMismatch {
                declared: 3,
                found: 2,
                ..
            }
        ),
        "{e}"
    );
    // No final newline.
    let mut d = lines(1..=3);
    d.pop();
    d.push(b' ');
    let e = refuse(&with_feed_data(0, d, 1, 3));
    assert!(matches!(e, E::UnterminatedLine { .. }), "{e}");
    // An empty line.
    let mut d = lines(1..=2);
    d.extend_from_slice(b"\n  ");
    let e = refuse(&with_feed_data(0, d, 1, 3));
    assert!(matches!(e, E::EmptyLine { seq: 3, .. }), "{e}");
    // A line over the limit (the manifest allows the bytes).
    let mut d = vec![b'x'; 70_000];
    d.push(b'\n');
    d.extend_from_slice(&lines(2..=3));
    let e = refuse(&with_feed_data(0, d, 1, 3));
    assert!(
        matches!(
            e,
            E::LineTooLong {
                seq: 1,
                max: 65536,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn framing_damage() {
    // A header field other than name and size changed (mode 0755).
    let mut p = parts();
    p[2].header[100..108].copy_from_slice(b"0000755\0");
    fix_cksum(&mut p[2].header);
    assert!(matches!(refuse(&p), E::NonCanonicalHeader { name } if name == "feeds/1.jsonl"));
    // A bad checksum.
    let mut p = parts();
    p[2].header[0] = b'g';
    assert!(matches!(refuse(&p), E::HeaderChecksum { offset } if offset > 0));
    // Non-zero padding after an entry.
    let bytes = bundle(&small());
    let mut t = untar(&bytes);
    let manifest_len = parts()[0].data.len();
    t[512 + manifest_len] = b' ';
    assert!(matches!(refusal(&zst(&t)), E::NonZeroPadding { name } if name == "manifest.json"));
    // The archive ends before the trailer.
    let p = parts();
    assert!(
        matches!(refuse(&p[..3]), E::EarlyEndOfArchive { expected, .. } if expected.starts_with("blobs/"))
    );
    // Garbage where the end-of-archive should be.
    let mut t = untar(&bytes);
    let n = t.len();
    t[n - 700] = 1;
    assert!(matches!(refusal(&zst(&t)), E::BadEndOfArchive { .. }));
    // Data after the zstd frame: garbage, or a second frame.
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(refusal(&b), E::TrailingData(_)));
    let mut b = bytes.clone();
    b.extend_from_slice(&zst(b"more"));
    assert!(matches!(refusal(&b), E::TrailingData(_)));
    // Not zstd at all (a plain tar), and nothing at all.
    assert!(matches!(refusal(&untar(&bytes)), E::Decompress(_)));
    assert!(matches!(refusal(b""), E::Truncated { offset: 0 }));
    // A manifest of a newer version.
    let mut p = parts();
    let json = String::from_utf8(p[0].data.clone())
        .unwrap()
        .replace("\"version\":1", "\"version\":2");
    p[0] = Entry::new("manifest.json", json.into_bytes());
    assert!(matches!(
        refuse(&p),
        E::UnsupportedVersion { version: 2, .. }
    ));
}

#[test]
fn input_errors_are_io_errors() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("usb stick pulled"))
        }
    }
    let e = bundle_format::verify(Failing, &Limits::default()).unwrap_err();
    assert!(matches!(e, E::Io(_)), "{e}");
}
