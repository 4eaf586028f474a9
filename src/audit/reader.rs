//! Reading records back for people: `audit show`, `audit tail`, `audit why`.
//!
//! A [`Record`] is one line parsed leniently — every field as JSON, plus the
//! typed [`RecordBody`] when the kind is known — so that trails written by a
//! newer EnforceCore (new kinds, new fields) still show. Reading is not
//! verifying: nothing here checks hashes or links (that is [`super::verify`]),
//! and nothing here may change a file.

use std::fs::{File, Metadata};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::AuditError;
use super::line;
use super::lines::LineReader;
use super::record::RecordBody;
use crate::regular_file::{self, OpenError, Symlinks};

/// One record, as read.
#[derive(Clone, Debug)]
pub struct Record {
    /// Sequence number.
    pub seq: u64,
    /// Timestamp text (RFC 3339, UTC).
    pub ts: String,
    /// The `kind` tag.
    pub kind: String,
    /// Every field of the line.
    pub fields: Map<String, Value>,
    /// The typed body, when the kind is known and its fields parse.
    pub body: Option<RecordBody>,
    /// The line as stored (no newline).
    pub line: Vec<u8>,
}

impl Record {
    /// Parse one line.
    pub fn parse(bytes: &[u8]) -> Result<Record, String> {
        let p = line::parse(bytes).map_err(str::to_owned)?;
        let fields: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
        let body = serde_json::from_value(Value::Object(fields.clone())).ok();
        Ok(Record {
            seq: p.seq,
            ts: p.ts.to_string(),
            kind: p.kind.to_string(),
            fields,
            body,
            line: bytes.to_vec(),
        })
    }

    /// A top-level text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// The run id, if the record has one.
    pub fn run(&self) -> Option<&str> {
        self.text("run")
    }

    /// The tool, if the record has one.
    pub fn tool(&self) -> Option<&str> {
        self.text("tool")
    }

    /// The timestamp as a time.
    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.ts).ok()
    }
}

/// Which records to show. Empty fields match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this run.
    pub run: Option<String>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only these kinds.
    pub kinds: Vec<String>,
    /// Not before.
    pub since: Option<SystemTime>,
    /// Not after.
    pub until: Option<SystemTime>,
}

impl Filter {
    /// Whether every record passes.
    pub fn is_empty(&self) -> bool {
        self.run.is_none()
            && self.tool.is_none()
            && self.kinds.is_empty()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Whether `r` passes.
    pub fn matches(&self, r: &Record) -> bool {
        if self
            .run
            .as_deref()
            .is_some_and(|want| r.run() != Some(want))
        {
            return false;
        }
        if self
            .tool
            .as_deref()
            .is_some_and(|want| r.tool() != Some(want))
        {
            return false;
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&r.kind) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = r.time() else { return false };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t > u) {
                return false;
            }
        }
        true
    }
}

/// A point in time from the command line: RFC 3339 (`2026-11-01T12:00:00Z`,
/// `2026-11-01 12:00:00`, UTC), a date (`2026-11-01`, midnight UTC), or an
/// age (`90m`, `2h`, `3days`: that long before `now`).
pub fn parse_time(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if s.len() == 10
        && let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z"))
    {
        return Ok(t);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    Err(format!(
        "`{s}` is not a time: use RFC 3339 (2026-11-01T12:00:00Z), a date (2026-11-01) or an \
         age (90m, 2h, 3days)"
    ))
}

/// Open a trail file for reading. Never waits on a FIFO; refuses anything
/// that is not a regular file.
pub fn open_trail(path: &Path) -> Result<(File, Metadata), AuditError> {
    regular_file::open(path, Symlinks::Follow).map_err(|e| match e {
        OpenError::Io(e) => AuditError::io("open", path, e),
        OpenError::NotRegular { kind } => AuditError::NotRegular {
            path: path.to_path_buf(),
            kind,
            expected: "an audit trail file",
        },
    })
}

/// Every record of `path` (parse failures as `Err` with the line number).
pub fn for_each(
    path: &Path,
    mut f: impl FnMut(Result<Record, (u64, String)>) -> bool,
) -> Result<(), AuditError> {
    let (file, _) = open_trail(path)?;
    let mut lines = LineReader::new(file);
    while let Some(l) = lines
        .next_line()
        .map_err(|e| AuditError::io("read", path, e))?
    {
        let r = if l.too_long {
            Err((l.number, "line longer than any record (1 MiB)".to_string()))
        } else if !l.terminated {
            Err((l.number, "torn last line (no newline)".to_string()))
        } else {
            Record::parse(l.bytes).map_err(|e| (l.number, e))
        };
        if !f(r) {
            break;
        }
    }
    Ok(())
}

/// The record with sequence number `seq`, if `path` has it.
pub fn find(path: &Path, seq: u64) -> Result<Option<Record>, AuditError> {
    let mut found = None;
    for_each(path, |r| match r {
        Ok(r) if r.seq == seq => {
            found = Some(r);
            false
        }
        _ => true,
    })?;
    Ok(found)
}

/// Offset where the last `n` complete lines of `file` begin (a torn tail
/// after them is not counted; `n == 0`: the end of the last complete line).
pub fn last_lines_start(file: &File, len: u64, n: usize) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    // The last `n` complete lines start just past the newline `n + 1`-th
    // from the end (the last newline ends the last complete line).
    let target = n.saturating_add(1);
    let mut end = len;
    let mut seen = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        for i in memchr::memrchr_iter(b'\n', chunk) {
            seen += 1;
            if seen == target {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Offset where the last `n` complete records of `file` that `filter`
/// passes begin. Reads the first `len` bytes in full; records from there on
/// that do not pass are the caller's to skip.
pub fn last_matches_start(
    file: &File,
    len: u64,
    n: usize,
    filter: &Filter,
) -> std::io::Result<u64> {
    let mut starts = std::collections::VecDeque::with_capacity(n.min(4096));
    if n > 0 {
        let mut lines = LineReader::new(std::io::Read::take(file, len));
        while let Some(l) = lines.next_line()? {
            if !l.terminated || l.too_long {
                continue;
            }
            if Record::parse(l.bytes).is_ok_and(|r| filter.matches(&r)) {
                if starts.len() == n {
                    starts.pop_front();
                }
                starts.push_back(l.offset);
            }
        }
    }
    match starts.front() {
        Some(&at) => Ok(at),
        // Nothing to show: start past the last complete line.
        None => last_lines_start(file, len, 0),
    }
}

/// Sleep used while following a trail.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_count_complete_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let start = |content: &[u8], n| {
            std::fs::write(&p, content).unwrap();
            let f = File::open(&p).unwrap();
            last_lines_start(&f, content.len() as u64, n).unwrap()
        };
        assert_eq!(start(b"a\nb\nc\n", 0), 6);
        assert_eq!(start(b"a\nb\nc\n", 1), 4);
        assert_eq!(start(b"a\nb\nc\n", 2), 2);
        assert_eq!(start(b"a\nb\nc\n", 3), 0);
        assert_eq!(start(b"a\nb\nc\n", 9), 0);
        // A torn tail is neither counted nor skipped over.
        assert_eq!(start(b"a\nb\nto", 0), 4);
        assert_eq!(start(b"a\nb\nto", 1), 2);
        assert_eq!(start(b"", 0), 0);
        assert_eq!(start(b"torn", 0), 0);
    }

    #[test]
    fn times() {
        let now = humantime::parse_rfc3339("2026-11-01T12:00:00Z").unwrap();
        let t = |s| parse_time(s, now).unwrap();
        assert_eq!(t("2026-11-01T10:00:00Z"), now - Duration::from_secs(7200));
        assert_eq!(t("2h"), now - Duration::from_secs(7200));
        assert_eq!(t("2026-11-01"), now - Duration::from_secs(12 * 3600));
        assert!(parse_time("yesterday-ish", now).is_err());
    }
}
