//! `cargo xtask bench redact [--mb N] [--rounds N]`: throughput of
//! `enforcecore redact` (release build, every built-in detector; on two
//! threads, and with `--single-thread`) against `cat` on the same pipe,
//! interleaved in one run, with each subject's CPU time and the load
//! average, plus the anchors that are
//! installed (`rg --passthru`, GNU `sed`) for context; then the redactor's peak
//! RSS on the input and on ten times the input (memory must stay flat), and the
//! engine construction benchmark (`benches/redact_engine.rs`).
//!
//! The input is generated once (deterministically) under `target/bench/`: log
//! text in a dozen everyday formats (timestamps, levels, request ids, UUIDs,
//! hashes, versions, prices, ports, durations, paths, JSON) where about 1% of
//! the lines carry personal data or a secret.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// SplitMix64: a small deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
}

const LEVELS: &[&str] = &["INFO ", "DEBUG", "WARN ", "ERROR", "TRACE"];
const PATHS: &[&str] = &[
    "/api/v1/users",
    "/api/v2/orders",
    "/healthz",
    "/static/app.js",
    "/metrics",
    "/api/v1/search",
];
const MODULES: &[&str] = &[
    "billing.InvoiceService",
    "auth.SessionStore",
    "cache.Lru",
    "http.Router",
    "db.Pool",
];

/// Values that must be redacted, one per detector family.
const SECRETS: &[&str] = &[
    "user=jane.roe@example.org",
    "contact: +44 20 7946 0958",
    "callback (555) 234-5678",
    "ssn=123-45-6789",
    "card 4111 1111 1111 1111 exp 12/29",
    "iban DE89370400440532013000",
    "client=203.0.113.42",
    "peer 2001:db8::8a2e:370:7334",
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "token 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",
    "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
    "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPq",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "dsn=postgres://app:s3cretPw@db.internal:5432/app",
    "password=Tr0ub4dor&3",
];

fn timestamp(r: &mut Rng) -> String {
    format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000)
    )
}

fn uuid(r: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(4),
        r.hex(4),
        r.hex(12)
    )
}

/// One ordinary log line.
fn line(r: &mut Rng, out: &mut String) {
    let ts = timestamp(r);
    let _ = match r.below(12) {
        0..=2 => write!(
            out,
            "{ts} {} [worker-{}] request_id={} method=GET path={}/{} status={} duration_ms={} bytes={}",
            r.pick(LEVELS),
            r.below(16),
            uuid(r),
            r.pick(PATHS),
            r.below(100_000),
            r.pick(&["200", "201", "204", "404", "500"]),
            r.below(1000),
            r.below(100_000)
        ),
        3 | 4 => write!(
            out,
            "{{\"ts\":\"{ts}\",\"level\":\"debug\",\"msg\":\"cache hit\",\"key\":\"user:{}:profile\",\"ttl\":{},\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
            r.below(100_000),
            r.below(3600),
            r.hex(32),
            r.hex(16)
        ),
        5 => write!(
            out,
            "[{ts}] WARN  com.example.{} - invoice INV-2024-{:06} total=${}.{:02} currency=EUR retry={}/5",
            r.pick(MODULES),
            r.below(1_000_000),
            r.below(10_000),
            r.below(100),
            r.below(5)
        ),
        6 => write!(
            out,
            "{ts} DEBUG build: compiled app v{}.{}.{} (commit {}) in {}.{}s",
            r.below(3),
            r.below(30),
            r.below(10),
            r.hex(40),
            r.below(100),
            r.below(10)
        ),
        7 => write!(
            out,
            "time=\"{ts}\" level=info msg=\"listening\" addr=\":{}\" version=1.{}.{} go=go1.22.4 pid={}",
            1024 + r.below(60_000),
            r.below(30),
            r.below(10),
            r.below(100_000)
        ),
        8 => write!(
            out,
            "    at com.example.{}.handle(Handler.java:{})",
            r.pick(MODULES),
            r.below(1000)
        ),
        9 => write!(
            out,
            "sha256:{} pulled layer {}/12 ({}.{} MB) in {}ms",
            r.hex(64),
            r.below(12),
            r.below(100),
            r.below(10),
            r.below(5000)
        ),
        10 => write!(
            out,
            "May {:2} {:02}:{:02}:{:02} host-{} systemd[1]: Started session {} of user deploy.",
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.below(60),
            r.below(64),
            r.below(10_000)
        ),
        _ => write!(
            out,
            "{ts} INFO  scheduler: job {} finished: {} rows, {} errors, took {}.{:03}s (p99 {} ms)",
            uuid(r),
            r.below(1_000_000),
            r.below(3),
            r.below(60),
            r.below(1000),
            r.below(900)
        ),
    };
}

/// Write about `mb` MB of log text to `path` (1% of lines carry a secret).
fn generate(path: &Path, mb: u64) -> Result<u64> {
    let mut r = Rng(0x5EED_0000 + mb);
    let mut w =
        BufWriter::new(File::create(path).with_context(|| format!("create {}", path.display()))?);
    let target = mb * 1_000_000;
    let mut written = 0u64;
    let mut s = String::with_capacity(512);
    while written < target {
        s.clear();
        line(&mut r, &mut s);
        if r.below(100) == 0 {
            s.push(' ');
            s.push_str(r.pick(SECRETS));
        }
        s.push('\n');
        w.write_all(s.as_bytes())?;
        written += s.len() as u64;
    }
    w.flush()?;
    Ok(written)
}

/// Wall time of `cat FILE | subject > /dev/null`, and the subject's CPU
/// time (user + system, all its threads).
fn pipe_time(file: &Path, subject: &[String]) -> Result<(Duration, Duration)> {
    let start = Instant::now();
    let cpu0 = super::children_cpu();
    let mut cat = Command::new("cat")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .context("spawn cat")?;
    let feed = cat.stdout.take().expect("piped");
    let status = Command::new(&subject[0])
        .args(&subject[1..])
        .stdin(feed)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("run {}", subject[0]))?;
    // Only the subject has been waited for yet.
    let cpu = super::children_cpu() - cpu0;
    let cat_status = cat.wait()?;
    let elapsed = start.elapsed();
    if !status.success() || !cat_status.success() {
        bail!("{} failed: {status}", subject.join(" "));
    }
    Ok((elapsed, cpu))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn installed(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Peak RSS (KiB) of `enforcecore redact` reading `copies` copies of `file`.
fn peak_rss(bin: &Path, file: &Path, copies: usize) -> Result<Option<u64>> {
    if !Path::new("/usr/bin/time").exists() {
        return Ok(None);
    }
    let files = vec![file.display().to_string(); copies].join(" ");
    let script = format!(
        "cat {files} | /usr/bin/time -f %M {} redact > /dev/null",
        bin.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().last().and_then(|l| l.trim().parse().ok()))
}

/// Run the benchmark.
pub fn main(args: &[String]) -> Result<()> {
    let mut mb = 50u64;
    let mut rounds = 9usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mb" => mb = it.next().context("--mb needs a number")?.parse()?,
            "--rounds" => rounds = it.next().context("--rounds needs a number")?.parse()?,
            other => bail!(
                "unknown argument {other}; usage: cargo xtask bench redact [--mb N] [--rounds N]"
            ),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    crate::run(crate::cargo().current_dir(&root).args([
        "build",
        "--release",
        "--bin",
        "enforcecore",
    ]))?;
    let bin = root.join("target/release/enforcecore");
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let input = dir.join(format!("redact-{mb}mb.log"));
    let size = match std::fs::metadata(&input) {
        Ok(m) if m.len() >= mb * 1_000_000 => m.len(),
        _ => generate(&input, mb)?,
    };

    // Every redacted value must be gone, or the figures mean nothing.
    let check = Command::new(&bin)
        .arg("redact")
        .stdin(File::open(&input)?)
        .output()?;
    if !check.status.success() {
        bail!(
            "enforcecore redact failed: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    for leak in [
        "jane.roe@example.org",
        "AKIAIOSFODNN7EXAMPLE",
        "4111 1111 1111 1111",
        "s3cretPw",
    ] {
        if check
            .stdout
            .windows(leak.len())
            .any(|w| w == leak.as_bytes())
        {
            bail!("`{leak}` survived redaction");
        }
    }

    let combined = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b|\b([0-9]{4}[ -]?){3}[0-9]{4}\b|\b([0-9]{1,3}\.){3}[0-9]{1,3}\b|\bAKIA[0-9A-Z]{16}\b|\bghp_[A-Za-z0-9]{36}\b|eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*";
    let mut subjects: Vec<(&str, Vec<String>)> = vec![
        ("cat", vec!["cat".into()]),
        (
            "enforcecore redact",
            vec![bin.display().to_string(), "redact".into()],
        ),
        (
            "enforcecore redact --single-thread",
            vec![
                bin.display().to_string(),
                "redact".into(),
                "--single-thread".into(),
            ],
        ),
    ];
    if installed("rg") {
        subjects.push((
            "rg --passthru (7 regexes)",
            [
                "rg",
                "--no-config",
                "--passthru",
                "-N",
                "-r",
                "[X]",
                combined,
            ]
            .map(String::from)
            .to_vec(),
        ));
    }
    if installed("sed") {
        subjects.push((
            "sed -E (7 regexes)",
            vec!["sed".into(), "-E".into(), format!("s/{combined}/[X]/g")],
        ));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); subjects.len()];
    let mut cpus: Vec<Vec<Duration>> = vec![Vec::new(); subjects.len()];
    // Warm the page cache and the binaries.
    for (_, cmd) in &subjects {
        pipe_time(&input, cmd)?;
    }
    let load_before = super::load_average();
    for _ in 0..rounds {
        for (i, (_, cmd)) in subjects.iter().enumerate() {
            let (wall, cpu) = pipe_time(&input, cmd)?;
            times[i].push(wall);
            cpus[i].push(cpu);
        }
    }
    let mbs = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!(
        "input: {} ({:.1} MB, 1% of lines with PII or secrets), {rounds} interleaved rounds, load average {load_before} before, {} after",
        input.display(),
        size as f64 / 1e6,
        super::load_average()
    );
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    for (((name, _), m), cpu) in subjects.iter().zip(&medians).zip(&mut cpus) {
        println!(
            "  {name:<36} median {:>7.1} ms {:>6.0} MB/s  CPU {:>6.1} ms  ratio {:.2}",
            m.as_secs_f64() * 1e3,
            mbs(*m),
            median(cpu).as_secs_f64() * 1e3,
            medians[0].as_secs_f64() / m.as_secs_f64()
        );
    }
    println!(
        "ratio enforcecore redact / cat throughput: {:.2} (target >= 0.50; one thread: {:.2})",
        medians[0].as_secs_f64() / medians[1].as_secs_f64(),
        medians[0].as_secs_f64() / medians[2].as_secs_f64()
    );
    match (peak_rss(&bin, &input, 1)?, peak_rss(&bin, &input, 10)?) {
        (Some(a), Some(b)) => println!(
            "peak RSS of enforcecore redact: {a} KiB on {:.0} MB, {b} KiB on {:.0} MB",
            size as f64 / 1e6,
            10.0 * size as f64 / 1e6
        ),
        _ => println!("peak RSS: unavailable (needs GNU time at /usr/bin/time)"),
    }
    crate::run(
        crate::cargo()
            .current_dir(&root)
            .args(["bench", "--bench", "redact_engine"]),
    )
}
