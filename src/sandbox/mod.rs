//! The sandbox of one run: a plan built in the parent, applied between fork and exec.
//!
//! Layers: Landlock (filesystem, TCP ports, scopes), seccomp, cgroups (v1 and v2),
//! rlimits, identity (uid/gid, capabilities, `no_new_privs`).
//!
//! Everything expensive or fallible happens here, in the parent, before the child
//! exists: accounts are resolved, the run directory is created, the Landlock
//! ruleset is created and filled (an fd), the seccomp BPF is compiled, rlimits,
//! argv and the environment are laid out as C data. The child ([`crate::sys::child`])
//! only applies that state with raw syscalls. Every layer the policy asks for is
//! required: a layer that cannot be applied is an error (exit 125), never a silent
//! downgrade. This module must never fork, and never touch the caller's process
//! state (its own credentials, limits or filters).

use std::path::PathBuf;

pub mod cgroup;
pub mod command;
pub mod env;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod identity;
pub mod landlock;
pub mod plan;
pub mod probe;
pub mod rlimit;
pub mod rundir;
pub mod seccomp;
pub mod syscalls;

pub use plan::{Plan, PlanRequest};

/// Why a sandbox could not be prepared. Every variant means the tool did not run.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel has no usable Landlock.
    #[error(
        "landlock is unavailable on this kernel ({0}); every run needs it — boot with \
         landlock in the `lsm=` list (Linux >= 5.13)"
    )]
    LandlockUnavailable(String),
    /// The policy needs a newer Landlock ABI than the kernel has.
    #[error(
        "landlock ABI {need} is required for {feature} ({origin}); this kernel has ABI {have} \
         — {hint}"
    )]
    LandlockAbiTooOld {
        /// ABI the policy needs.
        need: u8,
        /// ABI of the kernel.
        have: u32,
        /// The policy feature that needs it.
        feature: String,
        /// Where the policy asked for it.
        origin: String,
        /// How to fix it.
        hint: String,
    },
    /// A non-optional filesystem rule names a path that does not exist.
    #[error(
        "filesystem rule at {origin}: `{path}` does not exist; create it, fix the path, or \
         mark the rule `optional: true`"
    )]
    PathMissing {
        /// The expanded path.
        path: PathBuf,
        /// Where the rule was written.
        origin: String,
    },
    /// A filesystem rule's path could not be opened.
    #[error("filesystem rule at {origin}: cannot open `{path}`: {source}")]
    PathOpen {
        /// The expanded path.
        path: PathBuf,
        /// Where the rule was written.
        origin: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The policy's paths, expanded for this run, collide with its denies.
    #[error(transparent)]
    RunPaths(#[from] crate::policy::PolicyError),
    /// The landlock crate refused the ruleset (unsupported right, kernel error).
    #[error("building the landlock ruleset failed: {0}")]
    LandlockRuleset(String),
    /// A syscall name is not in the syscall table.
    #[error("syscalls at {origin}: unknown syscall `{name}`; see `enforcecore policy explain`")]
    UnknownSyscall {
        /// The name.
        name: String,
        /// Where it was written.
        origin: String,
    },
    /// The filter would deny a syscall the supervisor needs to start the tool.
    #[error(
        "syscalls at {origin}: `{name}` cannot be denied — the supervisor needs it to start \
         the tool (read, write, execve, exit_group); remove it from the deny list"
    )]
    EssentialSyscall {
        /// The name.
        name: String,
        /// Where it was denied.
        origin: String,
    },
    /// seccompiler refused the filter.
    #[error("compiling the seccomp filter failed: {0}")]
    SeccompCompile(String),
    /// The tool user does not exist.
    #[error(
        "tool user `{name}` ({origin}) does not exist; create it (`useradd --system \
         --no-create-home --shell /usr/sbin/nologin {name}`) or set sandbox.user"
    )]
    UnknownUser {
        /// The name.
        name: String,
        /// Where it was set.
        origin: String,
    },
    /// The tool group does not exist.
    #[error("tool group `{name}` ({origin}) does not exist; create it or set sandbox.group")]
    UnknownGroup {
        /// The name.
        name: String,
        /// Where it was set.
        origin: String,
    },
    /// The account database could not be read.
    #[error("looking up account `{name}` failed: {source}")]
    AccountLookup {
        /// The name.
        name: String,
        /// The OS error.
        source: nix::Error,
    },
    /// The policy names a user that only root could switch to.
    #[error(
        "the policy runs tools as {what} ({origin}), but enforcecore runs as uid {uid} and \
         only root can switch users; run it as root, or remove sandbox.user/sandbox.group \
         to run tools as yourself"
    )]
    IdentityNeedsRoot {
        /// `user nobody`, `group 65534`, ...
        what: String,
        /// Where it was set.
        origin: String,
        /// The supervisor's uid.
        uid: u32,
    },
    /// The tool would run as root.
    #[error(
        "refusing to run a tool as root ({what}); set sandbox.user/group to an unprivileged account"
    )]
    RootIdentity {
        /// What resolved to 0.
        what: String,
    },
    /// The run directory could not be created or prepared.
    #[error("preparing the run directory {path}: {source}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The command does not exist or is not an executable file.
    #[error(
        "command not found (or not an executable file): `{0}` (looked up in the tool's PATH: {1})"
    )]
    CommandNotFound(String, String),
    /// An argument or environment entry contains a NUL byte.
    #[error("{0} contains a NUL byte and cannot be passed to the tool")]
    NulByte(String),
    /// Reading host state failed (capabilities, /proc).
    #[error("probing the host failed: {0}")]
    Probe(String),
}

impl SandboxError {
    /// The `run` exit code for this error (127 for a missing command, else 125).
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::CommandNotFound(..) => crate::exit::NOT_FOUND,
            _ => crate::exit::SUPERVISOR_FAILED,
        }
    }
}
