//! Inode attribute flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`, what
//! `lsattr`/`chattr` use): the append-only attribute of audit trail files.
//!
//! This module only reads and flips `FS_APPEND_FL`; it never touches another flag.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `FS_APPEND_FL` (linux/fs.h): the file may only be opened for appending, and
/// not truncated, renamed, linked or removed.
const FS_APPEND_FL: libc::c_int = 0x20;

fn flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut flags: libc::c_int = 0;
    // SAFETY: `fd` is borrowed for the duration of the call; the kernel writes
    // one `int` through the pointer, which points at `flags` on this stack frame.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags)
}

/// Whether the file is append-only (`chattr +a`).
pub fn append_only(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(flags(fd)? & FS_APPEND_FL != 0)
}

/// Set or clear the append-only attribute. Needs `CAP_LINUX_IMMUTABLE` (EPERM
/// otherwise) and a filesystem that has the attribute (ENOTTY or EOPNOTSUPP
/// otherwise). Works on a read-only fd.
pub fn set_append_only(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let old = flags(fd)?;
    let new = if on {
        old | FS_APPEND_FL
    } else {
        old & !FS_APPEND_FL
    };
    if new == old {
        return Ok(());
    }
    // SAFETY: `fd` is borrowed for the duration of the call; the kernel reads
    // one `int` through the pointer, which points at `new` on this stack frame.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &new) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
