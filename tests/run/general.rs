//! What any run guarantees: exit codes, identity, capabilities, environment, fds,
//! the run directory, stdio through supervisor pipes, the output cap, timeouts,
//! shutdown, tool admission, the verbose report.

use std::process::{Command, Stdio};

use super::*;
use crate::util::{self, Dir};

#[test]
fn identity_capabilities_nnp_and_seccomp_are_what_the_kernel_reports() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    let out = p.run(&sh("cat /proc/self/status; echo groups=$(id -G)"));
    util::assert_code(&out, 0);
    let s = util::stdout(&out);
    assert_eq!(status_field(&s, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&s, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&s, "Groups"), "");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    assert_eq!(status_field(&s, "Seccomp"), "2");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&s, set), "0000000000000000", "{set}");
    }
    // The supervisor ignores SIGPIPE, SIGTTIN, SIGTTOU and blocks signals around
    // the fork; none of that reaches the tool.
    for set in ["SigIgn", "SigBlk"] {
        assert_eq!(status_field(&s, set), "0000000000000000", "{set}");
    }
    assert!(s.contains("groups=65534\n"), "{s}");
    // The identity follows the policy: another account, another uid.
    let p = Knobs {
        user: "daemon",
        group: "daemon",
        ..Knobs::default()
    }
    .write();
    let out = p.run(&sh("id -u; id -g"));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "1\n1\n");
}

#[test]
fn exit_codes_follow_the_contract() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    util::assert_code(&p.run(&sh("exit 7")), 7);
    util::assert_code(&p.run(&sh("kill -TERM $$")), 128 + 15);
    util::assert_code(&p.run(&["/usr/bin/no-such-command-xyz"]), 127);
    util::assert_code(&p.run(&["no-such-command-xyz"]), 127);
    // 125: a policy that does not load, and one this kernel cannot enforce.
    let d = Dir::new("badpolicy");
    let bad = d.write(
        "bad.yaml",
        "version: 1\nname: bad\nsandbox:\n  nonsense: 1\n",
    );
    let out = util::output(
        util::enforcecore(["run", "--policy"])
            .arg(&bad)
            .args(["--", "/bin/true"]),
    );
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("bad.yaml:"),
        "{}",
        util::stderr(&out)
    );
    let p = Knobs {
        requires_abi: Some(60),
        ..Knobs::default()
    }
    .write();
    let out = p.run(&["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("landlock ABI 60 is required"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn a_timeout_kills_the_whole_tree_with_124() {
    if !ready() {
        return;
    }
    let marker = format!("3{}.{}", std::process::id(), line!());
    let p = Knobs {
        limits: vec![("wall_time", "1s".into()), ("pids", "16".into())],
        ..Knobs::default()
    }
    .write();
    let script = format!("sleep {marker} & (setsid sleep {marker} &); sleep {marker}");
    let (out, report) = p.run_json(&sh(&script));
    util::assert_code(&out, 124);
    assert_eq!(report["exit"]["cause"], "timeout");
    assert!(
        denied_objects(&report).contains(&"wall_time"),
        "{}",
        report["denials"]
    );
    assert!(processes_with(&marker).is_empty(), "sleepers survived");
    for c in cgroup_paths(&report) {
        assert!(!exists(&c), "{} left behind", c.display());
    }
    assert!(!exists(&run_dir(&report)));
}

#[test]
fn descendants_die_with_the_main_process() {
    if !ready() {
        return;
    }
    let marker = format!("4{}.{}", std::process::id(), line!());
    let p = Knobs::default().write();
    let out = p.run(&sh(&format!("(setsid sleep {marker} &) ; exit 3")));
    util::assert_code(&out, 3);
    assert!(
        processes_with(&marker).is_empty(),
        "a detached descendant survived"
    );
}

#[test]
fn the_caller_environment_does_not_reach_the_tool() {
    if !ready() {
        return;
    }
    let p = Knobs {
        env_set: vec![("PATH", "/usr/bin:/bin"), ("FIXED", "${RUN_DIR}/x")],
        ..Knobs::default()
    }
    .write();
    let out = util::output(
        p.cmd(&[], &sh("env"))
            .env("AWS_SECRET_ACCESS_KEY", "leak-me")
            .env("LANG", "C.UTF-8")
            .env("LD_PRELOAD", "/tmp/evil.so"),
    );
    util::assert_code(&out, 0);
    let env = util::stdout(&out);
    assert!(
        !env.contains("leak-me") && !env.contains("LD_PRELOAD"),
        "{env}"
    );
    assert!(
        env.contains("LANG=C.UTF-8\n"),
        "allowed variable missing:\n{env}"
    );
    assert!(env.contains("PATH=/usr/bin:/bin\n"), "{env}");
    let fixed = env
        .lines()
        .find_map(|l| l.strip_prefix("FIXED="))
        .expect("FIXED");
    let home = env
        .lines()
        .find_map(|l| l.strip_prefix("HOME="))
        .expect("HOME");
    assert_eq!(fixed, format!("{home}/x"));
}

#[test]
fn inherited_fds_never_reach_the_tool() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    // The caller holds fd 7 open (inheritable) when it starts enforcecore.
    let script = format!(
        "exec 7</etc/hostname; exec {} run --policy {} -- /bin/sh -c \
         'ls /proc/self/fd; echo --; exec 8</dev/null; ls /proc/self/fd'",
        util::bin().display(),
        p.path.display()
    );
    let out = util::output(
        Command::new("/bin/bash")
            .args(["-c", &script])
            .env("ENFORCECORE_AUDIT_LOG", util::default_trail())
            .stdin(Stdio::null()),
    );
    util::assert_code(&out, 0);
    let s = util::stdout(&out);
    let (first, second) = s.split_once("--\n").expect("two listings");
    // 0, 1, 2 and the directory fd `ls` itself opened.
    assert_eq!(first, "0\n1\n2\n3\n", "unexpected fds reached the tool");
    // The probe sees an fd the tool opened itself.
    assert!(second.lines().any(|l| l == "8"), "probe broken:\n{s}");
}

#[test]
fn the_run_directory_is_private_fresh_and_removed_unless_kept() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    let (out, report) = p.run_json(&sh("pwd; stat -c '%u %g %a' .; touch made; ls"));
    util::assert_code(&out, 0);
    let dir = run_dir(&report);
    assert_eq!(
        util::stdout(&out),
        format!("{}\n65534 65534 700\nmade\ntmp\n", dir.display())
    );
    assert!(!exists(&dir), "run dir not removed");
    let p = Knobs {
        keep: true,
        ..Knobs::default()
    }
    .write();
    let (out, report) = p.run_json(&sh("echo kept > file"));
    util::assert_code(&out, 0);
    let dir = run_dir(&report);
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "kept\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdio_passes_through_the_supervisor_pipes() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    let mut child = p
        .cmd(
            &[],
            &sh("ls -l /proc/self/fd/0 /proc/self/fd/1 | grep -c pipe; tr a-z A-Z; echo err >&2"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello through the pipes\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "2\nHELLO THROUGH THE PIPES\n");
    assert_eq!(util::stderr(&out), "err\n");
}

#[test]
fn the_output_cap_stops_forwarding_and_kills() {
    if !ready() {
        return;
    }
    let p = Knobs {
        limits: vec![("output", "1000".into()), ("wall_time", "30s".into())],
        ..Knobs::default()
    }
    .write();
    let (out, report) = p.run_json(&sh("yes 0123456789 | head -c 100000; sleep 20"));
    util::assert_code(&out, 137);
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(report["exit"]["cause"], "output-cap");
    // Within the cap, everything arrives and the tool exits normally.
    let (out, report) = p.run_json(&sh("yes | head -c 999"));
    util::assert_code(&out, 0);
    assert_eq!(out.stdout.len(), 999);
    assert_eq!(report["exit"]["cause"], "exited");
}

#[test]
fn a_signal_to_run_kills_the_tree_and_cleans_up() {
    if !ready() {
        return;
    }
    let marker = format!("5{}.{}", std::process::id(), line!());
    let p = Knobs::default().write();
    let child = p
        .cmd(
            &["--json"],
            &sh(&format!("(setsid sleep {marker} &); sleep {marker}")),
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while processes_with(&marker).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "tool never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    util::assert_code(&out, 128 + 15);
    assert!(
        processes_with(&marker).is_empty(),
        "tree survived the supervisor"
    );
    let report: serde_json::Value =
        serde_json::from_str(util::stderr(&out).lines().last().expect("report")).unwrap();
    assert_eq!(report["exit"]["cause"], "shutdown");
    assert!(!exists(&run_dir(&report)));
}

#[test]
fn tools_are_admitted_by_command_and_argument_rules() {
    if !ready() {
        return;
    }
    let p = Knobs {
        extra: "tools:\n  echo:\n    command: /usr/bin/echo\n    args:\n      max_args: 2\n      \
                deny: ['--.*']\n      allow: ['[a-z]+']\n"
            .into(),
        ..Knobs::default()
    }
    .write();
    let ok = util::output(&mut p.cmd(&["--tool", "echo"], &["/usr/bin/echo", "hi", "there"]));
    util::assert_code(&ok, 0);
    assert_eq!(util::stdout(&ok), "hi there\n");
    for (argv, why) in [
        (vec!["/usr/bin/echo", "--help"], "deny rule"),
        (vec!["/usr/bin/echo", "a", "b", "c"], "max_args"),
        (vec!["/usr/bin/echo", "UPPER"], "no allow rule"),
        (vec!["/bin/echo", "hi"], "runs `/usr/bin/echo`"),
    ] {
        let out = util::output(&mut p.cmd(&["--tool", "echo"], &argv));
        util::assert_code(&out, 126);
        assert!(
            util::stderr(&out).contains(why),
            "{why}: {}",
            util::stderr(&out)
        );
    }
    let out = util::output(&mut p.cmd(&["--tool", "nope"], &["/bin/true"]));
    util::assert_code(&out, 126);
}

#[test]
fn verbose_reports_what_was_enforced() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    let out = util::output(&mut p.cmd(&["--verbose"], &["/bin/true"]));
    util::assert_code(&out, 0);
    let e = util::stderr(&out);
    for needle in [
        "landlock ABI",
        "log_new_exec true",
        "seccomp deny errno:",
        "cgroup v",
        "uid 65534",
    ] {
        assert!(e.contains(needle), "missing `{needle}`:\n{e}");
    }
}

#[test]
fn a_stderr_that_cannot_be_written_never_aborts_a_run() {
    if !ready() {
        return;
    }
    // Every write to /dev/full fails (ENOSPC): the debug log, the report of
    // `--verbose` and of an abnormal end are lost, the run is not — the tool's
    // own exit code comes back and its exit is recorded.
    let d = Dir::new("fullstderr");
    let trail = d.join("trail.jsonl");
    let p = Knobs::default().write();
    for (script, expected) in [("exit 3", 3), ("kill -KILL $$", 128 + 9)] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let out = util::enforcecore(["run", "--verbose", "--policy"])
            .arg(&p.path)
            .arg("--audit-log")
            .arg(&trail)
            .arg("--")
            .args(sh(script))
            .env("ENFORCECORE_LOG", "debug")
            .stderr(full)
            .output()
            .expect("spawn enforcecore");
        util::assert_code(&out, expected);
    }
    let text = std::fs::read_to_string(&trail).expect("read the trail");
    assert_eq!(text.matches("\"kind\":\"run-exited\"").count(), 2, "{text}");
}

#[test]
fn the_callers_personality_does_not_reach_the_tool() {
    if !ready() {
        return;
    }
    // `setarch -R` disables ASLR for its child; without enforcecore it sticks.
    let bare = util::output(Command::new("setarch").args(["-R", "cat", "/proc/self/personality"]));
    assert_eq!(util::stdout(&bare), "00040000\n");
    let p = Knobs::default().write();
    let mut c = Command::new("setarch");
    c.arg("-R")
        .arg(util::bin())
        .args(["run", "--policy"])
        .arg(&p.path)
        .args(["--", "/bin/cat", "/proc/self/personality"])
        .env("ENFORCECORE_AUDIT_LOG", util::default_trail())
        .stdin(Stdio::null());
    let out = util::output(&mut c);
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "00000000\n");
}

#[test]
fn a_caller_that_stops_reading_cannot_hang_the_run() {
    if !ready() {
        return;
    }
    let p = Knobs {
        limits: vec![("wall_time", "1s".into())],
        ..Knobs::default()
    }
    .write();
    // stdout is a pipe nobody reads: the tool blocks, the deadline fires, the
    // supervisor gives up on the stuck sink and exits.
    let mut child = p
        .cmd(&[], &["/usr/bin/yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(124));
    drop(child.stdout.take());
}

#[test]
fn a_command_line_that_does_not_parse_is_125_for_run_and_call() {
    // Never 2, which a tool could have returned itself.
    for args in [
        &["run", "--", "/bin/true"][..],
        &[
            "run",
            "--policy",
            "p.yaml",
            "--no-such-flag",
            "--",
            "/bin/true",
        ],
        &["call"],
    ] {
        let out = util::output(&mut util::enforcecore(args));
        util::assert_code(&out, 125);
        assert!(util::stderr(&out).contains("Usage:"), "{args:?}");
    }
    // Help is not an error; other commands keep clap's 2 for usage errors.
    util::assert_code(&util::output(&mut util::enforcecore(["run", "--help"])), 0);
    util::assert_code(
        &util::output(&mut util::enforcecore(["audit", "verify"])),
        2,
    );
}

#[test]
fn what_an_agent_sends_never_reaches_the_terminal_as_escape_sequences() {
    if !ready() {
        return;
    }
    let p = Knobs::default().write();
    let out = p.run(&["/bin/x\u{1b}]0;title\u{7}\u{1b}[31mRED"]);
    util::assert_code(&out, 127);
    let e = util::stderr(&out);
    assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
    assert!(
        e.contains("/bin/x\\u{1b}]0;title\\u{7}\\u{1b}[31mRED"),
        "{e}"
    );
}

#[test]
fn a_signal_before_the_tool_starts_ends_the_run_without_it() {
    if !ready() {
        return;
    }
    // The trail is locked by another writer, so `run` waits at start-up with
    // its cgroup already being made; SIGINT then must not kill it outright.
    let d = Dir::new("early-signal");
    let trail = d.join("trail.jsonl");
    let lock = std::fs::File::create(&trail).unwrap();
    lock.lock().unwrap();
    let marker = d.join("ran");
    let p = Knobs::default().write();
    let child = util::enforcecore(["run", "--policy"])
        .arg(&p.path)
        .arg("--audit-log")
        .arg(&trail)
        .arg("--")
        .args(["/usr/bin/touch".as_ref(), marker.as_os_str()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    util::assert_code(&out, 128 + 2);
    assert!(
        util::stderr(&out).contains("before the tool started; it did not run"),
        "{}",
        util::stderr(&out)
    );
    assert!(!marker.exists(), "the tool ran");
}

#[test]
fn the_python_example_runs_on_a_host_with_any_of_its_interpreters() {
    if !ready() {
        return;
    }
    // `/usr/bin/python3` links to one versioned interpreter; the others the
    // example names are optional, so the policy runs wherever python3 does.
    let stdlib = || {
        std::fs::read_dir("/usr/lib")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("this.py")))
            .find(|p| p.to_string_lossy().contains("python3.") && p.exists())
    };
    if !util::require("python3", || {
        stdlib()
            .map(drop)
            .ok_or_else(|| "no python3 standard library under /usr/lib".to_string())
    }) {
        return;
    }
    let stdlib = stdlib().expect("probed");
    let d = Dir::new("python-example");
    let out = util::output(
        util::enforcecore(["run", "--tool", "python", "--policy"])
            .arg(util::policy("examples/python-runner.yaml"))
            .arg("--audit-log")
            .arg(d.join("trail.jsonl"))
            .args(["--", "/usr/bin/python3", "-I"])
            .arg(&stdlib),
    );
    util::assert_code(&out, 0);
    assert!(util::stdout(&out).contains("The Zen of Python"), "{out:?}");
}

#[test]
fn json_ends_every_run_with_an_object() {
    if !ready() {
        return;
    }
    // A report when the tool ran; an error object when it did not: not found,
    // refused by the policy, a policy that does not load.
    let p = Knobs {
        extra: "tools:\n  lister:\n    command: /bin/ls\n".into(),
        ..Knobs::default()
    }
    .write();
    let d = Dir::new("json-errors");
    let bad = d.write(
        "bad.yaml",
        "version: 1\nname: bad\nsandbox:\n  nonsense: 1\n",
    );
    let cases: [(Vec<&std::ffi::OsStr>, i32); 3] = [
        (
            vec![
                p.path.as_ref(),
                "--".as_ref(),
                "/usr/bin/no-such-xyz".as_ref(),
            ],
            127,
        ),
        (
            vec![
                p.path.as_ref(),
                "--tool".as_ref(),
                "lister".as_ref(),
                "--".as_ref(),
                "/bin/cat".as_ref(),
            ],
            126,
        ),
        (vec![bad.as_ref(), "--".as_ref(), "/bin/true".as_ref()], 125),
    ];
    for (args, code) in cases {
        let out = util::output(util::enforcecore(["run", "--json", "--policy"]).args(&args));
        util::assert_code(&out, code);
        let last = util::stderr(&out)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let v: serde_json::Value =
            serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last}"));
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["run_id"].is_string(), "{v}");
    }
}
