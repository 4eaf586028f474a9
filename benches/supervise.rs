//! The daemon's per-run path, in process: `supervise::execute` of `/bin/true` under
//! `policies/strict.yaml` with the policy already loaded and a warm cgroup pool —
//! no process start-up, no policy load, no cgroup `mkdir` on the critical path —
//! against a direct fork+exec of `/bin/true` from the same process, interleaved
//! round by round. Medians, p90 and maxima. Root only (real cgroups, user switch).
//!
//! `cargo bench --bench supervise` (`cargo xtask bench spawn` runs it after the
//! command-level comparison); `ENFORCECORE_BENCH_ROUNDS` sets the rounds (200).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enforcecore::sandbox::cgroup::{CgroupPool, Hierarchy};
use enforcecore::supervise::{self, Cgroups, NoObserver, RunRequest};

fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("supervise bench: needs root (real cgroups, user switch); skipped");
        return;
    }
    if let Ok(f) = tracing_subscriber::EnvFilter::try_from_env("ENFORCECORE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(f)
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let rounds: usize = std::env::var("ENFORCECORE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = enforcecore::policy::load(&root.join("policies/strict.yaml")).expect("strict");
    let pool = Arc::new(CgroupPool::new(Hierarchy::detect().expect("cgroups"), 4).expect("pool"));
    pool.wait_ready(4, Duration::from_secs(5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut run = Vec::with_capacity(rounds);
    let mut direct = Vec::with_capacity(rounds);
    for i in 0..rounds + 10 {
        let t = Instant::now();
        let outcome = rt
            .block_on(supervise::execute(
                RunRequest {
                    cgroups: Cgroups::Pool(pool.clone()),
                    ..RunRequest::detached(
                        supervise::new_run_id().expect("run id"),
                        &policy,
                        vec![OsString::from("/bin/true")],
                    )
                },
                &NoObserver,
            ))
            .expect("run");
        let r = t.elapsed();
        assert_eq!(outcome.exit.code, Some(0));
        let t = Instant::now();
        let s = Command::new("/bin/true").status().expect("true");
        let d = t.elapsed();
        assert!(s.success());
        if i >= 10 {
            run.push(r);
            direct.push(d);
        }
    }
    println!("supervise::execute (daemon path, warm pool, policy loaded), {rounds} rounds:");
    for (name, v) in [("execute", &run), ("direct", &direct)] {
        println!(
            "  {name:<8} median {:>7.3}ms  p90 {:>7.3}ms  max {:>7.3}ms",
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.9)),
            ms(quantile(v, 1.0))
        );
    }
    println!(
        "  execute / direct = {:.2}x",
        ms(quantile(&run, 0.5)) / ms(quantile(&direct, 0.5))
    );
}
