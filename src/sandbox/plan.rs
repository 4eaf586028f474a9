//! The plan of one run: every layer prepared in the parent, in an order that
//! creates nothing on the host until the cheap checks have passed.
//!
//! 1. identity resolved (account lookups; the non-root rule);
//! 2. environment built, command resolved in its `PATH` (exit 127 here, no fork);
//! 3. seccomp compiled (pure);
//! 4. Landlock ABI checked against the policy's minimum;
//! 5. run directory created (0700, owned by the tool user);
//! 6. Landlock ruleset created and filled (needs the run directory to exist);
//! 7. rlimits laid out; the enforcement report assembled.
//!
//! The cgroup is created by the supervisor concurrently with this (it is the slow,
//! I/O-bound part) and joined by the child. A [`Plan`] owns all the storage the
//! child program borrows; it must outlive the spawn.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{SandboxError, command, env, identity, landlock, rlimit, rundir, seccomp};
use crate::policy::{PathVars, Sandbox};
use crate::report::EnforcementReport;
use crate::sys::child::Rlimit;

/// What a plan is built from.
#[derive(Clone, Copy, Debug)]
pub struct PlanRequest<'a> {
    /// The run id (names the run directory).
    pub run_id: &'a str,
    /// The effective sandbox.
    pub sandbox: &'a Sandbox,
    /// The command and its arguments, as the caller gave them.
    pub argv: &'a [OsString],
    /// The caller's environment (only allow-listed names pass).
    pub caller_env: &'a [(OsString, OsString)],
    /// Where run directories are created ([`rundir::default_root`]).
    pub runs_root: &'a Path,
}

/// A fully prepared sandbox, ready to be applied by the child.
#[derive(Debug)]
pub struct Plan {
    /// Who the tool runs as.
    pub identity: identity::Resolved,
    /// The run directory (removed on drop unless kept).
    pub run_dir: rundir::RunDir,
    /// The filled Landlock ruleset.
    pub landlock: landlock::Prepared,
    /// The compiled seccomp programs.
    pub seccomp: seccomp::Compiled,
    /// rlimits for the child.
    pub rlimits: Vec<Rlimit>,
    /// `cap_last_cap`, for emptying the bounding set.
    pub last_cap: u32,
    /// Absolute path of the executable.
    pub exec_path: CString,
    /// argv.
    pub argv: Vec<CString>,
    /// `NAME=value` entries.
    pub envp: Vec<CString>,
    /// The run directory as a C string (the child's cwd).
    pub cwd: CString,
    /// What will be enforced (the cgroup part is filled in by the supervisor).
    pub report: EnforcementReport,
}

impl Plan {
    /// Prepare every layer. Nothing is applied to the calling process.
    pub fn build(req: &PlanRequest<'_>) -> Result<Plan, SandboxError> {
        let sandbox = req.sandbox;
        let t = std::time::Instant::now();
        let us = || t.elapsed().as_micros() as u64;
        // 1. identity.
        let euid = nix::unistd::geteuid().as_raw();
        let identity = identity::resolve(&sandbox.identity, euid)?;
        let last_cap = super::probe::cap_last_cap().map_err(SandboxError::Probe)?;
        // 2. environment and command.
        let run_path = req.runs_root.join(req.run_id);
        let vars = PathVars {
            run_dir: run_path.clone(),
            home: identity.home.clone(),
            tmpdir: run_path.join("tmp"),
        };
        let env_map = env::build(&sandbox.env, req.caller_env, &vars);
        let cmd = req
            .argv
            .first()
            .ok_or_else(|| SandboxError::CommandNotFound(String::new(), String::new()))?;
        let exec = command::resolve(cmd, env_map.get(OsStr::new("PATH")).map(|p| p.as_os_str()))?;
        let argv = command::argv_to_c(req.argv)?;
        let envp = env::to_c(&env_map)?;
        let exec_path = CString::new(exec.as_os_str().as_bytes())
            .map_err(|_| SandboxError::NulByte("the command path".into()))?;
        tracing::debug!(us = us(), "plan: identity, environment, command resolved");
        // 3. seccomp.
        let seccomp = seccomp::compile(sandbox)?;
        tracing::debug!(us = us(), "plan: seccomp compiled");
        // 4. Landlock ABI (checked again, with the ruleset, in step 6).
        let have = super::probe::landlock_abi().map_err(SandboxError::LandlockUnavailable)?;
        let need = landlock::required_abi(sandbox);
        if u32::from(need.abi) > have {
            return Err(SandboxError::LandlockAbiTooOld {
                need: need.abi,
                have,
                feature: need.feature,
                origin: need.origin.to_string(),
                hint: need.hint.to_string(),
            });
        }
        // 5. run directory.
        let run_dir = rundir::RunDir::create(
            req.runs_root,
            req.run_id,
            identity.uid,
            identity.gid,
            identity.switch,
            sandbox.run_dir.keep.value,
        )?;
        let cwd = CString::new(run_dir.path().as_os_str().as_bytes())
            .map_err(|_| SandboxError::NulByte("the run directory path".into()))?;
        tracing::debug!(us = us(), "plan: run directory created");
        // 6. Landlock ruleset.
        let landlock = landlock::prepare(sandbox, &vars)?;
        tracing::debug!(us = us(), "plan: landlock ruleset built");
        // 7. rlimits and the report.
        let (rlimits, rlimit_report) = rlimit::plan(&sandbox.limits);
        let report = EnforcementReport {
            uid: identity.uid,
            gid: identity.gid,
            caps_dropped: identity.caps_dropped(),
            no_new_privs: true,
            landlock: landlock.report.clone(),
            seccomp: seccomp.report.clone(),
            cgroup: Default::default(),
            rlimits: rlimit_report,
            wall_time_ms: sandbox
                .limits
                .wall_time
                .as_ref()
                .map(|d| d.value.as_millis().min(u128::from(u64::MAX)) as u64),
            output_bytes: sandbox.limits.output_bytes.as_ref().map(|b| b.value),
            run_dir: run_dir.path().to_path_buf(),
            env: env_map
                .keys()
                .map(|k| k.to_string_lossy().into_owned())
                .collect(),
            kernel_audit: "off".into(),
        };
        Ok(Plan {
            identity,
            run_dir,
            landlock,
            seccomp,
            rlimits,
            last_cap,
            exec_path,
            argv,
            envp,
            cwd,
            report,
        })
    }
}
