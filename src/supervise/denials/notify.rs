//! The seccomp listener of one run: every call the filter refuses comes here,
//! is answered with the policy's errno, and becomes a denial with its
//! arguments.
//!
//! The listener belongs to the run's own filter, so attribution is exact: no
//! other process can produce a notification on it. The fd is taken out of the
//! child with `pidfd_getfd` before `execve` and is CLOEXEC in the child, so the
//! tool never holds it and cannot answer its own calls. If the supervisor dies,
//! the kernel fails every pending and future call with `ENOSYS`: refused either
//! way. This task never allows a call.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::io::Interest;
use tokio::sync::mpsc;

use super::FeedItem;
use super::translate::Hints;
use crate::sys::{reactor, seccomp_notify};

/// Serve `listener` until every process of the run's filter is gone.
/// Refused calls get `-errno`; each is sent on `tx` as a denial.
pub async fn serve(
    listener: OwnedFd,
    errno: i32,
    hints: Arc<Hints>,
    tx: mpsc::UnboundedSender<FeedItem>,
) -> io::Result<u64> {
    let fd = reactor::register(listener, Interest::READABLE)?;
    let mut served = 0;
    loop {
        let mut guard = fd.readable().await?;
        // Level check: a pending notification (POLLIN) or no process left (POLLHUP).
        let mut p = [PollFd::new(fd.get_ref().as_fd(), PollFlags::POLLIN)];
        poll(&mut p, PollTimeout::ZERO)?;
        let rev = p[0].revents().unwrap_or(PollFlags::empty());
        if rev.contains(PollFlags::POLLIN) {
            match seccomp_notify::recv(fd.get_ref().as_fd()) {
                Ok(n) => {
                    // Answer first: the caller is blocked until we do.
                    match seccomp_notify::deny(fd.get_ref().as_fd(), n.id, errno) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        Err(e) => return Err(e),
                    }
                    served += 1;
                    let d = hints.seccomp(n.pid as i32, i64::from(n.nr), n.arch, Some(&n.args));
                    let _ = tx.send(FeedItem::Denial(d));
                }
                // The caller was killed between the poll and the receive.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        if rev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            return Ok(served);
        }
        guard.clear_ready();
    }
}
