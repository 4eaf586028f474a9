//! The policy file exactly as written: serde structs, one per YAML mapping.
//!
//! Every struct denies unknown keys. Values that later steps must point at are
//! [`Spanned`]. Nothing here is validated beyond its YAML type; enum-like
//! strings (`mode: deny`) stay strings so that the validator can say precisely
//! what the valid spellings are. This module must never apply defaults or merge.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::de::Spanned;

/// A top-level policy document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Schema version; must be 1.
    pub version: Spanned<u32>,
    /// Policy name.
    pub name: Spanned<String>,
    /// Base policy, relative to this file.
    #[serde(default)]
    pub extends: Option<Spanned<String>>,
    /// Kernel requirements.
    #[serde(default)]
    pub requires: Option<RawRequires>,
    /// Default sandbox.
    #[serde(default)]
    pub sandbox: Option<Spanned<RawSandbox>>,
    /// Stdio redaction.
    #[serde(default)]
    pub redaction: Option<Spanned<RawRedaction>>,
    /// Named tools.
    #[serde(default)]
    pub tools: Option<Entries<Spanned<RawTool>>>,
    /// Daemon callers.
    #[serde(default)]
    pub agents: Option<Vec<Spanned<RawAgent>>>,
    /// Denial collection.
    #[serde(default)]
    pub denials: Option<RawDenials>,
}

/// `requires:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequires {
    /// Minimum Landlock ABI.
    #[serde(default)]
    pub landlock_abi: Option<Spanned<u64>>,
}

/// `sandbox:` (also a tool's `sandbox:` override).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// User name or id.
    #[serde(default)]
    pub user: Option<Spanned<Scalar>>,
    /// Group name or id.
    #[serde(default)]
    pub group: Option<Spanned<Scalar>>,
    /// Landlock filesystem rules.
    #[serde(default)]
    pub filesystem: Option<RawFilesystem>,
    /// Network rules.
    #[serde(default)]
    pub network: Option<RawNetwork>,
    /// Landlock scopes.
    #[serde(default)]
    pub scopes: Option<RawScopes>,
    /// seccomp.
    #[serde(default)]
    pub syscalls: Option<Spanned<RawSyscalls>>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    /// Environment.
    #[serde(default)]
    pub env: Option<RawEnv>,
    /// Run directory.
    #[serde(default)]
    pub run_dir: Option<RawRunDir>,
}

/// `filesystem:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    /// Read-only trees.
    #[serde(default)]
    pub read: Option<Vec<Spanned<String>>>,
    /// Writable trees.
    #[serde(default)]
    pub write: Option<Vec<Spanned<String>>>,
    /// Executable trees.
    #[serde(default)]
    pub exec: Option<Vec<Spanned<String>>>,
    /// Rules with explicit rights.
    #[serde(default)]
    pub rules: Option<Vec<Spanned<RawRule>>>,
    /// Paths never to be granted.
    #[serde(default)]
    pub deny: Option<Vec<Spanned<String>>>,
}

/// One entry of `filesystem.rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The path.
    pub path: Spanned<String>,
    /// Rights (Landlock names or the `read`/`write`/`exec` shorthands).
    pub access: Vec<Spanned<String>>,
    /// Skip when missing at run time.
    #[serde(default)]
    pub optional: Option<Spanned<bool>>,
}

/// `network:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// TCP connect ports.
    #[serde(default)]
    pub tcp_connect: Option<Vec<Spanned<i64>>>,
    /// TCP bind ports.
    #[serde(default)]
    pub tcp_bind: Option<Vec<Spanned<i64>>>,
    /// Socket families.
    #[serde(default)]
    pub families: Option<Vec<Spanned<String>>>,
    /// Datagram sockets.
    #[serde(default)]
    pub udp: Option<Spanned<bool>>,
    /// Raw sockets.
    #[serde(default)]
    pub raw: Option<Spanned<bool>>,
}

/// `scopes:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScopes {
    /// Signal scoping.
    #[serde(default)]
    pub signals: Option<Spanned<bool>>,
    /// Abstract unix socket scoping.
    #[serde(default)]
    pub abstract_unix: Option<Spanned<bool>>,
}

/// `syscalls:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyscalls {
    /// `deny` or `allow`.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// Group names.
    #[serde(default)]
    pub groups: Option<Vec<Spanned<String>>>,
    /// Syscall names.
    #[serde(default)]
    pub names: Option<Vec<Spanned<String>>>,
    /// `errno` or `kill`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    /// Errno name or number for `action: errno`.
    #[serde(default)]
    pub errno: Option<Spanned<Scalar>>,
}

/// `limits:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Memory (`256MiB`).
    #[serde(default)]
    pub memory: Option<Spanned<Scalar>>,
    /// Process count.
    #[serde(default)]
    pub pids: Option<Spanned<i64>>,
    /// CPUs (`1`, `0.5`, `"500m"`).
    #[serde(default)]
    pub cpu: Option<Spanned<Scalar>>,
    /// Wall clock (`60s`).
    #[serde(default)]
    pub wall_time: Option<Spanned<Scalar>>,
    /// Open files.
    #[serde(default)]
    pub open_files: Option<Spanned<i64>>,
    /// Largest file (`64MiB`).
    #[serde(default)]
    pub file_size: Option<Spanned<Scalar>>,
    /// Output cap (`16MiB`).
    #[serde(default)]
    pub output: Option<Spanned<Scalar>>,
}

/// `env:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    /// Names passed through.
    #[serde(default)]
    pub allow: Option<Vec<Spanned<String>>>,
    /// Fixed values.
    #[serde(default)]
    pub set: Option<Entries<Spanned<String>>>,
}

/// `run_dir:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunDir {
    /// Keep after the run.
    #[serde(default)]
    pub keep: Option<Spanned<bool>>,
}

/// `redaction:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedaction {
    /// Streams.
    #[serde(default)]
    pub streams: Option<Spanned<Vec<Spanned<String>>>>,
    /// `all` or a list of detector names.
    #[serde(default)]
    pub detectors: Option<Spanned<RawDetectors>>,
    /// Custom detectors.
    #[serde(default)]
    pub custom: Option<Vec<Spanned<RawCustom>>>,
    /// Strategy.
    #[serde(default)]
    pub strategy: Option<Spanned<String>>,
    /// Key file for `hash` and receipt fingerprints.
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
}

/// `detectors:` — the word `all`, or a list.
#[derive(Debug)]
pub enum RawDetectors {
    /// Every built-in detector.
    All,
    /// The listed ones.
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RawDetectors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDetectors;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all` or a list of detector names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawDetectors, E> {
                if s == "all" {
                    Ok(RawDetectors::All)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(s), &self))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDetectors, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(RawDetectors::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One custom detector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustom {
    /// Name (`[REDACTED:NAME]`).
    pub name: Spanned<String>,
    /// Regex.
    pub pattern: Spanned<String>,
    /// `luhn` or `mod97`.
    #[serde(default)]
    pub validator: Option<Spanned<String>>,
}

/// One tool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    /// Absolute command path.
    pub command: Spanned<String>,
    /// Human description.
    #[serde(default)]
    pub description: Option<String>,
    /// Argument rules.
    #[serde(default)]
    pub args: Option<RawArgs>,
    /// Sandbox overrides.
    #[serde(default)]
    pub sandbox: Option<Spanned<RawSandbox>>,
    /// Per-tool rate limit.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RawRateLimit>>,
    /// Concurrency cap.
    #[serde(default)]
    pub max_concurrent: Option<Spanned<i64>>,
}

/// `args:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgs {
    /// Fixed argv prefixes.
    #[serde(default)]
    pub prefixes: Option<Vec<Spanned<Vec<String>>>>,
    /// Regexes every argument must match one of.
    #[serde(default)]
    pub allow: Option<Vec<Spanned<String>>>,
    /// Regexes no argument may match.
    #[serde(default)]
    pub deny: Option<Vec<Spanned<String>>>,
    /// Maximum argument count.
    #[serde(default)]
    pub max_args: Option<Spanned<i64>>,
}

/// `rate_limit:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Calls per period.
    pub count: Spanned<i64>,
    /// The period (`1m`).
    pub per: Spanned<Scalar>,
    /// Bucket size.
    #[serde(default)]
    pub burst: Option<Spanned<i64>>,
}

/// One agent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Name.
    pub name: Spanned<String>,
    /// Peer uids.
    #[serde(default)]
    pub uids: Option<Vec<Spanned<i64>>>,
    /// Peer gids.
    #[serde(default)]
    pub gids: Option<Vec<Spanned<i64>>>,
    /// Tools the agent may call.
    pub tools: Vec<Spanned<String>>,
    /// Rate limit.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RawRateLimit>>,
    /// Concurrency cap.
    #[serde(default)]
    pub max_concurrent: Option<Spanned<i64>>,
}

/// `denials:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDenials {
    /// `enable`, `if_enabled` or `off`.
    #[serde(default)]
    pub kernel_audit: Option<Spanned<String>>,
}

/// Any scalar, kept as written (for values that are a number or a string with a
/// unit: `256MiB`, `1`, `"500m"`, `EPERM`, `65534`).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// Written as a string (or an unquoted word).
    Str(String),
    /// Written as an integer.
    Int(i64),
    /// Written as a decimal number.
    Float(f64),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => f.write_str(s),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom(format_args!("integer {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping with free-form keys, in document order, keys positioned.
#[derive(Debug, Default)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = map.next_key()? {
                    v.push((k, map.next_value()?));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}
