//! The sneakernet side of a running node: stick visits and bundle files,
//! run on blocking threads, and their control-socket methods
//! (`stick.sync`, `bundle.import`, `bundle.export`, `sticks`).

use std::path::PathBuf;
use std::sync::Arc;

use super::Node;
use crate::feed::json::Value;
use crate::sneakernet::{files, reconcile};
use crate::store::StoreError;

/// The control-socket methods this module answers.
pub const METHODS: &[&str] = &["stick.sync", "bundle.import", "bundle.export", "sticks"];

/// A serde value as a muxrpc JSON value.
fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, String> {
    let bytes = serde_json::to_vec(t).map_err(|e| e.to_string())?;
    Value::parse(&bytes).map_err(|e| e.to_string())
}

/// Visits the stick at `mount` on a blocking thread.
pub async fn sync_stick(
    node: Arc<Node>,
    mount: PathBuf,
) -> Result<reconcile::StickReport, reconcile::ReconcileError> {
    tokio::task::spawn_blocking(move || reconcile::sync_stick(&node, &mount, &mut |_| {}))
        .await
        .map_err(|e| {
            reconcile::ReconcileError::Store(StoreError::Corrupt(format!("stick task failed: {e}")))
        })?
}

/// Every stick this node has seen, as recorded after each visit.
pub fn sticks(node: &Node) -> Result<serde_json::Value, StoreError> {
    let rows = node
        .store
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
pub async fn answer(node: &Arc<Node>, method: &str, args: &[Value]) -> Result<Value, String> {
    match method {
        "stick.sync" => {
            let mount = path_arg(args, method)?;
            let report = sync_stick(node.clone(), mount)
                .await
                .map_err(|e| e.to_string())?;
            to_value(&report)
        }
        "bundle.import" => {
            let path = path_arg(args, method)?;
            let node = node.clone();
            let report =
                tokio::task::spawn_blocking(move || files::import_file(&node, &path, &mut |_| {}))
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
            let report = tokio::task::spawn_blocking(move || {
                files::export_to(&node, &path, &clock, &mut |_| {})
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
