//! Fuzz target for invite codes.

use super::{bounded, FuzzTarget};
use crate::feed::Keypair;
use crate::invite::code::InviteCode;
use crate::net::address::Host;

/// `InviteCode::parse`: a code that parses prints as a code that parses to
/// the same code, with the same invite key.
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "invite_code",
    body,
    seeds,
};

/// The target's body: one code as a user pastes it.
pub fn body(data: &[u8]) {
    bounded(64 << 10, || {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(code) = InviteCode::parse(text) else {
            return;
        };
        let again = InviteCode::parse(&code.text()).expect("a printed code parses");
        assert!(again == code, "a code changes when printed");
        assert_eq!(again.key(), code.key(), "the invite key changes");
    });
}

fn seeds() -> Vec<Vec<u8>> {
    let node = Keypair::from_seed(&[5; 32]).id();
    let hosts = [
        Host::Ip("192.168.1.20".parse().expect("an IPv4 literal")),
        Host::Ip("fe80::1".parse().expect("an IPv6 literal")),
        Host::Name("box.local".into()),
    ];
    let mut out: Vec<Vec<u8>> = hosts
        .into_iter()
        .map(|h| {
            InviteCode::with_seed(h, 8008, node, [9; 32])
                .text()
                .into_bytes()
        })
        .collect();
    let key = node.to_string();
    let key = key.trim_start_matches('@').trim_end_matches(".ed25519");
    out.push(
        format!("net:192.168.1.20:8008~shs:{key}:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=")
            .into_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn invite_code_short_run() {
        run(&TARGET, 150000);
    }

    #[test]
    fn the_seeds_are_codes() {
        for seed in seeds() {
            let text = String::from_utf8(seed).expect("a seed is text");
            InviteCode::parse(&text).expect("a seed parses");
        }
    }
}
