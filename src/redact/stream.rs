//! One redacted stream: the bounded window of bytes in flight, the scanners'
//! progress, the detections not yet written and the receipts.
//!
//! Three kinds of scanner run independently over the same bytes (the byte-class
//! scanner, the literal scanner, one search per custom detector). Each knows a
//! *frontier*: no detection it has yet to report can start before it. Output is
//! written up to the lowest frontier; detections that overlap are merged into
//! one replacement (the union of their ranges, named after the one that starts
//! first, built-in detectors in [`DetectorKind`] order before custom ones).
//! Because every scanner's answers depend only on the bytes, never on where a
//! chunk ended, the output is the same for every chunking of the same input.
//!
//! Memory is bounded: the window keeps 512 bytes (`detect::MAX_LOOKBEHIND`) behind the
//! scanners plus whatever a detector waiting for more input may read ahead
//! (bounded per detector, at most a JWT's 16 KiB or a custom pattern's longest
//! match), and a replaced value is consumed as it streams past, never buffered.
//! Line-oriented output is released line by line: no built-in detection except
//! a PEM block spans a line break.
//!
//! [`DetectorKind`]: super::DetectorKind

use std::sync::Arc;

use super::custom::Cursor;
use super::engine::Engine;
use super::literal::{Literals, PemEvent};
use super::replace::{Receipts, Value, replacement};
use super::scan::{Runner, Scan, Scanner, Stretch, Trigger};
use super::text::Window;
use super::{DetectorKind, Label, StreamFilter};
use crate::report::RedactionReceipt;

/// Drop consumed bytes once this many have piled up at the front.
const COMPACT_AT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cand {
    start: u64,
    end: u64,
    label: Label,
}

/// A PEM block whose end is not known yet.
#[derive(Clone, Copy, Debug)]
struct OpenPem {
    start: u64,
    /// It covers at least `[start, committed)`.
    committed: u64,
}

/// The replacement being written.
struct Active {
    end: u64,
    label: Label,
    value: Value,
}

/// A redacting filter over one byte stream. Implements [`StreamFilter`].
pub struct Stream {
    engine: Arc<Engine>,
    name: String,
    buf: Vec<u8>,
    base: u64,
    eof: bool,
    scan: Scanner,
    literals: Literals,
    cursors: Vec<Cursor>,
    /// Detections not yet written, sorted; `pool[head..]` are live.
    pool: Vec<Cand>,
    head: usize,
    fresh: Vec<Cand>,
    pem: Option<OpenPem>,
    emitted: u64,
    active: Option<Active>,
    receipts: Receipts,
    /// Largest number of bytes held at once (for tests and benchmarks).
    peak: usize,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.name)
            .field("held", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Stream {
    pub(crate) fn new(engine: Arc<Engine>, name: &str) -> Stream {
        Stream {
            scan: Scanner::Inline(Scan::new(engine.scan_kinds)),
            literals: Literals::new(engine.literals, engine.pem),
            cursors: vec![Cursor::default(); engine.custom.len()],
            engine,
            name: name.to_string(),
            buf: Vec::new(),
            base: 0,
            eof: false,
            pool: Vec::new(),
            head: 0,
            fresh: Vec::new(),
            pem: None,
            emitted: 0,
            active: None,
            receipts: Receipts::default(),
            peak: 0,
        }
    }

    /// What has been replaced so far: per detector, a count and the keyed
    /// fingerprints of distinct values (never the values).
    pub fn receipts(&self) -> Vec<RedactionReceipt> {
        self.receipts.to_report(&self.name, |l| self.engine.name(l))
    }

    /// Largest number of input bytes this stream has held at once.
    pub fn peak_held(&self) -> usize {
        self.peak
    }

    /// The engine this stream runs.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether nothing has been pushed yet.
    pub(crate) fn is_fresh(&self) -> bool {
        self.base == 0 && self.buf.is_empty() && !self.eof
    }

    /// Let another thread find the byte-class triggers (a fresh stream
    /// only): from now on bytes come in through [`Stream::push_found`].
    pub(crate) fn hand_off_finding(&mut self) {
        debug_assert!(self.is_fresh());
        self.scan = Scanner::Fed(Runner::new(self.engine.scan_kinds));
    }

    /// Consume `input` whose byte-class triggers (every one before absolute
    /// `found_to`, except in `stretches`, left to this stream to find)
    /// another thread has found; `eof` ends the stream.
    pub(crate) fn push_found(
        &mut self,
        input: &[u8],
        triggers: &[Trigger],
        found_to: u64,
        stretches: &[Stretch],
        eof: bool,
        out: &mut Vec<u8>,
    ) {
        if self.eof {
            return;
        }
        self.buf.extend_from_slice(input);
        if let Scanner::Fed(r) = &mut self.scan {
            let w = Window::new(&self.buf, false);
            r.feed(triggers, found_to, stretches, &w, self.base);
        }
        self.eof = eof;
        if eof || !input.is_empty() {
            self.process(out);
        }
    }

    /// Run the scanners over what has arrived and write what is settled.
    fn process(&mut self, out: &mut Vec<u8>) {
        self.peak = self.peak.max(self.buf.len());
        let w = Window::new(&self.buf, self.eof);
        let base = self.base;
        let engine = &*self.engine;
        let fresh = &mut self.fresh;
        let mut add = |b: u64, h: super::detect::Hit| {
            let label = Label::Builtin(h.kind);
            if engine.label_enabled(label) {
                fresh.push(Cand {
                    start: b + h.start as u64,
                    end: b + h.end as u64,
                    label,
                });
            }
        };
        self.scan.advance(&w, base, &mut add);
        let pem = &mut self.pem;
        let mut closed = Vec::new();
        self.literals
            .advance(&w, base, &mut add, &mut |ev| match ev {
                PemEvent::Open { start, committed } => *pem = Some(OpenPem { start, committed }),
                PemEvent::Grow { committed } => {
                    if let Some(p) = pem.as_mut() {
                        p.committed = committed;
                    }
                }
                PemEvent::Close { end } => {
                    if let Some(p) = pem.take() {
                        closed.push(Cand {
                            start: p.start,
                            end,
                            label: Label::Builtin(DetectorKind::PemPrivateKey),
                        });
                    }
                }
            });
        fresh.append(&mut closed);
        for (i, (cursor, compiled)) in self.cursors.iter_mut().zip(&engine.custom).enumerate() {
            let label = Label::Custom(i as u16);
            cursor.advance(compiled, &w, base, &mut |start, end| {
                fresh.push(Cand { start, end, label })
            });
        }
        let end = base + self.buf.len() as u64;
        let mut frontier = if self.eof {
            end
        } else {
            self.scan
                .frontier(&w, base)
                .min(self.literals.frontier(&w, base))
        };
        if !self.eof {
            for c in &self.cursors {
                frontier = frontier.min(c.frontier());
            }
        }
        if !self.fresh.is_empty() {
            debug_assert!(
                self.fresh
                    .iter()
                    .all(|c| c.start >= self.emitted || self.active.is_some())
            );
            self.pool.drain(..self.head);
            self.head = 0;
            self.pool.append(&mut self.fresh);
            self.pool
                .sort_unstable_by_key(|c| (c.start, c.label, c.end));
        }
        self.write(frontier.min(end), out);
        self.compact();
    }

    /// Write everything before `frontier` that is settled.
    fn write(&mut self, frontier: u64, out: &mut Vec<u8>) {
        let end = self.base + self.buf.len() as u64;
        loop {
            if let Some(act) = self.active.as_mut() {
                // Absorb every detection that overlaps the replacement.
                loop {
                    let mut grew = false;
                    while let Some(c) = self
                        .pool
                        .get(self.head)
                        .copied()
                        .filter(|c| c.start < act.end)
                    {
                        act.end = act.end.max(c.end);
                        self.head += 1;
                        grew = true;
                    }
                    if let Some(p) = self.pem
                        && p.start < act.end
                        && p.committed > act.end
                    {
                        act.end = p.committed;
                        grew = true;
                    }
                    if !grew {
                        break;
                    }
                }
                let to = act.end.min(end);
                if to > self.emitted {
                    let (a, b) = (
                        (self.emitted - self.base) as usize,
                        (to - self.base) as usize,
                    );
                    act.value.feed(&self.buf[a..b], out);
                    self.emitted = to;
                }
                let pem_open = self.pem.is_some_and(|p| p.start < act.end);
                if pem_open || act.end > frontier || self.emitted < act.end {
                    return;
                }
                let act = self.active.take().expect("checked above");
                let fp = act.value.finish();
                let name = self.engine.upper(&act.label);
                replacement(&name, self.engine.strategy, fp, out);
                self.receipts.record(act.label, fp);
                continue;
            }
            let cand = self.pool.get(self.head).copied();
            let pem = self.pem;
            let next = match (cand.map(|c| c.start), pem.map(|p| p.start)) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => u64::MAX,
            };
            if next >= frontier {
                self.raw(frontier.min(end), out);
                return;
            }
            self.raw(next.max(self.emitted), out);
            let mut label = None::<Label>;
            let mut act_end = next;
            if let Some(c) = cand.filter(|c| c.start == next) {
                self.head += 1;
                act_end = c.end;
                label = Some(c.label);
            }
            if let Some(p) = pem.filter(|p| p.start == next) {
                act_end = act_end.max(p.committed);
                let l = Label::Builtin(DetectorKind::PemPrivateKey);
                label = Some(label.map_or(l, |x| x.min(l)));
            }
            let label = label.expect("a detection starts at `next`");
            self.active = Some(Active {
                end: act_end,
                label,
                value: Value::new(&label, self.engine.strategy, self.engine.key.as_ref()),
            });
        }
    }

    /// Copy the input up to `to` unchanged.
    fn raw(&mut self, to: u64, out: &mut Vec<u8>) {
        if to > self.emitted {
            let (a, b) = (
                (self.emitted - self.base) as usize,
                (to - self.base) as usize,
            );
            out.extend_from_slice(&self.buf[a..b]);
            self.emitted = to;
        }
    }

    /// Drop bytes nobody will read again.
    fn compact(&mut self) {
        let mut keep = self
            .emitted
            .min(self.scan.keep_from())
            .min(self.literals.keep_from());
        for c in &self.cursors {
            keep = keep.min(c.keep_from());
        }
        let drop = keep.saturating_sub(self.base) as usize;
        if drop > 0 && (drop >= COMPACT_AT || drop * 2 >= self.buf.len()) {
            self.buf.drain(..drop);
            self.base += drop as u64;
        }
    }
}

impl StreamFilter for Stream {
    fn receipts(&self) -> Vec<RedactionReceipt> {
        Stream::receipts(self)
    }

    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.eof || input.is_empty() {
            return;
        }
        self.buf.extend_from_slice(input);
        self.process(out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.eof {
            return;
        }
        self.eof = true;
        self.process(out);
    }
}
