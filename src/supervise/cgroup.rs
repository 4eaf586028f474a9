//! The run's cgroup: where it comes from, and how it ends.
//!
//! The host's hierarchy is detected once per process. A run's cgroup is required
//! when the supervisor is root (it is how the whole tree is killed and accounted)
//! or when the policy sets a cgroup limit; a non-root supervisor without
//! delegation and without cgroup limits runs the tool without one, kills its
//! process group instead, and reports the cgroup as `none`.
//!
//! Where the cgroup comes from ([`Cgroups`]): created inline, taken from a
//! daemon's [`CgroupPool`] (so that `mkdir`/`rmdir` stay off the critical path),
//! or [`Early`]: `enforcecore run` starts detecting the hierarchy and creating the
//! directories on a thread before it has even loaded the policy, and writes the
//! limits once it knows them.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::SuperviseError;
use super::outcome::Events;
use crate::report::CgroupReport;
use crate::sandbox::cgroup::{
    CgroupError, CgroupLimits, CgroupPool, CgroupVersion, Hierarchy, RunCgroup,
};

/// The host's hierarchy, detected once.
pub fn hierarchy() -> Result<&'static Hierarchy, String> {
    static H: OnceLock<Result<Hierarchy, String>> = OnceLock::new();
    H.get_or_init(|| Hierarchy::detect().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Where a run's cgroup comes from.
#[derive(Debug, Default)]
pub enum Cgroups {
    /// Created when the run starts.
    #[default]
    Create,
    /// Taken from a pool of pre-created cgroups (the daemon).
    Pool(Arc<CgroupPool>),
    /// Already being created ([`Early::start`]).
    Early(Early),
}

impl Cgroups {
    /// The pool, if any (finished runs are handed back to it).
    pub fn pool(&self) -> Option<Arc<CgroupPool>> {
        match self {
            Cgroups::Pool(p) => Some(p.clone()),
            _ => None,
        }
    }
}

/// A run cgroup whose directories are created on a thread before the run's
/// limits are known; the same thread writes the limits once they are sent
/// ([`Early::limit`]), while the caller builds the rest of the sandbox.
#[derive(Debug)]
pub struct Early {
    thread: Option<std::thread::JoinHandle<Result<RunCgroup, EarlyError>>>,
    limits: Option<std::sync::mpsc::Sender<CgroupLimits>>,
}

#[derive(Debug)]
enum EarlyError {
    Detect(String),
    Create(CgroupError),
    /// The limits were never sent (the run did not start).
    Unused(RunCgroup),
}

impl Early {
    /// Start creating the (limitless) cgroup of `run_id`.
    pub fn start(run_id: &str) -> std::io::Result<Early> {
        let id = run_id.to_string();
        let (tx, rx) = std::sync::mpsc::channel::<CgroupLimits>();
        let thread = std::thread::Builder::new()
            .name("enforcecore-cgroup".into())
            .spawn(move || {
                let h = hierarchy().map_err(EarlyError::Detect)?;
                let run = h.create_unlimited(&id).map_err(EarlyError::Create)?;
                let Ok(limits) = rx.recv() else {
                    return Err(EarlyError::Unused(run));
                };
                h.check_limits(&limits).map_err(EarlyError::Create)?;
                run.apply(&limits).map_err(EarlyError::Create)
            })?;
        Ok(Early {
            thread: Some(thread),
            limits: Some(tx),
        })
    }

    /// Hand the run's limits to the cgroup thread (returns at once).
    pub fn limit(&mut self, limits: CgroupLimits) {
        if let Some(tx) = self.limits.take() {
            // A closed channel means the thread already failed; finish() reports it.
            let _ = tx.send(limits);
        }
    }

    /// Send the limits (if not sent yet) and wait for the cgroup (blocking).
    fn limited(mut self, limits: CgroupLimits) -> Result<RunCgroup, EarlyError> {
        self.limit(limits);
        self.finish()
    }

    /// Wait for the cgroup, limits written (blocking).
    fn finish(mut self) -> Result<RunCgroup, EarlyError> {
        self.limits = None;
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .map_err(|_| EarlyError::Detect("the cgroup thread panicked".into()))?
    }
}

impl Drop for Early {
    /// A run that never started (refused, bad policy): wait for the directories and
    /// remove them, so that nothing is left behind when the process exits.
    fn drop(&mut self) {
        self.limits = None;
        let run = match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(run))) | Some(Ok(Err(EarlyError::Unused(run)))) => run,
            _ => return,
        };
        if let Err(e) = run.remove() {
            tracing::warn!("removing an unused run cgroup: {e}");
        }
    }
}

/// Create the run's cgroup (blocking I/O).
pub fn create(
    run_id: &str,
    limits: &CgroupLimits,
    required: bool,
    source: Cgroups,
) -> Result<Option<RunCgroup>, SuperviseError> {
    let created = match source {
        Cgroups::Pool(p) => p.create_run(run_id, limits),
        Cgroups::Early(e) => match e.limited(*limits) {
            Ok(c) => Ok(c),
            Err(EarlyError::Create(e)) => Err(e),
            Err(EarlyError::Unused(_)) => unreachable!("the limits were sent"),
            Err(EarlyError::Detect(e)) if required => {
                return Err(SuperviseError::CgroupDetect(e));
            }
            Err(EarlyError::Detect(e)) => {
                tracing::warn!("running without a cgroup: {e}");
                return Ok(None);
            }
        },
        Cgroups::Create => match hierarchy() {
            Ok(h) => h.create_run(run_id, limits),
            Err(e) if required => {
                return Err(SuperviseError::CgroupDetect(e));
            }
            Err(e) => {
                tracing::warn!("running without a cgroup: {e}");
                return Ok(None);
            }
        },
    };
    match created {
        Ok(c) => Ok(Some(c)),
        Err(e) if required => Err(SuperviseError::Cgroup(e)),
        Err(e) => {
            tracing::warn!("running without a cgroup: {e}");
            Ok(None)
        }
    }
}

/// How the child enters the run's cgroup.
#[derive(Debug)]
pub enum Join {
    /// No cgroup.
    None,
    /// v1: the child writes `"0"` to each hierarchy's `tasks`. It is single-threaded,
    /// so this moves the whole process — and unlike `cgroup.procs` it does not take
    /// the global threadgroup lock, whose RCU grace period (~5–15 ms) would
    /// otherwise dominate every run.
    Write(Vec<OwnedFd>),
    /// v2: `clone3(CLONE_INTO_CGROUP)` creates the child inside the cgroup.
    Clone(OwnedFd),
}

/// Open what the child needs to join `cg`.
pub fn join(cg: &RunCgroup) -> std::io::Result<Join> {
    let open =
        |p: &Path, flags: OFlag| nix::fcntl::open(p, flags | OFlag::O_CLOEXEC, Mode::empty());
    let paths = cg.paths();
    match cg.version() {
        CgroupVersion::V1 => Ok(Join::Write(
            paths
                .iter()
                .map(|d| open(&d.join("tasks"), OFlag::O_WRONLY))
                .collect::<Result<_, _>>()?,
        )),
        CgroupVersion::V2 => match paths.as_slice() {
            [dir] => Ok(Join::Clone(open(
                dir,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            )?)),
            _ => Err(std::io::Error::other(format!(
                "a v2 run cgroup has exactly one directory, not {}",
                paths.len()
            ))),
        },
    }
}

/// The report of a run without a cgroup.
pub fn none_report() -> CgroupReport {
    CgroupReport {
        version: "none".into(),
        ..CgroupReport::default()
    }
}

/// What the end of a run read from its cgroup.
#[derive(Debug, Default)]
pub struct Final {
    /// OOM kills and pids-limit hits.
    pub events: Events,
    /// CPU time of the tree, milliseconds.
    pub cpu_ms: Option<u64>,
    /// Peak memory of the tree.
    pub peak_memory_bytes: Option<u64>,
}

/// Kill what is left, read the counters, remove the cgroup (or hand it to the
/// pool for removal). Blocking I/O.
pub fn finish(cg: RunCgroup, pool: Option<&CgroupPool>) -> (Final, Option<CgroupError>) {
    let (fin, err) = end(&cg);
    let removed = dispose(cg, pool);
    (fin, err.or(removed))
}

/// Kill what is left and read the counters (the run's exit report needs
/// them). Blocking I/O.
pub fn end(cg: &RunCgroup) -> (Final, Option<CgroupError>) {
    let t = std::time::Instant::now();
    let us = || t.elapsed().as_micros() as u64;
    let mut err = cg.kill_all().err();
    tracing::debug!(us = us(), "cleanup: cgroup tree killed");
    let mut fin = Final::default();
    match cg.events() {
        Ok(e) => {
            fin.events = Events {
                oom_kills: e.oom_kills.unwrap_or(0),
                pids_max: e.pids_max.unwrap_or(0),
            }
        }
        Err(e) => {
            err.get_or_insert(e);
        }
    }
    tracing::debug!(us = us(), "cleanup: cgroup events read");
    match cg.stats() {
        Ok(s) => {
            fin.cpu_ms = s
                .cpu
                .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64);
            fin.peak_memory_bytes = s.peak_memory_bytes;
        }
        Err(e) => {
            err.get_or_insert(e);
        }
    }
    tracing::debug!(us = us(), "cleanup: cgroup stats read");
    (fin, err)
}

/// Remove the cgroup of an ended run (or hand it to the pool for removal).
/// Blocking I/O.
pub fn dispose(cg: RunCgroup, pool: Option<&CgroupPool>) -> Option<CgroupError> {
    let t = std::time::Instant::now();
    let err = match pool {
        Some(p) => {
            p.retire(cg);
            None
        }
        None => cg.remove().err(),
    };
    tracing::debug!(
        us = t.elapsed().as_micros() as u64,
        "cleanup: cgroup removed"
    );
    err
}
