//! `audit why`: the explanations of denials of every layer, and the record selector.

use super::why::*;
use crate::report::{Denial, DenialLayer};
use std::path::Path;

fn fs(path: &str, access: &str) -> Denial {
    Denial {
        layer: DenialLayer::LandlockFs,
        pid: Some(9),
        object: path.into(),
        access: Some(access.into()),
        detail: "domain 1: openat() by pid 9".into(),
        hint: format!("grant `x` on {path} in sandbox.filesystem.rules"),
    }
}

#[test]
fn a_filesystem_denial_gets_a_rule_and_sensitive_paths_warn() {
    let e = explain(&fs("/etc", "fs.make_reg"), None);
    assert_eq!(e.layer, "landlock-fs");
    let c = e.change.unwrap();
    assert_eq!(c.field, "sandbox.filesystem.rules");
    assert!(
        c.yaml.contains("- { path: /etc, access: [make_reg] }"),
        "{}",
        c.yaml
    );
    assert!(e.warnings.iter().any(|w| w.contains("/etc/shadow")));
    let ok = explain(&fs("/srv/data/report.txt", "fs.read_file"), None);
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    let ssh = explain(&fs("/home/bob/.ssh/id_ed25519", "fs.read_file"), None);
    assert!(ssh.warnings.iter().any(|w| w.contains("credentials")));
    let trail = Path::new("/srv/audit/trail.jsonl");
    let t = explain(&fs("/srv/audit", "fs.write_file"), Some(trail));
    assert!(t.warnings.iter().any(|w| w.contains("audit trail itself")));
    let sock = explain(&fs("/run/enforcecore/control.sock", "fs.make_sock"), None);
    assert!(sock.warnings.iter().any(|w| w.contains("control socket")));
}

#[test]
fn a_denied_path_cannot_be_granted() {
    let mut d = fs("/etc/shadow", "fs.read_file");
    d.hint = "/etc/shadow is under filesystem.deny `/etc/shadow` (base.yaml:3:5) and can never be granted".into();
    let e = explain(&d, None);
    assert!(e.change.is_none());
    assert!(e.responsible.contains("filesystem.deny"));
}

#[test]
fn seccomp_and_network_denials_name_their_fields() {
    let d = Denial {
        layer: DenialLayer::Seccomp,
        pid: Some(3),
        object: "ptrace".into(),
        access: Some("x86_64".into()),
        detail: "ptrace(0x10, …) by pid 3".into(),
        hint: "remove group `ptrace` (policies/base.yaml:75:21) from sandbox.syscalls (deny list)"
            .into(),
    };
    let e = explain(&d, None);
    assert!(e.responsible.contains("`ptrace` group"));
    assert_eq!(e.change.unwrap().field, "sandbox.syscalls.groups");
    let s = Denial {
        object: "socket".into(),
        detail: "socket(AF_INET, SOCK_DGRAM, 0) by pid 3".into(),
        hint: "add `inet` to sandbox.network.families".into(),
        ..d.clone()
    };
    let c = explain(&s, None).change.unwrap();
    assert!(
        c.yaml.contains("- inet") && c.yaml.contains("udp: true"),
        "{}",
        c.yaml
    );
    let n = Denial {
        layer: DenialLayer::LandlockNet,
        object: "tcp:443".into(),
        access: Some("net.connect_tcp".into()),
        ..d
    };
    let c = explain(&n, None).change.unwrap();
    assert_eq!(
        c.yaml,
        "sandbox:\n  network:\n    tcp_connect:\n      - 443\n"
    );
}

#[test]
fn selectors_parse() {
    assert_eq!(Selector::parse("42"), Ok(Selector::Seq(42)));
    assert_eq!(
        Selector::parse("ab12:3"),
        Ok(Selector::RunIndex("ab12".into(), 3))
    );
    assert!(Selector::parse("ab12:0").is_err());
    assert!(Selector::parse("nope").is_err());
}
