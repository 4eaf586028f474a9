//! The guard program: architecture, x32 and `clone3`, written by hand.
//!
//! seccompiler checks the architecture but not the x32 ABI, whose syscalls arrive
//! with `AUDIT_ARCH_X86_64` and the `__X32_SYSCALL_BIT` set in the number — a
//! deny-list keyed on x86_64 numbers would never match them. The guard kills any
//! foreign-arch or x32 call, and (when namespaces are denied, or an allow-list does
//! not name `clone3`) fails `clone3` with ENOSYS so that libc falls back to
//! `clone(2)`, whose flags a filter can inspect (`clone3` passes them in memory).
//!
//! For `clone3` the policy's filters return ALLOW (allow mode adds it to the list)
//! unless a policy denies `clone3` by name, in which case that errno wins.

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `__X32_SYSCALL_BIT`.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// `SECCOMP_RET_ERRNO`.
pub const RET_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Build the guard. `clone3_enosys`: make `clone3` fail with ENOSYS.
pub fn program(clone3_enosys: bool) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_KILL_PROCESS),
    ];
    if clone3_enosys {
        p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        p.push(stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32));
    }
    p.push(stmt(RET_K, RET_ALLOW));
    p
}
