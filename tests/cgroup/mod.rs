//! The cgroup layer on the real kernel: v1 controllers and the unified v2 hierarchy.
//!
//! Root-only. Every test asserts what the kernel did (a SIGKILL from the OOM
//! killer, a refused fork counted in `pids.events`, processes gone, directories
//! gone) and removes every cgroup it created, even when it fails (the run's
//! `Drop` kills and removes).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use enforcecore::sandbox::cgroup::{CgroupLimits, CgroupPool, CgroupVersion, Hierarchy, RunCgroup};

use crate::util;

/// A run id unique across tests, test processes and worktrees on this host.
fn run_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host's v1 hierarchies with the controllers these tests need, or a skip.
fn v1() -> Option<Hierarchy> {
    let probe = || -> Result<Hierarchy, String> {
        util::probe_root()?;
        let h = Hierarchy::detect().map_err(|e| e.to_string())?;
        let h = h.prefer(CgroupVersion::V1).map_err(|e| e.to_string())?;
        let d = h.describe();
        for c in ["memory", "pids", "cpuacct", "freezer"] {
            if !d.controllers.iter().any(|s| s.name == c && s.available) {
                return Err(format!("v1 {c} controller not mounted"));
            }
        }
        Ok(h)
    };
    let mut found = None;
    util::require("cgroup-v1", || probe().map(|h| found = Some(h)))
        .then_some(())
        .and(found)
}

/// The host's unified hierarchy, or a skip.
fn v2() -> Option<Hierarchy> {
    let mut found = None;
    let ok = util::require("cgroup-v2", || {
        util::probe_root()?;
        let h = Hierarchy::detect().map_err(|e| e.to_string())?;
        found = Some(h.prefer(CgroupVersion::V2).map_err(|e| e.to_string())?);
        Ok(())
    });
    ok.then_some(()).and(found)
}

/// `sh -c script`, held at a `read` until [`release`] so it forks nothing
/// before it is inside the run's cgroup.
fn held_shell(script: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read _go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release the shell");
}

/// Spawn `script` so that it joins through `join_fds`: each fd is mapped into the
/// child, which writes `0` to it (moving itself) before running the workload.
fn joined_shell(run: &RunCgroup, script: &str) -> Child {
    let mut mappings = Vec::new();
    let mut joins = String::new();
    for (i, fd) in run.join_fds().iter().enumerate() {
        let child_fd = 3 + i as i32;
        mappings.push(FdMapping {
            parent_fd: fd.try_clone().expect("dup join fd"),
            child_fd,
        });
        joins.push_str(&format!("printf 0 >&{child_fd} && exec {child_fd}>&- && "));
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("{joins}{{ {script}\n}}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.fd_mappings(mappings).expect("map join fds");
    cmd.spawn().expect("spawn sh")
}

/// Poll `cond` for up to 20 s (progress, not timing, is asserted).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process is gone (or a zombie nobody can run any more).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn assert_removed(paths: &[std::path::PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn v1_memory_bomb_is_oom_killed_and_reported() {
    let Some(h) = v1() else { return };
    let limits = CgroupLimits {
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let run = h.create_run(&run_id("oom"), &limits).unwrap();
    let mem = run
        .paths()
        .into_iter()
        .find(|p| p.join("memory.limit_in_bytes").exists())
        .unwrap();
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (32u64 << 20).to_string()
    );
    // The shell itself holds 100 MB of command substitution output.
    let mut child =
        held_shell("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived ${#x}");
    run.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the kernel OOM-killed the shell: {status:?}"
    );
    let ev = run.events().unwrap();
    assert!(ev.oom_kills >= Some(1), "oom kill reported: {ev:?}");
    let paths = run.paths();
    run.remove().unwrap();
    assert_removed(&paths);
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_owned()
}

#[test]
fn v1_fork_loop_hits_pids_max_and_is_reported() {
    let Some(h) = v1() else { return };
    let limits = CgroupLimits {
        pids: Some(6),
        ..Default::default()
    };
    let run = h.create_run(&run_id("pids"), &limits).unwrap();
    let mut child = held_shell("i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); done; wait");
    run.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    // A failed fork is fatal to a non-interactive shell: it reports and exits,
    // leaving its sleeps behind in the cgroup.
    let mut status = None;
    wait_for("the shell to die of a refused fork", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(!status.unwrap().success());
    let ev = run.events().unwrap();
    assert!(ev.pids_max >= Some(1), "refused fork counted: {ev:?}");
    assert!(run.pids().unwrap().len() <= 6, "pids.max holds");
    run.kill_all().unwrap();
    assert!(run.pids().unwrap().is_empty());
    // Read after the kill: the sleeps hold the stderr pipe open.
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert!(
        err.to_lowercase().contains("fork"),
        "the shell saw fork fail: {err}"
    );
    run.remove().unwrap();
}

#[test]
fn v1_kill_all_kills_a_forking_tree_with_grandchildren() {
    let Some(h) = v1() else { return };
    let run = h
        .create_run(&run_id("kill"), &CgroupLimits::default())
        .unwrap();
    // Joined the way the supervisor does it: the child writes "0" to each fd.
    let mut child = joined_shell(
        &run,
        "sh -c 'sleep 300 & sleep 300 & while :; do sleep 300 & sleep 1; done' & sleep 300 & wait",
    );
    wait_for("the tree to grow", || run.pids().unwrap().len() >= 6);
    let before = run.pids().unwrap();
    assert!(
        before.contains(&(child.id() as i32)),
        "the child joined via join_fds"
    );
    run.kill_all().unwrap();
    assert!(run.pids().unwrap().is_empty());
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    for pid in before {
        assert!(dead(pid), "pid {pid} survived kill_all");
    }
    let paths = run.paths();
    run.remove().unwrap();
    assert_removed(&paths);
}

#[test]
fn v1_stats_count_grandchildren_cpu_and_peak_memory() {
    let Some(h) = v1() else { return };
    let run = h
        .create_run(&run_id("stats"), &CgroupLimits::default())
        .unwrap();
    // An orphaned grandchild: wait4 on the shell never sees its CPU time.
    let mut child = held_shell(
        "( x=$(head -c 24000000 /dev/zero | tr '\\0' a); i=0; \
           while [ $i -lt 100000 ]; do i=$((i+1)); done ) & exit 0",
    );
    run.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    assert!(child.wait().unwrap().success());
    wait_for("the grandchild to finish", || {
        run.pids().unwrap().is_empty()
    });
    let st = run.stats().unwrap();
    let cpu = st.cpu.expect("cpuacct");
    assert!(
        cpu >= Duration::from_millis(10),
        "grandchild CPU counted: {cpu:?}"
    );
    let peak = st.peak_memory_bytes.expect("memory");
    assert!(peak >= 24_000_000, "peak covers the 24 MB string: {peak}");
    run.remove().unwrap();
}

#[test]
fn v1_limits_land_in_the_kernel_files() {
    let Some(h) = v1() else { return };
    let limits = CgroupLimits {
        memory_bytes: Some(64 << 20),
        pids: Some(17),
        cpu_millis: Some(250),
    };
    let run = h.create_run(&run_id("limits"), &limits).unwrap();
    let find = |f: &str| {
        run.paths()
            .into_iter()
            .find(|p| p.join(f).exists())
            .unwrap()
            .join(f)
    };
    assert_eq!(
        read(&find("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    if find("memory.limit_in_bytes")
        .with_file_name("memory.memsw.limit_in_bytes")
        .exists()
    {
        assert_eq!(
            read(&find("memory.memsw.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
    }
    assert_eq!(read(&find("pids.max")), "17");
    assert_eq!(read(&find("cpu.cfs_quota_us")), "25000");
    assert_eq!(read(&find("cpu.cfs_period_us")), "100000");
    let report = run.report();
    assert_eq!(report.version, "v1");
    assert_eq!(report.pids, Some(17));
    let paths = run.paths();
    drop(run);
    assert_removed(&paths);
}

#[test]
fn v1_pool_hands_out_fresh_cgroups_and_cleans_up() {
    let Some(h) = v1() else { return };
    let pool = CgroupPool::new(h, 2).unwrap();
    assert_eq!(pool.wait_ready(2, Duration::from_secs(20)), 2);
    let limits = CgroupLimits {
        pids: Some(9),
        ..Default::default()
    };
    let run = pool.create_run(&run_id("pool"), &limits).unwrap();
    let pids_max = run
        .paths()
        .into_iter()
        .find(|p| p.join("pids.max").exists())
        .unwrap();
    assert_eq!(read(&pids_max.join("pids.max")), "9");
    let mut child = held_shell("sleep 300");
    run.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let paths = run.paths();
    pool.retire(run);
    assert_eq!(
        child.wait().unwrap().signal(),
        Some(9),
        "retire kills the run"
    );
    wait_for("retired run removed", || paths.iter().all(|p| !p.exists()));
    let held: Vec<_> = (0..2)
        .map(|i| pool.create_run(&run_id(&format!("p{i}")), &limits).unwrap())
        .collect();
    let held_paths: Vec<_> = held.iter().flat_map(RunCgroup::paths).collect();
    drop(held);
    drop(pool);
    assert_removed(&held_paths);
}

#[test]
fn v2_unified_create_join_kill_remove() {
    let Some(h) = v2() else { return };
    let run = h
        .create_run(&run_id("v2"), &CgroupLimits::default())
        .unwrap();
    assert_eq!(run.version(), CgroupVersion::V2);
    let dir = run.paths().remove(0);
    assert!(dir.join("cgroup.kill").exists());
    let mut child = joined_shell(
        &run,
        "sh -c 'sleep 300 & sleep 300 & wait' & sleep 300 & wait",
    );
    wait_for("the tree to grow", || run.pids().unwrap().len() >= 5);
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    let rel = dir
        .strip_prefix(h.describe().runs_parents[0].parent().unwrap())
        .unwrap();
    assert!(cg.contains(&format!("0::/{}", rel.display())), "{cg}");
    let before = run.pids().unwrap();
    run.kill_all().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    for pid in before {
        assert!(dead(pid), "pid {pid} survived cgroup.kill");
    }
    let st = run.stats().unwrap();
    assert!(st.cpu.is_some(), "cpu.stat is always there on v2");
    run.remove().unwrap();
    assert!(!dir.exists());
}

#[test]
fn v2_without_memory_controller_fails_closed() {
    let Some(h) = v2() else { return };
    let d = h.describe();
    if d.controllers
        .iter()
        .any(|c| c.name == "memory" && c.available)
    {
        eprintln!("SKIPPED: this unified hierarchy has a memory controller");
        return;
    }
    let id = run_id("v2mem");
    let limits = CgroupLimits {
        memory_bytes: Some(64 << 20),
        ..Default::default()
    };
    let err = h.create_run(&id, &limits).unwrap_err().to_string();
    assert!(
        err.contains("cgroup v2: the memory controller is not available"),
        "{err}"
    );
    assert!(!d.runs_parents[0].join(&id).exists(), "nothing created");
}

#[test]
fn join_fds_are_close_on_exec_and_write_only() {
    let Some(h) = v1() else { return };
    let run = h
        .create_run(&run_id("fds"), &CgroupLimits::default())
        .unwrap();
    for fd in run.join_fds() {
        let fdinfo =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
        let flags = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .unwrap()
            .trim();
        let flags = u32::from_str_radix(flags, 8).unwrap();
        assert_eq!(flags & 0o3, 0o1, "O_WRONLY");
        assert_ne!(flags & 0o2000000, 0, "O_CLOEXEC");
    }
}

/// Set (to the delegated cgroup) when the test binary re-runs itself as the
/// "supervisor" placed inside a delegated v2 cgroup.
const DELEGATED_ENV: &str = "ENFORCECORE_TEST_DELEGATED_CGROUP";

/// Delegated mode on the real unified hierarchy: a cgroup marked
/// `trusted.delegate=1` (as systemd does for `Delegate=yes`) holding the
/// supervisor. The supervisor must move itself into `supervisor/` and put runs
/// in `runs/<id>`. The test binary re-runs this test in a child process that
/// first joins the delegated cgroup, as a service's main process would be.
#[test]
fn v2_delegated_subtree_on_the_real_kernel() {
    if let Ok(base) = std::env::var(DELEGATED_ENV) {
        return delegated_supervisor(Path::new(&base));
    }
    let Some(h) = v2() else { return };
    let d = h.describe();
    if !d.placement.starts_with("dedicated") {
        eprintln!("SKIPPED: the test process is itself in a delegated cgroup");
        return;
    }
    let mount = d.runs_parents[0].parent().unwrap().to_path_buf();
    let base = mount.join(format!("t-deleg-{}", std::process::id()));
    std::fs::create_dir(&base).unwrap();
    let cleanup = Cleanup(vec![
        base.join("runs"),
        base.join("supervisor"),
        base.clone(),
    ]);
    rustix::fs::setxattr(
        &base,
        "trusted.delegate",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("set trusted.delegate on a cgroup2 directory");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cgroup::v2_delegated_subtree_on_the_real_kernel",
            "--nocapture",
        ])
        .env(DELEGATED_ENV, &base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "delegated supervisor failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("delegated-ok"),
        "the child ran the checks"
    );
    assert!(base.join("supervisor").is_dir() && base.join("runs").is_dir());
    drop(cleanup);
    assert!(!base.exists());
}

/// Removes directories (in order) on drop, even when the test fails.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The child: a supervisor inside the delegated cgroup `base`.
fn delegated_supervisor(base: &Path) {
    std::fs::write(base.join("cgroup.procs"), "0").expect("join the delegated cgroup");
    let h = Hierarchy::detect()
        .unwrap()
        .prefer(CgroupVersion::V2)
        .unwrap();
    let d = h.describe();
    assert!(d.placement.starts_with("delegated subtree"), "{d}");
    assert_eq!(d.runs_parents, vec![base.join("runs")]);
    let run = h
        .create_run(&run_id("deleg"), &CgroupLimits::default())
        .unwrap();
    let name = base.file_name().unwrap().to_str().unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(
        own.contains(&format!("0::/{name}/supervisor\n")),
        "moved into the leaf: {own}"
    );
    let mut child = held_shell("sleep 300");
    run.add_pid(child.id() as i32).unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    assert!(cg.contains(&format!("0::/{name}/runs/t-deleg-")), "{cg}");
    release(&mut child);
    run.kill_all().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    let dir = run.paths().remove(0);
    run.remove().unwrap();
    assert!(!dir.exists());
    println!("delegated-ok");
}

#[test]
fn v1_dropping_a_run_kills_its_tree_and_removes_it() {
    let Some(h) = v1() else { return };
    let run = h
        .create_run(&run_id("drop"), &CgroupLimits::default())
        .unwrap();
    let mut child = joined_shell(&run, "sleep 300 & sleep 300 & wait");
    wait_for("the tree to grow", || run.pids().unwrap().len() >= 3);
    let pids = run.pids().unwrap();
    let paths = run.paths();
    drop(run);
    assert_eq!(
        child.wait().unwrap().signal(),
        Some(9),
        "the safety net killed the tree"
    );
    for pid in pids {
        assert!(dead(pid), "pid {pid} survived the drop");
    }
    assert_removed(&paths);
}
