//! `Stream::pump` against the one-thread stream: same output and receipts for
//! every input and every way `read()` splits it; errors, prompt forwarding,
//! bounded memory.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::tests::{ORDINARY, PEM, SAMPLES, custom, engine, fragments, key, run, settings};
use super::*;
use crate::policy::{Strategy, Validator};
use crate::redact::{Engine, StreamFilter};
use crate::report::RedactionReceipt;

/// A reader that returns `data` in reads of the given sizes (cycled).
struct Pieces {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    k: usize,
}

impl Pieces {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Self {
        Pieces {
            data,
            at: 0,
            sizes,
            k: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.k % self.sizes.len()].max(1);
        self.k += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Every built-in detector and a custom one with a validator.
fn full_engine(strategy: Strategy) -> Arc<Engine> {
    let custom = vec![custom(
        "account",
        r"\bACCT-[0-9]{8,12}\b",
        17,
        Some(Validator::Luhn),
    )];
    Arc::new(Engine::with_key(&settings(strategy, custom), Some(key())).unwrap())
}

fn pumped(e: &Arc<Engine>, input: &[u8], sizes: Vec<usize>) -> (Vec<u8>, Vec<RedactionReceipt>) {
    let mut s = e.stream("stdout");
    let mut out = Vec::new();
    s.pump(Pieces::new(input.to_vec(), sizes), &mut out)
        .unwrap();
    (out, s.receipts())
}

/// About `len` bytes of log text with values planted at irregular places:
/// every sample, PEM blocks, long base64 lines, custom account numbers.
fn planted_log(len: usize, seed: u64) -> Vec<u8> {
    let mut r = seed | 1;
    let mut next = move |n: usize| {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        (r % n as u64) as usize
    };
    let mut out = Vec::with_capacity(len + 1024);
    while out.len() < len {
        out.extend_from_slice(ORDINARY[next(ORDINARY.len())].as_bytes());
        match next(10) {
            0 => {
                out.push(b' ');
                out.extend_from_slice(SAMPLES[next(SAMPLES.len())].0.as_bytes());
            }
            1 => out.extend_from_slice(b" ACCT-4111111111 \xEF\xBC\x94 x@\xE2\x80\x8Bexample.com"),
            2 => {
                out.push(b'\n');
                out.extend_from_slice(PEM.as_bytes());
            }
            3 => out.extend_from_slice(&b"QUJD".repeat(1 + next(40))),
            _ => {}
        }
        out.push(b'\n');
    }
    out
}

#[test]
fn large_planted_input_matches_one_thread_for_many_read_sizes() {
    for (seed, strategy) in [
        (1, Strategy::Placeholder),
        (2, Strategy::Mask),
        (3, Strategy::Hash),
        (4, Strategy::Remove),
    ] {
        let e = full_engine(strategy);
        let input = planted_log(600_000, seed);
        let want = run(&e, &input, &[]);
        assert!(want.1.len() > 10, "{:?}", want.1);
        for sizes in [
            vec![CHUNK],
            vec![1, 7, 63, 64, 65, 4095, 70_000],
            vec![100_003, 3],
            vec![13_337],
        ] {
            let got = pumped(&e, &input, sizes.clone());
            assert!(got.0 == want.0, "{strategy:?} {sizes:?}: output differs");
            assert_eq!(got.1, want.1, "{strategy:?} {sizes:?}");
        }
    }
}

#[test]
fn empty_and_tiny_inputs() {
    let e = full_engine(Strategy::Placeholder);
    for input in ["", "\n", "a", "john@example.com", "4111 1111 1111 1111"] {
        assert_eq!(
            pumped(&e, input.as_bytes(), vec![1]),
            run(&e, input.as_bytes(), &[]),
            "{input:?}"
        );
    }
}

#[test]
fn a_stream_already_pushed_to_pumps_on_one_thread() {
    let e = full_engine(Strategy::Placeholder);
    let input = planted_log(50_000, 9);
    let mut s = e.stream("stdout");
    let mut out = Vec::new();
    s.push(&input[..1000], &mut out);
    s.pump(Pieces::new(input[1000..].to_vec(), vec![777]), &mut out)
        .unwrap();
    assert_eq!((out, s.receipts()), run(&e, &input, &[]));
}

/// Fails every read.
struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

/// Fails every write.
struct Closed;

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn read_and_write_errors_are_reported() {
    let e = engine(Strategy::Placeholder);
    let mut out = Vec::new();
    let err = e.stream("stdout").pump(Broken, &mut out).unwrap_err();
    assert!(
        matches!(&err, RedactError::Read { source } if source.to_string() == "disk on fire"),
        "{err:?}"
    );
    let input = planted_log(1_000_000, 5);
    let err = e
        .stream("stdout")
        .pump(Pieces::new(input, vec![CHUNK]), &mut Closed)
        .unwrap_err();
    assert!(
        matches!(&err, RedactError::Write { source } if source.kind() == io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
}

/// Yields one line per read, and only once the line before it has come
/// out the other end.
struct Interactive {
    lines: Vec<String>,
    k: usize,
    seen: Arc<Mutex<Vec<u8>>>,
    late: Arc<Mutex<Vec<usize>>>,
}

impl Read for Interactive {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.k > 0 {
            let want = format!("line {}", self.k - 1);
            let start = Instant::now();
            while !String::from_utf8_lossy(&self.seen.lock().unwrap()).contains(&want) {
                if start.elapsed() > Duration::from_secs(10) {
                    self.late.lock().unwrap().push(self.k - 1);
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let Some(line) = self.lines.get(self.k) else {
            return Ok(0);
        };
        self.k += 1;
        buf[..line.len()].copy_from_slice(line.as_bytes());
        Ok(line.len())
    }
}

/// Appends to a shared buffer.
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_line_is_forwarded_before_the_next_read() {
    let e = engine(Strategy::Placeholder);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let late = Arc::new(Mutex::new(Vec::new()));
    let lines = (0..20)
        .map(|k| format!("line {k} mail ops{k}@example.com at 10.0.0.{k}\n"))
        .collect();
    let reader = Interactive {
        lines,
        k: 0,
        seen: Arc::clone(&seen),
        late: Arc::clone(&late),
    };
    let mut s = e.stream("stdout");
    s.pump(reader, &mut Shared(Arc::clone(&seen))).unwrap();
    assert_eq!(*late.lock().unwrap(), Vec::<usize>::new());
    let out = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
    assert!(out.starts_with("line 0 mail [REDACTED:EMAIL] at [REDACTED:IPV4]\n"));
    assert_eq!(s.receipts().iter().map(|r| r.count).sum::<u64>(), 40);
}

/// Counts bytes, keeps none.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn memory_stays_flat() {
    let e = engine(Strategy::Placeholder);
    let input = planted_log(200_000, 7).repeat(40);
    let mut s = e.stream("stdout");
    let mut sink = Sink(0);
    s.pump(Pieces::new(input, vec![CHUNK]), &mut sink).unwrap();
    assert!(sink.0 > 4_000_000, "{}", sink.0);
    assert!(s.peak_held() < 3 * CHUNK, "{}", s.peak_held());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn pumped_output_is_the_one_thread_output(
        input in fragments(),
        repeat in 1usize..150,
        // Small reads, and reads large enough that the finder leaves
        // stretches to the other thread.
        sizes in prop::collection::vec(prop_oneof![1usize..3000, 14_000usize..70_000], 1..8),
        strategy in prop::sample::select(vec![Strategy::Placeholder, Strategy::Mask, Strategy::Hash, Strategy::Remove]),
    ) {
        let e = full_engine(strategy);
        let input = input.repeat(repeat);
        let want = run(&e, &input, &[]);
        prop_assert_eq!(pumped(&e, &input, sizes), want);
    }
}
