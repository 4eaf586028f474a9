//! `enforcecore call`.

use clap::Args;

/// Arguments of `enforcecore call`.
#[derive(Debug, Args)]
pub struct CallArgs {}

/// Execute `enforcecore call`.
pub fn execute(_args: CallArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore call` is not available in this build yet")
}
