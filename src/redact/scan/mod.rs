//! The byte-class scanner: finds the positions where a character-class
//! detector (numbers, IBANs, IPv6, email, URLs, assignments) could match, 64
//! bytes at a time, and runs the detectors there.
//!
//! Each 64-byte block is classified with 16-byte SIMD compares into bit masks
//! of a few byte classes (rare bytes are then split one by one), and the trigger positions of
//! every kind are computed from those masks with shifts and carries (the
//! technique of simdjson). Ordinary log text yields about one trigger per line,
//! so detectors run rarely and the common case costs a few instructions per
//! byte. The exact trigger rules are spelled out in `reference`, a plain
//! byte-by-byte version the tests compare the block version against.
//!
//! Blocks sit at absolute multiples of 64 and carry their run state from one
//! block to the next, so the triggers found never depend on how the stream was
//! chunked. A block that has not fully arrived is scanned up to its last line
//! break: no trigger before a line break depends on what follows it.

mod classify;
mod feed;
#[cfg(test)]
pub(crate) mod reference;

pub(crate) use feed::{Finder, Runner, Scanner, Stretch, Trigger};

pub(crate) use classify::{ASSIGN, AT, COLON, IBAN, NUM, URL};
use classify::{BLOCK, Classes, block_triggers, classify};

use super::detect::{Hit, MAX_LOOKBEHIND, assign, email, iban, network, numeric};
use super::text::{Pending, Window};

/// Run the detectors of `kinds` at `p`; `Err` when one needs more input (the
/// kinds still to run are returned).
fn run_at(
    w: &Window,
    p: usize,
    kinds: u8,
    hits: &mut impl FnMut(Hit),
) -> Result<(), (Pending, u8)> {
    let mut left = kinds;
    while left != 0 {
        let k = left & left.wrapping_neg();
        let r = match k {
            NUM => numeric::at_run_end(w, p),
            IBAN => iban::at_country(w, p),
            COLON => network::at_colon(w, p),
            URL => network::at_scheme(w, p),
            ASSIGN => assign::at_operator(w, p),
            _ => special(w, p),
        };
        match r {
            Ok(Some(h)) => hits(h),
            Ok(None) => {}
            Err(pending) => return Err((pending, left)),
        }
        left &= !k;
    }
    Ok(())
}

/// What the scanner does at a trigger position: run the detectors there
/// (one thread does everything) or only note the position for a detector
/// thread (`feed`).
pub(crate) trait AtTrigger {
    /// Whether the scanner settles the commonest numbers itself
    /// (`numeric::ordinary`) instead of handing them on.
    const SETTLE_ORDINARY: bool = true;

    /// Handle the trigger at window index `p` (absolute `base + p`) with
    /// `kinds`; `Err` when a detector needs more input, with the kinds still
    /// to run there.
    fn at(&mut self, w: &Window, base: u64, p: usize, kinds: u8) -> Result<(), (Pending, u8)>;
}

/// Run the detectors at each trigger and report their hits.
struct Detect<'a, F>(&'a mut F);

impl<F: FnMut(u64, Hit)> AtTrigger for Detect<'_, F> {
    #[inline(always)]
    fn at(&mut self, w: &Window, base: u64, p: usize, kinds: u8) -> Result<(), (Pending, u8)> {
        let hits = &mut *self.0;
        run_at(w, p, kinds, &mut |h| hits(base, h))
    }
}

/// `@`, or a byte 0xEF: a fullwidth `＠` or a fullwidth digit.
fn special(w: &Window, p: usize) -> Result<Option<Hit>, Pending> {
    if w.bytes[p] == b'@' {
        return email::at_sign(w, p, 1);
    }
    match w.slice(p, p + 3)? {
        [0xEF, 0xBC, 0xA0] => email::at_sign(w, p, 3),
        [0xEF, 0xBC, 0x90..=0x99] => numeric::at_digit(w, p),
        _ => Ok(None),
    }
}

/// The scanner's progress through one stream.
#[derive(Clone, Debug)]
pub(crate) struct Scan {
    /// Absolute start of the block being scanned.
    block: u64,
    /// Triggers before this absolute position are done.
    done: u64,
    /// Kinds still to run at `done` (all kinds when 0... see `partial`).
    partial: Option<u8>,
    /// Retry only once the window reaches this absolute length.
    retry_at: u64,
    num_carry: bool,
    hex_carry: bool,
    /// Classes of the block before `block`.
    prev: Classes,
    /// Trigger kinds to look for.
    kinds: u8,
    /// Scan no block at or after this absolute position (a block boundary).
    until: u64,
}

impl Scan {
    /// A scanner at the start of a stream, looking for `kinds`.
    pub fn new(kinds: u8) -> Self {
        Scan {
            block: 0,
            done: 0,
            partial: None,
            retry_at: 0,
            num_carry: false,
            hex_carry: false,
            prev: Classes::default(),
            kinds,
            until: u64::MAX,
        }
    }

    /// Whether the scanner's state at block boundary `at` (an index of
    /// `bytes`, absolute position a multiple of [`BLOCK`]) follows from the
    /// bytes alone: the byte before it is not a hex digit, so no digit or hex
    /// run carries into the block, and the classes of the block before it are
    /// those of its bytes.
    pub fn clean_boundary(bytes: &[u8], at: usize) -> bool {
        at >= BLOCK && at <= bytes.len() && !bytes[at - 1].is_ascii_hexdigit()
    }

    /// A scanner that starts at the clean boundary `at` of `bytes` (absolute
    /// `base + at`) and stops before absolute `until`: it finds the triggers
    /// a scanner started at the beginning of the stream finds there.
    pub fn starting_at(bytes: &[u8], at: usize, base: u64, kinds: u8, until: u64) -> Self {
        debug_assert!(Self::clean_boundary(bytes, at));
        let pos = base + at as u64;
        Scan {
            block: pos,
            done: pos,
            prev: classify(bytes, at - BLOCK),
            until,
            ..Scan::new(kinds)
        }
    }

    /// Stop before absolute `until` (a block boundary at or after the block
    /// being scanned).
    pub fn stop_at(&mut self, until: u64) {
        self.until = until;
    }

    /// Whether every block before `until` has been scanned.
    pub fn reached_until(&self) -> bool {
        self.block >= self.until && self.partial.is_none()
    }

    /// Scan what has arrived and run the detectors at its triggers. `w`
    /// starts at absolute `base`.
    pub fn advance(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) {
        self.drive(w, base, &mut Detect(hits));
    }

    /// Scan what has arrived, handing each trigger to `act`.
    #[inline(always)]
    pub(crate) fn drive(&mut self, w: &Window, base: u64, act: &mut impl AtTrigger) {
        let end = base + w.len() as u64;
        if self.kinds == 0 {
            self.done = end;
            self.block = end - end % BLOCK as u64;
            return;
        }
        if !w.eof && end < self.retry_at {
            return;
        }
        loop {
            if self.partial.is_none() && self.done == self.block && !self.hot(w, base, act) {
                return;
            }
            if self.block >= self.until {
                return;
            }
            let complete = self.block + (BLOCK + 3) as u64 <= end || w.eof;
            let limit = if complete {
                // At the end of the stream, position `end` itself can still be
                // the end of a digit run; nothing triggers further out.
                self.block + BLOCK as u64
            } else {
                let from = (self.done.max(self.block) - base) as usize;
                match memchr::memrchr(b'\n', &w.bytes[from.min(w.len())..]) {
                    Some(i) => base + (from + i) as u64 + 1,
                    None => return,
                }
            };
            if w.eof && self.block > end {
                self.done = end;
                return;
            }
            let rel = (self.block - base) as usize;
            let cur = classify(w.bytes, rel);
            let next = classify(w.bytes, rel + BLOCK);
            let t = block_triggers(
                w.bytes,
                rel,
                &self.prev,
                &cur,
                &next,
                self.num_carry,
                self.hex_carry,
                self.kinds,
            );
            let mut union = t.union;
            if self.done > self.block {
                union &= u64::MAX
                    .checked_shl((self.done - self.block) as u32)
                    .unwrap_or(0);
            }
            let stop = limit.min(end + 1) - self.block;
            if stop < 64 {
                union &= (1u64 << stop) - 1;
            }
            while union != 0 {
                let i = union.trailing_zeros();
                union &= union - 1;
                let p = rel + i as usize;
                let mut kinds = 0u8;
                for (k, mask) in t.kinds.iter().enumerate() {
                    kinds |= (((mask >> i) & 1) as u8) << k;
                }
                kinds &= self.kinds;
                if self.done == self.block + u64::from(i)
                    && let Some(left) = self.partial
                {
                    kinds &= left;
                }
                self.done = self.block + u64::from(i);
                if let Err((pending, left)) = act.at(w, base, p, kinds) {
                    self.partial = Some(left);
                    // Back off geometrically so a long pending read stays linear.
                    let waited = end - self.done;
                    self.retry_at = (base + pending.need as u64 + 1).max(self.done + 2 * waited);
                    return;
                }
                self.partial = None;
            }
            self.partial = None;
            self.done = limit;
            if complete {
                self.num_carry = t.num_carry;
                self.hex_carry = t.hex_carry;
                self.prev = cur;
                self.block += BLOCK as u64;
                self.done = self.block;
                if w.eof && self.block > end {
                    self.done = end;
                    return;
                }
            } else {
                return;
            }
        }
    }

    /// The common case: whole blocks with their lookahead present and nothing
    /// pending. Returns `false` when a detector waits for more input.
    #[inline(always)]
    fn hot<A: AtTrigger>(&mut self, w: &Window, base: u64, act: &mut A) -> bool {
        let bytes = w.bytes;
        let (mut prev, mut nc, mut hc) = (self.prev, self.num_carry, self.hex_carry);
        let mut rel = (self.block - base) as usize;
        // Each block's classes are computed once, as the lookahead of the
        // block before it; a block is only reached here once it has fully
        // arrived, so the classes carried over are complete.
        let mut cur = classify(bytes, rel);
        let until = self.until.saturating_sub(base).min(usize::MAX as u64) as usize;
        while rel + BLOCK + 3 <= bytes.len() && rel < until {
            let next = classify(bytes, rel + BLOCK);
            let t = block_triggers(bytes, rel, &prev, &cur, &next, nc, hc, self.kinds);
            let mut union = t.union;
            if union != 0 {
                let others = t.kinds[1] | t.kinds[2] | t.kinds[3] | t.kinds[4] | t.kinds[5];
                while union != 0 {
                    let i = union.trailing_zeros();
                    union &= union - 1;
                    let p = rel + i as usize;
                    let kinds = if others >> i & 1 == 0 {
                        // The commonest numbers are settled inline, without a call.
                        if A::SETTLE_ORDINARY && numeric::ordinary(bytes, p) {
                            continue;
                        }
                        NUM
                    } else {
                        let mut kinds = 0u8;
                        for (k, mask) in t.kinds.iter().enumerate() {
                            kinds |= (((mask >> i) & 1) as u8) << k;
                        }
                        kinds & self.kinds
                    };
                    if let Err((pending, left)) = act.at(w, base, p, kinds) {
                        // Hand over to the general path, which resumes here.
                        self.block = base + rel as u64;
                        self.done = self.block + u64::from(i);
                        self.partial = Some(left);
                        self.prev = prev;
                        self.num_carry = nc;
                        self.hex_carry = hc;
                        let end = base + bytes.len() as u64;
                        self.retry_at =
                            (base + pending.need as u64 + 1).max(self.done + 2 * (end - self.done));
                        return false;
                    }
                }
            }
            prev = cur;
            cur = next;
            nc = t.num_carry;
            hc = t.hex_carry;
            rel += BLOCK;
        }
        self.block = base + rel as u64;
        self.done = self.block;
        self.prev = prev;
        self.num_carry = nc;
        self.hex_carry = hc;
        true
    }

    /// No detection from triggers still to come can start before this.
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        feed::frontier(self.done, w, base)
    }

    /// Earliest absolute position the scanner may still read.
    pub fn keep_from(&self) -> u64 {
        self.block
            .min(self.done)
            .saturating_sub(MAX_LOOKBEHIND as u64)
    }
}
