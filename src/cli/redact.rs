//! `enforcecore redact`.

use clap::Args;

/// Arguments of `enforcecore redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {}

/// Execute `enforcecore redact`.
pub fn execute(_args: RedactArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore redact` is not available in this build yet")
}
