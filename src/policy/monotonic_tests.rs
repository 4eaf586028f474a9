//! Property: whatever a child policy says, a chain that loads is never looser
//! than its base. Random bases and children are rendered to YAML, loaded
//! through the real pipeline, and the effective policies compared field by
//! field.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::{Strategy as Gen, *};

use super::*;
use crate::redact::DetectorKind;
use crate::sandbox::syscalls::SyscallGroup;

/// One randomly chosen layer. Every field is optional (absent = inherit).
#[derive(Clone, Debug)]
struct Spec {
    memory_mib: Option<u64>,
    pids: Option<u64>,
    signals: Option<bool>,
    mode_allow: Option<bool>,
    groups: Option<Vec<usize>>,
    kill: Option<bool>,
    streams: Option<(bool, bool, bool)>,
    detectors: Option<Vec<usize>>,
    strategy: Option<usize>,
    audit: Option<usize>,
    abi: Option<u64>,
    deny: Option<Vec<usize>>,
    read: Option<Vec<usize>>,
    tool_memory_mib: Option<u64>,
    tool_signals: Option<bool>,
}

const PATHS: [&str; 5] = ["/etc", "/etc/ssl", "/opt", "/opt/secret", "/srv"];
const STRATEGIES: [&str; 4] = ["placeholder", "mask", "hash", "remove"];
const AUDIT: [&str; 3] = ["off", "if_enabled", "enable"];

/// Each field present with probability `p`.
fn spec(p: f64) -> impl Gen<Value = Spec> {
    let small = |n: usize| proptest::collection::vec(0..n, 0..4);
    (
        (
            proptest::option::weighted(p, 1u64..1024),
            proptest::option::weighted(p, 1u64..200),
            proptest::option::weighted(p, any::<bool>()),
            proptest::option::weighted(p, prop::bool::weighted(0.2)),
            proptest::option::weighted(p, small(SyscallGroup::ALL.len())),
            proptest::option::weighted(p, any::<bool>()),
            proptest::option::weighted(p, (any::<bool>(), any::<bool>(), any::<bool>())),
            proptest::option::weighted(p, small(DetectorKind::ALL.len())),
        ),
        (
            proptest::option::weighted(p, 0..STRATEGIES.len()),
            proptest::option::weighted(p, 0..AUDIT.len()),
            proptest::option::weighted(p, 1u64..8),
            proptest::option::weighted(p, small(PATHS.len())),
            proptest::option::weighted(p, small(PATHS.len())),
            proptest::option::weighted(p, 1u64..2048),
            proptest::option::weighted(p, any::<bool>()),
        ),
    )
        .prop_map(
            |((m, p, s, ma, g, k, st, d), (sg, a, abi, deny, read, tm, ts))| Spec {
                memory_mib: m,
                pids: p,
                signals: s,
                mode_allow: ma,
                groups: g,
                kill: k,
                streams: st,
                detectors: d,
                strategy: sg,
                audit: a,
                abi,
                deny,
                read,
                tool_memory_mib: tm,
                tool_signals: ts,
            },
        )
}

fn render(name: &str, s: &Spec, tool: &str) -> String {
    let mut y =
        format!("version: 1\nname: {name}\nsandbox:\n  filesystem:\n    exec: [/usr/bin]\n");
    let list =
        |ix: &[usize], names: &[&str]| ix.iter().map(|i| names[*i]).collect::<Vec<_>>().join(", ");
    if let Some(r) = &s.read {
        let _ = writeln!(y, "    read: [{}]", list(r, &PATHS));
    }
    if let Some(d) = &s.deny {
        let _ = writeln!(y, "    deny: [{}]", list(d, &PATHS));
    }
    if let Some(v) = s.signals {
        let _ = writeln!(y, "  scopes:\n    signals: {v}");
    }
    y.push_str("  syscalls:\n    names: [getpid]\n");
    if let Some(a) = s.mode_allow {
        let _ = writeln!(y, "    mode: {}", if a { "allow" } else { "deny" });
    }
    if let Some(g) = &s.groups {
        let names: Vec<&str> = SyscallGroup::ALL
            .iter()
            .map(|g| g.as_str())
            .filter(|n| *n != "io_uring")
            .collect();
        let g: Vec<usize> = g.iter().map(|i| i % names.len()).collect();
        let _ = writeln!(y, "    groups: [{}]", list(&g, &names));
    }
    if let Some(k) = s.kill {
        let _ = writeln!(y, "    action: {}", if k { "kill" } else { "errno" });
    }
    y.push_str("  limits:\n    open_files: 64\n");
    if let Some(m) = s.memory_mib {
        let _ = writeln!(y, "    memory: {m}MiB");
    }
    if let Some(p) = s.pids {
        let _ = writeln!(y, "    pids: {p}");
    }
    y.push_str("redaction:\n");
    if let Some((a, b, c)) = s.streams {
        let v: Vec<&str> = [("stdin", a), ("stdout", b), ("stderr", c)]
            .iter()
            .filter(|x| x.1)
            .map(|x| x.0)
            .collect();
        let _ = writeln!(y, "  streams: [{}]", v.join(", "));
    }
    if let Some(d) = &s.detectors {
        let names: Vec<&str> = DetectorKind::ALL.iter().map(|d| d.as_str()).collect();
        let _ = writeln!(y, "  detectors: [{}]", list(d, &names));
    }
    if let Some(i) = s.strategy {
        let _ = writeln!(y, "  strategy: {}", STRATEGIES[i]);
    }
    if let Some(a) = s.audit {
        let _ = writeln!(y, "denials:\n  kernel_audit: {}", AUDIT[a]);
    }
    if let Some(a) = s.abi {
        let _ = writeln!(y, "requires:\n  landlock_abi: {a}");
    }
    let _ = writeln!(
        y,
        "tools:\n  {tool}:\n    command: /usr/bin/env\n    sandbox:\n      limits:\n        pids: 1"
    );
    if let Some(m) = s.tool_memory_mib {
        let _ = writeln!(y, "        memory: {m}MiB");
    }
    if let Some(v) = s.tool_signals {
        let _ = writeln!(y, "      scopes:\n        signals: {v}");
    }
    y
}

fn parse(name: &str, text: &str) -> Option<load::Doc> {
    Some(load::Doc {
        shown: PathBuf::from(name),
        canonical: None,
        raw: load::parse(text, Path::new(name)).ok()?,
    })
}

fn denied(sb: &Sandbox) -> BTreeSet<&'static str> {
    syscall_layer::expand(&sb.syscalls.groups, &sb.syscalls.names)
}

/// `child` enforces at least what `base` enforces.
fn no_looser(base: &Sandbox, child: &Sandbox) -> Result<(), String> {
    let lim = |name: &str, b: Option<u64>, c: Option<u64>| match (b, c) {
        (Some(b), Some(c)) if c <= b => Ok(()),
        (Some(b), c) => Err(format!("{name}: base {b}, child {c:?}")),
        (None, _) => Ok(()),
    };
    let l = (&base.limits, &child.limits);
    lim(
        "memory",
        l.0.memory_bytes.as_ref().map(|v| v.value),
        l.1.memory_bytes.as_ref().map(|v| v.value),
    )?;
    lim(
        "pids",
        l.0.pids.as_ref().map(|v| v.value),
        l.1.pids.as_ref().map(|v| v.value),
    )?;
    if base.scopes.signals.value && !child.scopes.signals.value {
        return Err("signals scope dropped".into());
    }
    if base.syscalls.action.value == SeccompAction::Kill
        && child.syscalls.action.value != SeccompAction::Kill
    {
        return Err("kill relaxed".into());
    }
    let modes: Result<(), String> = match (base.syscalls.mode.value, child.syscalls.mode.value) {
        (SyscallMode::Deny, SyscallMode::Deny) if !denied(base).is_subset(&denied(child)) => {
            Err("deny-list shrank".into())
        }
        (SyscallMode::Deny, SyscallMode::Allow)
            if denied(base).intersection(&denied(child)).next().is_some() =>
        {
            Err("allow-list allows a denied syscall".into())
        }
        (SyscallMode::Allow, SyscallMode::Deny) => Err("allow-list became a deny-list".into()),
        (SyscallMode::Allow, SyscallMode::Allow) if !denied(child).is_subset(&denied(base)) => {
            Err("allow-list grew".into())
        }
        _ => Ok(()),
    };
    modes?;
    if base.identity != child.identity {
        return Err("identity changed".into());
    }
    for d in &base.filesystem.deny {
        if !child.filesystem.deny.iter().any(|c| c.value == d.value) {
            return Err(format!("deny {} dropped", d.value));
        }
    }
    Ok(())
}

fn check(base: &Policy, child: &Policy) -> Result<(), String> {
    no_looser(&base.sandbox, &child.sandbox)?;
    for (name, bt) in &base.tools {
        let ct = child
            .tools
            .get(name)
            .ok_or(format!("tool {name} dropped"))?;
        no_looser(&bt.sandbox, &ct.sandbox).map_err(|e| format!("tool {name}: {e}"))?;
    }
    for t in child.tools.values() {
        no_looser(&child.sandbox, &t.sandbox)
            .map_err(|e| format!("tool {} vs defaults: {e}", t.name))?;
        no_looser(&base.sandbox, &t.sandbox)
            .map_err(|e| format!("tool {} vs base: {e}", t.name))?;
    }
    let (br, cr) = (&base.redaction, &child.redaction);
    let (bs, cs) = (br.streams.value, cr.streams.value);
    if (bs.stdin && !cs.stdin) || (bs.stdout && !cs.stdout) || (bs.stderr && !cs.stderr) {
        return Err("stream dropped".into());
    }
    for d in &br.detectors {
        if !cr.detectors.iter().any(|c| c.value == d.value) {
            return Err(format!("detector {:?} dropped", d.value));
        }
    }
    if !merge::strategy_at_least(cr.strategy.value, br.strategy.value) {
        return Err("strategy weakened".into());
    }
    let rank = |k: KernelAudit| match k {
        KernelAudit::Off => 0,
        KernelAudit::IfEnabled => 1,
        KernelAudit::Enable => 2,
    };
    if rank(child.denials.kernel_audit.value) < rank(base.denials.kernel_audit.value) {
        return Err("kernel audit weakened".into());
    }
    if child.sandbox.min_landlock_abi() < base.sandbox.min_landlock_abi() {
        return Err("landlock floor lowered".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_child_never_loosens_its_base(b in spec(0.5), c in spec(0.2)) {
        let base_text = render("base", &b, "base-tool");
        let child_text = render("child", &c, "child-tool");
        let Some(base_doc) = parse("base.yaml", &base_text) else { return Ok(()) };
        let Ok(base) = resolve::resolve(std::slice::from_ref(&base_doc)) else { return Ok(()) };
        let Some(child_doc) = parse("child.yaml", &child_text) else { return Ok(()) };
        if let Ok(child) = resolve::resolve(&[base_doc, child_doc]) {
            let verdict = check(&base, &child);
            prop_assert!(verdict.is_ok(), "{:?}\n--- base\n{}\n--- child\n{}", verdict, base_text, child_text);
        }
    }

    #[test]
    fn a_child_repeating_its_base_always_loads(b in spec(0.5)) {
        let base_text = render("base", &b, "base-tool");
        let Some(base_doc) = parse("base.yaml", &base_text) else { return Ok(()) };
        if resolve::resolve(std::slice::from_ref(&base_doc)).is_ok() {
            // Restating every base value (with another tool name) is never a loosening.
            let child = parse("child.yaml", &render("child", &b, "child-tool")).expect("same shape parses");
            let r = resolve::resolve(&[base_doc, child]);
            prop_assert!(r.is_ok(), "{}\n{}", r.err().map(|e| e.to_string()).unwrap_or_default(), base_text);
        }
    }
}

/// The property above is only meaningful if random children both load and
/// fail often: check the generator is not vacuous.
#[test]
fn generated_children_both_load_and_fail() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..400 {
        let b = spec(0.5).new_tree(&mut runner).expect("tree").current();
        let c = spec(0.2).new_tree(&mut runner).expect("tree").current();
        let Some(bd) = parse("base.yaml", &render("base", &b, "bt")) else {
            continue;
        };
        if resolve::resolve(std::slice::from_ref(&bd)).is_err() {
            continue;
        }
        let cd = parse("child.yaml", &render("child", &c, "ct")).expect("parses");
        match resolve::resolve(&[bd, cd]) {
            Ok(_) => loaded += 1,
            Err(PolicyError::Loosen { .. }) => refused += 1,
            Err(_) => {}
        }
    }
    assert!(
        loaded >= 40 && refused >= 40,
        "loaded {loaded}, refused {refused}"
    );
}
