//! The `ssb-node` command line as scripts use it: outputs of the happy paths,
//! and for bad input one clear `ssb-node: error:` line and a non-zero exit,
//! never a panic.

mod support;

use support::{ssb_at as ssb, ssb_stdin};

use std::path::Path;
use std::process::Output;

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf8")
}

/// Fails with exactly one clear error line that mentions `needle`.
fn assert_clean_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].starts_with("ssb-node: error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
}

#[test]
fn commands_before_init_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    assert_clean_error(&ssb(&data, &["whoami"]), "run `ssb-node init` first");
    assert_clean_error(
        &ssb(&data, &["publish", "--content", r#"{"type":"post"}"#]),
        "run `ssb-node init` first",
    );
}

#[test]
fn init_adopts_and_protects_an_identity() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("a");
    let id = stdout(&ssb(&a, &["init"]));
    assert!(id.starts_with('@') && id.trim_end().ends_with(".ed25519"));
    assert_eq!(stdout(&ssb(&a, &["init"])), id, "init is idempotent");
    assert_eq!(stdout(&ssb(&a, &["whoami"])), id);
    // Adopt the JS vector identity.
    let vector =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/ssb-legacy-msg/secret");
    let b = dir.path().join("b");
    let adopted = stdout(&ssb(
        &b,
        &["init", "--secret", vector.to_str().expect("utf8")],
    ));
    assert_eq!(
        adopted.trim(),
        "@H2qXeS5sOKUqaGNFgRJ6qR48+lAeP0C9lq9IVlQMotc=.ed25519"
    );
    // Another identity is never overwritten.
    assert_clean_error(
        &ssb(&a, &["init", "--secret", vector.to_str().expect("utf8")]),
        "refusing to replace it",
    );
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "# just a comment\n{\"curve\":\"ed25519\"}").expect("write");
    assert_clean_error(
        &ssb(
            &dir.path().join("c"),
            &["init", "--secret", junk.to_str().expect("utf8")],
        ),
        "not an ssb secret key file",
    );
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    stdout(&ssb(&data, &["init"]));
    assert_clean_error(
        &ssb(&data, &["publish", "--content", "{not json"]),
        "not valid JSON",
    );
    assert_clean_error(
        &ssb(&data, &["publish", "--content", r#"{"type":"ab"}"#]),
        "3 to 52",
    );
    assert_clean_error(
        &ssb(&data, &["publish", "--content", "[1,2]"]),
        "must not be an array",
    );
    assert_clean_error(&ssb(&data, &["feed", "@nope"]), "invalid feed id");
    assert_clean_error(&ssb(&data, &["get", "%nope"]), "invalid message id");
    assert_clean_error(
        &ssb(
            &data,
            &[
                "get",
                "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256",
            ],
        ),
        "not in the store",
    );
    assert_clean_error(&ssb(&data, &["ingest", "/no/such/file"]), "/no/such/file");
    assert_clean_error(&ssb(&data, &["blobs", "get", "&bad"]), "invalid blob id");
    assert_clean_error(
        &ssb(
            &data,
            &[
                "blobs",
                "get",
                "&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256",
            ],
        ),
        "not in the store",
    );
    assert_clean_error(
        &ssb(&data, &["blobs", "add", "/no/such/file"]),
        "/no/such/file",
    );
    // Deep nesting and huge lines are refused, not crashed on.
    let deep = "[".repeat(100_000);
    assert_clean_error(
        &ssb(&data, &["publish", "--content", &deep]),
        "nested deeper",
    );
    let out = ssb_stdin(
        &data,
        &["ingest", "-"],
        &format!("{}\n", "x".repeat(300_000)),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than"));
}

#[test]
fn ingest_reports_and_keeps_the_good_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src");
    stdout(&ssb(&src, &["init"]));
    let ids = stdout(&ssb_stdin(
        &src,
        &["publish", "--stdin"],
        "{\"type\":\"post\",\"n\":1}\n\n{\"type\":\"post\",\"n\":2}\n{\"type\":\"post\",\"n\":3}\n",
    ));
    assert_eq!(ids.lines().count(), 3);
    let feed = stdout(&ssb(&src, &["feed"]));
    assert_eq!(
        stdout(&ssb(&src, &["feed", "--from", "2", "--limit", "1"]))
            .lines()
            .count(),
        1
    );
    // Lines 1 and 2 are good, then garbage, then message 3.
    let lines: Vec<&str> = feed.lines().collect();
    let input = format!("{}\n{}\nnot json\n{}\n", lines[0], lines[1], lines[2]);
    let dst = dir.path().join("dst");
    let out = ssb_stdin(&dst, &["ingest", "-"], &input);
    assert!(
        !out.status.success(),
        "a rejected line makes the exit non-zero"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.starts_with("added 3 skipped 0 rejected 1 (first: line 3: not JSON"),
        "{report}"
    );
    let first_id = ids.lines().next().expect("id");
    let got = stdout(&ssb(&dst, &["get", first_id]));
    assert!(got.starts_with(&format!("{{\"key\":\"{first_id}\",\"value\":")));
    let me = stdout(&ssb(&src, &["whoami"]));
    assert_eq!(
        stdout(&ssb(&dst, &["clock"])).trim(),
        format!("{{\"{}\":3}}", me.trim())
    );
}

#[test]
fn message_verify_checks_signature_and_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    stdout(&ssb(&data, &["init"]));
    stdout(&ssb_stdin(
        &data,
        &["publish", "--stdin"],
        "{\"type\":\"post\"}\n{\"type\":\"post\"}\n",
    ));
    let feed = stdout(&ssb(&data, &["feed"]));
    let lines: Vec<&str> = feed.lines().collect();
    let (m1, m2) = (dir.path().join("m1.json"), dir.path().join("m2.json"));
    std::fs::write(&m1, lines[0]).expect("write");
    std::fs::write(&m2, lines[1]).expect("write");
    let p = |p: &Path| p.to_str().expect("utf8").to_owned();
    let id2 = stdout(&ssb(
        &data,
        &["message", "verify", &p(&m2), "--prev", &p(&m1)],
    ));
    assert!(lines[1].contains(id2.trim()));
    assert_clean_error(
        &ssb(&data, &["message", "verify", &p(&m1), "--prev", &p(&m2)]),
        "expected sequence 3",
    );
    let forged = dir.path().join("forged.json");
    std::fs::write(
        &forged,
        lines[1].replace("\"type\":\"post\"", "\"type\":\"pots\""),
    )
    .expect("write");
    assert_clean_error(&ssb(&data, &["message", "verify", &p(&forged)]), "invalid");
}

#[test]
fn message_verify_reads_a_bounded_amount() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    stdout(&ssb(&data, &["init"]));
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 70 * 1024]).expect("write");
    assert_clean_error(
        &ssb(&data, &["message", "verify", big.to_str().expect("utf8")]),
        "larger than 65536 bytes",
    );
    // An endless file: refused after the cap, not read until memory runs out.
    let (tx, rx) = std::sync::mpsc::channel();
    let d = data.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ssb(&d, &["message", "verify", "/dev/zero"]));
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("message verify /dev/zero did not finish");
    assert_clean_error(&out, "larger than 65536 bytes");
}

#[test]
fn blobs_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d");
    stdout(&ssb(&data, &["init"]));
    let file = dir.path().join("blob.bin");
    let bytes: Vec<u8> = (0..65536 * 3).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    let id = stdout(&ssb(&data, &["blobs", "add", file.to_str().expect("utf8")]));
    let id = id.trim();
    assert_eq!(stdout(&ssb(&data, &["blobs", "has", id])).trim(), "true");
    let out = dir.path().join("out.bin");
    stdout(&ssb(
        &data,
        &["blobs", "get", id, "--out", out.to_str().expect("utf8")],
    ));
    assert_eq!(std::fs::read(&out).expect("read"), bytes);
    let via_stdout = ssb(&data, &["blobs", "get", id]);
    assert_eq!(via_stdout.stdout, bytes);
    assert_eq!(
        stdout(&ssb(
            &data,
            &[
                "blobs",
                "has",
                "&AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"
            ]
        ))
        .trim(),
        "false"
    );
}
