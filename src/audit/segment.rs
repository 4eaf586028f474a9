//! The active file of a trail, as one writer sees it while holding its lock:
//! which record the file ends with, torn-tail recovery, and the file steps
//! of rotation.
//!
//! Every batch runs between [`Segment::lock`] and [`Segment::unlock`]: an
//! exclusive `flock` on the file that is *currently* at the trail's path (a
//! file rotated away under us is noticed and the new one locked instead).
//! Under the lock, [`Segment::sync`] re-reads the end of the file whenever it
//! is not exactly as this writer left it — another process appended, crashed
//! mid-write, or someone cut the file — so that the next record always chains
//! onto the last record in the file.
//!
//! This module never encodes records (the writer does) and never deletes
//! bytes it has not first copied aside and fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::AuditError;
use super::line::{self, MAX_LINE};
use super::record::{CheckpointReason, RecordBody, RecordHash};
use super::vouch::{self, Vouch};

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
struct First {
    seq: u64,
    ts: SystemTime,
}

/// The trail's active file.
pub struct Segment {
    path: PathBuf,
    file: File,
    /// (dev, ino) of `file`.
    id: (u64, u64),
    lock_timeout: Duration,
    /// What this writer last left, for `id`.
    known: Option<Head>,
    first: Option<First>,
    /// File length when last looked at (includes a torn tail).
    len_seen: u64,
}

impl Segment {
    /// Open (creating it, its directories 0700 and the file 0600) the file
    /// at `path`. Does not lock.
    pub fn open(path: &Path, lock_timeout: Duration) -> Result<Segment, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| AuditError::io("create the audit directory", dir, e))?;
        }
        let (file, id) = open_file(path)?;
        sync_dir(path)?;
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            id,
            lock_timeout,
            known: None,
            first: None,
            len_seen: 0,
        })
    }

    /// The trail's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take the exclusive lock on the file currently at the path, waiting up
    /// to the lock timeout.
    pub fn lock(&mut self) -> Result<(), AuditError> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            match self.file.try_lock() {
                Ok(()) => match fs::metadata(&self.path) {
                    Ok(m) if (m.dev(), m.ino()) == self.id => return Ok(()),
                    Ok(_) | Err(_) => {
                        // Rotated (or removed) while we waited: follow the path.
                        self.release();
                        let (file, id) = open_file(&self.path)?;
                        (self.file, self.id) = (file, id);
                        self.known = None;
                        self.first = None;
                        continue;
                    }
                },
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(AuditError::io("lock", &self.path, e));
                }
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(AuditError::Locked {
                    path: self.path.clone(),
                    waited: self.lock_timeout,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Release the lock.
    pub fn unlock(&mut self) {
        self.release();
    }

    fn release(&self) {
        // Unlocking an flock'ed fd cannot fail in a way we could act on; the
        // lock also goes away when the fd is closed.
        let _ = self.file.unlock();
    }

    /// Under the lock: find the record the file ends with. Returns the head
    /// and the `recovered` records the writer must append first (a torn tail
    /// moved aside, a file that shrank behind our back). With `vouch`, checks
    /// the records this writer has not seen back to a checkpoint of its key.
    pub fn sync(&mut self, vouch: Option<&Vouch>) -> Result<(Head, Vec<RecordBody>), AuditError> {
        let len = self.len()?;
        self.len_seen = len;
        let known = self.known.take();
        if let Some(k) = known.as_ref().filter(|k| k.end == len) {
            let k = k.clone();
            self.known = Some(k.clone());
            return Ok((k, Vec::new()));
        }
        let mut notes = Vec::new();
        let good_end = last_newline_end(&self.file, len, &self.path)?;
        if good_end < len {
            notes.push(self.keep_torn_tail(good_end, len)?);
        }
        if let Some(k) = known.as_ref().filter(|k| good_end < k.end) {
            notes.push(RecordBody::Recovered {
                reason: format!(
                    "the trail was {} bytes long when this writer last wrote it (seq {}), but is \
                     now {good_end}: records were removed by something else",
                    k.end, k.seq
                ),
                torn_bytes: 0,
                torn_sha256: None,
                kept_at: None,
            });
        }
        let head = if good_end == 0 {
            self.first = None;
            empty_file_head(&self.path)?
        } else {
            read_head(&self.file, good_end, &self.path)?
        };
        if let Some(v) = vouch {
            match known.as_ref().filter(|k| k.end <= good_end && k.seq > 0) {
                Some(k) => vouch::forward(&self.file, &self.path, k, good_end)?,
                None if good_end > 0 => vouch::backward(&self.file, &self.path, good_end, v)?,
                None => vouch::archive(&self.path, &head, v)?,
            }
        }
        self.known = Some(head.clone());
        Ok((head, notes))
    }

    /// Write `bytes` (whole records) right after `head` and fdatasync.
    ///
    /// The records go *over* a torn tail (already copied aside), and only
    /// then is the file cut to its new end: a crash at any point leaves
    /// either the torn tail or the `recovered` record that replaces it, so a
    /// recovery is never lost. On a write error the file is cut back to
    /// `head.end` and the error returned. A sync error is returned as
    /// `Err(_, true)`: the writer must stop, durability is unknown.
    pub fn append(
        &mut self,
        head: &Head,
        bytes: &[u8],
        new: Head,
    ) -> Result<(), (AuditError, bool)> {
        if let Err(e) = self.file.write_all_at(bytes, head.end) {
            let err = AuditError::io("append to", &self.path, e);
            self.known = None;
            return match self.file.set_len(head.end) {
                Ok(()) => Err((err, false)),
                Err(_) => Err((err, true)),
            };
        }
        if self.len_seen > new.end
            && let Err(e) = self.file.set_len(new.end)
        {
            self.known = None;
            return Err((AuditError::io("cut the torn tail of", &self.path, e), true));
        }
        self.len_seen = new.end;
        if let Err(e) = self.file.sync_data() {
            self.known = None;
            return Err((AuditError::io("fdatasync", &self.path, e), true));
        }
        self.known = Some(new);
        Ok(())
    }

    /// Length of the active file.
    fn len(&self) -> Result<u64, AuditError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| AuditError::io("stat", &self.path, e))
    }

    /// Seq and time of the file's first record (for rotation).
    pub fn first_record(&mut self) -> Result<Option<(u64, SystemTime)>, AuditError> {
        if self.first.is_none() {
            self.first = read_first(&self.file, &self.path)?;
        }
        Ok(self.first.map(|f| (f.seq, f.ts)))
    }

    /// The archive name of the active file: `NAME.<first seq, 12 digits>`.
    pub fn archive_name(&mut self) -> Result<String, AuditError> {
        let (seq, _) = self.first_record()?.ok_or_else(|| AuditError::Damaged {
            path: self.path.clone(),
            offset: 0,
            why: "a file being rotated has no first record".into(),
        })?;
        Ok(format!("{}.{seq:012}", file_name(&self.path)))
    }

    /// Rotation, second half (the old file already ends in `rotated`): link
    /// it to its archive name, then atomically replace the path with a new
    /// file holding `first_record` (the `continued` record), locked by us.
    pub fn finish_rotation(
        &mut self,
        archive: &str,
        first_record: &[u8],
        new: Head,
    ) -> Result<(), AuditError> {
        let dir = parent(&self.path);
        let archive_path = dir.join(archive);
        match fs::hard_link(&self.path, &archive_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let m = fs::metadata(&archive_path)
                    .map_err(|e| AuditError::io("stat", &archive_path, e))?;
                if (m.dev(), m.ino()) != self.id {
                    return Err(AuditError::Damaged {
                        path: self.path.clone(),
                        offset: 0,
                        why: format!(
                            "cannot archive the rotated file: {} already exists and is another file",
                            archive_path.display()
                        ),
                    });
                }
            }
            Err(e) => return Err(AuditError::io("link the rotated file to", &archive_path, e)),
        }
        let next = dir.join(format!("{}.next", file_name(&self.path)));
        let (mut f, id) = {
            let f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&next)
                .map_err(|e| AuditError::io("create", &next, e))?;
            f.set_len(0)
                .map_err(|e| AuditError::io("truncate", &next, e))?;
            let m = f.metadata().map_err(|e| AuditError::io("stat", &next, e))?;
            (f, (m.dev(), m.ino()))
        };
        f.try_lock()
            .map_err(|e| AuditError::io("lock", &next, e.into()))?;
        f.write_all(first_record)
            .and_then(|()| f.sync_data())
            .map_err(|e| AuditError::io("write", &next, e))?;
        fs::rename(&next, &self.path)
            .map_err(|e| AuditError::io("install the new", &self.path, e))?;
        sync_dir(&self.path)?;
        self.release();
        (self.file, self.id) = (f, id);
        self.len_seen = new.end;
        self.known = Some(new);
        self.first = None;
        Ok(())
    }

    /// Copy the torn tail `[good_end, len)` aside and fsync it. The next
    /// [`Segment::append`] writes over it and cuts what is left.
    fn keep_torn_tail(&mut self, good_end: u64, len: u64) -> Result<RecordBody, AuditError> {
        let stamp = humantime::format_rfc3339_micros(SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let name = format!("{}.torn-{stamp}", file_name(&self.path));
        let aside = parent(&self.path).join(&name);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&aside)
            .map_err(|e| AuditError::io("create", &aside, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = good_end;
        while at < len {
            let want = buf.len().min((len - at) as usize);
            let n = self
                .file
                .read_at(&mut buf[..want], at)
                .map_err(|e| AuditError::io("read the torn tail of", &self.path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| AuditError::io("write", &aside, e))?;
            at += n as u64;
        }
        out.sync_all()
            .map_err(|e| AuditError::io("fsync", &aside, e))?;
        sync_dir(&aside)?;
        tracing::warn!(
            trail = %self.path.display(),
            bytes = len - good_end,
            kept_at = %aside.display(),
            "audit trail had a torn last record (writer crash); moved aside"
        );
        Ok(RecordBody::Recovered {
            reason: "torn last line (a writer stopped mid-write)".into(),
            torn_bytes: len - good_end,
            torn_sha256: Some(hex::encode(hasher.finalize())),
            kept_at: Some(name),
        })
    }
}

fn open_file(path: &Path) -> Result<(File, (u64, u64)), AuditError> {
    // Not O_APPEND: records are written at the known end of the chain (under
    // the lock), over a torn tail if there is one.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::io("open the audit trail", path, e))?;
    let m = file
        .metadata()
        .map_err(|e| AuditError::io("stat", path, e))?;
    if !m.file_type().is_file() {
        return Err(AuditError::Damaged {
            path: path.to_path_buf(),
            offset: 0,
            why: "not a regular file".into(),
        });
    }
    Ok((file, (m.dev(), m.ino())))
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

/// Offset just past the last `\n` in the first `len` bytes (0 if none).
fn last_newline_end(file: &File, len: u64, path: &Path) -> Result<u64, AuditError> {
    let mut buf = vec![0u8; 64 * 1024];
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
    }
    Ok(0)
}

/// The complete line ending at `end` (which follows a `\n`), without it,
/// and its offset.
pub fn line_before(file: &File, end: u64, path: &Path) -> Result<(u64, Vec<u8>), AuditError> {
    let want = (MAX_LINE as u64).min(end) as usize;
    let mut buf = vec![0u8; want];
    file.read_exact_at(&mut buf, end - want as u64)
        .map_err(|e| AuditError::io("read", path, e))?;
    buf.pop(); // the `\n`
    match memchr::memrchr(b'\n', &buf) {
        Some(i) => Ok((end - want as u64 + i as u64 + 1, buf.split_off(i + 1))),
        None if want as u64 == end => Ok((0, buf)),
        None => Err(AuditError::Damaged {
            path: path.to_path_buf(),
            offset: end - want as u64,
            why: "the last line is longer than any record (1 MiB)".into(),
        }),
    }
}

/// Head from the last record before `end`; the record must be intact.
fn read_head(file: &File, end: u64, path: &Path) -> Result<Head, AuditError> {
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
    let tail = match p.kind {
        "rotated" => Tail::Rotated,
        "checkpoint" => match p.checkpoint().map(|c| c.reason) {
            Ok(CheckpointReason::Rotation) => Tail::Rotated,
            Ok(CheckpointReason::Periodic) => Tail::Open,
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
fn empty_file_head(path: &Path) -> Result<Head, AuditError> {
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
    let file = File::open(&apath).map_err(|e| AuditError::io("open", &apath, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::io("stat", &apath, e))?
        .len();
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

fn read_first(file: &File, path: &Path) -> Result<Option<First>, AuditError> {
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
