//! One run's cgroup: joining, killing, events, stats, removal.
//!
//! Owns the lifetime of the directories a run lives in. The version-specific file
//! names live in `v1.rs` and `v2.rs`; this file holds what both share. A
//! [`RunCgroup`] that is dropped without [`RunCgroup::remove`] still kills what is
//! left and removes its directories (best effort) so that a supervisor error path
//! never leaks a cgroup. It must never touch a cgroup it did not create.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::{CgroupError, CgroupLimits, CgroupVersion, control, v1, v2};
use crate::report::CgroupReport;

/// One directory of a run: one per v1 hierarchy, exactly one on v2.
#[derive(Debug)]
pub(crate) struct Member {
    /// The run's cgroup directory.
    pub dir: PathBuf,
    /// Controllers whose files exist in it (v1: the hierarchy's; v2: enabled by
    /// the parent's `cgroup.subtree_control`).
    pub controllers: BTreeSet<String>,
    /// A shared parent (`enforcecore/`) to remove once no run uses it.
    pub shared_parent: Option<PathBuf>,
}

impl Member {
    /// Whether `controller` is active in this directory.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.contains(controller)
    }
}

/// OOM kills and pids-limit hits so far. `None`: the controller is not in use
/// for this run, so the event cannot be observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CgroupEvents {
    /// Processes the kernel OOM-killed because of the memory limit
    /// (v1 `memory.oom_control` `oom_kill`; v2 `memory.events` `oom_kill`).
    pub oom_kills: Option<u64>,
    /// Forks refused because of the pids limit (`pids.events` `max`).
    pub pids_max: Option<u64>,
}

/// Resource usage of the whole process tree, grandchildren included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CgroupStats {
    /// CPU time, user + system (v1 `cpuacct.usage`; v2 `cpu.stat` `usage_usec`).
    pub cpu: Option<Duration>,
    /// Peak memory in bytes (v1 `memory.max_usage_in_bytes`; v2 `memory.peak`).
    pub peak_memory_bytes: Option<u64>,
}

/// The cgroup(s) of one run. Created by [`super::Hierarchy::create_run`] or
/// [`super::CgroupPool::create_run`].
#[derive(Debug)]
pub struct RunCgroup {
    pub(crate) version: CgroupVersion,
    pub(crate) members: Vec<Member>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) limits: CgroupLimits,
    pub(crate) removed: bool,
}

impl RunCgroup {
    /// A run with no directories yet; backends push members as they create them,
    /// so that a failure part-way drops the run and removes what exists.
    pub(crate) fn empty(version: CgroupVersion) -> RunCgroup {
        RunCgroup {
            version,
            members: Vec::new(),
            fds: Vec::new(),
            limits: CgroupLimits::default(),
            removed: false,
        }
    }

    /// Open every member's `cgroup.procs` for joining.
    pub(crate) fn open_fds(&mut self) -> Result<(), CgroupError> {
        for m in &self.members {
            let fd = control::open_procs(&m.dir)?;
            self.fds.push(fd);
        }
        Ok(())
    }

    /// Write `limits`. On failure the run is dropped, which removes it.
    pub(crate) fn apply(mut self, limits: &CgroupLimits) -> Result<RunCgroup, CgroupError> {
        match self.version {
            CgroupVersion::V1 => v1::apply_limits(&self.members, limits)?,
            CgroupVersion::V2 => v2::apply_limits(&self.members, limits)?,
        }
        self.limits = *limits;
        Ok(self)
    }

    /// The version this run lives in.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// `cgroup.procs` of every hierarchy the run lives in, opened
    /// `O_WRONLY|O_CLOEXEC`. Between fork and exec the child writes the 1-byte
    /// buffer `b"0"` to each fd: the kernel moves the writing process. This is
    /// allocation-free and lock-free, safe in a child forked from a threaded parent.
    pub fn join_fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// Move an existing process (all its threads) into the run.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for (m, fd) in self.members.iter().zip(&self.fds) {
            control::write_pid(fd, &m.dir, pid)?;
        }
        Ok(())
    }

    /// Kill every process in the run's cgroup, however deep the tree, and wait
    /// (bounded) until the cgroup is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        match self.version {
            CgroupVersion::V1 => v1::kill_all(&self.members),
            CgroupVersion::V2 => v2::kill_all(&self.members),
        }
    }

    /// Pids currently inside (for denial attribution by pid), sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut all = BTreeSet::new();
        for m in &self.members {
            all.extend(control::procs_recursive(&m.dir)?);
        }
        Ok(all.into_iter().collect())
    }

    /// OOM kills and pids-limit hits so far.
    pub fn events(&self) -> Result<CgroupEvents, CgroupError> {
        match self.version {
            CgroupVersion::V1 => v1::events(&self.members),
            CgroupVersion::V2 => v2::events(&self.members),
        }
    }

    /// CPU time and peak memory of the whole tree (`wait4` misses grandchildren).
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match self.version {
            CgroupVersion::V1 => v1::stats(&self.members),
            CgroupVersion::V2 => v2::stats(&self.members),
        }
    }

    /// The run's cgroup directories.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.dir.clone()).collect()
    }

    /// What was created and written, for the run's enforcement report.
    pub fn report(&self) -> CgroupReport {
        CgroupReport {
            version: self.version.as_str().to_owned(),
            paths: self.paths(),
            memory_bytes: self.limits.memory_bytes,
            pids: self.limits.pids,
            cpu_millis: self.limits.cpu_millis,
        }
    }

    /// Kill what is left, then remove the directories (retrying briefly while the
    /// last processes exit). Shared parents are removed when no run uses them.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        // Close our fds first: nothing of ours keeps the directories alive.
        self.fds.clear();
        // Fast path: the tree is gone and each rmdir succeeds at once. A cgroup
        // that still holds processes refuses (EBUSY): kill the tree, then remove
        // what is left, retrying while the last processes exit.
        let left: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| {
                control::remove_dir_once(&m.dir).is_err_and(|e| e.kind() != ErrorKind::NotFound)
            })
            .collect();
        let mut first_err = None;
        if !left.is_empty() {
            first_err = self.kill_all().err();
            for m in left {
                if let Err(e) = control::remove_dir(&m.dir) {
                    first_err.get_or_insert(e);
                }
            }
        }
        for parent in self.members.iter().filter_map(|m| m.shared_parent.as_ref()) {
            control::remove_parent_if_unused(parent);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for RunCgroup {
    /// The safety net: a run that was not removed explicitly is killed and
    /// removed here, best effort (errors are logged, never panics).
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, "cgroup left behind after a run");
        }
    }
}
