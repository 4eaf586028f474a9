//! The denial feed: kernel refusals turned into denials attributed to runs.
//!
//! Sources (DESIGN §3):
//! - **Landlock** (filesystem, TCP ports, scopes): audit records 1423/1424 read
//!   from the `NETLINK_AUDIT` multicast group by the process-wide [`Feed`]; a
//!   domain id maps to the run whose child created it ([`feed`]).
//! - **seccomp**: the run's own filter notifies a listener in the supervisor
//!   ([`notify`]) — exact attribution and the call's arguments; filters that
//!   cannot notify (the kill action, allow mode's argument filter) log 1326
//!   records instead, attributed by pid and cgroup.
//! - **cgroups** and **policy** refusals are decided by the supervisor itself
//!   (`supervise::outcome`, `supervise::admit`).
//!
//! Kernel audit is host state: [`enable`] switches it on for the policies that
//! ask (`denials.kernel_audit: enable`) and off after the last run, shared
//! between concurrent supervisors. Losses (netlink overflow, kernel backlog
//! drops, a barrier that never came back) are reported as [`FeedItem::Lost`],
//! never dropped silently. This module must never allow a call a filter
//! refused, and never register itself as the host's audit daemon.

pub mod enable;
pub mod event;
pub mod feed;
pub mod netlink;
pub mod notify;
pub mod record;
pub mod translate;

pub use enable::Capture;
pub use feed::{AuditHold, Feed, Hold, Registration};
pub use translate::Hints;

use crate::report::Denial;

/// The `op=` of the user-space audit record a run's end sends through the
/// kernel's audit queue (visible in the host's audit log when auditd runs).
pub const RUN_END_OP: &str = "enforcecore-run-end";

/// What the feed delivers to a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedItem {
    /// A denial attributed to the run.
    Denial(Denial),
    /// Denial records may have been lost while the run was live.
    Lost {
        /// `audit-netlink`, `kernel-audit`, `seccomp-notify`.
        source: String,
        /// What happened.
        detail: String,
    },
}
