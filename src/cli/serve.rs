//! `enforcecore serve`.

use clap::Args;

/// Arguments of `enforcecore serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Execute `enforcecore serve`.
pub fn execute(_args: ServeArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore serve` is not available in this build yet")
}
