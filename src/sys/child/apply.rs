//! The step sequence itself (numbered in the parent module's docs).
//!
//! Every call here is a [`raw::syscall`] on data in the [`Image`] or on this
//! stack; see the parent module for why nothing else is allowed.

use std::ffi::{c_int, c_long};
use std::os::fd::RawFd;

use super::raw::{self, failed};
use super::{Failure, Image, Step, check, report};

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
const NEW_LISTENER: u32 = 1 << 3;

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

/// A syscall whose arguments are all integers.
fn int_call(n: c_long, a: [usize; 6], step: Step) -> Result<c_long, Failure> {
    // SAFETY: callers pass only integer arguments (no pointers).
    check(unsafe { raw::syscall(n, a) }, step)
}

fn prctl(step: Step, option: c_int, arg2: usize) -> Result<c_long, Failure> {
    int_call(libc::SYS_prctl, [option as usize, arg2, 0, 0, 0, 0], step)
}

fn parent_death(parent_pid: i32, step: Step) -> Result<(), Failure> {
    prctl(step, libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize)?;
    let ppid = int_call(libc::SYS_getppid, [0; 6], step)?;
    if ppid as i32 != parent_pid {
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
    for sig in 1..=64usize {
        if sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
            continue;
        }
        // SAFETY: dfl is a live, correctly laid out kernel sigaction on this stack;
        // the old-action pointer is NULL; 8 is the kernel's sigset size on x86_64.
        let ret = unsafe {
            raw::syscall(
                libc::SYS_rt_sigaction,
                [sig, &dfl as *const KernelSigaction as usize, 0, 8, 0, 0],
            )
        };
        check(ret, Step::Signals)?;
    }
    let empty: u64 = 0;
    // SAFETY: empty is a live 8-byte signal set on this stack; the old-set pointer is NULL.
    let ret = unsafe {
        raw::syscall(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                &empty as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    };
    check(ret, Step::Signals)?;
    Ok(())
}

/// Close every fd from 3 up except `keep` (the status and go pipes, both CLOEXEC).
fn close_others(keep: [RawFd; 2]) -> Result<(), Failure> {
    let (a, b) = {
        let (s, g) = (keep[0] as u32, keep[1] as u32);
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
        int_call(
            libc::SYS_close_range,
            [first as usize, last as usize, 0, 0, 0, 0],
            Step::CloseRange,
        )?;
    }
    Ok(())
}

pub(super) fn apply(image: &Image) -> Result<(), Failure> {
    let p = &image.program;
    // 0. Signals.
    signals()?;
    // 1. Execution domain (PER_LINUX = 0 clears every personality flag), then session.
    int_call(libc::SYS_personality, [0; 6], Step::Personality)?;
    int_call(libc::SYS_setsid, [0; 6], Step::Session)?;
    // 2. Parent death.
    parent_death(p.parent_pid, Step::ParentDeath)?;
    // 3. cgroup join: the kernel moves the writing process.
    for &fd in &p.cgroup_join {
        // SAFETY: the buffer is a 1-byte static; fd is an open cgroup file in this
        // child's fd table.
        let ret = unsafe {
            raw::syscall(
                libc::SYS_write,
                [fd as usize, b"0".as_ptr() as usize, 1, 0, 0, 0],
            )
        };
        if check(ret, Step::CgroupJoin)? != 1 {
            return Err(Failure(Step::CgroupJoin, libc::EIO));
        }
    }
    // 4. rlimits.
    for r in &p.rlimits {
        let lim = libc::rlimit64 {
            rlim_cur: r.value,
            rlim_max: r.value,
        };
        // SAFETY: lim is a live rlimit64 on this stack; the old-limit pointer is
        // NULL; pid 0 = self.
        let ret = unsafe {
            raw::syscall(
                libc::SYS_prlimit64,
                [
                    0,
                    r.resource as usize,
                    &lim as *const libc::rlimit64 as usize,
                    0,
                    0,
                    0,
                ],
            )
        };
        check(ret, Step::Rlimits)?;
    }
    // 5. Bounding set (needs CAP_SETPCAP: before the uid switch).
    if let Some(last) = p.bounding_last_cap {
        for cap in 0..=last {
            prctl(Step::CapBounding, libc::PR_CAPBSET_DROP, cap as usize)?;
        }
    }
    // 6. Identity: groups first (needs CAP_SETGID), then gid, then uid. Size 0
    //    with a NULL list clears the supplementary groups.
    if let Some((uid, gid)) = p.identity {
        let (uid, gid) = (uid as usize, gid as usize);
        int_call(libc::SYS_setgroups, [0; 6], Step::Groups)?;
        int_call(libc::SYS_setresgid, [gid, gid, gid, 0, 0, 0], Step::Gid)?;
        int_call(libc::SYS_setresuid, [uid, uid, uid, 0, 0, 0], Step::Uid)?;
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
    // SAFETY: header and data are live on this stack; version 3 takes exactly two
    // data structs.
    let ret = unsafe {
        raw::syscall(
            libc::SYS_capset,
            [
                &header as *const CapHeader as usize,
                data.as_ptr() as usize,
                0,
                0,
                0,
                0,
            ],
        )
    };
    check(ret, Step::Caps)?;
    // (setresuid from root cleared the ambient set already; this covers non-root.)
    prctl(
        Step::CapAmbient,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as usize,
    )?;
    // 8. The credential change cleared PDEATHSIG.
    parent_death(p.parent_pid, Step::ParentDeathRearm)?;
    // 9. cwd and umask.
    // SAFETY: cwd is a NUL-terminated string in the Image.
    let ret = unsafe { raw::syscall(libc::SYS_chdir, [p.cwd.as_ptr() as usize, 0, 0, 0, 0, 0]) };
    check(ret, Step::Chdir)?;
    int_call(libc::SYS_umask, [0o077, 0, 0, 0, 0, 0], Step::Umask)?;
    // 10. no_new_privs.
    prctl(Step::NoNewPrivs, libc::PR_SET_NO_NEW_PRIVS, 1)?;
    // 11. Landlock, with the ruleset the parent filled.
    let (ruleset, flags) = p.landlock;
    int_call(
        libc::SYS_landlock_restrict_self,
        [ruleset as usize, flags as usize, 0, 0, 0, 0],
        Step::Landlock,
    )?;
    // 12. Stdio onto 0, 1, 2 (sources are >= 3, so dup2 never aliases), then
    //     everything else but the status and go pipes closed — not only marked
    //     close-on-exec: the seccomp listener, if any, must find a free fd below
    //     RLIMIT_NOFILE.
    for (target, &fd) in p.stdio.iter().enumerate() {
        int_call(
            libc::SYS_dup2,
            [fd as usize, target, 0, 0, 0, 0],
            Step::Stdio,
        )?;
    }
    close_others([p.status, p.go])?;
    // 13. seccomp, last.
    for f in &p.seccomp {
        let prog = libc::sock_fprog {
            len: f.program.len() as u16,
            filter: f.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog (on this stack) points at a live program of `len`
        // instructions in the Image; the kernel copies it.
        let ret = unsafe {
            raw::syscall(
                libc::SYS_seccomp,
                [
                    libc::SECCOMP_SET_MODE_FILTER as usize,
                    f.flags as usize,
                    &prog as *const libc::sock_fprog as usize,
                    0,
                    0,
                    0,
                ],
            )
        };
        let ret = check(ret, Step::Seccomp)?;
        // With a listener the return value is its fd (CLOEXEC: gone at execve).
        if f.flags & NEW_LISTENER != 0 {
            report(p.status, Step::SeccompListener, ret as i32);
        }
    }
    // 14. Ready; wait for go (EOF = the supervisor aborted the run).
    report(p.status, Step::Ready, 0);
    let mut go = [0u8; 1];
    loop {
        // SAFETY: go is a live 1-byte buffer on this stack; the fd is the go pipe's
        // read end.
        let n = unsafe {
            raw::syscall(
                libc::SYS_read,
                [p.go as usize, go.as_mut_ptr() as usize, 1, 0, 0, 0],
            )
        };
        match (n, failed(n)) {
            (1, _) => break,
            (_, Some(libc::EINTR)) => continue,
            _ => return Err(Failure(Step::Ready, 0)),
        }
    }
    // 15. exec.
    // SAFETY: the path and the NULL-terminated argv and envp arrays live in the
    // Image, which outlives this call.
    let ret = unsafe {
        raw::syscall(
            libc::SYS_execve,
            [
                p.exec_path.as_ptr() as usize,
                image.argv.as_ptr() as usize,
                image.envp.as_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    };
    Err(Failure(Step::Exec, failed(ret).unwrap_or(libc::EIO)))
}
