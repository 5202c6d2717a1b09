//! FuzzTarget for the secret handshake: either side fed the peer's bytes.

use std::sync::OnceLock;

use super::{bounded, FuzzTarget};
use crate::net::shs::{
    EphemeralKeypair, Handshake, Keypair, NetworkKey, Outcome, PublicKey, Status,
};

/// `shs::Handshake`: any bytes end in `Failed` (never a panic), with no
/// output after the failure; reading never takes more than it was given;
/// and a side that finishes was given the real peer's messages and agrees
/// with it on the keys (no one without the keys gets through).
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "shs",
    body,
    seeds,
};

/// Fixed identities and ephemeral keys, and the transcript between them.
struct Transcript {
    client: Keypair,
    server: Keypair,
    client_eph: EphemeralKeypair,
    server_eph: EphemeralKeypair,
    /// msg1 then msg3.
    from_client: Vec<u8>,
    /// msg2 then msg4.
    from_server: Vec<u8>,
    client_outcome: Outcome,
    server_outcome: Outcome,
}

fn client(t: &Transcript) -> Handshake {
    Handshake::client(
        NetworkKey::MAIN,
        t.client.clone(),
        *t.server.public(),
        t.client_eph.clone(),
    )
    .expect("the server key is a valid point")
}

fn server(t: &Transcript) -> Handshake {
    Handshake::server(NetworkKey::MAIN, t.server.clone(), t.server_eph.clone())
}

fn transcript() -> &'static Transcript {
    static T: OnceLock<Transcript> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Transcript {
            client: Keypair::from_seed([1; 32]),
            server: Keypair::from_seed([2; 32]),
            client_eph: EphemeralKeypair::from_secret([3; 32]),
            server_eph: EphemeralKeypair::from_secret([4; 32]),
            from_client: Vec::new(),
            from_server: Vec::new(),
            client_outcome: placeholder(),
            server_outcome: placeholder(),
        };
        let (mut c, mut s) = (client(&t), server(&t));
        for _ in 0..4 {
            if let Some(out) = c.take_output() {
                assert_eq!(s.read(&out), Ok(out.len()));
                t.from_client.extend(out);
            }
            if s.status() == Status::Authorize {
                s.accept().expect("accept");
            }
            if let Some(out) = s.take_output() {
                assert_eq!(c.read(&out), Ok(out.len()));
                t.from_server.extend(out);
            }
        }
        assert_eq!((c.status(), s.status()), (Status::Done, Status::Done));
        t.client_outcome = c.outcome().expect("client outcome").clone();
        t.server_outcome = s.outcome().expect("server outcome").clone();
        t
    })
}

fn placeholder() -> Outcome {
    Outcome {
        encryption_key: [0; 32],
        encryption_nonce: [0; 24],
        decryption_key: [0; 32],
        decryption_nonce: [0; 24],
        peer: PublicKey([0; 32]),
    }
}

/// The target's body. Byte 0: the side (even: we are the server) and the
/// chunk size; the rest is what the peer sends.
pub fn body(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    bounded(64 << 10, || drive(mode, input));
}

/// Runs one side on `input`; the outcome if it finished.
fn drive(mode: u8, input: &[u8]) -> Option<Outcome> {
    let t = transcript();
    {
        let we_serve = mode.is_multiple_of(2);
        let chunk = 1 + usize::from(mode / 2);
        let mut hs = if we_serve { server(t) } else { client(t) };
        let mut pos = 0;
        loop {
            match hs.status() {
                Status::Send => {
                    assert!(hs.take_output().is_some_and(|o| !o.is_empty()));
                }
                Status::Receive(n) => {
                    assert!(n > 0);
                    if pos == input.len() {
                        break;
                    }
                    let end = (pos + chunk).min(input.len());
                    match hs.read(&input[pos..end]) {
                        Ok(used) => {
                            assert!(used > 0 && used <= end - pos, "read took {used}");
                            pos += used;
                        }
                        Err(e) => {
                            assert_eq!(hs.status(), Status::Failed(e));
                            assert_eq!(hs.take_output(), None, "output after failure");
                            assert_eq!(hs.read(&input[pos..]), Err(e), "errors are sticky");
                            assert!(hs.outcome().is_none());
                            return None;
                        }
                    }
                }
                Status::Authorize => {
                    assert!(we_serve);
                    assert_eq!(hs.peer_public_key(), Some(t.client.public()));
                    hs.accept().expect("accept an authorized client");
                }
                Status::Done => break,
                Status::Failed(e) => panic!("failed ({e}) without an error from read"),
            }
        }
        if let Some(outcome) = hs.outcome() {
            let (real, expected) = if we_serve {
                (&t.from_client, &t.server_outcome)
            } else {
                (&t.from_server, &t.client_outcome)
            };
            assert_eq!(
                &input[..pos],
                &real[..],
                "finished on bytes the peer did not send"
            );
            assert_eq!(outcome, expected, "finished with other keys");
            assert_eq!(hs.read(&input[pos..]), Ok(0), "read after the end");
        }
        hs.outcome().cloned()
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let t = transcript();
    let mut seeds = Vec::new();
    for mode in [0u8, 30, 1, 31, 255] {
        let real = if mode % 2 == 0 {
            &t.from_client
        } else {
            &t.from_server
        };
        let mut s = vec![mode];
        s.extend_from_slice(real);
        seeds.push(s);
    }
    // msg1 with box-stream bytes after it.
    let mut s = vec![4];
    s.extend_from_slice(&t.from_client);
    s.extend_from_slice(&[0xaa; 40]);
    seeds.push(s);
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn shs_short_run() {
        run(&TARGET, 30000);
    }

    #[test]
    fn the_real_transcript_finishes_on_both_sides() {
        let t = transcript();
        assert_eq!(drive(6, &t.from_client).as_ref(), Some(&t.server_outcome));
        assert_eq!(drive(7, &t.from_server).as_ref(), Some(&t.client_outcome));
        assert_eq!(drive(0, &t.from_client[..100]), None);
    }
}
