//! A small pool of pre-created run cgroups, refilled in the background.
//!
//! Owns keeping `mkdir`/`rmdir` on cgroupfs off a run's critical path: a helper
//! thread keeps `size` empty run cgroups ready (created without limits), a run
//! takes one and only writes its limits (a few µs), and a finished run can be
//! handed back with [`CgroupPool::retire`] to be killed and removed on the helper
//! thread. An empty pool falls back to creating inline, so a burst of runs is
//! slower, never refused. Pooled cgroups are fresh (never reused): counters such as
//! OOM kills and peak memory start at zero for every run.
//!
//! Pooled cgroups are named `pool-<supervisor pid>-<n>`; a new pool removes empty
//! ones whose supervisor no longer exists. Supervisors sharing one cgroup tree
//! must therefore share a pid namespace (true for one host's daemon and CLI).
//!
//! It must never hand out a cgroup that held a process, and must remove every
//! cgroup it created when dropped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::run::RunCgroup;
use super::{CgroupError, CgroupLimits, Hierarchy, validate_run_id};

/// Backoff after the helper thread failed to create a cgroup.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Pre-created run cgroups; see the module doc.
#[derive(Debug)]
pub struct CgroupPool {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    hierarchy: Hierarchy,
    size: usize,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<RunCgroup>,
    retired: Vec<RunCgroup>,
    next: u64,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CgroupPool {
    /// Start a pool keeping `size` run cgroups ready in `hierarchy`. The first
    /// cgroups are created in the background; `create_run` works immediately.
    pub fn new(hierarchy: Hierarchy, size: usize) -> Result<CgroupPool, CgroupError> {
        let shared = Arc::new(Shared {
            hierarchy,
            size,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        sweep_stale(&shared.hierarchy.runs_parents());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("enforcecore-cgroup-pool".into())
            .spawn(move || refill(&worker))
            .map_err(|source| CgroupError::SpawnThread { source })?;
        Ok(CgroupPool {
            shared,
            thread: Some(thread),
        })
    }

    /// Like [`Hierarchy::create_run`], but takes a pre-created cgroup when one is
    /// ready. The cgroup's directory name is a pool name, not `run_id`; the run's
    /// report carries the real paths.
    pub fn create_run(
        &self,
        run_id: &str,
        limits: &CgroupLimits,
    ) -> Result<RunCgroup, CgroupError> {
        validate_run_id(run_id)?;
        self.shared.hierarchy.check_limits(limits)?;
        let taken = self.shared.lock().ready.pop_front();
        let run = match taken {
            Some(run) => run.apply(limits),
            None => self
                .shared
                .hierarchy
                .create_unlimited(run_id)?
                .apply(limits),
        };
        // Refill only now: the helper's mkdir would otherwise compete with this
        // run's limit writes for the CPU and the kernel's cgroup locks.
        self.shared.wake.notify_one();
        run
    }

    /// Kill and remove a finished run on the helper thread.
    pub fn retire(&self, run: RunCgroup) {
        self.shared.lock().retired.push(run);
        self.shared.wake.notify_one();
    }

    /// Cgroups ready right now.
    pub fn ready(&self) -> usize {
        self.shared.lock().ready.len()
    }

    /// Block until `n` cgroups are ready (or `timeout` passes); returns how many are.
    pub fn wait_ready(&self, n: usize, timeout: Duration) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let ready = self.ready();
            if ready >= n.min(self.shared.size) || std::time::Instant::now() >= deadline {
                return ready;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The hierarchy the pool creates runs in.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.shared.hierarchy
    }
}

/// The directory-name prefix of pooled cgroups: `pool-<supervisor pid>-<n>`.
const PREFIX: &str = "pool-";

/// Remove empty pooled cgroups left by a supervisor that died without dropping
/// its pool (its pid no longer exists). A pooled cgroup that a run was using still
/// holds processes; `rmdir` refuses it (`EBUSY`) and it is left alone.
fn sweep_stale(parents: &[PathBuf]) {
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = super::control::remove_dir_once(&entry.path());
            }
        }
    }
}

/// The helper thread: remove retired runs, keep `size` ready, sleep otherwise.
fn refill(shared: &Shared) {
    let pid = std::process::id();
    loop {
        let (retired, need, name) = {
            let mut st = shared.lock();
            while !st.stop && st.retired.is_empty() && st.ready.len() >= shared.size {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.stop {
                return;
            }
            let retired = std::mem::take(&mut st.retired);
            st.next += 1;
            (
                retired,
                st.ready.len() < shared.size,
                format!("pool-{pid}-{}", st.next),
            )
        };
        for run in retired {
            if let Err(e) = run.remove() {
                tracing::warn!(error = %e, "retired run cgroup not removed");
            }
        }
        if !need {
            continue;
        }
        match shared.hierarchy.create_unlimited(&name) {
            Ok(run) => shared.lock().ready.push_back(run),
            Err(e) => {
                tracing::warn!(error = %e, "cgroup pool cannot pre-create a run cgroup");
                let st = shared.lock();
                let _ = shared.wake.wait_timeout(st, RETRY_AFTER);
            }
        }
    }
}

impl Drop for CgroupPool {
    /// Stop the helper thread, then remove every cgroup the pool still holds.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (ready, retired) = {
            let mut st = self.shared.lock();
            (
                std::mem::take(&mut st.ready),
                std::mem::take(&mut st.retired),
            )
        };
        for run in ready.into_iter().chain(retired) {
            if let Err(e) = run.remove() {
                tracing::warn!(error = %e, "pooled run cgroup not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fake_tree::FakeTree;
    use super::super::{CgroupLimits, Hierarchy};
    use super::CgroupPool;

    #[test]
    fn pooled_runs_get_their_limits_and_everything_is_removed_on_drop() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        // A leftover of a supervisor that died (pid 0 never names a live process
        // in /proc), and one of a live process (ours) that must be kept.
        fake.mkdir_cgroup("sys/pids/enforcecore");
        fake.mkdir_cgroup("sys/pids/enforcecore/pool-0-1");
        let ours = format!("sys/pids/enforcecore/pool-{}-999", std::process::id());
        fake.mkdir_cgroup(&ours);
        let pool = CgroupPool::new(h, 2).unwrap();
        assert!(
            !fake.path("sys/pids/enforcecore/pool-0-1").exists(),
            "stale swept"
        );
        assert!(
            fake.path(&ours).exists(),
            "a live supervisor's cgroup is kept"
        );
        assert_eq!(pool.wait_ready(2, Duration::from_secs(10)), 2);
        let limits = CgroupLimits {
            pids: Some(11),
            ..Default::default()
        };
        let run = pool.create_run("run-a", &limits).unwrap();
        let pids_dir = run
            .paths()
            .into_iter()
            .find(|p| p.starts_with(fake.path("sys/pids")))
            .unwrap();
        let name = pids_dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with(&format!("pool-{}-", std::process::id())),
            "{name}"
        );
        assert_eq!(
            std::fs::read_to_string(pids_dir.join("pids.max")).unwrap(),
            "11"
        );
        assert_eq!(run.report().pids, Some(11));
        // A limit the host cannot enforce fails closed, pool or not.
        let fake2 = FakeTree::v1_comounted();
        let h2 = Hierarchy::detect_at(&fake2.proc_root(), &fake2.sys_root()).unwrap();
        let pool2 = CgroupPool::new(h2, 1).unwrap();
        assert!(pool2.create_run("run-b", &limits).is_err());
        drop(pool2);
        pool.retire(run);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pids_dir.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!pids_dir.exists(), "retired run removed in the background");
        std::fs::remove_dir_all(fake.path(&ours)).unwrap();
        drop(pool);
        let left: Vec<_> = std::fs::read_dir(fake.path("sys/pids/enforcecore"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "pool removed its cgroups: {left:?}");
    }

    #[test]
    fn spawn_create_overlaps_and_reports_errors() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let pending = h.spawn_create("bg", &CgroupLimits::default());
        let run = pending.wait().unwrap();
        assert_eq!(run.paths().len(), 5);
        let err = h
            .spawn_create("bad/id", &CgroupLimits::default())
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("cannot name a cgroup"), "{err}");
    }
}
