//! `audit why`: one denial explained — what was attempted, which layer stopped
//! it, which rule (or missing rule) is responsible, the smallest policy change
//! that would allow it, and what that change would expose.
//!
//! Everything comes from the denial record itself (its layer, object, access,
//! detail and the hint written when it was recorded, which names the policy
//! field and where it is set). Pure: this module reads no file and must never
//! suggest a change without the warnings that go with it.

use std::path::Path;

use serde::Serialize;

use crate::report::{Denial, DenialLayer};

/// A policy change, as YAML to merge into the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The field (`sandbox.filesystem.rules`).
    pub field: String,
    /// The snippet.
    pub yaml: String,
}

/// One denial, explained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// What was attempted.
    pub attempted: String,
    /// The layer (`landlock-fs`, …).
    pub layer: String,
    /// What that layer is.
    pub layer_is: String,
    /// The rule, or the missing rule, responsible.
    pub responsible: String,
    /// The smallest change that would allow it; `None` when no policy can.
    pub change: Option<Change>,
    /// What the change would expose.
    pub warnings: Vec<String>,
}

/// Paths whose exposure a grant must be warned about, and why.
const SENSITIVE: [(&str, &str); 14] = [
    ("/etc/shadow", "password hashes"),
    ("/etc/gshadow", "group password hashes"),
    ("/etc/sudoers", "sudo rules"),
    ("/etc/ssl/private", "TLS private keys"),
    ("/etc/ssh", "the host's SSH keys"),
    ("/root", "root's home (SSH keys, credentials, history)"),
    ("/home", "users' homes (~/.ssh, ~/.aws, ~/.netrc, tokens)"),
    (
        "/run/enforcecore",
        "EnforceCore's control socket and state (a tool could drive the supervisor)",
    ),
    (
        "/var/lib/enforcecore",
        "EnforceCore's state and default audit trail",
    ),
    ("/proc/sys", "kernel tunables"),
    ("/sys", "kernel and device state"),
    ("/boot", "kernels and boot configuration"),
    ("/dev", "device nodes"),
    (
        "/var/run/docker.sock",
        "the Docker socket (root on the host)",
    ),
];

/// Credential file and directory names, wherever they are.
const CREDENTIAL_NAMES: [&str; 9] = [
    ".ssh",
    ".aws",
    ".gnupg",
    ".netrc",
    ".kube",
    ".docker",
    ".git-credentials",
    ".pgpass",
    "id_rsa",
];

fn layer_name(l: DenialLayer) -> String {
    serde_json::to_value(l)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn layer_is(l: DenialLayer) -> &'static str {
    match l {
        DenialLayer::LandlockFs => {
            "Landlock filesystem allow-list: only the rights granted by filesystem rules, on \
             the granted paths and beneath them"
        }
        DenialLayer::LandlockNet => "Landlock TCP port allow-list (network.tcp_connect / tcp_bind)",
        DenialLayer::LandlockScope => {
            "Landlock scopes: no signals and no abstract unix connections outside the sandbox"
        }
        DenialLayer::Seccomp => "the seccomp syscall filter (sandbox.syscalls, network.families)",
        DenialLayer::Cgroup => "a cgroup resource limit (sandbox.limits)",
        DenialLayer::Policy => "a decision of the supervisor from the policy (tools, limits)",
    }
}

/// `a` is `b` or beneath it.
fn within(a: &str, b: &str) -> bool {
    b == "/" || a == b || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
}

/// What a grant on `path` would expose. `trail` is the audit trail's file.
pub fn exposure(path: &str, trail: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, what) in SENSITIVE {
        if within(p, path) {
            out.push(format!(
                "a grant on {path} would open {p} ({what}); grant a narrower path"
            ));
        } else if within(path, p) {
            out.push(format!("{path} is inside {p} ({what})"));
        }
    }
    if let Some(name) = CREDENTIAL_NAMES
        .iter()
        .find(|n| path.split('/').any(|c| c == **n))
    {
        out.push(format!(
            "{path} holds credentials (`{name}`); never grant it to a tool"
        ));
    }
    if let Some(t) = trail {
        let dir = t.parent().unwrap_or(Path::new("/"));
        for p in [t, dir] {
            let p = p.to_string_lossy();
            if !p.is_empty() && within(&p, path) {
                out.push(format!(
                    "a grant on {path} would expose the audit trail itself ({p}): a tool could \
                     read or rewrite its own record"
                ));
                break;
            }
        }
    }
    if path == "/" || path == "/etc" || path == "/usr" || path == "/var" {
        out.push(format!(
            "{path} is a whole system tree; grant the one file or directory the tool needs"
        ));
    }
    out
}

fn yaml_list(field_path: &[&str], item: &str) -> String {
    let mut y = String::new();
    for (i, f) in field_path.iter().enumerate() {
        y.push_str(&"  ".repeat(i));
        y.push_str(f);
        y.push_str(":\n");
    }
    y.push_str(&"  ".repeat(field_path.len()));
    y.push_str("- ");
    y.push_str(item);
    y.push('\n');
    y
}

fn yaml_value(field_path: &[&str], value: &str) -> String {
    let mut y = String::new();
    let last = field_path.len() - 1;
    for (i, f) in field_path.iter().enumerate() {
        y.push_str(&"  ".repeat(i));
        y.push_str(f);
        if i == last {
            y.push_str(": ");
            y.push_str(value);
        } else {
            y.push(':');
        }
        y.push('\n');
    }
    y
}

/// What a Landlock filesystem right lets a process do, as a verb phrase.
fn verb(right: &str) -> &'static str {
    match right {
        "execute" => "execute",
        "write_file" => "write to",
        "read_file" => "read",
        "read_dir" => "list",
        "remove_dir" => "remove a directory in",
        "remove_file" => "remove a file in",
        "make_char" => "create a character device in",
        "make_dir" => "create a directory in",
        "make_reg" => "create a file in",
        "make_sock" => "create a unix socket in",
        "make_fifo" => "create a FIFO in",
        "make_block" => "create a block device in",
        "make_sym" => "create a symbolic link in",
        "refer" => "link or rename (refer) across",
        "truncate" => "truncate",
        "ioctl_dev" => "ioctl on",
        _ => "access",
    }
}

/// The `group \`x\`` a hint names, if any.
fn hinted_group(hint: &str) -> Option<&str> {
    let rest = hint.split("group `").nth(1)?;
    rest.split('`').next()
}

/// Explain `d`. `trail` is the file it was read from (for the exposure check).
pub fn explain(d: &Denial, trail: Option<&Path>) -> Explanation {
    let by = if d.detail.is_empty() {
        String::new()
    } else {
        format!(" — {}", d.detail)
    };
    let access = d.access.clone().unwrap_or_default();
    let (attempted, responsible, change, warnings) = match d.layer {
        DenialLayer::LandlockFs => {
            let rights: Vec<&str> = access
                .split(',')
                .map(|r| r.trim_start_matches("fs."))
                .filter(|r| !r.is_empty())
                .collect();
            let denied = d.hint.contains("filesystem.deny");
            let moving = d.hint.contains("Landlock `refer`");
            let change = (!denied && !moving).then(|| Change {
                field: "sandbox.filesystem.rules".into(),
                yaml: yaml_list(
                    &["sandbox", "filesystem", "rules"],
                    &format!("{{ path: {}, access: [{}] }}", d.object, rights.join(", ")),
                ),
            });
            let verbs: Vec<&str> = rights.iter().map(|r| verb(r)).collect();
            let attempted = if moving {
                format!(
                    "link or rename a file between {} and a directory with other rights{by}",
                    d.object
                )
            } else {
                format!(
                    "{} {} (`{}`){by}",
                    verbs.join(", "),
                    d.object,
                    rights.join("`, `")
                )
            };
            (
                attempted,
                if denied || moving {
                    d.hint.clone()
                } else {
                    format!(
                        "no filesystem rule grants `{}` on {} or a directory above it",
                        rights.join("`, `"),
                        d.object
                    )
                },
                change,
                exposure(&d.object, trail),
            )
        }
        DenialLayer::LandlockNet => {
            let port = d.object.trim_start_matches("tcp:").to_string();
            let bind = access.contains("bind");
            let field = if bind { "tcp_bind" } else { "tcp_connect" };
            let mut w = Vec::new();
            if bind && port.parse::<u16>().is_ok_and(|p| p < 1024) {
                w.push(format!("port {port} is privileged; a tool listening on it can impersonate a system service"));
            }
            (
                format!(
                    "TCP {} on port {port}{by}",
                    if bind { "bind" } else { "connect" }
                ),
                format!("port {port} is not in sandbox.network.{field}"),
                Some(Change {
                    field: format!("sandbox.network.{field}"),
                    yaml: yaml_list(&["sandbox", "network", field], &port),
                }),
                w,
            )
        }
        DenialLayer::LandlockScope => {
            let signal = access.contains("signal");
            let field = if signal { "signals" } else { "abstract_unix" };
            (
                format!("{}{by}", d.object),
                format!("sandbox.scopes.{field} is on"),
                Some(Change {
                    field: format!("sandbox.scopes.{field}"),
                    yaml: yaml_value(&["sandbox", "scopes", field], "false"),
                }),
                vec![if signal {
                    "turning the signal scope off lets the tool signal every process of its \
                     user outside the sandbox"
                        .into()
                } else {
                    "turning the abstract-unix scope off lets the tool connect to any abstract \
                     socket on the host (D-Bus, X11, container runtimes)"
                        .into()
                }],
            )
        }
        DenialLayer::Seccomp => {
            let call = d.object.as_str();
            let attempted = format!("the {call}() syscall ({access}){by}");
            if call == "socket" || call == "socketpair" {
                let fam = d.hint.split('`').nth(1).unwrap_or("inet").to_string();
                let mut y = yaml_list(&["sandbox", "network", "families"], &fam);
                if d.detail.contains("SOCK_DGRAM") {
                    y.push_str("    udp: true\n");
                } else if d.detail.contains("SOCK_RAW") {
                    y.push_str("    raw: true\n");
                }
                (
                    attempted,
                    "the socket family (or type) is not allowed by sandbox.network".into(),
                    Some(Change {
                        field: "sandbox.network.families".into(),
                        yaml: y,
                    }),
                    vec!["network access lets the tool exfiltrate whatever it can read".into()],
                )
            } else if d.hint.contains("always denied") {
                (attempted, d.hint.clone(), None, Vec::new())
            } else if let Some(g) = hinted_group(&d.hint) {
                (
                    attempted,
                    format!("the `{g}` group of sandbox.syscalls denies it ({})", d.hint),
                    Some(Change {
                        field: "sandbox.syscalls.groups".into(),
                        yaml: format!(
                            "# in the policy that lists it (a policy extending it cannot drop \
                             a deny):\nsandbox:\n  syscalls:\n    groups: [...]   # without {g}\n"
                        ),
                    }),
                    vec![format!(
                        "allowing the whole `{g}` group widens the kernel surface the tool \
                         can reach; prefer a tool that does not need {call}()"
                    )],
                )
            } else if d.hint.contains("allow list") {
                (
                    attempted,
                    format!("{call} is not in the sandbox.syscalls allow-list"),
                    Some(Change {
                        field: "sandbox.syscalls.names".into(),
                        yaml: yaml_list(&["sandbox", "syscalls", "names"], call),
                    }),
                    Vec::new(),
                )
            } else {
                (attempted, d.hint.clone(), None, Vec::new())
            }
        }
        DenialLayer::Cgroup | DenialLayer::Policy => {
            let field = d
                .hint
                .split_whitespace()
                .find(|w| w.starts_with("limits."))
                .map(|f| f.trim_end_matches([',', '.', ';']).to_string());
            let change = field.as_ref().map(|f| Change {
                field: format!("sandbox.{f}"),
                yaml: yaml_value(
                    &["sandbox", "limits", f.trim_start_matches("limits.")],
                    "<a higher value>",
                ),
            });
            (
                format!("{}{by}", d.object),
                d.hint.clone(),
                change,
                Vec::new(),
            )
        }
    };
    Explanation {
        attempted,
        layer: layer_name(d.layer),
        layer_is: layer_is(d.layer).into(),
        responsible,
        change,
        warnings,
    }
}

/// Where the record to explain is: a seq, or `RUN:N` (the run's N-th denial, from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A sequence number.
    Seq(u64),
    /// A run id (or a unique prefix of it) and the 1-based index of its denial.
    RunIndex(String, usize),
}

impl Selector {
    /// Parse the command-line form.
    pub fn parse(s: &str) -> Result<Selector, String> {
        if let Ok(n) = s.parse() {
            return Ok(Selector::Seq(n));
        }
        match s.rsplit_once(':') {
            Some((run, n)) if !run.is_empty() => match n.parse::<usize>() {
                Ok(i) if i > 0 => Ok(Selector::RunIndex(run.to_string(), i)),
                _ => Err(format!(
                    "`{s}`: the index after `:` counts the run's denials from 1"
                )),
            },
            _ => Err(format!(
                "`{s}` is not a record: give a sequence number (`42`) or a run id and the index \
                 of its denial (`9f3a…:1`)"
            )),
        }
    }
}
