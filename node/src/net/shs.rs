//! Secret handshake v1 (SHS), sans-IO.
//!
//! Four fixed-size messages authenticate both peers under a shared network key and derive
//! the box-stream keys for each direction:
//!
//! 1. client → server, 64 B: `hmac(N, a_pub) ‖ a_pub` (client ephemeral key)
//! 2. server → client, 64 B: `hmac(N, b_pub) ‖ b_pub` (server ephemeral key)
//! 3. client → server, 112 B: secretbox of the client's signature and long-term key
//! 4. server → client, 80 B: secretbox of the server's signature
//!
//! [`Handshake`] is a byte-in / byte-out state machine: feed it what the peer sent with
//! [`Handshake::read`], send what [`Handshake::take_output`] returns, and follow
//! [`Handshake::status`]. On any failure it produces no further output and the error is
//! sticky, so a driver only has to close the connection.

use crate::net::box_stream::{Decryptor, Encryptor};
use crate::net::crypto;

/// Length of msg1 (client hello).
pub const MSG1_LEN: usize = 64;
/// Length of msg2 (server hello).
pub const MSG2_LEN: usize = 64;
/// Length of msg3 (client authentication).
pub const MSG3_LEN: usize = 112;
/// Length of msg4 (server acceptance).
pub const MSG4_LEN: usize = 80;
/// Length of [`Outcome::to_bytes`]: both keys and both starting nonces.
pub const OUTCOME_LEN: usize = 112;

/// Plaintext length of msg3: signature (64) ‖ client long-term public key (32).
const MSG3_PLAIN_LEN: usize = 96;

/// The 32-byte network identifier (`caps.shs`); peers only talk within the same network.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkKey(pub [u8; 32]);

impl NetworkKey {
    /// The main SSB network (ssb-caps `shs`, base64 `1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=`).
    pub const MAIN: Self = Self([
        0xd4, 0xa1, 0xcb, 0x88, 0xa6, 0x6f, 0x02, 0xf8, 0xdb, 0x63, 0x5c, 0xe2, 0x64, 0x41, 0xcc,
        0x5d, 0xac, 0x1b, 0x08, 0x42, 0x0c, 0xea, 0xac, 0x23, 0x08, 0x39, 0xb7, 0x55, 0x84, 0x5a,
        0x9f, 0xfb,
    ]);
}

impl Default for NetworkKey {
    /// The main network.
    fn default() -> Self {
        Self::MAIN
    }
}

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// A long-term Ed25519 public key: the identity of a peer (its feed id).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Errors building keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The public half of a libsodium secret key (`seed ‖ pk`) does not match its seed.
    #[error("secret key's public half does not belong to its seed")]
    Mismatch,
}

/// Our long-term Ed25519 identity, plus its Curve25519 form used in the key exchange.
#[derive(Clone)]
pub struct Keypair {
    secret: [u8; 64],
    public: PublicKey,
    x25519_secret: [u8; 32],
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// From a 64-byte libsodium secret key (`seed ‖ public key`, as in ssb-keys' `private`).
    /// Checks that the public half matches the seed.
    pub fn from_secret(secret: [u8; 64]) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        let mut public = [0u8; 32];
        public.copy_from_slice(&secret[32..]);
        if crypto::ed25519_public_from_seed(&seed) != public {
            return Err(KeyError::Mismatch);
        }
        Ok(Self {
            secret,
            public: PublicKey(public),
            x25519_secret: crypto::ed25519_seed_to_x25519(&seed),
        })
    }

    /// From a 32-byte Ed25519 seed (e.g. an invite's seed).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = crypto::ed25519_public_from_seed(&seed);
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(&seed);
        secret[32..].copy_from_slice(&public);
        Self {
            secret,
            public: PublicKey(public),
            x25519_secret: crypto::ed25519_seed_to_x25519(&seed),
        }
    }

    /// A fresh random identity from the OS CSPRNG.
    pub fn generate() -> Self {
        Self::from_seed(crypto::random_32())
    }

    /// The public key (our identity as peers see it).
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// An Ed25519 detached signature of `msg` by this identity (as ssb-keys' `sign`).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        crypto::sign_detached(&self.secret, msg)
    }
}

/// A one-off Curve25519 key pair for a single handshake.
///
/// Use [`EphemeralKeypair::generate`] in production; [`EphemeralKeypair::from_secret`]
/// exists so tests can replay recorded handshakes byte for byte.
#[derive(Clone)]
pub struct EphemeralKeypair {
    secret: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for EphemeralKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKeypair").finish_non_exhaustive()
    }
}

impl EphemeralKeypair {
    /// A fresh random key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        Self::from_secret(crypto::random_32())
    }

    /// The key pair for a given secret scalar (deterministic; for tests and vectors).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            secret,
            public: crypto::x25519_base(&secret),
        }
    }

    /// The public half, sent in the hello message.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// Why a handshake failed. Every failure ends the handshake with no further output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// msg1 or msg2 failed its HMAC: the peer uses another network key, or sent garbage.
    #[error("peer hello does not authenticate under our network key")]
    HelloAuth,
    /// A peer key gives an all-zero Diffie-Hellman result (a low-order point).
    #[error("peer key gives a degenerate shared secret")]
    WeakKey,
    /// An Ed25519 public key (the server's, or the client's from msg3) is not a valid point.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// msg3 does not open: the client does not know our long-term key, or it was tampered with.
    #[error("client authentication (msg3) does not open")]
    ClientAuthBox,
    /// The client's signature in msg3 is invalid.
    #[error("client signature in msg3 is invalid")]
    ClientSignature,
    /// msg4 does not open: the server is not who we expected, or it was tampered with.
    #[error("server acceptance (msg4) does not open")]
    ServerAcceptBox,
    /// The server's signature in msg4 is invalid.
    #[error("server signature in msg4 is invalid")]
    ServerSignature,
    /// We rejected the peer ourselves ([`Handshake::reject`]).
    #[error("handshake rejected locally")]
    Rejected,
    /// [`Handshake::accept`] was called while no client was awaiting authorization.
    #[error("no client is awaiting authorization")]
    NotAuthorizing,
}

/// What a [`Handshake`] needs from its driver next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Output is queued: send [`Handshake::take_output`] to the peer.
    Send,
    /// Waiting for this many more bytes from the peer.
    Receive(usize),
    /// Server only: the client proved its identity ([`Handshake::peer_public_key`]);
    /// call [`Handshake::accept`] or [`Handshake::reject`].
    Authorize,
    /// Finished: [`Handshake::outcome`] holds the session keys.
    Done,
    /// Failed; nothing more will be produced. Close the connection.
    Failed(HandshakeError),
}

/// The result of a successful handshake: keys for both box-stream directions.
#[derive(Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Key for what we send.
    pub encryption_key: [u8; 32],
    /// Starting nonce for what we send.
    pub encryption_nonce: [u8; 24],
    /// Key for what we receive.
    pub decryption_key: [u8; 32],
    /// Starting nonce for what we receive.
    pub decryption_nonce: [u8; 24],
    /// The peer's authenticated long-term public key.
    pub peer: PublicKey,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// `encryption_key ‖ encryption_nonce ‖ decryption_key ‖ decryption_nonce`, the layout
    /// the shs1-test suite checks.
    pub fn to_bytes(&self) -> [u8; OUTCOME_LEN] {
        let mut out = [0u8; OUTCOME_LEN];
        out[..32].copy_from_slice(&self.encryption_key);
        out[32..56].copy_from_slice(&self.encryption_nonce);
        out[56..88].copy_from_slice(&self.decryption_key);
        out[88..].copy_from_slice(&self.decryption_nonce);
        out
    }

    /// The box-stream halves for this session: what we send, and what we receive.
    pub fn box_stream(&self) -> (Encryptor, Decryptor) {
        (
            Encryptor::new(self.encryption_key, self.encryption_nonce),
            Decryptor::new(self.decryption_key, self.decryption_nonce),
        )
    }
}

/// Secrets both sides hold after the hellos.
#[derive(Clone)]
struct Hellos {
    /// Client ephemeral public key (a_pub).
    client_eph: [u8; 32],
    /// Server ephemeral public key (b_pub).
    server_eph: [u8; 32],
    /// ab = DH(client ephemeral, server ephemeral).
    ab: [u8; 32],
    /// aB = DH(client ephemeral, server long-term).
    a_b_long: [u8; 32],
}

impl Hellos {
    /// Key of the msg3 secretbox: sha256(N ‖ ab ‖ aB).
    fn msg3_key(&self, net: &NetworkKey) -> [u8; 32] {
        crypto::sha256(&[&net.0, &self.ab, &self.a_b_long])
    }

    /// Key of the msg4 secretbox: sha256(N ‖ ab ‖ aB ‖ Ab).
    fn msg4_key(&self, net: &NetworkKey, a_long_b: &[u8; 32]) -> [u8; 32] {
        crypto::sha256(&[&net.0, &self.ab, &self.a_b_long, a_long_b])
    }

    /// What the client signs in msg3: N ‖ B ‖ sha256(ab).
    fn client_signed(&self, net: &NetworkKey, server: &PublicKey) -> Vec<u8> {
        [&net.0[..], &server.0, &crypto::sha256(&[&self.ab])].concat()
    }

    /// What the server signs in msg4: N ‖ sig_A ‖ A ‖ sha256(ab).
    fn server_signed(&self, net: &NetworkKey, sig_a: &[u8; 64], client: &PublicKey) -> Vec<u8> {
        [&net.0[..], sig_a, &client.0, &crypto::sha256(&[&self.ab])].concat()
    }

    /// Derives both directions' keys and nonces; `client_side` picks which is "ours".
    fn outcome(
        &self,
        net: &NetworkKey,
        a_long_b: &[u8; 32],
        client: &PublicKey,
        server: &PublicKey,
        client_side: bool,
    ) -> Outcome {
        let k = crypto::sha256(&[&self.msg4_key(net, a_long_b)]);
        let to_server_key = crypto::sha256(&[&k, &server.0]);
        let to_client_key = crypto::sha256(&[&k, &client.0]);
        let to_server_nonce = nonce_prefix(&crypto::auth(&net.0, &self.server_eph));
        let to_client_nonce = nonce_prefix(&crypto::auth(&net.0, &self.client_eph));
        if client_side {
            Outcome {
                encryption_key: to_server_key,
                encryption_nonce: to_server_nonce,
                decryption_key: to_client_key,
                decryption_nonce: to_client_nonce,
                peer: *server,
            }
        } else {
            Outcome {
                encryption_key: to_client_key,
                encryption_nonce: to_client_nonce,
                decryption_key: to_server_key,
                decryption_nonce: to_server_nonce,
                peer: *client,
            }
        }
    }
}

/// The first 24 bytes of an HMAC, used as a starting nonce.
fn nonce_prefix(mac: &[u8; 32]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&mac[..24]);
    nonce
}

/// Builds a hello (msg1/msg2): hmac(N, eph_pub) ‖ eph_pub.
fn hello(net: &NetworkKey, eph_pub: &[u8; 32]) -> [u8; 64] {
    let mut msg = [0u8; 64];
    msg[..32].copy_from_slice(&crypto::auth(&net.0, eph_pub));
    msg[32..].copy_from_slice(eph_pub);
    msg
}

/// Checks a hello and returns the peer's ephemeral public key.
fn check_hello(net: &NetworkKey, msg: &[u8]) -> Result<[u8; 32], HandshakeError> {
    let (mac, eph) = split_32_32(msg);
    if crypto::auth_verify(&net.0, &eph, &mac) {
        Ok(eph)
    } else {
        Err(HandshakeError::HelloAuth)
    }
}

/// Splits a 64-byte slice into two 32-byte arrays.
fn split_32_32(msg: &[u8]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&msg[..32]);
    b.copy_from_slice(&msg[32..64]);
    (a, b)
}

/// Diffie-Hellman that refuses degenerate (all-zero) results.
fn dh(secret: &[u8; 32], public: &[u8; 32]) -> Result<[u8; 32], HandshakeError> {
    crypto::x25519(secret, public).ok_or(HandshakeError::WeakKey)
}

/// secretbox with the all-zero nonce, as SHS uses: returns tag ‖ ciphertext.
fn seal_zero_nonce(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let mut body = plain.to_vec();
    let tag = crypto::secretbox_seal_detached(key, &[0u8; 24], &mut body);
    [&tag[..], &body].concat()
}

/// Opens a zero-nonce secretbox (tag ‖ ciphertext); `None` if it does not authenticate.
fn open_zero_nonce(key: &[u8; 32], boxed: &[u8]) -> Option<Vec<u8>> {
    let mut tag = [0u8; crypto::TAG_LEN];
    tag.copy_from_slice(boxed.get(..crypto::TAG_LEN)?);
    let mut body = boxed[crypto::TAG_LEN..].to_vec();
    crypto::secretbox_open_detached(key, &[0u8; 24], &mut body, &tag).then_some(body)
}

/// Where the handshake is.
enum Step {
    /// Client sent msg1, waits for msg2.
    ClientAwaitMsg2 {
        server: PublicKey,
        server_x25519: [u8; 32],
    },
    /// Client sent msg3, waits for msg4.
    ClientAwaitMsg4 {
        server: PublicKey,
        hellos: Hellos,
        sig_a: [u8; 64],
    },
    /// Server waits for msg1.
    ServerAwaitMsg1,
    /// Server sent msg2, waits for msg3.
    ServerAwaitMsg3 { hellos: Hellos },
    /// Server verified msg3 and waits for the driver's decision.
    ServerAuthorize {
        hellos: Hellos,
        client: PublicKey,
        sig_a: [u8; 64],
        a_long_b: [u8; 32],
    },
    /// Success.
    Done(Outcome),
    /// Failure (sticky).
    Failed(HandshakeError),
}

/// One side of a secret handshake. See the module docs for the message flow.
pub struct Handshake {
    net: NetworkKey,
    identity: Keypair,
    ephemeral: EphemeralKeypair,
    step: Step,
    /// Bytes of the message being received so far.
    inbuf: [u8; MSG3_LEN],
    filled: usize,
    /// Bytes to send.
    out: Vec<u8>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("identity", &self.identity.public)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts the client side (the dialer), which must know the server's public key.
    /// msg1 is queued at once.
    ///
    /// Fails with [`HandshakeError::InvalidPublicKey`] if `server` is not a valid point.
    pub fn client(
        net: NetworkKey,
        identity: Keypair,
        server: PublicKey,
        ephemeral: EphemeralKeypair,
    ) -> Result<Self, HandshakeError> {
        let server_x25519 =
            crypto::ed25519_pk_to_x25519(&server.0).ok_or(HandshakeError::InvalidPublicKey)?;
        let out = hello(&net, &ephemeral.public).to_vec();
        Ok(Self {
            net,
            identity,
            ephemeral,
            step: Step::ClientAwaitMsg2 {
                server,
                server_x25519,
            },
            inbuf: [0; MSG3_LEN],
            filled: 0,
            out,
        })
    }

    /// Starts the server side (the listener); it learns the client's identity from msg3.
    pub fn server(net: NetworkKey, identity: Keypair, ephemeral: EphemeralKeypair) -> Self {
        Self {
            net,
            identity,
            ephemeral,
            step: Step::ServerAwaitMsg1,
            inbuf: [0; MSG3_LEN],
            filled: 0,
            out: Vec::new(),
        }
    }

    /// What to do next.
    pub fn status(&self) -> Status {
        if let Step::Failed(err) = self.step {
            return Status::Failed(err);
        }
        if !self.out.is_empty() {
            return Status::Send;
        }
        match (self.expected_len(), &self.step) {
            (Some(len), _) => Status::Receive(len - self.filled),
            (None, Step::ServerAuthorize { .. }) => Status::Authorize,
            _ => Status::Done,
        }
    }

    /// Length of the peer message we are waiting for, if any.
    fn expected_len(&self) -> Option<usize> {
        match self.step {
            Step::ClientAwaitMsg2 { .. } => Some(MSG2_LEN),
            Step::ClientAwaitMsg4 { .. } => Some(MSG4_LEN),
            Step::ServerAwaitMsg1 => Some(MSG1_LEN),
            Step::ServerAwaitMsg3 { .. } => Some(MSG3_LEN),
            _ => None,
        }
    }

    /// Takes the bytes to send to the peer, if any.
    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// Feeds bytes received from the peer, in chunks of any size.
    ///
    /// Consumes at most the rest of the message currently expected and returns how many
    /// bytes it used; anything after the last handshake message (e.g. the first box-stream
    /// bytes) is left for the caller. Returns `Ok(0)` when no message is expected.
    pub fn read(&mut self, input: &[u8]) -> Result<usize, HandshakeError> {
        if let Step::Failed(err) = self.step {
            return Err(err);
        }
        let Some(want) = self.expected_len() else {
            return Ok(0);
        };
        let take = (want - self.filled).min(input.len());
        self.inbuf[self.filled..self.filled + take].copy_from_slice(&input[..take]);
        self.filled += take;
        if self.filled == want {
            self.filled = 0;
            let msg = self.inbuf;
            let step = std::mem::replace(&mut self.step, Step::Failed(HandshakeError::Rejected));
            match self.advance(step, &msg[..want]) {
                Ok(next) => self.step = next,
                Err(err) => {
                    self.fail(err);
                    return Err(err);
                }
            }
        }
        Ok(take)
    }

    /// Processes one complete peer message.
    fn advance(&mut self, step: Step, msg: &[u8]) -> Result<Step, HandshakeError> {
        match step {
            Step::ClientAwaitMsg2 {
                server,
                server_x25519,
            } => self.client_msg2(server, &server_x25519, msg),
            Step::ClientAwaitMsg4 {
                server,
                hellos,
                sig_a,
            } => self.client_msg4(server, &hellos, &sig_a, msg),
            Step::ServerAwaitMsg1 => self.server_msg1(msg),
            Step::ServerAwaitMsg3 { hellos } => self.server_msg3(hellos, msg),
            other => Ok(other),
        }
    }

    /// Client: check msg2, send msg3.
    fn client_msg2(
        &mut self,
        server: PublicKey,
        server_x25519: &[u8; 32],
        msg: &[u8],
    ) -> Result<Step, HandshakeError> {
        let server_eph = check_hello(&self.net, msg)?;
        let hellos = Hellos {
            client_eph: self.ephemeral.public,
            server_eph,
            ab: dh(&self.ephemeral.secret, &server_eph)?,
            a_b_long: dh(&self.ephemeral.secret, server_x25519)?,
        };
        let sig_a = crypto::sign_detached(
            &self.identity.secret,
            &hellos.client_signed(&self.net, &server),
        );
        let plain = [&sig_a[..], &self.identity.public.0].concat();
        self.out
            .extend(seal_zero_nonce(&hellos.msg3_key(&self.net), &plain));
        Ok(Step::ClientAwaitMsg4 {
            server,
            hellos,
            sig_a,
        })
    }

    /// Client: check msg4 and finish.
    fn client_msg4(
        &mut self,
        server: PublicKey,
        hellos: &Hellos,
        sig_a: &[u8; 64],
        msg: &[u8],
    ) -> Result<Step, HandshakeError> {
        let a_long_b = dh(&self.identity.x25519_secret, &hellos.server_eph)?;
        let sig_b: [u8; 64] = open_zero_nonce(&hellos.msg4_key(&self.net, &a_long_b), msg)
            .and_then(|plain| plain.try_into().ok())
            .ok_or(HandshakeError::ServerAcceptBox)?;
        let signed = hellos.server_signed(&self.net, sig_a, &self.identity.public);
        if !crypto::verify_detached(&server.0, &signed, &sig_b) {
            return Err(HandshakeError::ServerSignature);
        }
        Ok(Step::Done(hellos.outcome(
            &self.net,
            &a_long_b,
            &self.identity.public,
            &server,
            true,
        )))
    }

    /// Server: check msg1, send msg2.
    fn server_msg1(&mut self, msg: &[u8]) -> Result<Step, HandshakeError> {
        let client_eph = check_hello(&self.net, msg)?;
        let hellos = Hellos {
            client_eph,
            server_eph: self.ephemeral.public,
            ab: dh(&self.ephemeral.secret, &client_eph)?,
            a_b_long: dh(&self.identity.x25519_secret, &client_eph)?,
        };
        self.out.extend(hello(&self.net, &self.ephemeral.public));
        Ok(Step::ServerAwaitMsg3 { hellos })
    }

    /// Server: open and verify msg3, then wait for authorization.
    fn server_msg3(&mut self, hellos: Hellos, msg: &[u8]) -> Result<Step, HandshakeError> {
        let plain = open_zero_nonce(&hellos.msg3_key(&self.net), msg)
            .filter(|plain| plain.len() == MSG3_PLAIN_LEN)
            .ok_or(HandshakeError::ClientAuthBox)?;
        let mut sig_a = [0u8; 64];
        sig_a.copy_from_slice(&plain[..64]);
        let mut client = [0u8; 32];
        client.copy_from_slice(&plain[64..]);
        let client = PublicKey(client);
        let signed = hellos.client_signed(&self.net, &self.identity.public);
        if !crypto::verify_detached(&client.0, &signed, &sig_a) {
            return Err(HandshakeError::ClientSignature);
        }
        let client_x25519 =
            crypto::ed25519_pk_to_x25519(&client.0).ok_or(HandshakeError::InvalidPublicKey)?;
        let a_long_b = dh(&self.ephemeral.secret, &client_x25519)?;
        Ok(Step::ServerAuthorize {
            hellos,
            client,
            sig_a,
            a_long_b,
        })
    }

    /// The peer's long-term key: the server's from the start (client side), the client's
    /// once msg3 is verified (server side).
    pub fn peer_public_key(&self) -> Option<&PublicKey> {
        match &self.step {
            Step::ClientAwaitMsg2 { server, .. } | Step::ClientAwaitMsg4 { server, .. } => {
                Some(server)
            }
            Step::ServerAuthorize { client, .. } => Some(client),
            Step::Done(outcome) => Some(&outcome.peer),
            _ => None,
        }
    }

    /// Server: accept the authenticated client; queues msg4 and completes.
    pub fn accept(&mut self) -> Result<(), HandshakeError> {
        let Step::ServerAuthorize {
            hellos,
            client,
            sig_a,
            a_long_b,
        } = &self.step
        else {
            return Err(HandshakeError::NotAuthorizing);
        };
        let signed = hellos.server_signed(&self.net, sig_a, client);
        let sig_b = crypto::sign_detached(&self.identity.secret, &signed);
        let msg4 = seal_zero_nonce(&hellos.msg4_key(&self.net, a_long_b), &sig_b);
        let outcome = hellos.outcome(&self.net, a_long_b, client, &self.identity.public, false);
        self.out.extend(msg4);
        self.step = Step::Done(outcome);
        Ok(())
    }

    /// Abandons the handshake (e.g. the server refuses this client): nothing more is sent.
    pub fn reject(&mut self) {
        self.fail(HandshakeError::Rejected);
    }

    /// Enters the failed state and drops any unsent output.
    fn fail(&mut self, err: HandshakeError) {
        self.out.clear();
        self.step = Step::Failed(err);
    }

    /// The session keys, once the handshake is done.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.step {
            Step::Done(outcome) => Some(outcome),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::net::test_util::{hex, hex_array, str_at, vector};
    use base64::Engine as _;

    fn outcome_from_json(v: &serde_json::Value, peer: PublicKey) -> Outcome {
        Outcome {
            encryption_key: hex_array(str_at(v, "encryption_key")),
            encryption_nonce: hex_array(str_at(v, "encryption_nonce")),
            decryption_key: hex_array(str_at(v, "decryption_key")),
            decryption_nonce: hex_array(str_at(v, "decryption_nonce")),
            peer,
        }
    }

    /// Feeds `msg` in pieces of `chunk` bytes, returning total consumed or the error.
    fn feed(hs: &mut Handshake, msg: &[u8], chunk: usize) -> Result<usize, HandshakeError> {
        let mut used = 0;
        for piece in msg.chunks(chunk) {
            used += hs.read(piece)?;
        }
        Ok(used)
    }

    struct Vector {
        net: NetworkKey,
        client: Keypair,
        client_eph: EphemeralKeypair,
        server: Keypair,
        server_eph: EphemeralKeypair,
        msgs: [Vec<u8>; 4],
        client_outcome: Outcome,
        server_outcome: Outcome,
    }

    fn handshake_vector() -> Vector {
        let v = vector("shs1-crypto-js/handshake.json");
        let c = &v["client"];
        let s = &v["server"];
        let client = Keypair::from_secret(hex_array(str_at(c, "client_longterm_sk"))).unwrap();
        let server = Keypair::from_secret(hex_array(str_at(s, "server_longterm_sk"))).unwrap();
        assert_eq!(
            client.public().0,
            hex_array(str_at(c, "client_longterm_pk"))
        );
        assert_eq!(
            server.public().0,
            hex_array(str_at(s, "server_longterm_pk"))
        );
        let client_eph = EphemeralKeypair::from_secret(hex_array(str_at(c, "client_ephemeral_sk")));
        let server_eph = EphemeralKeypair::from_secret(hex_array(str_at(s, "server_ephemeral_sk")));
        assert_eq!(
            client_eph.public(),
            &hex_array(str_at(c, "client_ephemeral_pk"))
        );
        assert_eq!(
            server_eph.public(),
            &hex_array(str_at(s, "server_ephemeral_pk"))
        );
        Vector {
            net: NetworkKey(hex_array(str_at(&v, "network_identifier"))),
            client_outcome: outcome_from_json(&v["client_outcome"], *server.public()),
            server_outcome: outcome_from_json(&v["server_outcome"], *client.public()),
            client,
            client_eph,
            server,
            server_eph,
            msgs: ["msg1", "msg2", "msg3", "msg4"].map(|m| hex(str_at(&v, m))),
        }
    }

    #[test]
    fn main_network_key_matches_ssb_caps() {
        let caps = vector("ssb-caps/caps.json");
        let shs = base64::engine::general_purpose::STANDARD
            .decode(str_at(&caps, "shs"))
            .unwrap();
        assert_eq!(NetworkKey::MAIN.0.to_vec(), shs);
        assert_eq!(NetworkKey::default(), NetworkKey::MAIN);
    }

    #[test]
    fn client_reproduces_vector() {
        let v = handshake_vector();
        for chunk in [1, 7, 200] {
            let mut hs = Handshake::client(
                v.net,
                v.client.clone(),
                *v.server.public(),
                v.client_eph.clone(),
            )
            .unwrap();
            assert_eq!(hs.peer_public_key(), Some(v.server.public()));
            assert_eq!(hs.status(), Status::Send);
            assert_eq!(hs.take_output().unwrap(), v.msgs[0]);
            assert_eq!(hs.status(), Status::Receive(MSG2_LEN));
            assert_eq!(hs.take_output(), None);
            assert_eq!(feed(&mut hs, &v.msgs[1], chunk), Ok(MSG2_LEN));
            assert_eq!(hs.take_output().unwrap(), v.msgs[2]);
            assert_eq!(hs.status(), Status::Receive(MSG4_LEN));
            // msg4 followed by box-stream bytes: only msg4 is consumed.
            let mut msg4 = v.msgs[3].clone();
            msg4.extend_from_slice(b"box-stream data");
            assert_eq!(feed(&mut hs, &msg4, chunk), Ok(MSG4_LEN));
            assert_eq!(hs.status(), Status::Done);
            assert_eq!(hs.take_output(), None);
            assert_eq!(hs.outcome(), Some(&v.client_outcome));
            assert_eq!(hs.read(b"more"), Ok(0));
        }
    }

    #[test]
    fn server_reproduces_vector() {
        let v = handshake_vector();
        for chunk in [1, 13, 200] {
            let mut hs = Handshake::server(v.net, v.server.clone(), v.server_eph.clone());
            assert_eq!(hs.status(), Status::Receive(MSG1_LEN));
            assert_eq!(hs.take_output(), None);
            assert_eq!(feed(&mut hs, &v.msgs[0], chunk), Ok(MSG1_LEN));
            assert_eq!(hs.status(), Status::Send);
            assert_eq!(hs.take_output().unwrap(), v.msgs[1]);
            assert_eq!(hs.peer_public_key(), None);
            assert_eq!(feed(&mut hs, &v.msgs[2], chunk), Ok(MSG3_LEN));
            assert_eq!(hs.status(), Status::Authorize);
            assert_eq!(hs.peer_public_key(), Some(v.client.public()));
            assert_eq!(hs.outcome(), None);
            hs.accept().unwrap();
            assert_eq!(hs.status(), Status::Send);
            assert_eq!(hs.take_output().unwrap(), v.msgs[3]);
            assert_eq!(hs.status(), Status::Done);
            assert_eq!(hs.outcome(), Some(&v.server_outcome));
            assert_eq!(hs.accept(), Err(HandshakeError::NotAuthorizing));
        }
    }

    #[test]
    fn outcome_bytes_layout() {
        let v = handshake_vector();
        let bytes = v.client_outcome.to_bytes();
        assert_eq!(&bytes[..32], &v.client_outcome.encryption_key);
        assert_eq!(&bytes[32..56], &v.client_outcome.encryption_nonce);
        assert_eq!(&bytes[56..88], &v.client_outcome.decryption_key);
        assert_eq!(&bytes[88..], &v.client_outcome.decryption_nonce);
    }

    #[test]
    fn server_rejection_sends_no_msg4() {
        let v = handshake_vector();
        let mut hs = Handshake::server(v.net, v.server.clone(), v.server_eph.clone());
        feed(&mut hs, &v.msgs[0], 64).unwrap();
        hs.take_output().unwrap();
        feed(&mut hs, &v.msgs[2], 112).unwrap();
        hs.reject();
        assert_eq!(hs.status(), Status::Failed(HandshakeError::Rejected));
        assert_eq!(hs.take_output(), None);
        assert_eq!(hs.outcome(), None);
        assert_eq!(hs.accept(), Err(HandshakeError::NotAuthorizing));
    }

    #[test]
    fn corrupted_messages_fail_without_output() {
        let v = handshake_vector();
        // Server side: each byte position of msg1 / msg3 flipped.
        for (msg_index, expected) in [
            (0usize, HandshakeError::HelloAuth),
            (2, HandshakeError::ClientAuthBox),
        ] {
            for pos in [0, 31, 32, 63] {
                let mut hs = Handshake::server(v.net, v.server.clone(), v.server_eph.clone());
                if msg_index == 2 {
                    feed(&mut hs, &v.msgs[0], 64).unwrap();
                    hs.take_output().unwrap();
                }
                let mut bad = v.msgs[msg_index].clone();
                bad[pos] ^= 0x80;
                assert_eq!(feed(&mut hs, &bad, 64), Err(expected));
                assert_eq!(hs.status(), Status::Failed(expected));
                assert_eq!(hs.take_output(), None);
                assert_eq!(hs.read(&[0]), Err(expected));
            }
        }
        // Client side: corrupted msg2 / msg4.
        for (msg_index, expected) in [
            (1usize, HandshakeError::HelloAuth),
            (3, HandshakeError::ServerAcceptBox),
        ] {
            let mut hs = Handshake::client(
                v.net,
                v.client.clone(),
                *v.server.public(),
                v.client_eph.clone(),
            )
            .unwrap();
            hs.take_output().unwrap();
            if msg_index == 3 {
                feed(&mut hs, &v.msgs[1], 64).unwrap();
                hs.take_output().unwrap();
            }
            let mut bad = v.msgs[msg_index].clone();
            bad[40] ^= 1;
            assert_eq!(feed(&mut hs, &bad, 64), Err(expected));
            assert_eq!(hs.take_output(), None);
            assert_eq!(hs.outcome(), None);
        }
        // A failed client never sends msg3 even if it was not yet taken.
        let mut hs = Handshake::client(
            v.net,
            v.client.clone(),
            *v.server.public(),
            v.client_eph.clone(),
        )
        .unwrap();
        let mut bad = v.msgs[1].clone();
        bad[0] ^= 1;
        assert!(hs.read(&bad).is_err());
        assert_eq!(hs.take_output(), None);
    }

    #[test]
    fn wrong_network_or_wrong_server_key_fails() {
        let v = handshake_vector();
        let mut other_net = v.net;
        other_net.0[0] ^= 1;
        let mut client = Handshake::client(
            other_net,
            v.client.clone(),
            *v.server.public(),
            EphemeralKeypair::generate(),
        )
        .unwrap();
        let mut server = Handshake::server(v.net, v.server.clone(), EphemeralKeypair::generate());
        let msg1 = client.take_output().unwrap();
        assert_eq!(server.read(&msg1), Err(HandshakeError::HelloAuth));

        // Client dials someone else's key: the server cannot open msg3.
        let impostor = Keypair::from_seed([42; 32]);
        let (client, server) = run_pair(&v.client, impostor.public(), &v.server, v.net);
        assert_eq!(server, Err(HandshakeError::ClientAuthBox));
        assert_eq!(client.outcome(), None);
        assert_ne!(client.status(), Status::Done);
    }

    /// Runs a client against a server with random ephemerals; returns the client and the
    /// server's result.
    fn run_pair(
        client_id: &Keypair,
        dial: &PublicKey,
        server_id: &Keypair,
        net: NetworkKey,
    ) -> (Handshake, Result<Outcome, HandshakeError>) {
        let mut client =
            Handshake::client(net, client_id.clone(), *dial, EphemeralKeypair::generate()).unwrap();
        let mut server = Handshake::server(net, server_id.clone(), EphemeralKeypair::generate());
        for _ in 0..8 {
            if let Some(bytes) = client.take_output() {
                if let Err(e) = server.read(&bytes) {
                    return (client, Err(e));
                }
            }
            if server.status() == Status::Authorize {
                server.accept().unwrap();
            }
            if let Some(bytes) = server.take_output() {
                client.read(&bytes).unwrap();
            }
        }
        let outcome = server.outcome().cloned().ok_or(HandshakeError::Rejected);
        (client, outcome)
    }

    #[test]
    fn random_handshake_and_box_stream_connect() {
        let alice = Keypair::from_seed([1; 32]);
        let bob = Keypair::from_seed([2; 32]);
        let (client, server) = run_pair(&alice, bob.public(), &bob, NetworkKey::MAIN);
        let server = server.unwrap();
        let client = client.outcome().unwrap().clone();
        assert_eq!(client.peer, *bob.public());
        assert_eq!(server.peer, *alice.public());
        assert_eq!(client.encryption_key, server.decryption_key);
        assert_eq!(client.encryption_nonce, server.decryption_nonce);
        assert_eq!(client.decryption_key, server.encryption_key);
        assert_eq!(client.decryption_nonce, server.encryption_nonce);

        let (mut c_enc, mut c_dec) = client.box_stream();
        let (mut s_enc, mut s_dec) = server.box_stream();
        let mut wire = Vec::new();
        c_enc.encrypt(b"ping", &mut wire).unwrap();
        let mut plain = Vec::new();
        s_dec.decrypt(&wire, &mut plain).unwrap();
        assert_eq!(plain, b"ping");
        wire.clear();
        plain.clear();
        s_enc.encrypt(b"pong", &mut wire).unwrap();
        c_dec.decrypt(&wire, &mut plain).unwrap();
        assert_eq!(plain, b"pong");
    }

    #[test]
    fn keypair_checks_public_half() {
        let v = handshake_vector();
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(&v.client.secret[..32]);
        secret[32..].copy_from_slice(&v.server.public().0);
        assert_eq!(Keypair::from_secret(secret).err(), Some(KeyError::Mismatch));
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&v.client.secret[..32]);
        let from_seed = Keypair::from_seed(seed);
        assert_eq!(from_seed.public(), v.client.public());
    }

    #[test]
    fn invalid_server_key_is_refused_up_front() {
        // Not a valid Ed25519 point encoding (y >= p).
        let bad = PublicKey([0xff; 32]);
        let me = Keypair::generate();
        assert_eq!(
            Handshake::client(NetworkKey::MAIN, me, bad, EphemeralKeypair::generate()).err(),
            Some(HandshakeError::InvalidPublicKey)
        );
    }

    /// Replays the shs1-testsuite recorded run where we play the server.
    #[test]
    fn shs1_testsuite_server_role() {
        let v = vector("shs1-testsuite/server-role.json");
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 45);
        let mut counts = std::collections::BTreeMap::new();
        for case in cases {
            let expected = str_at(case, "expected");
            *counts.entry(expected.to_string()).or_insert(0) += 1;
            let net = NetworkKey(hex_array(str_at(case, "network_identifier")));
            let id = Keypair::from_secret(hex_array(str_at(case, "server_longterm_sk"))).unwrap();
            assert_eq!(id.public().0, hex_array(str_at(case, "server_longterm_pk")));
            let eph = EphemeralKeypair::from_secret(hex_array(str_at(case, "server_ephemeral_sk")));
            let mut hs = Handshake::server(net, id, eph);
            let r1 = hs.read(&hex(str_at(case, "msg1")));
            if expected == "reject_msg1" {
                assert!(r1.is_err(), "case {}", case["index"]);
                assert_eq!(hs.take_output(), None);
                continue;
            }
            assert_eq!(r1, Ok(MSG1_LEN));
            assert_eq!(hs.take_output().unwrap(), hex(str_at(case, "msg2")));
            let r3 = hs.read(&hex(str_at(case, "msg3")));
            if expected == "reject_msg3" {
                assert!(r3.is_err(), "case {}", case["index"]);
                assert_eq!(hs.take_output(), None);
                continue;
            }
            assert_eq!(expected, "success");
            assert_eq!(r3, Ok(MSG3_LEN));
            hs.accept().unwrap();
            assert_eq!(hs.take_output().unwrap(), hex(str_at(case, "msg4")));
            let outcome = hs.outcome().unwrap();
            assert_eq!(outcome.to_bytes().to_vec(), hex(str_at(case, "outcome")));
        }
        assert_eq!(counts["success"], 20);
        assert_eq!(counts["reject_msg1"], 10);
        assert_eq!(counts["reject_msg3"], 15);
    }

    /// Replays the shs1-testsuite recorded run where we play the client.
    #[test]
    fn shs1_testsuite_client_role() {
        let v = vector("shs1-testsuite/client-role.json");
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 45);
        let mut counts = std::collections::BTreeMap::new();
        for case in cases {
            let expected = str_at(case, "expected");
            *counts.entry(expected.to_string()).or_insert(0) += 1;
            let net = NetworkKey(hex_array(str_at(case, "network_identifier")));
            let id = Keypair::from_secret(hex_array(str_at(case, "client_longterm_sk"))).unwrap();
            let eph = EphemeralKeypair::from_secret(hex_array(str_at(case, "client_ephemeral_sk")));
            let server = PublicKey(hex_array(str_at(case, "server_longterm_pk")));
            let mut hs = Handshake::client(net, id, server, eph).unwrap();
            assert_eq!(hs.take_output().unwrap(), hex(str_at(case, "msg1")));
            let r2 = hs.read(&hex(str_at(case, "msg2")));
            if expected == "reject_msg2" {
                assert!(r2.is_err(), "case {}", case["index"]);
                assert_eq!(hs.take_output(), None);
                continue;
            }
            assert_eq!(r2, Ok(MSG2_LEN));
            assert_eq!(hs.take_output().unwrap(), hex(str_at(case, "msg3")));
            // The suite may send more than 80 bytes for a faulty msg4; only 80 are read.
            let r4 = hs.read(&hex(str_at(case, "msg4")));
            if expected == "reject_msg4" {
                assert!(r4.is_err(), "case {}", case["index"]);
                assert_eq!(hs.take_output(), None);
                assert_eq!(hs.outcome(), None);
                continue;
            }
            assert_eq!(expected, "success");
            assert_eq!(r4, Ok(MSG4_LEN));
            assert_eq!(hs.status(), Status::Done);
            let outcome = hs.outcome().unwrap();
            assert_eq!(outcome.to_bytes().to_vec(), hex(str_at(case, "outcome")));
        }
        assert_eq!(counts["success"], 20);
        assert_eq!(counts["reject_msg2"], 10);
        assert_eq!(counts["reject_msg4"], 15);
    }
}
