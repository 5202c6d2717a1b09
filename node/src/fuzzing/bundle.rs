//! Targets for the bundle: the streaming reader, and the manifest, tar
//! header and trailer parsers it is built on.

use std::io::Read as _;

use bundle_format::{header, BundleError, BundleReader, Item, Limits, Manifest, Planner, Trailer};
use bundle_format::{BundleWriter, WriterOptions};
use sha2::{Digest as _, Sha256};

use super::{bounded, Target};
use crate::feed::{BlobId, Keypair};

/// `BundleReader`: a bundle that reads to the end holds what its manifest
/// says (every feed entry's lines, count and sha256, every blob's size and
/// hash), and the one-pass `verify` agrees with the reader on every input.
pub const READER: Target = Target {
    name: "bundle_reader",
    body: reader,
    seeds: reader_seeds,
};

/// `Manifest::from_json`, `header::parse` and `Trailer::parse`: what
/// parses is written back to something that parses the same.
pub const MANIFEST: Target = Target {
    name: "bundle_manifest",
    body: manifest,
    seeds: manifest_seeds,
};

/// The reader allocates the manifest entry at its declared size (checked
/// against `max_manifest_bytes` first); everything else is small buffers.
const READER_CAP: usize = 17 << 20;

/// What a full read found, or why the bundle is refused.
fn read_all(compressed: &[u8], limits: &Limits) -> Result<Manifest, BundleError> {
    let mut r = BundleReader::open(compressed, limits)?;
    let mut feeds: Vec<(String, Vec<u32>, Vec<u8>)> = Vec::new();
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(item) = r.next()? {
        match item {
            Item::Line(line) => {
                if feeds.last().is_none_or(|(f, _, _)| f != line.feed) {
                    feeds.push((line.feed.to_owned(), Vec::new(), Vec::new()));
                }
                let (_, seqs, bytes) = feeds.last_mut().expect("a feed was pushed");
                assert!(!line.bytes.contains(&b'\n'), "a line holds a newline");
                seqs.push(line.seq);
                bytes.extend_from_slice(line.bytes);
                bytes.push(b'\n');
            }
            Item::Blob(mut blob) => {
                let id = blob.id().to_owned();
                let size = blob.size();
                let mut data = Vec::new();
                // Read a blob in part or not at all, sometimes: the reader
                // skips the rest and still checks it.
                if size % 3 != 1 {
                    blob.read_to_end(&mut data).map_err(|e| blob.error(e))?;
                    assert_eq!(data.len() as u64, size);
                    blobs.push((id, data));
                }
            }
        }
    }
    let m = r.manifest().clone();
    let feeds_with_lines: Vec<_> = m.feeds.iter().filter(|f| f.bytes > 0).collect();
    assert_eq!(
        feeds.len(),
        feeds_with_lines.len(),
        "feed entries read != manifest"
    );
    for ((feed, seqs, bytes), entry) in feeds.iter().zip(feeds_with_lines) {
        assert_eq!(feed, &entry.feed);
        let want: Vec<u32> = (entry.first..=entry.last).collect();
        assert_eq!(seqs, &want, "lines of {feed} are not its range");
        assert_eq!(bytes.len() as u64, entry.bytes);
        assert_eq!(
            hex(&Sha256::digest(bytes)),
            entry.sha256,
            "digest of {feed}"
        );
    }
    for (id, data) in &blobs {
        assert_eq!(
            &BlobId::of(data).to_string(),
            id,
            "a blob does not hash to its id"
        );
    }
    Ok(m)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reader target's body. Byte 0 even: the rest is the tar stream,
/// compressed here (so the fuzzer works on the tar); odd: the rest is the
/// compressed file as it lies on a stick.
pub fn reader(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let compressed = if mode % 2 == 0 {
        zstd::bulk::compress(rest, 1).expect("zstd compresses")
    } else {
        rest.to_vec()
    };
    bounded(READER_CAP + 4 * data.len(), || {
        let read = read_all(&compressed, &limits);
        let verified = bundle_format::verify(&compressed[..], &limits);
        match (&read, &verified) {
            (Ok(m), Ok(v)) => assert_eq!(&v.manifest, m),
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string(), "reader and verify disagree")
            }
            _ => panic!("reader {read:?} and verify {verified:?} disagree"),
        }
    });
}

/// The manifest target's body. Byte 0 picks the parser: manifest, tar
/// header (the rest padded to 512 bytes) or trailer.
pub fn manifest(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    bounded((1 << 20) + 64 * data.len(), || match mode % 3 {
        0 => {
            let Ok(m) = Manifest::from_json(rest, &limits) else {
                return;
            };
            let again = Manifest::from_json(&m.to_json(), &limits);
            assert_eq!(
                again.as_ref().ok(),
                Some(&m),
                "a written manifest reads back changed"
            );
        }
        1 => {
            let mut block = [0u8; 512];
            let n = rest.len().min(512);
            block[..n].copy_from_slice(&rest[..n]);
            let Ok(p) = header::parse(&block, 0) else {
                return;
            };
            assert!(!p.name.starts_with('/') && !p.name.split('/').any(|s| s == ".."));
            if p.name.len() <= 99 && p.size <= header::MAX_OCTAL11 {
                let again = header::parse(&header::canonical(&p.name, p.size, 0), 0)
                    .expect("a canonical header parses");
                assert_eq!((again.name, again.size), (p.name, p.size));
            }
        }
        _ => {
            if let Ok(t) = Trailer::parse(rest) {
                assert_eq!(t.to_json(), rest, "a trailer is not canonical");
            }
        }
    });
}

/// A real bundle by a fixed key: two feeds of real messages and two blobs.
pub fn sample_bundle() -> Vec<u8> {
    let keys = Keypair::from_seed(&[9; 32]);
    let author = keys.id().to_string();
    let feeds = [
        super::feed::sample_feed(1, 3),
        super::feed::sample_feed(2, 2),
    ];
    let blobs: [&[u8]; 2] = [b"a blob", &[0u8; 700]];
    let limits = Limits::default();
    let mut p = Planner::new(&author, 1_700_000_000_000, 1 << 20, limits.clone()).expect("planner");
    for feed in &feeds {
        p.begin_feed(&feed[0].author().to_string(), 1)
            .expect("feed");
        for m in feed {
            p.line(m.value().to_compact().as_bytes()).expect("line");
        }
    }
    for b in blobs {
        p.blob(&BlobId::of(b).to_string(), b.len() as u64)
            .expect("blob");
    }
    let manifest = p.finish().expect("manifest");
    let options = WriterOptions {
        level: 1,
        workers: 0,
        ..WriterOptions::default()
    };
    let mut w =
        BundleWriter::new(Vec::new(), manifest, keys.signing_key(), &options).expect("writer");
    for m in feeds.iter().flatten() {
        w.line(m.value().to_compact().as_bytes())
            .expect("write line");
    }
    for b in blobs {
        w.blob(&BlobId::of(b).to_string(), &mut &b[..])
            .expect("write blob");
    }
    w.finish().expect("finish").out
}

fn reader_seeds() -> Vec<Vec<u8>> {
    let bundle = sample_bundle();
    let tar = zstd::stream::decode_all(&bundle[..]).expect("a sample bundle decompresses");
    let mut seeds = Vec::new();
    for (mode, bytes) in [(0u8, &tar), (1, &bundle)] {
        let mut s = vec![mode];
        s.extend_from_slice(bytes);
        seeds.push(s);
    }
    seeds
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    let bundle = sample_bundle();
    let tar = zstd::stream::decode_all(&bundle[..]).expect("a sample bundle decompresses");
    let limits = Limits::default();
    let (m, _) = bundle_format::read_manifest(&bundle[..], &limits).expect("a sample manifest");
    // The trailer is the last entry before the two zero blocks.
    let trailer_at = tar.len() - 1024 - 512;
    let trailer = &tar[trailer_at..trailer_at + bundle_format::trailer::TRAILER_LEN as usize];
    let with = |mode: u8, bytes: &[u8]| {
        let mut s = vec![mode];
        s.extend_from_slice(bytes);
        s
    };
    vec![
        with(0, &m.to_json()),
        with(1, &tar[..512]),
        with(1, &tar[tar.len() - 1024 - 1024..tar.len() - 1024 - 512]),
        with(2, trailer),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn bundle_reader_short_run() {
        run(&READER, 10000);
    }

    #[test]
    fn bundle_manifest_short_run() {
        run(&MANIFEST, 100000);
    }

    #[test]
    fn the_sample_bundle_reads_to_the_end() {
        let m = read_all(&sample_bundle(), &Limits::default()).expect("the sample reads");
        assert_eq!((m.feeds.len(), m.blobs.len()), (2, 2));
    }
}
