#![no_main]
//! Fuzz target `redact_stream`: arbitrary bytes through the streaming redactor,
//! whole and cut into irregular pieces.
//!
//! The first two input bytes choose the strategy and how the rest is cut; the
//! rest is the stream. The redactor must never panic or hang, and its output
//! and receipts must be identical for the whole input and for the pieces
//! (chunking invariance), with every built-in detector and a custom pattern;
//! and the same again through `Stream::pump` (a reader thread finding the
//! byte-class triggers, the detectors on this one) with irregular reads.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, LazyLock};

use enforcecore::policy::{
    CustomDetector, Origin, Redaction, Sourced, Strategy, Streams, Validator,
};
use enforcecore::redact::{DetectorKind, Engine, Key, StreamFilter};
use libfuzzer_sys::fuzz_target;

fn sourced<T>(value: T) -> Sourced<T> {
    Sourced {
        value,
        origin: Origin::builtin(),
    }
}

fn engine(strategy: Strategy) -> Arc<Engine> {
    let settings = Redaction {
        streams: sourced(Streams {
            stdin: false,
            stdout: true,
            stderr: true,
        }),
        detectors: DetectorKind::ALL
            .into_iter()
            .map(sourced)
            .collect::<BTreeSet<_>>(),
        custom: vec![CustomDetector {
            name: "ACCOUNT".into(),
            pattern: r"\bACCT-[0-9]{8,12}\b".into(),
            max_len: 17,
            validator: Some(Validator::Luhn),
            origin: Origin::builtin(),
        }],
        strategy: sourced(strategy),
        key_file: None,
    };
    let key = Key::from_bytes(b"fuzzing key, thirty-two bytes!!!").expect("key");
    Arc::new(Engine::with_key(&settings, Some(key)).expect("engine"))
}

static ENGINES: LazyLock<[Arc<Engine>; 4]> = LazyLock::new(|| {
    [
        engine(Strategy::Placeholder),
        engine(Strategy::Mask),
        engine(Strategy::Hash),
        engine(Strategy::Remove),
    ]
});

/// Returns the input in reads of 1 to 8192 bytes chosen by `cut` (reads of a
/// few KiB make the reader thread leave stretches to the other).
struct Pieces {
    data: Vec<u8>,
    at: usize,
    cut: u8,
    k: u32,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = 1 + (usize::from(self.cut.rotate_left(self.k)) * 32 + self.k as usize) % 8192;
        self.k += 1;
        let n = want.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let [strategy, cut, input @ ..] = data else {
        return;
    };
    let engine = &ENGINES[usize::from(*strategy) % 4];
    let (whole, receipts) = engine.redact("stdout", input);

    let mut stream = engine.stream("stdout");
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0u32;
    while i < input.len() {
        let n = 1 + usize::from(cut.rotate_left(k)) % 23;
        let end = (i + n).min(input.len());
        stream.push(&input[i..end], &mut out);
        i = end;
        k += 1;
    }
    stream.finish(&mut out);
    assert_eq!(out, whole, "output depends on chunking");
    assert_eq!(stream.receipts(), receipts, "receipts depend on chunking");

    let mut pumped = engine.stream("stdout");
    let mut out = Vec::new();
    let reader = Pieces {
        data: input.to_vec(),
        at: 0,
        cut: *cut,
        k: 0,
    };
    pumped.pump(reader, &mut out).expect("pump into a Vec");
    assert_eq!(out, whole, "two-thread output differs");
    assert_eq!(pumped.receipts(), receipts, "two-thread receipts differ");
});
