//! Plain-language rendering of what a policy grants (`policy explain`).
//!
//! Written for operators who must know exactly what a policy allows before they
//! ship it: what a tool may read, write, execute and connect to, its identity,
//! limits, environment, argument rules and how its output is redacted. The text
//! is derived from the resolved model only; this module must never describe
//! anything the sandbox does not enforce.

use std::fmt::Write;

use super::model::*;
use super::units::{fmt_cpu, fmt_duration, fmt_size};

/// Explain a policy: the named tool, or the default sandbox and the list of
/// tools when `tool` is `None`. `Err` when the tool does not exist.
pub fn explain(policy: &Policy, tool: Option<&str>) -> Result<String, String> {
    let mut o = String::new();
    let chain: Vec<String> = policy
        .sources
        .iter()
        .map(|s| s.display().to_string())
        .collect();
    let _ = writeln!(o, "Policy `{}` (sha256 {})", policy.name, policy.hash);
    let _ = writeln!(o, "  loaded from: {}", chain.join(" <- "));
    let (sb, label) = match tool {
        Some(name) => {
            let t = policy.tool(name).ok_or_else(|| {
                let known: Vec<&str> = policy.tools.keys().map(String::as_str).collect();
                if known.is_empty() {
                    format!("policy `{}` defines no tools", policy.name)
                } else {
                    format!(
                        "policy `{}` has no tool `{name}`; tools: {}",
                        policy.name,
                        known.join(", ")
                    )
                }
            })?;
            let _ = writeln!(
                o,
                "\nTool `{}` runs {} ({})",
                t.name,
                t.command.value.display(),
                t.origin
            );
            if let Some(d) = &t.description {
                let _ = writeln!(o, "  {d}");
            }
            args(&mut o, t);
            (&t.sandbox, "The tool")
        }
        None => {
            let _ = writeln!(o, "\nDefault sandbox (`enforcecore run` without --tool):");
            (&policy.sandbox, "A command")
        }
    };
    sandbox(&mut o, sb, label);
    redaction(&mut o, &policy.redaction);
    let _ = writeln!(
        o,
        "\nKernel denial records: {}.",
        match policy.denials.kernel_audit.value {
            KernelAudit::Enable =>
                "kernel audit is switched on if it is off, so Landlock and seccomp denials are recorded",
            KernelAudit::IfEnabled =>
                "recorded when kernel audit is already on; otherwise the run records that they were not captured",
            KernelAudit::Off => "not collected (every run records this)",
        }
    );
    if tool.is_none() && !policy.tools.is_empty() {
        let _ = writeln!(o, "\nTools (explain one with --tool NAME):");
        for t in policy.tools.values() {
            let _ = writeln!(o, "  {:<20} {}", t.name, t.command.value.display());
        }
    }
    if !policy.agents.is_empty() {
        let _ = writeln!(o, "\nAgents (daemon callers):");
        for a in &policy.agents {
            let ids: Vec<String> = a
                .uids
                .iter()
                .map(|u| format!("uid {u}"))
                .chain(a.gids.iter().map(|g| format!("gid {g}")))
                .collect();
            let tools: Vec<&str> = a.tools.iter().map(String::as_str).collect();
            let _ = writeln!(
                o,
                "  {} ({}) may call: {}",
                a.name,
                ids.join(", "),
                tools.join(", ")
            );
        }
    }
    Ok(o)
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "nothing".to_owned()
    } else {
        v.join(", ")
    }
}

fn args(o: &mut String, t: &Tool) {
    let a = &t.args;
    if a.prefixes.is_empty() && a.allow.is_empty() && a.deny.is_empty() && a.max_args.is_none() {
        let _ = writeln!(o, "  Arguments: any.");
        return;
    }
    let _ = writeln!(o, "  Arguments:");
    if let Some(m) = &a.max_args {
        let _ = writeln!(o, "    at most {} arguments", m.value);
    }
    for p in &a.prefixes {
        let _ = writeln!(o, "    may start with: {}", p.value.join(" "));
    }
    for r in &a.deny {
        let _ = writeln!(
            o,
            "    refused when any argument matches: {}",
            r.value.as_str()
        );
    }
    if !a.allow.is_empty() {
        let _ = writeln!(
            o,
            "    every other argument must match one of: {}",
            list(a.allow.iter().map(|r| r.value.as_str()))
        );
    }
}

fn sandbox(o: &mut String, sb: &Sandbox, who: &str) {
    let id = &sb.identity;
    let _ = writeln!(
        o,
        "  {who} runs as user {} and group {}, without supplementary groups, capabilities or the ability to gain privileges.",
        id.user.value, id.group.value
    );
    let fs = &sb.filesystem;
    let by = |want: FsAccess, exact: bool| {
        fs.rules
            .iter()
            .filter(|r| {
                if exact {
                    r.access == want
                } else {
                    r.access.contains(want)
                }
            })
            .map(|r| {
                if r.optional {
                    format!("{} (if present)", r.path)
                } else {
                    r.path.to_string()
                }
            })
            .collect::<Vec<_>>()
    };
    let _ = writeln!(
        o,
        "  May read (files and directories beneath): {}",
        list(by(FsAccess::READ, true))
    );
    let _ = writeln!(
        o,
        "  May read and execute: {}",
        list(by(FsAccess::EXEC, true))
    );
    let _ = writeln!(
        o,
        "  May create, modify and delete files beneath: {}",
        list(by(FsAccess::WRITE, false))
    );
    let others: Vec<String> = fs
        .rules
        .iter()
        .filter(|r| {
            ![FsAccess::READ, FsAccess::EXEC].contains(&r.access)
                && !r.access.contains(FsAccess::WRITE)
        })
        .map(|r| {
            format!(
                "{}{}: {}",
                r.path,
                if r.optional { " (if present)" } else { "" },
                r.access.names().join(", ")
            )
        })
        .collect();
    if !others.is_empty() {
        let _ = writeln!(o, "  Other rights: {}", others.join("; "));
    }
    let _ = writeln!(
        o,
        "  Everything else on the filesystem is denied by Landlock."
    );
    if !fs.deny.is_empty() {
        let _ = writeln!(
            o,
            "  Never grantable (by this policy or one extending it): {}",
            list(fs.deny.iter().map(|d| &d.value))
        );
    }
    network(o, &sb.network);
    let s = &sb.scopes;
    let _ = writeln!(
        o,
        "  Signals to processes outside the sandbox: {}; abstract unix sockets outside it: {}.",
        if s.signals.value {
            "refused"
        } else {
            "allowed"
        },
        if s.abstract_unix.value {
            "refused"
        } else {
            "allowed"
        }
    );
    let sc = &sb.syscalls;
    let action = match sc.action.value {
        SeccompAction::Kill => "the process is killed".to_owned(),
        SeccompAction::Errno(e) => format!(
            "the call fails with {}",
            super::syscall_layer::errno_name(e)
        ),
    };
    let groups = list(sc.groups.iter().map(|g| g.value.as_str()));
    let names = list(sc.names.iter().map(|n| n.value.as_str()));
    match sc.mode.value {
        SyscallMode::Deny => {
            let _ = writeln!(
                o,
                "  Denied syscalls ({action}): groups {groups}; individual {names}; io_uring always."
            );
        }
        SyscallMode::Allow => {
            let _ = writeln!(
                o,
                "  Only these syscalls are allowed (otherwise {action}): groups {groups}; individual {names}."
            );
        }
    }
    let l = &sb.limits;
    let mut lim = Vec::new();
    let mut none = Vec::new();
    let mut add = |name: &str, v: Option<String>| match v {
        Some(v) => lim.push(v),
        None => none.push(name.to_owned()),
    };
    add(
        "memory",
        l.memory_bytes
            .as_ref()
            .map(|v| format!("memory {}", fmt_size(v.value))),
    );
    add(
        "processes",
        l.pids.as_ref().map(|v| format!("{} processes", v.value)),
    );
    add(
        "CPU",
        l.cpu_millis
            .as_ref()
            .map(|v| format!("{} CPU", fmt_cpu(v.value))),
    );
    add(
        "wall clock",
        l.wall_time
            .as_ref()
            .map(|v| format!("{} wall clock", fmt_duration(v.value))),
    );
    add(
        "open files",
        l.open_files
            .as_ref()
            .map(|v| format!("{} open files", v.value)),
    );
    add(
        "file size",
        l.file_size
            .as_ref()
            .map(|v| format!("files up to {}", fmt_size(v.value))),
    );
    add(
        "output",
        l.output_bytes
            .as_ref()
            .map(|v| format!("output up to {}", fmt_size(v.value))),
    );
    let _ = writeln!(
        o,
        "  Limits: {}{}.",
        list(&lim),
        if none.is_empty() {
            String::new()
        } else {
            format!("; no limit on {}", none.join(", "))
        }
    );
    let set: Vec<String> = sb
        .env
        .set
        .iter()
        .map(|(k, v)| format!("{k}={}", v.value))
        .collect();
    let allow: Vec<&str> = sb.env.allow.iter().map(|a| a.value.as_str()).collect();
    let _ = writeln!(
        o,
        "  Environment: fixed {}; passed from the caller when set: {}; nothing else.",
        list(set),
        list(allow)
    );
    let _ = writeln!(
        o,
        "  Working directory: a fresh per-run directory (${{RUN_DIR}}), {} after the run.",
        if sb.run_dir.keep.value {
            "kept"
        } else {
            "removed"
        }
    );
    let _ = writeln!(
        o,
        "  Needs Landlock ABI {} or newer; on an older kernel the run fails closed.",
        sb.min_landlock_abi()
    );
}

fn network(o: &mut String, n: &Network) {
    if n.families.is_empty() {
        let _ = writeln!(
            o,
            "  Network: no sockets at all (no TCP, UDP, raw, packet, netlink or unix sockets)."
        );
        return;
    }
    let fam = list(
        n.families
            .iter()
            .map(|f| format!("{:?}", f.value).to_lowercase()),
    );
    let ports = |s: &std::collections::BTreeSet<Sourced<u16>>| {
        if s.is_empty() {
            "none".to_owned()
        } else {
            list(s.iter().map(|p| p.value))
        }
    };
    let _ = writeln!(
        o,
        "  Network: may create {fam} sockets; TCP connect to ports {}; TCP bind to ports {}; UDP {}; raw sockets {}.",
        ports(&n.tcp_connect),
        ports(&n.tcp_bind),
        if n.udp.as_ref().is_some_and(|u| u.value) {
            "allowed (to any port: Landlock cannot filter UDP)"
        } else {
            "refused"
        },
        if n.raw.as_ref().is_some_and(|r| r.value) {
            "allowed"
        } else {
            "refused"
        },
    );
}

fn redaction(o: &mut String, r: &Redaction) {
    let s = r.streams.value;
    let streams: Vec<&str> = [
        ("stdin", s.stdin),
        ("stdout", s.stdout),
        ("stderr", s.stderr),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| n)
    .collect();
    if streams.is_empty() {
        let _ = writeln!(o, "\nRedaction: off (no stream is scanned).");
        return;
    }
    let how = match r.strategy.value {
        Strategy::Placeholder => "replaced by [REDACTED:KIND]",
        Strategy::Mask => "masked with `*` (length kept)",
        Strategy::Hash => "replaced by a keyed hash (same secret, same hash)",
        Strategy::Remove => "removed",
    };
    let dets: Vec<&str> = r.detectors.iter().map(|d| d.value.as_str()).collect();
    let _ = writeln!(
        o,
        "\nRedaction: {} pass through {} built-in detectors ({}); matches are {how}.",
        streams.join(" and "),
        dets.len(),
        list(dets)
    );
    for c in &r.custom {
        let _ = writeln!(
            o,
            "  custom detector {}: /{}/ (up to {} bytes)",
            c.name, c.pattern, c.max_len
        );
    }
}
