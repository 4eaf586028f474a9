//! Unix-socket primitives the daemon needs: receiving and sending file
//! descriptors with `SCM_RIGHTS` (unix(7)), and taking over the listening socket
//! systemd passes by socket activation (sd_listen_fds(3)).
//!
//! Both turn descriptor *numbers* handed over by someone else into [`OwnedFd`]s,
//! which is why they live here. This module must never adopt a number that the
//! kernel did not just install for us (`recvmsg`) or that the service manager's
//! protocol does not name (fd 3 with `LISTEN_PID` = our pid).
#![allow(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockType, getsockopt, recvmsg, sendmsg, sockopt,
};

/// The most descriptors one `recv_with_fds` accepts in one message.
pub const MAX_FDS: usize = 3;

/// The kernel's limit of descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// Receive bytes into `buf`, and any descriptors sent with them, close-on-exec.
/// Non-blocking: `WouldBlock` when nothing is queued. Returns `(bytes, fds)`;
/// 0 bytes and no fds means end of stream. Callers enforce how many
/// descriptors they accept ([`MAX_FDS`] for a request).
///
/// The control buffer holds the most a message can carry (`SCM_MAX_FD`), and a
/// unix stream socket never returns more than one message's descriptors per
/// call, so every descriptor received is owned here (and closed when dropped):
/// a client sending many cannot make the daemon leak them.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(buf)];
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags)
        .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed `fd` in our table for this message
                // (SCM_RIGHTS) and nothing else knows the number yet: we are its
                // only owner from here on.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more file descriptors were sent with one message than the kernel allows",
        ));
    }
    Ok((msg.bytes, fds))
}

/// Send `buf` with `fds` attached (`SCM_RIGHTS`). Blocking unless the socket is
/// non-blocking; returns the bytes sent (the descriptors go with the first byte).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(buf)],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)
}

/// The first descriptor of the socket-activation protocol.
const SD_LISTEN_FDS_START: RawFd = 3;

/// The listening unix stream socket systemd passed (sd_listen_fds(3)), if any.
///
/// `listen_pid` and `listen_fds` are the values of `LISTEN_PID` and
/// `LISTEN_FDS`. Only when `LISTEN_PID` is our own pid is fd 3 adopted, and only
/// after checking that it is a listening `AF_UNIX` stream socket; exactly one
/// socket is expected. The caller removes the variables from the environment.
pub fn listen_fd(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
) -> io::Result<Option<OwnedFd>> {
    let (Some(pid), Some(n)) = (listen_pid, listen_fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let n: u32 = n.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={n:?} is not a number"),
        )
    })?;
    match n {
        0 => return Ok(None),
        1 => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "systemd passed {n} sockets; the socket unit must have exactly one ListenStream="
                ),
            ));
        }
    }
    // Is fd 3 open at all? (F_GETFD on a closed number is EBADF, and adopts nothing.)
    nix::fcntl::fcntl(
        // SAFETY: only borrowed for the duration of this call, which does not close it.
        unsafe { BorrowedFd::borrow_raw(SD_LISTEN_FDS_START) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(|e| io::Error::other(format!("LISTEN_FDS=1 but fd 3 is not open: {e}")))?;
    // SAFETY: the service manager's protocol hands fd 3 to this pid (checked
    // above: LISTEN_PID is us, LISTEN_FDS is 1, and the fd is open); nothing
    // else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    let family = getsockopt(&fd, sockopt::SockType).map_err(io::Error::from)?;
    let domain = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd.as_raw_fd());
    let listening = getsockopt(&fd, sockopt::AcceptConn).map_err(io::Error::from)?;
    if family != SockType::Stream || domain.is_err() || !listening {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket systemd passed is not a listening unix stream socket; use ListenStream=/path",
        ));
    }
    // Close-on-exec: systemd passes it inheritable, and tools must never get it.
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(io::Error::from)?;
    Ok(Some(fd))
}

/// A pidfd of the process that connected the peer end of `sock`
/// (`SO_PEERPIDFD`, Linux 6.5): race-free, unlike a pid from `SO_PEERCRED`.
/// It becomes readable when that process exits.
pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option value is a live c_int of the size passed in `len`.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if fd < 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    // SAFETY: the kernel just installed `fd` for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn descriptors_travel_with_the_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = UnixStream::pair().unwrap();
        let n = send_with_fds(a.as_fd(), b"hello", &[w.as_fd()]).unwrap();
        assert_eq!(n, 5);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the same socket: writing to it reaches `r`.
        drop(w);
        nix::unistd::write(&fds[0], b"x").unwrap();
        drop(fds);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"x");
        // Nothing queued: WouldBlock, not a hang.
        let e = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn many_descriptors_are_all_owned() {
        let (a, b) = UnixStream::pair().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fds = [null.as_fd(); 200];
        send_with_fds(a.as_fd(), b"x", &fds).unwrap();
        let mut buf = [0u8; 4];
        // All of them arrive owned (the caller refuses more than MAX_FDS).
        let (_, got) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(got.len(), 200);
    }

    #[test]
    fn socket_activation_is_only_for_our_pid() {
        assert!(listen_fd(None, None).unwrap().is_none());
        assert!(listen_fd(Some("1"), Some("1")).unwrap().is_none());
        let me = std::process::id().to_string();
        assert!(listen_fd(Some(&me), Some("0")).unwrap().is_none());
        assert!(listen_fd(Some(&me), Some("2")).is_err());
        assert!(listen_fd(Some(&me), Some("x")).is_err());
    }
}
