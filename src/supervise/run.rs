//! [`execute`]: the body of one run (the steps are listed in the module above).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::time::timeout;

use super::cgroup::{self as cg, Cgroups, Final};
use super::denials::{self, AuditHold, Feed, Hints};
use super::outcome::{self, Enforced};
use super::reported::Reported;
use super::spawn::{self, Child, SetupFailure};
use super::stdio::{self, OutputCap, ToolPipes};
use super::{
    Clock, DRAIN_GRACE, OUTPUT_SETTLE, Observer, RunOutcome, RunRequest, SETUP_TIMEOUT,
    SuperviseError,
};
use crate::report::{ExitCause, ExitReport};
use crate::sandbox::cgroup::{CgroupLimits, CgroupPool, RunCgroup};
use crate::sandbox::rundir::{self, RunDir};
use crate::sandbox::{Plan, PlanRequest};
use crate::sys::child::Step;
use crate::sys::process::{self, ExitStatus};

/// Run one command under its sandbox. See the module documentation for the steps.
///
/// A run that fails before its start is handed to the observer (the command
/// does not exist, the sandbox cannot be prepared) is reported to it with
/// [`Observer::not_started`], so that it is recorded too.
pub async fn execute(
    req: RunRequest<'_>,
    observer: &dyn Observer,
) -> Result<RunOutcome, SuperviseError> {
    let tracked = Tracked {
        inner: observer,
        started: AtomicBool::new(false),
    };
    let result = run(req, &tracked).await;
    if let Err(e) = &result
        && !tracked.started.load(Ordering::Acquire)
        && let Err(oe) = observer.not_started(e.exit_code(), &e.to_string()).await
    {
        tracing::warn!("recording the run that did not start failed: {oe}");
    }
    result
}

/// The caller's observer, noting whether the run's start was handed to it.
struct Tracked<'a> {
    inner: &'a dyn Observer,
    started: AtomicBool,
}

#[async_trait::async_trait]
impl Observer for Tracked<'_> {
    async fn started(
        &self,
        enforcement: &crate::report::EnforcementReport,
    ) -> Result<(), super::ObserverError> {
        self.started.store(true, Ordering::Release);
        self.inner.started(enforcement).await
    }
    async fn denial(&self, denial: crate::report::Denial) -> Result<(), super::ObserverError> {
        self.inner.denial(denial).await
    }
    async fn denials(&self, batch: &[crate::report::Denial]) -> Result<(), super::ObserverError> {
        self.inner.denials(batch).await
    }
    async fn redacted(
        &self,
        receipts: &[crate::report::RedactionReceipt],
    ) -> Result<(), super::ObserverError> {
        self.inner.redacted(receipts).await
    }
    async fn exited(&self, exit: &ExitReport) -> Result<(), super::ObserverError> {
        self.inner.exited(exit).await
    }
    async fn not_started(&self, code: u8, error: &str) -> Result<(), super::ObserverError> {
        self.inner.not_started(code, error).await
    }
    async fn lost(&self, source: &str, detail: &str) -> Result<(), super::ObserverError> {
        self.inner.lost(source, detail).await
    }
}

async fn run(req: RunRequest<'_>, observer: &dyn Observer) -> Result<RunOutcome, SuperviseError> {
    let clock = Clock(Instant::now());
    stdio::check(&req.stdio).map_err(SuperviseError::Stdio)?;
    let sandbox = req.sandbox;
    let euid = nix::unistd::geteuid().as_raw();
    let limits = CgroupLimits::from_policy(&sandbox.limits);
    let required = euid == 0 || limits != CgroupLimits::default();
    let pool = req.cgroups.pool();

    // 1. The cgroup (blocking I/O) concurrently with the plan: an early cgroup's
    //    own thread writes the limits; otherwise a blocking task creates it.
    let mut source = req.cgroups;
    if let Cgroups::Early(e) = &mut source {
        e.limit(limits);
    }
    // The hold on kernel audit (netlink, a file lock; up to a millisecond or
    // more when it switches audit on) is taken meanwhile too, on its own
    // thread even on a current-thread runtime: it is the longest step here. A
    // hold the caller started early is only joined, when it is needed.
    let hold_task = match req.kernel_audit {
        early @ AuditHold::Early(_) => Blocking::Inline(Box::new(move || early.wait())),
        take => Blocking::Spawned(tokio::task::spawn_blocking(move || take.wait())),
    };
    let cg_task = {
        let id = req.run_id.clone();
        blocking(move || cg::create(&id, &limits, required, source))
    };
    let runs_root = req
        .runs_root
        .clone()
        .unwrap_or_else(|| rundir::default_root(euid));
    let plan = Plan::build(&PlanRequest {
        run_id: &req.run_id,
        sandbox,
        argv: &req.argv,
        caller_env: &req.caller_env,
        runs_root: &runs_root,
    });
    tracing::debug!(us = clock.us(), "run: plan built");
    let cgroup = cg_task.wait().await?;
    let (mut plan, cgroup) = match (plan, cgroup) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), c) => {
            if let Ok(Some(c)) = c {
                dispose(c, pool).await;
            }
            return Err(e.into());
        }
        (Ok(p), Err(e)) => {
            drop(p);
            return Err(e);
        }
    };
    tracing::debug!(us = clock.us(), "run: cgroup ready");
    plan.report.cgroup = cgroup
        .as_ref()
        .map_or_else(cg::none_report, RunCgroup::report);
    let cgroup = cgroup.map(Arc::new);

    // 2. The hold on kernel audit (what it captures is part of the start
    //    record), the pipes and the child. run-started is handed to the
    //    observer first, so that its sync overlaps the child's creation and
    //    sandbox set-up; exec waits for both.
    let mut run = Running {
        child: None,
        cgroup,
        pool,
        plan,
    };
    let hold = match hold_task.wait().await {
        Ok(h) => h,
        Err(e) => return Err(run.fail(e).await),
    };
    run.plan.report.kernel_audit = hold.capture().report();
    tracing::debug!(us = clock.us(), "run: kernel audit held");
    let pipes = match ToolPipes::new() {
        Ok(p) => p,
        Err(e) => return Err(run.fail(SuperviseError::Stdio(e)).await),
    };
    let join = match run.cgroup.as_deref().map(cg::join).transpose() {
        Ok(j) => j.unwrap_or(cg::Join::None),
        Err(e) => return Err(run.fail(SuperviseError::Spawn(e)).await),
    };
    let report = run.plan.report.clone();
    let mut started = std::pin::pin!(observer.started(&report));
    let early = poll_once(started.as_mut()).await;
    let recording = async move {
        match early {
            Some(r) => r,
            None => started.await,
        }
    };
    let child = match spawn::spawn(&run.plan, &pipes.child, &join) {
        Ok(c) => c,
        Err(e) => {
            // run-started may be in the trail: its run ends there, without the tool.
            if recording.await.is_ok() {
                let exit = ExitReport::never_ran(ExitCause::SetupFailed, clock.ms());
                if let Err(oe) = observer.exited(&exit).await {
                    tracing::warn!("recording the failed spawn failed: {oe}");
                }
            }
            return Err(run.fail(SuperviseError::Spawn(e)).await);
        }
    };
    drop(join);
    let pid = child.pid;
    tracing::debug!(us = clock.us(), pid, "run: child spawned");
    let child = run.child.insert(child);
    let pipes = pipes.into_parent();

    // 3. The run registers with the denial feed; the start record becomes
    //    durable while the child applies the sandbox.
    let hints = Arc::new(Hints::new(sandbox));
    let mut feed = Feed::global().register(
        &req.run_id,
        pid,
        run.plan.report.cgroup.paths.clone(),
        (*hints).clone(),
        hold,
    );
    tracing::debug!(us = clock.us(), "run: registered with the denial feed");
    let (recorded, ready) = tokio::join!(recording, timeout(SETUP_TIMEOUT, child.ready()));
    let setup = match ready {
        Err(_) => {
            child.abort().await;
            Err(SuperviseError::SetupTimeout(SETUP_TIMEOUT))
        }
        Ok(Err(f)) => Err(setup_error(f, &run.plan)),
        Ok(Ok(())) => Ok(()),
    };
    tracing::debug!(us = clock.us(), "run: sandbox applied, start recorded");
    match (recorded, setup) {
        (Ok(()), Ok(())) => {}
        (Err(e), _) => {
            child.abort().await;
            return Err(run.fail(SuperviseError::Observer(e)).await);
        }
        (Ok(()), Err(e)) => {
            // run-started is in the trail: its run ends there, without the tool.
            let exit = ExitReport::never_ran(ExitCause::SetupFailed, clock.ms());
            if let Err(oe) = observer.exited(&exit).await {
                tracing::warn!("recording the failed setup failed: {oe}");
            }
            return Err(run.fail(e).await);
        }
    }
    let listener = child.take_listener();

    // 4. exec, then the pumps.
    if let Err(f) = child.go().await {
        let e = setup_error(f, &run.plan);
        let exit = ExitReport::never_ran(ExitCause::ExecFailed, clock.ms());
        if let Err(oe) = observer.exited(&exit).await {
            tracing::warn!("recording the failed exec failed: {oe}");
        }
        return Err(run.fail(e).await);
    }
    tracing::debug!(us = clock.us(), "run: tool exec'd");
    let notify = match (listener, run.plan.seccomp.notify_errno) {
        (Some(l), Some(errno)) => Some(tokio::spawn(denials::notify::serve(
            l,
            errno,
            hints.clone(),
            feed.sender(),
        ))),
        _ => None,
    };
    let mut reported = Reported::default();
    let cap = Arc::new(OutputCap::new(
        sandbox.limits.output_bytes.as_ref().map(|b| b.value),
    ));
    let pumps = match stdio::start(pipes, req.stdio, req.filters, cap.clone()) {
        Ok(p) => p,
        Err(e) => return Err(run.fail(SuperviseError::Stdio(e)).await),
    };

    // 5. Wait for the first of: exit, deadline, output cap.
    enum Event {
        Exited(std::io::Result<ExitStatus>),
        Timeout,
        Cap,
        Shutdown,
    }
    let deadline = sandbox
        .limits
        .wall_time
        .as_ref()
        .map(|w| tokio::time::Instant::now() + w.value);
    let child = run.child.as_mut().expect("spawned");
    let has_shutdown = req.shutdown.is_some();
    let mut shutdown = req
        .shutdown
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    // Denials are reported as they arrive, until one of the others happens.
    let event = loop {
        tokio::select! {
            s = child.wait() => break Event::Exited(s),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() => break Event::Timeout,
            _ = cap.notify.notified() => break Event::Cap,
            _ = &mut shutdown, if has_shutdown => break Event::Shutdown,
            items = feed.next() => reported.items(items, observer).await,
        }
    };
    let (status, enforced) = match event {
        Event::Exited(s) => (s, None),
        Event::Timeout => (run.kill_tree(pid).await, Some(Enforced::Timeout)),
        Event::Cap => (run.kill_tree(pid).await, Some(Enforced::OutputCap)),
        Event::Shutdown => (run.kill_tree(pid).await, Some(Enforced::Shutdown)),
    };
    let duration_ms = clock.ms();
    tracing::debug!(us = clock.us(), "run: main process exited");
    let status = match status {
        Ok(s) => s,
        Err(e) => return Err(run.fail(SuperviseError::Wait(e)).await),
    };

    // 6. The tree dies with its main process; drain, read the cgroup, report.
    //    Usually the output ends with the main process; only when descendants
    //    still hold it is the tree killed first (finish() kills it in any case).
    let [out, err] = pumps.outputs;
    let aborts = [out.abort_handle(), err.abort_handle()];
    let outputs = async {
        let _ = out.await;
        let _ = err.await;
    };
    tokio::pin!(outputs);
    let mut drained = timeout(OUTPUT_SETTLE, &mut outputs).await.is_ok();
    if !drained {
        if let Err(e) = run.kill_tree(pid).await {
            tracing::warn!("killing the tool's process tree failed: {e}");
        }
        drained = timeout(DRAIN_GRACE, &mut outputs).await.is_ok();
        if !drained {
            // A sink that stopped reading, or a pipe held outside the tree.
            tracing::warn!("the tool's output did not drain after the tree was killed; dropped");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }
    pumps.stdin.abort();
    // Every filter hands in its receipts when its task ends; wait for the ends.
    let _ = pumps.stdin.await;
    if !drained {
        outputs.await; // aborted above: ends as soon as the tasks are dropped
    }
    let receipts = std::mem::take(&mut *pumps.receipts.lock().unwrap_or_else(|p| p.into_inner()));
    let enforcement = run.plan.report.clone();
    let (fin, removal) = run.end().await;
    tracing::debug!(us = clock.us(), "run: tree killed, cgroup read");
    // The listener ends when the last process of the filter is gone; then the
    // kernel's records still in flight are attributed (bounded).
    if let Some(task) = notify {
        match timeout(DRAIN_GRACE, task).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => {
                let detail = format!("the seccomp listener failed: {e}");
                reported.lost("seccomp-notify", &detail, observer).await;
            }
            Ok(Err(e)) => {
                let detail = format!("the seccomp listener task failed: {e}");
                reported.lost("seccomp-notify", &detail, observer).await;
            }
            Err(_) => {
                let detail = "the seccomp listener did not end after the tree was killed";
                reported.lost("seccomp-notify", detail, observer).await;
            }
        }
    }
    let items = feed.settle().await;
    tracing::debug!(us = clock.us(), "run: denial feed settled");
    reported.items(items, observer).await;
    reported.close(observer).await;
    let beyond_cap = reported.beyond_cap();
    let mut denials = reported.denials;
    let earlier_error = reported.observer_error;
    let ended = outcome::denials(pid, enforced, fin.events, &sandbox.limits, cap.total());
    let action = sandbox.syscalls.action.value;
    let (code, signal) = match status {
        ExitStatus::Exited(c) => (Some(c), None),
        ExitStatus::Signaled(s) => (None, Some(s)),
    };
    let exit = ExitReport {
        code,
        signal,
        cause: outcome::cause(status, enforced, fin.events, action),
        duration_ms,
        cpu_ms: fin.cpu_ms,
        peak_memory_bytes: fin.peak_memory_bytes,
        output_bytes: cap.total(),
        denials: (denials.len() + ended.len()) as u64 + beyond_cap,
    };
    // 7. The records are synced while the cgroup and run directory go and kernel
    //    audit is released.
    let report = async {
        let mut observer_error = earlier_error;
        for d in &ended {
            if let Err(e) = observer.denial(d.clone()).await {
                observer_error.get_or_insert(format!("recording a denial failed: {e}"));
            }
        }
        if let Err(e) = observer.redacted(&receipts).await {
            observer_error.get_or_insert(format!("recording the redaction receipts failed: {e}"));
        }
        if let Err(e) = observer.exited(&exit).await {
            observer_error.get_or_insert(format!("recording the run's exit failed: {e}"));
        }
        observer_error
    };
    // The hold on kernel audit is given back (netlink, a file lock, the holders'
    // file) meanwhile too, off the async threads.
    let release = blocking(move || drop(feed));
    let (observer_error, (), _) = tokio::join!(report, removal.run(), release.wait());
    tracing::debug!(
        us = clock.us(),
        "run: exit recorded, cgroup and run directory removed"
    );
    denials.extend(ended);
    Ok(RunOutcome {
        enforcement,
        exit,
        denials,
        receipts,
        observer_error,
    })
}

fn setup_error(f: SetupFailure, plan: &Plan) -> SuperviseError {
    match f {
        SetupFailure::Step(Step::Exec, errno) => SuperviseError::Exec {
            command: plan.exec_path.to_string_lossy().into_owned(),
            errno,
            hint: match errno {
                libc::EACCES | libc::EPERM => {
                    " — the policy grants no `execute` on it (filesystem.exec), or the tool \
                     user may not execute it"
                }
                libc::ENOENT => " — it (or its interpreter) vanished or is not granted",
                libc::ENOEXEC => " — not a valid executable",
                _ => "",
            },
        },
        SetupFailure::Step(step, errno) => SuperviseError::ChildStep { step, errno },
        SetupFailure::Vanished(status) => SuperviseError::ChildVanished(match status {
            Some(ExitStatus::Exited(c)) => format!("exit status {c}"),
            Some(ExitStatus::Signaled(s)) => format!("killed by signal {s}"),
            None => "status unknown".into(),
        }),
    }
}

/// A run's resources between spawn and the end; every exit path goes through
/// [`Running::fail`] or [`Running::finish`], which release them.
///
/// If the run's future is dropped instead (a daemon task cancelled), the fields
/// drop in declaration order, which is the safe order: the child is killed and
/// reaped, then the cgroup's tree killed and removed, then the run directory.
struct Running {
    child: Option<Child>,
    cgroup: Option<Arc<RunCgroup>>,
    pool: Option<Arc<CgroupPool>>,
    plan: Plan,
}

impl Running {
    /// SIGKILL the main process and the whole tree, and reap the main process.
    /// Without a cgroup the tree is the child's process group (it called setsid).
    async fn kill_tree(&mut self, pid: i32) -> std::io::Result<ExitStatus> {
        let child = self.child.as_mut().expect("spawned");
        let _ = child.signal(libc::SIGKILL);
        let tree = async {
            match &self.cgroup {
                Some(c) => {
                    let c = c.clone();
                    match tokio::task::spawn_blocking(move || c.kill_all()).await {
                        Ok(Err(e)) => tracing::warn!("killing the run's cgroup failed: {e}"),
                        Err(e) => tracing::warn!("killing the run's cgroup failed: {e}"),
                        Ok(Ok(())) => {}
                    }
                }
                None => {
                    let _ = process::kill_group(pid, libc::SIGKILL);
                }
            }
        };
        let (status, ()) = tokio::join!(child.wait(), tree);
        status
    }

    /// Kill what is left, read the cgroup, remove the cgroup and run directory.
    async fn finish(self) -> Final {
        let (fin, removal) = self.end().await;
        removal.run().await;
        fin
    }

    /// Kill what is left and read the cgroup; what remains to be removed is
    /// returned, so that the removal can overlap with recording the exit.
    async fn end(mut self) -> (Final, Removal) {
        let pid = self.child.as_ref().map(|c| c.pid);
        if let Some(mut c) = self.child.take() {
            let _ = c.signal(libc::SIGKILL);
            let _ = c.wait().await;
        }
        let cgroup = self.cgroup.take().and_then(|c| Arc::try_unwrap(c).ok());
        let (fin, cgroup) = blocking(move || match cgroup {
            Some(c) => {
                let (fin, err) = cg::end(&c);
                if let Some(e) = err {
                    tracing::warn!("cleaning up the run's cgroup: {e}");
                }
                (fin, Some(c))
            }
            None => {
                if let Some(pid) = pid {
                    let _ = process::kill_group(pid, libc::SIGKILL);
                }
                (Final::default(), None)
            }
        })
        .wait()
        .await
        .unwrap_or_default();
        let removal = Removal {
            cgroup,
            pool: self.pool.take(),
            run_dir: self.plan.run_dir,
        };
        (fin, removal)
    }

    /// Release everything and return `e`.
    async fn fail(self, e: SuperviseError) -> SuperviseError {
        self.finish().await;
        e
    }
}

/// The directories of a finished run (its tree already killed). Dropped
/// instead of run, they are still removed (both remove themselves on drop).
struct Removal {
    cgroup: Option<RunCgroup>,
    pool: Option<Arc<CgroupPool>>,
    run_dir: RunDir,
}

impl Removal {
    /// Remove the cgroup (or hand it back to the pool) and the run directory.
    async fn run(self) {
        let Removal {
            cgroup,
            pool,
            run_dir,
        } = self;
        let _ = blocking(move || {
            if let Some(c) = cgroup
                && let Some(e) = cg::dispose(c, pool.as_deref())
            {
                tracing::warn!("removing the run's cgroup: {e}");
            }
            if let Err(e) = run_dir.remove() {
                tracing::warn!("removing the run directory failed: {e}");
            }
        })
        .wait()
        .await;
    }
}

/// Remove a cgroup created for a run that never started.
async fn dispose(c: RunCgroup, pool: Option<Arc<CgroupPool>>) {
    let _ = blocking(move || cg::finish(c, pool.as_deref()))
        .wait()
        .await;
}

/// Poll `f` once (registering the task's waker): what its first step starts
/// — a record handed to the audit writer — goes on while the caller does more.
async fn poll_once<F: Future>(mut f: std::pin::Pin<&mut F>) -> Option<F::Output> {
    use std::task::Poll;
    std::future::poll_fn(|cx| {
        Poll::Ready(match f.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// Blocking I/O off the async threads: started at once on a blocking thread —
/// except on a current-thread runtime (`enforcecore run`: one run, nothing else to
/// serve), where a thread hop would only add latency and the work runs in place
/// when awaited.
enum Blocking<R> {
    Inline(Box<dyn FnOnce() -> R + Send>),
    Spawned(tokio::task::JoinHandle<R>),
}

fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Blocking<R> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread {
        Blocking::Inline(Box::new(f))
    } else {
        Blocking::Spawned(tokio::task::spawn_blocking(f))
    }
}

impl<R> Blocking<R> {
    async fn wait(self) -> Result<R, SuperviseError> {
        match self {
            Blocking::Inline(f) => Ok(f()),
            Blocking::Spawned(h) => h.await.map_err(|e| SuperviseError::Task(e.to_string())),
        }
    }
}
