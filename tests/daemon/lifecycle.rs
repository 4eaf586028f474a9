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
