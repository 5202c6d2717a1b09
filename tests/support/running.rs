//! A real `ssb-node run` process for tests: started on 127.0.0.1 with an
//! ephemeral port, its address read from the `listening` line, its log kept
//! in a file the test can search.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ssb_node::feed::ids::decode_base64_exact;
use ssb_node::net::shs::PublicKey;

use super::{ssb_at, ssb_node};

/// A running node with its stderr going to a file we can read.
pub struct Node {
    /// The process.
    pub child: Child,
    /// Its data dir.
    pub data: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its multiserver address.
    pub addr: String,
    /// Its TCP address.
    pub socket: SocketAddr,
    /// Its public key.
    pub key: PublicKey,
}

/// Spawns `ssb-node --data DATA run --listen 127.0.0.1:0 --no-discovery
/// EXTRA…` (through `wrapper`, e.g. `unshare -m --`, which must exec the node
/// in place) with `envs` and stderr to `stderr`, and waits for its
/// `listening ADDRESS` line; returns the process and the address. Without a
/// `--mount-root` in `extra` the node watches only a (missing) `DATA-sticks`,
/// never the machine's own mount roots.
pub fn spawn_run(
    data: &Path,
    extra: &[&str],
    wrapper: &[&str],
    envs: &[(&str, &str)],
    stderr: Stdio,
) -> (Child, String) {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(ssb_node());
            c
        }
        None => Command::new(ssb_node()),
    };
    command
        .arg("--data")
        .arg(data)
        .args(["run", "--listen", "127.0.0.1:0", "--no-discovery"]);
    if !extra.contains(&"--mount-root") {
        command
            .arg("--mount-root")
            .arg(format!("{}-sticks", data.display()));
    }
    let mut child = command
        .args(extra)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    (child, addr)
}

/// Starts `cmd`, an `ssb-node … run` (stdin empty, stderr to `log`), and
/// waits up to `wait` for its `listening ADDRESS` line: the process and the
/// address. Panics with the log when the line does not come.
pub fn start_run(cmd: &mut Command, log: &Path, wait: Duration) -> (Child, String) {
    let mut run = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("start ssb-node run");
    let line = super::stdout_lines(&mut run).recv_timeout(wait);
    let Some(address) = line
        .as_ref()
        .ok()
        .and_then(|l| l.strip_prefix("listening "))
        .map(str::to_owned)
    else {
        let _ = run.kill();
        let _ = run.wait();
        panic!(
            "ssb-node run printed {line:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    };
    (run, address)
}

/// Sends SIGTERM to `child` (a clean stop, as systemd asks for one).
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

impl Node {
    /// Inits `dir/node`, writes `config` as its ssb-node.toml, runs it with `extra` arguments.
    pub fn start(dir: &Path, config: &str) -> Node {
        Node::start_with(dir, "node", config, &[])
    }

    /// Like [`Node::start`], with the data dir named `name` and extra `run` arguments.
    /// Without a `--mount-root` among them the node watches only a (missing)
    /// `DIR/NAME-sticks`, never the machine's own mount roots.
    pub fn start_with(dir: &Path, name: &str, config: &str, extra: &[&str]) -> Node {
        Node::start_wrapped(dir, name, config, extra, &[])
    }

    /// Like [`Node::start_with`], run through `wrapper` (e.g. `unshare -m --`):
    /// the process is the wrapper's, which must exec the node in place.
    pub fn start_wrapped(
        dir: &Path,
        name: &str,
        config: &str,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Node {
        let data = dir.join(name);
        let out = ssb_at(&data, &["init"]);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(data.join("ssb-node.toml"), config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let (child, addr) = spawn_run(
            &data,
            extra,
            wrapper,
            &[("SSB_NODE_LOG", "ssb_node=debug")],
            std::fs::File::create(&log).unwrap().into(),
        );
        // net:127.0.0.1:PORT~shs:KEY
        let (net, shs) = addr.split_once("~shs:").unwrap();
        let socket: SocketAddr = net.strip_prefix("net:").unwrap().parse().unwrap();
        let key = PublicKey(decode_base64_exact::<32>(shs).unwrap());
        Node {
            child,
            data,
            log,
            addr,
            socket,
            key,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Resident and peak memory in KiB, from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Waits until the log holds at least `n` lines containing `needle`.
    pub fn wait_log(&self, needle: &str, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let count = self.log().matches(needle).count();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh node syncs this node's feed: the node still serves properly.
    pub fn check_serves(&self, dir: &Path) {
        let me = String::from_utf8(ssb_at(&self.data, &["whoami"]).stdout).unwrap();
        let other = dir.join("checker");
        assert!(ssb_at(&other, &["init"]).status.success());
        assert!(ssb_at(&other, &["follow", me.trim()]).status.success());
        let out = ssb_at(&other, &["sync", &self.addr, "--timeout", "30"]);
        assert!(
            out.status.success(),
            "sync after the attack failed: {}\nnode log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("received 1 messages"), "{text}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
