//! zstd compression on a second thread, so that a writer can read, hash and
//! frame the next bytes while the last ones are compressed (as
//! `tar | zstd` runs in two processes).
//!
//! The output stays on the caller's thread (it need not be `Send`): the
//! compressing thread gets chunks of input and hands back compressed bytes,
//! which the caller writes out as they come. At most two chunks are being
//! compressed or waiting to be written, and buffers are reused, so memory is
//! small and fixed whatever the size and content of the stream.

use std::io::{self, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use zstd::stream::raw::{Encoder, InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::{compress_bound, CParameter};

/// Input gathered before it is handed to the compressing thread (zstd's
/// largest block).
const CHUNK: usize = 128 * 1024;

/// Chunks handed over and not yet written out.
const IN_FLIGHT: usize = 2;

/// Work for the compressing thread, with the buffer for its output.
enum Job {
    /// Compress these bytes.
    Data { input: Vec<u8>, output: Vec<u8> },
    /// End the frame.
    Finish { output: Vec<u8> },
}

/// What the compressing thread made of one job: the compressed bytes, and
/// the emptied input buffer (if any) to reuse.
type Done = io::Result<(Vec<u8>, Option<Vec<u8>>)>;

/// A zstd frame written to `W`, compressed on a second thread.
pub(crate) struct Compressor<W: Write> {
    /// The output (taken by [`Compressor::finish`]).
    out: Option<W>,
    /// Compressed bytes written to `out`.
    written: u64,
    gathering: Vec<u8>,
    spare_inputs: Vec<Vec<u8>>,
    spare_outputs: Vec<Vec<u8>>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    /// Jobs sent and not yet answered.
    in_flight: usize,
    worker: Option<JoinHandle<()>>,
}

/// Compresses all of `input`, appending to `out` (growing it if a chunk
/// does not compress).
fn compress(enc: &mut Encoder<'static>, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut input = InBuffer::around(input);
    while input.pos() < input.src.len() {
        if out.len() == out.capacity() {
            out.reserve(CHUNK);
        }
        let pos = out.len();
        let mut buffer = OutBuffer::around_pos(out, pos);
        enc.run(&mut input, &mut buffer)?;
    }
    Ok(())
}

/// Ends the frame, appending to `out`.
fn end_frame(enc: &mut Encoder<'static>, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        if out.len() == out.capacity() {
            out.reserve(CHUNK);
        }
        let pos = out.len();
        let mut buffer = OutBuffer::around_pos(out, pos);
        if enc.finish(&mut buffer, true)? == 0 {
            return Ok(());
        }
    }
}

/// The compressing thread: one answer per job, until the jobs end or one fails.
fn work(mut enc: Encoder<'static>, jobs: Receiver<Job>, done: Sender<Done>) {
    for job in jobs {
        let result = match job {
            Job::Data {
                mut input,
                mut output,
            } => compress(&mut enc, &input, &mut output).map(|()| {
                input.clear();
                (output, Some(input))
            }),
            Job::Finish { mut output } => end_frame(&mut enc, &mut output).map(|()| (output, None)),
        };
        let failed = result.is_err();
        if done.send(result).is_err() || failed {
            return;
        }
    }
}

impl<W: Write> Compressor<W> {
    /// A frame at zstd `level` with a window of 2^`window_log` bytes and a
    /// content checksum.
    pub(crate) fn new(out: W, level: i32, window_log: u32) -> io::Result<Compressor<W>> {
        let mut enc = Encoder::new(level)?;
        enc.set_parameter(CParameter::ChecksumFlag(true))?;
        enc.set_parameter(CParameter::WindowLog(window_log))?;
        // Start the frame here, on the caller's thread: zstd allocates its
        // window and tables now, from the caller's allocator arena. (From a
        // fresh thread each time, glibc keeps them resident in that
        // thread's arena as well, and the peak RSS steps up by a window.)
        let mut head = Vec::with_capacity(64);
        let mut start = OutBuffer::around_pos(&mut head, 0);
        enc.run(&mut InBuffer::around(&[]), &mut start)?;
        let mut out = out;
        out.write_all(&head)?;
        let (jobs, jobs_rx) = sync_channel(0);
        let (done_tx, done) = channel();
        let worker = std::thread::Builder::new()
            .name("bundle-zstd".into())
            .spawn(move || work(enc, jobs_rx, done_tx))?;
        Ok(Compressor {
            out: Some(out),
            written: head.len() as u64,
            gathering: Vec::with_capacity(CHUNK),
            spare_inputs: Vec::new(),
            spare_outputs: Vec::new(),
            jobs: Some(jobs),
            done,
            in_flight: 0,
            worker: Some(worker),
        })
    }

    /// Writes out the next answer of the compressing thread (waiting for
    /// it, or only if it is ready).
    fn take_one(&mut self, wait: bool) -> io::Result<bool> {
        if self.in_flight == 0 {
            return Ok(false);
        }
        let done = if wait {
            self.done.recv().map_err(|_| stopped())?
        } else {
            match self.done.try_recv() {
                Ok(done) => done,
                Err(_) => return Ok(false),
            }
        };
        self.in_flight -= 1;
        let (mut compressed, input) = done?;
        self.out
            .as_mut()
            .ok_or_else(stopped)?
            .write_all(&compressed)?;
        self.written += compressed.len() as u64;
        compressed.clear();
        self.spare_outputs.push(compressed);
        self.spare_inputs.extend(input);
        Ok(true)
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        while self.take_one(self.in_flight >= IN_FLIGHT)? {}
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        if jobs.send(job).is_err() {
            // The thread has stopped: its last answer says why.
            while self.take_one(true)? {}
            return Err(stopped());
        }
        self.in_flight += 1;
        Ok(())
    }

    fn output_buffer(&mut self) -> Vec<u8> {
        self.spare_outputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(compress_bound(CHUNK)))
    }

    /// Hands the gathered input to the compressing thread.
    fn submit(&mut self) -> io::Result<()> {
        if self.gathering.is_empty() {
            return Ok(());
        }
        let next = self
            .spare_inputs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK));
        let input = std::mem::replace(&mut self.gathering, next);
        let output = self.output_buffer();
        self.send(Job::Data { input, output })
    }

    /// Ends the frame and waits for it; returns the output and how many
    /// bytes were written to it.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        self.submit()?;
        let output = self.output_buffer();
        self.send(Job::Finish { output })?;
        while self.take_one(true)? {}
        self.stop();
        let mut out = self.out.take().ok_or_else(stopped)?;
        out.flush()?;
        Ok((out, self.written))
    }

    /// Closes the job queue and waits for the thread to end.
    fn stop(&mut self) {
        self.jobs = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the zstd thread stopped")
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

impl<W: Write> Drop for Compressor<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text and noise, so some chunks compress and some do not.
    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_u32;
        (0..n)
            .map(|i| {
                if (i / 100_000) % 2 == 0 {
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

    #[test]
    fn one_frame_of_everything_written_in_odd_pieces() {
        let data = sample(3 * CHUNK + 12_345);
        let mut c = Compressor::new(Vec::new(), 3, 23).unwrap();
        for piece in data.chunks(7_777) {
            c.write_all(piece).unwrap();
        }
        let (out, written) = c.finish().unwrap();
        assert_eq!(written, out.len() as u64);
        assert!(out.len() < data.len(), "the text parts compress");
        assert_eq!(zstd::decode_all(&out[..]).unwrap(), data);
        // An empty stream is one valid, empty frame.
        let (out, _) = Compressor::new(Vec::new(), 3, 23)
            .unwrap()
            .finish()
            .unwrap();
        assert!(zstd::decode_all(&out[..]).unwrap().is_empty());
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
        let data = sample(8 * CHUNK);
        let mut c = Compressor::new(Full { left: 1000 }, 3, 23).unwrap();
        let result = data
            .chunks(4096)
            .try_for_each(|p| c.write_all(p))
            .and_then(|()| c.finish().map(|_| ()));
        let e = result.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    }
}
