//! rlimits of a run: `nofile`, `fsize`, `core = 0`, and `nproc` as a backstop.
//!
//! The cgroup pids limit is the real per-run process cap. `RLIMIT_NPROC` counts
//! every process (thread, in fact) of the tool's *uid* on the whole host, so a
//! per-run value would make concurrent runs of the same user fail each other's
//! `fork` and even `execve` (which checks it after a uid switch). It is therefore
//! a host-wide ceiling: [`NPROC_BACKSTOP`], or the run's pids limit if higher.
//! It does not apply when the tool runs as root (never, see `identity`).
//!
//! Data only: the child applies these with `prlimit64`.

use crate::policy::Limits;
use crate::sys::child::Rlimit;

/// Host-wide ceiling on the tool user's processes (`RLIMIT_NPROC`).
pub const NPROC_BACKSTOP: u64 = 4096;

/// The limits to apply, and their `(name, value)` for the report.
pub fn plan(limits: &Limits) -> (Vec<Rlimit>, Vec<(String, u64)>) {
    let mut out = Vec::new();
    let mut push = |name: &str, resource: libc::__rlimit_resource_t, value: u64| {
        out.push((Rlimit { resource, value }, (name.to_string(), value)));
    };
    if let Some(n) = &limits.open_files {
        push("nofile", libc::RLIMIT_NOFILE, n.value);
    }
    if let Some(n) = &limits.file_size {
        push("fsize", libc::RLIMIT_FSIZE, n.value);
    }
    push("core", libc::RLIMIT_CORE, 0);
    let nproc = limits
        .pids
        .as_ref()
        .map_or(NPROC_BACKSTOP, |p| p.value.max(NPROC_BACKSTOP));
    push("nproc", libc::RLIMIT_NPROC, nproc);
    out.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::fixtures::src;

    #[test]
    fn core_is_always_zero_and_nproc_is_a_backstop() {
        let (_, report) = plan(&Limits::default());
        assert_eq!(
            report,
            vec![("core".into(), 0), ("nproc".into(), NPROC_BACKSTOP)]
        );
        let limits = Limits {
            open_files: Some(src(64)),
            file_size: Some(src(1 << 20)),
            pids: Some(src(100_000)),
            ..Limits::default()
        };
        let (raw, report) = plan(&limits);
        assert_eq!(raw.len(), 4);
        assert_eq!(report[0], ("nofile".into(), 64));
        assert_eq!(report[1], ("fsize".into(), 1 << 20));
        assert_eq!(report[3], ("nproc".into(), 100_000));
    }
}
