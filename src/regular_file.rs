//! Opening files that must be regular files: keys and audit trails named on
//! the command line or in a policy.
//!
//! Such a path may name a FIFO, a device or a directory by mistake (or by
//! malice). Opening a FIFO for reading waits for a writer, and reading
//! `/dev/zero` never ends, so every open here is non-blocking
//! (`O_NONBLOCK`, plus `O_NOCTTY` and `O_CLOEXEC`), the type is checked on the
//! opened descriptor (`fstat`, so no rename can swap the file between check
//! and use), and whole-file reads stop at a caller's bound.
//!
//! This module must never block on open, never read past the bound it is
//! given, and never follow a symlink when asked not to.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Whether the last component of a path may be a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Follow it, as `open(2)` does by default.
    Follow,
    /// Refuse it (`O_NOFOLLOW`).
    Refuse,
}

/// Why a path could not be opened as a regular file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `open(2)` or `fstat(2)` failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The path names something else: a FIFO, a device, a directory, or a
    /// symlink that was not to be followed.
    #[error("it is {kind}, not a regular file")]
    NotRegular {
        /// What it is, with its article (`a FIFO`).
        kind: &'static str,
    },
}

/// Open `path` read-only without blocking, and check on the opened file that
/// it is a regular file.
pub fn open(path: &Path, symlinks: Symlinks) -> Result<(File, Metadata), OpenError> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer. It changes
    // nothing for a regular file, whose reads never block.
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if symlinks == Symlinks::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        // With O_NOFOLLOW, ELOOP means the last component is a symlink.
        Err(e)
            if e.raw_os_error() == Some(libc::ELOOP)
                && symlinks == Symlinks::Refuse
                && path.symlink_metadata().is_ok_and(|m| m.is_symlink()) =>
        {
            return Err(OpenError::NotRegular {
                kind: "a symbolic link",
            });
        }
        Err(e) => return Err(OpenError::Io(e)),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular {
            kind: kind(&meta.file_type()),
        });
    }
    Ok((file, meta))
}

/// Read all of `file` when it holds at most `max` bytes; `None` when it
/// holds more (then at most `max + 1` bytes were read).
pub fn read_bounded(file: &mut File, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    Read::by_ref(file).take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        buf.fill(0);
        return Ok(None);
    }
    Ok(Some(buf))
}

/// What a file type is, with its article, for messages.
pub fn kind(t: &FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_regular(r: Result<(File, Metadata), OpenError>) -> &'static str {
        match r {
            Err(OpenError::NotRegular { kind }) => kind,
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn refuses_fifos_devices_directories_and_symlinks_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer ever opens the FIFO: a blocking open would hang here.
        assert_eq!(
            not_regular(open(&fifo, Symlinks::Follow)),
            "a FIFO (named pipe)"
        );
        assert_eq!(
            not_regular(open(Path::new("/dev/zero"), Symlinks::Follow)),
            "a character device"
        );
        assert_eq!(
            not_regular(open(dir.path(), Symlinks::Follow)),
            "a directory"
        );
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            not_regular(open(&link, Symlinks::Refuse)),
            "a symbolic link"
        );
        let (mut f, meta) = open(&link, Symlinks::Follow).unwrap();
        assert_eq!(meta.len(), 3);
        assert_eq!(read_bounded(&mut f, 3).unwrap().unwrap(), b"abc");
        let (mut f, _) = open(&file, Symlinks::Refuse).unwrap();
        assert_eq!(read_bounded(&mut f, 2).unwrap(), None);
        assert!(matches!(
            open(&dir.path().join("missing"), Symlinks::Refuse),
            Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn bounded_reads_stop_at_the_bound() {
        let mut f = File::open("/dev/zero").unwrap();
        assert_eq!(read_bounded(&mut f, 16 * 1024).unwrap(), None);
    }
}
