//! Parsing `enforcecore run`'s command line against a tree that holds only `run`.
//!
//! `Cli::parse` builds clap's whole command tree (every subcommand and all their
//! arguments) before it looks at the first word: about a tenth of the user-space
//! instructions of a sandboxed `/bin/true`. [`parse`] builds the top-level
//! command with the same settings as [`crate::cli::Cli`] and only the `run`
//! subcommand. The tests below hold it to the full tree: same help, same errors,
//! same parsed arguments. It must never accept or print anything the full tree
//! would not.

use std::ffi::OsString;

use clap::{Args, Command, FromArgMatches};

use super::RunArgs;

/// The `about` of `run`: the doc comment of `Command::Run`, without its final
/// period (which clap derive drops).
const ABOUT: &str = "Run one command in the foreground under a policy's sandbox";

/// The top-level command with only `run` in it.
fn command() -> Command {
    Command::new("enforcecore")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .max_term_width(100)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(RunArgs::augment_args(Command::new("run")).about(ABOUT))
}

/// Parse `args` (whose first word after the binary is `run`) into [`RunArgs`];
/// help, version and usage errors come back as the `clap::Error` the full tree
/// would give (`.exit()` prints it and exits as clap does).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<RunArgs, clap::Error> {
    let mut cmd = command();
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    let Some((_, sub)) = matches.remove_subcommand() else {
        return Err(cmd.error(
            clap::error::ErrorKind::MissingSubcommand,
            "a subcommand is required",
        ));
    };
    let mut sub = sub;
    RunArgs::from_arg_matches_mut(&mut sub).map_err(|e| e.format(&mut cmd))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command as Sub};

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("enforcecore")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// What the full tree makes of `words`: the parsed `run` or the rendered error.
    fn full(words: &[&str]) -> Result<String, (String, i32)> {
        match Cli::try_parse_from(argv(words)) {
            Ok(Cli {
                command: Sub::Run(a),
            }) => Ok(format!("{a:?}")),
            Ok(other) => panic!("not a run: {other:?}"),
            Err(e) => Err((e.render().to_string(), e.exit_code())),
        }
    }

    fn alone(words: &[&str]) -> Result<String, (String, i32)> {
        parse(argv(words))
            .map(|a| format!("{a:?}"))
            .map_err(|e| (e.render().to_string(), e.exit_code()))
    }

    #[test]
    fn parses_and_fails_exactly_like_the_full_tree() {
        let cases: &[&[&str]] = &[
            &["run", "--policy", "p.yaml", "--", "/bin/true"],
            &[
                "run",
                "--policy=p.yaml",
                "--tool",
                "t",
                "-v",
                "--json",
                "--",
                "ls",
                "-l",
            ],
            &[
                "run",
                "--policy",
                "p.yaml",
                "--audit-log",
                "a",
                "--audit-key",
                "k",
                "--",
                "x",
            ],
            &["run", "--policy", "p.yaml", "--audit-key", "k", "--", "x"],
            &["run", "--policy", "p.yaml"],
            &["run", "--", "/bin/true"],
            &["run", "--polciy", "p.yaml", "--", "x"],
            &["run", "--policy"],
            &["run", "-x"],
            &["run"],
            &["run", "--help"],
            &["run", "-h"],
            &["run", "--version"],
            &["run", "-V"],
            &["run", "--verbose", "--verbose", "--policy", "p", "--", "x"],
        ];
        for words in cases {
            assert_eq!(alone(words), full(words), "enforcecore {}", words.join(" "));
        }
    }

    #[test]
    fn renders_the_same_help() {
        let mut full = Cli::command();
        full.build();
        let mut alone = command();
        alone.build();
        let sub = |c: &mut Command| {
            c.find_subcommand_mut("run")
                .expect("run")
                .render_long_help()
                .to_string()
        };
        assert_eq!(sub(&mut alone), sub(&mut full));
    }
}
