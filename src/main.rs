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
    let first = std::env::args_os().nth(1);
    if first.as_deref().is_some_and(|w| w == "run") {
        return match enforcecore::cli::run::parse::parse(std::env::args_os()) {
            Ok(args) => Cli {
                command: Command::Run(args),
            },
            Err(e) => usage(e, true),
        };
    }
    let tool_runner = first.as_deref().is_some_and(|w| w == "call");
    Cli::try_parse().unwrap_or_else(|e| usage(e, tool_runner))
}

/// Help and version print and exit 0; a usage error exits 2 — except for `run`
/// and `call`, whose exit code is the tool's: there it is 125 (EnforceCore
/// failed, the tool did not run), so that it is never taken for the tool's 2.
fn usage(e: clap::Error, tool_runner: bool) -> ! {
    if tool_runner && e.use_stderr() {
        let _ = e.print();
        std::process::exit(i32::from(enforcecore::exit::SUPERVISOR_FAILED));
    }
    e.exit()
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
        // Colour only for a terminal: not in journald, files or pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A failed write to stderr is dropped; by default tracing reports it
        // with `eprintln!`, which panics when stderr is gone — mid-run.
        .log_internal_errors(false)
        .init();
}
