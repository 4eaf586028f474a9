//! Policy engine: YAML → raw structs → `extends` → merge → validation → [`Policy`].
//!
//! Loading is strict (DESIGN §4): unknown keys, duplicate keys, wrong types,
//! unbounded regexes and rules the kernel cannot express are errors that name
//! `file:line:column` and give a hint. `extends` can add grants and tools but can
//! never loosen its base. This module must never touch the kernel; it only reads
//! policy files.
//!
//! Pipeline, one module per step:
//! 1. `load`: read a bounded regular file, refuse empty/binary/non-UTF-8 text;
//! 2. `yaml`: parse into positioned nodes, refusing duplicate keys, tags, alias
//!    bombs and deep nesting;
//! 3. `de` + `raw`: decode the schema (`deny_unknown_fields`, strict types);
//! 4. `load`: follow `extends` inside the policy directory;
//! 5. `merge` + `sandbox_layer`: apply the chain base first, refusing loosening;
//! 6. `resolve`: tools' effective sandboxes, cross-checks, the canonical `hash`.

mod de;
mod error;
mod explain;
mod hash;
mod load;
mod merge;
pub mod model;
mod paths;
mod raw;
mod resolve;
mod sandbox_layer;
mod syscall_layer;
mod tools;
mod units;
mod yaml;

use std::path::Path;

pub use error::{Location, PolicyError};
pub use explain::explain;
pub use hash::canonical_json;
pub use load::LoadOptions;
pub use model::*;
pub use tools::ArgRefusal;
pub use units::{fmt_cpu, fmt_duration, fmt_size};

/// Load a policy file with default options: follow its `extends` chain inside
/// the file's own directory, merge, validate, hash.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    load_with(path, &LoadOptions::default())
}

/// Load a policy file with explicit options.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Policy, PolicyError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| PolicyError::Read {
        at: Location::file(path),
        source: e,
        hint: "check the path".into(),
    })?;
    let root = match &opts.root {
        Some(r) => std::fs::canonicalize(r).map_err(|e| PolicyError::Read {
            at: Location::file(r),
            source: e,
            hint: "the policy root directory must exist".into(),
        })?,
        None => canonical.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    if !canonical.starts_with(&root) {
        return Err(PolicyError::extends(
            Location::file(path),
            format!(
                "the policy resolves to {}, outside the policy root {}",
                canonical.display(),
                root.display()
            ),
            "load a policy that lives inside the configured root",
        ));
    }
    let bytes = load::read_file(&canonical, path, opts)?;
    let raw = load::parse(load::decode(&bytes, path)?, path)?;
    let leaf = load::Doc {
        shown: path.to_path_buf(),
        canonical: Some(canonical),
        raw,
    };
    resolve::resolve(&load::chain(leaf, Some(&root), opts)?)
}

/// Load a policy from bytes (for fuzzing and tests). `shown` names it in
/// errors; such a policy cannot use `extends`.
pub fn load_bytes(shown: &Path, bytes: &[u8], opts: &LoadOptions) -> Result<Policy, PolicyError> {
    if bytes.len() as u64 > opts.max_file_bytes {
        return Err(PolicyError::Encoding {
            at: Location::file(shown),
            message: format!("policy is larger than {} bytes", opts.max_file_bytes),
            hint: "policies are small; this is probably not a policy".into(),
        });
    }
    let raw = load::parse(load::decode(bytes, shown)?, shown)?;
    let leaf = load::Doc {
        shown: shown.to_path_buf(),
        canonical: None,
        raw,
    };
    resolve::resolve(&load::chain(leaf, None, opts)?)
}

#[cfg(test)]
mod monotonic_tests;
#[cfg(test)]
mod tests;
