//! seccomp user notifications: receiving a denied call and answering it, and
//! taking the listener fd out of the child.
//!
//! The listener is created in the child by `seccomp(SECCOMP_SET_MODE_FILTER,
//! SECCOMP_FILTER_FLAG_NEW_LISTENER)` (CLOEXEC, so it never survives into the
//! tool) and copied into the supervisor with `pidfd_getfd(2)` before the child
//! execs. This module only wraps the three syscalls; it never decides an answer.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One denied call, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Cookie to answer with.
    pub id: u64,
    /// The calling thread (in the listener's pid namespace).
    pub pid: u32,
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// The six argument registers.
    pub args: [u64; 6],
}

/// `SECCOMP_IOCTL_NOTIF_RECV`. Blocks until a notification is pending: call it
/// only when the fd polled readable (the feed is its only reader). `ENOENT`:
/// the caller died between the poll and this call.
pub fn recv(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed on input.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: n is a live, writable seccomp_notif, the exact type this ioctl takes;
    // the fd is borrowed for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Notification {
        id: n.id,
        pid: n.pid,
        nr: n.data.nr,
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: the call fails with `errno` in the caller.
/// `ENOENT`: the caller is gone (killed while waiting) — nothing to answer.
pub fn deny(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: resp is a live seccomp_notif_resp, the exact type this ioctl reads.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const libc::seccomp_notif_resp,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `pidfd_getfd(pidfd, target, 0)`: a CLOEXEC copy of the process's fd `target`.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; pidfd is borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd() as libc::c_long,
            target as libc::c_long,
            0 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}
