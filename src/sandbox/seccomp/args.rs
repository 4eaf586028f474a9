//! Argument rules: the socket filter and the `clone(2)` namespace-flag filter.
//!
//! Both are expressed as *deny* rules (a match means the policy's action): a rule
//! is an AND of argument comparisons, a syscall's rules are OR'ed (seccompiler).
//!
//! Socket filter — "no network" must also mean no UDP, raw, packet or netlink:
//! - `socket(domain, ..)` with a domain not in `network.families` is denied
//!   (all of `socket` when the list is empty);
//! - for AF_INET/AF_INET6: stream sockets only with protocol 0 or TCP (Landlock
//!   restricts TCP ports, not SCTP or MPTCP); datagram sockets only when
//!   `network.udp`, and then only protocol 0 or UDP (no ICMP "ping" sockets, no
//!   UDP-Lite); raw sockets only when `network.raw`; RDM, SEQPACKET, DCCP and
//!   SOCK_PACKET never;
//! - `socketpair` only with AF_UNIX.
//!
//! Type comparisons mask the low four bits, so `SOCK_NONBLOCK | SOCK_CLOEXEC` do
//! not matter.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::super::SandboxError;
use crate::policy::{Network, SocketFamily};

/// The obsolete `SOCK_PACKET` socket type (a raw link-layer socket in disguise).
const SOCK_PACKET: i32 = 10;

/// `CLONE_NEW*` flags `clone(2)` may carry (`CLONE_NEWTIME` only fits `clone3`).
pub const CLONE_NS_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The `AF_*` number of a policy family.
pub fn af(f: SocketFamily) -> u64 {
    (match f {
        SocketFamily::Unix => libc::AF_UNIX,
        SocketFamily::Inet => libc::AF_INET,
        SocketFamily::Inet6 => libc::AF_INET6,
        SocketFamily::Netlink => libc::AF_NETLINK,
        SocketFamily::Packet => libc::AF_PACKET,
    }) as u64
}

fn cond(arg: u8, op: SeccompCmpOp, v: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v)
        .map_err(|e| SandboxError::SeccompCompile(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conds).map_err(|e| SandboxError::SeccompCompile(e.to_string()))
}

/// Deny rules for `socket` and `socketpair`. An empty rule list for `socket`
/// (no family allowed) denies it outright.
pub fn socket_rules(net: &Network) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SandboxError> {
    use SeccompCmpOp::{Eq, MaskedEq, Ne};
    let families: BTreeSet<SocketFamily> = net.families.iter().map(|f| f.value).collect();
    let udp = net.udp.as_ref().is_some_and(|s| s.value);
    let raw = net.raw.as_ref().is_some_and(|s| s.value);
    let mut out = BTreeMap::new();
    let mut socket = Vec::new();
    if !families.is_empty() {
        socket.push(rule(
            families
                .iter()
                .map(|f| cond(0, Ne, af(*f)))
                .collect::<Result<_, _>>()?,
        )?);
        let ty = |t: i32| cond(1, MaskedEq(0xf), t as u64);
        for fam in families
            .iter()
            .filter(|f| matches!(f, SocketFamily::Inet | SocketFamily::Inet6))
        {
            let dom = || cond(0, Eq, af(*fam));
            socket.push(rule(vec![
                dom()?,
                ty(libc::SOCK_STREAM)?,
                cond(2, Ne, 0)?,
                cond(2, Ne, libc::IPPROTO_TCP as u64)?,
            ])?);
            if udp {
                socket.push(rule(vec![
                    dom()?,
                    ty(libc::SOCK_DGRAM)?,
                    cond(2, Ne, 0)?,
                    cond(2, Ne, libc::IPPROTO_UDP as u64)?,
                ])?);
            } else {
                socket.push(rule(vec![dom()?, ty(libc::SOCK_DGRAM)?])?);
            }
            if !raw {
                socket.push(rule(vec![dom()?, ty(libc::SOCK_RAW)?])?);
            }
            for t in [
                libc::SOCK_RDM,
                libc::SOCK_SEQPACKET,
                libc::SOCK_DCCP,
                SOCK_PACKET,
            ] {
                socket.push(rule(vec![dom()?, ty(t)?])?);
            }
        }
    }
    out.insert(libc::SYS_socket, socket);
    out.insert(
        libc::SYS_socketpair,
        vec![rule(vec![cond(0, Ne, libc::AF_UNIX as u64)?])?],
    );
    Ok(out)
}

/// Deny rules for `clone` carrying any namespace flag.
pub fn clone_rules() -> Result<Vec<SeccompRule>, SandboxError> {
    CLONE_NS_FLAGS
        .iter()
        .map(|f| rule(vec![cond(0, SeccompCmpOp::MaskedEq(*f), *f)?]))
        .collect()
}
