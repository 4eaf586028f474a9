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
//! With [`TrailOptions::append_only`](super::TrailOptions::append_only) the
//! active file and its archives carry the append-only attribute (`chattr +a`)
//! where the filesystem and the writer's capabilities allow: nobody else can
//! then open them except to append, nor truncate, rename or remove them. The
//! writer keeps its own descriptor (opened before the attribute was set) and
//! lifts the attribute only for its own truncations and rotations — on any
//! file that has it, whoever set it.
//!
//! This module never encodes records (the writer does) and never deletes
//! bytes it has not first copied aside and fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::AuditError;
use super::files::{
    First, Head, empty_file_head, file_name, last_newline_end, parent, read_first, read_head,
    sync_dir,
};
use super::record::RecordBody;
use super::vouch::{self, Vouch};
use crate::sys::inode_flags;

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
    /// Keep the files append-only (where possible).
    append_only: bool,
}

impl Segment {
    /// Open (creating it, its directories 0700 and the file 0600) the file
    /// at `path`, append-only where possible when `append_only`. Does not lock.
    pub fn open(
        path: &Path,
        lock_timeout: Duration,
        append_only: bool,
    ) -> Result<Segment, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| AuditError::io("create the audit directory", dir, e))?;
        }
        let (file, id, len) = open_file(path)?;
        // A new (empty) file's name must be durable before records go into it.
        // A file that already holds records was created by a writer that did
        // this before writing them (or by a rotation, which syncs the
        // directory after installing it): no second directory sync, which
        // would cost a disk flush on every open.
        if len == 0 {
            sync_dir(path)?;
        }
        let seg = Segment {
            path: path.to_path_buf(),
            file,
            id,
            lock_timeout,
            known: None,
            first: None,
            len_seen: 0,
            append_only,
        };
        seg.seal(&seg.file);
        Ok(seg)
    }

    /// Make `file` append-only, if this writer keeps its files so. Where the
    /// filesystem or the writer's capabilities do not allow it, the trail
    /// stays as it is (the hash chain and checkpoints still catch edits).
    fn seal(&self, file: &File) {
        if self.append_only {
            self.make_append_only(file);
        }
    }

    /// Set the append-only attribute on `file`, where it can be set.
    fn make_append_only(&self, file: &File) {
        if let Err(e) = inode_flags::set_append_only(file.as_fd(), true) {
            tracing::debug!(
                trail = %self.path.display(),
                "the audit trail cannot be made append-only here: {e}"
            );
        }
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
                        let (file, id, len) = open_file(&self.path)?;
                        if len == 0 {
                            sync_dir(&self.path)?;
                        }
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

    /// The record the file ended with when last looked at, if known.
    pub fn head(&self) -> Option<&Head> {
        self.known.as_ref()
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
        // Checked before anything is moved aside: a file that is not a trail
        // (a key, a config without a final newline) is refused untouched.
        if good_end < len {
            check_torn_tail(&self.file, good_end, len, &self.path)?;
        }
        let head = if good_end == 0 {
            self.first = None;
            empty_file_head(&self.path)?
        } else {
            read_head(&self.file, good_end, &self.path)?
        };
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
            let cut = Lifted::new(&self.file).and_then(|_l| self.file.set_len(head.end));
            return match cut {
                Ok(()) => Err((err, false)),
                Err(_) => Err((err, true)),
            };
        }
        if self.len_seen > new.end
            && let Err(e) = Lifted::new(&self.file).and_then(|_l| self.file.set_len(new.end))
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
        // Linking the file and replacing its name need it not append-only; the
        // archive gets the attribute back when the guard drops.
        let lifted = Lifted::new(&self.file)
            .map_err(|e| AuditError::io("lift the append-only attribute of", &self.path, e))?;
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
        // The archive and the new file are append-only if the old file was
        // (whoever set it) or this writer keeps its files so.
        let keep = lifted.was || self.append_only;
        drop(lifted);
        if keep {
            self.make_append_only(&self.file);
            self.make_append_only(&f);
        }
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

/// What every record line starts with (the writer's encoding).
const RECORD_START: &[u8] = b"{\"seq\":";

/// A torn tail is the start of a record a writer did not finish: it begins
/// like one, or with zeros (blocks a crash left allocated but unwritten).
/// Anything else after the last newline (or in a file without one) means the
/// file is not an audit trail, and it is left as it is.
fn check_torn_tail(file: &File, good_end: u64, len: u64, path: &Path) -> Result<(), AuditError> {
    let mut start = [0u8; RECORD_START.len()];
    let want = start.len().min((len - good_end) as usize);
    let n = file
        .read_at(&mut start[..want], good_end)
        .map_err(|e| AuditError::io("read the last line of", path, e))?;
    if start[..n] == RECORD_START[..n] || start[0] == 0 {
        return Ok(());
    }
    Err(AuditError::NotATrail {
        path: path.to_path_buf(),
        why: if good_end == 0 {
            "its content is not a record and does not end with a newline".into()
        } else {
            format!(
                "after byte {good_end} it ends with a line that is neither a record nor the \
                 start of one"
            )
        },
    })
}

/// Open (creating) the active file: the file, its (dev, ino) and its length.
fn open_file(path: &Path) -> Result<(File, (u64, u64), u64), AuditError> {
    // Not O_APPEND: records are written at the known end of the chain (under
    // the lock), over a torn tail if there is one.
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600);
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open_append_only(path, &opts)?,
        Err(e) => return Err(AuditError::io("open the audit trail", path, e)),
    };
    let m = file
        .metadata()
        .map_err(|e| AuditError::io("stat", path, e))?;
    if !m.file_type().is_file() {
        return Err(AuditError::NotRegular {
            path: path.to_path_buf(),
            kind: crate::regular_file::kind(&m.file_type()),
            expected: "an audit trail file",
        });
    }
    Ok((file, (m.dev(), m.ino()), m.len()))
}

/// Open an append-only active file for positional writes: lift the attribute,
/// open, and put it back (the descriptor keeps working).
fn open_append_only(path: &Path, opts: &OpenOptions) -> Result<File, AuditError> {
    let what = "open the append-only audit trail (lifting `chattr +a` needs \
                CAP_LINUX_IMMUTABLE)";
    let ro = File::open(path).map_err(|e| AuditError::io(what, path, e))?;
    let _lifted = Lifted::new(&ro).map_err(|e| AuditError::io(what, path, e))?;
    opts.open(path).map_err(|e| AuditError::io(what, path, e))
}

/// The append-only attribute of a file lifted, put back on drop.
struct Lifted<'a> {
    file: &'a File,
    /// The file was append-only.
    was: bool,
}

impl<'a> Lifted<'a> {
    /// Lift the attribute if `file` has it. Fails only when it has it and
    /// may not be lifted. A filesystem without the attribute has nothing to lift.
    fn new(file: &'a File) -> std::io::Result<Lifted<'a>> {
        let was = inode_flags::append_only(file.as_fd()).unwrap_or(false);
        if was {
            inode_flags::set_append_only(file.as_fd(), false)?;
        }
        Ok(Lifted { file, was })
    }
}

impl Drop for Lifted<'_> {
    fn drop(&mut self) {
        if self.was
            && let Err(e) = inode_flags::set_append_only(self.file.as_fd(), true)
        {
            tracing::warn!("putting back the append-only attribute of an audit file failed: {e}");
        }
    }
}
