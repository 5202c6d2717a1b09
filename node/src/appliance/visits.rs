//! The sneakernet side of a running node: stick visits and bundle files,
//! run on blocking threads, and their control-socket methods
//! (`stick.sync`, `bundle.import`, `bundle.export`, `sticks`).
//!
//! The first three also answer as `source` calls, for a CLI that shows
//! progress: items `{"progress": STEP}` (at most five a second), then one
//! `{"report": REPORT}`, then the end (or an error).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::feed::json::{Object, Value};
use crate::muxrpc::{Body, Sink};
use crate::replica::Replica;
use crate::sneakernet::reconcile::Step;
use crate::sneakernet::{files, reconcile};
use crate::store::StoreError;

/// The control-socket methods this module answers.
pub const METHODS: &[&str] = &["stick.sync", "bundle.import", "bundle.export", "sticks"];

/// The methods that also stream their progress when called as `source`.
pub const WITH_PROGRESS: &[&str] = &["stick.sync", "bundle.import", "bundle.export"];

/// Least time between two progress items on the socket.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A progress callback for a blocking thread that forwards steps to `tx`, at
/// most one per [`PROGRESS_EVERY`] (the first at once); steps the reader is
/// too slow for are dropped, never waited for.
fn forward(tx: Option<mpsc::Sender<Step>>) -> impl FnMut(Step) + Send + 'static {
    let mut last: Option<Instant> = None;
    move |step| {
        let Some(tx) = &tx else { return };
        if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        last = Some(Instant::now());
        let _ = tx.try_send(step);
    }
}

/// A serde value as a muxrpc JSON value.
fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, String> {
    let bytes = serde_json::to_vec(t).map_err(|e| e.to_string())?;
    Value::parse(&bytes).map_err(|e| e.to_string())
}

/// Visits the stick at `mount` on a blocking thread.
pub async fn sync_stick(
    node: Arc<Replica>,
    mount: PathBuf,
) -> Result<reconcile::StickReport, reconcile::ReconcileError> {
    sync_stick_reporting(node, mount, None).await
}

/// [`sync_stick`], sending progress to `tx`.
async fn sync_stick_reporting(
    node: Arc<Replica>,
    mount: PathBuf,
    tx: Option<mpsc::Sender<Step>>,
) -> Result<reconcile::StickReport, reconcile::ReconcileError> {
    let mut progress = forward(tx);
    tokio::task::spawn_blocking(move || reconcile::sync_stick(&node, &mount, &mut progress))
        .await
        .map_err(|e| {
            reconcile::ReconcileError::Store(StoreError::Corrupt(format!("stick task failed: {e}")))
        })?
}

/// Every stick this node has seen, as recorded after each visit.
pub fn sticks(node: &Replica) -> Result<serde_json::Value, StoreError> {
    let rows = node
        .store()
        .stick_infos()?
        .into_iter()
        .map(|(id, bytes)| {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::json!({ "id": id, "problem": "unreadable record" }))
        })
        .collect();
    Ok(serde_json::Value::Array(rows))
}

fn path_arg(args: &[Value], method: &str) -> Result<PathBuf, String> {
    args.first()
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{method} expects a path"))
}

/// Answers one of [`METHODS`].
pub async fn answer(node: &Arc<Replica>, method: &str, args: &[Value]) -> Result<Value, String> {
    answer_reporting(node, method, args, None).await
}

/// Answers one of [`WITH_PROGRESS`] as a `source` call on `sink`: progress
/// items while it works, then the report.
pub async fn stream(node: &Arc<Replica>, method: &str, args: &[Value], sink: Sink) {
    let (tx, mut rx) = mpsc::channel(1);
    let work = answer_reporting(node, method, args, Some(tx));
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            Some(step) = rx.recv() => {
                let item = serde_json::json!({ "progress": step });
                // A CLI that went away stops getting progress; the work goes on.
                let _ = sink.send(Body::json_text(item.to_string())).await;
            }
        }
    };
    let _ = match result {
        Ok(report) => {
            let mut o = Object::new();
            o.push("report", report);
            match sink.send(Body::json(&Value::Object(o))).await {
                Ok(()) => sink.end().await,
                Err(e) => Err(e),
            }
        }
        Err(e) => sink.error(&e).await,
    };
}

/// Answers one of [`METHODS`], sending progress to `tx` if given.
async fn answer_reporting(
    node: &Arc<Replica>,
    method: &str,
    args: &[Value],
    tx: Option<mpsc::Sender<Step>>,
) -> Result<Value, String> {
    match method {
        "stick.sync" => {
            let mount = path_arg(args, method)?;
            let report = sync_stick_reporting(node.clone(), mount, tx)
                .await
                .map_err(|e| e.to_string())?;
            to_value(&report)
        }
        "bundle.import" => {
            let path = path_arg(args, method)?;
            let node = node.clone();
            let mut progress = forward(tx);
            let report = tokio::task::spawn_blocking(move || {
                files::import_file(&node, &path, &mut progress)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            to_value(&report)
        }
        "bundle.export" => {
            let path = path_arg(args, method)?;
            let clock: bundle_format::Clock = match args.get(1) {
                Some(Value::Object(_)) => {
                    let text = args[1].to_compact();
                    serde_json::from_str(&text).map_err(|e| format!("clock: {e}"))?
                }
                _ => bundle_format::Clock::new(),
            };
            let node = node.clone();
            let mut progress = forward(tx);
            let report = tokio::task::spawn_blocking(move || {
                files::export_to(&node, &path, &clock, &mut progress)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            to_value(&report)
        }
        "sticks" => to_value(&sticks(node).map_err(|e| e.to_string())?),
        _ => Err(format!("method:{method} is not in list of allowed methods")),
    }
}
