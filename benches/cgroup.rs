//! Cost of a run's cgroup on the critical path: inline `create_run` + `remove`
//! versus a [`CgroupPool`] (take a pre-created cgroup, write limits; retire to the
//! helper thread), with a direct fork+exec of `/bin/true` as the scale anchor.
//! The three are interleaved round by round (other work shares the machine);
//! medians, p99 and maxima are printed. Root only (it creates real cgroups).
//!
//! `cargo bench --bench cgroup` (or `cargo xtask bench cgroup`);
//! `ENFORCECORE_BENCH_ROUNDS` sets the number of rounds (default 400).

use std::process::Command;
use std::time::{Duration, Instant};

use enforcecore::sandbox::cgroup::{CgroupLimits, CgroupPool, Hierarchy};

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn new(name: &'static str) -> Series {
        Series {
            name,
            samples: Vec::new(),
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort_unstable();
        let i = ((s.len() as f64 - 1.0) * q).round() as usize;
        s[i]
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the cgroup benchmark creates real cgroups: run it as root");
        std::process::exit(2);
    }
    let rounds: usize = std::env::var("ENFORCECORE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let h = Hierarchy::detect().expect("detect cgroups");
    println!("{}", h.describe());
    let limits = CgroupLimits {
        memory_bytes: Some(256 << 20),
        pids: Some(64),
        cpu_millis: Some(1000),
    };
    let pid = std::process::id();

    // Phase 1, as `enforcecore run` sees it: one run per supervisor process, so
    // the shared `enforcecore/` parents are created and removed with each run.
    let mut exec = Series::new("fork+exec /bin/true (anchor)");
    let mut create = Series::new("inline create_run");
    let mut remove = Series::new("inline remove");
    let mut inline = Series::new("inline create_run + remove");
    for i in 0..rounds {
        exec.samples.push(time_exec());
        let t = Instant::now();
        let run = h
            .create_run(&format!("bench-{pid}-a{i}"), &limits)
            .expect("create_run");
        let t1 = Instant::now();
        run.remove().expect("remove");
        let t2 = Instant::now();
        create.samples.push(t1 - t);
        remove.samples.push(t2 - t1);
        inline.samples.push(t2 - t);
    }
    println!("phase 1: one run at a time, shared parents created and removed with it");
    table(rounds, &[&exec, &create, &remove, &inline]);

    // Phase 2, as the daemon sees it: a pool keeps cgroups ready (and with them
    // the shared parents); inline creation shown alongside for comparison.
    let pool = CgroupPool::new(h.clone(), 4).expect("start pool");
    pool.wait_ready(4, Duration::from_secs(10));
    let mut exec = Series::new("fork+exec /bin/true (anchor)");
    let mut inline = Series::new("inline create_run + remove");
    let mut take = Series::new("pool create_run (take + limits)");
    let mut retire = Series::new("pool retire (hand-off)");
    let mut pooled = Series::new("pool create_run + retire");
    let mut misses = 0;
    for i in 0..rounds {
        exec.samples.push(time_exec());

        let t = Instant::now();
        let run = h
            .create_run(&format!("bench-{pid}-b{i}"), &limits)
            .expect("create_run");
        run.remove().expect("remove");
        inline.samples.push(t.elapsed());

        misses += usize::from(pool.ready() == 0);
        let t = Instant::now();
        let run = pool
            .create_run(&format!("bench-{pid}-p{i}"), &limits)
            .expect("pool create_run");
        let t1 = Instant::now();
        pool.retire(run);
        let t2 = Instant::now();
        take.samples.push(t1 - t);
        retire.samples.push(t2 - t1);
        pooled.samples.push(t2 - t);
    }
    drop(pool);
    println!("phase 2: pool of 4 (empty on {misses} takes, which fell back to inline creation)");
    table(rounds, &[&exec, &inline, &take, &retire, &pooled]);
}

fn time_exec() -> Duration {
    let t = Instant::now();
    let status = Command::new("/bin/true").status().expect("run /bin/true");
    let d = t.elapsed();
    assert!(status.success());
    d
}

fn table(rounds: usize, series: &[&Series]) {
    let anchor = series[0].quantile(0.5);
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>14}   ({rounds} interleaved rounds)",
        "", "median µs", "p99 µs", "max µs", "median/anchor"
    );
    for s in series {
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>10.1} {:>14.2}",
            s.name,
            us(s.quantile(0.5)),
            us(s.quantile(0.99)),
            us(s.quantile(1.0)),
            us(s.quantile(0.5)) / us(anchor)
        );
    }
    println!();
}
