//! Fuzz targets: one function per parser of outside bytes, each asserting
//! what must hold for any input (not only that it does not panic).
//!
//! The same bodies run twice: under libFuzzer from the cargo-fuzz crate in
//! `fuzz/` (feature `fuzzing`, nightly flags, long runs by hand), and in the
//! unit tests as a short, deterministic run over real seeds (made by this
//! crate's own writers) and their mutations ([`mutate::run`]).
//!
//! Allocations are checked by [`BoundedAlloc`]: inside [`bounded`], a single
//! allocation above the target's cap is refused, which aborts the run.

mod bounded_alloc;
pub mod mutate;

pub mod box_stream;
pub mod bundle;
pub mod discovery;
pub mod ebt;
pub mod feed;
pub mod invite;
pub mod muxrpc;
pub mod rpc;
pub mod shs;
pub mod stick;

pub use bounded_alloc::{bounded, BoundedAlloc};

/// The unit tests run under the bounded allocator too.
#[cfg(test)]
#[global_allocator]
static ALLOC: BoundedAlloc = BoundedAlloc;

/// A fuzz target: its name, its body and the seeds it starts from.
#[derive(Clone, Copy)]
pub struct FuzzTarget {
    /// The name (the cargo-fuzz binary's, the corpus folder's).
    pub name: &'static str,
    /// The body: any input must pass it.
    pub body: fn(&[u8]),
    /// Real inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[FuzzTarget] = &[
    feed::JSON,
    feed::MESSAGE,
    rpc::FRAMES,
    muxrpc::BODY,
    muxrpc::CONTROL_REQUEST,
    box_stream::TARGET,
    shs::TARGET,
    ebt::TARGET,
    bundle::READER,
    bundle::MANIFEST,
    stick::TARGET,
    discovery::TARGET,
    invite::TARGET,
    discovery::SEALED,
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static FuzzTarget> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs the target named `name` on `data` (what each cargo-fuzz binary calls).
pub fn run(name: &str, data: &[u8]) {
    match target(name) {
        Some(t) => (t.body)(data),
        None => panic!("no fuzz target {name}"),
    }
}
