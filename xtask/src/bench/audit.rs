//! `cargo xtask bench audit`.

use anyhow::{Result, bail};

/// Run the benchmark.
pub fn main(_args: &[String]) -> Result<()> {
    bail!("the audit benchmark is not written yet")
}
