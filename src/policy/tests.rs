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

fn doc(name: &str, text: &str) -> load::Doc {
    load::Doc {
        shown: PathBuf::from(name),
        canonical: None,
        raw: load::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}\n{text}")),
    }
}

fn chain(base: &str, child: &str) -> Result<Policy, PolicyError> {
    resolve::resolve(&[doc("base.yaml", base), doc("child.yaml", child)])
}

fn one(text: &str) -> Result<Policy, PolicyError> {
    load_bytes(
        Path::new("p.yaml"),
        text.as_bytes(),
        &LoadOptions::default(),
    )
}

const BASE: &str = "version: 1
name: base
sandbox:
  filesystem:
    read: [/usr]
    exec: [/usr/bin]
    deny: [/etc/shadow]
  syscalls:
    groups: [ptrace]
  limits:
    memory: 256MiB
    pids: 64
tools:
  env:
    command: /usr/bin/env
    args:
      max_args: 3
      deny: ['-u|--unset.*']
      prefixes: [[-i]]
      allow: ['[A-Z]{1,8}=[a-z0-9]{0,16}', 'true|false']
";

#[test]
fn child_adds_grants_and_tightens() {
    let p = chain(
        BASE,
        "version: 1\nname: child\nsandbox:\n  filesystem:\n    write: [\"${HOME}/out\"]\n  network:\n    families: [inet]\n    tcp_connect: [443]\n  limits:\n    memory: 128MiB\n  syscalls:\n    groups: [bpf]\n    action: kill\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.name, "child");
    assert_eq!(
        p.sandbox.limits.memory_bytes.as_ref().map(|m| m.value),
        Some(128 << 20)
    );
    assert_eq!(
        p.sandbox
            .limits
            .pids
            .as_ref()
            .map(|m| m.origin.file.clone()),
        Some(PathBuf::from("base.yaml"))
    );
    assert_eq!(p.sandbox.syscalls.groups.len(), 2);
    assert_eq!(p.sandbox.syscalls.action.value, SeccompAction::Kill);
    // The base's tool inherits the child's tighter defaults.
    let env = p.tool("env").expect("tool");
    assert_eq!(
        env.sandbox.limits.memory_bytes.as_ref().map(|m| m.value),
        Some(128 << 20)
    );
    assert_eq!(env.sandbox.min_landlock_abi(), 6);
    assert!(p.sandbox_for(Some("nope")).is_none());
}

#[test]
fn semantic_errors_point_at_the_value() {
    let e = one("version: 1\nname: x\nsandbox:\n  network:\n    tcp_bind: [80, 0]\n").unwrap_err();
    assert_eq!(
        e.to_string().lines().next(),
        Some("p.yaml:5:20: port 0 is out of range")
    );
    let e = one("version: 1\nname: x\nsandbox:\n  filesystem:\n    rules:\n      - {path: /x, access: [read, fly]}\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("p.yaml:6:35: unknown filesystem right `fly`"),
        "{e}"
    );
    let e = one("version: 1\nname: x\nsandbox:\n  user: 0\n").unwrap_err();
    assert!(matches!(e, PolicyError::Invalid { .. }));
    assert_eq!(e.location().line, 4);
}

#[test]
fn arguments_are_checked_against_the_rules() {
    let p = one(&BASE.replace("name: base", "name: t")).unwrap_or_else(|e| panic!("{e}"));
    let t = p.tool("env").expect("tool");
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(t.check_args(&args(&["-i", "A=b"])), Ok(()));
    assert_eq!(t.check_args(&args(&["-i"])), Ok(()));
    assert!(matches!(
        t.check_args(&args(&["A=b"])),
        Err(ArgRefusal::NoPrefix { .. })
    ));
    assert!(matches!(
        t.check_args(&args(&["-i", "-u", "X"])),
        Err(ArgRefusal::Denied { index: 2, .. })
    ));
    assert!(matches!(
        t.check_args(&args(&["-i", "A=B"])),
        Err(ArgRefusal::NotAllowed { index: 2, .. })
    ));
    assert!(matches!(
        t.check_args(&args(&["-i", "A=b", "B=c", "C=d"])),
        Err(ArgRefusal::TooMany { .. })
    ));
    // Anchored: a partial match is not a match.
    assert!(t.check_args(&args(&["-i", "xtrue"])).is_err());
    let refusal = t
        .check_args(&args(&["-i", "--unset=PATH"]))
        .unwrap_err()
        .to_string();
    assert!(refusal.contains("p.yaml:18:"), "{refusal}");
}

#[test]
fn hash_ignores_origins_but_not_values() {
    let a = one("version: 1\nname: x\nsandbox:\n  limits: {pids: 5}\n").unwrap();
    let b = one("version: 1\nname: x\n\n\nsandbox:\n  limits:\n    pids: 5\n").unwrap();
    let c = one("version: 1\nname: x\nsandbox:\n  limits: {pids: 6}\n").unwrap();
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, c.hash);
    assert!(!canonical_json(&a).contains("origin"));
    // The same effective policy through extends hashes the same as flat.
    let flat = one(&BASE.replace("name: base", "name: child")).unwrap();
    let layered = chain(BASE, "version: 1\nname: child\n").unwrap();
    assert_eq!(flat.hash, layered.hash);
}

#[test]
fn strategies_are_ordered_by_what_they_reveal() {
    use Strategy::*;
    use merge::strategy_at_least as ok;
    assert!(ok(Remove, Placeholder) && ok(Placeholder, Mask) && ok(Placeholder, Hash));
    assert!(
        !ok(Mask, Placeholder) && !ok(Hash, Mask) && !ok(Mask, Hash) && !ok(Placeholder, Remove)
    );
}

#[test]
fn custom_detector_bounds() {
    assert_eq!(merge::bounded_regex("AB[0-9]{2,4}").map_err(|e| e.0), Ok(6));
    assert!(merge::bounded_regex("a*").is_err());
    assert!(
        merge::bounded_regex("a{0,3}")
            .unwrap_err()
            .0
            .contains("empty")
    );
    assert!(merge::bounded_regex(&format!("a{{1,{}}}", merge::MAX_CUSTOM_MATCH + 1)).is_err());
    let p = one("version: 1\nname: x\nredaction:\n  custom:\n    - {name: TICKET, pattern: 'T-[0-9]{4}', validator: luhn}\n").unwrap();
    assert_eq!(p.redaction.custom[0].max_len, 6);
}
