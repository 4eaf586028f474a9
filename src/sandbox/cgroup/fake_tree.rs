//! A fake cgroup filesystem in a temp dir, for unit tests without root.
//!
//! Owns a miniature "kernel": `proc/self/{mountinfo,cgroup}` describing a layout,
//! and a `sys/fs/cgroup` tree whose directories are populated with control files
//! when the cgroup code creates them (v1: the files of the hierarchy's
//! controllers; v2: core files plus those of the controllers the parent enabled
//! in `cgroup.subtree_control`) and emptied when it removes them, as cgroupfs
//! does. Tests then read back exactly what was written. Test-only.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A registered fake: v1 mount points with their controllers, v2 mount points.
struct Registered {
    root: PathBuf,
    v1: Vec<(PathBuf, Vec<String>)>,
    v2: Vec<PathBuf>,
    memsw: bool,
}

static FAKES: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

/// Called by `control::create_dir` under `cfg(test)`: populate a new directory
/// inside a registered fake like cgroupfs would.
pub(crate) fn on_mkdir(dir: &Path) {
    let fakes = FAKES.lock().unwrap_or_else(|p| p.into_inner());
    let Some(fake) = fakes.iter().find(|f| dir.starts_with(&f.root)) else {
        return;
    };
    if let Some((_, ctrls)) = fake.v1.iter().find(|(m, _)| dir.starts_with(m)) {
        populate_v1(dir, ctrls, fake.memsw);
    } else if fake.v2.iter().any(|m| dir.starts_with(m)) {
        populate_v2(dir);
    }
}

/// Called by `control::remove_dir` under `cfg(test)`: cgroupfs removes a
/// directory with its control files, but only when it has no child cgroups.
pub(crate) fn before_rmdir(dir: &Path) {
    let fakes = FAKES.lock().unwrap_or_else(|p| p.into_inner());
    if !fakes.iter().any(|f| dir.starts_with(&f.root)) {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let entries: Vec<_> = entries.flatten().collect();
    if entries
        .iter()
        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    {
        return;
    }
    for e in entries {
        let _ = fs::remove_file(e.path());
    }
}

fn put(dir: &Path, name: &str, content: &str) {
    fs::write(dir.join(name), content).expect("write fake control file");
}

fn populate_v1(dir: &Path, ctrls: &[String], memsw: bool) {
    put(dir, "cgroup.procs", "");
    put(dir, "tasks", "");
    for c in ctrls {
        match c.as_str() {
            "memory" => {
                put(dir, "memory.limit_in_bytes", "9223372036854771712\n");
                if memsw {
                    put(dir, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
                }
                put(
                    dir,
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                );
                put(dir, "memory.max_usage_in_bytes", "0\n");
            }
            "pids" => {
                put(dir, "pids.max", "max\n");
                put(dir, "pids.events", "max 0\n");
            }
            "cpu" => {
                put(dir, "cpu.cfs_period_us", "100000\n");
                put(dir, "cpu.cfs_quota_us", "-1\n");
            }
            "cpuacct" => put(dir, "cpuacct.usage", "0\n"),
            "freezer" => put(dir, "freezer.state", "THAWED\n"),
            _ => {}
        }
    }
}

fn enabled_in(dir: &Path) -> BTreeSet<String> {
    fs::read_to_string(dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| w.trim_start_matches('+').to_owned())
        .collect()
}

fn populate_v2(dir: &Path) {
    let ctrls = dir.parent().map(enabled_in).unwrap_or_default();
    let list: Vec<&str> = ctrls.iter().map(String::as_str).collect();
    put(dir, "cgroup.procs", "");
    put(dir, "cgroup.kill", "");
    put(dir, "cgroup.freeze", "0\n");
    put(dir, "cgroup.controllers", &format!("{}\n", list.join(" ")));
    put(dir, "cgroup.subtree_control", "");
    put(
        dir,
        "cpu.stat",
        "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    );
    for c in &ctrls {
        match c.as_str() {
            "memory" => {
                put(dir, "memory.max", "max\n");
                put(dir, "memory.swap.max", "max\n");
                put(dir, "memory.oom.group", "0\n");
                put(
                    dir,
                    "memory.events",
                    "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
                );
                put(dir, "memory.peak", "0\n");
            }
            "pids" => {
                put(dir, "pids.max", "max\n");
                put(dir, "pids.events", "max 0\n");
            }
            "cpu" => put(dir, "cpu.max", "max 100000\n"),
            _ => {}
        }
    }
}

/// A fake host. Unregistered (and deleted) on drop.
pub(crate) struct FakeTree {
    tmp: tempfile::TempDir,
}

impl FakeTree {
    pub fn build(mountinfo: &str, cgroup: &str, memsw: bool) -> FakeTree {
        let tmp = tempfile::tempdir().expect("temp dir");
        let proc_self = tmp.path().join("proc/self");
        fs::create_dir_all(&proc_self).unwrap();
        fs::write(proc_self.join("mountinfo"), mountinfo).unwrap();
        fs::write(proc_self.join("cgroup"), cgroup).unwrap();
        let sys = tmp.path().join("sys");
        let mounts = super::detect::parse_mountinfo(mountinfo).unwrap();
        let rebase = |m: &Path| sys.join(m.strip_prefix("/sys/fs/cgroup").unwrap());
        let mut reg = Registered {
            root: tmp.path().to_path_buf(),
            v1: Vec::new(),
            v2: Vec::new(),
            memsw,
        };
        for m in &mounts {
            let at = rebase(&m.mount_point);
            fs::create_dir_all(&at).unwrap();
            if m.fstype == "cgroup2" {
                put(&at, "cgroup.procs", "1\n");
                put(&at, "cgroup.controllers", "");
                put(&at, "cgroup.subtree_control", "");
                reg.v2.push(at);
            } else {
                let ctrls = m
                    .super_options
                    .iter()
                    .filter(|o| *o != "rw")
                    .cloned()
                    .collect();
                reg.v1.push((at, ctrls));
            }
        }
        FAKES.lock().unwrap().push(reg);
        FakeTree { tmp }
    }

    /// This development machine: v1 cpu, cpuacct, memory, freezer, pids (memsw
    /// on), the supervisor in memory cgroup `/process_api/abc`, a controller-less v2.
    pub fn hybrid() -> FakeTree {
        let fake = FakeTree::build(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
             33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n\
             39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            "8:pids:/\n6:freezer:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n",
            true,
        );
        fake.mkdir_cgroup("sys/memory/process_api");
        fake.mkdir_cgroup("sys/memory/process_api/abc");
        fake.write("sys/unified/cgroup.controllers", "hugetlb\n");
        fake
    }

    /// A classic v1 systemd host: `cpu,cpuacct` co-mounted, no pids, no memsw.
    pub fn v1_comounted() -> FakeTree {
        FakeTree::build(
            "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            "3:cpu,cpuacct:/system.slice/x.service\n2:memory:/system.slice/x.service\n",
            false,
        )
        .with_dirs(&[
            "sys/cpu,cpuacct/system.slice/x.service",
            "sys/memory/system.slice/x.service",
        ])
    }

    /// A pure v2 host; the supervisor in `own` (e.g. `/system.slice/ec.service`)
    /// and `controllers` available at the top.
    pub fn v2(own: &str, controllers: &str) -> FakeTree {
        let fake = FakeTree::build(
            "28 22 0:25 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
            &format!("0::{own}\n"),
            false,
        );
        fake.write("sys/cgroup.controllers", &format!("{controllers}\n"));
        if own != "/" {
            let mut path = String::from("sys");
            for part in own.trim_start_matches('/').split('/') {
                path = format!("{path}/{part}");
                fake.write(
                    &format!("{}/cgroup.subtree_control", parent_of(&path)),
                    controllers,
                );
                fake.mkdir_cgroup(&path);
            }
        }
        fake
    }

    fn with_dirs(self, dirs: &[&str]) -> FakeTree {
        for d in dirs {
            let mut path = String::new();
            for part in d.split('/') {
                path = if path.is_empty() {
                    part.to_owned()
                } else {
                    format!("{path}/{part}")
                };
                if !self.path(&path).exists() {
                    self.mkdir_cgroup(&path);
                }
            }
        }
        self
    }

    /// Create a cgroup directory the way the kernel would (populated).
    pub fn mkdir_cgroup(&self, rel: &str) {
        let p = self.path(rel);
        fs::create_dir(&p).unwrap();
        on_mkdir(&p);
    }

    /// `proc` root to inject.
    pub fn proc_root(&self) -> PathBuf {
        self.tmp.path().join("proc")
    }

    /// `/sys/fs/cgroup` root to inject.
    pub fn sys_root(&self) -> PathBuf {
        self.tmp.path().join("sys")
    }

    /// A path inside the fake.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Read a file of the fake, trimmed.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("read {rel}: {e}"))
            .trim()
            .to_owned()
    }

    /// Write a file of the fake (simulating the kernel updating a counter).
    pub fn write(&self, rel: &str, content: &str) {
        fs::write(self.path(rel), content).unwrap();
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(p, _)| p)
}

impl Drop for FakeTree {
    fn drop(&mut self) {
        FAKES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|f| f.root != self.tmp.path());
    }
}
