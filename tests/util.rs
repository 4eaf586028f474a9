//! Test harness: isolated directories, the binary under test, feature probes.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the `enforcecore` binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_enforcecore"))
}

/// The repository's `policies/` directory.
pub fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A shipped policy by file name (`strict.yaml`, `examples/web-fetch.yaml`).
pub fn policy(name: &str) -> PathBuf {
    policies().join(name)
}

/// An isolated scratch directory, removed on drop. World-traversable (0755) so
/// that a tool running as an unprivileged user can reach files a test grants.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("enforcecore-test-{tag}-"))
            .tempdir()
            .expect("create temp dir");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        Dir { tmp }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `path/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Write a file (creating parents), returning its path.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(&p, contents).expect("write test file");
        p
    }
}

impl Drop for Dir {
    /// Audit trails a test's daemon kept append-only (`chattr +a`) cannot be
    /// removed until the attribute is lifted.
    fn drop(&mut self) {
        let p = self.tmp.path();
        if std::fs::remove_dir_all(p).is_err() && p.exists() {
            let _ = Command::new("chattr").arg("-R").arg("-a").arg(p).status();
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// A command for the binary under test, with a clean, predictable environment.
pub fn enforcecore<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(bin());
    c.args(args);
    c.env_remove("ENFORCECORE_LOG");
    // Runs without --audit-log record into the build tree, not the host's trail.
    c.env("ENFORCECORE_AUDIT_LOG", default_trail());
    c.stdin(Stdio::null());
    c
}

/// Run a command to completion, capturing its output.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn enforcecore")
}

/// Run a command to completion like [`output`], but kill it and fail the test
/// when it is still running after `limit`: for commands whose bug would be a
/// hang. Not a timing assertion; the limit is generous.
#[track_caller]
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enforcecore");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for enforcecore"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            let _ = rx.recv();
            panic!("{cmd:?} still running after {limit:?}: it hangs");
        }
    }
}

/// Exit code, or `128 + signal`.
pub fn code(out: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0))
}

/// Stdout as text (lossy).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text (lossy).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert an exit code, showing both streams when it is wrong.
#[track_caller]
pub fn assert_code(out: &Output, expected: i32) {
    let got = code(out);
    assert_eq!(
        got,
        expected,
        "exit code {got}, expected {expected}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Whether the test environment must have `feature` (listed, comma-separated, in
/// `ENFORCECORE_TEST_REQUIRE`; `all` means every feature).
pub fn required(feature: &str) -> bool {
    std::env::var("ENFORCECORE_TEST_REQUIRE")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .any(|f| f == feature || f == "all")
        })
        .unwrap_or(false)
}

/// Gate a test on a feature. `probe` returns `Err(why)` when the feature is
/// missing. Returns true when the test may proceed; when the feature is missing
/// it panics if the feature is required, and otherwise prints a loud SKIP line
/// and returns false.
#[track_caller]
pub fn require(feature: &str, probe: impl FnOnce() -> Result<(), String>) -> bool {
    match probe() {
        Ok(()) => true,
        Err(why) if required(feature) => {
            panic!("required test feature `{feature}` is missing: {why}")
        }
        Err(why) => {
            let loc = std::panic::Location::caller();
            eprintln!(
                "SKIPPED ({}:{}): feature `{feature}` unavailable: {why} \
                 (set ENFORCECORE_TEST_REQUIRE={feature} to make this a failure)",
                loc.file(),
                loc.line()
            );
            false
        }
    }
}

/// Probe: running as root.
pub fn probe_root() -> Result<(), String> {
    if nix_geteuid() == 0 {
        Ok(())
    } else {
        Err("not running as root".into())
    }
}

/// Gate on root.
#[track_caller]
pub fn require_root() -> bool {
    require("root", probe_root)
}

fn nix_geteuid() -> u32 {
    // /proc/self/status avoids an unsafe libc call in test code.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// Where runs started by the tests without `--audit-log` record (one trail for
/// the whole test binary, under the build directory; many writers share it).
pub fn default_trail() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit.jsonl")
}
