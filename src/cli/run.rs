//! `enforcecore run`.

use clap::Args;

/// Arguments of `enforcecore run`.
#[derive(Debug, Args)]
pub struct RunArgs {}

/// Execute `enforcecore run`.
pub fn execute(_args: RunArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore run` is not available in this build yet")
}
