//! Shared helpers: keys, fake feeds, whole bundles and their raw tar entries.
#![allow(dead_code)]

use std::io::Read;

use bundle_format::header::canonical;
use bundle_format::ids::{blob_id, feed_id};
use bundle_format::{
    BundleError, BundleItem, BundleReader, BundleWriter, Fit, Limits, LineChecks, Manifest,
    Planner, Trailer, WriterOptions, FAT32_MAX_FILE,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};

/// A deterministic key.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The feed id of `key(n)`.
pub fn feed(n: u8) -> String {
    feed_id(&key(n).verifying_key())
}

/// A message-like line (the crate treats lines as opaque bytes).
pub fn line(feed: &str, seq: u32) -> Vec<u8> {
    format!(
        r#"{{"previous":"%{seq:044}.sha256","author":"{feed}","sequence":{seq},"timestamp":{},"hash":"sha256","content":{{"type":"post","text":"message {seq} of a feed that carries some text"}},"signature":"{:086}==.sig.ed25519"}}"#,
        1_700_000_000_000u64 + u64::from(seq),
        seq
    )
    .into_bytes()
}

/// Blob data `n` bytes long, not very compressible.
pub fn blob_data(seed: u8, n: usize) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The blob id of some bytes.
pub fn id_of(data: &[u8]) -> String {
    blob_id(&Sha256::digest(data).into())
}

/// Content: feeds as (feed key number, first, last), blobs as bytes.
pub struct Content {
    pub feeds: Vec<(u8, u32, u32)>,
    pub blobs: Vec<Vec<u8>>,
}

pub fn small() -> Content {
    Content {
        feeds: vec![(2, 1, 3), (3, 5, 6)],
        blobs: vec![blob_data(1, 700), Vec::new()],
    }
}

/// Plans and writes `content` as a bundle by `key(1)`, everything fitting.
pub fn bundle(content: &Content) -> Vec<u8> {
    let m = plan(content);
    write(&m, content)
}

pub fn plan(content: &Content) -> Manifest {
    plan_with_checks(content).0
}

/// [`plan`], with the planner's line checks for the writer.
pub fn plan_with_checks(content: &Content) -> (Manifest, LineChecks) {
    let mut p = Planner::new(
        &feed(1),
        1_700_000_123_456,
        FAT32_MAX_FILE,
        Limits::default(),
    )
    .unwrap();
    for &(f, first, last) in &content.feeds {
        assert_eq!(p.begin_feed(&feed(f), first).unwrap(), Fit::Added);
        for seq in first..=last {
            assert_eq!(p.line(&line(&feed(f), seq)).unwrap(), Fit::Added);
        }
    }
    for b in &content.blobs {
        assert_eq!(p.blob(&id_of(b), b.len() as u64).unwrap(), Fit::Added);
    }
    p.finish_with_checks().unwrap()
}

pub fn write(m: &Manifest, content: &Content) -> Vec<u8> {
    let mut w =
        BundleWriter::new(Vec::new(), m.clone(), &key(1), &WriterOptions::default()).unwrap();
    for f in &m.feeds {
        for seq in f.first..=f.last {
            w.line(&line(&f.feed, seq)).unwrap();
        }
    }
    for b in &content.blobs {
        w.blob(&id_of(b), &mut &b[..]).unwrap();
    }
    w.finish().unwrap().out
}

/// Everything a bundle holds: lines as (feed, seq, bytes), blobs as (id, bytes).
pub type Contents = (Vec<(String, u32, Vec<u8>)>, Vec<(String, Vec<u8>)>);

/// Reads a whole bundle; on error also returns what was delivered before.
pub fn read_all(bytes: &[u8], limits: &Limits) -> Result<Contents, (BundleError, Contents)> {
    let mut lines = Vec::new();
    let mut blobs = Vec::new();
    let mut r = match BundleReader::open(bytes, limits) {
        Ok(r) => r,
        Err(e) => return Err((e, (lines, blobs))),
    };
    loop {
        match r.next() {
            Ok(None) => return Ok((lines, blobs)),
            Ok(Some(BundleItem::Line(l))) => {
                lines.push((l.feed.to_string(), l.seq, l.bytes.to_vec()))
            }
            Ok(Some(BundleItem::Blob(mut b))) => {
                let id = b.id().to_string();
                let mut data = Vec::new();
                if let Err(e) = b.read_to_end(&mut data) {
                    let e = b.error(e);
                    return Err((e, (lines, blobs)));
                }
                blobs.push((id, data));
            }
            Err(e) => return Err((e, (lines, blobs))),
        }
    }
}

/// The error reading `bytes` gives (panics if it reads fine).
pub fn refusal(bytes: &[u8]) -> BundleError {
    let e = bundle_format::verify(bytes, &Limits::default()).expect_err("bundle was accepted");
    let (e2, _) = read_all(bytes, &Limits::default()).expect_err("bundle was accepted");
    assert_eq!(e.to_string(), e2.to_string());
    e
}

/// One raw tar entry.
#[derive(Clone)]
pub struct Entry {
    pub header: [u8; 512],
    pub data: Vec<u8>,
}

impl Entry {
    pub fn name(&self) -> String {
        let end = self.header[..100]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(100);
        String::from_utf8_lossy(&self.header[..end]).into_owned()
    }

    /// A canonical entry (as the writer makes them), with the bundle's mtime.
    pub fn new(name: &str, data: Vec<u8>) -> Entry {
        Entry {
            header: canonical(name, data.len() as u64, 1_700_000_123),
            data,
        }
    }

    pub fn set_name(&mut self, name: &str) {
        self.header[..100].fill(0);
        self.header[..name.len()].copy_from_slice(name.as_bytes());
        fix_cksum(&mut self.header);
    }

    pub fn set_type(&mut self, kind: u8) {
        self.header[156] = kind;
        fix_cksum(&mut self.header);
    }
}

/// Recomputes a header's checksum.
pub fn fix_cksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// The uncompressed tar stream of a bundle.
pub fn untar(bundle: &[u8]) -> Vec<u8> {
    zstd::decode_all(bundle).unwrap()
}

/// Splits a tar stream into entries (stops at the first zero block).
pub fn entries(tar: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let header: [u8; 512] = tar[at..at + 512].try_into().unwrap();
        let size = tar::Header::from_byte_slice(&header).entry_size().unwrap() as usize;
        let data = tar[at + 512..at + 512 + size].to_vec();
        out.push(Entry { header, data });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Joins entries into a tar stream with its end-of-archive.
pub fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut t = Vec::new();
    for e in entries {
        t.extend_from_slice(&e.header);
        t.extend_from_slice(&e.data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.resize(t.len() + 1024, 0);
    t
}

/// Compresses a tar stream as one zstd frame.
pub fn zst(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

/// Re-signs a bundle's entries after the manifest changed: new trailer by `key`.
pub fn resign(entries: &mut [Entry], signer: &SigningKey) {
    let digest: [u8; 32] = Sha256::digest(&entries[0].data).into();
    let last = entries.len() - 1;
    entries[last] = Entry::new("trailer.json", Trailer::sign(digest, signer).to_json());
}
