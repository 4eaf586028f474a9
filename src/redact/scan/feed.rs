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

use std::collections::VecDeque;

use super::{AtTrigger, NUM, Scan, run_at};
use crate::redact::detect::{Hit, MAX_LOOKBEHIND, MAX_REACH, numeric};
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
    // The runner settles them: that balances the two threads better.
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
    /// absolute `base`. Returns the position before which every trigger has
    /// been found.
    pub fn find(&mut self, w: &Window, base: u64, out: &mut Vec<Trigger>) -> u64 {
        self.scan.drive(w, base, &mut Record(out));
        self.scan.done
    }

    /// Earliest absolute position the finder may still read.
    pub fn keep_from(&self) -> u64 {
        self.scan.keep_from()
    }
}

/// The detecting half: runs the detectors at the triggers a [`Finder`] found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runner {
    /// Triggers not run yet (or, with `partial`, not finished).
    queue: VecDeque<Trigger>,
    /// Every trigger before this has been queued.
    found_to: u64,
    /// Kinds still to run at the first queued trigger.
    partial: Option<u8>,
    /// Retry only once the window reaches this absolute length.
    retry_at: u64,
}

impl Runner {
    /// Queue `triggers`, found before `found_to`.
    pub fn feed(&mut self, triggers: &[Trigger], found_to: u64) {
        self.queue.extend(triggers);
        self.found_to = self.found_to.max(found_to);
    }

    /// Run the detectors at the queued triggers whose input has arrived. `w`
    /// starts at absolute `base` and holds every byte the finder has seen.
    pub fn advance(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) {
        let end = base + w.len() as u64;
        if !w.eof && end < self.retry_at {
            return;
        }
        while let Some(&t) = self.queue.front() {
            let p = (t.pos - base) as usize;
            let kinds = match self.partial {
                Some(left) => left,
                // The commonest numbers, as the one-thread scanner settles them.
                None if t.kinds == NUM && numeric::ordinary(w.bytes, p) => {
                    self.queue.pop_front();
                    continue;
                }
                None => t.kinds,
            };
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
    }

    /// Triggers before this have all been run.
    fn done(&self) -> u64 {
        self.queue.front().map_or(self.found_to, |t| t.pos)
    }

    /// No detection from triggers still to come can start before this.
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        frontier(self.done(), w, base)
    }

    /// Earliest absolute position the runner may still read.
    pub fn keep_from(&self) -> u64 {
        self.done().saturating_sub(MAX_LOOKBEHIND as u64)
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
