//! The byte-class scanner split in two halves that can run on two threads:
//! a [`Finder`] classifies blocks and lists the trigger positions, a
//! [`Runner`] runs the detectors at those positions.
//!
//! The finder is the ordinary [`Scan`] with one difference: at a trigger it
//! records the position and its kinds instead of running detectors. Which
//! positions trigger depends only on the bytes (never on detector results or
//! on chunking), so the list is the one the single-threaded scanner acts on,
//! in the same order. The runner takes the list and runs the same detectors
//! at the same positions with the same "wait for more input" rule, so the
//! hits, and therefore the output, are the same as with one thread.
//!
//! Neither half may run ahead of the bytes the other has: the finder reports
//! how far it has looked (`found_to`), and the runner's frontier never passes
//! it.
//!
//! To share the classifying too, the finder may skip a [`Stretch`] of the new
//! bytes and leave it to the runner, which scans it with a [`Scan`] of its
//! own. A stretch starts and ends at *clean* block boundaries, where the byte
//! before is not a hex digit: no digit or hex run carries across, so the
//! scanner's whole state there follows from the 64 bytes before it, and a
//! scanner started there finds exactly the triggers of one that came from
//! the start of the stream.

use std::collections::VecDeque;

use super::classify::BLOCK;
use super::{AtTrigger, Scan, run_at};
use crate::redact::detect::{Hit, MAX_LOOKBEHIND, MAX_REACH};
use crate::redact::text::{Pending, Window};

/// A position where detectors must run, and which ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trigger {
    /// Absolute stream position.
    pub pos: u64,
    /// Trigger kinds (`NUM`, `IBAN`, …).
    pub kinds: u8,
}

/// Record each trigger instead of running detectors there.
struct Record<'a>(&'a mut Vec<Trigger>);

impl AtTrigger for Record<'_> {
    // The detecting half settles them (`numeric::at_run_end` starts with the
    // same checks): that takes work off the finder, the busier half.
    const SETTLE_ORDINARY: bool = false;

    #[inline(always)]
    fn at(&mut self, _: &Window, base: u64, p: usize, kinds: u8) -> Result<(), (Pending, u8)> {
        self.0.push(Trigger {
            pos: base + p as u64,
            kinds,
        });
        Ok(())
    }
}

/// The classifying half: finds every trigger of a stream, in order.
#[derive(Clone, Debug)]
pub(crate) struct Finder {
    scan: Scan,
}

impl Finder {
    /// A finder at the start of a stream, looking for `kinds`.
    pub fn new(kinds: u8) -> Self {
        Finder {
            scan: Scan::new(kinds),
        }
    }

    /// Append the triggers in what has arrived to `out`. `w` starts at
    /// absolute `base`; the bytes from absolute `fresh` on are new. About
    /// `share` of the new bytes (a fraction, 0 for none) are left to the
    /// detecting half as stretches appended to `stretches`. Returns the
    /// position before which every trigger outside those stretches has been
    /// found.
    pub fn find(
        &mut self,
        w: &Window,
        base: u64,
        fresh: u64,
        share: f32,
        out: &mut Vec<Trigger>,
        stretches: &mut Vec<Stretch>,
    ) -> u64 {
        if let Some(s) = self.stretch(w, base, fresh, share) {
            self.scan.stop_at(s.from);
            self.scan.drive(w, base, &mut Record(out));
            debug_assert!(self.scan.reached_until());
            let at = (s.to - base) as usize;
            self.scan = Scan::starting_at(w.bytes, at, base, self.scan.kinds, u64::MAX);
            stretches.push(s);
        }
        self.scan.drive(w, base, &mut Record(out));
        self.scan.done
    }

    /// The stretch of new bytes to leave to the other half: from a clean
    /// boundary about `share` before the end of the new bytes to the last
    /// clean boundary well before that end.
    fn stretch(&self, w: &Window, base: u64, fresh: u64, share: f32) -> Option<Stretch> {
        const MIN_STRETCH: usize = 1024;
        let len = w.len();
        let new = len.saturating_sub((fresh - base) as usize);
        if self.scan.kinds == 0
            || w.eof
            || share <= 0.0
            || (new as f32 * share) < MIN_STRETCH as f32
        {
            return None;
        }
        // Block boundaries are absolute multiples of BLOCK.
        let align = |i: usize| i - ((base + i as u64) % BLOCK as u64) as usize;
        let from_target = align(len - (new as f32 * share) as usize);
        // The other half reads the block before the stretch, from the new bytes.
        let from_floor =
            ((self.scan.block.max(self.scan.done) - base) as usize).max(len - new + BLOCK);
        let clean = |i: &usize| Scan::clean_boundary(w.bytes, *i);
        let from = (from_target..len)
            .step_by(BLOCK)
            .take(16)
            .find(|i| *i >= from_floor && clean(i))?;
        let last = align(len - 4 * BLOCK);
        let to = (0..16)
            .map(|k| last - k * BLOCK)
            .take_while(|i| *i >= from + MIN_STRETCH / 2)
            .find(clean)?;
        Some(Stretch {
            from: base + from as u64,
            to: base + to as u64,
        })
    }

    /// Earliest absolute position the finder may still read.
    pub fn keep_from(&self) -> u64 {
        self.scan.keep_from()
    }
}

/// A stretch of the stream whose triggers the detecting half finds itself:
/// `from..to`, both clean block boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stretch {
    /// First position (absolute).
    pub from: u64,
    /// End (absolute).
    pub to: u64,
}

/// The detecting half: runs the detectors at the triggers a [`Finder`]
/// found, and scans the stretches the finder left to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runner {
    /// Triggers not run yet (or, with `partial`, not finished).
    queue: VecDeque<Trigger>,
    /// Every trigger before this has been queued, except those of `own`.
    found_to: u64,
    /// Kinds still to run at the first queued trigger.
    partial: Option<u8>,
    /// Retry only once the window reaches this absolute length.
    retry_at: u64,
    /// Stretches to scan here, in order, each with its scanner.
    own: VecDeque<Scan>,
    /// Trigger kinds to look for in them.
    kinds: u8,
}

impl Runner {
    /// A runner for a stream whose triggers are of `kinds`.
    pub fn new(kinds: u8) -> Self {
        Runner {
            kinds,
            ..Runner::default()
        }
    }

    /// Queue `triggers`, found before `found_to` except in `stretches`, which
    /// this side scans. `w` (from absolute `base`) holds the bytes they were
    /// found in.
    pub fn feed(
        &mut self,
        triggers: &[Trigger],
        found_to: u64,
        stretches: &[Stretch],
        w: &Window,
        base: u64,
    ) {
        self.queue.extend(triggers);
        self.found_to = self.found_to.max(found_to);
        for s in stretches {
            let at = (s.from - base) as usize;
            self.own
                .push_back(Scan::starting_at(w.bytes, at, base, self.kinds, s.to));
        }
    }

    /// Run the detectors at the queued triggers whose input has arrived, and
    /// scan this side's stretches in their turn. `w` starts at absolute
    /// `base` and holds every byte the finder has seen.
    pub fn advance(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) {
        let end = base + w.len() as u64;
        if !w.eof && end < self.retry_at {
            return;
        }
        loop {
            let before = self.own.front().map_or(u64::MAX, |s| s.block.min(s.done));
            while let Some(&t) = self.queue.front().filter(|t| t.pos < before) {
                let p = (t.pos - base) as usize;
                let kinds = self.partial.unwrap_or(t.kinds);
                if let Err((pending, left)) = run_at(w, p, kinds, &mut |h| hits(base, h)) {
                    self.partial = Some(left);
                    // Back off geometrically so a long pending read stays linear.
                    let waited = end - t.pos;
                    self.retry_at = (base + pending.need as u64 + 1).max(t.pos + 2 * waited);
                    return;
                }
                self.partial = None;
                self.queue.pop_front();
            }
            let Some(scan) = self.own.front_mut() else {
                return;
            };
            scan.advance(w, base, hits);
            if !scan.reached_until() {
                return;
            }
            self.own.pop_front();
        }
    }

    /// Triggers before this have all been run.
    fn done(&self) -> u64 {
        let queued = self.queue.front().map_or(u64::MAX, |t| t.pos);
        let own = self.own.front().map_or(u64::MAX, |s| s.done);
        queued.min(own).min(self.found_to)
    }

    /// No detection from triggers still to come can start before this.
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        frontier(self.done(), w, base)
    }

    /// Earliest absolute position the runner may still read.
    pub fn keep_from(&self) -> u64 {
        let own = self.own.front().map_or(u64::MAX, Scan::keep_from);
        self.done().saturating_sub(MAX_LOOKBEHIND as u64).min(own)
    }
}

/// The frontier of a scanner whose triggers before `done` have run: a
/// detection found later reaches back at most `MAX_REACH`, and not across a
/// line break.
pub(super) fn frontier(done: u64, w: &Window, base: u64) -> u64 {
    let reach = done.saturating_sub(MAX_REACH as u64).max(base);
    let from = (reach - base) as usize;
    let to = ((done - base) as usize).min(w.len());
    match memchr::memrchr(b'\n', &w.bytes[from.min(to)..to]) {
        Some(i) => base + (from + i) as u64 + 1,
        None => reach,
    }
}

/// The byte-class scanner of a stream: whole on this thread, or the detecting
/// half fed by a [`Finder`] on another.
#[derive(Clone, Debug)]
pub(crate) enum Scanner {
    /// Finds triggers and runs detectors.
    Inline(Scan),
    /// Runs detectors at triggers found elsewhere.
    Fed(Runner),
}

impl Scanner {
    /// Run the detectors over what has arrived.
    #[inline]
    pub fn advance(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) {
        match self {
            Scanner::Inline(s) => s.advance(w, base, hits),
            Scanner::Fed(r) => r.advance(w, base, hits),
        }
    }

    /// No detection still to come can start before this.
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        match self {
            Scanner::Inline(s) => s.frontier(w, base),
            Scanner::Fed(r) => r.frontier(w, base),
        }
    }

    /// Earliest absolute position still to be read.
    pub fn keep_from(&self) -> u64 {
        match self {
            Scanner::Inline(s) => s.keep_from(),
            Scanner::Fed(r) => r.keep_from(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::scan::{ASSIGN, AT, COLON, IBAN, NUM, URL};

    const KINDS: u8 = NUM | IBAN | COLON | URL | ASSIGN | AT;

    fn text() -> Vec<u8> {
        let mut out = Vec::new();
        let lines = crate::redact::tests::ORDINARY;
        let samples = crate::redact::tests::SAMPLES;
        for i in 0..3000 {
            out.extend_from_slice(lines[i % lines.len()].as_bytes());
            out.push(if i % 3 == 0 { b' ' } else { b'\n' });
            if i % 5 == 0 {
                out.extend_from_slice(samples[i % samples.len()].0.as_bytes());
                out.extend_from_slice(b" 0xdeadbeef 12345678901234\n");
            }
        }
        out
    }

    fn hits_of(scan: &mut Scanner, w: &Window, out: &mut Vec<(u64, Hit)>) {
        scan.advance(w, 0, &mut |b, h| out.push((b, h)));
    }

    #[test]
    fn stretches_left_to_the_runner_give_the_same_hits() {
        let bytes = text();
        let whole = Window::new(&bytes, true);
        let mut want = Vec::new();
        hits_of(&mut Scanner::Inline(Scan::new(KINDS)), &whole, &mut want);
        assert!(want.len() > 100);
        for (piece, share) in [(65_536, 0.3), (20_000, 0.5), (100_000, 0.9), (4_000, 0.3)] {
            let mut finder = Finder::new(KINDS);
            let mut runner = Scanner::Fed(Runner::new(KINDS));
            let (mut got, mut stretches_seen) = (Vec::new(), 0);
            let mut end = 0;
            while end < bytes.len() {
                let fresh = end as u64;
                end = (end + piece).min(bytes.len());
                let eof = end == bytes.len();
                let w = Window::new(&bytes[..end], eof);
                let (mut triggers, mut stretches) = (Vec::new(), Vec::new());
                let found_to = finder.find(&w, 0, fresh, share, &mut triggers, &mut stretches);
                stretches_seen += stretches.len();
                let Scanner::Fed(r) = &mut runner else {
                    unreachable!()
                };
                r.feed(&triggers, found_to, &stretches, &w, 0);
                hits_of(&mut runner, &w, &mut got);
            }
            assert_eq!(got, want, "pieces of {piece}, share {share}");
            assert_eq!(stretches_seen > 0, piece as f32 * share >= 1024.0);
        }
    }
}
