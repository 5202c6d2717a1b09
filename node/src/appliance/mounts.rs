//! Stick detection: watches the mount roots (`/media`, `/run/media`, `/mnt`
//! by default) and reports sticks appearing and vanishing, without polling.
//!
//! A *stick* is either
//! - a mount point anywhere under a root (from `/proc/self/mountinfo`),
//!   unless its filesystem is virtual or networked (see [`is_stick_fs`]); a
//!   mounted stick without `SSB-SNEAKERNET/` is still a stick; or
//! - a directory at most [`MAX_DEPTH`] levels under a root that holds a
//!   `SSB-SNEAKERNET/` folder (a plain folder works as a stick: tests, or a
//!   stick some other tool mounted elsewhere and linked in).
//!
//! Only the outermost stick counts: nothing inside a stick is looked at.
//!
//! How changes are seen:
//! - inotify watches on each root and on every non-stick directory down to
//!   [`MAX_DEPTH`] (only create, delete and move events of directories, so
//!   files being written never wake us). Watches are added before a directory
//!   is listed, so nothing created in between is missed.
//! - `/proc/self/mountinfo` signals every mount and unmount with POLLPRI;
//!   we re-read the table then.
//!
//! Both are waited for in poll(2) on one thread of its own (`stick-watch`),
//! which scans there too (a slow filesystem never stalls the async runtime)
//! and has a timeout only while a rescan is due: an idle watcher uses no
//! CPU.
//! - A root that does not exist is not an error: we watch its nearest
//!   existing ancestor for the missing component (only that name wakes us)
//!   and pick the root up when it appears. A root removed later is handled
//!   the same way.
//!
//! Any relevant event starts a short debounce ([`DEBOUNCE`], at most
//! [`DEBOUNCE_MAX`] after the first event), then one rescan of the roots is
//! diffed against the sticks known so far: a stick is reported once when it
//! appears and once when it vanishes. A stick replaced by another at the same
//! path (another mount id, or another directory inode) is reported as
//! vanished and appeared again, so a quick pull and re-insert still counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::{PipeReader, PipeWriter, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use tokio::sync::mpsc;

use super::mountinfo::{self, Mount};

/// The folder on a stick that holds what the node reads and writes.
pub const SNEAKERNET_DIR: &str = crate::sneakernet::stick::FOLDER;

/// Where desktop and appliance automounters put sticks.
pub const DEFAULT_MOUNT_ROOTS: &[&str] = &["/media", "/run/media", "/mnt"];

/// Deepest level below a root where a folder stick is looked for
/// (`/media/USER/LABEL` is depth 2).
pub const MAX_DEPTH: usize = 3;

/// Most directories watched at once (roots, candidates, ancestors).
pub const MAX_WATCHES: usize = 1024;

/// Most entries read from one directory while looking for sticks.
pub const MAX_ENTRIES_PER_DIR: usize = 10_000;

/// Most sticks tracked at once; more are ignored with a warning.
pub const MAX_STICKS: usize = 64;

/// Quiet time after an event before rescanning.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Longest wait between the first event of a burst and the rescan.
pub const DEBOUNCE_MAX: Duration = Duration::from_millis(600);

/// Most bytes read from `/proc/self/mountinfo`.
const MAX_MOUNTINFO_BYTES: u64 = 16 * 1024 * 1024;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// A change in the set of sticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickEvent {
    /// A stick is there (at start, or newly inserted).
    Appeared(PathBuf),
    /// A stick is gone.
    Vanished(PathBuf),
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify could not be set up.
    #[error("inotify: {0}")]
    Inotify(#[source] std::io::Error),
    /// The watcher thread (or its stop pipe) could not be made.
    #[error("starting the stick watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Filesystems that are never a stick: virtual ones (an `autofs` trigger is
/// not the stick itself; reading it would mount it) and networked ones.
const NOT_STICK_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "securityfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "9p",
    "fuse.sshfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// Whether a mount of this filesystem type can be a stick.
pub fn is_stick_fs(fs_type: &str) -> bool {
    !NOT_STICK_FS.contains(&fs_type)
}

/// What identifies one insertion of a stick at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickId {
    /// A mount, by mount id.
    Mount(u64),
    /// A folder, by device and inode.
    Folder {
        /// Device number.
        dev: u64,
        /// Inode number.
        ino: u64,
    },
}

/// A mount point as the scan needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountPoint {
    /// Mount id of the topmost mount there.
    pub id: u64,
    /// Whether that mount can be a stick.
    pub stick: bool,
}

/// Mount points by path; where mounts are stacked, the last (visible) one.
pub fn mount_table(mounts: &[Mount]) -> HashMap<PathBuf, MountPoint> {
    mounts
        .iter()
        .map(|m| {
            (
                m.mount_point.clone(),
                MountPoint {
                    id: m.id,
                    stick: is_stick_fs(&m.fs_type),
                },
            )
        })
        .collect()
}

/// Mount sticks strictly under one of `roots` (which must be canonical).
pub fn mount_sticks(
    table: &HashMap<PathBuf, MountPoint>,
    roots: &[PathBuf],
) -> BTreeMap<PathBuf, StickId> {
    table
        .iter()
        .filter(|(path, m)| {
            m.stick
                && roots
                    .iter()
                    .any(|r| path.starts_with(r) && path.as_path() != r.as_path())
        })
        .map(|(path, m)| (path.clone(), StickId::Mount(m.id)))
        .collect()
}

/// Drops every stick inside another stick.
pub fn outermost(sticks: BTreeMap<PathBuf, StickId>) -> BTreeMap<PathBuf, StickId> {
    let mut kept: BTreeMap<PathBuf, StickId> = BTreeMap::new();
    // Sorted order puts every path after its ancestors.
    for (path, id) in sticks {
        if !path.ancestors().skip(1).any(|a| kept.contains_key(a)) {
            kept.insert(path, id);
        }
    }
    kept
}

/// The events that turn `old` into `new`: vanished ones first.
pub fn diff(old: &BTreeMap<PathBuf, StickId>, new: &BTreeMap<PathBuf, StickId>) -> Vec<StickEvent> {
    let mut events: Vec<StickEvent> = old
        .iter()
        .filter(|(p, id)| new.get(*p) != Some(id))
        .map(|(p, _)| StickEvent::Vanished(p.clone()))
        .collect();
    events.extend(
        new.iter()
            .filter(|(p, id)| old.get(*p) != Some(id))
            .map(|(p, _)| StickEvent::Appeared(p.clone())),
    );
    events
}

/// Which events of a watched directory matter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watched {
    /// A root or a candidate directory: any directory created, removed or
    /// moved in or out.
    Tree,
    /// Only entries with these names (the next component of a missing root,
    /// or `SSB-SNEAKERNET` in a directory at the deepest level).
    Names(BTreeSet<OsString>),
}

impl Watched {
    fn merge(&mut self, other: Watched) {
        match (&mut *self, other) {
            (Watched::Tree, _) => {}
            (_, Watched::Tree) => *self = Watched::Tree,
            (Watched::Names(a), Watched::Names(b)) => a.extend(b),
        }
    }

    fn names(name: impl Into<OsString>) -> Watched {
        Watched::Names(BTreeSet::from([name.into()]))
    }
}

/// Directory events we care about; file writes never wake us.
fn watch_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// The watch set and the directory walk.
struct Scanner {
    inotify: Inotify,
    roots: Vec<PathBuf>,
    /// What each watch is for.
    watches: HashMap<WatchDescriptor, Watched>,
    /// Watched directories.
    paths: HashMap<PathBuf, WatchDescriptor>,
    /// Whether the last scan hit a limit (to warn once per episode).
    limited: bool,
}

/// One walk's findings.
#[derive(Default)]
struct Walk {
    watched: HashMap<PathBuf, (WatchDescriptor, Watched)>,
    sticks: BTreeMap<PathBuf, StickId>,
    /// Which limits were hit (each named once).
    limited: BTreeSet<String>,
}

impl Scanner {
    /// Walks the roots, updates the watch set, returns the sticks.
    fn scan(&mut self, table: &HashMap<PathBuf, MountPoint>) -> BTreeMap<PathBuf, StickId> {
        let mut walk = Walk::default();
        let mut canonical = Vec::new();
        for root in self.roots.clone() {
            match root.canonicalize() {
                Ok(r) if r.is_dir() => {
                    self.visit(&mut walk, &r, 0, table);
                    canonical.push(r);
                }
                _ => self.watch_ancestor(&mut walk, &root),
            }
        }
        for (path, id) in mount_sticks(table, &canonical) {
            walk.sticks.entry(path).or_insert(id);
        }
        let mut sticks = outermost(walk.sticks);
        if sticks.len() > MAX_STICKS {
            walk.limited
                .insert(format!("more than {MAX_STICKS} sticks"));
            sticks = sticks.into_iter().take(MAX_STICKS).collect();
        }
        // Drop the watches this walk did not visit.
        let keep: BTreeSet<WatchDescriptor> = walk.watched.values().map(|(wd, _)| *wd).collect();
        for wd in self.watches.keys() {
            if !keep.contains(wd) {
                // Fails harmlessly if the kernel already dropped it.
                let _ = self.inotify.rm_watch(*wd);
            }
        }
        self.watches.clear();
        self.paths.clear();
        for (path, (wd, kind)) in walk.watched {
            self.watches
                .entry(wd)
                .and_modify(|k| k.merge(kind.clone()))
                .or_insert(kind);
            self.paths.insert(path, wd);
        }
        match (walk.limited.is_empty(), self.limited) {
            (false, false) => tracing::warn!(
                "stick watch limited: {}; some sticks may be missed",
                walk.limited.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            (true, true) => tracing::info!("stick watch back within its limits"),
            _ => {}
        }
        self.limited = !walk.limited.is_empty();
        sticks
    }

    /// Watches `dir` for `kind`; false if it cannot be watched.
    fn watch(&mut self, walk: &mut Walk, dir: &Path, kind: Watched) -> bool {
        if let Some((_, k)) = walk.watched.get_mut(dir) {
            k.merge(kind);
            return true;
        }
        if walk.watched.len() >= MAX_WATCHES {
            walk.limited
                .insert(format!("more than {MAX_WATCHES} directories"));
            return false;
        }
        match self.inotify.add_watch(dir, watch_mask()) {
            Ok(wd) => {
                walk.watched.insert(dir.to_path_buf(), (wd, kind));
                true
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), "cannot watch: {e}");
                false
            }
        }
    }

    /// A missing root: watch the nearest existing ancestor for the next name.
    fn watch_ancestor(&mut self, walk: &mut Walk, root: &Path) {
        let mut child = root;
        for ancestor in root.ancestors().skip(1) {
            if ancestor.is_dir() {
                if let Some(name) = child.file_name() {
                    if !self.paths.contains_key(ancestor) && !walk.watched.contains_key(ancestor) {
                        tracing::debug!(
                            root = %root.display(),
                            watching = %ancestor.display(),
                            "mount root does not exist (yet)"
                        );
                    }
                    self.watch(walk, ancestor, Watched::names(name));
                }
                return;
            }
            child = ancestor;
        }
    }

    /// Watches `dir` (at `depth` below its root), then looks for sticks in it.
    fn visit(
        &mut self,
        walk: &mut Walk,
        dir: &Path,
        depth: usize,
        table: &HashMap<PathBuf, MountPoint>,
    ) {
        if depth == MAX_DEPTH {
            // Deepest level: only a SSB-SNEAKERNET folder appearing matters.
            self.watch(walk, dir, Watched::names(SNEAKERNET_DIR));
            return;
        }
        // Watch before listing, so nothing created meanwhile is missed.
        if !self.watch(walk, dir, Watched::Tree) {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), "cannot list: {e}");
                return;
            }
        };
        let mut seen = 0;
        for entry in entries {
            seen += 1;
            if seen > MAX_ENTRIES_PER_DIR {
                walk.limited.insert(format!(
                    "{} has more than {MAX_ENTRIES_PER_DIR} entries",
                    dir.display()
                ));
                break;
            }
            let Ok(entry) = entry else { continue };
            // Symbolic links are never followed (no loops, no escaping the root).
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if let Some(m) = table.get(&path) {
                // A mount point: a stick, or something to leave alone.
                if m.stick {
                    walk.sticks.insert(path, StickId::Mount(m.id));
                }
                continue;
            }
            if let Some(id) = folder_stick(&path) {
                walk.sticks.insert(path, id);
                continue;
            }
            self.visit(walk, &path, depth + 1, table);
        }
    }

    /// Whether an inotify event can change the set of sticks.
    fn relevant(&self, event: &InotifyEvent) -> bool {
        let mask = event.mask;
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return true;
        }
        let Some(kind) = self.watches.get(&event.wd) else {
            // A watch we already dropped.
            return false;
        };
        if mask.intersects(
            AddWatchFlags::IN_DELETE_SELF
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_IGNORED
                | AddWatchFlags::IN_UNMOUNT,
        ) {
            return true;
        }
        match kind {
            Watched::Tree => mask.contains(AddWatchFlags::IN_ISDIR),
            Watched::Names(names) => event.name.as_ref().is_some_and(|n| names.contains(n)),
        }
    }
}

/// `Some` if `dir` holds a `SSB-SNEAKERNET` directory, or a symbolic link
/// of that name (never followed: the visit refuses the stick and says why
/// in the status): the folder's identity.
fn folder_stick(dir: &Path) -> Option<StickId> {
    let inner = std::fs::symlink_metadata(dir.join(SNEAKERNET_DIR)).ok()?;
    if !inner.is_dir() && !inner.file_type().is_symlink() {
        return None;
    }
    let md = std::fs::symlink_metadata(dir).ok()?;
    Some(StickId::Folder {
        dev: md.dev(),
        ino: md.ino(),
    })
}

/// Reads and parses the mount table (bounded); `None` (logged) on failure.
fn read_mount_table(file: &File) -> Option<HashMap<PathBuf, MountPoint>> {
    let mut f = file;
    let mut text = Vec::new();
    let read = f
        .seek(SeekFrom::Start(0))
        .and_then(|_| f.take(MAX_MOUNTINFO_BYTES).read_to_end(&mut text));
    if let Err(e) = read {
        tracing::warn!("reading {MOUNTINFO}: {e}");
        return None;
    }
    match mountinfo::parse(&text) {
        Ok(mounts) => Some(mount_table(&mounts)),
        Err(e) => {
            tracing::warn!("{MOUNTINFO}: {e}");
            None
        }
    }
}

/// The running watcher. Dropping it stops the watcher thread.
#[derive(Debug)]
pub struct StickWatcher {
    _stop: PipeWriter,
}

/// Starts watching `roots` on a thread of its own; stick events go to
/// `events`. The thread ends when the returned handle or the receiver is
/// dropped.
pub fn spawn(
    roots: Vec<PathBuf>,
    events: mpsc::Sender<StickEvent>,
) -> Result<StickWatcher, WatchError> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| WatchError::Inotify(e.into()))?;
    let mountinfo = match File::open(MOUNTINFO) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("cannot watch {MOUNTINFO} ({e}): only folder sticks will be seen");
            None
        }
    };
    let (stop_rx, stop_tx) = std::io::pipe().map_err(WatchError::Thread)?;
    for root in &roots {
        tracing::info!(root = %root.display(), "watching for sticks");
    }
    let scanner = Scanner {
        inotify,
        roots,
        watches: HashMap::new(),
        paths: HashMap::new(),
        limited: false,
    };
    std::thread::Builder::new()
        .name("stick-watch".into())
        .spawn(move || watch_loop(scanner, mountinfo, stop_rx, events))
        .map_err(WatchError::Thread)?;
    Ok(StickWatcher { _stop: stop_tx })
}

/// Waits in poll(2) for inotify events, mount table changes (POLLPRI) or
/// the stop pipe, with a timeout only while a rescan is due.
fn watch_loop(
    mut scanner: Scanner,
    mountinfo: Option<File>,
    stop: PipeReader,
    events: mpsc::Sender<StickEvent>,
) {
    let mut table = mountinfo
        .as_ref()
        .and_then(read_mount_table)
        .unwrap_or_default();
    let mut known: BTreeMap<PathBuf, StickId> = BTreeMap::new();
    // The first scan runs at once: sticks present at start count.
    let mut first_event: Option<Instant> = Some(Instant::now());
    let mut deadline: Option<Instant> = Some(Instant::now());
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so we never wake just before the deadline.
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            PollFd::new(scanner.inotify.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(m) = &mountinfo {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLPRI));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("stick watch: poll failed, sticks are no longer watched: {e}");
                return;
            }
        }
        let fired = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        let (stopped, inotify_ready, mounts_changed) = (fired(0), fired(1), fired(2));
        drop(fds);
        if stopped || events.is_closed() {
            return;
        }
        let mut dirty = false;
        if inotify_ready {
            loop {
                match scanner.inotify.read_events() {
                    Ok(batch) => dirty |= batch.iter().any(|e| scanner.relevant(e)),
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => {}
                    Err(e) => {
                        tracing::error!(
                            "stick watch: inotify failed, sticks are no longer watched: {e}"
                        );
                        return;
                    }
                }
            }
        }
        if mounts_changed {
            if let Some(t) = mountinfo.as_ref().and_then(read_mount_table) {
                dirty |= t != table;
                table = t;
            }
        }
        let now = Instant::now();
        if dirty {
            let first = *first_event.get_or_insert(now);
            deadline = Some((now + DEBOUNCE).min(first + DEBOUNCE_MAX));
        }
        if deadline.is_some_and(|d| d <= now) {
            first_event = None;
            deadline = None;
            let sticks = scanner.scan(&table);
            for event in diff(&known, &sticks) {
                if events.blocking_send(event).is_err() {
                    return;
                }
            }
            known = sticks;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn mount(id: u64, point: &str, fs: &str) -> Mount {
        Mount {
            id,
            mount_point: p(point),
            fs_type: fs.into(),
            source: "/dev/x".into(),
        }
    }

    #[test]
    fn mount_sticks_are_real_filesystems_strictly_under_a_root() {
        let table = mount_table(&[
            mount(1, "/", "ext4"),
            mount(2, "/media", "ext4"),
            mount(3, "/media/pi/STICK", "vfat"),
            mount(4, "/media/auto", "autofs"),
            mount(5, "/mnt/deep/er/than/the/walk", "exfat"),
            mount(6, "/mnt/ram", "tmpfs"),
            mount(7, "/srv/x", "vfat"),
            mount(8, "/media-other/x", "vfat"),
        ]);
        let sticks = mount_sticks(&table, &[p("/media"), p("/mnt")]);
        assert_eq!(
            sticks.keys().cloned().collect::<Vec<_>>(),
            vec![p("/media/pi/STICK"), p("/mnt/deep/er/than/the/walk")]
        );
        assert_eq!(sticks[&p("/media/pi/STICK")], StickId::Mount(3));
    }

    #[test]
    fn the_visible_mount_of_a_stack_counts() {
        // An automount trigger with the real stick mounted over it.
        let table = mount_table(&[mount(4, "/media/x", "autofs"), mount(9, "/media/x", "vfat")]);
        assert_eq!(
            mount_sticks(&table, &[p("/media")]),
            BTreeMap::from([(p("/media/x"), StickId::Mount(9))])
        );
    }

    #[test]
    fn only_outermost_sticks_count() {
        let f = StickId::Folder { dev: 1, ino: 1 };
        let sticks = BTreeMap::from([
            (p("/m/a"), f),
            (p("/m/a b"), f),
            (p("/m/a/inner"), StickId::Mount(3)),
            (p("/m/a b/x/y"), f),
            (p("/m/ab"), f),
        ]);
        assert_eq!(
            outermost(sticks).into_keys().collect::<Vec<_>>(),
            vec![p("/m/a"), p("/m/a b"), p("/m/ab")]
        );
    }

    #[test]
    fn diff_reports_changes_and_replacements_once() {
        let a = StickId::Mount(1);
        let old = BTreeMap::from([(p("/m/a"), a), (p("/m/b"), a), (p("/m/c"), a)]);
        let new = BTreeMap::from([
            (p("/m/a"), a),
            (p("/m/b"), StickId::Mount(2)),
            (p("/m/d"), a),
        ]);
        assert_eq!(
            diff(&old, &new),
            vec![
                StickEvent::Vanished(p("/m/b")),
                StickEvent::Vanished(p("/m/c")),
                StickEvent::Appeared(p("/m/b")),
                StickEvent::Appeared(p("/m/d")),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_scan_stays_within_its_watch_limit_and_still_finds_shallow_sticks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for i in 0..MAX_WATCHES + 50 {
            std::fs::create_dir(root.join(format!("d{i:04}"))).unwrap();
        }
        std::fs::create_dir_all(root.join("zz-stick").join(SNEAKERNET_DIR)).unwrap();
        let mut scanner = Scanner {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC).unwrap(),
            roots: vec![root.clone()],
            watches: HashMap::new(),
            paths: HashMap::new(),
            limited: false,
        };
        let sticks = scanner.scan(&HashMap::new());
        assert!(sticks.contains_key(&root.join("zz-stick")), "{sticks:?}");
        assert!(scanner.limited);
        assert!(scanner.paths.len() <= MAX_WATCHES);
        // Back within the limit, every directory is watched again.
        for i in 0..100 {
            std::fs::remove_dir(root.join(format!("d{i:04}"))).unwrap();
        }
        scanner.scan(&HashMap::new());
        assert!(!scanner.limited);
        assert_eq!(scanner.paths.len(), MAX_WATCHES + 50 - 100 + 1);
    }

    #[test]
    fn virtual_and_network_filesystems_are_not_sticks() {
        for fs in ["vfat", "exfat", "ext4", "ntfs3", "fuseblk", "btrfs"] {
            assert!(is_stick_fs(fs), "{fs}");
        }
        for fs in ["autofs", "tmpfs", "proc", "nfs4", "cifs", "fuse.sshfs"] {
            assert!(!is_stick_fs(fs), "{fs}");
        }
    }
}
