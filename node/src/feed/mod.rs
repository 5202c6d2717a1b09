//! The feed layer: identities, JSON with JavaScript semantics, and classic
//! signed messages, bit-exact with the JavaScript reference (ssb-keys,
//! ssb-validate).

pub mod contact;
pub mod ids;
pub mod json;
pub mod keys;
pub mod message;
pub mod refs;
pub mod verify;

pub use contact::{ContactChange, Stance};
pub use ids::{BlobId, FeedId, MsgId};
pub use json::Value;
pub use keys::Keypair;
pub use message::{FeedHead, HmacKey, Invalid, Message};
pub use verify::{BatchVerifier, Verified};
