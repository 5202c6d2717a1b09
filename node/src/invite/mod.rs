//! Pub-style invites, as ssb-invite makes them: a code
//! `HOST:PORT:@KEY.ed25519~SEED` names this node's address and carries the
//! seed of a one-time Ed25519 keypair. A client authenticates with that
//! keypair at the secret handshake and calls `invite.use({feed})`; the node
//! then follows `feed`.
//!
//! - [`code`]: making a code (the seed, its public key, the text).
//! - [`rules`]: whether a use is allowed, what it changes, and the rate limit
//!   on attempts (sans-IO: time is passed in).
//! - [`host`]: the address a code names (config, listener, LAN address).

pub mod code;
pub mod host;
pub mod rules;
