//! Plain data shared by the run pipeline, the daemon and the audit trail.
//!
//! `supervise` fills these in as a run progresses; `audit` embeds them in records;
//! the CLI prints them. They carry no behaviour and never hold a secret: argv is
//! stored after redaction, redaction receipts carry counts and keyed fingerprints.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Who asked for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// How the request arrived: `cli` (`enforcecore run`) or `socket` (daemon).
    pub via: String,
    /// Peer (or invoking) uid.
    pub uid: u32,
    /// Peer (or invoking) gid.
    pub gid: u32,
    /// Peer pid, when known.
    pub pid: Option<i32>,
    /// The policy agent the peer matched (daemon only).
    pub agent: Option<String>,
}

/// What the Landlock layer actually enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockReport {
    /// ABI of the running kernel.
    pub abi: u8,
    /// `full` when every requested right is enforced; runs never start otherwise.
    pub status: String,
    /// Number of path rules installed.
    pub fs_rules: usize,
    /// Path rules skipped because an optional path was missing.
    pub skipped_optional: Vec<PathBuf>,
    /// TCP port rules installed (connect + bind).
    pub net_rules: usize,
    /// Scopes enforced (`signal`, `abstract_unix_socket`).
    pub scopes: Vec<String>,
    /// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` was set.
    pub log_new_exec: bool,
}

/// What the seccomp layer actually enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompReport {
    /// `deny` or `allow`.
    pub mode: String,
    /// `errno:EPERM`, `kill`, ...
    pub action: String,
    /// SHA-256 (hex) of the installed BPF program.
    pub filter_sha256: String,
    /// Number of BPF instructions.
    pub instructions: usize,
    /// Syscalls explicitly listed by the filter.
    pub syscalls: usize,
    /// Socket families allowed.
    pub socket_families: Vec<String>,
    /// Filter flags (`log`, `tsync`, ...).
    pub flags: Vec<String>,
}

/// The run's cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupReport {
    /// `v1` or `v2`.
    pub version: String,
    /// The run's cgroup directories (one per v1 controller, one for v2).
    pub paths: Vec<PathBuf>,
    /// Limits written: memory bytes, pids, cpu millis.
    pub memory_bytes: Option<u64>,
    /// pids.max.
    pub pids: Option<u64>,
    /// CPU quota, thousandths of a CPU.
    pub cpu_millis: Option<u32>,
}

/// Everything the sandbox enforced for one run, recorded in `run-started`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// uid the tool ran as.
    pub uid: u32,
    /// gid the tool ran as.
    pub gid: u32,
    /// All capability sets emptied (effective, permitted, inheritable, ambient, bounding).
    pub caps_dropped: bool,
    /// `no_new_privs` set.
    pub no_new_privs: bool,
    /// Landlock.
    pub landlock: LandlockReport,
    /// seccomp.
    pub seccomp: SeccompReport,
    /// cgroup.
    pub cgroup: CgroupReport,
    /// rlimits set, as `(name, value)`.
    pub rlimits: Vec<(String, u64)>,
    /// Wall-clock limit in milliseconds.
    pub wall_time_ms: Option<u64>,
    /// Output cap in bytes.
    pub output_bytes: Option<u64>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Environment variable names passed to the tool (never values).
    pub env: Vec<String>,
    /// Kernel denial capture: `enabled-by-enforcecore`, `already-enabled`,
    /// `unavailable: <why>`, `off`.
    pub kernel_audit: String,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCause {
    /// The tool exited on its own.
    Exited,
    /// The tool was killed by a signal it did not get from us.
    Signaled,
    /// Wall-clock limit: we killed the tree.
    Timeout,
    /// The cgroup memory limit: the kernel OOM-killed it.
    Oom,
    /// The cgroup pids limit was hit (fork failed) and the tool died of it.
    Pids,
    /// Output cap: we stopped forwarding and killed the tree.
    OutputCap,
    /// seccomp killed the process (SIGSYS).
    SeccompKill,
    /// The supervisor was stopped and killed the tree.
    Shutdown,
    /// `execve` failed after the sandbox was applied (run-started was recorded).
    ExecFailed,
    /// The sandbox could not be applied in the child after run-started was
    /// recorded; the tool never ran.
    SetupFailed,
}

/// How a run ended, recorded in `run-exited` and printed by `run --verbose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    /// Exit code, when the tool exited.
    pub code: Option<i32>,
    /// Terminating signal, when it was killed.
    pub signal: Option<i32>,
    /// Why it ended.
    pub cause: ExitCause,
    /// Wall-clock duration, milliseconds.
    pub duration_ms: u64,
    /// CPU time of the whole tree (from the cgroup), milliseconds.
    pub cpu_ms: Option<u64>,
    /// Peak memory of the whole tree (from the cgroup), bytes.
    pub peak_memory_bytes: Option<u64>,
    /// Bytes the tool wrote to stdout and stderr (before redaction).
    pub output_bytes: u64,
    /// Denials attributed to the run.
    pub denials: u64,
}

impl ExitReport {
    /// The end of a run whose tool never ran (`cause` says why), `ms` after it
    /// started.
    pub fn never_ran(cause: ExitCause, ms: u64) -> ExitReport {
        ExitReport {
            code: None,
            signal: None,
            cause,
            duration_ms: ms,
            cpu_ms: None,
            peak_memory_bytes: None,
            output_bytes: 0,
            denials: 0,
        }
    }
}

/// The layer that refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenialLayer {
    /// Landlock filesystem rule.
    LandlockFs,
    /// Landlock TCP port rule.
    LandlockNet,
    /// Landlock IPC scope.
    LandlockScope,
    /// seccomp filter.
    Seccomp,
    /// cgroup limit.
    Cgroup,
    /// Policy decision in the supervisor (tool, argument, rate limit, caps).
    Policy,
}

impl DenialLayer {
    /// The layer's name as recorded (`landlock-fs`, `seccomp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DenialLayer::LandlockFs => "landlock-fs",
            DenialLayer::LandlockNet => "landlock-net",
            DenialLayer::LandlockScope => "landlock-scope",
            DenialLayer::Seccomp => "seccomp",
            DenialLayer::Cgroup => "cgroup",
            DenialLayer::Policy => "policy",
        }
    }
}

/// One denial, attributed to a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// Which layer refused.
    pub layer: DenialLayer,
    /// Process that was refused, when known.
    pub pid: Option<i32>,
    /// What was refused: a path, `tcp:443`, a syscall name, a limit name, a tool.
    pub object: String,
    /// Access asked (`fs.write_file`, `connect`, `x86_64`, ...), when known.
    pub access: Option<String>,
    /// Free-form detail from the source record.
    pub detail: String,
    /// One line naming the policy field that would allow it.
    pub hint: String,
}

/// What the redactor did to one stream, recorded as a `redaction` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionReceipt {
    /// `stdin`, `stdout` or `stderr`.
    pub stream: String,
    /// Detector name (`email`, `aws_access_key`, custom names).
    pub detector: String,
    /// Number of values replaced.
    pub count: u64,
    /// Keyed fingerprints (HMAC-SHA-256 prefix) of the distinct values, so that
    /// responders can correlate a secret across runs without seeing it. Bounded.
    pub fingerprints: Vec<String>,
}
