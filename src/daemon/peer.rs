//! Who is calling: the peer's credentials from the kernel (`SO_PEERCRED`,
//! unix(7)) mapped to the policy's `agents`.
//!
//! The kernel records the uid, gid and pid of the process that called
//! `connect(2)`; nothing the client sends can change them. An agent matches by
//! uid first (the first agent listing the uid), then by the peer's primary gid;
//! supplementary groups are not consulted (they are not part of the
//! credentials the kernel attests). A peer that matches no agent is refused.
//! This module decides identity only; it never runs or limits anything.

use nix::sys::socket::UnixAddr;

use crate::policy::{Agent, Policy};

/// A connected client's kernel-attested credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid at `connect` time.
    pub uid: u32,
    /// Effective gid at `connect` time.
    pub gid: u32,
    /// Its pid, when the kernel knows it in our pid namespace.
    pub pid: Option<i32>,
}

impl Peer {
    /// `uid 1000 gid 1000 pid 4242`, for messages and audit details.
    pub fn describe(&self) -> String {
        match self.pid {
            Some(p) => format!("uid {} gid {} pid {p}", self.uid, self.gid),
            None => format!("uid {} gid {}", self.uid, self.gid),
        }
    }
}

/// Why a peer may not call a tool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// The peer is no agent of the policy.
    #[error("{peer} is not an agent of policy `{policy}`; add its uid or gid under `agents:`")]
    NotAnAgent {
        /// The peer.
        peer: String,
        /// The policy's name.
        policy: String,
    },
    /// The agent may not call this tool.
    #[error(
        "agent `{agent}` may not call tool `{tool}` (it may call: {allowed}); add the tool to the agent's `tools:`"
    )]
    ToolNotAllowed {
        /// The agent.
        agent: String,
        /// The tool asked for.
        tool: String,
        /// What it may call.
        allowed: String,
    },
}

/// The agent a peer is, if any.
pub fn agent_of<'p>(policy: &'p Policy, peer: &Peer) -> Option<&'p Agent> {
    policy
        .agents
        .iter()
        .find(|a| a.uids.contains(&peer.uid))
        .or_else(|| policy.agents.iter().find(|a| a.gids.contains(&peer.gid)))
}

/// The agent, when the peer may call `tool`.
pub fn authorize<'p>(
    policy: &'p Policy,
    peer: &Peer,
    tool: &str,
) -> Result<&'p Agent, PeerRefusal> {
    let agent = agent_of(policy, peer).ok_or_else(|| PeerRefusal::NotAnAgent {
        peer: peer.describe(),
        policy: policy.name.clone(),
    })?;
    if !agent.tools.contains(tool) {
        return Err(PeerRefusal::ToolNotAllowed {
            agent: agent.name.clone(),
            tool: tool.into(),
            allowed: agent.tools.iter().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(agent)
}

/// Whether `fd` is a unix socket connected to the daemon's own listening
/// socket, whose address is `own` (its `getsockname(2)`).
///
/// A client that passed such a descriptor as a tool's stdio — its own control
/// connection above all — would have the daemon hold a copy of its end, so its
/// hang-up would never be seen and its run never cancelled. The kernel gives a
/// connection accepted from a listener the listener's address, which is what
/// `getpeername(2)` on the client's end returns, whatever path it connected by.
pub fn is_connection_to(fd: std::os::fd::BorrowedFd<'_>, own: &UnixAddr) -> bool {
    use std::os::fd::AsRawFd;
    matches!(
        nix::sys::socket::getpeername::<UnixAddr>(fd.as_raw_fd()),
        Ok(peer) if peer == *own
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{LoadOptions, load_bytes};

    fn policy() -> Policy {
        let yaml = "version: 1\nname: p\nsandbox:\n  user: 65534\n  group: 65534\n  filesystem:\n    \
                    read: [/usr]\n    exec: [/usr/bin]\ntools:\n  echo:\n    command: /usr/bin/echo\n  \
                    ok:\n    command: /usr/bin/true\nagents:\n  - {name: by-uid, uids: [1000], tools: [echo]}\n  \
                    - {name: by-gid, gids: [2000], tools: [echo, ok]}\n";
        load_bytes(
            Path::new("p.yaml"),
            yaml.as_bytes(),
            &LoadOptions::default(),
        )
        .unwrap()
    }

    fn peer(uid: u32, gid: u32) -> Peer {
        Peer {
            uid,
            gid,
            pid: Some(7),
        }
    }

    #[test]
    fn uid_match_wins_over_gid_match() {
        let p = policy();
        assert_eq!(agent_of(&p, &peer(1000, 2000)).unwrap().name, "by-uid");
        assert_eq!(agent_of(&p, &peer(1, 2000)).unwrap().name, "by-gid");
        assert!(agent_of(&p, &peer(1, 1)).is_none());
    }

    #[test]
    fn tools_outside_the_agent_list_are_refused() {
        let p = policy();
        assert!(authorize(&p, &peer(1, 2000), "ok").is_ok());
        let e = authorize(&p, &peer(1000, 1), "ok").unwrap_err();
        assert!(matches!(e, PeerRefusal::ToolNotAllowed { .. }), "{e}");
        let e = authorize(&p, &peer(0, 0), "echo").unwrap_err();
        assert!(
            e.to_string().contains("uid 0 gid 0 pid 7 is not an agent"),
            "{e}"
        );
    }
}
