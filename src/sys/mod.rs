//! Thin wrappers around the raw syscalls the rest of the crate needs.
//!
//! This is the only place `unsafe` is allowed. Every wrapper takes owned or
//! borrowed fds (never bare owned `RawFd`s), returns `io::Result`, and carries a
//! `// SAFETY:` comment naming the exact invariant it relies on.
//!
//! - [`child`]: the post-`clone3` child that applies a precomputed sandbox and execs.
//! - [`inode_flags`]: the append-only attribute of audit trail files.
//! - [`process`]: `clone3` with a pidfd, `waitid`/`pidfd_send_signal`, `getrandom`.
//! - [`landlock`]: the Landlock ABI version query.
//! - [`reactor`]: registering owned fds with the tokio reactor.
//! - [`seccomp_notify`]: seccomp user notifications and `pidfd_getfd`.
//! - [`socket`]: `SCM_RIGHTS` fd passing and the socket-activation fd.
#![allow(unsafe_code)]

pub mod child;
pub mod inode_flags;
pub mod landlock;
pub mod process;
pub mod reactor;
pub mod seccomp_notify;
pub mod socket;
