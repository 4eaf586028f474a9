//! Why a run ended, and the denials its end implies.
//!
//! Pure functions over what was observed: the main process's wait status, which
//! limit the supervisor enforced itself (timeout, output cap), and the cgroup's
//! event counters. A tool killed by SIGKILL while the cgroup counted an OOM kill
//! died of the memory limit; one that failed after `fork` hit `pids.max` died of
//! the pids limit; SIGSYS under a kill-action filter is seccomp. This module never
//! touches the kernel.

use crate::policy::{Limits, SeccompAction, Sourced};
use crate::report::{Denial, DenialLayer, ExitCause};
use crate::sys::process::ExitStatus;

/// Limits the supervisor itself enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforced {
    /// Wall-clock limit.
    Timeout,
    /// Output cap.
    OutputCap,
    /// The supervisor was told to stop (signal, daemon shutdown).
    Shutdown,
}

/// cgroup event counters at the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// OOM kills.
    pub oom_kills: u64,
    /// Refused forks at `pids.max`.
    pub pids_max: u64,
}

/// The run's exit cause.
pub fn cause(
    status: ExitStatus,
    enforced: Option<Enforced>,
    events: Events,
    action: SeccompAction,
) -> ExitCause {
    match enforced {
        Some(Enforced::Timeout) => return ExitCause::Timeout,
        Some(Enforced::OutputCap) => return ExitCause::OutputCap,
        Some(Enforced::Shutdown) => return ExitCause::Shutdown,
        None => {}
    }
    let failed = !matches!(status, ExitStatus::Exited(0));
    match status {
        ExitStatus::Signaled(libc::SIGKILL) if events.oom_kills > 0 => ExitCause::Oom,
        ExitStatus::Signaled(libc::SIGSYS) if action == SeccompAction::Kill => {
            ExitCause::SeccompKill
        }
        _ if failed && events.oom_kills > 0 => ExitCause::Oom,
        _ if failed && events.pids_max > 0 => ExitCause::Pids,
        ExitStatus::Signaled(_) => ExitCause::Signaled,
        ExitStatus::Exited(_) => ExitCause::Exited,
    }
}

fn at<T>(s: &Option<Sourced<T>>) -> String {
    s.as_ref()
        .map(|s| format!(" ({})", s.origin))
        .unwrap_or_default()
}

/// Denials implied by the end of the run (cgroup limits hit, supervisor limits).
pub fn denials(
    pid: i32,
    enforced: Option<Enforced>,
    events: Events,
    limits: &Limits,
    output_total: u64,
) -> Vec<Denial> {
    let mut out = Vec::new();
    if events.oom_kills > 0 {
        let limit = limits.memory_bytes.as_ref().map(|m| m.value);
        out.push(Denial {
            layer: DenialLayer::Cgroup,
            pid: None,
            object: "memory".into(),
            access: None,
            detail: format!(
                "{} process(es) OOM-killed at the memory limit of {} bytes",
                events.oom_kills,
                limit.map_or("?".into(), |l| l.to_string())
            ),
            hint: format!("raise limits.memory{}", at(&limits.memory_bytes)),
        });
    }
    if events.pids_max > 0 {
        out.push(Denial {
            layer: DenialLayer::Cgroup,
            pid: None,
            object: "pids".into(),
            access: Some("fork".into()),
            detail: format!(
                "fork refused {} time(s) at the pids limit of {}",
                events.pids_max,
                limits
                    .pids
                    .as_ref()
                    .map_or("?".into(), |p| p.value.to_string())
            ),
            hint: format!("raise limits.pids{}", at(&limits.pids)),
        });
    }
    match enforced {
        Some(Enforced::Timeout) => out.push(Denial {
            layer: DenialLayer::Policy,
            pid: Some(pid),
            object: "wall_time".into(),
            access: None,
            detail: format!(
                "killed after the wall-clock limit of {} ms",
                limits.wall_time.as_ref().map_or(0, |w| w.value.as_millis())
            ),
            hint: format!("raise limits.wall_time{}", at(&limits.wall_time)),
        }),
        Some(Enforced::OutputCap) => out.push(Denial {
            layer: DenialLayer::Policy,
            pid: Some(pid),
            object: "output".into(),
            access: None,
            detail: format!(
                "killed after writing {output_total} bytes; the output cap is {} bytes",
                limits.output_bytes.as_ref().map_or(0, |o| o.value)
            ),
            hint: format!("raise limits.output{}", at(&limits.output_bytes)),
        }),
        Some(Enforced::Shutdown) | None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::fixtures::src;

    const EPERM: SeccompAction = SeccompAction::Errno(libc::EPERM);

    #[test]
    fn enforced_limits_win() {
        let e = Events {
            oom_kills: 1,
            pids_max: 1,
        };
        let s = ExitStatus::Signaled(libc::SIGKILL);
        assert_eq!(
            cause(s, Some(Enforced::Timeout), e, EPERM),
            ExitCause::Timeout
        );
        assert_eq!(
            cause(s, Some(Enforced::OutputCap), e, EPERM),
            ExitCause::OutputCap
        );
    }

    #[test]
    fn cgroup_events_explain_failures_only() {
        let oom = Events {
            oom_kills: 1,
            pids_max: 0,
        };
        let pids = Events {
            oom_kills: 0,
            pids_max: 3,
        };
        let none = Events::default();
        let killed = ExitStatus::Signaled(libc::SIGKILL);
        assert_eq!(cause(killed, None, oom, EPERM), ExitCause::Oom);
        assert_eq!(
            cause(ExitStatus::Exited(1), None, oom, EPERM),
            ExitCause::Oom
        );
        assert_eq!(
            cause(ExitStatus::Exited(1), None, pids, EPERM),
            ExitCause::Pids
        );
        assert_eq!(
            cause(ExitStatus::Exited(0), None, pids, EPERM),
            ExitCause::Exited
        );
        assert_eq!(cause(killed, None, none, EPERM), ExitCause::Signaled);
        assert_eq!(
            cause(ExitStatus::Exited(3), None, none, EPERM),
            ExitCause::Exited
        );
    }

    #[test]
    fn sigsys_is_seccomp_only_under_the_kill_action() {
        let sys = ExitStatus::Signaled(libc::SIGSYS);
        let e = Events::default();
        assert_eq!(
            cause(sys, None, e, SeccompAction::Kill),
            ExitCause::SeccompKill
        );
        assert_eq!(cause(sys, None, e, EPERM), ExitCause::Signaled);
    }

    #[test]
    fn denials_name_the_limit_and_where_it_was_set() {
        let limits = Limits {
            memory_bytes: Some(src(1 << 20)),
            pids: Some(src(8)),
            output_bytes: Some(src(100)),
            ..Limits::default()
        };
        let e = Events {
            oom_kills: 2,
            pids_max: 1,
        };
        let d = denials(42, Some(Enforced::OutputCap), e, &limits, 150);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].layer, DenialLayer::Cgroup);
        assert!(d[0].hint.contains("limits.memory") && d[0].hint.contains("test.yaml:1:1"));
        assert!(d[1].detail.contains("pids limit of 8"));
        assert_eq!(d[2].layer, DenialLayer::Policy);
        assert!(d[2].detail.contains("150 bytes"));
        assert!(denials(1, None, Events::default(), &limits, 0).is_empty());
    }
}
