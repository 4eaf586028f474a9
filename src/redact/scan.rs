//! The byte-class scanner: finds the positions where a character-class
//! detector (numbers, IBANs, IPv6, email, URLs, assignments) could match, 64
//! bytes at a time, and runs the detectors there.
//!
//! Each 64-byte block (plus 16 bytes of lookahead) is classified with 16-byte
//! SIMD compares into one bit mask per byte class, and the trigger positions of
//! every kind are computed from those masks with shifts and carries (the
//! technique of simdjson). Ordinary log text yields about one trigger per line,
//! so detectors run rarely and the common case costs a few instructions per
//! byte. The exact trigger rules are spelled out in [`reference`], a plain
//! byte-by-byte version the tests compare the block version against.
//!
//! Blocks sit at absolute multiples of 64 and carry their run state from one
//! block to the next, so the triggers found never depend on how the stream was
//! chunked. A block that has not fully arrived is scanned up to its last line
//! break: no trigger before a line break depends on what follows it.

use wide::u8x16;

use super::detect::{Hit, MAX_LOOKBEHIND, MAX_REACH, assign, email, iban, network, numeric};
use super::text::{Pending, Window};

/// Block size.
const BLOCK: usize = 64;
/// Lookahead bytes classified with each block (triggers look 3 bytes ahead).
const AHEAD: usize = 16;

// Byte classes (bit indices).
const D: usize = 0; // digit
const W: usize = 1; // word: alnum or _
const X: usize = 2; // hex digit
const U: usize = 3; // upper-case letter
const C: usize = 4; // :
const DOT: usize = 5; // .
const SEP: usize = 6; // number separator: space - . ( )
const ZWF: usize = 7; // lead byte of a zero-width, soft-hyphen or fullwidth character
const SPECIAL: usize = 8; // @ or 0xEF
const OP: usize = 9; // = or :
const SUF: usize = 10; // last letter of a credential keyword
const QS: usize = 11; // quote or space between a key and its operator
const SL: usize = 12; // /
const NCLASS: usize = 13;

/// Trigger kinds, in the order detectors run at one position.
pub(crate) const NUM: u8 = 1;
pub(crate) const IBAN: u8 = 2;
pub(crate) const COLON: u8 = 4;
pub(crate) const URL: u8 = 8;
pub(crate) const ASSIGN: u8 = 16;
pub(crate) const AT: u8 = 32;

/// Class bits of one byte (`None`: no byte, before the stream or after its end).
pub(crate) fn class_bits(b: Option<u8>) -> u16 {
    let Some(b) = b else { return 0 };
    let lc = b | 0x20;
    let mut m = 0u16;
    let mut set = |c: usize, on: bool| m |= u16::from(on) << c;
    set(D, b.is_ascii_digit());
    set(W, b.is_ascii_alphanumeric() || b == b'_');
    set(X, b.is_ascii_hexdigit());
    set(U, b.is_ascii_uppercase());
    set(C, b == b':');
    set(DOT, b == b'.');
    set(SEP, matches!(b, b' ' | b'-' | b'.' | b'(' | b')'));
    set(ZWF, matches!(b, 0xE2 | 0xEF | 0xC2));
    set(SPECIAL, matches!(b, b'@' | 0xEF));
    set(OP, matches!(b, b'=' | b':'));
    set(
        SUF,
        b.is_ascii_alphabetic() && assign::SUFFIX_LETTERS.contains(&lc),
    );
    set(QS, matches!(b, b'"' | b'\'' | b' '));
    set(SL, b == b'/');
    m
}

#[inline(always)]
fn in_range(v: u8x16, lo: u8, n: u8) -> u8x16 {
    let s = v - u8x16::splat(lo);
    s.min(u8x16::splat(n - 1)).simd_eq(s)
}

#[inline(always)]
fn eq(v: u8x16, b: u8) -> u8x16 {
    v.simd_eq(u8x16::splat(b))
}

/// Class masks of 16 bytes.
#[inline(always)]
fn classify16(bytes: &[u8; 16], out: &mut [u128; NCLASS], shift: u32) {
    let v = u8x16::new(*bytes);
    let lc = v | u8x16::splat(0x20);
    let d = in_range(v, b'0', 10);
    let l = in_range(lc, b'a', 26);
    let dot = eq(v, b'.');
    let colon = eq(v, b':');
    let space = eq(v, b' ');
    let ef = eq(v, 0xEF);
    let suf = eq(lc, b'd') | eq(lc, b't') | eq(lc, b'n') | eq(lc, b'y') | eq(lc, b's');
    let masks = [
        d,
        d | l | eq(v, b'_'),
        d | in_range(lc, b'a', 6),
        in_range(v, b'A', 26),
        colon,
        dot,
        space | dot | eq(v, b'-') | eq(v, b'(') | eq(v, b')'),
        ef | eq(v, 0xE2) | eq(v, 0xC2),
        ef | eq(v, b'@'),
        colon | eq(v, b'='),
        suf & l,
        space | eq(v, b'"') | eq(v, b'\''),
        eq(v, b'/'),
    ];
    for (o, m) in out.iter_mut().zip(masks) {
        *o |= u128::from(m.to_bitmask()) << shift;
    }
}

/// Trigger masks of one block, bit `i` for absolute position `block + i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Triggers {
    /// One mask per kind, in kind-bit order.
    pub kinds: [u64; 6],
    /// A good digit run continues past the block.
    pub num_carry: bool,
    /// A good hex run continues past the block.
    pub hex_carry: bool,
}

/// Compute the triggers of the block starting at `start` in `bytes` (bytes past
/// the end read as "no byte"). `prev` are the up to 9 bytes before the block,
/// most recent last, shorter at the start of the stream.
pub(crate) fn block_triggers(
    bytes: &[u8],
    start: usize,
    prev: &[u8],
    num_carry: bool,
    hex_carry: bool,
) -> Triggers {
    let mut m = [0u128; NCLASS];
    let mut chunk = [0u8; 16];
    for k in 0..(BLOCK + AHEAD) / 16 {
        let from = start + k * 16;
        let avail = bytes.len().saturating_sub(from).min(16);
        if avail == 16 {
            chunk.copy_from_slice(&bytes[from..from + 16]);
        } else {
            chunk = [0; 16];
            if avail > 0 {
                chunk[..avail].copy_from_slice(&bytes[from..from + avail]);
            }
        }
        classify16(&chunk, &mut m, (k * 16) as u32);
    }
    // A real 0x00 byte and padding both classify as "no class"; padding then
    // behaves like the end of the stream, as the rules require.
    let p1 = class_bits(prev.last().copied());
    let p2 = class_bits(prev.len().checked_sub(2).map(|i| prev[i]));
    let bit = |bits: u16, c: usize| u128::from((bits >> c) & 1);
    let shl1 = |c: usize| (m[c] << 1) | bit(p1, c);
    let shl2 = |c: usize| (m[c] << 2) | (bit(p1, c) << 1) | bit(p2, c);
    const LOW: u128 = u64::MAX as u128;
    let low = |x: u128| (x & LOW) as u64;

    // Numbers: runs of digits that start a number, ending before a non-word byte
    // and followed by a separator and another digit, by a zero-width or fullwidth
    // character, or at least 9 digits long.
    let starts = low(m[D] & !shl1(W) & !(shl1(SEP) & shl2(D)));
    let d64 = low(m[D]);
    let (sum, c1) = d64.overflowing_add(starts | u64::from(num_carry));
    let after = sum & !d64;
    let sep_digit = m[SEP] & ((m[D] >> 1) | ((m[SEP] >> 1) & (m[D] >> 2)));
    let mut prev_digits = 0u128;
    for (k, &b) in prev.iter().rev().take(9).enumerate() {
        prev_digits |= u128::from(b.is_ascii_digit()) << (8 - k);
    }
    let e = (m[D] << 9) | prev_digits;
    let a1 = e & (e >> 1);
    let a2 = a1 & (a1 >> 2);
    let a4 = a2 & (a2 >> 4);
    let long = low(a4 & (e >> 8));
    let num = after & !low(m[W]) & (low(sep_digit | m[ZWF]) | long);

    let iban = low(m[U] & (m[U] >> 1) & (m[D] >> 2) & (m[D] >> 3) & !shl1(W));

    // IPv6: the first colon of a token whose hex run (possibly empty) follows a
    // byte that is not a word byte, colon or dot.
    let not_glued = !(shl1(W) | shl1(C) | shl1(DOT));
    let good_hex = low(m[X] & not_glued);
    let x64 = low(m[X]);
    let (hsum, c2) = x64.overflowing_add(good_hex | u64::from(hex_carry));
    let hafter = hsum & !x64;
    let colon = low(m[C]) & (hafter | low(not_glued)) & low((m[X] | m[C]) >> 1);

    let url = low(m[C] & (m[SL] >> 1) & (m[SL] >> 2));
    let assign = low(m[OP] & (shl1(SUF) | (shl1(QS) & shl2(SUF))));
    let at = low(m[SPECIAL]);
    Triggers {
        kinds: [num, iban, colon, url, assign, at],
        num_carry: c1,
        hex_carry: c2,
    }
}

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
    /// Trigger kinds to look for.
    kinds: u8,
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
            kinds,
        }
    }

    /// Scan what has arrived. `w` starts at absolute `base`.
    pub fn advance(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) {
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
            let prev = &w.bytes[rel.saturating_sub(9)..rel];
            let t = block_triggers(w.bytes, rel, prev, self.num_carry, self.hex_carry);
            let mut union = 0u64;
            for (i, mask) in t.kinds.iter().enumerate() {
                if self.kinds & (1 << i) != 0 {
                    union |= mask;
                }
            }
            let first = (self.done.max(self.block) - self.block) as u32;
            let stop = (limit.min(end + 1) - self.block) as u32;
            union &= u64::MAX.checked_shl(first).unwrap_or(0);
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
                let mut sink = |h: Hit| hits(base, h);
                if let Err((pending, left)) = run_at(w, p, kinds, &mut sink) {
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

    /// No detection from triggers still to come can start before this.
    pub fn frontier(&self, w: &Window, base: u64) -> u64 {
        let done = self.done;
        let reach = done.saturating_sub(MAX_REACH as u64).max(base);
        let from = (reach - base) as usize;
        let to = ((done - base) as usize).min(w.len());
        match memchr::memrchr(b'\n', &w.bytes[from.min(to)..to]) {
            Some(i) => base + (from + i) as u64 + 1,
            None => reach,
        }
    }

    /// Earliest absolute position the scanner may still read.
    pub fn keep_from(&self) -> u64 {
        self.block
            .min(self.done)
            .saturating_sub(MAX_LOOKBEHIND as u64)
    }
}

/// The trigger rules, one byte at a time: the specification [`block_triggers`]
/// implements.
#[cfg(test)]
pub(crate) mod reference {
    use super::*;

    /// Trigger kinds at every position of a complete stream.
    pub(crate) fn triggers(b: &[u8]) -> Vec<(usize, u8)> {
        let at = |i: isize| -> u16 {
            if i < 0 {
                0
            } else {
                class_bits(b.get(i as usize).copied())
            }
        };
        let is = |i: isize, c: usize| at(i) >> c & 1 == 1;
        let mut out = Vec::new();
        for i in 0..=b.len() as isize {
            let mut kinds = 0u8;
            // NUM: i is right after a digit run [s, i).
            if !is(i, D) && is(i - 1, D) {
                let mut s = i - 1;
                while is(s - 1, D) {
                    s -= 1;
                }
                let good = !(is(s - 1, W) || (is(s - 1, SEP) && is(s - 2, D)));
                let follow = is(i, ZWF)
                    || i - s >= 9
                    || (is(i, SEP) && (is(i + 1, D) || (is(i + 1, SEP) && is(i + 2, D))));
                if good && !is(i, W) && follow {
                    kinds |= NUM;
                }
            }
            if is(i, U) && is(i + 1, U) && is(i + 2, D) && is(i + 3, D) && !is(i - 1, W) {
                kinds |= IBAN;
            }
            if is(i, C) && (is(i + 1, X) || is(i + 1, C)) {
                let mut s = i;
                while is(s - 1, X) {
                    s -= 1;
                }
                if !(is(s - 1, W) || is(s - 1, C) || is(s - 1, DOT)) {
                    kinds |= COLON;
                }
            }
            if is(i, C) && is(i + 1, SL) && is(i + 2, SL) {
                kinds |= URL;
            }
            if is(i, OP) && (is(i - 1, SUF) || (is(i - 1, QS) && is(i - 2, SUF))) {
                kinds |= ASSIGN;
            }
            if is(i, SPECIAL) {
                kinds |= AT;
            }
            if kinds != 0 {
                out.push(i as usize);
                out.push(kinds as usize);
            }
        }
        out.chunks(2).map(|p| (p[0], p[1] as u8)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Trigger kinds of a complete stream, computed block by block.
    fn blockwise(b: &[u8]) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        let (mut nc, mut hc) = (false, false);
        let mut start = 0;
        while start <= b.len() {
            let prev = &b[start.saturating_sub(9)..start];
            let t = block_triggers(b, start, prev, nc, hc);
            for i in 0..64 {
                let mut kinds = 0u8;
                for (k, m) in t.kinds.iter().enumerate() {
                    kinds |= (((m >> i) & 1) as u8) << k;
                }
                if kinds != 0 && start + i <= b.len() {
                    out.push((start + i, kinds));
                }
            }
            nc = t.num_carry;
            hc = t.hex_carry;
            start += 64;
        }
        out
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let atoms = prop::sample::select(vec![
            "0", "1", "9", "12", "4111", " ", "-", ".", "(", ")", ":", "/", "=", "@", "a", "f",
            "G", "Z", "DE", "s", "d", "\"", "'", "_", "\n", "\u{200B}", "４", "＠", "\u{AD}", "é",
            "\0", "\u{FF}",
        ]);
        prop::collection::vec(atoms, 0..160).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn block_masks_follow_the_byte_rules(b in text()) {
            prop_assert_eq!(blockwise(&b), reference::triggers(&b));
        }
    }

    #[test]
    fn ordinary_log_lines_trigger_rarely() {
        let line = b"2024-05-14T09:21:33.482Z INFO  [worker-3] request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d method=GET path=/api/v1/users/48213 status=200 duration_ms=37 bytes=5123\n";
        let n = reference::triggers(line).len();
        assert!(n <= 8, "{n} triggers: {:?}", reference::triggers(line));
    }
}
