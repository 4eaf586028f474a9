//! Per-run cgroups, on cgroup v1 and v2, detected at runtime.
//!
//! Owns everything the supervisor does with cgroups: detecting the host's layout
//! ([`Hierarchy::detect`]: pure v2, pure v1, or hybrid like the development
//! machines), creating one cgroup per run with its memory, pids and CPU limits
//! ([`Hierarchy::create_run`], or [`CgroupPool`] to keep `mkdir` off the critical
//! path), the fds a forked child writes `b"0"` to in order to join
//! ([`RunCgroup::join_fds`]), killing the whole process tree, reading OOM kills,
//! pids-limit hits, CPU time and peak memory, and removing the cgroup afterwards.
//!
//! It must never silently degrade: a limit that was asked for and cannot be written
//! is an error naming the controller ([`CgroupError::ControllerMissing`]), and the
//! run fails closed. It must never adopt a cgroup it did not create, and it must
//! never place a run outside the supervisor's own accounting except in the one
//! documented case below.
//!
//! # Where runs go
//!
//! - **v1** (and the v1 side of a hybrid host): in every mounted hierarchy that
//!   carries one of `memory`, `pids`, `cpu`, `cpuacct`, `freezer`, the run gets
//!   `<supervisor's own cgroup>/enforcecore/<run>`. Runs are nested under the
//!   supervisor, so they stay inside whatever limits the supervisor itself is under.
//! - **v2, delegated** (systemd `Delegate=yes`, marked by the `trusted.delegate` /
//!   `user.delegate` xattr): the supervisor moves itself into the leaf
//!   `<delegated>/supervisor` (the no-internal-processes rule forbids enabling
//!   controllers in a cgroup that holds processes), enables `memory pids cpu` in
//!   `<delegated>/cgroup.subtree_control`, and runs go to `<delegated>/runs/<run>`.
//!   With `DelegateSubgroup=` the supervisor already starts in such a leaf.
//! - **v2, not delegated, as root**: a dedicated `enforcecore/` subtree at the top
//!   of the hierarchy, runs in `enforcecore/<run>`. This is the one case where runs
//!   are outside the supervisor's own cgroup: it is a choice (there is nowhere else
//!   the kernel lets us put controllers), shown by `enforcecore doctor`.
//! - A hybrid host uses its v1 controllers (the v2 side usually has none), unless
//!   `memory` and `pids` are available on the v2 side and not on v1 (they were
//!   bound to the unified hierarchy); [`Hierarchy::prefer`] chooses explicitly.
//!
//! # Killing the tree
//!
//! v2 writes `1` to `cgroup.kill`. v1 freezes the freezer cgroup (nothing can fork
//! while frozen), SIGKILLs every pid in it, thaws it so the signals are delivered,
//! and repeats until `cgroup.procs` is empty.
//!
//! # Use from the spawn path
//!
//! 1. [`Hierarchy::detect`] once per supervisor (cheap to clone and share).
//! 2. Per run, in the parent: [`Hierarchy::create_run`] — or
//!    [`Hierarchy::spawn_create`] to overlap it with the rest of the set-up, or
//!    [`CgroupPool::create_run`] in the daemon to take a pre-created cgroup.
//! 3. Between fork and exec, the child writes `b"0"` to every fd of
//!    [`RunCgroup::join_fds`] (one `write(2)` each, nothing else); a failed write
//!    is a failed run (exit 125), never an unlimited one.
//! 4. While it runs: [`RunCgroup::pids`] attributes denials; on timeout or output
//!    cap, [`RunCgroup::kill_all`].
//! 5. After the tool's exit: [`RunCgroup::events`] (an `oom_kills` > 0 means
//!    cause `oom`, `pids_max` > 0 explains a tool that died of failed forks) and
//!    [`RunCgroup::stats`] (CPU time and peak memory of the whole tree), then
//!    [`RunCgroup::remove`] (or [`CgroupPool::retire`], which removes it off the
//!    critical path). Counters start at zero: every run's cgroup is fresh.
//!
//! Shared `enforcecore/` parents are removed when their last run goes; a
//! delegated `runs/` stays for the service's lifetime.

mod control;
mod describe;
mod detect;
mod error;
mod pool;
mod run;
mod v1;
mod v2;

#[cfg(test)]
mod fake_tree;

use std::path::{Path, PathBuf};

pub use describe::{CgroupDescription, ControllerStatus};
pub use error::CgroupError;
pub use pool::CgroupPool;
pub use run::{CgroupEvents, CgroupStats, RunCgroup};

use crate::policy::Limits;

/// The cgroup version a [`Hierarchy`] creates runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// The resource limits of one run. `None` means "no limit of this kind".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory limit in bytes (v1 `memory.limit_in_bytes` + memsw; v2 `memory.max`
    /// with `memory.swap.max` 0). The kernel OOM-kills above it.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes and threads (`pids.max`); fork fails with EAGAIN.
    pub pids: Option<u64>,
    /// CPU quota in thousandths of a CPU (1000 = one full CPU).
    pub cpu_millis: Option<u32>,
}

impl CgroupLimits {
    /// The cgroup part of a policy's resolved limits.
    pub fn from_policy(limits: &Limits) -> CgroupLimits {
        CgroupLimits {
            memory_bytes: limits.memory_bytes.as_ref().map(|s| s.value),
            pids: limits.pids.as_ref().map(|s| s.value),
            cpu_millis: limits.cpu_millis.as_ref().map(|s| s.value),
        }
    }

    /// Reject values the kernel cannot express before anything is created.
    fn validate(&self) -> Result<(), CgroupError> {
        let invalid = |limit, reason: &str| {
            Err(CgroupError::InvalidLimit {
                limit,
                reason: reason.to_owned(),
            })
        };
        match self.memory_bytes {
            Some(b) if b < 4096 => {
                return invalid("memory", "must be at least one page (4096 bytes)");
            }
            Some(b) if b > i64::MAX as u64 => {
                return invalid("memory", "larger than the kernel accepts");
            }
            _ => {}
        }
        if self.pids == Some(0) {
            return invalid("pids", "must be at least 1 (the tool itself)");
        }
        if self.pids.is_some_and(|p| p > i32::MAX as u64) {
            return invalid("pids", "larger than the kernel accepts");
        }
        if self.cpu_millis == Some(0) {
            return invalid("cpu", "must be at least 1 (a thousandth of a CPU)");
        }
        Ok(())
    }

    /// The CFS bandwidth `(quota, period)` in microseconds for `cpu_millis`.
    ///
    /// The period is 100 ms; for quotas below the kernel's 1 ms minimum it grows
    /// to 1 s so that small quotas stay exact.
    pub(crate) fn cpu_quota_period(millis: u32) -> (u64, u64) {
        let quota = u64::from(millis) * 100;
        if quota >= 1000 {
            (quota, 100_000)
        } else {
            (u64::from(millis) * 1000, 1_000_000)
        }
    }
}

/// The layout family of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified hierarchy.
    V2,
    /// v1 controllers plus a unified hierarchy.
    Hybrid,
}

impl Layout {
    /// `v1`, `v2` or `hybrid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
            Layout::Hybrid => "hybrid",
        }
    }
}

/// The host's cgroup layout and where runs go. Detected once, cheap to clone.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    layout: Layout,
    /// The backend runs are created in.
    active: Backend,
    /// The other version's hierarchy on a hybrid host (for `prefer` and `describe`).
    inactive: Option<Backend>,
}

/// One version's view of the host.
#[derive(Clone, Debug)]
enum Backend {
    V1(v1::V1Hierarchy),
    V2(v2::V2Hierarchy),
}

impl Backend {
    fn version(&self) -> CgroupVersion {
        match self {
            Backend::V1(_) => CgroupVersion::V1,
            Backend::V2(_) => CgroupVersion::V2,
        }
    }
}

impl Hierarchy {
    /// Detect from the real `/proc/self/{cgroup,mountinfo}` and `/sys/fs/cgroup`.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        Hierarchy::detect_at(Path::new("/proc"), Path::new(detect::CANONICAL_ROOT))
    }

    /// Same, with injected roots: `proc_root/self/{mountinfo,cgroup}` are read and
    /// mount points under `/sys/fs/cgroup` are looked up under `sys_fs_cgroup`.
    pub fn detect_at(proc_root: &Path, sys_fs_cgroup: &Path) -> Result<Hierarchy, CgroupError> {
        let found = detect::detect(proc_root, sys_fs_cgroup)?;
        let v1 = v1::V1Hierarchy::new(&found.v1).map(Backend::V1);
        let v2 = match &found.v2 {
            Some(m) => Some(Backend::V2(v2::V2Hierarchy::new(m)?)),
            None => None,
        };
        // A hybrid host's controllers usually live on the v1 side; when memory
        // and pids were bound to the unified hierarchy instead, runs go there.
        let (layout, active, inactive) = match (v1, v2) {
            (Some(Backend::V1(a)), Some(Backend::V2(b))) if b.has_moved_controllers(&a) => {
                (Layout::Hybrid, Backend::V2(b), Some(Backend::V1(a)))
            }
            (Some(a), Some(b)) => (Layout::Hybrid, a, Some(b)),
            (Some(a), None) => (Layout::V1, a, None),
            (None, Some(b)) => (Layout::V2, b, None),
            (None, None) => return Err(CgroupError::NoHierarchy),
        };
        Ok(Hierarchy {
            layout,
            active,
            inactive,
        })
    }

    /// Use `version` for runs (on a hybrid host, where both are mounted).
    pub fn prefer(mut self, version: CgroupVersion) -> Result<Hierarchy, CgroupError> {
        if self.active.version() == version {
            return Ok(self);
        }
        match self.inactive.take() {
            Some(other) if other.version() == version => {
                self.inactive = Some(std::mem::replace(&mut self.active, other));
                Ok(self)
            }
            _ => Err(CgroupError::VersionUnavailable {
                version: version.as_str(),
                layout: self.layout.as_str(),
            }),
        }
    }

    /// The version runs are created in.
    pub fn version(&self) -> CgroupVersion {
        self.active.version()
    }

    /// The host's layout family.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Human/JSON description for `enforcecore doctor`: layout, controllers, where
    /// runs are created, what is missing and what that means for policies.
    pub fn describe(&self) -> CgroupDescription {
        match (&self.active, &self.inactive) {
            (Backend::V1(h), Some(Backend::V2(u))) => describe::for_v1(self.layout, h, Some(u)),
            (Backend::V1(h), _) => describe::for_v1(self.layout, h, None),
            (Backend::V2(h), _) => describe::for_v2(self.layout, h),
        }
    }

    /// Create the run's cgroup(s) and write the limits. Fails (never silently
    /// degrades) when a limit was asked for and its controller is missing; on any
    /// failure nothing is left behind.
    pub fn create_run(
        &self,
        run_id: &str,
        limits: &CgroupLimits,
    ) -> Result<RunCgroup, CgroupError> {
        validate_run_id(run_id)?;
        self.check_limits(limits)?;
        let run = self.create_unlimited(run_id)?;
        run.apply(limits)
    }

    /// Fail early, before anything is created, when a limit is impossible or its
    /// controller is missing.
    pub(crate) fn check_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        limits.validate()?;
        match &self.active {
            Backend::V1(h) => h.check_limits(limits),
            Backend::V2(h) => h.check_limits(limits),
        }
    }

    /// Start [`Hierarchy::create_run`] on a helper thread, so that the `mkdir`s
    /// overlap with the rest of a run's set-up (policy, Landlock and seccomp
    /// preparation); [`PendingRun::wait`] collects the result before the fork.
    pub fn spawn_create(&self, run_id: &str, limits: &CgroupLimits) -> PendingRun {
        let (h, id, l) = (self.clone(), run_id.to_owned(), *limits);
        let handle = std::thread::Builder::new()
            .name("enforcecore-cgroup-create".into())
            .spawn(move || h.create_run(&id, &l));
        PendingRun { handle }
    }

    /// The directories runs are created in (one per v1 hierarchy).
    pub fn runs_parents(&self) -> Vec<PathBuf> {
        match &self.active {
            Backend::V1(h) => h.mounts.iter().map(v1::V1Hierarchy::runs_parent).collect(),
            Backend::V2(h) => vec![h.runs_parent.clone()],
        }
    }

    /// Create the directories (no limits yet) under the name `dir_name`.
    pub(crate) fn create_unlimited(&self, dir_name: &str) -> Result<RunCgroup, CgroupError> {
        match &self.active {
            Backend::V1(h) => h.create(dir_name),
            Backend::V2(h) => h.create(dir_name),
        }
    }
}

/// A run cgroup being created on a helper thread ([`Hierarchy::spawn_create`]).
#[derive(Debug)]
pub struct PendingRun {
    handle: std::io::Result<std::thread::JoinHandle<Result<RunCgroup, CgroupError>>>,
}

impl PendingRun {
    /// Wait for the cgroup. If the thread could not start or died, the error says so.
    pub fn wait(self) -> Result<RunCgroup, CgroupError> {
        let handle = self
            .handle
            .map_err(|source| CgroupError::SpawnThread { source })?;
        handle.join().unwrap_or_else(|_| {
            Err(CgroupError::SpawnThread {
                source: std::io::Error::other("the cgroup creation thread panicked"),
            })
        })
    }
}

/// A run id becomes a directory name: keep it to a safe, unambiguous alphabet.
fn validate_run_id(run_id: &str) -> Result<(), CgroupError> {
    let invalid = |reason| {
        Err(CgroupError::InvalidRunId {
            run_id: run_id.to_owned(),
            reason,
        })
    };
    if run_id.is_empty() || run_id.len() > 128 {
        return invalid("must be 1 to 128 characters");
    }
    if !run_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return invalid("only ASCII letters, digits, `-` and `_` are allowed");
    }
    if !run_id.as_bytes()[0].is_ascii_alphanumeric() {
        return invalid("must start with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_restricted_to_a_safe_alphabet() {
        for ok in ["a", "run-1", "0f3a_b"] {
            validate_run_id(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-x",
            "a b",
            "a.b",
            "cgroup.procs",
            &"x".repeat(129),
        ] {
            assert!(validate_run_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hybrid_with_memory_and_pids_bound_to_v2_runs_there() {
        let fake = fake_tree::FakeTree::build(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "3:cpu,cpuacct:/\n0::/\n",
            false,
        );
        fake.write("sys/unified/cgroup.controllers", "memory pids\n");
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        assert_eq!(
            (h.layout(), h.version()),
            (Layout::Hybrid, CgroupVersion::V2)
        );
        let h = h.prefer(CgroupVersion::V1).unwrap();
        assert_eq!(h.version(), CgroupVersion::V1);
    }

    #[test]
    fn detection_errors_name_the_file_and_line() {
        let fake = fake_tree::FakeTree::build("", "0::/\n", false);
        fake.write("proc/self/cgroup", "0::/\ngarbage\n");
        let err = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("proc/self/cgroup:2: expected `id:controllers:path`"),
            "{err}"
        );
        let err = Hierarchy::detect_at(&fake.path("nowhere"), &fake.sys_root()).unwrap_err();
        assert!(err.to_string().contains("is /proc mounted?"), "{err}");
        fake.write("proc/self/cgroup", "0::/\n");
        let err = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap_err();
        assert!(matches!(err, CgroupError::NoHierarchy), "{err}");
    }

    #[test]
    fn cpu_quota_keeps_small_quotas_exact() {
        assert_eq!(CgroupLimits::cpu_quota_period(1000), (100_000, 100_000));
        assert_eq!(CgroupLimits::cpu_quota_period(250), (25_000, 100_000));
        assert_eq!(CgroupLimits::cpu_quota_period(10), (1_000, 100_000));
        assert_eq!(CgroupLimits::cpu_quota_period(5), (5_000, 1_000_000));
        assert_eq!(CgroupLimits::cpu_quota_period(2500), (250_000, 100_000));
    }

    #[test]
    fn impossible_limits_are_rejected() {
        let l = |m, p, c| CgroupLimits {
            memory_bytes: m,
            pids: p,
            cpu_millis: c,
        };
        assert!(l(Some(0), None, None).validate().is_err());
        assert!(l(None, Some(0), None).validate().is_err());
        assert!(l(None, None, Some(0)).validate().is_err());
        assert!(l(Some(u64::MAX), None, None).validate().is_err());
        l(Some(1 << 20), Some(1), Some(1)).validate().unwrap();
        l(None, None, None).validate().unwrap();
    }
}
