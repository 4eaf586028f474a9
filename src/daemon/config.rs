//! The daemon's configuration file (`/etc/enforcecore/daemon.yaml`): where the
//! socket, policy and trail are, who may administer the daemon, and the
//! limits that keep hostile clients from taking it down.
//!
//! Strict like policies: unknown keys and wrong types are errors with the
//! file's line and column. Only this file configures the daemon — no
//! environment variable changes what it enforces. This module reads the file
//! and validates it; it never opens the socket or the policy.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the daemon reads its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/enforcecore/daemon.yaml";
/// The control socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/enforcecore/enforcecore.sock";
/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read daemon config {}: {error}; pass --config FILE", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The YAML does not match the schema.
    #[error("{}:{message}\nhint: see docs/daemon.md for the daemon config's keys", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// `line:col: what` (as the parser reports it).
        message: String,
    },
    /// A value is out of range.
    #[error("{}: `{key}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    policy: PathBuf,
    #[serde(default)]
    socket: RawSocket,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    admins: RawAdmins,
    #[serde(default)]
    limits: RawLimits,
    runs_dir: Option<PathBuf>,
    cgroup_pool: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSocket {
    path: Option<PathBuf>,
    mode: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    log: Option<PathBuf>,
    key: Option<PathBuf>,
    append_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmins {
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    gids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<usize>,
    max_runs: Option<u32>,
    max_request_bytes: Option<usize>,
    request_timeout: Option<String>,
    stop_grace: Option<String>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// The policy file (its `extends` chain is resolved in its directory).
    pub policy: PathBuf,
    /// The control socket's path (ignored under socket activation).
    pub socket: PathBuf,
    /// The socket's mode (default 0660).
    pub socket_mode: u32,
    /// The socket's group (default: the daemon's own).
    pub socket_group: Option<String>,
    /// The audit trail.
    pub audit_log: PathBuf,
    /// The Ed25519 key signing the trail's checkpoints.
    pub audit_key: Option<PathBuf>,
    /// Keep the trail's files append-only (`chattr +a`) where possible.
    pub audit_append_only: bool,
    /// Peer uids that may `reload` (root always may).
    pub admin_uids: Vec<u32>,
    /// Peer gids that may `reload`.
    pub admin_gids: Vec<u32>,
    /// Connections served at once; more are answered with an error and closed.
    pub max_connections: usize,
    /// Runs in flight at once, all agents together.
    pub max_runs: u32,
    /// The largest request frame.
    pub max_request_bytes: usize,
    /// Time from accepting a connection to its complete request.
    pub request_timeout: Duration,
    /// On SIGTERM, how long runs may go on before they are killed.
    pub stop_grace: Duration,
    /// Where run directories go (default `/var/lib/enforcecore-runs`).
    pub runs_dir: Option<PathBuf>,
    /// Run cgroups kept ready.
    pub cgroup_pool: usize,
}

impl Config {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer; only a
        // regular file is read.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(read)?;
        let meta = file.metadata().map_err(read)?;
        if !meta.is_file() {
            return Err(ConfigError::Invalid {
                path: path.into(),
                key: "(file)",
                message: "not a regular file; pass the path of the daemon's YAML config".into(),
            });
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid {
                path: path.into(),
                key: "(file)",
                message: format!(
                    "larger than {MAX_CONFIG_BYTES} bytes; this is not a daemon config"
                ),
            });
        }
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        Config::parse(path, &text)
    }

    /// Validate the text of a config file named `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: match e.location() {
                Some(l) => format!("{}:{}: {e}", l.line(), l.column()),
                None => format!(" {e}"),
            },
        })?;
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.into(),
            key,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("/"));
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mode = match raw.socket.mode.as_deref() {
            None => 0o660,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777 && m & 0o007 == 0)
                .ok_or_else(|| {
                    invalid(
                        "socket.mode",
                        format!(
                            "{m:?} is not an octal mode without access for others; write \"0660\""
                        ),
                    )
                })?,
        };
        let duration = |key, v: Option<String>, default| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => humantime::parse_duration(&s)
                    .map_err(|e| invalid(key, format!("{s:?}: {e}; write e.g. \"5s\""))),
            }
        };
        let positive = |key, v: Option<usize>, default: usize| match v {
            Some(0) => Err(invalid(key, "must be at least 1".into())),
            v => Ok(v.unwrap_or(default)),
        };
        let max_request_bytes = positive(
            "limits.max_request_bytes",
            raw.limits.max_request_bytes,
            64 * 1024,
        )?;
        if max_request_bytes > 16 * 1024 * 1024 {
            return Err(invalid(
                "limits.max_request_bytes",
                "at most 16MiB: a request names a tool and its arguments".into(),
            ));
        }
        Ok(Config {
            file: path.into(),
            policy: abs(raw.policy),
            socket: raw
                .socket
                .path
                .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), abs),
            socket_mode: mode,
            socket_group: raw.socket.group,
            audit_log: raw.audit.log.map_or_else(
                || PathBuf::from("/var/lib/enforcecore/audit/daemon.jsonl"),
                abs,
            ),
            audit_key: raw.audit.key.map(abs),
            audit_append_only: raw.audit.append_only.unwrap_or(true),
            admin_uids: raw.admins.uids,
            admin_gids: raw.admins.gids,
            max_connections: positive("limits.max_connections", raw.limits.max_connections, 256)?,
            max_runs: positive(
                "limits.max_runs",
                raw.limits.max_runs.map(|v| v as usize),
                128,
            )? as u32,
            max_request_bytes,
            request_timeout: duration(
                "limits.request_timeout",
                raw.limits.request_timeout,
                Duration::from_secs(5),
            )?,
            stop_grace: duration(
                "limits.stop_grace",
                raw.limits.stop_grace,
                Duration::from_secs(10),
            )?,
            runs_dir: raw.runs_dir.map(abs),
            cgroup_pool: raw.cgroup_pool.unwrap_or(8),
        })
    }

    /// Whether a peer may administer the daemon (`reload`): root, or a uid or
    /// gid listed under `admins`.
    pub fn is_admin(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || self.admin_uids.contains(&uid) || self.admin_gids.contains(&gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/enforcecore/daemon.yaml"), text)
    }

    #[test]
    fn minimal_config_gets_the_documented_defaults() {
        let c = parse("policy: policy.yaml\n").unwrap();
        assert_eq!(c.policy, PathBuf::from("/etc/enforcecore/policy.yaml"));
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert!(c.is_admin(0, 0));
        assert!(!c.is_admin(1000, 1000));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let e = parse("policy: p.yaml\nlimits:\n  max_conections: 3\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("daemon.yaml:3:"), "{msg}");
        assert!(msg.contains("max_conections"), "{msg}");
    }

    #[test]
    fn world_accessible_socket_and_zero_limits_are_refused() {
        let e = parse("policy: p\nsocket: {mode: \"0666\"}\n").unwrap_err();
        assert!(e.to_string().contains("socket.mode"), "{e}");
        let e = parse("policy: p\nlimits: {max_runs: 0}\n").unwrap_err();
        assert!(e.to_string().contains("limits.max_runs"), "{e}");
        let e = parse("policy: p\nlimits: {stop_grace: soon}\n").unwrap_err();
        assert!(e.to_string().contains("limits.stop_grace"), "{e}");
    }

    #[test]
    fn admins_by_uid_and_gid() {
        let c = parse("policy: p\nadmins: {uids: [1000], gids: [27]}\n").unwrap();
        assert!(c.is_admin(1000, 1));
        assert!(c.is_admin(5, 27));
        assert!(!c.is_admin(5, 5));
    }
}
