//! Policy engine: YAML → raw structs → `extends` → merge → validation → [`Policy`].
//!
//! Loading is strict (DESIGN §4): unknown keys, duplicate keys, wrong types,
//! unbounded regexes and rules the kernel cannot express are errors that name
//! `file:line:column` and give a hint. `extends` can add grants and tools but can
//! never loosen its base. This module must never touch the kernel; it only reads
//! policy files.

pub mod model;

pub use model::*;
