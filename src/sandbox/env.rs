//! The tool's environment: nothing from the caller passes unless the policy allows it.
//!
//! Built in three layers, later ones winning:
//! 1. defaults: `PATH=/usr/local/bin:/usr/bin:/bin`, `HOME` and `PWD` = the run
//!    directory, `TMPDIR` = `${RUN_DIR}/tmp`;
//! 2. caller variables named in `env.allow` (when the caller has them);
//! 3. `env.set` values, where `${RUN_DIR}`, `${HOME}` and `${TMPDIR}` are expanded.
//!
//! Names and values are checked for NUL bytes; names must not contain `=`.
//! This module never reads the supervisor's own environment: the caller's
//! environment is passed in explicitly.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use super::SandboxError;
use crate::policy::{Env, PathTemplate, PathVars};

/// Default `PATH` of a tool.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The final environment, by name.
pub fn build(
    env: &Env,
    caller: &[(OsString, OsString)],
    vars: &PathVars,
) -> BTreeMap<OsString, OsString> {
    let mut out: BTreeMap<OsString, OsString> = BTreeMap::new();
    out.insert("PATH".into(), DEFAULT_PATH.into());
    out.insert("HOME".into(), vars.run_dir.clone().into_os_string());
    out.insert("PWD".into(), vars.run_dir.clone().into_os_string());
    out.insert("TMPDIR".into(), vars.tmpdir.clone().into_os_string());
    for (k, v) in caller {
        if env.allow.iter().any(|a| OsStr::new(&a.value) == k) {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &env.set {
        let expanded = PathTemplate(v.value.clone()).expand(vars);
        out.insert(k.into(), expanded.into_os_string());
    }
    out
}

/// `NAME=value` C strings for `execve`.
pub fn to_c(env: &BTreeMap<OsString, OsString>) -> Result<Vec<CString>, SandboxError> {
    env.iter()
        .map(|(k, v)| {
            if k.is_empty() || k.as_bytes().contains(&b'=') {
                return Err(SandboxError::NulByte(format!(
                    "environment variable name `{}` (empty or containing `=`)",
                    k.to_string_lossy()
                )));
            }
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).map_err(|_| {
                SandboxError::NulByte(format!("environment variable `{}`", k.to_string_lossy()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::fixtures::src;

    #[test]
    fn only_allowed_caller_variables_pass_and_set_wins() {
        let env = Env {
            allow: [src("LANG".to_string()), src("PATH".to_string())]
                .into_iter()
                .collect(),
            set: [
                ("PATH".to_string(), src("/opt/bin".to_string())),
                ("CACHE".to_string(), src("${RUN_DIR}/cache".to_string())),
            ]
            .into_iter()
            .collect(),
        };
        let caller = vec![
            ("LANG".into(), "C.UTF-8".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "x".into()),
            ("PATH".into(), "/evil".into()),
        ];
        let vars = PathVars {
            run_dir: "/r/1".into(),
            home: "/nonexistent".into(),
            tmpdir: "/r/1/tmp".into(),
        };
        let out = build(&env, &caller, &vars);
        assert_eq!(out.get(OsStr::new("LANG")).unwrap(), "C.UTF-8");
        assert_eq!(out.get(OsStr::new("PATH")).unwrap(), "/opt/bin");
        assert_eq!(out.get(OsStr::new("CACHE")).unwrap(), "/r/1/cache");
        assert_eq!(out.get(OsStr::new("HOME")).unwrap(), "/r/1");
        assert_eq!(out.get(OsStr::new("TMPDIR")).unwrap(), "/r/1/tmp");
        assert!(!out.contains_key(OsStr::new("AWS_SECRET_ACCESS_KEY")));
        let c = to_c(&out).unwrap();
        assert!(c.iter().any(|s| s.to_bytes() == b"LANG=C.UTF-8"));
    }

    #[test]
    fn nul_bytes_and_bad_names_are_errors() {
        let mut m = BTreeMap::new();
        m.insert(OsString::from("A"), OsString::from("x\0y"));
        assert!(to_c(&m).is_err());
        let mut m = BTreeMap::new();
        m.insert(OsString::from("A=B"), OsString::from("x"));
        assert!(to_c(&m).is_err());
    }
}
