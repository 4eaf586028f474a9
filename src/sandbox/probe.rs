//! What this kernel and host support: the facts `run` decides on and `doctor` prints.
//!
//! Read-only. Probes never change host state: the kernel audit status is read with
//! `AUDIT_GET`, never set; user namespaces are judged from sysctls, not created.
//! Facts that cannot change while the process lives (Landlock ABI, `cap_last_cap`)
//! are read once.

use std::sync::OnceLock;

use serde::Serialize;

/// The running kernel's Landlock ABI, or why there is none. Read once.
pub fn landlock_abi() -> Result<u32, String> {
    static ABI: OnceLock<Result<u32, String>> = OnceLock::new();
    ABI.get_or_init(|| {
        crate::sys::landlock::abi_version().map_err(|e| match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => "built in but disabled at boot".to_string(),
            Some(libc::ENOSYS) => "not built into this kernel".to_string(),
            _ => e.to_string(),
        })
    })
    .clone()
}

/// The highest capability number (`/proc/sys/kernel/cap_last_cap`). Read once.
pub fn cap_last_cap() -> Result<u32, String> {
    static LAST: OnceLock<Result<u32, String>> = OnceLock::new();
    LAST.get_or_init(|| {
        let s = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .map_err(|e| format!("reading /proc/sys/kernel/cap_last_cap: {e}"))?;
        s.trim()
            .parse()
            .map_err(|e| format!("parsing /proc/sys/kernel/cap_last_cap `{}`: {e}", s.trim()))
    })
    .clone()
}

/// Whether this process holds `cap` in its effective set.
pub fn has_effective_cap(cap: caps::Capability) -> bool {
    caps::has_cap(None, caps::CapSet::Effective, cap).unwrap_or(false)
}

/// The seccomp actions the kernel offers (`/proc/sys/kernel/seccomp/actions_avail`).
pub fn seccomp_actions() -> Result<Vec<String>, String> {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .map_err(|e| format!("reading /proc/sys/kernel/seccomp/actions_avail: {e}"))
}

/// Kernel audit state as `AUDIT_GET` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditStatus {
    /// 0 off, 1 on, 2 locked on.
    pub enabled: u32,
    /// Failure mode (0 silent, 1 printk, 2 panic).
    pub failure: u32,
    /// pid of the registered audit daemon (0 = none).
    pub pid: u32,
    /// Records lost so far.
    pub lost: u32,
    /// Records queued.
    pub backlog: u32,
    /// Queue limit.
    pub backlog_limit: u32,
}

/// Read the kernel audit status over `NETLINK_AUDIT` (needs `CAP_AUDIT_CONTROL`).
pub fn audit_status() -> Result<AuditStatus, String> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        socket,
    };
    const AUDIT_GET: u16 = 1000;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkAudit,
    )
    .map_err(|e| format!("opening a NETLINK_AUDIT socket: {e}"))?;
    // nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32.
    let mut req = Vec::with_capacity(16);
    req.extend_from_slice(&16u32.to_ne_bytes());
    req.extend_from_slice(&AUDIT_GET.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &req,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("sending AUDIT_GET: {e}"))?;
    let mut buf = [0u8; 512];
    let n = recv(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &mut buf,
        MsgFlags::empty(),
    )
    .map_err(|e| format!("reading the AUDIT_GET reply: {e}"))?;
    parse_audit_reply(&buf[..n], NLMSG_ERROR)
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parse an `AUDIT_GET` reply: an `nlmsghdr` then `struct audit_status`, or an
/// `NLMSG_ERROR` carrying a negative errno.
fn parse_audit_reply(b: &[u8], nlmsg_error: u16) -> Result<AuditStatus, String> {
    let ty = b
        .get(4..6)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or("short netlink reply")?;
    if ty == nlmsg_error {
        let err = u32_at(b, 16).ok_or("short netlink error")? as i32;
        return Err(format!(
            "AUDIT_GET refused: {}",
            std::io::Error::from_raw_os_error(-err)
        ));
    }
    // audit_status: mask, enabled, failure, pid, rate_limit, backlog_limit, lost, backlog.
    let f = |i: usize| u32_at(b, 16 + 4 * i).ok_or("short audit_status");
    Ok(AuditStatus {
        enabled: f(1)?,
        failure: f(2)?,
        pid: f(3)?,
        backlog_limit: f(5)?,
        lost: f(6)?,
        backlog: f(7)?,
    })
}

/// User-namespace facts from sysctls (never by creating one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserNamespaces {
    /// `/proc/sys/user/max_user_namespaces` (0 = disabled).
    pub max_user_namespaces: Option<u64>,
    /// Debian's `/proc/sys/kernel/unprivileged_userns_clone`, when present.
    pub unprivileged_clone: Option<bool>,
    /// Whether this process is in the initial user namespace.
    pub initial_namespace: bool,
}

/// Read the user-namespace sysctls.
pub fn user_namespaces() -> UserNamespaces {
    let num = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let initial = std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(false);
    UserNamespaces {
        max_user_namespaces: num("/proc/sys/user/max_user_namespaces"),
        unprivileged_clone: num("/proc/sys/kernel/unprivileged_userns_clone").map(|v| v != 0),
        initial_namespace: initial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ty: u16, words: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&((16 + 4 * words.len()) as u32).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(&[0u8; 10]);
        for w in words {
            b.extend_from_slice(&w.to_ne_bytes());
        }
        b
    }

    #[test]
    fn audit_reply_status_is_decoded() {
        let b = reply(1000, &[0, 1, 1, 0, 0, 8192, 3, 0]);
        let s = parse_audit_reply(&b, 2).unwrap();
        assert_eq!(s.enabled, 1);
        assert_eq!(s.failure, 1);
        assert_eq!(s.backlog_limit, 8192);
        assert_eq!(s.lost, 3);
    }

    #[test]
    fn audit_reply_error_and_short_inputs_are_errors() {
        let b = reply(2, &[(-libc::EPERM) as u32]);
        assert!(parse_audit_reply(&b, 2).unwrap_err().contains("refused"));
        assert!(parse_audit_reply(&[1, 2, 3], 2).is_err());
        assert!(parse_audit_reply(&reply(1000, &[0, 1]), 2).is_err());
    }

    #[test]
    fn cap_last_cap_is_plausible() {
        let last = cap_last_cap().unwrap();
        assert!((30..64).contains(&last), "cap_last_cap {last}");
    }
}
