//! Admission: may this request run at all? The policy-level refusal (exit 126).
//!
//! Runs before anything is created. Without a tool name, the policy's default
//! sandbox applies to whatever command was given. With a tool name, the tool must
//! exist, the command must be exactly the tool's `command`, and the arguments must
//! pass its argument rules ([`crate::policy::Tool::check_args`]). A refusal carries
//! the [`Denial`] the audit trail records. This module never spawns anything.

use std::ffi::OsString;
use std::path::Path;

use crate::policy::{Policy, Sandbox};
use crate::report::{Denial, DenialLayer};

/// A refused request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What was refused and why, with the rule's location.
    pub message: String,
    /// The same, as an audit denial (layer `policy`).
    pub denial: Box<Denial>,
}

fn refuse(object: String, detail: String, hint: String) -> Refusal {
    Refusal {
        message: format!("refused by policy: {detail}; {hint}"),
        denial: Box::new(Denial {
            layer: DenialLayer::Policy,
            pid: None,
            object,
            access: Some("run".into()),
            detail,
            hint,
        }),
    }
}

/// The sandbox this request runs under, or why it may not run.
pub fn admit<'p>(
    policy: &'p Policy,
    tool: Option<&str>,
    argv: &[OsString],
) -> Result<&'p Sandbox, Refusal> {
    let Some(name) = tool else {
        return Ok(&policy.sandbox);
    };
    let Some(t) = policy.tool(name) else {
        let known: Vec<&str> = policy.tools.keys().map(String::as_str).collect();
        return Err(refuse(
            format!("tool:{name}"),
            format!("policy `{}` has no tool `{name}`", policy.name),
            if known.is_empty() {
                "the policy defines no tools; run without --tool".into()
            } else {
                format!("known tools: {}", known.join(", "))
            },
        ));
    };
    let cmd = argv.first().map(Path::new);
    if cmd != Some(t.command.value.as_path()) {
        return Err(refuse(
            format!("tool:{name}"),
            format!(
                "tool `{name}` runs `{}`, not `{}`",
                t.command.value.display(),
                cmd.map_or_else(String::new, |c| c.display().to_string())
            ),
            format!("give the tool's command exactly ({})", t.command.origin),
        ));
    }
    let mut args = Vec::with_capacity(argv.len().saturating_sub(1));
    for (i, a) in argv.iter().enumerate().skip(1) {
        match a.to_str() {
            Some(s) => args.push(s.to_string()),
            None => {
                return Err(refuse(
                    format!("tool:{name}"),
                    format!("argument {i} is not valid UTF-8"),
                    "tool arguments are checked as text; pass UTF-8".into(),
                ));
            }
        }
    }
    t.check_args(&args).map_err(|e| {
        refuse(
            format!("tool:{name}"),
            format!("tool `{name}`: {e}"),
            "change the arguments or the tool's args rules".into(),
        )
    })?;
    Ok(&t.sandbox)
}
