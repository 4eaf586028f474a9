//! Switching kernel audit on for runs that ask for it, and off again — shared
//! safely between concurrent supervisors on one host.
//!
//! Kernel audit is host-wide state. A policy's `denials.kernel_audit` decides:
//! `enable` switches it on when it is off, `if_enabled` uses it only when it is
//! already on, `off` never reads it. The record of who switched it on lives in
//! `/run/enforcecore/kernel-audit.json`, changed only under an exclusive `flock`
//! of `/run/enforcecore/kernel-audit.lock`: which processes hold it (pid + start
//! time, so that a crashed holder is recognised and pruned), how many runs each
//! holds, and the backlog limit to restore. The last holder to leave switches
//! audit off again — only when EnforceCore switched it on; a host whose audit
//! was already on is never touched. This module never registers an audit
//! daemon and never changes audit rules.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::netlink::Control;
use crate::policy::KernelAudit;

/// Where the lock and state files live.
pub const STATE_DIR: &str = "/run/enforcecore";

/// The kernel's audit backlog while EnforceCore holds audit on (the boot default
/// of 64 drops records when a tool is denied in a burst).
pub const BACKLOG_LIMIT: u32 = 8192;

/// The most a state file rewrite pads with spaces ([`Locked::save`]).
const MAX_PAD: usize = 1 << 20;

/// What kernel denial capture is for a run; recorded in run-started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// EnforceCore switched kernel audit on (this run or another holder).
    EnabledByEnforcecore,
    /// It was already on.
    AlreadyEnabled,
    /// It could not be used.
    Unavailable(String),
    /// Not captured, by choice.
    Off(String),
}

impl Capture {
    /// The spelling in `EnforcementReport::kernel_audit`.
    pub fn report(&self) -> String {
        match self {
            Capture::EnabledByEnforcecore => "enabled-by-enforcecore".into(),
            Capture::AlreadyEnabled => "already-enabled".into(),
            Capture::Unavailable(why) => format!("unavailable: {why}"),
            Capture::Off(why) => format!("off: {why}"),
        }
    }

    /// Whether kernel records are read for the run.
    pub fn active(&self) -> bool {
        matches!(
            self,
            Capture::EnabledByEnforcecore | Capture::AlreadyEnabled
        )
    }
}

/// The shared state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// EnforceCore switched audit on and must switch it off after the last holder.
    pub enabled_by_enforcecore: bool,
    /// Backlog limit before EnforceCore raised it.
    pub prior_backlog_limit: u32,
    /// Processes holding audit on.
    pub holders: Vec<Holder>,
}

/// One supervisor process holding kernel audit on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its pid.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22), against pid reuse.
    pub start: u64,
    /// How many of its runs hold audit on.
    pub runs: u32,
}

/// A process's start time in clock ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: skip past the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The lock, held while the state is read and changed.
struct Locked {
    _lock: nix::fcntl::Flock<File>,
    path: PathBuf,
    state: State,
}

fn lock(dir: &Path) -> io::Result<Locked> {
    fs::create_dir_all(dir)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("kernel-audit.lock"))?;
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))?;
    let path = dir.join("kernel-audit.json");
    let mut state: State = match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(e),
    };
    state
        .holders
        .retain(|h| h.runs > 0 && start_time(h.pid) == Some(h.start));
    Ok(Locked {
        _lock: lock,
        path,
        state,
    })
}

impl Locked {
    /// Rewrite the state file in place, under the lock: one write of the new
    /// state, padded with spaces over what is left of the old one (JSON ignores
    /// trailing whitespace), so that a supervisor that dies at any point leaves
    /// a file that parses; then the padding is cut off. Not a new file renamed
    /// over the old one: that frees and allocates a block twice per run (a
    /// synchronous discard each on disks mounted with `discard`).
    fn save(&self) -> io::Result<()> {
        let mut body = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.path)?;
        let len = body.len();
        // (A state file is a few hundred bytes; one grown past 1 MiB by hand is
        // not padded to its end: cut off below, it parses once the write is done.)
        let old = usize::try_from(f.metadata()?.len()).map_or(MAX_PAD, |n| n.min(MAX_PAD));
        if old > len {
            body.resize(old, b' ');
        }
        f.write_all_at(&body, 0)?;
        f.set_len(len as u64)
    }

    fn hold(&mut self, delta: i32) {
        let pid = std::process::id() as i32;
        let Some(start) = start_time(pid) else { return };
        match self
            .state
            .holders
            .iter_mut()
            .find(|h| h.pid == pid && h.start == start)
        {
            Some(h) => h.runs = h.runs.saturating_add_signed(delta),
            None if delta > 0 => self.state.holders.push(Holder {
                pid,
                start,
                runs: delta as u32,
            }),
            None => {}
        }
        self.state.holders.retain(|h| h.runs > 0);
    }

    /// Switch audit off if EnforceCore switched it on and nobody holds it.
    fn settle(&mut self, ctl: &mut Control) -> io::Result<()> {
        if self.state.enabled_by_enforcecore && self.state.holders.is_empty() {
            ctl.set(0, Some(self.state.prior_backlog_limit))?;
            self.state.enabled_by_enforcecore = false;
        }
        Ok(())
    }
}

/// Take kernel audit for one run of this process, per the policy's choice.
/// `Capture::active()` means the caller must later call [`release`]. Also
/// returns the kernel's lost-record counter when it was read.
///
/// `AUDIT_GET` is slow (the kernel answers from a freshly created kernel
/// thread), so it is skipped when another live EnforceCore process already
/// holds audit on: then it is known to be on.
pub fn acquire(dir: &Path, mode: KernelAudit, ctl: &mut Control) -> (Capture, Option<u32>) {
    if mode == KernelAudit::Off {
        return (
            Capture::Off("the policy sets denials.kernel_audit: off".into()),
            None,
        );
    }
    let mut l = match lock(dir) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot lock {}/kernel-audit.lock: {e}", dir.display());
            return (Capture::Unavailable(why), None);
        }
    };
    if l.state.enabled_by_enforcecore && !l.state.holders.is_empty() {
        l.hold(1);
        if let Err(e) = l.save() {
            tracing::warn!("saving {}: {e}", l.path.display());
        }
        return (Capture::EnabledByEnforcecore, None);
    }
    // A crashed holder may have left audit on: switch it off first if so.
    if let Err(e) = l.settle(ctl) {
        tracing::warn!("restoring kernel audit after a crashed supervisor: {e}");
    }
    let status = match ctl.status() {
        Ok(s) => s,
        Err(e) => return (Capture::Unavailable(format!("AUDIT_GET failed: {e}")), None),
    };
    let capture = if status.enabled != 0 {
        if l.state.enabled_by_enforcecore {
            Capture::EnabledByEnforcecore
        } else {
            Capture::AlreadyEnabled
        }
    } else if mode == KernelAudit::IfEnabled {
        let why = "kernel audit is off and the policy sets denials.kernel_audit: if_enabled";
        return (Capture::Off(why.into()), None);
    } else {
        let backlog = status.backlog_limit.max(BACKLOG_LIMIT);
        if let Err(e) = ctl.set(1, Some(backlog)) {
            let why = format!("switching kernel audit on failed: {e} (needs CAP_AUDIT_CONTROL)");
            return (Capture::Unavailable(why), None);
        }
        l.state.enabled_by_enforcecore = true;
        l.state.prior_backlog_limit = status.backlog_limit;
        Capture::EnabledByEnforcecore
    };
    l.hold(1);
    if let Err(e) = l.save() {
        tracing::warn!("saving {}: {e}", l.path.display());
    }
    (capture, Some(status.lost))
}

/// Give back one run's hold; the last holder restores the host's audit state.
pub fn release(dir: &Path, ctl: &mut Control) -> io::Result<()> {
    let mut l = lock(dir)?;
    l.hold(-1);
    let r = l.settle(ctl);
    l.save()?;
    r
}

/// The state file and the kernel's audit status, read together under the lock
/// (no supervisor can switch audit on or off in between).
pub fn snapshot(
    dir: &Path,
    ctl: &mut Control,
) -> io::Result<(State, crate::sandbox::probe::AuditStatus)> {
    let l = lock(dir)?;
    let status = ctl.status()?;
    Ok((l.state, status))
}

/// The state file as it is now (for `doctor`); read without the lock.
pub fn current(dir: &Path) -> Option<State> {
    serde_json::from_slice(&fs::read(dir.join("kernel-audit.json")).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn holders_count_runs_and_dead_holders_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = lock(dir.path()).unwrap();
        l.state.holders.push(Holder {
            pid: i32::MAX,
            start: 1,
            runs: 3,
        });
        l.hold(1);
        l.hold(1);
        l.save().unwrap();
        drop(l);
        let mut l = lock(dir.path()).unwrap();
        assert_eq!(l.state.holders.len(), 1, "the dead holder is pruned");
        assert_eq!(l.state.holders[0].runs, 2);
        l.hold(-1);
        l.hold(-1);
        assert!(l.state.holders.is_empty());
    }

    #[test]
    fn the_state_file_is_rewritten_in_place_and_always_parses() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel-audit.json");
        let mut l = lock(dir.path()).unwrap();
        l.state.enabled_by_enforcecore = true;
        l.state.holders = (1..=3)
            .map(|pid| Holder {
                pid,
                start: 7,
                runs: 1,
            })
            .collect();
        l.save().unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        let long = fs::read(&path).unwrap();
        l.state.holders.clear();
        l.save().unwrap();
        drop(l);
        let short = fs::read(&path).unwrap();
        assert!(short.len() < long.len());
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "the same file");
        let state: State = serde_json::from_slice(&short).unwrap();
        assert!(state.enabled_by_enforcecore && state.holders.is_empty());
        // A writer that died before cutting the padding left a file that parses.
        let mut padded = short.clone();
        padded.resize(long.len(), b' ');
        fs::write(&path, &padded).unwrap();
        assert_eq!(lock(dir.path()).unwrap().state, state);
    }
}
