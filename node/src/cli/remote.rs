//! The CLI's node side: `run`, and the control commands, which go through a
//! running node's control socket (the node holds the store locked) or run on
//! a node of the CLI's own when none is running.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};

use super::open::open_node;
use ssb_node::data_dir::DataDir;
use ssb_node::feed::json::{Object, Value};
use ssb_node::feed::FeedId;
use ssb_node::muxrpc::{Body, CallType, Item, Session};
use ssb_node::net::address::MultiserverAddress;
use ssb_node::service::command::{Command as NodeCommand, Reply};
use ssb_node::service::control;
use ssb_node::service::server::{self, RunOptions};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The arguments of `ssb-node run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Listen for peers here (default from the config, else 0.0.0.0:8008).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Keep a peer connected (`net:HOST:PORT~shs:KEY`); repeatable.
    #[arg(long, value_name = "ADDRESS")]
    pub connect: Vec<String>,
    /// No LAN discovery (no UDP broadcast, no listening for others).
    #[arg(long)]
    pub no_discovery: bool,
    /// Config file (default: ssb-node.toml in the data dir, if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Watch this directory for sticks; repeatable. Replaces the config's
    /// `mount_roots` and the defaults (/media, /run/media, /mnt).
    #[arg(long = "mount-root", value_name = "DIR")]
    pub mount_roots: Vec<PathBuf>,
    /// The status LED: none, sysfs:NAME, sysfs:/abs/dir or
    /// gpio:CHIP:LINE[:active-low] (default from the config, else none).
    #[arg(long, value_name = "SPEC")]
    pub led: Option<firmware::LedSpec>,
    /// Serve the site keeper's web page here (default from the config's
    /// `http`, else none).
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
}

/// `ssb-node run`.
pub fn run_node(data: &DataDir, args: RunArgs) -> Result<ExitCode> {
    let RunArgs {
        listen,
        connect,
        no_discovery,
        config,
        mount_roots,
        led,
        http,
    } = args;
    let connect = connect
        .iter()
        .map(|a| a.parse().map_err(|e| anyhow!("--connect {a}: {e}")))
        .collect::<Result<Vec<MultiserverAddress>>>()?;
    // The node runs with no set-up: the first run makes the identity.
    let (keys, created) = data.init(None)?;
    if created {
        tracing::info!(id = %keys.id(), dir = %data.root().display(), "created a new identity");
    }
    let rt = runtime()?;
    let mount_roots = mount_roots
        .iter()
        .map(|r| std::path::absolute(r).with_context(|| format!("--mount-root {}", r.display())))
        .collect::<Result<Vec<_>>>()?;
    rt.block_on(async {
        let node = open_node(data, config)?;
        let mount_roots = if mount_roots.is_empty() {
            node.settings().mount_roots.clone()
        } else {
            mount_roots
        };
        let led = led.unwrap_or_else(|| node.settings().led.clone());
        server::run(
            node,
            RunOptions {
                listen,
                connect,
                no_discovery,
                socket: control::socket_path(data.root()),
                mount_roots,
                led,
                http,
                data_root: data.root().to_path_buf(),
            },
        )
        .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How a control command's reply is printed, and the config of a node the
/// CLI opens for it.
#[derive(Default)]
pub struct Print {
    /// Print JSON rather than text.
    pub json: bool,
    /// The config file for a node of the CLI's own.
    pub config: Option<PathBuf>,
}

/// Runs a control command on the running node if there is one, else on a
/// node of the CLI's own, and prints its reply.
pub fn on_node(command: NodeCommand, print: Print, data: &DataDir) -> Result<ExitCode> {
    if let NodeCommand::Publish { contents } = &command {
        if contents.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let reply = match on_running_node(&command, data)? {
        Some(reply) => reply,
        None => on_own_node(command, data, print.config)?,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let code = write_reply(reply, print.json, &mut out)?;
    out.flush()?;
    Ok(code)
}

/// Runs `f` on a control session with the node running on `data`, then
/// closes the session; `None` if no node is running.
fn with_running_node<T>(
    data: &DataDir,
    f: impl AsyncFnOnce(&Session) -> Result<T>,
) -> Result<Option<T>> {
    let path = control::socket_path(data.root());
    if !path.exists() {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let Some(session) = control::connect(&path).await else {
            return Ok(None);
        };
        let done = f(&session).await;
        session.close().await;
        done.map(Some)
    })
}

/// Sends `command` to the node running on `data`; `None` if none is.
fn on_running_node(command: &NodeCommand, data: &DataDir) -> Result<Option<Reply>> {
    with_running_node(data, async |session| {
        let command = absolute(command)?;
        let mut progress = super::sneakernet::Progress::new();
        let reply = control::send(session, &command, &mut |s| progress.step(s)).await;
        drop(progress);
        Ok(reply?)
    })
}

/// Runs `command` on a node of the CLI's own (no node holds the store).
fn on_own_node(command: NodeCommand, data: &DataDir, config: Option<PathBuf>) -> Result<Reply> {
    if command.needs_running_node() {
        bail!(
            "no node is running on {} (start one with `ssb-node run`)",
            data.root().display()
        );
    }
    if command.runs_on_stores() {
        return Ok(command.run_on_stores(data)?);
    }
    let rt = runtime()?;
    let reply = rt.block_on(async {
        let node = open_node(data, config)?;
        let mut progress = super::sneakernet::Progress::new();
        let reply = command.run(&node, move |s| progress.step(s)).await;
        node.replica().shutdown().await?;
        Ok::<_, anyhow::Error>(reply?)
    })?;
    // Everything written is durable now (shutdown fsynced the journal) and
    // the process is about to end: tearing the runtime and the store down
    // would free every memtable entry one by one and wait for a background
    // flush the next open does not need (~6 ms after a 10,000-message
    // sync). The OS takes it all back at exit; the next open replays the
    // journal, as it does after any stop.
    std::mem::forget(rt);
    Ok(reply)
}

/// `command` with its paths absolute (the node has its own cwd).
fn absolute(command: &NodeCommand) -> Result<NodeCommand> {
    Ok(match command {
        NodeCommand::BlobsAdd { path } => NodeCommand::BlobsAdd {
            path: abs_path(path)?,
        },
        NodeCommand::StickSync { mount } => NodeCommand::StickSync {
            mount: abs_path(mount)?,
        },
        NodeCommand::BundleImport { path } => NodeCommand::BundleImport {
            path: abs_path(path)?,
        },
        NodeCommand::BundleExport { path, clock } => NodeCommand::BundleExport {
            path: abs_target(path)?,
            clock: clock.clone(),
        },
        other => other.clone(),
    })
}

/// An existing path, absolute.
fn abs_path(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))
}

/// A path that may not exist yet (its folder must), absolute.
fn abs_target(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        return abs_path(path);
    }
    let name = path
        .file_name()
        .context("--out needs a file or folder name")?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).with_context(|| format!("{}", parent.display()))?;
    Ok(dir.join(name))
}

/// Prints a control command's reply as the CLI shows it.
fn write_reply(reply: Reply, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    match reply {
        Reply::Published(ids) => {
            for id in ids {
                writeln!(out, "{id}")?;
            }
        }
        Reply::Message(text) => writeln!(out, "{text}")?,
        Reply::Clock(v) => writeln!(out, "{}", v.to_compact())?,
        Reply::Blob(id) => writeln!(out, "{id}")?,
        Reply::BlobsUsage(v) if json => writeln!(out, "{}", v.to_compact())?,
        Reply::BlobsUsage(v) => writeln!(out, "{}", blob_usage_line(&v))?,
        Reply::Synced(line) => writeln!(out, "{line}")?,
        Reply::Peers(v) => write_peers(&v, json, out)?,
        Reply::Status(v) if json => writeln!(out, "{}", v.to_compact())?,
        Reply::Status(v) => write_status(&v, out)?,
        Reply::Stick(report) => return super::sneakernet::print_stick(&report, json, out),
        Reply::Sticks(rows) => super::sneakernet::print_sticks(&rows, json, out)?,
        Reply::Import(report) => super::sneakernet::print_import(&report, json, out)?,
        Reply::Export(report) => super::sneakernet::print_export(&report, out)?,
        reply @ (Reply::Invite(_) | Reply::Invites(_)) => super::invites::print(reply, json, out)?,
        Reply::WebPasswordSet => writeln!(out, "web password set")?,
        Reply::CarrySet(mode) => writeln!(out, "carrying mode set to {}", mode.as_str())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `blobs: N held, X MiB of Y MiB quota (P %)` (or `no quota`).
fn blob_usage_line(v: &Value) -> String {
    let n = |k: &str| match v.as_object().and_then(|o| o.get(k)) {
        Some(Value::Number(n)) => Some(*n),
        _ => None,
    };
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let used = n("used").unwrap_or(0.0);
    let quota = match n("quota") {
        Some(q) if q > 0.0 => format!("of {:.1} MiB quota ({:.0} %)", mib(q), used / q * 100.0),
        _ => "(no quota)".into(),
    };
    format!(
        "blobs: {} held, {:.1} MiB {quota}; largest taken {:.1} MiB",
        n("count").unwrap_or(0.0),
        mib(used),
        mib(n("max").unwrap_or(0.0))
    )
}

/// `ssb-node peers`: one row per peer, as JSON or `ADDRESS STATE SOURCE`.
fn write_peers(v: &Value, json: bool, out: &mut dyn Write) -> Result<()> {
    let Value::Array(rows) = v else {
        bail!("the node's peer list is not an array");
    };
    for row in rows {
        if json {
            writeln!(out, "{}", row.to_compact())?;
        } else {
            let o = row.as_object().context("peer row")?;
            let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
            let addr = match o.get("address").and_then(Value::as_str) {
                Some(a) => a.to_owned(),
                None => text("key"),
            };
            writeln!(out, "{} {} {}", addr, text("state"), text("source"))?;
        }
    }
    Ok(())
}

/// `ssb-node feed` through a running node (its `createHistoryStream`):
/// `None` if no node is running.
pub fn feed_on_running_node(
    feed: Option<String>,
    from: u32,
    limit: Option<usize>,
    data: &DataDir,
) -> Result<Option<ExitCode>> {
    with_running_node(data, async |session| {
        let mut out = io::BufWriter::new(io::stdout().lock());
        write_feed(feed, from, limit, data, session, &mut out).await?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn write_feed(
    feed: Option<String>,
    from: u32,
    limit: Option<usize>,
    data: &DataDir,
    session: &Session,
    out: &mut dyn Write,
) -> Result<()> {
    let feed: FeedId = match feed {
        Some(f) => f.parse()?,
        None => data.keys()?.id(),
    };
    let mut o = Object::new();
    o.push("id", Value::string(&feed.to_string()));
    o.push("sequence", Value::Number(f64::from(from)));
    if let Some(l) = limit {
        o.push("limit", Value::Number(l as f64));
    }
    o.push("keys", Value::Bool(true));
    let mut stream = session
        .call(
            &["createHistoryStream"],
            CallType::Source,
            vec![Value::Object(o)],
        )
        .await?;
    loop {
        match stream.recv().await {
            Some(Item::Data(Body { bytes, .. })) => {
                out.write_all(&bytes)?;
                out.write_all(b"\n")?;
            }
            Some(Item::End) => return Ok(()),
            Some(Item::Error(e)) => bail!("{e}"),
            None => bail!("the node closed the connection"),
        }
    }
}

/// `ssb-node status` as text: the node's phase and LED pattern, the peer
/// counts, then one line per stick.
fn write_status(v: &Value, out: &mut dyn Write) -> Result<()> {
    let o = v
        .as_object()
        .context("the node's status is not an object")?;
    let text = |o: &Object, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let number = |k: &str| match o.get(k) {
        Some(Value::Number(n)) => *n,
        _ => 0.0,
    };
    writeln!(out, "node: {} ({})", text(o, "state"), text(o, "id"))?;
    writeln!(out, "led: {}", text(o, "led"))?;
    writeln!(
        out,
        "peers: {} connected, {} syncing",
        number("peers_connected"),
        number("peers_syncing")
    )?;
    if let Some(d) = o.get("disk").and_then(Value::as_object) {
        let n = |k: &str| match d.get(k) {
            Some(Value::Number(n)) => *n / (1024.0 * 1024.0),
            _ => 0.0,
        };
        match d.get("reason").and_then(Value::as_str) {
            Some(why) => writeln!(out, "disk: disk full, needs attention ({why})")?,
            None => writeln!(
                out,
                "disk: {}, {:.1} MiB free of {:.1} MiB ({:.1} MiB kept in reserve)",
                text(d, "state"),
                n("free"),
                n("total"),
                n("reserve")
            )?,
        }
    }
    if let Some(b) = o.get("blobs") {
        writeln!(out, "{}", blob_usage_line(b))?;
    }
    if let Some(c) = o.get("carry").and_then(Value::as_object) {
        let n = |k: &str| match c.get(k) {
            Some(Value::Number(n)) => *n,
            _ => 0.0,
        };
        writeln!(
            out,
            "carrying: {} feeds ({}, set by the {}; {} followed on connecting, {} refused at the cap of {})",
            n("feeds"),
            text(c, "mode"),
            text(c, "set_by"),
            n("followed"),
            n("refused"),
            n("max")
        )?;
    }
    if let Some(b) = o.get("behind").and_then(Value::as_object) {
        let rows = |k: &str| match b.get(k) {
            Some(Value::Array(r)) => r.clone(),
            _ => Vec::new(),
        };
        for (kind, name_key) in [("peer", "key"), ("stick", "id")] {
            for row in rows(&format!("{kind}s")) {
                let r = row.as_object().context("behind entry")?;
                let n = |k: &str| match r.get(k) {
                    Some(Value::Number(n)) => *n,
                    _ => 0.0,
                };
                let at = match r.get("mount").and_then(Value::as_str) {
                    Some(m) => format!(" at {m}"),
                    None => String::new(),
                };
                writeln!(
                    out,
                    "{kind} {}{at}: we lack {}, it lacks {} ({} feeds)",
                    text(r, name_key),
                    n("we_lack"),
                    n("they_lack"),
                    n("feeds")
                )?;
            }
        }
    }
    let sticks = match o.get("sticks") {
        Some(Value::Array(s)) => s.as_slice(),
        _ => &[],
    };
    if sticks.is_empty() {
        writeln!(out, "sticks: none")?;
    }
    for s in sticks {
        let s = s.as_object().context("stick entry")?;
        let mut line = format!("stick {}: {}", text(s, "path"), text(s, "state"));
        for key in ["summary", "reason", "detail"] {
            if let Some(t) = s.get(key).and_then(Value::as_str) {
                line.push_str(&format!(" ({t})"));
            }
        }
        if s.get("present") == Some(&Value::Bool(false)) {
            line.push_str(", pulled");
        }
        if s.get("attention") == Some(&Value::Bool(true)) {
            line.push_str(", needs attention");
        }
        writeln!(out, "{line}")?;
    }
    if let Some(w) = o.get("wifi").and_then(Value::as_object) {
        writeln!(out, "wifi: {}", text(w, "state"))?;
        if let Some(Value::Array(problems)) = w.get("problems") {
            for p in problems.iter().filter_map(Value::as_str) {
                writeln!(out, "wifi problem: {p}")?;
            }
        }
    }
    Ok(())
}
