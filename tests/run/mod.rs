//! `enforcecore run` on the real kernel, one module per layer, and the policy
//! builder they share ([`Knobs`]): a standalone strict-like policy whose fields a
//! test overrides to grant exactly what it needs.
//!
//! Root-only (the supervisor switches users and creates cgroups). Each test states
//! what the kernel or the user sees, and most pair a refused attempt with the same
//! attempt under a policy that grants it, so that the test can fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{self, Dir};

mod audit;
mod fs;
mod general;
mod host;
mod limits;
mod net;
mod observer;
mod strict;
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
/// The objects of the run's denials. Besides the one a test provokes, the
/// tool may be refused other things (a shell's locale files outside the
/// grant), which the kernel reports whenever kernel audit is on — possibly
/// switched on by a concurrent run.
pub fn denied_objects(report: &serde_json::Value) -> Vec<&str> {
    report["denials"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["object"].as_str()).collect())
        .unwrap_or_default()
}

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
