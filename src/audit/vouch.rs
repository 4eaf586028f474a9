//! What a signing writer checks before it signs: the records it has not
//! written itself, back to a checkpoint of its own key.
//!
//! A checkpoint vouches for the whole chain before it. A writer that signed
//! whatever it found at the end of the file would give a rewritten chain a
//! valid signature, so a signing writer checks (hash and link of every
//! record) what others appended since it last wrote, or — when it opens a
//! trail — everything back to the newest checkpoint of its key whose
//! signature verifies. A genesis-rooted chain with no such checkpoint was
//! never under this key and is refused (signing writers start every new
//! trail with an `open` checkpoint). This module only reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::AuditError;
use super::files::{Head, Tail, parent};
use super::line::{self, MAX_LINE};
use super::record::RecordHash;

/// The key a signing writer vouches with.
#[derive(Clone, Debug)]
pub struct Vouch {
    /// Its public half.
    pub key: VerifyingKey,
    /// Its id.
    pub key_id: String,
}

/// Records in `[known.end, end)`, appended by others since this writer last
/// wrote, must chain onto `known`.
pub fn forward(file: &File, path: &Path, known: &Head, end: u64) -> Result<(), AuditError> {
    let mut expect = (known.seq, known.hash);
    let mut at = known.end;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while at < end {
        let want = chunk.len().min((end - at) as usize);
        file.read_exact_at(&mut chunk[..want], at)
            .map_err(|e| AuditError::io("read", path, e))?;
        let base = at - buf.len() as u64;
        buf.extend_from_slice(&chunk[..want]);
        at += want as u64;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
            let l = &buf[start..start + i];
            expect = link(path, base + start as u64, l, expect)?;
            start += i + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_LINE {
            return Err(damaged(
                path,
                at,
                "a line is longer than any record (1 MiB)".into(),
            ));
        }
    }
    Ok(())
}

/// Check one line chains onto `expect` (seq, hash); returns its own.
fn link(
    path: &Path,
    offset: u64,
    l: &[u8],
    expect: (u64, RecordHash),
) -> Result<(u64, RecordHash), AuditError> {
    let p = line::parse(l).map_err(|w| damaged(path, offset, format!("malformed record: {w}")))?;
    if p.computed_hash() != p.hash() {
        return Err(damaged(
            path,
            offset,
            format!("seq {} does not match its hash", p.seq),
        ));
    }
    if p.seq != expect.0 + 1 || p.prev() != expect.1 {
        return Err(damaged(
            path,
            offset,
            format!(
                "seq {} does not follow seq {} (the chain was changed behind this writer)",
                p.seq, expect.0
            ),
        ));
    }
    Ok((p.seq, p.hash()))
}

/// From `end` backwards to a checkpoint of `v` whose signature verifies.
pub fn backward(file: &File, path: &Path, end: u64, v: &Vouch) -> Result<(), AuditError> {
    let mut lines = BackLines::new(file, path, end);
    // (seq, prev) of the record after the current one.
    let mut after: Option<(u64, RecordHash)> = None;
    let mut newest = 0;
    while let Some((offset, l)) = lines.prev()? {
        let p =
            line::parse(&l).map_err(|w| damaged(path, offset, format!("malformed record: {w}")))?;
        if newest == 0 {
            newest = p.seq;
        }
        if p.computed_hash() != p.hash() {
            return Err(damaged(
                path,
                offset,
                format!("seq {} does not match its hash", p.seq),
            ));
        }
        if let Some((seq, prev)) = after
            && (p.seq + 1 != seq || p.hash() != prev)
        {
            return Err(damaged(
                path,
                offset,
                format!("seq {seq} does not follow seq {}", p.seq),
            ));
        }
        if p.kind == "checkpoint" {
            let c = p
                .checkpoint()
                .map_err(|w| damaged(path, offset, w.into()))?;
            if c.key_id == v.key_id {
                return line::verify_signature(&c, &v.key)
                    .map_err(|w| damaged(path, offset, format!("checkpoint seq {}: {w}", p.seq)));
            }
        }
        if offset == 0 {
            let unvouched = |why: &str| AuditError::Unvouched {
                path: path.to_path_buf(),
                from: p.seq,
                to: newest,
                key_id: v.key_id.clone(),
                why: why.into(),
            };
            if p.kind != "continued" {
                return Err(unvouched(
                    "the file starts without a checkpoint of this key",
                ));
            }
            let from = serde_json::from_slice::<serde_json::Value>(&l)
                .ok()
                .and_then(|j| j.get("from")?.as_str().map(str::to_owned))
                .ok_or_else(|| unvouched("the `continued` record names no file"))?;
            let head = Head {
                seq: p.seq - 1,
                hash: p.prev(),
                end: 0,
                tail: Tail::Empty,
                continues: Some(from),
            };
            return archive(path, &head, v);
        }
        after = Some((p.seq, p.prev()));
    }
    Ok(())
}

/// An active file that continues `head.continues`: that archive must end in
/// a checkpoint of `v` that is `head`.
pub fn archive(path: &Path, head: &Head, v: &Vouch) -> Result<(), AuditError> {
    let Some(name) = &head.continues else {
        return Ok(()); // a new trail
    };
    let apath = parent(path).join(name);
    let unvouched = |why: String| AuditError::Unvouched {
        path: apath.clone(),
        from: head.seq,
        to: head.seq,
        key_id: v.key_id.clone(),
        why,
    };
    if name.contains('/') || name.starts_with('.') {
        return Err(unvouched(format!(
            "`{name}` is not a file name in the trail's directory"
        )));
    }
    let (file, meta) = super::reader::open_trail(&apath)?;
    let len = meta.len();
    let mut lines = BackLines::new(&file, &apath, len);
    let Some((offset, l)) = lines.prev()? else {
        return Err(unvouched("the archive is empty".into()));
    };
    let p =
        line::parse(&l).map_err(|w| damaged(&apath, offset, format!("malformed record: {w}")))?;
    if p.computed_hash() != p.hash() || p.seq != head.seq || p.hash() != head.hash {
        return Err(unvouched(format!(
            "its last record is not seq {} {}",
            head.seq,
            head.hash.short()
        )));
    }
    let c = p
        .checkpoint()
        .map_err(|_| unvouched("it does not end in a checkpoint".into()))?;
    if c.key_id != v.key_id {
        return Err(unvouched(format!(
            "its last checkpoint is of key {}",
            c.key_id
        )));
    }
    line::verify_signature(&c, &v.key).map_err(|w| damaged(&apath, offset, w))
}

fn damaged(path: &Path, offset: u64, why: String) -> AuditError {
    AuditError::Damaged {
        path: path.to_path_buf(),
        offset,
        why,
    }
}

/// Complete lines of a file, last first.
struct BackLines<'a> {
    file: &'a File,
    path: &'a Path,
    /// File bytes `[start, start + buf.len())`; ends right after a `\n`.
    buf: Vec<u8>,
    start: u64,
}

impl<'a> BackLines<'a> {
    /// Lines before `end`, which must follow a `\n` (or be 0).
    fn new(file: &'a File, path: &'a Path, end: u64) -> BackLines<'a> {
        BackLines {
            file,
            path,
            buf: Vec::new(),
            start: end,
        }
    }

    fn prev(&mut self) -> Result<Option<(u64, Vec<u8>)>, AuditError> {
        loop {
            if self.buf.len() > 1 {
                let body = &self.buf[..self.buf.len() - 1];
                if let Some(i) = memchr::memrchr(b'\n', body) {
                    let l = body[i + 1..].to_vec();
                    self.buf.truncate(i + 1);
                    return Ok(Some((self.start + i as u64 + 1, l)));
                }
            }
            if self.start == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let mut l = std::mem::take(&mut self.buf);
                l.pop();
                return Ok(Some((0, l)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(damaged(
                    self.path,
                    self.start,
                    "a line is longer than any record (1 MiB)".into(),
                ));
            }
            let n = (64 * 1024).min(self.start) as usize;
            let mut more = vec![0u8; n];
            self.file
                .read_exact_at(&mut more, self.start - n as u64)
                .map_err(|e| AuditError::io("read", self.path, e))?;
            more.extend_from_slice(&self.buf);
            self.buf = more;
            self.start -= n as u64;
        }
    }
}
