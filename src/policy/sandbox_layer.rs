//! Applying a `sandbox:` mapping (a file's defaults or a tool's override) onto
//! the sandbox below it.
//!
//! Grants add up: filesystem rules, TCP ports, socket families, `udp`/`raw`,
//! environment variables. Denies add up: filesystem denies, denied syscall
//! groups and names. Everything else may only tighten in a child or a tool:
//! limits only go down, scopes stay on, the seccomp action never goes from
//! `kill` to `errno`, an allow-list never grows, a deny-list never shrinks, the
//! identity never changes. The first file of a chain sets these freely. This
//! module must never read files.

use std::collections::BTreeSet;

use super::de::Spanned;
use super::error::PolicyError;
use super::merge::{Layer, pick};
use super::model::*;
use super::paths;
use super::raw::{RawFilesystem, RawLimits, RawNetwork, RawSandbox, Scalar};
use super::syscall_layer;
use super::units;
use super::yaml::Pos;

/// The built-in default sandbox: nobody/nogroup (65534), no filesystem access,
/// no sockets, scopes on, seccomp deny-list (io_uring always), no limits.
pub fn builtin_sandbox() -> Sandbox {
    let b = Origin::builtin;
    Sandbox {
        identity: Identity {
            user: Sourced {
                value: Account::Id(65534),
                origin: b(),
            },
            group: Sourced {
                value: Account::Id(65534),
                origin: b(),
            },
        },
        filesystem: Filesystem::default(),
        network: Network::default(),
        scopes: Scopes {
            signals: Sourced {
                value: true,
                origin: b(),
            },
            abstract_unix: Sourced {
                value: true,
                origin: b(),
            },
        },
        syscalls: Syscalls {
            mode: Sourced {
                value: SyscallMode::Deny,
                origin: b(),
            },
            groups: BTreeSet::new(),
            names: BTreeSet::new(),
            action: Sourced {
                value: SeccompAction::Errno(libc::EPERM),
                origin: b(),
            },
        },
        limits: Limits::default(),
        env: Env::default(),
        run_dir: RunDir {
            keep: Sourced {
                value: false,
                origin: b(),
            },
        },
        requires: Requirements::default(),
    }
}

/// Apply one `sandbox:` mapping.
pub fn apply(sb: &mut Sandbox, raw: &RawSandbox, layer: &Layer<'_>) -> Result<(), PolicyError> {
    for (field, v) in [("user", &raw.user), ("group", &raw.group)] {
        let Some(v) = v else { continue };
        let acc = account(v, field, layer)?;
        let slot = if field == "user" {
            &mut sb.identity.user
        } else {
            &mut sb.identity.group
        };
        if layer.checked() && slot.value != acc {
            return Err(layer.loosen(
                v.pos,
                field,
                format!("changes the {field} tools run as"),
                &slot.origin,
                format!("remove `{field}:`; only the first policy of a chain chooses the identity"),
            ));
        }
        *slot = layer.sourced(acc, v.pos);
    }
    if let Some(fs) = &raw.filesystem {
        filesystem(&mut sb.filesystem, fs, layer)?;
    }
    if let Some(n) = &raw.network {
        network(&mut sb.network, n, layer)?;
    }
    if let Some(s) = &raw.scopes {
        for (field, v, slot) in [
            ("scopes.signals", &s.signals, &mut sb.scopes.signals),
            (
                "scopes.abstract_unix",
                &s.abstract_unix,
                &mut sb.scopes.abstract_unix,
            ),
        ] {
            let Some(v) = v else { continue };
            if layer.checked() && slot.value && !v.value {
                return Err(layer.loosen(
                    v.pos,
                    field,
                    "turns a Landlock scope off",
                    &slot.origin,
                    "remove the key",
                ));
            }
            *slot = layer.sourced(v.value, v.pos);
        }
    }
    if let Some(s) = &raw.syscalls {
        syscall_layer::apply(&mut sb.syscalls, s, layer)?;
    }
    if let Some(l) = &raw.limits {
        limits(&mut sb.limits, l, layer)?;
    }
    if let Some(e) = &raw.env {
        for n in e.allow.iter().flatten() {
            env_name(&n.value, n.pos, layer)?;
            if !sb.env.allow.iter().any(|a| a.value == n.value) {
                sb.env.allow.insert(layer.sourced(n.value.clone(), n.pos));
            }
        }
        for (k, v) in e.set.iter().flat_map(|s| s.0.iter()) {
            env_name(&k.value, k.pos, layer)?;
            if v.value.contains('\0') {
                return Err(layer.invalid(
                    v.pos,
                    "environment value contains a NUL byte",
                    "remove it",
                ));
            }
            sb.env
                .set
                .insert(k.value.clone(), layer.sourced(v.value.clone(), v.pos));
        }
    }
    if let Some(r) = &raw.run_dir
        && let Some(k) = &r.keep
    {
        sb.run_dir.keep = layer.sourced(k.value, k.pos);
    }
    Ok(())
}

fn account(v: &Spanned<Scalar>, field: &str, layer: &Layer<'_>) -> Result<Account, PolicyError> {
    let acc = match &v.value {
        Scalar::Int(i) => Account::Id(u32::try_from(*i).map_err(|_| {
            layer.invalid(
                v.pos,
                format!("{field} id {i} is out of range"),
                "use an id between 1 and 4294967294",
            )
        })?),
        Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Account::Id(s.parse().map_err(|_| {
                layer.invalid(
                    v.pos,
                    format!("{field} id {s} is out of range"),
                    "use a smaller id",
                )
            })?)
        }
        Scalar::Str(s) => {
            let ok = s.len() <= 32
                && s.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
                });
            if !ok {
                return Err(layer.invalid(
                    v.pos,
                    format!("`{s}` is not a valid {field} name"),
                    "use a name like `nobody` or a numeric id",
                ));
            }
            Account::Name(s.clone())
        }
        Scalar::Float(f) => {
            return Err(layer.invalid(
                v.pos,
                format!("{field} `{f}` is not a name or id"),
                "use a name like `nobody` or a numeric id",
            ));
        }
    };
    if matches!(&acc, Account::Id(0) | Account::Id(u32::MAX))
        || matches!(&acc, Account::Name(n) if n == "root")
    {
        return Err(layer.invalid(
            v.pos,
            format!("tools may not run as {field} root"),
            format!(
                "choose an unprivileged {field}, e.g. 65534 (nobody/nogroup) or a dedicated account"
            ),
        ));
    }
    Ok(acc)
}

fn env_name(n: &str, pos: Pos, layer: &Layer<'_>) -> Result<(), PolicyError> {
    let ok = n
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(layer.invalid(
            pos,
            format!("`{n}` is not a valid environment variable name"),
            "use letters, digits and `_`, not starting with a digit",
        ))
    }
}

fn path(v: &Spanned<String>, layer: &Layer<'_>) -> Result<PathTemplate, PolicyError> {
    paths::template(&v.value).map_err(|(m, h)| layer.invalid(v.pos, m, h))
}

fn filesystem(
    fs: &mut Filesystem,
    raw: &RawFilesystem,
    layer: &Layer<'_>,
) -> Result<(), PolicyError> {
    for (list, access) in [
        (&raw.read, FsAccess::READ),
        (&raw.write, FsAccess::WRITE),
        (&raw.exec, FsAccess::EXEC),
    ] {
        for p in list.iter().flatten() {
            fs.rules.push(PathRule {
                path: path(p, layer)?,
                access,
                optional: false,
                origin: layer.origin(p.pos),
            });
        }
    }
    for r in raw.rules.iter().flatten() {
        let mut access = FsAccess::empty();
        for a in &r.value.access {
            let right = match a.value.as_str() {
                "read" => FsAccess::READ,
                "write" => FsAccess::WRITE,
                "exec" => FsAccess::EXEC,
                name => FsAccess::from_name(name).ok_or_else(|| {
                    layer.invalid(
                        a.pos,
                        format!("unknown filesystem right `{name}`"),
                        format!(
                            "use read, write, exec or one of: {}",
                            FsAccess::ALL.map(|(_, n, _)| n).join(", ")
                        ),
                    )
                })?,
            };
            access = access.union(right);
        }
        if access.is_empty() {
            return Err(layer.invalid(
                r.pos,
                "a rule must grant at least one right",
                "list rights under `access:`, e.g. [read]",
            ));
        }
        fs.rules.push(PathRule {
            path: path(&r.value.path, layer)?,
            access,
            optional: r.value.optional.as_ref().is_some_and(|o| o.value),
            origin: layer.origin(r.pos),
        });
    }
    for d in raw.deny.iter().flatten() {
        let t = path(d, layer)?;
        if !fs.deny.iter().any(|x| x.value == t) {
            fs.deny.push(layer.sourced(t, d.pos));
        }
    }
    Ok(())
}

const FAMILIES: &[(&str, SocketFamily)] = &[
    ("unix", SocketFamily::Unix),
    ("inet", SocketFamily::Inet),
    ("inet6", SocketFamily::Inet6),
    ("netlink", SocketFamily::Netlink),
    ("packet", SocketFamily::Packet),
];

fn network(n: &mut Network, raw: &RawNetwork, layer: &Layer<'_>) -> Result<(), PolicyError> {
    for (list, set) in [
        (&raw.tcp_connect, &mut n.tcp_connect),
        (&raw.tcp_bind, &mut n.tcp_bind),
    ] {
        for p in list.iter().flatten() {
            let port = u16::try_from(p.value)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    layer.invalid(
                        p.pos,
                        format!("port {} is out of range", p.value),
                        "TCP ports are 1 to 65535",
                    )
                })?;
            if !set.iter().any(|s| s.value == port) {
                set.insert(layer.sourced(port, p.pos));
            }
        }
    }
    for f in raw.families.iter().flatten() {
        let fam = pick(layer, f, "socket family", FAMILIES)?;
        if !n.families.iter().any(|s| s.value == fam) {
            n.families.insert(layer.sourced(fam, f.pos));
        }
    }
    if let Some(u) = &raw.udp {
        n.udp = Some(layer.sourced(u.value, u.pos));
    }
    if let Some(r) = &raw.raw {
        n.raw = Some(layer.sourced(r.value, r.pos));
    }
    Ok(())
}

fn limits(l: &mut Limits, raw: &RawLimits, layer: &Layer<'_>) -> Result<(), PolicyError> {
    fn set<T: PartialOrd + Copy + std::fmt::Debug>(
        slot: &mut Option<Sourced<T>>,
        new: Option<(T, Pos)>,
        field: &str,
        show: impl Fn(T) -> String,
        layer: &Layer<'_>,
    ) -> Result<(), PolicyError> {
        let Some((v, pos)) = new else { return Ok(()) };
        if let Some(base) = slot.as_ref()
            && layer.checked()
            && v > base.value
        {
            return Err(layer.loosen(
                pos,
                &format!("limits.{field}"),
                format!("raises the limit from {} to {}", show(base.value), show(v)),
                &base.origin,
                "remove the key or lower the value",
            ));
        }
        *slot = Some(layer.sourced(v, pos));
        Ok(())
    }
    let conv = |v: &Option<Spanned<Scalar>>,
                f: fn(&Scalar) -> Result<u64, String>,
                min: u64,
                what: &str|
     -> Result<Option<(u64, Pos)>, PolicyError> {
        let Some(v) = v else { return Ok(None) };
        let n = f(&v.value).map_err(|m| {
            layer.invalid(v.pos, m, format!("see `limits.{what}` in docs/policy.md"))
        })?;
        if n < min {
            return Err(layer.invalid(
                v.pos,
                format!("limits.{what} `{}` is below the minimum {min}", v.value),
                "no tool can start under it; raise it",
            ));
        }
        Ok(Some((n, v.pos)))
    };
    let count = |v: &Option<Spanned<i64>>,
                 min: i64,
                 what: &str|
     -> Result<Option<(u64, Pos)>, PolicyError> {
        let Some(v) = v else { return Ok(None) };
        if v.value < min {
            return Err(layer.invalid(
                v.pos,
                format!("limits.{what} {} is below the minimum {min}", v.value),
                "no tool can start under it; raise it",
            ));
        }
        Ok(Some((v.value as u64, v.pos)))
    };
    set(
        &mut l.memory_bytes,
        conv(&raw.memory, units::parse_size, 1 << 20, "memory")?,
        "memory",
        units::fmt_size,
        layer,
    )?;
    set(
        &mut l.pids,
        count(&raw.pids, 1, "pids")?,
        "pids",
        |v| v.to_string(),
        layer,
    )?;
    let cpu = match &raw.cpu {
        Some(v) => Some((
            units::parse_cpu(&v.value)
                .map_err(|m| layer.invalid(v.pos, m, "see `limits.cpu` in docs/policy.md"))?,
            v.pos,
        )),
        None => None,
    };
    set(&mut l.cpu_millis, cpu, "cpu", units::fmt_cpu, layer)?;
    let wall = match &raw.wall_time {
        Some(v) => {
            let d = units::parse_duration(&v.value)
                .map_err(|m| layer.invalid(v.pos, m, "see `limits.wall_time` in docs/policy.md"))?;
            if d.is_zero() {
                return Err(layer.invalid(
                    v.pos,
                    "limits.wall_time must be above zero",
                    "write e.g. `60s`",
                ));
            }
            Some((d, v.pos))
        }
        None => None,
    };
    set(
        &mut l.wall_time,
        wall,
        "wall_time",
        units::fmt_duration,
        layer,
    )?;
    set(
        &mut l.open_files,
        count(&raw.open_files, 3, "open_files")?,
        "open_files",
        |v| v.to_string(),
        layer,
    )?;
    set(
        &mut l.file_size,
        conv(&raw.file_size, units::parse_size, 0, "file_size")?,
        "file_size",
        units::fmt_size,
        layer,
    )?;
    set(
        &mut l.output_bytes,
        conv(&raw.output, units::parse_size, 1, "output")?,
        "output",
        units::fmt_size,
        layer,
    )?;
    Ok(())
}
