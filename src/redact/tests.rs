//! Whole-engine tests: every detector through the stream, chunking invariance,
//! strategies, receipts, bounded memory, binary input.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::Strategy as _;

use super::*;
use crate::policy::{CustomDetector, Origin, Redaction, Sourced, Strategy, Streams, Validator};

fn sourced<T>(value: T) -> Sourced<T> {
    Sourced {
        value,
        origin: Origin::builtin(),
    }
}

/// Hand-made policy settings.
pub(crate) fn settings(strategy: Strategy, custom: Vec<CustomDetector>) -> Redaction {
    Redaction {
        streams: sourced(Streams {
            stdin: false,
            stdout: true,
            stderr: true,
        }),
        detectors: DetectorKind::ALL
            .into_iter()
            .map(sourced)
            .collect::<BTreeSet<_>>(),
        custom,
        strategy: sourced(strategy),
        key_file: None,
    }
}

pub(crate) fn key() -> Key {
    Key::from_bytes(b"a test key of thirty-two bytes!!").unwrap()
}

pub(crate) fn engine(strategy: Strategy) -> Arc<Engine> {
    Arc::new(Engine::with_key(&settings(strategy, Vec::new()), Some(key())).unwrap())
}

/// Run `input` through a fresh stream in pieces cut at `cuts`.
pub(crate) fn run(
    engine: &Arc<Engine>,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Vec<crate::report::RedactionReceipt>) {
    let mut s = engine.stream("stdout");
    let mut out = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain([input.len()].iter()) {
        let c = c.clamp(last, input.len());
        s.push(&input[last..c], &mut out);
        last = c;
    }
    s.finish(&mut out);
    (out, s.receipts())
}

fn one_shot(input: &str) -> String {
    let e = Arc::new(Engine::builtin(None));
    String::from_utf8(e.redact("stdout", input.as_bytes()).0).unwrap()
}

pub(crate) const PEM: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDtk3Xy/8l0n0vCMw+0C0Hp3mWn3JbR0n3eU8vJ4lJx2AAAAJhR0a1tUdGt\n-----END OPENSSH PRIVATE KEY-----";

/// One value per detector: the text to redact and the secret inside it.
pub(crate) const SAMPLES: &[(&str, &str, DetectorKind)] = &[
    (
        "john.doe@example.com",
        "john.doe@example.com",
        DetectorKind::Email,
    ),
    ("+44 20 7946 0958", "+44 20 7946 0958", DetectorKind::Phone),
    ("(555) 234-5678", "(555) 234-5678", DetectorKind::Phone),
    ("123-45-6789", "123-45-6789", DetectorKind::UsSsn),
    (
        "4111 1111 1111 1111",
        "4111 1111 1111 1111",
        DetectorKind::CreditCard,
    ),
    (
        "378282246310005",
        "378282246310005",
        DetectorKind::CreditCard,
    ),
    (
        "GB82 WEST 1234 5698 7654 32",
        "GB82 WEST 1234 5698 7654 32",
        DetectorKind::Iban,
    ),
    ("192.168.1.23", "192.168.1.23", DetectorKind::Ipv4),
    (
        "2001:db8::8a2e:370:7334",
        "2001:db8::8a2e:370:7334",
        DetectorKind::Ipv6,
    ),
    (
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
        DetectorKind::AwsAccessKey,
    ),
    (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        DetectorKind::AwsSecretKey,
    ),
    (
        "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",
        "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",
        DetectorKind::GithubToken,
    ),
    (
        "glpat-xxxxXXXX1234yyyyZZZZ",
        "glpat-xxxxXXXX1234yyyyZZZZ",
        DetectorKind::GitlabToken,
    ),
    (
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        DetectorKind::SlackToken,
    ),
    (
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        DetectorKind::SlackWebhook,
    ),
    (
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        DetectorKind::StripeKey,
    ),
    (
        "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        DetectorKind::GoogleApiKey,
    ),
    (
        "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPq",
        "sk-proj-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPq",
        DetectorKind::OpenaiKey,
    ),
    (
        "sk-ant-api03-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPqRsTuVwXyZ-AA",
        "sk-ant-api03-Ab3dEf6hIj9lMn2pQr5tUv8xYz1BcDeFgHiJkLmNoPqRsTuVwXyZ-AA",
        DetectorKind::AnthropicKey,
    ),
    (
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        DetectorKind::NpmToken,
    ),
    (
        "pypi-AgEIcHlwaS5vcmcCJGE0YjM5ZDI3LTQxYjQtNDRiYi05ZjE3LWE1MGZiMWQwYjA0ZQACKlsz",
        "pypi-AgEIcHlwaS5vcmcCJGE0YjM5ZDI3LTQxYjQtNDRiYi05ZjE3LWE1MGZiMWQwYjA0ZQACKlsz",
        DetectorKind::PypiToken,
    ),
    (
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        DetectorKind::HuggingfaceToken,
    ),
    (
        "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",
        "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",
        DetectorKind::SendgridKey,
    ),
    (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        DetectorKind::Jwt,
    ),
    (PEM, PEM, DetectorKind::PemPrivateKey),
    (
        "mysql://root:Pa55w0rd!@db.internal:3306/app",
        "Pa55w0rd!",
        DetectorKind::UrlPassword,
    ),
    (
        "DB_PASSWORD=hunter2x",
        "hunter2x",
        DetectorKind::GenericSecret,
    ),
];

/// Ordinary log text that must come out byte-identical.
pub(crate) const ORDINARY: &[&str] = &[
    "2024-05-14T09:21:33.482Z INFO  [worker-3] request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d method=GET path=/api/v1/users/48213 status=200 duration_ms=37 bytes=5123",
    "{\"ts\":\"2024-05-05T12:41:03.074Z\",\"level\":\"debug\",\"msg\":\"cache hit\",\"key\":\"user:70240:profile\",\"ttl\":386,\"trace_id\":\"b1612dd272d1371c17149d439536b321\",\"span_id\":\"6fdaeeb975729fae\"}",
    "[2024-05-05 22:34:58,027] WARN  com.example.billing.InvoiceService - invoice INV-2024-794970 total=$8,653.38 currency=USD retry=1/5",
    "2024-05-03 23:25:29 DEBUG build: compiled enforcecore v0.2.5 (commit 5404e4fb440034d6608697a8d41bed440e50454f) in 80.1s",
    "time=\"2024-05-14T09:21:33Z\" level=info msg=\"listening\" addr=\":8080\" version=1.27.3 go=go1.22.4 pid=4312",
    "    at com.example.Handler.handle(Handler.java:142)",
    "sha256:3d5a4fd12aabfe228f219e9cb0eb53f16947ccf25ec84d8dbc74254770f58904 pulled layer 7/12 (69.5 MB)",
    "May 14 09:21:33 host-17 systemd[1]: Started session 4312 of user deploy.",
    "kernel: [12345.678901] eth0: link up, 1000 Mbps, full duplex; mac 00:1a:2b:3c:4d:5e",
    "GET /static/app.3f5c9d2e.js 200 48213 0.012 \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"",
    "tokens used: 1536 of 4096 (37.5%), max_tokens=4096, token_count=12",
    "config: api_key=YOUR_KEY_HERE password=${DB_PASSWORD} secret=<secret> token=********",
    "Price: EUR 1.234,56 / USD 1,299.00 - order #100234 shipped 2024/05/14",
    "uuid=123e4567-e89b-12d3-a456-426614174000 epoch=1715678493 elapsed=00:01:23.456",
    "Build 20240514.3 of service auth-api listening on 0.0.0.0:443 and port 8443",
    "std::vec::Vec<u8> at src/main.rs:42:7; see https://docs.rs/regex/1.10.2/regex/",
    "ISBN 978-3-16-148410-0, Kubernetes v1.29.2, Python 3.11.7, ratio 16:9",
];

#[test]
fn every_detector_alone_in_text_and_across_chunks() {
    let e = engine(Strategy::Placeholder);
    for &(text, secret, kind) in SAMPLES {
        let want = format!("[REDACTED:{}]", kind.as_str().to_ascii_uppercase());
        for line in [
            text.to_string(),
            format!("saw {text} there\n"),
            format!("\"{text}\",\n{text}\n"),
        ] {
            let (out, receipts) = run(&e, line.as_bytes(), &[]);
            let out = String::from_utf8(out).unwrap();
            assert!(out.contains(&want), "{kind:?}: {line:?} -> {out:?}");
            assert!(!out.contains(secret), "{kind:?} leaked: {out:?}");
            assert!(
                receipts.iter().any(|r| r.detector == kind.as_str()),
                "{kind:?}: {receipts:?}"
            );
            // Every single cut point, and one byte at a time.
            let bytes = line.as_bytes();
            for cut in 0..=bytes.len() {
                assert_eq!(
                    run(&e, bytes, &[cut]).0,
                    out.as_bytes(),
                    "{kind:?} cut at {cut}"
                );
            }
            let ones: Vec<usize> = (1..bytes.len()).collect();
            assert_eq!(
                run(&e, bytes, &ones).0,
                out.as_bytes(),
                "{kind:?} byte by byte"
            );
        }
    }
}

#[test]
fn ordinary_log_lines_pass_byte_identical() {
    for line in ORDINARY {
        assert_eq!(one_shot(line), *line);
    }
    let all = ORDINARY.join("\n");
    assert_eq!(one_shot(&all), all);
}

#[test]
fn zero_width_and_fullwidth_do_not_hide_values() {
    for (input, want) in [
        (
            "to: jo\u{200B}hn@exam\u{200D}ple.com.",
            "to: [REDACTED:EMAIL].",
        ),
        ("to: john＠example.com", "to: [REDACTED:EMAIL]"),
        (
            "card ４１１１ １１１１ １１１１ １１１１ ok",
            "card [REDACTED:CREDIT_CARD] ok",
        ),
        ("ssn 123\u{200B}-45-\u{2060}6789", "ssn [REDACTED:US_SSN]"),
        ("tel +１ ５５５ ２３４ ５６７８", "tel [REDACTED:PHONE]"),
    ] {
        assert_eq!(one_shot(input), want, "{input}");
    }
}

#[test]
fn strategies() {
    let text = b"user john@example.com card 4111111111111111\n";
    let (out, _) = run(&engine(Strategy::Mask), text, &[]);
    assert_eq!(out, b"user **************** card ****************\n");
    let (out, _) = run(&engine(Strategy::Remove), text, &[]);
    assert_eq!(out, b"user  card \n");
    let (out, receipts) = run(&engine(Strategy::Hash), text, &[7]);
    let out = String::from_utf8(out).unwrap();
    let email_fp = &receipts
        .iter()
        .find(|r| r.detector == "email")
        .unwrap()
        .fingerprints[0];
    assert_eq!(email_fp.len(), 16);
    assert!(
        out.starts_with(&format!("user [EMAIL:{email_fp}] card [CREDIT_CARD:")),
        "{out}"
    );
    // The same value hashes the same in another stream, and differently under
    // another key.
    let (again, _) = run(&engine(Strategy::Hash), b"JOHN@example.com", &[]);
    assert_eq!(
        String::from_utf8(again).unwrap(),
        format!("[EMAIL:{email_fp}]")
    );
    let other = Arc::new(
        Engine::with_key(
            &settings(Strategy::Hash, Vec::new()),
            Some(Key::from_bytes(&[1u8; 32]).unwrap()),
        )
        .unwrap(),
    );
    let (third, _) = run(&other, b"john@example.com", &[]);
    assert_ne!(
        String::from_utf8(third).unwrap(),
        format!("[EMAIL:{email_fp}]")
    );
    assert!(matches!(
        Engine::with_key(&settings(Strategy::Hash, Vec::new()), None),
        Err(RedactError::HashNeedsKey)
    ));
}

#[test]
fn receipts_count_and_never_carry_values() {
    let e = engine(Strategy::Placeholder);
    let (_, receipts) = run(
        &e,
        b"a@example.com b@example.com a@example.com 10.0.0.1\n",
        &[3, 20],
    );
    let email = receipts.iter().find(|r| r.detector == "email").unwrap();
    assert_eq!((email.count, email.fingerprints.len()), (3, 2));
    assert_eq!(email.stream, "stdout");
    let json = serde_json::to_string(&receipts).unwrap();
    assert!(
        !json.contains("example") && !json.contains("10.0.0.1"),
        "{json}"
    );
}

pub(crate) fn custom(
    name: &str,
    pattern: &str,
    max_len: usize,
    validator: Option<Validator>,
) -> CustomDetector {
    CustomDetector {
        name: name.into(),
        pattern: pattern.into(),
        max_len,
        validator,
        origin: Origin::builtin(),
    }
}

#[test]
fn custom_detectors_with_and_without_validators() {
    let s = settings(
        Strategy::Placeholder,
        vec![
            custom("employee_id", r"\bEMP-[0-9]{6}\b", 10, None),
            custom("loyalty_card", r"\b[0-9]{16}\b", 16, Some(Validator::Luhn)),
        ],
    );
    let e = Arc::new(Engine::with_key(&s, None).unwrap());
    let text = b"EMP-123456 EMP-1234567 card 4111111111111111 bad 4111111111111112\n";
    let want =
        b"[REDACTED:EMPLOYEE_ID] EMP-1234567 card [REDACTED:CREDIT_CARD] bad 4111111111111112\n";
    for cuts in [vec![], vec![5], (1..text.len()).collect::<Vec<_>>()] {
        assert_eq!(run(&e, text, &cuts).0, want);
    }
    let (_, receipts) = run(&e, b"x EMP-000001 y", &[]);
    assert_eq!(receipts[0].detector, "employee_id");
    let bad = settings(Strategy::Placeholder, vec![custom("x", "(", 1, None)]);
    assert!(matches!(
        Engine::with_key(&bad, None),
        Err(RedactError::CustomPattern { .. })
    ));
    let huge = settings(
        Strategy::Placeholder,
        vec![custom("x", "a+", usize::MAX, None)],
    );
    assert!(matches!(
        Engine::with_key(&huge, None),
        Err(RedactError::CustomTooLong { .. })
    ));
}

#[test]
fn a_secret_inside_binary_output_is_caught() {
    let mut input: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    input.extend_from_slice(b"\x00\xffAKIAIOSFODNN7EXAMPLE\x00\x89PNG");
    input.extend((0..=255u8).rev().cycle().take(4096));
    let e = engine(Strategy::Placeholder);
    let (out, _) = run(&e, &input, &[1000, 4100]);
    let needle = b"[REDACTED:AWS_ACCESS_KEY]";
    assert!(out.windows(needle.len()).any(|w| w == needle));
    assert!(!out.windows(20).any(|w| w == b"AKIAIOSFODNN7EXAMPLE"));
}

#[test]
fn pem_blocks_spanning_lines_and_cut_short() {
    let text = format!("key:\n{PEM}\nnext line 10.0.0.1\n");
    assert_eq!(
        one_shot(&text),
        "key:\n[REDACTED:PEM_PRIVATE_KEY]\nnext line [REDACTED:IPV4]\n"
    );
    let escaped = format!("{{\"key\":\"{}\\n\"}}", PEM.replace('\n', "\\n"));
    assert_eq!(
        one_shot(&escaped),
        "{\"key\":\"[REDACTED:PEM_PRIVATE_KEY]\\n\"}"
    );
    let cut = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75n1\n2024-05-01 INFO next";
    assert_eq!(
        one_shot(cut),
        "[REDACTED:PEM_PRIVATE_KEY]\n2024-05-01 INFO next"
    );
    let (masked, _) = run(&engine(Strategy::Mask), PEM.as_bytes(), &[50]);
    let masked = String::from_utf8(masked).unwrap();
    assert_eq!(masked.lines().count(), PEM.lines().count());
    assert!(masked.chars().all(|c| c == '*' || c == '\n'));
}

#[test]
fn memory_stays_flat() {
    let e = engine(Strategy::Placeholder);
    let mut line_stream = e.stream("stdout");
    let mut out = Vec::new();
    let chunk: Vec<u8> = ORDINARY.join("\n").into_bytes().repeat(40);
    for _ in 0..200 {
        out.clear();
        line_stream.push(&chunk, &mut out);
    }
    assert!(
        line_stream.peak_held() < chunk.len() + 4096,
        "{}",
        line_stream.peak_held()
    );
    // One endless line without a break, and one endless base64 PEM body.
    for (head, fill) in [("", b'a'), ("-----BEGIN PRIVATE KEY-----\n", b'Q')] {
        let mut s = e.stream("stdout");
        let mut out = Vec::new();
        s.push(head.as_bytes(), &mut out);
        let block = vec![fill; 64 * 1024];
        for _ in 0..64 {
            out.clear();
            s.push(&block, &mut out);
        }
        assert!(
            s.peak_held() < 3 * block.len(),
            "{head:?}: {}",
            s.peak_held()
        );
    }
}

#[test]
fn long_runs_of_literal_prefixes_stay_linear() {
    // Each `eyJ` could start a JWT of up to 16 KiB; a run of them must not be
    // read once per occurrence.
    let e = engine(Strategy::Placeholder);
    for unit in [
        "-eyJ",
        "eyJ",
        "-AKIA",
        "a@",
        "1.",
        "::",
        "x@ab.io ",
        "10.0.0.1 ",
    ] {
        let input = unit.repeat(256 * 1024 / unit.len());
        let (out, _) = run(&e, input.as_bytes(), &[100_000]);
        assert!(!out.is_empty(), "{unit}");
    }
}

pub(crate) fn fragments() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    let mut parts: Vec<String> = SAMPLES.iter().map(|s| s.0.to_string()).collect();
    parts.extend(ORDINARY.iter().map(|s| s.to_string()));
    parts.extend(
        [
            " ",
            "\n",
            "@",
            ":",
            "=",
            "-",
            ".",
            "\u{200B}",
            "＠",
            "４",
            "\"",
            "password=",
            "eyJ",
            "-----BEGIN RSA PRIVATE KEY-----\n",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let piece = prop_oneof![
        4 => prop::sample::select(parts).prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn output_is_the_same_for_every_chunking(
        input in fragments(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        strategy in prop::sample::select(vec![Strategy::Placeholder, Strategy::Mask, Strategy::Hash, Strategy::Remove]),
    ) {
        let e = engine(strategy);
        let whole = run(&e, &input, &[]);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(&run(&e, &input, &cuts), &whole);
        let ones: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(&run(&e, &input, &ones), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048), cut in 0usize..2048) {
        let e = engine(Strategy::Placeholder);
        let whole = run(&e, &input, &[]);
        prop_assert_eq!(run(&e, &input, &[cut]), whole);
    }
}
