//! Content-addressed blob files (`&<base64 sha256>.sha256`).
//!
//! A blob lives at `blobs/sha256/<first 2 hex>/<other 62 hex>`. Adding one
//! streams it into `blobs/tmp/` while hashing, fsyncs, renames it into place
//! and fsyncs the directory, so a crash leaves either the whole blob or a
//! temp file that the next open removes. Reads re-hash what they return, so
//! a blob damaged on disk is reported, never passed on.
//!
//! The store counts the bytes and blobs it holds (by one walk over
//! `blobs/sha256/` on first use, then as blobs come and go), for the blob
//! quota ([`crate::replica::blob_budget`]). A blob file's modification time
//! is when the blob was last stored, mentioned or served ([`BlobStore::touch`]).
//! Blobs added here by hand (`ssb-node blobs add`) are marked by an empty
//! file `blobs/own/<hex>`: the quota never removes them.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::feed::BlobId;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The blob is not held here.
    #[error("blob {0} is not in the store")]
    Missing(BlobId),
    /// The bytes on disk no longer hash to the blob's id.
    #[error("blob {id} is damaged on disk (its bytes hash to {actual})")]
    Damaged {
        /// The blob asked for.
        id: BlobId,
        /// What its bytes hash to now.
        actual: BlobId,
    },
    /// The data is not the blob it was said to be.
    #[error("expected blob {expected}, but the bytes hash to {actual}")]
    WrongHash {
        /// The id that was promised.
        expected: BlobId,
        /// What the bytes hash to.
        actual: BlobId,
    },
    /// The data is larger than allowed.
    #[error("blob is larger than the limit of {0} bytes")]
    TooLarge(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A blob written and checked but not yet visible; see [`BlobStore::stage`].
#[derive(Debug)]
pub struct StagedBlob {
    tmp: PathBuf,
    /// The blob's id (its bytes hashed).
    pub id: BlobId,
    /// Its size in bytes.
    pub size: u64,
    done: bool,
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What the store holds: bytes and blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of blobs held.
    pub bytes: u64,
    /// Blobs held.
    pub count: u64,
}

/// One blob held: its id, size and when it was last stored, mentioned or served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBlob {
    /// The blob.
    pub id: BlobId,
    /// Its size in bytes.
    pub size: u64,
    /// Its file's modification time.
    pub touched: SystemTime,
}

/// The blob store rooted at a directory.
pub struct BlobStore {
    dir: PathBuf,
    root: PathBuf,
    tmp: PathBuf,
    own: PathBuf,
    /// Counted on first use, then kept in step.
    usage: Mutex<Option<Usage>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob id named by 64 lowercase hex digits.
fn unhex(text: &str) -> Option<BlobId> {
    if text.len() != 64 {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2)?;
        if pair.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(BlobId(id))
}

/// Copies `from` into `to` in 64 KiB steps, hashing and counting; stops with
/// [`BlobError::TooLarge`] past `max` bytes.
fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    max: u64,
    to_path: &Path,
) -> Result<(BlobId, u64), BlobError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(BlobError::Io {
                    path: "input".into(),
                    source,
                })
            }
        };
        size += n as u64;
        if size > max {
            return Err(BlobError::TooLarge(max));
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(io_err(to_path))?;
    }
    Ok((BlobId(hasher.finalize().into()), size))
}

impl BlobStore {
    /// Opens (creating) the store under `dir`, removing temp files a crash
    /// left behind.
    pub fn open(dir: &Path) -> Result<BlobStore, BlobError> {
        let root = dir.join("sha256");
        let tmp = dir.join("tmp");
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        // Temp files are named `<pid>-<n>.tmp`: remove those whose writer is
        // gone (a crash or a pulled plug), never another live process's.
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .unwrap_or("");
            let alive = !pid.is_empty()
                && pid != std::process::id().to_string()
                && Path::new("/proc").join(pid).exists();
            if !alive {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(BlobStore {
            dir: dir.to_path_buf(),
            own: dir.join("own"),
            root,
            tmp,
            usage: Mutex::new(None),
        })
    }

    fn usage_lock(&self) -> MutexGuard<'_, Option<Usage>> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every blob held, with its size and when it was last touched.
    pub fn list(&self) -> Result<Vec<HeldBlob>, BlobError> {
        let mut held = Vec::new();
        let dirs = match fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        for dir in dirs.flatten() {
            let Some(prefix) = dir.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                let Some(rest) = f.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Some(id) = unhex(&format!("{prefix}{rest}")) else {
                    continue;
                };
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                held.push(HeldBlob {
                    id,
                    size: meta.len(),
                    touched: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(held)
    }

    /// The bytes and blobs held.
    pub fn usage(&self) -> Result<Usage, BlobError> {
        if let Some(u) = *self.usage_lock() {
            return Ok(u);
        }
        let held = self.list()?;
        let u = Usage {
            bytes: held.iter().map(|b| b.size).sum(),
            count: held.len() as u64,
        };
        let mut cached = self.usage_lock();
        Ok(*cached.get_or_insert(u))
    }

    fn count(&self, bytes: i128, count: i128) {
        if let Some(u) = self.usage_lock().as_mut() {
            u.bytes = (i128::from(u.bytes) + bytes).max(0) as u64;
            u.count = (i128::from(u.count) + count).max(0) as u64;
        }
    }

    /// Removes blob `id`; returns its size, or `None` if it was not held.
    pub fn remove(&self, id: &BlobId) -> Result<Option<u64>, BlobError> {
        let path = self.path(id);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        }
        self.count(-i128::from(size), -1);
        Ok(Some(size))
    }

    /// Notes that blob `id` was mentioned or served now (its file's
    /// modification time); nothing if it is not held.
    pub fn touch(&self, id: &BlobId) {
        if let Ok(f) = File::open(self.path(id)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }

    /// Marks blob `id` as added here by hand: never removed by the quota.
    pub fn mark_own(&self, id: &BlobId) -> Result<(), BlobError> {
        fs::create_dir_all(&self.own).map_err(io_err(&self.own))?;
        let path = self.own.join(hex(id.as_bytes()));
        File::create(&path).map_err(io_err(&path))?;
        Ok(())
    }

    /// Whether blob `id` was added here by hand.
    pub fn is_own(&self, id: &BlobId) -> bool {
        self.own.join(hex(id.as_bytes())).exists()
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where blob `id` lives.
    pub fn path(&self, id: &BlobId) -> PathBuf {
        let h = hex(id.as_bytes());
        self.root.join(&h[..2]).join(&h[2..])
    }

    /// Whether blob `id` is held.
    pub fn has(&self, id: &BlobId) -> bool {
        self.path(id).is_file()
    }

    /// The size of blob `id` in bytes, if held.
    pub fn size(&self, id: &BlobId) -> Option<u64> {
        fs::metadata(self.path(id)).ok().map(|m| m.len())
    }

    /// Stores everything `reader` yields (at most `max` bytes); returns the
    /// blob id and size. With `expected`, refuses bytes that hash otherwise.
    pub fn add(
        &self,
        reader: &mut dyn Read,
        expected: Option<&BlobId>,
        max: u64,
    ) -> Result<(BlobId, u64), BlobError> {
        let staged = self.stage(reader, expected, max)?;
        let (id, size) = (staged.id, staged.size);
        self.commit(staged)?;
        Ok((id, size))
    }

    /// The first half of [`BlobStore::add`]: streams the bytes into a temp
    /// file, checks the hash, fsyncs. Nothing is visible until
    /// [`BlobStore::commit`]; dropping the [`StagedBlob`] removes the file.
    pub fn stage(
        &self,
        reader: &mut dyn Read,
        expected: Option<&BlobId>,
        max: u64,
    ) -> Result<StagedBlob, BlobError> {
        let tmp = self.tmp.join(format!(
            "{}-{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut staged = StagedBlob {
            tmp,
            id: BlobId([0; 32]),
            size: 0,
            done: false,
        };
        let mut file = File::create(&staged.tmp).map_err(io_err(&staged.tmp))?;
        let (id, size) = copy_hashing(reader, &mut file, max, &staged.tmp)?;
        if let Some(want) = expected {
            if *want != id {
                return Err(BlobError::WrongHash {
                    expected: *want,
                    actual: id,
                });
            }
        }
        file.sync_all().map_err(io_err(&staged.tmp))?;
        (staged.id, staged.size) = (id, size);
        Ok(staged)
    }

    /// Makes a staged blob visible: rename into place, fsync the directory.
    pub fn commit(&self, mut staged: StagedBlob) -> Result<(), BlobError> {
        let dest = self.path(&staged.id);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let new = !dest.exists();
        fs::rename(&staged.tmp, &dest).map_err(io_err(&dest))?;
        staged.done = true;
        if new {
            self.count(i128::from(staged.size), 1);
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))
    }

    /// Writes blob `id` to `out`, checking its hash as it goes. If the bytes
    /// on disk are damaged, the error comes after they were written: callers
    /// writing to a file should remove it on error.
    pub fn get(&self, id: &BlobId, out: &mut dyn Write) -> Result<u64, BlobError> {
        let path = self.path(id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::Missing(*id)),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let (actual, size) = copy_hashing(&mut file, out, u64::MAX, Path::new("output"))?;
        if actual != *id {
            return Err(BlobError::Damaged { id: *id, actual });
        }
        Ok(size)
    }
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_get_has_and_damage() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let data = vec![7u8; 200_000];
        let (id, size) = store.add(&mut &data[..], None, u64::MAX).expect("add");
        assert_eq!((id, size), (BlobId::of(&data), 200_000));
        assert!(store.has(&id));
        assert_eq!(store.size(&id), Some(200_000));
        let mut out = Vec::new();
        store.get(&id, &mut out).expect("get");
        assert_eq!(out, data);
        // Adding again is harmless.
        store
            .add(&mut &data[..], Some(&id), u64::MAX)
            .expect("again");
        // Wrong expected hash and size cap are refused, leaving no temp file.
        assert!(matches!(
            store.add(&mut &b"x"[..], Some(&id), 10),
            Err(BlobError::WrongHash { .. })
        ));
        assert!(matches!(
            store.add(&mut &data[..], None, 10),
            Err(BlobError::TooLarge(10))
        ));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
        // Damage on disk is reported on read.
        fs::write(store.path(&id), b"not it").expect("damage");
        assert!(matches!(
            store.get(&id, &mut Vec::new()),
            Err(BlobError::Damaged { .. })
        ));
        let missing = BlobId::of(b"nope");
        assert!(!store.has(&missing));
        assert!(matches!(
            store.get(&missing, &mut Vec::new()),
            Err(BlobError::Missing(_))
        ));
    }

    #[test]
    fn usage_counts_what_comes_and_goes_and_own_blobs_are_marked() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let (a, _) = store.add(&mut &[1u8; 100][..], None, u64::MAX).expect("a");
        drop(store);
        // Counted by a walk on first use, then kept in step.
        let store = BlobStore::open(dir.path()).expect("reopen");
        assert_eq!(
            store.usage().expect("usage"),
            Usage {
                bytes: 100,
                count: 1
            }
        );
        let (b, _) = store.add(&mut &[2u8; 50][..], None, u64::MAX).expect("b");
        store
            .add(&mut &[2u8; 50][..], None, u64::MAX)
            .expect("b again");
        assert_eq!(
            store.usage().expect("usage"),
            Usage {
                bytes: 150,
                count: 2
            }
        );
        let listed: Vec<(BlobId, u64)> = {
            let mut l: Vec<_> = store
                .list()
                .expect("list")
                .iter()
                .map(|h| (h.id, h.size))
                .collect();
            l.sort();
            l
        };
        let mut want = vec![(a, 100), (b, 50)];
        want.sort();
        assert_eq!(listed, want);
        assert_eq!(store.remove(&a).expect("remove"), Some(100));
        assert_eq!(store.remove(&a).expect("again"), None);
        assert!(!store.has(&a));
        assert_eq!(
            store.usage().expect("usage"),
            Usage {
                bytes: 50,
                count: 1
            }
        );
        assert!(!store.is_own(&b));
        store.mark_own(&b).expect("mark");
        assert!(store.is_own(&b));
        assert_eq!(
            store.list().expect("list").len(),
            1,
            "markers are not blobs"
        );
    }

    #[test]
    fn leftover_temp_files_are_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        drop(BlobStore::open(dir.path()).expect("open"));
        fs::write(dir.path().join("tmp/4294967294-0.tmp"), b"half a blob").expect("write");
        BlobStore::open(dir.path()).expect("reopen");
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
    }
}
