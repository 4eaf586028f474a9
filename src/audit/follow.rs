//! `audit tail -f`: follow a live trail, across rotation and recovery.
//!
//! The follower reads what was appended since its last look and hands out
//! complete lines only (a batch being written shows up once its newline is
//! there; a torn tail that a writer later moves aside is never shown). When
//! the path names a new file (rotation), it first drains the old file, then
//! continues from the start of the new one. It only reads.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::AuditError;
use super::line::MAX_LINE;

/// A followed trail file.
pub struct Follower {
    path: PathBuf,
    file: File,
    id: (u64, u64),
    /// Just past the last newline handed out.
    offset: u64,
}

impl Follower {
    /// Follow `path` from byte `offset` (use the file length to see only new
    /// records, 0 for all of them).
    pub fn open(path: &Path, offset: u64) -> Result<Follower, AuditError> {
        let (file, id) = open(path)?;
        Ok(Follower {
            path: path.to_path_buf(),
            file,
            id,
            offset,
        })
    }

    /// Read what is new and pass each complete line (without `\n`) to `emit`.
    /// Returns whether anything was emitted. `emit` returning false stops.
    pub fn poll(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) -> Result<bool, AuditError> {
        let mut any = self.drain(emit)?;
        // Rotated (or replaced): the old file is complete; move to the new one.
        if let Ok(m) = fs::metadata(&self.path)
            && (m.dev(), m.ino()) != self.id
        {
            any |= self.drain(emit)?;
            let (file, id) = open(&self.path)?;
            (self.file, self.id, self.offset) = (file, id, 0);
            any |= self.drain(emit)?;
        }
        Ok(any)
    }

    /// Emit the complete lines between `offset` and the end of the file.
    /// `offset` only ever moves past a newline: an incomplete last line is
    /// read again next time, so a torn tail that a writer cuts and replaces
    /// is never mixed into what follows.
    fn drain(&mut self, emit: &mut dyn FnMut(&[u8]) -> bool) -> Result<bool, AuditError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| AuditError::io("stat", &self.path, e))?
            .len();
        if len < self.offset {
            tracing::warn!(
                "{}: the file shrank below what was already shown ({} < {} bytes)",
                self.path.display(),
                len,
                self.offset
            );
            self.offset = len;
        }
        let mut any = false;
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        let mut at = self.offset;
        loop {
            let n = self
                .file
                .read_at(&mut buf, at)
                .map_err(|e| AuditError::io("read", &self.path, e))?;
            if n == 0 {
                return Ok(any);
            }
            at += n as u64;
            pending.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(i) = memchr::memchr(b'\n', &pending[start..]) {
                any = true;
                self.offset += (i + 1) as u64;
                if !emit(&pending[start..start + i]) {
                    return Ok(true);
                }
                start += i + 1;
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE {
                tracing::warn!(
                    "{}: skipping a line longer than any record",
                    self.path.display()
                );
                self.offset += pending.len() as u64;
                pending.clear();
            }
        }
    }
}

fn open(path: &Path) -> Result<(File, (u64, u64)), AuditError> {
    let (file, m) = super::reader::open_trail(path)?;
    Ok((file, (m.dev(), m.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn partial_lines_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, b"a\nb").unwrap();
        let mut f = Follower::open(&p, 0).unwrap();
        let mut got: Vec<String> = Vec::new();
        let mut emit = |l: &[u8]| {
            got.push(String::from_utf8_lossy(l).into_owned());
            true
        };
        f.poll(&mut emit).unwrap();
        // The torn `b` is cut, then a record appended.
        let file = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        file.set_len(2).unwrap();
        (&file).write_all(b"c\nd").unwrap();
        f.poll(&mut emit).unwrap();
        (&file).write_all(b"\n").unwrap();
        // Rotation: the old file gets one more line, then a new file appears.
        (&file).write_all(b"e\n").unwrap();
        std::fs::rename(&p, dir.path().join("t.jsonl.000000000001")).unwrap();
        std::fs::write(&p, b"f\n").unwrap();
        f.poll(&mut emit).unwrap();
        assert_eq!(got, ["a", "c", "d", "e", "f"]);
    }
}
