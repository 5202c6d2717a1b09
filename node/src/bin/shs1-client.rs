//! `shs1-client`: the client side of the secret handshake over stdin/stdout, for the
//! shs1-test suite (`node test-client.js <this binary>`).
//!
//! Usage: `shs1-client <network_key_hex> <server_public_key_hex>`. Uses a fresh random
//! long-term identity. Writes msg1 and msg3, reads msg2 and msg4 from stdin, then writes the
//! 112-byte outcome (encryption key ‖ nonce ‖ decryption key ‖ nonce). On invalid peer
//! input it exits with status 1 at once, writing nothing more.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ssb_node::net::shs::{EphemeralKeypair, Handshake, Keypair, NetworkKey, PublicKey, Status};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shs1-client: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [net, server] = args.as_slice() else {
        bail!("usage: shs1-client <network_key_hex> <server_public_key_hex>");
    };
    let net = NetworkKey(hex_arg(net, "network key")?);
    let server = PublicKey(hex_arg(server, "server public key")?);
    // The suite does not care who the client is: a throwaway identity will do.
    let identity = Keypair::generate();
    let mut hs = Handshake::client(net, identity, server, EphemeralKeypair::generate())?;

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
                    .context("reading from the server")?;
                hs.read(&buf)?;
            }
            // Only a server authorizes; a client never gets here.
            Status::Authorize => bail!("unexpected authorization step on the client"),
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
fn hex_arg<const N: usize>(text: &str, what: &str) -> anyhow::Result<[u8; N]> {
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
