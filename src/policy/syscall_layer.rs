//! Applying `syscalls:`: the seccomp mode, groups, names and action.
//!
//! In deny mode groups and names add up across layers. A child or tool may
//! switch a deny-list to an allow-list only if it allows nothing the base
//! denies, may only narrow an allow-list, and may never go from `kill` back to
//! `errno`. Names are checked against the x86_64 table, groups against
//! [`SyscallGroup`]. This module must never install a filter.

use std::collections::BTreeSet;

use super::de::Spanned;
use super::error::PolicyError;
use super::merge::{Layer, pick};
use super::model::*;
use super::raw::{RawSyscalls, Scalar};
use crate::sandbox::syscalls::{self, SyscallGroup};

/// Syscall names a group list and name list stand for (plus io_uring, always).
pub fn expand(
    groups: &BTreeSet<Sourced<SyscallGroup>>,
    names: &BTreeSet<Sourced<String>>,
) -> BTreeSet<&'static str> {
    let mut out: BTreeSet<&'static str> = BTreeSet::new();
    for g in groups {
        out.extend(g.value.members());
    }
    for n in names {
        if let Some(i) = syscalls::X86_64.iter().position(|(s, _)| *s == n.value) {
            out.insert(syscalls::X86_64[i].0);
        }
    }
    out
}

/// Apply `syscalls:`.
pub fn apply(
    sc: &mut Syscalls,
    raw: &Spanned<RawSyscalls>,
    layer: &Layer<'_>,
) -> Result<(), PolicyError> {
    let r = &raw.value;
    let mut groups = BTreeSet::new();
    for g in r.groups.iter().flatten() {
        let grp = SyscallGroup::from_name(&g.value).ok_or_else(|| {
            layer.invalid(
                g.pos,
                format!("unknown syscall group `{}`", g.value),
                format!(
                    "groups: {}",
                    SyscallGroup::ALL.map(|g| g.as_str()).join(", ")
                ),
            )
        })?;
        groups.insert(layer.sourced(grp, g.pos));
    }
    let mut names = BTreeSet::new();
    for n in r.names.iter().flatten() {
        if syscalls::number(&n.value).is_none() {
            let hint = match SyscallGroup::from_name(&n.value) {
                Some(_) => format!("`{}` is a group; list it under `groups:`", n.value),
                None => {
                    "use the kernel's x86_64 syscall name, e.g. `ptrace` or `umount2`".to_owned()
                }
            };
            return Err(layer.invalid(n.pos, format!("unknown syscall `{}`", n.value), hint));
        }
        names.insert(layer.sourced(n.value.clone(), n.pos));
    }
    let listed = r.groups.is_some() || r.names.is_some();
    let mode = match &r.mode {
        Some(m) => Some((
            pick(
                layer,
                m,
                "syscall mode",
                &[("deny", SyscallMode::Deny), ("allow", SyscallMode::Allow)],
            )?,
            m.pos,
        )),
        None => None,
    };
    let new_mode = mode.map_or(sc.mode.value, |(m, _)| m);
    match (sc.mode.value, new_mode) {
        (SyscallMode::Deny, SyscallMode::Deny) => {
            for g in groups {
                if !sc.groups.iter().any(|x| x.value == g.value) {
                    sc.groups.insert(g);
                }
            }
            for n in names {
                if !sc.names.iter().any(|x| x.value == n.value) {
                    sc.names.insert(n);
                }
            }
        }
        (SyscallMode::Allow, SyscallMode::Deny) if layer.checked() => {
            let pos = mode.map_or(raw.pos, |(_, p)| p);
            return Err(layer.loosen(
                pos,
                "syscalls.mode",
                "switches an allow-list to a deny-list",
                &sc.mode.origin,
                "keep `mode: allow`",
            ));
        }
        (base, _) => {
            if layer.checked() && listed {
                let now = expand(&groups, &names);
                let before = expand(&sc.groups, &sc.names);
                let culprit = if base == SyscallMode::Deny {
                    now.intersection(&before)
                        .next()
                        .map(|s| (s, "allows", "the base denies it"))
                } else {
                    now.difference(&before)
                        .next()
                        .map(|s| (s, "allows", "the base's allow-list does not include it"))
                };
                if let Some((s, verb, why)) = culprit {
                    let origin = sc.mode.origin.clone();
                    return Err(layer.loosen(
                        raw.pos,
                        "syscalls",
                        format!("{verb} `{s}`: {why}"),
                        &origin,
                        "remove it from the list",
                    ));
                }
            }
            if listed || base != new_mode {
                sc.groups = groups;
                sc.names = names;
            }
        }
    }
    if let Some((m, p)) = mode {
        sc.mode = layer.sourced(m, p);
    }
    let action = match &r.action {
        Some(a) => Some((
            pick(
                layer,
                a,
                "syscall action",
                &[("errno", false), ("kill", true)],
            )?,
            a.pos,
        )),
        None => None,
    };
    if let (Some((true, _)), Some(e)) = (action, &r.errno) {
        return Err(layer.invalid(
            e.pos,
            "`errno` has no effect with `action: kill`",
            "remove `errno:` or use `action: errno`",
        ));
    }
    let new_action = match (action, &r.errno) {
        (Some((true, p)), _) => Some((SeccompAction::Kill, p)),
        (Some((false, p)), None) => Some((
            SeccompAction::Errno(match sc.action.value {
                SeccompAction::Errno(e) => e,
                SeccompAction::Kill => libc::EPERM,
            }),
            p,
        )),
        (_, Some(e)) => Some((SeccompAction::Errno(errno(e, layer)?), e.pos)),
        (None, None) => None,
    };
    if let Some((a, p)) = new_action {
        if layer.checked() && sc.action.value == SeccompAction::Kill && a != SeccompAction::Kill {
            return Err(layer.loosen(
                p,
                "syscalls.action",
                "replaces `kill` by `errno`",
                &sc.action.origin,
                "keep `action: kill`",
            ));
        }
        sc.action = layer.sourced(a, p);
    }
    Ok(())
}

const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("EACCES", libc::EACCES),
    ("ENOSYS", libc::ENOSYS),
    ("EINVAL", libc::EINVAL),
    ("ENOTSUP", libc::ENOTSUP),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
    ("ENOENT", libc::ENOENT),
    ("EROFS", libc::EROFS),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
];

/// The symbolic name of an errno a policy can name (`EPERM`), or its number.
pub fn errno_name(e: i32) -> String {
    ERRNOS
        .iter()
        .find(|(_, n)| *n == e)
        .map_or_else(|| e.to_string(), |(s, _)| (*s).to_owned())
}

fn errno(v: &Spanned<Scalar>, layer: &Layer<'_>) -> Result<i32, PolicyError> {
    let n = match &v.value {
        Scalar::Int(i) => i32::try_from(*i).ok(),
        Scalar::Str(s) => ERRNOS.iter().find(|(n, _)| n == s).map(|(_, e)| *e),
        Scalar::Float(_) => None,
    };
    n.filter(|e| (1..4096).contains(e)).ok_or_else(|| {
        layer.invalid(
            v.pos,
            format!("`{}` is not a supported errno", v.value),
            format!(
                "use a number 1-4095 or one of: {}",
                ERRNOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}
