//! The writer thread of a trail: batches, checkpoints and rotation.
//!
//! The thread takes everything that is waiting (up to [`MAX_BATCH`]), and
//! under the file lock chains the records onto the file's last record,
//! writes them with one write, `fdatasync`s, and only then completes every
//! caller's ticket — group commit. A batch that fails to write is cut back
//! out of the file and reported to each of its callers; a failed sync stops
//! the writer for good, because what reached the disk is then unknown.
//!
//! It adds the records callers may not write: signed checkpoints (periodic,
//! sealed appends, explicit, rotation, close, and `open` as the first record
//! of a new signed trail), `recovered` after a torn tail, and
//! `rotated`/`continued` around a rotation. It never reports a record
//! durable before its batch is synced.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;

use super::AuditError;
use super::files::{Head, Tail};
use super::line;
use super::record::{CheckpointReason, RecordBody, RecordHash};
use super::segment::Segment;
use super::ticket::{self, Appended, Completer};
use super::vouch::Vouch;
use super::writer::TrailOptions;

/// Most records written and synced as one batch.
pub const MAX_BATCH: usize = 4096;

/// What callers send the writer thread.
pub enum Request {
    /// A record (serialized members), sealed by a checkpoint or not.
    Append {
        members: Vec<u8>,
        seal: Option<CheckpointReason>,
        done: Completer,
    },
    /// A checkpoint now.
    Checkpoint {
        reason: CheckpointReason,
        done: Completer,
    },
    /// A rotation now.
    Rotate { done: Completer },
    /// Seal and stop.
    Close { done: Completer },
}

/// What travels to the writer thread: one request, or appends sent together
/// ([`super::Trail::submit_all`]), which are never split across two batches and
/// so share one sync.
pub enum Sent {
    One(Request),
    Together(Vec<Request>),
}

/// State of the writer thread.
pub struct Writer {
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
    /// Appends in the last batch: callers likely to send again right away.
    expect: usize,
    /// How long the last write and sync took.
    last_write: Duration,
}

/// Where the chain is while a batch is being encoded.
struct Cursor {
    seq: u64,
    hash: RecordHash,
    tail: Tail,
}

impl Writer {
    /// A writer for `seg`.
    pub fn new(seg: Segment, key: Option<(SigningKey, Vouch)>, opts: &TrailOptions) -> Writer {
        Writer {
            seg,
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
            expect: 0,
            last_write: Duration::ZERO,
        }
    }

    /// The first, synchronous batch: recover a torn tail, vouch for what is
    /// there, finish a rotation, start a new signed trail with `open`.
    pub fn start(&mut self) -> Result<(), AuditError> {
        self.seg.lock()?;
        let r = self.locked(&mut []);
        self.seg.unlock();
        let sealed = self.seg.head().is_some_and(|h| h.tail == Tail::Sealed);
        if self.key.is_none() && sealed {
            tracing::warn!(
                trail = %self.seg.path().display(),
                "this audit trail is sealed by signed checkpoints, but no signing key was \
                 given: what is appended now stays unsealed (`audit verify --key` reports an \
                 unsealed tail) until a writer with the key seals it"
            );
        }
        r.map(drop)
    }

    /// The thread's loop, until `Close` or every sender is gone.
    pub fn run(mut self, rx: mpsc::Receiver<Sent>) {
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
            let (batch, callers) = self.gather(first, &rx);
            let closing = matches!(batch.last(), Some(Request::Close { .. }));
            self.expect = callers;
            self.batch(batch);
            if closing {
                return;
            }
        }
        // Every handle dropped without `close`: seal anyway.
        let (_t, done) = ticket::pair(Arc::from(self.seg.path()));
        self.batch(vec![Request::Close { done }]);
    }

    /// Everything waiting, up to [`MAX_BATCH`] (more by the appends of a last
    /// [`Sent::Together`]), and how many callers sent
    /// appends in it (appends sent together count as one caller). When fewer callers
    /// than in the last batch are here, linger briefly for the rest: those
    /// callers were just released and are about to send their next record, and
    /// one sync for all of them beats one for the first few. The linger is at
    /// most half the last write-and-sync time (and 1 ms), so a lone caller
    /// (last batch: one) never waits.
    fn gather(&mut self, first: Option<Sent>, rx: &mpsc::Receiver<Sent>) -> (Vec<Request>, usize) {
        let mut batch: Vec<Request> = Vec::new();
        let mut callers = 0;
        let take = |batch: &mut Vec<Request>, callers: &mut usize, sent: Sent| match sent {
            Sent::One(r) => {
                *callers += usize::from(matches!(r, Request::Append { .. }));
                batch.push(r);
            }
            Sent::Together(v) => {
                *callers += 1;
                batch.extend(v);
            }
        };
        if let Some(sent) = first {
            take(&mut batch, &mut callers, sent);
        }
        let linger = (self.last_write / 2).min(Duration::from_millis(1));
        let deadline = Instant::now() + linger;
        while batch.len() < MAX_BATCH {
            if matches!(
                batch.last(),
                Some(Request::Close { .. } | Request::Rotate { .. })
            ) {
                break;
            }
            let next = match rx.try_recv() {
                Ok(r) => Some(r),
                Err(_) if self.expect > 1 && callers < self.expect => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        None
                    } else {
                        rx.recv_timeout(left).ok()
                    }
                }
                Err(_) => None,
            };
            match next {
                Some(sent) => take(&mut batch, &mut callers, sent),
                None => break,
            }
        }
        (batch, callers)
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
        // Every outcome is stored before anyone is woken (the lock is
        // already released): see `Completer::settle`.
        let wakes: Vec<_> = items
            .into_iter()
            .zip(results)
            .map(|(item, r)| match item {
                Request::Append { done, .. }
                | Request::Checkpoint { done, .. }
                | Request::Rotate { done }
                | Request::Close { done } => done.settle(r),
            })
            .collect();
        for w in wakes {
            w.wake();
        }
    }

    /// One batch under the lock. Returns one outcome per item.
    fn locked(&mut self, items: &mut [Request]) -> Result<Vec<Appended>, AuditError> {
        let vouch = self.key.as_ref().map(|(_, v)| v);
        let (mut head, mut notes) = self.seg.sync(vouch)?;
        // Notes of a batch that failed to write are still owed.
        notes.splice(0..0, self.owed.drain(..));
        let rotate_now = items.iter().any(|i| matches!(i, Request::Rotate { .. }));
        // Rotation by size or age only when records are about to be written.
        let writes = items
            .iter()
            .any(|i| matches!(i, Request::Append { .. } | Request::Checkpoint { .. }));
        if head.tail == Tail::Rotated {
            head = self.finish_rotation(&head)?;
        } else if head.end > 0 && (rotate_now || writes && self.rotation_due(&head)?) {
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
        let started = Instant::now();
        let r = self.seg.append(head, &self.buf, new);
        self.last_write = started.elapsed();
        match r {
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
            CheckpointReason::Periodic | CheckpointReason::Open => Tail::Open,
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
