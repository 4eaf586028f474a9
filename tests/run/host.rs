//! Host-dependent behaviour: a non-root supervisor, and `enforcecore doctor`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::*;
use crate::util::{self, Dir};

/// `enforcecore run` started as uid/gid 65534 (via `setpriv`).
/// Its run directories go under the policy's directory (`tmp/`, owned by 65534),
/// so that nothing is left in the host's /tmp; so does its audit trail.
fn run_as_nobody(policy: &Path, argv: &[&str]) -> Output {
    let tmp = policy.parent().expect("policy dir").join("tmp");
    if !tmp.exists() {
        std::fs::create_dir(&tmp).unwrap();
        std::os::unix::fs::chown(&tmp, Some(65534), Some(65534)).unwrap();
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(util::bin())
        .args(["run", "--json", "--policy"])
        .arg(policy)
        .arg("--")
        .args(argv)
        .env("TMPDIR", &tmp)
        .env("ENFORCECORE_AUDIT_LOG", tmp.join("audit.jsonl"))
        .env("HOME", &tmp) // the redaction key of a non-root user lives under it
        .env_remove("XDG_STATE_HOME")
        .stdin(Stdio::null());
    util::output(&mut c)
}

#[test]
fn without_root_landlock_seccomp_and_nnp_still_apply_and_named_users_fail_closed() {
    if !ready() {
        return;
    }
    // No identity named, no cgroup limits: runs as the caller, without a cgroup.
    let yaml = Knobs {
        limits: vec![("wall_time", "30s".into())],
        ..Knobs::default()
    }
    .yaml()
    .replace("  user: 65534\n  group: 65534\n", "");
    let d = Dir::new("nonroot");
    let policy = d.write("p.yaml", yaml);
    let out = run_as_nobody(&policy, &sh("cat /proc/self/status; cat /etc/shadow"));
    let s = util::stdout(&out);
    assert_eq!(status_field(&s, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    assert_eq!(status_field(&s, "Seccomp"), "2");
    assert_eq!(status_field(&s, "CapEff"), "0000000000000000");
    assert!(util::stderr(&out).contains("Permission denied"));
    let report: serde_json::Value =
        serde_json::from_str(util::stderr(&out).lines().last().expect("report")).unwrap();
    assert_eq!(report["enforcement"]["cgroup"]["version"], "none");
    assert_eq!(report["enforcement"]["caps_dropped"], false);
    assert!(!exists(&run_dir(&report)));
    // A policy that names another user cannot be honoured without root (naming
    // the caller's own uid is fine).
    let named = Knobs {
        limits: vec![("wall_time", "30s".into())],
        user: "daemon",
        ..Knobs::default()
    }
    .write();
    util::assert_code(
        &run_as_nobody(
            &d.write(
                "own.yaml",
                Knobs {
                    limits: vec![("wall_time", "30s".into())],
                    ..Knobs::default()
                }
                .yaml(),
            ),
            &["/bin/true"],
        ),
        0,
    );
    let out = run_as_nobody(&named.path, &["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("only root can switch users"),
        "{}",
        util::stderr(&out)
    );
    // cgroup limits need a cgroup this user cannot create: fail closed.
    let limited = Knobs::default()
        .yaml()
        .replace("  user: 65534\n  group: 65534\n", "");
    let policy = d.write("limited.yaml", limited);
    let out = run_as_nobody(&policy, &["/bin/true"]);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("cgroup"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn doctor_reports_what_the_kernel_offers() {
    if !util::require_root() {
        return;
    }
    let out = util::output(&mut util::enforcecore(["doctor", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&util::stdout(&out)).expect("doctor JSON");
    let abi = enforcecore::sandbox::probe::landlock_abi().ok();
    assert_eq!(r["landlock"]["abi"].as_u64().map(|a| a as u32), abi);
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
    let listed: Vec<&str> = r["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(listed, actions.split_whitespace().collect::<Vec<_>>());
    assert_eq!(r["root"], true);
    assert!(
        r["kernel_audit"]["enabled"].is_u64(),
        "{}",
        r["kernel_audit"]
    );
    assert!(r["cgroups"]["layout"].is_string(), "{}", r["cgroups"]);
    // Root holds CAP_LINUX_IMMUTABLE (the append-only trail).
    assert_eq!(r["append_only"]["capability"], true, "{}", r["append_only"]);
    util::assert_code(&out, if r["ok"] == true { 0 } else { 1 });
    let text = util::output(&mut util::enforcecore(["doctor"]));
    assert!(util::stdout(&text).contains("landlock:"));
}
