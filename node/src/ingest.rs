//! Bulk import of messages from JSON lines, in bounded memory.
//!
//! Each line is a bare message value or `{"key","value",…}` as
//! createHistoryStream and `ssb-node feed` print them. Lines are parsed and
//! shape-checked as they come, collected into batches of [`BATCH`] messages,
//! signature-checked together, and written with one fjall batch each (see
//! [`Store::append_verified`]); parsing, checking and writing run at once,
//! each on its own thread ([`Ingest::read_all`]). Memory stays flat however
//! long the input is.

use std::io::BufRead;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::feed::{BatchVerifier, Invalid, Message, Value};
use crate::store::{AppendReport, Store, StoreError};

/// Messages per store batch: big enough for batch verification to pay off,
/// small enough to keep memory flat.
pub const BATCH: usize = 1024;

/// The longest line accepted: well above any valid message (8192 UTF-16
/// units is at most ~24 KiB of UTF-8, more with a KVT wrapper).
pub const MAX_LINE: usize = 256 * 1024;

/// Streams messages into a store. Feed it lines, then call [`Ingest::finish`].
pub struct Ingest<'a> {
    store: &'a Store,
    verifier: BatchVerifier,
    pending: Vec<Message>,
    /// Input line number (1-based) of each pending message.
    lines: Vec<usize>,
    line: usize,
    report: AppendReport,
}

/// Parses one line: a bare message value or a `{key, value, …}` wrapper
/// (whose key must then be the message id). Shape checks only.
pub fn parse_line(text: &[u8]) -> Result<Message, Invalid> {
    let mut value = Value::parse(text)?;
    // A `{key, value, …}` wrapper has `value` and no `signature`.
    if let Value::Object(obj) = &mut value {
        if obj.get("signature").is_none() {
            if let Some(inner) = obj.remove("value") {
                let m = Message::from_value(inner, None)?;
                if let Some(key) = obj.get("key") {
                    if key.as_str() != Some(m.id().to_string().as_str()) {
                        return Err(Invalid::KeyMismatch);
                    }
                }
                return Ok(m);
            }
        }
    }
    Message::from_value(value, None)
}

/// Lines parsed together by the reader thread: (line number, result).
type Parsed = Vec<(usize, Result<Message, Invalid>)>;

/// Lines per hand-over from the reader thread.
const PARSE_CHUNK: usize = 256;

/// The reader thread: splits `input` into lines and parses them, so parsing
/// runs beside verification and writing.
fn parse_lines<R: BufRead>(mut input: R, tx: SyncSender<Parsed>) -> Result<(), IngestError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = Vec::with_capacity(PARSE_CHUNK);
    let mut line = 0;
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(IngestError::Read)?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            let _ = tx.send(chunk);
            return Err(IngestError::LineTooLong(line));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        chunk.push((line, parse_line(&buf)));
        if chunk.len() >= PARSE_CHUNK {
            if tx.send(std::mem::take(&mut chunk)).is_err() {
                return Ok(()); // the writer stopped; it reports why
            }
            chunk.reserve(PARSE_CHUNK);
        }
    }
    let _ = tx.send(chunk);
    Ok(())
}

impl<'a> Ingest<'a> {
    /// Starts an import into `store` with `verifier`.
    pub fn new(store: &'a Store, verifier: BatchVerifier) -> Self {
        Ingest {
            store,
            verifier,
            pending: Vec::with_capacity(BATCH),
            lines: Vec::with_capacity(BATCH),
            line: 0,
            report: AppendReport::default(),
        }
    }

    /// Takes one parsed message (counts as the next input line).
    pub fn push(&mut self, m: Message) -> Result<(), StoreError> {
        self.pending.push(m);
        self.lines.push(self.line);
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn reject(&mut self, e: Invalid) {
        self.report.rejected += 1;
        if self.report.first_rejection.is_none() {
            self.report.first_rejection = Some((self.line, e));
        }
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let msgs = std::mem::take(&mut self.pending);
        let mut r = self.store.append(msgs, &mut self.verifier)?;
        if let Some((i, _)) = &mut r.first_rejection {
            *i = self.lines[*i];
        }
        self.lines.clear();
        self.report.merge(r, 0);
        Ok(())
    }

    /// Writes what is pending and makes it durable; returns the totals, with
    /// the first rejection's line number (1-based).
    pub fn finish(mut self) -> Result<AppendReport, StoreError> {
        self.flush()?;
        self.store.settle()?;
        Ok(self.report)
    }

    /// Reads `input` to the end, line by line (each at most [`MAX_LINE`]),
    /// in a pipeline of three stages: a thread parses lines, a second one
    /// gathers batches of [`BATCH`] and checks their signatures (on the
    /// verifier's threads), and the calling thread writes each checked batch
    /// while the next one is checked. Signature checks do not depend on the
    /// store, so they need not wait for the write before them; the chain
    /// checks against the stored heads happen at the write. At most one
    /// batch waits between the stages. What was read before an error is
    /// kept.
    pub fn read_all<R: BufRead + Send>(&mut self, input: R) -> Result<(), IngestError> {
        self.flush()?;
        let (tx, rx) = sync_channel::<Parsed>(4);
        let (checked_tx, checked_rx) = sync_channel::<Checked>(0);
        let verifier = std::mem::take(&mut self.verifier);
        std::thread::scope(|s| {
            let reader = s.spawn(move || parse_lines(input, tx));
            let store = self.store;
            let checker = s.spawn(move || check_batches(store, rx, checked_tx, verifier));
            let mut result = Ok(());
            for batch in checked_rx.iter() {
                if let Err(e) = self.write_checked(batch) {
                    result = Err(IngestError::Store(e));
                    break;
                }
            }
            drop(checked_rx);
            self.verifier = checker.join().unwrap_or_default();
            let read = reader
                .join()
                .unwrap_or(Err(IngestError::Read(std::io::Error::other(
                    "reader thread panicked",
                ))));
            result.and(read)
        })
    }

    /// Writes one batch from the checking stage and counts what it refused.
    fn write_checked(&mut self, batch: Checked) -> Result<(), StoreError> {
        for (line, e) in batch.refused {
            self.line = line;
            self.reject(e);
        }
        let r = self.store.append_verified(batch.verified)?;
        self.count(r, &batch.lines);
        if !batch.held.is_empty() {
            // Skipped (or refused as forks) without a signature check, as
            // `Store::append` does; what is not held after all is checked there.
            let r = self.store.append(batch.held, &mut BatchVerifier::new())?;
            self.count(r, &batch.held_lines);
        }
        Ok(())
    }

    /// Adds a store report whose indexes are into `lines`; the refusal of
    /// the earliest line is the first.
    fn count(&mut self, mut r: AppendReport, lines: &[usize]) {
        if let Some((i, _)) = &mut r.first_rejection {
            *i = lines[*i];
        }
        if let (Some((a, _)), Some((b, _))) = (&self.report.first_rejection, &r.first_rejection) {
            if b < a {
                self.report.first_rejection = r.first_rejection.take();
            }
        }
        self.report.merge(r, 0);
    }
}

/// A batch out of the checking stage: its messages with their signature
/// verdicts and the input line of each; those at or below their feed's
/// stored head when checked (held already, or forks: not worth a signature
/// check) with theirs; and the lines that were no message.
struct Checked {
    verified: crate::feed::Verified,
    lines: Vec<usize>,
    held: Vec<Message>,
    held_lines: Vec<usize>,
    refused: Vec<(usize, Invalid)>,
}

/// The checking stage: gathers parsed messages into batches of [`BATCH`]
/// and checks their signatures; returns the verifier (with its key cache).
fn check_batches(
    store: &Store,
    rx: Receiver<Parsed>,
    tx: SyncSender<Checked>,
    mut verifier: BatchVerifier,
) -> BatchVerifier {
    let mut msgs = Vec::with_capacity(BATCH);
    let mut lines = Vec::with_capacity(BATCH);
    let mut refused = Vec::new();
    let send = |msgs: &mut Vec<Message>,
                lines: &mut Vec<usize>,
                refused: &mut Vec<(usize, Invalid)>,
                verifier: &mut BatchVerifier| {
        let mut heads = std::collections::HashMap::new();
        let (mut fresh, mut fresh_lines) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let (mut held, mut held_lines) = (Vec::new(), Vec::new());
        for (m, line) in msgs.drain(..).zip(lines.drain(..)) {
            let head = *heads.entry(m.author()).or_insert_with(|| {
                // A failed read only costs a signature check: the write sees it again.
                store
                    .head(&m.author())
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.sequence)
            });
            if m.sequence() <= head {
                held.push(m);
                held_lines.push(line);
            } else {
                fresh.push(m);
                fresh_lines.push(line);
            }
        }
        let batch = Checked {
            verified: verifier.check(fresh),
            lines: fresh_lines,
            held,
            held_lines,
            refused: std::mem::take(refused),
        };
        tx.send(batch).is_ok()
    };
    for chunk in rx.iter() {
        for (line, parsed) in chunk {
            match parsed {
                Ok(m) => {
                    msgs.push(m);
                    lines.push(line);
                }
                Err(e) => refused.push((line, e)),
            }
            if msgs.len() >= BATCH && !send(&mut msgs, &mut lines, &mut refused, &mut verifier) {
                return verifier; // the writer stopped; it reports why
            }
        }
    }
    if !msgs.is_empty() || !refused.is_empty() {
        send(&mut msgs, &mut lines, &mut refused, &mut verifier);
    }
    verifier
}

/// Why an import stopped early (refused messages do not stop it).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input could not be read.
    #[error("reading input: {0}")]
    Read(std::io::Error),
    /// A line is longer than any message can be.
    #[error("line {0} is longer than {MAX_LINE} bytes")]
    LineTooLong(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Keypair;

    #[test]
    fn mixed_input() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys = Keypair::from_seed(&[9; 32]);
        let mut head = None;
        let mut text = String::new();
        for i in 1..=5 {
            let c = Value::parse(format!(r#"{{"type":"post","i":{i}}}"#).as_bytes()).expect("json");
            let m = Message::create(&keys, head.as_ref(), f64::from(i), c, None).expect("create");
            head = Some(m.head());
            if i % 2 == 0 {
                text.push_str(&format!(
                    "{{\"key\":\"{}\",\"value\":{},\"timestamp\":1}}\n",
                    m.id(),
                    m.value().to_compact()
                ));
            } else {
                text.push_str(&m.value().to_pretty().replace('\n', " "));
                text.push('\n');
            }
            if i == 3 {
                text.push_str("\nnot json\n");
            }
        }
        let mut ingest = Ingest::new(&store, BatchVerifier::new());
        ingest.read_all(text.as_bytes()).expect("read");
        let r = ingest.finish().expect("finish");
        assert_eq!((r.added, r.skipped, r.rejected), (5, 0, 1));
        assert_eq!(r.first_rejection.map(|(line, _)| line), Some(5));
        // Again: all skipped.
        let mut ingest = Ingest::new(&store, BatchVerifier::new());
        ingest.read_all(text.as_bytes()).expect("read");
        let r = ingest.finish().expect("finish");
        assert_eq!((r.added, r.skipped, r.rejected), (0, 5, 1));
    }

    #[test]
    fn wrong_key_in_wrapper_is_refused() {
        let keys = Keypair::from_seed(&[9; 32]);
        let m = Message::create(
            &keys,
            None,
            1.0,
            Value::parse(br#"{"type":"post"}"#).expect("json"),
            None,
        )
        .expect("create");
        let line = format!(
            "{{\"key\":\"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256\",\"value\":{}}}",
            m.value().to_compact()
        );
        assert!(parse_line(line.as_bytes()).is_err());
    }
}
