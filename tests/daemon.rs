//! `enforcecore serve` end to end: the daemon in the foreground with the
//! systemd notify socket emulated, real clients (`enforcecore call`, run as
//! other uids), hostile clients speaking raw bytes, and the audit trail it
//! leaves behind. Needs root (the clients switch uid; tools run as nobody).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Dir};

const NOBODY: u32 = 65534;

/// A policy for daemon tests: `echo`, `sleep` and `cat` as nobody; the agent
/// `worker` is uid 65534 (with `extra` appended to the agent).
fn policy(extra_agent: &str, extra_tools: &str) -> String {
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
struct Daemon {
    dir: Dir,
    child: Option<Child>,
    notify: UnixDatagram,
}

impl Daemon {
    /// Start with `policy` and extra config lines; returns once READY=1 came.
    fn start(policy_text: &str, extra_config: &str) -> Daemon {
        Daemon::start_with(policy_text, extra_config, None, &[])
    }

    /// [`Daemon::start`], signing the trail with `key`, with `env` added.
    fn start_with(
        policy_text: &str,
        extra_config: &str,
        key: Option<&std::path::Path>,
        env: &[(&str, &str)],
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
                dir.join("sock").display(),
                dir.join("audit/audit.jsonl").display(),
                dir.join("runs").display(),
            ),
        );
        let notify = UnixDatagram::bind(dir.join("notify")).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let child = Command::new(util::bin())
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
    fn next_notification(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    fn trail(&self) -> PathBuf {
        self.dir.join("audit/audit.jsonl")
    }

    /// `enforcecore call` as `uid` (gid = uid).
    fn call_cmd(&self, uid: u32, tool: &str, args: &[&str]) -> Command {
        let mut c = util::enforcecore(["call", "--socket"]);
        c.arg(self.socket()).arg(tool).arg("--").args(args);
        c.uid(uid).gid(uid);
        c
    }

    fn call(&self, uid: u32, tool: &str, args: &[&str]) -> Output {
        util::output(&mut self.call_cmd(uid, tool, args))
    }

    fn reload(&self) -> Output {
        util::output(util::enforcecore(["reload", "--socket"]).arg(self.socket()))
    }

    /// The trail's records, parsed.
    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.trail())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("trail line is JSON"))
            .collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| r["kind"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.kinds().iter().filter(|k| *k == kind).count()
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM and wait for the daemon to exit.
    fn stop(&mut self) -> Output {
        self.signal(15);
        self.child
            .take()
            .expect("running")
            .wait_with_output()
            .expect("wait serve")
    }

    fn kill(&mut self) -> Output {
        let mut c = self.child.take().expect("running");
        let _ = c.kill();
        c.wait_with_output().expect("wait serve")
    }

    /// `audit verify` of the trail.
    fn verify(&self) -> Output {
        util::output(util::enforcecore(["audit", "verify"]).arg(self.trail()))
    }

    /// A normal call still works (after a hostile client).
    #[track_caller]
    fn assert_serving(&self) {
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
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn allowed_and_refused_callers() {
    if !util::require_root() {
        return;
    }
    let mut d = Daemon::start(&policy("", ""), "");
    let out = d.call(NOBODY, "echo", &["hello", "from", "nobody"]);
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "hello from nobody\n");
    // Output reaches the caller redacted; the receipt is in the trail.
    let out = d.call(NOBODY, "echo", &["mail", "alice@example.com"]);
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "mail [REDACTED:EMAIL]\n");
    let receipt = d
        .records()
        .into_iter()
        .find(|r| r["kind"] == "redaction" && r["receipt"]["stream"] == "stdout")
        .expect("a redaction receipt");
    assert_eq!(receipt["receipt"]["detector"], "email");
    assert!(
        !std::fs::read_to_string(d.trail())
            .unwrap()
            .contains("alice@")
    );
    // stdin flows from the caller to the tool.
    let mut c = d.call_cmd(NOBODY, "cat", &[]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "piped in\n");
    // The tool's own exit code comes back.
    let out = d.call(NOBODY, "cat", &["/nonexistent"]);
    util::assert_code(&out, 1);

    // A uid that is no agent (and may not even open the socket: 0660 root:nogroup).
    let out = d.call(1000, "echo", &["x"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("cannot connect"),
        "{}",
        util::stderr(&out)
    );
    // Root can open the socket but is no agent of this policy.
    let out = d.call(0, "echo", &["x"]);
    util::assert_code(&out, 126);
    assert!(
        util::stderr(&out).contains("is not an agent"),
        "{}",
        util::stderr(&out)
    );
    // An agent asking for a tool it may not call, and for refused arguments.
    let out = d.call(NOBODY, "sh", &["-c", "id"]);
    util::assert_code(&out, 126);
    let denials: Vec<_> = d
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "denial")
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert_eq!(denials[0]["denial"]["layer"], "policy");
    assert!(
        denials[0]["denial"]["detail"]
            .as_str()
            .unwrap()
            .contains("uid 0 gid 0"),
        "{denials:?}"
    );
    assert_eq!(denials[1]["tool"], "sh");
    let out = d.stop();
    assert!(out.status.success(), "{}", util::stderr(&out));
    util::assert_code(&d.verify(), 0);
    assert_eq!(d.kinds().last().unwrap(), "supervisor-stopped");
}

#[test]
fn rate_limit_refuses_and_is_audited() {
    if !util::require_root() {
        return;
    }
    let p = policy("    rate_limit: {count: 2, per: 1h, burst: 2}\n", "");
    let mut d = Daemon::start(&p, "");
    util::assert_code(&d.call(NOBODY, "echo", &["1"]), 0);
    util::assert_code(&d.call(NOBODY, "echo", &["2"]), 0);
    let out = d.call(NOBODY, "echo", &["3"]);
    util::assert_code(&out, 126);
    assert!(
        util::stderr(&out).contains("rate limit of 2 per 1h"),
        "{}",
        util::stderr(&out)
    );
    let denial = d
        .records()
        .into_iter()
        .find(|r| r["kind"] == "denial")
        .expect("a denial record");
    assert_eq!(denial["denial"]["object"], "rate_limit:agent:worker");
    d.stop();
    util::assert_code(&d.verify(), 0);
}

#[test]
fn reload_good_and_bad() {
    if !util::require_root() {
        return;
    }
    let mut d = Daemon::start(&policy("", ""), "");
    let out = d.call(NOBODY, "ok", &[]);
    util::assert_code(&out, 126);
    // A good reload adds a tool.
    let tools = "  ok:\n    command: /usr/bin/true\n";
    let p2 =
        policy("", tools).replace("tools: [echo, sleep, cat]", "tools: [echo, sleep, cat, ok]");
    d.dir.write("policy.yaml", &p2);
    let out = d.reload();
    util::assert_code(&out, 0);
    assert!(
        util::stdout(&out).contains("now in effect"),
        "{}",
        util::stdout(&out)
    );
    util::assert_code(&d.call(NOBODY, "ok", &[]), 0);
    let loaded: Vec<_> = d
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "policy-loaded")
        .collect();
    assert_eq!(loaded.len(), 2);
    let good_hash = loaded[1]["sha256"].as_str().unwrap().to_string();
    assert_ne!(loaded[0]["sha256"], loaded[1]["sha256"]);

    // A bad policy is refused and the good one keeps serving.
    d.dir.write(
        "policy.yaml",
        "version: 1\nname: broken\nsandbox: {limits: {memory: lots}}\n",
    );
    let out = d.reload();
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("policy.yaml:3:"),
        "{}",
        util::stderr(&out)
    );
    util::assert_code(&d.call(NOBODY, "ok", &[]), 0);
    let rejected = d
        .records()
        .into_iter()
        .find(|r| r["kind"] == "policy-rejected")
        .expect("policy-rejected record");
    assert_eq!(rejected["kept"], good_hash.as_str());
    assert!(rejected["file_sha256"].is_string());

    // Non-admins may not reload.
    let out = util::output(
        util::enforcecore(["reload", "--socket"])
            .arg(d.socket())
            .uid(NOBODY)
            .gid(NOBODY),
    );
    util::assert_code(&out, 126);
    let denial = d
        .records()
        .into_iter()
        .rfind(|r| r["kind"] == "denial")
        .expect("the refused reload is recorded");
    assert_eq!(denial["denial"]["object"], "daemon");
    assert_eq!(denial["denial"]["access"], "reload");

    // SIGHUP does the same as `reload`: back to the first policy.
    d.dir.write("policy.yaml", policy("", ""));
    let before = d.count("policy-loaded");
    d.signal(1);
    wait_for("the SIGHUP reload", || d.count("policy-loaded") > before);
    util::assert_code(&d.call(NOBODY, "ok", &[]), 126);
    d.stop();
    util::assert_code(&d.verify(), 0);
}

#[test]
fn sigterm_kills_runs_after_the_grace_period_and_seals_the_trail() {
    if !util::require_root() {
        return;
    }
    let dir = Dir::new("daemon-key");
    util::assert_code(
        &util::output(util::enforcecore(["audit", "keygen", "--out"]).arg(dir.path())),
        0,
    );
    let key = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none_or(|e| e != "pub"))
        .unwrap();
    let public = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pub"))
        .unwrap();
    let d = Daemon::start_with(
        &policy("", ""),
        "limits: {stop_grace: 1s}\n",
        Some(&key),
        &[],
    );
    // `-v` reports the run's start on stderr.
    let mut c = util::enforcecore(["call", "-v", "--socket"]);
    c.arg(d.socket()).args(["sleep", "--", "600"]);
    c.uid(NOBODY).gid(NOBODY).stderr(Stdio::piped());
    let mut c = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(c.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("started"), "{line}");
    let mut d = d;
    let out = d.stop();
    assert!(out.status.success(), "{}", util::stderr(&out));
    let call = c.wait_with_output().unwrap();
    // The tool was killed (SIGKILL) when the grace period ran out.
    util::assert_code(&call, 137);
    let kinds = d.kinds();
    assert_eq!(kinds[kinds.len() - 2], "supervisor-stopped", "{kinds:?}");
    assert_eq!(kinds[kinds.len() - 1], "checkpoint", "{kinds:?}");
    let v = util::output(
        util::enforcecore(["audit", "verify", "--key"])
            .arg(&public)
            .arg(d.trail()),
    );
    util::assert_code(&v, 0);
}

#[test]
fn hundred_concurrent_calls_lose_no_record() {
    if !util::require_root() {
        return;
    }
    let mut d = Daemon::start(&policy("", ""), "");
    let children: Vec<Child> = (0..100)
        .map(|i| {
            let mut c = d.call_cmd(NOBODY, "echo", &["call", &i.to_string()]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawn call")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        util::assert_code(&out, 0);
        assert_eq!(util::stdout(&out), format!("call {i}\n"));
    }
    d.stop();
    util::assert_code(&d.verify(), 0);
    assert_eq!(d.count("run-started"), 100, "{:?}", d.kinds());
    assert_eq!(d.count("run-exited"), 100);
}

/// Connect as root and send raw bytes.
fn raw(d: &Daemon, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(answer.get(4..).unwrap_or_default()).into_owned()
}

#[test]
fn hostile_clients_leave_it_serving() {
    if !util::require_root() {
        return;
    }
    let d = Daemon::start(
        &policy("", ""),
        "limits: {request_timeout: 1s, max_request_bytes: 4096}\n",
    );
    // Garbage.
    let a = raw(&d, b"\x00\x00\x00\x05hello");
    assert!(a.contains("malformed request"), "{a}");
    d.assert_serving();
    // A header announcing 1 GiB: refused from the header, nothing buffered.
    let a = raw(&d, &(1u32 << 30).to_be_bytes());
    assert!(a.contains("over the 4096-byte limit"), "{a}");
    d.assert_serving();
    // A frame that never finishes: the request timeout closes it.
    let a = raw(&d, b"\x00\x00\x01\x00{\"op\":");
    assert!(a.contains("no complete request"), "{a}");
    d.assert_serving();
    // A connection that never sends anything at all.
    let a = raw(&d, b"");
    assert!(a.contains("no complete request"), "{a}");
    // A well-formed call without descriptors.
    let a = raw(&d, &frame(br#"{"op":"call","v":1,"tool":"echo"}"#));
    assert!(a.contains("exactly three descriptors"), "{a}");
    // More descriptors than stdin, stdout and stderr.
    {
        use std::os::fd::AsFd;
        let s = UnixStream::connect(d.socket()).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let fds = [null.as_fd(); 4];
        let f = frame(br#"{"op":"call","v":1,"tool":"echo"}"#);
        let n = enforcecore::sys::socket::send_with_fds(s.as_fd(), &f, &fds).unwrap();
        assert_eq!(n, f.len());
        let mut answer = Vec::new();
        let _ = (&s).read_to_end(&mut answer);
        let a = String::from_utf8_lossy(&answer);
        assert!(a.contains("descriptors"), "{a}");
    }
    // A future protocol version.
    let a = raw(&d, &frame(br#"{"op":"reload","v":9}"#));
    assert!(a.contains("protocol version 9"), "{a}");
    d.assert_serving();
    // A client that disconnects mid-run: its run is killed and recorded.
    let sleep_exit = |d: &Daemon| {
        d.records()
            .into_iter()
            .find(|r| r["kind"] == "run-exited" && r["tool"] == "sleep")
    };
    let mut child = d.call_cmd(NOBODY, "sleep", &["600"]).spawn().unwrap();
    wait_for("the run to start", || {
        d.records()
            .iter()
            .any(|r| r["kind"] == "run-started" && r["tool"] == "sleep")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the cancelled run to end", || sleep_exit(&d).is_some());
    let exit = sleep_exit(&d).unwrap();
    assert_eq!(exit["exit"]["cause"], "shutdown", "{exit}");
    d.assert_serving();
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn connections_over_the_cap_are_turned_away() {
    if !util::require_root() {
        return;
    }
    let d = Daemon::start(
        &policy("", ""),
        "limits: {request_timeout: 30s, max_connections: 2}\n",
    );
    // Two clients that connect and say nothing hold both places...
    let idle: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(d.socket()).unwrap())
        .collect();
    // ...so the third is told so at once.
    wait_for("the third connection to be turned away", || {
        raw(&d, b"").contains("limits.max_connections")
    });
    drop(idle);
    wait_for("the places to free up", || {
        d.call(NOBODY, "echo", &["x"]).status.success()
    });
    d.assert_serving();
}

#[test]
fn systemd_notifications_watchdog_reload_stop() {
    if !util::require_root() {
        return;
    }
    // A 200 ms watchdog: WATCHDOG=1 every 100 ms from the main loop.
    let mut d = Daemon::start_with(&policy("", ""), "", None, &[("WATCHDOG_USEC", "200000")]);
    wait_for("WATCHDOG=1", || d.next_notification() == "WATCHDOG=1");
    util::assert_code(&d.reload(), 0);
    wait_for("RELOADING=1", || {
        d.next_notification()
            .starts_with("RELOADING=1\nMONOTONIC_USEC=")
    });
    wait_for("READY=1 after the reload", || {
        d.next_notification()
            .starts_with("READY=1\nSTATUS=serving policy daemon-test")
    });
    let out = d.stop();
    assert!(out.status.success(), "{}", util::stderr(&out));
    wait_for("STOPPING=1", || {
        d.next_notification().starts_with("STOPPING=1")
    });
    // A watchdog for another pid is not ours to serve.
    let mut other = Daemon::start_with(
        &policy("", ""),
        "",
        None,
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
    );
    util::assert_code(&other.call(NOBODY, "echo", &["x"]), 0);
    other.stop();
    let mut buf = [0u8; 512];
    other.notify.set_nonblocking(true).unwrap();
    while let Ok(n) = other.notify.recv(&mut buf) {
        let m = String::from_utf8_lossy(&buf[..n]);
        assert!(!m.contains("WATCHDOG=1"), "{m}");
    }
}
