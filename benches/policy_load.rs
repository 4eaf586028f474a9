//! `policy::load` of the shipped strict policy (with its base), against an
//! anchor that only parses the same two files into untyped YAML values with
//! `serde_yaml` (no validation, no merge). Runs interleaved, prints medians and
//! the ratio. Run with `cargo bench --bench policy_load` or `cargo xtask bench
//! policy`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let strict = dir.join("strict.yaml");
    let base = dir.join("base.yaml");
    let rounds = 2000;
    let (mut ours, mut anchor) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    // Warm up caches and the page cache.
    for _ in 0..50 {
        black_box(enforcecore::policy::load(&strict).expect("strict.yaml loads"));
    }
    for _ in 0..rounds {
        let t = Instant::now();
        black_box(enforcecore::policy::load(&strict).expect("strict.yaml loads"));
        ours.push(t.elapsed());
        let t = Instant::now();
        for f in [&base, &strict] {
            let text = std::fs::read_to_string(f).expect("read");
            black_box(serde_yaml::from_str::<serde_yaml::Value>(&text).expect("parse"));
        }
        anchor.push(t.elapsed());
    }
    let (o, a) = (median(&mut ours), median(&mut anchor));
    println!(
        "policy::load(strict.yaml)            median {:>8.1} µs",
        o.as_secs_f64() * 1e6
    );
    println!(
        "anchor: serde_yaml::Value of 2 files median {:>8.1} µs",
        a.as_secs_f64() * 1e6
    );
    println!(
        "ratio load/anchor: {:.2}",
        o.as_secs_f64() / a.as_secs_f64()
    );
}
