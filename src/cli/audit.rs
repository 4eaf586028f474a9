//! `enforcecore audit …`: keys, verification and the responders' views.
//!
//! `keygen`, `verify` (exit 0 intact, 1 otherwise), `show`, `tail [-f]`, `why`, and
//! the hidden `append` (a writer process for tests and benchmarks). Output
//! only: the trail logic lives in [`crate::audit`].

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::audit::follow::Follower;
use crate::audit::reader::{self, Filter, Record};
use crate::audit::record::KINDS;
use crate::audit::verify;
use crate::audit::{RecordBody, Ticket, Trail, TrailOptions, keys, summary, why};

/// Subcommands of `enforcecore audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Generate an Ed25519 key pair for signing checkpoints.
    Keygen(KeygenArgs),
    /// Check a trail's hash chain and signatures; exit 0 intact, 1 otherwise.
    Verify(VerifyArgs),
    /// Show records as a table (or JSON lines), filtered.
    Show(ShowArgs),
    /// Show the last records, and with -f follow new ones across rotation.
    Tail(TailArgs),
    /// Explain one denial: what was attempted, which layer and rule stopped it,
    /// the smallest policy change that would allow it, and what that would expose.
    Why(WhyArgs),
    /// Append records read from stdin (JSON bodies, one per line). Internal:
    /// used by tests and benchmarks as a real writer process.
    #[command(hide = true)]
    Append(AppendArgs),
}

/// `audit keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory for `audit-signing.key` (0600) and `audit-signing.key.pub`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The trail's files in chain order, oldest first: archives, then the
    /// active file (`audit.jsonl.[0-9]* audit.jsonl`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Public key (`.pub`): check checkpoint signatures and require the trail
    /// to be sealed by this key.
    #[arg(long, value_name = "PUBKEY")]
    pub key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Filters shared by `show` and `tail`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only records of this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Only records about this tool.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
    /// Only records of this kind (repeatable): run-started, denial, ...
    #[arg(long, value_name = "K")]
    pub kind: Vec<String>,
    /// Not before: RFC 3339 (UTC), a date, or an age (`2h`, `3days`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Not after: RFC 3339 (UTC), a date, or an age.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Only denials and denial losses (same as --kind denial --kind denials-lost).
    #[arg(long)]
    pub denials: bool,
    /// Print the records as stored (JSON lines) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `audit show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The trail file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Filters and output.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The trail's active file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Keep following new records (across rotation) until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last records to show first (with filters: of the
    /// last records that pass them).
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,
    /// Filters and output.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `audit why`.
#[derive(Debug, Args)]
#[command(
    after_help = "RECORD is the denial's sequence number (the SEQ column of `audit show \
--denials`), or a run id (or a unique prefix of it) and the index of the run's denial, counted \
from 1: `9f3a0c:2`."
)]
pub struct WhyArgs {
    /// The trail file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The denial: SEQ, or RUN:N.
    #[arg(value_name = "RECORD")]
    pub record: String,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `audit append` (hidden).
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The trail file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Secret key: sign checkpoints.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Threads appending concurrently, each all of stdin's bodies.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Append from this many async tasks on a multi-thread runtime instead
    /// of threads, each awaiting its tickets (how the daemon's runs append).
    #[arg(long, conflicts_with = "threads")]
    pub tasks: Option<usize>,
    /// Append each body this many times per thread (0: until killed).
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Records each thread keeps in flight (1: wait for each to be durable
    /// before the next, like a run does).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Rotate when the active file reaches this many bytes.
    #[arg(long)]
    pub rotate_bytes: Option<u64>,
    /// Periodic checkpoint every N records (0: none by count).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Seconds to wait for another writer's lock.
    #[arg(long, default_value_t = 10)]
    pub lock_timeout: u64,
    /// Keep the trail's files append-only (`chattr +a`) where possible.
    #[arg(long)]
    pub append_only: bool,
}

/// Execute an `enforcecore audit` subcommand.
pub fn execute(cmd: AuditCommand) -> anyhow::Result<u8> {
    // A closed stdout (`| head`) ends the output quietly (`cli::dispatch`).
    match cmd {
        AuditCommand::Keygen(a) => keygen(a),
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Show(a) => show(a),
        AuditCommand::Tail(a) => tail(a),
        AuditCommand::Why(a) => why(a),
        AuditCommand::Append(a) => append(a),
    }
}

fn keygen(a: KeygenArgs) -> anyhow::Result<u8> {
    let k = keys::generate(&a.out)?;
    super::out!(
        "secret key: {} (mode 0600; keep it off the audited host's readable paths)",
        k.secret.display()
    )?;
    super::out!("public key: {}", k.public.display())?;
    super::out!("key id:     {}", k.key_id)?;
    super::out!(
        "sign with `run --audit-key {}`; verify with `audit verify --key {} FILE`",
        k.secret.display(),
        k.public.display()
    )?;
    Ok(0)
}

fn verify(a: VerifyArgs) -> anyhow::Result<u8> {
    let key = a.key.as_deref().map(keys::load_verifying_key).transpose()?;
    let report = verify::verify_files(&a.files, key)?;
    let mut out = Vec::new();
    if a.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        report.write_human(&mut out)?;
    }
    super::to_stdout_raw(&out)?;
    Ok(if report.ok { 0 } else { 1 })
}

fn filter(a: &FilterArgs) -> anyhow::Result<Filter> {
    let now = SystemTime::now();
    let time = |s: &Option<String>| s.as_deref().map(|s| reader::parse_time(s, now)).transpose();
    let mut kinds = a.kind.clone();
    if let Some(k) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
        bail!(
            "unknown record kind `{k}` for --kind; kinds are: {}",
            KINDS.join(", ")
        );
    }
    if a.denials {
        kinds.push("denial".into());
        kinds.push("denials-lost".into());
    }
    Ok(Filter {
        run: a.run.clone(),
        tool: a.tool.clone(),
        kinds,
        since: time(&a.since).map_err(anyhow::Error::msg)?,
        until: time(&a.until).map_err(anyhow::Error::msg)?,
    })
}

/// Prints matching records as table rows or stored JSON lines.
struct Printer {
    json: bool,
    color: bool,
    header: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Printer {
    fn new(json: bool) -> Printer {
        let stdout = io::stdout();
        Printer {
            json,
            color: stdout.is_terminal(),
            header: false,
            out: io::BufWriter::new(stdout),
        }
    }

    fn record(&mut self, r: &Record) -> io::Result<()> {
        if self.json {
            self.out.write_all(&r.line)?;
            self.out.write_all(b"\n")
        } else {
            if !self.header {
                self.header = true;
                writeln!(self.out, "{}", summary::header())?;
            }
            writeln!(self.out, "{}", summary::row(r, self.color))
        }
    }
}

fn show(a: ShowArgs) -> anyhow::Result<u8> {
    let f = filter(&a.filter)?;
    let mut p = Printer::new(a.filter.json);
    let mut bad = 0u64;
    let mut err = None;
    reader::for_each(&a.file, |r| match r {
        Ok(r) if f.matches(&r) => match p.record(&r) {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        },
        Ok(_) => true,
        Err((line, why)) => {
            bad += 1;
            super::say!(
                "enforcecore: {}:{line}: not a record: {why}",
                a.file.display()
            );
            true
        }
    })?;
    if let Some(e) = err {
        return Err(anyhow::Error::new(e).context("writing to stdout"));
    }
    p.out.flush().context("writing to stdout")?;
    if bad > 0 {
        super::say!(
            "enforcecore: {bad} line(s) could not be read; run `enforcecore audit verify {}`",
            a.file.display()
        );
        return Ok(1);
    }
    Ok(0)
}

fn tail(a: TailArgs) -> anyhow::Result<u8> {
    let f = filter(&a.filter)?;
    let mut p = Printer::new(a.filter.json);
    let (file, meta) = reader::open_trail(&a.file)?;
    let len = meta.len();
    // `-n` counts records shown: with a filter, the last N that pass.
    let start = if f.is_empty() {
        reader::last_lines_start(&file, len, a.lines)?
    } else {
        reader::last_matches_start(&file, len, a.lines, &f)?
    };
    let mut follower = Follower::open(&a.file, start)?;
    let err: std::cell::RefCell<Option<io::Error>> = std::cell::RefCell::new(None);
    let mut emit = |bytes: &[u8]| match Record::parse(bytes) {
        Ok(r) if f.matches(&r) => match p.record(&r).and_then(|()| p.out.flush()) {
            Ok(()) => true,
            Err(e) => {
                *err.borrow_mut() = Some(e);
                false
            }
        },
        Ok(_) => true,
        Err(why) => {
            super::say!(
                "enforcecore: {}: skipping a line that is not a record: {why}",
                a.file.display()
            );
            true
        }
    };
    follower.poll(&mut emit)?;
    if a.follow {
        // Until interrupted, or stdout is closed.
        loop {
            if let Some(e) = err.borrow_mut().take() {
                return Err(anyhow::Error::new(e).context("writing to stdout"));
            }
            std::thread::sleep(reader::FOLLOW_POLL);
            follower.poll(&mut emit)?;
        }
    }
    match err.into_inner() {
        Some(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
        None => Ok(0),
    }
}

/// The record `sel` names in `file`.
fn select(file: &std::path::Path, sel: &why::Selector) -> anyhow::Result<Record> {
    let found = match sel {
        why::Selector::Seq(seq) => reader::find(file, *seq)?,
        why::Selector::RunIndex(run, n) => {
            let mut runs = std::collections::BTreeSet::new();
            let mut hits: Vec<Record> = Vec::new();
            reader::for_each(file, |r| {
                if let Ok(r) = r
                    && r.kind == "denial"
                    && let Some(id) = r.run()
                    && id.starts_with(run.as_str())
                {
                    runs.insert(id.to_string());
                    hits.push(r);
                }
                true
            })?;
            if runs.len() > 1 {
                bail!(
                    "run id prefix `{run}` matches {} runs ({}); give more of it",
                    runs.len(),
                    runs.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            let total = hits.len();
            match hits.into_iter().nth(n - 1) {
                Some(r) => Some(r),
                None => bail!(
                    "run `{run}` has {total} denial(s) in {}; there is no denial {n}",
                    file.display()
                ),
            }
        }
    };
    let Some(r) = found else {
        bail!(
            "{} has no record {}; list denials with `enforcecore audit show --denials {}`",
            file.display(),
            match sel {
                why::Selector::Seq(s) => s.to_string(),
                why::Selector::RunIndex(r, n) => format!("{r}:{n}"),
            },
            file.display()
        );
    };
    Ok(r)
}

fn why(a: WhyArgs) -> anyhow::Result<u8> {
    let sel = why::Selector::parse(&a.record).map_err(anyhow::Error::msg)?;
    let r = select(&a.file, &sel)?;
    let Some(RecordBody::Denial { run, tool, denial }) = &r.body else {
        bail!(
            "record {} is a `{}` record, not a denial; list denials with `enforcecore audit \
             show --denials {}`",
            r.seq,
            r.kind,
            a.file.display()
        );
    };
    let trail = std::fs::canonicalize(&a.file).unwrap_or_else(|_| a.file.clone());
    let e = why::explain(denial, Some(&trail));
    let mut out = Vec::new();
    if a.json {
        let v = serde_json::json!({
            "seq": r.seq,
            "ts": r.ts,
            "run": run,
            "tool": tool,
            "denial": denial,
            "explanation": e,
        });
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
        super::to_stdout_raw(&out)?;
        return Ok(0);
    }
    let c = summary::clean;
    writeln!(
        out,
        "denial at seq {} ({}), run {} (tool {})",
        r.seq,
        c(&r.ts),
        c(run),
        c(tool)
    )?;
    writeln!(out, "attempted:   {}", c(&e.attempted))?;
    writeln!(out, "stopped by:  {} — {}", e.layer, e.layer_is)?;
    writeln!(out, "responsible: {}", c(&e.responsible))?;
    match &e.change {
        Some(ch) => {
            writeln!(out, "to allow it: {} — add to the policy:", ch.field)?;
            for l in ch.yaml.lines() {
                writeln!(out, "    {}", c(l))?;
            }
        }
        None => writeln!(
            out,
            "to allow it: no policy grant is suggested (see `responsible`)"
        )?,
    }
    for w in &e.warnings {
        writeln!(out, "WARNING:     {}", c(w))?;
    }
    super::to_stdout_raw(&out)?;
    Ok(0)
}

fn append(a: AppendArgs) -> anyhow::Result<u8> {
    let mut bodies = Vec::new();
    for (i, l) in io::stdin().lock().lines().enumerate() {
        let l = l?;
        if l.trim().is_empty() {
            continue;
        }
        let b: RecordBody = serde_json::from_str(&l)
            .with_context(|| format!("stdin line {}: not a record body", i + 1))?;
        bodies.push(b);
    }
    if bodies.is_empty() {
        bail!("no record bodies on stdin (one JSON object per line, with a \"kind\")");
    }
    let mut opts = TrailOptions::new(&a.file);
    opts.signing_key = a.key.as_deref().map(keys::load_signing_key).transpose()?;
    opts.rotate_bytes = a.rotate_bytes;
    opts.checkpoint_every = a.checkpoint_every;
    opts.lock_timeout = Duration::from_secs(a.lock_timeout);
    opts.append_only = a.append_only;
    let trail = Arc::new(Trail::open(opts)?);
    let bodies = Arc::new(bodies);
    let (repeat, pipeline) = (a.repeat, a.pipeline.max(1));
    let (total, failed) = match a.tasks {
        Some(tasks) => append_tasks(&trail, &bodies, tasks.max(1), repeat, pipeline)?,
        None => append_threads(&trail, &bodies, a.threads.max(1), repeat, pipeline)?,
    };
    trail.close()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    super::out!("appended {total} records to {}", a.file.display())?;
    Ok(0)
}

type AppendOutcome = (u64, Option<crate::audit::AuditError>);

/// Up to `pipeline` records in flight; the oldest is waited for before the
/// next is submitted.
fn append_threads(
    trail: &Arc<Trail>,
    bodies: &Arc<Vec<RecordBody>>,
    threads: usize,
    repeat: u64,
    pipeline: usize,
) -> anyhow::Result<AppendOutcome> {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (trail, bodies) = (trail.clone(), bodies.clone());
            std::thread::spawn(move || -> Result<u64, crate::audit::AuditError> {
                let mut in_flight = std::collections::VecDeque::new();
                let mut n = 0;
                for b in bodies.iter().cycle().take(planned(&bodies, repeat)) {
                    if in_flight.len() >= pipeline {
                        in_flight.pop_front().map(Ticket::wait).transpose()?;
                    }
                    in_flight.push_back(trail.submit(b.clone()));
                    n += 1;
                }
                for t in in_flight {
                    t.wait()?;
                }
                Ok(n)
            })
        })
        .collect();
    let mut out = (0, None);
    for w in workers {
        let Ok(r) = w.join() else {
            bail!("an append thread panicked");
        };
        tally(&mut out, r);
    }
    Ok(out)
}

/// Add one writer's count (or its error) to the outcome.
fn tally(out: &mut AppendOutcome, r: Result<u64, crate::audit::AuditError>) {
    match r {
        Ok(n) => out.0 += n,
        Err(e) => out.1 = Some(e),
    }
}

/// [`append_threads`] with async tasks awaiting their tickets.
fn append_tasks(
    trail: &Arc<Trail>,
    bodies: &Arc<Vec<RecordBody>>,
    tasks: usize,
    repeat: u64,
    pipeline: usize,
) -> anyhow::Result<AppendOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let (trail, bodies) = (trail.clone(), bodies.clone());
                tokio::spawn(async move {
                    let mut in_flight = std::collections::VecDeque::new();
                    let mut n = 0;
                    for b in bodies.iter().cycle().take(planned(&bodies, repeat)) {
                        if in_flight.len() >= pipeline
                            && let Some(t) = in_flight.pop_front()
                        {
                            t.await?;
                        }
                        in_flight.push_back(trail.submit(b.clone()));
                        n += 1;
                    }
                    for t in in_flight {
                        t.await?;
                    }
                    Ok::<u64, crate::audit::AuditError>(n)
                })
            })
            .collect();
        let mut out = (0, None);
        for w in workers {
            let Ok(r) = w.await else {
                bail!("an append task panicked");
            };
            tally(&mut out, r);
        }
        Ok(out)
    })
}

/// How many records one writer appends: every body `repeat` times (0: until
/// killed).
fn planned(bodies: &[RecordBody], repeat: u64) -> usize {
    match repeat {
        0 => usize::MAX,
        r => bodies
            .len()
            .saturating_mul(usize::try_from(r).unwrap_or(usize::MAX)),
    }
}
