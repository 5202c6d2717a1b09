//! Opening this data dir's node for a command that runs without a node
//! running: identity, store, blobs and the config file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use ssb_node::data_dir::DataDir;
use ssb_node::service::config::Settings;
use ssb_node::service::Node;

/// The config file: `--config`, or `ssb-node.toml` in the data dir if present.
fn settings(data: &DataDir, config: Option<PathBuf>) -> Result<Settings> {
    Ok(match config {
        Some(path) => Settings::load(&path, true)?,
        None => Settings::load(&data.root().join("ssb-node.toml"), false)?,
    })
}

/// The node of `data`, with the config file's settings.
pub fn open_node(data: &DataDir, config: Option<PathBuf>) -> Result<Arc<Node>> {
    let settings = settings(data, config)?;
    let keys = data.keys()?;
    let store = data.open_store()?;
    let blobs = data.open_blobs()?;
    Ok(Node::new(keys, store, blobs, settings)?)
}
