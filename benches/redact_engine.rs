//! What building a redaction engine costs, against the ~2 ms budget of
//! `enforcecore run -- /bin/true`: the process-wide literal automaton (once per
//! process), an engine with every built-in detector, the strict policy's
//! engine, one with a custom pattern, and a first stream through a short line.
//! Medians over many rounds. Run with `cargo bench --bench redact_engine` or
//! as the last part of `cargo xtask bench redact`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enforcecore::policy::{CustomDetector, Origin};
use enforcecore::redact::{Engine, Key, KeySource, StreamFilter};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(rounds: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..rounds / 10 {
        f();
    }
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn us(d: Duration) -> String {
    format!("{:>8.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let t = Instant::now();
    Engine::warm_up();
    let warm = t.elapsed();

    let strict = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/strict.yaml");
    let policy = enforcecore::policy::load(&strict).expect("strict.yaml loads");
    let key = Key::from_bytes(&[7u8; 32]).expect("key");
    let mut custom = policy.redaction.clone();
    custom.custom.push(CustomDetector {
        name: "EMPLOYEE_ID".into(),
        pattern: r"\bEMP-[0-9]{6}\b".into(),
        max_len: 10,
        validator: None,
        origin: Origin::builtin(),
    });
    let dir = std::env::temp_dir().join(format!("enforcecore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key_path = dir.join("redaction.key");
    std::fs::write(&key_path, [9u8; 32]).expect("key file");
    std::fs::set_permissions(
        &key_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");

    let rounds = 2000;
    let builtin = time(rounds, || {
        black_box(Engine::builtin(None));
    });
    let strict_engine = time(rounds, || {
        black_box(Engine::with_key(&policy.redaction, Some(key.clone())).expect("engine"));
    });
    let key_load = time(rounds, || {
        black_box(Key::load(&key_path, KeySource::CommandLine).expect("key"));
    });
    let with_custom = time(200, || {
        black_box(Engine::with_key(&custom, Some(key.clone())).expect("engine"));
    });
    let engine = Arc::new(Engine::builtin(None));
    let first_line = time(rounds, || {
        let mut s = engine.stream("stdout");
        let mut out = Vec::new();
        s.push(
            b"2024-05-14T09:21:33Z INFO ready, contact ops@example.com\n",
            &mut out,
        );
        s.finish(&mut out);
        black_box(out);
    });
    let _ = std::fs::remove_dir_all(&dir);

    println!("redaction engine construction (budget of `run -- /bin/true`: ~2000 µs)");
    println!("  literal automaton, once per process   {}", us(warm));
    println!("  Engine::builtin (every detector)      {}", us(builtin));
    println!(
        "  Engine for strict.yaml (key given)    {}",
        us(strict_engine)
    );
    println!("  Key::load (32-byte key file)          {}", us(key_load));
    println!(
        "  + one custom pattern (regex compile)  {}",
        us(with_custom)
    );
    println!("  stream + one line + finish            {}", us(first_line));
}
