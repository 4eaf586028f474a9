//! `cargo xtask bench spawn`.

use anyhow::{Result, bail};

/// Run the benchmark.
pub fn main(_args: &[String]) -> Result<()> {
    bail!("the spawn benchmark is not written yet")
}
