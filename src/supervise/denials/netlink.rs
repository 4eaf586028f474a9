//! The two `NETLINK_AUDIT` sockets of the feed.
//!
//! - [`Control`]: unicast to the kernel — `AUDIT_GET` (status), `AUDIT_SET`
//!   (enable, backlog limit; needs `CAP_AUDIT_CONTROL`) and one user-space
//!   `AUDIT_TRUSTED_APP` message per finished run, which the feed uses as a
//!   barrier (needs `CAP_AUDIT_WRITE`).
//! - [`Multicast`]: bound to `AUDIT_NLGRP_READLOG` (group 1, needs
//!   `CAP_AUDIT_READ`): a read-only copy of every record the kernel emits. It
//!   never registers as the audit daemon (`AUDIT_SET` with a pid), so auditd,
//!   when there is one, keeps working.
//!
//! Safe code over `nix`; the frames are built and parsed here by hand.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    setsockopt, socket, sockopt,
};

use super::record::{NLMSG_ERROR, TRUSTED_APP};
use crate::sandbox::probe::AuditStatus;

const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// `AUDIT_STATUS_ENABLED`.
const STATUS_ENABLED: u32 = 0x1;
/// `AUDIT_STATUS_BACKLOG_LIMIT`.
const STATUS_BACKLOG_LIMIT: u32 = 0x10;
/// `AUDIT_NLGRP_READLOG` as a group bitmask.
const READLOG_GROUPS: u32 = 1;

fn open() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkAudit,
    )?)
}

fn frame(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut b = Vec::with_capacity((len + 3) & !3);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(payload);
    b.resize((len + 3) & !3, 0);
    b
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// The unicast control socket.
#[derive(Debug)]
pub struct Control {
    fd: OwnedFd,
    seq: u32,
}

impl Control {
    /// Open it.
    pub fn open() -> io::Result<Control> {
        Ok(Control {
            fd: open()?,
            seq: 0,
        })
    }

    fn send(&mut self, ty: u16, flags: u16, payload: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let f = frame(ty, NLM_F_REQUEST | flags, self.seq, payload);
        sendto(
            self.fd.as_raw_fd(),
            &f,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        Ok(self.seq)
    }

    /// The reply to request `seq` (skipping stale replies to earlier requests).
    fn reply(&mut self, seq: u32, want: u16) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let b = &buf[..n];
            let (Some(ty), Some(s)) = (
                b.get(4..6).map(|t| u16::from_ne_bytes([t[0], t[1]])),
                u32_at(b, 8),
            ) else {
                return Err(io::Error::other("short netlink reply"));
            };
            if s != seq {
                continue;
            }
            if ty == NLMSG_ERROR {
                let err = u32_at(b, 16).unwrap_or(0) as i32;
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(-err));
                }
                if want == NLMSG_ERROR {
                    return Ok(Vec::new());
                }
                continue;
            }
            if ty == want {
                return Ok(b[16..].to_vec());
            }
        }
    }

    /// `AUDIT_GET`.
    pub fn status(&mut self) -> io::Result<AuditStatus> {
        let seq = self.send(AUDIT_GET, 0, &[])?;
        let p = self.reply(seq, AUDIT_GET)?;
        let f = |i: usize| u32_at(&p, 4 * i).ok_or_else(|| io::Error::other("short audit_status"));
        Ok(AuditStatus {
            enabled: f(1)?,
            failure: f(2)?,
            pid: f(3)?,
            backlog_limit: f(5)?,
            lost: f(6)?,
            backlog: f(7)?,
        })
    }

    /// `AUDIT_SET` of `enabled` and, when given, the backlog limit; acknowledged.
    pub fn set(&mut self, enabled: u32, backlog_limit: Option<u32>) -> io::Result<()> {
        let mut words = [0u32; 11];
        words[0] = STATUS_ENABLED | backlog_limit.map_or(0, |_| STATUS_BACKLOG_LIMIT);
        words[1] = enabled;
        words[5] = backlog_limit.unwrap_or(0);
        let payload: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let seq = self.send(AUDIT_SET, NLM_F_ACK, &payload)?;
        self.reply(seq, NLMSG_ERROR).map(drop)
    }

    /// Send a user-space record (`AUDIT_TRUSTED_APP`) with `text`; not acknowledged.
    pub fn user_message(&mut self, text: &str) -> io::Result<()> {
        let mut p = text.as_bytes().to_vec();
        p.push(0);
        self.send(TRUSTED_APP, 0, &p).map(drop)
    }
}

/// The multicast reader socket.
#[derive(Debug)]
pub struct Multicast {
    fd: OwnedFd,
}

impl Multicast {
    /// Open and join `AUDIT_NLGRP_READLOG`, with a receive buffer of `rcvbuf`
    /// bytes (forced past `rmem_max` when privileged).
    pub fn open(rcvbuf: usize) -> io::Result<Multicast> {
        let fd = open()?;
        if setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &rcvbuf);
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, READLOG_GROUPS))?;
        Ok(Multicast { fd })
    }

    /// Block for the next datagram. `ENOBUFS` means records were dropped
    /// because the socket's buffer overflowed.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_aligned_and_carry_their_length() {
        let f = frame(AUDIT_SET, NLM_F_REQUEST, 9, &[1, 2, 3]);
        assert_eq!(f.len(), 20);
        assert_eq!(u32_at(&f, 0), Some(19));
        assert_eq!(u32_at(&f, 8), Some(9));
        assert_eq!(&f[16..19], &[1, 2, 3]);
    }
}
