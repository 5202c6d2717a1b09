//! Sneakernet: feeds and blobs carried between sites as signed bundles on
//! USB sticks (the format itself is the `bundle-format` crate).
//!
//! - [`import`]: check a bundle completely, then make it visible at once.
//! - [`export`]: write what the other side lacks as bundles.
//! - [`stick`]: the `SSB-SNEAKERNET/` folder on a stick, and its writes.
//! - [`files`]: bundles as plain files (`ssb-node bundle import|export`).
//! - [`reconcile`]: a whole stick visit: import, export, remember its clock.

pub mod export;
pub mod files;
pub mod import;
mod read_ahead;
pub mod reconcile;
pub mod stick;
