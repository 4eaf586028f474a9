//! The `supervise` API the daemon and the audit trail build on: the `started` hook
//! is awaited before the tool is exec'd, a failing hook aborts the run, the
//! `exited` hook sees the same report the caller gets, and concurrent runs on one
//! runtime stay apart.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use enforcecore::policy::Policy;
use enforcecore::report::{Denial, EnforcementReport, ExitReport};
use enforcecore::supervise::{self, Observer, ObserverError, RunRequest, SuperviseError};

use super::{Knobs, ready};
use crate::util::Dir;

/// Records the hooks; optionally fails `started`; checks a marker file at `started`.
#[derive(Default)]
struct Recorder {
    fail_started: bool,
    marker: Option<PathBuf>,
    events: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Observer for Recorder {
    async fn started(&self, e: &EnforcementReport) -> Result<(), ObserverError> {
        // Give an exec'd tool every chance to have run already.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = self.marker.as_deref().is_some_and(Path::exists);
        self.events
            .lock()
            .unwrap()
            .push(format!("started uid={} marker_seen={seen}", e.uid));
        if self.fail_started {
            return Err("audit trail unavailable".into());
        }
        Ok(())
    }
    async fn denial(&self, d: Denial) -> Result<(), ObserverError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("denial {}", d.object));
        Ok(())
    }
    async fn exited(&self, x: &ExitReport) -> Result<(), ObserverError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("exited {:?}", x.code));
        Ok(())
    }
}

fn policy() -> (super::TestPolicy, Policy) {
    let p = Knobs {
        write: vec!["/tmp".into()],
        ..Knobs::default()
    }
    .write();
    let loaded = enforcecore::policy::load(&p.path).unwrap();
    (p, loaded)
}

fn request<'a>(policy: &'a Policy, argv: &[&str]) -> RunRequest<'a> {
    let argv = argv.iter().map(OsString::from).collect();
    RunRequest::detached(supervise::new_run_id().unwrap(), policy, argv)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn started_is_awaited_before_exec_and_a_failure_aborts_the_run() {
    if !ready() {
        return;
    }
    let (_p, policy) = policy();
    let d = Dir::new("observer");
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let marker = d.join("ran");
    let touch = format!("touch {}", marker.display());
    let rt = runtime();

    let ok = Recorder {
        marker: Some(marker.clone()),
        ..Recorder::default()
    };
    let out = rt
        .block_on(supervise::execute(
            request(&policy, &["/bin/sh", "-c", &touch]),
            &ok,
        ))
        .unwrap();
    assert_eq!(out.exit.code, Some(0));
    assert!(marker.exists(), "the tool did not run");
    assert_eq!(
        *ok.events.lock().unwrap(),
        ["started uid=65534 marker_seen=false", "exited Some(0)"]
    );

    std::fs::remove_file(&marker).unwrap();
    let failing = Recorder {
        fail_started: true,
        marker: Some(marker.clone()),
        ..Recorder::default()
    };
    let err = rt
        .block_on(supervise::execute(
            request(&policy, &["/bin/sh", "-c", &touch]),
            &failing,
        ))
        .unwrap_err();
    assert!(matches!(err, SuperviseError::Observer(_)), "{err}");
    assert_eq!(err.exit_code(), 125);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !marker.exists(),
        "the tool ran although its start was not recorded"
    );
}

#[test]
fn concurrent_runs_on_one_runtime_stay_apart() {
    if !ready() {
        return;
    }
    let (_p, policy) = policy();
    let policy = std::sync::Arc::new(policy);
    let rt = runtime();
    let results = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let policy = policy.clone();
            // tokio::spawn: the run future must be Send, as the daemon needs.
            tasks.spawn(async move {
                let script = format!("sleep 0.{i}; exit {i}");
                let rec = Recorder::default();
                let out = supervise::execute(request(&policy, &["/bin/sh", "-c", &script]), &rec)
                    .await
                    .unwrap();
                (i, out.exit.code, out.enforcement.run_dir)
            });
        }
        tasks.join_all().await
    });
    let mut dirs = std::collections::BTreeSet::new();
    for (i, code, dir) in results {
        assert_eq!(code, Some(i));
        assert!(dirs.insert(dir), "two runs shared a run directory");
    }
    assert_eq!(dirs.len(), 8);
}

#[test]
fn a_cancelled_run_leaves_nothing_behind() {
    if !ready() {
        return;
    }
    let (_p, policy) = policy();
    let marker = format!("7{}.{}", std::process::id(), line!());
    let script = format!("(setsid sleep {marker} &); sleep {marker}");
    let rec = Recorder::default();
    let req = request(&policy, &["/bin/sh", "-c", &script]);
    let run_id = req.run_id.clone();
    let rt = runtime();
    rt.block_on(async {
        // The daemon drops a run's future when its client goes away.
        let r = tokio::time::timeout(Duration::from_secs(2), supervise::execute(req, &rec)).await;
        assert!(r.is_err(), "the run should still have been going");
    });
    assert!(
        super::processes_with(&marker).is_empty(),
        "processes survived"
    );
    let dir = enforcecore::sandbox::rundir::default_root(0).join(&run_id);
    assert!(!super::exists(&dir), "run directory left behind");
    let cgroups = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in cgroups.lines().filter(|l| l.contains(" - cgroup ")) {
        let mount = line.split_whitespace().nth(4).unwrap();
        let found = std::process::Command::new("find")
            .args([mount, "-maxdepth", "5", "-name", &run_id])
            .output()
            .unwrap();
        assert!(found.stdout.is_empty(), "cgroup left behind under {mount}");
    }
}
