//! `shs1-server`: the server side of the secret handshake over stdin/stdout, for the
//! shs1-test suite (`node test-server.js <this binary>`).
//!
//! Usage: `shs1-server <network_key_hex> <server_secret_key_hex (64 B)> <server_public_key_hex>`.
//! Reads msg1 and msg3 from stdin, writes msg2, then msg4 followed by the 112-byte outcome
//! (encryption key ‖ nonce ‖ decryption key ‖ nonce). On invalid peer input it exits with
//! status 1 at once, writing nothing more.

use std::process::ExitCode;

#[path = "shs1_adapter/mod.rs"]
mod adapter;
use adapter::hex_arg;

use anyhow::bail;
use ssb_node::net::shs::{EphemeralKeypair, Handshake, Keypair, NetworkKey};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shs1-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [net, secret, public] = args.as_slice() else {
        bail!("usage: shs1-server <network_key_hex> <secret_key_hex> <public_key_hex>");
    };
    let net = NetworkKey(hex_arg(net, "network key")?);
    let identity = Keypair::from_secret(hex_arg(secret, "secret key")?)?;
    if identity.public().0 != hex_arg::<32>(public, "public key")? {
        bail!("public key does not match the secret key");
    }
    let hs = Handshake::server(net, identity, EphemeralKeypair::generate());

    adapter::drive(hs, "client")
}
