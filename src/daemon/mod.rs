//! The supervisor daemon (`enforcecore serve`): control socket, peer identity,
//! rate limits, systemd integration, reload.
//!
//! Start-up, in order (everything process-global happens before the async
//! runtime and its threads exist):
//! 1. read the config ([`config`]) and load the policy with its redaction
//!    engine ([`policies`]) — a bad policy stops start-up;
//! 2. take the control socket: the one systemd passed (socket activation), or
//!    bind the configured path (mode and group set before anyone can connect);
//! 3. open the one audit trail and the run-cgroup pool;
//! 4. start the runtime, record `supervisor-started` and `policy-loaded`, and
//!    only then tell systemd READY=1 ([`notify`]);
//! 5. serve ([`server`]: one main loop; [`conn`]: one task per connection);
//! 6. on SIGTERM: stop accepting, let runs finish, kill the rest, record
//!    `supervisor-stopped` and seal the trail (final checkpoint).
//!
//! The wire protocol is [`protocol`] (`docs/protocol.md`); [`client`] is what
//! `enforcecore call` and `enforcecore reload` use. Nothing from the
//! environment weakens what the daemon enforces: variables only steer logging
//! and the systemd plumbing (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `LISTEN_FDS`).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::{self, AuditError, RecordBody, Trail, TrailOptions};

pub mod client;
pub mod config;
pub mod conn;
pub mod limits;
pub mod notify;
pub mod peer;
pub mod policies;
pub mod protocol;
pub mod refusals;
pub mod server;

pub use config::Config;

/// Why the daemon could not start (or stopped badly).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The policy.
    #[error(transparent)]
    Policy(#[from] policies::LoadError),
    /// The control socket.
    #[error("control socket {}: {step} failed: {error}", path.display())]
    Socket {
        /// What was being done.
        step: &'static str,
        /// The socket path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The socket's group does not exist.
    #[error(
        "socket.group `{0}` is not a group on this host; create it (see systemd/sysusers.d) or change the config"
    )]
    NoSuchGroup(String),
    /// The audit trail.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The runtime or the signal handlers.
    #[error("starting the daemon's runtime failed: {0}")]
    Runtime(std::io::Error),
}

fn socket_err(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_path_buf();
    move |error| DaemonError::Socket { step, path, error }
}

/// The control socket and whether we created its file (and must remove it).
struct Listening {
    listener: std::os::unix::net::UnixListener,
    created: Option<PathBuf>,
}

/// Take the socket systemd passed, or bind `config.socket`.
fn listen(config: &Config) -> Result<Listening, DaemonError> {
    let path = &config.socket;
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    if let Some(fd) = crate::sys::socket::listen_fd(pid.as_deref(), fds.as_deref())
        .map_err(socket_err("taking the socket passed by systemd", path))?
    {
        tracing::info!("using the control socket passed by systemd");
        return Ok(Listening {
            listener: fd.into(),
            created: None,
        });
    }
    let group = match &config.socket_group {
        None => None,
        Some(g) => Some(
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| DaemonError::NoSuchGroup(g.clone()))?
                .gid,
        ),
    };
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir).map_err(socket_err("creating its directory", path))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(socket_err("setting its directory's mode", path))?;
    }
    // A socket file left by a daemon that died is replaced; a live daemon's is
    // not, and nothing else at that path (a file, a directory, a symlink) is
    // ever removed: the path is probably wrong, and the file is someone's.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            let kind = crate::regular_file::kind(&meta.file_type());
            return Err(DaemonError::Socket {
                step: "checking what is at the path",
                path: path.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "it is not a socket but {kind}, which is never removed; \
                         move it away or set socket.path to another path"
                    ),
                ),
            });
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::Socket {
                step: "binding",
                path: path.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another daemon is serving it; stop it first",
                ),
            });
        }
        std::fs::remove_file(path).map_err(socket_err("removing a stale socket", path))?;
    }
    // Bound with no access for anyone; opened up only once mode and group are set.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(socket_err("binding", path))?;
    if let Some(gid) = group {
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| socket_err("setting its group", path)(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.socket_mode))
        .map_err(socket_err("setting its mode", path))?;
    Ok(Listening {
        listener,
        created: Some(path.clone()),
    })
}

/// Run the daemon with the configuration in `config_file` until SIGTERM.
/// Must be called before any other thread exists.
pub fn serve(config_file: &Path) -> Result<(), DaemonError> {
    let config = Config::load(config_file)?;
    let active = policies::Active::load(&config.policy)?;
    let listening = listen(&config)?;
    let started = start(config, config_file, active, &listening);
    if let Some(p) = &listening.created {
        let _ = std::fs::remove_file(p);
    }
    started
}

fn start(
    config: Config,
    config_file: &Path,
    active: policies::Active,
    listening: &Listening,
) -> Result<(), DaemonError> {
    let mut opts = TrailOptions::new(&config.audit_log);
    opts.append_only = config.audit_append_only;
    if let Some(k) = &config.audit_key {
        opts.signing_key = Some(audit::keys::load_signing_key(k)?);
    }
    if let Some(dir) = config.audit_log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::Io {
            step: "create the directory of",
            path: config.audit_log.clone(),
            error: Arc::new(e),
        })?;
    }
    let trail = Arc::new(Trail::open(opts)?);
    let cgroups = if nix::unistd::geteuid().is_root() {
        match crate::supervise::cgroup::hierarchy() {
            Ok(h) => match crate::sandbox::cgroup::CgroupPool::new(h.clone(), config.cgroup_pool) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    tracing::warn!("no run-cgroup pool, creating per run: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("cgroup layout: {e}; runs will fail closed");
                None
            }
        }
    } else {
        None
    };
    let notifier = notify::Notifier::from_env().map_err(DaemonError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("enforcecore-serve")
        .build()
        .map_err(DaemonError::Runtime)?;
    let std_listener = listening
        .listener
        .try_clone()
        .map_err(socket_err("duplicating", &config.socket))?;
    std_listener
        .set_nonblocking(true)
        .map_err(socket_err("making non-blocking", &config.socket))?;
    let address = {
        use std::os::fd::AsRawFd;
        nix::sys::socket::getsockname(listening.listener.as_raw_fd())
            .map_err(|e| socket_err("reading its address", &config.socket)(e.into()))?
    };
    let policy_record = active.record();
    let policy_name = active.policy.name.clone();
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(16);
    let shared = Arc::new(conn::Shared {
        limiter: limits::Limiter::new(config.max_runs),
        refusals: refusals::RefusalCap::default(),
        policies: policies::Policies::new(config.policy.clone(), active),
        config,
        trail: trail.clone(),
        cgroups,
        kill: kill_rx,
        reloads: reload_tx,
        address,
    });
    let result = runtime.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(std_listener).map_err(DaemonError::Runtime)?;
        trail
            .append_async(RecordBody::SupervisorStarted {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
                mode: "serve".into(),
                config: Some(config_file.to_path_buf()),
            })
            .await?;
        trail.append_async(policy_record).await?;
        notifier.notify(&format!("READY=1\nSTATUS=serving policy {policy_name}"));
        let l = server::Loop {
            listener,
            notifier,
            watchdog: notify::watchdog_interval(),
            reloads: reload_rx,
            kill: kill_tx,
        };
        let reason = server::run(l, shared.clone())
            .await
            .map_err(DaemonError::Runtime)?;
        for (uid, n) in shared.refusals.take_counted() {
            trail.append_async(refusals::counted_record(uid, n)).await?;
        }
        trail
            .append_async(RecordBody::SupervisorStopped { reason })
            .await?;
        trail.close_async().await?;
        Ok(())
    });
    drop(shared);
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}
