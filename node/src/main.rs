//! `ssb-node`: the command-line program. Scripts call these commands, so
//! their arguments and outputs are kept stable; every failure is one line on
//! stderr and a non-zero exit, never a panic.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use ssb_node::data_dir::DataDir;
use ssb_node::feed::{BatchVerifier, BlobId, FeedId, Message, Value};
use ssb_node::ingest::{parse_line, Ingest};
use ssb_node::service::command::Command as NodeCommand;

#[path = "cli/invites.rs"]
mod invites;
#[path = "cli/open.rs"]
mod open;
#[path = "cli/remote.rs"]
mod remote;
#[path = "cli/sneakernet.rs"]
mod sneakernet;
#[path = "cli/web.rs"]
mod web;
#[path = "cli/wifi.rs"]
mod wifi;

#[derive(Parser)]
#[command(
    name = "ssb-node",
    version,
    about = "A Secure Scuttlebutt node for small hardware"
)]
struct Cli {
    /// Data directory (identity, store, blobs).
    #[arg(long, global = true, env = "SSB_NODE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the identity and store (or adopt an ssb-keys secret file); prints the feed id.
    Init {
        /// An existing ssb-keys `secret` file to adopt.
        #[arg(long, value_name = "FILE")]
        secret: Option<PathBuf>,
    },
    /// Print this node's feed id.
    Whoami,
    /// Publish a message; prints its id.
    Publish {
        /// The content, a JSON object with a `type`.
        #[arg(
            long,
            value_name = "JSON",
            conflicts_with = "stdin",
            required_unless_present = "stdin"
        )]
        content: Option<String>,
        /// Read one content object per line from stdin; prints one id per line.
        #[arg(long)]
        stdin: bool,
    },
    /// Print a feed as JSON lines {"key","value","timestamp"}.
    Feed {
        /// The feed (default: this node's).
        feed: Option<String>,
        /// First sequence number to print.
        #[arg(long, default_value_t = 1)]
        from: u32,
        /// Print at most this many messages.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print one message as {"key","value","timestamp"}.
    Get {
        /// The message id.
        id: String,
    },
    /// Print the vector clock (feed → latest sequence) as one JSON object.
    Clock,
    /// Add messages of any feeds from JSON lines (a file or - for stdin).
    Ingest {
        /// The input file, or - for stdin.
        input: PathBuf,
        /// How to check signatures (one-by-one is for comparison).
        #[arg(long, value_enum, default_value_t = VerifyMode::Batch)]
        verify: VerifyMode,
        /// Threads for batch verification.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Verify every stored feed: chains, signatures, ids, indexes.
    Check {
        /// First rebuild the indexes, clocks and contacts table from the log,
        /// dropping each feed's damaged tail (the next sync fetches it again).
        #[arg(long)]
        repair: bool,
    },
    /// Single-message tools.
    Message {
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Blob store.
    Blobs {
        #[command(subcommand)]
        command: BlobsCommand,
    },
    /// Run the node: replicate with peers until SIGTERM/SIGINT.
    Run(remote::RunArgs),
    /// Connect to a peer once, replicate both ways, print a summary.
    Sync {
        /// The peer (`net:HOST:PORT~shs:KEY`).
        address: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Config file (default: ssb-node.toml in the data dir, if present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Publish a contact message following a feed (it will be replicated).
    Follow {
        /// The feed id.
        feed: String,
    },
    /// Publish a contact message unfollowing a feed.
    Unfollow {
        /// The feed id.
        feed: String,
    },
    /// USB sticks (folders `SSB-SNEAKERNET/` at a stick's root).
    Stick {
        #[command(subcommand)]
        command: StickCommand,
    },
    /// List the sticks this node has seen: id, where, last sync, clock size.
    Sticks {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Bundle files: export, import, verify, inspect.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// List the running node's known and connected peers.
    Peers {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show the running node's status: phase, LED pattern, peers, sticks.
    Status {
        /// The whole status as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Pub-style invite codes that make this node follow whoever uses them.
    Invite {
        #[command(subcommand)]
        command: InviteCommand,
    },
    /// Set the web page's admin password: one line on stdin (hashed here).
    WebPassword,
    /// The carrying policy: which feeds this node takes on.
    Carry {
        #[command(subcommand)]
        command: CarryCommand,
    },
    /// The image's Wi-Fi: its settings from the boot partition.
    Wifi {
        #[command(subcommand)]
        command: WifiCommand,
    },
}

#[derive(Subcommand)]
enum CarryCommand {
    /// Set the carrying mode (saved; wins over the config's `carry`):
    /// `follows` (the follow graph only) or `connected` (also every feed
    /// that connects).
    Set {
        /// `follows` or `connected`.
        mode: ssb_node::replica::carry::CarryMode,
    },
}

#[derive(Subcommand)]
enum WifiCommand {
    /// Read wifi.txt and write the radio's configs, mode and problems for
    /// the image's Wi-Fi controller (as root); prints what the radio does.
    Plan(wifi::PlanArgs),
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Make an invite; prints it, then the code `HOST:PORT:@KEY.ed25519~SEED`
    /// as the last line (shown this once: it is not stored).
    Create {
        /// How many feeds may use it (default 1).
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
        /// Days until it expires (fractions allowed; default: never).
        #[arg(long, value_name = "DAYS")]
        expires: Option<f64>,
        /// A note for you (who it is for); never sent to anyone.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// List the invites: id, state, uses left, expiry, note.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an invite: its id, or the start of it.
    Revoke {
        /// The invite's id (as `invite list` shows it) or a unique start of it.
        id: String,
    },
}

/// How `ingest` checks signatures.
#[derive(Clone, Copy, clap::ValueEnum)]
enum VerifyMode {
    /// Batches of up to 1024 signatures at once.
    Batch,
    /// Each signature on its own.
    OneByOne,
}

#[derive(Subcommand)]
enum MessageCommand {
    /// Check a message (value or {key,value}); prints its id, or why it is invalid.
    Verify {
        /// The message file.
        file: PathBuf,
        /// The message it should follow.
        #[arg(long, value_name = "FILE")]
        prev: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StickCommand {
    /// Reconcile the stick mounted at MOUNT now: import what it has that we
    /// lack, export what it lacks; prints a summary.
    Sync {
        /// Where the stick is mounted (the folder holding SSB-SNEAKERNET/).
        mount: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Write what a receiver lacks as a bundle (or several, into a directory).
    Export {
        /// A file for one bundle, or an existing directory for bundles named by content.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// What the receiver holds: a JSON clock {"@feed": seq} as `ssb-node clock` prints.
        #[arg(long, value_name = "CLOCK.json")]
        clock: Option<PathBuf>,
    },
    /// Check a bundle completely, then add what it brings; prints a summary.
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle on its own (no store needed); exit 1 with the reason if it is bad.
    Verify {
        /// The bundle file.
        file: PathBuf,
    },
    /// Show a bundle's manifest: author, time, feeds and ranges, blobs.
    Inspect {
        /// The bundle file.
        file: PathBuf,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Store a file as a blob; prints its id.
    Add {
        /// The file.
        file: PathBuf,
    },
    /// Write a blob to stdout or a file.
    Get {
        /// The blob id.
        id: String,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Say whether a blob is held (prints true/false; exit 0 either way).
    Has {
        /// The blob id.
        id: String,
    },
    /// Bytes and blobs held, against the quota (`blob_quota`).
    Usage {
        /// One JSON object `{used, count, quota, max}`.
        #[arg(long)]
        json: bool,
    },
}

/// glibc's malloc gives each thread that contends an arena of its own (up to
/// 8 per core), and each arena keeps its own high-water mark. Replication
/// hands messages from the receiving thread to the checking threads to the
/// writer, so their peaks add up: capping the arenas at two cut a
/// 10,000-message sync's peak RSS by about 3.5 MiB at the same speed (one
/// arena is slower: the threads then wait on its lock).
///
/// The mmap threshold stays fixed at 128 KiB: glibc otherwise raises it to
/// the largest block freed (a stick visit's zstd contexts are several MiB),
/// after which such blocks come from the heap and stay resident when freed,
/// so a long-running node's RSS grows with every visit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only sets a malloc parameter; it is called first thing
    // in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    // The node says what it does (peers, drops) by default; one-shot
    // commands only warn. SSB_NODE_LOG overrides both.
    let default_filter = match cli.command {
        Command::Run(_) | Command::Sync { .. } => "warn,ssb_node=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SSB_NODE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let data = DataDir::new(cli.data.clone().unwrap_or_else(DataDir::default_root));
    match run(cli.command, &data) {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout (`ssb-node feed | head`) is not an error.
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("ssb-node: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, data: &DataDir) -> Result<ExitCode> {
    let node = |command, print| remote::on_node(command, print, data);
    let json = |json| remote::Print { json, config: None };
    let mut out = io::BufWriter::new(io::stdout().lock());
    match command {
        Command::Run(args) => return remote::run_node(data, args),
        Command::Publish { content, stdin } => {
            let contents = read_contents(content, stdin)?;
            return node(NodeCommand::Publish { contents }, json(false));
        }
        Command::Get { id } => return node(NodeCommand::Get { id: id.parse()? }, json(false)),
        Command::Clock => return node(NodeCommand::Clock, json(false)),
        Command::Follow { feed } => {
            return node(
                NodeCommand::Follow {
                    feed: feed.parse()?,
                },
                json(false),
            );
        }
        Command::Unfollow { feed } => {
            return node(
                NodeCommand::Unfollow {
                    feed: feed.parse()?,
                },
                json(false),
            );
        }
        Command::Peers { json: j } => return node(NodeCommand::Peers, json(j)),
        Command::Status { json: j } => return node(NodeCommand::Status, json(j)),
        Command::Sync {
            address,
            timeout,
            config,
        } => {
            let address = address
                .parse()
                .map_err(|e| anyhow::anyhow!("{address}: {e}"))?;
            let timeout = Duration::from_secs(timeout);
            let print = remote::Print {
                json: false,
                config,
            };
            return node(NodeCommand::Sync { address, timeout }, print);
        }
        Command::Stick {
            command: StickCommand::Sync { mount, json: j },
        } => return node(NodeCommand::StickSync { mount }, json(j)),
        Command::Sticks { json: j } => return node(NodeCommand::Sticks, json(j)),
        Command::Bundle {
            command: BundleCommand::Import { file, json: j },
        } => return node(NodeCommand::BundleImport { path: file }, json(j)),
        Command::Bundle {
            command: BundleCommand::Export { out: path, clock },
        } => {
            let clock = clock
                .as_deref()
                .map(sneakernet::read_clock)
                .transpose()?
                .unwrap_or_default();
            return node(NodeCommand::BundleExport { path, clock }, json(false));
        }
        Command::Bundle {
            command: BundleCommand::Verify { file },
        } => sneakernet::verify(&file, &mut out)?,
        Command::Bundle {
            command: BundleCommand::Inspect { file, json },
        } => sneakernet::inspect(&file, json, &mut out)?,
        Command::Init { secret } => {
            let (keys, created) = data.init(secret.as_deref())?;
            if created {
                tracing::info!(dir = %data.root().display(), "created identity and store");
            }
            writeln!(out, "{}", keys.id())?;
        }
        Command::Whoami => writeln!(out, "{}", data.keys()?.id())?,
        Command::Feed { feed, from, limit } => {
            if let Some(code) = remote::feed_on_running_node(feed.clone(), from, limit, data)? {
                return Ok(code);
            }
            let feed: FeedId = match feed {
                Some(f) => f.parse()?,
                None => data.keys()?.id(),
            };
            let store = data.open_store()?;
            for m in store.feed(&feed, from).take(limit.unwrap_or(usize::MAX)) {
                writeln!(out, "{}", m?.to_kvt_json())?;
            }
        }
        Command::Ingest {
            input,
            verify,
            threads,
        } => {
            let store = data.open_store()?;
            let verifier = match verify {
                VerifyMode::Batch => BatchVerifier::with_threads(threads),
                VerifyMode::OneByOne => BatchVerifier::one_by_one(),
            };
            let mut ingest = Ingest::new(&store, verifier);
            let reader: Box<dyn BufRead + Send> = if input == Path::new("-") {
                Box::new(BufReader::new(io::stdin()))
            } else {
                let f =
                    std::fs::File::open(&input).with_context(|| format!("{}", input.display()))?;
                Box::new(BufReader::with_capacity(256 * 1024, f))
            };
            // Keep what was read so far even if the input breaks off.
            let read = ingest.read_all(reader);
            let report = ingest.finish()?;
            let mut line = format!(
                "added {} skipped {} rejected {}",
                report.added, report.skipped, report.rejected
            );
            if let Some((n, why)) = &report.first_rejection {
                line.push_str(&format!(" (first: line {n}: {why})"));
            }
            writeln!(out, "{line}")?;
            read?;
            if report.rejected > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Check { repair } => {
            let store = data.open_store()?;
            if repair {
                let own = data.keys().ok().map(|k| k.id());
                print_repair(&store.repair()?, own.as_ref(), &mut out)?;
            }
            let report = store.check()?;
            for p in &report.problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(
                out,
                "checked {} feeds, {} messages: {}",
                report.feeds,
                report.messages,
                if report.problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("{} problems", report.problems.len())
                }
            )?;
            if !report.problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Message {
            command: MessageCommand::Verify { file, prev },
        } => {
            let read = |p: &Path| -> Result<Message> {
                let text = read_small(p, MESSAGE_FILE_MAX)?;
                parse_line(text.trim_ascii())
                    .map_err(|e| anyhow::anyhow!("{}: invalid: {e}", p.display()))
            };
            let m = read(&file)?;
            let prev = prev.as_deref().map(read).transpose()?;
            let result = m.verify().and_then(|()| match &prev {
                Some(p) => m.check_chain(Some(&p.head())),
                None if m.sequence() == 1 => m.check_chain(None),
                None => Ok(()),
            });
            match result {
                Ok(()) => writeln!(out, "{}", m.id())?,
                Err(e) => bail!("{}: invalid: {e}", file.display()),
            }
        }
        Command::Blobs { command } => return blobs(command, data, &mut out),
        Command::Wifi {
            command: WifiCommand::Plan(args),
        } => {
            let code = wifi::plan(&args, data, &mut out)?;
            out.flush()?;
            return Ok(code);
        }
        Command::Invite { command } => {
            let (command, j) = invites::command(command);
            return node(command, json(j));
        }
        Command::WebPassword => return node(web::command()?, json(false)),
        Command::Carry {
            command: CarryCommand::Set { mode },
        } => return node(NodeCommand::CarrySet { mode }, json(false)),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what `check --repair` changed, one line each.
fn print_repair(
    r: &ssb_node::store::repair::RepairReport,
    own: Option<&ssb_node::feed::FeedId>,
    out: &mut dyn Write,
) -> Result<()> {
    let seq = |s: Option<u32>| s.map_or_else(|| "nothing".to_owned(), |s| format!("sequence {s}"));
    for d in &r.dropped {
        writeln!(
            out,
            "dropped: {} from sequence {} on ({} messages): {}",
            d.feed, d.from, d.messages, d.reason
        )?;
        if Some(&d.feed) == own {
            writeln!(
                out,
                "warning: that is this node's own feed: sync it back from a peer before publishing, or the next message forks it"
            )?;
        }
    }
    for c in &r.clocks {
        writeln!(
            out,
            "clock: {} said {}, now {}",
            c.feed,
            seq(c.was),
            seq(c.now)
        )?;
    }
    writeln!(
        out,
        "repaired: {} feeds, {} messages kept; {} tails dropped, {} clock entries, {} id index entries added, {} removed, {} contacts entries, {} stray entries",
        r.feeds,
        r.messages,
        r.dropped.len(),
        r.clocks.len(),
        r.index_added,
        r.index_removed,
        r.contacts_fixed,
        r.stray
    )?;
    Ok(())
}

fn blobs(command: BlobsCommand, data: &DataDir, out: &mut dyn Write) -> Result<ExitCode> {
    match command {
        BlobsCommand::Add { file } => {
            let command = NodeCommand::BlobsAdd { path: file };
            return remote::on_node(command, remote::Print::default(), data);
        }
        BlobsCommand::Usage { json } => {
            let print = remote::Print {
                json,
                ..remote::Print::default()
            };
            return remote::on_node(NodeCommand::BlobsUsage, print, data);
        }
        BlobsCommand::Has { id } => {
            let store = data.open_blobs()?;
            let id: BlobId = id.parse()?;
            writeln!(out, "{}", store.has(&id))?;
        }
        BlobsCommand::Get { id, out: file } => {
            let store = data.open_blobs()?;
            let id: BlobId = id.parse()?;
            match file {
                None => {
                    store.get(&id, out)?;
                }
                Some(path) => {
                    // Write beside the target and rename, so a damaged blob
                    // never leaves a file that looks complete.
                    let tmp = path.with_extension("part");
                    let result = (|| -> Result<()> {
                        let mut f = std::fs::File::create(&tmp)
                            .with_context(|| format!("{}", tmp.display()))?;
                        store.get(&id, &mut f)?;
                        f.sync_all()?;
                        std::fs::rename(&tmp, &path)
                            .with_context(|| format!("{}", path.display()))?;
                        Ok(())
                    })();
                    if let Err(e) = result {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The contents to publish: `--content`, or one JSON object per line of
/// stdin. All are parsed before any is published.
fn read_contents(content: Option<String>, stdin: bool) -> Result<Vec<Value>> {
    if !stdin {
        let text = content.unwrap_or_default();
        return Ok(vec![
            Value::parse(text.as_bytes()).context("--content is not valid JSON")?
        ]);
    }
    let mut v = Vec::new();
    for (i, line) in io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        v.push(Value::parse(line.as_bytes()).with_context(|| format!("line {}", i + 1))?);
    }
    Ok(v)
}

/// Reads a file that must be small (a single message, say).
/// The largest message file `message verify` reads: a message's content is at
/// most 8 KiB, so 64 KiB holds any valid message with its `{key,value}`
/// wrapper, escapes and indentation.
const MESSAGE_FILE_MAX: u64 = 64 * 1024;

/// Reads at most `max` bytes of `path`; a longer file (or an endless one,
/// such as a device) is refused after `max + 1` bytes.
fn read_small(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{}: larger than {max} bytes, too big for a message",
            path.display()
        );
    }
    Ok(bytes)
}
