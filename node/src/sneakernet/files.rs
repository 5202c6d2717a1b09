//! Bundles as plain files, for `ssb-node bundle import|export` (by hand,
//! over any transport) rather than on a stick.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use bundle_format::{plan, BundleName, Clock, Coverage, Limits, FAT32_MAX_FILE};

use super::export::{ExportError, Exporter};
use super::import::{self, ImportError, ImportReport};
use super::reconcile::Step;
use crate::replica::Replica;
use crate::store::StoreError;

/// Why a file export failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Exporting failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Our store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// More than one bundle is needed but one file was named.
    #[error("{0} messages do not fit in one bundle: give a directory as --out to write several")]
    TooMuch(u64),
}

/// What an export to files wrote.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExportReport {
    /// The files written.
    pub files: Vec<String>,
    /// Messages in them.
    pub messages: u64,
    /// Blobs in them.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Imports the bundle file at `path`. If the file is named like a bundle,
/// its content must match the name.
pub fn import_file(
    node: &Replica,
    path: &Path,
    progress: &mut dyn FnMut(Step),
) -> Result<ImportReport, ImportError> {
    let file = File::open(path).map_err(|e| {
        ImportError::Rejected(bundle_format::BundleError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        )))
    })?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse);
    let limits = Limits::default();
    import::import(node, file, name.as_ref(), &limits, &mut |n| {
        progress(Step::Importing(n))
    })
}

/// Exports what `beyond` (a clock: what the receiver holds) lacks of every
/// feed we hold, with the blobs those messages mention. `out` is either a
/// directory (bundles named by content, split below 4 GiB) or a file (one
/// bundle, or an error if that is not enough).
pub fn export_to(
    node: &Replica,
    out: &Path,
    beyond: &Clock,
    progress: &mut dyn FnMut(Step),
) -> Result<ExportReport, FileError> {
    let local: Clock = node
        .store()
        .clock()?
        .into_iter()
        .map(|(f, s)| (f.to_string(), s))
        .collect();
    let give = plan(&local, &Coverage::from(beyond)).give;
    let mut ex = Exporter::new(node, give, HashSet::new());
    let mut report = ExportReport::default();
    let dir = out.is_dir();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| FileError::Io { path, source }
    };
    let start = std::time::Instant::now();
    while let Some(p) = {
        progress(Step::Exporting(ex.messages_left()));
        ex.plan_next(FAT32_MAX_FILE)?
    } {
        tracing::debug!(secs = start.elapsed().as_secs_f64(), "bundle planned");
        if !dir && !ex.is_last(&p) {
            return Err(FileError::TooMuch(ex.messages_left()));
        }
        let part: PathBuf = if dir {
            out.join(format!(".{}.part", std::process::id()))
        } else {
            out.with_extension("part")
        };
        let written = (|| {
            let file = File::create(&part).map_err(io(&part))?;
            let w = ex.write(&p, BufWriter::new(file))?;
            let file = w.out.into_inner().map_err(|e| io(&part)(e.into_error()))?;
            tracing::debug!(secs = start.elapsed().as_secs_f64(), "bundle written");
            file.sync_all().map_err(io(&part))?;
            tracing::debug!(secs = start.elapsed().as_secs_f64(), "bundle synced");
            let dest = if dir {
                out.join(w.name.file_name())
            } else {
                out.to_path_buf()
            };
            fs::rename(&part, &dest).map_err(io(&dest))?;
            Ok::<_, FileError>((dest, w.file_bytes))
        })();
        let (dest, bytes) = written.inspect_err(|_| {
            let _ = fs::remove_file(&part);
        })?;
        ex.advance(&p);
        report.files.push(dest.display().to_string());
        report.messages += p.manifest.messages();
        report.blobs += p.manifest.blobs.len() as u64;
        report.bytes += bytes;
    }
    Ok(report)
}
