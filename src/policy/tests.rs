//! Unit tests of the whole loading pipeline on the shipped policies and on
//! small inline policies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::redact::DetectorKind;
use crate::sandbox::syscalls::SyscallGroup;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(name)
}

#[test]
fn strict_loads_with_the_promised_values() {
    let p = load(&shipped("strict.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "strict");
    assert_eq!(p.sources.len(), 2);
    assert!(p.sources[0].ends_with("base.yaml"));
    let sb = &p.sandbox;
    assert_eq!(sb.identity.user.value, Account::Id(65534));
    let l = &sb.limits;
    assert_eq!(l.memory_bytes.as_ref().map(|v| v.value), Some(256 << 20));
    assert_eq!(l.pids.as_ref().map(|v| v.value), Some(64));
    assert_eq!(l.cpu_millis.as_ref().map(|v| v.value), Some(1000));
    assert_eq!(
        l.wall_time.as_ref().map(|v| v.value),
        Some(Duration::from_secs(60))
    );
    assert_eq!(l.open_files.as_ref().map(|v| v.value), Some(256));
    assert!(sb.network.families.is_empty());
    assert!(sb.network.tcp_connect.is_empty() && sb.network.tcp_bind.is_empty());
    assert!(sb.scopes.signals.value && sb.scopes.abstract_unix.value);
    let groups: Vec<_> = sb.syscalls.groups.iter().map(|g| g.value).collect();
    for g in [
        SyscallGroup::Mount,
        SyscallGroup::Namespaces,
        SyscallGroup::Ptrace,
        SyscallGroup::Bpf,
        SyscallGroup::Perf,
        SyscallGroup::Keyring,
        SyscallGroup::IoUring,
        SyscallGroup::Kexec,
        SyscallGroup::Modules,
        SyscallGroup::Reboot,
        SyscallGroup::Swap,
        SyscallGroup::Acct,
        SyscallGroup::Userfaultfd,
        SyscallGroup::Handles,
    ] {
        assert!(groups.contains(&g), "{g:?} not denied");
    }
    assert_eq!(sb.syscalls.mode.value, SyscallMode::Deny);
    assert_eq!(sb.syscalls.action.value, SeccompAction::Errno(libc::EPERM));
    let env: Vec<_> = sb.env.allow.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(env, ["LANG"]);
    assert_eq!(sb.env.set.keys().collect::<Vec<_>>(), ["PATH"]);
    // Writable: only the run directory (and /dev/null).
    let writable: Vec<_> = sb
        .filesystem
        .rules
        .iter()
        .filter(|r| r.access.contains(FsAccess::WRITE_FILE))
        .map(|r| r.path.0.as_str())
        .collect();
    assert_eq!(writable, ["${RUN_DIR}", "/dev/null"]);
    for cmd in ["/usr/bin/python3", "/bin/sh", "/usr/bin/env"] {
        assert!(
            paths::rights_on(sb, cmd).contains(FsAccess::EXECUTE),
            "{cmd}"
        );
    }
    assert!(!paths::rights_on(sb, "/etc/shadow").contains(FsAccess::READ_FILE));
    let r = &p.redaction;
    assert!(r.streams.value.stdout && r.streams.value.stderr);
    assert_eq!(r.detectors.len(), DetectorKind::ALL.len());
    assert_eq!(r.strategy.value, Strategy::Placeholder);
    assert_eq!(sb.min_landlock_abi(), 6);
    assert_eq!(p.hash.len(), 64);
}

#[test]
fn base_loads() {
    let p = load(&shipped("base.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "base");
    assert!(p.sandbox.limits.memory_bytes.is_none());
    assert!(
        p.sandbox
            .filesystem
            .rules
            .iter()
            .any(|r| r.path.0 == "/usr")
    );
}
