//! `enforcecore doctor`.

use clap::Args;

/// Arguments of `enforcecore doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Execute `enforcecore doctor`.
pub fn execute(_args: DoctorArgs) -> anyhow::Result<u8> {
    anyhow::bail!("`enforcecore doctor` is not available in this build yet")
}
