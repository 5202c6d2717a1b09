//! Target for muxrpc frames (the packet-stream codec).

use super::{bounded, Target};
use crate::net::rpc::{
    Decoder, DecoderItem, Encoder, Frame, RpcError, DEFAULT_MAX_BODY_LEN, HEADER_LEN,
};

/// `rpc::Decoder`: the same items and error whatever the chunking; every
/// frame encodes back to the very bytes it came from; nothing is consumed
/// after goodbye; a body grows only with the bytes that arrived (a 4 GiB or
/// 1 MiB length field allocates nothing up front).
pub const FRAMES: Target = Target {
    name: "rpc_frames",
    body: frames,
    seeds: frames_seeds,
};

/// What a decode pass saw: each item with the input range it came from.
#[derive(Debug, PartialEq)]
pub(crate) struct Decoded {
    pub(crate) items: Vec<(DecoderItem, std::ops::Range<usize>)>,
    pub(crate) error: Option<RpcError>,
    pub(crate) consumed: usize,
}

/// Decodes `input` fed in chunks of the sizes `chunk` gives (cycled).
pub(crate) fn decode(input: &[u8], chunks: &[usize]) -> Decoded {
    let mut dec = Decoder::new();
    let mut items = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while pos < input.len() {
        let end = (pos + sizes.next().unwrap_or(1).max(1)).min(input.len());
        let mut at = pos;
        while at < end {
            match dec.decode(&input[at..end]) {
                Ok((n, item)) => {
                    at += n;
                    if let Some(item) = item {
                        items.push((item, start..at));
                        start = at;
                    }
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    let again = dec.decode(&input[at..end]);
                    assert_eq!(again, Err(e.clone()), "decoder errors are sticky");
                    return Decoded {
                        items,
                        error: Some(e),
                        consumed: at,
                    };
                }
            }
        }
        if dec.is_finished() {
            assert_eq!(
                dec.decode(&input[at..]),
                Ok((0, None)),
                "consumed after goodbye"
            );
            return Decoded {
                items,
                error: None,
                consumed: at,
            };
        }
        pos = end;
    }
    Decoded {
        items,
        error: None,
        consumed: pos,
    }
}

/// The frames target's body. Byte 0 picks the chunking; the rest is the stream.
pub fn frames(data: &[u8]) {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    // A body grows with what arrived: at most about twice the input, and
    // never the announced length before its bytes came.
    bounded(2 * input.len() + (64 << 10), || {
        let whole = decode(input, &[input.len().max(1)]);
        let chunks = [1 + usize::from(mode % 13), 1 + usize::from(mode / 13)];
        let split = decode(input, &chunks);
        assert_eq!(whole.items, split.items, "chunking changes the items");
        assert_eq!(whole.error, split.error, "chunking changes the error");
        for (item, range) in &whole.items {
            let raw = &input[range.clone()];
            match item {
                DecoderItem::Goodbye => assert_eq!(raw, &[0u8; HEADER_LEN][..]),
                DecoderItem::Frame(f) if f.body.is_empty() => {
                    assert_eq!(raw.len(), HEADER_LEN);
                    assert_eq!(raw[1..5], [0, 0, 0, 0]);
                }
                DecoderItem::Frame(f) => {
                    assert!(f.body.len() <= DEFAULT_MAX_BODY_LEN);
                    let mut out = Vec::new();
                    Encoder::new()
                        .encode(f, &mut out)
                        .expect("a decoded frame encodes");
                    assert_eq!(out, raw, "frame does not encode to its bytes");
                }
            }
        }
    });
}

/// A stream of real frames (requests, replies, stream items, an end, an
/// empty frame) made by the encoder, then goodbye.
pub(crate) fn sample_stream(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new();
    for f in frames {
        if f.body.is_empty() {
            out.push(f.flags());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&f.req.to_be_bytes());
        } else {
            enc.encode(f, &mut out).expect("a sample frame");
        }
    }
    enc.goodbye(&mut out).expect("goodbye");
    out
}

fn frames_seeds() -> Vec<Vec<u8>> {
    use crate::net::rpc::BodyType;
    let frame = |req, stream, end, body_type, body: &[u8]| Frame {
        req,
        stream,
        end,
        body_type,
        body: body.to_vec(),
    };
    let frames = vec![
        frame(
            1,
            true,
            false,
            BodyType::Json,
            br#"{"name":["createHistoryStream"],"type":"source","args":[{"id":"@x"}]}"#,
        ),
        frame(
            -1,
            true,
            false,
            BodyType::Json,
            br#"{"key":"%a","value":{}}"#,
        ),
        frame(-1, true, false, BodyType::Binary, &[0, 1, 2, 255]),
        frame(2, false, false, BodyType::Utf8, b"hello"),
        frame(
            -2,
            false,
            true,
            BodyType::Json,
            br#"{"message":"no","name":"Error"}"#,
        ),
        frame(-3, true, false, BodyType::Binary, b""),
        frame(-1, true, true, BodyType::Json, b"true"),
    ];
    let stream = sample_stream(&frames);
    let mut seeds = Vec::new();
    for mode in [0u8, 7, 100, 255] {
        let mut s = vec![mode];
        s.extend_from_slice(&stream);
        seeds.push(s);
    }
    // A header announcing 4 GiB, then a few bytes.
    let mut huge = vec![3u8, 0b1010];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&1i32.to_be_bytes());
    huge.extend_from_slice(b"{}");
    seeds.push(huge);
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn frames_short_run() {
        run(&FRAMES, 100000);
    }

    #[test]
    fn the_seed_stream_decodes_to_goodbye() {
        let seed = &frames_seeds()[0];
        let d = decode(&seed[1..], &[3]);
        assert_eq!(d.error, None);
        assert_eq!(d.items.len(), 8);
        assert_eq!(d.items.last().map(|(i, _)| i), Some(&DecoderItem::Goodbye));
    }
}
