//! [`Trail`]: the handle callers append through, and its options.
//!
//! Callers hand records to a dedicated writer thread (`batch`) over
//! a channel and get a [`Ticket`] back; the thread writes whatever is waiting
//! as one batch and completes the tickets once the batch is synced (group
//! commit). This module checks and serializes records in the caller's thread
//! (reserved kinds, size) and owns the thread's lifetime; it never touches
//! the file itself.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::batch::{Request, Sent, Writer};
use super::line::MAX_LINE;
use super::record::{CheckpointReason, RecordBody};
use super::segment::Segment;
use super::ticket::{self, Appended, Completer, Ticket};
use super::vouch::Vouch;
use super::{AuditError, keys};

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
    /// Keep the active file and its archives append-only (`chattr +a`) where
    /// the filesystem and the writer's capabilities (`CAP_LINUX_IMMUTABLE`)
    /// allow. Removing or editing such files then needs `chattr -a` first.
    pub append_only: bool,
}

impl TrailOptions {
    /// Defaults: no key, checkpoints every 1000 records or 10 s, no
    /// rotation, 10 s lock timeout, not append-only.
    pub fn new(path: impl Into<PathBuf>) -> TrailOptions {
        TrailOptions {
            path: path.into(),
            signing_key: None,
            checkpoint_every: 1000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            rotate_bytes: None,
            rotate_age: None,
            lock_timeout: Duration::from_secs(10),
            append_only: false,
        }
    }
}

/// An open audit trail. `Send + Sync`: share it (`Arc<Trail>`) between
/// threads and tasks; every append is serialized by its writer thread.
pub struct Trail {
    tx: mpsc::Sender<Sent>,
    path: Arc<Path>,
    signing: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Trail {
    /// Open (or create) the trail: take the lock, recover a torn tail, check
    /// what a signing writer is about to vouch for, finish an interrupted
    /// rotation, and start the writer thread. Blocking (file I/O, up to the
    /// lock timeout): from async code call it in `spawn_blocking`.
    pub fn open(mut opts: TrailOptions) -> Result<Trail, AuditError> {
        let path: Arc<Path> = Arc::from(opts.path.as_path());
        let key = opts.signing_key.take().map(|k| {
            let key = k.verifying_key();
            let key_id = keys::key_id(&key);
            (k, Vouch { key, key_id })
        });
        let signing = key.is_some();
        let mut w = Writer::new(
            Segment::open(&opts.path, opts.lock_timeout, opts.append_only)?,
            key,
            &opts,
        );
        w.start()?;
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

    /// Queue records that belong together (a run's `policy-loaded` and
    /// `run-started`, a burst of denials): they are written in one batch, in
    /// this order, with one sync. One ticket per record, in the same order; a
    /// record that cannot be encoded fails alone.
    pub fn submit_all(&self, bodies: impl IntoIterator<Item = RecordBody>) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        let mut appends = Vec::new();
        for body in bodies {
            match self.encode(&body) {
                Ok(members) => {
                    let (t, done) = ticket::pair(self.path.clone());
                    appends.push(Request::Append {
                        members,
                        seal: None,
                        done,
                    });
                    tickets.push(t);
                }
                Err(e) => tickets.push(Ticket::ready(self.path.clone(), Err(e))),
            }
        }
        if !appends.is_empty() {
            // A writer that is gone drops the completers: the tickets resolve
            // with `Closed`.
            let _ = self.tx.send(Sent::Together(appends));
        }
        tickets
    }

    fn submit_with(&self, body: RecordBody, seal: Option<CheckpointReason>) -> Ticket {
        let members = match self.encode(&body) {
            Ok(m) => m,
            Err(e) => return Ticket::ready(self.path.clone(), Err(e)),
        };
        self.send(|done| Request::Append {
            members,
            seal,
            done,
        })
    }

    /// A record's members, checked against what callers may write.
    fn encode(&self, body: &RecordBody) -> Result<Vec<u8>, AuditError> {
        let kind = body.kind();
        if body.is_reserved() {
            return Err(AuditError::ReservedKind { kind });
        }
        match body.to_members() {
            Ok(m) if m.len() + LINE_OVERHEAD <= MAX_LINE => Ok(m),
            Ok(m) => {
                let detail = format!("{} bytes is over the 1 MiB record limit", m.len());
                Err(AuditError::Encode { kind, detail })
            }
            Err(e) => Err(AuditError::Encode {
                kind,
                detail: e.to_string(),
            }),
        }
    }

    fn send(&self, make: impl FnOnce(Completer) -> Request) -> Ticket {
        let (t, done) = ticket::pair(self.path.clone());
        // If the writer is gone the request (and its completer) is dropped,
        // which resolves the ticket with `Closed`.
        let _ = self.tx.send(Sent::One(make(done)));
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
    /// with [`AuditError::Closed`]. Blocks; from async code use
    /// [`Trail::close_async`].
    pub fn close(&self) -> Result<(), AuditError> {
        let r = self.send(|done| Request::Close { done }).wait();
        self.finish(r)
    }

    /// [`Trail::close`] for async code: awaits the final sync.
    pub async fn close_async(&self) -> Result<(), AuditError> {
        let r = self.send(|done| Request::Close { done }).await;
        self.finish(r)
    }

    /// After the writer answered `Close`: reap its thread (already done).
    fn finish(&self, r: Result<Appended, AuditError>) -> Result<(), AuditError> {
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
