//! `audit verify`: check one trail (one or more files, oldest first) record
//! by record, stopping at the first bad one.
//!
//! Per line, in this order: it ends in a newline (else *torn line*), it has
//! the record layout and is valid JSON (else *malformed JSON*), its hash
//! matches its bytes (*hash mismatch*), its seq follows the previous one
//! (*duplicate* when it does not advance, *seq gap* when it skips), its
//! `prev` is the previous record's hash (*broken link*), and a checkpoint's
//! signature verifies with the given key (*bad signature*). Across files, a
//! file must end in a rotation and the next one start with the `continued`
//! record that links to it (*broken link*). With a key, the trail must start
//! with a checkpoint of that key (when it starts at seq 1) and end in a
//! closing checkpoint (*unsealed tail*).
//!
//! Streaming: memory is O(1) in the size of the trail. This module reads and
//! reports; it never changes a file.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::blocks::{self, End};
use super::line::{self, Parsed};
use super::record::{CheckpointReason, RecordHash};
pub use super::verdict::{CheckpointInfo, Fault, FaultKind, FileSummary, RecoveredInfo, Report};
use super::{AuditError, keys};

#[derive(Clone, Copy, PartialEq, Eq)]
enum FileEnd {
    Open,
    /// A `rotated` record: only a rotation checkpoint may follow.
    Rotated,
    /// Rotated and (if signed) sealed: the next record is in the next file.
    Closed,
}

/// Streaming verifier; feed files in chain order, then [`Verifier::finish`].
pub struct Verifier {
    key: Option<(VerifyingKey, String)>,
    report: Report,
    last: Option<(u64, RecordHash)>,
    end: FileEnd,
    /// The last record is a closing checkpoint of the key (or, without a
    /// key, a closing checkpoint).
    sealed: bool,
    /// First record after the last checkpoint: (file index, line, seq).
    first_unsealed: Option<(usize, u64, u64)>,
    /// Last record seen: (file index, line, seq), for an unsealed tail.
    last_at: Option<(usize, u64, u64)>,
    /// Check JSON syntax on a helper thread.
    parallel: bool,
}

impl Verifier {
    /// A verifier; with `key`, signatures are checked and the trail must be
    /// sealed by it.
    pub fn new(key: Option<VerifyingKey>) -> Verifier {
        let key = key.map(|k| {
            let id = keys::key_id(&k);
            (k, id)
        });
        Verifier {
            report: Report {
                ok: true,
                files: Vec::new(),
                records: 0,
                first_seq: None,
                head_seq: None,
                head_hash: None,
                continues: None,
                checkpoints: 0,
                key_id: key.as_ref().map(|(_, id)| id.clone()),
                last_checkpoint: None,
                recovered: Vec::new(),
                fault: None,
            },
            key,
            last: None,
            end: FileEnd::Open,
            sealed: false,
            first_unsealed: None,
            last_at: None,
            parallel: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        }
    }

    /// Whether a fault was found (feeding more is pointless).
    pub fn failed(&self) -> bool {
        self.report.fault.is_some()
    }

    /// Check the JSON syntax inline instead of on a helper thread.
    pub fn single_threaded(mut self) -> Verifier {
        self.parallel = false;
        self
    }

    /// Check the next file of the trail.
    pub fn feed(&mut self, path: &Path, mut input: impl Read) -> std::io::Result<()> {
        if self.failed() {
            return Ok(());
        }
        self.report.files.push(FileSummary {
            path: path.to_path_buf(),
            records: 0,
            bytes: 0,
        });
        let mut first_in_file = true;
        // 1-based number of the next line.
        let mut number = 1u64;
        let end = blocks::for_each(&mut input, self.parallel, &mut |b| {
            let bytes = b.bytes();
            let mut start = 0;
            for (i, &nl) in b.ends().iter().enumerate() {
                let bad_json = b.bad_json.as_ref().filter(|(at, _)| *at == i);
                let hash = b.hash(i, &bytes[start..nl]);
                self.line(
                    path,
                    number,
                    &bytes[start..nl],
                    hash,
                    bad_json,
                    first_in_file,
                );
                if self.failed() {
                    return false;
                }
                first_in_file = false;
                start = nl + 1;
                number += 1;
            }
            if let Some(f) = self.report.files.last_mut() {
                f.bytes = b.offset + bytes.len() as u64;
            }
            true
        })?;
        match end {
            _ if self.failed() => {}
            End::Clean => {}
            End::Torn(len) => {
                let detail = format!(
                    "the last line has no newline ({len} bytes): a writer stopped mid-write; \
                     opening the trail with a writer moves it aside and records that"
                );
                self.fault_at((path, number), None, FaultKind::TornLine, detail);
            }
            End::TooLong => {
                let detail = "line longer than any record (1 MiB)".to_string();
                self.fault_at((path, number), None, FaultKind::MalformedJson, detail);
            }
        }
        Ok(())
    }

    /// One complete line.
    fn line(
        &mut self,
        path: &Path,
        number: u64,
        bytes: &[u8],
        computed: RecordHash,
        bad_json: Option<&(usize, String)>,
        first_in_file: bool,
    ) {
        let at = (path, number);
        let p = match line::parse(bytes) {
            Ok(p) => p,
            Err(why) => {
                let detail = format!("not a record: {why}");
                return self.fault_at(at, None, FaultKind::MalformedJson, detail);
            }
        };
        if let Some((_, detail)) = bad_json {
            return self.fault_at(at, Some(p.seq), FaultKind::MalformedJson, detail.clone());
        }
        self.record(at, &p, computed, first_in_file);
    }

    fn record(
        &mut self,
        at: (&Path, u64),
        p: &Parsed<'_>,
        computed: RecordHash,
        first_in_file: bool,
    ) {
        if computed != p.hash {
            let d = format!(
                "the record's bytes do not match its hash (recorded {}, computed {}): \
                 the record was edited",
                p.hash.short(),
                computed.short()
            );
            return self.fault_at(at, Some(p.seq), FaultKind::HashMismatch, d);
        }
        let continued = p.kind == "continued";
        match self.last {
            None => {
                if continued {
                    self.report.continues = Some(format!(
                        "{} continues an earlier file at seq {} (prev {}) that was not given; \
                         pass the archives first, oldest first, to check that link",
                        at.0.display(),
                        p.seq - 1,
                        p.prev.short()
                    ));
                } else if p.seq != 1 {
                    let d = format!(
                        "the trail starts at seq {} without a `continued` record: records \
                         1..{} are missing",
                        p.seq,
                        p.seq - 1
                    );
                    return self.fault_at(at, Some(p.seq), FaultKind::SeqGap, d);
                } else if p.prev != RecordHash::GENESIS {
                    let d = "the first record's prev is not 64 zeros".to_string();
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                } else if self.key.is_some() && p.kind != "checkpoint" {
                    let d = "the trail does not start with a checkpoint of the key: it was not \
                             written by a signing writer from its start"
                        .to_string();
                    return self.fault_at(at, Some(p.seq), FaultKind::UnsealedTail, d);
                }
            }
            Some((seq, hash)) => {
                if first_in_file && self.end == FileEnd::Rotated && self.key.is_some() {
                    let d = format!(
                        "the previous file ends at seq {seq} in a rotation without its rotation \
                         checkpoint, so it is not sealed"
                    );
                    return self.fault_at(at, Some(p.seq), FaultKind::UnsealedTail, d);
                }
                if first_in_file && self.end == FileEnd::Open {
                    let d = format!(
                        "the previous file ends at seq {seq} without a rotation, so this file \
                         cannot follow it (files out of order, or one missing?)"
                    );
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                }
                if first_in_file && !continued {
                    let d = "a file after a rotation must start with a `continued` record".into();
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                }
                if !first_in_file && continued {
                    let d = "a `continued` record in the middle of a file".into();
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                }
                if !first_in_file && self.end == FileEnd::Closed {
                    let d = format!("records after this file's rotation point (seq {seq})");
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                }
                if p.seq <= seq {
                    let d = if p.hash == hash {
                        format!("seq {} repeats the previous record", p.seq)
                    } else {
                        format!(
                            "seq {} was already seen (expected {}): a record was duplicated \
                             or moved back",
                            p.seq,
                            seq + 1
                        )
                    };
                    return self.fault_at(at, Some(p.seq), FaultKind::Duplicate, d);
                }
                if p.seq != seq + 1 {
                    let d = format!(
                        "seq {} follows seq {seq}: records {}..{} are missing or were reordered",
                        p.seq,
                        seq + 1,
                        p.seq - 1
                    );
                    return self.fault_at(at, Some(p.seq), FaultKind::SeqGap, d);
                }
                if p.prev != hash {
                    let d = format!(
                        "prev {} is not the hash of seq {seq} ({}): a record was replaced or \
                         inserted",
                        p.prev.short(),
                        hash.short()
                    );
                    return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                }
            }
        }
        if !first_in_file && self.end == FileEnd::Rotated && p.kind != "checkpoint" {
            let d = "only a rotation checkpoint may follow a `rotated` record".into();
            return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
        }
        let mut closing = false;
        match p.kind {
            "checkpoint" => {
                let c = match p.checkpoint() {
                    Ok(c) => c,
                    Err(w) => {
                        return self.fault_at(at, Some(p.seq), FaultKind::MalformedJson, w.into());
                    }
                };
                let mut verified = false;
                if let Some((key, id)) = &self.key {
                    if c.key_id != id {
                        let d = format!(
                            "checkpoint signed by key {}, not by the given key {id}: the trail \
                             was sealed by another key",
                            c.key_id
                        );
                        return self.fault_at(at, Some(p.seq), FaultKind::BadSignature, d);
                    }
                    if let Err(w) = line::verify_signature(&c, key) {
                        return self.fault_at(at, Some(p.seq), FaultKind::BadSignature, w);
                    }
                    verified = true;
                }
                if self.end == FileEnd::Rotated {
                    if c.reason != CheckpointReason::Rotation {
                        let d =
                            "the checkpoint after a `rotated` record must be a rotation one".into();
                        return self.fault_at(at, Some(p.seq), FaultKind::BrokenLink, d);
                    }
                    self.end = FileEnd::Closed;
                }
                closing = c.reason.closes();
                self.report.checkpoints += 1;
                self.report.last_checkpoint = Some(CheckpointInfo {
                    seq: p.seq,
                    reason: c.reason,
                    key_id: c.key_id.to_string(),
                    verified,
                });
            }
            "rotated" => self.end = FileEnd::Rotated,
            "recovered" if self.report.recovered.len() < 100 => {
                self.report.recovered.push(RecoveredInfo {
                    seq: p.seq,
                    file: at.0.to_path_buf(),
                    line: at.1,
                })
            }
            _ => {}
        }
        if continued {
            self.end = FileEnd::Open;
        }
        self.sealed = closing;
        if p.kind == "checkpoint" {
            // Everything before a checkpoint is covered by its signature.
            self.first_unsealed = None;
        } else if self.first_unsealed.is_none() {
            self.first_unsealed = Some((self.report.files.len() - 1, at.1, p.seq));
        }
        self.last_at = Some((self.report.files.len() - 1, at.1, p.seq));
        self.last = Some((p.seq, p.hash));
        self.report.records += 1;
        if let Some(f) = self.report.files.last_mut() {
            f.records += 1;
        }
        self.report.first_seq.get_or_insert(p.seq);
    }

    /// The report; with a key, an unsealed tail is a fault.
    pub fn finish(mut self) -> Report {
        if let Some((seq, hash)) = self.last {
            self.report.head_seq = Some(seq);
            self.report.head_hash = Some(hash.to_string());
        }
        if self.report.fault.is_none() && self.key.is_some() && !self.sealed {
            let (file, line, seq) = self.first_unsealed.or(self.last_at).unwrap_or((0, 0, 0));
            let file = self
                .report
                .files
                .get(file)
                .map(|f| f.path.clone())
                .unwrap_or_default();
            let detail = match (self.report.records, &self.report.last_checkpoint) {
                (0, _) => "the trail has no records, so nothing is sealed".to_string(),
                (_, Some(c)) if self.first_unsealed.is_none() => format!(
                    "the trail ends in {} checkpoint (seq {}), which does not close it: \
                     records after it were cut off, or a writer is still running",
                    match c.reason {
                        CheckpointReason::Open => "its opening",
                        _ => "a periodic",
                    },
                    c.seq
                ),
                (_, c) => format!(
                    "records from seq {seq} on are not sealed by a checkpoint{}: they were cut \
                     off or added after the last seal, or a writer is still running",
                    c.as_ref()
                        .map(|c| format!(" (last checkpoint: seq {})", c.seq))
                        .unwrap_or_default()
                ),
            };
            self.report.fault = Some(Fault {
                kind: FaultKind::UnsealedTail,
                file,
                line,
                seq: Some(seq).filter(|&s| s > 0),
                detail,
            });
            self.report.ok = false;
        }
        self.report
    }

    fn fault_at(&mut self, at: (&Path, u64), seq: Option<u64>, kind: FaultKind, detail: String) {
        self.report.ok = false;
        self.report.fault = Some(Fault {
            kind,
            file: at.0.to_path_buf(),
            line: at.1,
            seq,
            detail,
        });
    }
}

/// Verify files of one trail, oldest first. A file given twice (the same
/// inode under two names: a rotation interrupted after the archive link) is
/// read once.
pub fn verify_files(paths: &[PathBuf], key: Option<VerifyingKey>) -> Result<Report, AuditError> {
    use std::os::unix::fs::MetadataExt;
    let mut v = Verifier::new(key);
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        let (f, m) = super::reader::open_trail(p)?;
        if !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        v.feed(p, f).map_err(|e| AuditError::io("read", p, e))?;
        if v.failed() {
            break;
        }
    }
    Ok(v.finish())
}
