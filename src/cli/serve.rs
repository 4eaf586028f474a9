//! `enforcecore serve`: the supervisor daemon (see `docs/daemon.md`).

use std::path::PathBuf;

use clap::Args;

use crate::daemon;

/// Arguments of `enforcecore serve`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs in the foreground until SIGTERM or SIGINT; SIGHUP re-reads the \
policy. Under systemd (Type=notify) it reports READY=1 once the policy is loaded and the socket \
bound, and accepts a socket passed by socket activation. Everything it enforces comes from the \
config file and the policy; the environment only steers logging (ENFORCECORE_LOG) and systemd's \
protocol (NOTIFY_SOCKET, WATCHDOG_USEC, LISTEN_FDS).\n\nExit status: 0 after a clean stop, 1 when \
it could not start (bad config or policy, socket in use, trail unwritable)."
)]
pub struct ServeArgs {
    /// The daemon's configuration file.
    #[arg(long, value_name = "FILE", default_value = daemon::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
}

/// Execute `enforcecore serve`.
pub fn execute(args: ServeArgs) -> anyhow::Result<u8> {
    daemon::serve(&args.config)?;
    Ok(0)
}
