//! Named tools and agents: conversion from raw form, and argument checking.
//!
//! A tool's command is an absolute path without variables or `.`/`..`; its
//! argument rules are fixed prefixes, allow regexes (each argument must fully
//! match one), deny regexes (no argument may match, checked first) and a
//! maximum count. [`Tool::check_args`] is what `run --tool` and the daemon call
//! before anything is spawned. This module must never spawn anything.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::de::Spanned;
use super::error::PolicyError;
use super::merge::Layer;
use super::model::*;
use super::paths;
use super::raw::{RawAgent, RawArgs, RawRateLimit, RawTool};
use super::units;

/// Longest tool or agent name.
const MAX_NAME: usize = 64;

/// Why a tool's arguments were refused. `Display` names the rule and where it
/// was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgRefusal {
    /// More arguments than `max_args`.
    #[error("{count} arguments exceed max_args {max} ({origin})")]
    TooMany {
        /// Arguments given.
        count: usize,
        /// The limit.
        max: usize,
        /// Where `max_args` was written.
        origin: Origin,
    },
    /// No fixed prefix matched.
    #[error("the arguments do not start with any allowed prefix ({origin})")]
    NoPrefix {
        /// Where the first prefix was written.
        origin: Origin,
    },
    /// An argument matched a deny regex.
    #[error("argument {index} `{arg}` matches deny rule `{rule}` ({origin})")]
    Denied {
        /// 1-based index in argv.
        index: usize,
        /// The argument.
        arg: String,
        /// The regex.
        rule: String,
        /// Where it was written.
        origin: Origin,
    },
    /// An argument matched none of the allow regexes.
    #[error("argument {index} `{arg}` matches no allow rule ({origin})")]
    NotAllowed {
        /// 1-based index in argv.
        index: usize,
        /// The argument.
        arg: String,
        /// Where the first allow rule was written.
        origin: Origin,
    },
}

impl Tool {
    /// Check `argv[1..]` against the tool's argument rules. Arguments that a
    /// fixed prefix matched are not checked against `allow` again, but every
    /// argument is checked against `deny`.
    pub fn check_args(&self, args: &[String]) -> Result<(), ArgRefusal> {
        let a = &self.args;
        if let Some(max) = &a.max_args
            && args.len() > max.value
        {
            return Err(ArgRefusal::TooMany {
                count: args.len(),
                max: max.value,
                origin: max.origin.clone(),
            });
        }
        for (i, arg) in args.iter().enumerate() {
            if let Some(d) = a.deny.iter().find(|d| d.value.is_match(arg)) {
                return Err(ArgRefusal::Denied {
                    index: i + 1,
                    arg: arg.clone(),
                    rule: d
                        .value
                        .as_str()
                        .trim_start_matches("^(?:")
                        .trim_end_matches(")$")
                        .to_owned(),
                    origin: d.origin.clone(),
                });
            }
        }
        let mut rest = args;
        if let Some(first) = a.prefixes.first() {
            let p = a
                .prefixes
                .iter()
                .filter(|p| args.starts_with(&p.value))
                .map(|p| p.value.len())
                .max();
            match p {
                Some(n) => rest = &args[n..],
                None => {
                    return Err(ArgRefusal::NoPrefix {
                        origin: first.origin.clone(),
                    });
                }
            }
        }
        if let Some(first) = a.allow.first() {
            let offset = args.len() - rest.len();
            for (i, arg) in rest.iter().enumerate() {
                if !a.allow.iter().any(|r| r.value.is_match(arg)) {
                    return Err(ArgRefusal::NotAllowed {
                        index: offset + i + 1,
                        arg: arg.clone(),
                        origin: first.origin.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Name(n) => f.write_str(n),
            Account::Id(i) => write!(f, "{i}"),
        }
    }
}

/// Check a tool or agent name.
pub fn check_name(v: &Spanned<String>, what: &str, layer: &Layer<'_>) -> Result<(), PolicyError> {
    let ok = !v.value.is_empty()
        && v.value.len() <= MAX_NAME
        && v.value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(layer.invalid(
            v.pos,
            format!("`{}` is not a valid {what} name", v.value),
            format!("use 1-{MAX_NAME} letters, digits, `-`, `_` or `.`"),
        ))
    }
}

/// Convert one tool; its sandbox is filled in by the caller.
pub fn tool(
    name: &Spanned<String>,
    raw: &Spanned<RawTool>,
    layer: &Layer<'_>,
    sandbox: Sandbox,
) -> Result<Tool, PolicyError> {
    check_name(name, "tool", layer)?;
    let t = &raw.value;
    let cmd = &t.command;
    let tpl = paths::template(&cmd.value).map_err(|(m, h)| layer.invalid(cmd.pos, m, h))?;
    if tpl.0.starts_with("${") || tpl.0 != cmd.value {
        return Err(layer.invalid(
            cmd.pos,
            format!("command `{}` must be a plain absolute path", cmd.value),
            "write the executable's absolute path without variables, `//` or a trailing `/`, e.g. /usr/bin/git",
        ));
    }
    Ok(Tool {
        name: name.value.clone(),
        description: t.description.clone(),
        command: layer.sourced(PathBuf::from(&cmd.value), cmd.pos),
        args: args(t.args.as_ref(), layer)?,
        sandbox,
        rate_limit: t
            .rate_limit
            .as_ref()
            .map(|r| rate_limit(r, layer))
            .transpose()?,
        max_concurrent: t
            .max_concurrent
            .as_ref()
            .map(|m| positive(m, "max_concurrent", layer).map(|v| layer.sourced(v, m.pos)))
            .transpose()?,
        origin: layer.origin(name.pos),
    })
}

fn positive(v: &Spanned<i64>, what: &str, layer: &Layer<'_>) -> Result<u32, PolicyError> {
    u32::try_from(v.value)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            layer.invalid(
                v.pos,
                format!("{what} {} is out of range", v.value),
                format!("{what} must be between 1 and 4294967295"),
            )
        })
}

fn args(raw: Option<&RawArgs>, layer: &Layer<'_>) -> Result<ArgRules, PolicyError> {
    let Some(raw) = raw else {
        return Ok(ArgRules::default());
    };
    let compile = |v: &Spanned<String>| -> Result<Sourced<regex::Regex>, PolicyError> {
        // Parse the pattern on its own first: `a)|(b` would otherwise escape
        // the anchoring group below and match partial arguments.
        regex_syntax::Parser::new().parse(&v.value).map_err(|e| {
            layer.invalid(
                v.pos,
                format!(
                    "invalid argument regex: {}",
                    e.to_string().lines().last().unwrap_or("error")
                ),
                "see https://docs.rs/regex/latest/regex/#syntax",
            )
        })?;
        regex::RegexBuilder::new(&format!("^(?:{})$", v.value))
            .size_limit(1 << 20)
            .build()
            .map(|r| layer.sourced(r, v.pos))
            .map_err(|e| layer.invalid(v.pos, format!("invalid argument regex: {}", e.to_string().lines().last().unwrap_or("error")), "regexes must match whole arguments; see https://docs.rs/regex/latest/regex/#syntax"))
    };
    let mut prefixes = Vec::new();
    for p in raw.prefixes.iter().flatten() {
        if p.value.is_empty() {
            return Err(layer.invalid(
                p.pos,
                "an empty prefix allows everything",
                "remove it, or list the fixed leading arguments",
            ));
        }
        prefixes.push(layer.sourced(p.value.clone(), p.pos));
    }
    Ok(ArgRules {
        prefixes,
        allow: raw
            .allow
            .iter()
            .flatten()
            .map(compile)
            .collect::<Result<_, _>>()?,
        deny: raw
            .deny
            .iter()
            .flatten()
            .map(compile)
            .collect::<Result<_, _>>()?,
        max_args: match &raw.max_args {
            Some(m) => Some(
                layer.sourced(
                    usize::try_from(m.value)
                        .ok()
                        .filter(|n| *n <= 4096)
                        .ok_or_else(|| {
                            layer.invalid(
                                m.pos,
                                format!("max_args {} is out of range", m.value),
                                "use 0 to 4096",
                            )
                        })?,
                    m.pos,
                ),
            ),
            None => None,
        },
    })
}

/// Convert a rate limit.
pub fn rate_limit(r: &Spanned<RawRateLimit>, layer: &Layer<'_>) -> Result<RateLimit, PolicyError> {
    let count = positive(&r.value.count, "count", layer)?;
    let per: Duration = units::parse_duration(&r.value.per.value)
        .map_err(|m| layer.invalid(r.value.per.pos, m, "write e.g. `per: 1m`"))?;
    if per.is_zero() {
        return Err(layer.invalid(
            r.value.per.pos,
            "rate limit period must be above zero",
            "write e.g. `per: 1m`",
        ));
    }
    let burst = match &r.value.burst {
        Some(b) => positive(b, "burst", layer)?,
        None => count,
    };
    Ok(RateLimit {
        count,
        per,
        burst,
        origin: layer.origin(r.pos),
    })
}

/// Convert one agent. Tool references are checked by the caller once every
/// tool of the chain is known.
pub fn agent(raw: &Spanned<RawAgent>, layer: &Layer<'_>) -> Result<Agent, PolicyError> {
    let a = &raw.value;
    check_name(&a.name, "agent", layer)?;
    let ids =
        |list: &Option<Vec<Spanned<i64>>>, what: &str| -> Result<BTreeSet<u32>, PolicyError> {
            list.iter()
                .flatten()
                .map(|v| {
                    u32::try_from(v.value)
                        .ok()
                        .filter(|x| *x != u32::MAX)
                        .ok_or_else(|| {
                            layer.invalid(
                                v.pos,
                                format!("{what} {} is out of range", v.value),
                                "ids are 0 to 4294967294",
                            )
                        })
                })
                .collect()
        };
    let uids = ids(&a.uids, "uid")?;
    let gids = ids(&a.gids, "gid")?;
    if uids.is_empty() && gids.is_empty() {
        return Err(layer.invalid(
            raw.pos,
            format!("agent `{}` matches no caller", a.name.value),
            "list the peer `uids:` and/or `gids:` that identify it",
        ));
    }
    Ok(Agent {
        name: a.name.value.clone(),
        uids,
        gids,
        tools: a.tools.iter().map(|t| t.value.clone()).collect(),
        rate_limit: a
            .rate_limit
            .as_ref()
            .map(|r| rate_limit(r, layer))
            .transpose()?,
        max_concurrent: a
            .max_concurrent
            .as_ref()
            .map(|m| positive(m, "max_concurrent", layer))
            .transpose()?,
        origin: layer.origin(raw.pos),
    })
}
