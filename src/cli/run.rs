//! `enforcecore run`: one command in the foreground, under a policy's sandbox.
//!
//! Exit codes (DESIGN §7): the tool's own code; 128+N when it was killed by signal
//! N (OOM kills and the output cap are SIGKILL: 137); 124 on timeout; 125 when
//! EnforceCore failed and the tool did not run (bad policy, a layer could not be
//! applied, the run's start could not be recorded); 126 when the policy refused
//! the request (unknown tool, command or arguments not allowed, `execve` denied);
//! 127 when the command does not exist. SIGINT, SIGTERM or SIGHUP to `run` kill
//! the tool's whole tree and exit 128+N.
//!
//! The exit report goes to stderr with `--verbose`, or whenever the run did not
//! end by the tool's own exit (timeout, OOM, pids, output cap, seccomp kill,
//! shutdown); `--json` prints it as one JSON object instead of text.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::exit;
use crate::policy::{self, fmt_size};
use crate::report::{Caller, Denial, EnforcementReport, ExitCause, ExitReport};
use crate::supervise::denials::AuditHold;
use crate::supervise::{self, Filters, Input, Output, RunRequest, Streams};
use audit::Audit;

mod audit;
pub mod parse;

/// Arguments of `enforcecore run`.
#[derive(Debug, Args)]
#[command(
    after_help = "The tool runs in a fresh run directory (its cwd and ${RUN_DIR}): as \
root /var/lib/enforcecore-runs/<run-id>, otherwise $TMPDIR/enforcecore-<uid>/runs/<run-id>; it \
is removed after the run unless the policy sets run_dir.keep. As root the tool runs as the \
policy's user; without root it runs as you, and a policy naming another user is refused.\n\n\
Exit codes: the tool's own; 128+N killed by signal N; 124 timeout; 125 EnforceCore failed (the \
tool did not run); 126 refused by policy; 127 command not found."
)]
pub struct RunArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Run as this policy tool: the command and arguments must match its rules.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Append the run's records to this audit trail [default: as root
    /// /var/lib/enforcecore/audit/audit.jsonl, otherwise
    /// $XDG_STATE_HOME/enforcecore/audit.jsonl or ~/.local/state/enforcecore/audit.jsonl].
    #[arg(long, value_name = "FILE", env = "ENFORCECORE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Sign the trail's checkpoints with this Ed25519 key.
    #[arg(long, value_name = "FILE", requires = "audit_log")]
    pub audit_key: Option<PathBuf>,
    /// Print what was enforced and how the run ended, on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print the report as JSON (on stderr, its last line); a run that ends
    /// without one ends with `{"run_id", "tool", "error": {"code", "message"}}`.
    #[arg(long)]
    pub json: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Execute `enforcecore run`.
pub fn execute(args: RunArgs) -> anyhow::Result<u8> {
    let t0 = std::time::Instant::now();
    // Until the shutdown handlers are in place (inside the runtime), SIGINT,
    // SIGTERM and SIGHUP stay pending instead of killing the supervisor with
    // the run's cgroup and hold on kernel audit half made (a wait for the
    // trail's lock, up to 10 s, is not cut short). One that came meanwhile
    // ends the run before the tool starts.
    let held = crate::sys::process::hold_signals(&STOP_SIGNALS)
        .context("holding back SIGINT, SIGTERM and SIGHUP")?;
    // The cgroup directories are created while the policy loads.
    let run_id = supervise::new_run_id().context("generating a run id")?;
    let early = supervise::Early::start(&run_id).context("starting the cgroup thread")?;
    // With --json, a run that ends without a report ends with an error object.
    let fail = |code: u8, prefix: &str, message: String| {
        super::say!("enforcecore: {prefix}{message}");
        if args.json {
            let v = serde_json::json!({
                "run_id": run_id,
                "tool": args.tool,
                "error": { "code": code, "message": message },
            });
            super::say!("{v}");
        }
        Ok(code)
    };
    let policy = match policy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => return fail(exit::SUPERVISOR_FAILED, "", e.to_string()),
    };
    tracing::debug!(us = t0.elapsed().as_micros() as u64, "cli: policy loaded");
    let caller = Caller {
        via: "cli".into(),
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        pid: Some(std::process::id() as i32),
        agent: None,
    };
    let tool = args
        .tool
        .clone()
        .unwrap_or_else(|| args.command[0].to_string_lossy().into_owned());
    // The trail and the redaction engine: without either the tool does not run.
    let audit = match Audit::open(&args, &policy, &run_id, &tool, caller.clone()) {
        Ok(a) => a,
        Err(e) => {
            return fail(exit::SUPERVISOR_FAILED, "error: ", super::describe(&e));
        }
    };
    tracing::debug!(
        us = t0.elapsed().as_micros() as u64,
        "cli: audit trail open"
    );
    let sandbox = match supervise::admit(&policy, args.tool.as_deref(), &args.command) {
        Ok(s) => s,
        Err(refusal) => {
            let recorded = audit.refused(&refusal);
            if let Err(e) = recorded {
                super::say!(
                    "enforcecore: error: recording the refusal failed: {}",
                    super::describe(&e)
                );
            }
            return fail(exit::REFUSED, "", refusal.to_string());
        }
    };
    tracing::debug!(
        us = t0.elapsed().as_micros() as u64,
        "cli: command admitted"
    );
    // The hold on kernel audit is taken on its own thread while the runtime
    // starts and the plan is built; dropped unused, it is given back.
    let hold = AuditHold::start(policy.denials.kernel_audit.value)
        .context("starting the kernel audit thread")?;
    tracing::debug!(
        us = t0.elapsed().as_micros() as u64,
        "cli: kernel audit thread started"
    );
    // The stdin pump may read a terminal while `run` is in the background: with
    // SIGTTIN/SIGTTOU ignored such reads fail (the tool sees EOF) instead of
    // stopping the supervisor.
    for sig in [libc::SIGTTIN, libc::SIGTTOU] {
        crate::sys::process::ignore_signal(sig).context("ignoring terminal job-control signals")?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    tracing::debug!(us = t0.elapsed().as_micros() as u64, "cli: runtime started");
    let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned();
    let streams = Streams {
        stdin: Input::Fd(dup(std::io::stdin().as_fd()).context("duplicating stdin")?),
        stdout: Output::Fd(dup(std::io::stdout().as_fd()).context("duplicating stdout")?),
        stderr: Output::Fd(dup(std::io::stderr().as_fd()).context("duplicating stderr")?),
    };
    let ran = runtime.block_on(async {
        let stop = Stop::install()?;
        if let Some(sig) = crate::sys::process::pending_signal(&STOP_SIGNALS)? {
            // Nothing was recorded for the run; the cgroup and the hold go
            // when the request's parts drop here.
            if let Err(e) = audit.trail.close_async().await {
                super::say!("enforcecore: error: closing the audit trail failed: {e}");
            }
            return anyhow::Ok(Err(sig));
        }
        held.release()
            .context("releasing SIGINT, SIGTERM and SIGHUP")?;
        let received = stop.received.clone();
        let req = RunRequest {
            run_id: run_id.clone(),
            tool: args.tool.clone(),
            argv: args.command.clone(),
            sandbox,
            caller,
            caller_env: std::env::vars_os().collect(),
            stdio: streams,
            filters: Filters::redacting(&audit.engine, policy.redaction.streams.value),
            runs_root: None,
            cgroups: supervise::Cgroups::Early(early),
            shutdown: Some(Box::pin(stop.wait())),
            kernel_audit: hold,
        };
        let result = supervise::execute(req, &audit.observer).await;
        tracing::debug!(us = t0.elapsed().as_micros() as u64, "cli: run finished");
        // A run that failed before it started has not written it yet.
        let policy = match audit.observer.policy_loaded() {
            Some(t) => t.await.map(drop),
            None => Ok(()),
        };
        let closed = match audit.trail.close_async().await {
            Ok(()) => policy,
            Err(e) => Err(e),
        };
        tracing::debug!(
            us = t0.elapsed().as_micros() as u64,
            "cli: audit trail closed"
        );
        anyhow::Ok(Ok((
            result,
            closed,
            *received.lock().unwrap_or_else(|p| p.into_inner()),
        )))
    })?;
    drop(runtime);
    let (result, closed, signal) = match ran {
        Ok(r) => r,
        Err(sig) => {
            let message =
                format!("stopped by signal {sig} before the tool started; it did not run");
            return fail(128 + sig as u8, "", message);
        }
    };
    tracing::debug!(us = t0.elapsed().as_micros() as u64, "cli: runtime stopped");
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(e.exit_code(), "error: ", e.to_string()),
    };
    let abnormal = outcome.exit.cause != ExitCause::Exited;
    if args.json {
        let v = serde_json::json!({
            "run_id": run_id,
            "tool": args.tool,
            "enforcement": outcome.enforcement,
            "exit": outcome.exit,
            "denials": outcome.denials,
        });
        super::say!("{v}");
    } else if args.verbose || abnormal {
        print_report(
            &run_id,
            &outcome.enforcement,
            &outcome.exit,
            &outcome.denials,
        );
    }
    if let Some(e) = &outcome.observer_error {
        super::say!("enforcecore: error: {e}");
        return Ok(exit::SUPERVISOR_FAILED);
    }
    if let Err(e) = closed {
        super::say!("enforcecore: error: sealing the audit trail failed: {e}");
        return Ok(exit::SUPERVISOR_FAILED);
    }
    Ok(match (outcome.exit.cause, signal) {
        (ExitCause::Timeout, _) => exit::TIMEOUT,
        (ExitCause::Shutdown, Some(sig)) => 128 + sig as u8,
        _ => exit::from_wait(outcome.exit.code, outcome.exit.signal),
    })
}

/// The signals that stop a run.
const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// SIGINT, SIGTERM and SIGHUP, turned into the run's shutdown future.
struct Stop {
    signals: Vec<(i32, tokio::signal::unix::Signal)>,
    received: std::sync::Arc<std::sync::Mutex<Option<i32>>>,
}

impl Stop {
    fn install() -> anyhow::Result<Stop> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut signals = Vec::new();
        for (n, k) in [
            (libc::SIGINT, SignalKind::interrupt()),
            (libc::SIGTERM, SignalKind::terminate()),
            (libc::SIGHUP, SignalKind::hangup()),
        ] {
            signals.push((n, signal(k).context("installing signal handlers")?));
        }
        Ok(Stop {
            signals,
            received: Default::default(),
        })
    }

    async fn wait(mut self) {
        let (a, b) = self.signals.split_at_mut(1);
        let (b, c) = b.split_at_mut(1);
        let n = tokio::select! {
            _ = a[0].1.recv() => a[0].0,
            _ = b[0].1.recv() => b[0].0,
            _ = c[0].1.recv() => c[0].0,
        };
        *self.received.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
    }
}

fn print_report(run_id: &str, e: &EnforcementReport, x: &ExitReport, denials: &[Denial]) {
    let how = match (x.code, x.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "no status".into(),
    };
    let cause = serde_json::to_value(x.cause)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    super::say!(
        "enforcecore: run {run_id}: {how} ({cause}) after {} ms; cpu {}; peak memory {}; \
         output {}",
        x.duration_ms,
        x.cpu_ms.map_or("?".into(), |c| format!("{c} ms")),
        x.peak_memory_bytes.map_or("?".into(), fmt_size),
        fmt_size(x.output_bytes),
    );
    for d in denials {
        super::say!(
            "enforcecore: denied by {}: {} — {} ({})",
            d.layer.name(),
            d.object,
            d.detail,
            d.hint
        );
    }
    let l = &e.landlock;
    super::say!(
        "enforcecore: sandbox: uid {} gid {}, capabilities {}, no_new_privs; landlock ABI {} \
         {} ({} path rules{}, {} port rules, scopes [{}], log_new_exec {})",
        e.uid,
        e.gid,
        if e.caps_dropped {
            "all dropped"
        } else {
            "effective/permitted dropped, bounding set kept (not root)"
        },
        l.abi,
        l.status,
        l.fs_rules,
        if l.skipped_optional.is_empty() {
            String::new()
        } else {
            format!(
                ", skipped missing optional {}",
                l.skipped_optional
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        },
        l.net_rules,
        l.scopes.join(" "),
        l.log_new_exec,
    );
    let s = &e.seccomp;
    super::say!(
        "enforcecore: seccomp {} {} ({} syscalls listed, {} BPF instructions, sha256 {}); \
         socket families [{}]",
        s.mode,
        s.action,
        s.syscalls,
        s.instructions,
        s.filter_sha256,
        s.socket_families.join(" ")
    );
    let c = &e.cgroup;
    super::say!(
        "enforcecore: cgroup {} (memory {}, pids {}, cpu {}); rlimits {}; run dir {}",
        c.version,
        c.memory_bytes.map_or("-".into(), fmt_size),
        c.pids.map_or("-".into(), |p| p.to_string()),
        c.cpu_millis.map_or("-".into(), |m| format!("{m}m")),
        e.rlimits
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        e.run_dir.display()
    );
}
