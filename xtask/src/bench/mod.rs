//! `cargo xtask bench <name>`: each benchmark runs its subject and its anchors
//! interleaved in one run and prints medians and ratios.

use std::time::Duration;

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

/// User + system CPU time of the children waited for so far (`RUSAGE_CHILDREN`).
fn children_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN cannot fail.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The 1, 5 and 15 minute load averages: other work on the shared machine
/// skews every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
