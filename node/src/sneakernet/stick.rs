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
//! written the same way, and only where there is none: one of a newer
//! version is refused and left as it is. One process at a time works on a
//! stick (an advisory lock on the descriptor).
//!
//! The stick's layout is untrusted. The path given is the stick; below it
//! nothing is followed: every folder and file is opened relative to its
//! parent's descriptor with `O_NOFOLLOW`, and must be on the stick root's
//! file system and mount (`st_dev` and the mount id), so a symbolic link or
//! a mount inside the stick (also one swapped in meanwhile) is refused,
//! never written through. Files are opened only once `fstatat` says they
//! are regular (and checked again on the open descriptor), non-blocking, so
//! a fifo or device is never opened; temp leftovers are unlinked by name,
//! which never touches what a link points to.

use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bundle_format::BundleName;
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};

/// The folder at the stick's root.
pub const FOLDER: &str = "SSB-SNEAKERNET";
/// The descriptor's `format` value.
pub const FORMAT: &str = "ssb-sneakernet-stick";
/// The descriptor version this code writes and reads.
pub const VERSION: u32 = 1;
/// The descriptor's file name.
const DESCRIPTOR: &str = "stick.json";
/// The largest descriptor read.
const MAX_DESCRIPTOR: u64 = 4096;
/// Most odd entries in `bundles/` (named like bundles, but not regular
/// files) reported by one listing.
const MAX_ODD: usize = 64;

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
    /// The descriptor is of a later layout version than this code knows.
    #[error(
        "{path}: stick layout version {version} is newer than this node's ({VERSION}): \
         the stick is left untouched; use it with a newer ssb-node"
    )]
    Newer {
        /// The descriptor's path.
        path: String,
        /// Its version.
        version: u64,
    },
    /// The stick's layout leads out of the stick (a link, a mount inside
    /// it) or holds something that is not a plain folder or file.
    #[error("stick at {mount} refused: {reason}")]
    Refused {
        /// Where the stick is mounted.
        mount: String,
        /// What is wrong, naming the entry.
        reason: String,
    },
    /// The stick's folder is no longer where it was opened (the stick was
    /// pulled, or the folder moved away, during the visit).
    #[error("stick at {0} is gone: it was pulled or moved during the visit")]
    Gone(String),
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

fn is_read_only(e: Errno) -> bool {
    matches!(e, Errno::EROFS | Errno::EACCES | Errno::EPERM)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StickError + '_ {
    move |source| StickError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn errno_at(path: &Path) -> impl FnOnce(Errno) -> StickError + '_ {
    move |e| io_err(path)(io::Error::from(e))
}

/// The descriptor file's content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Descriptor {
    format: String,
    version: u32,
    id: String,
}

/// The descriptor's `format` and `version` alone, read before the strict
/// parse so that a newer layout gets its own clear refusal.
#[derive(serde::Deserialize)]
struct Probe {
    format: String,
    version: u64,
}

/// A bundle file found on a stick.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// Its path (for messages; it is opened by name in `bundles/`).
    pub path: PathBuf,
    /// The name it claims.
    pub name: BundleName,
    /// Its size in bytes.
    pub size: u64,
}

/// The bundles in `bundles/`, as far as one visit looks.
#[derive(Debug, Default)]
pub struct Listing {
    /// Bundle files, by name: the first `max` names.
    pub files: Vec<BundleFile>,
    /// Bundle names past the first `max`, not looked at.
    pub over: u64,
    /// Entries named like bundles that are not regular files (links,
    /// folders, fifos, devices): never opened. At most `MAX_ODD`.
    pub odd: Vec<(String, &'static str)>,
}

/// Where the stick is: its root's device and mount. Everything read or
/// written must be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    dev: u64,
    /// The mount id (from `/proc/self/fdinfo`), where the kernel shows it:
    /// a bind mount of a folder of the same file system has the same
    /// `st_dev` but another mount.
    mnt: Option<u64>,
}

/// The mount id of an open descriptor, as `/proc/self/fdinfo` shows it.
fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    let mut text = String::new();
    File::open(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .ok()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn kind_name(k: SFlag) -> &'static str {
    match k {
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFREG => "a file",
        SFlag::S_IFIFO => "a fifo",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a file or folder",
    }
}

/// What opening an entry of the stick found, when it is not what it must be.
enum Bad {
    /// It is not there.
    Missing,
    /// It is something else, or elsewhere: the reason.
    Refused(String),
    /// The OS failed.
    Os(Errno),
}

impl Place {
    /// Checks an open descriptor is on the stick.
    fn holds(&self, fd: BorrowedFd<'_>, st: &FileStat, what: &str) -> Result<(), Bad> {
        if st.st_dev != self.dev || (self.mnt.is_some() && mount_id(fd) != self.mnt) {
            return Err(Bad::Refused(format!(
                "{what} is on another file system or mount than the stick (a mount inside the stick)"
            )));
        }
        Ok(())
    }

    /// Opens the folder `name` in `parent`: never through a link, and only
    /// a folder of the stick's own mount.
    fn dir(&self, parent: BorrowedFd<'_>, name: &str, what: &str) -> Result<OwnedFd, Bad> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(Bad::Missing),
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                return Err(match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => Bad::Refused(format!(
                        "{what} is {}, not a folder (never followed)",
                        kind_name(kind(&st))
                    )),
                    Err(_) => Bad::Os(e),
                })
            }
            Err(e) => return Err(Bad::Os(e)),
        };
        let st = fstat(&fd).map_err(Bad::Os)?;
        self.holds(fd.as_fd(), &st, what)?;
        Ok(fd)
    }

    /// Opens the regular file `name` in `parent` for reading: checked
    /// before the open (so a fifo or device is never opened) and after it
    /// (the same file, on the stick's mount).
    fn file(&self, parent: BorrowedFd<'_>, name: &str, what: &str) -> Result<File, Bad> {
        let before = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Err(Bad::Missing),
            Err(e) => return Err(Bad::Os(e)),
        };
        if kind(&before) != SFlag::S_IFREG {
            return Err(Bad::Refused(format!(
                "{what} is {}, not a file",
                kind_name(kind(&before))
            )));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(Bad::Missing),
            Err(Errno::ELOOP) => {
                return Err(Bad::Refused(format!(
                    "{what} is a symbolic link (never followed)"
                )))
            }
            Err(e) => return Err(Bad::Os(e)),
        };
        let st = fstat(&fd).map_err(Bad::Os)?;
        if kind(&st) != SFlag::S_IFREG || (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) {
            return Err(Bad::Refused(format!("{what} changed while it was opened")));
        }
        self.holds(fd.as_fd(), &st, what)?;
        Ok(File::from(fd))
    }
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
    place: Place,
    /// `SSB-SNEAKERNET/`.
    dir: OwnedFd,
    /// `tmp/` and `bundles/`, where they are (a read-only stick may lack them).
    tmp: Option<OwnedFd>,
    bundles: Option<OwnedFd>,
    _lock: Option<Flock<File>>,
}

fn temp_name() -> String {
    format!(
        "{}-{}.part",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Creates `name` in `dir` for writing: a new file, never through a link.
fn create_in(dir: BorrowedFd<'_>, name: &str) -> Result<File, Errno> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir, name, flags, Mode::from_bits_truncate(0o644)).map(File::from)
}

/// Renames `from` in `src` to `to` in `dest`, failing if `to` exists.
fn rename_new(
    src: BorrowedFd<'_>,
    from: &str,
    dest: BorrowedFd<'_>,
    to: &str,
) -> Result<(), Errno> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    match nix::fcntl::renameat2(
        src,
        from,
        dest,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    ) {
        // The file system cannot say: check, then rename.
        Err(Errno::EINVAL) => {}
        other => return other,
    }
    match fstatat(dest, to, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Err(Errno::EEXIST),
        Err(Errno::ENOENT) => nix::fcntl::renameat(src, from, dest, to),
        Err(e) => Err(e),
    }
}

impl Stick {
    /// Opens the stick mounted at `mount`: creates `SSB-SNEAKERNET/` and its
    /// descriptor if the stick is writable and has none, takes the lock,
    /// and removes temp files a pulled stick left behind. A stick whose
    /// layout is not plain folders and files of its own mount is refused
    /// ([`StickError::Refused`]), one with a newer descriptor too
    /// ([`StickError::Newer`]); neither is changed.
    pub fn open(mount: &Path) -> Result<Stick, StickError> {
        let shown = mount.display().to_string();
        let refused = |reason: String| StickError::Refused {
            mount: shown.clone(),
            reason,
        };
        let root = nix::fcntl::open(
            mount,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_at(mount))?;
        let st = fstat(&root).map_err(errno_at(mount))?;
        let place = Place {
            dev: st.st_dev,
            mnt: mount_id(root.as_fd()),
        };
        let folder = mount.join(FOLDER);
        let dir = match place.dir(root.as_fd(), FOLDER, FOLDER) {
            Ok(d) => d,
            Err(Bad::Missing) => {
                match mkdirat(root.as_fd(), FOLDER, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) if is_read_only(e) => return Err(StickError::ReadOnly(shown)),
                    Err(e) => return Err(errno_at(&folder)(e)),
                }
                fsync(&root).map_err(errno_at(mount))?;
                place
                    .dir(root.as_fd(), FOLDER, FOLDER)
                    .map_err(|b| bad_error(b, &folder, &refused))?
            }
            Err(b) => return Err(bad_error(b, &folder, &refused)),
        };
        let desc_path = folder.join(DESCRIPTOR);
        let desc_what = format!("{FOLDER}/{DESCRIPTOR}");
        // The descriptor is read before anything is created or removed, so
        // that a stick of a newer layout is left exactly as it is.
        let existing = match place.file(dir.as_fd(), DESCRIPTOR, &desc_what) {
            Ok(f) => Some(f),
            Err(Bad::Missing) => None,
            Err(b) => return Err(bad_error(b, &desc_path, &refused)),
        };
        let mut known = match existing {
            Some(f) => Some((read_descriptor(&f, &desc_path)?, f)),
            None => None,
        };
        let mut writable = true;
        let mut sub = |name: &str| -> Result<Option<OwnedFd>, StickError> {
            let what = format!("{FOLDER}/{name}");
            let path = folder.join(name);
            match place.dir(dir.as_fd(), name, &what) {
                Ok(d) => return Ok(Some(d)),
                Err(Bad::Missing) => {}
                Err(b) => return Err(bad_error(b, &path, &refused)),
            }
            match mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) if is_read_only(e) => {
                    writable = false;
                    return Ok(None);
                }
                Err(e) => return Err(errno_at(&path)(e)),
            }
            place
                .dir(dir.as_fd(), name, &what)
                .map(Some)
                .map_err(|b| bad_error(b, &path, &refused))
        };
        let tmp = sub("tmp")?;
        let bundles = sub("bundles")?;
        let tmp_path = folder.join("tmp");
        if let (true, Some(t)) = (writable, &tmp) {
            // A probe: a stick can be mounted read-only with folders present.
            let probe = temp_name();
            match create_in(t.as_fd(), &probe) {
                Ok(_) => {
                    let _ = unlinkat(t, probe.as_str(), UnlinkatFlags::NoRemoveDir);
                }
                Err(e) if is_read_only(e) => writable = false,
                Err(e) => return Err(errno_at(&tmp_path)(e)),
            }
        }
        let writable = writable && tmp.is_some() && bundles.is_some();
        if known.is_none() {
            let Some(t) = tmp.as_ref().filter(|_| writable) else {
                return Err(StickError::ReadOnly(shown));
            };
            let d = Descriptor {
                format: FORMAT.into(),
                version: VERSION,
                id: random_id(),
            };
            let bytes = serde_json::to_vec(&d).map_err(|e| StickError::Descriptor {
                path: desc_path.display().to_string(),
                reason: e.to_string(),
            })?;
            let part = temp_name();
            let written = (|| {
                let mut f = create_in(t.as_fd(), &part).map_err(errno_at(&tmp_path))?;
                f.write_all(&bytes).map_err(io_err(&tmp_path))?;
                f.sync_all().map_err(io_err(&tmp_path))?;
                match rename_new(t.as_fd(), &part, dir.as_fd(), DESCRIPTOR) {
                    // Another process made one meanwhile: use that one.
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno_at(&desc_path)(e)),
                }
                fsync(&dir).map_err(errno_at(&folder))
            })();
            let _ = unlinkat(t, part.as_str(), UnlinkatFlags::NoRemoveDir);
            written?;
            let f = place
                .file(dir.as_fd(), DESCRIPTOR, &desc_what)
                .map_err(|b| bad_error(b, &desc_path, &refused))?;
            known = Some((read_descriptor(&f, &desc_path)?, f));
        }
        let Some((id, file)) = known else {
            return Err(StickError::ReadOnly(shown));
        };
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Some(l),
            Err((_, Errno::EWOULDBLOCK)) => return Err(StickError::Busy(shown)),
            // Some file systems refuse locks; go on without one.
            Err(_) => None,
        };
        let stick = Stick {
            mount: mount.to_path_buf(),
            id,
            writable,
            place,
            dir,
            tmp,
            bundles,
            _lock: lock,
        };
        if writable {
            stick.clean_tmp()?;
        }
        Ok(stick)
    }

    fn folder(&self) -> PathBuf {
        self.mount.join(FOLDER)
    }

    fn tmp_path(&self) -> PathBuf {
        self.folder().join("tmp")
    }

    fn bundles_path(&self) -> PathBuf {
        self.folder().join("bundles")
    }

    fn refused(&self, reason: String) -> StickError {
        StickError::Refused {
            mount: self.mount.display().to_string(),
            reason,
        }
    }

    /// Removes every file in `tmp/` (we hold the lock: nobody is writing).
    /// Entries are unlinked by name (a link goes, not what it points to);
    /// folders are left alone (we never make any).
    fn clean_tmp(&self) -> Result<usize, StickError> {
        let Some(tmp) = &self.tmp else { return Ok(0) };
        let path = self.tmp_path();
        let mut removed = 0;
        for (name, k) in entries(tmp.as_fd(), &path)? {
            let Some(text) = name.to_str() else { continue };
            if k == Some(SFlag::S_IFDIR) {
                tracing::warn!("{}/{text}: a folder in tmp/, left alone", path.display());
                continue;
            }
            match unlinkat(tmp, text, UnlinkatFlags::NoRemoveDir) {
                Ok(()) => removed += 1,
                Err(Errno::EISDIR) => {
                    tracing::warn!("{}/{text}: a folder in tmp/, left alone", path.display())
                }
                Err(e) => {
                    tracing::warn!("could not remove leftover {}/{text}: {e}", path.display())
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                "removed {removed} leftover temp file(s) from {}",
                path.display()
            );
            fsync(tmp).map_err(errno_at(&path))?;
        }
        Ok(removed)
    }

    /// The bundle files on the stick, by name: the first `max` names (the
    /// rest are counted). Anything else in `bundles/` (other names, links,
    /// folders, devices) is not read.
    pub fn bundles(&self, max: usize) -> Result<Listing, StickError> {
        let mut out = Listing::default();
        let Some(dir) = &self.bundles else {
            return Ok(out);
        };
        let path = self.bundles_path();
        // The `max` smallest names, whatever the folder holds.
        let mut heap: BinaryHeap<BundleName> = BinaryHeap::new();
        for (name, _) in entries(dir.as_fd(), &path)? {
            let Some(name) = name.to_str().and_then(BundleName::parse) else {
                continue;
            };
            heap.push(name);
            if heap.len() > max {
                heap.pop();
                out.over += 1;
            }
        }
        for name in heap.into_sorted_vec() {
            let file = name.file_name();
            let st = match fstatat(dir, file.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Gone meanwhile.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(errno_at(&path.join(&file))(e)),
            };
            if kind(&st) != SFlag::S_IFREG {
                tracing::warn!(
                    "{}/{file}: {}, not read",
                    path.display(),
                    kind_name(kind(&st))
                );
                if out.odd.len() < MAX_ODD {
                    out.odd.push((file, kind_name(kind(&st))));
                }
                continue;
            }
            out.files.push(BundleFile {
                path: path.join(&file),
                name,
                size: u64::try_from(st.st_size).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Opens a bundle file for reading (a regular file of the stick's
    /// mount, never through a link).
    pub fn open_bundle(&self, b: &BundleFile) -> Result<File, StickError> {
        let Some(dir) = &self.bundles else {
            return Err(io_err(&b.path)(io::Error::from(Errno::ENOENT)));
        };
        let what = format!("{FOLDER}/bundles/{}", b.name.file_name());
        self.place
            .file(dir.as_fd(), &b.name.file_name(), &what)
            .map_err(|bad| match bad {
                Bad::Missing => io_err(&b.path)(io::Error::from(Errno::ENOENT)),
                Bad::Refused(reason) => self.refused(reason),
                Bad::Os(e) => errno_at(&b.path)(e),
            })
    }

    /// Bytes free for us, and the file system's size.
    pub fn space(&self) -> Result<(u64, u64), StickError> {
        let s = nix::sys::statvfs::fstatvfs(&self.dir).map_err(errno_at(&self.folder()))?;
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
        let (Some(tmp), Some(bundles), true) = (&self.tmp, &self.bundles, self.writable) else {
            return Err(StickError::ReadOnly(self.mount.display().to_string()).into());
        };
        let tmp_path = self.tmp_path();
        let part = temp_name();
        let result = (|| {
            let file = create_in(tmp.as_fd(), &part).map_err(errno_at(&tmp_path))?;
            let mut out = BufWriter::with_capacity(64 * 1024, &file);
            let name = write(&mut out)?;
            out.flush().map_err(io_err(&tmp_path))?;
            drop(out);
            file.sync_all().map_err(io_err(&tmp_path))?;
            let dest = name.file_name();
            let dest_path = self.bundles_path().join(&dest);
            nix::fcntl::renameat(tmp, part.as_str(), bundles, dest.as_str())
                .map_err(errno_at(&dest_path))?;
            fsync(bundles).map_err(errno_at(&self.bundles_path()))?;
            self.check_in_place()?;
            Ok(dest_path)
        })();
        if result.is_err() {
            let _ = unlinkat(tmp, part.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Checks the folder this stick works in is still `SSB-SNEAKERNET` at
    /// its mount: its descriptors would go on working after the stick's
    /// folder was moved away, and a visit must not report a stick done
    /// that is gone.
    fn check_in_place(&self) -> Result<(), StickError> {
        let gone = || StickError::Gone(self.mount.display().to_string());
        let here = fstat(&self.dir).map_err(errno_at(&self.folder()))?;
        match nix::sys::stat::lstat(&self.folder()) {
            Ok(st) if (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino) => Ok(()),
            _ => Err(gone()),
        }
    }

    /// Removes a bundle (one that newer bundles cover, or a damaged one):
    /// its name in `bundles/`, never what a link there points to.
    pub fn remove_bundle(&self, b: &BundleFile) -> Result<(), StickError> {
        let Some(dir) = &self.bundles else {
            return Err(StickError::ReadOnly(self.mount.display().to_string()));
        };
        unlinkat(dir, b.name.file_name().as_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(errno_at(&b.path))?;
        fsync(dir).map_err(errno_at(&self.bundles_path()))
    }
}

/// Maps what opening an entry found to the visit's error.
fn bad_error(bad: Bad, path: &Path, refused: &impl Fn(String) -> StickError) -> StickError {
    match bad {
        Bad::Missing => io_err(path)(io::Error::from(Errno::ENOENT)),
        Bad::Refused(reason) => refused(reason),
        Bad::Os(e) => errno_at(path)(e),
    }
}

/// A name in a folder, with its type where the file system says.
type Entry = (Box<OsStr>, Option<SFlag>);

/// The names in the folder `dir` (read through a descriptor of its own,
/// opened relative to `dir`), with their type where the file system says.
fn entries(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<Entry>, StickError> {
    let mut d = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_at(path))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno_at(path))?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let k = e.file_type().map(|t| match t {
            nix::dir::Type::Directory => SFlag::S_IFDIR,
            nix::dir::Type::Symlink => SFlag::S_IFLNK,
            nix::dir::Type::File => SFlag::S_IFREG,
            nix::dir::Type::Fifo => SFlag::S_IFIFO,
            nix::dir::Type::CharacterDevice => SFlag::S_IFCHR,
            nix::dir::Type::BlockDevice => SFlag::S_IFBLK,
            nix::dir::Type::Socket => SFlag::S_IFSOCK,
        });
        out.push((name.into(), k));
    }
    Ok(out)
}

/// Reads and checks a descriptor; returns the stick id.
fn read_descriptor(file: &File, path: &Path) -> Result<String, StickError> {
    let bad = |reason: String| StickError::Descriptor {
        path: path.display().to_string(),
        reason,
    };
    let mut bytes = Vec::new();
    file.take(MAX_DESCRIPTOR + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_DESCRIPTOR {
        return Err(bad(format!("larger than {MAX_DESCRIPTOR} bytes")));
    }
    let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if probe.format != FORMAT {
        return Err(bad(format!("format is {:?}, not {FORMAT:?}", probe.format)));
    }
    if probe.version > u64::from(VERSION) {
        return Err(StickError::Newer {
            path: path.display().to_string(),
            version: probe.version,
        });
    }
    if probe.version != u64::from(VERSION) {
        return Err(bad(format!("unsupported version {}", probe.version)));
    }
    let d: Descriptor = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
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
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Every file below `dir` with its bytes (a snapshot to compare).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    fn write_one(s: &Stick, name: BundleName, bytes: &'static [u8]) -> PathBuf {
        s.write_bundle::<StickError>(|out| {
            out.write_all(bytes).map_err(io_err(Path::new("x")))?;
            Ok(name)
        })
        .unwrap()
    }

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
        let tmp = dir.path().join(FOLDER).join("tmp");
        fs::write(tmp.join("123-0.part"), b"half").unwrap();
        let s = Stick::open(dir.path()).unwrap();
        assert_eq!(s.id, id, "same stick, same id");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(s.bundles(10).unwrap().files.is_empty());
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
                r#"{"format":"ssb-sneakernet-stick","version":0,"id":"00000000000000000000000000000000"}"#,
                "unsupported version 0",
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
    fn a_newer_descriptor_is_refused_and_the_stick_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(FOLDER);
        fs::create_dir(&folder).unwrap();
        let text = r#"{"format":"ssb-sneakernet-stick","version":2,"id":"0123456789abcdef0123456789abcdef","layout":"v2"}"#;
        fs::write(folder.join("stick.json"), text).unwrap();
        let e = Stick::open(dir.path()).unwrap_err();
        assert!(matches!(e, StickError::Newer { version: 2, .. }), "{e}");
        assert!(e.to_string().contains("newer"), "{e}");
        assert_eq!(fs::read_to_string(folder.join("stick.json")).unwrap(), text);
        assert_eq!(fs::read_dir(&folder).unwrap().count(), 1, "nothing made");
    }

    #[test]
    fn writes_bundles_atomically_and_lists_only_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stick::open(dir.path()).unwrap();
        let name = BundleName([7; 32]);
        let path = write_one(&s, name, b"bytes");
        assert_eq!(fs::read(&path).unwrap(), b"bytes");
        // A failed write leaves nothing behind.
        let failed = s.write_bundle::<StickError>(|_| Err(StickError::Full { free: 0 }));
        assert!(failed.is_err());
        let bundles = dir.path().join(FOLDER).join("bundles");
        assert_eq!(
            fs::read_dir(dir.path().join(FOLDER).join("tmp"))
                .unwrap()
                .count(),
            0
        );
        fs::write(bundles.join("notes.txt"), b"x").unwrap();
        symlink("/etc/passwd", bundles.join(BundleName([8; 32]).file_name())).unwrap();
        let list = s.bundles(10).unwrap();
        assert_eq!(list.files.len(), 1);
        assert_eq!(list.files[0].name, name);
        assert_eq!(list.odd.len(), 1, "the link is named, never opened");
        s.remove_bundle(&list.files[0]).unwrap();
        assert!(s.bundles(10).unwrap().files.is_empty());
        assert!(fs::metadata("/etc/passwd").is_ok());
    }

    #[test]
    fn a_listing_keeps_the_first_names_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stick::open(dir.path()).unwrap();
        for n in [5u8, 1, 4, 2, 3] {
            write_one(&s, BundleName([n; 32]), b"x");
        }
        let list = s.bundles(3).unwrap();
        let names: Vec<u8> = list.files.iter().map(|b| b.name.0[0]).collect();
        assert_eq!((names, list.over), (vec![1, 2, 3], 2));
    }

    #[test]
    fn links_out_of_the_stick_are_refused_and_nothing_outside_changes() {
        for entry in ["", "tmp", "bundles", "stick.json"] {
            let dir = tempfile::tempdir().unwrap();
            let stick = dir.path().join("stick");
            fs::create_dir(&stick).unwrap();
            drop(Stick::open(&stick).unwrap());
            let outside = dir.path().join("outside");
            fs::create_dir(&outside).unwrap();
            fs::write(outside.join("precious"), b"keep me").unwrap();
            fs::write(outside.join("123-0.part"), b"keep me too").unwrap();
            let at = match entry {
                "" => stick.join(FOLDER),
                _ => stick.join(FOLDER).join(entry),
            };
            if entry == "stick.json" {
                let target = outside.join("stick.json");
                fs::rename(&at, &target).unwrap();
                symlink(&target, &at).unwrap();
            } else {
                fs::remove_dir_all(&at).unwrap();
                symlink(&outside, &at).unwrap();
            }
            let before = snapshot(&outside);
            let e = Stick::open(&stick).unwrap_err();
            assert!(
                matches!(&e, StickError::Refused { reason, .. } if reason.contains("symbolic link")),
                "{entry}: {e}"
            );
            assert_eq!(snapshot(&outside), before, "{entry}: outside changed");
        }
    }

    #[test]
    fn a_link_swapped_in_after_the_open_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let stick = dir.path().join("stick");
        fs::create_dir(&stick).unwrap();
        let s = Stick::open(&stick).unwrap();
        let kept = write_one(&s, BundleName([1; 32]), b"one");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join(BundleName([1; 32]).file_name()), b"precious").unwrap();
        // The real folder moved away and a link put in its place.
        let bundles = stick.join(FOLDER).join("bundles");
        let moved = stick.join(FOLDER).join("moved");
        fs::rename(&bundles, &moved).unwrap();
        symlink(&outside, &bundles).unwrap();
        let before = snapshot(&outside);
        write_one(&s, BundleName([2; 32]), b"two");
        let list = s.bundles(10).unwrap();
        assert_eq!(list.files.len(), 2, "the folder it opened");
        s.remove_bundle(&list.files[0]).unwrap();
        assert_eq!(
            snapshot(&outside),
            before,
            "nothing written or removed there"
        );
        assert!(!moved.join(kept.file_name().unwrap()).exists());
        assert!(moved.join(BundleName([2; 32]).file_name()).exists());
    }

    #[test]
    fn fifos_and_devices_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stick::open(dir.path()).unwrap();
        drop(s);
        let folder = dir.path().join(FOLDER);
        let fifo = |p: &Path| nix::unistd::mkfifo(p, Mode::from_bits_truncate(0o644)).unwrap();
        fifo(&folder.join("tmp/1-0.part"));
        fifo(&folder.join("bundles").join(BundleName([3; 32]).file_name()));
        // /dev/zero's numbers (root only; skipped where not permitted).
        let dev = folder.join("bundles").join(BundleName([4; 32]).file_name());
        let made_dev = nix::sys::stat::mknod(
            &dev,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(1, 5),
        )
        .is_ok();
        // Opening either fifo for reading would block with no writer.
        let s = Stick::open(dir.path()).unwrap();
        assert!(
            !folder.join("tmp/1-0.part").exists(),
            "a leftover: unlinked"
        );
        let list = s.bundles(10).unwrap();
        assert!(list.files.is_empty());
        assert_eq!(list.odd.len(), 1 + usize::from(made_dev), "{:?}", list.odd);
        let odd = BundleFile {
            path: PathBuf::new(),
            name: BundleName([3; 32]),
            size: 0,
        };
        assert!(matches!(
            s.open_bundle(&odd),
            Err(StickError::Refused { .. })
        ));
        let stick_json = folder.join("stick.json");
        drop(s);
        fs::remove_file(&stick_json).unwrap();
        fifo(&stick_json);
        let e = Stick::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a fifo"), "{e}");
    }
}
