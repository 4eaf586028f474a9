//! `cargo xtask bench daemon`: `enforcecore call` through a running daemon,
//! next to `enforcecore run` and direct exec, at 1, 8 and 64 concurrent clients.
//!
//! Subjects (release build, one policy with a tool `noop` = `/usr/bin/true`):
//! - `call`:   `enforcecore call --socket S noop` against `enforcecore serve`
//!   (client start-up, socket, identity, limits, sandboxed run, audit records);
//! - `run`:    `enforcecore run --policy P --tool noop --audit-log T -- /usr/bin/true`
//!   (the same sandbox and records, in a fresh process each time);
//! - `direct`: `/usr/bin/true`.
//!
//! Each round runs, for every concurrency level, one batch of every subject
//! (in rotating order): `clients` threads each start commands one after the
//! other until the batch's count is done. Reported per level and subject:
//! throughput (commands per second of batch wall time, median over rounds), and
//! the p50 and p99 latency of single commands (over all rounds), plus the ratio
//! of `call` to `run` and to `direct`. Needs root (the daemon, the tool user).
//!
//! Options: `--rounds N` (default 5), `--per-client N` commands per client and
//! batch (default 8; at least 32 commands per batch).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const LEVELS: [usize; 3] = [1, 8, 64];

const POLICY: &str = "version: 1
name: bench-daemon
sandbox:
  user: 65534
  group: 65534
  filesystem:
    read: [/usr, /etc/ld.so.cache]
    exec: [/usr/bin, /bin]
    rules:
      - { path: /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }
      - { path: /usr/lib64/ld-linux-x86-64.so.2, access: [execute, read_file], optional: true }
      - { path: /dev/null, access: [read_file, write_file, truncate] }
  limits:
    memory: 64MiB
    pids: 16
    wall_time: 30s
redaction:
  streams: [stdout, stderr]
  detectors: all
tools:
  noop:
    command: /usr/bin/true
agents:
  - name: bench
    uids: [0]
    tools: [noop]
";

struct Opts {
    rounds: usize,
    per_client: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        rounds: 5,
        per_client: 8,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => o.rounds = super::number(&mut it, "--rounds")?,
            "--per-client" => o.per_client = super::number(&mut it, "--per-client")?,
            other => bail!("unknown option {other}; see xtask/src/bench/daemon.rs"),
        }
    }
    if o.rounds == 0 || o.per_client == 0 {
        bail!("--rounds and --per-client must be at least 1");
    }
    Ok(o)
}

/// The daemon under test, killed on drop.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM for a clean stop (seals the trail); SIGKILL if it hangs.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(bin: &Path, dir: &Path) -> Result<Daemon> {
    let config = dir.join("daemon.yaml");
    std::fs::write(
        &config,
        format!(
            "policy: policy.yaml\nsocket: {{path: {}}}\naudit: {{log: {}}}\nruns_dir: {}\n\
             limits: {{max_runs: 256, max_connections: 512}}\n",
            dir.join("sock").display(),
            dir.join("call-audit/audit.jsonl").display(),
            dir.join("runs").display()
        ),
    )?;
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting enforcecore serve")?;
    let d = Daemon { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(dir.join("sock")).is_err() {
        if Instant::now() > deadline {
            bail!("the daemon did not open its socket within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(d)
}

struct Subject {
    name: &'static str,
    argv: Vec<String>,
}

fn once(argv: &[String]) -> Result<Duration> {
    let t = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("starting {}", argv[0]))?;
    let d = t.elapsed();
    if !status.success() {
        bail!("{argv:?} exited with {status}");
    }
    Ok(d)
}

/// One batch: `clients` threads share `total` commands. Returns the batch's
/// wall time and each command's latency.
fn batch(argv: &[String], clients: usize, total: usize) -> Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let argv = argv.to_vec();
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut v = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    v.push(once(&argv)?);
                }
                Ok(v)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for th in threads {
        all.extend(
            th.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
        );
    }
    Ok((t.elapsed(), all))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    pct(&v, 0.5)
}

#[derive(Default)]
struct Stats {
    throughput: Vec<f64>,
    latency_ms: Vec<f64>,
}

pub fn main(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf();
    crate::run(crate::cargo().current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "enforcecore",
    ]))?;
    let bin = root.join("target/release/enforcecore");
    let dir = std::env::temp_dir().join(format!("enforcecore-bench-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&o, &bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(o: &Opts, bin: &Path, dir: &Path) -> Result<()> {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY)?;
    let _daemon = start_daemon(bin, dir)?;
    let b = bin.display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let subjects = [
        Subject {
            name: "call",
            argv: [
                vec![b.clone(), "call".into(), "--socket".into()],
                vec![dir.join("sock").display().to_string(), "noop".into()],
            ]
            .concat(),
        },
        Subject {
            name: "run",
            argv: [
                vec![
                    b.clone(),
                    "run".into(),
                    "--policy".into(),
                    policy.display().to_string(),
                ],
                s(&["--tool", "noop", "--audit-log"]),
                vec![dir.join("run-audit/audit.jsonl").display().to_string()],
                s(&["--", "/usr/bin/true"]),
            ]
            .concat(),
        },
        Subject {
            name: "direct",
            argv: s(&["/usr/bin/true"]),
        },
    ];
    for sub in &subjects {
        once(&sub.argv).with_context(|| format!("smoke-testing {}", sub.name))?;
    }
    let mut stats: Vec<Vec<Stats>> = LEVELS
        .iter()
        .map(|_| subjects.iter().map(|_| Stats::default()).collect())
        .collect();
    println!(
        "daemon benchmark: {} rounds; per round and level, one batch of max(32, clients x {}) \
         commands per subject, interleaved",
        o.rounds, o.per_client
    );
    for round in 0..o.rounds {
        for (li, &clients) in LEVELS.iter().enumerate() {
            let total = (clients * o.per_client).max(32);
            for k in 0..subjects.len() {
                let si = (k + round + li) % subjects.len();
                let (wall, lat) = batch(&subjects[si].argv, clients, total)?;
                let st = &mut stats[li][si];
                st.throughput.push(total as f64 / wall.as_secs_f64());
                st.latency_ms
                    .extend(lat.iter().map(|d| d.as_secs_f64() * 1e3));
            }
        }
        eprintln!("round {}/{} done", round + 1, o.rounds);
    }
    println!(
        "\n{:>7}  {:<7} {:>10} {:>9} {:>9}",
        "clients", "subject", "cmds/s", "p50 ms", "p99 ms"
    );
    for (li, &clients) in LEVELS.iter().enumerate() {
        let mut p50 = Vec::new();
        let mut tput = Vec::new();
        for (si, sub) in subjects.iter().enumerate() {
            let st = &mut stats[li][si];
            st.latency_ms.sort_by(f64::total_cmp);
            let t = median(st.throughput.clone());
            let (a, b) = (pct(&st.latency_ms, 0.5), pct(&st.latency_ms, 0.99));
            println!("{clients:>7}  {:<7} {t:>10.0} {a:>9.2} {b:>9.2}", sub.name);
            p50.push(a);
            tput.push(t);
        }
        println!(
            "{:>7}  call/run: p50 x{:.2}, throughput x{:.2}; call/direct: p50 x{:.2}",
            "",
            p50[0] / p50[1],
            tput[0] / tput[1],
            p50[0] / p50[2]
        );
    }
    Ok(())
}
