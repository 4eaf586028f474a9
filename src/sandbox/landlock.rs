//! The Landlock layer: the minimum ABI a policy needs, and the ruleset built in the parent.
//!
//! The ruleset is created and filled here with the `landlock` crate in
//! `HardRequirement` mode (an unsupported right is an error, never silently
//! dropped), then handed to the child as an fd for a raw `landlock_restrict_self`.
//!
//! What is handled (denied unless granted):
//! - every filesystem right of the kernel's ABI, up to ABI 8 (the rights policies can
//!   name; ABI 9's `resolve_unix` has no policy spelling yet and is not handled);
//! - TCP bind and connect (ABI >= 4), whatever the policy lists;
//! - the scopes the policy enables (ABI >= 6).
//!
//! `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` is set on ABI >= 7 so that the kernel
//! reports denials of the exec'd tool. A rule granting directory-only rights on a
//! file keeps only the rights that apply to files. This module must never apply a
//! ruleset to the calling process.

use std::os::fd::OwnedFd;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

use super::SandboxError;
use crate::policy::{FsAccess, Origin, PathVars, Sandbox, SocketFamily};
use crate::report::LandlockReport;

/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` (ABI 7).
const LOG_NEW_EXEC_ON: u32 = 1 << 1;

/// Highest ABI whose filesystem rights a policy can name.
const MAX_FS_ABI: u32 = 8;

/// One reason a policy needs a Landlock ABI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// The ABI.
    pub abi: u8,
    /// The policy feature.
    pub feature: String,
    /// Where it is written.
    pub origin: Origin,
    /// How to do without it.
    pub hint: &'static str,
}

/// The highest ABI the policy's rules and requirements imply, with the reason.
pub fn required_abi(sandbox: &Sandbox) -> Need {
    let mut need = Need {
        abi: 1,
        feature: "filesystem rules".into(),
        origin: Origin::builtin(),
        hint: "upgrade the kernel",
    };
    let mut raise = |abi: u8, feature: String, origin: &Origin, hint: &'static str| {
        if abi > need.abi {
            need = Need {
                abi,
                feature,
                origin: origin.clone(),
                hint,
            };
        }
    };
    for r in &sandbox.filesystem.rules {
        let abi = r.access.min_abi();
        let names: Vec<&str> = FsAccess::ALL
            .iter()
            .filter(|(a, _, n)| r.access.contains(*a) && *n == abi)
            .map(|(_, name, _)| *name)
            .collect();
        raise(
            abi,
            format!("the `{}` right on {}", names.join("`, `"), r.path),
            &r.origin,
            "drop that right from the rule or upgrade the kernel",
        );
    }
    let net = &sandbox.network;
    if let Some(p) = net.tcp_connect.iter().chain(net.tcp_bind.iter()).next() {
        raise(
            4,
            format!("TCP port rules (port {})", p.value),
            &p.origin,
            "remove network.tcp_connect/tcp_bind or upgrade the kernel (Linux >= 6.7)",
        );
    }
    if let Some(f) = net
        .families
        .iter()
        .find(|f| matches!(f.value, SocketFamily::Inet | SocketFamily::Inet6))
    {
        raise(
            4,
            "inet sockets (only Landlock ABI 4 can restrict their TCP ports)".into(),
            &f.origin,
            "remove inet/inet6 from network.families or upgrade the kernel (Linux >= 6.7)",
        );
    }
    for (on, name) in [
        (&sandbox.scopes.signals, "scopes.signals"),
        (&sandbox.scopes.abstract_unix, "scopes.abstract_unix"),
    ] {
        if on.value {
            raise(
                6,
                name.into(),
                &on.origin,
                "set it to false or upgrade the kernel (Linux >= 6.12)",
            );
        }
    }
    if let Some(r) = &sandbox.requires.landlock_abi {
        raise(
            r.value,
            "requires.landlock_abi".into(),
            &r.origin,
            "lower requires.landlock_abi or upgrade the kernel",
        );
    }
    need
}

/// A filled ruleset, ready for the child.
#[derive(Debug)]
pub struct Prepared {
    /// The ruleset fd (CLOEXEC).
    pub fd: OwnedFd,
    /// `landlock_restrict_self` flags.
    pub flags: u32,
    /// What will be enforced.
    pub report: LandlockReport,
}

fn ruleset_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::LandlockRuleset(e.to_string())
}

/// Check the kernel against the policy and build the ruleset.
pub fn prepare(sandbox: &Sandbox, vars: &PathVars) -> Result<Prepared, SandboxError> {
    let have = super::probe::landlock_abi().map_err(SandboxError::LandlockUnavailable)?;
    let need = required_abi(sandbox);
    if u32::from(need.abi) > have {
        return Err(SandboxError::LandlockAbiTooOld {
            need: need.abi,
            have,
            feature: need.feature,
            origin: need.origin.to_string(),
            hint: need.hint.to_string(),
        });
    }
    let abi = ABI::from(have.min(MAX_FS_ABI) as i32);
    let handled_fs = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled_fs)
        .map_err(ruleset_err)?;
    let tcp = AccessNet::BindTcp | AccessNet::ConnectTcp;
    if have >= 4 {
        ruleset = ruleset.handle_access(tcp).map_err(ruleset_err)?;
    }
    let mut scopes = Vec::new();
    let mut scope_flags = BitFlags::<Scope>::empty();
    if sandbox.scopes.signals.value {
        scope_flags |= Scope::Signal;
        scopes.push("signal".to_string());
    }
    if sandbox.scopes.abstract_unix.value {
        scope_flags |= Scope::AbstractUnixSocket;
        scopes.push("abstract_unix_socket".to_string());
    }
    if !scope_flags.is_empty() {
        ruleset = ruleset.scope(scope_flags).map_err(ruleset_err)?;
    }
    let mut created = ruleset.create().map_err(ruleset_err)?;

    let mut fs_rules = 0;
    let mut skipped = Vec::new();
    for rule in sandbox.filesystem.expand(vars)? {
        let path = rule.path;
        let fd = match PathFd::new(&path) {
            Ok(fd) => fd,
            Err(e) => {
                let missing = matches!(
                    &e,
                    landlock::PathFdError::OpenCall { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound
                );
                if missing && rule.optional {
                    skipped.push(path);
                    continue;
                }
                let origin = rule.origin.to_string();
                return Err(if missing {
                    SandboxError::PathMissing { path, origin }
                } else {
                    SandboxError::PathOpen {
                        path,
                        origin,
                        source: std::io::Error::other(e.to_string()),
                    }
                });
            }
        };
        // Landlock refuses directory-only rights on a file: keep the file rights.
        let is_dir = rustix::fs::fstat(&fd)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
            .unwrap_or(false);
        let granted = if is_dir {
            rule.access
        } else {
            rule.access.intersect(FsAccess::FILE)
        };
        let access = BitFlags::<AccessFs>::from_bits_truncate(u64::from(granted.0)) & handled_fs;
        if access.is_empty() {
            continue;
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(ruleset_err)?;
        fs_rules += 1;
    }
    let mut net_rules = 0;
    if have >= 4 {
        let net = &sandbox.network;
        for (ports, access) in [
            (&net.tcp_connect, AccessNet::ConnectTcp),
            (&net.tcp_bind, AccessNet::BindTcp),
        ] {
            for p in ports {
                created = created
                    .add_rule(NetPort::new(p.value, access))
                    .map_err(ruleset_err)?;
                net_rules += 1;
            }
        }
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or_else(|| ruleset_err("the kernel returned no ruleset"))?;
    let log_new_exec = have >= 7;
    Ok(Prepared {
        fd,
        flags: if log_new_exec { LOG_NEW_EXEC_ON } else { 0 },
        report: LandlockReport {
            abi: have.min(u32::from(u8::MAX)) as u8,
            status: "full".into(),
            fs_rules,
            skipped_optional: skipped,
            net_rules,
            scopes,
            log_new_exec,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{SocketFamily, Sourced};
    use crate::sandbox::fixtures::{rule, src, strict};

    #[test]
    fn the_required_abi_names_the_feature_that_needs_it() {
        let mut s = strict();
        s.scopes.signals = src(false);
        s.scopes.abstract_unix = src(false);
        assert_eq!(required_abi(&s).abi, 3, "write: includes truncate");
        s.filesystem.rules = vec![rule("/usr", FsAccess::EXEC, false)];
        assert_eq!(required_abi(&s).abi, 1);
        s.network.families = [src(SocketFamily::Inet)].into_iter().collect();
        let n = required_abi(&s);
        assert_eq!((n.abi, n.feature.contains("inet")), (4, true));
        s.scopes.signals = src(true);
        let n = required_abi(&s);
        assert_eq!((n.abi, n.feature.as_str()), (6, "scopes.signals"));
        s.requires.landlock_abi = Some(Sourced {
            value: 7,
            origin: src(()).origin,
        });
        assert_eq!(required_abi(&s).feature, "requires.landlock_abi");
    }

    #[test]
    fn it_agrees_with_the_policy_model() {
        let mut s = strict();
        for families in [vec![], vec![SocketFamily::Inet6], vec![SocketFamily::Unix]] {
            for signals in [false, true] {
                s.network.families = families.iter().copied().map(src).collect();
                s.scopes.signals = src(signals);
                s.scopes.abstract_unix = src(false);
                assert_eq!(required_abi(&s).abi, s.min_landlock_abi());
            }
        }
    }
}
