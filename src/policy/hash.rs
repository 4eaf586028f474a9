//! The canonical policy hash.
//!
//! `Policy.hash` is the SHA-256 (hex) of a canonical JSON rendering of the
//! *effective* policy: the resolved model serialized with sorted keys and no
//! whitespace, with every `origin` removed (a `Sourced` value becomes its bare
//! value) and without `hash` and `sources`. So the hash names what is enforced,
//! not where it was written: the same rules in another file, directory or on
//! other lines hash the same; changing any enforced value (or the order of a
//! list) changes it. Which files a policy came from is recorded next to the
//! hash (`Policy.sources`), not in it.
//! This module must never read files.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::Policy;

/// The canonical JSON text the hash is computed over.
pub fn canonical_json(policy: &Policy) -> String {
    let mut v = serde_json::to_value(policy).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("hash");
        m.remove("sources");
    }
    strip(&mut v);
    // serde_json's map is ordered by key, so this text is canonical.
    v.to_string()
}

/// SHA-256 hex of [`canonical_json`].
pub fn policy_hash(policy: &Policy) -> String {
    hex::encode(Sha256::digest(canonical_json(policy).as_bytes()))
}

fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("origin");
            if m.len() == 1
                && let Some(inner) = m.remove("value")
            {
                *v = inner;
                strip(v);
                return;
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}
