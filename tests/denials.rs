//! Kernel denials in the audit trail: every refusal of a real sandboxed process
//! appears exactly once, as a `denial` record of the right run, naming the layer
//! and the object — and `audit why` explains it.
//!
//! Root, Landlock ABI 7 (denial logging of the exec'd tool) and kernel audit
//! (`AUDIT_GET`) are required. The policies ask `denials.kernel_audit: enable`:
//! the supervisor switches kernel audit on for the run and off after it (unless
//! it was on already); [`kernel_audit_is_left_as_it_was`] checks that.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::run::{Knobs, outside_file, probe_landlock, py, ready, sh};
use crate::util::{self, Dir};

use enforcecore::supervise::denials::enable;
use enforcecore::supervise::denials::netlink::Control;

fn gate() -> bool {
    ready()
        && util::require("landlock-abi-7", || probe_landlock(7))
        && util::require("kernel-audit", || {
            Control::open()
                .and_then(|mut c| c.status())
                .map(drop)
                .map_err(|e| format!("AUDIT_GET failed: {e}"))
        })
}

/// One run's trail.
struct Run {
    _dir: Dir,
    trail: PathBuf,
    out: Output,
    id: String,
    records: Vec<Value>,
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("record is JSON"))
        .collect()
}

/// `enforcecore run --policy POLICY --audit-log … -- argv`.
fn run(policy: &Path, argv: &[&str]) -> Run {
    let dir = Dir::new("denials");
    let trail = dir.join("audit.jsonl");
    let mut c = util::enforcecore(["run", "--policy"]);
    c.arg(policy)
        .arg("--audit-log")
        .arg(&trail)
        .arg("--")
        .args(argv);
    let out = util::output(&mut c);
    let records = records(&trail);
    let id = records
        .iter()
        .find(|r| r["kind"] == "run-started")
        .and_then(|r| r["run"].as_str())
        .unwrap_or_else(|| panic!("no run-started record\n{}", util::stderr(&out)))
        .to_string();
    Run {
        _dir: dir,
        trail,
        out,
        id,
        records,
    }
}

fn strict() -> PathBuf {
    util::policy("strict.yaml")
}

impl Run {
    fn denials(&self) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r["kind"] == "denial" && r["run"] == self.id.as_str())
            .collect()
    }

    /// How many of the run's denials name `object`.
    fn one_kind(&self, object: &str) -> usize {
        self.denials()
            .iter()
            .filter(|d| d["denial"]["object"] == object)
            .count()
    }

    /// The one denial of `layer` whose object satisfies `object`; its seq.
    #[track_caller]
    fn one(&self, what: &str, layer: &str, object: impl Fn(&str) -> bool) -> u64 {
        let all = self.denials();
        let hits: Vec<&&Value> = all
            .iter()
            .filter(|d| {
                d["denial"]["layer"] == layer
                    && object(d["denial"]["object"].as_str().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{what}: expected exactly one {layer} denial, got {}\n{all:#?}\n--- stderr ---\n{}",
            hits.len(),
            util::stderr(&self.out)
        );
        let exited = self
            .records
            .iter()
            .find(|r| r["kind"] == "run-exited")
            .expect("run-exited");
        assert!(
            hits[0]["seq"].as_u64() < exited["seq"].as_u64(),
            "{what}: the denial comes before run-exited"
        );
        let counted = self
            .records
            .iter()
            .find(|r| r["kind"] == "denials-lost" && r["source"] == "cap")
            .and_then(|r| r["detail"].as_str()?.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        assert_eq!(
            exited["exit"]["denials"].as_u64(),
            Some(all.len() as u64 + counted),
            "{what}: run-exited counts the run's denials"
        );
        hits[0]["seq"].as_u64().expect("seq")
    }

    /// `audit why` on `seq` names the layer and the object.
    #[track_caller]
    fn why(&self, seq: u64, layer: &str, object: &str) -> String {
        let out = util::output(
            util::enforcecore(["audit", "why"])
                .arg(&self.trail)
                .arg(seq.to_string()),
        );
        util::assert_code(&out, 0);
        let text = util::stdout(&out);
        assert!(
            text.contains(&format!("stopped by:  {layer}")) && text.contains(object),
            "audit why {seq}:\n{text}"
        );
        text
    }
}

fn syscall(nr: u32, args: &str) -> String {
    format!(
        "import ctypes; l = ctypes.CDLL(None, use_errno=True); \
         r = l.syscall({nr}, {args}); print('result', r, ctypes.get_errno())"
    )
}

#[test]
fn every_strict_refusal_is_one_attributed_denial_that_why_explains() {
    if !gate() {
        return;
    }
    let (outside, secret) = outside_file("secret.txt", "not for the tool\n");
    let secret = secret.to_str().unwrap().to_string();
    let outside_dir = outside.path().to_str().unwrap().to_string();
    let scratch = format!("/tmp/enforcecore-denial-{}", std::process::id());
    let socket = |args: &str| format!("import socket; socket.socket({args})");
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "write outside the run directory",
            format!("echo x > {scratch}"),
            "landlock-fs",
            "/tmp".into(),
        ),
        (
            "read of an ungranted file",
            format!("cat {secret}"),
            "landlock-fs",
            secret.clone(),
        ),
        (
            "symlink to an ungranted file",
            format!("ln -s {secret} link && cat link"),
            "landlock-fs",
            secret.clone(),
        ),
        (
            "hard link of an ungranted file",
            format!("ln {secret} hard"),
            "landlock-fs",
            outside_dir.clone(),
        ),
        (
            "write under /proc/sys",
            "echo 1 > /proc/sys/kernel/ns_last_pid".into(),
            "landlock-fs",
            "/proc/sys/kernel/ns_last_pid".into(),
        ),
        (
            "TCP connect/bind (socket)",
            format!("/usr/bin/python3 -c \"{}\"", socket("")),
            "seccomp",
            "socket".into(),
        ),
        (
            "UDP",
            format!(
                "/usr/bin/python3 -c \"{}\"",
                socket("socket.AF_INET, socket.SOCK_DGRAM")
            ),
            "seccomp",
            "socket".into(),
        ),
        (
            "abstract unix connect",
            format!("/usr/bin/python3 -c \"{}\"", socket("socket.AF_UNIX")),
            "seccomp",
            "socket".into(),
        ),
        (
            "ptrace",
            syscall(101, "16, 1, 0, 0"),
            "seccomp",
            "ptrace".into(),
        ),
        (
            "unshare",
            syscall(272, "0x10000000"),
            "seccomp",
            "unshare".into(),
        ),
        (
            "mount",
            syscall(165, "0, 0, 0, 0, 0"),
            "seccomp",
            "mount".into(),
        ),
        ("bpf", syscall(321, "0, 0, 0"), "seccomp", "bpf".into()),
        (
            "perf_event_open",
            syscall(298, "0, 0, -1, -1, 0"),
            "seccomp",
            "perf_event_open".into(),
        ),
        (
            "keyctl",
            syscall(250, "0, 0, 0"),
            "seccomp",
            "keyctl".into(),
        ),
        (
            "io_uring",
            syscall(425, "8, 0"),
            "seccomp",
            "io_uring_setup".into(),
        ),
    ];
    for (what, script, layer, object) in cases {
        let argv = if script.starts_with("import ") {
            py(&script)
        } else {
            sh(&script)
        };
        let r = run(&strict(), &argv);
        let seq = r.one(what, layer, |o| o == object);
        let d = r.records.iter().find(|x| x["seq"] == seq).unwrap();
        let obj = d["denial"]["object"].as_str().unwrap().to_string();
        assert!(
            !d["denial"]["hint"].as_str().unwrap_or("").is_empty(),
            "{what}: a hint"
        );
        r.why(seq, layer, &obj);
    }
    assert!(
        !Path::new(&scratch).exists(),
        "the write outside was refused"
    );
}

#[test]
fn landlock_net_and_scope_denials_name_port_socket_and_process() {
    if !gate() {
        return;
    }
    // An abstract socket and a process of the tool's uid, both outside the sandbox.
    let name = format!("enforcecore-test-{}", std::process::id());
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let mut outsider = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("/bin/sleep")
            .arg("60")
            .uid(65534)
            .gid(65534)
            .spawn()
            .unwrap()
    };
    let p = Knobs {
        families: vec!["inet", "unix"],
        extra: "denials:\n  kernel_audit: enable\n".into(),
        ..Knobs::default()
    }
    .write();
    let code = format!(
        "import socket, os\n\
         for f in (lambda: socket.create_connection(('127.0.0.1', 9)),\n\
                   lambda: socket.socket().bind(('127.0.0.1', 4099)),\n\
                   lambda: socket.socket(socket.AF_UNIX).connect('\\0{name}'),\n\
                   lambda: os.kill({}, 0)):\n\
         \x20   try: f()\n\
         \x20   except OSError as e: print(e)\n",
        outsider.id()
    );
    let r = run(&p.path, &py(&code));
    let _ = outsider.kill();
    let _ = outsider.wait();
    let s = r.one("tcp connect", "landlock-net", |o| o == "tcp:9");
    r.why(s, "landlock-net", "tcp_connect");
    let s = r.one("tcp bind", "landlock-net", |o| o == "tcp:4099");
    r.why(s, "landlock-net", "tcp_bind");
    let s = r.one("abstract unix connect", "landlock-scope", |o| {
        o.contains(&format!("@{name}"))
    });
    r.why(s, "landlock-scope", "abstract_unix: false");
    let s = r.one("signal outside", "landlock-scope", |o| {
        o.contains(&format!("signal to pid {}", outsider.id()))
    });
    r.why(s, "landlock-scope", "signals: false");
}

#[test]
fn a_forking_tool_has_its_grandchildren_denials_attributed() {
    if !gate() {
        return;
    }
    let (_d, secret) = outside_file("gc.txt", "x\n");
    let script = format!(
        "echo main $$; sh -c 'sh -c \"echo gc \\$\\$; cat {s}; /usr/bin/python3 -c \\\"{py}\\\"\"'",
        s = secret.display(),
        py = "import ctypes; ctypes.CDLL(None).syscall(321, 0, 0, 0)"
    );
    let r = run(&strict(), &sh(&script));
    let out = util::stdout(&r.out);
    let main: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("main "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    let s = r.one("grandchild read", "landlock-fs", |o| {
        o == secret.to_str().unwrap()
    });
    let b = r.one("grandchild's child bpf", "seccomp", |o| o == "bpf");
    for seq in [s, b] {
        let d = r.records.iter().find(|x| x["seq"] == seq).unwrap();
        let pid = d["denial"]["pid"].as_i64().expect("pid");
        assert_ne!(
            pid, main,
            "the denial is the descendant's, not the main process's"
        );
    }
}

#[test]
fn concurrent_runs_are_not_mixed_up() {
    if !gate() {
        return;
    }
    let (_a, fa) = outside_file("a.txt", "a\n");
    let (_b, fb) = outside_file("b.txt", "b\n");
    let go = |file: PathBuf, nr: u32| {
        std::thread::spawn(move || {
            let script = format!(
                "for i in 1 2 3; do cat {f} 2>/dev/null; done; /usr/bin/python3 -c \
                 'import ctypes; ctypes.CDLL(None).syscall({nr}, 0, 0, 0)'",
                f = file.display()
            );
            let r = run(&strict(), &sh(&script));
            (r, file)
        })
    };
    let ta = go(fa.clone(), 321);
    let tb = go(fb.clone(), 250);
    for (t, other, own_call, other_call) in [(ta, &fb, "bpf", "keyctl"), (tb, &fa, "keyctl", "bpf")]
    {
        let (r, own) = t.join().unwrap();
        let objects: Vec<&str> = r
            .denials()
            .iter()
            .map(|d| d["denial"]["object"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            objects
                .iter()
                .filter(|o| **o == own.to_str().unwrap())
                .count(),
            3,
            "{objects:?}"
        );
        assert!(objects.contains(&own_call), "{objects:?}");
        assert!(
            !objects.contains(&other.to_str().unwrap()) && !objects.contains(&other_call),
            "another run's denial leaked in: {objects:?}"
        );
    }
}

#[test]
fn supervisor_enforced_limits_are_denials_too() {
    if !gate() {
        return;
    }
    let p = Knobs {
        limits: vec![("pids", "8".into()), ("wall_time", "2s".into())],
        extra: "denials:\n  kernel_audit: enable\n".into(),
        ..Knobs::default()
    }
    .write();
    let r = run(
        &p.path,
        &sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 & done; wait"),
    );
    let s = r.one("pids limit", "cgroup", |o| o == "pids");
    r.why(s, "cgroup", "limits.pids");
    let t = run(&p.path, &sh("sleep 30"));
    let s = t.one("wall-clock limit", "policy", |o| o == "wall_time");
    t.why(s, "policy", "limits.wall_time");
    let started = r
        .records
        .iter()
        .find(|x| x["kind"] == "run-started")
        .unwrap();
    let ka = started["enforcement"]["kernel_audit"]
        .as_str()
        .unwrap_or("");
    assert!(
        ka == "enabled-by-enforcecore" || ka == "already-enabled",
        "run-started says what kernel denial capture was: {ka}"
    );
}

#[test]
fn a_denial_flood_is_counted_and_does_not_hide_a_later_refusal() {
    if !gate() {
        return;
    }
    // 1500 refused bpf() calls, then one refused perf_event_open(): every call
    // refused by the kernel; 16 of the flood recorded one by one, the rest
    // counted in one `denials-lost` record, and the later, different refusal
    // recorded in full.
    let r = run(
        &strict(),
        &py("import ctypes\n\
             l = ctypes.CDLL(None, use_errno=True)\n\
             refused = 0\n\
             for i in range(1500):\n    \
                 if l.syscall(321, 0, 0, 0) == -1 and ctypes.get_errno() == 1: refused += 1\n\
             print('refused', refused, l.syscall(298, 0, 0, 0, 0, 0), ctypes.get_errno())"),
    );
    util::assert_code(&r.out, 0);
    assert!(
        util::stdout(&r.out).contains("refused 1500 -1 1"),
        "{}",
        util::stderr(&r.out)
    );
    let bpf = r.one_kind("bpf");
    assert_eq!(bpf, 16, "16 of one kind are recorded");
    let perf = r.one("after the flood", "seccomp", |o| o == "perf_event_open");
    let exited = r
        .records
        .iter()
        .find(|x| x["kind"] == "run-exited")
        .unwrap();
    let total = exited["exit"]["denials"].as_u64().unwrap_or(0);
    assert!(total >= 1501, "run-exited counts every denial: {total}");
    let capped: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| x["kind"] == "denials-lost" && x["source"] == "cap")
        .collect();
    assert_eq!(capped.len(), 1, "one record for the rest: {capped:#?}");
    assert_eq!(capped[0]["runs"][0], r.id.as_str());
    let detail = capped[0]["detail"].as_str().unwrap_or("");
    let counted = total - r.denials().len() as u64;
    assert!(
        detail.starts_with(&format!("{counted} more denials"))
            && detail.contains(&format!("seccomp {}", 1500 - 16)),
        "{detail}"
    );
    assert!(
        perf < capped[0]["seq"].as_u64().unwrap()
            && capped[0]["seq"].as_u64() < exited["seq"].as_u64(),
        "the count comes after the run's denials and before run-exited"
    );
    util::assert_code(
        &util::output(util::enforcecore(["audit", "verify"]).arg(&r.trail)),
        0,
    );
    // The table tells counted denials from lost ones.
    let show = util::output(util::enforcecore(["audit", "show", "--denials"]).arg(&r.trail));
    util::assert_code(&show, 0);
    let table = String::from_utf8_lossy(&show.stdout);
    assert!(table.contains("!! DENIALS CAPPED"), "{table}");
    assert!(!table.contains("!! DENIALS LOST"), "{table}");
}

#[test]
fn kernel_audit_is_left_as_it_was() {
    if !gate() {
        return;
    }
    let dir = Path::new(enable::STATE_DIR);
    let mut ctl = Control::open().unwrap();
    let (before, status) = enable::snapshot(dir, &mut ctl).unwrap();
    let r = run(&strict(), &sh("cat /etc/hostname >/dev/null 2>&1; true"));
    util::assert_code(&r.out, 0);
    let (after, now) = enable::snapshot(dir, &mut ctl).unwrap();
    if after.holders.is_empty() {
        // Nobody holds it now: it is exactly as the host had it.
        assert!(!after.enabled_by_enforcecore, "{after:?}");
        if before.holders.is_empty() && !before.enabled_by_enforcecore {
            assert_eq!(now.enabled, status.enabled, "kernel audit state changed");
        }
    }
}
