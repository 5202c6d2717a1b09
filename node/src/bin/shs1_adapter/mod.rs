//! What the two shs1-test adapters (`shs1-server`, `shs1-client`) share: hex
//! arguments and driving a [`Handshake`] over stdin/stdout. Not a binary of
//! its own (cargo only builds `src/bin/*/main.rs`); both include it with
//! `#[path]`.

use std::io::{Read, Write};

use anyhow::{bail, Context};
use ssb_node::net::shs::{Handshake, Status};

/// Runs `hs` to the end over stdin/stdout, then writes the 112-byte outcome.
/// A server accepts every client (the suite tests the crypto, not policy);
/// a client never reaches the authorize step. On any failure nothing more is
/// written.
pub fn drive(mut hs: Handshake, peer: &str) -> anyhow::Result<()> {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    loop {
        match hs.status() {
            Status::Send => {
                if let Some(bytes) = hs.take_output() {
                    output.write_all(&bytes)?;
                    output.flush()?;
                }
            }
            Status::Receive(n) => {
                let mut buf = vec![0u8; n];
                input
                    .read_exact(&mut buf)
                    .with_context(|| format!("reading from the {peer}"))?;
                hs.read(&buf)?;
            }
            Status::Authorize => hs.accept()?,
            Status::Done => break,
            Status::Failed(err) => return Err(err.into()),
        }
    }
    let outcome = hs
        .outcome()
        .context("handshake finished without an outcome")?;
    output.write_all(&outcome.to_bytes())?;
    output.flush()?;
    Ok(())
}

/// Parses a hex argument of exactly `N` bytes.
pub fn hex_arg<const N: usize>(text: &str, what: &str) -> anyhow::Result<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        bail!("{what}: expected {} hex digits, got {}", 2 * N, bytes.len());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).context("non-ASCII hex")?;
        *byte = u8::from_str_radix(digits, 16).with_context(|| format!("{what}: bad hex"))?;
    }
    Ok(out)
}
