//! `enforcecore audit …`.

use clap::Subcommand;

/// Subcommands of `enforcecore audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {}

/// Execute an `enforcecore audit` subcommand.
pub fn execute(cmd: AuditCommand) -> anyhow::Result<u8> {
    match cmd {}
}
