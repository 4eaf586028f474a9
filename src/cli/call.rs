//! `enforcecore call`: ask the daemon to run a policy tool, with this
//! process's stdin, stdout and stderr as the tool's (through the redactor).
//!
//! Exit codes are those of `run` (DESIGN §7): the tool's own code; 128+N when
//! it was killed by signal N; 124 timeout; 125 EnforceCore failed (including:
//! the daemon cannot be reached); 126 refused (identity, tool, arguments, rate
//! limit); 127 command not found. Interrupting `call` (or closing its socket)
//! cancels the run: the daemon kills the tool's tree.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::daemon::client::{self, Client};
use crate::daemon::config::DEFAULT_SOCKET;
use crate::daemon::protocol::{Request, Response, VERSION};
use crate::exit;

/// Arguments of `enforcecore call`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: the tool's own; 128+N killed by signal N; 124 timeout; 125 \
EnforceCore failed (or the daemon is unreachable); 126 refused by policy or a rate limit; 127 \
command not found."
)]
pub struct CallArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print the run id on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// The policy tool to run.
    #[arg(value_name = "TOOL")]
    pub tool: String,
    /// Arguments for the tool (after `--`).
    #[arg(last = true, value_name = "ARG")]
    pub args: Vec<OsString>,
}

/// Execute `enforcecore call`.
pub fn execute(args: CallArgs) -> anyhow::Result<u8> {
    let mut argv = Vec::with_capacity(args.args.len());
    for (i, a) in args.args.iter().enumerate() {
        match a.to_str() {
            Some(s) => argv.push(s.to_string()),
            None => {
                super::say!(
                    "enforcecore: argument {} is not valid UTF-8; tool arguments are text",
                    i + 1
                );
                return Ok(exit::REFUSED);
            }
        }
    }
    // Only UTF-8 variables travel; the tool's policy lets through its allow-list.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let req = Request::Call {
        v: VERSION,
        tool: args.tool.clone(),
        args: argv,
        env,
    };
    let stdio = client::own_stdio().context("duplicating stdin, stdout and stderr")?;
    let fds: Vec<_> = stdio.iter().map(|f| f.as_fd()).collect();
    let mut c = match Client::connect(&args.socket) {
        Ok(c) => c,
        Err(e) => {
            super::say!("enforcecore: {e}");
            return Ok(exit::SUPERVISOR_FAILED);
        }
    };
    let verbose = args.verbose;
    let answer = c.request(&req, &fds, |r| {
        if let (true, Response::Started { run, .. }) = (verbose, r) {
            super::say!("enforcecore: run {run} started");
        }
    });
    drop(stdio);
    match answer {
        Ok(Response::Exited { code, message, .. }) => {
            if let Some(m) = message {
                super::say!("enforcecore: {m}");
            }
            Ok(code)
        }
        other => Ok(client_error(other)),
    }
}

/// The exit code and message for an answer that is not the one asked for: the
/// daemon's refusal or error (its code), anything else, or no answer (125).
pub(super) fn client_error<E: std::fmt::Display>(answer: Result<Response, E>) -> u8 {
    match answer {
        Ok(Response::Error { code, message, .. }) => {
            super::say!("enforcecore: {message}");
            code
        }
        Ok(other) => {
            super::say!("enforcecore: unexpected answer from the daemon: {other:?}");
            exit::SUPERVISOR_FAILED
        }
        Err(e) => {
            super::say!("enforcecore: {e}");
            exit::SUPERVISOR_FAILED
        }
    }
}
