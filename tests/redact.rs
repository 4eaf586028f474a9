//! `enforcecore redact`: the real binary as a stdin → stdout filter.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{self, Dir};

/// Run `enforcecore redact ARGS` with `input` on stdin.
fn redact(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut cmd = util::enforcecore(["redact"].iter().chain(args));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn enforcecore redact");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .expect("wait for enforcecore redact");
    writer.join().expect("writer thread");
    out
}

/// A private key file in `dir`.
fn key(dir: &Dir) -> String {
    let path = dir.write("redaction.key", [42u8; 32]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

const SECRETS: &str = "\
user john.doe@example.com called +44 20 7946 0958 from 192.168.1.23
ssn 123-45-6789 card 4111 1111 1111 1111 iban GB82 WEST 1234 5698 7654 32
aws AKIAIOSFODNN7EXAMPLE aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
gh 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 db postgres://app:s3cretPw@db:5432/app
jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U
-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA75n1K9gK0f1a+/Zz
-----END RSA PRIVATE KEY-----
password=hunter2x
";

const REDACTED: &str = "\
user [REDACTED:EMAIL] called [REDACTED:PHONE] from [REDACTED:IPV4]
ssn [REDACTED:US_SSN] card [REDACTED:CREDIT_CARD] iban [REDACTED:IBAN]
aws [REDACTED:AWS_ACCESS_KEY] aws_secret_access_key=[REDACTED:AWS_SECRET_KEY]
gh [REDACTED:GITHUB_TOKEN] db postgres://app:[REDACTED:URL_PASSWORD]@db:5432/app
jwt [REDACTED:JWT]
[REDACTED:PEM_PRIVATE_KEY]
password=[REDACTED:GENERIC_SECRET]
";

const ORDINARY: &str = "\
2024-05-14T09:21:33.482Z INFO  [worker-3] request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d status=200 duration_ms=37
{\"ts\":\"2024-05-05T12:41:03.074Z\",\"level\":\"debug\",\"trace_id\":\"b1612dd272d1371c17149d439536b321\",\"ttl\":386}
commit 5404e4fb440034d6608697a8d41bed440e50454f v1.27.3 total=$8,653.38 listening on 0.0.0.0:8443
";

#[test]
fn without_a_policy_every_builtin_detector_uses_placeholders() {
    let out = redact(&[], SECRETS.as_bytes());
    util::assert_code(&out, 0);
    assert_eq!(util::stdout(&out), REDACTED);
    assert_eq!(util::stderr(&out), "");
}

#[test]
fn ordinary_log_lines_come_out_byte_identical() {
    let out = redact(&[], ORDINARY.as_bytes());
    util::assert_code(&out, 0);
    assert_eq!(out.stdout, ORDINARY.as_bytes());
}

#[test]
fn binary_input_passes_through_and_secrets_inside_it_are_caught() {
    let mut input: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x80)
        .collect();
    let plain = redact(&[], &input);
    util::assert_code(&plain, 0);
    assert_eq!(
        plain.stdout, input,
        "binary without secrets must pass unchanged"
    );
    input.splice(30_000..30_000, b"\0AKIAIOSFODNN7EXAMPLE\0".iter().copied());
    let out = redact(&[], &input);
    util::assert_code(&out, 0);
    assert!(!out.stdout.windows(20).any(|w| w == b"AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(
        out.stdout.len(),
        input.len() - 20 + "[REDACTED:AWS_ACCESS_KEY]".len()
    );
}

#[test]
fn output_does_not_depend_on_how_the_pipe_delivers_the_input() {
    let whole = redact(&[], SECRETS.as_bytes());
    // Feed the same bytes in small, irregular writes with pauses, so the
    // filter sees many short reads that split values.
    let mut child = spawn_redact();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = SECRETS.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        for (i, piece) in bytes.chunks(7).enumerate() {
            stdin.write_all(piece).unwrap();
            stdin.flush().unwrap();
            if i % 5 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(String::from_utf8(got).unwrap(), util::stdout(&whole));
}

#[test]
fn a_policy_chooses_detectors_strategy_custom_patterns_and_key() {
    let dir = Dir::new("redact-policy");
    let key = key(&dir);
    let policy = dir.write(
        "mask.yaml",
        "version: 1\nname: mask\nredaction:\n  detectors: [email, credit_card]\n  strategy: mask\n  custom:\n    - name: EMPLOYEE_ID\n      pattern: \"\\\\bEMP-[0-9]{6}\\\\b\"\n",
    );
    let input = b"a@example.com EMP-123456 4111111111111111 10.1.2.3\n";
    let out = redact(&["--policy", policy.to_str().unwrap()], input);
    util::assert_code(&out, 0);
    assert_eq!(
        util::stdout(&out),
        "************* ********** **************** 10.1.2.3\n"
    );

    let policy = dir.write(
        "hash.yaml",
        format!("version: 1\nname: hash\nredaction:\n  strategy: hash\n  key_file: {key}\n"),
    );
    let out = redact(
        &["--policy", policy.to_str().unwrap(), "--json"],
        b"to a@example.com and A@EXAMPLE.COM\n",
    );
    util::assert_code(&out, 0);
    let receipts: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("JSON receipts on stderr");
    let fp = receipts[0]["fingerprints"][0].as_str().unwrap().to_string();
    assert_eq!(receipts[0]["detector"], "email");
    assert_eq!(receipts[0]["count"], 2);
    assert_eq!(
        util::stdout(&out),
        format!("to [EMAIL:{fp}] and [EMAIL:{fp}]\n")
    );
    assert!(
        !util::stderr(&out).contains("example"),
        "receipts must not carry values"
    );

    let policy = dir.write(
        "remove.yaml",
        "version: 1\nname: remove\nredaction:\n  strategy: remove\n",
    );
    let out = redact(
        &["--policy", policy.to_str().unwrap()],
        b"[a@example.com]\n",
    );
    assert_eq!(util::stdout(&out), "[]\n");
}

#[test]
fn stats_and_json_report_counts_never_values() {
    let dir = Dir::new("redact-stats");
    let key = key(&dir);
    let out = redact(&["--stats"], b"a@example.com b@example.com 10.9.8.7\n");
    util::assert_code(&out, 0);
    let err = util::stderr(&out);
    assert!(err.contains("email") && err.contains(" 2"), "{err}");
    assert!(err.contains("ipv4"), "{err}");
    let out = redact(
        &["--json", "--key", &key],
        b"a@example.com b@example.com a@example.com\n",
    );
    let receipts: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(receipts[0]["count"], 3);
    assert_eq!(receipts[0]["fingerprints"].as_array().unwrap().len(), 2);
    let nothing = redact(&["--stats"], b"nothing here\n");
    assert_eq!(util::stderr(&nothing), "redact: nothing replaced\n");
}

#[test]
fn bad_policies_and_keys_are_clear_errors() {
    let dir = Dir::new("redact-errors");
    let policy = dir.write(
        "bad.yaml",
        "version: 1\nname: bad\nredaction:\n  strategy: shred\n",
    );
    let out = redact(&["--policy", policy.to_str().unwrap()], b"x\n");
    util::assert_code(&out, 1);
    let err = util::stderr(&out);
    assert!(
        err.contains("bad.yaml:4:") && err.contains("shred"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing may pass unredacted");

    let loose = dir.write("loose.key", [1u8; 32]);
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = redact(&["--json", "--key", loose.to_str().unwrap()], b"x\n");
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("chmod 600"),
        "{}",
        util::stderr(&out)
    );
    assert!(out.stdout.is_empty());

    let missing = dir.join("missing.yaml");
    let out = redact(&["--policy", missing.to_str().unwrap()], b"x\n");
    util::assert_code(&out, 1);
}

/// `enforcecore redact ARGS` with nothing on stdin, failing if it hangs.
fn redact_within(args: &[&str]) -> std::process::Output {
    util::output_within(
        &mut util::enforcecore(["redact"].iter().chain(args)),
        Duration::from_secs(20),
    )
}

#[test]
fn a_key_that_is_not_a_regular_file_is_refused_without_waiting() {
    let dir = Dir::new("redact-key-type");
    let fifo = dir.join("fifo.key");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fifo_s = fifo.to_str().unwrap();
    // No writer ever opens the FIFO: a blocking open would never return.
    let out = redact_within(&["--key", fifo_s]);
    util::assert_code(&out, 1);
    let err = util::stderr(&out);
    assert!(err.contains(fifo_s) && err.contains("FIFO"), "{err}");
    assert!(err.contains("--key"), "{err}");
    assert!(!err.contains("redaction.key_file"), "{err}");
    assert!(!err.contains("chmod"), "{err}");
    assert!(out.stdout.is_empty());

    // The same through a policy, which is then what the error names.
    let policy = dir.write(
        "p.yaml",
        format!("version: 1\nname: p\nredaction:\n  key_file: {fifo_s}\n"),
    );
    let out = redact_within(&["--policy", policy.to_str().unwrap()]);
    util::assert_code(&out, 1);
    let err = util::stderr(&out);
    assert!(
        err.contains("FIFO") && err.contains("redaction.key_file"),
        "{err}"
    );

    // A device is refused by its type, not read.
    let out = redact_within(&["--key", "/dev/zero"]);
    util::assert_code(&out, 1);
    let err = util::stderr(&out);
    assert!(err.contains("character device"), "{err}");

    // A symlink to a good key is refused: the docs say so.
    let key = key(&dir);
    let link = dir.join("link.key");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let out = redact_within(&["--key", link.to_str().unwrap()]);
    util::assert_code(&out, 1);
    assert!(
        util::stderr(&out).contains("symbolic link"),
        "{}",
        util::stderr(&out)
    );
    util::assert_code(&redact_within(&["--key", &key]), 0);
}

#[test]
fn a_closed_stdout_ends_the_filter_quietly() {
    let mut child = Command::new(util::bin())
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"ordinary line of text with nothing secret in it\n".repeat(2000);
        for _ in 0..50 {
            if stdin.write_all(&line).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_thread_and_two_threads_give_the_same_output_and_receipts() {
    let dir = Dir::new("redact-threads");
    let key = key(&dir);
    // A few MB, so the two-thread filter hands over many pieces.
    let mut input = Vec::new();
    for i in 0..12_000 {
        input.extend_from_slice(ORDINARY.as_bytes());
        if i % 7 == 0 {
            input.extend_from_slice(SECRETS.as_bytes());
        }
    }
    let two = redact(&["--json", "--key", &key], &input);
    let one = redact(&["--json", "--key", &key, "--single-thread"], &input);
    util::assert_code(&two, 0);
    util::assert_code(&one, 0);
    assert!(two.stdout == one.stdout, "outputs differ");
    assert_eq!(
        String::from_utf8_lossy(&two.stderr),
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(!two.stdout.windows(8).any(|w| w == b"s3cretPw"));
}

#[test]
fn a_line_is_forwarded_while_the_writer_waits() {
    let mut child = spawn_redact();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    // One line, then nothing until its redacted form has come back.
    stdin.write_all(b"mail ops@example.com now\n").unwrap();
    stdin.flush().unwrap();
    let got = rx.recv_timeout(Duration::from_secs(20));
    drop(stdin);
    let _ = child.wait();
    reader.join().unwrap();
    assert_eq!(got.as_deref(), Ok(&b"mail [REDACTED:EMAIL] now\n"[..]));
}

/// `enforcecore redact` with piped stdin and stdout.
fn spawn_redact() -> std::process::Child {
    util::enforcecore(["redact"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn")
}
