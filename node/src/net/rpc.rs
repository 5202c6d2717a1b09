//! muxrpc framing (packet-stream codec), sans-IO.
//!
//! Every frame is a 9-byte header, `flags(1) ‖ body length (u32 BE) ‖ request number (i32 BE)`,
//! followed by the body. Flags: bit 3 = stream, bit 2 = end/error, bits 0–1 = body type.
//! Nine zero bytes say goodbye. The JS decoder treats *any* header with length 0 as goodbye,
//! so the [`Encoder`] refuses empty bodies; our [`Decoder`] reads a length-0 header that is not
//! all zeros as an empty frame, because JS peers do send those (ssb-blobs). Frames are not aligned to box-stream boxes: the
//! [`Decoder`] takes bytes in chunks of any size.
//!
//! Bodies stay raw bytes here; JSON (de)serialisation belongs to the layer above.

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// Default cap on a received frame body (1 MiB): bounds what one peer frame can allocate.
pub const DEFAULT_MAX_BODY_LEN: usize = 1 << 20;

const FLAG_STREAM: u8 = 0b1000;
const FLAG_END: u8 = 0b0100;
const TYPE_MASK: u8 = 0b0011;

/// Errors from framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// A frame with an empty body was about to be sent; peers would read it as goodbye.
    #[error("refusing to encode a frame with an empty body (it would read as goodbye)")]
    EmptyBody,
    /// A body too long for the 32-bit length field.
    #[error("frame body of {0} bytes does not fit the 32-bit length field")]
    BodyTooLong(usize),
    /// A frame was about to be sent after our goodbye.
    #[error("frame encoded after goodbye")]
    Closed,
    /// The peer sent flag bits this protocol does not define (including body type 3).
    #[error("frame header has invalid flags {0:#04x}")]
    InvalidFlags(u8),
    /// The peer announced a body larger than the decoder's limit.
    #[error("peer frame body of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced body length.
        len: u32,
        /// Configured maximum.
        max: usize,
    },
    /// Our own request numbers ran out (2^31 − 1 requests on one connection).
    #[error("request numbers exhausted")]
    RequestNumbersExhausted,
}

/// How the body of a frame is to be interpreted (flag bits 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// Raw bytes (e.g. blob chunks).
    Binary = 0,
    /// A UTF-8 string.
    Utf8 = 1,
    /// A JSON value (compact, UTF-8).
    Json = 2,
}

impl BodyType {
    /// Decodes the body type bits; `None` for the undefined value 3.
    fn from_bits(bits: u8) -> Option<Self> {
        match bits & TYPE_MASK {
            0 => Some(Self::Binary),
            1 => Some(Self::Utf8),
            2 => Some(Self::Json),
            _ => None,
        }
    }
}

/// One muxrpc frame.
///
/// `req > 0` for a request (or its follow-up frames) from the sender; `req < 0` for the
/// frames answering request `-req` of the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Request number (see the type docs for the sign convention).
    pub req: i32,
    /// Part of a stream (source/sink/duplex) rather than a single async reply.
    pub stream: bool,
    /// Ends the stream, or marks an error reply.
    pub end: bool,
    /// How to read `body`.
    pub body_type: BodyType,
    /// Body bytes (never empty on the wire).
    pub body: Vec<u8>,
}

impl Frame {
    /// The flags byte for this frame.
    pub fn flags(&self) -> u8 {
        (if self.stream { FLAG_STREAM } else { 0 })
            | (if self.end { FLAG_END } else { 0 })
            | self.body_type as u8
    }

    /// The 9-byte header for this frame; fails if the body is empty or too long.
    pub fn header(&self) -> Result<[u8; HEADER_LEN], RpcError> {
        if self.body.is_empty() {
            return Err(RpcError::EmptyBody);
        }
        let len =
            u32::try_from(self.body.len()).map_err(|_| RpcError::BodyTooLong(self.body.len()))?;
        let mut header = [0u8; HEADER_LEN];
        header[0] = self.flags();
        header[1..5].copy_from_slice(&len.to_be_bytes());
        header[5..9].copy_from_slice(&self.req.to_be_bytes());
        Ok(header)
    }
}

/// Something a [`Decoder`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecoderItem {
    /// A complete frame.
    Frame(Frame),
    /// The peer said goodbye (a header with body length 0); no more frames follow.
    Goodbye,
}

/// Writes frames; refuses empty bodies and anything after goodbye.
#[derive(Debug, Default)]
pub struct Encoder {
    closed: bool,
}

impl Encoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), RpcError> {
        if self.closed {
            return Err(RpcError::Closed);
        }
        let header = frame.header()?;
        out.reserve(HEADER_LEN + frame.body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&frame.body);
        Ok(())
    }

    /// Appends the 9-byte goodbye and closes the encoder.
    pub fn goodbye(&mut self, out: &mut Vec<u8>) -> Result<(), RpcError> {
        if self.closed {
            return Err(RpcError::Closed);
        }
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        self.closed = true;
        Ok(())
    }

    /// Whether goodbye has been written.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Decoder progress.
#[derive(Debug)]
enum DecodeState {
    /// Collecting a header (`filled` bytes so far).
    Header { filled: usize },
    /// Collecting the body of a frame whose header is parsed.
    Body {
        req: i32,
        stream: bool,
        end: bool,
        body_type: BodyType,
        len: usize,
    },
    /// Goodbye received.
    Finished,
    /// Invalid input; the error is sticky.
    Failed(RpcError),
}

/// Incremental frame decoder over chunks of any size, with a bounded body size.
#[derive(Debug)]
pub struct Decoder {
    max_body_len: usize,
    state: DecodeState,
    header: [u8; HEADER_LEN],
    body: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder accepting bodies up to [`DEFAULT_MAX_BODY_LEN`].
    pub fn new() -> Self {
        Self::with_max_body_len(DEFAULT_MAX_BODY_LEN)
    }

    /// A decoder accepting bodies up to `max_body_len` bytes; larger frames are an error.
    pub fn with_max_body_len(max_body_len: usize) -> Self {
        Self {
            max_body_len,
            state: DecodeState::Header { filled: 0 },
            header: [0; HEADER_LEN],
            body: Vec::new(),
        }
    }

    /// Consumes bytes from `input` up to the end of the next complete item.
    ///
    /// Returns how many bytes were consumed and the item, if one completed. Call again with
    /// the rest of the input until it is used up. After [`DecoderItem::Goodbye`] nothing more is
    /// consumed. Errors are sticky.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<DecoderItem>), RpcError> {
        let mut pos = 0;
        loop {
            match &self.state {
                DecodeState::Finished => return Ok((pos, None)),
                DecodeState::Failed(err) => return Err(err.clone()),
                &DecodeState::Header { filled } => {
                    let take = (HEADER_LEN - filled).min(input.len() - pos);
                    self.header[filled..filled + take].copy_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if filled + take < HEADER_LEN {
                        self.state = DecodeState::Header {
                            filled: filled + take,
                        };
                        return Ok((pos, None));
                    }
                    match self.parse_header() {
                        Ok(Some(state)) => self.state = state,
                        Ok(None) => {
                            self.state = DecodeState::Finished;
                            return Ok((pos, Some(DecoderItem::Goodbye)));
                        }
                        Err(err) => {
                            self.state = DecodeState::Failed(err.clone());
                            return Err(err);
                        }
                    }
                }
                &DecodeState::Body {
                    req,
                    stream,
                    end,
                    body_type,
                    len,
                } => {
                    let take = (len - self.body.len()).min(input.len() - pos);
                    self.body.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    if self.body.len() < len {
                        return Ok((pos, None));
                    }
                    self.state = DecodeState::Header { filled: 0 };
                    let frame = Frame {
                        req,
                        stream,
                        end,
                        body_type,
                        body: std::mem::take(&mut self.body),
                    };
                    return Ok((pos, Some(DecoderItem::Frame(frame))));
                }
            }
        }
    }

    /// Parses the buffered header: `Ok(None)` for goodbye, else the body state.
    fn parse_header(&self) -> Result<Option<DecodeState>, RpcError> {
        let h = &self.header;
        let flags = h[0];
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        let req = i32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        if len == 0 && flags == 0 && req == 0 {
            return Ok(None);
        }
        let body_type = match BodyType::from_bits(flags) {
            Some(t) if flags & !(FLAG_STREAM | FLAG_END | TYPE_MASK) == 0 => t,
            _ => return Err(RpcError::InvalidFlags(flags)),
        };
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > self.max_body_len {
            return Err(RpcError::FrameTooLarge {
                len,
                max: self.max_body_len,
            });
        }
        if len == 0 {
            // JS peers send an empty frame where a blob's size is an exact
            // multiple of their 64 KiB read size (ssb-blobs' last chunk).
            // packet-stream-codec would take it for goodbye; we take it for
            // what it is, an empty item, and keep the link.
            return Ok(Some(DecodeState::Body {
                req,
                stream: flags & FLAG_STREAM != 0,
                end: flags & FLAG_END != 0,
                body_type,
                len: 0,
            }));
        }
        // No up-front reservation: the body grows only as the peer's bytes arrive.
        Ok(Some(DecodeState::Body {
            req,
            stream: flags & FLAG_STREAM != 0,
            end: flags & FLAG_END != 0,
            body_type,
            len: len_usize,
        }))
    }

    /// Whether the peer's goodbye was received.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, DecodeState::Finished)
    }

    /// Whether a frame is partially buffered (EOF now would cut it off).
    pub fn is_mid_frame(&self) -> bool {
        match self.state {
            DecodeState::Header { filled } => filled > 0,
            DecodeState::Body { .. } => true,
            DecodeState::Finished | DecodeState::Failed(_) => false,
        }
    }
}

/// Hands out this side's request numbers: 1, 2, 3, … (responses use the negation).
#[derive(Debug, Clone)]
pub struct RequestNumbers {
    next: i32,
}

impl Default for RequestNumbers {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestNumbers {
    /// Starts at 1.
    pub fn new() -> Self {
        Self { next: 1 }
    }

    /// The next unused request number; fails after `i32::MAX` rather than reusing one.
    pub fn next_number(&mut self) -> Result<i32, RpcError> {
        if self.next <= 0 {
            return Err(RpcError::RequestNumbersExhausted);
        }
        let req = self.next;
        self.next = self.next.checked_add(1).unwrap_or(0);
        Ok(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::net::test_util::{hex, str_at, vector};

    fn body_type(name: &str) -> BodyType {
        match name {
            "json" => BodyType::Json,
            "utf8-string" => BodyType::Utf8,
            "binary" => BodyType::Binary,
            other => panic!("unknown body type {other}"),
        }
    }

    /// The vector frames with their expected wire bytes, and the goodbye.
    fn vector_frames() -> (Vec<(Frame, Vec<u8>)>, Vec<u8>) {
        let v = vector("js-reference-generated/rpc-frames.json");
        let frames = v["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let frame = Frame {
                    req: i32::try_from(f["req"].as_i64().unwrap()).unwrap(),
                    stream: f["stream"].as_bool().unwrap(),
                    end: f["end"].as_bool().unwrap(),
                    body_type: body_type(str_at(f, "body_type")),
                    body: hex(str_at(f, "body")),
                };
                assert_eq!(
                    frame.body.len() as u64,
                    f["decoded_length"].as_u64().unwrap()
                );
                if let Some(text) = f["body_utf8"].as_str() {
                    assert_eq!(frame.body, text.as_bytes());
                }
                let mut wire = hex(str_at(f, "header"));
                wire.extend(&frame.body);
                (frame, wire)
            })
            .collect::<Vec<_>>();
        (frames, hex(str_at(&v, "goodbye_header")))
    }

    #[test]
    fn encodes_vector_frames_exactly() {
        let (frames, goodbye) = vector_frames();
        assert_eq!(frames.len(), 14);
        let mut enc = Encoder::new();
        let mut all = Vec::new();
        for (frame, wire) in &frames {
            let mut out = Vec::new();
            enc.encode(frame, &mut out).unwrap();
            assert_eq!(&out, wire, "{frame:?}");
            all.extend(out);
        }
        let mut out = Vec::new();
        enc.goodbye(&mut out).unwrap();
        assert_eq!(out, goodbye);
        assert!(enc.is_closed());
        assert_eq!(enc.encode(&frames[0].0, &mut out), Err(RpcError::Closed));
    }

    #[test]
    fn decodes_vector_stream_in_any_chunking() {
        let (frames, goodbye) = vector_frames();
        let mut wire: Vec<u8> = frames.iter().flat_map(|(_, w)| w.clone()).collect();
        wire.extend(&goodbye);
        let end = wire.len();
        wire.extend(b"ignored after goodbye");
        for chunk in [1, 2, 8, 9, 10, 64, wire.len()] {
            let mut dec = Decoder::new();
            let mut items = Vec::new();
            let mut consumed = 0;
            for piece in wire.chunks(chunk) {
                let mut rest = piece;
                loop {
                    let (n, item) = dec.decode(rest).unwrap();
                    consumed += n;
                    rest = &rest[n..];
                    match item {
                        Some(item) => items.push(item),
                        None => break,
                    }
                }
            }
            assert_eq!(consumed, end, "chunk {chunk}");
            assert!(dec.is_finished());
            assert!(!dec.is_mid_frame());
            let mut expected: Vec<DecoderItem> = frames
                .iter()
                .map(|(f, _)| DecoderItem::Frame(f.clone()))
                .collect();
            expected.push(DecoderItem::Goodbye);
            assert_eq!(items, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn nine_zero_bytes_are_goodbye() {
        let mut dec = Decoder::new();
        assert_eq!(
            dec.decode(&[0; 9]).unwrap(),
            (9, Some(DecoderItem::Goodbye))
        );
        assert_eq!(dec.decode(b"x").unwrap(), (0, None));
    }

    #[test]
    fn an_empty_frame_from_a_js_peer_is_an_empty_item_not_goodbye() {
        // ssb-blobs sends this after the last 64 KiB of a blob whose size is
        // an exact multiple of 64 KiB: stream, binary, length 0, request -3.
        let mut dec = Decoder::new();
        let header = [0x08, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfd];
        let mut wire = header.to_vec();
        wire.extend([0x0e, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfd]);
        wire.extend(b"true");
        let (used, item) = dec.decode(&wire).unwrap();
        assert_eq!(used, 9);
        assert_eq!(
            item,
            Some(DecoderItem::Frame(Frame {
                req: -3,
                stream: true,
                end: false,
                body_type: BodyType::Binary,
                body: vec![],
            }))
        );
        let (_, item) = dec.decode(&wire[9..]).unwrap();
        assert!(matches!(
            item,
            Some(DecoderItem::Frame(Frame { end: true, .. }))
        ));
    }

    #[test]
    fn empty_body_is_refused() {
        let frame = Frame {
            req: 1,
            stream: true,
            end: true,
            body_type: BodyType::Json,
            body: Vec::new(),
        };
        let mut out = Vec::new();
        assert_eq!(
            Encoder::new().encode(&frame, &mut out),
            Err(RpcError::EmptyBody)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_frame_is_rejected_before_buffering() {
        let mut dec = Decoder::with_max_body_len(16);
        let ok = [0x00, 0, 0, 0, 16, 0, 0, 0, 1];
        assert_eq!(dec.decode(&ok).unwrap(), (9, None));
        assert!(dec.is_mid_frame());
        let mut dec = Decoder::with_max_body_len(16);
        let big = [0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        let err = RpcError::FrameTooLarge {
            len: u32::MAX,
            max: 16,
        };
        assert_eq!(dec.decode(&big), Err(err.clone()));
        assert_eq!(dec.decode(b"more"), Err(err));
    }

    #[test]
    fn invalid_flags_are_rejected() {
        for flags in [0x03u8, 0x10, 0x80, 0x0f] {
            let mut dec = Decoder::new();
            let header = [flags, 0, 0, 0, 1, 0, 0, 0, 1];
            assert_eq!(dec.decode(&header), Err(RpcError::InvalidFlags(flags)));
        }
    }

    #[test]
    fn request_numbers_count_up_and_stop() {
        let mut ids = RequestNumbers::new();
        assert_eq!(ids.next_number(), Ok(1));
        assert_eq!(ids.next_number(), Ok(2));
        let mut ids = RequestNumbers { next: i32::MAX };
        assert_eq!(ids.next_number(), Ok(i32::MAX));
        assert_eq!(ids.next_number(), Err(RpcError::RequestNumbersExhausted));
        assert_eq!(ids.next_number(), Err(RpcError::RequestNumbersExhausted));
    }
}
