//! `enforcecore policy check|show|explain`.
//!
//! Operators' view of policies: validate them before shipping, see the
//! effective policy after `extends` with the file and line every rule came
//! from, and read in plain language what a tool may do. Nothing here changes
//! what a policy means; the library does the loading.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::policy::{self, LoadOptions, Policy, Sourced};

const SCHEMA: &str = "The policy schema is documented in docs/policy.md.";

/// Subcommands of `enforcecore policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files (exit 0 when all are valid, 1 otherwise).
    ///
    /// Each file is loaded exactly as `run` and the daemon load it: its `extends`
    /// chain is followed (inside the policy's directory, or --root), merged and
    /// validated. Loading is strict: unknown or duplicate keys, wrong types, YAML
    /// tags, unbounded regexes, rules Landlock cannot express and a child that
    /// loosens its base are all errors.
    ///
    /// Output: one `ok: FILE (policy NAME, N tools, sha256 HASH)` line per valid
    /// file on stdout; for an invalid file, `FILE:LINE:COLUMN: what is wrong`
    /// and a `hint:` line on stderr (plus `note: while loading FILE` when the
    /// error is in one of its bases).
    #[command(after_long_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Print the effective policy after `extends`, with the origin of every rule.
    ///
    /// The text form lists every value with the `file:line:column` it came from
    /// (`<built-in>` for defaults). --json prints the resolved model, the same
    /// data `run` enforces, with an `origin` on every rule. Exit 1 when the
    /// policy does not load.
    #[command(after_long_help = SCHEMA)]
    Show(ShowArgs),
    /// Explain in plain language what a policy, or one of its tools, may do.
    ///
    /// Covers what the tool may read, write, execute and connect to, who it runs
    /// as, its syscall filter, limits, environment, argument rules, redaction and
    /// denial capture, and the Landlock ABI it needs. Without --tool the default
    /// sandbox (`run` without --tool) is explained and the tools are listed. Exit
    /// 1 when the policy does not load or has no such tool.
    #[command(after_long_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
}

const CHECK_EXAMPLES: &str = "Examples:
  enforcecore policy check policies/*.yaml policies/examples/*.yaml
  enforcecore policy check --root /etc/enforcecore /etc/enforcecore/site/agent.yaml

The policy schema is documented in docs/policy.md.";

const EXPLAIN_EXAMPLES: &str = "Examples:
  enforcecore policy explain policies/strict.yaml
  enforcecore policy explain policies/examples/web-fetch.yaml --tool fetch

The policy schema is documented in docs/policy.md.";

/// Where `extends` may resolve to.
#[derive(Debug, Args)]
pub struct RootArg {
    /// Directory every `extends` target must resolve into (after symlinks).
    /// Default: the directory of the policy file.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl RootArg {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            root: self.root.clone(),
            ..LoadOptions::default()
        }
    }
}

/// Arguments of `enforcecore policy check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files to validate.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    /// `--root`.
    pub root: RootArg,
}

/// Arguments of `enforcecore policy show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Print the resolved policy as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    /// `--root`.
    pub root: RootArg,
}

/// Arguments of `enforcecore policy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The policy file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Explain this tool's effective sandbox instead of the default sandbox.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    #[command(flatten)]
    /// `--root`.
    pub root: RootArg,
}

/// Execute an `enforcecore policy` subcommand.
pub fn execute(cmd: PolicyCommand) -> anyhow::Result<u8> {
    match cmd {
        PolicyCommand::Check(a) => check(&a),
        PolicyCommand::Show(a) => show(&a),
        PolicyCommand::Explain(a) => explain(&a),
    }
}

fn check(a: &CheckArgs) -> anyhow::Result<u8> {
    let opts = a.root.options();
    let mut failed = false;
    for f in &a.files {
        match policy::load_with(f, &opts) {
            Ok(p) => super::out!(
                "ok: {} (policy `{}`, {} tool{}, sha256 {})",
                f.display(),
                p.name,
                p.tools.len(),
                if p.tools.len() == 1 { "" } else { "s" },
                p.hash
            )?,
            Err(e) => {
                failed = true;
                super::say!("{e}");
                if e.location().file != *f {
                    super::say!("note: while loading {}", f.display());
                }
            }
        }
    }
    Ok(u8::from(failed))
}

fn load(file: &Path, root: &RootArg) -> Result<Policy, u8> {
    policy::load_with(file, &root.options()).map_err(|e| {
        super::say!("{e}");
        if e.location().file != file {
            super::say!("note: while loading {}", file.display());
        }
        1
    })
}

fn show(a: &ShowArgs) -> anyhow::Result<u8> {
    let p = match load(&a.file, &a.root) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if a.json {
        let mut out = serde_json::to_vec_pretty(&p)?;
        out.push(b'\n');
        super::to_stdout_raw(&out)?;
    } else {
        super::to_stdout_raw(render(&p).as_bytes())?;
    }
    Ok(0)
}

fn explain(a: &ExplainArgs) -> anyhow::Result<u8> {
    let p = match load(&a.file, &a.root) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    match policy::explain(&p, a.tool.as_deref()) {
        Ok(text) => {
            super::to_stdout_raw(text.as_bytes())?;
            Ok(0)
        }
        Err(e) => {
            super::say!("enforcecore: {e}");
            Ok(1)
        }
    }
}

/// `key: value  # file:line:col`.
fn line<T: std::fmt::Display>(o: &mut String, indent: usize, key: &str, v: &Sourced<T>) {
    use std::fmt::Write;
    let _ = writeln!(o, "{:indent$}{key}: {}  # {}", "", v.value, v.origin);
}

fn render(p: &Policy) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "# effective policy `{}`, sha256 {}", p.name, p.hash);
    for s in &p.sources {
        let _ = writeln!(o, "# source: {}", s.display());
    }
    if let Some(abi) = &p.requires.landlock_abi {
        line(&mut o, 0, "requires.landlock_abi", abi);
    }
    let _ = writeln!(o, "sandbox:");
    render_sandbox(&mut o, &p.sandbox, 2);
    let r = &p.redaction;
    let _ = writeln!(o, "redaction:");
    let s = r.streams.value;
    let _ = writeln!(
        o,
        "  streams: stdin={} stdout={} stderr={}  # {}",
        s.stdin, s.stdout, s.stderr, r.streams.origin
    );
    let _ = writeln!(
        o,
        "  strategy: {:?}  # {}",
        r.strategy.value, r.strategy.origin
    );
    for d in &r.detectors {
        let _ = writeln!(o, "  detector: {}  # {}", d.value.as_str(), d.origin);
    }
    for c in &r.custom {
        let _ = writeln!(
            o,
            "  custom: {} /{}/ max {} bytes  # {}",
            c.name, c.pattern, c.max_len, c.origin
        );
    }
    if let Some(k) = &r.key_file {
        let _ = writeln!(o, "  key_file: {}  # {}", k.value.display(), k.origin);
    }
    let _ = writeln!(o, "denials:");
    let _ = writeln!(
        o,
        "  kernel_audit: {:?}  # {}",
        p.denials.kernel_audit.value, p.denials.kernel_audit.origin
    );
    for t in p.tools.values() {
        let _ = writeln!(o, "tool {}:  # {}", t.name, t.origin);
        line(
            &mut o,
            2,
            "command",
            &Sourced {
                value: t.command.value.display(),
                origin: t.command.origin.clone(),
            },
        );
        for pfx in &t.args.prefixes {
            let _ = writeln!(o, "  args.prefix: {:?}  # {}", pfx.value, pfx.origin);
        }
        for r in &t.args.allow {
            let _ = writeln!(o, "  args.allow: {}  # {}", r.value.as_str(), r.origin);
        }
        for r in &t.args.deny {
            let _ = writeln!(o, "  args.deny: {}  # {}", r.value.as_str(), r.origin);
        }
        if let Some(m) = &t.args.max_args {
            line(&mut o, 2, "args.max_args", m);
        }
        if let Some(r) = &t.rate_limit {
            let _ = writeln!(
                o,
                "  rate_limit: {} per {:?}, burst {}  # {}",
                r.count, r.per, r.burst, r.origin
            );
        }
        if let Some(m) = &t.max_concurrent {
            line(&mut o, 2, "max_concurrent", m);
        }
        let _ = writeln!(o, "  sandbox:");
        render_sandbox(&mut o, &t.sandbox, 4);
    }
    for a in &p.agents {
        let _ = writeln!(
            o,
            "agent {}: uids {:?} gids {:?} tools {:?}  # {}",
            a.name, a.uids, a.gids, a.tools, a.origin
        );
    }
    o
}

fn render_sandbox(o: &mut String, sb: &policy::Sandbox, i: usize) {
    use std::fmt::Write;
    line(o, i, "user", &sb.identity.user);
    line(o, i, "group", &sb.identity.group);
    for r in &sb.filesystem.rules {
        let opt = if r.optional { " (optional)" } else { "" };
        let _ = writeln!(
            o,
            "{:i$}fs: {} [{}]{opt}  # {}",
            "",
            r.path,
            r.access.names().join(", "),
            r.origin
        );
    }
    for d in &sb.filesystem.deny {
        let _ = writeln!(o, "{:i$}fs.deny: {}  # {}", "", d.value, d.origin);
    }
    for f in &sb.network.families {
        let _ = writeln!(o, "{:i$}network.family: {:?}  # {}", "", f.value, f.origin);
    }
    for p in &sb.network.tcp_connect {
        line(o, i, "network.tcp_connect", p);
    }
    for p in &sb.network.tcp_bind {
        line(o, i, "network.tcp_bind", p);
    }
    if let Some(u) = &sb.network.udp {
        line(o, i, "network.udp", u);
    }
    if let Some(r) = &sb.network.raw {
        line(o, i, "network.raw", r);
    }
    line(o, i, "scopes.signals", &sb.scopes.signals);
    line(o, i, "scopes.abstract_unix", &sb.scopes.abstract_unix);
    let _ = writeln!(
        o,
        "{:i$}syscalls.mode: {:?}  # {}",
        "", sb.syscalls.mode.value, sb.syscalls.mode.origin
    );
    let _ = writeln!(
        o,
        "{:i$}syscalls.action: {:?}  # {}",
        "", sb.syscalls.action.value, sb.syscalls.action.origin
    );
    for g in &sb.syscalls.groups {
        let _ = writeln!(
            o,
            "{:i$}syscalls.group: {}  # {}",
            "",
            g.value.as_str(),
            g.origin
        );
    }
    for n in &sb.syscalls.names {
        line(o, i, "syscalls.name", n);
    }
    let l = &sb.limits;
    let lim = |o: &mut String, k: &str, v: Option<(String, &policy::Origin)>| {
        if let Some((v, origin)) = v {
            let _ = writeln!(o, "{:i$}limits.{k}: {v}  # {origin}", "");
        }
    };
    lim(
        o,
        "memory",
        l.memory_bytes
            .as_ref()
            .map(|v| (policy::fmt_size(v.value), &v.origin)),
    );
    lim(
        o,
        "pids",
        l.pids.as_ref().map(|v| (v.value.to_string(), &v.origin)),
    );
    lim(
        o,
        "cpu",
        l.cpu_millis
            .as_ref()
            .map(|v| (policy::fmt_cpu(v.value), &v.origin)),
    );
    lim(
        o,
        "wall_time",
        l.wall_time
            .as_ref()
            .map(|v| (policy::fmt_duration(v.value), &v.origin)),
    );
    lim(
        o,
        "open_files",
        l.open_files
            .as_ref()
            .map(|v| (v.value.to_string(), &v.origin)),
    );
    lim(
        o,
        "file_size",
        l.file_size
            .as_ref()
            .map(|v| (policy::fmt_size(v.value), &v.origin)),
    );
    lim(
        o,
        "output",
        l.output_bytes
            .as_ref()
            .map(|v| (policy::fmt_size(v.value), &v.origin)),
    );
    for a in &sb.env.allow {
        line(o, i, "env.allow", a);
    }
    for (k, v) in &sb.env.set {
        let _ = writeln!(o, "{:i$}env.set: {k}={}  # {}", "", v.value, v.origin);
    }
    line(o, i, "run_dir.keep", &sb.run_dir.keep);
    let _ = writeln!(o, "{:i$}landlock_abi_needed: {}", "", sb.min_landlock_abi());
}
