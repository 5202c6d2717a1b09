//! The CLI's sneakernet side: how every report is printed (the same with or
//! without a running node), progress on stderr, and the bundle commands that
//! need no node (`bundle verify`, `bundle inspect`).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use bundle_format::{BundleName, Clock, Limits};
use ssb_node::sneakernet::files::ExportReport;
use ssb_node::sneakernet::import::{self, ImportReport};
use ssb_node::sneakernet::reconcile::{Step, StickReport};

/// Progress on stderr, redrawn at most five times a second, only when
/// stderr is a terminal (also for steps a running node streams).
pub(super) struct Progress {
    on: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// Progress that draws only if stderr is a terminal.
    pub(super) fn new() -> Progress {
        Progress {
            on: io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    /// Shows `step` (unless the last drawing is under 200 ms old).
    pub(super) fn step(&mut self, step: Step) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let text = match step {
            Step::Importing(n) => format!("checking: {n} messages"),
            Step::Exporting(n) => format!("exporting: {n} messages left"),
        };
        eprint!("\r\x1b[K{text}");
        self.drawn = true;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
        }
    }
}

/// Prints a stick report; exit 1 if the visit hit a problem (full, read-only).
pub fn print_stick(report: &StickReport, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        for r in &report.rejected {
            eprintln!("ssb-node: rejected {}: {}", r.bundle, r.reason);
        }
        for r in &report.unread {
            eprintln!("ssb-node: left unread {}: {}", r.bundle, r.reason);
        }
        writeln!(out, "{}", report.summary())?;
    }
    Ok(if report.problem.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints an import report.
pub fn print_import(report: &ImportReport, json: bool, out: &mut dyn Write) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "imported {}: {} messages checked, {} added, {} blobs added ({} bytes)",
        report.name, report.checked, report.messages, report.blobs, report.blob_bytes
    )?;
    for u in &report.unused {
        writeln!(out, "  not used: {u}")?;
    }
    Ok(())
}

/// Prints an export report.
pub fn print_export(report: &ExportReport, out: &mut dyn Write) -> Result<()> {
    if report.files.is_empty() {
        writeln!(out, "nothing to export: the receiver holds everything")?;
    }
    for f in &report.files {
        writeln!(out, "{f}")?;
    }
    if !report.files.is_empty() {
        eprintln!(
            "exported {} messages and {} blobs in {} bundle(s), {} bytes",
            report.messages,
            report.blobs,
            report.files.len(),
            report.bytes
        );
    }
    Ok(())
}

/// Prints the sticks seen, from the JSON rows the node records.
pub fn print_sticks(rows: &serde_json::Value, json: bool, out: &mut dyn Write) -> Result<()> {
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() && !json {
        writeln!(out, "no sticks seen yet")?;
    }
    for row in rows {
        if json {
            writeln!(out, "{row}")?;
            continue;
        }
        let text = |k: &str| match &row[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            v => v.to_string(),
        };
        writeln!(
            out,
            "{} {} last_sync={} bundles={} feeds={} messages={}{}",
            text("id"),
            text("mount"),
            text("last_sync"),
            text("bundles"),
            text("feeds"),
            text("messages"),
            match &row["problem"] {
                serde_json::Value::String(p) => format!(" problem={p:?}"),
                _ => String::new(),
            }
        )?;
    }
    Ok(())
}

/// Reads a clock file (`{"@feed": seq}`).
pub fn read_clock(path: &Path) -> Result<Clock> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a clock", path.display()))
}

/// `ssb-node bundle verify`: checks a bundle on its own (no store needed).
pub fn verify(file: &Path, out: &mut dyn Write) -> Result<()> {
    let mut progress = Progress::new();
    let input = File::open(file).with_context(|| format!("{}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse);
    let r = import::verify(input, name.as_ref(), &Limits::default(), &mut |n| {
        progress.step(Step::Importing(n))
    })?;
    drop(progress);
    writeln!(
        out,
        "ok: {} by {}: {} messages checked",
        r.name, r.author, r.checked
    )?;
    Ok(())
}

/// `ssb-node bundle inspect`: a bundle's manifest, unchecked.
pub fn inspect(file: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let input = File::open(file).with_context(|| format!("{}", file.display()))?;
    let (m, name) = bundle_format::read_manifest(input, &Limits::default())?;
    let on_file = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse);
    let matches = on_file.is_none_or(|n| n == name);
    if json {
        let v = serde_json::json!({
            "name": name.file_name(),
            "name_matches_file": matches,
            "manifest": m,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "bundle   {}", name.file_name())?;
    if !matches {
        writeln!(out, "warning  the file's name does not match its content")?;
    }
    writeln!(out, "author   {}", m.author)?;
    writeln!(out, "created  {} (ms since 1970)", m.created)?;
    writeln!(out, "messages {} in {} feeds", m.messages(), m.feeds.len())?;
    for f in &m.feeds {
        writeln!(
            out,
            "  {} {}..={} ({} bytes)",
            f.feed, f.first, f.last, f.bytes
        )?;
    }
    writeln!(out, "blobs    {}", m.blobs.len())?;
    for b in &m.blobs {
        writeln!(out, "  {} ({} bytes)", b.id, b.bytes)?;
    }
    writeln!(
        out,
        "(signature and contents not checked: use `ssb-node bundle verify`)"
    )?;
    Ok(())
}
