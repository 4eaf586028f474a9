//! What `audit verify` reports: the first fault, counts, the head, the
//! checkpoints — as data (serialized for `--json`) and as text for people.
//! This module only describes a verification; it never performs one.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::record::CheckpointReason;

/// What is wrong with the first bad record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The record's bytes do not match its `hash`.
    HashMismatch,
    /// `prev` is not the previous record's hash, or files do not link.
    BrokenLink,
    /// A seq is missing (deleted or reordered records).
    SeqGap,
    /// A seq that was already seen (duplicated or moved record).
    Duplicate,
    /// A checkpoint that does not verify with the key, or of another key.
    BadSignature,
    /// With a key: the trail does not end in (or start with) a checkpoint.
    UnsealedTail,
    /// The last line has no newline (a writer stopped mid-write).
    TornLine,
    /// Not a record: bad layout or invalid JSON.
    MalformedJson,
}

impl FaultKind {
    /// Human spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::HashMismatch => "hash mismatch",
            FaultKind::BrokenLink => "broken link",
            FaultKind::SeqGap => "seq gap",
            FaultKind::Duplicate => "duplicate",
            FaultKind::BadSignature => "bad signature",
            FaultKind::UnsealedTail => "unsealed tail",
            FaultKind::TornLine => "torn line",
            FaultKind::MalformedJson => "malformed JSON",
        }
    }
}

/// The first bad record.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    /// What is wrong.
    pub kind: FaultKind,
    /// File holding it.
    pub file: PathBuf,
    /// 1-based line in that file.
    pub line: u64,
    /// Its seq, when it could be read.
    pub seq: Option<u64>,
    /// Details and what to do.
    pub detail: String,
}

/// A checkpoint as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointInfo {
    /// Its seq.
    pub seq: u64,
    /// Why it was written.
    pub reason: CheckpointReason,
    /// Key id that signed.
    pub key_id: String,
    /// Whether its signature was checked (a key was given).
    pub verified: bool,
}

/// A `recovered` record.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveredInfo {
    /// Its seq.
    pub seq: u64,
    /// File and line.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
}

/// Per-file counts.
#[derive(Clone, Debug, Serialize)]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// Records read from it.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// No fault.
    pub ok: bool,
    /// Files, in the order given.
    pub files: Vec<FileSummary>,
    /// Records checked.
    pub records: u64,
    /// Seq of the first record.
    pub first_seq: Option<u64>,
    /// Seq of the last good record.
    pub head_seq: Option<u64>,
    /// Hash of the last good record.
    pub head_hash: Option<String>,
    /// The first file continues an earlier one that was not given.
    pub continues: Option<String>,
    /// Checkpoints seen.
    pub checkpoints: u64,
    /// Key id given with `--key`.
    pub key_id: Option<String>,
    /// The last checkpoint.
    pub last_checkpoint: Option<CheckpointInfo>,
    /// `recovered` records (torn tails found by a writer), first 100.
    pub recovered: Vec<RecoveredInfo>,
    /// The first bad record.
    pub fault: Option<Fault>,
}

impl Report {
    /// The report for people: the fault (file:line: seq N: kind: detail) or
    /// "intact", the head, checkpoints and notes.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let r = self;
        let files = r.files.len();
        if let Some(f) = &r.fault {
            let seq = f.seq.map(|s| format!("seq {s}: ")).unwrap_or_default();
            writeln!(
                out,
                "{}:{}: {seq}{}: {}",
                f.file.display(),
                f.line,
                f.kind.as_str(),
                f.detail
            )?;
            writeln!(
                out,
                "TAMPERED OR DAMAGED: {} good records before it{}",
                r.records,
                r.head_seq
                    .map(|s| format!(" (up to seq {s})"))
                    .unwrap_or_default()
            )?;
        } else {
            let range = match (r.first_seq, r.head_seq) {
                (Some(a), Some(b)) => format!(" (seq {a}..{b})"),
                _ => String::new(),
            };
            let plural = if files == 1 { "" } else { "s" };
            writeln!(
                out,
                "intact: {} records{range} in {files} file{plural}",
                r.records
            )?;
            if let (Some(s), Some(h)) = (r.head_seq, &r.head_hash) {
                writeln!(out, "head: seq {s} {h}")?;
            }
        }
        match (&r.last_checkpoint, &r.key_id) {
            (Some(c), Some(id)) => writeln!(
                out,
                "checkpoints: {} signed by key {id}, last at seq {} ({})",
                r.checkpoints,
                c.seq,
                c.reason.as_str()
            )?,
            (Some(c), None) => writeln!(
                out,
                "checkpoints: {}, last at seq {} by key {} — signatures NOT checked: pass --key PUB \
                 to check them and to catch truncation",
                r.checkpoints, c.seq, c.key_id
            )?,
            (None, None) if r.fault.is_none() => writeln!(
                out,
                "no checkpoints: the chain is consistent, but nothing proves it was not truncated \
                 or rebuilt (sign with `run --audit-key`)"
            )?,
            _ => {}
        }
        if let Some(c) = &r.continues {
            writeln!(out, "note: {c}")?;
        }
        for x in &r.recovered {
            writeln!(
                out,
                "note: {}:{}: seq {} records a torn tail recovered by a writer (see `audit show --kind recovered`)",
                x.file.display(),
                x.line,
                x.seq
            )?;
        }
        Ok(())
    }
}
