//! cgroup v1 on the real kernel: the controllers under `/sys/fs/cgroup/<ctrl>`.

use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use enforcecore::sandbox::cgroup::{CgroupLimits, CgroupPool, RunCgroup};

use super::{assert_removed, dead, held_shell, joined_shell, release, run_id, v1, wait_for};

#[test]
fn memory_bomb_is_oom_killed_and_reported() {
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
fn fork_loop_hits_pids_max_and_is_reported() {
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
fn kill_all_kills_a_forking_tree_with_grandchildren() {
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
fn stats_count_grandchildren_cpu_and_peak_memory() {
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
fn limits_land_in_the_kernel_files() {
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
fn pool_hands_out_fresh_cgroups_and_cleans_up() {
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

#[test]
fn dropping_a_run_kills_its_tree_and_removes_it() {
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
