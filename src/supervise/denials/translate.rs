//! Kernel denial events → [`Denial`]s: the object, the access asked, and a
//! one-line hint naming the policy field that would allow it.
//!
//! [`Hints`] is built once per run from its effective sandbox, so that a
//! seccomp denial names the group (and the file:line that listed it) rather
//! than a bare number. Pure: this module never touches the kernel.

use std::collections::HashMap;

use super::record::Record;
use crate::policy::{Sandbox, SyscallMode};
use crate::report::{Denial, DenialLayer};
use crate::sandbox::syscalls::{self, SyscallGroup};

/// `AUDIT_ARCH_X86_64`.
pub const ARCH_X86_64: u32 = 0xc000_003e;

/// What a run's policy says about each syscall it refuses.
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// Syscall number → index into `labels`.
    listed: HashMap<i64, usize>,
    /// `group `ptrace` (file:line)` or `name `bpf` (file:line)`.
    labels: Vec<String>,
    /// Allow-list mode.
    allow_mode: bool,
    /// `filesystem.deny` entries, with where they are written.
    fs_denies: Vec<(String, String)>,
}

impl Hints {
    /// The hints for one run's sandbox.
    pub fn new(sandbox: &Sandbox) -> Hints {
        let sc = &sandbox.syscalls;
        let mut listed = HashMap::new();
        let mut labels = Vec::new();
        for g in &sc.groups {
            labels.push(format!("group `{}` ({})", g.value.as_str(), g.origin));
            for m in g.value.members() {
                if let Some(nr) = syscalls::number(m) {
                    listed.entry(nr).or_insert(labels.len() - 1);
                }
            }
        }
        for n in &sc.names {
            if let Some(nr) = syscalls::number(&n.value) {
                labels.push(format!("name `{}` ({})", n.value, n.origin));
                listed.insert(nr, labels.len() - 1);
            }
        }
        Hints {
            listed,
            labels,
            allow_mode: sc.mode.value == SyscallMode::Allow,
            fs_denies: sandbox
                .filesystem
                .deny
                .iter()
                .map(|d| (d.value.to_string(), d.origin.to_string()))
                .collect(),
        }
    }

    /// Where the policy lists syscall `nr`, if it does.
    fn label(&self, nr: i64) -> Option<&str> {
        self.listed.get(&nr).map(|&i| self.labels[i].as_str())
    }

    fn seccomp_hint(&self, nr: i64, name: &str, args: &[u64; 6]) -> String {
        match nr {
            libc::SYS_socket | libc::SYS_socketpair => {
                return format!(
                    "add `{}` to sandbox.network.families{}",
                    family_name(args[0]),
                    if is_inet(args[0]) {
                        " (and network.udp / network.raw for datagram or raw sockets)"
                    } else {
                        ""
                    }
                );
            }
            libc::SYS_clone if args[0] & NS_FLAGS != 0 => {
                return format!(
                    "remove the `namespaces` group from sandbox.syscalls.groups{}",
                    self.label(libc::SYS_unshare)
                        .map(|l| format!(" — listed as {l}"))
                        .unwrap_or_default()
                );
            }
            _ => {}
        }
        if SyscallGroup::IoUring.members().contains(&name) {
            return "io_uring is always denied; no policy field allows it".into();
        }
        match self.label(nr) {
            Some(l) if !self.allow_mode => {
                format!("remove {l} from sandbox.syscalls (deny list)")
            }
            _ if self.allow_mode => {
                format!("add `{name}` to sandbox.syscalls.names (allow list)")
            }
            _ => format!("`{name}` is denied by the sandbox.syscalls filter"),
        }
    }

    /// A seccomp denial from a user notification (or a 1326 record, where the
    /// arguments are unknown).
    pub fn seccomp(&self, pid: i32, nr: i64, arch: u32, args: Option<&[u64; 6]>) -> Denial {
        let name = if arch == ARCH_X86_64 {
            syscalls::name(nr).map_or_else(|| format!("syscall_{nr}"), str::to_string)
        } else {
            format!("syscall_{nr}")
        };
        let zero = [0u64; 6];
        let detail = match args {
            Some(a) => format!("{} by pid {pid}", call(&name, nr, a)),
            None => format!("{name}() by pid {pid}"),
        };
        Denial {
            layer: DenialLayer::Seccomp,
            pid: Some(pid),
            object: name.clone(),
            access: Some(arch_name(arch).into()),
            hint: if arch == ARCH_X86_64 {
                self.seccomp_hint(nr, &name, args.unwrap_or(&zero))
            } else {
                "foreign-architecture syscalls are always refused".into()
            },
            detail,
        }
    }

    /// A Landlock denial (1423), with the pid and syscall of its SYSCALL record.
    pub fn landlock(&self, access: &Record, pid: Option<i32>, syscall: Option<i64>) -> Denial {
        let blockers = access.text("blockers").unwrap_or_default();
        let by = format!(
            "{}{}",
            syscall
                .and_then(syscalls::name)
                .map(|s| format!("{s}() "))
                .unwrap_or_default(),
            pid.map(|p| format!("by pid {p}")).unwrap_or_default()
        );
        let first = blockers.split(',').next().unwrap_or("");
        let (layer, object, detail, hint) = if first.starts_with("fs.") {
            let path = access
                .get("path")
                .or_else(|| access.get("name"))
                .map(display_path)
                .unwrap_or_else(|| "?".into());
            let rights: Vec<&str> = blockers
                .split(',')
                .filter_map(|b| b.strip_prefix("fs."))
                .collect();
            let denied = self
                .fs_denies
                .iter()
                .find(|(d, _)| path == *d || path.starts_with(&format!("{d}/")));
            let moving = matches!(
                syscall,
                Some(libc::SYS_link | libc::SYS_linkat | libc::SYS_rename)
                    | Some(libc::SYS_renameat | libc::SYS_renameat2)
            );
            let hint = match denied {
                _ if moving => format!(
                    "a link or rename would move a file between {path} and a directory where \
                     it has other rights (Landlock `refer`); copy it instead, or grant the same \
                     rights on both in sandbox.filesystem.rules"
                ),
                Some((d, origin)) => format!(
                    "{path} is under filesystem.deny `{d}` ({origin}) and can never be granted"
                ),
                None => format!(
                    "grant `{}` on {path} in sandbox.filesystem.rules{}",
                    rights.join("`, `"),
                    shorthand(&rights)
                        .map(|s| format!(" (or list it under filesystem.{s})"))
                        .unwrap_or_default()
                ),
            };
            (DenialLayer::LandlockFs, path, by, hint)
        } else if first.starts_with("net.") {
            let bind = first == "net.bind_tcp";
            let port = access
                .int(if bind { "src" } else { "dest" })
                .map_or_else(|| "?".into(), |p| p.to_string());
            let addr = access
                .text(if bind { "saddr" } else { "daddr" })
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            let field = if bind { "tcp_bind" } else { "tcp_connect" };
            (
                DenialLayer::LandlockNet,
                format!("tcp:{port}"),
                format!("{}{addr} {by}", if bind { "bind" } else { "connect" }),
                format!("add {port} to sandbox.network.{field}"),
            )
        } else {
            let (object, hint) = if first == "scope.signal" {
                (
                    format!(
                        "signal to pid {} ({})",
                        access.text("opid").unwrap_or_else(|| "?".into()),
                        access.text("ocomm").unwrap_or_else(|| "?".into())
                    ),
                    "set sandbox.scopes.signals: false (lets the tool signal any process of its \
                     user outside the sandbox)"
                        .to_string(),
                )
            } else {
                (
                    format!(
                        "abstract unix socket {}",
                        access.get("path").map(display_path).unwrap_or_default()
                    ),
                    "set sandbox.scopes.abstract_unix: false (lets the tool reach abstract unix \
                     sockets outside the sandbox)"
                        .to_string(),
                )
            };
            (DenialLayer::LandlockScope, object, by, hint)
        };
        Denial {
            layer,
            pid,
            object,
            access: Some(blockers),
            detail: format!("domain {:x}: {}", access.hex("domain").unwrap_or(0), detail)
                .trim_end()
                .to_string(),
            hint,
        }
    }
}

/// The `filesystem.read/write/exec` shorthand that covers all of `rights`.
fn shorthand(rights: &[&str]) -> Option<&'static str> {
    const READ: [&str; 2] = ["read_file", "read_dir"];
    const WRITE: [&str; 10] = [
        "read_file",
        "read_dir",
        "write_file",
        "make_reg",
        "make_dir",
        "make_sym",
        "remove_file",
        "remove_dir",
        "refer",
        "truncate",
    ];
    if rights.iter().all(|r| READ.contains(r)) {
        Some("read")
    } else if rights.iter().all(|r| READ.contains(r) || *r == "execute") {
        Some("exec")
    } else if rights.iter().all(|r| WRITE.contains(r)) {
        Some("write")
    } else {
        None
    }
}

/// A path for humans: abstract unix names (leading NUL) as `@name`.
fn display_path(p: &[u8]) -> String {
    match p.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
        _ => String::from_utf8_lossy(p).into_owned(),
    }
}

fn arch_name(arch: u32) -> &'static str {
    match arch {
        ARCH_X86_64 => "x86_64",
        0x4000_0003 => "i386",
        0xc000_00b7 => "aarch64",
        _ => "foreign",
    }
}

const NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

fn is_inet(af: u64) -> bool {
    af == libc::AF_INET as u64 || af == libc::AF_INET6 as u64
}

fn family_name(af: u64) -> String {
    match af as i32 {
        libc::AF_UNIX => "unix".into(),
        libc::AF_INET => "inet".into(),
        libc::AF_INET6 => "inet6".into(),
        libc::AF_NETLINK => "netlink".into(),
        libc::AF_PACKET => "packet".into(),
        n => format!("family {n}"),
    }
}

fn sock_type(t: u64) -> String {
    match (t & 0xf) as i32 {
        libc::SOCK_STREAM => "SOCK_STREAM".into(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
        libc::SOCK_RAW => "SOCK_RAW".into(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        n => format!("type {n}"),
    }
}

/// `name(args…)`, decoded for the calls whose arguments explain the denial.
fn call(name: &str, nr: i64, a: &[u64; 6]) -> String {
    match nr {
        libc::SYS_socket | libc::SYS_socketpair => format!(
            "{name}(AF_{}, {}, {})",
            family_name(a[0]).to_uppercase(),
            sock_type(a[1]),
            a[2]
        ),
        libc::SYS_clone | libc::SYS_unshare => {
            let flags = a[0];
            let names: Vec<&str> = [
                (libc::CLONE_NEWNS, "CLONE_NEWNS"),
                (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
                (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
                (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
                (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
                (libc::CLONE_NEWPID, "CLONE_NEWPID"),
                (libc::CLONE_NEWNET, "CLONE_NEWNET"),
            ]
            .iter()
            .filter(|(f, _)| flags & (*f as u64) != 0)
            .map(|(_, n)| *n)
            .collect();
            format!("{name}({}, …)", names.join("|"))
        }
        _ => format!(
            "{name}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})",
            a[0], a[1], a[2], a[3], a[4], a[5]
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::parse;
    use super::*;
    use crate::sandbox::fixtures::strict;

    #[test]
    fn seccomp_denials_name_the_syscall_and_the_group() {
        let h = Hints::new(&strict());
        let d = h.seccomp(
            7,
            libc::SYS_unshare,
            ARCH_X86_64,
            Some(&[0x4000_0000, 0, 0, 0, 0, 0]),
        );
        assert_eq!(
            (d.layer, d.object.as_str()),
            (DenialLayer::Seccomp, "unshare")
        );
        assert_eq!(d.access.as_deref(), Some("x86_64"));
        assert!(d.detail.contains("CLONE_NEWNET"), "{}", d.detail);
        assert!(d.hint.contains("namespaces"), "{}", d.hint);
        let s = h.seccomp(7, libc::SYS_socket, ARCH_X86_64, Some(&[2, 2, 0, 0, 0, 0]));
        assert!(
            s.detail.contains("socket(AF_INET, SOCK_DGRAM, 0)"),
            "{}",
            s.detail
        );
        assert!(s.hint.contains("network.families"), "{}", s.hint);
        let u = h.seccomp(7, 425, ARCH_X86_64, None);
        assert_eq!(u.object, "io_uring_setup");
        assert!(u.hint.contains("always denied"));
    }

    #[test]
    fn landlock_denials_name_path_right_and_field() {
        let h = Hints::new(&strict());
        let r = parse(
            1423,
            b"audit(1.2:3): domain=abc blockers=fs.make_reg path=\"/etc\" dev=\"vda\" ino=19",
        )
        .unwrap();
        let d = h.landlock(&r, Some(42), Some(257));
        assert_eq!(
            (d.layer, d.object.as_str()),
            (DenialLayer::LandlockFs, "/etc")
        );
        assert_eq!(d.access.as_deref(), Some("fs.make_reg"));
        assert!(d.detail.contains("openat() by pid 42"), "{}", d.detail);
        assert!(d.hint.contains("filesystem.write"), "{}", d.hint);
        let n = parse(
            1423,
            b"audit(1.2:3): domain=abc blockers=net.connect_tcp daddr=127.0.0.1 dest=80",
        )
        .unwrap();
        let d = h.landlock(&n, None, None);
        assert_eq!(
            (d.layer, d.object.as_str()),
            (DenialLayer::LandlockNet, "tcp:80")
        );
        assert!(d.hint.contains("tcp_connect"));
        let s = parse(
            1423,
            b"audit(1.2:3): domain=abc blockers=scope.abstract_unix_socket path=00666F6F",
        )
        .unwrap();
        let d = h.landlock(&s, None, None);
        assert_eq!(d.layer, DenialLayer::LandlockScope);
        assert!(d.object.ends_with("@foo"), "{}", d.object);
    }
}
