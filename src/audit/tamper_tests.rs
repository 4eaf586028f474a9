//! Property tests: every kind of tampering with a valid signed trail is
//! caught by [`super::verify`], at the first bad record.
//!
//! The trail is written once by the real writer (signed, periodic
//! checkpoints, a closing checkpoint), then mutated in memory per case.

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use proptest::prelude::*;

use super::record::{CheckpointReason, RecordBody};
use super::verify::{FaultKind, Report, Verifier};
use super::{Trail, TrailOptions};
use crate::report::{Denial, DenialLayer};

struct Fixture {
    bytes: Vec<u8>,
    key: VerifyingKey,
}

fn denial(i: usize) -> RecordBody {
    RecordBody::Denial {
        run: format!("run-{}", i % 3),
        tool: "cat".into(),
        denial: Denial {
            layer: DenialLayer::LandlockFs,
            pid: Some(100 + i as i32),
            object: format!("/etc/secret-{i} \"quoted\" é"),
            access: Some("fs.read_file".into()),
            detail: "x".repeat(i),
            hint: "add the path to sandbox.filesystem.read".into(),
        },
    }
}

fn write_trail(key: &SigningKey, records: usize, every: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let mut opts = TrailOptions::new(&path);
    opts.signing_key = Some(key.clone());
    opts.checkpoint_every = every;
    let trail = Trail::open(opts).expect("open");
    for i in 0..records {
        trail.append(denial(i)).expect("append");
    }
    trail.close().expect("close");
    std::fs::read(&path).expect("read")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_bytes(&[42u8; 32]);
        Fixture {
            bytes: write_trail(&key, 24, 5),
            key: key.verifying_key(),
        }
    })
}

fn check(bytes: &[u8], key: Option<VerifyingKey>) -> Report {
    let mut v = Verifier::new(key);
    v.feed("t".as_ref(), bytes).expect("in-memory read");
    v.finish()
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// 1-based line holding byte `p` (a newline belongs to the line it ends).
fn line_of(bytes: &[u8], p: usize) -> u64 {
    bytes[..p].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

#[test]
fn the_fixture_verifies_with_and_without_its_key() {
    let f = fixture();
    for key in [None, Some(f.key)] {
        let r = check(&f.bytes, key);
        assert!(r.ok, "{:?}", r.fault);
        assert!(r.checkpoints >= 6, "{}", r.checkpoints);
    }
}

#[test]
fn another_key_is_a_bad_signature() {
    let f = fixture();
    let other = SigningKey::from_bytes(&[43u8; 32]).verifying_key();
    let fault = check(&f.bytes, Some(other)).fault.expect("fault");
    assert_eq!((fault.kind, fault.line), (FaultKind::BadSignature, 1));
    // A whole trail written with the other key fails against ours.
    let theirs = write_trail(&SigningKey::from_bytes(&[43u8; 32]), 3, 0);
    let fault = check(&theirs, Some(f.key)).fault.expect("fault");
    assert_eq!(fault.kind, FaultKind::BadSignature);
}

#[test]
fn a_rebuilt_chain_without_checkpoints_is_unsealed() {
    // Re-chain the records (dropping checkpoints) with correct hashes: only
    // the key can tell.
    let f = fixture();
    let mut out = Vec::new();
    let mut prev = super::RecordHash::GENESIS;
    let mut seq = 0;
    for l in lines(&f.bytes) {
        let p = super::line::parse(&l[..l.len() - 1]).expect("parse");
        if p.kind == "checkpoint" {
            continue;
        }
        seq += 1;
        prev = super::line::encode(&mut out, seq, p.ts, &prev, p.members);
    }
    assert!(check(&out, None).ok);
    let fault = check(&out, Some(f.key)).fault.expect("fault");
    assert_eq!((fault.kind, fault.line), (FaultKind::UnsealedTail, 1));
}

#[test]
fn a_trail_ending_in_a_periodic_checkpoint_is_unsealed() {
    let f = fixture();
    let ls = lines(&f.bytes);
    let cut = ls
        .iter()
        .rposition(|l| l.windows(10).any(|w| w == b"\"periodic\""))
        .expect("a periodic checkpoint");
    let bytes: Vec<u8> = ls[..=cut].concat();
    let fault = check(&bytes, Some(f.key)).fault.expect("fault");
    assert_eq!(fault.kind, FaultKind::UnsealedTail);
    assert!(fault.detail.contains("periodic"), "{}", fault.detail);
    let _ = CheckpointReason::Periodic;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_byte_change_is_caught_at_its_line(p in any::<prop::sample::Index>(), b in any::<u8>()) {
        let f = fixture();
        let p = p.index(f.bytes.len());
        prop_assume!(f.bytes[p] != b);
        let mut bytes = f.bytes.clone();
        bytes[p] = b;
        for key in [None, Some(f.key)] {
            let fault = check(&bytes, key).fault.expect("tampering not detected");
            prop_assert_eq!(fault.line, line_of(&f.bytes, p), "{:?}", fault);
        }
    }

    #[test]
    fn deleting_a_line_is_caught(i in any::<prop::sample::Index>()) {
        let f = fixture();
        let mut ls = lines(&f.bytes);
        let i = i.index(ls.len());
        let last = i == ls.len() - 1;
        ls.remove(i);
        let bytes = ls.concat();
        let fault = check(&bytes, Some(f.key)).fault.expect("not detected with key");
        if last {
            prop_assert_eq!(fault.kind, FaultKind::UnsealedTail);
        } else {
            prop_assert_eq!(fault.line as usize, i + 1, "{:?}", fault);
        }
        // Without a key, only cutting the last line goes unnoticed.
        prop_assert_eq!(check(&bytes, None).ok, last);
    }

    #[test]
    fn inserting_or_duplicating_a_line_is_caught(i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
        let f = fixture();
        let mut ls = lines(&f.bytes);
        let (i, j) = (i.index(ls.len() + 1), j.index(ls.len()));
        let copy = ls[j].clone();
        ls.insert(i, copy);
        let bytes = ls.concat();
        for key in [None, Some(f.key)] {
            let fault = check(&bytes, key).fault.expect("not detected");
            // A copy of line j put at i: the copy itself is out of place,
            // unless it lands right where its original is (then the
            // original, one line later, is the duplicate).
            let expected = if i == j { i + 2 } else { i + 1 };
            prop_assert_eq!(fault.line as usize, expected, "{:?}", fault);
        }
    }

    #[test]
    fn swapping_two_lines_is_caught_at_the_first(i in any::<prop::sample::Index>(), j in any::<prop::sample::Index>()) {
        let f = fixture();
        let mut ls = lines(&f.bytes);
        let (i, j) = (i.index(ls.len()), j.index(ls.len()));
        prop_assume!(i != j);
        ls.swap(i, j);
        let bytes = ls.concat();
        for key in [None, Some(f.key)] {
            let fault = check(&bytes, key).fault.expect("not detected");
            prop_assert_eq!(fault.line as usize, i.min(j) + 1, "{:?}", fault);
        }
    }

    #[test]
    fn truncation_is_caught_with_the_key(n in any::<prop::sample::Index>()) {
        let f = fixture();
        let n = n.index(f.bytes.len());
        let bytes = &f.bytes[..n];
        prop_assert!(!check(bytes, Some(f.key)).ok);
        let at_boundary = n == 0 || f.bytes[n - 1] == b'\n';
        prop_assert_eq!(check(bytes, None).ok, at_boundary);
    }
}

#[test]
fn a_trail_cut_back_to_its_open_checkpoint_is_unsealed() {
    let f = fixture();
    let first = lines(&f.bytes).remove(0);
    assert!(first.windows(6).any(|w| w == b"\"open\""));
    let fault = check(&first, Some(f.key)).fault.expect("fault");
    assert_eq!((fault.kind, fault.line), (FaultKind::UnsealedTail, 1));
    assert!(fault.detail.contains("opening"), "{}", fault.detail);
    // A writer that closes without appending seals its trail all the same.
    let empty = write_trail(&SigningKey::from_bytes(&[42u8; 32]), 0, 5);
    assert!(check(&empty, Some(f.key)).ok);
}
