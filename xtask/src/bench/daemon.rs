//! `cargo xtask bench daemon`.

use anyhow::{Result, bail};

/// Run the benchmark.
pub fn main(_args: &[String]) -> Result<()> {
    bail!("the daemon benchmark is not written yet")
}
