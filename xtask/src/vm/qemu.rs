//! The emulator: `qemu-system-x86_64` from Debian packages, unpacked (never
//! installed) into `target/vm/qemu-<hash>/` by `fetch-qemu.sh`.
//!
//! Installing `qemu-system-x86` with apt would replace the host's newer
//! `qemu-utils`, so the packages are downloaded and unpacked with `dpkg -x`,
//! and the binary runs with its own library path, firmware directories and
//! module directory. `ENFORCECORE_VM_QEMU` names another binary instead (one
//! installed on a developer machine, say). This module must never run apt
//! install nor write outside its directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A runnable qemu-system-x86_64.
#[derive(Debug)]
pub struct Qemu {
    binary: PathBuf,
    /// Firmware and option-ROM directories (`-L`), in order.
    data_dirs: Vec<PathBuf>,
    /// Environment the binary needs (library path, module directory).
    env: Vec<(String, String)>,
}

impl Qemu {
    /// A command running this qemu, tied to this process's lifetime, with its
    /// firmware directories already on the command line.
    pub fn command(&self) -> Command {
        let mut cmd = super::tied(&self.binary);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        for dir in &self.data_dirs {
            cmd.arg("-L").arg(dir);
        }
        cmd
    }
}

/// The emulator to use: `$ENFORCECORE_VM_QEMU`, or the unpacked Debian one,
/// fetched first if missing.
pub fn ensure(sources: &Path, vm_dir: &Path) -> Result<Qemu> {
    if let Some(binary) = std::env::var_os("ENFORCECORE_VM_QEMU").filter(|v| !v.is_empty()) {
        eprintln!(
            "xtask: qemu from ENFORCECORE_VM_QEMU: {}",
            binary.to_string_lossy()
        );
        return Ok(Qemu {
            binary: binary.into(),
            data_dirs: Vec::new(),
            env: Vec::new(),
        });
    }
    let script = sources.join("fetch-qemu.sh");
    let data =
        std::fs::read(&script).with_context(|| format!("cannot read {}", script.display()))?;
    let key: String = Sha256::digest(&data)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = vm_dir.join(format!("qemu-{key}"));
    let env_file = dir.join("env");
    if !env_file.is_file() {
        eprintln!("xtask: unpacking qemu-system-x86_64 into {}", dir.display());
        crate::run(Command::new("bash").arg(&script).arg(&dir))?;
    }
    prune(vm_dir, &dir);
    let text = std::fs::read_to_string(&env_file)
        .with_context(|| format!("cannot read {}", env_file.display()))?;
    let qemu = from_env_file(&text).with_context(|| format!("in {}", env_file.display()))?;
    if !qemu.binary.is_file() {
        bail!(
            "{} is missing; remove {} and run again",
            qemu.binary.display(),
            dir.display()
        );
    }
    Ok(qemu)
}

/// Remove emulators unpacked by other versions of `fetch-qemu.sh`.
fn prune(vm_dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(vm_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep && entry.file_name().to_string_lossy().starts_with("qemu-") {
            eprintln!("xtask: removing the old emulator {}", path.display());
            if let Err(e) = std::fs::remove_dir_all(&path) {
                eprintln!("xtask: warning: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Read the `KEY=value` lines `fetch-qemu.sh` writes.
fn from_env_file(text: &str) -> Result<Qemu> {
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| {
        vars.get(k)
            .copied()
            .with_context(|| format!("no {k}= line"))
    };
    Ok(Qemu {
        binary: get("QEMU")?.into(),
        data_dirs: get("QEMU_DATA_DIRS")?
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect(),
        env: vec![
            (
                "LD_LIBRARY_PATH".into(),
                get("QEMU_LD_LIBRARY_PATH")?.into(),
            ),
            ("QEMU_MODULE_DIR".into(), get("QEMU_MODULE_DIR")?.into()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_gives_binary_dirs_and_environment() {
        let q = from_env_file(
            "QEMU=/q/root/usr/bin/qemu-system-x86_64\n\
             QEMU_DATA_DIRS=/q/root/usr/share/qemu:/q/root/usr/share/seabios\n\
             QEMU_LD_LIBRARY_PATH=/q/root/usr/lib/x86_64-linux-gnu\n\
             QEMU_MODULE_DIR=/q/modules\n",
        )
        .unwrap();
        assert_eq!(q.binary, Path::new("/q/root/usr/bin/qemu-system-x86_64"));
        assert_eq!(q.data_dirs.len(), 2);
        assert!(
            q.env
                .contains(&("QEMU_MODULE_DIR".into(), "/q/modules".into()))
        );
    }

    #[test]
    fn env_file_missing_a_line_is_an_error() {
        let err = from_env_file("QEMU=/x\n").unwrap_err();
        assert!(err.to_string().contains("QEMU_DATA_DIRS"), "{err}");
    }
}
