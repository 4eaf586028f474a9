//! Resource limits: the cgroup (memory, pids, cpu) and rlimits, as the kernel
//! applies them — and the v2 path (`CLONE_INTO_CGROUP`) through the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use enforcecore::report::Caller;
use enforcecore::sandbox::cgroup::{CgroupPool, CgroupVersion, Hierarchy};
use enforcecore::supervise::{self, Filters, Input, NoObserver, Output, RunRequest, Streams};

use super::{Knobs, denied_objects, processes_with, py, ready, sh};
use crate::util;

fn limits(l: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[test]
fn a_memory_bomb_is_oom_killed_and_reported() {
    if !ready() {
        return;
    }
    let bomb = py("b = []\nwhile True: b.append(bytearray(8 << 20))");
    let p = Knobs {
        limits: limits(&[("memory", "64MiB"), ("wall_time", "60s")]),
        ..Knobs::default()
    }
    .write();
    let (out, report) = p.run_json(&bomb);
    util::assert_code(&out, 128 + 9);
    assert_eq!(report["exit"]["cause"], "oom");
    assert!(
        denied_objects(&report).contains(&"memory"),
        "{}",
        report["denials"]
    );
    // Under the limit, the same allocation pattern completes.
    let fits = py("b = [bytearray(8 << 20) for _ in range(4)]\nprint(len(b))");
    let (out, report) = p.run_json(&fits);
    util::assert_code(&out, 0);
    assert_eq!(report["exit"]["cause"], "exited");
    assert!(report["exit"]["peak_memory_bytes"].as_u64().unwrap() >= 32 << 20);
}

#[test]
fn fork_fails_with_eagain_at_the_pids_limit() {
    if !ready() {
        return;
    }
    let code = "import os, errno, time\n\
                n = 0\n\
                try:\n\
                \x20   for _ in range(20):\n\
                \x20       if os.fork() == 0:\n\
                \x20           time.sleep(5); os._exit(0)\n\
                \x20       n += 1\n\
                except OSError as e:\n\
                \x20   print(errno.errorcode[e.errno])\n\
                print(n)";
    let tight = Knobs {
        limits: limits(&[("pids", "8")]),
        ..Knobs::default()
    }
    .write();
    let (out, report) = tight.run_json(&py(code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "EAGAIN\n7\n");
    assert!(
        denied_objects(&report).contains(&"pids"),
        "{}",
        report["denials"]
    );
    let roomy = Knobs {
        limits: limits(&[("pids", "64")]),
        ..Knobs::default()
    }
    .write();
    let out = roomy.run(&py(code));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "20\n");
}

#[test]
fn a_fork_bomb_is_contained_and_cleaned_up() {
    if !ready() {
        return;
    }
    let marker = format!("bomb{}x{}", std::process::id(), line!());
    let p = Knobs {
        limits: limits(&[("pids", "32"), ("wall_time", "3s"), ("memory", "256MiB")]),
        ..Knobs::default()
    }
    .write();
    // The bomb goes off in the background; the main process then becomes
    // `sleep` without forking, so the pids limit cannot end it early (a shell
    // that cannot fork exits 2) and the run always ends by its timeout.
    let script = format!("b() {{ b | b & }}; : {marker}; b & exec sleep 30");
    let (out, report) = p.run_json(&sh(&script));
    util::assert_code(&out, 124);
    assert!(report["exit"]["cpu_ms"].as_u64().is_some());
    assert!(
        processes_with(&marker).is_empty(),
        "the bomb outlived its run"
    );
    for c in super::cgroup_paths(&report) {
        assert!(!super::exists(&c), "{} left behind", c.display());
    }
}

#[test]
fn rlimits_are_applied() {
    if !ready() {
        return;
    }
    let p = Knobs {
        limits: limits(&[("open_files", "32"), ("file_size", "4096")]),
        ..Knobs::default()
    }
    .write();
    let out = p.run(&sh(
        "ulimit -n; ulimit -c; head -c 8192 /dev/urandom > big; echo $?; wc -c < big",
    ));
    let s = util::stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(&lines[..2], ["32", "0"], "{s}");
    // The write beyond RLIMIT_FSIZE fails (SIGXFSZ kills `head`), 4096 bytes land.
    assert_ne!(lines[2], "0", "{s}");
    assert_eq!(lines[3].trim(), "4096", "{s}");
}

#[test]
fn cgroup_limits_are_written_where_the_kernel_reads_them() {
    if !ready() {
        return;
    }
    let p = Knobs {
        limits: limits(&[("memory", "96MiB"), ("pids", "12"), ("cpu", "0.5")]),
        ..Knobs::default()
    }
    .write();
    let child = p
        .cmd(&["--json"], &sh("sleep 2"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the tool sleeps, find its cgroup by its pid.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let dirs = loop {
        let found: Vec<PathBuf> = ["pids", "cpu"]
            .iter()
            .filter_map(|c| run_dir_of_sleep(c))
            .collect();
        if found.len() == 2 {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "run cgroup not found");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(read(dirs[0].join("pids.max")), "12");
    assert_eq!(read(dirs[1].join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(dirs[1].join("cpu.cfs_period_us")), "100000");
    let out = child.wait_with_output().unwrap();
    util::assert_code(&out, 0);
    let report: serde_json::Value =
        serde_json::from_str(util::stderr(&out).lines().last().unwrap()).unwrap();
    assert_eq!(report["enforcement"]["cgroup"]["memory_bytes"], 96u64 << 20);
    let mem = super::cgroup_paths(&report)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/memory/"))
        .unwrap();
    assert!(!super::exists(&mem));
}

/// The v1 cgroup directory of controller `c` holding a `sleep 2` of uid 65534.
fn run_dir_of_sleep(c: &str) -> Option<PathBuf> {
    for pid in processes_with("sleep 2") {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        if !status.contains("Uid:\t65534") {
            continue;
        }
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = cg.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|x| x == c).then(|| path.to_string())
        })?;
        return Some(PathBuf::from(format!("/sys/fs/cgroup/{c}{rel}")));
    }
    None
}

#[test]
fn on_cgroup_v2_the_child_is_created_inside_its_cgroup() {
    if !ready() {
        return;
    }
    let mut hierarchy = None;
    let ok = util::require("cgroup-v2", || {
        let h = Hierarchy::detect().map_err(|e| e.to_string())?;
        hierarchy = Some(h.prefer(CgroupVersion::V2).map_err(|e| e.to_string())?);
        Ok(())
    });
    let (true, Some(h)) = (ok, hierarchy) else {
        return;
    };
    // The unified hierarchy here has no controllers: a sandbox without cgroup limits.
    let policy = Knobs {
        limits: limits(&[("wall_time", "30s")]),
        ..Knobs::default()
    }
    .write();
    let policy = enforcecore::policy::load(&policy.path).unwrap();
    let pool = Arc::new(CgroupPool::new(h, 1).unwrap());
    let out_dir = util::Dir::new("v2out");
    let out_path = out_dir.join("stdout");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt
        .block_on(supervise::execute(
            RunRequest {
                run_id: supervise::new_run_id().unwrap(),
                tool: None,
                argv: vec![
                    OsString::from("/bin/cat"),
                    OsString::from("/proc/self/cgroup"),
                ],
                sandbox: &policy.sandbox,
                caller: Caller::default(),
                caller_env: vec![],
                stdio: Streams {
                    stdin: Input::Null,
                    stdout: Output::Fd(out_file.into()),
                    stderr: Output::Null,
                },
                filters: Filters::passthrough(),
                runs_root: None,
                cgroups: supervise::Cgroups::Pool(pool.clone()),
                shutdown: None,
                kernel_audit: policy.denials.kernel_audit.value.into(),
            },
            &NoObserver,
        ))
        .unwrap();
    assert_eq!(outcome.exit.code, Some(0));
    assert_eq!(outcome.enforcement.cgroup.version, "v2");
    let dir = &outcome.enforcement.cgroup.paths[0];
    let rel = dir
        .strip_prefix("/sys/fs/cgroup/unified")
        .expect("a unified-hierarchy path");
    let seen = std::fs::read_to_string(&out_path).unwrap();
    let line = seen
        .lines()
        .find(|l| l.starts_with("0::"))
        .expect("v2 line");
    assert_eq!(line, format!("0::/{}", rel.display()));
    drop(pool);
}
