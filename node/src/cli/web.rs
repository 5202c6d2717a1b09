//! `ssb-node web-password`: sets the web page's admin password. The
//! password is read from stdin (one line) and hashed here, so only the hash
//! goes to the running node (or into the store when none runs).

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};

use ssb_node::service::command::Command as NodeCommand;
use ssb_node::web::password;

/// The command that sets the password read from stdin.
pub fn command() -> Result<NodeCommand> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "New web password (shown as typed; at least {} characters): ",
            password::MIN_LEN
        );
        io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(password::MAX_LEN as u64 + 2)
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let given = line.trim_end_matches(['\r', '\n']);
    if given.is_empty() {
        bail!("no password given on stdin");
    }
    let hash = password::hash(given)?;
    Ok(NodeCommand::WebPassword { hash })
}
