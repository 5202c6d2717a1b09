//! The service shell of `ssb-node run`: the running [`Node`] and what serves
//! it.
//!
//! - [`node`]: the running node (replica, replicator, status, settings).
//! - [`server`]: `run`: the listener, the dialler, LAN discovery, the
//!   appliance and the control socket, until a signal stops them.
//! - [`control`]: the unix socket the CLI uses while `run` holds the store;
//!   [`api`]: what it answers.
//! - [`command`]: the control commands, one definition for the CLI and the
//!   control socket.
//! - [`config`]: the optional config file and the settings after defaults.
//! - [`lag`]: how far behind each peer and stick is, for `status`.

pub mod api;
pub mod command;
pub mod config;
pub mod control;
pub mod lag;
pub mod node;
pub mod server;

pub use node::{Node, NodeError};
