//! Reading policy files and following `extends`.
//!
//! Steps: read at most [`LoadOptions::max_file_bytes`] from a regular file
//! (never a FIFO or device, so a hostile path cannot hang the loader), refuse
//! empty, binary and non-UTF-8 text, parse YAML into positioned nodes, decode
//! the raw structs, then follow `extends` (relative to the file, no absolute
//! paths, no `..`, resolved through symlinks to a file inside the root
//! directory, no cycles, bounded depth). The chain is then applied base first
//! (see `merge`), tools and agents are resolved, and the result is validated
//! and hashed. This module must never write anything.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::de::{self, Spanned};
use super::error::{Location, PolicyError};
use super::raw::RawPolicy;
use super::yaml::{self, NodeKind, Pos};

/// Knobs for [`load_with`](super::load_with).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Directory every `extends` target must resolve into. Default: the
    /// directory of the (canonical) policy file being loaded.
    pub root: Option<PathBuf>,
    /// Longest `extends` chain (files, the loaded one included).
    pub max_depth: usize,
    /// Largest policy file accepted.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            root: None,
            max_depth: 8,
            max_file_bytes: 1 << 20,
        }
    }
}

/// One parsed file of a chain.
#[derive(Debug)]
pub struct Doc {
    /// Path as shown to users (the given path, or its directory joined with
    /// the `extends` values that led here).
    pub shown: PathBuf,
    /// Canonical path (`None` for a document loaded from bytes).
    pub canonical: Option<PathBuf>,
    /// The decoded document.
    pub raw: RawPolicy,
}

/// Read a policy file's bytes, refusing anything but a bounded regular file.
pub fn read_file(path: &Path, shown: &Path, opts: &LoadOptions) -> Result<Vec<u8>, PolicyError> {
    let io = |e: std::io::Error, hint: &str| PolicyError::Read {
        at: Location::file(shown),
        source: e,
        hint: hint.to_owned(),
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io(e, "check the path and its permissions"))?;
    let meta = f.metadata().map_err(|e| io(e, "check the path"))?;
    if !meta.is_file() {
        return Err(PolicyError::Encoding {
            at: Location::file(shown),
            message: "not a regular file".into(),
            hint: "give the path of a YAML policy file".into(),
        });
    }
    let mut buf = Vec::with_capacity(meta.len().min(opts.max_file_bytes) as usize + 1);
    File::take(f, opts.max_file_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io(e, "check the file"))?;
    if buf.len() as u64 > opts.max_file_bytes {
        return Err(PolicyError::Encoding {
            at: Location::file(shown),
            message: format!("file is larger than {} bytes", opts.max_file_bytes),
            hint: "policies are small; this is probably not a policy file".into(),
        });
    }
    Ok(buf)
}

/// Turn bytes into policy text, refusing empty, binary and non-UTF-8 input.
pub fn decode<'a>(bytes: &'a [u8], shown: &Path) -> Result<&'a str, PolicyError> {
    let enc = |at: Location, message: String, hint: &str| PolicyError::Encoding {
        at,
        message,
        hint: hint.to_owned(),
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(enc(
            Location::file(shown),
            "the policy file is empty".into(),
            "a policy needs at least `version: 1` and `name:`; see docs/policy.md",
        ));
    }
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        return Err(enc(
            Location::at(shown, pos_of(bytes, i)),
            "the file is binary (it contains a NUL byte), not a YAML policy".into(),
            "give the path of a YAML policy file",
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        enc(
            Location::at(shown, pos_of(bytes, e.valid_up_to())),
            "the file is not valid UTF-8".into(),
            "save the policy as UTF-8 text",
        )
    })
}

fn pos_of(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// Parse policy text into a raw document.
pub fn parse(text: &str, shown: &Path) -> Result<RawPolicy, PolicyError> {
    let root = yaml::parse(text)
        .map_err(|e| PolicyError::Syntax {
            at: Location::at(shown, e.pos),
            message: e.message,
            hint: e.hint,
        })?
        .ok_or_else(|| PolicyError::Encoding {
            at: Location::file(shown),
            message: "the policy file holds no YAML document (only comments or blank lines)".into(),
            hint: "a policy needs at least `version: 1` and `name:`; see docs/policy.md".into(),
        })?;
    if !matches!(root.kind, NodeKind::Map(_)) {
        return Err(PolicyError::Schema {
            at: Location::at(shown, root.pos),
            message: "the top level of a policy must be a mapping of keys".into(),
            hint: "start with `version: 1` and `name: ...`; see docs/policy.md".into(),
        });
    }
    de::from_node::<RawPolicy>(&root).map_err(|e| PolicyError::Schema {
        at: Location::at(shown, e.pos.unwrap_or(root.pos)),
        message: e.message,
        hint: e
            .hint
            .unwrap_or_else(|| "see docs/policy.md for the policy schema".into()),
    })
}

/// Follow `extends` from `leaf` to the first base. Returns the chain base first.
pub fn chain(leaf: Doc, root: Option<&Path>, opts: &LoadOptions) -> Result<Vec<Doc>, PolicyError> {
    let mut docs = vec![leaf];
    loop {
        let child = docs.last().expect("chain is never empty");
        let Some(ext) = &child.raw.extends else { break };
        let at = Location::at(&child.shown, ext.pos);
        let next = resolve(ext, child, root, &at)?;
        if let Some(seen) = docs
            .iter()
            .find(|d| d.canonical.as_deref() == Some(next.as_path()))
        {
            let cycle: Vec<String> = docs
                .iter()
                .map(|d| d.shown.display().to_string())
                .chain([seen.shown.display().to_string()])
                .collect();
            return Err(PolicyError::extends(
                at,
                format!("extends cycle: {}", cycle.join(" -> ")),
                "a policy cannot extend itself, directly or through its bases",
            ));
        }
        if docs.len() >= opts.max_depth {
            return Err(PolicyError::extends(
                at,
                format!(
                    "extends chain deeper than {} files: {}",
                    opts.max_depth,
                    docs.iter()
                        .map(|d| d.shown.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
                "flatten the chain; a few levels are enough",
            ));
        }
        let shown = child
            .shown
            .parent()
            .unwrap_or(Path::new(""))
            .join(&ext.value);
        let bytes = read_file(&next, &shown, opts)?;
        let raw = parse(decode(&bytes, &shown)?, &shown)?;
        docs.push(Doc {
            shown,
            canonical: Some(next),
            raw,
        });
    }
    docs.reverse();
    Ok(docs)
}

fn resolve(
    ext: &Spanned<String>,
    child: &Doc,
    root: Option<&Path>,
    at: &Location,
) -> Result<PathBuf, PolicyError> {
    let v = Path::new(&ext.value);
    if ext.value.is_empty() {
        return Err(PolicyError::extends(
            at.clone(),
            "`extends` is empty",
            "name the base policy file, e.g. `extends: base.yaml`",
        ));
    }
    if v.is_absolute() {
        return Err(PolicyError::extends(
            at.clone(),
            format!("`extends: {}` is an absolute path", ext.value),
            "write the base's path relative to this file, inside its directory (e.g. `base.yaml`)",
        ));
    }
    if v.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(PolicyError::extends(
            at.clone(),
            format!(
                "`extends: {}` leaves the policy directory with `..`",
                ext.value
            ),
            "keep base policies in the same directory as the policies that extend them (or beneath it)",
        ));
    }
    let (Some(canonical), Some(root)) = (&child.canonical, root) else {
        return Err(PolicyError::extends(
            at.clone(),
            "`extends` cannot be followed from a policy that was not loaded from a file",
            "load the policy from its file",
        ));
    };
    let dir = canonical.parent().unwrap_or(Path::new("/"));
    let target = dir.join(v);
    let real = std::fs::canonicalize(&target).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            format!("base policy `{}` does not exist", ext.value)
        } else {
            format!("cannot resolve base policy `{}`: {e}", ext.value)
        };
        PolicyError::extends(
            at.clone(),
            message,
            "check the file name; it is relative to this policy's directory",
        )
    })?;
    if !real.starts_with(root) {
        return Err(PolicyError::extends(
            at.clone(),
            format!(
                "`extends: {}` resolves (through a symlink) to {}, outside the policy directory {}",
                ext.value,
                real.display(),
                root.display()
            ),
            "copy the base into the policy directory instead of linking to it",
        ));
    }
    Ok(real)
}
