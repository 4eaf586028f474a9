//! `cargo xtask vm-test`.

use anyhow::{Result, bail};

/// Build the guest, boot it, run the test.
pub fn main(_args: &[String]) -> Result<()> {
    bail!("vm-test is not written yet")
}
