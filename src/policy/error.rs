//! Policy load errors.
//!
//! Every error names the file, and the line and column where there is one, says
//! what is wrong and gives a hint. `Display` is the exact text users see:
//!
//! ```text
//! policies/site.yaml:12:7: unknown field `reed`, expected one of `read`, `write`, ...
//! hint: check the spelling against docs/policy.md
//! ```
//!
//! This module owns the error shape only; it must never decide what is valid.

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::Origin;
use super::yaml::Pos;

/// A place in a policy file. `line == 0` means the whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The policy file (as given or canonical).
    pub file: PathBuf,
    /// 1-based line, 0 when the error concerns the whole file.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
}

impl Location {
    /// The whole file.
    pub fn file(file: &Path) -> Location {
        Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        }
    }

    /// A position in a file.
    pub fn at(file: &Path, pos: Pos) -> Location {
        Location {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// The location an [`Origin`] points at.
    pub fn of(origin: &Origin) -> Location {
        Location {
            file: origin.file.clone(),
            line: origin.line,
            column: origin.column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file.display()),
            (l, 0) => write!(f, "{}:{l}", self.file.display()),
            (l, c) => write!(f, "{}:{l}:{c}", self.file.display()),
        }
    }
}

/// Why a policy could not be loaded. Each variant is the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be opened or read.
    #[error("{at}: cannot read the policy: {source}\nhint: {hint}")]
    Read {
        /// The file.
        at: Location,
        /// The I/O error.
        source: std::io::Error,
        /// How to fix it.
        hint: String,
    },
    /// The bytes are not a policy text (empty, too large, binary, not UTF-8).
    #[error("{at}: {message}\nhint: {hint}")]
    Encoding {
        /// The file (and position of the first bad byte, when known).
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The YAML itself is broken or uses a refused construct (tags, duplicate
    /// keys, alias bombs, deep nesting).
    #[error("{at}: {message}\nhint: {hint}")]
    Syntax {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The YAML does not fit the schema: unknown or missing keys, wrong types.
    #[error("{at}: {message}\nhint: {hint}")]
    Schema {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A value is well-typed but not acceptable (relative path, unknown syscall,
    /// root user, unbounded regex, a rule the kernel cannot express, ...).
    #[error("{at}: {message}\nhint: {hint}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// `extends` could not be followed (absolute, `..`, escape, missing, cycle,
    /// too deep).
    #[error("{at}: {message}\nhint: {hint}")]
    Extends {
        /// The `extends` value.
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A child policy (or a tool override) would loosen what its base enforces.
    #[error(
        "{at}: `{field}`: {message} (the base sets it at {base})\nhint: a policy that extends another, and a tool's sandbox, may add grants but never loosen the base; {hint}"
    )]
    Loosen {
        /// Where the loosening value is written.
        at: Location,
        /// The dotted field path (`sandbox.limits.memory`).
        field: String,
        /// What would be loosened.
        message: String,
        /// Where the base value was set (another file, or `<built-in>`).
        base: Box<Location>,
        /// How to fix it.
        hint: String,
    },
}

impl PolicyError {
    /// Where the error points.
    pub fn location(&self) -> &Location {
        match self {
            PolicyError::Read { at, .. }
            | PolicyError::Encoding { at, .. }
            | PolicyError::Syntax { at, .. }
            | PolicyError::Schema { at, .. }
            | PolicyError::Invalid { at, .. }
            | PolicyError::Extends { at, .. }
            | PolicyError::Loosen { at, .. } => at,
        }
    }

    /// Shorthand for [`PolicyError::Invalid`].
    pub fn invalid(at: Location, message: impl Into<String>, hint: impl Into<String>) -> Self {
        PolicyError::Invalid {
            at,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Shorthand for [`PolicyError::Extends`].
    pub fn extends(at: Location, message: impl Into<String>, hint: impl Into<String>) -> Self {
        PolicyError::Extends {
            at,
            message: message.into(),
            hint: hint.into(),
        }
    }
}
