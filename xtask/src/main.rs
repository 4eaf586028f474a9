//! Project automation: `cargo xtask <task>`.
//!
//! - `ci`: formatting, lints and the whole test suite, exactly as CI runs them.
//! - `bench <name>`: the benchmarks each issue names, run side by side with their
//!   anchors in one interleaved run (`spawn`, `redact`, `audit`, `daemon`).
//! - `vm-test`: the daemon under real systemd and cgroup v2 in a Debian guest.
//!
//! Tasks shell out to cargo and system tools; they never need network access
//! beyond the package registries.

use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod vm;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  ci                 fmt --check, clippy -D warnings, the whole test suite
  bench <name>       benchmarks against their anchors: spawn, redact, audit, policy, cgroup, daemon
  vm-test            the daemon under systemd + cgroup v2 in a qemu guest";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::main(&args[1..]),
        Some("vm-test") => vm::main(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown or missing task")
        }
    }
}

/// Run a command, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// `cargo`, the one that runs this task.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// What CI runs: formatting, lints, then every test.
fn ci() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace"]))?;
    Ok(())
}
