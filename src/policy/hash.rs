//! The canonical policy hash.
//!
//! `Policy.hash` is the SHA-256 (hex) of a canonical JSON rendering of the
//! *effective* policy: the resolved model serialized compactly, struct fields
//! in model order and sets in their sorted order, with every origin removed (a
//! `Sourced` value becomes its bare value, see [`canonical`]) and without
//! `hash` and `sources`. So the hash names what is enforced, not where it was
//! written: the same rules in another file, directory or on other lines hash
//! the same; changing any enforced value (or the order of a list) changes it.
//! Which files a policy came from is recorded next to the hash
//! (`Policy.sources`), not in it. This module must never read files.

use sha2::{Digest, Sha256};

use super::model::{Policy, canonical};

/// The canonical JSON text the hash is computed over.
pub fn canonical_json(policy: &Policy) -> String {
    // Serializing plain data to a string cannot fail.
    canonical(|| serde_json::to_string(policy)).unwrap_or_default()
}

/// SHA-256 hex of [`canonical_json`].
pub fn policy_hash(policy: &Policy) -> String {
    hex::encode(Sha256::digest(canonical_json(policy).as_bytes()))
}
