//! Thin wrappers around the raw syscalls the rest of the crate needs.
//!
//! This is the only place `unsafe` is allowed. Every wrapper takes owned or
//! borrowed fds (never bare owned `RawFd`s), returns `io::Result`, and carries a
//! `// SAFETY:` comment naming the exact invariant it relies on.
#![allow(unsafe_code)]
