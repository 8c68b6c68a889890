//! Telling the service manager how start-up goes: systemd's notification protocol
//! (sd_notify(3)), for `Type=notify` units. One datagram per message to the AF_UNIX socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), with
//! newline-separated `KEY=value` assignments.
//!
//! Why it matters here: boot-time pmem mounts are the window notify exists for, and attaching
//! takes seconds (BTF, kallsyms, program loads; 10 s and more under emulation). With
//! `Type=notify`, units ordered after the agent wait until it says READY=1, which it says only
//! once every probe is attached, XFS's own channels are open and the journal's pending records
//! were replayed.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing. A send that fails
//! is said once on stderr and never stops the agent: readiness is a courtesy to the service
//! manager, not a condition of tracing.

use std::{
    io,
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
};

pub struct Notifier {
    to: Option<(UnixDatagram, SocketAddr, String)>,
    warned: bool,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a value notify cannot use is said on stderr and ignored.
    pub fn from_env() -> Notifier {
        let to = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|v| !v.is_empty())
            .and_then(|v| match Notifier::connect(&v) {
                Ok((s, a)) => Some((s, a, v)),
                Err(e) => {
                    eprintln!("notify: NOTIFY_SOCKET={v}: {e}; not telling systemd when ready");
                    None
                }
            });
        Notifier { to, warned: false }
    }

    fn connect(v: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
        let addr = match v.as_bytes()[0] {
            b'/' => SocketAddr::from_pathname(v)?,
            b'@' => SocketAddr::from_abstract_name(&v.as_bytes()[1..])?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a socket path or @abstract name (vsock is not supported)",
                ));
            }
        };
        Ok((UnixDatagram::unbound()?, addr))
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.to.is_some()
    }

    /// A free-form start-up or state line (`systemctl status` shows the last one).
    pub fn status(&mut self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Start-up is complete: READY=1, with the state in words.
    pub fn ready(&mut self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={}\nMAINPID={}",
            one_line(status),
            std::process::id()
        ));
    }

    /// Shutting down (SIGTERM/SIGINT), so the manager knows the stop has begun.
    pub fn stopping(&mut self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    fn send(&mut self, msg: &str) {
        let Some((sock, addr, name)) = &self.to else {
            return;
        };
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
            && !self.warned
        {
            eprintln!("notify: telling systemd over NOTIFY_SOCKET={name}: {e}");
            self.warned = true;
        }
    }
}

/// A value of one assignment: the protocol separates assignments by newlines.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}
