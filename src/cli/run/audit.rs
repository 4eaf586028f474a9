//! The audit side of `enforcecore run`: the trail, the redaction engine and the
//! run's observer.
//!
//! Every run is recorded: in `--audit-log FILE` when given, else in the default
//! trail ([`audit::default_trail_path`]; its directory is created 0700). A trail
//! that cannot be opened, a key that cannot be read or a redaction engine that
//! cannot be built stops the run before anything is spawned (exit 125): the tool
//! never runs unaudited.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

use anyhow::Context;

use super::RunArgs;
use crate::audit::{self, CheckpointReason, RecordBody, Trail, TrailOptions};
use crate::policy::Policy;
use crate::redact::Engine;
use crate::report::Caller;
use crate::supervise::{Refusal, RunIdentity, TrailObserver};

/// The trail, the engine and the observer of one `run`.
pub(super) struct Audit {
    pub trail: Arc<Trail>,
    pub engine: Arc<Engine>,
    pub observer: TrailObserver,
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
        // Not awaited: the run-started record that follows waits for both.
        drop(trail.submit(RecordBody::PolicyLoaded {
            name: policy.name.clone(),
            sha256: policy.hash.clone(),
            sources: policy.sources.clone(),
        }));
        let observer = TrailObserver::new(
            trail.clone(),
            &engine,
            RunIdentity {
                run,
                tool,
                policy: Some(&policy.name),
                argv: &args.command,
                caller,
            },
        );
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
        self.trail.append_sealed(
            RecordBody::Denial {
                run: self.run.clone(),
                tool: self.tool.clone(),
                denial: (*refusal.denial).clone(),
            },
            CheckpointReason::RunEnd,
        )?;
        self.trail.close()?;
        Ok(())
    }
}
