//! Private test LANs made of Linux network namespaces, removed again on drop.
//!
//! [`Lan::new`] makes one namespace per host, each with `lo` and an `eth0` at
//! `10.77.0.<i+1>/24` (broadcast `10.77.0.255`) and a default route through it, so that
//! broadcasts to 255.255.255.255 work too. Two hosts are joined by one veth pair; more by
//! veth pairs to a bridge in one more namespace, so nothing is added to the host's own
//! network. Programs run in a host with [`Lan::command`] (`ip netns exec`), or a fresh
//! thread moves itself into one with [`Lan::enter`].
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2. Where `ip netns add` is not
//! permitted, [`Lan::new`] prints why and returns `None`, and the test returns early.
//!
//! Include it with `#[path = "support/netns.rs"] mod netns;`.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix of every namespace these helpers make: `ssbt-<pid>-<lan>-<host>`.
const PREFIX: &str = "ssbt-";

/// One host of a [`Lan`].
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name, as `ip netns` knows it.
    pub netns: String,
    /// The address of its `eth0`.
    pub ip: Ipv4Addr,
}

/// A set of network namespaces on one private /24; deleted when dropped, panics included.
#[derive(Debug)]
pub struct Lan {
    hosts: Vec<Host>,
    /// Every namespace made so far, hosts and bridge, in the order made.
    made: Vec<String>,
}

impl Lan {
    /// The broadcast address of the LAN.
    pub const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 255);

    /// A LAN of `hosts` (2 to 200) hosts, or `None`, after printing why, where network
    /// namespaces cannot be made. Panics if a later setup step fails.
    pub fn new(hosts: usize) -> Option<Lan> {
        assert!((2..=200).contains(&hosts), "2 to 200 hosts");
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale();
        let lan_id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            hosts: Vec::new(),
            made: Vec::new(),
        };
        for i in 0..hosts {
            let netns = format!("{lan_id}-{i}");
            let out = Command::new("ip").args(["netns", "add", &netns]).output();
            match out {
                Ok(out) if out.status.success() => {}
                Ok(out) if i == 0 => {
                    let why = String::from_utf8_lossy(&out.stderr);
                    eprintln!(
                        "SKIPPED: cannot create network namespaces here (`ip netns add`: {})",
                        why.trim()
                    );
                    return None;
                }
                Err(e) if i == 0 => {
                    eprintln!("SKIPPED: cannot run `ip netns add` (iproute2 missing?): {e}");
                    return None;
                }
                Ok(out) => panic!(
                    "ip netns add {netns}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => panic!("ip netns add {netns}: {e}"),
            }
            lan.made.push(netns.clone());
            lan.hosts.push(Host {
                netns,
                ip: Ipv4Addr::new(10, 77, 0, (i + 1) as u8),
            });
        }
        if hosts == 2 {
            let (a, b) = (&lan.hosts[0].netns, &lan.hosts[1].netns);
            ip(
                a,
                &[
                    "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b,
                ],
            );
        } else {
            let switch = format!("{lan_id}-sw");
            ip_global(&["netns", "add", &switch]);
            lan.made.push(switch.clone());
            ip(&switch, &["link", "add", "br0", "type", "bridge"]);
            ip(&switch, &["link", "set", "br0", "up"]);
            for (i, host) in lan.hosts.iter().enumerate() {
                let port = format!("p{i}");
                let peer = ["peer", "name", "eth0", "netns", &host.netns];
                ip(
                    &switch,
                    &[&["link", "add", &port, "type", "veth"][..], &peer[..]].concat(),
                );
                ip(&switch, &["link", "set", &port, "master", "br0"]);
                ip(&switch, &["link", "set", &port, "up"]);
            }
        }
        for host in &lan.hosts {
            let cidr = format!("{}/24", host.ip);
            ip(&host.netns, &["link", "set", "lo", "up"]);
            ip(
                &host.netns,
                &["addr", "add", &cidr, "brd", "+", "dev", "eth0"],
            );
            ip(&host.netns, &["link", "set", "eth0", "up"]);
            ip(&host.netns, &["route", "add", "default", "dev", "eth0"]);
        }
        Some(lan)
    }

    /// Host `i` (0-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// All hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// `program` to be run inside host `i` (`ip netns exec NS program`); add its arguments.
    /// `ip netns exec` execs the program, so the child's pid is the program's.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i].netns])
            .arg(program);
        cmd
    }

    /// Adds the address `cidr` (e.g. `10.88.0.1/32`) to device `dev` of host `i`, an address
    /// off the LAN's /24 that the other hosts still reach through their default route.
    pub fn add_address(&self, i: usize, cidr: &str, dev: &str) {
        ip(&self.hosts[i].netns, &["addr", "add", cidr, "dev", dev]);
    }

    /// Moves the calling thread into host `i`'s network: sockets it opens from now on are
    /// the host's. Only for threads made for that purpose, never the test's main thread.
    pub fn enter(&self, i: usize) {
        enter(&self.hosts[i].netns);
    }
}

/// Moves the calling thread into the network namespace `netns` (a [`Host::netns`]); for
/// threads that cannot borrow the [`Lan`].
pub fn enter(netns: &str) {
    let path = format!("/run/netns/{netns}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

impl Drop for Lan {
    fn drop(&mut self) {
        for netns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", netns]).output();
        }
    }
}

/// Runs `ip -n NETNS ARGS...`, panicking with its stderr if it fails.
fn ip(netns: &str, args: &[&str]) -> Output {
    ip_global(&[&["-n", netns][..], args].concat())
}

fn ip_global(args: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Deletes namespaces left by test processes that died without dropping their [`Lan`]
/// (killed, or aborted): those whose pid no longer runs.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Lines look like `name` or `name (id: 3)`.
        let name = line.split_whitespace().next().unwrap_or("");
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
            }
        }
    }
}
