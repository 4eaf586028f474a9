//! `enforcecore reload`: ask the daemon to re-read its policy.
//!
//! Exit status: 0 the policy was re-read and is in effect; 1 the new policy
//! was refused and the old one stays in effect (the reason is printed and
//! recorded in the trail); 125 the daemon could not be reached; 126 this user
//! may not reload (only root and the config's `admins`).

use std::path::PathBuf;

use clap::Args;

use crate::daemon::client::Client;
use crate::daemon::config::DEFAULT_SOCKET;
use crate::daemon::protocol::{Request, Response, VERSION};

/// Arguments of `enforcecore reload`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 reloaded; 1 the new policy was refused (the old one stays \
in effect); 125 the daemon could not be reached; 126 not allowed (root and the config's admins \
only). `systemctl reload enforcecore` sends SIGHUP, which does the same."
)]
pub struct ReloadArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// Execute `enforcecore reload`.
pub fn execute(args: ReloadArgs) -> anyhow::Result<u8> {
    let answer = Client::connect(&args.socket)
        .and_then(|mut c| c.request(&Request::Reload { v: VERSION }, &[], |_| {}));
    match answer {
        Ok(Response::Reloaded {
            policy,
            sha256,
            changed,
            ..
        }) => {
            let what = if changed {
                "now in effect"
            } else {
                "unchanged"
            };
            super::out!("policy {policy} sha256:{sha256} {what}")?;
            Ok(0)
        }
        other => Ok(super::call::client_error(other)),
    }
}
