//! The sneakernet side of a running node: stick visits and bundle files,
//! run on blocking threads (the control commands `stick.sync`,
//! `bundle.import`, `bundle.export` and `sticks` call these).

use std::path::PathBuf;
use std::sync::Arc;

use crate::replica::{blob_budget, Replica};
use crate::sneakernet::files::{self, ExportReport, FileError};
use crate::sneakernet::import::{ImportError, ImportReport};
use crate::sneakernet::reconcile::{self, ReconcileError, Step, StickReport};
use crate::store::StoreError;

/// Why a stick visit, an import or an export failed.
#[derive(Debug, thiserror::Error)]
pub enum SneakernetError {
    /// The visit failed (the stick, or our store).
    #[error(transparent)]
    Visit(#[from] ReconcileError),
    /// The bundle file was refused, or our store failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The export failed (the target, or our store).
    #[error(transparent)]
    Export(#[from] FileError),
    /// Our store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task died (a bug of ours).
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Visits the stick at `mount` on a blocking thread.
pub async fn sync_stick(
    node: Arc<Replica>,
    mount: PathBuf,
) -> Result<StickReport, SneakernetError> {
    sync_stick_reporting(node, mount, |_| {}).await
}

/// [`sync_stick`], telling `progress` how far it is.
pub async fn sync_stick_reporting(
    node: Arc<Replica>,
    mount: PathBuf,
    mut progress: impl FnMut(Step) + Send + 'static,
) -> Result<StickReport, SneakernetError> {
    let task = tokio::task::spawn_blocking(move || {
        let hold = node.hold_blob_quota();
        let done = reconcile::sync_stick(&node, &mount, &mut progress);
        drop(hold);
        blob_budget::enforce_logged(&node);
        done
    });
    Ok(task.await??)
}

/// Imports the bundle file at `path` on a blocking thread.
pub async fn import_file(
    node: Arc<Replica>,
    path: PathBuf,
    mut progress: impl FnMut(Step) + Send + 'static,
) -> Result<ImportReport, SneakernetError> {
    let task = tokio::task::spawn_blocking(move || {
        let hold = node.hold_blob_quota();
        let done = files::import_file(&node, &path, &mut progress);
        drop(hold);
        blob_budget::enforce_logged(&node);
        done
    });
    Ok(task.await??)
}

/// Exports what a receiver holding `clock` lacks to `path` (a file, or a
/// directory for several bundles) on a blocking thread.
pub async fn export_to(
    node: Arc<Replica>,
    path: PathBuf,
    clock: bundle_format::Clock,
    mut progress: impl FnMut(Step) + Send + 'static,
) -> Result<ExportReport, SneakernetError> {
    let task = tokio::task::spawn_blocking(move || {
        let hold = node.hold_blob_quota();
        let done = files::export_to(&node, &path, &clock, &mut progress);
        drop(hold);
        blob_budget::enforce_logged(&node);
        done
    });
    Ok(task.await??)
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
