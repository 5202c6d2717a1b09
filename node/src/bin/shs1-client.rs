//! `shs1-client`: the client side of the secret handshake over stdin/stdout, for the
//! shs1-test suite (`node test-client.js <this binary>`).
//!
//! Usage: `shs1-client <network_key_hex> <server_public_key_hex>`. Uses a fresh random
//! long-term identity. Writes msg1 and msg3, reads msg2 and msg4 from stdin, then writes the
//! 112-byte outcome (encryption key ‖ nonce ‖ decryption key ‖ nonce). On invalid peer
//! input it exits with status 1 at once, writing nothing more.

use std::process::ExitCode;

#[path = "shs1_adapter/mod.rs"]
mod adapter;
use adapter::hex_arg;

use anyhow::bail;
use ssb_node::net::shs::{EphemeralKeypair, Handshake, Keypair, NetworkKey, PublicKey};

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
    let hs = Handshake::client(net, identity, server, EphemeralKeypair::generate())?;

    adapter::drive(hs, "server")
}
