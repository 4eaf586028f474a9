//! seccomp and Landlock scopes against escapes: namespaces, mount, bpf, perf,
//! keyring, io_uring, ptrace, signals to the supervisor, x32.
//!
//! Test policies deny with errno 131 (ENOTRECOVERABLE): a call the filter refused
//! is told apart from one the kernel refused for lack of privilege. Each refusal
//! is repeated under a policy that leaves the group out.

use std::process::{Command, Stdio};

use super::{Knobs, STRICT_GROUPS, py, ready, sh};
use crate::util;

/// Python calling `syscall(nr, args...)` via libc and printing `ok` or the errno.
fn raw(nr: i64, args: &str) -> String {
    format!(
        "import ctypes, errno, os\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.syscall.restype = ctypes.c_long\n\
         r = libc.syscall(ctypes.c_long({nr}){args})\n\
         if r == 0 and {nr} == 56:\n\
         \x20   os._exit(0)\n\
         print('ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))\n"
    )
}

fn without(group: &'static str) -> Knobs {
    Knobs {
        groups: STRICT_GROUPS
            .iter()
            .copied()
            .filter(|g| *g != group)
            .collect(),
        ..Knobs::default()
    }
}

/// `(label, group, syscall, args, what the kernel itself answers nobody)`:
/// `Some("ok")` for success; `None` for whatever errno it picks (not the filter's).
const CASES: &[(&str, &str, i64, &str, Option<&str>)] = &[
    // unshare(CLONE_NEWUSER): allowed for unprivileged users by the kernel.
    (
        "unshare",
        "namespaces",
        272,
        ", ctypes.c_ulong(0x10000000)",
        Some("ok"),
    ),
    // mount(NULL, "/", NULL, MS_REMOUNT|MS_BIND, NULL)
    (
        "mount",
        "mount",
        165,
        ", None, b'/', None, ctypes.c_ulong(0x1020), None",
        None,
    ),
    // bpf(BPF_MAP_CREATE, NULL, 0)
    ("bpf", "bpf", 321, ", 0, None, 0", None),
    // perf_event_open(NULL, 0, -1, -1, 0)
    ("perf", "perf", 298, ", None, 0, -1, -1, 0", None),
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)
    ("keyctl", "keyring", 250, ", 0, -3, 1", Some("ok")),
    // ptrace(PTRACE_TRACEME)
    ("ptrace", "ptrace", 101, ", 0, 0, 0, 0", Some("ok")),
];

#[test]
fn dangerous_syscall_groups_are_refused_by_the_filter() {
    if !ready() {
        return;
    }
    let strict = Knobs::default().write();
    for (label, group, nr, args, kernel) in CASES {
        let code = raw(*nr, args);
        let out = strict.run(&py(&code));
        util::assert_code(&out, 0);
        assert_eq!(
            util::stdout(&out),
            "ENOTRECOVERABLE\n",
            "{label} under strict"
        );
        let out = without(group).write().run(&py(&code));
        util::assert_code(&out, 0);
        let got = util::stdout(&out);
        match kernel {
            Some(k) => assert_eq!(got, format!("{k}\n"), "{label} without `{group}`"),
            None => assert_ne!(got, "ENOTRECOVERABLE\n", "{label} without `{group}`"),
        }
    }
}

#[test]
fn namespace_flags_of_clone_are_refused_and_clone3_falls_back() {
    if !ready() {
        return;
    }
    // clone(CLONE_NEWUSER | SIGCHLD, NULL, ...): the child exits at once.
    let clone = raw(56, ", ctypes.c_ulong(0x10000000 | 17), None, None, None, 0");
    // clone3(NULL, 0): EINVAL from the kernel, ENOSYS from the filter.
    let clone3 = raw(435, ", None, 0");
    let strict = Knobs::default().write();
    assert_eq!(util::stdout(&strict.run(&py(&clone))), "ENOTRECOVERABLE\n");
    assert_eq!(util::stdout(&strict.run(&py(&clone3))), "ENOSYS\n");
    let open = without("namespaces").write();
    assert_eq!(util::stdout(&open.run(&py(&clone))), "ok\n");
    assert_eq!(util::stdout(&open.run(&py(&clone3))), "EINVAL\n");
    // Threads and plain forks still work under strict (clone without namespace flags).
    let out = strict.run(&py(
        "import threading, os\nt = threading.Thread(target=lambda: None); t.start(); t.join()\n\
         pid = os.fork()\nos._exit(0) if pid == 0 else print(os.waitpid(pid, 0)[1])",
    ));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "0\n");
}

#[test]
fn io_uring_is_refused_even_when_no_policy_lists_it() {
    if !ready() {
        return;
    }
    let p = Knobs {
        groups: vec![],
        ..Knobs::default()
    }
    .write();
    // io_uring_setup(1, NULL): EFAULT from the kernel if it were allowed.
    let out = p.run(&py(&raw(425, ", 1, None")));
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), "ENOTRECOVERABLE\n");
}

#[test]
fn x32_syscalls_kill_the_tool() {
    if !ready() {
        return;
    }
    // getpid through the x32 ABI (nr | 0x40000000).
    let (out, report) = Knobs::default()
        .write()
        .run_json(&py(&raw(0x4000_0000 + 39, "")));
    util::assert_code(&out, 128 + libc::SIGSYS);
    assert_eq!(report["exit"]["signal"], libc::SIGSYS);
}

#[test]
fn the_kill_action_kills_and_is_reported() {
    if !ready() {
        return;
    }
    let p = Knobs {
        action: "kill",
        ..Knobs::default()
    }
    .write();
    let (out, report) = p.run_json(&py(&raw(101, ", 0, 0, 0, 0")));
    util::assert_code(&out, 128 + libc::SIGSYS);
    assert_eq!(report["exit"]["cause"], "seccomp-kill");
    let (out, report) = without("ptrace")
        .write()
        .run_json(&py(&raw(101, ", 0, 0, 0, 0")));
    util::assert_code(&out, 0);
    assert_eq!(report["exit"]["cause"], "exited");
}

#[test]
fn allow_list_mode_refuses_everything_else() {
    if !ready() {
        return;
    }
    // A shell needs more than this; `true` needs very little.
    let names = vec![
        "brk",
        "mmap",
        "munmap",
        "mprotect",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "getrandom",
        "openat",
        "newfstatat",
        "close",
        "pread64",
        "access",
        "exit",
    ];
    let p = Knobs {
        mode: "allow",
        groups: vec![],
        names: names.clone(),
        ..Knobs::default()
    }
    .write();
    util::assert_code(&p.run(&["/bin/true"]), 0);
    // The same program with one call it needs removed from the list fails.
    let p = Knobs {
        mode: "allow",
        groups: vec![],
        names: names.into_iter().filter(|n| *n != "mmap").collect(),
        ..Knobs::default()
    }
    .write();
    assert_ne!(util::code(&p.run(&["/bin/true"])), 0);
}

#[test]
fn signals_and_ptrace_cannot_reach_processes_outside_the_sandbox() {
    if !ready() {
        return;
    }
    // A process of the tool's own uid, outside the sandbox.
    let mut victim = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "30",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv");
    let vpid = victim.id();
    let script = format!("kill -0 {vpid} && echo victim; kill -0 $PPID && echo supervisor; true");
    let scoped = Knobs::default().write();
    let out = scoped.run(&sh(&script));
    let err = util::stderr(&out);
    assert_eq!(util::stdout(&out), "", "{err}");
    assert_eq!(err.matches("Operation not permitted").count(), 2, "{err}");
    let unscoped = Knobs {
        signals: false,
        ..Knobs::default()
    }
    .write();
    let out = unscoped.run(&sh(&script));
    assert_eq!(util::stdout(&out), "victim\n", "{}", util::stderr(&out));
    victim.kill().unwrap();
    victim.wait().unwrap();
}
