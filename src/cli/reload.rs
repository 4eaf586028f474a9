//! `enforcecore reload`.

use clap::Args;

/// Arguments of `enforcecore reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {}

/// Execute `enforcecore reload`.
pub fn execute(_args: ReloadArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore reload` is not available in this build yet")
}
