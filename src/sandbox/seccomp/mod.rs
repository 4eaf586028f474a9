//! The seccomp layer: the policy's syscall filter compiled to BPF in the parent.
//!
//! Programs, in install order (the child installs each with `seccomp(2)`):
//! 1. **guard** ([`guard`]): foreign architectures and x32 killed; `clone3` → ENOSYS.
//! 2. **args** (allow mode only): the argument rules as a separate deny filter.
//! 3. **main** (seccompiler): deny mode — the listed groups and names, `io_uring_*`,
//!    and the argument rules ([`args`]) for `socket`, `socketpair` and, when
//!    namespaces are denied, `clone`; everything else allowed. Allow mode — only the
//!    listed groups and names (never `io_uring_*`), plus the calls the supervisor
//!    itself needs between the filter and `execve` (`read`, `write`, `execve`,
//!    `exit_group`); everything else gets the policy's action. Installed last, since
//!    an allow-list would refuse the `seccomp(2)` calls that install the others.
//!
//! seccompiler's programs go through [`optimize`] (jump threading, dead code
//! removed: half the instructions, same verdicts). The action is the policy's
//! (`errno`, default EPERM, or kill-process). `main` and
//! `args` carry `SECCOMP_FILTER_FLAG_LOG`, so every denial produces a kernel audit
//! record (type 1326) while kernel audit is on; the guard does not, because libc
//! retries `clone3` on every thread start. The report carries the SHA-256 over all
//! programs. This module never installs a filter.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{BpfProgram, SeccompAction as Action, SeccompFilter, TargetArch};
use sha2::{Digest, Sha256};

use super::SandboxError;
use super::syscalls::{self, SyscallGroup};
use crate::policy::{Origin, Sandbox, SeccompAction, SyscallMode};
use crate::report::SeccompReport;

pub mod args;
pub mod guard;
pub mod optimize;
#[cfg(test)]
mod tests;

/// `SECCOMP_FILTER_FLAG_LOG`.
const FLAG_LOG: u32 = 1 << 1;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
/// `SECCOMP_RET_USER_NOTIF`.
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

/// Syscalls the child makes after the filter is installed.
pub const ESSENTIAL: [&str; 4] = ["read", "write", "execve", "exit_group"];

/// One compiled program and its install flags.
#[derive(Clone, Debug)]
pub struct CompiledFilter {
    /// Which program (`main`, `args`, `guard`).
    pub name: &'static str,
    /// The BPF instructions.
    pub program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

/// The compiled seccomp layer.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Programs in install order.
    pub filters: Vec<CompiledFilter>,
    /// What will be enforced.
    pub report: SeccompReport,
    /// The errno the supervisor answers notified calls with, when `main` hands
    /// its refusals to a listener (`SECCOMP_FILTER_FLAG_NEW_LISTENER`).
    pub notify_errno: Option<i32>,
}

/// Hand `main`'s refusals to the supervisor: every `RET_ERRNO | errno` becomes
/// `RET_USER_NOTIF` (the listener answers with that errno), and the filter is
/// installed with a listener instead of logging.
fn notify(main: &mut CompiledFilter, errno: i32) {
    let refused = guard::RET_ERRNO | errno as u32;
    for i in main.program.iter_mut() {
        if i.code == BPF_RET_K && i.k == refused {
            i.k = RET_USER_NOTIF;
        }
    }
    main.flags = FLAG_NEW_LISTENER;
}

fn compile_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::SeccompCompile(e.to_string())
}

/// The policy's listed syscalls, by number, with where each was listed.
fn listed(sandbox: &Sandbox) -> Result<BTreeMap<i64, (String, Origin)>, SandboxError> {
    let sc = &sandbox.syscalls;
    let mut out = BTreeMap::new();
    for g in &sc.groups {
        for m in g.value.members() {
            let nr = syscalls::number(m).ok_or_else(|| SandboxError::UnknownSyscall {
                name: (*m).to_string(),
                origin: g.origin.to_string(),
            })?;
            out.entry(nr)
                .or_insert_with(|| ((*m).to_string(), g.origin.clone()));
        }
    }
    for n in &sc.names {
        let nr = syscalls::number(&n.value).ok_or_else(|| SandboxError::UnknownSyscall {
            name: n.value.clone(),
            origin: n.origin.to_string(),
        })?;
        out.insert(nr, (n.value.clone(), n.origin.clone()));
    }
    Ok(out)
}

fn action(a: SeccompAction) -> Result<(Action, String), SandboxError> {
    match a {
        SeccompAction::Kill => Ok((Action::KillProcess, "kill".into())),
        SeccompAction::Errno(e) if (1..4096).contains(&e) => {
            let name = format!("{:?}", nix::errno::Errno::from_raw(e));
            Ok((Action::Errno(e as u32), format!("errno:{name}")))
        }
        SeccompAction::Errno(e) => Err(compile_err(format!(
            "errno {e} is out of range (1..4095); use a value such as EPERM (1)"
        ))),
    }
}

fn convert(p: BpfProgram) -> Vec<libc::sock_filter> {
    p.into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

fn build(
    rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>>,
    mismatch: Action,
    matched: Action,
    shrink: bool,
) -> Result<Vec<libc::sock_filter>, SandboxError> {
    let filter =
        SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).map_err(compile_err)?;
    let p = BpfProgram::try_from(filter)
        .map(convert)
        .map_err(compile_err)?;
    Ok(if shrink { optimize::optimize(&p) } else { p })
}

/// Compile the sandbox's seccomp layer.
pub fn compile(sandbox: &Sandbox) -> Result<Compiled, SandboxError> {
    compile_with(sandbox, true, true)
}

/// [`compile`], optionally without the [`optimize`] pass (for equivalence tests)
/// and without the listener (refusals returned by the kernel itself, as the
/// tests' BPF interpreter expects).
pub(crate) fn compile_with(
    sandbox: &Sandbox,
    shrink: bool,
    notify_listener: bool,
) -> Result<Compiled, SandboxError> {
    let sc = &sandbox.syscalls;
    let (act, action_name) = action(sc.action.value)?;
    let listed = listed(sandbox)?;
    let io_uring: BTreeSet<i64> = SyscallGroup::IoUring
        .members()
        .iter()
        .filter_map(|m| syscalls::number(m))
        .collect();
    let groups: BTreeSet<SyscallGroup> = sc.groups.iter().map(|g| g.value).collect();
    let mut arg_rules = args::socket_rules(&sandbox.network)?;
    let mut filters = Vec::new();
    let mut main = Vec::new();
    let clone3_enosys;
    match sc.mode.value {
        SyscallMode::Deny => {
            for (name, origin) in listed.values() {
                if ESSENTIAL.contains(&name.as_str()) {
                    return Err(SandboxError::EssentialSyscall {
                        name: name.clone(),
                        origin: origin.to_string(),
                    });
                }
            }
            let ns_denied = groups.contains(&SyscallGroup::Namespaces);
            if ns_denied {
                arg_rules.insert(libc::SYS_clone, args::clone_rules()?);
            }
            let mut rules: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            for nr in listed.keys().chain(io_uring.iter()) {
                rules.insert(*nr, Vec::new());
            }
            for (nr, r) in arg_rules {
                // An unconditional deny already covers every argument.
                rules.entry(nr).or_insert(r);
            }
            main.push(CompiledFilter {
                name: "main",
                program: build(rules, Action::Allow, act.clone(), shrink)?,
                flags: FLAG_LOG,
            });
            clone3_enosys = ns_denied;
        }
        SyscallMode::Allow => {
            let mut allowed: BTreeSet<i64> = listed
                .keys()
                .copied()
                .filter(|nr| !io_uring.contains(nr))
                .collect();
            allowed.extend(ESSENTIAL.iter().filter_map(|n| syscalls::number(n)));
            let ns_denied = !groups.contains(&SyscallGroup::Namespaces);
            clone3_enosys = ns_denied || !allowed.contains(&libc::SYS_clone3);
            // clone3 is refused by the guard with ENOSYS, not by the policy action,
            // so that libc falls back to the filterable clone(2).
            allowed.insert(libc::SYS_clone3);
            if ns_denied {
                arg_rules.insert(libc::SYS_clone, args::clone_rules()?);
            }
            arg_rules.retain(|nr, _| allowed.contains(nr));
            let rules = allowed.iter().map(|nr| (*nr, Vec::new())).collect();
            main.push(CompiledFilter {
                name: "main",
                program: build(rules, act.clone(), Action::Allow, shrink)?,
                flags: FLAG_LOG,
            });
            if !arg_rules.is_empty() {
                filters.push(CompiledFilter {
                    name: "args",
                    program: build(arg_rules, Action::Allow, act.clone(), shrink)?,
                    flags: FLAG_LOG,
                });
            }
        }
    }
    filters.insert(
        0,
        CompiledFilter {
            name: "guard",
            program: guard::program(clone3_enosys),
            flags: 0,
        },
    );
    let notify_errno = match sc.action.value {
        SeccompAction::Errno(e) if notify_listener => {
            main.iter_mut().for_each(|m| notify(m, e));
            Some(e)
        }
        _ => None,
    };
    filters.append(&mut main);
    let mut sha = Sha256::new();
    for f in &filters {
        for i in &f.program {
            sha.update(i.code.to_le_bytes());
            sha.update([i.jt, i.jf]);
            sha.update(i.k.to_le_bytes());
        }
    }
    let report = SeccompReport {
        mode: match sc.mode.value {
            SyscallMode::Deny => "deny".into(),
            SyscallMode::Allow => "allow".into(),
        },
        action: action_name,
        filter_sha256: hex::encode(sha.finalize()),
        instructions: filters.iter().map(|f| f.program.len()).sum(),
        syscalls: listed.len(),
        socket_families: sandbox
            .network
            .families
            .iter()
            .map(|f| {
                serde_json::to_value(f.value)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect(),
        flags: if notify_errno.is_some() {
            let mut f = vec!["user_notif".to_string()];
            if filters.iter().any(|f| f.flags & FLAG_LOG != 0) {
                f.push("log".into());
            }
            f
        } else {
            vec!["log".into()]
        },
    };
    Ok(Compiled {
        filters,
        report,
        notify_errno,
    })
}
