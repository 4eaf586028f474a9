//! cgroup v2 on the real kernel: the unified hierarchy (controller-less on the
//! development machines), dedicated and delegated placement.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use enforcecore::sandbox::cgroup::{CgroupLimits, CgroupVersion, Hierarchy};

use super::{dead, held_shell, joined_shell, release, run_id, v2, wait_for};

#[test]
fn unified_create_join_kill_remove() {
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
fn without_memory_controller_fails_closed() {
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

/// Set (to the delegated cgroup) when the test binary re-runs itself as the
/// "supervisor" placed inside a delegated v2 cgroup.
const DELEGATED_ENV: &str = "ENFORCECORE_TEST_DELEGATED_CGROUP";

/// Delegated mode on the real unified hierarchy: a cgroup marked
/// `trusted.delegate=1` (as systemd does for `Delegate=yes`) holding the
/// supervisor. The supervisor must move itself into `supervisor/` and put runs
/// in `runs/<id>`. The test binary re-runs this test in a child process that
/// first joins the delegated cgroup, as a service's main process would be.
#[test]
fn delegated_subtree_on_the_real_kernel() {
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
            "cgroup::v2::delegated_subtree_on_the_real_kernel",
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
