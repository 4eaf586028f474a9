//! A trail's files on disk, as the writer reads them: the record a file
//! ends with, its first record, the archives beside it, and the names and
//! directory syncs of those files.
//!
//! Everything here reads or names files; nothing here writes a record or
//! decides what to do about what it finds (that is [`super::segment`]).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::AuditError;
use super::line::{self, MAX_LINE};
use super::record::{CheckpointReason, RecordHash};

/// How the file ends, as far as the next record is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// No record yet.
    Empty,
    /// An ordinary record (or a periodic checkpoint): unsealed.
    Open,
    /// A checkpoint that closes the trail (run end, close, ...).
    Sealed,
    /// A `rotated` record or a rotation checkpoint: the file is finished.
    Rotated,
}

/// The last record of the active file and what the writer needs about it.
#[derive(Clone, Debug)]
pub struct Head {
    /// Its seq (0: no record in the trail at all).
    pub seq: u64,
    /// Its hash ([`RecordHash::GENESIS`] when there is none).
    pub hash: RecordHash,
    /// File length right after it.
    pub end: u64,
    /// How the file ends.
    pub tail: Tail,
    /// For an empty file that follows a rotated one: that file's name.
    pub continues: Option<String>,
}

/// First record of the file: names the archive, dates the file.
#[derive(Clone, Copy, Debug)]
pub struct First {
    /// Its seq.
    pub seq: u64,
    /// Its time.
    pub ts: SystemTime,
}

/// The directory holding `path`.
pub fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The final component of `path`, as text.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit.jsonl".into())
}

/// fsync the directory holding `path`, so that a new name in it is durable.
pub fn sync_dir(path: &Path) -> Result<(), AuditError> {
    let dir = parent(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("fsync the directory", dir, e))
}

/// How much of a file's end is read first when looking for its last lines:
/// records are a few hundred bytes, so one small read usually settles it;
/// the window grows (up to [`MAX_LINE`]) only for long records.
const TAIL_WINDOW: usize = 4096;

/// Offset just past the last `\n` in the first `len` bytes (0 if none).
pub fn last_newline_end(file: &File, len: u64, path: &Path) -> Result<u64, AuditError> {
    let mut buf = vec![0u8; TAIL_WINDOW];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)
            .map_err(|e| AuditError::io("read", path, e))?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
        if buf.len() < 64 * 1024 {
            buf = vec![0u8; 64 * 1024];
        }
    }
    Ok(0)
}

/// The complete line ending at `end` (which follows a `\n`), without it,
/// and its offset. Reads a growing window back from `end` until it holds the
/// previous `\n` (or the file's start); a line longer than [`MAX_LINE`] is
/// damage.
pub fn line_before(file: &File, end: u64, path: &Path) -> Result<(u64, Vec<u8>), AuditError> {
    let max = (MAX_LINE as u64).min(end) as usize;
    let mut want = TAIL_WINDOW.min(max);
    loop {
        let mut buf = vec![0u8; want];
        let start = end - want as u64;
        file.read_exact_at(&mut buf, start)
            .map_err(|e| AuditError::io("read", path, e))?;
        buf.pop(); // the `\n`
        match memchr::memrchr(b'\n', &buf) {
            Some(i) => return Ok((start + i as u64 + 1, buf.split_off(i + 1))),
            None if start == 0 => return Ok((0, buf)),
            None if want == max => {
                return Err(AuditError::Damaged {
                    path: path.to_path_buf(),
                    offset: start,
                    why: "the last line is longer than any record (1 MiB)".into(),
                });
            }
            None => want = want.saturating_mul(8).min(max),
        }
    }
}

/// Head from the last record before `end`; the record must be intact.
pub fn read_head(file: &File, end: u64, path: &Path) -> Result<Head, AuditError> {
    let (offset, bytes) = line_before(file, end, path)?;
    let damaged = |why: String| AuditError::Damaged {
        path: path.to_path_buf(),
        offset,
        why,
    };
    let p =
        line::parse(&bytes).map_err(|w| damaged(format!("the last record is malformed: {w}")))?;
    if p.computed_hash() != p.hash() {
        return Err(damaged(format!(
            "the last record (seq {}) does not match its hash",
            p.seq
        )));
    }
    // The chain continues from it only if it continues the record before it
    // (a record copied in from another trail is intact on its own).
    if offset > 0 {
        let (_, before) = line_before(file, offset, path)?;
        let b = line::parse(&before)
            .map_err(|w| damaged(format!("the record before the last is malformed: {w}")))?;
        if b.seq.checked_add(1) != Some(p.seq) || p.prev() != b.hash() {
            return Err(damaged(format!(
                "the last record (seq {}) does not continue the one before it (seq {})",
                p.seq, b.seq
            )));
        }
    }
    let tail = match p.kind {
        "rotated" => Tail::Rotated,
        "checkpoint" => match p.checkpoint().map(|c| c.reason) {
            Ok(CheckpointReason::Rotation) => Tail::Rotated,
            Ok(CheckpointReason::Periodic | CheckpointReason::Open) => Tail::Open,
            Ok(_) => Tail::Sealed,
            Err(w) => return Err(damaged(format!("the last record is malformed: {w}"))),
        },
        _ => Tail::Open,
    };
    Ok(Head {
        seq: p.seq,
        hash: p.hash(),
        end,
        tail,
        continues: None,
    })
}

/// Head of an empty active file: it continues the newest archive, if any.
pub fn empty_file_head(path: &Path) -> Result<Head, AuditError> {
    let genesis = Head {
        seq: 0,
        hash: RecordHash::GENESIS,
        end: 0,
        tail: Tail::Empty,
        continues: None,
    };
    let Some(name) = newest_archive(path)? else {
        return Ok(genesis);
    };
    let apath = parent(path).join(&name);
    let (file, meta) = super::reader::open_trail(&apath)?;
    let len = meta.len();
    let end = last_newline_end(&file, len, &apath)?;
    if end == 0 {
        return Ok(genesis);
    }
    let h = read_head(&file, end, &apath)?;
    Ok(Head {
        end: 0,
        tail: Tail::Empty,
        continues: Some(name),
        ..h
    })
}

/// Archived files of a trail: `NAME.` followed by 12 digits.
pub fn archives(path: &Path) -> Result<Vec<String>, AuditError> {
    let dir = parent(path);
    let prefix = format!("{}.", file_name(path));
    let mut out = Vec::new();
    let entries = fs::read_dir(&dir).map_err(|e| AuditError::io("list", &dir, e))?;
    for e in entries {
        let e = e.map_err(|e| AuditError::io("list", &dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix(&prefix)
            && n.len() == 12
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn newest_archive(path: &Path) -> Result<Option<String>, AuditError> {
    Ok(archives(path)?.pop())
}

/// The first record of a file, if it has a complete one.
pub fn read_first(file: &File, path: &Path) -> Result<Option<First>, AuditError> {
    let mut buf = vec![0u8; 4096];
    let mut have = 0;
    loop {
        let n = file
            .read_at(&mut buf[have..], have as u64)
            .map_err(|e| AuditError::io("read", path, e))?;
        if n == 0 {
            return Ok(None);
        }
        have += n;
        if let Some(i) = memchr::memchr(b'\n', &buf[..have]) {
            let p = line::parse(&buf[..i]).map_err(|w| AuditError::Damaged {
                path: path.to_path_buf(),
                offset: 0,
                why: format!("the first record is malformed: {w}"),
            })?;
            let ts = humantime::parse_rfc3339(p.ts).unwrap_or_else(|_| SystemTime::now());
            return Ok(Some(First { seq: p.seq, ts }));
        }
        if have == buf.len() {
            if have >= MAX_LINE {
                return Err(AuditError::Damaged {
                    path: path.to_path_buf(),
                    offset: 0,
                    why: "the first line is longer than any record (1 MiB)".into(),
                });
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write");
        (f, bytes.len() as u64)
    }

    #[test]
    fn the_last_line_is_found_whatever_its_length() {
        for len in [
            1,
            100,
            TAIL_WINDOW - 2,
            TAIL_WINDOW,
            3 * TAIL_WINDOW,
            200_000,
        ] {
            let mut bytes = b"first\nsecond\n".to_vec();
            let last = vec![b'x'; len];
            bytes.extend_from_slice(&last);
            bytes.push(b'\n');
            let (f, end) = file_with(&bytes);
            let (offset, line) = line_before(f.as_file(), end, f.path()).expect("read");
            assert_eq!(offset, 13, "line of {len} bytes");
            assert_eq!(line, last);
            assert_eq!(last_newline_end(f.as_file(), end, f.path()).unwrap(), end);
        }
    }

    #[test]
    fn a_single_line_starts_at_zero() {
        let (f, end) = file_with(
            &[b'y'; 2 * TAIL_WINDOW + 1]
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<_>>(),
        );
        let (offset, line) = line_before(f.as_file(), end, f.path()).expect("read");
        assert_eq!((offset, line.len()), (0, 2 * TAIL_WINDOW + 1));
    }

    #[test]
    fn a_last_line_over_the_record_limit_is_damage() {
        let mut bytes = b"a\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'z', MAX_LINE + 10));
        bytes.push(b'\n');
        let (f, end) = file_with(&bytes);
        match line_before(f.as_file(), end, f.path()) {
            Err(AuditError::Damaged { offset, .. }) => assert_eq!(offset, end - MAX_LINE as u64),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_long_torn_tail_is_skipped() {
        let mut bytes = b"one\ntwo\n".to_vec();
        bytes.extend(std::iter::repeat_n(b't', 100_000));
        let (f, end) = file_with(&bytes);
        assert_eq!(last_newline_end(f.as_file(), end, f.path()).unwrap(), 8);
        let (f, end) = file_with(&[b'u'; 70_000]);
        assert_eq!(last_newline_end(f.as_file(), end, f.path()).unwrap(), 0);
    }
}
