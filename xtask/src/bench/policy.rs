//! `cargo xtask bench policy`: `policy::load` of strict.yaml against an untyped
//! YAML parse of the same files (see `benches/policy_load.rs`).

use anyhow::Result;

/// Run the benchmark.
pub fn main(_args: &[String]) -> Result<()> {
    crate::run(crate::cargo().args(["bench", "--bench", "policy_load"]))
}
