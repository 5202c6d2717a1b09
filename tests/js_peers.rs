//! `ssb-node run` as the JavaScript stack sees it: ssb-client 4.9 builds its API from our
//! `manifest` and calls `blobs.has`; methods we do not offer are refused with the error JS
//! muxrpc gives, word for word (ssb-ebt 9 matches it to tell "not supported" from a failure).

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::running::Node;

/// Runs `tests/js/client.js` against `addr`; its one JSON line.
fn client(addr: &str, blobs: &[&str]) -> Value {
    let mut args = vec!["--remote", addr];
    for b in blobs {
        args.extend(["--blob", b]);
    }
    let out = support::run(support::node_script("client.js", &args).env("HOME", "/nonexistent"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.js failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn add_blob(node: &Node, dir: &Path, bytes: &[u8]) -> String {
    let file = dir.join("blob");
    std::fs::write(&file, bytes).unwrap();
    let out = support::ssb_at(&node.data, &["blobs", "add", file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn ssb_client_builds_its_api_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), "");
    let blob = add_blob(&node, dir.path(), b"a blob for ssb-client\n");
    let missing = "&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256";
    let got = client(&node.addr, &[&blob, missing]);

    let manifest = &got["manifest"];
    assert_eq!(manifest["whoami"], "async", "{manifest}");
    assert_eq!(manifest["blobs"]["has"], "async", "{manifest}");
    assert_eq!(manifest["blobs"]["get"], "source", "{manifest}");
    assert_eq!(manifest["ebt"]["replicate"], "duplex", "{manifest}");
    assert!(
        manifest
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains('.')),
        "flat keys in {manifest}"
    );
    let id = node.addr.split_once("~shs:").unwrap().1;
    assert_eq!(got["whoami"], format!("@{id}.ed25519"));
    assert_eq!(got["has"], json!({ blob.as_str(): true, missing: false }));

    // What JS muxrpc answers for a method it does not offer: an Error named "Error" whose
    // message names the path with commas.
    for (method, path) in [
        ("ebt.clock", "ebt,clock"),
        ("ebt.replicateFormat", "ebt,replicateFormat"),
        ("ebt.nope", "ebt,nope"),
        ("nope", "nope"),
    ] {
        let e = &got["errors"][method];
        assert_eq!(e["name"], "Error", "{method}: {e}");
        assert_eq!(
            e["message"],
            format!("method:{path} is not in list of allowed methods"),
            "{method}: {e}"
        );
    }
}

