//! [`Trail`]: the one writer of an audit trail.
//!
//! Callers hand records to a dedicated writer thread over a channel. The
//! thread takes everything that is waiting (up to a batch limit), and under
//! the file lock chains the records onto the file's last record, writes them
//! with one `write`, `fdatasync`s, and only then completes every caller's
//! [`Ticket`] — group commit. A batch that fails to write is cut back out of
//! the file and reported to each of its callers; a failed sync stops the
//! writer for good, because what reached the disk is then unknown.
//!
//! The writer adds the records callers may not write: signed checkpoints
//! (periodic, sealed appends, explicit, rotation, close, and `open` as the
//! first record of a new signed trail), `recovered` after a torn tail, and
//! `rotated`/`continued` around a rotation.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;

use super::line::{self, MAX_LINE};
use super::record::{CheckpointReason, RecordBody, RecordHash};
use super::segment::{Head, Segment, Tail};
use super::ticket::{self, Appended, Completer, Ticket};
use super::vouch::Vouch;
use super::{AuditError, keys};

/// Most records written and synced as one batch.
const MAX_BATCH: usize = 4096;
/// Room a header and the hash member take around a body.
const LINE_OVERHEAD: usize = 256;

/// How to open a trail. Build with [`TrailOptions::new`], then set fields.
#[derive(Debug)]
pub struct TrailOptions {
    /// The active file (`audit.jsonl`); archives and torn tails go beside it.
    pub path: PathBuf,
    /// Sign checkpoints with this key (`--audit-key`). Without one, no
    /// checkpoints are written.
    pub signing_key: Option<SigningKey>,
    /// A periodic checkpoint after this many records (0: never by count).
    pub checkpoint_every: u64,
    /// A periodic checkpoint when records have been unsealed this long.
    pub checkpoint_interval: Option<Duration>,
    /// Rotate when the active file reaches this size.
    pub rotate_bytes: Option<u64>,
    /// Rotate when the active file's first record is this old.
    pub rotate_age: Option<Duration>,
    /// How long to wait for another writer's lock before failing.
    pub lock_timeout: Duration,
}

impl TrailOptions {
    /// Defaults: no key, checkpoints every 1000 records or 10 s, no
    /// rotation, 10 s lock timeout.
    pub fn new(path: impl Into<PathBuf>) -> TrailOptions {
        TrailOptions {
            path: path.into(),
            signing_key: None,
            checkpoint_every: 1000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            rotate_bytes: None,
            rotate_age: None,
            lock_timeout: Duration::from_secs(10),
        }
    }
}

enum Request {
    Append {
        members: Vec<u8>,
        seal: Option<CheckpointReason>,
        done: Completer,
    },
    Checkpoint {
        reason: CheckpointReason,
        done: Completer,
    },
    Rotate {
        done: Completer,
    },
    Close {
        done: Completer,
    },
}

/// An open audit trail. `Send + Sync`: share it (`Arc<Trail>`) between
/// threads and tasks; every append is serialized by its writer thread.
pub struct Trail {
    tx: mpsc::Sender<Request>,
    path: Arc<Path>,
    signing: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Trail {
    /// Open (or create) the trail: take the lock, recover a torn tail, check
    /// what a signing writer is about to vouch for, finish an interrupted
    /// rotation, and start the writer thread.
    pub fn open(opts: TrailOptions) -> Result<Trail, AuditError> {
        let path: Arc<Path> = Arc::from(opts.path.as_path());
        let key = opts.signing_key.map(|k| {
            let key = k.verifying_key();
            let key_id = keys::key_id(&key);
            (k, Vouch { key, key_id })
        });
        let signing = key.is_some();
        let mut w = Writer {
            seg: Segment::open(&opts.path, opts.lock_timeout)?,
            key,
            every: opts.checkpoint_every,
            interval: opts.checkpoint_interval,
            rotate_bytes: opts.rotate_bytes,
            rotate_age: opts.rotate_age,
            unsealed: 0,
            last_checkpoint: Instant::now(),
            failed: None,
            buf: Vec::new(),
            owed: Vec::new(),
        };
        w.seg.lock()?;
        let first = w.locked(&mut []);
        w.seg.unlock();
        first?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("enforcecore-audit".into())
            .spawn(move || w.run(rx))
            .map_err(|e| AuditError::Thread(Arc::new(e)))?;
        Ok(Trail {
            tx,
            path,
            signing,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The trail's active file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether checkpoints are signed.
    pub fn is_signing(&self) -> bool {
        self.signing
    }

    /// Queue a record; the ticket resolves once it is durable.
    pub fn submit(&self, body: RecordBody) -> Ticket {
        self.submit_with(body, None)
    }

    /// Queue a record followed (with a key) by a checkpoint, in one batch.
    pub fn submit_sealed(&self, body: RecordBody, reason: CheckpointReason) -> Ticket {
        self.submit_with(body, Some(reason))
    }

    fn submit_with(&self, body: RecordBody, seal: Option<CheckpointReason>) -> Ticket {
        let kind = body.kind();
        if body.is_reserved() {
            return Ticket::ready(self.path.clone(), Err(AuditError::ReservedKind { kind }));
        }
        let members = match body.to_members() {
            Ok(m) if m.len() + LINE_OVERHEAD <= MAX_LINE => m,
            Ok(m) => {
                let detail = format!("{} bytes is over the 1 MiB record limit", m.len());
                return Ticket::ready(self.path.clone(), Err(AuditError::Encode { kind, detail }));
            }
            Err(e) => {
                let detail = e.to_string();
                return Ticket::ready(self.path.clone(), Err(AuditError::Encode { kind, detail }));
            }
        };
        self.send(|done| Request::Append {
            members,
            seal,
            done,
        })
    }

    fn send(&self, make: impl FnOnce(Completer) -> Request) -> Ticket {
        let (t, done) = ticket::pair(self.path.clone());
        // If the writer is gone the request (and its completer) is dropped,
        // which resolves the ticket with `Closed`.
        let _ = self.tx.send(make(done));
        t
    }

    /// Append a record and wait until it is durable. An `Err` means it is not
    /// in the trail: the action it describes must not go ahead.
    pub fn append(&self, body: RecordBody) -> Result<Appended, AuditError> {
        self.submit(body).wait()
    }

    /// [`Trail::append`] for async code; never blocks the runtime.
    pub async fn append_async(&self, body: RecordBody) -> Result<Appended, AuditError> {
        self.submit(body).await
    }

    /// Append a record and (with a key) a checkpoint sealing it, e.g. a
    /// run's `run-exited` with [`CheckpointReason::RunEnd`].
    pub fn append_sealed(
        &self,
        body: RecordBody,
        reason: CheckpointReason,
    ) -> Result<Appended, AuditError> {
        self.submit_sealed(body, reason).wait()
    }

    /// Write a signed checkpoint now. `Ok(None)` without a key.
    pub fn checkpoint(&self, reason: CheckpointReason) -> Result<Option<Appended>, AuditError> {
        if !self.signing {
            return Ok(None);
        }
        self.send(|done| Request::Checkpoint { reason, done })
            .wait()
            .map(Some)
    }

    /// Rotate the active file now (when it has records).
    pub fn rotate(&self) -> Result<(), AuditError> {
        self.send(|done| Request::Rotate { done }).wait().map(drop)
    }

    /// Seal the trail (a `close` checkpoint with a key, unless the file
    /// already ends in a closing one) and stop the writer. Later appends fail
    /// with [`AuditError::Closed`].
    pub fn close(&self) -> Result<(), AuditError> {
        let r = self.send(|done| Request::Close { done }).wait();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        match r {
            Ok(_) | Err(AuditError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(trail = %self.path.display(), "closing the audit trail failed: {e}");
        }
    }
}

/// State of the writer thread.
struct Writer {
    seg: Segment,
    key: Option<(SigningKey, Vouch)>,
    every: u64,
    interval: Option<Duration>,
    rotate_bytes: Option<u64>,
    rotate_age: Option<Duration>,
    /// Records this writer appended since its last checkpoint.
    unsealed: u64,
    last_checkpoint: Instant,
    failed: Option<AuditError>,
    buf: Vec<u8>,
    /// `recovered` records not yet written (their batch failed).
    owed: Vec<RecordBody>,
}

/// Where the chain is while a batch is being encoded.
struct Cursor {
    seq: u64,
    hash: RecordHash,
    tail: Tail,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let first = match self.periodic_due_in() {
                Some(d) => match rx.recv_timeout(d) {
                    Ok(r) => Some(r),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                },
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            while batch.len() < MAX_BATCH && !matches!(batch.last(), Some(Request::Close { .. })) {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let closing = matches!(batch.last(), Some(Request::Close { .. }));
            self.batch(batch);
            if closing {
                return;
            }
        }
        // Every handle dropped without `close`: seal anyway.
        let (_t, done) = ticket::pair(Arc::from(self.seg.path()));
        self.batch(vec![Request::Close { done }]);
    }

    /// Time left before a periodic checkpoint is due, when one can be.
    fn periodic_due_in(&self) -> Option<Duration> {
        let interval = self.interval?;
        (self.key.is_some() && self.unsealed > 0 && self.failed.is_none())
            .then(|| interval.saturating_sub(self.last_checkpoint.elapsed()))
    }

    fn batch(&mut self, mut items: Vec<Request>) {
        let outcome = match &self.failed {
            Some(e) => Err(e.clone()),
            None => self.seg.lock().and_then(|()| {
                let r = self.locked(&mut items);
                self.seg.unlock();
                r
            }),
        };
        let results = match outcome {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e); items.len()],
        };
        for (item, r) in items.into_iter().zip(results) {
            let mut done = match item {
                Request::Append { done, .. }
                | Request::Checkpoint { done, .. }
                | Request::Rotate { done }
                | Request::Close { done } => done,
            };
            done.complete(r);
        }
    }

    /// One batch under the lock. Returns one outcome per item.
    fn locked(&mut self, items: &mut [Request]) -> Result<Vec<Appended>, AuditError> {
        let vouch = self.key.as_ref().map(|(_, v)| v);
        let (mut head, mut notes) = self.seg.sync(vouch)?;
        // Notes of a batch that failed to write are still owed.
        notes.splice(0..0, self.owed.drain(..));
        let rotate_now = items.iter().any(|i| matches!(i, Request::Rotate { .. }));
        if head.tail == Tail::Rotated {
            head = self.finish_rotation(&head)?;
        } else if head.end > 0 && (rotate_now || self.rotation_due(&head)?) {
            head = self.rotate(&head)?;
        }
        self.buf.clear();
        let mut cur = Cursor {
            seq: head.seq,
            hash: head.hash,
            tail: head.tail,
        };
        if head.seq == 0 && self.key.is_some() {
            self.put_checkpoint(&mut cur, CheckpointReason::Open);
        }
        if let Some(from) = head.continues.clone() {
            self.put(&mut cur, &RecordBody::Continued { from });
        }
        for note in &notes {
            self.put(&mut cur, note);
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let done = match item {
                Request::Append { members, seal, .. } => {
                    let a = self.put_members(&mut cur, members);
                    self.unsealed += 1;
                    if let Some(reason) = seal {
                        self.put_checkpoint(&mut cur, *reason);
                    }
                    a
                }
                Request::Checkpoint { reason, .. } => self.put_checkpoint(&mut cur, *reason),
                Request::Close { .. } if cur.tail != Tail::Sealed => {
                    self.put_checkpoint(&mut cur, CheckpointReason::Close)
                }
                Request::Rotate { .. } | Request::Close { .. } => Appended {
                    seq: cur.seq,
                    hash: cur.hash,
                },
            };
            out.push(done);
        }
        let periodic = self.every > 0 && self.unsealed >= self.every
            || self.periodic_due_in() == Some(Duration::ZERO);
        if periodic && cur.tail == Tail::Open {
            self.put_checkpoint(&mut cur, CheckpointReason::Periodic);
        }
        if !self.buf.is_empty()
            && let Err(e) = self.write(&head, &cur)
        {
            self.owed = notes;
            return Err(e);
        }
        Ok(out)
    }

    fn write(&mut self, head: &Head, cur: &Cursor) -> Result<(), AuditError> {
        let new = Head {
            seq: cur.seq,
            hash: cur.hash,
            end: head.end + self.buf.len() as u64,
            tail: cur.tail,
            continues: None,
        };
        match self.seg.append(head, &self.buf, new) {
            Ok(()) => Ok(()),
            Err((e, fatal)) => {
                if fatal {
                    tracing::error!("audit trail failed, refusing further records: {e}");
                    self.failed = Some(AuditError::Failed {
                        path: self.seg.path().to_path_buf(),
                        cause: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    fn put(&mut self, cur: &mut Cursor, body: &RecordBody) -> Appended {
        // Bodies built here serialize infallibly (plain strings and numbers).
        let members = body.to_members().unwrap_or_default();
        self.put_members(cur, &members)
    }

    fn put_members(&mut self, cur: &mut Cursor, members: &[u8]) -> Appended {
        cur.seq += 1;
        cur.hash = line::encode(&mut self.buf, cur.seq, &now(), &cur.hash, members);
        cur.tail = match members {
            m if m.starts_with(b"\"kind\":\"rotated\"") => Tail::Rotated,
            _ => Tail::Open,
        };
        Appended {
            seq: cur.seq,
            hash: cur.hash,
        }
    }

    /// A signed checkpoint (nothing without a key: returns the current head).
    fn put_checkpoint(&mut self, cur: &mut Cursor, reason: CheckpointReason) -> Appended {
        let Some((key, v)) = &self.key else {
            return Appended {
                seq: cur.seq,
                hash: cur.hash,
            };
        };
        cur.seq += 1;
        cur.hash = line::encode_checkpoint(
            &mut self.buf,
            cur.seq,
            &now(),
            &cur.hash,
            reason,
            key,
            &v.key_id,
        );
        cur.tail = match reason {
            CheckpointReason::Periodic => Tail::Open,
            CheckpointReason::Rotation => Tail::Rotated,
            _ => Tail::Sealed,
        };
        self.unsealed = 0;
        self.last_checkpoint = Instant::now();
        Appended {
            seq: cur.seq,
            hash: cur.hash,
        }
    }

    fn rotation_due(&mut self, head: &Head) -> Result<bool, AuditError> {
        if self.rotate_bytes.is_some_and(|max| head.end >= max) {
            return Ok(true);
        }
        let Some(age) = self.rotate_age else {
            return Ok(false);
        };
        Ok(match self.seg.first_record()? {
            Some((_, ts)) => SystemTime::now().duration_since(ts).is_ok_and(|d| d >= age),
            None => false,
        })
    }

    /// End the active file with `rotated` (+ a rotation checkpoint), then
    /// finish the rotation.
    fn rotate(&mut self, head: &Head) -> Result<Head, AuditError> {
        let archive = self.seg.archive_name()?;
        self.buf.clear();
        let mut cur = Cursor {
            seq: head.seq,
            hash: head.hash,
            tail: head.tail,
        };
        self.put(&mut cur, &RecordBody::Rotated { archive });
        self.put_checkpoint(&mut cur, CheckpointReason::Rotation);
        self.write(head, &cur)?;
        let closed = Head {
            seq: cur.seq,
            hash: cur.hash,
            end: head.end + self.buf.len() as u64,
            tail: Tail::Rotated,
            continues: None,
        };
        self.finish_rotation(&closed)
    }

    /// The active file ends in `rotated`: archive it and start the next file
    /// with a `continued` record.
    fn finish_rotation(&mut self, head: &Head) -> Result<Head, AuditError> {
        let archive = self.seg.archive_name()?;
        let mut first = Vec::new();
        let members = RecordBody::Continued {
            from: archive.clone(),
        }
        .to_members()
        .unwrap_or_default();
        let hash = line::encode(&mut first, head.seq + 1, &now(), &head.hash, &members);
        let new = Head {
            seq: head.seq + 1,
            hash,
            end: first.len() as u64,
            tail: Tail::Open,
            continues: None,
        };
        self.seg.finish_rotation(&archive, &first, new.clone())?;
        tracing::info!(trail = %self.seg.path().display(), %archive, "audit trail rotated");
        Ok(new)
    }
}

/// The record timestamp: RFC 3339, UTC, microseconds.
fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}
