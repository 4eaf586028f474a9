//! Registering owned fds with the tokio reactor.
//!
//! `AsyncFd::register_with_interest` is `unsafe` because a generic `AsRawFd` type
//! could hand the reactor a different or closed fd later. An [`OwnedFd`] cannot:
//! it returns the one descriptor it owns and keeps it open until dropped, which is
//! exactly when the `AsyncFd` deregisters it. This module must only ever accept
//! `OwnedFd`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Register `fd` with the current runtime's reactor for `interest`.
///
/// Fails (dropping `fd`) when the fd is not pollable (`EPERM` for regular files
/// and some devices such as `/dev/null`) or when called outside a runtime.
pub fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd always yields the same open descriptor from as_raw_fd and
    // keeps it open for as long as it lives, i.e. for the AsyncFd's whole lifetime.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(io::Error::from)
}
