//! Reading and writing cgroup control files, shared by the v1 and v2 backends.
//!
//! Owns the small, boring file operations on a cgroup directory: one `write(2)`
//! per control-file value (the kernel parses each write as one request), flat and
//! keyed file parsing (`oom_kill 3`), pid lists, directory creation that refuses to
//! reuse an existing cgroup, and removal that retries while the last processes die.
//! It must never decide *what* to write: the backends own that.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::CgroupError;

/// How long removal keeps retrying `EBUSY` (processes still exiting).
const REMOVE_PATIENCE: Duration = Duration::from_secs(2);

/// Write one value to a control file with a single `write(2)`.
///
/// `controller` names the controller in the error so that the user learns which
/// layer could not be applied.
pub(crate) fn write_value(
    controller: &'static str,
    file: &Path,
    value: &str,
) -> Result<(), CgroupError> {
    // O_TRUNC is a no-op on cgroupfs (what `echo v > file` does too); it keeps
    // the fake tree used by unit tests honest.
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::WriteControl {
        controller,
        file: file.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// Read a control file as text.
pub(crate) fn read_text(file: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(file).map_err(|source| CgroupError::ReadControl {
        file: file.to_path_buf(),
        source,
    })
}

/// Read a control file holding one unsigned number (`cpuacct.usage`, `memory.peak`).
pub(crate) fn read_u64(file: &Path) -> Result<u64, CgroupError> {
    let text = read_text(file)?;
    text.trim().parse().map_err(|_| CgroupError::ParseControl {
        file: file.to_path_buf(),
        reason: format!("expected an unsigned number, found {:?}", text.trim()),
    })
}

/// The value of `key` in a flat keyed file (`key value` per line), `None` when
/// the key is absent (older kernels lack some keys).
pub(crate) fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// Read `key` from a flat keyed file; a missing key is a parse error naming it.
pub(crate) fn read_keyed(file: &Path, key: &str) -> Result<u64, CgroupError> {
    let text = read_text(file)?;
    parse_keyed(&text, key).ok_or_else(|| CgroupError::ParseControl {
        file: file.to_path_buf(),
        reason: format!("no numeric `{key}` entry"),
    })
}

/// Whether a file exists (a control file the kernel offers in this cgroup).
pub(crate) fn has(file: &Path) -> bool {
    file.exists()
}

/// Pids in `dir/cgroup.procs` and in every descendant cgroup, sorted, unique.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = BTreeSet::new();
    collect_procs(dir, &mut pids)?;
    Ok(pids.into_iter().collect())
}

fn collect_procs(dir: &Path, pids: &mut BTreeSet<i32>) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.procs");
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        // A child cgroup removed between listing and reading is simply gone.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::ReadControl { file, source }),
    };
    for word in text.split_whitespace() {
        let pid = word.parse().map_err(|_| CgroupError::ParseControl {
            file: file.clone(),
            reason: format!("expected a pid, found {word:?}"),
        })?;
        pids.insert(pid);
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::ReadControl {
                file: dir.into(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// Create a run's cgroup directory. An existing directory is an error: a run
/// never adopts a cgroup it did not create (it might hold someone else's processes).
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)?;
    #[cfg(test)]
    super::fake_tree::on_mkdir(dir);
    Ok(())
}

/// Create a shared parent directory; an existing one is fine.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CgroupError> {
    match create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Remove a run's cgroup directory, retrying briefly while it is busy (the
/// killed processes are still exiting). Already gone counts as removed.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    #[cfg(test)]
    super::fake_tree::before_rmdir(dir);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < REMOVE_PATIENCE =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// One `rmdir` attempt, no retry (for sweeping leftovers).
pub(crate) fn remove_dir_once(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    super::fake_tree::before_rmdir(dir);
    fs::remove_dir(dir)
}

/// Remove a shared parent if it has become empty. Best effort: another run or
/// another supervisor may still use it (`EBUSY`, `ENOTEMPTY`), which is fine.
pub(crate) fn remove_parent_if_unused(dir: &Path) {
    #[cfg(test)]
    super::fake_tree::before_rmdir(dir);
    let _ = fs::remove_dir(dir);
}

/// Open `dir/cgroup.procs` write-only and close-on-exec, for a forked child to
/// join by writing `b"0"`.
pub(crate) fn open_procs(dir: &Path) -> Result<OwnedFd, CgroupError> {
    let file = dir.join("cgroup.procs");
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&file)
        .map(OwnedFd::from)
        .map_err(|source| CgroupError::OpenProcs { file, source })
}

/// Move `pid` into the cgroup whose `cgroup.procs` is `fd`.
pub(crate) fn write_pid(fd: &OwnedFd, dir: &Path, pid: i32) -> Result<(), CgroupError> {
    let text = pid.to_string();
    match nix::unistd::write(fd, text.as_bytes()) {
        Ok(n) if n == text.len() => Ok(()),
        Ok(_) => Err(CgroupError::AddPid {
            pid,
            dir: dir.to_path_buf(),
            source: io::Error::new(ErrorKind::WriteZero, "short write to cgroup.procs"),
        }),
        Err(errno) => Err(CgroupError::AddPid {
            pid,
            dir: dir.to_path_buf(),
            source: io::Error::from(errno),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_are_found_by_exact_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_keyed(text, "oom_kill"), Some(3));
        assert_eq!(parse_keyed(text, "oom_kill_disable"), Some(0));
        assert_eq!(parse_keyed(text, "oom"), None);
        assert_eq!(parse_keyed("max garbage\n", "max"), None);
    }

    #[test]
    fn procs_are_collected_from_descendants() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.procs"), "12\n7\n").unwrap();
        fs::create_dir(tmp.path().join("child")).unwrap();
        fs::write(tmp.path().join("child/cgroup.procs"), "7\n40\n").unwrap();
        assert_eq!(procs_recursive(tmp.path()).unwrap(), vec![7, 12, 40]);
    }

    #[test]
    fn garbage_in_procs_is_a_parse_error() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.procs"), "12\nx\n").unwrap();
        let err = procs_recursive(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("expected a pid"), "{err}");
    }

    #[test]
    fn removing_a_missing_dir_is_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        remove_dir(&tmp.path().join("gone")).unwrap();
    }
}
