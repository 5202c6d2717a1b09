//! Named points of a bundle import where a test can kill the process, to
//! check that a kill at each of them leaves a consistent store.
//!
//! The points are read from `SSB_NODE_FAULT_STOP_AT` (the environment of
//! the importing process, read once): when the import reaches the named
//! point, the process sends itself SIGKILL, as `kill -9` would. Unset (as
//! it always is outside tests), [`reached`] only compares two words.

use std::sync::OnceLock;

/// The environment variable naming the point to stop at.
pub const VAR: &str = "SSB_NODE_FAULT_STOP_AT";

/// A point of an import, in the order an import passes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Every line is written past its feed's head and staged; no blob is
    /// read yet.
    LinesStaged,
    /// The whole bundle is checked (trailer signature included); wanted
    /// blobs wait in the blob store's temp area.
    Checked,
    /// The staged blobs are renamed into place and fsynced.
    BlobsPlaced,
    /// A promotion run moved its feed's head (committed), before the node
    /// noted what it added (events, wants, graph).
    HeadsMoved,
    /// A promotion run is committed and noted.
    RunNoted,
    /// Every staged message is promoted; what was left past the heads is
    /// dropped.
    Promoted,
    /// The import is complete; its report is about to be returned.
    Imported,
}

impl Point {
    /// Every point, in import order.
    pub const ALL: [Point; 7] = [
        Point::LinesStaged,
        Point::Checked,
        Point::BlobsPlaced,
        Point::HeadsMoved,
        Point::RunNoted,
        Point::Promoted,
        Point::Imported,
    ];

    /// The point's name, as `SSB_NODE_FAULT_STOP_AT` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Point::LinesStaged => "lines-staged",
            Point::Checked => "checked",
            Point::BlobsPlaced => "blobs-placed",
            Point::HeadsMoved => "heads-moved",
            Point::RunNoted => "run-noted",
            Point::Promoted => "promoted",
            Point::Imported => "imported",
        }
    }
}

/// The point to stop at, if any.
fn target() -> Option<&'static str> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var(VAR).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// The import reached `point`: kills the process if it is the one named.
pub fn reached(point: Point) {
    if target() == Some(point.name()) {
        tracing::warn!("{VAR}={}: killing the process", point.name());
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        std::process::abort();
    }
}
