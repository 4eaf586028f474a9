//! One run, from spawn to exit report: stdio pumps, denial feed, wait, cleanup.
//!
//! [`execute`] is the path `enforcecore run` and the daemon share. It is async and
//! re-entrant: the daemon calls it concurrently for many runs on one runtime. The
//! steps:
//!
//! 1. the run's cgroup is created on a blocking thread *while* the sandbox plan is
//!    built ([`crate::sandbox::Plan`]: identity, command (127), seccomp, Landlock,
//!    run directory);
//! 2. the hold on kernel audit per `kernel_audit` (taken on a blocking thread
//!    during step 1, or earlier by the caller: [`denials::AuditHold`]) says
//!    what denial capture the run has; the stdio pipes are created,
//!    [`Observer::started`] is set going — the audit trail makes run-started
//!    durable before the point of no return — and the child is spawned; it
//!    applies the sandbox and reports ready ([`spawn`]);
//! 3. meanwhile the run registers with the process-wide denial feed
//!    ([`denials::Feed`]) and both the record and the child are awaited; an
//!    observer error aborts the run (exit 125). A child that fails to apply the
//!    sandbox (or cannot be created) after run-started was recorded ends the run
//!    with `setup-failed` (exit 125; the tool never ran);
//! 4. the child execs; the pumps and the seccomp listener start ([`stdio`],
//!    [`denials::notify`]);
//! 5. the supervisor waits for the main process, the wall-clock deadline (exit
//!    124) or the output cap, whichever comes first, reporting denials to the
//!    observer as they arrive;
//! 6. the whole tree is killed (cgroup kill; the process group without a cgroup),
//!    the output drained, cgroup events and stats read, the exit cause decided
//!    ([`outcome`]); the denial feed settles (the seccomp listener ends, the
//!    kernel's last records are attributed — [`denials`]), the remaining denials
//!    and [`Observer::exited`] (with the run's denial count) are reported;
//! 7. the cgroup and (unless kept) the run directory are removed and the hold on
//!    kernel audit is given back, while the exit records are made durable.
//!
//! Admission (tool and argument rules, exit 126) is the separate, earlier step
//! [`admit::admit`]. This module must never run a tool without every layer in
//! place, and never leave a process, cgroup or run directory behind.
//!
//! # Using it (the daemon, the audit trail)
//!
//! 1. `admit(&policy, tool, &argv)` → the effective `&Sandbox`, or a [`Refusal`]
//!    (exit 126; its `denial` is the audit record).
//! 2. Build a [`RunRequest`]: a fresh [`new_run_id`], the caller, the caller's
//!    environment, the client's stdio as owned fds ([`Input`]/[`Output`] — never
//!    put into non-blocking mode), per-stream [`Filters`] (redaction), a
//!    [`Cgroups::Pool`] shared by all runs, and a `shutdown` future (SIGTERM).
//! 3. `execute(req, &observer).await` on a runtime *worker* thread (never inside
//!    `spawn_blocking`: the tool's parent-death signal is tied to the spawning
//!    thread). The future is `Send` and may be dropped at any time: the tree is
//!    killed and everything removed.
//! 4. The [`Observer`] is the audit hook: `started` must make run-started durable
//!    before returning; `denial` (or `denials`, a batch), `lost` and `exited`
//!    follow. Set `RunRequest::kernel_audit` from the policy's
//!    `denials.kernel_audit`; every run registers with the one process-wide
//!    [`denials::Feed`] by itself. The exit code is
//!    [`SuperviseError::exit_code`] on error, else `exit::from_wait` of the
//!    [`ExitReport`] (124 when its cause is `timeout`).

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::policy::{Policy, Sandbox};
use crate::report::{Caller, Denial, EnforcementReport, ExitReport, RedactionReceipt};
use crate::sandbox::SandboxError;
use crate::sandbox::cgroup::CgroupError;
use crate::sys::child::Step;

pub mod admit;
pub mod cgroup;
pub mod denials;
pub mod outcome;
pub mod record;
mod reported;
mod run;
pub mod spawn;
pub mod stdio;

pub use admit::{Refusal, admit};
pub use cgroup::{Cgroups, Early};
pub use record::{RunIdentity, TrailObserver};
pub use run::execute;
pub use stdio::{Filters, Input, Output, Passthrough, Streams};

/// How long the child may take to apply its sandbox before it is killed.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the output may take to end after the main process exited, before the
/// tree is killed to end it (descendants holding stdout/stderr).
pub const OUTPUT_SETTLE: Duration = Duration::from_millis(2);

/// After the tree is killed, how long the output pumps may take to drain.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Denials of one run recorded one by one, in all (and [`reported::PER_KIND`] of
/// each kind). A tool can be refused as fast as it can make syscalls; past
/// these bounds further denials are only counted by layer, and the run ends
/// with one `denials-lost` record (source `cap`) giving the counts — the trail
/// and the supervisor's memory stay bounded.
pub const DENIALS_PER_RUN: usize = 1000;

/// Error from an [`Observer`] hook.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

/// Hooks through which a run reports to the audit trail (or anything else).
#[async_trait::async_trait]
pub trait Observer: Send + Sync {
    /// The sandbox is in place and the tool is about to be exec'd. Awaited before
    /// the point of no return; an error aborts the run (exit 125).
    async fn started(&self, enforcement: &EnforcementReport) -> Result<(), ObserverError>;
    /// A denial attributed to the run.
    async fn denial(&self, denial: Denial) -> Result<(), ObserverError>;
    /// What the redaction filters replaced, per stream and detector; called once,
    /// after the output has drained and before [`Observer::exited`].
    async fn redacted(&self, receipts: &[RedactionReceipt]) -> Result<(), ObserverError> {
        let _ = receipts;
        Ok(())
    }
    /// The run ended.
    async fn exited(&self, exit: &ExitReport) -> Result<(), ObserverError>;
    /// Several denials that arrived together, in order. The default reports
    /// them one by one; the audit trail submits them as one batch.
    async fn denials(&self, batch: &[Denial]) -> Result<(), ObserverError> {
        for d in batch {
            self.denial(d.clone()).await?;
        }
        Ok(())
    }
    /// The run ended before its tool started — before [`Observer::started`]
    /// was called: the command does not exist, or the sandbox could not be
    /// prepared. `code` is the exit code the caller gets.
    async fn not_started(&self, code: u8, error: &str) -> Result<(), ObserverError> {
        let _ = (code, error);
        Ok(())
    }
    /// Kernel denial records may have been lost while the run was live
    /// (netlink overflow, kernel backlog drops, a listener failure). Called
    /// before `exited`. The default logs a warning; the audit trail records it.
    async fn lost(&self, source: &str, detail: &str) -> Result<(), ObserverError> {
        tracing::warn!("denial records lost ({source}): {detail}");
        Ok(())
    }
}

/// An observer that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

#[async_trait::async_trait]
impl Observer for NoObserver {
    async fn started(&self, _: &EnforcementReport) -> Result<(), ObserverError> {
        Ok(())
    }
    async fn denial(&self, _: Denial) -> Result<(), ObserverError> {
        Ok(())
    }
    async fn exited(&self, _: &ExitReport) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// One request to run a command.
pub struct RunRequest<'a> {
    /// Run id ([`new_run_id`]); names the run directory and cgroup.
    pub run_id: String,
    /// The policy tool, when the request named one (for reports).
    pub tool: Option<String>,
    /// The command and its arguments.
    pub argv: Vec<OsString>,
    /// The effective sandbox (from [`admit()`]).
    pub sandbox: &'a Sandbox,
    /// Who asked.
    pub caller: Caller,
    /// The caller's environment; only the policy's allow-list passes.
    pub caller_env: Vec<(OsString, OsString)>,
    /// The caller's streams.
    pub stdio: Streams,
    /// Per-stream filters (redaction).
    pub filters: Filters,
    /// Where run directories go; `None` for the default
    /// ([`crate::sandbox::rundir::default_root`]).
    pub runs_root: Option<PathBuf>,
    /// Where the run's cgroup comes from (inline, a daemon's pool, or started early).
    pub cgroups: Cgroups,
    /// Completes when the supervisor must stop: the tree is killed and the run
    /// ends with cause `shutdown`.
    pub shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>,
    /// Kernel denial capture: the policy's `denials.kernel_audit`
    /// (`mode.into()`), or a hold started early ([`denials::AuditHold::start`]).
    pub kernel_audit: denials::AuditHold,
}

impl<'a> RunRequest<'a> {
    /// A request under `policy`'s default sandbox with nothing attached: no
    /// caller streams (the tool reads EOF, its output is discarded but counted),
    /// no redaction, the caller's environment empty, the cgroup created inline,
    /// no shutdown signal. Override fields with struct-update syntax.
    pub fn detached(run_id: String, policy: &'a Policy, argv: Vec<OsString>) -> RunRequest<'a> {
        RunRequest {
            run_id,
            tool: None,
            argv,
            sandbox: &policy.sandbox,
            caller: Caller::default(),
            caller_env: Vec::new(),
            stdio: Streams {
                stdin: Input::Null,
                stdout: Output::Null,
                stderr: Output::Null,
            },
            filters: Filters::passthrough(),
            runs_root: None,
            cgroups: Cgroups::Create,
            shutdown: None,
            kernel_audit: policy.denials.kernel_audit.value.into(),
        }
    }
}

/// What a finished run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// What the sandbox enforced.
    pub enforcement: EnforcementReport,
    /// How the run ended.
    pub exit: ExitReport,
    /// Denials reported to the observer.
    pub denials: Vec<Denial>,
    /// What redaction replaced (reported to the observer).
    pub receipts: Vec<RedactionReceipt>,
    /// An observer hook failed after the tool had started (the run's record is
    /// incomplete).
    pub observer_error: Option<String>,
}

/// Why a run failed before the tool ran (or could not be supervised).
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The sandbox could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The run's cgroup could not be created.
    #[error("creating the run's cgroup failed: {0}")]
    Cgroup(#[source] CgroupError),
    /// The host's cgroup layout could not be detected.
    #[error("detecting the host's cgroup layout failed: {0}")]
    CgroupDetect(String),
    /// Pipes or the pumps could not be set up.
    #[error("setting up the tool's stdio failed: {0}")]
    Stdio(#[source] std::io::Error),
    /// `clone3` failed.
    #[error("creating the tool process failed: {0}")]
    Spawn(#[source] std::io::Error),
    /// A step of the child's sandbox sequence failed.
    #[error("{} failed: {}", .step.describe(), errno_text(*.errno))]
    ChildStep {
        /// The step.
        step: Step,
        /// The errno.
        errno: i32,
    },
    /// The exec itself failed after the sandbox was applied.
    #[error("cannot execute `{command}`: {}{hint}", errno_text(*.errno))]
    Exec {
        /// The command.
        command: String,
        /// The errno.
        errno: i32,
        /// What it probably means.
        hint: &'static str,
    },
    /// The child died before it reported.
    #[error("the tool process died while its sandbox was being applied ({0})")]
    ChildVanished(String),
    /// The child did not finish its sandbox setup in time.
    #[error("the tool process did not finish applying its sandbox within {0:?}")]
    SetupTimeout(Duration),
    /// The `started` hook failed: the run was aborted before exec.
    #[error("recording the run's start failed, run aborted: {0}")]
    Observer(#[source] ObserverError),
    /// Waiting for the tool failed.
    #[error("waiting for the tool failed: {0}")]
    Wait(#[source] std::io::Error),
    /// A blocking helper task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// "Permission denied (EACCES)".
fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{} ({e:?})", e.desc())
}

impl SuperviseError {
    /// The `run`/`call` exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            SuperviseError::Sandbox(e) => e.exit_code(),
            SuperviseError::Exec { errno, .. } => match *errno {
                libc::ENOENT | libc::ENOTDIR => crate::exit::NOT_FOUND,
                libc::EACCES | libc::EPERM => crate::exit::REFUSED,
                _ => crate::exit::SUPERVISOR_FAILED,
            },
            _ => crate::exit::SUPERVISOR_FAILED,
        }
    }
}

/// A fresh random run id: 16 lowercase hex digits (64 bits from the kernel CSPRNG).
pub fn new_run_id() -> std::io::Result<String> {
    let mut b = [0u8; 8];
    crate::sys::process::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

/// Shared, cloneable handle on a finished-or-running run's elapsed time.
#[derive(Clone, Copy, Debug)]
struct Clock(Instant);

impl Clock {
    fn us(&self) -> u64 {
        self.0.elapsed().as_micros().min(u128::from(u64::MAX)) as u64
    }

    fn ms(&self) -> u64 {
        self.0.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }
}
