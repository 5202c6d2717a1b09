//! The CLI's network side: `run`, `sync`, and every command that must go
//! through a running node's control socket instead of opening the store
//! (which the node holds locked).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use ssb_node::data_dir::DataDir;
use ssb_node::feed::json::{Object, Value};
use ssb_node::feed::{FeedId, MsgId};
use ssb_node::muxrpc::{Body, CallType, Item, Session};
use ssb_node::net::address::MultiserverAddress;
use ssb_node::publish::publish;
use ssb_node::replication::sync;
use ssb_node::service::server::{self, RunOptions};
use ssb_node::service::{api, control};

use super::open::open_node;
use super::{BlobsCommand, BundleCommand, Command, StickCommand};

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
            },
        )
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `ssb-node sync` with no node running: a node of our own for one link.
pub fn sync_local(
    data: &DataDir,
    address: &str,
    timeout: u64,
    config: Option<PathBuf>,
) -> Result<String> {
    let addr: MultiserverAddress = address.parse().map_err(|e| anyhow!("{address}: {e}"))?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let node = open_node(data, config)?;
        let report = sync::sync(
            node.replicator().clone(),
            &addr,
            Duration::from_secs(timeout),
        )
        .await?;
        node.replica().shutdown().await?;
        Ok::<_, anyhow::Error>(report.to_string())
    })?;
    // Everything received is durable now (shutdown fsynced the journal) and
    // the process is about to end: tearing the runtime and the store down
    // would free every memtable entry one by one and wait for a background
    // flush the next open does not need (~6 ms after 10,000 messages). The
    // OS takes it all back at exit; the next open replays the journal, as
    // it does after any stop.
    std::mem::forget(rt);
    Ok(report)
}

/// `follow`/`unfollow` with no node running.
pub fn contact_local(data: &DataDir, feed: &str, following: bool) -> Result<MsgId> {
    let feed: FeedId = feed.parse()?;
    let keys = data.keys()?;
    let store = data.open_store()?;
    let ids = publish(&store, &keys, [api::contact(&feed, following)])?;
    ids.into_iter().next().context("nothing published")
}

/// Runs `command` through a running node if there is one: `Ok(Ok(code))`
/// when it was handled, `Ok(Err(command))` to run it locally.
pub fn try_remote(
    command: Command,
    data: &DataDir,
) -> Result<std::result::Result<ExitCode, Command>> {
    let remote_capable = matches!(
        command,
        Command::Publish { .. }
            | Command::Feed { .. }
            | Command::Get { .. }
            | Command::Clock
            | Command::Follow { .. }
            | Command::Unfollow { .. }
            | Command::Peers { .. }
            | Command::Status { .. }
            | Command::Sync { .. }
            | Command::Blobs {
                command: BlobsCommand::Add { .. }
            }
            | Command::Stick { .. }
            | Command::Sticks { .. }
            | Command::Bundle {
                command: BundleCommand::Import { .. } | BundleCommand::Export { .. }
            }
    );
    let path = control::socket_path(data.root());
    if !remote_capable || !path.exists() {
        return Ok(Err(command));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let Some(session) = control::connect(&path).await else {
            return Ok(Err(command));
        };
        let mut out = io::BufWriter::new(io::stdout().lock());
        let code = remote(command, data, &session, &mut out).await;
        session.close().await;
        out.flush()?;
        code.map(Ok)
    })
}

/// An existing path, absolute, as a JSON string (the node has its own cwd).
fn abs_path(path: &std::path::Path) -> Result<Value> {
    let p = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    Ok(Value::string(&p.to_string_lossy()))
}

/// A path that may not exist yet (its folder must), absolute.
fn abs_target(path: &std::path::Path) -> Result<Value> {
    if path.exists() {
        return abs_path(path);
    }
    let name = path
        .file_name()
        .context("--out needs a file or folder name")?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).with_context(|| format!("{}", parent.display()))?;
    Ok(Value::string(&dir.join(name).to_string_lossy()))
}

async fn call(session: &Session, name: &[&str], args: Vec<Value>) -> Result<Value> {
    let body = session.call_async(name, args).await.map_err(|e| match e {
        ssb_node::muxrpc::CallError::Remote(m) => anyhow!("{m}"),
        other => anyhow!("{other}"),
    })?;
    Ok(body.to_value()?)
}

/// Calls one of the node's long sneakernet methods as a `source`: draws the
/// progress it streams (when stderr is a terminal) and returns its report.
async fn call_with_progress(session: &Session, name: &[&str], args: Vec<Value>) -> Result<Value> {
    let mut stream = session.call(name, CallType::Source, args).await?;
    let mut progress = super::sneakernet::Progress::new();
    loop {
        match stream.recv().await {
            Some(Item::Data(Body { bytes, .. })) => {
                let item = Value::parse(&bytes)?;
                let o = item
                    .as_object()
                    .context("the node sent a non-object item")?;
                if let Some(report) = o.get("report") {
                    return Ok(report.clone());
                }
                if let Some(step) = o.get("progress") {
                    progress.step(serde_json::from_str(&step.to_compact())?);
                }
            }
            Some(Item::End) => bail!("the node ended {} without a report", name.join(".")),
            Some(Item::Error(e)) => bail!("{e}"),
            None => bail!("the node closed the connection"),
        }
    }
}

fn key_of(v: &Value) -> Result<String> {
    v.as_object()
        .and_then(|o| o.get("key"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("the node's reply has no key")
}

async fn remote(
    command: Command,
    data: &DataDir,
    session: &Session,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    match command {
        Command::Publish { content, stdin } => {
            let contents = super::read_contents(content, stdin)?;
            for (index, c) in contents.into_iter().enumerate() {
                let reply = call(session, &["publish"], vec![c])
                    .await
                    .with_context(|| format!("content {index}"))?;
                writeln!(out, "{}", key_of(&reply)?)?;
            }
        }
        Command::Feed { feed, from, limit } => {
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
                    Some(Item::End) => break,
                    Some(Item::Error(e)) => bail!("{e}"),
                    None => bail!("the node closed the connection"),
                }
            }
        }
        Command::Get { id } => {
            let id: MsgId = id.parse()?;
            let v = call(session, &["get"], vec![Value::string(&id.to_string())]).await?;
            writeln!(out, "{}", v.to_compact())?;
        }
        Command::Clock => {
            let v = call(session, &["getVectorClock"], vec![]).await?;
            writeln!(out, "{}", v.to_compact())?;
        }
        Command::Follow { feed } => {
            let feed: FeedId = feed.parse()?;
            let v = call(session, &["follow"], vec![Value::string(&feed.to_string())]).await?;
            writeln!(out, "{}", key_of(&v)?)?;
        }
        Command::Unfollow { feed } => {
            let feed: FeedId = feed.parse()?;
            let v = call(
                session,
                &["unfollow"],
                vec![Value::string(&feed.to_string())],
            )
            .await?;
            writeln!(out, "{}", key_of(&v)?)?;
        }
        Command::Peers { json } => {
            let v = call(session, &["peers"], vec![]).await?;
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
        }
        Command::Status { json } => {
            let v = call(session, &["status"], vec![]).await?;
            if json {
                writeln!(out, "{}", v.to_compact())?;
            } else {
                write_status(&v, out)?;
            }
        }
        Command::Sync {
            address, timeout, ..
        } => {
            let v = call(
                session,
                &["sync"],
                vec![Value::string(&address), Value::Number(timeout as f64)],
            )
            .await?;
            writeln!(out, "{}", v.as_str().unwrap_or_default())?;
        }
        Command::Blobs {
            command: BlobsCommand::Add { file },
        } => {
            let v = call(session, &["blobs", "add"], vec![abs_path(&file)?]).await?;
            writeln!(out, "{}", v.as_str().unwrap_or_default())?;
        }
        Command::Stick {
            command: StickCommand::Sync { mount, json },
        } => {
            let v =
                call_with_progress(session, &["stick", "sync"], vec![abs_path(&mount)?]).await?;
            let report = serde_json::from_str(&v.to_compact())?;
            return super::sneakernet::print_stick(&report, json, out);
        }
        Command::Sticks { json } => {
            let v = call(session, &["sticks"], vec![]).await?;
            super::sneakernet::print_sticks(&serde_json::from_str(&v.to_compact())?, json, out)?;
        }
        Command::Bundle {
            command: BundleCommand::Import { file, json },
        } => {
            let v =
                call_with_progress(session, &["bundle", "import"], vec![abs_path(&file)?]).await?;
            super::sneakernet::print_import(&serde_json::from_str(&v.to_compact())?, json, out)?;
        }
        Command::Bundle {
            command: BundleCommand::Export { out: path, clock },
        } => {
            let mut args = vec![abs_target(&path)?];
            if let Some(c) = clock {
                let clock = super::sneakernet::read_clock(&c)?;
                args.push(Value::parse(&serde_json::to_vec(&clock)?)?);
            }
            let v = call_with_progress(session, &["bundle", "export"], args).await?;
            super::sneakernet::print_export(&serde_json::from_str(&v.to_compact())?, out)?;
        }
        _ => bail!("this command cannot run while a node is running"),
    }
    Ok(ExitCode::SUCCESS)
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
    if let Some(c) = o.get("carry").and_then(Value::as_object) {
        let n = |k: &str| match c.get(k) {
            Some(Value::Number(n)) => *n,
            _ => 0.0,
        };
        writeln!(
            out,
            "carrying: {} feeds ({}; {} followed on connecting, {} refused at the cap of {})",
            n("feeds"),
            text(c, "mode"),
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
    Ok(())
}
