//! The shipped `policies/strict.yaml` keeps its promise: one probe tries every
//! escape the policy documents as impossible, and every attempt must fail.
//!
//! The other modules pair each refusal with a granting policy (so that they can
//! tell which layer refused); this one checks the policy operators actually use.

use super::{py, ready};
use crate::util;

/// Each line: a label, then `ok` or the errno name.
const PROBE: &str = r#"
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sys(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *a)
    if r < 0:
        raise OSError(ctypes.get_errno(), "")
def attempt(label, f):
    try:
        f()
        print(label, "ok")
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, e.errno))
attempt("write-outside", lambda: open("/tmp/enforcecore-strict-probe", "w"))
attempt("read-shadow", lambda: open("/etc/shadow").read())
attempt("read-home", lambda: os.listdir("/root"))
attempt("symlink-escape", lambda: (os.symlink("/etc/shadow", "s"), open("s").read()))
attempt("hardlink-escape", lambda: os.link("/etc/passwd", "h"))
attempt("tcp", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
attempt("tcp6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("kill-supervisor", lambda: os.kill(os.getppid(), 0))
attempt("ptrace-supervisor", lambda: sys(101, 16, os.getppid(), 0, 0))
attempt("unshare-user", lambda: sys(272, ctypes.c_ulong(0x10000000)))
attempt("unshare-net", lambda: sys(272, ctypes.c_ulong(0x40000000)))
attempt("mount", lambda: sys(165, b"none", b"/tmp", b"tmpfs", 0, None))
attempt("bpf", lambda: sys(321, 0, None, 0))
attempt("perf", lambda: sys(298, None, 0, -1, -1, 0))
attempt("keyctl", lambda: sys(250, 0, -3, 1))
attempt("io_uring", lambda: sys(425, 1, None))
attempt("proc-sys-write", lambda: open("/proc/sys/kernel/hostname", "w"))
"#;

#[test]
fn every_escape_the_strict_policy_promises_to_stop_fails() {
    if !ready() {
        return;
    }
    let mut cmd = util::enforcecore(["run", "--policy"]);
    cmd.arg(util::policy("strict.yaml"))
        .arg("--")
        .args(py(PROBE));
    let out = util::output(&mut cmd);
    util::assert_code(&out, 0);
    let text = util::stdout(&out);
    let lines: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(
        lines.len(),
        21,
        "probe incomplete:\n{text}\n{}",
        util::stderr(&out)
    );
    for (label, result) in &lines {
        assert!(
            matches!(*result, "EPERM" | "EACCES" | "EXDEV"),
            "{label}: {result} under strict.yaml\n{text}"
        );
    }
    assert!(!std::path::Path::new("/tmp/enforcecore-strict-probe").exists());
}
