//! Stopping with a run in flight, and many calls at once.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

use super::{Daemon, NOBODY, policy};
use crate::util::{self, Dir};

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
        false,
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

#[test]
fn socket_activation_uses_the_passed_socket() {
    if !util::require_root() {
        return;
    }
    let mut d = Daemon::start_with(&policy("", ""), "", None, &[], true);
    // Checked first: a daemon that ignored the passed socket would leave calls
    // on it unanswered.
    assert!(
        !d.dir.join("configured.sock").exists(),
        "the daemon bound its configured path although systemd passed a socket"
    );
    d.assert_serving();
    let out = d.stop();
    assert!(out.status.success(), "{}", util::stderr(&out));
    // The socket belongs to the service manager: it is left in place.
    assert!(d.socket().exists());
}

/// `serve` with the usual config but `socket.path` = `dir/sock`; returns once
/// it reported READY=1 (`true`, still running) or exited (`false`).
fn serve_in(dir: &Dir) -> (Child, bool) {
    use std::os::unix::net::UnixDatagram;
    dir.write("policy.yaml", policy("", ""));
    dir.write(
        "daemon.yaml",
        format!(
            "policy: policy.yaml\nsocket: {{path: {}, group: nogroup}}\naudit: {{log: {}}}\nruns_dir: {}\n",
            dir.join("sock").display(),
            dir.join("audit/audit.jsonl").display(),
            dir.join("runs").display(),
        ),
    );
    let _ = std::fs::remove_file(dir.join("notify"));
    let notify = UnixDatagram::bind(dir.join("notify")).unwrap();
    notify.set_nonblocking(true).unwrap();
    let mut child = util::enforcecore(["serve", "--config"])
        .arg(dir.join("daemon.yaml"))
        .env("NOTIFY_SOCKET", dir.join("notify"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = false;
    super::wait_for("serve to exit or report ready", || {
        let mut buf = [0u8; 512];
        ready |= notify
            .recv(&mut buf)
            .is_ok_and(|n| String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
        ready || child.try_wait().unwrap().is_some()
    });
    (child, ready)
}

/// [`serve_in`], expected to refuse to start.
fn serve_refused(dir: &Dir) -> std::process::Output {
    let (mut child, ready) = serve_in(dir);
    if ready {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "the daemon started over what was at socket.path; stderr:\n{}",
            util::stderr(&out)
        );
    }
    child.wait_with_output().unwrap()
}

#[test]
fn start_up_never_removes_what_is_not_a_socket() {
    if !util::require_root() {
        return;
    }
    let dir = Dir::new("daemon-sockpath");
    let sock = dir.join("sock");
    let check = |out: &std::process::Output, kind: &str| {
        util::assert_code(out, 1);
        let err = util::stderr(out);
        assert!(err.contains(&sock.display().to_string()), "{err}");
        assert!(err.contains(&format!("not a socket but {kind}")), "{err}");
    };
    // A regular file: kept, byte for byte.
    std::fs::write(&sock, "someone's data\n").unwrap();
    check(&serve_refused(&dir), "a regular file");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "someone's data\n");
    std::fs::remove_file(&sock).unwrap();
    // A symbolic link (even to a dead socket): kept, and so is its target.
    let target = dir.join("target.sock");
    drop(std::os::unix::net::UnixListener::bind(&target).unwrap());
    std::os::unix::fs::symlink(&target, &sock).unwrap();
    check(&serve_refused(&dir), "a symbolic link");
    assert!(std::fs::symlink_metadata(&sock).unwrap().is_symlink());
    assert!(target.exists());
    std::fs::remove_file(&sock).unwrap();
    // A directory: the message says what is wrong.
    std::fs::create_dir(&sock).unwrap();
    check(&serve_refused(&dir), "a directory");
    assert!(sock.is_dir());
    std::fs::remove_dir(&sock).unwrap();
    // A socket file left by a daemon that died is still replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let (child, ready) = serve_in(&dir);
    let pid = child.id().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(ready && stopped.success(), "{}", util::stderr(&out));
    util::assert_code(&out, 0);
    std::fs::remove_file(&target).unwrap();
}
