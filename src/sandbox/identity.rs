//! Who the tool runs as: the policy's user and group, resolved in the parent.
//!
//! Rules (documented for operators):
//! - As root, the supervisor switches to the policy's user and group (default
//!   `nobody`/`nogroup`), clears supplementary groups and empties every capability
//!   set, bounding and ambient included. A user or group resolving to 0 is refused.
//! - As non-root, the supervisor cannot switch users. A policy that *names* a user or
//!   group (anything but the built-in default) other than the caller's own fails
//!   closed (exit 125). With the built-in default, the tool runs as the invoking
//!   user: Landlock, seccomp, `no_new_privs`, rlimits and (where the cgroup tree is
//!   delegated to the user) cgroups still apply; the bounding set cannot be emptied
//!   without `CAP_SETPCAP`, which the report states (`caps_dropped: false`).
//!
//! This module reads the account database; it must never change credentials.

use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

use super::SandboxError;
use crate::policy::{Account, Identity};

/// The resolved identity of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// uid the tool runs as.
    pub uid: u32,
    /// gid the tool runs as.
    pub gid: u32,
    /// The user's home directory (`${HOME}` in policies); `/nonexistent` if unknown.
    pub home: PathBuf,
    /// Whether the child switches uid/gid (false: it keeps the supervisor's).
    pub switch: bool,
    /// Whether the child can and must empty the bounding set (`CAP_SETPCAP` held).
    pub drop_bounding: bool,
}

impl Resolved {
    /// Whether every capability set (bounding included) ends up empty.
    pub fn caps_dropped(&self) -> bool {
        self.drop_bounding
    }
}

/// Resolve the policy's identity for a supervisor running as `euid`.
pub fn resolve(identity: &Identity, euid: u32) -> Result<Resolved, SandboxError> {
    let (uid, home) = resolve_user(&identity.user.value, &identity.user.origin.to_string())?;
    let gid = resolve_group(&identity.group.value, &identity.group.origin.to_string())?;
    if euid != 0 {
        let egid = Gid::effective().as_raw();
        let named = |origin: &crate::policy::Origin| origin.line != 0;
        for (what, id, mine, origin) in [
            ("user", uid, euid, &identity.user.origin),
            ("group", gid, egid, &identity.group.origin),
        ] {
            if named(origin) && id != mine {
                return Err(SandboxError::IdentityNeedsRoot {
                    what: format!("{what} {}", display(account_of(identity, what))),
                    origin: origin.to_string(),
                    uid: euid,
                });
            }
        }
        let home = User::from_uid(Uid::from_raw(euid))
            .ok()
            .flatten()
            .map(|u| u.dir)
            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
        return Ok(Resolved {
            uid: euid,
            gid: egid,
            home,
            switch: false,
            drop_bounding: super::probe::has_effective_cap(caps::Capability::CAP_SETPCAP),
        });
    }
    if uid == 0 || gid == 0 {
        return Err(SandboxError::RootIdentity {
            what: format!(
                "user {} / group {}",
                display(&identity.user.value),
                display(&identity.group.value)
            ),
        });
    }
    Ok(Resolved {
        uid,
        gid,
        home,
        switch: true,
        drop_bounding: true,
    })
}

fn account_of<'a>(identity: &'a Identity, what: &str) -> &'a Account {
    if what == "user" {
        &identity.user.value
    } else {
        &identity.group.value
    }
}

fn display(a: &Account) -> String {
    match a {
        Account::Name(n) => format!("`{n}`"),
        Account::Id(i) => i.to_string(),
    }
}

fn resolve_user(a: &Account, origin: &str) -> Result<(u32, PathBuf), SandboxError> {
    let nonexistent = || PathBuf::from("/nonexistent");
    match a {
        Account::Id(id) => {
            let home = User::from_uid(Uid::from_raw(*id))
                .ok()
                .flatten()
                .map(|u| u.dir)
                .unwrap_or_else(nonexistent);
            Ok((*id, home))
        }
        Account::Name(name) => match User::from_name(name) {
            Ok(Some(u)) => Ok((u.uid.as_raw(), u.dir)),
            Ok(None) => Err(SandboxError::UnknownUser {
                name: name.clone(),
                origin: origin.to_string(),
            }),
            Err(source) => Err(SandboxError::AccountLookup {
                name: name.clone(),
                source,
            }),
        },
    }
}

fn resolve_group(a: &Account, origin: &str) -> Result<u32, SandboxError> {
    match a {
        Account::Id(id) => Ok(*id),
        Account::Name(name) => match Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(SandboxError::UnknownGroup {
                name: name.clone(),
                origin: origin.to_string(),
            }),
            Err(source) => Err(SandboxError::AccountLookup {
                name: name.clone(),
                source,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Origin, Sourced};

    fn identity(user: Account, group: Account, named: bool) -> Identity {
        let origin = if named {
            Origin {
                file: "p.yaml".into(),
                line: 3,
                column: 5,
            }
        } else {
            Origin::builtin()
        };
        Identity {
            user: Sourced {
                value: user,
                origin: origin.clone(),
            },
            group: Sourced {
                value: group,
                origin,
            },
        }
    }

    #[test]
    fn root_switches_to_the_named_account() {
        let id = identity(Account::Name("nobody".into()), Account::Id(65534), true);
        let r = resolve(&id, 0).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.switch, r.drop_bounding),
            (65534, 65534, true, true)
        );
    }

    #[test]
    fn unknown_accounts_and_root_targets_are_refused() {
        let id = identity(
            Account::Name("no-such-user-xyz".into()),
            Account::Id(1),
            true,
        );
        assert!(matches!(
            resolve(&id, 0),
            Err(SandboxError::UnknownUser { .. })
        ));
        let id = identity(
            Account::Id(65534),
            Account::Name("no-such-group-xyz".into()),
            true,
        );
        assert!(matches!(
            resolve(&id, 0),
            Err(SandboxError::UnknownGroup { .. })
        ));
        let id = identity(Account::Id(0), Account::Id(65534), true);
        assert!(matches!(
            resolve(&id, 0),
            Err(SandboxError::RootIdentity { .. })
        ));
    }

    #[test]
    fn non_root_keeps_its_identity_only_for_the_default() {
        let default = identity(Account::Name("nobody".into()), Account::Id(65534), false);
        let r = resolve(&default, 4242).unwrap();
        assert_eq!((r.uid, r.switch), (4242, false));
        let named = identity(Account::Name("nobody".into()), Account::Id(65534), true);
        let e = resolve(&named, 4242).unwrap_err();
        assert!(
            matches!(e, SandboxError::IdentityNeedsRoot { uid: 4242, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("p.yaml:3:5"));
    }
}
