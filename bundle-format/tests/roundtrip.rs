//! Bundles written and read back: content, names, interop with `tar`,
//! determinism, size caps, and the writer's own checks.

// Test helpers panic on failure: that is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read;

use bundle_format::{
    read_manifest, verify, BundleError, BundleItem, BundleName, BundleReader, BundleWriter,
    Coverage, Fit, Limits, LineChecks, Planner, WriterOptions,
};
use support::*;

#[test]
fn round_trip_gives_back_every_line_and_blob() {
    let content = Content {
        feeds: vec![(2, 1, 30), (3, 100, 120), (4, 7, 7)],
        blobs: vec![blob_data(1, 300_000), Vec::new(), blob_data(2, 513)],
    };
    let bytes = bundle(&content);
    let (lines, blobs) = read_all(&bytes, &Limits::default()).unwrap();
    let mut want = Vec::new();
    for &(f, first, last) in &content.feeds {
        for seq in first..=last {
            want.push((feed(f), seq, line(&feed(f), seq)));
        }
    }
    assert_eq!(lines, want);
    let want_blobs: Vec<_> = content
        .blobs
        .iter()
        .map(|b| (id_of(b), b.clone()))
        .collect();
    assert_eq!(blobs, want_blobs);

    let v = verify(&bytes[..], &Limits::default()).unwrap();
    assert_eq!(v.manifest.author, feed(1));
    assert_eq!(v.manifest.messages(), 30 + 21 + 1);
    let (m, name) = read_manifest(&bytes[..], &Limits::default()).unwrap();
    assert_eq!((m, name), (v.manifest, v.name));
    assert_eq!(BundleName::parse(&name.file_name()), Some(name));
}

#[test]
fn a_bundle_is_a_plain_tar_any_tool_lists() {
    let bytes = bundle(&small());
    let tar = untar(&bytes);
    let mut archive = tar::Archive::new(&tar[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            assert!(e.header().entry_type().is_file());
            assert_eq!(e.header().mode().unwrap(), 0o644);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            assert_eq!(data.len() as u64, e.header().size().unwrap());
            e.path().unwrap().to_str().unwrap().to_string()
        })
        .collect();
    let b0 = blob_data(1, 700);
    let h0 = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &b0));
    let h1 = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), b""));
    let hex = |h: &[u8]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        names,
        vec![
            "manifest.json".to_string(),
            "feeds/0.jsonl".into(),
            "feeds/1.jsonl".into(),
            format!("blobs/{}", hex(&h0)),
            format!("blobs/{}", hex(&h1)),
            "trailer.json".into(),
        ]
    );
}

#[test]
fn same_content_same_bytes_same_name() {
    let a = bundle(&small());
    let b = bundle(&small());
    assert_eq!(a, b);
    let other = Content {
        feeds: vec![(2, 1, 3)],
        blobs: vec![],
    };
    let na = verify(&a[..], &Limits::default()).unwrap().name;
    let nc = verify(&bundle(&other)[..], &Limits::default())
        .unwrap()
        .name;
    assert_ne!(na, nc);
}

#[test]
fn blobs_can_be_skipped_or_half_read_and_are_still_checked() {
    let bytes = bundle(&small());
    let mut r = BundleReader::open(&bytes[..], &Limits::default()).unwrap();
    let mut blobs = 0;
    while let Some(item) = r.next().unwrap() {
        if let BundleItem::Blob(mut b) = item {
            blobs += 1;
            let mut half = [0u8; 10];
            let n = b.read(&mut half).unwrap();
            assert!(n <= 10);
        }
    }
    assert_eq!(blobs, 2);
    // After the end, the reader stays at the end.
    assert!(r.next().unwrap().is_none());
}

#[test]
fn the_size_cap_splits_a_feed_into_bundles_that_each_fit() {
    let cap = 96 * 1024;
    let total = 3000u32;
    let f = feed(2);
    let mut seq = 1;
    let mut manifests = Vec::new();
    while seq <= total {
        let mut p = Planner::new(&feed(1), 0, cap, Limits::default()).unwrap();
        assert_eq!(p.begin_feed(&f, seq).unwrap(), Fit::Added);
        while seq <= total && p.line(&line(&f, seq)).unwrap() == Fit::Added {
            seq += 1;
        }
        let m = p.finish().unwrap();
        let mut w =
            BundleWriter::new(Vec::new(), m.clone(), &key(1), &WriterOptions::default()).unwrap();
        for s in m.feeds[0].first..=m.feeds[0].last {
            w.line(&line(&f, s)).unwrap();
        }
        let name = w.name();
        let written = w.finish().unwrap();
        assert_eq!(written.name, name);
        assert!(written.file_bytes <= cap, "{} > {cap}", written.file_bytes);
        assert_eq!(written.file_bytes, written.out.len() as u64);
        assert!(
            written.tar_bytes > written.file_bytes,
            "SSB JSON compresses"
        );
        verify(&written.out[..], &Limits::default()).unwrap();
        manifests.push(m);
    }
    assert!(manifests.len() > 3, "{}", manifests.len());
    let stick = Coverage::from_manifests(&manifests);
    assert_eq!(stick.ranges(&f), &[(1, total)]);
    assert_eq!(stick.clock().get(&f), total);
}

#[test]
fn the_writer_refuses_content_that_differs_from_the_plan() {
    let content = small();
    let m = plan(&content);
    let opts = WriterOptions::default();
    // Signed by someone else than the author.
    assert!(matches!(
        BundleWriter::new(Vec::new(), m.clone(), &key(9), &opts),
        Err(BundleError::KeyMismatch { .. })
    ));
    // A line changed between the passes (same length).
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    w.line(&line(&feed(2), 1)).unwrap();
    w.line(&line(&feed(2), 2)).unwrap();
    let mut l = line(&feed(2), 3);
    l[2] ^= 1;
    assert!(matches!(
        w.line(&l),
        Err(BundleError::DigestMismatch { .. })
    ));
    assert!(matches!(w.line(&l), Err(BundleError::Poisoned)));
    // A longer line.
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    let mut l = line(&feed(2), 1);
    l.extend_from_slice(&[b' '; 1000]);
    assert!(matches!(w.line(&l), Err(BundleError::Misuse(_))));
    // A blob early, a wrong blob, an unfinished bundle.
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    assert!(matches!(
        w.blob(&id_of(&content.blobs[0]), &mut &content.blobs[0][..]),
        Err(BundleError::Misuse(_))
    ));
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    for f in &m.feeds {
        for s in f.first..=f.last {
            w.line(&line(&f.feed, s)).unwrap();
        }
    }
    let mut wrong = content.blobs[0].clone();
    wrong[0] ^= 1;
    assert!(matches!(
        w.blob(&id_of(&content.blobs[0]), &mut &wrong[..]),
        Err(BundleError::DigestMismatch { .. })
    ));
    let w = BundleWriter::new(Vec::new(), m, &key(1), &opts).unwrap();
    assert!(matches!(w.finish(), Err(BundleError::Misuse(_))));
}

#[test]
fn line_checks_write_the_same_bundle_and_catch_a_changed_line() {
    let content = small();
    let (m, checks) = plan_with_checks(&content);
    assert_eq!(checks.len(), m.feeds.len());
    let opts = WriterOptions::default();
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    w.check_lines_with(checks.clone()).unwrap();
    for f in &m.feeds {
        for seq in f.first..=f.last {
            w.line(&line(&f.feed, seq)).unwrap();
        }
    }
    for b in &content.blobs {
        w.blob(&id_of(b), &mut &b[..]).unwrap();
    }
    assert_eq!(w.finish().unwrap().out, bundle(&content), "the same bytes");

    // A line changed between the passes (same length), in the second feed.
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    w.check_lines_with(checks.clone()).unwrap();
    let last = m.feeds.len() - 1;
    let result = m.feeds.iter().enumerate().try_for_each(|(i, f)| {
        (f.first..=f.last).try_for_each(|seq| {
            let mut l = line(&f.feed, seq);
            if i == last && seq == f.last {
                l[3] ^= 1;
            }
            w.line(&l)
        })
    });
    let e = result.unwrap_err();
    assert!(
        matches!(&e, BundleError::Misuse(why) if why.contains("not those planned")),
        "{e}"
    );

    // Checks for another manifest, or too late, are refused.
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &opts).unwrap();
    assert!(w.check_lines_with(LineChecks::default()).is_err());
    let f = &m.feeds[0];
    w.line(&line(&f.feed, f.first)).unwrap();
    assert!(w.check_lines_with(checks).is_err());
}

#[test]
fn reading_the_manifest_reads_little() {
    // A large blob after the manifest: planning must not read it.
    let content = Content {
        feeds: vec![(2, 1, 2)],
        blobs: vec![blob_data(7, 4 * 1024 * 1024)],
    };
    let bytes = bundle(&content);
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }
    let mut input = Counting(&bytes, 0);
    read_manifest(&mut input, &Limits::default()).unwrap();
    assert!(input.1 < 256 * 1024, "read {} of {}", input.1, bytes.len());
}

#[test]
fn gnu_tar_lists_a_bundle_when_installed() {
    // Interop with the system's tar and zstd, where both are present.
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("tar") || !have("zstd") {
        eprintln!("skipped: no tar or zstd on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bytes = bundle(&small());
    let name = verify(&bytes[..], &Limits::default()).unwrap().name;
    let path = dir.path().join(name.file_name());
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new("tar")
        .arg("--zstd")
        .arg("-tvf")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    eprintln!("{listing}");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with("-rw-r--r-- 0/0") && lines[0].ends_with("manifest.json"));
    assert!(lines[5].ends_with("trailer.json"));
    // And extracts the manifest as the reader sees it.
    let out = std::process::Command::new("tar")
        .args(["--zstd", "-xOf"])
        .arg(&path)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest: bundle_format::Manifest = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        manifest,
        read_manifest(&bytes[..], &Limits::default()).unwrap().0
    );
}

/// The writer's zstd window is 2 MiB unless asked otherwise: a reader that
/// allows no more reads a default bundle larger than that, and refuses one
/// written with an 8 MiB window.
#[test]
fn the_default_window_is_what_zstd_picks_at_level_3() {
    let content = Content {
        feeds: vec![(2, 1, 3)],
        blobs: vec![blob_data(1, 3 << 20), blob_data(2, 2 << 20)],
    };
    let small_window = Limits {
        window_log_max: 21,
        ..Limits::default()
    };
    read_all(&bundle(&content), &small_window).unwrap();

    let m = plan(&content);
    let options = WriterOptions {
        window_log: 23,
        ..WriterOptions::default()
    };
    let mut w = BundleWriter::new(Vec::new(), m.clone(), &key(1), &options).unwrap();
    for f in &m.feeds {
        for seq in f.first..=f.last {
            w.line(&line(&f.feed, seq)).unwrap();
        }
    }
    for b in &content.blobs {
        w.blob(&id_of(b), &mut &b[..]).unwrap();
    }
    let wide = w.finish().unwrap().out;
    let (e, _) = read_all(&wide, &small_window).unwrap_err();
    assert!(matches!(e, BundleError::WindowTooLarge { .. }), "{e}");
    read_all(&wide, &Limits::default()).unwrap();
}
