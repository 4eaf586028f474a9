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
//! It must never hand out a cgroup that held a process, and must remove every
//! cgroup it created when dropped.

use std::collections::VecDeque;
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
        self.shared.wake.notify_one();
        let run = match taken {
            Some(run) => run,
            None => self.shared.hierarchy.create_unlimited(run_id)?,
        };
        run.apply(limits)
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
