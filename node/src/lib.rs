//! ssb-node: a Secure Scuttlebutt node for Raspberry Pi-class hardware.
//!
//! Layers, bottom up; each uses only those below it:
//!
//! 1. [`feed`]: identities, classic messages, JSON, signature checks.
//! 2. [`store`]: the fjall-backed message store; [`blob_store`]: blob files;
//!    [`publish`]: our own messages; [`ingest`]: bulk import of JSON lines;
//!    [`data_dir`]: where identity, store and blobs live.
//! 3. [`net`]: the sans-IO network protocols (secret handshake, box stream,
//!    muxrpc frames, EBT notes, addresses); [`muxrpc`]: them driven over
//!    sockets; [`discovery`]: LAN discovery.
//! 4. [`replica`]: the feeds and blobs this node holds, and every way they
//!    grow.
//! 5. [`replication`]: links with peers (EBT, history streams, blobs);
//!    [`sneakernet`]: bundles on USB sticks. Both work on a replica.
//! 6. [`appliance`]: stick watching and visits, status, LED, sd_notify.
//! 7. [`service`]: the running node, `run`, the control socket and config.
//!
//! The command-line front end (`main.rs`, `cli/`) sits on top.

pub mod appliance;
pub mod blob_store;
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
pub mod web;

pub use blob_store::BlobStore;
pub use data_dir::DataDir;
pub use replica::{Replica, ReplicaError};
pub use replication::Replicator;
pub use service::{Node, NodeError};
pub use store::Store;
