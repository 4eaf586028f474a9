//! `enforcecore policy …`.

use clap::Subcommand;

/// Subcommands of `enforcecore policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {}

/// Execute an `enforcecore policy` subcommand.
pub fn execute(cmd: PolicyCommand) -> anyhow::Result<u8> {
    match cmd {}
}
