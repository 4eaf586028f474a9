//! `enforcecore audit …` with the real binary: keys, every verification
//! fault by name, the responders' views, and writer processes that crash,
//! compete for the lock, and run out of space.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enforcecore::audit::RecordBody;
use enforcecore::report::{
    Caller, Denial, DenialLayer, EnforcementReport, ExitCause, ExitReport, RedactionReceipt,
};
use serde_json::Value;

use crate::util::{self, Dir, assert_code, enforcecore, output, stderr, stdout};

fn body_json(b: &RecordBody) -> String {
    serde_json::to_string(b).expect("serialize body")
}

fn denial(run: &str, tool: &str, object: &str, detail_len: usize) -> RecordBody {
    RecordBody::Denial {
        run: run.into(),
        tool: tool.into(),
        denial: Denial {
            layer: DenialLayer::LandlockFs,
            pid: Some(4242),
            object: object.into(),
            access: Some("fs.write_file".into()),
            detail: "d".repeat(detail_len),
            hint: "add the path to sandbox.filesystem.write".into(),
        },
    }
}

fn run_records(run: &str, tool: &str) -> Vec<RecordBody> {
    vec![
        RecordBody::RunStarted {
            run: run.into(),
            tool: tool.into(),
            policy: Some("strict".into()),
            pid: Some(77),
            argv: vec![tool.into(), "--flag".into()],
            caller: Caller {
                via: "cli".into(),
                uid: 1000,
                gid: 1000,
                pid: Some(1),
                agent: None,
            },
            enforcement: Box::new(EnforcementReport::default()),
        },
        denial(run, tool, "/etc/shadow", 0),
        RecordBody::Redaction {
            run: run.into(),
            tool: tool.into(),
            receipt: RedactionReceipt {
                stream: "stdout".into(),
                detector: "email".into(),
                count: 2,
                fingerprints: vec!["ab12".into()],
            },
        },
        RecordBody::RunExited {
            run: run.into(),
            tool: tool.into(),
            exit: ExitReport {
                code: Some(0),
                signal: None,
                cause: ExitCause::Exited,
                duration_ms: 12,
                cpu_ms: Some(3),
                peak_memory_bytes: Some(1 << 20),
                output_bytes: 10,
                denials: 1,
            },
        },
    ]
}

struct Keys {
    secret: PathBuf,
    public: PathBuf,
}

fn keygen(dir: &Dir, name: &str) -> Keys {
    let out = output(enforcecore(["audit", "keygen", "--out"]).arg(dir.join(name)));
    assert_code(&out, 0);
    Keys {
        secret: dir.join(name).join("audit-signing.key"),
        public: dir.join(name).join("audit-signing.key.pub"),
    }
}

/// `audit append FILE ARGS… < bodies`.
fn append_cmd(trail: &Path, bodies: &[RecordBody], args: &[&str]) -> Command {
    let mut c = enforcecore(["audit", "append"]);
    c.arg(trail).args(args);
    let input: String = bodies.iter().map(|b| body_json(b) + "\n").collect();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = trail.parent().expect("parent");
    let body_file = dir.join(format!("bodies-{n}"));
    std::fs::write(&body_file, input).expect("write bodies");
    c.stdin(std::fs::File::open(&body_file).expect("open bodies"));
    c
}

fn append(trail: &Path, bodies: &[RecordBody], args: &[&str]) {
    assert_code(&output(&mut append_cmd(trail, bodies, args)), 0);
}

fn verify_json(files: &[&Path], key: Option<&Path>) -> (i32, Value) {
    let mut c = enforcecore(["audit", "verify", "--json"]);
    c.args(files);
    if let Some(k) = key {
        c.arg("--key").arg(k);
    }
    let out = output(&mut c);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}\n{}{}", stdout(&out), stderr(&out)));
    (util::code(&out), v)
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .expect("read trail")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(p: &Path, ls: &[String]) {
    std::fs::write(p, ls.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write");
}

#[test]
fn keygen_makes_a_private_secret_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("audit-keygen");
    let k = keygen(&dir, "keys");
    let mode = std::fs::metadata(&k.secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&k.secret)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        std::fs::read_to_string(&k.public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let again = output(enforcecore(["audit", "keygen", "--out"]).arg(dir.join("keys")));
    assert_code(&again, 1);
    assert!(
        stderr(&again).contains("never overwrites"),
        "{}",
        stderr(&again)
    );
    // A secret key others can read is refused.
    std::fs::set_permissions(&k.secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = output(&mut append_cmd(
        &dir.join("t.jsonl"),
        &[denial("r", "t", "/x", 0)],
        &["--key", k.secret.to_str().unwrap()],
    ));
    assert_code(&out, 1);
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn verify_names_every_fault_and_the_first_bad_record() {
    let dir = Dir::new("audit-faults");
    let k = keygen(&dir, "keys");
    let other = keygen(&dir, "other");
    let trail = dir.join("audit.jsonl");
    let bodies: Vec<RecordBody> = run_records("r1", "curl");
    append(&trail, &bodies, &["--key", k.secret.to_str().unwrap()]);
    let good = lines(&trail);
    assert_eq!(
        good.len(),
        6,
        "open checkpoint, 4 records, close checkpoint"
    );
    let (code, v) = verify_json(&[&trail], Some(&k.public));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 6);

    let case = |name: &str, ls: Vec<String>, raw: Option<Vec<u8>>, key: &Path| -> Value {
        let p = dir.join(format!("{name}.jsonl"));
        match raw {
            Some(b) => std::fs::write(&p, b).unwrap(),
            None => write_lines(&p, &ls),
        }
        let (code, v) = verify_json(&[&p], Some(key));
        assert_eq!(code, 1, "{name}: {v}");
        assert_eq!(v["ok"], false);
        v["fault"].clone()
    };
    let check = |f: Value, kind: &str, line: u64| {
        assert_eq!(f["kind"], kind, "{f}");
        assert_eq!(f["line"], line, "{f}");
    };

    let mut edited = good.clone();
    edited[2] = edited[2].replace("/etc/shadow", "/etc/passwd");
    check(case("edit", edited, None, &k.public), "hash-mismatch", 3);

    let mut relinked = good.clone();
    {
        // A record with a correct hash but the wrong prev.
        let p = enforcecore::audit::line::parse(relinked[3].as_bytes()).unwrap();
        let mut out = Vec::new();
        enforcecore::audit::line::encode(
            &mut out,
            p.seq,
            p.ts,
            &enforcecore::audit::RecordHash::GENESIS,
            p.members,
        );
        relinked[3] = String::from_utf8(out).unwrap().trim_end().to_string();
    }
    check(case("link", relinked, None, &k.public), "broken-link", 4);

    let mut deleted = good.clone();
    deleted.remove(2);
    check(case("delete", deleted, None, &k.public), "seq-gap", 3);

    let mut dup = good.clone();
    dup.insert(3, good[2].clone());
    check(case("dup", dup, None, &k.public), "duplicate", 4);

    check(
        case("otherkey", good.clone(), None, &other.public),
        "bad-signature",
        1,
    );

    let cut = good[..5].to_vec();
    check(case("truncated", cut, None, &k.public), "unsealed-tail", 2);

    let all = std::fs::read(&trail).unwrap();
    check(
        case(
            "torn",
            vec![],
            Some(all[..all.len() - 10].to_vec()),
            &k.public,
        ),
        "torn-line",
        6,
    );

    let mut garbage = good.clone();
    garbage.insert(1, "{\"not\":\"a record\"}".into());
    check(
        case("garbage", garbage, None, &k.public),
        "malformed-json",
        2,
    );

    // Human output names file, line and seq.
    let p = dir.join("edit.jsonl");
    let out = output(enforcecore(["audit", "verify"]).arg(&p));
    assert_code(&out, 1);
    let first = stdout(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(&format!("{}:3: seq 3: hash mismatch", p.display())),
        "{first}"
    );
}

/// `enforcecore audit ARGS…`, failing if it hangs.
fn audit_within(args: &[&std::ffi::OsStr]) -> std::process::Output {
    util::output_within(enforcecore(["audit"]).args(args), Duration::from_secs(20))
}

fn mkfifo(p: &Path) {
    let made = Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(made.success());
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(p, private).unwrap();
}

#[test]
fn keys_and_trails_that_are_not_regular_files_are_refused_without_waiting() {
    let dir = Dir::new("audit-not-regular");
    let trail = dir.join("audit.jsonl");
    append(&trail, &run_records("r1", "curl"), &[]);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let keys = keygen(&dir, "keys");
    let refused = |out: &std::process::Output, path: &Path, kind: &str| {
        assert_code(out, 1);
        let err = stderr(out);
        assert!(
            err.contains(&path.display().to_string()) && err.contains(kind),
            "{err}"
        );
        assert!(!err.contains("chmod"), "{err}");
    };
    // No writer ever opens the FIFO: a blocking open would never return.
    let (t, f, z) = (trail.as_os_str(), fifo.as_os_str(), "/dev/zero".as_ref());
    refused(
        &audit_within(&["verify".as_ref(), "--key".as_ref(), f, t]),
        &fifo,
        "FIFO",
    );
    refused(&audit_within(&["verify".as_ref(), f]), &fifo, "FIFO");
    refused(&audit_within(&["show".as_ref(), f]), &fifo, "FIFO");
    refused(&audit_within(&["tail".as_ref(), f]), &fifo, "FIFO");
    refused(
        &audit_within(&["why".as_ref(), f, "1".as_ref()]),
        &fifo,
        "FIFO",
    );
    refused(
        &audit_within(&["tail".as_ref(), "-n".as_ref(), "0".as_ref(), z]),
        Path::new("/dev/zero"),
        "character device",
    );
    // A device is refused by its type, not read to the end.
    refused(
        &audit_within(&["verify".as_ref(), "--key".as_ref(), z, t]),
        Path::new("/dev/zero"),
        "character device",
    );
    let out = util::output_within(
        &mut append_cmd(
            &trail,
            &run_records("r2", "git"),
            &["--key", fifo.to_str().unwrap()],
        ),
        Duration::from_secs(20),
    );
    refused(&out, &fifo, "FIFO");
    // An oversized key file is refused after a bounded read.
    let big = dir.write("big.pub", vec![b'A'; 1 << 20]);
    let out = audit_within(&["verify".as_ref(), "--key".as_ref(), big.as_os_str(), t]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    // The public key where the secret key belongs: say so, not `chmod 600`.
    let out = util::output_within(
        &mut append_cmd(
            &trail,
            &run_records("r2", "git"),
            &["--key", keys.public.to_str().unwrap()],
        ),
        Duration::from_secs(20),
    );
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("is a public key") && !err.contains("chmod"),
        "{err}"
    );
}

#[test]
fn show_filters_and_never_prints_control_characters() {
    let dir = Dir::new("audit-show");
    let trail = dir.join("audit.jsonl");
    let mut bodies = run_records("r1", "curl");
    bodies.extend(run_records("r2", "git"));
    bodies.push(denial("r2", "git", "/tmp/\u{1b}[2J\u{7}evil", 0));
    append(&trail, &bodies, &[]);
    let show = |args: &[&str]| {
        let out = output(enforcecore(["audit", "show"]).arg(&trail).args(args));
        assert_code(&out, 0);
        stdout(&out)
    };
    let table = show(&[]);
    assert!(table.starts_with("TIME (UTC)"));
    assert_eq!(table.lines().count(), 1 + 9);
    assert!(table.contains("!! DENIAL"));
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table}"
    );
    assert!(table.contains("\\u{1b}[2J"), "{table}");
    assert_eq!(show(&["--run", "r1"]).lines().count(), 1 + 4);
    assert_eq!(show(&["--tool", "git", "--denials"]).lines().count(), 1 + 2);
    assert_eq!(
        show(&["--kind", "run-exited", "--kind", "run-started"])
            .lines()
            .count(),
        1 + 4
    );
    assert_eq!(show(&["--since", "2099-01-01"]).lines().count(), 0);
    assert_eq!(
        show(&["--since", "1h", "--until", "2099-01-01T00:00:00Z"])
            .lines()
            .count(),
        10
    );
    // --json prints the stored lines themselves.
    let json = show(&["--json", "--run", "r2", "--kind", "denial"]);
    let stored = lines(&trail);
    for l in json.lines() {
        assert!(stored.iter().any(|s| s == l));
    }
    assert_eq!(json.lines().count(), 2);
    let typo = output(enforcecore(["audit", "show", "--kind", "denials"]).arg(&trail));
    assert_code(&typo, 1);
    assert!(
        stderr(&typo).contains("unknown record kind `denials`"),
        "{}",
        stderr(&typo)
    );
    let bad = output(enforcecore(["audit", "show", "--since", "soonish"]).arg(&trail));
    assert_code(&bad, 1);
    assert!(stderr(&bad).contains("RFC 3339"), "{}", stderr(&bad));
}

#[test]
fn tail_n_counts_the_records_it_shows() {
    let dir = Dir::new("audit-tail-n");
    let trail = dir.join("audit.jsonl");
    let mut bodies = run_records("r1", "curl");
    bodies.extend(run_records("r2", "git"));
    bodies.extend(run_records("r3", "git"));
    append(&trail, &bodies, &[]);
    let stored = lines(&trail);
    let tail = |args: &[&str]| -> Vec<String> {
        let out = output(
            enforcecore(["audit", "tail", "--json"])
                .args(args)
                .arg(&trail),
        );
        assert_code(&out, 0);
        stdout(&out).lines().map(str::to_owned).collect()
    };
    assert_eq!(tail(&["-n", "0"]), Vec::<String>::new());
    assert_eq!(tail(&["-n", "0", "--denials"]), Vec::<String>::new());
    assert_eq!(tail(&["-n", "1"]), stored[stored.len() - 1..]);
    assert_eq!(tail(&["-n", "3"]), stored[stored.len() - 3..]);
    // With filters, the last N records that pass them.
    let denials: Vec<String> = stored
        .iter()
        .filter(|l| l.contains(r#""kind":"denial""#))
        .cloned()
        .collect();
    assert_eq!(denials.len(), 3);
    assert_eq!(tail(&["-n", "2", "--denials"]), denials[1..]);
    assert_eq!(tail(&["-n", "9", "--denials"]), denials);
    let r1: Vec<String> = stored
        .iter()
        .filter(|l| l.contains(r#""run":"r1""#))
        .cloned()
        .collect();
    assert_eq!(tail(&["-n", "2", "--run", "r1"]), r1[r1.len() - 2..]);
    assert_eq!(
        tail(&["-n", "1", "--tool", "curl", "--kind", "run-started"]),
        r1[..1]
    );
}

/// Read `tail -f` output until `done` says stop or the deadline passes.
fn read_until(child: &mut Child, deadline: Duration, mut done: impl FnMut(&str) -> bool) {
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            if tx.send(l.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    while let Some(left) = deadline.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(l) if done(&l) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("tail -f did not show what was expected in time");
}

#[test]
fn tail_follows_a_live_trail_across_rotation() {
    let dir = Dir::new("audit-tail");
    let k = keygen(&dir, "keys");
    let trail = dir.join("audit.jsonl");
    append(
        &trail,
        &[denial("r0", "t", "/before", 0)],
        &["--key", k.secret.to_str().unwrap()],
    );
    let mut tail = enforcecore(["audit", "tail", "-f", "--json", "-n", "1"])
        .arg(&trail)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let body = denial("r1", "t", "/during", 300);
    let mut writer = append_cmd(
        &trail,
        &[body],
        &[
            "--repeat",
            "60",
            "--rotate-bytes",
            "4000",
            "--key",
            k.secret.to_str().unwrap(),
        ],
    )
    .spawn()
    .expect("spawn writer");
    let mut seqs = Vec::new();
    let mut seen_close = false;
    read_until(&mut tail, Duration::from_secs(60), |l| {
        let v: Value = serde_json::from_str(l).expect("json line");
        seqs.push(v["seq"].as_u64().unwrap());
        seen_close |= v["reason"] == "close";
        seen_close
    });
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(writer.wait().unwrap().success());
    // Every record from the one shown first to the final seal, once each, in order.
    let expected: Vec<u64> = (seqs[0]..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected);
    let files = trail_files(&trail);
    assert!(files.len() >= 4, "rotated {} times", files.len() - 1);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, v) = verify_json(&refs, Some(&k.public));
    assert_eq!(code, 0, "{v}");
}

/// Whether the only fault is a torn last line.
/// Archives (`FILE.<12 digits>`, oldest first), then the active file.
fn trail_files(trail: &Path) -> Vec<PathBuf> {
    let name = trail.file_name().unwrap().to_string_lossy().to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir(trail.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.strip_prefix(&format!("{name}."))
                .is_some_and(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    files.sort();
    files.push(trail.to_path_buf());
    files
}

/// Whether the trail (all its files) is intact; otherwise the only fault
/// allowed is a torn last line of the active file.
fn intact_or_torn(trail: &Path) -> bool {
    let files = trail_files(trail);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, v) = verify_json(&refs, None);
    if code == 0 {
        return true;
    }
    let torn = v["fault"]["kind"] == "torn-line";
    let in_active = v["fault"]["file"].as_str() == trail.to_str();
    let last = v["fault"]["line"].as_u64()
        == Some(std::fs::read(trail).unwrap().split(|&b| b == b'\n').count() as u64);
    assert!(torn && in_active && last, "after kill -9: {v}");
    false
}

#[test]
fn kill_9_of_writers_mid_stream_only_ever_leaves_a_torn_tail() {
    let dir = Dir::new("audit-crash");
    let k = keygen(&dir, "keys");
    let trail = dir.join("audit.jsonl");
    let key = k.secret.to_str().unwrap();
    // Large records make each batch a write of hundreds of kilobytes, so that
    // some kills land in the middle of one; rotation every few records puts
    // kills between its steps too.
    let body = denial("r", "t", "/big", 30_000);
    let mut torn = 0;
    for i in 0..30u64 {
        let mut w = append_cmd(
            &trail,
            std::slice::from_ref(&body),
            &[
                "--key",
                key,
                "--threads",
                "8",
                "--repeat",
                "0",
                "--checkpoint-every",
                "20",
                "--rotate-bytes",
                "300000",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn writer");
        std::thread::sleep(Duration::from_millis(80 + (i * 71) % 300));
        w.kill().expect("SIGKILL");
        let status = w.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the writer ended before it was killed: {status:?}"
        );
        torn += usize::from(!intact_or_torn(&trail));
    }
    // A last, clean writer recovers whatever tail is left and seals the trail.
    append(&trail, &[denial("r", "t", "/end", 0)], &["--key", key]);
    let files = trail_files(&trail);
    assert!(files.len() > 2, "the writers rotated");
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, v) = verify_json(&refs, Some(&k.public));
    assert_eq!(code, 0, "{v}");
    let recovered = v["recovered"].as_array().map_or(0, Vec::len);
    // Every torn tail is recorded; one that a writer was killed while
    // recovering is seen twice but recorded once.
    assert_eq!(
        recovered == 0,
        torn == 0,
        "torn {torn}, recovered {recovered}"
    );
    assert!(recovered <= torn, "torn {torn}, recovered {recovered}");
    eprintln!(
        "kill -9 x30: {} records, {torn} torn tails seen, {recovered} recovered",
        v["records"]
    );
}

#[test]
fn a_torn_tail_is_recovered_by_the_next_writer_process() {
    let dir = Dir::new("audit-torn");
    let trail = dir.join("audit.jsonl");
    append(&trail, &[denial("r", "t", "/a", 0)], &[]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&trail)
        .unwrap()
        .write_all(b"{\"seq\":2,\"ts\":\"20")
        .unwrap();
    let (code, v) = verify_json(&[&trail], None);
    assert_eq!((code, v["fault"]["kind"].as_str()), (1, Some("torn-line")));
    append(&trail, &[denial("r", "t", "/b", 0)], &[]);
    let (code, v) = verify_json(&[&trail], None);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["recovered"].as_array().unwrap().len(), 1);
    let shown = output(enforcecore(["audit", "show", "--kind", "recovered"]).arg(&trail));
    assert!(
        stdout(&shown).contains("17 bytes kept at audit.jsonl.torn-"),
        "{}",
        stdout(&shown)
    );
}

#[test]
fn concurrent_writer_processes_make_one_chain() {
    let dir = Dir::new("audit-concurrent");
    let k = keygen(&dir, "keys");
    let trail = dir.join("audit.jsonl");
    let key = k.secret.to_str().unwrap();
    let writers: Vec<Child> = (0..6)
        .map(|i| {
            append_cmd(
                &trail,
                &run_records(&format!("run-{i}"), "tool"),
                &["--key", key, "--threads", "3", "--repeat", "10"],
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn writer")
        })
        .collect();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (code, v) = verify_json(&[&trail], Some(&k.public));
    assert_eq!(code, 0, "{v}");
    let denials = output(enforcecore(["audit", "show", "--json", "--kind", "denial"]).arg(&trail));
    assert_eq!(stdout(&denials).lines().count(), 6 * 3 * 10);
}

#[test]
fn a_second_writer_waits_for_the_lock_then_fails_clearly() {
    let dir = Dir::new("audit-lock");
    let trail = dir.join("audit.jsonl");
    append(&trail, &[denial("r", "t", "/a", 0)], &[]);
    let held = std::fs::File::open(&trail).unwrap();
    held.lock().unwrap();
    let out = output(&mut append_cmd(
        &trail,
        &[denial("r", "t", "/b", 0)],
        &["--lock-timeout", "1"],
    ));
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("is locked by another writer and was not released within 1s"),
        "{}",
        stderr(&out)
    );
    // Released while a writer waits: it proceeds.
    let waiting = append_cmd(
        &trail,
        &[denial("r", "t", "/c", 0)],
        &["--lock-timeout", "20"],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    held.unlock().unwrap();
    assert!(waiting.wait_with_output().unwrap().status.success());
    let (code, v) = verify_json(&[&trail], None);
    assert_eq!((code, v["records"].as_u64()), (0, Some(2)));
}

#[test]
fn running_out_of_space_is_an_error_and_leaves_a_valid_trail() {
    if !util::require("mount-namespace", probe_mount_namespace) {
        return;
    }
    let dir = Dir::new("audit-enospc");
    let script = format!(
        "set -e; mount -t tmpfs -o size=64k tmpfs {d}; \
         set +e; {b} audit append {d}/t.jsonl --repeat 0 < {d}/../body; echo rc=$?; \
         {b} audit verify {d}/t.jsonl; echo verify=$?",
        d = dir.join("fs").display(),
        b = util::bin().display()
    );
    std::fs::create_dir(dir.join("fs")).unwrap();
    std::fs::write(
        dir.path().join("body"),
        body_json(&denial("r", "t", "/x", 3000)) + "\n",
    )
    .unwrap();
    let out = output(Command::new("unshare").args([
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(so.contains("rc=1"), "{so}{se}");
    assert!(se.contains("No space left on device"), "{se}");
    assert!(so.contains("verify=0") && so.contains("intact"), "{so}{se}");
}

fn probe_mount_namespace() -> Result<(), String> {
    util::probe_root()?;
    let ok = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .map_err(|e| format!("cannot run unshare: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err("unshare -m failed".into())
    }
}

/// Root on a filesystem with the append-only attribute (`chattr`).
fn probe_append_only(dir: &Dir) -> Result<(), String> {
    util::probe_root()?;
    let f = dir.write("probe", "");
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&f)
            .output()
            .map_err(|e| format!("running chattr: {e}"))
            .and_then(|o| match o.status.success() {
                true => Ok(()),
                false => Err(format!(
                    "chattr {flag}: {}",
                    String::from_utf8_lossy(&o.stderr)
                )),
            })
    };
    chattr("+a")?;
    chattr("-a")?;
    std::fs::remove_file(&f).map_err(|e| e.to_string())
}

/// The `a` attribute as `lsattr` shows it.
fn is_append_only(p: &Path) -> bool {
    let out = output(Command::new("lsattr").arg("-d").arg(p));
    assert_code(&out, 0);
    let attrs = stdout(&out);
    attrs.split_whitespace().next().unwrap_or("").contains('a')
}

#[test]
fn an_append_only_trail_can_only_grow_yet_recovers_and_rotates() {
    let dir = Dir::new("audit-append-only");
    if !util::require("append-only", || probe_append_only(&dir)) {
        return;
    }
    let trail = dir.join("audit.jsonl");
    let bodies = run_records("r1", "curl");
    append(&trail, &bodies, &["--append-only"]);
    assert!(is_append_only(&trail), "the trail did not get chattr +a");
    // Nobody can rewrite, truncate, rename or remove it; appending works.
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(&trail)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    let appender = std::fs::OpenOptions::new()
        .append(true)
        .open(&trail)
        .unwrap();
    assert_eq!(
        appender.set_len(10).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    let moved = dir.join("moved.jsonl");
    assert!(std::fs::rename(&trail, &moved).is_err());
    assert!(std::fs::remove_file(&trail).is_err());
    // A crash leaves a torn line (appending is all it takes); the next writer
    // recovers it — cutting the tail needs the attribute lifted and put back.
    (&appender).write_all(b"{\"seq\":9,\"ts\":\"20").unwrap();
    drop(appender);
    append(&trail, &bodies, &["--append-only"]);
    let (code, v) = verify_json(&[&trail], None);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["recovered"].as_array().unwrap().len(), 1, "{v}");
    assert!(is_append_only(&trail));
    // Rotation links and replaces the active file: both files end append-only.
    append(&trail, &bodies, &["--append-only", "--rotate-bytes", "1"]);
    let files = trail_files(&trail);
    assert!(files.len() >= 2, "no rotation: {files:?}");
    for f in &files {
        assert!(is_append_only(f), "{} is not append-only", f.display());
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, v) = verify_json(&refs, None);
    assert_eq!(code, 0, "{v}");
    // Without the option a writer still works on an append-only trail.
    append(&trail, &bodies, &[]);
    assert_eq!(verify_json(&[&trail], None).0, 0);
    assert!(is_append_only(&trail));
}
