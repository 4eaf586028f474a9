//! `enforcecore redact`: the redaction engine as a stdin → stdout filter.
//!
//! The same engine `run` puts on a tool's pipes, so operators can check what a
//! policy's redaction does to a sample before shipping it, or scrub a log file.
//! Receipts (counts, keyed fingerprints) go to stderr on request; detected
//! values are never printed anywhere.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::policy::{self, Strategy};
use crate::redact::{Engine, Key, KeySource, RedactError, Stream, StreamFilter};
use crate::report::RedactionReceipt;

/// Arguments of `enforcecore redact`.
#[derive(Debug, Args)]
#[command(after_long_help = EXAMPLES)]
pub struct RedactArgs {
    /// Apply this policy's `redaction` settings: detectors, custom patterns,
    /// strategy and key. Without it every built-in detector runs with the
    /// placeholder strategy (`[REDACTED:EMAIL]`). The policy's `streams` list is
    /// not consulted: everything read from stdin is redacted.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Key file for keyed hashes and fingerprints (at least 16 bytes, mode
    /// 0600). Default: the policy's `key_file`, else the host key, which is
    /// created on first use (root: /var/lib/enforcecore/redaction.key; others:
    /// $XDG_STATE_HOME/enforcecore/redaction.key or
    /// ~/.local/state/enforcecore/redaction.key). Only read when needed: the
    /// hash strategy, --json, or a policy that names a key file.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// At the end, print how many values each detector replaced, on stderr.
    #[arg(long)]
    pub stats: bool,
    /// At the end, print the receipts as JSON on stderr: per detector the
    /// count and the keyed fingerprints of distinct values (never the values).
    #[arg(long, conflicts_with = "stats")]
    pub json: bool,
    /// Redact on one thread. By default, when the machine has a second CPU,
    /// one thread reads stdin and finds where detectors must look while
    /// another runs them and writes: more throughput for a little more CPU
    /// time. The output is the same either way.
    #[arg(long)]
    pub single_thread: bool,
}

const EXAMPLES: &str = "Examples:
  tool-output | enforcecore redact
  enforcecore redact --policy policies/strict.yaml < app.log > app.redacted.log
  enforcecore redact --json < app.log > /dev/null      # receipts only

Exit status: 0 on success, 1 when the policy or key cannot be used or on an I/O
error. A closed stdout ends the filter quietly. Detectors and strategies are
described in docs/redaction.md.";

/// Size of each read from stdin (a pipe holds 64 KiB; staying small keeps the
/// input, the window and the output in cache).
const CHUNK: usize = 64 * 1024;

/// Capacity asked for the stdin pipe: 1 MiB, the default
/// `/proc/sys/fs/pipe-max-size`, which any user may ask for.
const PIPE_SIZE: i32 = 1 << 20;

/// Execute `enforcecore redact`.
pub fn execute(args: RedactArgs) -> anyhow::Result<u8> {
    let engine = Arc::new(engine(&args)?);
    let receipts = filter(&engine, !args.single_thread)?;
    if args.json {
        let mut err = io::stderr().lock();
        serde_json::to_writer_pretty(&mut err, &receipts)?;
        writeln!(err)?;
    } else if args.stats {
        let mut err = io::stderr().lock();
        if receipts.is_empty() {
            writeln!(err, "redact: nothing replaced")?;
        }
        for r in &receipts {
            writeln!(err, "redact: {:<18} {}", r.detector, r.count)?;
        }
    }
    Ok(0)
}

fn engine(args: &RedactArgs) -> anyhow::Result<Engine> {
    let settings = match &args.policy {
        Some(path) => Some(
            policy::load(path)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .redaction,
        ),
        None => None,
    };
    let strategy = settings
        .as_ref()
        .map_or(Strategy::Placeholder, |s| s.strategy.value);
    let key_file = match &args.key {
        Some(path) => Some((path.clone(), KeySource::CommandLine)),
        None => settings.as_ref().and_then(|s| {
            s.key_file
                .as_ref()
                .map(|k| (k.value.clone(), KeySource::Policy))
        }),
    };
    let key = match key_file {
        Some((path, named_by)) => Some(Key::load(&path, named_by)?),
        None if args.json || strategy == Strategy::Hash => Some(Key::host()?),
        None => None,
    };
    Ok(match settings {
        Some(s) => Engine::with_key(&s, key)?,
        None => Engine::builtin(key),
    })
}

/// Copy stdin to stdout through one redacting stream: on two threads (one
/// reads and classifies, one detects and writes) when `threads` allows and
/// there is a second CPU, otherwise on this one. The output is the same
/// either way.
fn filter(engine: &Arc<Engine>, threads: bool) -> anyhow::Result<Vec<RedactionReceipt>> {
    let input = File::from(
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot use stdin")?,
    );
    let mut output = File::from(
        io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot use stdout")?,
    );
    let mut stream = engine.stream("stdin");
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if threads && two_cpus {
        // A larger pipe lets the writer run ahead and a read return more at
        // once: fewer hand-overs between the threads. (On one thread it
        // measured slower.) Not a pipe, or not allowed: no matter.
        let _ = nix::fcntl::fcntl(input.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        return match stream.pump(input, &mut output) {
            Ok(()) => Ok(stream.receipts()),
            Err(RedactError::Write { source }) if source.kind() == io::ErrorKind::BrokenPipe => {
                Ok(stream.receipts())
            }
            Err(e) => Err(e.into()),
        };
    }
    serial(input, &mut output, &mut stream)
}

/// The filter on one thread.
fn serial(
    mut input: File,
    output: &mut File,
    stream: &mut Stream,
) -> anyhow::Result<Vec<RedactionReceipt>> {
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read stdin"),
        };
        out.clear();
        stream.push(&buf[..n], &mut out);
        if !write(output, &out)? {
            return Ok(stream.receipts());
        }
    }
    out.clear();
    stream.finish(&mut out);
    write(output, &out)?;
    Ok(stream.receipts())
}

/// Write everything; `false` when the reader went away.
fn write(output: &mut File, bytes: &[u8]) -> anyhow::Result<bool> {
    match output.write_all(bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write stdout"),
    }
}
