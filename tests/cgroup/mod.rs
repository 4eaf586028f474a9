//! The cgroup layer on the real kernel: v1 controllers and the unified v2 hierarchy.
//!
//! Root-only. Every test asserts what the kernel did (a SIGKILL from the OOM
//! killer, a refused fork counted in `pids.events`, processes gone, directories
//! gone) and removes every cgroup it created, even when it fails (the run's
//! `Drop` kills and removes).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use enforcecore::sandbox::cgroup::{CgroupVersion, Hierarchy, RunCgroup};

use crate::util;

mod v1;
mod v2;

/// A run id unique across tests, test processes and worktrees on this host.
pub(super) fn run_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host's v1 hierarchies with the controllers these tests need, or a skip.
pub(super) fn v1() -> Option<Hierarchy> {
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
pub(super) fn v2() -> Option<Hierarchy> {
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
pub(super) fn held_shell(script: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read _go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

pub(super) fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release the shell");
}

/// Spawn `script` so that it joins through `join_fds`: each fd is mapped into the
/// child, which writes `0` to it (moving itself) before running the workload.
pub(super) fn joined_shell(run: &RunCgroup, script: &str) -> Child {
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
pub(super) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
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
pub(super) fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub(super) fn assert_removed(paths: &[std::path::PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}
