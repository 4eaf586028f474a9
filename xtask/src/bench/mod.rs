//! `cargo xtask bench <name>`: each benchmark runs its subject and its anchors
//! interleaved in one run and prints medians and ratios.

use anyhow::{Result, bail};

mod audit;
mod daemon;
mod policy;
mod redact;
mod spawn;

/// Dispatch `bench <name>`.
pub fn main(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("spawn") => spawn::main(&args[1..]),
        Some("redact") => redact::main(&args[1..]),
        Some("audit") => audit::main(&args[1..]),
        Some("daemon") => daemon::main(&args[1..]),
        Some("policy") => policy::main(&args[1..]),
        _ => bail!("usage: cargo xtask bench <spawn|redact|audit|daemon|policy>"),
    }
}
