//! The in-suite short run: a small seeded mutator over each target's seeds.
//!
//! Deterministic (the seed is fixed per target), so a failure reproduces:
//! the panic message names the target, the iteration and the input in hex.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::FuzzTarget;

/// xorshift64*: a fixed seed gives the same run on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; 0 is mapped to 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes that tend to break parsers: syntax, escapes, edge numbers.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-0",
    b"1e400",
    b"-1",
    b"0.5",
    b"4294967295",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00",
    b"\xed\xa0\x80",
    b"\xff",
    b"\n",
    b"\r\n",
    b"~",
    b"net:",
    b"shs:",
    b"=.ed25519",
    b".sha256",
    b"@",
    b"%",
    b"&",
    b"../",
    b"/",
    b"\0",
];

/// Values for length and counter fields.
const WORDS: &[u32] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x1000,
    0x1001,
    0xffff,
    0x10_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

/// Applies one to four random edits to `data`, keeping it at most `max_len`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let w = WORDS[rng.below(WORDS.len())];
                let bytes = if rng.below(2) == 0 {
                    w.to_be_bytes()
                } else {
                    w.to_le_bytes()
                };
                data[i..i + 4].copy_from_slice(&bytes);
            }
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                data.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let copy = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            6 if !other.is_empty() => {
                let i = rng.below(other.len());
                let n = 1 + rng.below((other.len() - i).min(256));
                let at = rng.below(len + 1);
                let end = (at + n).min(len);
                data.splice(at..end, other[i..i + n].iter().copied());
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 {
                    data.splice(i..i, t.iter().copied());
                } else {
                    let end = (i + t.len()).min(len);
                    data.splice(i..end, t.iter().copied());
                }
            }
        }
    }
    data.truncate(max_len);
}

/// A fixed seed per target name (FNV-1a).
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `target` on each seed, then on `iterations` mutations of them; a
/// failing input is named in the panic message (hex) so it reproduces.
pub fn run(target: &FuzzTarget, iterations: usize) {
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "{}: no seeds", target.name);
    let max_len = seeds.iter().map(Vec::len).max().unwrap_or(0) * 2 + 64;
    let mut rng = Rng::new(seed_of(target.name));
    let check = |what: &str, input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| (target.body)(input))).is_err() {
            panic!(
                "fuzz target {} failed on {what}; input ({} bytes): {}",
                target.name,
                input.len(),
                hex(input)
            );
        }
    };
    for (i, s) in seeds.iter().enumerate() {
        check(&format!("seed {i}"), s);
    }
    for it in 0..iterations {
        let mut data = seeds[rng.below(seeds.len())].clone();
        let other = &seeds[rng.below(seeds.len())];
        // Stack mutations: a few rounds over the same input reach further.
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut data, other, max_len);
        }
        check(&format!("iteration {it}"), &data);
    }
}
