//! `cargo xtask bench redact`.

use anyhow::{Result, bail};

/// Run the benchmark.
pub fn main(_args: &[String]) -> Result<()> {
    bail!("the redact benchmark is not written yet")
}
