//! The resolved policy: what every other module consumes.
//!
//! A [`Policy`] is the product of loading a YAML file, resolving its `extends`
//! chain, merging and validating. Nothing in here is raw user input any more:
//! paths are absolute templates, regexes are compiled and bounded, limits are
//! numbers, every tool carries its *effective* sandbox (defaults merged with the
//! tool's overrides). Each rule remembers the file, line and column it came from
//! ([`Origin`]) so that `policy show` and `audit why` can point at it.
//!
//! This module owns the data shape only. It must never touch the kernel and never
//! read files; loading lives in the sibling modules.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::redact::DetectorKind;
use crate::sandbox::syscalls::SyscallGroup;

/// Where a rule came from: the policy file and the position of its YAML node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// The policy file as it was reached: the path given to the loader, or for
    /// a base, that file's directory joined with the `extends` value.
    /// `Policy::sources` holds the canonical paths.
    pub file: PathBuf,
    /// 1-based line; 0 when the value was a built-in default.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub column: u32,
}

impl Origin {
    /// Origin of a value that no file set (a built-in default).
    pub fn builtin() -> Self {
        Origin {
            file: PathBuf::from("<built-in>"),
            line: 0,
            column: 0,
        }
    }
}

thread_local! {
    /// Set while [`canonical`] runs on this thread.
    static CANONICAL: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with canonical serialization on this thread: every [`Sourced`]
/// serializes as its bare value, and origins, `Policy::hash` and
/// `Policy::sources` are left out. The policy hash is computed over this form.
pub fn canonical<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            CANONICAL.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CANONICAL.with(|c| c.replace(true)));
    f()
}

fn omit<T>(_: &T) -> bool {
    CANONICAL.with(Cell::get)
}

impl<T: Serialize> Serialize for Sourced<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if omit(&()) {
            return self.value.serialize(s);
        }
        let mut st = s.serialize_struct("Sourced", 2)?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("origin", &self.origin)?;
        st.end()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// A value together with the place in a policy file that set it.
///
/// Serializes as `{"value": ..., "origin": ...}`, or as the bare value while
/// [`canonical`] serialization is in progress.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

/// A fully resolved, validated policy.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    /// Schema version (currently 1).
    pub version: u32,
    /// The policy's `name`.
    pub name: String,
    /// SHA-256 (hex) of the canonical JSON form of the effective policy. Audit
    /// records and `reload` name a policy by this hash.
    #[serde(skip_serializing_if = "omit")]
    pub hash: String,
    /// Every file of the `extends` chain, base first, the loaded file last
    /// (canonical paths).
    #[serde(skip_serializing_if = "omit")]
    pub sources: Vec<PathBuf>,
    /// Kernel features the policy demands beyond what its rules imply.
    pub requires: Requirements,
    /// The default sandbox: applies to `run` without `--tool` and is the base
    /// every tool's effective sandbox was merged from.
    pub sandbox: Sandbox,
    /// Stdio redaction.
    pub redaction: Redaction,
    /// Named tools, by name.
    pub tools: BTreeMap<String, Tool>,
    /// Daemon callers and what they may do.
    pub agents: Vec<Agent>,
    /// How denials are collected.
    pub denials: DenialCapture,
}

/// Minimum kernel features. A run on a kernel below them fails closed (exit 125).
///
/// Rules imply their own minimum (TCP ports need Landlock ABI 4, scopes ABI 6,
/// `truncate` ABI 3, `refer` ABI 2, `ioctl_dev` ABI 5); [`Requirements::landlock_abi`]
/// can only raise that floor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requirements {
    /// Explicit minimum Landlock ABI, if the policy set one.
    pub landlock_abi: Option<Sourced<u8>>,
}

/// The sandbox of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sandbox {
    /// Who the tool runs as.
    pub identity: Identity,
    /// Landlock filesystem rules.
    pub filesystem: Filesystem,
    /// Landlock TCP ports and the seccomp socket filter.
    pub network: Network,
    /// Landlock IPC scopes (ABI 6).
    pub scopes: Scopes,
    /// The seccomp filter.
    pub syscalls: Syscalls,
    /// cgroup quotas, rlimits, time and output caps.
    pub limits: Limits,
    /// The tool's environment.
    pub env: Env,
    /// The per-run scratch directory (`${RUN_DIR}`), the tool's working directory.
    pub run_dir: RunDir,
    /// The policy's explicit kernel requirements (a copy of
    /// [`Policy::requires`], so that a sandbox is self-contained).
    pub requires: Requirements,
}

impl Sandbox {
    /// The lowest Landlock ABI that can enforce this sandbox in full: the
    /// highest of what the filesystem rights need ([`FsAccess::min_abi`]), 4
    /// for TCP port rules, 6 for scopes, and `requires.landlock_abi`. A kernel
    /// below it must fail the run closed.
    pub fn min_landlock_abi(&self) -> u8 {
        let fs = self
            .filesystem
            .rules
            .iter()
            .map(|r| r.access.min_abi())
            .max()
            .unwrap_or(1);
        // Without any TCP grant, Landlock ABI 4 still lets the ruleset handle
        // (deny) TCP bind/connect; with an inet family allowed that matters.
        let inet = self
            .network
            .families
            .iter()
            .any(|f| matches!(f.value, SocketFamily::Inet | SocketFamily::Inet6));
        let net =
            if !self.network.tcp_connect.is_empty() || !self.network.tcp_bind.is_empty() || inet {
                4
            } else {
                1
            };
        let scopes = if self.scopes.signals.value || self.scopes.abstract_unix.value {
            6
        } else {
            1
        };
        let explicit = self.requires.landlock_abi.as_ref().map_or(1, |r| r.value);
        fs.max(net).max(scopes).max(explicit)
    }
}

impl Policy {
    /// A named tool.
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }

    /// The sandbox of a run: the named tool's effective sandbox, or the default
    /// sandbox when no tool is named. `None` when the tool does not exist.
    pub fn sandbox_for(&self, tool: Option<&str>) -> Option<&Sandbox> {
        match tool {
            None => Some(&self.sandbox),
            Some(t) => self.tools.get(t).map(|t| &t.sandbox),
        }
    }
}

/// User and group a tool runs as. Supplementary groups are always cleared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User name or numeric id. Never root (rejected at load).
    pub user: Sourced<Account>,
    /// Group name or numeric id. Never root (rejected at load).
    pub group: Sourced<Account>,
}

/// An account given by name (resolved when the run starts) or by id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Account {
    /// Looked up in the user/group database at run time.
    Name(String),
    /// Used as is.
    Id(u32),
}

/// Landlock filesystem access rights a rule grants. One bit per Landlock right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FsAccess(pub u32);

impl FsAccess {
    /// Execute a file (ABI 1).
    pub const EXECUTE: FsAccess = FsAccess(1 << 0);
    /// Open a file with write access (ABI 1).
    pub const WRITE_FILE: FsAccess = FsAccess(1 << 1);
    /// Open a file with read access (ABI 1).
    pub const READ_FILE: FsAccess = FsAccess(1 << 2);
    /// Open a directory or list its content (ABI 1).
    pub const READ_DIR: FsAccess = FsAccess(1 << 3);
    /// Remove an empty directory or rename one (ABI 1).
    pub const REMOVE_DIR: FsAccess = FsAccess(1 << 4);
    /// Unlink or rename a file (ABI 1).
    pub const REMOVE_FILE: FsAccess = FsAccess(1 << 5);
    /// Create a character device (ABI 1).
    pub const MAKE_CHAR: FsAccess = FsAccess(1 << 6);
    /// Create a directory (ABI 1).
    pub const MAKE_DIR: FsAccess = FsAccess(1 << 7);
    /// Create a regular file (ABI 1).
    pub const MAKE_REG: FsAccess = FsAccess(1 << 8);
    /// Create a unix socket file (ABI 1).
    pub const MAKE_SOCK: FsAccess = FsAccess(1 << 9);
    /// Create a named pipe (ABI 1).
    pub const MAKE_FIFO: FsAccess = FsAccess(1 << 10);
    /// Create a block device (ABI 1).
    pub const MAKE_BLOCK: FsAccess = FsAccess(1 << 11);
    /// Create a symbolic link (ABI 1).
    pub const MAKE_SYM: FsAccess = FsAccess(1 << 12);
    /// Link or rename a file across directories (ABI 2).
    pub const REFER: FsAccess = FsAccess(1 << 13);
    /// Truncate a file (ABI 3).
    pub const TRUNCATE: FsAccess = FsAccess(1 << 14);
    /// ioctl on character/block devices (ABI 5).
    pub const IOCTL_DEV: FsAccess = FsAccess(1 << 15);

    /// Every right, with its policy spelling and the Landlock ABI that introduced it.
    pub const ALL: [(FsAccess, &'static str, u8); 16] = [
        (FsAccess::EXECUTE, "execute", 1),
        (FsAccess::WRITE_FILE, "write_file", 1),
        (FsAccess::READ_FILE, "read_file", 1),
        (FsAccess::READ_DIR, "read_dir", 1),
        (FsAccess::REMOVE_DIR, "remove_dir", 1),
        (FsAccess::REMOVE_FILE, "remove_file", 1),
        (FsAccess::MAKE_CHAR, "make_char", 1),
        (FsAccess::MAKE_DIR, "make_dir", 1),
        (FsAccess::MAKE_REG, "make_reg", 1),
        (FsAccess::MAKE_SOCK, "make_sock", 1),
        (FsAccess::MAKE_FIFO, "make_fifo", 1),
        (FsAccess::MAKE_BLOCK, "make_block", 1),
        (FsAccess::MAKE_SYM, "make_sym", 1),
        (FsAccess::REFER, "refer", 2),
        (FsAccess::TRUNCATE, "truncate", 3),
        (FsAccess::IOCTL_DEV, "ioctl_dev", 5),
    ];

    /// The `read:` shorthand: read files and list directories.
    pub const READ: FsAccess = FsAccess(Self::READ_FILE.0 | Self::READ_DIR.0);
    /// The `exec:` shorthand: execute, plus read (scripts and the loader need it).
    pub const EXEC: FsAccess = FsAccess(Self::EXECUTE.0 | Self::READ.0);
    /// The `write:` shorthand: read, write, create regular files, directories and
    /// symlinks, remove, rename within the tree, truncate.
    pub const WRITE: FsAccess = FsAccess(
        Self::READ.0
            | Self::WRITE_FILE.0
            | Self::REMOVE_DIR.0
            | Self::REMOVE_FILE.0
            | Self::MAKE_DIR.0
            | Self::MAKE_REG.0
            | Self::MAKE_SYM.0
            | Self::REFER.0
            | Self::TRUNCATE.0,
    );

    /// No right at all.
    pub const fn empty() -> Self {
        FsAccess(0)
    }
    /// True when every right in `other` is in `self`.
    pub const fn contains(self, other: FsAccess) -> bool {
        self.0 & other.0 == other.0
    }
    /// Union.
    pub const fn union(self, other: FsAccess) -> Self {
        FsAccess(self.0 | other.0)
    }
    /// True when no right is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The highest Landlock ABI any of these rights needs (1 when empty).
    pub fn min_abi(self) -> u8 {
        Self::ALL
            .iter()
            .filter(|(a, _, _)| self.contains(*a))
            .map(|(_, _, abi)| *abi)
            .max()
            .unwrap_or(1)
    }
    /// Policy spellings of the rights set, in a stable order.
    pub fn names(self) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .filter(|(a, _, _)| self.contains(*a))
            .map(|(_, n, _)| *n)
            .collect()
    }
    /// Parse one policy spelling.
    pub fn from_name(name: &str) -> Option<FsAccess> {
        Self::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(a, _, _)| *a)
    }
}

impl Serialize for FsAccess {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// A path that may contain variables (`${RUN_DIR}`, `${HOME}`, `${TMPDIR}`),
/// expanded when a run starts. Always absolute once expanded; never contains `..`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PathTemplate(pub String);

/// Values for the variables a [`PathTemplate`] may use.
#[derive(Clone, Debug, Default)]
pub struct PathVars {
    /// `${RUN_DIR}`: the per-run scratch directory.
    pub run_dir: PathBuf,
    /// `${HOME}`: the tool user's home directory.
    pub home: PathBuf,
    /// `${TMPDIR}`: the run's temporary directory (inside the run directory).
    pub tmpdir: PathBuf,
}

impl PathTemplate {
    /// Variables a template may reference.
    pub const VARIABLES: [&'static str; 3] = ["RUN_DIR", "HOME", "TMPDIR"];

    /// Substitute the variables. Unknown variables were rejected at load.
    pub fn expand(&self, vars: &PathVars) -> PathBuf {
        let s = self
            .0
            .replace("${RUN_DIR}", &vars.run_dir.to_string_lossy())
            .replace("${HOME}", &vars.home.to_string_lossy())
            .replace("${TMPDIR}", &vars.tmpdir.to_string_lossy());
        PathBuf::from(s)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Landlock path rule: the rights granted beneath `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathRule {
    /// The file or directory the rule is attached to.
    pub path: PathTemplate,
    /// Rights granted on it (and, for a directory, everything beneath).
    pub access: FsAccess,
    /// When true, a missing path at run time is skipped (and reported) instead of
    /// failing the run. Useful for `/lib64` on distributions without it.
    pub optional: bool,
    /// Where the rule was written.
    #[serde(skip_serializing_if = "omit")]
    pub origin: Origin,
}

/// A [`PathRule`] with its variables substituted, ready for Landlock
/// (see `Filesystem::expand`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpandedRule {
    /// Absolute path, no `.` or `..` components.
    pub path: PathBuf,
    /// Rights granted on it.
    pub access: FsAccess,
    /// Skip (and report) when missing.
    pub optional: bool,
    /// Where the rule was written.
    pub origin: Origin,
}

/// Landlock filesystem policy. Allow-list only: anything not granted is denied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    /// Grants. Several rules may name the same path; their rights add up.
    pub rules: Vec<PathRule>,
    /// Paths that must never be granted, by this policy or any policy extending
    /// it. A grant on or beneath a deny is a load error; a deny beneath a grant
    /// cannot be expressed with Landlock and is a load error too.
    pub deny: Vec<Sourced<PathTemplate>>,
}

/// Socket address families a tool may create with `socket(2)`. Everything else is
/// refused by the seccomp socket filter. `socketpair(AF_UNIX)` is always allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketFamily {
    /// AF_UNIX (pathname sockets; abstract ones are governed by `scopes`).
    Unix,
    /// AF_INET.
    Inet,
    /// AF_INET6.
    Inet6,
    /// AF_NETLINK.
    Netlink,
    /// AF_PACKET.
    Packet,
}

/// Network rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Network {
    /// TCP ports the tool may connect to (Landlock ABI 4). Empty = none.
    pub tcp_connect: BTreeSet<Sourced<u16>>,
    /// TCP ports the tool may bind (Landlock ABI 4). Empty = none.
    pub tcp_bind: BTreeSet<Sourced<u16>>,
    /// Families `socket(2)` may create. Empty = no sockets at all.
    pub families: BTreeSet<Sourced<SocketFamily>>,
    /// Allow datagram (UDP) sockets in the granted inet families. Landlock cannot
    /// filter UDP by port, so this is all-or-nothing.
    pub udp: Option<Sourced<bool>>,
    /// Allow raw sockets in the granted inet families.
    pub raw: Option<Sourced<bool>>,
}

/// Landlock IPC scopes (ABI 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Scopes {
    /// Refuse signals to processes outside the tool's Landlock domain.
    pub signals: Sourced<bool>,
    /// Refuse connections to abstract unix sockets outside the domain.
    pub abstract_unix: Sourced<bool>,
}

/// What a seccomp match does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "errno")]
pub enum SeccompAction {
    /// Fail the syscall with this errno (default EPERM).
    Errno(i32),
    /// Kill the whole process (SECCOMP_RET_KILL_PROCESS).
    Kill,
}

/// Deny-list or allow-list seccomp filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallMode {
    /// Everything is allowed except the listed groups and names (default).
    Deny,
    /// Only the listed groups and names are allowed.
    Allow,
}

/// The seccomp filter. `io_uring_*` is always denied, whatever the mode; foreign
/// architectures and x32 are always refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Syscalls {
    /// Deny-list or allow-list.
    pub mode: Sourced<SyscallMode>,
    /// Named groups listed.
    pub groups: BTreeSet<Sourced<SyscallGroup>>,
    /// Individual syscalls listed, by name (validated against the syscall table).
    pub names: BTreeSet<Sourced<String>>,
    /// Action on a denied syscall.
    pub action: Sourced<SeccompAction>,
}

/// Resource limits. `None` means "no limit from this layer".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// cgroup memory limit in bytes (OOM kill above it).
    pub memory_bytes: Option<Sourced<u64>>,
    /// cgroup pids limit (fork fails with EAGAIN above it).
    pub pids: Option<Sourced<u64>>,
    /// CPU quota in thousandths of a CPU (1000 = one full CPU).
    pub cpu_millis: Option<Sourced<u32>>,
    /// Wall-clock limit; the tree is killed and the run exits 124.
    pub wall_time: Option<Sourced<Duration>>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<Sourced<u64>>,
    /// RLIMIT_FSIZE in bytes.
    pub file_size: Option<Sourced<u64>>,
    /// Bytes of stdout+stderr forwarded before the run is killed.
    pub output_bytes: Option<Sourced<u64>>,
}

/// The tool's environment: nothing from the caller passes unless allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Env {
    /// Variable names copied from the caller's environment when present.
    pub allow: BTreeSet<Sourced<String>>,
    /// Fixed values; they win over allowed caller values.
    pub set: BTreeMap<String, Sourced<String>>,
}

/// The per-run scratch directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunDir {
    /// Keep the directory after the run (default: remove it).
    pub keep: Sourced<bool>,
}

/// Which stdio streams pass through the redactor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Streams {
    /// The caller's input to the tool.
    pub stdin: bool,
    /// The tool's standard output.
    pub stdout: bool,
    /// The tool's standard error.
    pub stderr: bool,
}

/// How a detected value is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `[REDACTED:EMAIL]` (default).
    Placeholder,
    /// Every character replaced by `*`, length kept.
    Mask,
    /// `[EMAIL:<keyed hash prefix>]`: HMAC-SHA-256 with the deployment key.
    Hash,
    /// Removed entirely.
    Remove,
}

/// A policy-defined detector.
#[derive(Clone, Debug, Serialize)]
pub struct CustomDetector {
    /// Name used in placeholders (`[REDACTED:NAME]`) and receipts.
    pub name: String,
    /// The regex source (validated: compiles, bounded match length).
    pub pattern: String,
    /// Longest match the pattern can produce, computed at load.
    pub max_len: usize,
    /// Optional checksum validator applied to each match.
    pub validator: Option<Validator>,
    /// Where it was written.
    #[serde(skip_serializing_if = "omit")]
    pub origin: Origin,
}

/// Checksums that turn a pattern match into a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    /// Luhn (payment cards).
    Luhn,
    /// ISO 13616 mod-97 (IBAN).
    Mod97,
}

/// Stdio redaction settings.
#[derive(Clone, Debug, Serialize)]
pub struct Redaction {
    /// Streams scanned.
    pub streams: Sourced<Streams>,
    /// Built-in detectors enabled.
    pub detectors: BTreeSet<Sourced<DetectorKind>>,
    /// Custom detectors.
    pub custom: Vec<CustomDetector>,
    /// Replacement strategy.
    pub strategy: Sourced<Strategy>,
    /// Deployment key for the `hash` strategy and receipt fingerprints. When
    /// absent, a host key is created on first use (see `redact`).
    pub key_file: Option<Sourced<PathBuf>>,
}

/// Argument rules of a tool. Checked against `argv[1..]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArgRules {
    /// When non-empty, the arguments must start with one of these fixed prefixes.
    pub prefixes: Vec<Sourced<Vec<String>>>,
    /// When non-empty, every argument must fully match at least one of these.
    #[serde(serialize_with = "ser_regexes")]
    pub allow: Vec<Sourced<regex::Regex>>,
    /// No argument may match any of these (checked first).
    #[serde(serialize_with = "ser_regexes")]
    pub deny: Vec<Sourced<regex::Regex>>,
    /// Maximum number of arguments.
    pub max_args: Option<Sourced<usize>>,
}

fn ser_regexes<S: serde::Serializer>(v: &[Sourced<regex::Regex>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|r| Sourced {
        value: r.value.as_str(),
        origin: r.origin.clone(),
    }))
}

/// A rate limit: a token bucket of `burst` tokens refilled at `count` per `per`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Calls allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// Bucket size (defaults to `count`).
    pub burst: u32,
    /// Where it was written.
    #[serde(skip_serializing_if = "omit")]
    pub origin: Origin,
}

/// A named tool.
#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    /// The tool's name (the key under `tools:`).
    pub name: String,
    /// Human description for `policy explain`.
    pub description: Option<String>,
    /// Absolute path of the executable; the request's command must be exactly this.
    pub command: Sourced<PathBuf>,
    /// Argument rules.
    pub args: ArgRules,
    /// The effective sandbox (defaults merged with the tool's overrides).
    pub sandbox: Sandbox,
    /// Per-tool rate limit (daemon).
    pub rate_limit: Option<RateLimit>,
    /// Cap on concurrent runs of this tool (daemon).
    pub max_concurrent: Option<Sourced<u32>>,
    /// Where the tool was defined.
    #[serde(skip_serializing_if = "omit")]
    pub origin: Origin,
}

/// A daemon caller, identified by peer credentials.
#[derive(Clone, Debug, Serialize)]
pub struct Agent {
    /// Name used in audit records.
    pub name: String,
    /// Peer uids that are this agent (any match).
    pub uids: BTreeSet<u32>,
    /// Peer gids that are this agent (any match).
    pub gids: BTreeSet<u32>,
    /// Tools the agent may call.
    pub tools: BTreeSet<String>,
    /// Per-agent rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Cap on the agent's concurrent runs.
    pub max_concurrent: Option<u32>,
    /// Where the agent was defined.
    #[serde(skip_serializing_if = "omit")]
    pub origin: Origin,
}

/// Whether EnforceCore switches kernel audit on to receive Landlock and seccomp
/// denial records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelAudit {
    /// Switch kernel audit on when it is off (and restore it afterwards for `run`).
    Enable,
    /// Use kernel audit only if it is already on; otherwise record that kernel
    /// denials are not captured.
    IfEnabled,
    /// Do not read kernel denial records (recorded in every run).
    Off,
}

/// Denial collection settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenialCapture {
    /// Kernel audit enablement choice.
    pub kernel_audit: Sourced<KernelAudit>,
}
