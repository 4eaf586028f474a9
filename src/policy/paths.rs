//! Path templates and the filesystem rules Landlock can and cannot express.
//!
//! Owns the syntax of policy paths (absolute, no `.`/`..`, only the known
//! `${VARIABLES}`, and only at the start) and the checks that compare rules:
//! a grant on or beneath a denied path exposes it, and a deny beneath a grant
//! cannot be expressed at all, because Landlock is an allow-list whose rights
//! are inherited by everything beneath a granted directory. Comparisons are
//! textual on normalized templates; paths that start with different variables
//! are unrelated at load time; `Filesystem::expand` repeats the checks on the
//! real paths when a run starts. It must never touch the filesystem.

use std::path::{Component, Path};

use super::error::{Location, PolicyError};
use super::model::{
    ExpandedRule, Filesystem, FsAccess, PathRule, PathTemplate, PathVars, Sandbox, Sourced,
};

/// Validate and normalize a policy path. `Err` holds (message, hint).
pub fn template(raw: &str) -> Result<PathTemplate, (String, String)> {
    let bad = |m: String, h: &str| Err((m, h.to_owned()));
    if raw.is_empty() {
        return bad(
            "empty path".into(),
            "write an absolute path such as `/usr/lib`",
        );
    }
    if raw.contains('\0') {
        return bad("path contains a NUL byte".into(), "remove it");
    }
    let rest = if let Some(after) = raw.strip_prefix("${") {
        let Some(end) = after.find('}') else {
            return bad(
                format!("unterminated variable in `{raw}`"),
                "write `${NAME}`",
            );
        };
        let name = &after[..end];
        if !PathTemplate::VARIABLES.contains(&name) {
            return bad(
                format!("unknown variable `${{{name}}}` in `{raw}`"),
                "the variables are ${RUN_DIR}, ${HOME} and ${TMPDIR}",
            );
        }
        let rest = &after[end + 1..];
        if !rest.is_empty() && !rest.starts_with('/') {
            return bad(
                format!("`{raw}`: a variable must be followed by `/` or end the path"),
                "write e.g. `${HOME}/.cache`",
            );
        }
        rest
    } else if raw.starts_with('/') {
        raw
    } else {
        return bad(
            format!("path `{raw}` is relative"),
            "policy paths must be absolute (`/usr/lib`) or start with ${RUN_DIR}, ${HOME} or ${TMPDIR}",
        );
    };
    if rest.contains('$') {
        return bad(
            format!(
                "`{raw}`: `$` may only start a path, as `${{RUN_DIR}}`, `${{HOME}}` or `${{TMPDIR}}`"
            ),
            "variables can only begin a path; a literal `$` in a file name is not supported",
        );
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..raw.len() - rest.len()]);
    for comp in rest.split('/').filter(|c| !c.is_empty()) {
        if comp == ".." || comp == "." {
            return bad(
                format!("path `{raw}` contains `{comp}`"),
                "write the path without `.` or `..` components; rules must name the tree they grant",
            );
        }
        out.push('/');
        out.push_str(comp);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(PathTemplate(out))
}

/// True when `inner` is `outer` or lies beneath it.
pub fn is_within(inner: &PathTemplate, outer: &PathTemplate) -> bool {
    let (i, o) = (inner.0.as_str(), outer.0.as_str());
    if o == "/" {
        return i.starts_with('/');
    }
    i == o || (i.starts_with(o) && i.as_bytes().get(o.len()) == Some(&b'/'))
}

/// A grant and a deny that cannot coexist.
pub struct Conflict<'a> {
    /// The offending grant.
    pub rule: &'a PathRule,
    /// The deny it collides with.
    pub deny: &'a Sourced<PathTemplate>,
    /// True when the deny lies strictly beneath the grant (inexpressible),
    /// false when the grant lies on or beneath the deny (exposes it).
    pub deny_inside_grant: bool,
}

/// The first grant/deny conflict of a sandbox, if any.
pub fn first_conflict(sandbox: &Sandbox) -> Option<Conflict<'_>> {
    for deny in &sandbox.filesystem.deny {
        for rule in &sandbox.filesystem.rules {
            if is_within(&rule.path, &deny.value) {
                return Some(Conflict {
                    rule,
                    deny,
                    deny_inside_grant: false,
                });
            }
            if is_within(&deny.value, &rule.path) {
                return Some(Conflict {
                    rule,
                    deny,
                    deny_inside_grant: true,
                });
            }
        }
    }
    None
}

/// The rights a sandbox grants on a literal path (the union of every rule on it
/// or on one of its ancestors, as Landlock computes them).
pub fn rights_on(sandbox: &Sandbox, path: &str) -> FsAccess {
    let target = PathTemplate(path.to_owned());
    sandbox
        .filesystem
        .rules
        .iter()
        .filter(|r| is_within(&target, &r.path))
        .fold(FsAccess::empty(), |acc, r| acc.union(r.access))
}

impl Filesystem {
    /// Substitute the run's variables into every rule, and check again on the
    /// real paths what load could only check on templates: every expanded path
    /// is absolute and clean, and no grant lands on, above or beneath a denied
    /// path (`${RUN_DIR}` under a denied `/tmp`, say). Call it when a run
    /// starts, before building the Landlock ruleset; an error fails the run.
    pub fn expand(&self, vars: &PathVars) -> Result<Vec<ExpandedRule>, PolicyError> {
        for (name, v) in [
            ("RUN_DIR", &vars.run_dir),
            ("HOME", &vars.home),
            ("TMPDIR", &vars.tmpdir),
        ] {
            if !clean_absolute(v) {
                return Err(PolicyError::invalid(
                    Location::file(Path::new("<run>")),
                    format!(
                        "${{{name}}} is `{}`, not a clean absolute path",
                        v.display()
                    ),
                    "the supervisor must pass absolute paths without `.` or `..`",
                ));
            }
        }
        let denies: Vec<(PathTemplate, &Sourced<PathTemplate>)> = self
            .deny
            .iter()
            .map(|d| {
                (
                    PathTemplate(d.value.expand(vars).to_string_lossy().into_owned()),
                    d,
                )
            })
            .collect();
        let mut out = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let path = r.path.expand(vars);
            let t = PathTemplate(path.to_string_lossy().into_owned());
            if let Some((_, d)) = denies
                .iter()
                .find(|(dt, _)| is_within(&t, dt) || is_within(dt, &t))
            {
                return Err(PolicyError::invalid(
                    Location::of(&r.origin),
                    format!(
                        "`{}` expands to {}, which collides with the denied `{}` (at {})",
                        r.path,
                        path.display(),
                        d.value,
                        d.origin
                    ),
                    "move the run directory (or home) out of the denied tree, or change the policy",
                ));
            }
            out.push(ExpandedRule {
                path,
                access: r.access,
                optional: r.optional,
                origin: r.origin.clone(),
            });
        }
        Ok(out)
    }
}

fn clean_absolute(p: &Path) -> bool {
    p.is_absolute()
        && !p.as_os_str().as_encoded_bytes().contains(&0)
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        template(s)
            .map(|p| p.0)
            .unwrap_or_else(|(m, _)| format!("ERR {m}"))
    }

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(t("/usr/lib/"), "/usr/lib");
        assert_eq!(t("//usr//lib"), "/usr/lib");
        assert_eq!(t("/"), "/");
        assert_eq!(t("${RUN_DIR}"), "${RUN_DIR}");
        assert_eq!(t("${HOME}/.cache/"), "${HOME}/.cache");
        assert!(t("usr/lib").contains("relative"));
        assert!(t("/usr/../etc").contains(".."));
        assert!(t("/usr/./lib").contains("`.`"));
        assert!(t("${HOMEDIR}/x").contains("unknown variable"));
        assert!(t("${HOME}x").starts_with("ERR"));
        assert!(t("/x/${HOME}").starts_with("ERR"));
        assert!(t("$HOME/x").contains("relative"));
        assert!(t("").contains("empty"));
    }

    #[test]
    fn expansion_rechecks_denies_on_real_paths() {
        use crate::policy::model::Origin;
        let o = Origin::builtin;
        let fs = Filesystem {
            rules: vec![PathRule {
                path: PathTemplate("${RUN_DIR}".into()),
                access: FsAccess::WRITE,
                optional: false,
                origin: o(),
            }],
            deny: vec![Sourced {
                value: PathTemplate("/srv/secret".into()),
                origin: o(),
            }],
        };
        let vars = |run: &str| PathVars {
            run_dir: run.into(),
            home: "/home/u".into(),
            tmpdir: format!("{run}/tmp").into(),
        };
        let ok = fs.expand(&vars("/run/enforcecore-x/1")).unwrap();
        assert_eq!(ok[0].path, std::path::PathBuf::from("/run/enforcecore-x/1"));
        assert!(fs.expand(&vars("/srv/secret/run-1")).is_err());
        assert!(fs.expand(&vars("/srv")).is_err());
        assert!(fs.expand(&vars("relative/run")).is_err());
        assert!(fs.expand(&vars("/tmp/../srv/secret")).is_err());
    }

    #[test]
    fn within() {
        let p = |s: &str| PathTemplate(s.into());
        assert!(is_within(&p("/etc/ssl"), &p("/etc")));
        assert!(is_within(&p("/etc"), &p("/etc")));
        assert!(!is_within(&p("/etcetera"), &p("/etc")));
        assert!(is_within(&p("/etc"), &p("/")));
        assert!(!is_within(&p("${HOME}/x"), &p("/")));
        assert!(is_within(&p("${HOME}/x"), &p("${HOME}")));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Normalizing twice changes nothing, and a normalized path never
        /// contains `.`/`..` components, empty components or a trailing `/`.
        #[test]
        fn template_is_idempotent_and_clean(s in "(\\$\\{(RUN_DIR|HOME|TMPDIR|X)\\})?(/{1,2}(\\.{1,3}|[a-z$]{1,4})){0,6}/?") {
            if let Ok(t) = template(&s) {
                prop_assert_eq!(template(&t.0).map(|x| x.0), Ok(t.0.clone()));
                let body = t.0.split_once('}').map_or(t.0.as_str(), |(_, b)| b);
                prop_assert!(body.is_empty() || body == "/" || body.split('/').skip(1).all(|c| !c.is_empty() && c != "." && c != ".."), "{}", t.0);
                prop_assert!(t.0 == "/" || !t.0.ends_with('/'));
            }
        }

        /// `is_within` agrees with component-wise prefix on clean paths.
        #[test]
        fn within_is_component_prefix(a in proptest::collection::vec("[ab]{1,2}", 0..4), b in proptest::collection::vec("[ab]{1,2}", 0..4)) {
            let p = |v: &[String]| PathTemplate(format!("/{}", v.join("/")));
            prop_assert_eq!(is_within(&p(&a), &p(&b)), a.starts_with(&b));
        }
    }
}
