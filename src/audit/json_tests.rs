//! Tests of the strict JSON check: its verdicts and messages, and its
//! agreement with `serde_json`.

use proptest::prelude::*;

use super::json_scan;
use super::json_syntax::{MAX_DEPTH, check_members, check_object};

fn ok(s: &str) -> bool {
    check_object(s.as_bytes()).is_ok()
}

#[test]
fn accepts_objects() {
    assert!(ok(r#"{}"#));
    assert!(ok(
        r#" { "a" : [1, -0.5e+3, true, false, null, {"b":[]}], "c":"\u00e9\n" } "#
    ));
    assert!(ok(
        r#"{"seq":1,"ts":"x","prev":"00","kind":"k","hash":"ab"}"#
    ));
    assert!(ok("{\"é\":\"ü\"}"));
}

#[test]
fn rejects_non_objects_and_bad_syntax() {
    for bad in [
        "",
        "[]",
        "1",
        "\"a\"",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":-}",
        "{\"a\":tru}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\t\"}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":\"unterminated}",
    ] {
        assert!(!ok(bad), "accepted {bad:?}");
    }
    assert!(check_object(b"{\"a\":\"\xff\"}").is_err());
}

#[test]
fn members_must_not_close_the_object() {
    for m in [&b"\"a\":1}"[..], b"\"a\":{}}", b"\"a\":[]} "] {
        let e = check_members(m).unwrap_err();
        assert_eq!(e.what, "unbalanced `}` in the record body", "{e}");
    }
    assert!(check_members(b"\"a\":{\"b\":[1]}").is_ok());
    assert!(check_members(b" ").is_ok());
}

#[test]
fn utf8_is_checked_inside_and_outside_strings() {
    for bad in [
        &b"{\"a\":\"\xc3\"}"[..],
        b"{\"a\":\"\xed\xa0\x80\"}",
        b"{\"a\":\"\xf4\x90\x80\x80\"}",
        b"{\"a\":\"\xc0\xaf\"}",
        b"{\"a\":\"abcdefghijk\xe9\"}",
        b"{\"a\":1\xe9}",
    ] {
        let e = check_object(bad).unwrap_err();
        assert_eq!(
            e.what,
            "invalid UTF-8",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(ok(
        "{\"\u{10ffff}\u{800}\":\"abcdefgh\u{e9}ijklmnop\u{1f600}\"}"
    ));
}

#[test]
fn depth_is_bounded() {
    let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    assert!(ok(&deep(MAX_DEPTH - 1)));
    assert!(!ok(&deep(MAX_DEPTH)));
    assert!(!ok(&deep(100_000)));
}

/// Agrees with serde_json on everything but lone surrogate escapes, which
/// neither accepts in a way that matters for records (both skip them).
fn serde_accepts(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok()
        && b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
}

fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop::sample::select(vec![
        &b"{"[..],
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\"k\"",
        b"\"v\\n\"",
        b"\\u00e9",
        b"\\",
        b"1",
        b"-2.5e3",
        b"0",
        b"01",
        b"true",
        b"null",
        b" ",
        b"\n",
        "é".as_bytes(),
        b"\x01",
        b"x",
        b".",
        b"e",
        b"\"0123456789abcdef",
        b"\xc3",
        b"\xe2\x82\xac",
        b"\xa9",
        b"\xf0\x9f\x98\x80",
        b"\xed\xa0\x80",
        b"\x7f",
        b"\t",
    ]);
    prop::collection::vec(atom, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn agrees_with_serde_json(body in json_ish()) {
        let mut line = b"{\"a\":".to_vec();
        line.extend_from_slice(&body);
        line.push(b'}');
        prop_assert_eq!(check_object(&line).is_ok(), serde_accepts(&line), "{:?}", String::from_utf8_lossy(&line));
        prop_assert_eq!(check_object(&body).is_ok(), serde_accepts(&body), "{:?}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn members_agree_with_serde_json(body in json_ish()) {
        let mut wrapped = vec![b'{'];
        wrapped.extend_from_slice(&body);
        wrapped.push(b'}');
        let s = String::from_utf8_lossy(&body);
        prop_assert_eq!(check_members(&body).is_ok(), serde_accepts(&wrapped), "{:?}", s);
    }

    #[test]
    fn accepts_whatever_serde_json_writes(v in any::<Vec<(String, Option<i64>, f64)>>()) {
        let line = serde_json::to_vec(&serde_json::json!({ "v": v })).unwrap();
        prop_assert!(check_object(&line).is_ok());
    }
}

/// A body ending in a stray `}` makes the line `{…},"hash":"…"}`, which is not
/// JSON, even with a hash that matches.
#[test]
fn a_record_whose_body_closes_the_object_is_malformed() {
    use super::line;
    use super::record::RecordHash;
    use super::verify::{FaultKind, Verifier};
    let mut bytes = Vec::new();
    let ts = "2026-11-01T12:34:56.123456Z";
    let prev = line::encode(&mut bytes, 1, ts, &RecordHash::GENESIS, b"\"kind\":\"k\"");
    line::encode(&mut bytes, 2, ts, &prev, b"\"kind\":\"k\",\"a\":1}");
    let mut v = Verifier::new(None);
    v.feed("t".as_ref(), bytes.as_slice()).unwrap();
    let fault = v.finish().fault.expect("a fault");
    assert_eq!((fault.kind, fault.line), (FaultKind::MalformedJson, 2));
    assert!(fault.detail.contains("unbalanced `}`"), "{}", fault.detail);
}

/// A naive scan agrees with the branchless escape mask across chunk edges.
fn naive_escaped(backslash: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; backslash.len()];
    let mut pending = false;
    for i in 0..backslash.len() * 64 {
        let (w, b) = (i / 64, i % 64);
        if pending {
            out[w] |= 1 << b;
            pending = false;
        } else if backslash[w] >> b & 1 == 1 {
            pending = true;
        }
    }
    out
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let text = "[a-z\"\\\\/\\x00-\\x1f\u{7f}\u{e9}\u{20ac}\u{1f600} {}:,\\[\\]]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(text, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn escape_mask_matches_a_naive_scan(words in prop::collection::vec(any::<u64>(), 1..4)) {
        let mut carry = 0;
        let got: Vec<u64> = words
            .iter()
            .map(|&w| json_scan::escaped_chars(w, &mut carry))
            .collect();
        prop_assert_eq!(got, naive_escaped(&words));
    }

    /// Compact JSON (what the writer emits) takes the fast path; a changed,
    /// inserted or deleted byte never makes the fast path accept what the
    /// full check or serde_json rejects.
    #[test]
    fn fast_path_takes_compact_json_and_nothing_invalid(
        v in json_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let line = serde_json::to_vec(&serde_json::json!({ "kind": "k", "v": v })).unwrap();
        prop_assert!(json_scan::object_ok(&line), "{}", String::from_utf8_lossy(&line));
        prop_assert!(json_scan::members_ok(&line[1..line.len() - 1]));
        let mut bad = line.clone();
        for (at, byte, op) in edits {
            let i = at.index(bad.len() + 1);
            match op {
                0 if i < bad.len() => bad[i] = byte,
                1 => bad.insert(i, byte),
                _ if i < bad.len() => { bad.remove(i); }
                _ => {}
            }
        }
        let s = String::from_utf8_lossy(&bad);
        if json_scan::object_ok(&bad) {
            prop_assert!(serde_accepts(&bad), "fast path accepted {:?}", s);
        }
        if bad.len() >= 2 && json_scan::members_ok(&bad[1..bad.len() - 1]) {
            let inner = [b"{", &bad[1..bad.len() - 1], b"}"].concat();
            prop_assert!(serde_accepts(&inner), "fast path accepted members {:?}", s);
        }
    }

    #[test]
    fn fast_path_never_accepts_what_serde_rejects(body in json_ish()) {
        let mut line = b"{\"a\":".to_vec();
        line.extend_from_slice(&body);
        line.push(b'}');
        if json_scan::object_ok(&line) {
            prop_assert!(serde_accepts(&line), "{:?}", String::from_utf8_lossy(&line));
        }
        if json_scan::members_ok(&body) {
            let wrapped = [b"{", body.as_slice(), b"}"].concat();
            prop_assert!(serde_accepts(&wrapped), "{:?}", String::from_utf8_lossy(&body));
        }
    }
}

#[test]
fn fast_path_edges() {
    for ok in [
        &b""[..],
        b"\"a\":1",
        b"\"a\":-0.5e+3,\"b\":[true,false,null,{}],\"c\":\"\\u00e9\\\"\\\\\"",
        b"\"a\":[[],[[1]],{\"b\":{}}]",
        "\"é\":\"\u{1f600}\"".as_bytes(),
    ] {
        assert!(json_scan::members_ok(ok), "{}", String::from_utf8_lossy(ok));
    }
    // Valid, but with whitespace: left to the full check.
    assert!(!json_scan::members_ok(b"\"a\": 1"));
    assert!(check_members(b"\"a\": 1").is_ok());
    for bad in [
        &b"\"a\":1}"[..],
        b"\"a\":01",
        b"\"a\":1.",
        b"\"a\":tru",
        b"\"a\":\"\\x\"",
        b"\"a\":\"\\u12\"",
        b"\"a\"",
        b"\"a\":",
        b"\"a\":1,",
        b"\"a\":[1,]",
        b"\"a\":\"unterminated",
        b"\"a\":\"\xff\"",
        b"\"a\":{\"b\":1]",
    ] {
        assert!(
            !json_scan::members_ok(bad),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(check_members(bad).is_err());
    }
    // Strings and escapes across 64-byte chunk edges.
    for pad in 0..130 {
        let m = format!(
            "\"a\":\"{}\\\"\\\\\",\"b\":[1,{{\"c\":\"}}\"}}]",
            "x".repeat(pad)
        );
        assert!(json_scan::members_ok(m.as_bytes()), "{m}");
        let cut = &m.as_bytes()[..m.len() - 1];
        assert!(!json_scan::members_ok(cut), "{m}");
    }
}
