//! cgroup v1: one directory per controller hierarchy.
//!
//! Owns the v1 file names and rules: which hierarchies a run joins (those with
//! `memory`, `pids`, `cpu`, `cpuacct` or `freezer`), where its directories go
//! (`<supervisor's own cgroup>/enforcecore/<run>` in each, so runs stay inside the
//! supervisor's accounting), the limit files (memsw alongside the memory limit, so
//! swap cannot bypass it), the freezer-based tree kill, and where events and
//! stats are read. It must never write outside the `enforcecore/` subtree it owns.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::detect::V1Mount;
use super::run::{CgroupEvents, CgroupStats, Member, RunCgroup};
use super::{CgroupError, CgroupLimits, CgroupVersion, control};

/// The controllers a run uses on v1.
pub(crate) const USED: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// The shared parent directory name inside each hierarchy.
pub(crate) const PARENT: &str = "enforcecore";

/// How long `kill_all` keeps trying before reporting survivors.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// How long to wait for `freezer.state` to reach `FROZEN` before killing anyway.
const FREEZE_PATIENCE: Duration = Duration::from_millis(100);

const MISSING_HINT: &str = "mount that v1 controller hierarchy (or boot with cgroup v2), \
                            or remove the limit from the policy";

/// The v1 hierarchies runs are created in.
#[derive(Clone, Debug)]
pub(crate) struct V1Hierarchy {
    /// Mounted hierarchies carrying at least one used controller.
    pub mounts: Vec<V1Mount>,
}

impl V1Hierarchy {
    /// `None` when no mounted hierarchy carries a controller runs use.
    pub fn new(all: &[V1Mount]) -> Option<V1Hierarchy> {
        let mounts: Vec<V1Mount> = all
            .iter()
            .filter(|m| USED.iter().any(|c| m.controllers.contains(*c)))
            .cloned()
            .collect();
        (!mounts.is_empty()).then_some(V1Hierarchy { mounts })
    }

    /// The hierarchy carrying `controller`.
    pub fn find(&self, controller: &str) -> Option<&V1Mount> {
        self.mounts
            .iter()
            .find(|m| m.controllers.contains(controller))
    }

    /// Where run directories go in a hierarchy.
    pub fn runs_parent(mount: &V1Mount) -> PathBuf {
        mount.own_dir.join(PARENT)
    }

    /// Every requested limit has its controller mounted.
    pub fn check_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        let wanted = [
            ("memory", limits.memory_bytes.is_some()),
            ("pids", limits.pids.is_some()),
            ("cpu", limits.cpu_millis.is_some()),
        ];
        for (controller, asked) in wanted {
            if asked && self.find(controller).is_none() {
                return Err(self.missing(controller));
            }
        }
        Ok(())
    }

    fn missing(&self, controller: &'static str) -> CgroupError {
        let place = self
            .mounts
            .first()
            .and_then(|m| m.mount.parent())
            .map_or_else(|| PathBuf::from("/sys/fs/cgroup"), Path::to_path_buf);
        let mut available: Vec<&str> = self
            .mounts
            .iter()
            .flat_map(|m| m.controllers.iter().map(String::as_str))
            .collect();
        available.sort_unstable();
        missing(controller, place, available.join(" "))
    }

    /// Create `enforcecore/<name>` in every used hierarchy (no limits yet).
    pub fn create(&self, name: &str) -> Result<RunCgroup, CgroupError> {
        // Members are pushed as they are created so that a failure part-way
        // drops the run and removes what exists.
        let mut run = RunCgroup::empty(CgroupVersion::V1);
        for mount in &self.mounts {
            let parent = Self::runs_parent(mount);
            let dir = create_in(&parent, name)?;
            run.members.push(Member {
                dir,
                controllers: mount.controllers.clone(),
                shared_parent: Some(parent),
            });
        }
        run.open_fds()?;
        Ok(run)
    }
}

/// Make `parent/name`, re-creating `parent` if a concurrent run removed it.
pub(crate) fn create_in(parent: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let dir = parent.join(name);
    let mut attempts = 0;
    loop {
        match control::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(CgroupError::RunExists { path: dir });
            }
            // No shared parent yet (or another supervisor just removed it when
            // its last run ended): make it and try again.
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
                control::ensure_dir(parent)?;
            }
            Err(source) => return Err(CgroupError::CreateDir { path: dir, source }),
        }
    }
}

/// The error for a limit whose controller is missing.
pub(crate) fn missing(controller: &'static str, place: PathBuf, available: String) -> CgroupError {
    CgroupError::ControllerMissing {
        controller,
        version: "v1",
        place,
        available: if available.is_empty() {
            "none".into()
        } else {
            available
        },
        hint: MISSING_HINT,
    }
}

fn member<'a>(members: &'a [Member], controller: &'static str) -> Result<&'a Member, CgroupError> {
    members.iter().find(|m| m.has(controller)).ok_or_else(|| {
        let place = members.first().map(|m| m.dir.clone()).unwrap_or_default();
        missing(controller, place, String::new())
    })
}

/// Write the limits into a freshly created run.
pub(crate) fn apply_limits(members: &[Member], limits: &CgroupLimits) -> Result<(), CgroupError> {
    if let Some(bytes) = limits.memory_bytes {
        let m = member(members, "memory")?;
        let value = bytes.to_string();
        control::write_value("memory", &m.dir.join("memory.limit_in_bytes"), &value)?;
        // memory+swap: without it the tool could push pages to swap and exceed the
        // limit. Absent when the kernel runs without swap accounting.
        let memsw = m.dir.join("memory.memsw.limit_in_bytes");
        if control::has(&memsw) {
            control::write_value("memory", &memsw, &value)?;
        }
    }
    if let Some(pids) = limits.pids {
        let m = member(members, "pids")?;
        control::write_value("pids", &m.dir.join("pids.max"), &pids.to_string())?;
    }
    if let Some(millis) = limits.cpu_millis {
        let m = member(members, "cpu")?;
        let (quota, period) = CgroupLimits::cpu_quota_period(millis);
        control::write_value("cpu", &m.dir.join("cpu.cfs_period_us"), &period.to_string())?;
        control::write_value("cpu", &m.dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    Ok(())
}

/// Freeze, SIGKILL every pid, thaw; repeat until every hierarchy is empty.
/// Without a freezer hierarchy the same loop runs unfrozen (a forking tree can
/// then race the kill a few rounds, but each round kills what it sees).
pub(crate) fn kill_all(members: &[Member]) -> Result<(), CgroupError> {
    let freezer = members.iter().find(|m| m.has("freezer"));
    // Every process of the run is in the run's cgroup of every hierarchy (it
    // joined them all before exec and may not move itself), so one hierarchy
    // tells whether anything is left: the common case, a tool whose tree has
    // already exited, reads one `cgroup.procs` tree instead of all of them.
    if let Some(one) = freezer.or(members.first())
        && control::procs_recursive(&one.dir)?.is_empty()
    {
        return Ok(());
    }
    let deadline = Instant::now() + KILL_PATIENCE;
    let mut pause = Duration::from_micros(100);
    loop {
        let pids = all_pids(members)?;
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CgroupError::KillIncomplete {
                dir: members[0].dir.clone(),
                remaining: pids.len(),
            });
        }
        // Freeze, then re-read: nothing in the cgroup can fork now. A failed
        // freeze still kills (unfrozen, as without a freezer).
        let frozen = freezer.map(|f| freeze(&f.dir));
        let result = all_pids(members).and_then(|pids| signal_all(&pids));
        if let Some(f) = freezer {
            // Thaw whatever happened above: frozen tasks cannot die.
            control::write_value("freezer", &f.dir.join("freezer.state"), "THAWED")?;
        }
        result?;
        if let Some(Err(e)) = frozen {
            tracing::debug!(error = %e, "freezing the run failed; killed it unfrozen");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn all_pids(members: &[Member]) -> Result<Vec<i32>, CgroupError> {
    let mut all = Vec::new();
    for m in members {
        all.extend(control::procs_recursive(&m.dir)?);
    }
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let state = dir.join("freezer.state");
    control::write_value("freezer", &state, "FROZEN")?;
    let start = Instant::now();
    // A task in uninterruptible sleep can hold the cgroup in FREEZING; kill anyway.
    while control::read_text(&state)?.trim() != "FROZEN" && start.elapsed() < FREEZE_PATIENCE {
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// SIGKILL each pid. Never signals pid ≤ 1 or the supervisor itself.
pub(crate) fn signal_all(pids: &[i32]) -> Result<(), CgroupError> {
    let me = std::process::id() as i32;
    for &pid in pids.iter().filter(|&&p| p > 1 && p != me) {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => return Err(CgroupError::Kill { pid, source }),
        }
    }
    Ok(())
}

/// `memory.oom_control` `oom_kill` and `pids.events` `max`.
pub(crate) fn events(members: &[Member]) -> Result<CgroupEvents, CgroupError> {
    let oom_kills = match members.iter().find(|m| m.has("memory")) {
        Some(m) => Some(control::read_keyed(
            &m.dir.join("memory.oom_control"),
            "oom_kill",
        )?),
        None => None,
    };
    let pids_max = match members.iter().find(|m| m.has("pids")) {
        Some(m) => Some(control::read_keyed(&m.dir.join("pids.events"), "max")?),
        None => None,
    };
    Ok(CgroupEvents {
        oom_kills,
        pids_max,
    })
}

/// `cpuacct.usage` (nanoseconds) and `memory.max_usage_in_bytes`.
pub(crate) fn stats(members: &[Member]) -> Result<CgroupStats, CgroupError> {
    let cpu = match members.iter().find(|m| m.has("cpuacct")) {
        Some(m) => Some(Duration::from_nanos(control::read_u64(
            &m.dir.join("cpuacct.usage"),
        )?)),
        None => None,
    };
    let peak_memory_bytes = match members.iter().find(|m| m.has("memory")) {
        Some(m) => Some(control::read_u64(&m.dir.join("memory.max_usage_in_bytes"))?),
        None => None,
    };
    Ok(CgroupStats {
        cpu,
        peak_memory_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fake_tree::FakeTree;
    use super::super::{CgroupLimits, CgroupVersion, Hierarchy, Layout};

    fn limits(m: Option<u64>, p: Option<u64>, c: Option<u32>) -> CgroupLimits {
        CgroupLimits {
            memory_bytes: m,
            pids: p,
            cpu_millis: c,
        }
    }

    #[test]
    fn hybrid_host_uses_v1_and_nests_memory_under_the_supervisor() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(h.version(), CgroupVersion::V1);
        let run = h
            .create_run("r1", &limits(Some(64 << 20), Some(32), Some(500)))
            .unwrap();
        let mut paths = run.paths();
        paths.sort();
        let expect = |rel: &str| fake.path(rel);
        assert_eq!(
            paths,
            vec![
                expect("sys/cpu/enforcecore/r1"),
                expect("sys/cpuacct/enforcecore/r1"),
                expect("sys/freezer/enforcecore/r1"),
                expect("sys/memory/process_api/abc/enforcecore/r1"),
                expect("sys/pids/enforcecore/r1"),
            ]
        );
        let mem = "sys/memory/process_api/abc/enforcecore/r1";
        assert_eq!(
            fake.read(&format!("{mem}/memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(
            fake.read(&format!("{mem}/memory.memsw.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(fake.read("sys/pids/enforcecore/r1/pids.max"), "32");
        assert_eq!(
            fake.read("sys/cpu/enforcecore/r1/cpu.cfs_quota_us"),
            "50000"
        );
        assert_eq!(
            fake.read("sys/cpu/enforcecore/r1/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(run.join_fds().len(), 5);
        let report = run.report();
        assert_eq!(report.version, "v1");
        assert_eq!(report.memory_bytes, Some(64 << 20));

        // Counters the kernel would bump.
        fake.write(
            &format!("{mem}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        fake.write("sys/pids/enforcecore/r1/pids.events", "max 7\n");
        fake.write("sys/cpuacct/enforcecore/r1/cpuacct.usage", "1500000000\n");
        fake.write(&format!("{mem}/memory.max_usage_in_bytes"), "4096\n");
        let ev = run.events().unwrap();
        assert_eq!((ev.oom_kills, ev.pids_max), (Some(2), Some(7)));
        let st = run.stats().unwrap();
        assert_eq!(st.cpu, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(st.peak_memory_bytes, Some(4096));

        run.remove().unwrap();
        for p in paths {
            assert!(!p.exists(), "{} left behind", p.display());
        }
        assert!(
            !fake.path("sys/pids/enforcecore").exists(),
            "empty shared parent removed"
        );
    }

    #[test]
    fn limits_not_asked_for_are_not_written() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let run = h.create_run("r2", &limits(None, None, None)).unwrap();
        let mem = "sys/memory/process_api/abc/enforcecore/r2";
        assert_eq!(
            fake.read(&format!("{mem}/memory.limit_in_bytes")),
            "9223372036854771712"
        );
        assert_eq!(fake.read("sys/pids/enforcecore/r2/pids.max"), "max");
        assert_eq!(fake.read("sys/cpu/enforcecore/r2/cpu.cfs_quota_us"), "-1");
        drop(run);
        assert!(!fake.path(mem).exists(), "drop removes the run");
    }

    #[test]
    fn missing_controller_fails_closed_before_creating_anything() {
        let fake = FakeTree::v1_comounted();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        assert_eq!(h.layout(), Layout::V1);
        let err = h
            .create_run("r3", &limits(None, Some(10), None))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pids controller is not available"), "{msg}");
        assert!(msg.contains("remove the limit"), "{msg}");
        assert!(
            !fake
                .path("sys/memory/system.slice/x.service/enforcecore")
                .exists()
        );
    }

    #[test]
    fn co_mounted_cpu_cpuacct_is_one_directory_and_no_memsw_is_skipped() {
        let fake = FakeTree::v1_comounted();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let run = h
            .create_run("r4", &limits(Some(1 << 20), None, Some(2000)))
            .unwrap();
        assert_eq!(run.paths().len(), 2);
        let cpu = "sys/cpu,cpuacct/system.slice/x.service/enforcecore/r4";
        assert_eq!(fake.read(&format!("{cpu}/cpu.cfs_quota_us")), "200000");
        let mem = "sys/memory/system.slice/x.service/enforcecore/r4";
        assert_eq!(
            fake.read(&format!("{mem}/memory.limit_in_bytes")),
            "1048576"
        );
        assert!(
            !fake
                .path(&format!("{mem}/memory.memsw.limit_in_bytes"))
                .exists()
        );
        let st = run.stats().unwrap();
        assert_eq!(st.cpu, Some(std::time::Duration::ZERO));
        let ev = run.events().unwrap();
        assert_eq!(ev.pids_max, None, "no pids hierarchy: not observable");
    }

    #[test]
    fn an_existing_run_cgroup_is_never_adopted() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let first = h.create_run("dup", &CgroupLimits::default()).unwrap();
        let err = h.create_run("dup", &CgroupLimits::default()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        // The failed attempt removed nothing of the first run.
        assert!(first.paths().iter().all(|p| p.exists()));
    }

    #[test]
    fn a_limit_write_failure_names_the_controller_and_leaves_nothing() {
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        // Simulate a kernel without the pids.max file: the write must fail closed.
        let run = h.create_unlimited("r5").unwrap();
        std::fs::remove_file(fake.path("sys/pids/enforcecore/r5/pids.max")).unwrap();
        let err = run.apply(&limits(None, Some(5), None)).unwrap_err();
        assert!(err.to_string().contains("pids controller"), "{err}");
        assert!(!fake.path("sys/pids/enforcecore/r5").exists());
        assert!(
            !fake
                .path("sys/memory/process_api/abc/enforcecore/r5")
                .exists()
        );
    }
}
