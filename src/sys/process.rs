//! Process primitives: `clone3` with a pidfd, waiting on and signalling a pidfd.
//!
//! This module owns the one call that creates a tool process. The child side of it
//! is [`super::child`]; here is only the parent side: the child's stack and image,
//! block signals, `clone3(2)` with `CLONE_VM | CLONE_PIDFD`, restore the mask, and
//! [`ChildMemory`], which keeps what the child runs on alive until it no longer
//! does. A pidfd (pidfd_open(2)) names the process without pid-reuse races and is
//! pollable, so the async supervisor can wait on it. It must never spawn anything
//! that has not gone through [`ChildProgram`].
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::child::{self, ChildProgram, Image};

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The child's stack: ample for its straight-line sequence (a few hundred bytes
/// of frames), with an inaccessible guard page below it.
const STACK: usize = 64 * 1024;
/// The guard page.
const GUARD: usize = 4096;

/// An anonymous mapping used as the child's stack; its lowest page is `PROT_NONE`.
struct Stack {
    base: *mut c_void,
}

// SAFETY: the mapping is owned by this value alone; the pointer is only its address.
unsafe impl Send for Stack {}
// SAFETY: as above; `&Stack` gives no access to the memory.
unsafe impl Sync for Stack {}

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses;
        // nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD + STACK,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base };
        // SAFETY: the range lies inside the mapping just created.
        let rc = unsafe {
            libc::mprotect(
                stack.lowest() as *mut c_void,
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The lowest usable address (just above the guard page).
    fn lowest(&self) -> usize {
        self.base as usize + GUARD
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping created in `new`, owned by this value.
        unsafe { libc::munmap(self.base, GUARD + STACK) };
    }
}

/// What a child created by [`spawn`] runs on until it `execve`s: its [`Image`]
/// and its stack, both in the supervisor's memory.
///
/// Dropping it frees that memory, so the drop first makes sure the child is done
/// with it: the child has `execve`d or died when its status pipe has no writer
/// left (its write end is close-on-exec, and the parent closes its own right
/// after [`spawn`]); otherwise the child is killed and waited for (without
/// reaping it). If neither can be confirmed the memory is leaked, never freed.
pub struct ChildMemory {
    image: Option<Box<Image>>,
    stack: Option<Stack>,
    status: OwnedFd,
    pidfd: OwnedFd,
}

impl ChildMemory {
    /// Whether the status pipe has lost its last writer (`POLLHUP`).
    fn status_hung_up(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.status.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: pfd is one live pollfd; timeout 0 never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLHUP != 0
    }

    /// Kill the child if it still runs and wait until it has exited (leaving it
    /// to be reaped by its owner). `false` when that could not be confirmed.
    fn ensure_dead(&self) -> bool {
        if pidfd_kill(self.pidfd.as_fd(), libc::SIGKILL).is_err() {
            return false;
        }
        loop {
            // SAFETY: siginfo_t is plain data.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: info is live; the pidfd is open for the call.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                return true;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // Already reaped.
                Some(libc::ECHILD) => return true,
                _ => return false,
            }
        }
    }
}

impl Drop for ChildMemory {
    fn drop(&mut self) {
        if !self.status_hung_up() && !self.ensure_dead() {
            std::mem::forget(self.image.take());
            std::mem::forget(self.stack.take());
        }
    }
}

/// A freshly created child.
pub struct Spawned {
    /// Its pid (in the supervisor's pid namespace).
    pub pid: i32,
    /// Its pidfd (CLOEXEC), readable once it has exited.
    pub pidfd: OwnedFd,
    /// The memory it runs on until it `execve`s; keep it until then.
    pub memory: ChildMemory,
}

/// Create the child that runs `program` (see [`child`]).
///
/// The child starts with every signal blocked so that none of the supervisor's
/// handlers can run in it; it resets dispositions and unblocks itself.
///
/// The parent-death signal is tied to the *calling thread*: call this from a
/// thread that lives as long as the run (the main thread, or a tokio worker —
/// never a `spawn_blocking` thread, which exits when idle).
///
/// `status` is the read end of the pipe whose write end is `program.status`;
/// the caller closes its copy of that write end right after this returns.
/// `into_cgroup`: a cgroup v2 directory (opened for reading) to create the child
/// in (`CLONE_INTO_CGROUP`), so that it never has to migrate.
pub fn spawn(
    program: ChildProgram,
    status: BorrowedFd<'_>,
    into_cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<Spawned> {
    let image = Image::new(program);
    let stack = Stack::new()?;
    let status = status.try_clone_to_owned()?;
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises the set it is given.
    unsafe { libc::sigfillset(all.as_mut_ptr()) };
    // SAFETY: both sets are valid for reads/writes; this thread's mask only.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let mut pidfd: libc::c_int = -1;
    // SAFETY: clone_args is plain integers; zero is a valid value for every field.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = (libc::CLONE_VM | libc::CLONE_PIDFD) as u64;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    args.exit_signal = libc::SIGCHLD as u64;
    args.stack = stack.lowest() as u64;
    args.stack_size = STACK as u64;
    if let Some(cg) = into_cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: the stack is a writable mapping with a page-aligned top; the image
    // is boxed (it does not move) and, like the stack, moves into the returned
    // ChildMemory, which frees neither before the child has execve'd or died.
    // `child::entry` writes only to that stack (see `super::child`).
    let ret = unsafe {
        child::raw::clone3_onto(
            &args,
            child::entry,
            &*image as *const Image as *const c_void,
        )
    };
    // SAFETY: old was filled by the first pthread_sigmask call.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    if let Some(errno) = child::raw::failed(ret) {
        return Err(io::Error::from_raw_os_error(errno));
    }
    // SAFETY: with CLONE_PIDFD a successful clone3 stored a new fd we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let own = match pidfd.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            // The image and stack are freed on return: the child must be gone first.
            if pidfd_kill(pidfd.as_fd(), libc::SIGKILL).is_err()
                || wait_blocking(pidfd.as_fd()).is_err()
            {
                std::mem::forget(image);
                std::mem::forget(stack);
            }
            return Err(e);
        }
    };
    let memory = ChildMemory {
        image: Some(image),
        stack: Some(stack),
        status,
        pidfd: own,
    };
    Ok(Spawned {
        pid: ret as i32,
        pidfd,
        memory,
    })
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

/// Reap the process behind `pidfd` if it has exited (`waitid(P_PIDFD, WNOHANG)`).
pub fn try_wait(pidfd: BorrowedFd<'_>) -> io::Result<Option<ExitStatus>> {
    // SAFETY: siginfo_t is plain data; zeroed lets us detect "no child ready" (si_pid 0).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is live; the pidfd is open for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled a SIGCHLD siginfo (or left it zeroed).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => ExitStatus::Exited(status),
        _ => ExitStatus::Signaled(status),
    }))
}

/// Reap the process behind `pidfd`, blocking until it exits. For cleanup paths
/// that have already sent SIGKILL and cannot await.
pub fn wait_blocking(pidfd: BorrowedFd<'_>) -> io::Result<ExitStatus> {
    loop {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is live; the pidfd is open for the duration of the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled a SIGCHLD siginfo.
        let status = unsafe { info.si_status() };
        return Ok(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Exited(status),
            _ => ExitStatus::Signaled(status),
        });
    }
}

/// Send `signal` to the process behind `pidfd`. ESRCH (already gone) is success.
pub fn pidfd_kill(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: integer arguments and a NULL siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            signal as libc::c_long,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_long,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Send `signal` to process group `pgid`. ESRCH (empty group) is success.
pub fn kill_group(pgid: i32, signal: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: integer arguments; a negative pid names the process group.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Ignore `signal` in this process (`SIG_IGN`). Children reset every disposition
/// before `execve` (see [`super::child`]), so this never reaches a tool.
pub fn ignore_signal(signal: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code; sigaction is async-signal-safe and
    // only this process's disposition changes.
    let old = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Signals blocked on the calling thread — and on every thread it starts
/// meanwhile — until [`HeldSignals::release`]: a signal that arrives in
/// between stays pending instead of taking its default action.
pub struct HeldSignals {
    old: nix::sys::signal::SigSet,
}

/// Block `signals` on the calling thread ([`HeldSignals`]).
pub fn hold_signals(signals: &[i32]) -> io::Result<HeldSignals> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut set = SigSet::empty();
    for &s in signals {
        set.add(Signal::try_from(s).map_err(io::Error::from)?);
    }
    let old = set.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
    Ok(HeldSignals { old })
}

impl HeldSignals {
    /// Restore the mask from before [`hold_signals`]: pending signals are
    /// delivered now.
    pub fn release(self) -> io::Result<()> {
        Ok(self.old.thread_set_mask()?)
    }
}

/// The first of `signals` pending for this thread or process, if any.
pub fn pending_signal(signals: &[i32]) -> io::Result<Option<i32>> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the sigset_t it is given (a live local).
    if unsafe { libc::sigpending(set.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful sigpending above.
    let set = unsafe { set.assume_init() };
    // SAFETY: sigismember only reads the initialised set.
    Ok(signals
        .iter()
        .copied()
        .find(|&s| unsafe { libc::sigismember(&set, s) } == 1))
}

/// Fill `buf` from the kernel's CSPRNG (`getrandom(2)`).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: rest is a live, writable buffer of rest.len() bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_fill_the_buffer() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn kill_group_refuses_init_and_self_groups() {
        assert!(kill_group(0, 0).is_err());
        assert!(kill_group(1, 0).is_err());
    }
}
