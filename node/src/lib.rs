//! ssb-node: a Secure Scuttlebutt node for Raspberry Pi-class hardware.
//!
//! Layers, bottom up: [`feed`] (identities, classic messages, validation),
//! the fjall-backed store, and the command-line front end in the binary.
//! [`net`] holds the sans-IO network protocols; [`discovery`] finds peers on the LAN.

pub mod appliance;
pub mod blobs;
pub mod data_dir;
pub mod discovery;
pub mod feed;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod ingest;
pub mod invite;
pub mod muxrpc;
pub mod net;
pub mod publish;
pub mod replica;
pub mod replication;
pub mod service;
pub mod sneakernet;
pub mod store;
