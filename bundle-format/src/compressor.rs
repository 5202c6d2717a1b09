//! zstd compression on zstd's own worker threads, so that a writer can
//! read, hash and frame the next bytes while the last ones are compressed
//! (as `tar | zstd` runs in two processes), and so that more than one core
//! compresses.
//!
//! zstd's multithreaded mode cuts the input into jobs of [`JOB_SIZE`] bytes,
//! each compressed by a worker with the tail of the previous job as its
//! history, and writes their blocks in order as one frame: a reader sees an
//! ordinary frame with the window asked for. The caller's thread only copies
//! input into zstd's job buffers and writes out what the workers produced;
//! when every job slot is busy, zstd blocks it until the oldest job is done,
//! so memory is small and fixed (a few jobs of input and output, and one
//! compression context per worker) whatever the size of the stream. With no
//! workers, zstd compresses on the caller's thread.

use std::io::{self, Write};

use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{CCtx, CParameter};

/// Input gathered before it is handed to zstd (zstd's largest block): the
/// writer frames many small pieces, and each call into zstd has a cost.
const CHUNK: usize = 128 * 1024;

/// Input of one job of a worker. Small, to keep memory small: zstd holds a
/// few jobs of input and output per worker. (zstd's own default is four
/// windows, 8 MiB at a 2 MiB window.)
pub(crate) const JOB_SIZE: u32 = 1024 * 1024;

/// History a job starts from, as zstd's `overlapLog`: the last
/// 2^(window_log - (9 - 5)) bytes of the previous job's input, 128 KiB at a
/// 2 MiB window (zstd's default at level 3 is 6: 256 KiB). Each worker
/// re-reads this much per job, so less overlap is less CPU; SSB JSON lines
/// repeat within a few KiB, so the bundle barely grows.
const OVERLAP_LOG: i32 = 5;

/// A zstd frame written to `W`, compressed by zstd's worker threads.
pub(crate) struct Compressor<W: Write> {
    out: W,
    /// Compressed bytes written to `out`.
    written: u64,
    enc: Encoder<'static>,
    gathering: Vec<u8>,
    /// zstd's output, before it is written to `out`.
    output: Vec<u8>,
}

impl<W: Write> Compressor<W> {
    /// A frame at zstd `level` with a window of 2^`window_log` bytes and a
    /// content checksum, compressed by `workers` threads (0: on the caller's
    /// thread).
    pub(crate) fn new(
        out: W,
        level: i32,
        window_log: u32,
        workers: u32,
    ) -> io::Result<Compressor<W>> {
        let mut enc = Encoder::new(level)?;
        enc.set_parameter(CParameter::ChecksumFlag(true))?;
        enc.set_parameter(CParameter::WindowLog(window_log))?;
        if workers > 0 {
            enc.set_parameter(CParameter::NbWorkers(workers))?;
            enc.set_parameter(CParameter::JobSize(JOB_SIZE))?;
            enc.set_parameter(CParameter::OverlapSizeLog(OVERLAP_LOG as u32))?;
        }
        Ok(Compressor {
            out,
            written: 0,
            enc,
            gathering: Vec::with_capacity(CHUNK),
            output: vec![0; CCtx::out_size()],
        })
    }

    /// Writes out what zstd put in the output buffer.
    fn write_out(&mut self, n: usize) -> io::Result<()> {
        self.out.write_all(&self.output[..n])?;
        self.written += n as u64;
        Ok(())
    }

    /// Hands the gathered input to zstd, writing out what it produces.
    fn submit(&mut self) -> io::Result<()> {
        let gathered = std::mem::take(&mut self.gathering);
        let mut input = InBuffer::around(&gathered);
        let result = loop {
            if input.pos() == gathered.len() {
                break Ok(());
            }
            let mut buffer = OutBuffer::around(&mut self.output[..]);
            if let Err(e) = self.enc.run(&mut input, &mut buffer) {
                break Err(e);
            }
            let n = buffer.pos();
            if let Err(e) = self.write_out(n) {
                break Err(e);
            }
        };
        self.gathering = gathered;
        self.gathering.clear();
        result
    }

    /// Ends the frame and waits for it; returns the output and how many
    /// bytes were written to it.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        self.submit()?;
        loop {
            let mut buffer = OutBuffer::around(&mut self.output[..]);
            let left = self.enc.finish(&mut buffer, true)?;
            let n = buffer.pos();
            self.write_out(n)?;
            if left == 0 {
                break;
            }
        }
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.gathering.len());
        self.gathering.extend_from_slice(&buf[..n]);
        if self.gathering.len() == CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    /// Does nothing: a zstd frame is only complete at [`Compressor::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Text and noise, so some jobs compress and some do not.
    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_u32;
        (0..n)
            .map(|i| {
                if (i / 700_000) % 2 == 0 {
                    b"the well is fixed, market on thursday "[i % 38]
                } else {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }
            })
            .collect()
    }

    /// Decodes one frame as a reader does, refusing a window above 2^21.
    fn decode(frame: &[u8]) -> Vec<u8> {
        let mut dec = zstd::stream::read::Decoder::new(frame).unwrap();
        dec.window_log_max(21).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut dec, &mut out).unwrap();
        out
    }

    #[test]
    fn one_frame_of_everything_written_in_odd_pieces() {
        let data = sample(5 * JOB_SIZE as usize + 12_345);
        for workers in [0, 1, 2] {
            let mut c = Compressor::new(Vec::new(), 3, 21, workers).unwrap();
            for piece in data.chunks(7_777) {
                c.write_all(piece).unwrap();
            }
            let (out, written) = c.finish().unwrap();
            assert_eq!(written, out.len() as u64);
            assert!(out.len() < data.len() * 3 / 4, "the text parts compress");
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(&out).ok(),
                Some(None),
                "one frame, of a size unknown when it started"
            );
            assert_eq!(
                zstd::zstd_safe::find_frame_compressed_size(&out).ok(),
                Some(out.len()),
                "{workers} workers: exactly one frame"
            );
            assert!(decode(&out) == data, "{workers} workers");
            // An empty stream is one valid, empty frame.
            let (out, _) = Compressor::new(Vec::new(), 3, 21, workers)
                .unwrap()
                .finish()
                .unwrap();
            assert!(decode(&out).is_empty());
        }
    }

    /// An output that fails after `left` bytes.
    struct Full {
        left: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_output_error_comes_back_to_the_writer() {
        let data = sample(4 * JOB_SIZE as usize);
        for workers in [0, 2] {
            let mut c = Compressor::new(Full { left: 1000 }, 3, 21, workers).unwrap();
            let result = data
                .chunks(4096)
                .try_for_each(|p| c.write_all(p))
                .and_then(|()| c.finish().map(|_| ()));
            let e = result.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        }
    }
}
