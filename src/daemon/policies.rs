//! The policy in effect, and reloading it atomically.
//!
//! A run takes an `Arc` of the [`Active`] policy when it is admitted and keeps
//! it to the end, so a reload never changes a run in flight. A reload loads the
//! file again (with its `extends` chain) and builds the redaction engine on a
//! blocking thread; only when both succeed *and* the `policy-loaded` record is
//! durable does the new policy replace the old one. Anything else — a parse
//! error, a rule the kernel cannot express, a missing redaction key, an audit
//! failure — keeps the old policy and is recorded as `policy-rejected` with the
//! hash of the policy kept. This module must never leave the daemon without a
//! policy, nor switch to one whose loading was not recorded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest, Sha256};

use crate::audit::{AuditError, RecordBody, Trail};
use crate::policy::{self, Policy, PolicyError};
use crate::redact::{Engine, RedactError};

/// A loaded policy and what is compiled from it.
#[derive(Debug)]
pub struct Active {
    /// The policy.
    pub policy: Policy,
    /// Its redaction engine, shared by every run under it.
    pub engine: Arc<Engine>,
}

/// Why a policy could not be put in effect.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The policy file is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Its redaction settings could not be compiled (key file, pattern).
    #[error("policy {path}: redaction: {error}", path = .path.display())]
    Redaction {
        /// The policy file.
        path: PathBuf,
        /// Why.
        error: RedactError,
    },
    /// The outcome could not be recorded, so the old policy stays.
    #[error("recording the reload in the audit trail failed, old policy kept: {0}")]
    Audit(AuditError),
    /// The loading thread failed.
    #[error("loading the policy failed: {0}")]
    Task(String),
}

impl Active {
    /// Load `path` and compile its redaction engine (blocking: file I/O).
    pub fn load(path: &Path) -> Result<Active, LoadError> {
        let policy = policy::load(path)?;
        let engine = Engine::new(&policy.redaction).map_err(|error| LoadError::Redaction {
            path: path.into(),
            error,
        })?;
        Ok(Active {
            policy,
            engine: Arc::new(engine),
        })
    }

    /// The `policy-loaded` record for this policy.
    pub fn record(&self) -> RecordBody {
        RecordBody::PolicyLoaded {
            name: self.policy.name.clone(),
            sha256: self.policy.hash.clone(),
            sources: self.policy.sources.clone(),
        }
    }
}

/// The policy file and the policy currently in effect.
#[derive(Debug)]
pub struct Policies {
    path: PathBuf,
    current: RwLock<Arc<Active>>,
}

/// What a reload did.
#[derive(Debug)]
pub struct Reloaded {
    /// The policy now in effect.
    pub active: Arc<Active>,
    /// Whether its hash differs from the one it replaced.
    pub changed: bool,
}

impl Policies {
    /// Start with `active`, loaded from `path`.
    pub fn new(path: PathBuf, active: Active) -> Policies {
        Policies {
            path,
            current: RwLock::new(Arc::new(active)),
        }
    }

    /// The policy in effect now.
    pub fn current(&self) -> Arc<Active> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-read the policy file; see the module doc. Both outcomes are recorded
    /// in `trail`.
    pub async fn reload(&self, trail: &Trail) -> Result<Reloaded, LoadError> {
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || Active::load(&path))
            .await
            .map_err(|e| LoadError::Task(e.to_string()))
            .and_then(|r| r);
        let old = self.current();
        match loaded {
            Ok(new) => {
                trail
                    .append_async(new.record())
                    .await
                    .map_err(LoadError::Audit)?;
                let changed = new.policy.hash != old.policy.hash;
                let new = Arc::new(new);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = new.clone();
                Ok(Reloaded {
                    active: new,
                    changed,
                })
            }
            Err(e) => {
                let record = RecordBody::PolicyRejected {
                    path: self.path.clone(),
                    file_sha256: file_sha256(&self.path).await,
                    error: e.to_string(),
                    kept: old.policy.hash.clone(),
                };
                if let Err(a) = trail.append_async(record).await {
                    tracing::error!("recording a refused reload failed: {a}");
                }
                Err(e)
            }
        }
    }
}

/// SHA-256 of a file's bytes (bounded read), for the record of a refused
/// reload; `None` for anything but a regular file. Opened non-blocking: the
/// path is whatever the operator left there, and opening a FIFO (or a device)
/// must never wait — this runs while the main loop awaits the reload.
async fn file_sha256(path: &Path) -> Option<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)
            .ok()?;
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        f.take(16 * 1024 * 1024).read_to_end(&mut bytes).ok()?;
        Some(hex::encode(Sha256::digest(&bytes)))
    })
    .await
    .ok()
    .flatten()
}
