//! The sandbox of one run: a plan built in the parent, applied between fork and exec.
//!
//! Layers: Landlock (filesystem, TCP ports, scopes), seccomp, cgroups (v1 and v2),
//! rlimits, identity (uid/gid, capabilities, `no_new_privs`).

pub mod cgroup;
pub mod syscalls;
