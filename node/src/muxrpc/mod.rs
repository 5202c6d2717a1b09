//! The tokio layer that drives the sans-IO cores in [`crate::net`] over real
//! sockets: the secret handshake with a deadline, then a muxrpc session over
//! box-stream (or over a plain stream, for the local control socket).
//!
//! - [`handshake`]: runs a [`crate::net::shs::Handshake`] over any async stream.
//! - [`manifest`]: the nested `manifest` answer clients build their API from.
//! - [`session`]: one muxrpc endpoint: a reader task, a writer task, the call
//!   table, and handles for calls in both directions.

pub mod handshake;
pub mod manifest;
pub mod session;

pub use handshake::{client_handshake, server_handshake, LinkError};
pub use session::{
    Body, CallError, CallType, Handler, InboundCall, Item, Request, Session, SessionConfig, Sink,
    Stream,
};
