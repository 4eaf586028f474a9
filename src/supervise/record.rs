//! [`TrailObserver`]: a run's records in the audit trail.
//!
//! The observer `enforcecore run` and the daemon hand to [`super::execute`]. It
//! writes, for one run: `run-started` (durable before the tool is exec'd — an
//! error aborts the run), one `denial` record per denial (and `denials-lost`
//! when the feed lost kernel records), one `redaction` record
//! per stream and detector, and `run-exited`, sealed by a signed checkpoint when
//! the trail has a key. Records are submitted through the trail's writer thread,
//! so many concurrent runs share one group commit.
//!
//! This module must never put a secret in the trail: the argument vector is
//! redacted by the policy's engine before it is recorded, and receipts carry
//! counts and keyed fingerprints only.

use std::sync::Arc;

use super::{Observer, ObserverError};
use crate::audit::{CheckpointReason, RecordBody, Trail};
use crate::redact::Engine;
use crate::report::{Caller, Denial, EnforcementReport, ExitReport, RedactionReceipt};

/// Stream name under which redactions in the argument vector are receipted.
pub const ARGV_STREAM: &str = "argv";

/// Records one run in an audit trail.
pub struct TrailObserver {
    trail: Arc<Trail>,
    run: String,
    tool: String,
    policy: Option<String>,
    argv: Vec<String>,
    argv_receipts: Vec<RedactionReceipt>,
    caller: Caller,
}

/// Who ran what, for [`TrailObserver::new`].
pub struct RunIdentity<'a> {
    /// The run id.
    pub run: &'a str,
    /// The policy tool, or the command itself for a run without a tool.
    pub tool: &'a str,
    /// The policy's name.
    pub policy: Option<&'a str>,
    /// The command line as asked (redacted here before it is recorded).
    pub argv: &'a [std::ffi::OsString],
    /// Who asked.
    pub caller: Caller,
}

impl TrailObserver {
    /// An observer for one run. `engine` redacts the argument vector.
    pub fn new(trail: Arc<Trail>, engine: &Arc<Engine>, id: RunIdentity<'_>) -> TrailObserver {
        let mut argv_receipts: Vec<RedactionReceipt> = Vec::new();
        let argv = id
            .argv
            .iter()
            .map(|a| {
                let (clean, receipts) = engine.redact(ARGV_STREAM, a.as_encoded_bytes());
                merge_receipts(&mut argv_receipts, receipts);
                String::from_utf8_lossy(&clean).into_owned()
            })
            .collect();
        TrailObserver {
            trail,
            run: id.run.to_string(),
            tool: id.tool.to_string(),
            policy: id.policy.map(str::to_string),
            argv,
            argv_receipts,
            caller: id.caller,
        }
    }

    /// The argument vector as recorded (after redaction).
    pub fn recorded_argv(&self) -> &[String] {
        &self.argv
    }

    /// The run's `run-started` record.
    pub fn started_record(&self, enforcement: &EnforcementReport) -> RecordBody {
        RecordBody::RunStarted {
            run: self.run.clone(),
            tool: self.tool.clone(),
            policy: self.policy.clone(),
            pid: None,
            argv: self.argv.clone(),
            caller: self.caller.clone(),
            enforcement: Box::new(enforcement.clone()),
        }
    }
}

impl TrailObserver {
    /// The run's `run-failed` record ([`Observer::not_started`]).
    pub fn failed_record(&self, code: u8, error: &str) -> RecordBody {
        RecordBody::RunFailed {
            run: self.run.clone(),
            tool: self.tool.clone(),
            policy: self.policy.clone(),
            argv: self.argv.clone(),
            caller: self.caller.clone(),
            code,
            error: error.to_string(),
        }
    }
}

/// Add `more` into `into`, one receipt per detector.
fn merge_receipts(into: &mut Vec<RedactionReceipt>, more: Vec<RedactionReceipt>) {
    for r in more {
        match into.iter_mut().find(|x| x.detector == r.detector) {
            Some(x) => {
                x.count += r.count;
                for f in r.fingerprints {
                    if !x.fingerprints.contains(&f)
                        && x.fingerprints.len() < crate::redact::MAX_FINGERPRINTS
                    {
                        x.fingerprints.push(f);
                    }
                }
            }
            None => into.push(r),
        }
    }
}

#[async_trait::async_trait]
impl Observer for TrailObserver {
    async fn started(&self, enforcement: &EnforcementReport) -> Result<(), ObserverError> {
        self.trail
            .append_async(self.started_record(enforcement))
            .await?;
        Ok(())
    }

    async fn denial(&self, denial: Denial) -> Result<(), ObserverError> {
        let body = RecordBody::Denial {
            run: self.run.clone(),
            tool: self.tool.clone(),
            denial,
        };
        self.trail.append_async(body).await?;
        Ok(())
    }

    async fn denials(&self, batch: &[Denial]) -> Result<(), ObserverError> {
        // Submitted together: one batch, one sync.
        let tickets = self
            .trail
            .submit_all(batch.iter().map(|d| RecordBody::Denial {
                run: self.run.clone(),
                tool: self.tool.clone(),
                denial: d.clone(),
            }));
        for t in tickets {
            t.await?;
        }
        Ok(())
    }

    async fn lost(&self, source: &str, detail: &str) -> Result<(), ObserverError> {
        let body = RecordBody::DenialsLost {
            source: source.to_string(),
            detail: detail.to_string(),
            runs: vec![self.run.clone()],
        };
        self.trail.append_async(body).await?;
        Ok(())
    }

    async fn redacted(&self, receipts: &[RedactionReceipt]) -> Result<(), ObserverError> {
        // Submitted together: one batch, one sync.
        let tickets = self.trail.submit_all(
            self.argv_receipts
                .iter()
                .chain(receipts)
                .filter(|r| r.count > 0)
                .map(|r| RecordBody::Redaction {
                    run: self.run.clone(),
                    tool: self.tool.clone(),
                    receipt: r.clone(),
                }),
        );
        for t in tickets {
            t.await?;
        }
        Ok(())
    }

    async fn not_started(&self, code: u8, error: &str) -> Result<(), ObserverError> {
        self.trail
            .submit_sealed(self.failed_record(code, error), CheckpointReason::RunEnd)
            .await?;
        Ok(())
    }

    async fn exited(&self, exit: &ExitReport) -> Result<(), ObserverError> {
        let body = RecordBody::RunExited {
            run: self.run.clone(),
            tool: self.tool.clone(),
            exit: exit.clone(),
        };
        self.trail
            .submit_sealed(body, CheckpointReason::RunEnd)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(detector: &str, count: u64, fps: &[&str]) -> RedactionReceipt {
        RedactionReceipt {
            stream: ARGV_STREAM.into(),
            detector: detector.into(),
            count,
            fingerprints: fps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn receipts_merge_per_detector_without_duplicate_fingerprints() {
        let mut all = vec![receipt("email", 1, &["a"])];
        merge_receipts(
            &mut all,
            vec![receipt("email", 2, &["a", "b"]), receipt("jwt", 1, &["c"])],
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].count, 3);
        assert_eq!(all[0].fingerprints, ["a", "b"]);
        assert_eq!(all[1].detector, "jwt");
    }
}
