//! The command line of a run: which executable, and argv as C strings.
//!
//! The executable is resolved in the parent, before anything is created, so that a
//! missing command is exit 127 without a fork. A name without `/` is looked up in
//! the tool's `PATH` (absolute entries only — an empty or relative entry would mean
//! the run directory); a relative path is taken relative to the caller's working
//! directory. The result must be a regular file with an execute bit; whether the
//! tool user may execute it is for the kernel (and Landlock) to say at `execve`.
//! `argv[0]` is passed as the caller wrote it.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

fn executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Resolve `cmd` to an absolute executable path.
pub fn resolve(cmd: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SandboxError> {
    let path_text = path_var
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let not_found =
        || SandboxError::CommandNotFound(cmd.to_string_lossy().into_owned(), path_text.clone());
    if cmd.is_empty() {
        return Err(not_found());
    }
    if cmd.as_bytes().contains(&b'/') {
        let p = Path::new(cmd);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map_err(|_| not_found())?.join(p)
        };
        return if executable(&abs) {
            Ok(abs)
        } else {
            Err(not_found())
        };
    }
    for dir in std::env::split_paths(path_var.unwrap_or_default()) {
        if !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join(cmd);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(not_found())
}

/// argv as C strings.
pub fn argv_to_c(argv: &[OsString]) -> Result<Vec<CString>, SandboxError> {
    argv.iter()
        .enumerate()
        .map(|(i, a)| {
            CString::new(a.as_bytes()).map_err(|_| SandboxError::NulByte(format!("argument {i}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_absolute_path_entries_only() {
        let p = resolve(OsStr::new("sh"), Some(OsStr::new("relative:/usr/bin:/bin"))).unwrap();
        assert!(p.is_absolute() && p.ends_with("sh"));
        assert!(resolve(OsStr::new("sh"), Some(OsStr::new("bin:."))).is_err());
        assert!(resolve(OsStr::new("no-such-cmd-xyz"), Some(OsStr::new("/usr/bin"))).is_err());
        assert!(resolve(OsStr::new(""), Some(OsStr::new("/usr/bin"))).is_err());
    }

    #[test]
    fn paths_must_be_executable_files() {
        assert!(resolve(OsStr::new("/bin/sh"), None).is_ok());
        assert!(resolve(OsStr::new("/etc/passwd"), None).is_err());
        assert!(resolve(OsStr::new("/usr/bin"), None).is_err());
        let e = resolve(OsStr::new("/nope/x"), None).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::NOT_FOUND);
    }

    #[test]
    fn nul_bytes_in_argv_are_refused() {
        assert!(argv_to_c(&["a".into(), "b\0c".into()]).is_err());
        assert_eq!(argv_to_c(&["a".into()]).unwrap().len(), 1);
    }
}
