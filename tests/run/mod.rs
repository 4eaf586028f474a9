//! `enforcecore run` on the real kernel: exit codes, identity, environment, fds,
//! run directory, stdio, output cap, shutdown — and the policy builder the
//! `sandbox_*` modules share.
//!
//! Root-only (the supervisor switches users and creates cgroups). Each test states
//! what the kernel or the user sees, and most pair a refused attempt with the same
//! attempt under a policy that grants it, so that the test can fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{self, Dir};

mod fs;
mod limits;
mod net;
mod observer;
mod syscalls;

/// Probe: Landlock ABI >= `n` on this kernel.
pub fn probe_landlock(n: u32) -> Result<(), String> {
    match enforcecore::sandbox::probe::landlock_abi() {
        Ok(abi) if abi >= n => Ok(()),
        Ok(abi) => Err(format!("landlock ABI {abi} < {n}")),
        Err(e) => Err(format!("landlock unavailable: {e}")),
    }
}

/// Gate a sandbox test: root, Landlock ABI 6 (scopes), a tool user.
#[track_caller]
pub fn ready() -> bool {
    util::require_root()
        && util::require("landlock-abi-6", || probe_landlock(6))
        && util::require("user-nobody", || {
            std::fs::read_to_string("/etc/passwd")
                .map_err(|e| e.to_string())?
                .lines()
                .any(|l| l.starts_with("nobody:"))
                .then_some(())
                .ok_or_else(|| "no `nobody` user".to_string())
        })
}

/// A standalone test policy, strict by default; fields add to or override it.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// Extra `filesystem.read` paths (`/proc` is always readable here, for probes).
    pub read: Vec<String>,
    /// Extra `filesystem.write` paths (`${RUN_DIR}` is always writable).
    pub write: Vec<String>,
    /// Extra `filesystem.exec` paths (`/usr/bin` and `/bin` always).
    pub exec: Vec<String>,
    /// `network.families`.
    pub families: Vec<&'static str>,
    /// `network.udp`.
    pub udp: bool,
    /// `network.raw`.
    pub raw: bool,
    /// `network.tcp_connect`.
    pub tcp_connect: Vec<u16>,
    /// `network.tcp_bind`.
    pub tcp_bind: Vec<u16>,
    /// `scopes.signals`.
    pub signals: bool,
    /// `scopes.abstract_unix`.
    pub abstract_unix: bool,
    /// `syscalls.groups` (deny mode).
    pub groups: Vec<&'static str>,
    /// `syscalls.mode`.
    pub mode: &'static str,
    /// `syscalls.names`.
    pub names: Vec<&'static str>,
    /// `syscalls.action`: `errno` or `kill`.
    pub action: &'static str,
    /// `syscalls.errno` (an unusual one by default, so a test can tell seccomp's
    /// refusal from the kernel's own EPERM).
    pub errno: &'static str,
    /// `limits` lines, e.g. `("memory", "64MiB")`.
    pub limits: Vec<(&'static str, String)>,
    /// `env.allow`.
    pub env_allow: Vec<&'static str>,
    /// `env.set`.
    pub env_set: Vec<(&'static str, &'static str)>,
    /// `user`/`group`.
    pub user: &'static str,
    /// `group`.
    pub group: &'static str,
    /// `run_dir.keep`.
    pub keep: bool,
    /// `requires.landlock_abi`.
    pub requires_abi: Option<u32>,
    /// Extra top-level YAML (e.g. `tools:`).
    pub extra: String,
}

/// The strict groups (what `policies/strict.yaml` denies).
pub const STRICT_GROUPS: [&str; 18] = [
    "mount",
    "namespaces",
    "ptrace",
    "bpf",
    "perf",
    "keyring",
    "io_uring",
    "kexec",
    "modules",
    "reboot",
    "swap",
    "acct",
    "userfaultfd",
    "handles",
    "clock",
    "raw_io",
    "system",
    "obsolete",
];

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            read: vec![],
            write: vec![],
            exec: vec![],
            families: vec![],
            udp: false,
            raw: false,
            tcp_connect: vec![],
            tcp_bind: vec![],
            signals: true,
            abstract_unix: true,
            groups: STRICT_GROUPS.to_vec(),
            mode: "deny",
            names: vec![],
            action: "errno",
            errno: "131",
            limits: vec![
                ("memory", "256MiB".into()),
                ("pids", "64".into()),
                ("wall_time", "60s".into()),
            ],
            env_allow: vec!["LANG"],
            env_set: vec![("PATH", "/usr/bin:/bin")],
            user: "65534",
            group: "65534",
            keep: false,
            requires_abi: None,
            extra: String::new(),
        }
    }
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("\"{x}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn nums(v: &[u16]) -> String {
    let items: Vec<String> = v.iter().map(u16::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl Knobs {
    /// The policy as YAML.
    pub fn yaml(&self) -> String {
        let mut read = vec![
            "/usr",
            "/etc/ld.so.cache",
            "/etc/localtime",
            "/etc/passwd",
            "/etc/group",
            "/etc/nsswitch.conf",
            "/dev/urandom",
            "/proc",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        read.extend(self.read.iter().cloned());
        let mut write = vec!["${RUN_DIR}".to_string()];
        write.extend(self.write.iter().cloned());
        let mut exec = vec!["/usr/bin".to_string(), "/bin".to_string()];
        exec.extend(self.exec.iter().cloned());
        let limits: String = self
            .limits
            .iter()
            .map(|(k, v)| format!("    {k}: {v}\n"))
            .collect();
        let env_set: String = self
            .env_set
            .iter()
            .map(|(k, v)| format!("      {k}: \"{v}\"\n"))
            .collect();
        let requires = self
            .requires_abi
            .map(|a| format!("requires:\n  landlock_abi: {a}\n"))
            .unwrap_or_default();
        format!(
            "version: 1\nname: test\n{requires}sandbox:\n  user: {user}\n  group: {group}\n  \
             filesystem:\n    read: {read}\n    write: {write}\n    exec: {exec}\n    rules:\n      \
             - {{ path: /lib64, access: [read], optional: true }}\n      \
             - {{ path: /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }}\n      \
             - {{ path: /dev/null, access: [read_file, write_file, truncate] }}\n  \
             network:\n    families: {families}\n    udp: {udp}\n    raw: {raw}\n    \
             tcp_connect: {tcp_connect}\n    tcp_bind: {tcp_bind}\n  \
             scopes: {{ signals: {signals}, abstract_unix: {abstract_unix} }}\n  \
             syscalls:\n    mode: {mode}\n    groups: {groups}\n    names: {names}\n    \
             action: {action}\n{errno}  limits:\n{limits}  env:\n    allow: {allow}\n    set:\n{env_set}  \
             run_dir:\n    keep: {keep}\n{extra}",
            user = self.user,
            group = self.group,
            read = list(&read),
            write = list(&write),
            exec = list(&exec),
            families = list(&self.families),
            udp = self.udp,
            raw = self.raw,
            tcp_connect = nums(&self.tcp_connect),
            tcp_bind = nums(&self.tcp_bind),
            signals = self.signals,
            abstract_unix = self.abstract_unix,
            mode = self.mode,
            groups = list(&self.groups),
            names = list(&self.names),
            action = self.action,
            errno = if self.action == "errno" {
                format!("    errno: {}\n", self.errno)
            } else {
                String::new()
            },
            limits = limits,
            allow = list(&self.env_allow),
            env_set = env_set,
            keep = self.keep,
            extra = self.extra,
        )
    }

    /// Write the policy into a fresh directory.
    pub fn write(&self) -> TestPolicy {
        let dir = Dir::new("policy");
        let path = dir.write("test.yaml", self.yaml());
        TestPolicy { _dir: dir, path }
    }
}

/// A policy file in its own directory (removed on drop).
pub struct TestPolicy {
    _dir: Dir,
    /// The policy file.
    pub path: PathBuf,
}

impl TestPolicy {
    /// `enforcecore run --policy <this> [flags] -- argv...`, stdin null.
    pub fn cmd(&self, flags: &[&str], argv: &[&str]) -> Command {
        let mut c = util::enforcecore(["run", "--policy"]);
        c.arg(&self.path).args(flags).arg("--").args(argv);
        c
    }

    /// Run and capture.
    pub fn run(&self, argv: &[&str]) -> Output {
        util::output(&mut self.cmd(&[], argv))
    }

    /// Run with `--json` and return the output and the parsed report.
    pub fn run_json(&self, argv: &[&str]) -> (Output, serde_json::Value) {
        let out = util::output(&mut self.cmd(&["--json"], argv));
        let report = util::stderr(&out)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "no JSON report on stderr\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    util::stdout(&out),
                    util::stderr(&out)
                )
            });
        (out, report)
    }
}

/// `python3 -c <code>` argv.
pub fn py(code: &str) -> Vec<&str> {
    vec!["/usr/bin/python3", "-c", code]
}

/// `/bin/sh -c <script>` argv.
pub fn sh(script: &str) -> Vec<&str> {
    vec!["/bin/sh", "-c", script]
}

/// A directory under /tmp that the tool user can reach (0755), with `name` inside
/// containing `body`, mode 0644, owned by the tool user (so that only Landlock
/// stands between the tool and it).
pub fn outside_file(name: &str, body: &str) -> (Dir, PathBuf) {
    let d = Dir::new("outside");
    let p = d.write(name, body);
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).expect("chown test file");
    (d, p)
}

/// Processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(marker)
        {
            out.push(pid);
        }
    }
    out
}

/// The run directory named in a `--json` report.
pub fn run_dir(report: &serde_json::Value) -> PathBuf {
    PathBuf::from(report["enforcement"]["run_dir"].as_str().expect("run_dir"))
}

/// The cgroup directories named in a `--json` report.
pub fn cgroup_paths(report: &serde_json::Value) -> Vec<PathBuf> {
    report["enforcement"]["cgroup"]["paths"]
        .as_array()
        .expect("cgroup paths")
        .iter()
        .map(|p| PathBuf::from(p.as_str().expect("path")))
        .collect()
}

/// Whether a path exists (without following a final symlink).
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A `/proc/self/status` field as the tool saw it.
pub fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
}

// ---------------------------------------------------------------- tests

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
    assert_eq!(report["denials"][0]["object"], "wall_time");
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

/// `enforcecore run` started as uid/gid 65534 (via `setpriv`).
fn run_as_nobody(policy: &Path, argv: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(util::bin())
        .args(["run", "--json", "--policy"])
        .arg(policy)
        .arg("--")
        .args(argv)
        .env("TMPDIR", "/tmp")
        .stdin(Stdio::null());
    util::output(&mut c)
}

#[test]
fn without_root_landlock_seccomp_and_nnp_still_apply_and_named_users_fail_closed() {
    if !ready() {
        return;
    }
    // No identity named, no cgroup limits: runs as the caller, without a cgroup.
    let yaml = Knobs {
        limits: vec![("wall_time", "30s".into())],
        ..Knobs::default()
    }
    .yaml()
    .replace("  user: 65534\n  group: 65534\n", "");
    let d = Dir::new("nonroot");
    let policy = d.write("p.yaml", yaml);
    let out = run_as_nobody(&policy, &sh("cat /proc/self/status; cat /etc/shadow"));
    let s = util::stdout(&out);
    assert_eq!(status_field(&s, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    assert_eq!(status_field(&s, "Seccomp"), "2");
    assert_eq!(status_field(&s, "CapEff"), "0000000000000000");
    assert!(util::stderr(&out).contains("Permission denied"));
    let report: serde_json::Value =
        serde_json::from_str(util::stderr(&out).lines().last().expect("report")).unwrap();
    assert_eq!(report["enforcement"]["cgroup"]["version"], "none");
    assert_eq!(report["enforcement"]["caps_dropped"], false);
    assert!(!exists(&run_dir(&report)));
    // A policy that names another user cannot be honoured without root (naming
    // the caller's own uid is fine).
    let named = Knobs {
        limits: vec![("wall_time", "30s".into())],
        user: "daemon",
        ..Knobs::default()
    }
    .write();
    util::assert_code(
        &run_as_nobody(
            &d.write(
                "own.yaml",
                Knobs {
                    limits: vec![("wall_time", "30s".into())],
                    ..Knobs::default()
                }
                .yaml(),
            ),
            &["/bin/true"],
        ),
        0,
    );
    let out = run_as_nobody(&named.path, &["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("only root can switch users"),
        "{}",
        util::stderr(&out)
    );
    // cgroup limits need a cgroup this user cannot create: fail closed.
    let limited = Knobs::default()
        .yaml()
        .replace("  user: 65534\n  group: 65534\n", "");
    let policy = d.write("limited.yaml", limited);
    let out = run_as_nobody(&policy, &["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("cgroup"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn doctor_reports_what_the_kernel_offers() {
    if !util::require_root() {
        return;
    }
    let out = util::output(&mut util::enforcecore(["doctor", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&util::stdout(&out)).expect("doctor JSON");
    let abi = enforcecore::sandbox::probe::landlock_abi().ok();
    assert_eq!(r["landlock"]["abi"].as_u64().map(|a| a as u32), abi);
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
    let listed: Vec<&str> = r["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(listed, actions.split_whitespace().collect::<Vec<_>>());
    assert_eq!(r["root"], true);
    assert!(
        r["kernel_audit"]["enabled"].is_u64(),
        "{}",
        r["kernel_audit"]
    );
    assert!(r["cgroups"]["layout"].is_string(), "{}", r["cgroups"]);
    util::assert_code(&out, if r["ok"] == true { 0 } else { 1 });
    let text = util::output(&mut util::enforcecore(["doctor"]));
    assert!(util::stdout(&text).contains("landlock:"));
}
