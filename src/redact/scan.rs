//! The byte-class scanner: finds the positions where a character-class
//! detector (numbers, IBANs, IPv6, email, URLs, assignments) could match, 64
//! bytes at a time, and runs the detectors there.
//!
//! Each 64-byte block is classified with 16-byte SIMD compares into bit masks
//! of a few byte classes (rare bytes are then split one by one), and the trigger positions of
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

// Byte classes (bit indices).
const D: usize = 0; // digit
const W: usize = 1; // word: alnum or _
const X: usize = 2; // hex digit
const U: usize = 3; // upper-case letter
const C: usize = 4; // :
const SEP: usize = 6; // number separator: space - . ( )
const ZWF: usize = 7; // lead byte of a zero-width, soft-hyphen or fullwidth character
const SPECIAL: usize = 8; // @ or 0xEF
const OP: usize = 9; // = or :
const QS: usize = 10; // quote or space between a key and its operator
const SL: usize = 11; // /
#[cfg(test)]
const PAIR: usize = 12; // with the byte before it, how a credential keyword ends

/// Trigger kinds, in the order detectors run at one position.
pub(crate) const NUM: u8 = 1;
pub(crate) const IBAN: u8 = 2;
pub(crate) const COLON: u8 = 4;
pub(crate) const URL: u8 = 8;
pub(crate) const ASSIGN: u8 = 16;
pub(crate) const AT: u8 = 32;

/// Classes of one byte on its own (every class but [`PAIR`]).
const fn single_class(b: u8) -> u16 {
    const fn on(c: usize, yes: bool) -> u16 {
        (yes as u16) << c
    }
    on(D, b.is_ascii_digit())
        | on(W, b.is_ascii_alphanumeric() || b == b'_')
        | on(X, b.is_ascii_hexdigit())
        | on(U, b.is_ascii_uppercase())
        | on(C, b == b':')
        | on(SEP, matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
        | on(ZWF, matches!(b, 0xE2 | 0xEF | 0xC2))
        | on(SPECIAL, matches!(b, b'@' | 0xEF))
        | on(OP, matches!(b, b'=' | b':'))
        | on(QS, matches!(b, b'"' | b'\'' | b' '))
        | on(SL, b == b'/')
}

static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = single_class(i as u8);
        i += 1;
    }
    t
};

/// For the last letter of a credential keyword, the set of letters that may
/// precede it (bits of `PREV_BIT`); `assign::KEYWORD_ENDINGS`, any case.
static LAST: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let lower = (i as u8).to_ascii_lowercase();
        t[i] = match lower {
            b'd' => PREV_R | PREV_W,
            b't' | b'y' => PREV_E,
            b'n' => PREV_E | PREV_O,
            b's' => PREV_L,
            _ => 0,
        };
        i += 1;
    }
    t
};
const PREV_R: u8 = 1;
const PREV_W: u8 = 2;
const PREV_E: u8 = 4;
const PREV_L: u8 = 8;
const PREV_O: u8 = 16;
static PREV_BIT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match (i as u8).to_ascii_lowercase() {
            b'r' => PREV_R,
            b'w' => PREV_W,
            b'e' => PREV_E,
            b'l' => PREV_L,
            b'o' => PREV_O,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// Whether `before, b` are the last two letters of a credential keyword
/// (`assign::KEYWORD_ENDINGS`, any case).
#[inline(always)]
fn is_pair(before: Option<u8>, b: u8) -> bool {
    LAST[usize::from(b)] & PREV_BIT[usize::from(before.unwrap_or(0))] != 0
}

/// Class bits of byte `b` preceded by `before` (`None`: no byte, before the
/// stream or after its end).
#[cfg(test)]
pub(crate) fn class_bits(before: Option<u8>, b: Option<u8>) -> u16 {
    let Some(b) = b else { return 0 };
    CLASS[usize::from(b)] | u16::from(is_pair(before, b)) << PAIR
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

/// The class masks of one block that the next block needs, bit `i` for byte `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    d: u64,
    w: u64,
    sep: u64,
    c: u64,
}

/// Vector masks of 16 bytes: digits, word bytes, hex digits, number
/// separators, colons, operators (`=` `:`), and the rare bytes `@`, 0xC2,
/// 0xE2, 0xEF (split one by one afterwards).
#[inline(always)]
pub(crate) fn classify16(bytes: &[u8; 16]) -> [u16; 7] {
    let v = u8x16::new(*bytes);
    let lc = v | u8x16::splat(0x20);
    let d = in_range(v, b'0', 10);
    let colon = eq(v, b':');
    let m = |x: u8x16| x.to_bitmask() as u16;
    [
        m(d),
        m(d | in_range(lc, b'a', 26) | eq(v, b'_')),
        m(d | in_range(lc, b'a', 6)),
        m(eq(v, b' ') | eq(v, b'.') | eq(v, b'-') | eq(v, b'(') | eq(v, b')')),
        m(colon),
        m(colon | eq(v, b'=')),
        // `lc` folds 0xCF onto 0xEF and 0xC2 onto 0xE2; the split sorts them out.
        m(eq(v, b'@') | eq(lc, 0xEF) | eq(lc, 0xE2)),
    ]
}

/// Bytes `from..from + 16` of `bytes`, zero past the end.
#[inline(always)]
fn chunk16(bytes: &[u8], from: usize) -> [u8; 16] {
    if let Some(c) = bytes.get(from..from + 16) {
        return c.try_into().expect("16 bytes");
    }
    let mut c = [0u8; 16];
    if from < bytes.len() {
        c[..bytes.len() - from].copy_from_slice(&bytes[from..]);
    }
    c
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
    /// This block's class masks: the next block's `prev`.
    pub masks: Masks,
    /// Union of the enabled kinds' masks.
    pub union: u64,
}

/// Compute the triggers of the block starting at `start` in `bytes` (bytes past
/// the end read as "no byte", like the end of the stream). `prev` are the
/// previous block's masks (all zero at the start of the stream); the carries
/// say whether a good digit or hex run reaches into this block.
#[inline(always)]
pub(crate) fn block_triggers(
    bytes: &[u8],
    start: usize,
    prev: &Masks,
    num_carry: bool,
    hex_carry: bool,
    enabled: u8,
) -> Triggers {
    let [k0, k1, k2, k3] = match bytes.get(start..start + BLOCK) {
        Some(block) => {
            let block: &[u8; BLOCK] = block.try_into().expect("a whole block");
            let (a, rest) = block.split_first_chunk::<16>().expect("16 bytes");
            let (b, rest) = rest.split_first_chunk::<16>().expect("16 bytes");
            let (c, d) = rest.split_first_chunk::<16>().expect("16 bytes");
            let d: &[u8; 16] = d.try_into().expect("16 bytes");
            [classify16(a), classify16(b), classify16(c), classify16(d)]
        }
        None => std::array::from_fn(|i| classify16(&chunk16(bytes, start + 16 * i))),
    };
    let join = |c: usize| {
        u64::from(k0[c]) | u64::from(k1[c]) << 16 | u64::from(k2[c]) << 32 | u64::from(k3[c]) << 48
    };
    let (d, w, x, sep, c, op) = (join(0), join(1), join(2), join(3), join(4), join(5));
    // Split the rare bytes (few, if any) by class.
    let (mut special, mut zwf) = (0u64, 0u64);
    let mut r = join(6);
    while r != 0 {
        let i = r.trailing_zeros();
        r &= r - 1;
        let cls = bytes
            .get(start + i as usize)
            .map_or(0, |&b| CLASS[usize::from(b)]);
        special |= u64::from(cls >> SPECIAL & 1) << i;
        zwf |= u64::from(cls >> ZWF & 1) << i;
    }
    // Classes of the three bytes after the block shift in from the top.
    let next: [u16; 3] = match bytes.get(start + BLOCK..start + BLOCK + 3) {
        Some(t) => [
            CLASS[usize::from(t[0])],
            CLASS[usize::from(t[1])],
            CLASS[usize::from(t[2])],
        ],
        None => std::array::from_fn(|i| {
            bytes
                .get(start + BLOCK + i)
                .map_or(0, |&b| CLASS[usize::from(b)])
        }),
    };
    let ahead =
        |cls: usize| next[0] >> cls & 1 | (next[1] >> cls & 1) << 1 | (next[2] >> cls & 1) << 2;
    let (nd, nw, nx, nsep, nc) = (ahead(D), ahead(W), ahead(X), ahead(SEP), ahead(C));
    let shr = |mask: u64, next: u16, n: u32| (mask >> n) | (u64::from(next) << (64 - n));
    let shl = |mask: u64, before: u64, n: u32| (mask << n) | (before >> (64 - n));

    // Numbers: runs of digits that start a number, ending before a non-word byte
    // and followed by a separator and another digit, by a zero-width or fullwidth
    // character, or at least 9 digits long.
    let w1 = shl(w, prev.w, 1);
    let cont = (shl(sep, prev.sep, 1) | shl(c, prev.c, 1)) & shl(d, prev.d, 2);
    let starts = d & !w1 & !cont;
    let (sum, c1) = d.overflowing_add(starts | u64::from(num_carry));
    let after = sum & !d;
    let sep_digit = sep & (shr(d, nd, 1) | (shr(sep, nsep, 1) & shr(d, nd, 2)));
    // Nine digits before: AND of the nine previous bits, by doubling over the
    // previous block and this one as one 128-bit word.
    let e = u128::from(d) << 64 | u128::from(prev.d);
    let a1 = e & (e << 1);
    let a2 = a1 & (a1 << 2);
    let a4 = a2 & (a2 << 4);
    let long = (((a4 << 1) & (e << 9)) >> 64) as u64;
    let num = after & !w & (sep_digit | zwf | long);

    // IBAN: two letters then two digits, not inside a word; the letters must
    // be upper case, checked byte by byte for the few candidates.
    let letters = w & !d;
    let mut iban = 0u64;
    let mut cand = letters
        & shr(letters, nw & !nd, 1)
        & shr(d, nd, 2)
        & shr(d, nd, 3)
        & !w1
        & enabled_mask(enabled, IBAN);
    while cand != 0 {
        let i = cand.trailing_zeros();
        cand &= cand - 1;
        let p = start + i as usize;
        if bytes[p].is_ascii_uppercase() && bytes.get(p + 1).is_some_and(u8::is_ascii_uppercase) {
            iban |= 1 << i;
        }
    }

    // IPv6: the first colon of a token whose hex run follows a byte that is not
    // a word byte or colon, then a hex digit or colon; or `::` alone.
    let not_glued = !(w1 | shl(c, prev.c, 1));
    let (hsum, c2) = x.overflowing_add((x & not_glued) | u64::from(hex_carry));
    let hafter = hsum & !x;
    let c_next = shr(c, nc, 1);
    let colon = c & ((hafter & (shr(x, nx, 1) | c_next)) | (not_glued & c_next));

    // `://` and credential assignments are rare enough to confirm byte by byte.
    let byte = |p: usize, back: usize| p.checked_sub(back).and_then(|i| bytes.get(i).copied());
    let mut url = 0u64;
    let mut colons = c & enabled_mask(enabled, URL);
    while colons != 0 {
        let i = colons.trailing_zeros() as usize;
        colons &= colons - 1;
        let p = start + i;
        let slashes = match bytes.get(p + 1..p + 3) {
            Some(t) => t == b"//",
            None => false,
        };
        url |= u64::from(slashes) << i;
    }
    let mut assign = 0u64;
    // A keyword ends in a letter, or in a letter and a quote or blank: an
    // operator right after a digit (times, ratios) cannot follow one.
    let mut ops = op & !shl(d, prev.d, 1) & enabled_mask(enabled, ASSIGN);
    while ops != 0 {
        let i = ops.trailing_zeros() as usize;
        ops &= ops - 1;
        let p = start + i;
        let ok = if p >= 3 {
            let (a, b, q) = (bytes[p - 3], bytes[p - 2], bytes[p - 1]);
            is_pair(Some(b), q) || (CLASS[usize::from(q)] >> QS & 1 == 1 && is_pair(Some(a), b))
        } else {
            let pair = |at: usize| byte(p, at).is_some_and(|b| is_pair(byte(p, at + 1), b));
            let qs = byte(p, 1).is_some_and(|b| CLASS[usize::from(b)] >> QS & 1 == 1);
            pair(1) || (qs && pair(2))
        };
        assign |= u64::from(ok) << i;
    }
    let kinds = [num, iban, colon, url, assign, special];
    let mut union = 0;
    for (k, mask) in kinds.iter().enumerate() {
        union |= mask & enabled_mask(enabled, 1 << k);
    }
    Triggers {
        kinds,
        num_carry: c1,
        hex_carry: c2,
        masks: Masks { d, w, sep, c },
        union,
    }
}

/// All ones when `kind` is among `enabled`, else zero.
#[inline(always)]
fn enabled_mask(enabled: u8, kind: u8) -> u64 {
    0u64.wrapping_sub(u64::from(enabled & kind != 0))
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
    /// Class masks of the block before `block`.
    prev: Masks,
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
            prev: Masks::default(),
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
            if self.partial.is_none() && self.done == self.block && !self.hot(w, base, hits) {
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
            let t = block_triggers(
                w.bytes,
                rel,
                &self.prev,
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
                self.prev = t.masks;
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
    fn hot(&mut self, w: &Window, base: u64, hits: &mut impl FnMut(u64, Hit)) -> bool {
        let bytes = w.bytes;
        let (mut prev, mut nc, mut hc) = (self.prev, self.num_carry, self.hex_carry);
        let mut rel = (self.block - base) as usize;
        while rel + BLOCK + 3 <= bytes.len() {
            let t = block_triggers(bytes, rel, &prev, nc, hc, self.kinds);
            let mut union = t.union;
            while union != 0 {
                let i = union.trailing_zeros();
                union &= union - 1;
                let mut kinds = 0u8;
                for (k, mask) in t.kinds.iter().enumerate() {
                    kinds |= (((mask >> i) & 1) as u8) << k;
                }
                let mut sink = |h: Hit| hits(base, h);
                if let Err((pending, left)) =
                    run_at(w, rel + i as usize, kinds & self.kinds, &mut sink)
                {
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
            prev = t.masks;
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
        let byte = |i: isize| {
            if i < 0 {
                None
            } else {
                b.get(i as usize).copied()
            }
        };
        let at = |i: isize| -> u16 { class_bits(byte(i - 1), byte(i)) };
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
                let good = !(is(s - 1, W) || ((is(s - 1, SEP) || is(s - 1, C)) && is(s - 2, D)));
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
            if is(i, C) {
                let mut s = i;
                while is(s - 1, X) {
                    s -= 1;
                }
                let glued = is(s - 1, W) || is(s - 1, C);
                // After hex digits: a hex digit or colon follows; alone: `::`.
                let next = if s < i {
                    is(i + 1, X) || is(i + 1, C)
                } else {
                    is(i + 1, C)
                };
                if !glued && next {
                    kinds |= COLON;
                }
            }
            if is(i, C) && is(i + 1, SL) && is(i + 2, SL) {
                kinds |= URL;
            }
            if is(i, OP) && (is(i - 1, PAIR) || (is(i - 1, QS) && is(i - 2, PAIR))) {
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
        let (mut nc, mut hc, mut prev) = (false, false, Masks::default());
        let mut start = 0;
        while start <= b.len() {
            let t = block_triggers(b, start, &prev, nc, hc, 63);
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
            prev = t.masks;
            start += 64;
        }
        out
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        let atoms = prop::sample::select(vec![
            "0", "1", "9", "12", "4111", " ", "-", ".", "(", ")", ":", "/", "=", "@", "a", "f",
            "G", "Z", "DE", "s", "d", "rd", "ey", "on", "Wd", "LS", "\"", "'", "_", "\n",
            "\u{200B}", "４", "＠", "\u{AD}", "é", "\0", "\u{FF}",
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
    fn keyword_pairs_match_their_list() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let listed = assign::KEYWORD_ENDINGS
                    .contains(&[a.to_ascii_lowercase(), b.to_ascii_lowercase()]);
                assert_eq!(is_pair(Some(a), b), listed, "{a} {b}");
            }
        }
    }

    #[test]
    fn ordinary_log_lines_trigger_rarely() {
        let line = b"2024-05-14T09:21:33.482Z INFO  [worker-3] request_id=7f9c2b1e-4d3a-4b8e-9c1f-2e5d8a7b6c4d method=GET path=/api/v1/users/48213 status=200 duration_ms=37 bytes=5123\n";
        let n = reference::triggers(line).len();
        assert!(n <= 1, "{n} triggers: {:?}", reference::triggers(line));
    }
}
