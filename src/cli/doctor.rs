//! `enforcecore doctor`: what this kernel and host support, and what it means for
//! policies. Read-only: it never enables kernel audit, creates a namespace or a
//! cgroup. Exit 0 when every layer `run` needs is available, 1 otherwise.

use std::fmt::Write as _;

use clap::Args;
use serde::Serialize;

use crate::sandbox::cgroup::CgroupDescription;
use crate::sandbox::probe::{self, AuditStatus, UserNamespaces};
use crate::supervise::denials::enable;
use crate::supervise::denials::netlink::Multicast;

/// Arguments of `enforcecore doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What each Landlock ABI adds, and what a policy needs it for.
const LANDLOCK_ABIS: [(u8, &str); 7] = [
    (
        1,
        "filesystem rules: read, write, execute, make, remove (every policy)",
    ),
    (
        2,
        "`refer`: link and rename across directories (the `write:` shorthand)",
    ),
    (3, "`truncate` (the `write:` shorthand)"),
    (
        4,
        "TCP bind/connect port rules; required by any policy allowing inet sockets",
    ),
    (5, "`ioctl_dev`: ioctl on device files"),
    (
        6,
        "scopes: signals and abstract unix sockets outside the sandbox",
    ),
    (
        7,
        "denial logging of the exec'd tool (log_new_exec) for the audit trail",
    ),
];

/// Landlock section.
#[derive(Debug, Serialize)]
struct Landlock {
    abi: Option<u32>,
    error: Option<String>,
    features: Vec<Feature>,
}

/// One ABI level.
#[derive(Debug, Serialize)]
struct Feature {
    abi: u8,
    what: &'static str,
    available: bool,
}

/// seccomp section.
#[derive(Debug, Serialize)]
struct Seccomp {
    actions: Vec<String>,
    error: Option<String>,
    errno: bool,
    kill_process: bool,
    log: bool,
    user_notif: bool,
}

/// How kernel denials reach the trail on this host.
#[derive(Debug, Serialize)]
struct DenialFeed {
    /// Joining the audit multicast group (`AUDIT_NLGRP_READLOG`) works.
    #[serde(serialize_with = "ok_or_error")]
    multicast: Result<(), String>,
    /// EnforceCore's record of who holds kernel audit on.
    state: Option<enable::State>,
}

/// An account the default policies use.
#[derive(Debug, Serialize)]
struct Account {
    name: &'static str,
    id: Option<u32>,
}

/// The whole report.
#[derive(Debug, Serialize)]
struct Report {
    kernel: String,
    euid: u32,
    root: bool,
    landlock: Landlock,
    seccomp: Seccomp,
    #[serde(serialize_with = "ok_or_error")]
    cgroups: Result<CgroupDescription, String>,
    #[serde(serialize_with = "ok_or_error")]
    kernel_audit: Result<AuditStatus, String>,
    denial_feed: DenialFeed,
    user_namespaces: UserNamespaces,
    accounts: Vec<Account>,
    append_only: AppendOnly,
    ok: bool,
}

/// Whether trail files can be kept append-only (`chattr +a`) here.
#[derive(Debug, Serialize)]
struct AppendOnly {
    /// `CAP_LINUX_IMMUTABLE` is in this process's effective set.
    capability: bool,
    /// The nearest existing directory of the default trail, and its filesystem.
    directory: String,
    filesystem: String,
}

/// Filesystem names by `statfs` magic, for those that have the append-only
/// attribute (and tmpfs, which has it since Linux 6.0).
fn filesystem_name(magic: i64) -> String {
    match magic {
        0xEF53 => "ext2/3/4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0xF2F5_2010 => "f2fs".into(),
        0x0102_1994 => "tmpfs".into(),
        m => format!("magic {m:#x}"),
    }
}

fn append_only() -> AppendOnly {
    let mut dir = std::path::Path::new("/var/lib/enforcecore/audit");
    while !dir.exists()
        && let Some(p) = dir.parent()
    {
        dir = p;
    }
    AppendOnly {
        capability: probe::has_effective_cap(caps::Capability::CAP_LINUX_IMMUTABLE),
        directory: dir.display().to_string(),
        filesystem: nix::sys::statfs::statfs(dir).map_or_else(
            |e| format!("unknown ({e})"),
            |f| filesystem_name(f.filesystem_type().0),
        ),
    }
}

/// `Ok(v)` as `v`, `Err(e)` as `{"error": e}`.
fn ok_or_error<T: Serialize, S: serde::Serializer>(
    r: &Result<T, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match r {
        Ok(v) => v.serialize(s),
        Err(e) => serde_json::json!({ "error": e }).serialize(s),
    }
}

fn gather() -> Report {
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .map(|u| {
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_default();
    let euid = nix::unistd::geteuid().as_raw();
    let (abi, ll_err) = match probe::landlock_abi() {
        Ok(a) => (Some(a), None),
        Err(e) => (None, Some(e)),
    };
    let features = LANDLOCK_ABIS
        .iter()
        .map(|(n, what)| Feature {
            abi: *n,
            what,
            available: abi.is_some_and(|a| a >= u32::from(*n)),
        })
        .collect();
    let (actions, sc_err) = match probe::seccomp_actions() {
        Ok(a) => (a, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let has = |a: &str| actions.iter().any(|x| x == a);
    let seccomp = Seccomp {
        errno: has("errno"),
        kill_process: has("kill_process"),
        log: has("log"),
        user_notif: has("user_notif"),
        actions: actions.clone(),
        error: sc_err,
    };
    let cgroups = crate::sandbox::cgroup::Hierarchy::detect()
        .map(|h| h.describe())
        .map_err(|e| e.to_string());
    let accounts = vec![
        Account {
            name: "nobody",
            id: nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw()),
        },
        Account {
            name: "nogroup",
            id: nix::unistd::Group::from_name("nogroup")
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw()),
        },
        Account {
            name: "enforcecore-tool",
            id: nix::unistd::User::from_name("enforcecore-tool")
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw()),
        },
    ];
    let ok = abi.is_some() && seccomp.errno && seccomp.kill_process && cgroups.is_ok();
    Report {
        kernel,
        euid,
        root: euid == 0,
        landlock: Landlock {
            abi,
            error: ll_err,
            features,
        },
        seccomp,
        cgroups,
        kernel_audit: probe::audit_status(),
        denial_feed: DenialFeed {
            multicast: Multicast::open(4096)
                .map(drop)
                .map_err(|e| format!("{e} (needs CAP_AUDIT_READ)")),
            state: enable::current(std::path::Path::new(enable::STATE_DIR)),
        },
        user_namespaces: probe::user_namespaces(),
        accounts,
        append_only: append_only(),
        ok,
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "kernel:     {}", r.kernel);
    let _ = writeln!(
        s,
        "supervisor: uid {}{}",
        r.euid,
        if r.root {
            " (root): tools run as the policy's user, every capability set is emptied"
        } else {
            " (not root): tools run as this user; policies naming another user fail; the \
             bounding set cannot be emptied; cgroups only where delegated"
        }
    );
    match r.landlock.abi {
        Some(abi) => {
            let _ = writeln!(s, "landlock:   ABI {abi}");
        }
        None => {
            let _ = writeln!(
                s,
                "landlock:   UNAVAILABLE ({}): `run` refuses every policy",
                r.landlock.error.as_deref().unwrap_or("?")
            );
        }
    }
    for f in &r.landlock.features {
        let mark = if f.available { "ok     " } else { "MISSING" };
        let _ = writeln!(s, "  {mark} ABI {}: {}", f.abi, f.what);
    }
    if let Some(abi) = r.landlock.abi
        && abi < 7
    {
        let _ = writeln!(
            s,
            "  note: policies needing a higher ABI than {abi} fail closed (exit 125)"
        );
    }
    let sc = &r.seccomp;
    let _ = writeln!(s, "seccomp:    actions: {}", sc.actions.join(" "));
    let _ = writeln!(
        s,
        "  errno action: {}; kill action: {}; denial logging (log): {}; user notification: {}",
        yes(sc.errno),
        yes(sc.kill_process),
        yes(sc.log),
        yes(sc.user_notif)
    );
    match &r.cgroups {
        Ok(d) => {
            let _ = write!(s, "{d}");
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "cgroups: UNAVAILABLE ({e}): runs as root fail; no limit can be enforced"
            );
        }
    }
    match &r.kernel_audit {
        Ok(a) => {
            let state = match a.enabled {
                0 => "off",
                1 => "on",
                2 => "on, locked",
                _ => "?",
            };
            let _ = writeln!(
                s,
                "kernel audit: {state} (audit daemon pid {}, backlog {}/{}, lost {}){}",
                a.pid,
                a.backlog,
                a.backlog_limit,
                a.lost,
                if a.enabled == 0 {
                    ": Landlock denials are not reported until it is switched on (policies \
                     with denials.kernel_audit: enable do so per run)"
                } else {
                    ": Landlock denials reach the audit trail"
                }
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "kernel audit: unavailable ({e}): kernel denials cannot be captured"
            );
        }
    }
    let f = &r.denial_feed;
    let _ = writeln!(
        s,
        "denial feed: seccomp refusals through a per-run user-notification listener \
         (kill action: audit records); Landlock records from the audit multicast group: {}",
        match &f.multicast {
            Ok(()) => "joinable".to_string(),
            Err(e) => format!("UNAVAILABLE ({e})"),
        }
    );
    match f.state.as_ref().filter(|st| !st.holders.is_empty()) {
        Some(st) => {
            let holders: Vec<String> = st
                .holders
                .iter()
                .map(|h| format!("pid {} ({} run(s))", h.pid, h.runs))
                .collect();
            let _ = writeln!(
                s,
                "  kernel audit is held on by EnforceCore for {}{}",
                holders.join(", "),
                if st.enabled_by_enforcecore {
                    "; it switched audit on and switches it off after the last run"
                } else {
                    "; audit was already on and is left on"
                }
            );
        }
        None => {
            let _ = writeln!(s, "  no EnforceCore run holds kernel audit on right now");
        }
    }
    let u = &r.user_namespaces;
    let _ = writeln!(
        s,
        "user namespaces: max {}; unprivileged clone {}; initial namespace: {} — tools are \
         kept out of namespaces by the `namespaces` syscall group",
        u.max_user_namespaces.map_or("?".into(), |m| m.to_string()),
        u.unprivileged_clone
            .map_or("(no sysctl)", |b| if b { "allowed" } else { "disabled" }),
        yes(u.initial_namespace)
    );
    for a in &r.accounts {
        let _ = writeln!(
            s,
            "account {:<17} {}",
            a.name,
            a.id.map_or("missing".into(), |i| format!("exists ({i})"))
        );
    }
    let a = &r.append_only;
    let _ = writeln!(
        s,
        "audit append-only (chattr +a, the daemon's audit.append_only): CAP_LINUX_IMMUTABLE {}; \
         {} is on {} — where the attribute cannot be set the trail is an ordinary file, still \
         hash-chained",
        yes(a.capability),
        a.directory,
        a.filesystem
    );
    let _ = writeln!(
        s,
        "verdict: {}",
        if r.ok {
            "every layer `run` needs is available"
        } else {
            "MISSING LAYERS: `run` will refuse policies that need them"
        }
    );
    s
}

/// Execute `enforcecore doctor`.
pub fn execute(args: DoctorArgs) -> anyhow::Result<u8> {
    let r = gather();
    if args.json {
        super::out!("{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        super::to_stdout_raw(render(&r).as_bytes())?;
    }
    Ok(if r.ok { 0 } else { 1 })
}
