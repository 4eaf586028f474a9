//! Hand-built policy values for unit tests (the loader is tested on its own).

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::*;
use crate::sandbox::syscalls::SyscallGroup;

/// A value with a made-up origin.
pub fn src<T>(value: T) -> Sourced<T> {
    Sourced {
        value,
        origin: Origin {
            file: "test.yaml".into(),
            line: 1,
            column: 1,
        },
    }
}

/// A rule granting `access` on `path`.
pub fn rule(path: &str, access: FsAccess, optional: bool) -> PathRule {
    PathRule {
        path: PathTemplate(path.into()),
        access,
        optional,
        origin: src(()).origin,
    }
}

/// A strict sandbox: system dirs read/exec, the run dir writable, no network,
/// the usual dangerous groups denied with EPERM, scopes on.
pub fn strict() -> Sandbox {
    Sandbox {
        identity: Identity {
            user: Sourced {
                value: Account::Name("nobody".into()),
                origin: Origin::builtin(),
            },
            group: Sourced {
                value: Account::Name("nogroup".into()),
                origin: Origin::builtin(),
            },
        },
        filesystem: Filesystem {
            rules: vec![
                rule("/usr", FsAccess::EXEC, false),
                rule("/etc/ld.so.cache", FsAccess::READ, true),
                rule("/lib64", FsAccess::EXEC, true),
                rule(
                    "/dev/null",
                    FsAccess::READ.union(FsAccess::WRITE_FILE),
                    false,
                ),
                rule("${RUN_DIR}", FsAccess::WRITE, false),
            ],
            deny: vec![],
        },
        network: Network::default(),
        scopes: Scopes {
            signals: src(true),
            abstract_unix: src(true),
        },
        syscalls: Syscalls {
            mode: src(SyscallMode::Deny),
            groups: [
                SyscallGroup::Mount,
                SyscallGroup::Namespaces,
                SyscallGroup::Ptrace,
                SyscallGroup::Bpf,
                SyscallGroup::Perf,
                SyscallGroup::Keyring,
            ]
            .into_iter()
            .map(src)
            .collect::<BTreeSet<_>>(),
            names: BTreeSet::new(),
            action: src(SeccompAction::Errno(libc::EPERM)),
        },
        limits: Limits::default(),
        env: Env {
            allow: BTreeSet::new(),
            set: BTreeMap::new(),
        },
        run_dir: RunDir { keep: src(false) },
        requires: Requirements::default(),
    }
}
