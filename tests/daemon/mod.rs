//! `enforcecore serve` end to end: the daemon in the foreground with the
//! systemd notify socket emulated, real clients (`enforcecore call`, run as
//! other uids), hostile clients speaking raw bytes, and the audit trail it
//! leaves behind. Needs root (the clients switch uid; tools run as nobody).
//!
//! This file is the harness ([`Daemon`]); the tests are in `callers`
//! (identities, limits, reload, notifications), `lifecycle` (stop, load) and
//! `hostile` (clients that misbehave).

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Dir};

mod callers;
mod hostile;
mod lifecycle;

pub const NOBODY: u32 = 65534;

/// A policy for daemon tests: `echo`, `sleep` and `cat` as nobody; the agent
/// `worker` is uid 65534 (with `extra` appended to the agent).
pub fn policy(extra_agent: &str, extra_tools: &str) -> String {
    format!(
        "version: 1
name: daemon-test
sandbox:
  user: {NOBODY}
  group: {NOBODY}
  filesystem:
    read: [/usr, /etc/ld.so.cache]
    exec: [/usr/bin, /bin]
    rules:
      - {{ path: /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }}
      - {{ path: /usr/lib64/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }}
      - {{ path: /dev/null, access: [read_file, write_file, truncate] }}
  limits:
    memory: 64MiB
    pids: 16
    wall_time: 60s
redaction:
  streams: [stdout, stderr]
  detectors: all
  strategy: placeholder
tools:
  echo:
    command: /usr/bin/echo
  sleep:
    command: /usr/bin/sleep
  cat:
    command: /usr/bin/cat
{extra_tools}agents:
  - name: worker
    uids: [{NOBODY}]
    tools: [echo, sleep, cat]
{extra_agent}"
    )
}

/// A running `enforcecore serve`, stopped (SIGKILL) on drop if still running.
pub struct Daemon {
    pub dir: Dir,
    pub child: Option<Child>,
    pub notify: UnixDatagram,
}

impl Daemon {
    /// Start with `policy` and extra config lines; returns once READY=1 came.
    pub fn start(policy_text: &str, extra_config: &str) -> Daemon {
        Daemon::start_with(policy_text, extra_config, None, &[], false)
    }

    /// [`Daemon::start`], signing the trail with `key`, with `env` added.
    pub fn start_with(
        policy_text: &str,
        extra_config: &str,
        key: Option<&std::path::Path>,
        env: &[(&str, &str)],
        activated: bool,
    ) -> Daemon {
        let dir = Dir::new("daemon");
        let key = key
            .map(|k| format!("key: {}, ", k.display()))
            .unwrap_or_default();
        dir.write("policy.yaml", policy_text);
        dir.write(
            "daemon.yaml",
            format!(
                "policy: policy.yaml\nsocket: {{path: {}, group: nogroup}}\naudit: {{{key}log: {}}}\n\
                 runs_dir: {}\n{extra_config}",
                // Socket activation: the daemon must use the socket it is
                // given, not bind its configured path.
                dir.join(if activated { "configured.sock" } else { "sock" }).display(),
                dir.join("audit/audit.jsonl").display(),
                dir.join("runs").display(),
            ),
        );
        let notify = UnixDatagram::bind(dir.join("notify")).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut cmd = Command::new(util::bin());
        let listener;
        if activated {
            // As systemd does: a listening socket on fd 3, LISTEN_PID = the
            // daemon's pid (`exec` keeps the shell's), LISTEN_FDS=1.
            use std::os::unix::fs::PermissionsExt;
            listener = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
            std::os::unix::fs::chown(dir.join("sock"), None, Some(NOBODY)).unwrap();
            std::fs::set_permissions(dir.join("sock"), std::fs::Permissions::from_mode(0o660))
                .unwrap();
            cmd = Command::new("sh");
            cmd.args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
                .arg(util::bin());
            use command_fds::{CommandFdExt, FdMapping};
            cmd.fd_mappings(vec![FdMapping {
                parent_fd: listener.try_clone().unwrap().into(),
                child_fd: 3,
            }])
            .unwrap();
        }
        let child = cmd
            .args(["serve", "--config"])
            .arg(dir.join("daemon.yaml"))
            .env("NOTIFY_SOCKET", dir.join("notify"))
            .envs(env.iter().copied())
            .env_remove("ENFORCECORE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let mut d = Daemon {
            dir,
            child: Some(child),
            notify,
        };
        let mut buf = [0u8; 512];
        let n = d.notify.recv(&mut buf).unwrap_or_else(|e| {
            let out = d.kill();
            panic!(
                "no READY=1 from the daemon ({e}); stderr:\n{}",
                util::stderr(&out)
            )
        });
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            msg.lines().any(|l| l == "READY=1"),
            "first notification: {msg:?}"
        );
        // READY=1 comes only after the socket exists and the start is recorded.
        let meta = std::fs::metadata(d.socket()).expect("socket exists at READY");
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), NOBODY);
        let mut kinds = d.kinds();
        kinds.retain(|k| k != "checkpoint");
        assert_eq!(
            kinds[..2],
            ["supervisor-started", "policy-loaded"],
            "{kinds:?}"
        );
        d
    }

    /// The next notification the daemon sent (waits for it).
    pub fn next_notification(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn trail(&self) -> PathBuf {
        self.dir.join("audit/audit.jsonl")
    }

    /// `enforcecore call` as `uid` (gid = uid).
    pub fn call_cmd(&self, uid: u32, tool: &str, args: &[&str]) -> Command {
        let mut c = util::enforcecore(["call", "--socket"]);
        c.arg(self.socket()).arg(tool).arg("--").args(args);
        c.uid(uid).gid(uid);
        c
    }

    pub fn call(&self, uid: u32, tool: &str, args: &[&str]) -> Output {
        util::output(&mut self.call_cmd(uid, tool, args))
    }

    pub fn reload(&self) -> Output {
        util::output(util::enforcecore(["reload", "--socket"]).arg(self.socket()))
    }

    /// The trail's records, parsed.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.trail())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("trail line is JSON"))
            .collect()
    }

    pub fn kinds(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn count(&self, kind: &str) -> usize {
        self.kinds().iter().filter(|k| *k == kind).count()
    }

    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM and wait for the daemon to exit.
    pub fn stop(&mut self) -> Output {
        self.signal(15);
        self.child
            .take()
            .expect("running")
            .wait_with_output()
            .expect("wait serve")
    }

    pub fn kill(&mut self) -> Output {
        let mut c = self.child.take().expect("running");
        let _ = c.kill();
        c.wait_with_output().expect("wait serve")
    }

    /// `audit verify` of the trail.
    pub fn verify(&self) -> Output {
        util::output(util::enforcecore(["audit", "verify"]).arg(self.trail()))
    }

    /// A normal call still works (after a hostile client).
    #[track_caller]
    pub fn assert_serving(&self) {
        let out = self.call(NOBODY, "echo", &["still", "serving"]);
        util::assert_code(&out, 0);
        assert_eq!(util::stdout(&out), "still serving\n");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

/// Wait until `f` holds (polling; never asserts on elapsed time).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
