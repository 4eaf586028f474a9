//! Command-line definitions (clap) and dispatch. One file per subcommand; each
//! exposes its `Args` and an `execute` returning the process exit code.
//!
//! This module owns argument parsing, human/JSON output and exit codes. Logic
//! lives in the library modules; nothing here may weaken enforcement.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `eprintln!` that cannot panic: a closed or full stderr loses the message,
/// never the run (std's `eprintln!` panics when the write fails, which would
/// abort a run whose tool has already started).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::to_stderr(::std::format_args!($($arg)*))
    };
}
pub(crate) use say;

/// `println!` that returns the write error instead of panicking on it; a
/// closed stdout (`| head`) ends the command quietly ([`dispatch`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::to_stdout(::std::format_args!($($arg)*))
    };
}
pub(crate) use out;

/// One line to stdout ([`out!`]).
pub(crate) fn to_stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    to_stdout_raw(format!("{args}\n").as_bytes())
}

/// Bytes to stdout; the error says which stream failed.
pub(crate) fn to_stdout_raw(bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    io::stdout()
        .lock()
        .write_all(bytes)
        .context("writing to stdout")
}

/// One line to stderr in one write; errors are dropped (see [`say!`]).
/// Messages quote what agents send (argv, tool names, paths): control
/// characters are escaped as `audit show` does ([`clean`]), line by line, so
/// that none reaches the operator's terminal as an escape sequence.
pub(crate) fn to_stderr(args: std::fmt::Arguments<'_>) {
    use crate::audit::summary::clean;
    let mut text: Vec<String> = format!("{args}").split('\n').map(clean).collect();
    text.push(String::new());
    let _ = io::stderr().lock().write_all(text.join("\n").as_bytes());
}

pub mod audit;
pub mod call;
pub mod doctor;
pub mod policy;
pub mod redact;
pub mod reload;
pub mod run;
pub mod serve;

/// EnforceCore: run AI-agent tools under Landlock, seccomp and cgroups, with
/// redacted stdio and a signed, hash-chained audit trail.
#[derive(Debug, Parser)]
#[command(
    name = "enforcecore",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit codes of `run` and `call`: the tool's own code; 128+N when killed by \
signal N; 124 timeout; 125 EnforceCore failed or its command line is wrong (the tool did \
not run); 126 refused by policy; 127 command not found. Other commands: 0 success, 1 \
failure, 2 usage error.\n\nLogging: ENFORCECORE_LOG=debug (diagnostics only; no \
variable changes what is enforced)."
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one command in the foreground under a policy's sandbox.
    Run(run::RunArgs),
    /// Redact secrets and personal data from stdin to stdout.
    Redact(redact::RedactArgs),
    /// Check, show and explain policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Keys, verification and views of the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run the supervisor daemon.
    Serve(serve::ServeArgs),
    /// Ask the daemon to run a tool (client).
    Call(call::CallArgs),
    /// Ask the daemon to re-read its policies.
    Reload(reload::ReloadArgs),
    /// Report what this kernel and host support, and what it means for policies.
    Doctor(doctor::DoctorArgs),
}

impl Command {
    /// Exit code when the subcommand fails before producing its own.
    fn failure_code(&self) -> u8 {
        match self {
            Command::Run(_) | Command::Call(_) => crate::exit::SUPERVISOR_FAILED,
            _ => 1,
        }
    }
}

/// Run the parsed command line. Errors are printed here, once, with their chain;
/// a closed stdout is not an error (the reader has all it wanted).
pub fn dispatch(cli: Cli) -> ExitCode {
    let failure = cli.command.failure_code();
    // `run` and `call` report the tool's exit, whatever happened to stdout.
    let quiet_on_broken_pipe = !matches!(cli.command, Command::Run(_) | Command::Call(_));
    let result = match cli.command {
        Command::Run(a) => run::execute(a),
        Command::Redact(a) => redact::execute(a),
        Command::Policy(a) => policy::execute(a),
        Command::Audit(a) => audit::execute(a),
        Command::Serve(a) => serve::execute(a),
        Command::Call(a) => call::execute(a),
        Command::Reload(a) => reload::execute(a),
        Command::Doctor(a) => doctor::execute(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if quiet_on_broken_pipe && broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say!("enforcecore: error: {}", describe(&e));
            ExitCode::from(failure)
        }
    }
}

/// An error and its causes, `: `-separated like `{:#}`, without repeating a
/// cause whose text the message before it already quotes (many errors name
/// their source in their own message).
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.is_empty() {
            text = c;
        } else if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Whether an error is (caused by) a write to a pipe nobody reads any more.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the output: {source}")]
    struct Quoting {
        source: io::Error,
    }

    #[test]
    fn describe_names_each_cause_once() {
        let io = || io::Error::from(io::ErrorKind::StorageFull);
        let e = anyhow::Error::new(Quoting { source: io() }).context("redacting stdin");
        assert_eq!(
            describe(&e),
            format!("redacting stdin: cannot write the output: {}", io())
        );
        let e = anyhow::Error::new(io()).context("writing to stdout");
        assert_eq!(describe(&e), format!("writing to stdout: {}", io()));
        assert_eq!(format!("{e:#}"), describe(&e));
    }

    #[test]
    fn a_broken_pipe_is_found_anywhere_in_the_chain() {
        let pipe = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(broken_pipe(&pipe.context("writing to stdout")));
        let full = anyhow::Error::new(io::Error::from(io::ErrorKind::StorageFull));
        assert!(!broken_pipe(&full.context("writing to stdout")));
    }
}
