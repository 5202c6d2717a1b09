//! The site keeper's web page: what the box holds, in a browser on the same
//! network, and the few admin actions a keeper needs (invites, follows,
//! blocks, the carrying mode), behind a password.
//!
//! - [`server`]: the HTTP listener on the node's runtime (axum's router over
//!   hyper's HTTP/1 server), with its limits: header size and read time,
//!   body size, connections at once.
//! - [`pages`]: the pages (status, feeds, sticks, invite, login) as HTML,
//!   built on [`layout`]; `GET /status.json` is [`crate::service::api::status`].
//! - [`names`]: feeds' names from their `about` messages.
//! - [`password`]: the admin password, hashed with argon2 in the store.
//! - [`session`]: login sessions (an HttpOnly, SameSite=Strict cookie) and
//!   [`csrf`]: the token every form carries.
//! - [`rate_limit`]: token buckets that bound password attempts.
//! - [`assets`]: the CSS, icon and refresh script, compiled in.
//!
//! It reads the node through what it shows (the status builder, the
//! replica's store, the invite rooms) and never holds a lock across a page.

pub mod assets;
pub mod csrf;
pub mod layout;
pub mod names;
pub mod pages;
pub mod password;
pub mod rate_limit;
pub mod server;
pub mod session;

pub use server::{start, WebError, WebOptions};
