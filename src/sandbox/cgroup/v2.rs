//! cgroup v2: one directory per run in the unified hierarchy.
//!
//! Owns the v2 placement rule (delegated subtree, or a dedicated `enforcecore/`
//! subtree as root; see the module doc of `cgroup`), enabling controllers in
//! `cgroup.subtree_control` on the way down, the limit files (`memory.max` with
//! `memory.swap.max` 0 and `memory.oom.group`, `pids.max`, `cpu.max`), the
//! `cgroup.kill` tree kill, and where events and stats are read. It must never
//! enable a controller outside the subtree it uses, and never move any process
//! but the supervisor itself (into its own leaf, once).

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::detect::V2Mount;
use super::run::{CgroupEvents, CgroupStats, Member, RunCgroup};
use super::{CgroupError, CgroupLimits, CgroupVersion, control, v1};

/// Controllers a run uses on v2 (CPU time comes from `cpu.stat`, always present).
pub(crate) const USED: [&str; 3] = ["memory", "pids", "cpu"];

/// The supervisor's leaf inside a delegated cgroup.
pub(crate) const SUPERVISOR_LEAF: &str = "supervisor";
/// The runs' parent inside a delegated cgroup.
pub(crate) const RUNS: &str = "runs";

const KILL_PATIENCE: Duration = Duration::from_secs(5);

const MISSING_HINT: &str = "delegate the controller to EnforceCore (systemd Delegate=yes) or \
                            enable it in the parent's cgroup.subtree_control, \
                            or remove the limit from the policy";

/// How runs are placed in the unified hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `base` was delegated to the supervisor; runs in `base/runs/<run>`.
    /// `move_self`: the supervisor still sits in `base` itself and must move
    /// into `base/supervisor` before controllers can be enabled.
    Delegated { base: PathBuf, move_self: bool },
    /// Root outside delegation: runs in `<mount>/enforcecore/<run>`.
    Dedicated,
    /// Neither delegated nor root: runs cannot be created.
    Unusable,
}

/// The unified hierarchy as runs use it.
#[derive(Clone, Debug)]
pub(crate) struct V2Hierarchy {
    pub mount: V2Mount,
    pub mode: Mode,
    /// The cgroup whose `cgroup.subtree_control` governs the runs' parent.
    pub top: PathBuf,
    /// Where run directories are created.
    pub runs_parent: PathBuf,
    /// `top/cgroup.controllers`: what can be enabled below `top`.
    pub available: BTreeSet<String>,
    /// Whether the supervisor has moved into its leaf (delegated mode).
    moved: Arc<Mutex<bool>>,
}

impl V2Hierarchy {
    /// Work out the placement mode and what is available (reads, never writes).
    pub fn new(mount: &V2Mount) -> Result<V2Hierarchy, CgroupError> {
        let own = &mount.own_dir;
        let parent_delegated = own != &mount.mount && own.parent().is_some_and(is_delegated);
        let mode = if is_delegated(own) {
            Mode::Delegated {
                base: own.clone(),
                move_self: true,
            }
        } else if parent_delegated {
            let base = own.parent().map(Path::to_path_buf).unwrap_or_default();
            Mode::Delegated {
                base,
                move_self: false,
            }
        } else if nix::unistd::geteuid().is_root() {
            Mode::Dedicated
        } else {
            Mode::Unusable
        };
        let (top, runs_parent) = match &mode {
            Mode::Delegated { base, .. } => (base.clone(), base.join(RUNS)),
            Mode::Dedicated | Mode::Unusable => (mount.mount.clone(), mount.mount.join(v1::PARENT)),
        };
        let available = control::read_text(&top.join("cgroup.controllers"))
            .map(|t| words(&t))
            .unwrap_or_default();
        Ok(V2Hierarchy {
            mount: mount.clone(),
            mode,
            top,
            runs_parent,
            available,
            moved: Arc::new(Mutex::new(false)),
        })
    }

    /// On a hybrid host: `memory` and `pids` are offered here and not by v1.
    pub fn has_moved_controllers(&self, v1h: &super::v1::V1Hierarchy) -> bool {
        ["memory", "pids"]
            .iter()
            .all(|c| self.available.contains(*c) && v1h.find(c).is_none())
    }

    /// Every requested limit's controller can be enabled for runs.
    pub fn check_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        if self.mode == Mode::Unusable {
            return Err(CgroupError::NotDelegated {
                own: self.mount.own_dir.clone(),
            });
        }
        let wanted = [
            ("memory", limits.memory_bytes.is_some()),
            ("pids", limits.pids.is_some()),
            ("cpu", limits.cpu_millis.is_some()),
        ];
        for (controller, asked) in wanted {
            if asked && !self.available.contains(controller) {
                return Err(missing(controller, self.top.clone(), &self.available));
            }
        }
        Ok(())
    }

    /// Create `<runs parent>/<name>` with every available used controller enabled.
    pub fn create(&self, name: &str) -> Result<RunCgroup, CgroupError> {
        if self.mode == Mode::Unusable {
            return Err(CgroupError::NotDelegated {
                own: self.mount.own_dir.clone(),
            });
        }
        self.move_self_once()?;
        let wanted: Vec<&str> = USED
            .into_iter()
            .filter(|c| self.available.contains(*c))
            .collect();
        let mut run = RunCgroup::empty(CgroupVersion::V2);
        let mut attempts = 0;
        let dir = loop {
            control::ensure_dir(&self.runs_parent)?;
            enable(&self.top, &wanted)?;
            enable(&self.runs_parent, &wanted)?;
            let dir = self.runs_parent.join(name);
            match control::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(CgroupError::RunExists { path: dir });
                }
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(source) => return Err(CgroupError::CreateDir { path: dir, source }),
            }
        };
        let controllers = control::read_text(&dir.join("cgroup.controllers"))
            .map(|t| words(&t))
            .unwrap_or_default();
        run.members.push(Member {
            dir,
            controllers,
            // A delegated `runs/` is ours for the service's lifetime; the dedicated
            // `enforcecore/` goes once the last run is removed.
            shared_parent: (self.mode == Mode::Dedicated).then(|| self.runs_parent.clone()),
        });
        run.open_fds()?;
        Ok(run)
    }

    /// Delegated mode: move the supervisor from the delegated cgroup into its
    /// leaf, once, so that the delegated cgroup may distribute controllers.
    fn move_self_once(&self) -> Result<(), CgroupError> {
        let Mode::Delegated {
            base,
            move_self: true,
        } = &self.mode
        else {
            return Ok(());
        };
        let mut moved = self.moved.lock().unwrap_or_else(|p| p.into_inner());
        if *moved {
            return Ok(());
        }
        let leaf = base.join(SUPERVISOR_LEAF);
        control::ensure_dir(&leaf)?;
        control::write_value("cgroup", &leaf.join("cgroup.procs"), "0").map_err(|e| {
            CgroupError::Delegate {
                path: leaf.clone(),
                reason: format!("moving the supervisor into its leaf failed: {e}"),
            }
        })?;
        *moved = true;
        Ok(())
    }
}

/// systemd marks delegated cgroups with `trusted.delegate=1` (as root) or
/// `user.delegate=1` (user managers).
fn is_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let mut buf = [0u8; 8];
        matches!(rustix::fs::getxattr(dir, *name, &mut buf[..]), Ok(n) if buf[..n].starts_with(b"1"))
    })
}

fn words(text: &str) -> BTreeSet<String> {
    text.split_whitespace()
        .map(|w| w.trim_start_matches(['+', '-']).to_owned())
        .collect()
}

/// Enable `controllers` in `dir/cgroup.subtree_control` (those not enabled yet),
/// in one write so the change is all or nothing.
fn enable(dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = words(&control::read_text(&file)?);
    let todo: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.contains(**c))
        .map(|c| format!("+{c}"))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    control::write_value("cgroup", &file, &todo.join(" ")).map_err(|e| CgroupError::Delegate {
        path: dir.to_path_buf(),
        reason: format!(
            "enabling {} failed ({e}); a cgroup that holds processes cannot enable \
             controllers for its children (no-internal-processes rule)",
            todo.join(" ")
        ),
    })
}

fn missing(controller: &'static str, place: PathBuf, available: &BTreeSet<String>) -> CgroupError {
    let available: Vec<&str> = available.iter().map(String::as_str).collect();
    CgroupError::ControllerMissing {
        controller,
        version: "v2",
        place,
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(" ")
        },
        hint: MISSING_HINT,
    }
}

fn member<'a>(members: &'a [Member], controller: &'static str) -> Result<&'a Member, CgroupError> {
    let m = members
        .first()
        .ok_or_else(|| missing(controller, PathBuf::new(), &BTreeSet::new()))?;
    if m.has(controller) {
        Ok(m)
    } else {
        Err(missing(controller, m.dir.clone(), &m.controllers))
    }
}

/// Write the limits into a freshly created run.
pub(crate) fn apply_limits(members: &[Member], limits: &CgroupLimits) -> Result<(), CgroupError> {
    if let Some(bytes) = limits.memory_bytes {
        let m = member(members, "memory")?;
        control::write_value("memory", &m.dir.join("memory.max"), &bytes.to_string())?;
        // No swap: otherwise the tool could exceed the limit by swapping.
        // Absent when the kernel runs without swap accounting.
        let swap = m.dir.join("memory.swap.max");
        if control::has(&swap) {
            control::write_value("memory", &swap, "0")?;
        }
        // An OOM kill takes the whole run down, not one arbitrary process of it.
        let group = m.dir.join("memory.oom.group");
        if control::has(&group) {
            control::write_value("memory", &group, "1")?;
        }
    }
    if let Some(pids) = limits.pids {
        let m = member(members, "pids")?;
        control::write_value("pids", &m.dir.join("pids.max"), &pids.to_string())?;
    }
    if let Some(millis) = limits.cpu_millis {
        let m = member(members, "cpu")?;
        let (quota, period) = CgroupLimits::cpu_quota_period(millis);
        control::write_value("cpu", &m.dir.join("cpu.max"), &format!("{quota} {period}"))?;
    }
    Ok(())
}

/// `cgroup.kill` (Linux ≥ 5.14), or the freeze/kill/thaw loop with
/// `cgroup.freeze` on older kernels; then wait until the cgroup is empty.
pub(crate) fn kill_all(members: &[Member]) -> Result<(), CgroupError> {
    let Some(m) = members.first() else {
        return Ok(());
    };
    let kill_file = m.dir.join("cgroup.kill");
    let has_kill = control::has(&kill_file);
    let deadline = Instant::now() + KILL_PATIENCE;
    let mut pause = Duration::from_micros(100);
    loop {
        let pids = control::procs_recursive(&m.dir)?;
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CgroupError::KillIncomplete {
                dir: m.dir.clone(),
                remaining: pids.len(),
            });
        }
        if has_kill {
            control::write_value("cgroup", &kill_file, "1")?;
        } else {
            let freeze = m.dir.join("cgroup.freeze");
            control::write_value("cgroup", &freeze, "1")?;
            let result = control::procs_recursive(&m.dir).and_then(|p| v1::signal_all(&p));
            control::write_value("cgroup", &freeze, "0")?;
            result?;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// `memory.events` and `pids.events` (hierarchical counters).
pub(crate) fn events(members: &[Member]) -> Result<CgroupEvents, CgroupError> {
    let Some(m) = members.first() else {
        return Ok(CgroupEvents::default());
    };
    let oom_kills = if m.has("memory") {
        Some(control::read_keyed(
            &m.dir.join("memory.events"),
            "oom_kill",
        )?)
    } else {
        None
    };
    let pids_max = if m.has("pids") {
        Some(control::read_keyed(&m.dir.join("pids.events"), "max")?)
    } else {
        None
    };
    Ok(CgroupEvents {
        oom_kills,
        pids_max,
    })
}

/// `cpu.stat` `usage_usec` (present without the cpu controller) and `memory.peak`.
pub(crate) fn stats(members: &[Member]) -> Result<CgroupStats, CgroupError> {
    let Some(m) = members.first() else {
        return Ok(CgroupStats::default());
    };
    let usec = control::read_keyed(&m.dir.join("cpu.stat"), "usage_usec")?;
    let peak = m.dir.join("memory.peak");
    let peak_memory_bytes = if m.has("memory") && control::has(&peak) {
        Some(control::read_u64(&peak)?)
    } else {
        None
    };
    Ok(CgroupStats {
        cpu: Some(Duration::from_micros(usec)),
        peak_memory_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fake_tree::FakeTree;
    use super::super::{CgroupLimits, CgroupVersion, Hierarchy, Layout};
    use super::Mode;

    fn all_limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(128 << 20),
            pids: Some(64),
            cpu_millis: Some(500),
        }
    }

    fn mark_delegated(fake: &FakeTree, rel: &str) {
        rustix::fs::setxattr(
            fake.path(rel),
            "user.delegate",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("user xattrs on the temp dir's filesystem");
    }

    #[test]
    fn delegated_cgroup_moves_the_supervisor_into_a_leaf_and_runs_beside_it() {
        let fake = FakeTree::v2("/system.slice/ec.service", "cpu io memory pids");
        mark_delegated(&fake, "sys/system.slice/ec.service");
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        assert_eq!((h.layout(), h.version()), (Layout::V2, CgroupVersion::V2));
        let run = h.create_run("r1", &all_limits()).unwrap();
        let base = "sys/system.slice/ec.service";
        assert_eq!(
            fake.read(&format!("{base}/supervisor/cgroup.procs")),
            "0",
            "moved itself"
        );
        assert_eq!(
            fake.read(&format!("{base}/cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        assert_eq!(
            fake.read(&format!("{base}/runs/cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
        let dir = format!("{base}/runs/r1");
        assert_eq!(run.paths(), vec![fake.path(&dir)]);
        assert_eq!(fake.read(&format!("{dir}/memory.max")), "134217728");
        assert_eq!(fake.read(&format!("{dir}/memory.swap.max")), "0");
        assert_eq!(fake.read(&format!("{dir}/memory.oom.group")), "1");
        assert_eq!(fake.read(&format!("{dir}/pids.max")), "64");
        assert_eq!(fake.read(&format!("{dir}/cpu.max")), "50000 100000");

        fake.write(
            &format!("{dir}/memory.events"),
            "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
        );
        fake.write(&format!("{dir}/pids.events"), "max 3\n");
        fake.write(
            &format!("{dir}/cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\n",
        );
        fake.write(&format!("{dir}/memory.peak"), "1048576\n");
        let ev = run.events().unwrap();
        assert_eq!((ev.oom_kills, ev.pids_max), (Some(1), Some(3)));
        let st = run.stats().unwrap();
        assert_eq!(st.cpu, Some(std::time::Duration::from_micros(2500)));
        assert_eq!(st.peak_memory_bytes, Some(1 << 20));

        // The supervisor moves itself once per hierarchy, not per run.
        fake.write(&format!("{base}/supervisor/cgroup.procs"), "");
        let second = h.create_run("r2", &CgroupLimits::default()).unwrap();
        assert_eq!(fake.read(&format!("{base}/supervisor/cgroup.procs")), "");
        run.remove().unwrap();
        second.remove().unwrap();
        assert!(!fake.path(&dir).exists());
        assert!(
            fake.path(&format!("{base}/runs")).exists(),
            "delegated runs/ is kept"
        );
    }

    #[test]
    fn delegate_subgroup_leaf_is_used_as_is() {
        let fake = FakeTree::v2("/system.slice/ec.service/supervisor", "memory pids");
        mark_delegated(&fake, "sys/system.slice/ec.service");
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let run = h
            .create_run(
                "r1",
                &CgroupLimits {
                    pids: Some(5),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            run.paths(),
            vec![fake.path("sys/system.slice/ec.service/runs/r1")]
        );
        assert_eq!(
            fake.read("sys/system.slice/ec.service/supervisor/cgroup.procs"),
            ""
        );
        let err = h.create_run(
            "r2",
            &CgroupLimits {
                cpu_millis: Some(100),
                ..Default::default()
            },
        );
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("cgroup v2: the cpu controller is not available"),
            "{msg}"
        );
        assert!(msg.contains("available: memory pids"), "{msg}");
    }

    #[test]
    fn controller_less_unified_hierarchy_fails_closed_for_every_limit() {
        let fake = FakeTree::v2("/system.slice/ec.service", "hugetlb");
        mark_delegated(&fake, "sys/system.slice/ec.service");
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        for (name, limits) in [
            (
                "memory",
                CgroupLimits {
                    memory_bytes: Some(1 << 20),
                    ..Default::default()
                },
            ),
            (
                "pids",
                CgroupLimits {
                    pids: Some(3),
                    ..Default::default()
                },
            ),
            (
                "cpu",
                CgroupLimits {
                    cpu_millis: Some(100),
                    ..Default::default()
                },
            ),
        ] {
            let msg = h.create_run("r", &limits).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("the {name} controller is not available")),
                "{msg}"
            );
            assert!(!fake.path("sys/system.slice/ec.service/runs/r").exists());
        }
        // Without limits a run still gets a cgroup: tree kill and CPU time work.
        let run = h.create_run("r", &CgroupLimits::default()).unwrap();
        assert_eq!(run.events().unwrap().oom_kills, None);
        assert!(run.stats().unwrap().cpu.is_some());
    }

    #[test]
    fn root_outside_delegation_uses_a_dedicated_subtree() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: the dedicated v2 subtree is only used as root");
            return;
        }
        let fake = FakeTree::v2("/user.slice/session-1.scope", "cpu memory pids");
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let run = h.create_run("r1", &all_limits()).unwrap();
        assert_eq!(run.paths(), vec![fake.path("sys/enforcecore/r1")]);
        assert_eq!(
            fake.read("sys/cgroup.subtree_control"),
            "cpu memory pids",
            "already enabled"
        );
        assert_eq!(
            fake.read("sys/enforcecore/cgroup.subtree_control"),
            "+memory +pids +cpu"
        );
        assert_eq!(
            fake.read("sys/user.slice/session-1.scope/cgroup.subtree_control"),
            ""
        );
        run.remove().unwrap();
        assert!(
            !fake.path("sys/enforcecore").exists(),
            "empty dedicated parent removed"
        );
    }

    #[test]
    fn hybrid_host_can_prefer_the_unified_side() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: the dedicated v2 subtree is only used as root");
            return;
        }
        let fake = FakeTree::hybrid();
        let h = Hierarchy::detect_at(&fake.proc_root(), &fake.sys_root()).unwrap();
        let h = h.prefer(CgroupVersion::V2).unwrap();
        assert_eq!(h.version(), CgroupVersion::V2);
        let run = h.create_run("r1", &CgroupLimits::default()).unwrap();
        assert_eq!(run.paths(), vec![fake.path("sys/unified/enforcecore/r1")]);
        assert_eq!(run.join_fds().len(), 1);
        let err = h.create_run("r2", &all_limits()).unwrap_err().to_string();
        assert!(err.contains("(available: hugetlb)"), "{err}");
        let back = h.prefer(CgroupVersion::V1).unwrap();
        assert_eq!(back.version(), CgroupVersion::V1);
    }

    #[test]
    fn mode_is_read_from_the_delegation_xattr() {
        let fake = FakeTree::v2("/system.slice/ec.service", "memory");
        mark_delegated(&fake, "sys/system.slice/ec.service");
        let mount = super::super::detect::detect(&fake.proc_root(), &fake.sys_root())
            .unwrap()
            .v2
            .unwrap();
        let h = super::V2Hierarchy::new(&mount).unwrap();
        assert!(matches!(
            h.mode,
            Mode::Delegated {
                move_self: true,
                ..
            }
        ));
        assert_eq!(h.runs_parent, fake.path("sys/system.slice/ec.service/runs"));
    }
}
