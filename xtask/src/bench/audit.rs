//! `cargo xtask bench audit [--rounds N]`: the audit trail against its anchors.
//!
//! 1. Durable appends/s. Anchor: `write` + `fdatasync` per record, one at a
//!    time, from 16 threads sharing the file behind a mutex (what a writer
//!    without group commit does). Subjects: `enforcecore audit append` (the
//!    real writer, release build) with 16 threads that each wait for their
//!    record to be durable before the next (as a run does), the same with a
//!    signing key (periodic checkpoints), the same from 16 async tasks on a
//!    multi-thread runtime (as the daemon's runs append), and 16 threads that
//!    keep 64 records in flight (as a denial feed may).
//! 2. Verify throughput. Anchor: single-core SHA-256 (the `sha2` crate, which
//!    picks SHA-NI at run time) of the trail's bytes, already in memory.
//!    Subject: `enforcecore audit verify --key PUB` on the same file (page
//!    cache warm): parsing, JSON syntax, hashes, links and signatures — as it
//!    runs (a helper thread when there are two cores), and pinned to one core
//!    with `taskset` (single-threaded).
//!
//! Every round runs each subject and anchor once, interleaved, so that other
//! load on the machine hits all of them; medians and ratios are printed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A run-started, two denials, a redaction receipt and a run-exited: what
/// one run writes.
const BODIES: &str = concat!(
    r#"{"kind":"run-started","run":"r-0123456789abcdef","tool":"curl","policy":"strict","pid":4243,"argv":["curl","-s","https://example.com/api/v1/items?id=42"],"caller":{"via":"cli","uid":1000,"gid":1000,"pid":4242,"agent":null},"enforcement":{"uid":65534,"gid":65534,"caps_dropped":true,"no_new_privs":true,"landlock":{"abi":7,"status":"full","fs_rules":12,"skipped_optional":[],"net_rules":2,"scopes":["signal","abstract_unix_socket"],"log_new_exec":true},"seccomp":{"mode":"deny","action":"errno:EPERM","filter_sha256":"abababababababababababababababababababababababababababababababab","instructions":120,"syscalls":60,"socket_families":["unix","inet"],"flags":["log"]},"cgroup":{"version":"v1","paths":["/sys/fs/cgroup/memory/enforcecore/r1"],"memory_bytes":268435456,"pids":64,"cpu_millis":1000},"rlimits":[["nofile",256],["fsize",1048576]],"wall_time_ms":30000,"output_bytes":1048576,"run_dir":"/var/lib/enforcecore/runs/r1","env":["PATH","HOME","LANG"],"kernel_audit":"already-enabled"}}"#,
    "\n",
    r#"{"kind":"denial","run":"r-0123456789abcdef","tool":"curl","denial":{"layer":"landlock-fs","pid":4243,"object":"/etc/shadow","access":"fs.read_file","detail":"domain=1a2b3c blockers=fs.read_file path=\"/etc/shadow\" dev=\"vda\" ino=12345","hint":"add /etc/shadow to sandbox.filesystem.read (sensitive!)"}}"#,
    "\n",
    r#"{"kind":"denial","run":"r-0123456789abcdef","tool":"curl","denial":{"layer":"seccomp","pid":4243,"object":"ptrace","access":"x86_64","detail":"syscall=101 code=0x50000","hint":"add ptrace to sandbox.syscalls.allow"}}"#,
    "\n",
    r#"{"kind":"redaction","run":"r-0123456789abcdef","tool":"curl","receipt":{"stream":"stdout","detector":"email","count":3,"fingerprints":["0a1b2c3d4e5f","6a7b8c9d0e1f"]}}"#,
    "\n",
    r#"{"kind":"run-exited","run":"r-0123456789abcdef","tool":"curl","exit":{"code":0,"signal":null,"cause":"exited","duration_ms":1234,"cpu_ms":321,"peak_memory_bytes":12345678,"output_bytes":4096,"denials":2}}"#,
    "\n",
);
/// One denial: the record the append benchmarks write.
const DENIAL: &str = r#"{"kind":"denial","run":"r-0123456789abcdef","tool":"curl","denial":{"layer":"landlock-fs","pid":4243,"object":"/etc/shadow","access":"fs.read_file","detail":"domain=1a2b3c blockers=fs.read_file path=\"/etc/shadow\" dev=\"vda\" ino=12345","hint":"add /etc/shadow to sandbox.filesystem.read (sensitive!)"}}"#;
const WRITERS: usize = 16;
/// Target length of one timed run.
const RUN_SECS: f64 = 1.5;
/// Size of the trail verified.
const VERIFY_BYTES: u64 = 256 << 20;

/// Run the benchmark.
pub fn main(args: &[String]) -> Result<()> {
    let rounds = match args {
        [] => 5,
        [flag, n] if flag == "--rounds" => n.parse().context("--rounds N")?,
        _ => bail!("usage: cargo xtask bench audit [--rounds N]"),
    };
    crate::run(crate::cargo().args(["build", "--release", "--quiet", "--bin", "enforcecore"]))?;
    let bin = target_dir()?.join("release/enforcecore");
    let dir = std::env::temp_dir().join(format!("enforcecore-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_all(&bin, &dir, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn target_dir() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    Ok(std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from))
}

fn run_all(bin: &Path, dir: &Path, rounds: usize) -> Result<()> {
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|w| w == "sha_ni"))
        .unwrap_or(false);
    println!(
        "audit benchmark: {rounds} interleaved rounds, {WRITERS} writers, file system of {}; CPU SHA-NI: {}; load average {}",
        dir.display(),
        if sha_ni { "yes (sha2 uses it)" } else { "no" },
        super::load_average()
    );
    let status = Command::new(bin)
        .args(["audit", "keygen", "--out"])
        .arg(dir.join("keys"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("audit keygen failed");
    }
    let key = dir.join("keys/audit-signing.key");
    let body = dir.join("denial.json");
    std::fs::write(&body, format!("{DENIAL}\n"))?;
    let line_len = sample_line_len(bin, dir, &body)?;

    // Calibrate repeat counts so that each timed run takes about RUN_SECS.
    let waited = |repeat: u64| append_args(repeat, 1, None);
    let tasks = |repeat: u64| {
        let mut a = append_args(repeat, 1, None);
        a[0] = "--tasks".into();
        a
    };
    let per_thread = |rate: f64| ((rate * RUN_SECS / WRITERS as f64) as u64).max(20);
    let r1 = per_thread(timed_append(bin, dir, &body, &waited(20))?);
    let r_signed = r1;
    let r64 = per_thread(timed_append(bin, dir, &body, &append_args(500, 64, None))?);

    let mut anchor = Vec::new();
    let (mut wait1, mut signed, mut pipelined) = (Vec::new(), Vec::new(), Vec::new());
    let mut in_tasks = Vec::new();
    for round in 0..rounds {
        anchor.push(fsync_per_record(&dir.join("anchor.jsonl"), line_len)?);
        wait1.push(timed_append(bin, dir, &body, &waited(r1))?);
        in_tasks.push(timed_append(bin, dir, &body, &tasks(r1))?);
        signed.push(timed_append(
            bin,
            dir,
            &body,
            &append_args(r_signed, 1, Some(&key)),
        )?);
        pipelined.push(timed_append(bin, dir, &body, &append_args(r64, 64, None))?);
        eprintln!(
            "  round {}: anchor {:.0}/s, group commit {:.0}/s, tasks {:.0}/s, signed {:.0}/s, 64 in flight {:.0}/s",
            round + 1,
            anchor[round],
            wait1[round],
            in_tasks[round],
            signed[round],
            pipelined[round]
        );
    }
    let a = median(&mut anchor);
    println!("\n1. durable appends ({line_len}-byte records), records/s, median of {rounds}:");
    println!("   anchor  write+fdatasync per record, one at a time ..... {a:>9.0}   1.00x");
    for (name, v) in [
        (
            "group commit, 16 writers each waiting ...........",
            &mut wait1,
        ),
        (
            "  same, 16 async tasks each awaiting ............",
            &mut in_tasks,
        ),
        (
            "  same, signed (checkpoint every 1000) ..........",
            &mut signed,
        ),
        (
            "group commit, 16 writers x 64 in flight .........",
            &mut pipelined,
        ),
    ] {
        let m = median(v);
        println!("   {name} {m:>9.0}  {:>5.1}x", m / a);
    }
    println!("   target: >= 50000 durable records/s with group commit");
    println!("   load average now: {}", super::load_average());

    // 2. Verify.
    let trail = dir.join("verify.jsonl");
    let bodies = dir.join("bodies.json");
    std::fs::write(&bodies, BODIES)?;
    let per_round = 5 * WRITERS as u64 * 630;
    let repeat = (VERIFY_BYTES / per_round).max(1).to_string();
    let key_s = key.to_str().context("key path")?;
    run_append(
        bin,
        &trail,
        &bodies,
        &[
            "--key",
            key_s,
            "--threads",
            "16",
            "--pipeline",
            "256",
            "--repeat",
            &repeat,
        ],
    )?;
    let bytes = std::fs::read(&trail)?;
    let pubkey = dir.join("keys/audit-signing.key.pub");
    let (mut sha, mut ver, mut ver1) = (Vec::new(), Vec::new(), Vec::new());
    let mb_s = |secs: f64| bytes.len() as f64 / secs / 1e6;
    for round in 0..rounds + 2 {
        let t = Instant::now();
        let d = Sha256::digest(&bytes);
        std::hint::black_box(d);
        sha.push(mb_s(t.elapsed().as_secs_f64()));
        ver.push(mb_s(timed_verify(&mut Command::new(bin), &pubkey, &trail)?));
        // Pinned to one CPU, verify finds one core and runs single-threaded.
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", "0"]).arg(bin);
        ver1.push(mb_s(timed_verify(&mut pinned, &pubkey, &trail)?));
        eprintln!(
            "  round {}: sha256 {:.0} MB/s, verify {:.0} MB/s, verify on one core {:.0} MB/s",
            round + 1,
            sha[round],
            ver[round],
            ver1[round]
        );
    }
    let (s, v, v1) = (median(&mut sha), median(&mut ver), median(&mut ver1));
    let records = bytes.iter().filter(|&&b| b == b'\n').count();
    println!(
        "\n2. verify of a signed trail ({} MB, {records} records, avg {} B), MB/s, median of {}:",
        bytes.len() / 1_000_000,
        bytes.len() / records.max(1),
        rounds + 2
    );
    println!("   anchor  SHA-256 of the same bytes, one core, in memory {s:>7.0}   1.00x");
    println!(
        "   enforcecore audit verify --key (2 threads) ............ {v:>7.0}   {:.2}x",
        v / s
    );
    println!(
        "   enforcecore audit verify --key (pinned to one core) ... {v1:>7.0}   {:.2}x",
        v1 / s
    );
    println!("   target: >= 0.50x");
    println!("   load average now: {}", super::load_average());
    Ok(())
}

/// Seconds one `audit verify --key` of `trail` takes (whole process).
fn timed_verify(cmd: &mut Command, pubkey: &Path, trail: &Path) -> Result<f64> {
    let t = Instant::now();
    let out = cmd
        .args(["audit", "verify", "--key"])
        .arg(pubkey)
        .arg(trail)
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("verify failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(secs)
}

fn append_args(repeat: u64, pipeline: usize, key: Option<&Path>) -> Vec<String> {
    let mut a = vec![
        "--threads".to_string(),
        WRITERS.to_string(),
        "--repeat".into(),
        repeat.to_string(),
        "--pipeline".into(),
        pipeline.to_string(),
    ];
    if let Some(k) = key {
        a.push("--key".into());
        a.push(k.display().to_string());
    }
    a
}

fn run_append(bin: &Path, trail: &Path, stdin: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(bin)
        .args(["audit", "append"])
        .arg(trail)
        .args(args)
        .stdin(File::open(stdin)?)
        .output()?;
    if !out.status.success() {
        bail!(
            "audit append failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Records/s of one `audit append` run on a fresh trail.
fn timed_append(bin: &Path, dir: &Path, body: &Path, args: &[String]) -> Result<f64> {
    let trail = dir.join("append.jsonl");
    let _ = std::fs::remove_file(&trail);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    run_append(bin, &trail, body, &args)?;
    let secs = t.elapsed().as_secs_f64();
    let records = std::fs::read(&trail)?
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    Ok(records as f64 / secs)
}

/// Length of the denial as a record line (header, body, hash, newline).
fn sample_line_len(bin: &Path, dir: &Path, body: &Path) -> Result<usize> {
    let trail = dir.join("sample.jsonl");
    run_append(bin, &trail, body, &[])?;
    let text = std::fs::read_to_string(&trail)?;
    Ok(text.lines().next().map_or(0, str::len) + 1)
}

/// The anchor: 16 threads, one record each at a time: write, fdatasync.
fn fsync_per_record(path: &Path, line_len: usize) -> Result<f64> {
    let _ = std::fs::remove_file(path);
    let file = Arc::new(Mutex::new(
        OpenOptions::new().create(true).append(true).open(path)?,
    ));
    let line: Arc<Vec<u8>> = Arc::new([vec![b'x'; line_len - 1], vec![b'\n']].concat());
    let deadline = Instant::now() + Duration::from_secs_f64(RUN_SECS);
    let start = Instant::now();
    let threads: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (file, line) = (file.clone(), line.clone());
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut n = 0;
                while Instant::now() < deadline {
                    let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                    f.write_all(&line)?;
                    f.sync_data()?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| anyhow::anyhow!("anchor thread panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
