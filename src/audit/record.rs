//! What one audit record says: its kinds and fields (the schema), and the
//! hash that links it into the chain.
//!
//! A record travels as one line of JSON. The *body* is the kind-specific part
//! ([`RecordBody`], tagged by `kind`); the writer puts a fixed header in front
//! (`seq`, `ts`, `prev`) and the record's own `hash` at the end. The exact line
//! layout and the hashing rule live in [`super::line`]; this module owns the
//! typed view and must never decide what a record's bytes are.
//!
//! The schema is open: readers ignore fields they do not know and show kinds
//! they do not know as raw JSON, so that the daemon can add fields (as
//! `Option`s that are skipped when absent) without breaking old trails.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::report::{Caller, Denial, EnforcementReport, ExitReport, RedactionReceipt};

/// A record's SHA-256 as 64 lowercase hex digits: the form it has in the
/// trail, so that links are compared as the bytes the file holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHash([u8; 64]);

impl RecordHash {
    /// The `prev` of the first record of a trail: 64 zeros.
    pub const GENESIS: RecordHash = RecordHash([b'0'; 64]);

    /// From a SHA-256 digest. Sixteen bytes at a time with vector
    /// operations: verify converts every record's computed hash.
    pub fn from_digest(d: &[u8; 32]) -> RecordHash {
        use wide::u8x16;
        let hex = |n: u8x16| {
            let digit = n.min(u8x16::splat(9)).simd_eq(n);
            n + u8x16::splat(b'a' - 10) - (digit & u8x16::splat(b'a' - 10 - b'0'))
        };
        let mut out = [0u8; 64];
        for (half, o) in d.chunks_exact(16).zip(out.chunks_exact_mut(32)) {
            let v = u8x16::new(<[u8; 16]>::try_from(half).unwrap_or([0; 16]));
            let (hi, lo) = (
                hex(v >> 4 & u8x16::splat(0x0f)),
                hex(v & u8x16::splat(0x0f)),
            );
            o[..16].copy_from_slice(&u8x16::unpack_low(hi, lo).to_array());
            o[16..].copy_from_slice(&u8x16::unpack_high(hi, lo).to_array());
        }
        RecordHash(out)
    }

    /// From 64 lowercase hex digits, as found in a record.
    #[inline]
    pub fn from_hex(b: &[u8]) -> Option<RecordHash> {
        let arr: [u8; 64] = b.try_into().ok()?;
        // Branch-free over the 64 bytes (this runs twice per verified record).
        let ok = arr.iter().fold(true, |ok, &c| {
            ok & (c.wrapping_sub(b'0') < 10 || c.wrapping_sub(b'a') < 6)
        });
        ok.then_some(RecordHash(arr))
    }

    /// The hex digits.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The hex digits as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII hex digits.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// A short prefix for humans (`5f3a9c0e1d2b`).
    pub fn short(&self) -> &str {
        &self.as_str()[..12]
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordHash({})", self.as_str())
    }
}

impl Serialize for RecordHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why a checkpoint was written. All but `periodic` and `open` *close* the
/// trail: a trail verified with a key must end in a closing checkpoint. (A
/// trail cut back to its `open` checkpoint must not pass as sealed.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointReason {
    /// The first record of a trail created by a signing writer: the trail is
    /// under this key from its start.
    Open,
    /// Every N records or T seconds while records keep coming.
    Periodic,
    /// Asked for by the caller (`Trail::checkpoint`).
    Explicit,
    /// The last record of a run (`Trail::append_sealed`).
    RunEnd,
    /// The writer was closed (clean shutdown, end of `enforcecore run`).
    Close,
    /// The file is being rotated; it ends here.
    Rotation,
}

impl CheckpointReason {
    /// The spelling in the trail.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointReason::Open => "open",
            CheckpointReason::Periodic => "periodic",
            CheckpointReason::Explicit => "explicit",
            CheckpointReason::RunEnd => "run-end",
            CheckpointReason::Close => "close",
            CheckpointReason::Rotation => "rotation",
        }
    }

    /// From the spelling in the trail.
    pub fn parse(s: &str) -> Option<CheckpointReason> {
        Some(match s {
            "open" => CheckpointReason::Open,
            "periodic" => CheckpointReason::Periodic,
            "explicit" => CheckpointReason::Explicit,
            "run-end" => CheckpointReason::RunEnd,
            "close" => CheckpointReason::Close,
            "rotation" => CheckpointReason::Rotation,
            _ => return None,
        })
    }

    /// Whether a trail may end with this checkpoint and count as sealed.
    pub fn closes(self) -> bool {
        !matches!(self, CheckpointReason::Periodic | CheckpointReason::Open)
    }
}

/// The kind-specific part of a record. Serialized with `kind` first.
///
/// `checkpoint`, `recovered`, `rotated` and `continued` are written by the
/// trail itself; [`super::Trail::append`] refuses them from callers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RecordBody {
    /// A supervisor (`enforcecore run` or `serve`) started using the trail.
    SupervisorStarted {
        /// Its pid.
        pid: u32,
        /// EnforceCore version.
        version: String,
        /// `run` or `serve`.
        mode: String,
        /// Daemon configuration file, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<PathBuf>,
    },
    /// The supervisor stopped.
    SupervisorStopped {
        /// `shutdown`, `sigterm`, `error: …`.
        reason: String,
    },
    /// A policy was loaded (or reloaded) and is now in effect.
    PolicyLoaded {
        /// Policy name.
        name: String,
        /// SHA-256 (hex) of the effective policy.
        sha256: String,
        /// Files it was read from, base first (`extends`).
        sources: Vec<PathBuf>,
    },
    /// A policy reload was refused; the policy named by `kept` stays in effect.
    PolicyRejected {
        /// The policy file that was read.
        path: PathBuf,
        /// SHA-256 (hex) of that file's bytes, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_sha256: Option<String>,
        /// Why it was refused (the loader's error, with file:line:col).
        error: String,
        /// SHA-256 (hex) of the effective policy still in effect.
        kept: String,
    },
    /// A run is about to exec its tool. Durable before the exec.
    RunStarted {
        /// Run id.
        run: String,
        /// Tool name from the policy.
        tool: String,
        /// Name of the policy in effect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        /// The tool's pid, when already known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
        /// Command line, after redaction.
        argv: Vec<String>,
        /// Who asked.
        caller: Caller,
        /// What the sandbox enforced (boxed: it is most of the record).
        enforcement: Box<EnforcementReport>,
    },
    /// Something a run tried was refused.
    Denial {
        /// Run id.
        run: String,
        /// Tool name.
        tool: String,
        /// What, where and why.
        denial: Denial,
    },
    /// The redactor replaced values in one of a run's streams.
    Redaction {
        /// Run id.
        run: String,
        /// Tool name.
        tool: String,
        /// Counts and keyed fingerprints; never the values.
        receipt: RedactionReceipt,
    },
    /// A run ended.
    RunExited {
        /// Run id.
        run: String,
        /// Tool name.
        tool: String,
        /// How it ended.
        exit: ExitReport,
    },
    /// A run that never started its tool: the request was admitted, but the
    /// command does not exist or the sandbox could not be prepared (no
    /// `run-started` precedes it).
    RunFailed {
        /// Run id.
        run: String,
        /// Tool name.
        tool: String,
        /// Name of the policy in effect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
        /// Command line, after redaction.
        argv: Vec<String>,
        /// Who asked.
        caller: Caller,
        /// The exit code the caller got (125 or 127).
        code: u8,
        /// Why.
        error: String,
    },
    /// Kernel denial records were lost before they could be attributed
    /// (netlink overflow, listener failure).
    DenialsLost {
        /// `audit-netlink`, `seccomp-notify`, ...
        source: String,
        /// What happened (`ENOBUFS: 12 messages dropped`).
        detail: String,
        /// Runs that were live when it happened.
        runs: Vec<String>,
    },
    /// Signed statement that the chain up to the previous record is authentic.
    Checkpoint {
        /// Why it was written.
        reason: CheckpointReason,
        /// Which key signed (see `docs/audit.md`).
        key_id: String,
        /// Ed25519 signature, hex.
        sig: String,
    },
    /// A torn tail was found when the trail was opened and moved aside.
    Recovered {
        /// What was found.
        reason: String,
        /// Bytes removed from the end of the trail.
        torn_bytes: u64,
        /// SHA-256 (hex) of those bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        torn_sha256: Option<String>,
        /// File (in the trail's directory) that keeps them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept_at: Option<String>,
    },
    /// The last record of a file that was rotated; the chain continues in
    /// the trail's active file.
    Rotated {
        /// Name this file is archived under (in the trail's directory).
        archive: String,
    },
    /// The first record of a file that continues a rotated one.
    Continued {
        /// The archived file this one continues.
        from: String,
    },
}

impl RecordBody {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::SupervisorStarted { .. } => "supervisor-started",
            RecordBody::SupervisorStopped { .. } => "supervisor-stopped",
            RecordBody::PolicyLoaded { .. } => "policy-loaded",
            RecordBody::PolicyRejected { .. } => "policy-rejected",
            RecordBody::RunStarted { .. } => "run-started",
            RecordBody::Denial { .. } => "denial",
            RecordBody::Redaction { .. } => "redaction",
            RecordBody::RunExited { .. } => "run-exited",
            RecordBody::RunFailed { .. } => "run-failed",
            RecordBody::DenialsLost { .. } => "denials-lost",
            RecordBody::Checkpoint { .. } => "checkpoint",
            RecordBody::Recovered { .. } => "recovered",
            RecordBody::Rotated { .. } => "rotated",
            RecordBody::Continued { .. } => "continued",
        }
    }

    /// The run the record belongs to, if any.
    pub fn run(&self) -> Option<&str> {
        match self {
            RecordBody::RunStarted { run, .. }
            | RecordBody::Denial { run, .. }
            | RecordBody::Redaction { run, .. }
            | RecordBody::RunExited { run, .. }
            | RecordBody::RunFailed { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The tool the record is about, if any.
    pub fn tool(&self) -> Option<&str> {
        match self {
            RecordBody::RunStarted { tool, .. }
            | RecordBody::Denial { tool, .. }
            | RecordBody::Redaction { tool, .. }
            | RecordBody::RunExited { tool, .. }
            | RecordBody::RunFailed { tool, .. } => Some(tool),
            _ => None,
        }
    }

    /// Kinds only the trail itself writes.
    pub fn is_reserved(&self) -> bool {
        matches!(
            self,
            RecordBody::Checkpoint { .. }
                | RecordBody::Recovered { .. }
                | RecordBody::Rotated { .. }
                | RecordBody::Continued { .. }
        )
    }

    /// The body as JSON object members, `"kind":"…",…` (no braces): the part
    /// of a record line that follows the header.
    pub fn to_members(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut v = serde_json::to_vec(self)?;
        // `{…}` → `…`; serde writes the tag first for internally tagged enums.
        v.pop();
        v.remove(0);
        Ok(v)
    }
}

/// Every record kind, as spelled in the trail.
pub const KINDS: [&str; 14] = [
    "supervisor-started",
    "supervisor-stopped",
    "policy-loaded",
    "policy-rejected",
    "run-started",
    "denial",
    "redaction",
    "run-exited",
    "run-failed",
    "denials-lost",
    "checkpoint",
    "recovered",
    "rotated",
    "continued",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DenialLayer, ExitCause};

    fn samples() -> Vec<RecordBody> {
        vec![
            RecordBody::SupervisorStarted {
                pid: 1,
                version: "0.1.0".into(),
                mode: "run".into(),
                config: None,
            },
            RecordBody::Denial {
                run: "r1".into(),
                tool: "curl".into(),
                denial: Denial {
                    layer: DenialLayer::LandlockFs,
                    pid: Some(7),
                    object: "/etc/shadow".into(),
                    access: Some("fs.read_file".into()),
                    detail: "blockers=fs.read_file".into(),
                    hint: "sandbox.filesystem.read".into(),
                },
            },
            RecordBody::RunExited {
                run: "r1".into(),
                tool: "curl".into(),
                exit: ExitReport {
                    code: Some(0),
                    signal: None,
                    cause: ExitCause::Exited,
                    duration_ms: 5,
                    cpu_ms: None,
                    peak_memory_bytes: None,
                    output_bytes: 0,
                    denials: 1,
                },
            },
            RecordBody::SupervisorStopped {
                reason: "shutdown".into(),
            },
        ]
    }

    #[test]
    fn members_start_with_kind_and_round_trip() {
        for body in samples() {
            let m = body.to_members().unwrap();
            let expected = format!("\"kind\":\"{}\"", body.kind());
            assert!(
                m.starts_with(expected.as_bytes()),
                "{}",
                String::from_utf8_lossy(&m)
            );
            let mut obj = b"{".to_vec();
            obj.extend_from_slice(&m);
            obj.push(b'}');
            let back: RecordBody = serde_json::from_slice(&obj).unwrap();
            assert_eq!(back, body);
            assert!(KINDS.contains(&body.kind()));
        }
    }

    #[test]
    fn hashes_are_lowercase_hex() {
        assert!(RecordHash::from_hex(&[b'a'; 64]).is_some());
        assert!(RecordHash::from_hex(&[b'A'; 64]).is_none());
        assert!(RecordHash::from_hex(&[b'a'; 63]).is_none());
        assert_eq!(RecordHash::GENESIS.as_str(), "0".repeat(64));
    }

    #[test]
    fn digests_become_lowercase_hex() {
        for seed in 0u8..=255 {
            let d: [u8; 32] = std::array::from_fn(|i| {
                seed.wrapping_mul(31)
                    .wrapping_add((i as u8).wrapping_mul(17))
            });
            assert_eq!(RecordHash::from_digest(&d).as_str(), hex::encode(d));
        }
        let d = [0xffu8; 32];
        assert_eq!(RecordHash::from_digest(&d).as_str(), "f".repeat(64));
    }
}
