//! The tamper-evident audit trail (DESIGN §6): records, hash chain, durable
//! writer, signed checkpoints, verifier and readers.
//!
//! This module owns the trail's bytes on disk. It must never drop or reorder a
//! record, never report a record durable before it is synced, never sign a
//! chain it has not checked, and never store a secret (callers hand it argv
//! after redaction and receipts without values).
//!
//! # Layout
//! - [`record`]: the schema ([`RecordBody`], one variant per `kind`).
//! - [`line`](mod@line): the exact bytes of a line and the hashing rule;
//!   [`json_syntax`]: the allocation-free JSON check verify runs on them.
//! - [`keys`]: Ed25519 signing keys and their files.
//! - [`writer`]: [`Trail`], the handle callers append through; `batch` is its
//!   writer thread (group commit, checkpoints, rotation), `segment` the active
//!   file under the lock (torn-tail recovery, rotation steps), `files` the
//!   reading and naming of a trail's files, `vouch` what a signing writer
//!   checks before it signs; [`ticket`] is how callers wait.
//! - [`verify`]: `audit verify`, streaming over one or more files (`blocks`
//!   feeds it, JSON checked one block ahead on a helper thread); [`verdict`]
//!   is its report.
//! - [`reader`], [`summary`], [`follow`] and [`lines`]: `audit show` and
//!   `audit tail [-f]`; [`why`]: `audit why`, one denial explained.
//!
//! The record format, hashing rule, faults and key files are documented for
//! operators in `docs/audit.md`.
//!
//! # Writing a trail (what `enforcecore run` and the daemon call)
//!
//! ```no_run
//! use enforcecore::audit::{self, RecordBody, Trail, TrailOptions};
//! fn run(started: RecordBody, exited: RecordBody) -> Result<(), audit::AuditError> {
//! let path = audit::default_trail_path()?; // or `--audit-log FILE`
//! let mut opts = TrailOptions::new(path);
//! opts.signing_key = Some(audit::keys::load_signing_key("key".as_ref())?); // `--audit-key`
//! let trail = Trail::open(opts)?; // takes the lock, recovers a torn tail
//! trail.append(started)?;   // run-started: durable when this returns — only now exec
//! // … redaction receipts and denials as they come: `trail.append(..)?` …
//! trail.append_sealed(exited, audit::CheckpointReason::RunEnd)?; // + checkpoint with a key
//! trail.close()?;           // final checkpoint when records are unsealed
//! Ok(())
//! }
//! ```
//!
//! - [`Trail::append`] blocks until the record is synced (`fdatasync`) and
//!   returns its seq and hash; an `Err` means it is *not* in the trail and the
//!   action it describes must not proceed (ENOSPC, EIO, lock timeout, a
//!   damaged trail).
//! - From async code use [`Trail::append_async`] (or [`Trail::submit`], which
//!   returns a [`Ticket`] that can be `.await`ed or `.wait()`ed): the writer
//!   thread does the I/O, the runtime never blocks.
//! - Records that arrive together (many threads or tasks) are written and
//!   synced as one batch (group commit); each caller returns once its batch is
//!   durable.
//! - Several processes may write one trail: every batch is written under an
//!   exclusive `flock` of the file and chained onto whatever the file ends
//!   with, so records never interleave and the chain stays one chain. A writer
//!   waits for the lock up to [`TrailOptions::lock_timeout`], then fails.
//! - With a signing key the writer appends signed checkpoints every
//!   [`TrailOptions::checkpoint_every`] records or
//!   [`TrailOptions::checkpoint_interval`], after [`Trail::append_sealed`],
//!   on [`Trail::checkpoint`], at rotation and at [`Trail::close`].
//! - Rotation ([`TrailOptions::rotate_bytes`], [`TrailOptions::rotate_age`])
//!   archives the active file as `FILE.<first seq, 12 digits>` and continues
//!   the chain in a new `FILE`.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) mod batch;
pub(crate) mod blocks;
pub(crate) mod files;
pub mod follow;
pub mod json_scan;
pub mod json_syntax;
pub mod keys;
pub mod line;
pub mod lines;
pub mod reader;
pub mod record;
pub(crate) mod segment;
pub mod summary;
pub mod ticket;
pub mod verdict;
pub mod verify;
pub(crate) mod vouch;
pub mod why;
pub mod writer;

pub use record::{CheckpointReason, RecordBody, RecordHash};
pub use ticket::{Appended, Ticket};
pub use writer::{Trail, TrailOptions};

/// Everything that can go wrong in the audit trail. Cloneable: one failed
/// batch reports the same error to every caller waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("cannot {step} {}: {error}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error (in the message, so not also a `source`).
        error: Arc<io::Error>,
    },
    /// A path that must name a regular file names a FIFO, a device, a
    /// directory...
    #[error("{} is {kind}, not a regular file; give the path of {expected}", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead (`a FIFO (named pipe)`).
        kind: &'static str,
        /// What it should be (`an audit trail file`).
        expected: &'static str,
    },
    /// Another writer held the trail's lock for too long.
    #[error(
        "{} is locked by another writer and was not released within {waited:?}; \
         check for a hung enforcecore process (`fuser {}`)",
        path.display(), path.display()
    )]
    Locked {
        /// The trail file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The trail's tail is not what a writer leaves behind (not a crash).
    #[error(
        "{} is damaged at byte {offset}: {why}; run `enforcecore audit verify {}`, \
         then move the file aside to start a new trail",
        path.display(), path.display()
    )]
    Damaged {
        /// The trail file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// The file is not an audit trail; it was left untouched.
    #[error(
        "{} is not an audit trail: {why}; nothing was changed — write the trail to another \
         path",
        path.display()
    )]
    NotATrail {
        /// The file.
        path: PathBuf,
        /// What it ends with instead of records.
        why: String,
    },
    /// A signing writer found records it cannot vouch for.
    #[error(
        "{}: records seq {from}..={to} are not covered by a checkpoint of key {key_id} \
         ({why}); a signing writer never signs a chain it cannot check — verify the \
         trail and move it aside, or write to a new trail file",
        path.display()
    )]
    Unvouched {
        /// The trail file.
        path: PathBuf,
        /// First unchecked seq.
        from: u64,
        /// Last unchecked seq.
        to: u64,
        /// The writer's key id.
        key_id: String,
        /// Why they cannot be checked.
        why: String,
    },
    /// Callers cannot append kinds the trail writes itself.
    #[error("a `{kind}` record is written by the audit trail itself and cannot be appended")]
    ReservedKind {
        /// The kind.
        kind: &'static str,
    },
    /// A record could not be serialized or is too large.
    #[error("cannot encode a `{kind}` record: {detail}")]
    Encode {
        /// The kind.
        kind: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// An earlier sync failed; durability can no longer be promised.
    #[error(
        "the audit trail {} stopped accepting records after an earlier failure ({cause}); \
         restart the supervisor once the storage problem is fixed",
        path.display()
    )]
    Failed {
        /// The trail file.
        path: PathBuf,
        /// The first failure.
        cause: String,
    },
    /// The trail was closed.
    #[error("the audit trail {} is closed", path.display())]
    Closed {
        /// The trail file.
        path: PathBuf,
    },
    /// No default location can be derived.
    #[error(
        "no default audit trail location: neither XDG_STATE_HOME nor HOME is set to an \
         absolute path; pass --audit-log FILE"
    )]
    NoDefaultLocation,
    /// The writer thread could not be started.
    #[error("cannot start the audit writer thread: {0}")]
    Thread(Arc<io::Error>),
    /// A key file could not be read or written.
    #[error("cannot {step} {}: {error}", path.display())]
    Key {
        /// What was being done.
        step: &'static str,
        /// The key file.
        path: PathBuf,
        /// The OS error (in the message, so not also a `source`).
        error: Arc<io::Error>,
    },
    /// `keygen` would overwrite a key.
    #[error("{} already exists; keygen never overwrites a key — choose another --out directory", path.display())]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A secret key file is readable by others.
    #[error(
        "{} is readable by other users (mode {mode:03o}); run `chmod 600 {}`",
        path.display(), path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A public key was given where the secret key is needed.
    #[error(
        "{} is a public key; signing needs the secret key (`-----BEGIN PRIVATE KEY-----`, \
         mode 0600): pass the file without `.pub`",
        path.display()
    )]
    KeyIsPublic {
        /// The key file.
        path: PathBuf,
    },
    /// A key file does not hold the expected key.
    #[error("{} is not {expected}: {detail}", path.display())]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A key could not be encoded.
    #[error("cannot encode the key: {0}")]
    KeyEncoding(String),
    /// The kernel's random source failed.
    #[error("cannot get random bytes from the kernel: {0}")]
    Random(String),
}

impl AuditError {
    /// An [`AuditError::Io`].
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        AuditError::Io {
            step,
            path: path.into(),
            error: Arc::new(source),
        }
    }

    /// The OS error number behind this error, if any (ENOSPC, EIO, ...).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            AuditError::Io { error, .. } | AuditError::Key { error, .. } => error.raw_os_error(),
            _ => None,
        }
    }
}

/// Where the trail lives when no `--audit-log` is given:
/// root → `/var/lib/enforcecore/audit/audit.jsonl`; other users →
/// `$XDG_STATE_HOME/enforcecore/audit.jsonl`, or
/// `$HOME/.local/state/enforcecore/audit.jsonl` when `XDG_STATE_HOME` is unset
/// or not absolute (XDG Base Directory spec).
pub fn default_trail_path() -> Result<PathBuf, AuditError> {
    default_trail_path_for(
        nix::unistd::geteuid().is_root(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn default_trail_path_for(
    root: bool,
    xdg_state: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf, AuditError> {
    if root {
        return Ok(PathBuf::from("/var/lib/enforcecore/audit/audit.jsonl"));
    }
    if let Some(x) = xdg_state.filter(|p| p.is_absolute()) {
        return Ok(x.join("enforcecore/audit.jsonl"));
    }
    match home.filter(|p| p.is_absolute()) {
        Some(h) => Ok(h.join(".local/state/enforcecore/audit.jsonl")),
        None => Err(AuditError::NoDefaultLocation),
    }
}

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod tamper_tests;
#[cfg(test)]
mod why_tests;
#[cfg(test)]
mod writer_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_locations() {
        let p = |r, x: Option<&str>, h: Option<&str>| {
            default_trail_path_for(r, x.map(PathBuf::from), h.map(PathBuf::from))
        };
        assert_eq!(
            p(true, Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/var/lib/enforcecore/audit/audit.jsonl")
        );
        assert_eq!(
            p(false, Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/x/enforcecore/audit.jsonl")
        );
        assert_eq!(
            p(false, Some("rel"), Some("/h")).unwrap(),
            PathBuf::from("/h/.local/state/enforcecore/audit.jsonl")
        );
        assert!(p(false, None, None).is_err());
    }
}
