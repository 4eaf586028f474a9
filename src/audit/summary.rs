//! One-line human summaries of records, and the table `audit show` prints.
//!
//! Everything printed comes from the trail, and parts of the trail come from
//! tools (argv, paths, details): [`clean`] escapes control characters so that
//! a record can never drive the responder's terminal. This module formats;
//! it never decides what a record means beyond its fields.

use std::fmt::Write;

use serde_json::Value;

use super::reader::Record;
use super::record::{CheckpointReason, RecordBody};
use crate::report::ExitCause;

/// Text with control characters (C0, DEL, C1) escaped as `\u{..}`.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `max` characters, with `…` when cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The table header.
pub fn header() -> String {
    format!(
        "{:<23}  {:>7}  {:<14}  {:<12}  {:<18}  SUMMARY",
        "TIME (UTC)", "SEQ", "RUN", "TOOL", "KIND"
    )
}

/// One table row. Denials are marked `!! DENIAL`, losses `!! DENIALS LOST`,
/// denials only counted past a run's or a caller's bounds `!! DENIALS CAPPED`; in bold red
/// with `color`.
pub fn row(r: &Record, color: bool) -> String {
    // 2026-11-01T12:34:56.123456Z → 2026-11-01 12:34:56.123
    let time = match r.ts.get(..23) {
        Some(t) => t.replacen('T', " ", 1),
        None => clean(&r.ts),
    };
    let denial = r.kind == "denial" || r.kind == "denials-lost";
    let kind = if let Some(RecordBody::DenialsLost { source, .. }) = &r.body
        && (source == "cap" || source == "refusal-cap")
    {
        // Past a run's (or a caller's) bounds: counted in the record, not lost.
        "!! DENIALS CAPPED".to_string()
    } else if r.kind == "denials-lost" {
        "!! DENIALS LOST".to_string()
    } else if denial {
        "!! DENIAL".to_string()
    } else {
        fit(&clean(&r.kind), 18)
    };
    let line = format!(
        "{time:<23}  {:>7}  {:<14}  {:<12}  {kind:<18}  {}",
        r.seq,
        fit(&clean(r.run().unwrap_or("-")), 14),
        fit(&clean(r.tool().unwrap_or("-")), 12),
        clean(&summary(r)),
    );
    if denial && color {
        format!("\x1b[1;31m{line}\x1b[0m")
    } else {
        line
    }
}

/// What the record says, in one line.
pub fn summary(r: &Record) -> String {
    let Some(body) = &r.body else {
        // Unknown kind, or fields this version cannot read: show them raw.
        let mut rest = r.fields.clone();
        for k in ["seq", "ts", "prev", "kind", "hash", "run", "tool"] {
            rest.remove(k);
        }
        return fit(&Value::Object(rest).to_string(), 160);
    };
    match body {
        RecordBody::SupervisorStarted {
            pid,
            version,
            mode,
            config,
        } => {
            let cfg = config.as_ref().map(|c| format!(", config {}", c.display()));
            format!(
                "enforcecore {version} {mode} (pid {pid}{})",
                cfg.unwrap_or_default()
            )
        }
        RecordBody::SupervisorStopped { reason } => reason.clone(),
        RecordBody::PolicyLoaded {
            name,
            sha256,
            sources,
        } => {
            let files: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
            format!(
                "policy {name} sha256:{} from {}",
                fit(sha256, 13),
                files.join(", ")
            )
        }
        RecordBody::PolicyRejected {
            path, error, kept, ..
        } => format!(
            "reload of {} refused, policy sha256:{} kept: {}",
            path.display(),
            fit(kept, 13),
            error.lines().next().unwrap_or("")
        ),
        RecordBody::RunStarted {
            argv,
            caller,
            enforcement: e,
            pid,
            ..
        } => {
            let pid = pid.map(|p| format!("pid {p}, ")).unwrap_or_default();
            format!(
                "{pid}argv: {} | by {} uid {} | landlock abi {} {}, seccomp {} {}, cgroup {}, as uid {}",
                fit(&argv.join(" "), 80),
                caller.via,
                caller.uid,
                e.landlock.abi,
                e.landlock.status,
                e.seccomp.mode,
                e.seccomp.action,
                if e.cgroup.version.is_empty() {
                    "-"
                } else {
                    &e.cgroup.version
                },
                e.uid,
            )
        }
        RecordBody::Denial { denial: d, .. } => {
            let layer = serde_json::to_value(d.layer).ok();
            let layer = layer.as_ref().and_then(Value::as_str).unwrap_or("?");
            let access = d
                .access
                .as_ref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            let pid = d.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
            let hint = if d.hint.is_empty() {
                String::new()
            } else {
                format!(" — {}", d.hint)
            };
            format!("{layer}: {}{access}{pid}{hint}", d.object)
        }
        RecordBody::Redaction { receipt: x, .. } => {
            format!("{}: {} ×{} redacted", x.stream, x.detector, x.count)
        }
        RecordBody::RunExited { exit: x, .. } => {
            let how = match (x.code, x.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                (None, None) => "ended".to_string(),
            };
            let cause = match x.cause {
                ExitCause::Exited | ExitCause::Signaled => String::new(),
                c => {
                    let v = serde_json::to_value(c).ok();
                    format!(" ({})", v.as_ref().and_then(Value::as_str).unwrap_or("?"))
                }
            };
            let mut s = format!("{how}{cause} after {:.3} s", x.duration_ms as f64 / 1000.0);
            if let Some(c) = x.cpu_ms {
                let _ = write!(s, ", cpu {:.3} s", c as f64 / 1000.0);
            }
            if let Some(m) = x.peak_memory_bytes {
                let _ = write!(s, ", peak {:.1} MiB", m as f64 / (1024.0 * 1024.0));
            }
            let _ = write!(
                s,
                ", {} denial{}",
                x.denials,
                if x.denials == 1 { "" } else { "s" }
            );
            s
        }
        RecordBody::RunFailed { code, error, .. } => {
            format!("did not run (exit {code}): {error}")
        }
        RecordBody::DenialsLost {
            source,
            detail,
            runs,
        } => {
            format!("{source}: {detail} (runs: {})", runs.join(", "))
        }
        RecordBody::Checkpoint { reason, key_id, .. } => match reason {
            CheckpointReason::Open => format!("trail started under key {key_id}"),
            _ => format!(
                "signed by key {key_id}: the chain up to seq {} ({})",
                r.seq - 1,
                reason.as_str()
            ),
        },
        RecordBody::Recovered {
            reason,
            torn_bytes,
            kept_at,
            ..
        } => match kept_at {
            Some(k) => format!("{reason}: {torn_bytes} bytes kept at {k}"),
            None => reason.clone(),
        },
        RecordBody::Rotated { archive } => {
            format!("file archived as {archive}; continues in the active file")
        }
        RecordBody::Continued { from } => format!("continues {from}"),
    }
}
