//! The data disk's room: whether the node may take new messages and blobs.
//!
//! Every write that grows the data dir by more than a few bytes (appending
//! received or published messages, staging a bundle, fetching or adding a
//! blob) asks [`DiskSpace::check`] first, which reads the file system's free
//! space (`statvfs`, one system call) and refuses with [`DiskFull`] when the
//! write would leave less than the reserve: [`RESERVE_PERCENT`] % of the file
//! system, at least [`MIN_RESERVE`] and at most [`MAX_RESERVE`]. The reserve keeps the store's own
//! journal, flushes, compactions and small bookkeeping writes (peer clocks,
//! wants) from ever meeting a full disk, which would make it refuse every
//! later write until a restart. Reads never ask.
//!
//! The state (full or not) is kept, with a [`watch`] for the status and LED;
//! it clears at the first check that finds room again. Nothing polls: while
//! full, the appliance re-checks at a low rate ([`RECHECK_WHILE_FULL`]) so that
//! the status clears without a write attempt.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// The least room kept free on the data disk.
pub const MIN_RESERVE: u64 = 16 * 1024 * 1024;
/// The most room kept free: enough for the store's journal and compactions,
/// and no more on a large disk that other programs share.
pub const MAX_RESERVE: u64 = 256 * 1024 * 1024;
/// The share of the data disk kept free, in percent (between [`MIN_RESERVE`]
/// and [`MAX_RESERVE`]).
pub const RESERVE_PERCENT: u64 = 1;
/// How often the state is re-checked while the disk is full.
pub const RECHECK_WHILE_FULL: Duration = Duration::from_secs(10);

/// The disk is too full to take a write (nothing of it was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the data disk is full: {} free, {} kept in reserve{}; taking no new messages or blobs until space is freed",
    mib(*free),
    mib(*reserve),
    if *need > 0 { format!(", {} needed", mib(*need)) } else { String::new() }
)]
pub struct DiskFull {
    /// Bytes free for us.
    pub free: u64,
    /// Bytes kept free.
    pub reserve: u64,
    /// Bytes the refused write needed.
    pub need: u64,
}

/// Bytes as MiB with one decimal (KiB below one MiB).
pub fn mib(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// The file system's size and room, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Its size.
    pub total: u64,
    /// What an unprivileged writer may still use.
    pub free: u64,
}

/// Reads the size and free space of the file system holding `dir`.
pub fn room(dir: &Path) -> std::io::Result<Room> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    let frag = s.fragment_size() as u64;
    Ok(Room {
        total: (s.blocks() as u64).saturating_mul(frag),
        free: (s.blocks_available() as u64).saturating_mul(frag),
    })
}

/// The guard on the data disk's room (see the module docs).
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// A fixed reserve; else from the file system's size.
    reserve: Mutex<Option<u64>>,
    state: watch::Sender<Option<DiskFull>>,
}

impl DiskSpace {
    /// Guards the file system holding `dir`.
    pub fn new(dir: &Path) -> DiskSpace {
        DiskSpace {
            dir: dir.to_path_buf(),
            reserve: Mutex::new(None),
            state: watch::channel(None).0,
        }
    }

    /// Guards `dir` keeping exactly `reserve` bytes free.
    pub fn with_reserve(dir: &Path, reserve: u64) -> DiskSpace {
        let d = DiskSpace::new(dir);
        d.set_reserve(Some(reserve));
        d
    }

    /// Keeps exactly `reserve` bytes free from now on (`None`: the default
    /// from the file system's size). Takes effect at the next check.
    pub fn set_reserve(&self, reserve: Option<u64>) {
        *self.reserve.lock().unwrap_or_else(|e| e.into_inner()) = reserve;
    }

    /// The reserve kept on a file system of `total` bytes.
    pub fn reserve_for(&self, total: u64) -> u64 {
        self.reserve
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| (total / 100 * RESERVE_PERCENT).clamp(MIN_RESERVE, MAX_RESERVE))
    }

    /// The size and room of the data disk.
    pub fn room(&self) -> std::io::Result<Room> {
        room(&self.dir)
    }

    /// Whether a write of `need` bytes fits above the reserve; records the
    /// answer. A disk whose room cannot be read counts as having room (the
    /// write itself then reports what is wrong).
    pub fn check(&self, need: u64) -> Result<(), DiskFull> {
        let Ok(r) = self.room() else {
            return Ok(());
        };
        let reserve = self.reserve_for(r.total);
        let verdict = if r.free < reserve.saturating_add(need) {
            Err(DiskFull {
                free: r.free,
                reserve,
                need,
            })
        } else {
            Ok(())
        };
        self.note(verdict.as_ref().err());
        verdict
    }

    /// Checks again with nothing to write: clears the full state once the
    /// disk has room above the reserve.
    pub fn recheck(&self) -> Option<DiskFull> {
        self.check(0).err()
    }

    fn note(&self, full: Option<&DiskFull>) {
        self.state.send_if_modified(|s| {
            // A full disk with other figures is the same state.
            let changed = s.is_some() != full.is_some();
            match (s.is_some(), full) {
                (false, Some(f)) => tracing::warn!("status: {f}"),
                (true, None) => tracing::info!("status: the data disk has room again"),
                _ => {}
            }
            *s = full.cloned();
            changed
        });
    }

    /// The last check's verdict: why the disk is full, if it is.
    pub fn full(&self) -> Option<DiskFull> {
        self.state.borrow().clone()
    }

    /// Changes whenever the disk turns full or has room again.
    pub fn changes(&self) -> watch::Receiver<Option<DiskFull>> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_over_the_reserve_is_refused_and_the_state_clears_with_room() {
        let dir = tempfile::tempdir().unwrap();
        let free = room(dir.path()).unwrap().free;
        // A reserve above what is free: full, with the figures.
        let space = DiskSpace::with_reserve(dir.path(), free + (1 << 40));
        let mut changes = space.changes();
        let e = space.check(10).unwrap_err();
        assert_eq!((e.reserve, e.need), (free + (1 << 40), 10));
        assert!(e.to_string().starts_with("the data disk is full: "), "{e}");
        assert!(changes.has_changed().unwrap());
        assert!(changes.borrow_and_update().is_some());
        assert!(space.full().is_some());
        // The same state again wakes nobody.
        assert!(space.check(0).is_err());
        assert!(!changes.has_changed().unwrap());

        // With no reserve there is room; a write larger than the disk is not.
        let space = DiskSpace::with_reserve(dir.path(), 0);
        assert_eq!(space.check(1), Ok(()));
        assert!(space.full().is_none());
        assert!(space.check(u64::MAX).is_err());
        assert!(space.recheck().is_none());
        assert!(space.full().is_none());
    }

    #[test]
    fn the_reserve_is_one_percent_between_16_and_256_mib() {
        let space = DiskSpace::new(Path::new("/"));
        assert_eq!(space.reserve_for(100 * 1024 * 1024), MIN_RESERVE);
        assert_eq!(space.reserve_for(8_000_000_000), 80_000_000);
        // A 32 GB card, or a shared 250 GB disk: 256 MiB.
        assert_eq!(space.reserve_for(32_000_000_000), MAX_RESERVE);
        assert_eq!(space.reserve_for(250_000_000_000), MAX_RESERVE);
    }
}
