//! The forked child: applies a sandbox prepared in the parent, then `execve`s the tool.
//!
//! The supervisor is a multi-threaded tokio process. After `clone3(2)` the child is
//! a copy of that process with a single thread, and every lock another thread held
//! at that instant (the allocator's, stdio's, glibc's thread list) stays held
//! forever. So this module owns exactly one thing: a straight-line sequence of raw
//! `syscall(2)`s over data the parent already computed ([`ChildProgram`]). It never
//! allocates, never locks, never calls a glibc wrapper that broadcasts to threads
//! (`setresuid(3)` and friends do, and would wait for threads that no longer exist),
//! and never returns: it either `execve`s or reports `(step, errno)` on the status
//! pipe and exits 125.
//!
//! Steps, in order (each failure reports its [`Step`] and the errno):
//!
//! 0. `Signals`: every signal disposition back to `SIG_DFL`, then the signal mask
//!    (all blocked by the parent around `clone3`) emptied. Handlers of the parent
//!    must never run here, and `SIG_IGN` (Rust ignores `SIGPIPE`) survives `execve`.
//! 1. `Personality`, `Session`: `personality(PER_LINUX)` drops execution-domain
//!    flags a caller may have set (`setarch -R` would disable ASLR for the tool);
//!    `setsid()` — the tool gets its own session and process group and loses the
//!    caller's controlling terminal.
//! 2. `ParentDeath`: `PR_SET_PDEATHSIG(SIGKILL)`, then `getppid()` must still be the
//!    supervisor (it may have died between `clone3` and `prctl`).
//! 3. `CgroupJoin`: write `"0"` to each v1 `tasks` fd of the run's cgroups — the
//!    kernel moves the writer. Done while still root. (On v2 the child was created
//!    inside its cgroup by `clone3(CLONE_INTO_CGROUP)` and this step is empty.)
//! 4. `Rlimits`: `prlimit64` for each precomputed limit (nofile, fsize, core = 0, nproc).
//! 5. `CapBounding`: `PR_CAPBSET_DROP` for every capability up to `cap_last_cap`.
//!    Needs `CAP_SETPCAP`, hence before the uid switch.
//! 6. `Groups`, `Gid`, `Uid`: `setgroups(0, NULL)` first (it needs `CAP_SETGID`), then
//!    `setresgid`, then `setresuid` — raw syscalls, which act on this one thread.
//! 7. `Caps`, `CapAmbient`: `capset` with empty effective, permitted and inheritable
//!    sets (`setresuid` clears effective/permitted; inheritable survives it), then
//!    `PR_CAP_AMBIENT_CLEAR_ALL`.
//! 8. `ParentDeathRearm`: a credential change clears the parent-death signal
//!    (prctl(2)), so it is set again and the parent checked again.
//! 9. `Chdir`, `Umask`: into the run directory, as the tool user; umask 077.
//! 10. `NoNewPrivs`: `PR_SET_NO_NEW_PRIVS` (also what Landlock and seccomp require).
//! 11. `Landlock`: `landlock_restrict_self(ruleset_fd, flags)` with the ruleset the
//!     parent created and filled (`LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` on ABI >= 7).
//! 12. `Stdio`, `CloseRange`: the supervisor's pipes onto 0, 1, 2, then every
//!     other fd is closed with `close_range` except the status and go pipes (both
//!     CLOEXEC, so they close at `execve`). Closed, not only marked CLOEXEC, so
//!     that the seccomp listener finds a free fd below `RLIMIT_NOFILE`.
//! 13. `Seccomp`: each BPF program via `seccomp(SECCOMP_SET_MODE_FILTER, flags)`.
//!     Last, because from here on only `write`, `read` and `execve` are needed.
//!     A filter installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER` returns the
//!     listener's fd (CLOEXEC); its number goes to the parent as
//!     `(SeccompListener, fd)`, and the parent copies it with `pidfd_getfd`.
//! 14. `Ready`: tell the parent everything is in place and wait (`read`) for its go
//!     byte: the parent makes the run-started record durable first. EOF = abort.
//! 15. `Exec`: `execve(path, argv, envp)`. On success the status pipe closes (CLOEXEC)
//!     and the parent reads EOF.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_long};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

pub use step::Step;

mod step;

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
const NEW_LISTENER: u32 = 1 << 3;

/// Exit status of a child that failed before `execve`.
pub const CHILD_FAILED: i32 = 125;

/// A resource limit to apply with `prlimit64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_*` resource number.
    pub resource: u32,
    /// Soft and hard limit (set to the same value).
    pub value: u64,
}

/// A seccomp BPF program and the flags to install it with.
#[derive(Clone, Copy, Debug)]
pub struct Filter<'a> {
    /// The program (at most `BPF_MAXINSNS` instructions).
    pub program: &'a [libc::sock_filter],
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

/// Everything the child needs, borrowed from parent-owned storage that outlives
/// the `clone3` call (the child works on its own copy of that memory).
pub struct ChildProgram<'a> {
    /// The supervisor's pid, for the parent-death check.
    pub parent_pid: i32,
    /// The tool's stdin, stdout, stderr (all >= 3 in the parent).
    pub stdio: [BorrowedFd<'a>; 3],
    /// Write end of the CLOEXEC status pipe.
    pub status: BorrowedFd<'a>,
    /// Read end of the go pipe.
    pub go: BorrowedFd<'a>,
    /// Files the child writes `"0"` to in order to join the run's cgroup(s): v1
    /// `tasks` (moves the calling thread — the whole child, which has one — without
    /// the global threadgroup lock and its RCU grace period); empty when `clone3`
    /// placed the child with `CLONE_INTO_CGROUP` (v2).
    pub cgroup_join: &'a [OwnedFd],
    /// Limits to set.
    pub rlimits: &'a [Rlimit],
    /// `(uid, gid)` to switch to; `None` keeps the supervisor's (non-root runs).
    pub identity: Option<(u32, u32)>,
    /// Empty the bounding set (`cap_last_cap` inclusive); `None` when the supervisor
    /// lacks `CAP_SETPCAP` (non-root).
    pub bounding_last_cap: Option<u32>,
    /// The run directory (the tool's cwd).
    pub cwd: &'a CStr,
    /// Landlock ruleset fd and `landlock_restrict_self` flags.
    pub landlock: (BorrowedFd<'a>, u32),
    /// seccomp programs, installed in order.
    pub seccomp: &'a [Filter<'a>],
    /// Absolute path of the executable.
    pub exec_path: &'a CStr,
    /// NULL-terminated argv.
    pub argv: &'a [*const c_char],
    /// NULL-terminated envp.
    pub envp: &'a [*const c_char],
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// A failed step and its errno.
#[derive(Clone, Copy)]
struct Failure(Step, i32);

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// `Ok(ret)` for a non-negative raw syscall result, else the step and errno.
fn check(ret: c_long, step: Step) -> Result<c_long, Failure> {
    if ret < 0 {
        Err(Failure(step, errno()))
    } else {
        Ok(ret)
    }
}

/// Entry point of the child. Never returns.
///
/// Must only be called in a freshly cloned, single-threaded child.
pub(crate) fn run(p: &ChildProgram<'_>) -> ! {
    let failure = match apply(p) {
        Ok(()) => Failure(Step::Exec, 0),
        Err(f) => f,
    };
    if failure.1 != 0 {
        report(p.status, failure.0, failure.1);
    }
    exit(CHILD_FAILED)
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes an int and does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, code as c_long) };
    // exit_group cannot fail; spin rather than return if it somehow did.
    loop {
        std::hint::spin_loop();
    }
}

/// Write `(step, errno)` to the status pipe (8 bytes, atomic below PIPE_BUF).
fn report(fd: BorrowedFd<'_>, step: Step, err: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: msg is a live 8-byte stack buffer; fd is the status pipe, open until exec.
    unsafe {
        libc::syscall(
            libc::SYS_write,
            fd.as_raw_fd() as c_long,
            msg.as_ptr(),
            msg.len(),
        )
    };
}

fn prctl(step: Step, option: c_int, arg2: c_long) -> Result<c_long, Failure> {
    // SAFETY: the prctl options used here take integer arguments only.
    check(
        unsafe { libc::syscall(libc::SYS_prctl, option as c_long, arg2, 0, 0, 0) },
        step,
    )
}

fn parent_death(p: &ChildProgram<'_>, step: Step) -> Result<(), Failure> {
    prctl(step, libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_long)?;
    // SAFETY: getppid takes no arguments and cannot fail.
    let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
    if ppid as i32 != p.parent_pid {
        return Err(Failure(step, libc::ESRCH));
    }
    Ok(())
}

fn signals() -> Result<(), Failure> {
    // The kernel's struct sigaction on x86_64: handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: dfl is a live, correctly laid out kernel sigaction; the old-action
        // pointer is NULL; 8 is the kernel's sigset size on x86_64.
        check(
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig as c_long,
                    &dfl as *const KernelSigaction,
                    std::ptr::null::<KernelSigaction>(),
                    8usize,
                )
            },
            Step::Signals,
        )?;
    }
    let empty: u64 = 0;
    // SAFETY: empty is a live 8-byte signal set; the old-set pointer is NULL.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK as c_long,
                &empty as *const u64,
                std::ptr::null::<u64>(),
                8usize,
            )
        },
        Step::Signals,
    )?;
    Ok(())
}

fn apply(p: &ChildProgram<'_>) -> Result<(), Failure> {
    // 0. Signals.
    signals()?;
    // 1. Execution domain, then session.
    // SAFETY: integer argument; PER_LINUX (0) clears every personality flag.
    check(
        unsafe { libc::syscall(libc::SYS_personality, 0 as c_long) },
        Step::Personality,
    )?;
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::syscall(libc::SYS_setsid) }, Step::Session)?;
    // 2. Parent death.
    parent_death(p, Step::ParentDeath)?;
    // 3. cgroup join: the kernel moves the writing process.
    for fd in p.cgroup_join {
        // SAFETY: the buffer is a 1-byte static; fd is an open cgroup file owned by the parent.
        let n = check(
            unsafe {
                libc::syscall(
                    libc::SYS_write,
                    fd.as_raw_fd() as c_long,
                    b"0".as_ptr(),
                    1usize,
                )
            },
            Step::CgroupJoin,
        )?;
        if n != 1 {
            return Err(Failure(Step::CgroupJoin, libc::EIO));
        }
    }
    // 4. rlimits.
    for r in p.rlimits {
        let lim = libc::rlimit64 {
            rlim_cur: r.value,
            rlim_max: r.value,
        };
        // SAFETY: lim is a live rlimit64; the old-limit pointer is NULL; pid 0 = self.
        check(
            unsafe {
                libc::syscall(
                    libc::SYS_prlimit64,
                    0 as c_long,
                    r.resource as c_long,
                    &lim as *const libc::rlimit64,
                    std::ptr::null::<libc::rlimit64>(),
                )
            },
            Step::Rlimits,
        )?;
    }
    // 5. Bounding set (needs CAP_SETPCAP: before the uid switch).
    if let Some(last) = p.bounding_last_cap {
        for cap in 0..=last {
            prctl(Step::CapBounding, libc::PR_CAPBSET_DROP, cap as c_long)?;
        }
    }
    // 6. Identity: groups first (needs CAP_SETGID), then gid, then uid.
    if let Some((uid, gid)) = p.identity {
        // SAFETY: size 0 with a NULL list clears the supplementary groups.
        check(
            unsafe { libc::syscall(libc::SYS_setgroups, 0 as c_long, std::ptr::null::<u32>()) },
            Step::Groups,
        )?;
        // SAFETY: integer arguments only.
        check(
            unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) },
            Step::Gid,
        )?;
        // SAFETY: integer arguments only.
        check(
            unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) },
            Step::Uid,
        )?;
    }
    // 7. Effective, permitted, inheritable: empty; then ambient.
    let header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are live; version 3 takes exactly two data structs.
    check(
        unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) },
        Step::Caps,
    )?;
    // (setresuid from root cleared the ambient set already; this covers non-root.)
    // SAFETY: integer-only prctl.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_prctl,
                libc::PR_CAP_AMBIENT as c_long,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as c_long,
                0,
                0,
                0,
            )
        },
        Step::CapAmbient,
    )?;
    // 8. The credential change cleared PDEATHSIG.
    parent_death(p, Step::ParentDeathRearm)?;
    // 9. cwd and umask.
    // SAFETY: cwd is a NUL-terminated string owned by the parent's (copied) memory.
    check(
        unsafe { libc::syscall(libc::SYS_chdir, p.cwd.as_ptr()) },
        Step::Chdir,
    )?;
    // SAFETY: integer argument; umask cannot fail.
    check(
        unsafe { libc::syscall(libc::SYS_umask, 0o077 as c_long) },
        Step::Umask,
    )?;
    // 10. no_new_privs.
    prctl(Step::NoNewPrivs, libc::PR_SET_NO_NEW_PRIVS, 1)?;
    // 11. Landlock.
    let (ruleset, flags) = p.landlock;
    // SAFETY: ruleset is an open Landlock ruleset fd owned by the parent.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_landlock_restrict_self,
                ruleset.as_raw_fd() as c_long,
                flags as c_long,
            )
        },
        Step::Landlock,
    )?;
    // 12. Stdio onto 0, 1, 2 (sources are >= 3, so dup2 never aliases), then
    //     everything else but the status and go pipes closed.
    for (target, fd) in p.stdio.iter().enumerate() {
        // SAFETY: fd is open (owned by the parent); target is 0..=2.
        check(
            unsafe { libc::syscall(libc::SYS_dup2, fd.as_raw_fd() as c_long, target as c_long) },
            Step::Stdio,
        )?;
    }
    // Everything else is closed now (not only marked close-on-exec): the
    // seccomp listener, if any, must find a free fd below RLIMIT_NOFILE.
    let (a, b) = {
        let (s, g) = (p.status.as_raw_fd() as u32, p.go.as_raw_fd() as u32);
        (s.min(g), s.max(g))
    };
    for (first, last) in [
        (3, a.wrapping_sub(1)),
        (a + 1, b.wrapping_sub(1)),
        (b + 1, u32::MAX),
    ] {
        let first = first.max(3);
        if first > last {
            continue;
        }
        // SAFETY: integer arguments only; the status and go pipes are outside the ranges.
        check(
            unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    c_long::from(first),
                    c_long::from(last),
                    0 as c_long,
                )
            },
            Step::CloseRange,
        )?;
    }
    // 13. seccomp, last.
    for f in p.seccomp {
        let prog = libc::sock_fprog {
            len: f.program.len() as u16,
            filter: f.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at a live program of `len` instructions; the kernel copies it.
        let ret = check(
            unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER as c_long,
                    f.flags as c_long,
                    &prog as *const libc::sock_fprog,
                )
            },
            Step::Seccomp,
        )?;
        // With a listener the return value is its fd (CLOEXEC: gone at execve).
        if f.flags & NEW_LISTENER != 0 {
            report(p.status, Step::SeccompListener, ret as i32);
        }
    }
    // 14. Ready; wait for go (EOF = the supervisor aborted the run).
    report(p.status, Step::Ready, 0);
    let mut go = [0u8; 1];
    loop {
        // SAFETY: go is a live 1-byte buffer; the fd is the go pipe's read end.
        let n = unsafe {
            libc::syscall(
                libc::SYS_read,
                p.go.as_raw_fd() as c_long,
                go.as_mut_ptr(),
                1usize,
            )
        };
        match n {
            1 => break,
            n if n < 0 && errno() == libc::EINTR => continue,
            _ => return Err(Failure(Step::Ready, 0)),
        }
    }
    // 15. exec.
    // SAFETY: path, argv and envp are NUL-terminated / NULL-terminated arrays of
    // pointers into parent-owned CStrings, all live in this copy of the memory.
    unsafe {
        libc::syscall(
            libc::SYS_execve,
            p.exec_path.as_ptr(),
            p.argv.as_ptr(),
            p.envp.as_ptr(),
        )
    };
    Err(Failure(Step::Exec, errno()))
}
