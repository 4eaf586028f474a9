#![no_main]
//! Fuzz target `audit_reader`: arbitrary bytes as an audit trail.
//!
//! Input with an even first byte is the trail itself; with an odd first byte
//! the rest is a list of edits (u16 position, byte) to a valid signed trail
//! (`fuzz/seeds/audit_trail.jsonl`, key `[7; 32]`), with an optional cut at
//! the end — so the fuzzer explores real records, not just noise.
//!
//! The verifier (inline and with its helper thread, with and without a key),
//! the record reader and the table formatter must never panic or hang; inline
//! and threaded verification must agree; any change to the signed trail must
//! be caught with the key; the JSON syntax checker must agree with serde_json,
//! and its bitmask fast path must never accept what serde_json rejects.

use ed25519_dalek::SigningKey;
use enforcecore::audit::reader::Record;
use enforcecore::audit::verify::Verifier;
use enforcecore::audit::{json_scan, json_syntax, line, summary};
use libfuzzer_sys::fuzz_target;

const SEED: &[u8] = include_bytes!("../seeds/audit_trail.jsonl");

/// The seed trail with `edits` applied: (position, byte) triples, then an
/// optional two-byte cut position.
fn edited(edits: &[u8]) -> Vec<u8> {
    let mut t = SEED.to_vec();
    let mut chunks = edits.chunks_exact(3);
    for c in &mut chunks {
        let pos = usize::from(u16::from_le_bytes([c[0], c[1]])) % t.len();
        t[pos] = c[2];
    }
    if let [a, b] = chunks.remainder() {
        t.truncate(usize::from(u16::from_le_bytes([*a, *b])) % (t.len() + 1));
    }
    t
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let owned;
    let data = if mode & 1 == 1 {
        owned = edited(rest);
        owned.as_slice()
    } else {
        rest
    };
    let key = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let mut faults = Vec::new();
    for (parallel, key) in [(false, None), (true, None), (false, Some(key))] {
        let mut v = Verifier::new(key);
        if !parallel {
            v = v.single_threaded();
        }
        v.feed("fuzz".as_ref(), data)
            .expect("reading from memory cannot fail");
        let report = v.finish();
        assert_eq!(report.ok, report.fault.is_none());
        if key.is_none() {
            faults.push(report.fault.map(|f| (f.kind, f.line)));
        } else if mode & 1 == 1 {
            assert_eq!(
                report.ok,
                data == SEED,
                "an edit of the signed trail went unnoticed"
            );
        }
    }
    assert_eq!(
        faults[0], faults[1],
        "inline and threaded verification disagree"
    );

    for l in data.split(|&b| b == b'\n') {
        if let Ok(r) = Record::parse(l) {
            let _ = summary::row(&r, true);
        }
        if let Ok(p) = line::parse(l) {
            let _ = p.checkpoint();
            assert_eq!(line::members(l), Some(p.members));
        }
        let serde_ok = std::str::from_utf8(l).is_ok()
            && l.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok();
        // The bitmask fast path only ever accepts valid JSON.
        if json_scan::object_ok(l) {
            assert!(serde_ok, "fast path: {:?}", String::from_utf8_lossy(l));
        }
        let depth = l.iter().filter(|&&b| b == b'{' || b == b'[').count();
        if depth < json_syntax::MAX_DEPTH {
            assert_eq!(
                json_syntax::check_object(l).is_ok(),
                serde_ok,
                "{:?}",
                String::from_utf8_lossy(l)
            );
        }
    }
});
