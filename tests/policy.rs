//! `enforcecore policy …` against the shipped policies and hostile inputs.
//!
//! Golden error messages live in `tests/fixtures/policy/invalid/NAME.stderr`
//! next to `NAME.yaml`; run with `ENFORCECORE_BLESS=1` to rewrite them after an
//! intended change, then review the diff.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Dir};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy")
}

/// Run to completion; a run that does not finish within a generous deadline is
/// a hang, which the loader must never do on any input.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enforcecore");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!("enforcecore hung: {cmd:?}\n{}", util::stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check(args: &[&Path]) -> Output {
    let mut c = util::enforcecore(["policy", "check"]);
    c.args(args);
    run(&mut c)
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read policies dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_policy_passes_check() {
    let mut files = Vec::new();
    yaml_files(&util::policies(), &mut files);
    assert!(
        files.len() >= 5,
        "expected base, strict and three examples: {files:?}"
    );
    for f in &files {
        let out = check(&[f]);
        util::assert_code(&out, 0);
        assert!(
            util::stdout(&out).starts_with("ok: "),
            "{}",
            util::stdout(&out)
        );
    }
    let strict = check(&[&util::policy("strict.yaml")]);
    assert!(util::stdout(&strict).contains("policy `strict`"));
}

#[test]
fn golden_error_messages() {
    let dir = fixtures().join("invalid");
    let bless = std::env::var_os("ENFORCECORE_BLESS").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "fixtures missing: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let rel = format!("invalid/{name}.yaml");
        let mut c = util::enforcecore(["policy", "check", rel.as_str()]);
        c.current_dir(fixtures());
        let out = run(&mut c);
        let got = util::stderr(&out);
        if util::code(&out) != 1 || !got.contains(&rel) || !got.contains("\nhint: ") {
            failures.push(format!("{rel}: exit {}, stderr:\n{got}", util::code(&out)));
            continue;
        }
        let golden = dir.join(format!("{name}.stderr"));
        if bless {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{rel}: message differs from {}\n{}",
                golden.display(),
                diff(&want, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failures (ENFORCECORE_BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A line diff readable in test output.
fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => out.push_str(&format!("    {a}\n")),
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("  - {a}\n"));
                }
                if let Some(b) = b {
                    out.push_str(&format!("  + {b}\n"));
                }
            }
        }
    }
    out
}

#[track_caller]
fn refused(out: &Output, file: &Path, needle: &str) {
    util::assert_code(out, 1);
    let err = util::stderr(out);
    assert!(
        err.contains(&file.display().to_string()),
        "message must name {}: {err}",
        file.display()
    );
    assert!(
        err.contains(needle),
        "message must mention `{needle}`: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hostile_files_are_refused_clearly() {
    let d = Dir::new("policy-hostile");
    let binary = d.write("binary.yaml", b"version: 1\nname: \x00\x01\x02\xff\n");
    refused(&check(&[&binary]), &binary, "binary");
    let latin1 = d.write("latin1.yaml", b"version: 1\nname: caf\xe9\n");
    let out = check(&[&latin1]);
    refused(&out, &latin1, "not valid UTF-8");
    assert!(
        util::stderr(&out).contains("latin1.yaml:2:10"),
        "{}",
        util::stderr(&out)
    );
    let big = d.write(
        "big.yaml",
        format!("version: 1\nname: big\n#{}\n", "x".repeat(2 << 20)),
    );
    refused(&check(&[&big]), &big, "larger than");
    let missing = d.join("missing.yaml");
    refused(&check(&[&missing]), &missing, "cannot read");
    refused(&check(&[d.path()]), d.path(), "not a regular file");
    let fifo = d.join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    refused(&check(&[&fifo]), &fifo, "not a regular file");
    let bom = d.write("bom.yaml", b"\xEF\xBB\xBFversion: 1\nname: bom\n");
    util::assert_code(&check(&[&bom]), 0);
}

#[test]
fn extends_cannot_escape_through_a_symlink() {
    let outside = Dir::new("policy-outside");
    outside.write("base.yaml", "version: 1\nname: outside\n");
    let d = Dir::new("policy-symlink");
    symlink(outside.join("base.yaml"), d.join("base.yaml")).expect("symlink");
    let child = d.write(
        "child.yaml",
        "version: 1\nname: child\nextends: base.yaml\n",
    );
    let out = check(&[&child]);
    refused(&out, &child, "outside the policy directory");
    assert!(
        util::stderr(&out).contains("child.yaml:3:10"),
        "{}",
        util::stderr(&out)
    );
    // A symlinked directory escaping the root is refused the same way.
    symlink(outside.path(), d.join("sub")).expect("symlink dir");
    let via_dir = d.write(
        "via-dir.yaml",
        "version: 1\nname: c\nextends: sub/base.yaml\n",
    );
    refused(
        &check(&[&via_dir]),
        &via_dir,
        "outside the policy directory",
    );
    // A symlink that stays inside is fine, and --root widens the allowed tree.
    let inside = d.write("real.yaml", "version: 1\nname: real\n");
    symlink(&inside, d.join("alias.yaml")).expect("symlink inside");
    let ok = d.write("ok.yaml", "version: 1\nname: ok\nextends: alias.yaml\n");
    util::assert_code(&check(&[&ok]), 0);
}

#[test]
fn deep_extends_chains_are_refused() {
    let d = Dir::new("policy-deep");
    d.write("p0.yaml", "version: 1\nname: p0\n");
    for i in 1..12 {
        d.write(
            format!("p{i}.yaml"),
            format!("version: 1\nname: p{i}\nextends: p{}.yaml\n", i - 1),
        );
    }
    refused(
        &check(&[&d.join("p11.yaml")]),
        &d.join("p11.yaml"),
        "deeper than",
    );
    util::assert_code(&check(&[&d.join("p5.yaml")]), 0);
}

#[test]
fn check_reports_each_file_and_fails_if_any_fails() {
    let good = util::policy("strict.yaml");
    let bad = fixtures().join("invalid/unknown-key.yaml");
    let out = check(&[&good, &bad]);
    util::assert_code(&out, 1);
    assert_eq!(
        util::stdout(&out).lines().count(),
        1,
        "{}",
        util::stdout(&out)
    );
    assert!(util::stderr(&out).contains("unknown key `filesytem`"));
}

#[test]
fn show_names_the_origin_of_every_rule() {
    let child = fixtures().join("valid/child.yaml");
    let mut c = util::enforcecore(["policy", "show", "--json"]);
    c.arg(&child);
    let out = run(&mut c);
    util::assert_code(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rules = v["sandbox"]["filesystem"]["rules"]
        .as_array()
        .expect("rules");
    let files: Vec<&str> = rules
        .iter()
        .map(|r| r["origin"]["file"].as_str().unwrap_or(""))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("parent.yaml")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.ends_with("child.yaml")), "{files:?}");
    assert_eq!(v["sandbox"]["limits"]["memory_bytes"]["value"], 128 << 20);
    assert_eq!(
        v["tools"]["env"]["sandbox"]["limits"]["memory_bytes"]["value"],
        128 << 20
    );

    let mut c = util::enforcecore(["policy", "show"]);
    c.arg(&child);
    let text = util::stdout(&run(&mut c));
    assert!(text.contains("limits.memory: 128MiB  # "), "{text}");
    assert!(text.contains("child.yaml:11:13"), "{text}");
}

#[test]
fn explain_describes_a_tool_in_plain_language() {
    let mut c = util::enforcecore(["policy", "explain", "--tool", "fetch"]);
    c.arg(util::policy("examples/web-fetch.yaml"));
    let out = run(&mut c);
    util::assert_code(&out, 0);
    let text = util::stdout(&out);
    for needle in [
        "/usr/bin/curl",
        "TCP connect to ports 443",
        "UDP refused",
        "May create, modify and delete",
        "Redaction: stdout and stderr",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    let mut c = util::enforcecore(["policy", "explain", "--tool", "nope"]);
    c.arg(util::policy("strict.yaml"));
    let out = run(&mut c);
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("no tools"),
        "{}",
        util::stderr(&out)
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    // stdout is a pipe whose reader is already gone (`| head` that has
    // finished): the write fails with EPIPE, which ends the output without a
    // panic or an error; stderr still tells about real failures.
    let strict = util::policy("strict.yaml");
    let cases: [&[&str]; 4] = [
        &["policy", "explain"],
        &["policy", "show"],
        &["policy", "check"],
        &["doctor"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut c = util::enforcecore(args);
        if args[0] == "policy" {
            c.arg(&strict);
        }
        let out = c
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("spawn enforcecore");
        let err = util::stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(
            out.status.code().is_some_and(|c| c == 0),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn an_output_that_cannot_be_written_is_an_error_naming_it() {
    // /dev/full refuses every write (ENOSPC): unlike a closed pipe, that is a
    // failure, said once, naming the stream.
    for args in [&["policy", "show"][..], &["policy", "explain"], &["doctor"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let mut c = util::enforcecore(args);
        if args[0] == "policy" {
            c.arg(util::policy("strict.yaml"));
        }
        let out = c
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("spawn enforcecore");
        util::assert_code(&out, 1);
        assert_eq!(
            util::stderr(&out),
            "enforcecore: error: writing to stdout: No space left on device (os error 28)\n",
            "{args:?}"
        );
    }
}
