//! The stick: a folder `SSB-SNEAKERNET/` at the root of a USB stick.
//!
//! ```text
//! SSB-SNEAKERNET/
//! ├── stick.json        {"format":"ssb-sneakernet-stick","version":1,"id":"<32 hex>"}
//! ├── bundles/          <sha256 of manifest>.ssb-bundle, never modified once written
//! └── tmp/              bundles being written; leftovers are removed on the next visit
//! ```
//!
//! Every write goes to `tmp/`, is fsynced, renamed into `bundles/`, and the
//! folder is fsynced (as NNCP's `nncp-xfer` does), so a stick pulled at any
//! moment holds whole bundles and perhaps a temp file. The descriptor is
//! written the same way. One process at a time works on a stick (an
//! advisory lock on the descriptor).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bundle_format::BundleName;
use nix::fcntl::{Flock, FlockArg};

/// The folder at the stick's root.
pub const FOLDER: &str = "SSB-SNEAKERNET";
/// The descriptor's `format` value.
pub const FORMAT: &str = "ssb-sneakernet-stick";
/// The descriptor version this code writes and reads.
pub const VERSION: u32 = 1;
/// The largest descriptor read.
const MAX_DESCRIPTOR: u64 = 4096;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Why a stick could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StickError {
    /// A file operation failed (the stick may have been pulled).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The stick is read-only (and has nothing for us, or we must write).
    #[error("stick at {0} is read-only")]
    ReadOnly(String),
    /// The stick has no room for even one more bundle.
    #[error("stick is full: {free} bytes free, and nothing there may be dropped")]
    Full {
        /// Bytes free.
        free: u64,
    },
    /// The descriptor is not ours or is damaged.
    #[error("{path}: not a valid stick descriptor: {reason}")]
    Descriptor {
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process is syncing this stick.
    #[error("stick at {0} is in use by another process")]
    Busy(String),
}

impl StickError {
    /// Whether this is the stick running out of space.
    pub fn is_full(&self) -> bool {
        match self {
            StickError::Full { .. } => true,
            StickError::Io { source, .. } => is_no_space(source),
            _ => false,
        }
    }
}

/// Whether an I/O error means "no space left".
pub fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

fn is_read_only(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
    )
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StickError + '_ {
    move |source| StickError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The descriptor file's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Descriptor {
    format: String,
    version: u32,
    id: String,
}

/// A bundle file found on a stick.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Its path.
    pub path: PathBuf,
    /// The name it claims.
    pub name: BundleName,
    /// Its size in bytes.
    pub size: u64,
}

/// An opened stick.
#[derive(Debug)]
pub struct Stick {
    /// Where the stick is mounted.
    pub mount: PathBuf,
    /// Its id (32 hex digits), from the descriptor.
    pub id: String,
    /// Whether we can write to it.
    pub writable: bool,
    dir: PathBuf,
    _lock: Option<Flock<File>>,
}

/// Fsyncs a directory (after a rename or remove in it).
fn sync_dir(dir: &Path) -> Result<(), StickError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `dest` via a temp file in `tmp`: write, fsync, rename,
/// fsync the destination folder.
fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StickError> {
    let part = temp_path(tmp);
    let result = (|| {
        let mut f = File::create(&part).map_err(io_err(&part))?;
        f.write_all(bytes).map_err(io_err(&part))?;
        f.sync_all().map_err(io_err(&part))?;
        fs::rename(&part, dest).map_err(io_err(dest))?;
        sync_dir(dest.parent().unwrap_or(tmp))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

fn temp_path(tmp: &Path) -> PathBuf {
    tmp.join(format!(
        "{}-{}.part",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Stick {
    /// Opens the stick mounted at `mount`: creates `SSB-SNEAKERNET/` and its
    /// descriptor if the stick is writable and has none, takes the lock,
    /// and removes temp files a pulled stick left behind.
    pub fn open(mount: &Path) -> Result<Stick, StickError> {
        fs::metadata(mount).map_err(io_err(mount))?;
        let dir = mount.join(FOLDER);
        let path = dir.join("stick.json");
        if !dir.is_dir() {
            if let Err(e) = fs::create_dir(&dir) {
                if is_read_only(&e) {
                    return Err(StickError::ReadOnly(mount.display().to_string()));
                }
                return Err(io_err(&dir)(e));
            }
            sync_dir(mount)?;
        }
        let tmp = dir.join("tmp");
        let bundles = dir.join("bundles");
        let mut writable = true;
        for d in [&tmp, &bundles] {
            if !d.is_dir() {
                if let Err(e) = fs::create_dir(d) {
                    if is_read_only(&e) {
                        writable = false;
                        continue;
                    }
                    return Err(io_err(d)(e));
                }
            }
        }
        if writable {
            // A probe: a stick can be mounted read-only with folders present.
            let probe = temp_path(&tmp);
            match File::create(&probe) {
                Ok(_) => {
                    let _ = fs::remove_file(&probe);
                }
                Err(e) if is_read_only(&e) => writable = false,
                Err(e) => return Err(io_err(&tmp)(e)),
            }
        }
        if !path.exists() {
            if !writable {
                return Err(StickError::ReadOnly(mount.display().to_string()));
            }
            let d = Descriptor {
                format: FORMAT.into(),
                version: VERSION,
                id: random_id(),
            };
            let bytes = serde_json::to_vec(&d).map_err(|e| StickError::Descriptor {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            write_atomic(&tmp, &path, &bytes)?;
        }
        let id = read_descriptor(&path)?;
        let file = File::open(&path).map_err(io_err(&path))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Some(l),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(StickError::Busy(mount.display().to_string()))
            }
            // Some file systems refuse locks; go on without one.
            Err(_) => None,
        };
        let stick = Stick {
            mount: mount.to_path_buf(),
            id,
            writable,
            dir,
            _lock: lock,
        };
        if writable {
            stick.clean_tmp()?;
        }
        Ok(stick)
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn bundles_dir(&self) -> PathBuf {
        self.dir.join("bundles")
    }

    /// Removes everything in `tmp/` (we hold the lock: nobody is writing).
    fn clean_tmp(&self) -> Result<usize, StickError> {
        let tmp = self.tmp();
        let mut removed = 0;
        for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let entry = entry.map_err(io_err(&tmp))?;
            let p = entry.path();
            let r = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            match r {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("could not remove leftover {}: {e}", p.display()),
            }
        }
        if removed > 0 {
            tracing::info!(
                "removed {removed} leftover temp file(s) from {}",
                tmp.display()
            );
            sync_dir(&tmp)?;
        }
        Ok(removed)
    }

    /// The bundle files on the stick, by name. Anything else in `bundles/`
    /// (other names, links, folders, devices) is left alone and not read.
    pub fn bundles(&self) -> Result<Vec<BundleFile>, StickError> {
        let dir = self.bundles_dir();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let Some(name) = entry.file_name().to_str().and_then(BundleName::parse) else {
                continue;
            };
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if !meta.file_type().is_file() {
                tracing::warn!("{}: not a regular file, ignored", path.display());
                continue;
            }
            out.push(BundleFile {
                path,
                name,
                size: meta.len(),
            });
        }
        out.sort_by_key(|b| b.name.0);
        Ok(out)
    }

    /// Opens a bundle file for reading (refusing links).
    pub fn open_bundle(&self, b: &BundleFile) -> Result<File, StickError> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&b.path)
            .map_err(io_err(&b.path))
    }

    /// Bytes free for us, and the file system's size.
    pub fn space(&self) -> Result<(u64, u64), StickError> {
        let s = nix::sys::statvfs::statvfs(&self.dir).map_err(|e| StickError::Io {
            path: self.dir.display().to_string(),
            source: io::Error::from(e),
        })?;
        let frag = s.fragment_size() as u64;
        Ok((
            (s.blocks_available() as u64).saturating_mul(frag),
            (s.blocks() as u64).saturating_mul(frag),
        ))
    }

    /// Writes a new bundle: `write` gets a buffered temp file and returns
    /// the bundle's name; the file is then fsynced and renamed into
    /// `bundles/` under that name. Returns the bundle's path.
    pub fn write_bundle<E: From<StickError>>(
        &self,
        write: impl FnOnce(&mut BufWriter<&File>) -> Result<BundleName, E>,
    ) -> Result<PathBuf, E> {
        if !self.writable {
            return Err(StickError::ReadOnly(self.mount.display().to_string()).into());
        }
        let part = temp_path(&self.tmp());
        let result = (|| {
            let file = File::create(&part).map_err(io_err(&part))?;
            let mut out = BufWriter::with_capacity(64 * 1024, &file);
            let name = write(&mut out)?;
            out.flush().map_err(io_err(&part))?;
            drop(out);
            file.sync_all().map_err(io_err(&part))?;
            let dest = self.bundles_dir().join(name.file_name());
            fs::rename(&part, &dest).map_err(io_err(&dest))?;
            sync_dir(&self.bundles_dir())?;
            Ok(dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&part);
        }
        result
    }

    /// Removes a bundle (one that newer bundles cover).
    pub fn remove_bundle(&self, b: &BundleFile) -> Result<(), StickError> {
        fs::remove_file(&b.path).map_err(io_err(&b.path))?;
        sync_dir(&self.bundles_dir())
    }
}

use std::os::unix::fs::OpenOptionsExt as _;

/// Reads and checks a descriptor; returns the stick id.
fn read_descriptor(path: &Path) -> Result<String, StickError> {
    let bad = |reason: String| StickError::Descriptor {
        path: path.display().to_string(),
        reason,
    };
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if !meta.file_type().is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io_err(path))?
        .take(MAX_DESCRIPTOR + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_DESCRIPTOR {
        return Err(bad(format!("larger than {MAX_DESCRIPTOR} bytes")));
    }
    let d: Descriptor = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if d.format != FORMAT {
        return Err(bad(format!("format is {:?}, not {FORMAT:?}", d.format)));
    }
    if d.version != VERSION {
        return Err(bad(format!("unsupported version {}", d.version)));
    }
    if d.id.len() != 32
        || !d
            .id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Err(bad("id must be 32 lower-case hex digits".into()));
    }
    Ok(d.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_a_blank_stick_and_cleans_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stick::open(dir.path()).unwrap();
        assert!(s.writable);
        assert_eq!(s.id.len(), 32);
        let id = s.id.clone();
        // A second process cannot take it while it is open.
        assert!(matches!(Stick::open(dir.path()), Err(StickError::Busy(_))));
        drop(s);
        fs::write(dir.path().join(FOLDER).join("tmp/123-0.part"), b"half").unwrap();
        let s = Stick::open(dir.path()).unwrap();
        assert_eq!(s.id, id, "same stick, same id");
        assert_eq!(fs::read_dir(s.tmp()).unwrap().count(), 0);
        assert!(s.bundles().unwrap().is_empty());
        let (free, total) = s.space().unwrap();
        assert!(free > 0 && total >= free);
    }

    #[test]
    fn refuses_bad_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(FOLDER);
        fs::create_dir(&folder).unwrap();
        for (text, why) in [
            (
                r#"{"format":"x","version":1,"id":"00000000000000000000000000000000"}"#,
                "format",
            ),
            (
                r#"{"format":"ssb-sneakernet-stick","version":2,"id":"00000000000000000000000000000000"}"#,
                "version",
            ),
            (
                r#"{"format":"ssb-sneakernet-stick","version":1,"id":"../x"}"#,
                "hex",
            ),
            ("not json", "expected"),
        ] {
            fs::write(folder.join("stick.json"), text).unwrap();
            let e = Stick::open(dir.path()).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn writes_bundles_atomically_and_lists_only_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stick::open(dir.path()).unwrap();
        let name = BundleName([7; 32]);
        let path = s
            .write_bundle::<StickError>(|out| {
                out.write_all(b"bytes").map_err(io_err(Path::new("x")))?;
                Ok(name)
            })
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"bytes");
        // A failed write leaves nothing behind.
        let failed = s.write_bundle::<StickError>(|_| Err(StickError::Full { free: 0 }));
        assert!(failed.is_err());
        assert_eq!(fs::read_dir(s.tmp()).unwrap().count(), 0);
        fs::write(s.bundles_dir().join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(
            "/etc/passwd",
            s.bundles_dir().join(BundleName([8; 32]).file_name()),
        )
        .unwrap();
        let list = s.bundles().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, name);
        s.remove_bundle(&list[0]).unwrap();
        assert!(s.bundles().unwrap().is_empty());
    }
}
