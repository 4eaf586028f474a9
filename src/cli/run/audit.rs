//! The audit side of `enforcecore run`: the trail, the redaction engine and the
//! run's observer.
//!
//! Every run is recorded: in `--audit-log FILE` when given, else in the default
//! trail ([`audit::default_trail_path`]; its directory is created 0700). A trail
//! that cannot be opened, a key that cannot be read or a redaction engine that
//! cannot be built stops the run before anything is spawned (exit 125): the tool
//! never runs unaudited.
//!
//! The `policy-loaded` record is prepared when the trail opens but handed to the
//! writer together with `run-started` ([`Trail::submit_all`]), so that both are
//! made durable by one `fdatasync` before the exec ([`RunObserver`]); a run that
//! ends before it starts (refused, or its sandbox could not be applied) writes
//! it before its last records.

use std::os::unix::fs::DirBuilderExt;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;

use super::RunArgs;
use crate::audit::{self, CheckpointReason, RecordBody, Ticket, Trail, TrailOptions};
use crate::policy::Policy;
use crate::redact::Engine;
use crate::report::{Caller, Denial, EnforcementReport, ExitReport, RedactionReceipt};
use crate::supervise::{Observer, ObserverError, Refusal, RunIdentity, TrailObserver};

/// The trail, the engine and the observer of one `run`.
pub(super) struct Audit {
    pub trail: Arc<Trail>,
    pub engine: Arc<Engine>,
    pub observer: RunObserver,
    run: String,
    tool: String,
}

impl Audit {
    /// Open the trail (taking its lock), build the engine, record the policy.
    pub fn open(
        args: &RunArgs,
        policy: &Policy,
        run: &str,
        tool: &str,
        caller: Caller,
    ) -> anyhow::Result<Audit> {
        let path = match &args.audit_log {
            Some(p) => p.clone(),
            None => {
                let p = audit::default_trail_path()
                    .context("no --audit-log given and no default trail location")?;
                if let Some(dir) = p.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .with_context(|| {
                            format!("creating the audit trail's directory {}", dir.display())
                        })?;
                }
                p
            }
        };
        let mut opts = TrailOptions::new(&path);
        if let Some(key) = &args.audit_key {
            opts.signing_key = Some(audit::keys::load_signing_key(key)?);
        }
        let engine =
            Arc::new(Engine::new(&policy.redaction).context("preparing the policy's redaction")?);
        let trail = Arc::new(Trail::open(opts)?);
        let observer = RunObserver {
            inner: TrailObserver::new(
                trail.clone(),
                &engine,
                RunIdentity {
                    run,
                    tool,
                    policy: Some(&policy.name),
                    argv: &args.command,
                    caller,
                },
            ),
            policy_loaded: Mutex::new(Some(RecordBody::PolicyLoaded {
                name: policy.name.clone(),
                sha256: policy.hash.clone(),
                sources: policy.sources.clone(),
            })),
            trail: trail.clone(),
        };
        Ok(Audit {
            trail,
            engine,
            observer,
            run: run.to_string(),
            tool: tool.to_string(),
        })
    }

    /// Record a refused request (policy denial) and seal the trail.
    pub fn refused(&self, refusal: &Refusal) -> anyhow::Result<()> {
        // Queued first, so it lands in the same batch as the denial.
        let policy = self.observer.policy_loaded();
        self.trail.append_sealed(
            RecordBody::Denial {
                run: self.run.clone(),
                tool: self.tool.clone(),
                denial: (*refusal.denial).clone(),
            },
            CheckpointReason::RunEnd,
        )?;
        if let Some(t) = policy {
            t.wait()?;
        }
        self.trail.close()?;
        Ok(())
    }
}

/// The run's [`TrailObserver`], which also owns the still unwritten
/// `policy-loaded` record.
pub(super) struct RunObserver {
    inner: TrailObserver,
    policy_loaded: Mutex<Option<RecordBody>>,
    trail: Arc<Trail>,
}

impl RunObserver {
    /// Queue the `policy-loaded` record unless it already is; the ticket
    /// resolves once it is durable.
    pub fn policy_loaded(&self) -> Option<Ticket> {
        Some(self.trail.submit(self.take_policy_loaded()?))
    }

    /// The `policy-loaded` record, unless it was handed to the writer already.
    fn take_policy_loaded(&self) -> Option<RecordBody> {
        self.policy_loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait::async_trait]
impl Observer for RunObserver {
    async fn started(&self, enforcement: &EnforcementReport) -> Result<(), ObserverError> {
        // Sent together: the writer takes both in one batch (one sync).
        let policy = self.take_policy_loaded();
        let started = self.inner.started_record(enforcement);
        for t in self.trail.submit_all(policy.into_iter().chain([started])) {
            t.await?;
        }
        Ok(())
    }

    async fn denial(&self, denial: Denial) -> Result<(), ObserverError> {
        self.inner.denial(denial).await
    }

    async fn denials(&self, batch: &[Denial]) -> Result<(), ObserverError> {
        self.inner.denials(batch).await
    }

    async fn lost(&self, source: &str, detail: &str) -> Result<(), ObserverError> {
        self.inner.lost(source, detail).await
    }

    async fn redacted(&self, receipts: &[RedactionReceipt]) -> Result<(), ObserverError> {
        self.inner.redacted(receipts).await
    }

    async fn exited(&self, exit: &ExitReport) -> Result<(), ObserverError> {
        self.inner.exited(exit).await
    }

    async fn not_started(&self, code: u8, error: &str) -> Result<(), ObserverError> {
        let policy = self.policy_loaded();
        self.inner.not_started(code, error).await?;
        if let Some(t) = policy {
            t.await?;
        }
        Ok(())
    }
}
