//! Checkpoint signing keys: generation, the files they live in, key ids.
//!
//! Keys are Ed25519 (RFC 8032) in the standard PEM encodings OpenSSL reads:
//! the secret key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`, file mode 0600),
//! the public key as SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`). A
//! key id is the first 16 hex digits of SHA-256 over the 32 raw public-key
//! bytes; checkpoints name the key that signed them by this id.
//!
//! This module never writes a secret key anywhere but the file it creates
//! (exclusively, mode 0600), never logs it, and refuses to load a secret key
//! that other users can read.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::AuditError;
use crate::regular_file::{self, OpenError, Symlinks};

/// File name of the secret key written by [`generate`].
pub const SECRET_FILE: &str = "audit-signing.key";
/// File name of the public key written by [`generate`].
pub const PUBLIC_FILE: &str = "audit-signing.key.pub";

/// The key id of a public key (16 hex digits).
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Paths of a freshly generated key pair.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The secret key (0600).
    pub secret: PathBuf,
    /// The public key.
    pub public: PathBuf,
    /// The key id.
    pub key_id: String,
}

/// Generate a key pair into `dir` (created 0700 when missing). Refuses to
/// overwrite existing key files.
pub fn generate(dir: &Path) -> Result<KeyFiles, AuditError> {
    let fail = |step: &'static str, path: &Path, source: std::io::Error| AuditError::Key {
        step,
        path: path.to_path_buf(),
        error: Arc::new(source),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("create the key directory", dir, e))?;
    }
    let secret_path = dir.join(SECRET_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(AuditError::KeyExists { path: p.clone() });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| AuditError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    // PKCS#8 v1 (the seed alone): what OpenSSL 3 reads and writes for Ed25519.
    let pem = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|e| AuditError::KeyEncoding(e.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| AuditError::KeyEncoding(e.to_string()))?;

    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret_path)
        .map_err(|e| fail("create the secret key file", &secret_path, e))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write the secret key file", &secret_path, e))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&public_path)
        .map_err(|e| fail("create the public key file", &public_path, e))?;
    f.write_all(public_pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write the public key file", &public_path, e))?;
    Ok(KeyFiles {
        secret: secret_path,
        public: public_path,
        key_id: key_id(&key.verifying_key()),
    })
}

/// Longest key file read, in bytes (a PEM key has a few hundred).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Load a secret (signing) key. Fails when group or others may read it.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    let (text, mode) = read_text(path, "read the secret key file")?;
    // Before the mode check: a public key is world-readable by design, and
    // `chmod 600` would be the wrong advice.
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(AuditError::KeyIsPublic {
            path: path.to_path_buf(),
        });
    }
    if mode & 0o077 != 0 {
        return Err(AuditError::KeyPermissions {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| AuditError::KeyFormat {
        path: path.to_path_buf(),
        expected: "an Ed25519 PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`)",
        detail: e.to_string(),
    })
}

/// Load a public (verifying) key.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let (text, _) = read_text(path, "read the public key file")?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| AuditError::KeyFormat {
        path: path.to_path_buf(),
        expected: "an Ed25519 PEM public key (`-----BEGIN PUBLIC KEY-----`); \
                   pass the .pub file, not the secret key",
        detail: e.to_string(),
    })
}

/// The text of a key file and its permission bits. Refuses anything but a
/// regular file of at most [`MAX_KEY_FILE`] bytes, without blocking on a FIFO.
fn read_text(path: &Path, step: &'static str) -> Result<(String, u32), AuditError> {
    let fail = |source| AuditError::Key {
        step,
        path: path.to_path_buf(),
        error: Arc::new(source),
    };
    let (mut file, meta) = regular_file::open(path, Symlinks::Follow).map_err(|e| match e {
        OpenError::Io(source) => fail(source),
        OpenError::NotRegular { kind } => AuditError::NotRegular {
            path: path.to_path_buf(),
            kind,
            expected: "a PEM key file",
        },
    })?;
    let Some(bytes) = regular_file::read_bounded(&mut file, MAX_KEY_FILE).map_err(fail)? else {
        return Err(AuditError::KeyFormat {
            path: path.to_path_buf(),
            expected: "a PEM key file of a few hundred bytes",
            detail: format!("the file is larger than {MAX_KEY_FILE} bytes"),
        });
    };
    let text = String::from_utf8(bytes).map_err(|_| AuditError::KeyFormat {
        path: path.to_path_buf(),
        expected: "a PEM (text) key file",
        detail: "the file is not UTF-8 text".into(),
    })?;
    Ok((text, meta.permissions().mode()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let kf = generate(&dir.path().join("keys")).unwrap();
        let mode = fs::metadata(&kf.secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sk = load_signing_key(&kf.secret).unwrap();
        let pk = load_verifying_key(&kf.public).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(key_id(&pk), kf.key_id);
        assert_eq!(kf.key_id.len(), 16);
        assert!(matches!(
            generate(&dir.path().join("keys")),
            Err(AuditError::KeyExists { .. })
        ));
        // The secret key is not a public key, and vice versa.
        assert!(load_verifying_key(&kf.secret).is_err());
        assert!(load_signing_key(&kf.public).is_err());
    }

    #[test]
    fn refuses_readable_secret_key() {
        let dir = tempfile::tempdir().unwrap();
        let kf = generate(dir.path()).unwrap();
        fs::set_permissions(&kf.secret, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&kf.secret).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
