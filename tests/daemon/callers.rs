//! Who may call what: agents, refusals, rate limits, reloads, notifications.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use super::{Daemon, NOBODY, policy, wait_for};
use crate::util;

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
fn a_flood_of_refusals_is_counted_not_recorded_one_by_one() {
    if !util::require_root() {
        return;
    }
    // uid 1234 (in the socket's group) is no agent: every call is refused.
    // Past 60 at once the refusals are only counted; the count is in the
    // trail when it stops.
    let mut d = Daemon::start(&policy("", ""), "");
    for i in 0..75 {
        let mut c = d.call_cmd(NOBODY, "echo", &[&i.to_string()]);
        util::assert_code(&util::output(c.uid(1234)), 126);
    }
    d.assert_serving();
    d.stop();
    let recs = d.records();
    let denials = recs.iter().filter(|r| r["kind"] == "denial").count();
    assert_eq!(denials, 60, "{:?}", d.kinds());
    let lost: Vec<_> = recs
        .iter()
        .filter(|r| r["kind"] == "denials-lost" && r["source"] == "refusal-cap")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("uid 1234: 15 refused requests"),
        "{}",
        lost[0]
    );
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
fn systemd_notifications_watchdog_reload_stop() {
    if !util::require_root() {
        return;
    }
    // A 200 ms watchdog: WATCHDOG=1 every 100 ms from the main loop.
    let mut d = Daemon::start_with(
        &policy("", ""),
        "",
        None,
        &[("WATCHDOG_USEC", "200000")],
        false,
    );
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
        false,
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

/// Waits for `child` to exit (failing, and killing it, if it never does).
fn exits(what: &str, mut child: std::process::Child) -> std::process::Output {
    let mut done = false;
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done && std::time::Instant::now() < give_up {
        done = child.try_wait().unwrap().is_some();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        done,
        "{what} never finished; stderr:\n{}",
        util::stderr(&out)
    );
    out
}

#[test]
fn a_fifo_as_policy_or_config_is_refused_without_waiting() {
    if !util::require_root() {
        return;
    }
    let mut d = Daemon::start(&policy("", ""), "");
    let kept = d.records()[1]["sha256"].as_str().unwrap().to_string();
    // The policy file becomes a FIFO nobody writes to.
    std::fs::remove_file(d.dir.join("policy.yaml")).unwrap();
    nix::unistd::mkfifo(
        &d.dir.join("policy.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let reload = util::enforcecore(["reload", "--socket"])
        .arg(d.socket())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exits("reload of a FIFO", reload);
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("not a regular file"),
        "{}",
        util::stderr(&out)
    );
    let rejected = d
        .records()
        .into_iter()
        .find(|r| r["kind"] == "policy-rejected")
        .expect("policy-rejected record");
    assert_eq!(rejected["kept"], kept.as_str());
    assert!(rejected["file_sha256"].is_null(), "{rejected}");
    // SIGHUP likewise; the main loop still answers calls and reloads after it.
    let before = d.count("policy-rejected");
    d.signal(1);
    wait_for("the SIGHUP reload", || d.count("policy-rejected") > before);
    d.assert_serving();
    let out = d.reload();
    util::assert_code(&out, 1);
    let out = d.stop();
    assert!(out.status.success(), "{}", util::stderr(&out));
    util::assert_code(&d.verify(), 0);

    // A FIFO as the daemon's config: start-up stops with an error.
    nix::unistd::mkfifo(
        &d.dir.join("fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let serve = util::enforcecore(["serve", "--config"])
        .arg(d.dir.join("fifo.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exits("serve with a FIFO as config", serve);
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("not a regular file"),
        "{}",
        util::stderr(&out)
    );
    for f in ["fifo.yaml", "policy.yaml"] {
        std::fs::remove_file(d.dir.join(f)).unwrap();
    }
}
