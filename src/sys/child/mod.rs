//! The forked child: applies a sandbox prepared in the parent, then `execve`s the tool.
//!
//! The supervisor is a multi-threaded tokio process. The child is created with
//! `clone3(CLONE_VM)` (as `posix_spawn(3)` does): until it `execve`s it runs *in
//! the supervisor's memory*, on a stack of its own, while the supervisor's threads
//! go on. Nothing is copied — no page tables, no copy-on-write faults in the
//! supervisor afterwards, no address space to tear down at `execve` — and the
//! child must in turn write nothing shared. So this module owns exactly one
//! thing: a straight-line sequence of `syscall` instructions ([`raw`]; not glibc,
//! whose wrappers write the creating thread's `errno`) over an [`Image`] the
//! parent prepared and keeps alive until the child has `execve`d or died. It never
//! allocates, never locks, never touches thread-local storage, never calls a glibc
//! wrapper that broadcasts to threads (`setresuid(3)` and friends do), writes only
//! to its own stack, and never returns: it either `execve`s or reports
//! `(step, errno)` on the status pipe and exits 125.
//!
//! Sharing the memory does not share anything else: without `CLONE_FILES`,
//! `CLONE_FS`, `CLONE_SIGHAND` or `CLONE_THREAD` the child has its own fd table,
//! cwd and umask, signal dispositions, credentials and limits, and every step
//! below acts on the child alone. (A credential change marks the shared address
//! space non-dumpable, as it would the child's own: the supervisor then produces
//! no core dump, which suits a process that holds signing keys.)
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

use std::ffi::{CString, c_char, c_long, c_void};
use std::os::fd::RawFd;

pub use step::Step;

mod apply;
pub(crate) mod raw;
mod step;

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
#[derive(Clone, Debug)]
pub struct Filter {
    /// The program (at most `BPF_MAXINSNS` instructions).
    pub program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

/// Everything the child needs, computed by the parent.
///
/// File descriptors are numbers in the child's fd table, which is a copy of the
/// parent's taken at `clone3`: the parent must hold them open until `clone3`
/// returns, and may close them afterwards.
pub struct ChildProgram {
    /// The supervisor's pid, for the parent-death check.
    pub parent_pid: i32,
    /// The tool's stdin, stdout, stderr (all >= 3 in the parent).
    pub stdio: [RawFd; 3],
    /// Write end of the CLOEXEC status pipe.
    pub status: RawFd,
    /// Read end of the go pipe.
    pub go: RawFd,
    /// Files the child writes `"0"` to in order to join the run's cgroup(s): v1
    /// `tasks` (moves the calling thread — the whole child, which has one — without
    /// the global threadgroup lock and its RCU grace period); empty when `clone3`
    /// placed the child with `CLONE_INTO_CGROUP` (v2).
    pub cgroup_join: Vec<RawFd>,
    /// Limits to set.
    pub rlimits: Vec<Rlimit>,
    /// `(uid, gid)` to switch to; `None` keeps the supervisor's (non-root runs).
    pub identity: Option<(u32, u32)>,
    /// Empty the bounding set (`cap_last_cap` inclusive); `None` when the supervisor
    /// lacks `CAP_SETPCAP` (non-root).
    pub bounding_last_cap: Option<u32>,
    /// The run directory (the tool's cwd).
    pub cwd: CString,
    /// Landlock ruleset fd and `landlock_restrict_self` flags.
    pub landlock: (RawFd, u32),
    /// seccomp programs, installed in order.
    pub seccomp: Vec<Filter>,
    /// Absolute path of the executable.
    pub exec_path: CString,
    /// argv.
    pub argv: Vec<CString>,
    /// envp.
    pub envp: Vec<CString>,
}

/// The memory the child reads: its program and the NULL-terminated pointer
/// arrays `execve` takes (pointing into the program's strings).
pub(crate) struct Image {
    program: ChildProgram,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
}

// SAFETY: the pointers in `argv`/`envp` point into the CStrings of `program`,
// which the Image owns and never mutates; moving the Image between threads
// moves neither those heap buffers nor what they point to.
unsafe impl Send for Image {}
// SAFETY: as above; the Image is read-only after construction.
unsafe impl Sync for Image {}

fn null_terminated(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Image {
    /// Lay out `program` for the child.
    pub(crate) fn new(program: ChildProgram) -> Box<Image> {
        let argv = null_terminated(&program.argv);
        let envp = null_terminated(&program.envp);
        Box::new(Image {
            program,
            argv,
            envp,
        })
    }
}

/// Entry point of the child on its own stack ([`raw::clone3_onto`]). Never returns.
pub(crate) extern "C" fn entry(image: *const c_void) -> ! {
    // SAFETY: `process::spawn` passes a pointer to an Image it keeps alive, unmoved
    // and unmodified, until this child has execve'd or died.
    let image = unsafe { &*(image as *const Image) };
    let failure = match apply::apply(image) {
        Ok(()) => Failure(Step::Exec, 0),
        Err(f) => f,
    };
    if failure.1 != 0 {
        report(image.program.status, failure.0, failure.1);
    }
    exit(CHILD_FAILED)
}

/// A failed step and its errno.
#[derive(Clone, Copy)]
struct Failure(Step, i32);

/// `Ok(ret)` for a successful raw syscall result, else the step and errno.
fn check(ret: c_long, step: Step) -> Result<c_long, Failure> {
    match raw::failed(ret) {
        Some(errno) => Err(Failure(step, errno)),
        None => Ok(ret),
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes an int and does not return; without CLONE_THREAD
    // it ends this child only.
    unsafe { raw::syscall(libc::SYS_exit_group, [code as usize, 0, 0, 0, 0, 0]) };
    // exit_group cannot fail; spin rather than return if it somehow did.
    loop {
        std::hint::spin_loop();
    }
}

/// Write `(step, errno)` to the status pipe (8 bytes, atomic below PIPE_BUF).
fn report(fd: RawFd, step: Step, err: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: msg is a live 8-byte buffer on this stack; fd is the status pipe,
    // open in this child's fd table until exec.
    unsafe {
        raw::syscall(
            libc::SYS_write,
            [fd as usize, msg.as_ptr() as usize, msg.len(), 0, 0, 0],
        )
    };
}
