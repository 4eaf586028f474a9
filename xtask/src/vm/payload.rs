//! The payload disk: what is under test, on a small ext4 image (label `ectest`)
//! that the guest mounts read-only at `/opt/enforcecore-test`.
//!
//! Layout (the guest test script relies on it):
//! `guest-test.sh`, `bin/enforcecore`, `policies/` and `systemd/` (copies of the
//! repository's, when present), `expected-version`.
//!
//! Owns `target/vm/run/payload/` and `payload.img`; the image is written by
//! `mkfs.ext4 -d`, so nothing is ever mounted on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Paths;

/// Stage the payload and write its disk image; returns the image's path.
pub fn build(paths: &Paths, run_dir: &Path, binary: &Path, version: &str) -> Result<PathBuf> {
    if !binary.is_file() {
        bail!("{} does not exist after cargo build", binary.display());
    }
    let stage = run_dir.join("payload");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display()))?;
    }
    std::fs::create_dir_all(stage.join("bin"))
        .with_context(|| format!("cannot create {}", stage.display()))?;

    copy(
        &paths.sources.join("guest-test.sh"),
        &stage.join("guest-test.sh"),
    )?;
    copy(binary, &stage.join("bin/enforcecore"))?;
    for dir in ["policies", "systemd"] {
        let from = paths.root.join(dir);
        if from.is_dir() {
            copy(&from, &stage.join(dir))?;
        }
    }
    std::fs::write(stage.join("expected-version"), format!("{version}\n"))
        .context("cannot write expected-version")?;

    let image = run_dir.join("payload.img");
    let _ = std::fs::remove_file(&image);
    // Twice the contents plus room for ext4's own metadata.
    let size_mib = tree_size(&stage)? * 2 / (1 << 20) + 32;
    crate::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "ectest", "-d"])
            .arg(&stage)
            .arg(&image)
            .arg(format!("{size_mib}M")),
    )?;
    Ok(image)
}

/// `cp -a`: modes (the script and the binary stay executable), links, trees.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("cannot run cp")?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Bytes in the regular files under `dir`.
fn tree_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += tree_size(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
