//! The deployment key behind keyed hashes and receipt fingerprints.
//!
//! A bare SHA-256 of an SSN or a phone number is reversible by enumerating the
//! few billion candidates; an HMAC-SHA-256 under a secret key is not. The key is
//! the policy's `redaction.key_file` when it sets one, otherwise a host key that
//! is created on first use:
//!
//! - root: `/var/lib/enforcecore/redaction.key`;
//! - other users: `$XDG_STATE_HOME/enforcecore/redaction.key`, or
//!   `~/.local/state/enforcecore/redaction.key`.
//!
//! A key file holds at least 16 bytes (the host key: 32 random bytes); all of
//! its bytes are the key. It must be a regular file that neither its group nor
//! others can read or write (mode 0600 or stricter): a key others can read
//! would let them reverse fingerprints. The host key is created atomically (a
//! temporary file linked into place), so concurrent first uses agree on one key.
//!
//! This module must never log or print key bytes.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

use super::RedactError;
use crate::regular_file::{self, OpenError, Symlinks};

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key file read, in bytes.
const MAX_KEY_LEN: usize = 4096;
/// Size of a generated host key.
const HOST_KEY_LEN: usize = 32;

/// Where a key file's path came from: what a user changes to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The policy's `redaction.key_file`.
    Policy,
    /// The `--key` command-line option.
    CommandLine,
    /// The host key's fixed location (see the module documentation).
    Host,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeySource::Policy => "named by redaction.key_file",
            KeySource::CommandLine => "given with --key",
            KeySource::Host => "the host key",
        })
    }
}

impl KeySource {
    /// What to do about a path that does not name a usable key file.
    pub fn fix(self) -> &'static str {
        match self {
            KeySource::Policy => "point redaction.key_file at a key file",
            KeySource::CommandLine => "give --key the path of a key file",
            KeySource::Host => {
                "move it aside so that a new host key is created (fingerprints will change)"
            }
        }
    }
}

/// An HMAC-SHA-256 key, ready to use.
#[derive(Clone)]
pub struct Key {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, RedactError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(RedactError::KeyTooShort {
                path: PathBuf::from("<bytes>"),
                len: bytes.len(),
            });
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
            .expect("HMAC accepts keys of any length");
        Ok(Key { mac })
    }

    /// Read a key file, checking its type and permissions. `named_by` says
    /// where the path came from, so errors name what to change.
    pub fn load(path: &Path, named_by: KeySource) -> Result<Key, RedactError> {
        let (mut file, meta) = regular_file::open(path, Symlinks::Refuse).map_err(|e| match e {
            OpenError::Io(source) => RedactError::KeyRead {
                path: path.to_path_buf(),
                named_by,
                source,
            },
            OpenError::NotRegular { kind } => RedactError::KeyNotAFile {
                path: path.to_path_buf(),
                named_by,
                kind,
            },
        })?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(RedactError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let Some(mut bytes) =
            regular_file::read_bounded(&mut file, MAX_KEY_LEN as u64).map_err(|source| {
                RedactError::KeyRead {
                    path: path.to_path_buf(),
                    named_by,
                    source,
                }
            })?
        else {
            return Err(RedactError::KeyTooLong {
                path: path.to_path_buf(),
            });
        };
        let result = if bytes.len() < MIN_KEY_LEN {
            Err(RedactError::KeyTooShort {
                path: path.to_path_buf(),
                len: bytes.len(),
            })
        } else {
            Key::from_bytes(&bytes)
        };
        bytes.fill(0);
        result
    }

    /// Read the key at `path`, creating it (32 random bytes, mode 0600, parent
    /// directories 0700) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Key, RedactError> {
        match Key::load(path, KeySource::Host) {
            Err(RedactError::KeyRead { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                create(path)?;
                Key::load(path, KeySource::Host)
            }
            other => other,
        }
    }

    /// The host key of the current user (see the module documentation),
    /// created on first use.
    pub fn host() -> Result<Key, RedactError> {
        let path = host_key_path(
            nix::unistd::geteuid().is_root(),
            std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )?;
        Key::load_or_create(&path)
    }

    /// HMAC-SHA-256 state keyed with this key, ready for `update`.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

/// Where the host key lives for a user: root, or else `$XDG_STATE_HOME` (when
/// absolute) or `$HOME/.local/state`.
pub fn host_key_path(
    root: bool,
    xdg_state: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf, RedactError> {
    if root {
        return Ok(PathBuf::from("/var/lib/enforcecore/redaction.key"));
    }
    let state = match (
        xdg_state.filter(|p| p.is_absolute()),
        home.filter(|p| p.is_absolute()),
    ) {
        (Some(x), _) => x,
        (None, Some(h)) => h.join(".local/state"),
        (None, None) => return Err(RedactError::NoKeyLocation),
    };
    Ok(state.join("enforcecore").join("redaction.key"))
}

/// Create a fresh random key at `path` unless one appears there first.
fn create(path: &Path) -> Result<(), RedactError> {
    let fail = |source| RedactError::KeyCreate {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    let mut key = [0u8; HOST_KEY_LEN];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(fail)?;
    let tmp = dir.join(format!(".redaction.key.{}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&key)?;
            f.sync_all()
        });
    key.fill(0);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    // link(2) never replaces an existing file: whoever links first wins.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn host_key_locations() {
        let p = |r, x: Option<&str>, h: Option<&str>| {
            host_key_path(r, x.map(PathBuf::from), h.map(PathBuf::from))
        };
        assert_eq!(
            p(true, Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/var/lib/enforcecore/redaction.key")
        );
        assert_eq!(
            p(false, Some("/x"), Some("/h")).unwrap(),
            PathBuf::from("/x/enforcecore/redaction.key")
        );
        assert_eq!(
            p(false, Some("rel"), Some("/h")).unwrap(),
            PathBuf::from("/h/.local/state/enforcecore/redaction.key")
        );
        assert!(matches!(
            p(false, None, None),
            Err(RedactError::NoKeyLocation)
        ));
    }

    #[test]
    fn created_once_with_private_permissions_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/enforcecore/redaction.key");
        let k1 = Key::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), HOST_KEY_LEN as u64);
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let k2 = Key::load_or_create(&path).unwrap();
        let tag = |k: &Key| {
            let mut m = k.mac();
            m.update(b"x");
            m.finalize().into_bytes().to_vec()
        };
        assert_eq!(tag(&k1), tag(&k2));
    }

    #[test]
    fn unsafe_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, [7u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load(&path, KeySource::Policy).unwrap_err();
        assert!(
            matches!(e, RedactError::KeyPermissions { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Key::load(&path, KeySource::Policy).is_ok());
        fs::write(&path, [7u8; 8]).unwrap();
        assert!(matches!(
            Key::load(&path, KeySource::Policy),
            Err(RedactError::KeyTooShort { len: 8, .. })
        ));
        fs::write(&path, [7u8; MAX_KEY_LEN + 1]).unwrap();
        assert!(matches!(
            Key::load(&path, KeySource::Policy),
            Err(RedactError::KeyTooLong { .. })
        ));
        assert!(matches!(
            Key::load(dir.path(), KeySource::Policy),
            Err(RedactError::KeyNotAFile { .. })
        ));
    }

    #[test]
    fn fifos_devices_and_symlinks_are_refused_by_type_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer ever opens the FIFO: a blocking open would hang here.
        let e = Key::load(&fifo, KeySource::CommandLine).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                RedactError::KeyNotAFile {
                    kind: "a FIFO (named pipe)",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains(&fifo.display().to_string()), "{msg}");
        assert!(msg.contains("--key"), "{msg}");
        assert!(!msg.contains("redaction.key_file"), "{msg}");
        assert!(!msg.contains("chmod"), "{msg}");
        let e = Key::load(Path::new("/dev/zero"), KeySource::Policy).unwrap_err();
        assert!(
            matches!(
                e,
                RedactError::KeyNotAFile {
                    kind: "a character device",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("redaction.key_file"), "{e}");
        let key = dir.path().join("k");
        fs::write(&key, [7u8; 32]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(matches!(
            Key::load(&link, KeySource::Policy),
            Err(RedactError::KeyNotAFile {
                kind: "a symbolic link",
                ..
            })
        ));
        let e = Key::load(&dir.path().join("missing"), KeySource::CommandLine).unwrap_err();
        assert!(matches!(e, RedactError::KeyRead { .. }), "{e}");
        assert!(!e.to_string().contains("redaction.key_file"), "{e}");
    }
}
