//! Drives the sans-IO secret handshake over an async byte stream, under a
//! deadline: a peer that stalls mid-handshake costs one timer, not a task
//! forever.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::net::box_stream::BoxStreamError;
use crate::net::rpc::RpcError;
use crate::net::shs::{
    EphemeralKeypair, Handshake, HandshakeError, Keypair, NetworkKey, Outcome, PublicKey, Status,
};

/// Why a link failed or ended abnormally. Each variant names the layer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The secret handshake failed (wrong network key, wrong peer key, garbage).
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer closed the connection during the handshake.
    #[error("handshake: peer hung up after {0} bytes")]
    HandshakeHangup(usize),
    /// We refused the authenticated peer (e.g. it is blocked).
    #[error("handshake: refused peer {0:?}")]
    Refused(PublicKey),
    /// The encrypted stream was corrupt or cut.
    #[error("box-stream: {0}")]
    BoxStream(#[from] BoxStreamError),
    /// The muxrpc framing was invalid.
    #[error("muxrpc: {0}")]
    Rpc(#[from] RpcError),
    /// A broken invariant of our own (a bug), reported rather than panicking.
    #[error("internal: {0}")]
    Internal(&'static str),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// Runs `hs` to the end over `stream`. `authorize` decides on the client's
/// key (server side only).
async fn drive<S>(
    stream: &mut S,
    mut hs: Handshake,
    authorize: impl Fn(&PublicKey) -> bool,
) -> Result<Outcome, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut received = 0usize;
    loop {
        match hs.status() {
            Status::Send => {
                if let Some(bytes) = hs.take_output() {
                    stream.write_all(&bytes).await?;
                    stream.flush().await?;
                }
            }
            Status::Receive(n) => {
                let mut buf = vec![0u8; n];
                match stream.read_exact(&mut buf).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Err(LinkError::HandshakeHangup(received));
                    }
                    Err(e) => return Err(e.into()),
                }
                received += n;
                hs.read(&buf)?;
            }
            Status::Authorize => {
                let peer = *hs.peer_public_key().ok_or(HandshakeError::NotAuthorizing)?;
                if authorize(&peer) {
                    hs.accept()?;
                } else {
                    hs.reject();
                    return Err(LinkError::Refused(peer));
                }
            }
            Status::Done => {
                return hs
                    .outcome()
                    .cloned()
                    .ok_or(LinkError::Internal("handshake finished without an outcome"));
            }
            Status::Failed(err) => return Err(err.into()),
        }
    }
}

/// Opens a handshake as the client: we dialled `server` and must prove it is who we expect.
pub async fn client_handshake<S>(
    stream: &mut S,
    net: NetworkKey,
    identity: Keypair,
    server: PublicKey,
    deadline: Duration,
) -> Result<Outcome, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs = Handshake::client(net, identity, server, EphemeralKeypair::generate())?;
    tokio::time::timeout(deadline, drive(stream, hs, |_| true))
        .await
        .map_err(|_| LinkError::Timeout("handshake"))?
}

/// Answers a handshake as the server; `authorize` may refuse a client by key.
pub async fn server_handshake<S>(
    stream: &mut S,
    net: NetworkKey,
    identity: Keypair,
    deadline: Duration,
    authorize: impl Fn(&PublicKey) -> bool,
) -> Result<Outcome, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs = Handshake::server(net, identity, EphemeralKeypair::generate());
    tokio::time::timeout(deadline, drive(stream, hs, authorize))
        .await
        .map_err(|_| LinkError::Timeout("handshake"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_sides_agree_over_a_duplex_pipe() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let net = NetworkKey::default();
        let server = Keypair::generate();
        let client = Keypair::generate();
        let server_pk = *server.public();
        let client_pk = *client.public();
        let t = Duration::from_secs(5);
        let (c, s) = tokio::join!(
            client_handshake(&mut a, net, client, server_pk, t),
            server_handshake(&mut b, net, server, t, |_| true)
        );
        let (c, s) = (c.unwrap(), s.unwrap());
        assert_eq!(c.peer, server_pk);
        assert_eq!(s.peer, client_pk);
        assert_eq!(c.encryption_key, s.decryption_key);
        assert_eq!(c.decryption_nonce, s.encryption_nonce);
    }

    /// A client on `client_net` against a server on the main network that
    /// answers `authorize`; the server drops its end when done, as a node does.
    async fn against_server(
        client_net: NetworkKey,
        authorize: bool,
    ) -> (Result<Outcome, LinkError>, Result<Outcome, LinkError>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = Keypair::generate();
        let server_pk = *server.public();
        let t = Duration::from_secs(5);
        tokio::join!(
            client_handshake(&mut a, client_net, Keypair::generate(), server_pk, t),
            async {
                let r =
                    server_handshake(&mut b, NetworkKey::default(), server, t, |_| authorize).await;
                drop(b);
                r
            }
        )
    }

    #[tokio::test]
    async fn wrong_network_key_fails_on_both_sides() {
        let (c, s) = against_server(NetworkKey([7; 32]), true).await;
        assert!(matches!(s, Err(LinkError::Handshake(_))), "{s:?}");
        assert!(c.is_err());
    }

    #[tokio::test]
    async fn a_stalled_peer_times_out() {
        let (mut a, _b) = tokio::io::duplex(1024);
        let r = server_handshake(
            &mut a,
            NetworkKey::default(),
            Keypair::generate(),
            Duration::from_millis(50),
            |_| true,
        )
        .await;
        assert!(matches!(r, Err(LinkError::Timeout("handshake"))), "{r:?}");
    }

    #[tokio::test]
    async fn a_refused_client_is_reported() {
        let (c, s) = against_server(NetworkKey::default(), false).await;
        assert!(matches!(s, Err(LinkError::Refused(_))), "{s:?}");
        assert!(c.is_err());
    }
}
