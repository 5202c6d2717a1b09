//! The control commands: what the CLI asks of a node, defined once for both
//! ends of the control socket.
//!
//! A [`Command`] knows its muxrpc method and arguments ([`Command::parse`],
//! [`Command::to_args`]), whether it streams progress, how it runs on a
//! [`Node`] ([`Command::run`]) and its answer ([`Reply`], with its wire form).
//! The control socket decodes a request into a command and runs it on the
//! running node; the CLI builds one and either sends it there
//! ([`super::control::send`]) or runs it on a node of its own. Adding a
//! command is a variant here and its arms below.
//!
//! Wire form: `publish(content…) → {key}` (`{key, keys}` for several),
//! `get(id) → message`, `getVectorClock() → clock`, `follow(feed)`,
//! `unfollow(feed) → {key}`, `blobs.add(path) → id`, `peers() → [row]`,
//! `sync(address, seconds?) → text`, `status() → object`, `stick.sync(mount)`,
//! `bundle.import(path)`, `bundle.export(path, clock?) → report`,
//! `sticks() → [row]`, `invite.create({uses?, expires?, note?}) → row with
//! code`, `invite.list() → [row]`, `invite.revoke(id) → row`,
//! `web.password(argon2id hash) → true`, `carry.set(mode) → mode`. The three
//! sneakernet ones also answer as `source`
//! calls: items `{"progress": STEP}` (at most five a second), then one
//! `{"report": REPORT}`, then the end (or an error).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bundle_format::Clock;

use super::invites::{self, CreateOptions, InviteError, InviteRow};
use super::{api, Node};
use crate::appliance::visits::{self, SneakernetError};
use crate::blob_store::{BlobError, BlobStore};
use crate::data_dir::{DataDir, DataDirError};
use crate::feed::json::{JsonError, Object, Value};
use crate::feed::{BlobId, FeedId, MsgId};
use crate::net::address::{AddressError, MultiserverAddress};
use crate::replica::carry::{self, CarryMode};
use crate::replica::{blob_budget, DiskSpace, ReplicaError};
use crate::replication::sync::{self, SyncError};
use crate::sneakernet::files::ExportReport;
use crate::sneakernet::import::ImportReport;
use crate::sneakernet::reconcile::{Step, StickReport};
use crate::store::{Store, StoreError};

/// The methods of the control commands, as the socket offers them.
pub const METHODS: &[&str] = &[
    "publish",
    "get",
    "getVectorClock",
    "follow",
    "unfollow",
    "blobs.add",
    "blobs.usage",
    "peers",
    "sync",
    "status",
    "stick.sync",
    "bundle.import",
    "bundle.export",
    "sticks",
    "invite.create",
    "invite.list",
    "invite.revoke",
    "web.password",
    "carry.set",
];

/// Most bytes of arguments one request carries: half the largest body a
/// muxrpc session takes, leaving room for the request's own fields.
pub const REQUEST_BUDGET: usize = crate::net::rpc::DEFAULT_MAX_BODY_LEN / 2;

/// One control command.
#[derive(Debug, Clone)]
pub enum Command {
    /// Publish these contents, in order, as one append.
    Publish {
        /// The contents.
        contents: Vec<Value>,
    },
    /// One stored message.
    Get {
        /// Its id.
        id: MsgId,
    },
    /// The vector clock.
    Clock,
    /// Publish a contact following `feed`.
    Follow {
        /// The feed.
        feed: FeedId,
    },
    /// Publish a contact unfollowing `feed`.
    Unfollow {
        /// The feed.
        feed: FeedId,
    },
    /// Store a file as a blob.
    BlobsAdd {
        /// The file (absolute when sent: the node has its own cwd).
        path: PathBuf,
    },
    /// What the blob store holds, against the quota.
    BlobsUsage,
    /// The peer table.
    Peers,
    /// Connect to a peer once and replicate both ways.
    Sync {
        /// The peer.
        address: MultiserverAddress,
        /// Give up after this long.
        timeout: Duration,
    },
    /// The node's status.
    Status,
    /// Visit the stick mounted at `mount`.
    StickSync {
        /// Where it is mounted.
        mount: PathBuf,
    },
    /// Import a bundle file.
    BundleImport {
        /// The file.
        path: PathBuf,
    },
    /// Export what a receiver holding `clock` lacks.
    BundleExport {
        /// A file, or a directory for several bundles.
        path: PathBuf,
        /// What the receiver holds.
        clock: Clock,
    },
    /// The sticks seen.
    Sticks,
    /// Make an invite.
    InviteCreate {
        /// Its uses, expiry and note.
        options: CreateOptions,
    },
    /// The invites kept.
    InviteList,
    /// Revoke an invite.
    InviteRevoke {
        /// Its id, or a unique start of it.
        id: String,
    },
    /// Set the web page's admin password.
    WebPassword {
        /// Its argon2id hash (the CLI hashes; the plaintext never travels).
        hash: String,
    },
    /// Set the carrying mode as the keeper's choice.
    CarrySet {
        /// The mode.
        mode: CarryMode,
    },
}

/// A command's answer.
#[derive(Debug)]
pub enum Reply {
    /// The ids of the messages published (`publish`, `follow`, `unfollow`).
    Published(Vec<MsgId>),
    /// A message as `{key, value, timestamp}` JSON text.
    Message(String),
    /// The vector clock `{"@feed": seq}`.
    Clock(Value),
    /// The id of the blob added.
    Blob(BlobId),
    /// The blob store's usage: `{used, count, quota, max}`.
    BlobsUsage(Value),
    /// The peer table rows.
    Peers(Value),
    /// The one-line summary of a sync.
    Synced(String),
    /// The status object.
    Status(Value),
    /// What a stick visit did.
    Stick(StickReport),
    /// What an import did.
    Import(ImportReport),
    /// What an export wrote.
    Export(ExportReport),
    /// The sticks seen, as recorded.
    Sticks(serde_json::Value),
    /// The invite made (with its code) or revoked.
    Invite(InviteRow),
    /// The invites kept, oldest first.
    Invites(Vec<InviteRow>),
    /// The web password is set.
    WebPasswordSet,
    /// The carrying mode is set to this.
    CarrySet(CarryMode),
}

/// Why a command was refused or failed, named for who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not a control command (the asker's fault).
    #[error("method:{} is not in list of allowed methods", .0.replace('.', ","))]
    UnknownMethod(String),
    /// An argument is missing or of the wrong kind (the asker's fault).
    #[error("{method} expects {what}")]
    BadArg {
        /// The method.
        method: &'static str,
        /// What it expects.
        what: &'static str,
    },
    /// Not a multiserver address (the asker's fault).
    #[error("{addr}: {error}")]
    BadAddress {
        /// The text given.
        addr: String,
        /// Why it is not an address.
        error: AddressError,
    },
    /// The clock of `bundle.export` is not a clock (the asker's fault).
    #[error("clock: {0}")]
    BadClock(serde_json::Error),
    /// The asker's file could not be read.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The message is not held here.
    #[error("message {0} is not in the store")]
    NotStored(MsgId),
    /// The command needs a node, not just the stores (a bug of ours).
    #[error("{0} needs a node")]
    NeedsNode(&'static str),
    /// The data dir's store or blob store could not be opened.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Our replica failed (store, publishing, a blocking task).
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Our store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The sync failed (the peer, the link, the deadline).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The stick visit, import or export failed.
    #[error(transparent)]
    Sneakernet(#[from] SneakernetError),
    /// An invite could not be made or revoked (options, id, room, store).
    #[error(transparent)]
    Invite(#[from] InviteError),
    /// The web password hash was refused or not stored.
    #[error(transparent)]
    WebPassword(#[from] crate::web::password::PasswordError),
    /// A blocking task died (a bug of ours).
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The config file could not be used.
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    /// Publishing gave no id (a bug of ours).
    #[error("nothing published")]
    NothingPublished,
    /// An answer could not be written as JSON (a bug of ours).
    #[error("encoding the reply: {0}")]
    Encode(String),
}

/// Why a running node's answer is not what its command answers (the node's
/// fault: another version, say).
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The answer lacks what the command answers.
    #[error("the node's reply to {method} is not {what}")]
    Shape {
        /// The method.
        method: &'static str,
        /// What was expected.
        what: &'static str,
    },
    /// A report or row that does not decode.
    #[error("the node's reply to {method}: {error}")]
    Json {
        /// The method.
        method: &'static str,
        /// Why it does not decode.
        error: serde_json::Error,
    },
}

impl Command {
    /// Decodes a control-socket request: `method` (the name parts joined by
    /// dots) and its arguments.
    pub fn parse(method: &str, args: &[Value]) -> Result<Command, CommandError> {
        let Some(&name) = METHODS.iter().find(|m| **m == method) else {
            return Err(CommandError::UnknownMethod(method.to_owned()));
        };
        let bad = |what| CommandError::BadArg { method: name, what };
        let text = |what| args.first().and_then(Value::as_str).ok_or(bad(what));
        let path = || text("a path").map(PathBuf::from);
        Ok(match name {
            "publish" if args.is_empty() => return Err(bad("a content")),
            "publish" => Command::Publish {
                contents: args.to_vec(),
            },
            "get" => Command::Get {
                id: text("a message id")?
                    .parse()
                    .map_err(|_| bad("a message id"))?,
            },
            "getVectorClock" => Command::Clock,
            "follow" | "unfollow" => {
                let feed = text("a feed id")?.parse().map_err(|_| bad("a feed id"))?;
                if name == "follow" {
                    Command::Follow { feed }
                } else {
                    Command::Unfollow { feed }
                }
            }
            "blobs.add" => Command::BlobsAdd {
                path: text("a file path")?.into(),
            },
            "blobs.usage" => Command::BlobsUsage,
            "peers" => Command::Peers,
            "sync" => {
                let addr = text("an address")?;
                let address = addr.parse().map_err(|error| CommandError::BadAddress {
                    addr: addr.to_owned(),
                    error,
                })?;
                let timeout = match args.get(1) {
                    Some(Value::Number(n)) if *n > 0.0 && n.is_finite() => {
                        Duration::from_secs_f64(n.min(f64::from(u32::MAX)))
                    }
                    _ => sync::DEFAULT_TIMEOUT,
                };
                Command::Sync { address, timeout }
            }
            "status" => Command::Status,
            "stick.sync" => Command::StickSync { mount: path()? },
            "bundle.import" => Command::BundleImport { path: path()? },
            "bundle.export" => {
                let clock = match args.get(1) {
                    None | Some(Value::Null) => Clock::new(),
                    Some(v @ Value::Object(_)) => {
                        serde_json::from_str(&v.to_compact()).map_err(CommandError::BadClock)?
                    }
                    Some(_) => return Err(bad("a clock object as its second argument")),
                };
                Command::BundleExport {
                    path: path()?,
                    clock,
                }
            }
            "sticks" => Command::Sticks,
            "invite.create" => Command::InviteCreate {
                options: CreateOptions::from_value(args.first().unwrap_or(&Value::Null))?,
            },
            "invite.list" => Command::InviteList,
            "invite.revoke" => Command::InviteRevoke {
                id: text("an invite id")?.to_owned(),
            },
            "web.password" => Command::WebPassword {
                hash: text("a password hash")?.to_owned(),
            },
            "carry.set" => Command::CarrySet {
                mode: text("follows or connected")?
                    .parse()
                    .map_err(|_| bad("follows or connected"))?,
            },
            _ => return Err(CommandError::UnknownMethod(method.to_owned())),
        })
    }

    /// The muxrpc method, dotted (`stick.sync`).
    pub fn method(&self) -> &'static str {
        match self {
            Command::Publish { .. } => "publish",
            Command::Get { .. } => "get",
            Command::Clock => "getVectorClock",
            Command::Follow { .. } => "follow",
            Command::Unfollow { .. } => "unfollow",
            Command::BlobsAdd { .. } => "blobs.add",
            Command::BlobsUsage => "blobs.usage",
            Command::Peers => "peers",
            Command::Sync { .. } => "sync",
            Command::Status => "status",
            Command::StickSync { .. } => "stick.sync",
            Command::BundleImport { .. } => "bundle.import",
            Command::BundleExport { .. } => "bundle.export",
            Command::Sticks => "sticks",
            Command::InviteCreate { .. } => "invite.create",
            Command::InviteList => "invite.list",
            Command::InviteRevoke { .. } => "invite.revoke",
            Command::WebPassword { .. } => "web.password",
            Command::CarrySet { .. } => "carry.set",
        }
    }

    /// The request arguments ([`Command::parse`] reads them back).
    pub fn to_args(&self) -> Vec<Value> {
        let path = |p: &PathBuf| Value::string(&p.to_string_lossy());
        match self {
            Command::Publish { contents } => contents.clone(),
            Command::Get { id } => vec![Value::string(&id.to_string())],
            Command::Follow { feed } | Command::Unfollow { feed } => {
                vec![Value::string(&feed.to_string())]
            }
            Command::BlobsAdd { path: p }
            | Command::StickSync { mount: p }
            | Command::BundleImport { path: p } => vec![path(p)],
            Command::Sync { address, timeout } => vec![
                Value::string(&address.to_string()),
                Value::Number(timeout.as_secs_f64()),
            ],
            Command::BundleExport { path: p, clock } => {
                let mut args = vec![path(p)];
                if !clock.is_empty() {
                    let mut o = Object::new();
                    for (feed, seq) in clock.iter() {
                        o.push(feed, Value::Number(f64::from(seq)));
                    }
                    args.push(Value::Object(o));
                }
                args
            }
            Command::InviteCreate { options } => vec![options.to_value()],
            Command::InviteRevoke { id } => vec![Value::string(id)],
            Command::WebPassword { hash } => vec![Value::string(hash)],
            Command::CarrySet { mode } => vec![Value::string(mode.as_str())],
            Command::Clock
            | Command::BlobsUsage
            | Command::Peers
            | Command::Status
            | Command::Sticks
            | Command::InviteList => Vec::new(),
        }
    }

    /// The requests that carry this command: itself, except a publish too
    /// large for one request, which goes as several in order (each one
    /// append), each under [`REQUEST_BUDGET`].
    pub fn requests(&self) -> Vec<Command> {
        let Command::Publish { contents } = self else {
            return vec![self.clone()];
        };
        let mut batches: Vec<Vec<Value>> = Vec::new();
        let mut size = 0;
        for c in contents {
            let n = c.to_compact().len() + 1;
            if batches.is_empty() || size + n > REQUEST_BUDGET {
                batches.push(Vec::new());
                size = 0;
            }
            size += n;
            if let Some(last) = batches.last_mut() {
                last.push(c.clone());
            }
        }
        batches
            .into_iter()
            .map(|contents| Command::Publish { contents })
            .collect()
    }

    /// Whether the command streams its progress when called as `source`.
    pub fn streams_progress(&self) -> bool {
        matches!(
            self,
            Command::StickSync { .. } | Command::BundleImport { .. } | Command::BundleExport { .. }
        )
    }

    /// Whether the command only makes sense on a running node (a node of
    /// the CLI's own has no peers and no status to show).
    pub fn needs_running_node(&self) -> bool {
        matches!(self, Command::Peers | Command::Status)
    }

    /// Whether the command runs on the data dir's stores alone when no node
    /// runs (`get`, `clock`, `blobs add`, `invite list`, `invite revoke`,
    /// `web-password`, `carry set`):
    /// so it needs no identity, which a data dir filled by `ingest` lacks.
    pub fn runs_on_stores(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Clock
                | Command::BlobsAdd { .. }
                | Command::BlobsUsage
                | Command::InviteList
                | Command::InviteRevoke { .. }
                | Command::WebPassword { .. }
                | Command::CarrySet { .. }
        )
    }

    /// Runs a command that [`Command::runs_on_stores`] on `data`'s stores.
    pub fn run_on_stores(self, data: &DataDir) -> Result<Reply, CommandError> {
        match self {
            Command::Get { id } => get(&data.open_store()?, id),
            Command::Clock => Ok(Reply::Clock(api::vector_clock(&data.open_store()?)?)),
            Command::BlobsAdd { path } => {
                let blobs = data.open_blobs()?;
                let disk = DiskSpace::new(blobs.dir());
                Ok(Reply::Blob(add_blob(&blobs, &disk, &path)?))
            }
            Command::BlobsUsage => {
                let blobs = data.open_blobs()?;
                let settings =
                    super::config::Settings::load(&data.root().join("ssb-node.toml"), false)?;
                let quota = match crate::replica::disk_space::room(blobs.dir()) {
                    Ok(r) => settings.policy_on(r.total).blob_quota,
                    Err(_) => settings.policy().blob_quota,
                };
                Ok(Reply::BlobsUsage(blob_usage(
                    &blobs,
                    quota,
                    settings.blob_max,
                )?))
            }
            Command::InviteList => Ok(Reply::Invites(invites::list(&data.open_store()?)?)),
            Command::InviteRevoke { id } => Ok(Reply::Invite(invites::revoke_row(
                &data.open_store()?,
                &id,
            )?)),
            Command::WebPassword { hash } => {
                crate::web::password::set(&data.open_store()?, &hash)?;
                Ok(Reply::WebPasswordSet)
            }
            Command::CarrySet { mode } => {
                let settings =
                    super::config::Settings::load(&data.root().join("ssb-node.toml"), false)?;
                carry::save(&data.open_store()?, mode, settings.hops)?;
                Ok(Reply::CarrySet(mode))
            }
            other => Err(CommandError::NeedsNode(other.method())),
        }
    }

    /// Runs the command on `node`; the sneakernet ones tell `progress` how
    /// far they are (from a blocking thread).
    pub async fn run(
        self,
        node: &Arc<Node>,
        progress: impl FnMut(Step) + Send + 'static,
    ) -> Result<Reply, CommandError> {
        let replica = node.replica();
        Ok(match self {
            Command::Publish { contents } => Reply::Published(replica.publish(contents).await?),
            Command::Get { id } => get(replica.store(), id)?,
            Command::Clock => Reply::Clock(api::vector_clock(replica.store())?),
            Command::Follow { feed } | Command::Unfollow { feed } => {
                let following = matches!(self, Command::Follow { .. });
                let ids = replica
                    .publish(vec![api::contact(&feed, following)])
                    .await?;
                if ids.is_empty() {
                    return Err(CommandError::NothingPublished);
                }
                Reply::Published(ids)
            }
            Command::BlobsAdd { path } => {
                let r = replica.clone();
                let id = tokio::task::spawn_blocking(move || add_blob(r.blobs(), r.disk(), &path))
                    .await??;
                replica.wants().got(&id);
                let _ = replica.store().remove_want(&id);
                let r = replica.clone();
                tokio::task::spawn_blocking(move || blob_budget::enforce_logged(&r)).await?;
                Reply::Blob(id)
            }
            Command::BlobsUsage => Reply::BlobsUsage(blob_usage(
                replica.blobs(),
                replica.blob_quota(),
                replica.blob_max(),
            )?),
            Command::Peers => Reply::Peers(node.replicator().peers().to_value()),
            Command::Sync { address, timeout } => {
                let report = sync::sync(node.replicator().clone(), &address, timeout).await?;
                Reply::Synced(report.to_string())
            }
            Command::Status => Reply::Status(api::status(node)),
            Command::StickSync { mount } => {
                Reply::Stick(visits::sync_stick_reporting(replica.clone(), mount, progress).await?)
            }
            Command::BundleImport { path } => {
                Reply::Import(visits::import_file(replica.clone(), path, progress).await?)
            }
            Command::BundleExport { path, clock } => {
                Reply::Export(visits::export_to(replica.clone(), path, clock, progress).await?)
            }
            Command::Sticks => Reply::Sticks(visits::sticks(replica)?),
            Command::InviteCreate { options } => Reply::Invite(invites::create_on(node, &options)?),
            Command::InviteList => Reply::Invites(invites::list(replica.store())?),
            Command::InviteRevoke { id } => {
                Reply::Invite(invites::revoke_row(replica.store(), &id)?)
            }
            Command::WebPassword { hash } => {
                crate::web::password::set(replica.store(), &hash)?;
                Reply::WebPasswordSet
            }
            Command::CarrySet { mode } => {
                let r = replica.clone();
                tokio::task::spawn_blocking(move || r.set_carry_mode(mode)).await??;
                Reply::CarrySet(mode)
            }
        })
    }
}

/// `get`: the message `id` from `store`.
fn get(store: &Store, id: MsgId) -> Result<Reply, CommandError> {
    match store.get(&id)? {
        Some(m) => Ok(Reply::Message(m.to_kvt_json())),
        None => Err(CommandError::NotStored(id)),
    }
}

/// `blobs add`: stores the file at `path` as a blob, if the disk has room.
fn add_blob(blobs: &BlobStore, disk: &DiskSpace, path: &Path) -> Result<BlobId, CommandError> {
    let file_err = |error| CommandError::File {
        path: path.display().to_string(),
        error,
    };
    let mut f = std::fs::File::open(path).map_err(file_err)?;
    let size = f.metadata().map_err(file_err)?.len();
    disk.check(size).map_err(ReplicaError::from)?;
    let id = blobs.add(&mut f, None, u64::MAX)?.0;
    blobs.mark_own(&id)?;
    Ok(id)
}

/// What the blob store holds: `{used, count, quota, max}` (bytes; `quota`
/// is `null` without one).
pub fn blob_usage(blobs: &BlobStore, quota: Option<u64>, max: u64) -> Result<Value, BlobError> {
    let usage = blobs.usage()?;
    let mut o = Object::new();
    o.push("used", Value::Number(usage.bytes as f64));
    o.push("count", Value::Number(usage.count as f64));
    o.push(
        "quota",
        quota.map_or(Value::Null, |q| Value::Number(q as f64)),
    );
    o.push("max", Value::Number(max as f64));
    Ok(Value::Object(o))
}

/// A serde value as a muxrpc JSON value.
fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, CommandError> {
    let bytes = serde_json::to_vec(t).map_err(|e| CommandError::Encode(e.to_string()))?;
    Value::parse(&bytes).map_err(|e: JsonError| CommandError::Encode(e.to_string()))
}

impl Reply {
    /// The answer as sent on the socket.
    pub fn to_value(&self) -> Result<Value, CommandError> {
        let key = |id: &MsgId| Value::string(&id.to_string());
        Ok(match self {
            Reply::Published(ids) => {
                let mut o = Object::new();
                o.push("key", ids.first().map_or(Value::Null, key));
                if ids.len() > 1 {
                    o.push("keys", Value::Array(ids.iter().map(key).collect()));
                }
                Value::Object(o)
            }
            Reply::Message(text) => {
                Value::parse(text.as_bytes()).map_err(|e| CommandError::Encode(e.to_string()))?
            }
            Reply::Clock(v) | Reply::Peers(v) | Reply::Status(v) | Reply::BlobsUsage(v) => {
                v.clone()
            }
            Reply::Blob(id) => Value::string(&id.to_string()),
            Reply::Synced(text) => Value::string(text),
            Reply::Stick(r) => to_value(r)?,
            Reply::Import(r) => to_value(r)?,
            Reply::Export(r) => to_value(r)?,
            Reply::Sticks(rows) => to_value(rows)?,
            Reply::Invite(row) => to_value(row)?,
            Reply::Invites(rows) => to_value(rows)?,
            Reply::WebPasswordSet => Value::Bool(true),
            Reply::CarrySet(mode) => Value::string(mode.as_str()),
        })
    }

    /// Reads the answer to `command` as the node sent it.
    pub fn from_value(command: &Command, v: Value) -> Result<Reply, ReplyError> {
        let method = command.method();
        let shape = |what| ReplyError::Shape { method, what };
        let json = |error| ReplyError::Json { method, error };
        let id = |v: &Value| -> Option<MsgId> { v.as_str()?.parse().ok() };
        Ok(match command {
            Command::Publish { .. } | Command::Follow { .. } | Command::Unfollow { .. } => {
                let o = v.as_object().ok_or(shape("an object with a key"))?;
                let ids = match o.get("keys") {
                    Some(Value::Array(keys)) => keys.iter().map(id).collect::<Option<Vec<_>>>(),
                    _ => o.get("key").and_then(id).map(|k| vec![k]),
                };
                Reply::Published(ids.ok_or(shape("an object with a key"))?)
            }
            Command::Get { .. } => Reply::Message(v.to_compact()),
            Command::Clock => Reply::Clock(v),
            Command::BlobsAdd { .. } => Reply::Blob(
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or(shape("a blob id"))?,
            ),
            Command::BlobsUsage => match v {
                Value::Object(_) => Reply::BlobsUsage(v),
                _ => return Err(shape("an object")),
            },
            Command::Peers => match v {
                Value::Array(_) => Reply::Peers(v),
                _ => return Err(shape("an array")),
            },
            Command::Sync { .. } => Reply::Synced(v.as_str().ok_or(shape("a text"))?.to_owned()),
            Command::Status => match v {
                Value::Object(_) => Reply::Status(v),
                _ => return Err(shape("an object")),
            },
            Command::StickSync { .. } => {
                Reply::Stick(serde_json::from_str(&v.to_compact()).map_err(json)?)
            }
            Command::BundleImport { .. } => {
                Reply::Import(serde_json::from_str(&v.to_compact()).map_err(json)?)
            }
            Command::BundleExport { .. } => {
                Reply::Export(serde_json::from_str(&v.to_compact()).map_err(json)?)
            }
            Command::Sticks => Reply::Sticks(serde_json::from_str(&v.to_compact()).map_err(json)?),
            Command::InviteCreate { .. } | Command::InviteRevoke { .. } => {
                Reply::Invite(serde_json::from_str(&v.to_compact()).map_err(json)?)
            }
            Command::InviteList => {
                Reply::Invites(serde_json::from_str(&v.to_compact()).map_err(json)?)
            }
            Command::WebPassword { .. } => match v {
                Value::Bool(true) => Reply::WebPasswordSet,
                _ => return Err(shape("true")),
            },
            Command::CarrySet { .. } => Reply::CarrySet(
                v.as_str()
                    .and_then(|m| m.parse().ok())
                    .ok_or(shape("a carrying mode"))?,
            ),
        })
    }
}

/// Least time between two progress items on the socket.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A progress callback for a blocking thread that forwards steps to `tx`, at
/// most one per [`PROGRESS_EVERY`] (the first at once); steps the reader is
/// too slow for are dropped, never waited for.
pub(crate) fn forward(tx: tokio::sync::mpsc::Sender<Step>) -> impl FnMut(Step) + Send + 'static {
    let mut last: Option<Instant> = None;
    move |step| {
        if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        last = Some(Instant::now());
        let _ = tx.try_send(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = "@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519";

    fn parse(method: &str, args: &str) -> Result<Command, CommandError> {
        let Value::Array(args) = Value::parse(args.as_bytes()).unwrap() else {
            panic!("{args} is not an array")
        };
        Command::parse(method, &args)
    }

    #[test]
    fn every_command_reads_back_its_own_request() {
        let address = format!("net:127.0.0.1:8008~shs:{}", &FEED[1..45]);
        let mut clock = Clock::new();
        clock.set(FEED, 7);
        let commands = [
            Command::Publish {
                contents: vec![Value::parse(br#"{"type":"post"}"#).unwrap()],
            },
            Command::Get {
                id: "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"
                    .parse()
                    .unwrap(),
            },
            Command::Clock,
            Command::Follow {
                feed: FEED.parse().unwrap(),
            },
            Command::Unfollow {
                feed: FEED.parse().unwrap(),
            },
            Command::BlobsAdd {
                path: "/tmp/a".into(),
            },
            Command::BlobsUsage,
            Command::Peers,
            Command::Sync {
                address: address.parse().unwrap(),
                timeout: Duration::from_secs(9),
            },
            Command::Status,
            Command::StickSync {
                mount: "/media/x".into(),
            },
            Command::BundleImport {
                path: "/tmp/b.bundle".into(),
            },
            Command::BundleExport {
                path: "/tmp/out".into(),
                clock,
            },
            Command::Sticks,
            Command::InviteCreate {
                options: CreateOptions {
                    uses: Some(3),
                    expires_days: Some(1.5),
                    note: Some("for Ana".into()),
                },
            },
            Command::InviteList,
            Command::InviteRevoke { id: "AbC".into() },
            Command::WebPassword {
                hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            },
            Command::CarrySet {
                mode: CarryMode::Connected,
            },
        ];
        assert_eq!(commands.len(), METHODS.len());
        for c in &commands {
            assert!(METHODS.contains(&c.method()), "{c:?}");
            let back = Command::parse(c.method(), &c.to_args()).unwrap();
            assert_eq!(back.method(), c.method());
            assert_eq!(back.to_args(), c.to_args(), "{c:?}");
        }
    }

    #[test]
    fn bad_requests_are_refused_with_a_clear_typed_error() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "shutdown",
                "[]",
                "method:shutdown is not in list of allowed methods",
            ),
            ("publish", "[]", "publish expects a content"),
            ("get", "[]", "get expects a message id"),
            ("get", r#"["%nope"]"#, "get expects a message id"),
            ("follow", "[3]", "follow expects a feed id"),
            ("unfollow", r#"["@nope"]"#, "unfollow expects a feed id"),
            ("blobs.add", "[{}]", "blobs.add expects a file path"),
            ("sync", "[]", "sync expects an address"),
            ("stick.sync", "[null]", "stick.sync expects a path"),
            ("bundle.import", "[]", "bundle.import expects a path"),
            (
                "bundle.export",
                r#"["/tmp/x", 5]"#,
                "bundle.export expects a clock object as its second argument",
            ),
            ("invite.revoke", "[]", "invite.revoke expects an invite id"),
            (
                "web.password",
                "[3]",
                "web.password expects a password hash",
            ),
            (
                "carry.set",
                r#"["everyone"]"#,
                "carry.set expects follows or connected",
            ),
        ];
        for (method, args, text) in cases {
            let e = parse(method, args).unwrap_err();
            assert_eq!(e.to_string(), *text, "{method} {args}");
            assert!(
                matches!(
                    e,
                    CommandError::UnknownMethod(_) | CommandError::BadArg { .. }
                ),
                "{e:?}"
            );
        }
        assert!(matches!(
            parse("sync", r#"["net:nowhere"]"#),
            Err(CommandError::BadAddress { .. })
        ));
        assert!(matches!(
            parse("bundle.export", r#"["/tmp/x", {"@x": "seven"}]"#),
            Err(CommandError::BadClock(_))
        ));
        for args in [r#"[{"uses": 1.5}]"#, r#"[{"expires": "soon"}]"#, "[7]"] {
            assert!(
                matches!(
                    parse("invite.create", args),
                    Err(CommandError::Invite(InviteError::Options(_)))
                ),
                "{args}"
            );
        }
    }

    #[test]
    fn a_sync_timeout_that_is_not_a_positive_number_is_the_default() {
        let address = format!("net:127.0.0.1:8008~shs:{}", &FEED[1..45]);
        for timeout in ["0", "-3", "\"soon\"", "null"] {
            let c = parse("sync", &format!(r#"["{address}", {timeout}]"#)).unwrap();
            let Command::Sync { timeout, .. } = c else {
                panic!("{c:?}")
            };
            assert_eq!(timeout, sync::DEFAULT_TIMEOUT);
        }
    }

    #[test]
    fn only_the_sneakernet_commands_stream_progress() {
        let streaming: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| {
                let args = match *m {
                    "stick.sync" | "bundle.import" | "bundle.export" | "blobs.add" => "[\"/x\"]",
                    _ => "[]",
                };
                parse(m, args).is_ok_and(|c| c.streams_progress())
            })
            .collect();
        assert_eq!(streaming, ["stick.sync", "bundle.import", "bundle.export"]);
    }

    #[test]
    fn a_large_publish_goes_as_several_requests_in_order() {
        let text = "x".repeat(6000);
        let contents: Vec<Value> = (0..300)
            .map(|i| {
                let c = format!(r#"{{"type":"post","n":{i},"text":"{text}"}}"#);
                Value::parse(c.as_bytes()).unwrap()
            })
            .collect();
        let parts = Command::Publish {
            contents: contents.clone(),
        }
        .requests();
        assert!(parts.len() > 1, "{}", parts.len());
        let mut back = Vec::new();
        for p in &parts {
            let args = p.to_args();
            let bytes: usize = args.iter().map(|a| a.to_compact().len() + 1).sum();
            assert!(bytes <= REQUEST_BUDGET, "{bytes}");
            back.extend(args);
        }
        assert_eq!(back, contents);
        assert_eq!(Command::Clock.requests().len(), 1);
    }

    #[test]
    fn several_published_ids_come_back_in_order() {
        let ids: Vec<MsgId> = ["A", "E"]
            .iter()
            .map(|c| format!("%{}=.sha256", c.repeat(43)).parse().unwrap())
            .collect();
        let v = Reply::Published(ids.clone()).to_value().unwrap();
        let command = Command::Publish { contents: vec![] };
        match Reply::from_value(&command, v).unwrap() {
            Reply::Published(back) => assert_eq!(back, ids),
            other => panic!("{other:?}"),
        }
        let bad = Value::parse(br#"{"key": 3}"#).unwrap();
        assert!(Reply::from_value(&command, bad).is_err());
    }
}
