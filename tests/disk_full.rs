//! End to end: the data dir of a real `ssb-node run` on a small ext4 (48 MiB
//! in a file, loop-mounted inside a private mount namespace held by a
//! `sleep`), filled by a filler file to below the node's reserve. Then a
//! peer sending its large feed and the blob its first message mentions (its
//! `sync` fails, saying it was refused), a `publish --stdin` batch, a bundle
//! import with a blob and a `blobs add` each give a clear error, not a panic
//! or a hang; `status` says `disk full` with the attention LED; what was
//! committed stays, the node serves reads to a peer and a stick, `check`
//! passes after `kill -9`, a restart on the full disk says so at once, and
//! once the filler is deleted the same process takes writes again and
//! converges (the feed completes, the blobs arrive).
//! Skipped, saying so, where mount namespaces, ext4 or loop mounts cannot
//! be had.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::running::spawn_run;
use support::ssb_at;

/// Size of the file system.
const FS_BYTES: u64 = 48 * 1024 * 1024;
/// What the filler leaves free for the node.
const LEFT_FREE: u64 = 3 * 1024 * 1024;

/// A process whose private mount namespace holds the loop mount.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command run inside the holder's mount namespace.
fn ns(holder: &Holder, program: &Path) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &holder.0.id().to_string(), "-m", "--"])
        .arg(program);
    c
}

fn ns_sh(holder: &Holder, script: &str) -> Output {
    ns(holder, Path::new("sh"))
        .args(["-c", script])
        .output()
        .unwrap()
}

/// `ssb-node --data DATA ARGS…` inside the namespace, with `input` on stdin.
fn node_cmd(holder: &Holder, data: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = ns(holder, &support::ssb_node())
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    wait_output(child, Duration::from_secs(30), args)
}

/// The output of `child`, which must end within `within` (a hang fails).
fn wait_output(mut child: Child, within: Duration, what: &[&str]) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ssb-node {what:?} hung for {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// A one-line error that says the disk is full, and no panic.
fn says_disk_full(text: &str) -> bool {
    let t = text.to_lowercase();
    !t.contains("panick")
        && (t.contains("no space left") || t.contains("disk is full") || t.contains("disk full"))
}

fn clock_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts `run` on `data` inside the namespace; its process and address.
fn start(holder: &Holder, data: &Path, log: &Path, roots: &Path) -> (Child, String) {
    let pid = holder.0.id().to_string();
    spawn_run(
        data,
        &["--mount-root", roots.to_str().unwrap()],
        &["nsenter", "-t", &pid, "-m", "--"],
        &[("SSB_NODE_LOG", "ssb_node=info")],
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap()
            .into(),
    )
}

/// A random file of `len` bytes (incompressible).
fn random_file(path: &Path, len: usize) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// A peer outside the namespace: a blob mentioned by its first message,
/// then `posts` large posts. Returns its id, its blob id and its last seq.
fn peer_with_large_feed(data: &Path, dir: &Path, posts: usize) -> (String, String, u64) {
    let id = ok(&ssb_at(data, &["init"]), "init peer").trim().to_owned();
    let blob = dir.join(format!(
        "{}.blob",
        data.file_name().unwrap().to_str().unwrap()
    ));
    random_file(&blob, 4 * 1024 * 1024);
    let blob_id = ok(
        &ssb_at(data, &["blobs", "add", blob.to_str().unwrap()]),
        "blobs add",
    )
    .trim()
    .to_owned();
    let content =
        format!(r#"{{"type":"post","text":"a blob","mentions":[{{"link":"{blob_id}"}}]}}"#);
    ok(
        &ssb_at(data, &["publish", "--content", &content]),
        "publish",
    );
    if posts > 0 {
        let out = support::ssb_stdin(
            data,
            &["publish", "--stdin"],
            &support::incompressible_posts(posts, 6000),
        );
        ok(&out, "publish --stdin");
    }
    (id, blob_id, posts as u64 + 1)
}

#[test]
fn a_full_data_dir_gives_clear_errors_loses_nothing_and_the_next_run_converges() {
    if !support::private_mount_namespace_possible() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let image = dir.join("data.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(FS_BYTES)
        .unwrap();
    // -m 0: no blocks reserved for root (the test runs as root).
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0"])
        .arg(&image)
        .output();
    if !mkfs.as_ref().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: cannot make an ext4 file system here (mkfs.ext4: {mkfs:?})");
        return;
    }
    let holder = Holder(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sleep", "120"])
            .spawn()
            .unwrap(),
    );
    // Wait until the holder is in its own mount namespace.
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{}/ns/mnt", holder.0.id())).ok() == Some(own.clone()) {
        assert!(Instant::now() < deadline, "unshare never made a namespace");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = ns(&holder, Path::new("mount"))
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mnt)
        .output()
        .unwrap();
    if !mount.status.success() {
        println!("SKIPPED: no loop mounts here: {mount:?}");
        return;
    }
    let roots = dir.join("no-sticks");

    // Peers outside: P with a large feed (about 6 MB), Q with a bundle of a 4 MiB blob.
    let (p_id, p_blob, p_seq) = peer_with_large_feed(&dir.join("p"), &dir, 1000);
    let (q_id, q_blob, q_seq) = peer_with_large_feed(&dir.join("q"), &dir, 0);
    let bundle = dir.join("q.bundle");
    ok(
        &ssb_at(
            &dir.join("q"),
            &["bundle", "export", "--out", bundle.to_str().unwrap()],
        ),
        "bundle export",
    );

    // The node on the small file system, with five messages committed.
    let data = mnt.join("data");
    let me = ok(&node_cmd(&holder, &data, &["init"], ""), "init")
        .trim()
        .to_owned();
    ok(
        &ns_sh(
            &holder,
            &format!(
                "printf 'replicate = [\"{p_id}\", \"{q_id}\"]\\nhops = 0\\n' > {}/ssb-node.toml",
                data.display()
            ),
        ),
        "config",
    );
    let log = dir.join("node.log");
    let (mut node, addr) = start(&holder, &data, &log, &roots);
    let mut before = Vec::new();
    for i in 0..5 {
        let content = format!(r#"{{"type":"post","text":"before {i}"}}"#);
        let out = node_cmd(&holder, &data, &["publish", "--content", &content], "");
        before.push(ok(&out, "publish before").trim().to_owned());
    }

    // The filler takes all but LEFT_FREE.
    let free = ok(
        &ns_sh(&holder, &format!("stat -f -c '%a %S' {}", mnt.display())),
        "stat -f",
    );
    let mut f = free.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    let (blocks, size) = (f.next().unwrap(), f.next().unwrap());
    let filler = mnt.join("filler");
    ok(
        &ns_sh(
            &holder,
            &format!(
                "fallocate -l {} {}",
                blocks * size - LEFT_FREE,
                filler.display()
            ),
        ),
        "fallocate",
    );

    // Case 1 and 4: P sends its feed and the blob it mentions. The node
    // refuses them (it is below its reserve), and P's sync says so rather
    // than report them as sent.
    let held_before = clock_of(&node_cmd(&holder, &data, &["clock"], ""));
    let sync = support::ssb_at(&dir.join("p"), &["sync", &addr, "--timeout", "15"]);
    println!(
        "case replication: P's sync exit {:?}: stdout {:?} stderr {:?}",
        sync.status.code(),
        String::from_utf8_lossy(&sync.stdout).trim(),
        stderr(&sync)
    );
    assert!(!sync.status.success(), "P's sync reported success");
    assert!(
        stderr(&sync).contains("refused") && says_disk_full(&stderr(&sync)),
        "{}",
        stderr(&sync)
    );
    let held = clock_of(&node_cmd(&holder, &data, &["clock"], ""));
    println!("  node holds {} of P's {p_seq}", held[&p_id]);
    assert_eq!(held, held_before, "nothing new is taken while full");
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text
        .lines()
        .filter(|l| says_disk_full(l) || l.contains("WARN") || l.contains("ERROR"))
    {
        println!("  node log: {line}");
    }
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        says_disk_full(&text),
        "the log does not say the disk is full:\n{text}"
    );
    assert!(
        !text.contains("takes no writes since one failed"),
        "the store hit the full disk:\n{text}"
    );
    assert!(node.try_wait().unwrap().is_none(), "the node died:\n{text}");
    let out = node_cmd(&holder, &data, &["blobs", "has", &p_blob], "");
    assert_eq!(ok(&out, "blobs has").trim(), "false");

    // Case 2: publishing.
    let out = node_cmd(
        &holder,
        &data,
        &["publish", "--stdin"],
        &support::incompressible_posts(1000, 6000),
    );
    println!(
        "case publish: exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert!(!out.status.success());
    assert!(says_disk_full(&stderr(&out)), "{}", stderr(&out));

    // Case 3: a bundle import with a blob.
    let out = node_cmd(
        &holder,
        &data,
        &["bundle", "import", bundle.to_str().unwrap()],
        "",
    );
    println!(
        "case bundle import: exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert!(!out.status.success());
    assert!(says_disk_full(&stderr(&out)), "{}", stderr(&out));

    // Case 5: adding a blob.
    let file = dir.join("small.blob");
    random_file(&file, 1000);
    let out = node_cmd(
        &holder,
        &data,
        &["blobs", "add", file.to_str().unwrap()],
        "",
    );
    assert!(!out.status.success());
    assert!(says_disk_full(&stderr(&out)), "{}", stderr(&out));

    // The status says so, with the attention LED.
    let status = node_cmd(&holder, &data, &["status"], "");
    let shown = ok(&status, "status while full");
    println!("status while full:\n{shown}");
    assert!(shown.contains("disk full"), "{shown}");
    assert!(shown.contains("led: attention"), "{shown}");
    let json = node_cmd(&holder, &data, &["status", "--json"], "");
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["disk"]["state"], "full", "{json}");
    assert!(
        says_disk_full(json["disk"]["reason"].as_str().unwrap()),
        "{json}"
    );
    assert_eq!(json["led"], "attention", "{json}");

    // Reads go on: the clock, every message published before, and a fresh peer syncs ours.
    let clock = clock_of(&node_cmd(&holder, &data, &["clock"], ""));
    assert!(clock[&me].as_u64().unwrap() >= 5, "{clock}");
    for id in &before {
        ok(
            &node_cmd(&holder, &data, &["get", id], ""),
            "get while full",
        );
    }
    let fresh = dir.join("fresh");
    ok(&ssb_at(&fresh, &["init"]), "init fresh");
    ok(&ssb_at(&fresh, &["follow", &me]), "follow");
    let out = ssb_at(&fresh, &["sync", &addr, "--timeout", "20"]);
    ok(&out, "a fresh peer syncs from the full node");
    let fresh_clock = clock_of(&ssb_at(&fresh, &["clock"]));
    assert_eq!(fresh_clock[&me], clock[&me]);

    // A stick (on another disk) holding Q's feed and blob: the visit takes
    // nothing, says why, and still writes the stick our feed.
    let stick = dir.join("stick");
    std::fs::create_dir(&stick).unwrap();
    ok(
        &ssb_at(&dir.join("q"), &["stick", "sync", stick.to_str().unwrap()]),
        "Q writes the stick",
    );
    let out = node_cmd(
        &holder,
        &data,
        &["stick", "sync", stick.to_str().unwrap()],
        "",
    );
    let said = format!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    println!(
        "stick sync while full: exit {:?}: {said}",
        out.status.code()
    );
    assert!(!out.status.success());
    assert!(said.contains("problem") && says_disk_full(&said), "{said}");
    assert!(said.contains("exported 5 messages"), "{said}");
    let reader = dir.join("reader");
    ok(&ssb_at(&reader, &["init"]), "init reader");
    ok(&ssb_at(&reader, &["follow", &me]), "reader follows");
    ok(
        &ssb_at(&reader, &["stick", "sync", stick.to_str().unwrap()]),
        "reader reads the stick",
    );
    assert_eq!(clock_of(&ssb_at(&reader, &["clock"]))[&me], clock[&me]);
    let held = clock_of(&node_cmd(&holder, &data, &["clock"], ""));
    assert_eq!(
        held, held_before,
        "nothing of the stick is taken while full"
    );

    // kill -9 while full; check still passes, on the full disk.
    node.kill().unwrap();
    node.wait().unwrap();
    let out = node_cmd(&holder, &data, &["check"], "");
    println!(
        "check after kill -9, still full: exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    ok(&out, "check after kill -9 while full");

    // Restarted on the full disk: it says so at once, and takes nothing.
    let (mut node, addr) = start(&holder, &data, &log, &roots);
    let json = node_cmd(&holder, &data, &["status", "--json"], "");
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["disk"]["state"], "full", "{json}");
    assert_eq!(json["led"], "attention", "{json}");

    // Space freed: the same process resumes by itself, with no restart.
    ok(
        &ns_sh(&holder, &format!("rm {}", filler.display())),
        "rm filler",
    );
    let json = node_cmd(&holder, &data, &["status", "--json"], "");
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["disk"]["state"], "ok", "{json}");
    assert_ne!(json["led"], "attention", "{json}");
    ok(
        &ssb_at(&dir.join("p"), &["sync", &addr, "--timeout", "60"]),
        "sync after freeing space",
    );
    ok(
        &node_cmd(
            &holder,
            &data,
            &["bundle", "import", bundle.to_str().unwrap()],
            "",
        ),
        "bundle import after freeing space",
    );
    let clock = clock_of(&node_cmd(&holder, &data, &["clock"], ""));
    assert_eq!(clock[&p_id].as_u64(), Some(p_seq), "{clock}");
    assert_eq!(clock[&q_id].as_u64(), Some(q_seq), "{clock}");
    for blob in [&p_blob, &q_blob] {
        let has = node_cmd(&holder, &data, &["blobs", "has", blob], "");
        assert_eq!(ok(&has, "blobs has").trim(), "true", "{blob}");
    }
    ok(
        &node_cmd(
            &holder,
            &data,
            &["publish", "--content", r#"{"type":"post","text":"after"}"#],
            "",
        ),
        "publish after freeing space",
    );
    for id in &before {
        ok(&node_cmd(&holder, &data, &["get", id], ""), "get after");
    }
    let _ = node.kill();
    let _ = node.wait();
    ok(&node_cmd(&holder, &data, &["check"], ""), "final check");
}
