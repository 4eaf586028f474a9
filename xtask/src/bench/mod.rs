//! `cargo xtask bench <name>`: each benchmark runs its subject and its anchors
//! interleaved in one run and prints medians and ratios.

use anyhow::{Context, Result, bail};

mod audit;
mod cgroup;
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
        Some("cgroup") => cgroup::main(&args[1..]),
        _ => bail!("usage: cargo xtask bench <spawn|redact|audit|daemon|policy|cgroup>"),
    }
}

/// The number following option `name` on a benchmark's command line.
fn number<'a, T: std::str::FromStr>(
    it: &mut impl Iterator<Item = &'a String>,
    name: &str,
) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    it.next()
        .with_context(|| format!("{name} needs a value"))?
        .parse()
        .with_context(|| format!("{name} needs a number"))
}
