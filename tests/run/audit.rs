//! Every run is recorded: run-started (redacted argv, what was enforced),
//! redaction receipts, run-exited, sealed by a signed checkpoint with a key; a
//! refused request is a policy denial; no trail, no run.

use super::*;
use crate::util::{self, Dir};

/// The trail's records as JSON values.
fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read trail")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record is JSON"))
        .collect()
}

fn kinds(recs: &[serde_json::Value]) -> Vec<&str> {
    recs.iter()
        .map(|r| r["kind"].as_str().unwrap_or("?"))
        .collect()
}

const SECRET: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";

#[test]
fn a_run_is_recorded_redacted_and_sealed() {
    if !ready() {
        return;
    }
    let dir = Dir::new("audit");
    let keys = dir.join("keys");
    util::assert_code(
        &util::output(util::enforcecore(["audit", "keygen", "--out"]).arg(&keys)),
        0,
    );
    let key = keys.join("audit-signing.key");
    let trail = dir.join("audit.jsonl");
    let p = Knobs {
        extra: "redaction:\n  streams: [stdout, stderr]\n  detectors: all\n".into(),
        ..Knobs::default()
    }
    .write();
    let script = format!("echo key {SECRET}; echo mail bob@example.com >&2; exit 3");
    let mut c = p.cmd(
        &[
            "--audit-log",
            trail.to_str().unwrap(),
            "--audit-key",
            key.to_str().unwrap(),
        ],
        &sh(&script),
    );
    let out = util::output(&mut c);
    util::assert_code(&out, 3);
    assert_eq!(util::stdout(&out), "key [REDACTED:STRIPE_KEY]\n");
    assert!(util::stderr(&out).contains("mail [REDACTED:EMAIL]"));

    let raw = std::fs::read_to_string(&trail).unwrap();
    assert!(!raw.contains(SECRET), "the secret reached the trail");
    assert!(
        !raw.contains("bob@example.com"),
        "the email reached the trail"
    );
    let recs = records(&trail);
    let k = kinds(&recs);
    let started = k
        .iter()
        .position(|k| *k == "run-started")
        .expect("run-started");
    let exited = k
        .iter()
        .position(|k| *k == "run-exited")
        .expect("run-exited");
    assert!(started < exited);
    assert_eq!(k.last(), Some(&"checkpoint"), "{k:?}");
    let s = &recs[started];
    assert_eq!(s["argv"][0], "/bin/sh");
    assert!(
        s["argv"][2]
            .as_str()
            .unwrap()
            .contains("[REDACTED:STRIPE_KEY]")
    );
    assert_eq!(s["enforcement"]["landlock"]["status"], "full");
    assert_eq!(recs[exited]["exit"]["code"], 3);
    let receipts: Vec<(String, String, u64)> = recs
        .iter()
        .filter(|r| r["kind"] == "redaction")
        .map(|r| {
            let x = &r["receipt"];
            (
                x["stream"].as_str().unwrap().to_string(),
                x["detector"].as_str().unwrap().to_string(),
                x["count"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [
        ("argv", "stripe_key"),
        ("argv", "email"),
        ("stdout", "stripe_key"),
        ("stderr", "email"),
    ] {
        assert!(
            receipts
                .iter()
                .any(|(s, d, n)| (s.as_str(), d.as_str()) == want && *n == 1),
            "{want:?} not in {receipts:?}"
        );
    }
    let pubkey = keys.join("audit-signing.key.pub");
    let v = util::output(
        util::enforcecore(["audit", "verify"])
            .arg(&trail)
            .arg("--key")
            .arg(&pubkey),
    );
    util::assert_code(&v, 0);
    // Appending without the key to this sealed trail is allowed, but said.
    let out = util::output(&mut p.cmd(&["--audit-log", trail.to_str().unwrap()], &["/bin/true"]));
    util::assert_code(&out, 0);
    assert!(
        util::stderr(&out).contains("sealed by signed checkpoints, but no signing key"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn a_refused_request_is_a_policy_denial_in_the_trail() {
    if !ready() {
        return;
    }
    let dir = Dir::new("audit-refused");
    let trail = dir.join("audit.jsonl");
    let p = Knobs {
        extra: "tools:\n  lister:\n    command: /bin/ls\n".into(),
        ..Knobs::default()
    }
    .write();
    let mut c = p.cmd(
        &["--audit-log", trail.to_str().unwrap(), "--tool", "lister"],
        &["/bin/cat", "/etc/hostname"],
    );
    let out = util::output(&mut c);
    util::assert_code(&out, 126);
    let recs = records(&trail);
    let d = recs
        .iter()
        .find(|r| r["kind"] == "denial")
        .unwrap_or_else(|| panic!("no denial in {:?}", kinds(&recs)));
    assert_eq!(d["denial"]["layer"], "policy");
    assert_eq!(d["tool"], "lister");
    assert!(!kinds(&recs).contains(&"run-started"));
    util::assert_code(
        &util::output(util::enforcecore(["audit", "verify"]).arg(&trail)),
        0,
    );
}

#[test]
fn a_run_that_never_started_its_tool_is_recorded() {
    if !ready() {
        return;
    }
    let dir = Dir::new("audit-failed");
    let trail = dir.join("audit.jsonl");
    let p = Knobs::default().write();
    let secret_arg = format!("--token={SECRET}");
    let mut c = p.cmd(
        &["--audit-log", trail.to_str().unwrap()],
        &["/usr/bin/no-such-tool-xyz", &secret_arg],
    );
    util::assert_code(&util::output(&mut c), 127);
    let recs = records(&trail);
    assert_eq!(kinds(&recs), ["policy-loaded", "run-failed"], "{recs:?}");
    let f = &recs[1];
    assert_eq!(f["code"], 127);
    assert!(
        f["error"].as_str().unwrap().contains("command not found"),
        "{f}"
    );
    assert_eq!(f["argv"][0], "/usr/bin/no-such-tool-xyz");
    assert!(!f.to_string().contains(SECRET), "the argv is redacted: {f}");
    assert_eq!(f["caller"]["via"], "cli");
    util::assert_code(
        &util::output(util::enforcecore(["audit", "verify"]).arg(&trail)),
        0,
    );
}

#[test]
fn no_trail_no_run() {
    if !ready() {
        return;
    }
    let dir = Dir::new("audit-none");
    let marker = dir.join("ran");
    // The tool user may create files in the directory; only the trail decides.
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let p = Knobs {
        write: vec![dir.path().display().to_string()],
        ..Knobs::default()
    }
    .write();
    // A directory where the trail file should be: the trail cannot be opened.
    let bad = dir.join("trail-is-a-dir");
    std::fs::create_dir(&bad).unwrap();
    let script = format!("touch {}", marker.display());
    let out = util::output(&mut p.cmd(&["--audit-log", bad.to_str().unwrap()], &sh(&script)));
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("audit"),
        "{}",
        util::stderr(&out)
    );
    assert!(!marker.exists(), "the tool ran without its audit trail");
    // The same run with a usable trail does run (so the test can fail).
    let good = dir.join("audit.jsonl");
    let out = util::output(&mut p.cmd(&["--audit-log", good.to_str().unwrap()], &sh(&script)));
    util::assert_code(&out, 0);
    assert!(marker.exists());
}

#[test]
fn a_sandbox_that_fails_in_the_child_ends_the_recorded_run_unrun() {
    if !ready() {
        return;
    }
    let dir = Dir::new("audit-setup");
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let marker = dir.join("ran");
    let trail = dir.join("audit.jsonl");
    let script = format!("touch {}", marker.display());
    // Above the kernel's nr_open: the child's prlimit fails with EPERM, after
    // run-started went to the trail while the child applied its sandbox.
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let run = |open_files: u64| {
        let p = Knobs {
            write: vec![dir.path().display().to_string()],
            limits: vec![("open_files", open_files.to_string())],
            ..Knobs::default()
        }
        .write();
        util::output(&mut p.cmd(&["--audit-log", trail.to_str().unwrap()], &sh(&script)))
    };
    let out = run(nr_open + 1);
    util::assert_code(&out, 125);
    assert!(
        util::stderr(&out).contains("resource limits"),
        "{}",
        util::stderr(&out)
    );
    assert!(!marker.exists(), "the tool ran although its sandbox failed");
    let recs = records(&trail);
    assert_eq!(
        kinds(&recs),
        ["policy-loaded", "run-started", "run-exited"],
        "{recs:?}"
    );
    assert_eq!(recs[2]["exit"]["cause"], "setup-failed");
    assert_eq!(recs[2]["exit"]["code"], serde_json::Value::Null);
    // Within the kernel's limit the same run does run (so the test can fail).
    util::assert_code(&run(1024), 0);
    assert!(marker.exists());
}
