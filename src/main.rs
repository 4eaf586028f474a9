//! The `enforcecore` binary: parse, set up logging, dispatch. Nothing else.
//!
//! Dispatch happens before any thread is started: subcommands that need an async
//! runtime build it themselves, after any fork-sensitive set-up.

use std::process::ExitCode;

use clap::Parser;
use enforcecore::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = parse();
    init_logging();
    enforcecore::cli::dispatch(cli)
}

/// `run` is parsed against a tree holding only `run` (the start-up of every
/// sandboxed command pays for building clap's whole tree otherwise); anything
/// else against the full tree. Both print the same help and errors.
fn parse() -> Cli {
    if std::env::args_os().nth(1).is_some_and(|w| w == "run") {
        return match enforcecore::cli::run::parse::parse(std::env::args_os()) {
            Ok(args) => Cli {
                command: Command::Run(args),
            },
            Err(e) => e.exit(),
        };
    }
    Cli::parse()
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
        // A failed write to stderr is dropped; by default tracing reports it
        // with `eprintln!`, which panics when stderr is gone — mid-run.
        .log_internal_errors(false)
        .init();
}
