//! From a parsed `extends` chain to the resolved [`Policy`].
//!
//! Applies the chain base first onto the built-in defaults (see `merge` and
//! `sandbox_layer` for the per-field rules), builds every tool's effective
//! sandbox from the final defaults plus the tool's override, and validates
//! what only the whole picture shows: grant/deny conflicts, tool commands that
//! their own sandbox could not execute, agents naming unknown tools. This
//! module must never read files.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::error::{Location, PolicyError};
use super::load::Doc;
use super::merge::{self, Layer, Mode};
use super::model::*;
use super::raw::RawTool;
use super::{hash, paths, sandbox_layer, syscall_layer, tools};
use crate::redact::DetectorKind;

/// The built-in redaction: stdout and stderr, every detector, placeholders.
fn builtin_redaction() -> Redaction {
    Redaction {
        streams: Sourced {
            value: Streams {
                stdin: false,
                stdout: true,
                stderr: true,
            },
            origin: Origin::builtin(),
        },
        detectors: DetectorKind::ALL
            .into_iter()
            .map(|k| Sourced {
                value: k,
                origin: Origin::builtin(),
            })
            .collect(),
        custom: Vec::new(),
        strategy: Sourced {
            value: Strategy::Placeholder,
            origin: Origin::builtin(),
        },
        key_file: None,
    }
}

/// Resolve a chain (base first) into a policy.
pub fn resolve(chain: &[Doc]) -> Result<Policy, PolicyError> {
    let leaf = chain.last().expect("chain is never empty");
    let mut requires = Requirements::default();
    let mut sandbox = sandbox_layer::builtin_sandbox();
    let mut redaction = builtin_redaction();
    let mut denials = DenialCapture {
        kernel_audit: Sourced {
            value: KernelAudit::IfEnabled,
            origin: Origin::builtin(),
        },
    };
    let mut raw_tools: Vec<(
        &Doc,
        &super::de::Spanned<String>,
        &super::de::Spanned<RawTool>,
    )> = Vec::new();
    let mut agents: Vec<Agent> = Vec::new();

    for (i, doc) in chain.iter().enumerate() {
        let layer = Layer {
            file: &doc.shown,
            mode: if i == 0 { Mode::Root } else { Mode::Extends },
        };
        let raw = &doc.raw;
        if raw.version.value != 1 {
            return Err(layer.invalid(
                raw.version.pos,
                format!("unsupported policy version {}", raw.version.value),
                "this EnforceCore reads `version: 1`",
            ));
        }
        if raw.name.value.trim().is_empty() || raw.name.value.len() > 128 {
            return Err(layer.invalid(
                raw.name.pos,
                "policy name must be 1-128 characters",
                "give the policy a short name",
            ));
        }
        if let Some(r) = &raw.requires {
            merge::apply_requires(&mut requires, r, &layer)?;
        }
        if let Some(s) = &raw.sandbox {
            sandbox_layer::apply(&mut sandbox, &s.value, &layer)?;
        }
        if let Some(r) = &raw.redaction {
            merge::apply_redaction(&mut redaction, r, &layer)?;
        }
        if let Some(d) = &raw.denials {
            merge::apply_denials(&mut denials, d, &layer)?;
        }
        for (name, t) in raw.tools.iter().flat_map(|t| t.0.iter()) {
            if let Some((prev, pname, _)) = raw_tools.iter().find(|(_, n, _)| n.value == name.value)
            {
                let hint = if std::ptr::eq(*prev, doc) {
                    "give the tool another name"
                } else {
                    "a policy cannot redefine a tool of its base; give the new tool another name"
                };
                return Err(layer.invalid(
                    name.pos,
                    format!(
                        "tool `{}` is already defined at {}",
                        name.value,
                        Location::at(&prev.shown, pname.pos)
                    ),
                    hint,
                ));
            }
            raw_tools.push((doc, name, t));
        }
        for a in raw.agents.iter().flatten() {
            let agent = tools::agent(a, &layer)?;
            if let Some(prev) = agents.iter().find(|p| p.name == agent.name) {
                return Err(layer.invalid(
                    a.value.name.pos,
                    format!(
                        "agent `{}` is already defined at {}",
                        agent.name, prev.origin
                    ),
                    "give the agent another name, or merge the two entries",
                ));
            }
            agents.push(agent);
        }
    }
    sandbox.requires = requires.clone();
    check_sandbox(&sandbox, None)?;

    let mut tool_map = BTreeMap::new();
    for (doc, name, raw) in raw_tools {
        let layer = Layer {
            file: &doc.shown,
            mode: Mode::Tool(&name.value),
        };
        let mut sb = sandbox.clone();
        if let Some(o) = &raw.value.sandbox {
            sandbox_layer::apply(&mut sb, &o.value, &layer)?;
        }
        let tool = tools::tool(name, raw, &layer, sb)?;
        check_sandbox(&tool.sandbox, Some(&tool))?;
        tool_map.insert(tool.name.clone(), tool);
    }
    for a in &agents {
        if let Some(t) = a.tools.iter().find(|t| !tool_map.contains_key(*t)) {
            return Err(PolicyError::invalid(
                Location::of(&a.origin),
                format!(
                    "agent `{}` names tool `{t}`, which no policy of the chain defines",
                    a.name
                ),
                if tool_map.is_empty() {
                    format!("define `tools: {t}:` or remove it; this policy defines no tools")
                } else {
                    format!(
                        "define `tools: {t}:` or remove it; tools: {}",
                        tool_map.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
            ));
        }
    }

    let mut policy = Policy {
        version: 1,
        name: leaf.raw.name.value.clone(),
        hash: String::new(),
        sources: chain
            .iter()
            .map(|d| d.canonical.clone().unwrap_or_else(|| d.shown.clone()))
            .collect(),
        requires,
        sandbox,
        redaction,
        tools: tool_map,
        agents,
        denials,
    };
    policy.hash = hash::policy_hash(&policy);
    Ok(policy)
}

/// Checks on one effective sandbox that no single layer can make.
fn check_sandbox(sb: &Sandbox, tool: Option<&Tool>) -> Result<(), PolicyError> {
    if let Some(c) = paths::first_conflict(sb) {
        let (message, hint) = if c.deny_inside_grant {
            (
                format!(
                    "`{}` is denied (at {}) but lies inside `{}`, which is granted; Landlock only adds rights and every path beneath a granted directory inherits them, so this deny cannot be enforced",
                    c.deny.value, c.deny.origin, c.rule.path
                ),
                "grant the sibling directories you need instead of their parent, or drop the deny",
            )
        } else {
            (
                format!(
                    "`{}` is granted but lies on or inside `{}`, which is denied at {}",
                    c.rule.path, c.deny.value, c.deny.origin
                ),
                "remove the grant; denied paths can never be granted, not even by a policy that extends this one",
            )
        };
        return Err(PolicyError::invalid(
            Location::of(&c.rule.origin),
            message,
            hint,
        ));
    }
    if let Some(t) = tool {
        let cmd = t.command.value.to_string_lossy();
        if !paths::rights_on(sb, &cmd).contains(FsAccess::EXECUTE) {
            return Err(PolicyError::invalid(
                Location::of(&t.command.origin),
                format!(
                    "tool `{}`: its sandbox grants no execute right on `{cmd}`, so it could never start",
                    t.name
                ),
                "add the command or its directory to `sandbox.filesystem.exec` (defaults or the tool's override)",
            ));
        }
    }
    let io_uring: BTreeSet<_> = crate::sandbox::syscalls::SyscallGroup::IoUring
        .members()
        .iter()
        .copied()
        .collect();
    if sb.syscalls.mode.value == SyscallMode::Allow
        && let Some(s) = syscall_layer::expand(&sb.syscalls.groups, &sb.syscalls.names)
            .intersection(&io_uring)
            .next()
    {
        return Err(PolicyError::invalid(
            Location::of(&sb.syscalls.mode.origin),
            format!("the syscall allow-list includes `{s}`, but io_uring is always denied"),
            "remove io_uring from the allow-list",
        ));
    }
    Ok(())
}
