//! The tokio layer that drives the sans-IO cores in [`crate::net`] over real
//! sockets: the secret handshake with a deadline, then a muxrpc session over
//! box-stream (or over a plain stream, for the local control socket).
//!
//! - [`shs_driver`]: runs a [`crate::net::shs::Handshake`] over any async stream.
//! - [`manifest`]: the nested `manifest` answer clients build their API from.
//! - [`session`]: one muxrpc endpoint: a reader task, a writer task, the call
//!   table, and handles for calls in both directions.

pub mod manifest;
pub mod session;
pub mod shs_driver;

pub use session::{
    Body, CallError, CallType, Handler, InboundCall, Item, Request, RequestError, Session,
    SessionConfig, Sink, Stream,
};
pub use shs_driver::{client_handshake, server_handshake, LinkError};
