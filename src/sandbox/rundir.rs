//! The per-run scratch directory: `${RUN_DIR}`, the tool's working directory.
//!
//! Where run directories live:
//! - as root: `/var/lib/enforcecore-runs/<run-id>` (0711, so a tool can reach its own
//!   directory but cannot list others). Deliberately *not* inside the supervisor's
//!   state directory `/var/lib/enforcecore` (audit trail, keys), which policies
//!   deny: tool-writable scratch never shares a tree with the trail. On disk rather
//!   than tmpfs, so that a tool's files do not eat RAM and kept runs survive;
//! - as any other user: `$TMPDIR/enforcecore-<uid>/runs/<run-id>` (0700 all the way).
//!
//! Each run directory is created fresh (never reused: `mkdir` fails if it exists),
//! mode 0700, owned by the tool's uid/gid, with a `tmp/` inside (`${TMPDIR}`). It is
//! removed after the run unless the policy sets `run_dir.keep`. Removal does not
//! follow symlinks the tool may have planted. This module must never create a run
//! directory anywhere a tool could have pre-created it.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::SandboxError;

/// Parent of run directories when running as root.
pub const ROOT_RUNS: &str = "/var/lib/enforcecore-runs";

/// The directory under which this process creates run directories.
pub fn default_root(euid: u32) -> PathBuf {
    if euid == 0 {
        PathBuf::from(ROOT_RUNS)
    } else {
        std::env::temp_dir()
            .join(format!("enforcecore-{euid}"))
            .join("runs")
    }
}

/// A created run directory. Removed on drop unless kept.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: bool,
    removed: bool,
}

impl RunDir {
    /// Create `<root>/<run_id>` (and `tmp/` inside) owned by `uid:gid`, mode 0700.
    pub fn create(
        root: &Path,
        run_id: &str,
        uid: u32,
        gid: u32,
        chown: bool,
        keep: bool,
    ) -> Result<RunDir, SandboxError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::RunDir { path, source }
        };
        if run_id.is_empty()
            || !run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SandboxError::RunDir {
                path: root.join(run_id),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "run ids are [A-Za-z0-9_-]+",
                ),
            });
        }
        ensure_root(root).map_err(err(root))?;
        let path = root.join(run_id);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(err(&path))?;
        let dir = RunDir {
            path,
            keep,
            removed: false,
        };
        let tmp = dir.path.join("tmp");
        DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(err(&tmp))?;
        if chown {
            for p in [&tmp, &dir.path] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(err(p))?;
            }
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `${TMPDIR}`: `tmp/` inside the run directory.
    pub fn tmp(&self) -> PathBuf {
        self.path.join("tmp")
    }

    /// Whether the directory is kept after the run.
    pub fn keep(&self) -> bool {
        self.keep
    }

    /// Remove the directory now (unless kept). Symlinks inside are removed, not followed.
    pub fn remove(mut self) -> std::io::Result<()> {
        self.removed = true;
        if self.keep {
            return Ok(());
        }
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.removed && !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Create the runs root if needed and make sure nobody else controls it.
fn ensure_root(root: &Path) -> std::io::Result<()> {
    let root_owned = nix::unistd::geteuid().is_root();
    if root_owned {
        if let Some(parent) = root.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        match DirBuilder::new().mode(0o711).create(root) {
            Ok(()) => std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    } else {
        DirBuilder::new().recursive(true).mode(0o700).create(root)?;
    }
    let meta = std::fs::symlink_metadata(root)?;
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by uid {me} and not writable by others",
                root.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn run_dirs_are_fresh_private_and_removed() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("runs");
        let me = nix::unistd::geteuid().as_raw();
        let d = RunDir::create(&root, "abc123", me, 0, false, false).unwrap();
        let meta = std::fs::metadata(d.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert!(d.tmp().is_dir());
        // The same id cannot be created twice.
        assert!(RunDir::create(&root, "abc123", me, 0, false, false).is_err());
        std::os::unix::fs::symlink("/etc", d.path().join("escape")).unwrap();
        let p = d.path().to_path_buf();
        d.remove().unwrap();
        assert!(!p.exists());
        assert!(Path::new("/etc/passwd").exists());
    }

    #[test]
    fn kept_dirs_survive_and_bad_ids_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("runs");
        let me = nix::unistd::geteuid().as_raw();
        let d = RunDir::create(&root, "keep-me", me, 0, false, true).unwrap();
        let p = d.path().to_path_buf();
        drop(d);
        assert!(p.is_dir());
        for bad in ["", "../x", "a/b", "a b"] {
            assert!(RunDir::create(&root, bad, me, 0, false, false).is_err());
        }
    }
}
