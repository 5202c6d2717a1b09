//! systemd's service notification protocol (`sd_notify`), for `ssb-node run`
//! under a `Type=notify` unit: `READY=1` once the node listens, `STATUS=`
//! lines saying what it does, `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` when a signal stops it.
//!
//! The protocol is one datagram per message, `KEY=value` lines, sent to the
//! unix socket named by `$NOTIFY_SOCKET`: a path, or `@name` for an abstract
//! socket. Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// Longest `STATUS=` text sent; longer text is cut (at a char boundary).
pub const MAX_STATUS: usize = 512;

/// Why a notification could not be set up or sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is not an absolute path or an `@abstract` name.
    #[error("NOTIFY_SOCKET {0:?} is neither an absolute path nor an @abstract name")]
    BadAddress(String),
    /// The socket could not be made, addressed or written.
    #[error("notify socket {addr}: {source}")]
    Io {
        /// `$NOTIFY_SOCKET` as given.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    shown: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; `Ok(None)` when it is unset
    /// or empty (the node was not started by systemd).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::new(&v.to_string_lossy()).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier for the socket named `addr` (`/path` or `@abstract`).
    pub fn new(addr: &str) -> Result<Notifier, NotifyError> {
        let io = |source| NotifyError::Io {
            addr: addr.to_owned(),
            source,
        };
        let sock_addr = if let Some(name) = addr.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr).map_err(io)?
        } else {
            return Err(NotifyError::BadAddress(addr.to_owned()));
        };
        let socket = UnixDatagram::unbound().map_err(io)?;
        // A manager that stops reading must not block the node's runtime:
        // a full queue is an error to log, not a wait.
        socket.set_nonblocking(true).map_err(io)?;
        Ok(Notifier {
            socket,
            addr: sock_addr,
            shown: addr.to_owned(),
        })
    }

    /// Sends one message: `KEY=value` lines.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(drop)
            .map_err(|source| NotifyError::Io {
                addr: self.shown.clone(),
                source,
            })
    }

    /// `READY=1` with a status line: the node is serving.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("READY=1\n{}", status_line(status)))
    }

    /// A status line alone (`systemctl status` shows it).
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&status_line(status))
    }

    /// `WATCHDOG=1` with a status line: the node is alive.
    pub fn watchdog(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("WATCHDOG=1\n{}", status_line(status)))
    }

    /// `STOPPING=1` with a status line: the node is shutting down.
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.send(&format!("STOPPING=1\n{}", status_line(status)))
    }
}

/// What `run` tells the service manager, if one listens. Sending never
/// stops the node: a failure is logged and the node goes on.
#[derive(Debug, Clone, Default)]
pub struct Service {
    notifier: Option<Arc<Notifier>>,
}

impl Service {
    /// From `$NOTIFY_SOCKET`; silent when it is unset.
    pub fn from_env() -> Service {
        match Notifier::from_env() {
            Ok(n) => Service {
                notifier: n.map(Arc::new),
            },
            Err(e) => {
                tracing::warn!("not notifying systemd: {e}");
                Service::default()
            }
        }
    }

    fn with(&self, what: &str, f: impl FnOnce(&Notifier) -> Result<(), NotifyError>) {
        if let Some(n) = &self.notifier {
            if let Err(e) = f(n) {
                tracing::warn!("systemd notification {what}: {e}");
            }
        }
    }

    /// `READY=1`: the node listens and serves.
    pub fn ready(&self, status: &str) {
        self.with("READY", |n| n.ready(status));
    }

    /// `STOPPING=1`: the node is shutting down.
    pub fn stopping(&self, status: &str) {
        self.with("STOPPING", |n| n.stopping(status));
    }

    /// Starts the task that sends `WATCHDOG=1` (with `status()` as the
    /// status line) every half `$WATCHDOG_USEC`, if systemd asked for it.
    /// The task runs on the node's runtime, so a wedged runtime stops the
    /// pings and systemd restarts the node.
    pub fn spawn_watchdog(
        &self,
        status: impl Fn() -> String + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let notifier = self.notifier.clone()?;
        let every = watchdog_interval_from_env()?;
        tracing::debug!(?every, "systemd watchdog on");
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = notifier.watchdog(&status()) {
                    tracing::warn!("systemd notification WATCHDOG: {e}");
                }
            }
        }))
    }
}

/// `STATUS=text` on one line: a newline would start another assignment, so
/// control characters become spaces; at most [`MAX_STATUS`] bytes.
fn status_line(status: &str) -> String {
    let mut end = status.len().min(MAX_STATUS);
    while !status.is_char_boundary(end) {
        end -= 1;
    }
    let clean: String = status[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("STATUS={clean}")
}

/// How often to send `WATCHDOG=1`, from `$WATCHDOG_USEC` and `$WATCHDOG_PID`:
/// half the timeout, and only if the watchdog is meant for this process.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval_from_env`] on given values: `None` when the timeout
/// is missing, malformed or zero, or `pid` names another process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("recv");
        String::from_utf8(buf[..n].to_vec()).expect("utf-8")
    }

    #[test]
    fn messages_arrive_on_a_path_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::new(path.to_str().expect("utf-8 path")).expect("notifier");
        n.ready("listening on net:1.2.3.4:8008").expect("send");
        assert_eq!(
            recv(&server),
            "READY=1\nSTATUS=listening on net:1.2.3.4:8008"
        );
        n.watchdog("2 peers").expect("send");
        assert_eq!(recv(&server), "WATCHDOG=1\nSTATUS=2 peers");
        n.stopping("bye").expect("send");
        assert_eq!(recv(&server), "STOPPING=1\nSTATUS=bye");
        n.status("x").expect("send");
        assert_eq!(recv(&server), "STATUS=x");
    }

    #[test]
    fn messages_arrive_on_an_abstract_socket() {
        let name = format!("ssb-node-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind");
        let n = Notifier::new(&format!("@{name}")).expect("notifier");
        n.ready("up").expect("send");
        assert_eq!(recv(&server), "READY=1\nSTATUS=up");
    }

    #[test]
    fn bad_addresses_and_a_missing_listener_are_errors() {
        assert!(matches!(
            Notifier::new("relative/path"),
            Err(NotifyError::BadAddress(_))
        ));
        let dir = tempfile::tempdir().expect("tmp");
        let n = Notifier::new(dir.path().join("nobody").to_str().expect("utf-8")).expect("new");
        assert!(matches!(n.ready("x"), Err(NotifyError::Io { .. })));
    }

    #[test]
    fn a_status_cannot_inject_assignments_and_is_bounded() {
        assert_eq!(status_line("a\nREADY=1"), "STATUS=a READY=1");
        let long = "é".repeat(MAX_STATUS);
        let line = status_line(&long);
        assert!(line.len() <= "STATUS=".len() + MAX_STATUS);
        assert!(line.ends_with('é'));
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval(Some("60000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("60000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("60000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
    }
}
