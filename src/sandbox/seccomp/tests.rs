//! The compiled programs, evaluated by a small classic-BPF interpreter.
//!
//! The interpreter covers exactly the instructions seccompiler and the guard emit;
//! anything else fails the test. The kernel itself is exercised by the integration
//! tests; these pin the semantics of the filter for every argument combination.

use proptest::prelude::*;

use super::guard::{AUDIT_ARCH_X86_64, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, X32_SYSCALL_BIT};
use super::*;
use crate::policy::{SeccompAction, SocketFamily, SyscallMode};
use crate::sandbox::fixtures::{src, strict};

/// The programs with the kernel returning refusals itself (no listener), so
/// that verdicts carry the errno.
fn compile(s: &crate::policy::Sandbox) -> Result<Compiled, SandboxError> {
    compile_with(s, true, false)
}

#[test]
fn with_a_listener_refusals_are_notified_and_nothing_else_changes() {
    let plain = compile(&strict()).unwrap();
    let notified = super::compile(&strict()).unwrap();
    assert_eq!(notified.notify_errno, Some(libc::EPERM));
    assert_eq!(plain.notify_errno, None);
    let main = notified.filters.last().unwrap();
    assert_eq!(main.name, "main");
    assert_eq!(main.flags, FLAG_NEW_LISTENER);
    assert_eq!(notified.report.flags, vec!["user_notif".to_string()]);
    for nr in [
        libc::SYS_unshare,
        libc::SYS_mount,
        libc::SYS_read,
        libc::SYS_bpf,
    ] {
        let (p, n) = (verdict(&plain, nr, [0; 6]), verdict(&notified, nr, [0; 6]));
        if p == RET_ERRNO | libc::EPERM as u32 {
            assert_eq!(n, 0x7fc0_0000, "syscall {nr}");
        } else {
            assert_eq!(n, p, "syscall {nr}");
        }
    }
    let mut kill = strict();
    kill.syscalls.action = src(SeccompAction::Kill);
    let k = super::compile(&kill).unwrap();
    assert_eq!(
        (k.notify_errno, k.filters.last().unwrap().flags),
        (None, 1 << 1)
    );
}

/// Run one program on `struct seccomp_data`.
fn eval(p: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = &p[pc];
        pc += 1;
        match i.code {
            0x20 => {
                let o = i.k as usize;
                acc = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
            }
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x15 | 0x25 | 0x35 => {
                let t = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += if t { i.jt } else { i.jf } as usize;
            }
            0x06 => return i.k,
            c => panic!("unexpected BPF opcode {c:#x}"),
        }
    }
}

/// The kernel's verdict over all installed programs: the most severe action wins;
/// among equal ones, the most recently installed.
fn verdict(c: &Compiled, nr: i64, args: [u64; 6]) -> u32 {
    verdict_arch(c, nr as u32, AUDIT_ARCH_X86_64, args)
}

fn verdict_arch(c: &Compiled, nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let rank = |r: u32| match r & 0xffff_0000 {
        0x8000_0000 => 0,
        0x0000_0000 => 1,
        0x0003_0000 => 2,
        0x0005_0000 => 3,
        0x7fc0_0000 => 4,
        _ => 9,
    };
    let mut best = RET_ALLOW;
    for f in &c.filters {
        let r = eval(&f.program, nr, arch, args);
        if rank(r) <= rank(best) {
            best = r;
        }
    }
    best
}

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

fn sock(domain: i32, ty: i32, proto: i32) -> [u64; 6] {
    [domain as u64, ty as u64, proto as u64, 0, 0, 0]
}

#[test]
fn strict_denies_the_listed_groups_and_io_uring() {
    let c = compile(&strict()).unwrap();
    for nr in [
        libc::SYS_mount,
        libc::SYS_unshare,
        libc::SYS_ptrace,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
    ] {
        assert_eq!(verdict(&c, nr, [0; 6]), EPERM, "syscall {nr}");
    }
    for nr in [
        libc::SYS_read,
        libc::SYS_openat,
        libc::SYS_execve,
        libc::SYS_fork,
    ] {
        assert_eq!(verdict(&c, nr, [0; 6]), RET_ALLOW, "syscall {nr}");
    }
    assert_eq!(c.report.mode, "deny");
    assert_eq!(c.report.action, "errno:EPERM");
    assert_eq!(c.report.filter_sha256.len(), 64);
}

#[test]
fn foreign_arch_and_x32_are_killed() {
    let c = compile(&strict()).unwrap();
    let i386 = 3 | 0x4000_0000;
    assert_eq!(verdict_arch(&c, 0, i386, [0; 6]), RET_KILL_PROCESS);
    let x32_ptrace = X32_SYSCALL_BIT | libc::SYS_ptrace as u32;
    assert_eq!(
        verdict_arch(&c, x32_ptrace, AUDIT_ARCH_X86_64, [0; 6]),
        RET_KILL_PROCESS
    );
}

#[test]
fn namespaces_cover_clone_flags_and_clone3() {
    let c = compile(&strict()).unwrap();
    let fork_flags = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
    assert_eq!(
        verdict(&c, libc::SYS_clone, [fork_flags, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    for f in args::CLONE_NS_FLAGS {
        assert_eq!(
            verdict(&c, libc::SYS_clone, [fork_flags | f, 0, 0, 0, 0, 0]),
            EPERM
        );
    }
    assert_eq!(
        verdict(&c, libc::SYS_clone3, [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    let mut open = strict();
    open.syscalls
        .groups
        .retain(|g| g.value != SyscallGroup::Namespaces);
    let c = compile(&open).unwrap();
    let newuser = fork_flags | libc::CLONE_NEWUSER as u64;
    assert_eq!(
        verdict(&c, libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(verdict(&c, libc::SYS_clone3, [0; 6]), RET_ALLOW);
}

#[test]
fn no_network_means_no_sockets_but_unix_socketpairs() {
    let c = compile(&strict()).unwrap();
    for (d, t) in [
        (libc::AF_INET, libc::SOCK_STREAM),
        (libc::AF_INET, libc::SOCK_DGRAM),
        (libc::AF_INET6, libc::SOCK_RAW),
        (libc::AF_NETLINK, libc::SOCK_RAW),
        (libc::AF_PACKET, libc::SOCK_RAW),
        (libc::AF_UNIX, libc::SOCK_STREAM),
    ] {
        assert_eq!(verdict(&c, libc::SYS_socket, sock(d, t, 0)), EPERM);
    }
    assert_eq!(
        verdict(
            &c,
            libc::SYS_socketpair,
            sock(libc::AF_UNIX, libc::SOCK_STREAM, 0)
        ),
        RET_ALLOW
    );
    assert_eq!(
        verdict(
            &c,
            libc::SYS_socketpair,
            sock(libc::AF_INET, libc::SOCK_STREAM, 0)
        ),
        EPERM
    );
}

fn with_inet(udp: bool, raw: bool) -> Compiled {
    let mut s = strict();
    s.network.families = [SocketFamily::Inet, SocketFamily::Inet6, SocketFamily::Unix]
        .into_iter()
        .map(src)
        .collect();
    s.network.udp = Some(src(udp));
    s.network.raw = Some(src(raw));
    compile(&s).unwrap()
}

proptest! {
    /// For every socket(2) argument combination the verdict follows the documented rule.
    #[test]
    fn socket_filter_follows_the_rule(
        domain in prop::sample::select(vec![
            libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK,
            libc::AF_PACKET, libc::AF_VSOCK, 0, 255,
        ]),
        base in 0i32..12,
        flags in prop::sample::select(vec![0, libc::SOCK_NONBLOCK, libc::SOCK_CLOEXEC]),
        proto in prop::sample::select(vec![
            0, libc::IPPROTO_TCP, libc::IPPROTO_UDP, libc::IPPROTO_ICMP,
            libc::IPPROTO_SCTP, libc::IPPROTO_UDPLITE, 262,
        ]),
        udp: bool,
        raw: bool,
    ) {
        let c = with_inet(udp, raw);
        let got = verdict(&c, libc::SYS_socket, sock(domain, base | flags, proto));
        let inet = domain == libc::AF_INET || domain == libc::AF_INET6;
        let allowed = if domain == libc::AF_UNIX {
            true
        } else if inet {
            match base {
                libc::SOCK_STREAM => proto == 0 || proto == libc::IPPROTO_TCP,
                libc::SOCK_DGRAM => udp && (proto == 0 || proto == libc::IPPROTO_UDP),
                libc::SOCK_RAW => raw,
                4 | 5 | 6 | 10 => false,
                _ => true, // the kernel rejects these types itself (EINVAL)
            }
        } else {
            false
        };
        prop_assert_eq!(got, if allowed { RET_ALLOW } else { EPERM });
    }
}

#[test]
fn allow_mode_allows_only_the_list_and_what_exec_needs() {
    let mut s = strict();
    s.syscalls.mode = src(SyscallMode::Allow);
    s.syscalls.groups = [src(SyscallGroup::IoUring)].into_iter().collect();
    s.syscalls.names = ["openat", "mmap", "clone", "socket"]
        .into_iter()
        .map(|n| src(n.to_string()))
        .collect();
    s.syscalls.action = src(SeccompAction::Kill);
    let c = compile(&s).unwrap();
    for nr in [
        libc::SYS_openat,
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_execve,
    ] {
        assert_eq!(verdict(&c, nr, [0; 6]), RET_ALLOW, "syscall {nr}");
    }
    for nr in [libc::SYS_mount, libc::SYS_io_uring_setup, libc::SYS_ptrace] {
        assert_eq!(verdict(&c, nr, [0; 6]), RET_KILL_PROCESS, "syscall {nr}");
    }
    // Allowed syscalls still get the argument rules.
    let newns = libc::CLONE_NEWNS as u64;
    assert_eq!(
        verdict(&c, libc::SYS_clone, [newns, 0, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        verdict(
            &c,
            libc::SYS_socket,
            sock(libc::AF_INET, libc::SOCK_STREAM, 0)
        ),
        RET_KILL_PROCESS
    );
    assert_eq!(
        verdict(&c, libc::SYS_clone3, [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(c.report.action, "kill");
    assert_eq!(
        c.filters.iter().map(|f| f.name).collect::<Vec<_>>(),
        ["guard", "args", "main"]
    );
}

#[test]
fn essential_syscalls_cannot_be_denied_and_bad_errnos_are_refused() {
    let mut s = strict();
    s.syscalls.names = [src("execve".to_string())].into_iter().collect();
    let e = compile(&s).unwrap_err();
    assert!(e.to_string().contains("execve"), "{e}");
    let mut s = strict();
    s.syscalls.names = [src("no_such_call".to_string())].into_iter().collect();
    assert!(matches!(
        compile(&s),
        Err(SandboxError::UnknownSyscall { .. })
    ));
    let mut s = strict();
    s.syscalls.action = src(SeccompAction::Errno(70000));
    assert!(compile(&s).is_err());
}

#[test]
fn the_hash_changes_with_the_policy() {
    let a = compile(&strict()).unwrap().report.filter_sha256;
    let mut s = strict();
    s.syscalls.action = src(SeccompAction::Errno(libc::EACCES));
    let b = compile(&s).unwrap().report.filter_sha256;
    assert_ne!(a, b);
    assert_eq!(a, compile(&strict()).unwrap().report.filter_sha256);
}

/// Argument patterns the filters distinguish (socket domain/type/protocol, clone flags).
fn arg_patterns() -> Vec<[u64; 6]> {
    let mut v = vec![[0; 6]];
    for d in [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
        libc::AF_PACKET,
        99,
    ] {
        for t in [1, 2, 3, 4, 5, 6, 10, 1 | libc::SOCK_CLOEXEC] {
            for pr in [
                0,
                libc::IPPROTO_TCP,
                libc::IPPROTO_UDP,
                libc::IPPROTO_ICMP,
                132,
                262,
            ] {
                v.push(sock(d, t, pr));
            }
        }
    }
    for f in args::CLONE_NS_FLAGS {
        v.push([f | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]);
    }
    v
}

fn arb_sandbox() -> impl Strategy<Value = crate::policy::Sandbox> {
    let groups = prop::sample::subsequence(SyscallGroup::ALL.to_vec(), 0..=SyscallGroup::ALL.len());
    let names = prop::sample::subsequence(
        vec![
            "openat",
            "mmap",
            "clone",
            "clone3",
            "socket",
            "socketpair",
            "getpid",
            "kill",
            "uname",
        ],
        0..=9,
    );
    let families = prop::sample::subsequence(
        vec![
            SocketFamily::Unix,
            SocketFamily::Inet,
            SocketFamily::Inet6,
            SocketFamily::Netlink,
            SocketFamily::Packet,
        ],
        0..=5,
    );
    (
        groups,
        names,
        families,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(groups, names, families, allow, kill, udp, raw)| {
            let mut s = strict();
            s.syscalls.groups = groups.into_iter().map(src).collect();
            s.syscalls.names = names.into_iter().map(|n| src(n.to_string())).collect();
            if allow {
                s.syscalls.mode = src(SyscallMode::Allow);
            }
            if kill {
                s.syscalls.action = src(SeccompAction::Kill);
            }
            s.network.families = families.into_iter().map(src).collect();
            s.network.udp = Some(src(udp));
            s.network.raw = Some(src(raw));
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The optimizer never changes a verdict: every syscall number, both
    /// architectures, x32, every distinguished argument pattern.
    #[test]
    fn optimized_filters_give_the_same_verdicts(s in arb_sandbox()) {
        let plain = compile_with(&s, false, false).unwrap();
        let small = compile_with(&s, true, false).unwrap();
        let sizes = |c: &Compiled| c.filters.iter().map(|f| f.program.len()).sum::<usize>();
        prop_assert!(sizes(&small) <= sizes(&plain));
        let patterns = arg_patterns();
        for nr in 0..480u32 {
            let args: &[[u64; 6]] = if [41, 53, 56].contains(&nr) { &patterns } else { &patterns[..1] };
            for a in args {
                for arch in [AUDIT_ARCH_X86_64, 3 | 0x4000_0000] {
                    prop_assert_eq!(
                        verdict_arch(&plain, nr, arch, *a),
                        verdict_arch(&small, nr, arch, *a),
                        "syscall {} arch {:#x} args {:?}", nr, arch, a
                    );
                }
            }
            prop_assert_eq!(
                verdict_arch(&plain, nr | X32_SYSCALL_BIT, AUDIT_ARCH_X86_64, [0; 6]),
                verdict_arch(&small, nr | X32_SYSCALL_BIT, AUDIT_ARCH_X86_64, [0; 6])
            );
        }
    }
}

#[test]
fn the_optimizer_halves_strict_and_leaves_odd_programs_alone() {
    let plain = compile_with(&strict(), false, false).unwrap();
    let small = compile_with(&strict(), true, false).unwrap();
    let main = |c: &Compiled| {
        c.filters
            .iter()
            .find(|f| f.name == "main")
            .unwrap()
            .program
            .len()
    };
    assert!(
        main(&small) * 2 < main(&plain),
        "{} vs {}",
        main(&small),
        main(&plain)
    );
    // A program that starts with a jump is returned as is.
    let odd = vec![
        libc::sock_filter {
            code: 0x05,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        },
    ];
    let out = optimize::optimize(&odd);
    assert_eq!(out.len(), 2);
}
