//! Layering: applying one file's settings onto what its bases already resolved.
//!
//! The first file of an `extends` chain is applied onto the built-in defaults
//! and may set anything. Every later file (a child) and every tool's `sandbox:`
//! override is applied onto the effective values below it and may only add
//! grants (paths, ports, families, env, tools, agents) or tighten; anything that
//! would loosen the layer below (drop a deny, raise a limit, narrow redaction,
//! turn an enforcement off) is a [`PolicyError::Loosen`] naming both places.
//!
//! This module owns the merge rules for the policy-wide sections (requires,
//! redaction, denials) and the shared [`Layer`] context; the sandbox rules live
//! in `sandbox_layer`. It must never read files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::de::Spanned;
use super::error::{Location, PolicyError};
use super::model::*;
use super::paths;
use super::raw::{RawDenials, RawDetectors, RawRedaction, RawRequires};
use super::yaml::Pos;
use crate::redact::DetectorKind;

/// Longest match a custom detector may produce (bytes). The streaming redactor
/// holds back this much at chunk boundaries.
pub const MAX_CUSTOM_MATCH: usize = 4096;
/// Highest Landlock ABI a policy may require.
pub const MAX_LANDLOCK_ABI: u64 = 64;

/// What kind of layer is being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode<'a> {
    /// The first file of the chain, onto built-in defaults: anything goes.
    Root,
    /// A child file onto its base: no loosening.
    Extends,
    /// A tool's `sandbox:` override onto the default sandbox: no loosening.
    Tool(&'a str),
}

/// The file and mode of the layer being applied.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// The file the layer is written in (as shown to users).
    pub file: &'a Path,
    /// Root, child or tool override.
    pub mode: Mode<'a>,
}

impl Layer<'_> {
    /// Origin of a node of this file.
    pub fn origin(&self, pos: Pos) -> Origin {
        Origin {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// A `Sourced` value written at `pos`.
    pub fn sourced<T>(&self, value: T, pos: Pos) -> Sourced<T> {
        Sourced {
            value,
            origin: self.origin(pos),
        }
    }

    /// Location of a node of this file.
    pub fn at(&self, pos: Pos) -> Location {
        Location::at(self.file, pos)
    }

    /// Whether loosening checks apply.
    pub fn checked(&self) -> bool {
        self.mode != Mode::Root
    }

    /// An [`PolicyError::Invalid`] at `pos`.
    pub fn invalid(
        &self,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> PolicyError {
        PolicyError::invalid(self.at(pos), message, hint)
    }

    /// A [`PolicyError::Loosen`] at `pos` against the base value's origin.
    pub fn loosen(
        &self,
        pos: Pos,
        field: &str,
        message: impl Into<String>,
        base: &Origin,
        hint: impl Into<String>,
    ) -> PolicyError {
        let field = match self.mode {
            Mode::Tool(name) => format!("tools.{name}.sandbox.{field}"),
            _ => format!("sandbox.{field}"),
        };
        self.loosen_top(pos, &field, message, base, hint)
    }

    /// A [`PolicyError::Loosen`] for a policy-wide field (not under `sandbox`).
    pub fn loosen_top(
        &self,
        pos: Pos,
        field: &str,
        message: impl Into<String>,
        base: &Origin,
        hint: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Loosen {
            at: self.at(pos),
            field: field.to_owned(),
            message: message.into(),
            base: Box::new(Location::of(base)),
            hint: hint.into(),
        }
    }
}

/// Parse one of a fixed set of spellings, or say which ones exist.
pub fn pick<T: Copy>(
    layer: &Layer<'_>,
    v: &Spanned<String>,
    what: &str,
    options: &[(&str, T)],
) -> Result<T, PolicyError> {
    options
        .iter()
        .find(|(n, _)| *n == v.value)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            layer.invalid(
                v.pos,
                format!("unknown {what} `{}`", super::error::excerpt(&v.value)),
                format!("use one of: {}", names.join(", ")),
            )
        })
}

/// Apply `requires:`.
pub fn apply_requires(
    req: &mut Requirements,
    raw: &RawRequires,
    layer: &Layer<'_>,
) -> Result<(), PolicyError> {
    let Some(abi) = &raw.landlock_abi else {
        return Ok(());
    };
    if !(1..=MAX_LANDLOCK_ABI).contains(&abi.value) {
        return Err(layer.invalid(
            abi.pos,
            format!("landlock_abi {} is out of range", abi.value),
            "Landlock ABIs start at 1 (Linux 5.13); this machine's kernel has 7",
        ));
    }
    let v = abi.value as u8;
    if let Some(base) = &req.landlock_abi
        && layer.checked()
        && v < base.value
    {
        return Err(layer.loosen_top(
            abi.pos,
            "requires.landlock_abi",
            format!(
                "lowers the required Landlock ABI from {} to {v}",
                base.value
            ),
            &base.origin,
            "remove the key or require at least the base's ABI",
        ));
    }
    req.landlock_abi = Some(layer.sourced(v, abi.pos));
    Ok(())
}

const STREAMS: &[(&str, u8)] = &[("stdin", 0), ("stdout", 1), ("stderr", 2)];
const STRATEGIES: &[(&str, Strategy)] = &[
    ("placeholder", Strategy::Placeholder),
    ("mask", Strategy::Mask),
    ("hash", Strategy::Hash),
    ("remove", Strategy::Remove),
];

/// Whether replacing `base` by `new` reveals nothing more. `remove` hides most,
/// `placeholder` reveals the kind, `mask` the length, `hash` equality across
/// occurrences; `mask` and `hash` reveal different things and do not replace
/// each other.
pub fn strategy_at_least(new: Strategy, base: Strategy) -> bool {
    use Strategy::*;
    new == base || new == Remove || (new == Placeholder && matches!(base, Mask | Hash))
}

/// Apply `redaction:`.
pub fn apply_redaction(
    red: &mut Redaction,
    raw: &Spanned<RawRedaction>,
    layer: &Layer<'_>,
) -> Result<(), PolicyError> {
    let r = &raw.value;
    if let Some(list) = &r.streams {
        let mut s = Streams::default();
        for v in &list.value {
            match pick(layer, v, "stream", STREAMS)? {
                0 => s.stdin = true,
                1 => s.stdout = true,
                _ => s.stderr = true,
            }
        }
        let base = red.streams.value;
        if layer.checked() {
            for (name, was, now) in [
                ("stdin", base.stdin, s.stdin),
                ("stdout", base.stdout, s.stdout),
                ("stderr", base.stderr, s.stderr),
            ] {
                if was && !now {
                    return Err(layer.loosen_top(
                        list.pos,
                        "redaction.streams",
                        format!("drops redaction of {name}"),
                        &red.streams.origin,
                        format!("keep `{name}` in the list"),
                    ));
                }
            }
        }
        red.streams = layer.sourced(s, list.pos);
    }
    if let Some(d) = &r.detectors {
        let mut set = BTreeSet::new();
        match &d.value {
            RawDetectors::All => {
                for k in DetectorKind::ALL {
                    set.insert(layer.sourced(k, d.pos));
                }
            }
            RawDetectors::List(names) => {
                for n in names {
                    let k = DetectorKind::from_name(&n.value).ok_or_else(|| {
                        layer.invalid(
                            n.pos,
                            format!("unknown detector `{}`", n.value),
                            format!(
                                "built-in detectors: {}; or write `detectors: all`",
                                DetectorKind::ALL.map(|k| k.as_str()).join(", ")
                            ),
                        )
                    })?;
                    if !set.iter().any(|s: &Sourced<DetectorKind>| s.value == k) {
                        set.insert(layer.sourced(k, n.pos));
                    }
                }
            }
        }
        if layer.checked()
            && let Some(missing) = red
                .detectors
                .iter()
                .find(|b| !set.iter().any(|s| s.value == b.value))
        {
            return Err(layer.loosen_top(
                d.pos,
                "redaction.detectors",
                format!("drops the `{}` detector", missing.value.as_str()),
                &missing.origin,
                "list every detector of the base (or `all`)",
            ));
        }
        if layer.checked() {
            // Keep the base's origins for the detectors it already had.
            for k in set {
                if !red.detectors.iter().any(|b| b.value == k.value) {
                    red.detectors.insert(k);
                }
            }
        } else {
            red.detectors = set;
        }
    }
    if let Some(customs) = &r.custom {
        for c in customs {
            red.custom
                .push(custom_detector(&c.value, c.pos, layer, &red.custom)?);
        }
    }
    if let Some(s) = &r.strategy {
        let new = pick(layer, s, "strategy", STRATEGIES)?;
        let base = red.strategy.value;
        if layer.checked() && !strategy_at_least(new, base) {
            return Err(layer.loosen_top(
                s.pos,
                "redaction.strategy",
                format!(
                    "`{}` reveals more than the base's `{}`",
                    s.value,
                    STRATEGIES
                        .iter()
                        .find(|(_, x)| *x == base)
                        .map_or("?", |(n, _)| n)
                ),
                &red.strategy.origin,
                "keep the base's strategy, or use `placeholder` or `remove`",
            ));
        }
        red.strategy = layer.sourced(new, s.pos);
    }
    if let Some(k) = &r.key_file {
        let path = paths::template(&k.value).map_err(|(m, h)| layer.invalid(k.pos, m, h))?;
        if path.0.starts_with("${") {
            return Err(layer.invalid(
                k.pos,
                "the redaction key file cannot use variables",
                "write an absolute path such as /etc/enforcecore/redact.key",
            ));
        }
        let path = PathBuf::from(path.0);
        if let Some(base) = &red.key_file
            && layer.checked()
            && base.value != path
        {
            return Err(layer.loosen_top(
                k.pos,
                "redaction.key_file",
                "replaces the base's redaction key",
                &base.origin,
                "remove the key; fingerprints must stay comparable and the key must stay secret",
            ));
        }
        red.key_file = Some(layer.sourced(path, k.pos));
    }
    Ok(())
}

fn custom_detector(
    raw: &super::raw::RawCustom,
    pos: Pos,
    layer: &Layer<'_>,
    existing: &[CustomDetector],
) -> Result<CustomDetector, PolicyError> {
    let name = &raw.name;
    let ok_name = !name.value.is_empty()
        && name.value.len() <= 64
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok_name {
        return Err(layer.invalid(
            name.pos,
            format!("custom detector name `{}` is not valid", name.value),
            "use 1-64 upper-case letters, digits and `_` (it appears as [REDACTED:NAME])",
        ));
    }
    if let Some(prev) = existing.iter().find(|c| c.name == name.value) {
        return Err(layer.invalid(
            name.pos,
            format!(
                "custom detector `{}` is already defined at {}",
                name.value, prev.origin
            ),
            "give it another name",
        ));
    }
    let max_len =
        bounded_regex(&raw.pattern.value).map_err(|(m, h)| layer.invalid(raw.pattern.pos, m, h))?;
    let validator = match &raw.validator {
        None => None,
        Some(v) => Some(pick(
            layer,
            v,
            "validator",
            &[("luhn", Validator::Luhn), ("mod97", Validator::Mod97)],
        )?),
    };
    Ok(CustomDetector {
        name: name.value.clone(),
        pattern: raw.pattern.value.clone(),
        max_len,
        validator,
        origin: layer.origin(pos),
    })
}

/// Check that a redaction regex parses, cannot match the empty string, and has
/// a bounded longest match; returns that bound. Uses `regex-syntax` only: the
/// redactor compiles the automaton.
pub fn bounded_regex(pattern: &str) -> Result<usize, (String, String)> {
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| {
            (
                format!(
                    "invalid regex: {}",
                    e.to_string().lines().last().unwrap_or("syntax error")
                ),
                "see https://docs.rs/regex/latest/regex/#syntax".to_owned(),
            )
        })?;
    let props = hir.properties();
    match props.maximum_len() {
        None => Err((
            format!("regex `{pattern}` has no maximum match length"),
            "replace `*`, `+` and `{n,}` with bounded repetitions such as `{1,64}`; the streaming redactor must know how much to hold back".to_owned(),
        )),
        Some(n) if n > MAX_CUSTOM_MATCH => Err((
            format!("regex `{pattern}` can match {n} bytes; at most {MAX_CUSTOM_MATCH} are allowed"),
            "use smaller repetition bounds".to_owned(),
        )),
        Some(_) if props.minimum_len() == Some(0) => Err((
            format!("regex `{pattern}` can match the empty string"),
            "require at least one character (`+` becomes `{1,64}`)".to_owned(),
        )),
        Some(n) => {
            regex::Regex::new(pattern).map_err(|e| (format!("invalid regex: {e}"), "simplify the pattern".to_owned()))?;
            Ok(n)
        }
    }
}

const KERNEL_AUDIT: &[(&str, KernelAudit)] = &[
    ("enable", KernelAudit::Enable),
    ("if_enabled", KernelAudit::IfEnabled),
    ("off", KernelAudit::Off),
];

fn audit_rank(k: KernelAudit) -> u8 {
    match k {
        KernelAudit::Off => 0,
        KernelAudit::IfEnabled => 1,
        KernelAudit::Enable => 2,
    }
}

/// Apply `denials:`.
pub fn apply_denials(
    d: &mut DenialCapture,
    raw: &RawDenials,
    layer: &Layer<'_>,
) -> Result<(), PolicyError> {
    let Some(k) = &raw.kernel_audit else {
        return Ok(());
    };
    let new = pick(layer, k, "kernel_audit setting", KERNEL_AUDIT)?;
    if layer.checked() && audit_rank(new) < audit_rank(d.kernel_audit.value) {
        return Err(layer.loosen_top(
            k.pos,
            "denials.kernel_audit",
            format!("`{}` collects fewer kernel denials than the base", k.value),
            &d.kernel_audit.origin,
            "remove the key or choose a stronger setting (off < if_enabled < enable)",
        ));
    }
    d.kernel_audit = layer.sourced(new, k.pos);
    Ok(())
}
