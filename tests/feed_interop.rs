//! Cross-checks of the feed core against the real JavaScript reference:
//! ssb-validation-dataset (126 cases), messages our CLI publishes validated
//! by ssb-validate, and feeds made by ssb-keys/ssb-validate ingested and read
//! back byte-identical.

mod support;

use support::ssb_at as ssb;

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use ssb_node::feed::{FeedHead, HmacKey, Message, Value};

fn ok_stdout(data: &Path, args: &[&str]) -> String {
    let out = ssb(data, args);
    assert!(
        out.status.success(),
        "ssb-node {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 output")
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| o.get(k))
}

#[test]
fn validation_dataset_all_126_agree() {
    let text = std::fs::read_to_string(support::dataset_path()).expect("dataset");
    let Value::Array(cases) = Value::parse(text.as_bytes()).expect("json") else {
        panic!("dataset is not an array")
    };
    assert_eq!(cases.len(), 126);
    let (mut valid, mut agree) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let expected_valid = matches!(field(case, "valid"), Some(Value::Bool(true)));
        let head = field(case, "state").and_then(|s| {
            Some(FeedHead {
                id: field(s, "id")?.as_str()?.parse().ok()?,
                sequence: match field(s, "sequence")? {
                    Value::Number(n) => *n as u32,
                    _ => return None,
                },
            })
        });
        let result: Result<Message, String> = (|| {
            let hmac = match field(case, "hmacKey") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_str()
                        .and_then(HmacKey::from_base64)
                        .ok_or("hmac key is not canonical base64 of 32 bytes")?,
                ),
            };
            let value = field(case, "message").cloned().unwrap_or(Value::Null);
            let m = Message::from_value(value, hmac.as_ref()).map_err(|e| e.to_string())?;
            m.check_chain(head.as_ref()).map_err(|e| e.to_string())?;
            m.verify().map_err(|e| e.to_string())?;
            Ok(m)
        })();
        match (&result, expected_valid) {
            (Ok(m), true) => {
                assert_eq!(
                    Some(m.id().to_string().as_str()),
                    field(case, "id").and_then(Value::as_str),
                    "case {i}: id"
                );
                valid += 1;
                agree += 1;
            }
            (Err(_), false) => agree += 1,
            (r, _) => panic!(
                "case {i}: dataset says valid={expected_valid} ({:?}), we say {:?}",
                field(case, "error"),
                r.as_ref().map(|m| m.id())
            ),
        }
    }
    assert_eq!((agree, valid), (126, 27));
}

/// Runs validate.js over `text` (JSON lines) and returns its summary line.
fn js_validate(text: &str) -> (bool, String) {
    let mut child = support::node_script("validate.js", &["-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("validate.js");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn ssb_validate_accepts_what_we_publish() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    ok_stdout(data, &["init"]);
    let contents = [
        r#"{"type":"post","text":"plain"}"#,
        r#"{"type":"post","text":"unicode: héllo ß € 😀 \u2019 \u00e9 \u0000 \u001f \u007f \u2028"}"#,
        r#"{"type":"post","text":"escapes: \" \\ \/ \b \f \n \r \t"}"#,
        r#"{"type":"post","text":"lone surrogates \ud800 and \udfff, pair \ud83d\ude00"}"#,
        r#"{"type":"post","n":[0,1,-1,0.1,1e21,1e-7,123456789012345680000,5e-324,1.7976931348623157e308,-0.000001,9007199254740993,100,1.5e300]}"#,
        r#"{"type":"post","nested":{"a":{"b":{"c":[[],{},[{}],{"d":[null,true,false]}]}}},"empty":{},"list":[]}"#,
        r#"{"type":"post","10":"ten","2":"two","a":"a","1":"one","01":"not an index","-1":"neg","4294967295":"too big","4294967294":"max index"}"#,
        r#"{"type":"contact","contact":"@H2qXeS5sOKUqaGNFgRJ6qR48+lAeP0C9lq9IVlQMotc=.ed25519","following":true}"#,
        r#"{"type":"a type that is exactly 52 characters long 1234567"}"#,
        r#"{"type":"abc"}"#,
    ];
    for c in contents {
        ok_stdout(data, &["publish", "--content", c]);
    }
    // Near the size limit: learn the overhead from the refusal, then fill
    // the message to exactly 8192 UTF-16 units, once in ASCII and once with
    // characters that take 3 UTF-8 bytes (so > 8192 bytes, still valid).
    for ch in ["a", "€"] {
        let too_big = format!(r#"{{"type":"post","text":"{}"}}"#, ch.repeat(8192));
        let out = ssb(data, &["publish", "--content", &too_big]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let len: usize = err
            .split("message is ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("size in error: {err}"));
        let fits = format!(
            r#"{{"type":"post","text":"{}"}}"#,
            ch.repeat(8192 - (len - 8192))
        );
        ok_stdout(data, &["publish", "--content", &fits]);
        let over = format!(
            r#"{{"type":"post","text":"{}"}}"#,
            ch.repeat(8192 - (len - 8192) + 1)
        );
        assert!(!ssb(data, &["publish", "--content", &over]).status.success());
    }
    let feed = ok_stdout(data, &["feed"]);
    assert_eq!(feed.lines().count(), contents.len() + 2);
    let (ok, summary) = js_validate(&feed);
    assert!(ok, "ssb-validate refused our messages: {summary}");
    assert!(
        summary.contains(&format!("\"valid\":{}", contents.len() + 2)),
        "{summary}"
    );
    // Integer-like keys went first, in JS order.
    assert!(feed.contains(r#""content":{"1":"one","2":"two","10":"ten","4294967294":"max index","type":"post","a":"a","01":"not an index","-1":"neg","4294967295":"too big"}"#));
}

/// The part of a `{"key","value","timestamp"}` line before the timestamp,
/// which is the receiver's own clock.
fn key_and_value(line: &str) -> &str {
    &line[..line.rfind(",\"timestamp\":").expect("timestamp field")]
}

fn make_feed(dir: &Path, name: &str, args: &[&str]) -> String {
    let out_path = dir.join(name);
    let out_str = out_path.to_str().expect("utf8 path").to_owned();
    let mut full = args.to_vec();
    full.extend(["--out", out_str.as_str()]);
    let out = support::run(&mut support::node_script("make-feed.js", &full));
    assert!(
        out.status.success(),
        "make-feed.js: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&out_path).expect("feed file")
}

fn ingest_and_compare(js_lines: &str, data: &Path, input: &Path) {
    let report = ok_stdout(data, &["ingest", input.to_str().expect("utf8")]);
    let n = js_lines.lines().count();
    assert_eq!(report.trim(), format!("added {n} skipped 0 rejected 0"));
    // Every feed reads back byte-identical (key and value) in order.
    let mut by_feed: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for line in js_lines.lines() {
        let v = Value::parse(line.as_bytes()).expect("json");
        let author = field(field(&v, "value").expect("value"), "author")
            .and_then(Value::as_str)
            .expect("author")
            .to_owned();
        by_feed.entry(author).or_default().push(key_and_value(line));
    }
    for (author, want) in &by_feed {
        let got = ok_stdout(data, &["feed", author]);
        let got: Vec<&str> = got.lines().map(key_and_value).collect();
        assert_eq!(got.len(), want.len(), "{author}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w);
        }
    }
    let check = ok_stdout(data, &["check"]);
    assert!(
        check.contains(&format!("{} feeds, {n} messages: ok", by_feed.len())),
        "{check}"
    );
    // Again: everything is skipped, nothing changes.
    let again = ok_stdout(data, &["ingest", input.to_str().expect("utf8")]);
    assert_eq!(again.trim(), format!("added 0 skipped {n} rejected 0"));
}

#[test]
fn js_feed_of_10000_ingested_and_read_back_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines = make_feed(
        dir.path(),
        "feed.jsonl",
        &[
            "--feeds",
            "1",
            "--messages",
            "10000",
            "--seed",
            "ten-thousand",
        ],
    );
    assert_eq!(lines.lines().count(), 10_000);
    ingest_and_compare(
        &lines,
        &dir.path().join("data"),
        &dir.path().join("feed.jsonl"),
    );
}

#[test]
fn js_interleaved_feeds_both_key_orders() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, extra) in [("a.jsonl", None), ("b.jsonl", Some("--author-first"))] {
        let mut args = vec![
            "--feeds",
            "7",
            "--messages",
            "150",
            "--interleave",
            "--seed",
            name,
        ];
        args.extend(extra);
        let lines = make_feed(dir.path(), name, &args);
        ingest_and_compare(
            &lines,
            &dir.path().join(format!("data-{name}")),
            &dir.path().join(name),
        );
    }
}

#[test]
fn tampered_js_feed_is_cut_at_the_bad_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let lines = make_feed(
        dir.path(),
        "f.jsonl",
        &["--feeds", "1", "--messages", "50", "--seed", "tamper"],
    );
    // Change one character of message 30's signed text.
    let mut out: Vec<String> = lines.lines().map(str::to_owned).collect();
    let at = out[29].find("\"content\":{").expect("content") + 12;
    let mut bytes = out[29].clone().into_bytes();
    bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
    out[29] = String::from_utf8(bytes).expect("utf8");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, out.join("\n") + "\n").expect("write");
    let data = dir.path().join("data");
    let res = ssb(&data, &["ingest", path.to_str().expect("utf8")]);
    assert!(
        !res.status.success(),
        "a tampered feed must fail the ingest"
    );
    let report = String::from_utf8_lossy(&res.stdout);
    assert!(
        report.starts_with("added 29 skipped 0 rejected 21 (first: line 30:"),
        "{report}"
    );
    assert!(ok_stdout(&data, &["clock"]).contains(":29}"));
    assert!(ok_stdout(&data, &["check"]).contains("1 feeds, 29 messages: ok"));
}
