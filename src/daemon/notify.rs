//! The systemd service-manager protocol: `sd_notify(3)` datagrams (READY=1,
//! RELOADING=1, STOPPING=1, WATCHDOG=1, STATUS=…) and the watchdog interval.
//!
//! The environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`) only
//! says where and how often to report; it never changes what the daemon
//! enforces. Without `NOTIFY_SOCKET` every notification is a no-op. This module
//! must never block: a full or vanished notify socket loses the message, with a
//! warning, and the daemon goes on.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager, or nothing.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> io::Result<Notifier> {
        Notifier::new(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// For an explicit `NOTIFY_SOCKET` value (`None`: notifications are no-ops).
    pub fn new(value: Option<&std::ffi::OsStr>) -> io::Result<Notifier> {
        use std::os::unix::ffi::OsStrExt;
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return Ok(Notifier { target: None });
        };
        let addr = match v.as_bytes() {
            [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
            [b'/', ..] => SocketAddr::from_pathname(v)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={v:?} is neither an absolute path nor @abstract"),
                ));
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Notifier {
            target: Some((sock, addr)),
        })
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Send one notification (`READY=1\nSTATUS=…`).
    pub fn notify(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            tracing::warn!(
                "sd_notify {:?} failed: {e}",
                state.lines().next().unwrap_or("")
            );
        }
    }
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, when the watchdog is
/// on for this process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    interval_for(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn interval_for(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let us: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(us / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_us() {
        assert_eq!(
            interval_for(Some("30000000"), None, 5),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            interval_for(Some("30000000"), Some("5"), 5),
            Some(Duration::from_secs(15))
        );
        assert_eq!(interval_for(Some("30000000"), Some("6"), 5), None);
        assert_eq!(interval_for(Some("0"), None, 5), None);
        assert_eq!(interval_for(None, None, 5), None);
    }

    #[test]
    fn notifications_reach_a_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path.as_os_str())).unwrap();
        assert!(n.enabled());
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        assert!(Notifier::new(Some("relative".as_ref())).is_err());
        assert!(!Notifier::new(None).unwrap().enabled());
    }
}
