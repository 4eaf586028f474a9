//! The `enforcecore` binary: parse, set up logging, dispatch. Nothing else.
//!
//! Dispatch happens before any thread is started: subcommands that need an async
//! runtime build it themselves, after any fork-sensitive set-up.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = enforcecore::cli::Cli::parse();
    init_logging();
    enforcecore::cli::dispatch(cli)
}

/// Diagnostics on stderr, filtered by `ENFORCECORE_LOG` (default: warnings).
/// Logging never changes what is enforced.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENFORCECORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
